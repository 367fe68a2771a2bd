package kdwarf

import (
	"debug/dwarf"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vmleak/vmleak/internal/fuzzseed"
	"github.com/vmleak/vmleak/internal/oracle"
)

// objects compiled from testdata/lines.c (its header comment has the
// commands), once per test binary.
var (
	linesOnce sync.Once
	linesDir  string
	linesErr  error
)

func lineObject(t testing.TB, flavor string) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found: cannot compile testdata/lines.c")
	}
	clang, clangErr := exec.LookPath("clang")
	if strings.HasPrefix(flavor, "clang") && clangErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("clang not found (make test installs it)")
		}
		t.Skip("clang not found: cannot compile testdata/lines.c with it")
	}
	linesOnce.Do(func() {
		if linesDir, linesErr = os.MkdirTemp("", "kdwarf-lines-"); linesErr != nil {
			return
		}
		src, _ := filepath.Abs("testdata/lines.c")
		run := func(name string, args ...string) {
			if linesErr != nil {
				return
			}
			cmd := exec.Command(name, args...)
			cmd.Dir = linesDir
			if out, err := cmd.CombinedOutput(); err != nil {
				linesErr = fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
			}
		}
		run(gcc, "-c", "-O2", "-g", "-gdwarf-5", "-o", "rel5", src)
		run(gcc, "-c", "-O2", "-g", "-gdwarf-4", "-o", "rel4", src)
		run(gcc, "-shared", "-fPIC", "-O2", "-g", "-gdwarf-5", "-Wl,--build-id=sha1", "-o", "so5", src)
		run(gcc, "-shared", "-fPIC", "-O2", "-g", "-gdwarf-4", "-Wl,--build-id=sha1", "-o", "so4", src)
		run("objcopy", "--remove-section", ".debug_aranges", "so5", "so5-noaranges")
		run(gcc, "-c", "-O2", "-g0", "-o", "nodebug", src)
		if clangErr == nil {
			run(clang, "-c", "-O2", "-g", "-gdwarf-5", "-o", "clang-rel5", src)
			run(clang, "-shared", "-fPIC", "-O2", "-g", "-gdwarf-5", "-o", "clang-so5", src)
		}
	})
	if linesErr != nil {
		t.Fatal(linesErr)
	}
	return filepath.Join(linesDir, flavor)
}

// funcs are the functions of lines.c, with their section and extent.
func funcs(t *testing.T, path string) []elf.Symbol {
	t.Helper()
	ef, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	syms, err := ef.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	var out []elf.Symbol
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Size > 0 && (s.Name == "hot" || s.Name == "cold" || s.Name == "setup") {
			out = append(out, s)
		}
	}
	if len(out) != 3 {
		t.Fatalf("%s: functions %v, want hot, cold and setup", path, out)
	}
	return out
}

// In a relocatable object, every byte of hot, cold and setup — each at
// the start of its own section — has the line binutils' addr2line gives
// for that section offset (-j): the sections are told apart.
func TestSectionLineAtAgainstAddr2line(t *testing.T) {
	for _, flavor := range []string{"rel5", "rel4", "clang-rel5"} {
		t.Run(flavor, func(t *testing.T) {
			path := lineObject(t, flavor)
			f, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			ef := f.ELF()
			starts := map[string]Pos{}
			compared := 0
			for _, s := range funcs(t, path) {
				sec := ef.Sections[s.Section].Name
				var offs []uint64
				for off := s.Value; off < s.Value+s.Size; off++ {
					offs = append(offs, off)
				}
				want := oracle.Addr2line(t, path, sec, offs)
				for i, off := range offs {
					p, err := f.SectionLineAt(sec, off)
					if err != nil && !errors.Is(err, ErrNotFound) {
						t.Fatalf("%s+%#x: %v", sec, off, err)
					}
					if !want[i].Agrees(p.File, p.Line) {
						t.Errorf("%s %s+%#x: %s, addr2line %s", s.Name, sec, off, p, want[i])
					}
					compared++
				}
				if s.Value == 0 {
					starts[sec], _ = f.SectionLineAt(sec, 0)
				}
			}
			if len(starts) != 3 || starts[".text"] == starts[".text.unlikely"] || starts[".text"] == starts[".init.text"] {
				t.Errorf("offset 0 of each section: %v, want three different lines", starts)
			}
			t.Logf("%d offsets agree with addr2line", compared)
		})
	}
}

