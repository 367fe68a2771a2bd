package oracle

import (
	"bytes"
	"fmt"
	"os/exec"
	"path"
	"strconv"
	"strings"
	"testing"
)

// SourceLine is what binutils' addr2line said of one address: File and
// Line, or Line 0 when it knows no line ("??:0", "file:?").
type SourceLine struct {
	File string
	Line int
}

// Agrees tells whether a file:line found elsewhere is addr2line's: the
// same line of the same file, file names compared by their last path
// elements (addr2line joins the compile directory to names that vmleak
// leaves relative). Both knowing no line agree.
func (s SourceLine) Agrees(file string, line int) bool {
	if s.Line == 0 || line == 0 {
		return s.Line == line
	}
	if s.Line != line {
		return false
	}
	a, b := path.Clean(s.File), path.Clean(file) // addr2line keeps "dir//name"
	return a == b || strings.HasSuffix(a, "/"+b) || strings.HasSuffix(b, "/"+a)
}

func (s SourceLine) String() string {
	if s.Line == 0 {
		return "??"
	}
	return fmt.Sprintf("%s:%d", s.File, s.Line)
}

// ParseAddr2line parses addr2line's output without -f or -i: one
// "file:line" line per address, maybe followed by " (discriminator N)".
func ParseAddr2line(text string) ([]SourceLine, error) {
	var out []SourceLine
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		l, _, _ = strings.Cut(l, " (discriminator ")
		i := strings.LastIndexByte(l, ':')
		if i < 0 {
			return nil, fmt.Errorf("oracle: addr2line: no file:line in %q", l)
		}
		file, num := l[:i], l[i+1:]
		if num == "?" || num == "0" || file == "??" {
			out = append(out, SourceLine{})
			continue
		}
		n, err := strconv.Atoi(num)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("oracle: addr2line: bad line number in %q", l)
		}
		out = append(out, SourceLine{file, n})
	}
	return out, nil
}

// Addr2line asks binutils' addr2line for the source lines of addrs in obj:
// link-time addresses, or with section offsets in that section of a
// relocatable object (-j). A test with nothing else to compare with fails
// when addr2line is missing: the fixture pipeline installs binutils.
func Addr2line(t testing.TB, obj, section string, addrs []uint64) []SourceLine {
	t.Helper()
	return addr2line(t, "addr2line", "binutils", obj, section, addrs)
}

// LLVMAddr2line is Addr2line asked of llvm-addr2line, which reads DWARF
// with LLVM's own decoder; linked objects only (it has no -j).
func LLVMAddr2line(t testing.TB, obj string, addrs []uint64) []SourceLine {
	t.Helper()
	return addr2line(t, "llvm-addr2line", "llvm", obj, "", addrs)
}

// CompareLines compares the source lines found for addrs of obj (have,
// in the same order; section as for Addr2line) with binutils' addr2line
// and returns a message for each that differs. For a linked object,
// llvm-addr2line decides two cases where binutils 2.40 departs from the
// line table (as readelf's decoded dump of it shows): it names the
// compile unit's own file for the out-of-line copy of a header's static
// inline function (paravirt_read_msr in 6.12's arch/x86/kernel/cpu/tsx.c:
// paravirt.h:192 in the table, tsx.c:192 for addr2line), and it gives a
// line to bytes no sequence covers (the __pfx_ padding before a function
// from 6.2). decided counts those.
func CompareLines(t testing.TB, obj, section string, addrs []uint64, have []SourceLine) (bad []string, decided int) {
	t.Helper()
	want := Addr2line(t, obj, section, addrs)
	var again []int
	for i, w := range want {
		switch {
		case w.Agrees(have[i].File, have[i].Line):
		case section == "" && (w.Line == have[i].Line || have[i].Line == 0):
			again = append(again, i)
		default:
			bad = append(bad, fmt.Sprintf("%s%#x: %s, addr2line %s", sectionPrefix(section), addrs[i], have[i], w))
		}
	}
	if len(again) == 0 {
		return bad, 0
	}
	sub := make([]uint64, len(again))
	for j, i := range again {
		sub[j] = addrs[i]
	}
	for j, l := range LLVMAddr2line(t, obj, sub) {
		i := again[j]
		if !l.Agrees(have[i].File, have[i].Line) {
			bad = append(bad, fmt.Sprintf("%#x: %s, addr2line %s, llvm-addr2line %s", addrs[i], have[i], want[i], l))
		}
	}
	return bad, len(again)
}

func sectionPrefix(section string) string {
	if section == "" {
		return ""
	}
	return section + "+"
}

// addrsPerRun bounds the addresses given one addr2line command line.
const addrsPerRun = 2000

func addr2line(t testing.TB, name, pkg, obj, section string, addrs []uint64) []SourceLine {
	t.Helper()
	if len(addrs) > addrsPerRun {
		return append(addr2line(t, name, pkg, obj, section, addrs[:addrsPerRun]),
			addr2line(t, name, pkg, obj, section, addrs[addrsPerRun:])...)
	}
	bin, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found (package %s; testdata/vmcores/build.sh installs it): %v", name, pkg, err)
	}
	args := []string{"-e", obj}
	if section != "" {
		args = append(args, "-j", section)
	}
	for _, a := range addrs {
		args = append(args, fmt.Sprintf("%#x", a))
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s -e %s: %v: %s", name, obj, err, stderr.String())
	}
	out, err := ParseAddr2line(string(b))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(addrs) {
		t.Fatalf("%s -e %s: %d lines for %d addresses", name, obj, len(out), len(addrs))
	}
	return out
}