// What SectionLineAt works around: debug/elf relocates a relocatable
// object's DWARF to section offsets, so the line sequences of .text,
// .text.unlikely and .init.text all start at address 0.
func TestStdlibRelocationLosesSections(t *testing.T) {
	ef, err := elf.Open(lineObject(t, "rel5"))
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	d, err := ef.DWARF()
	if err != nil {
		t.Fatal(err)
	}
	cu, err := d.Reader().Next()
	if err != nil {
		t.Fatal(err)
	}
	lr, err := d.LineReader(cu)
	if err != nil || lr == nil {
		t.Fatal(lr, err)
	}
	var e dwarf.LineEntry
	starts, seqStart := 0, true
	for lr.Next(&e) != io.EOF {
		if seqStart && e.Address == 0 {
			starts++
		}
		seqStart = e.EndSequence
	}
	if starts != 3 {
		t.Errorf("%d line sequences start at 0, want the 3 sections' (debug/elf changed? then SectionLineAt's relocation may be unneeded)", starts)
	}
}

// In a linked object, every byte of the three functions has addr2line's
// line; without .debug_aranges the units are found by their ranges; a
// look-up that first reads a single byte of the program reads on.
func TestLineAtAgainstAddr2line(t *testing.T) {
	for _, flavor := range []string{"so5", "so4", "so5-noaranges", "clang-so5", "so5/window-1"} {
		t.Run(flavor, func(t *testing.T) {
			flavor, window, _ := strings.Cut(flavor, "/")
			if window != "" {
				defer func(w int) { rowWindow = w }(rowWindow)
				rowWindow = 1
			}
			path := lineObject(t, flavor)
			f, err := Open(path, WithCacheDir(""))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var addrs []uint64
			for _, s := range funcs(t, path) {
				for a := s.Value; a < s.Value+s.Size; a++ {
					addrs = append(addrs, a)
				}
			}
			want := oracle.Addr2line(t, path, "", addrs)
			known := 0
			for i, a := range addrs {
				p, err := f.LineAt(a)
				if err != nil && !errors.Is(err, ErrNotFound) {
					t.Fatalf("%#x: %v", a, err)
				}
				if !want[i].Agrees(p.File, p.Line) {
					t.Errorf("%#x: %s, addr2line %s", a, p, want[i])
				}
				if p.Line > 0 {
					known++
				}
			}
			if known == 0 {
				t.Fatal("no address has a line")
			}
			if flavor == "so5-noaranges" && f.ELF().Section(".debug_aranges") != nil {
				t.Error("objcopy left .debug_aranges")
			}
			t.Logf("%d addresses agree with addr2line, %d with a line", len(addrs), known)
		})
	}
}

// File names: lines.c's own rows name lines.c, helper's inlined rows
// lines.h (the innermost function), both less the compile directory.
func TestLinePaths(t *testing.T) {
	path := lineObject(t, "so5")
	f, err := Open(path, WithCacheDir(""))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]bool{}
	for _, s := range funcs(t, path) {
		for a := s.Value; a < s.Value+s.Size; a++ {
			if p, err := f.LineAt(a); err == nil {
				seen[p.File] = true
			}
		}
	}
	// The test ran gcc in linesDir on testdata/lines.c by its absolute path.
	src, _ := filepath.Abs("testdata")
	want := map[string]bool{src + "/lines.c": true, src + "/lines.h": true}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("files %v, want %v", seen, want)
	}
	if p := shortPath("/build/linux/mm/slub.c", "/build/linux/"); p != "mm/slub.c" {
		t.Errorf("shortPath: %q", p)
	}
	if p := shortPath("/build/linux2/mm/slub.c", "/build/linux"); p != "/build/linux2/mm/slub.c" {
		t.Errorf("shortPath of a path outside the compile directory: %q", p)
	}
}

func TestLineErrors(t *testing.T) {
	rel, err := Open(lineObject(t, "rel5"))
	if err != nil {
		t.Fatal(err)
	}
	defer rel.Close()
	so, err := Open(lineObject(t, "so5"), WithCacheDir(""))
	if err != nil {
		t.Fatal(err)
	}
	defer so.Close()
	nodebug, err := Open(lineObject(t, "nodebug"))
	if err != nil {
		t.Fatal(err)
	}
	defer nodebug.Close()
	text := rel.ELF().Section(".text")
	for _, tc := range []struct {
		name string
		err  error
		want error // nil: any error
	}{
		{"LineAt of a relocatable file", ret(rel.LineAt(0)), nil},
		{"SectionLineAt of a linked file", ret(so.SectionLineAt(".text", 0)), nil},
		{"no such section", ret(rel.SectionLineAt(".nosuch", 0)), ErrNotFound},
		{"a section without code", ret(rel.SectionLineAt(".bss", 0)), ErrNotFound},
		{"past the section", ret(rel.SectionLineAt(".text", text.Size)), ErrNotFound},
		{"an address of no unit", ret(so.LineAt(1 << 40)), ErrNotFound},
		{"no DWARF", ret(nodebug.SectionLineAt(".text", 0)), ErrNoLines},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil || (tc.want != nil && !errors.Is(tc.err, tc.want)) {
				t.Errorf("error %v, want %v", tc.err, tc.want)
			}
		})
	}
	so.Close()
	if _, err := so.LineAt(0); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

func ret(_ Pos, err error) error { return err }

// lineProgram is a small DWARF 4 line program (a.c in dir, one sequence
// of three rows at 0x1000) or its DWARF 5 form (names inline, as
// DW_FORM_string).
func lineProgram(version int) []byte {
	le := binary.LittleEndian
	var hdr []byte
	hdr = append(hdr, 1)          // minimum_instruction_length
	hdr = append(hdr, 1)          // maximum_operations_per_instruction
	hdr = append(hdr, 1)          // default_is_stmt
	hdr = append(hdr, byte(0xfb)) // line_base -5
	hdr = append(hdr, 14, 13)     // line_range, opcode_base
	hdr = append(hdr, 0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 1)
	if version >= 5 {
		hdr = append(hdr, 1, 1, 0x08) // directory format: path, string
		hdr = append(hdr, 2)          // two directories
		hdr = append(hdr, "/build\x00dir\x00"...)
		hdr = append(hdr, 2, 1, 0x08, 2, 0x0b) // file format: path string, dir data1
		hdr = append(hdr, 2)                   // two files
		hdr = append(hdr, "a.c\x00\x01a.c\x00\x01"...)
	} else {
		hdr = append(hdr, "dir\x00\x00"...)
		hdr = append(hdr, "a.c\x00\x01\x00\x00\x00"...)
	}
	prog := []byte{0, 9, 2}
	prog = le.AppendUint64(prog, 0x1000)
	prog = append(prog, 3, 2, 1) // advance_line 2, copy
	prog = append(prog, 0x4b)    // special: +4 address, +1 line
	prog = append(prog, 2, 4, 1) // advance_pc 4, copy
	prog = append(prog, 0, 1, 1) // end_sequence
	var b []byte
	b = le.AppendUint16(b, uint16(version))
	if version >= 5 {
		b = append(b, 8, 0) // address_size, segment_selector_size
	}
	b = le.AppendUint32(b, uint32(len(hdr)))
	b = append(b, hdr...)
	b = append(b, prog...)
	return append(le.AppendUint32(nil, uint32(len(b))), b...)
}

func TestLineProgram(t *testing.T) {
	for _, v := range []int{4, 5} {
		p, err := readLineProg(lineProgram(v), 0, &debugSections{}, binary.LittleEndian)
		if err != nil {
			t.Fatalf("version %d: %v", v, err)
		}
		var st lineState
		st.reset()
		var rows []string
		for {
			r, err := p.next(&st)
			if err == errProgEnd {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			rows = append(rows, fmt.Sprintf("%#x %s:%d %v", r.addr, p.path(r.file), r.line, r.end))
		}
		want := []string{"0x1000 dir/a.c:3 false", "0x1004 dir/a.c:4 false", "0x1008 dir/a.c:4 false", "0x1008 dir/a.c:4 true"}
		if fmt.Sprint(rows) != fmt.Sprint(want) {
			t.Errorf("version %d: rows %q, want %q", v, rows, want)
		}
	}
}

// A line program from the file decodes without panicking, whatever it
// holds, in bounded time.
func FuzzLineProgram(f *testing.F) {
	for _, s := range lineProgramSeeds() {
		f.Add(s[0].([]byte))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := readLineProg(b, 0, &debugSections{str: b, extra: map[string][]byte{".debug_line_str": b}}, binary.LittleEndian)
		if err != nil {
			return
		}
		var st lineState
		st.reset()
		for range 1 << 16 {
			r, err := p.next(&st)
			if err != nil {
				return
			}
			_ = p.path(r.file)
		}
	})
}

// unitSeed is a .debug_abbrev and .debug_info of one DWARF 5 unit whose
// DIE has DW_AT_stmt_list 0x20 (sec_offset) and DW_AT_comp_dir "/build"
// (string), the abbreviations' length first.
func unitSeed() []byte {
	abbrev := []byte{1, 0x11, 1, 0x10, 0x17, 0x1b, 0x08, 0, 0, 0}
	info := []byte{0, 0, 0, 0, 5, 0, 1, 8, 0, 0, 0, 0, 1, 0x20, 0, 0, 0}
	info = append(info, "/build\x00"...)
	binary.LittleEndian.PutUint32(info, uint32(len(info)-4))
	return append(append([]byte{byte(len(abbrev))}, abbrev...), info...)
}

// splitSeed splits fuzz input at its first byte's value into
// .debug_abbrev and .debug_info.
func splitSeed(b []byte) (*debugSections, bool) {
	if len(b) < 1 || int(b[0]) >= len(b) {
		return nil, false
	}
	return &debugSections{abbrev: b[1 : 1+int(b[0])], info: b[1+int(b[0]):], extra: map[string][]byte{}}, true
}

func TestUnitLineAttrs(t *testing.T) {
	secs, _ := splitSeed(unitSeed())
	units, err := parseUnits(secs.info, binary.LittleEndian)
	if err != nil || len(units) != 1 {
		t.Fatal(units, err)
	}
	stmt, dir, ok, err := unitLineAttrs(secs.info, units[0], secs, binary.LittleEndian)
	if stmt != 0x20 || dir != "/build" || !ok || err != nil {
		t.Errorf("stmt_list %#x, comp_dir %q, %v, %v", stmt, dir, ok, err)
	}
}

// A unit's first DIE decodes without panicking, whatever the unit and its
// abbreviations hold.
func FuzzUnitLineAttrs(f *testing.F) {
	for _, s := range unitSeeds() {
		f.Add(s[0].([]byte))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		secs, ok := splitSeed(b)
		if !ok {
			return
		}
		units, err := parseUnits(secs.info, binary.LittleEndian)
		if err != nil {
			return
		}
		for _, u := range units {
			unitLineAttrs(secs.info[u.hdr:u.end], u, secs, binary.LittleEndian)
		}
	})
}

func lineProgramSeeds() [][]any { return [][]any{{lineProgram(4)}, {lineProgram(5)}} }

func unitSeeds() [][]any { return [][]any{{unitSeed()}} }

func TestWriteLineSeeds(t *testing.T) {
	fuzzseed.Enabled(t)
	fuzzseed.Write(t, "FuzzLineProgram", lineProgramSeeds())
	fuzzseed.Write(t, "FuzzUnitLineAttrs", unitSeeds())
}
