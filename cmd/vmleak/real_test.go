package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/oracle"
	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/owners"
	"github.com/vmleak/vmleak/symbolize"
	"github.com/vmleak/vmleak/walk"
)

// vmleak runs the command in-process and returns its exit code and output.
func vmleak(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// crashTwin is the file crash read for a dump: flattened streams were read
// through their rearranged twin.
func crashTwin(d fixture.DumpFile) string {
	return "crash/" + strings.Replace(d.File, "flat-", "", 1) + ".kmem-s"
}

// vmleak slabs prints exactly what crash's kmem -s printed, on every dump
// crash can read.
func TestSlabsEqualsCrashText(t *testing.T) {
	n := 0
	for _, m := range fixture.All(t) {
		for _, d := range m.Dumps {
			if !m.HasOracle(crashTwin(d)) {
				if m.CrashReads() {
					t.Errorf("%s: no crash output %s for a %s dump", m.Name, crashTwin(d), m.KernelRelease)
				}
				continue // crash cannot read this kernel
			}
			t.Run(m.Name+"/"+d.File, func(t *testing.T) {
				code, out, errs := vmleak(t, "slabs", m.DumpPath(d), "--vmlinux", m.Vmlinux())
				if code != ExitOK {
					t.Fatalf("exit %d: %s", code, errs)
				}
				if want := m.Oracle(t, crashTwin(d)); out != want {
					t.Errorf("vmleak slabs differs from crash kmem -s:\n%s", lineDiff(out, want))
				}
				n++
			})
		}
	}
	if n == 0 {
		t.Fatal("no dump compared")
	}
}

func lineDiff(have, want string) string { return labelledDiff(have, want, "vmleak: ", "crash:  ") }

// labelledDiff lists the lines that differ, each side under its label.
func labelledDiff(have, want, haveLabel, wantLabel string) string {
	h, w := strings.Split(have, "\n"), strings.Split(want, "\n")
	var sb strings.Builder
	for i := 0; i < max(len(h), len(w)); i++ {
		var a, b string
		if i < len(h) {
			a = h[i]
		}
		if i < len(w) {
			b = w[i]
		}
		if a != b {
			sb.WriteString(haveLabel + a + "\n" + wantLabel + b + "\n")
		}
	}
	return sb.String()
}

// The slabinfo output is /proc/slabinfo: the guest's own parser reads it,
// and it says what the JSON census says.
func TestSlabinfoAndJSON(t *testing.T) {
	m := fixture.Load(t, "bookworm-qemu")
	d := m.Dumps[0]
	code, out, errs := vmleak(t, "slabinfo", m.DumpPath(d), "--vmlinux", m.Vmlinux())
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	rows, err := oracle.ParseSlabinfo(out)
	if err != nil {
		t.Fatal(err)
	}
	code, js, errs := vmleak(t, "slabs", m.DumpPath(d), "--vmlinux", m.Vmlinux(), "--json")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var c walk.Census
	if err := json.Unmarshal([]byte(js), &c); err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(c.Caches) {
		t.Errorf("slabinfo has %d caches, JSON %d", len(rows), len(c.Caches))
	}
	for _, cs := range c.Caches {
		r := rows[cs.Name]
		if r.ActiveObjs != cs.Allocated || r.NumObjs != cs.Total || r.NumSlabs != cs.Slabs || uint64(r.ObjSize) != cs.Size {
			t.Errorf("%s: slabinfo %+v, census %+v", cs.Name, r, cs)
		}
	}
	if tc := c.Cache("vmleak_test_obj"); tc == nil || tc.Allocated != int64(m.TestModule.NObj) {
		t.Errorf("JSON test-module cache %+v, want %d allocated", tc, m.TestModule.NObj)
	}
}

// whatis names the cache of one of the test module's objects; objects lists
// exactly the objects the module holds.
func TestObjectsAndWhatis(t *testing.T) {
	m := fixture.Load(t, "bookworm-kdump")
	d := m.Dumps[0]
	code, out, errs := vmleak(t, "objects", m.DumpPath(d), m.TestModule.Cache, "--vmlinux", m.Vmlinux())
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	addrs := strings.Fields(out)
	if len(addrs) != m.TestModule.NObj {
		t.Fatalf("objects listed %d, module holds %d", len(addrs), m.TestModule.NObj)
	}
	code, out, errs = vmleak(t, "whatis", m.DumpPath(d), addrs[len(addrs)/2], "--vmlinux", m.Vmlinux(), "--json")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var res []symbolize.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Object == nil || res[0].Object.Cache != m.TestModule.Cache || !res[0].Object.Allocated {
		t.Errorf("whatis %s: %s", addrs[len(addrs)/2], out)
	}
	code, out, _ = vmleak(t, "whatis", m.DumpPath(d), "0x0", "--vmlinux", m.Vmlinux())
	if code != ExitOK || !strings.Contains(out, "unknown") {
		t.Errorf("whatis 0: exit %d, %s", code, out)
	}
}

// Every documented exit code, on real input.
func TestExitCodes(t *testing.T) {
	a := fixture.Load(t, "bookworm-qemu")
	b := fixture.Load(t, "trixie-qemu")
	garbage := filepath.Join(t.TempDir(), "garbage")
	os.WriteFile(garbage, bytes.Repeat([]byte("not a vmcore "), 1000), 0o644)
	kd := fixture.Load(t, "bookworm-kdump")
	// The last 2 MiB of RAM hold early allocations (vmemmap page tables,
	// mem_section, the first caches): losing them must still give a result.
	truncated := truncatedCopy(t, kd.DumpPath(dumpOf(t, kd, "kdump.elf")), 2<<20)
	// A vmlinux found automatically (here under --debuginfo-dir) that is not
	// the dump's: refused like one given with --vmlinux, by info too.
	wrongDir := t.TempDir()
	if err := os.Symlink(b.Vmlinux(), filepath.Join(wrongDir, "vmlinux")); err != nil {
		t.Fatal(err)
	}
	// The truncation took the page tables that map the memory map: whatis
	// cannot read the struct page of a direct-map address.
	k, err := kernel.Open(kd.DumpPath(dumpOf(t, kd, "kdump.elf")), kernel.Options{Vmlinux: kd.Vmlinux()})
	if err != nil {
		t.Fatal(err)
	}
	inTruncated := fmt.Sprintf("%#x", k.Layout().PageOffset+16<<20)
	k.Close()
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"ok", []string{"info", a.DumpPath(a.Dumps[0]), "--vmlinux", a.Vmlinux()}, ExitOK, ""},
		{"usage: no dump", []string{"slabs"}, ExitUsage, "takes 1 argument"},
		{"usage: bad flag", []string{"slabs", "--bogus", "x"}, ExitUsage, "unknown flag"},
		{"usage: bad sort", []string{"slabs", a.DumpPath(a.Dumps[0]), "--vmlinux", a.Vmlinux(), "--sort", "x"}, ExitUsage, "unknown sort key"},
		{"input: missing file", []string{"slabs", "/nonexistent/vmcore"}, ExitInput, "/nonexistent/vmcore"},
		{"input: not a dump", []string{"slabs", garbage}, ExitInput, "unrecognized dump format"},
		{"mismatch", []string{"slabs", a.DumpPath(a.Dumps[0]), "--vmlinux", b.Vmlinux()}, ExitMismatch, "does not match"},
		{"mismatch: info, vmlinux found", []string{"info", a.DumpPath(a.Dumps[0]), "--debuginfo-dir", wrongDir}, ExitMismatch, "does not match"},
		{"usage: objects of no such cache", []string{"objects", a.DumpPath(a.Dumps[0]), "no-such-cache", "--vmlinux", a.Vmlinux()}, ExitUsage, "no such cache"},
		{"partial: objects of a truncated dump", []string{"objects", truncated, "kmalloc-64", "--vmlinux", kd.Vmlinux()}, ExitPartial, "partial"},
		{"partial: whatis of missing memory", []string{"whatis", truncated, inTruncated, "--vmlinux", kd.Vmlinux()}, ExitPartial, "partial"},
		{"partial: truncated dump", []string{"slabs", truncated, "--vmlinux", kd.Vmlinux()}, ExitPartial, "partial"},
		{"partial: modules of a truncated dump", []string{"modules", truncated, "--vmlinux", kd.Vmlinux(), "--no-debuginfo"}, ExitPartial, "partial"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := vmleak(t, tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.msg) {
				t.Errorf("exit %d (want %d), stderr:\n%s", code, tc.code, errs)
			}
			if strings.Contains(errs, "panic") || strings.Contains(errs, "goroutine ") {
				t.Errorf("stderr shows a panic:\n%s", errs)
			}
		})
	}
}

func dumpOf(t *testing.T, m *fixture.Manifest, file string) fixture.DumpFile {
	for _, d := range m.Dumps {
		if d.File == file {
			return d
		}
	}
	t.Fatalf("%s has no %s", m.Name, file)
	return fixture.DumpFile{}
}

// truncatedCopy copies a file less its last cut bytes, as a kdump cut short
// by a full disk would be.
func truncatedCopy(t *testing.T, path string, cut int64) string {
	t.Helper()
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	st, _ := in.Stat()
	out := filepath.Join(t.TempDir(), "truncated-"+filepath.Base(path))
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.CopyN(f, in, st.Size()-cut); err != nil {
		t.Fatal(err)
	}
	return out
}

// meminfo and dmesg end to end on the genuine kdump.
func TestMeminfoAndDmesg(t *testing.T) {
	m := fixture.Load(t, "bookworm-kdump")
	d := dumpOf(t, m, "kdump.lzo")
	code, out, errs := vmleak(t, "meminfo", m.DumpPath(d), "--vmlinux", m.Vmlinux())
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	have, err := oracle.ParseMeminfo(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := oracle.ParseMeminfo(m.Oracle(t, d.Oracle+".meminfo"))
	if err != nil {
		t.Fatal(err)
	}
	if have["MemTotal"] != want["MemTotal"] || len(have) != len(want) {
		t.Errorf("MemTotal %d (guest %d), %d lines (guest %d)", have["MemTotal"], want["MemTotal"], len(have), len(want))
	}
	code, out, errs = vmleak(t, "dmesg", m.DumpPath(d), "--vmlinux", m.Vmlinux())
	if code != ExitOK || !strings.Contains(out, "] Linux version "+m.KernelRelease) || !strings.Contains(out, "Kernel panic - not syncing: sysrq triggered crash") {
		t.Errorf("dmesg exit %d, %d bytes, stderr %s", code, len(out), errs)
	}
	code, out, _ = vmleak(t, "info", m.DumpPath(d), "--vmlinux", m.Vmlinux())
	if code != ExitOK || !strings.Contains(out, "panic:") || !strings.Contains(out, "dump level 31") {
		t.Errorf("info exit %d:\n%s", code, out)
	}
}

// vmleak modules end to end, one dump of each kernel: the first seven
// columns of each row are the guest's /proc/modules line, field by field
// ("-" where /proc/modules prints no taint flags), and --json carries the
// same modules.
func TestModulesCommand(t *testing.T) {
	for _, name := range []string{"bookworm-kdump", "trixie-qemu", "sid-qemu", "bookworm-arm64"} {
		m := fixture.Load(t, name)
		d := m.Dumps[0]
		t.Run(name+"/"+d.File, func(t *testing.T) {
			code, out, errs := vmleak(t, "modules", m.DumpPath(d), "--vmlinux", m.Vmlinux(), "--no-debuginfo")
			if code != ExitOK {
				t.Fatalf("exit %d: %s", code, errs)
			}
			var rows [][]string
			for _, l := range strings.Split(out, "\n") {
				if f := strings.Fields(l); len(f) >= 7 && f[0] != "NAME" && strings.HasPrefix(f[5], "0x") {
					rows = append(rows, f[:7])
				}
			}
			var want [][]string
			for _, l := range strings.Split(strings.TrimSpace(m.Oracle(t, d.Oracle+".modules")), "\n") {
				f := strings.Fields(l)
				if len(f) == 6 {
					f = append(f, "-")
				}
				want = append(want, f)
			}
			if len(rows) != len(want) {
				t.Fatalf("%d rows, /proc/modules %d lines:\n%s", len(rows), len(want), out)
			}
			for i := range want {
				if strings.Join(rows[i], " ") != strings.Join(want[i], " ") {
					t.Errorf("row %q, /proc/modules %q", strings.Join(rows[i], " "), strings.Join(want[i], " "))
				}
			}
			code, out, errs = vmleak(t, "modules", m.DumpPath(d), "--vmlinux", m.Vmlinux(), "--no-debuginfo", "--json")
			var rep struct {
				Schema  int
				Modules []struct{ Name, Base string }
			}
			if err := json.Unmarshal([]byte(out), &rep); code != ExitOK || err != nil || rep.Schema != 1 || len(rep.Modules) != len(want) {
				t.Fatalf("--json: exit %d, %v, %d modules: %s", code, err, len(rep.Modules), errs)
			}
			for i, mo := range rep.Modules {
				if mo.Name != want[i][0] || "0x"+strings.TrimLeft(strings.TrimPrefix(want[i][5], "0x"), "0") != mo.Base {
					t.Errorf("--json module %d: %s at %s, /proc/modules %s at %s", i, mo.Name, mo.Base, want[i][0], want[i][5])
				}
			}
		})
	}
}

// owners end to end: on the slub_debug=U dump the test module's objects are
// attributed to the function that allocated them, in text and JSON; on a
// dump without tracks its cache is its own by cache evidence.
func TestOwnersCommand(t *testing.T) {
	s := fixture.Load(t, "bookworm-slubdbg")
	code, out, errs := vmleak(t, "owners", s.DumpPath(s.Dumps[0]), "--vmlinux", s.Vmlinux(), "--module", "vmleak_test", "--sites")
	if code != ExitOK || !strings.Contains(out, "vmleak_test_obj") || !strings.Contains(out, "[vmleak_test]") {
		t.Errorf("exit %d\n%s\n%s", code, out, errs)
	}
	// With the kernel's directory as a debuginfo root, call sites have
	// their source lines: the test module's from its unstripped .ko.
	root := s.Path(filepath.Dir(s.KernelJSON))
	code, out, errs = vmleak(t, "owners", s.DumpPath(s.Dumps[0]), "--vmlinux", s.Vmlinux(), "--debuginfo-dir", root, "--sites")
	if code != ExitOK || !regexp.MustCompile(`(?m) grow_by\+0x[0-9a-f]+ \[vmleak_test\] \S+/vmleak_test\.c:\d+$`).MatchString(out) ||
		!regexp.MustCompile(`(?m) __d_alloc\+0x[0-9a-f]+ fs/dcache\.c:\d+$`).MatchString(out) {
		t.Errorf("owners --sites with debuginfo: exit %d, no source lines\n%s\n%s", code, out, errs)
	}
	code, out, errs = vmleak(t, "owners", s.DumpPath(s.Dumps[0]), "--vmlinux", s.Vmlinux(), "--freed")
	if code != ExitOK || !strings.Contains(out, "FREED BY") || !strings.Contains(out, "+0x") {
		t.Errorf("owners --freed: exit %d\n%s\n%s", code, out, errs)
	}
	q := fixture.Load(t, "bookworm-qemu")
	code, _, errs = vmleak(t, "owners", q.DumpPath(q.Dumps[0]), "--vmlinux", q.Vmlinux(), "--freed")
	if code != ExitInput || !strings.Contains(errs, "no cache keeps free tracks") {
		t.Errorf("owners --freed without tracks: exit %d, %s", code, errs)
	}
	code, out, errs = vmleak(t, "slabs", q.DumpPath(q.Dumps[0]), "--vmlinux", q.Vmlinux(), "--owners")
	if code != ExitOK || !regexp.MustCompile(`(?m) `+q.TestModule.Module+`  +`+q.TestModule.Cache+`$`).MatchString(out) {
		t.Errorf("slabs --owners: exit %d, no %s owning %s:\n%s\n%s", code, q.TestModule.Module, q.TestModule.Cache, out, errs)
	}
	code, out, errs = vmleak(t, "owners", q.DumpPath(q.Dumps[0]), "--vmlinux", q.Vmlinux(), "--json")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r owners.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Schema != owners.ReportSchema || r.Tracked {
		t.Errorf("schema %d, tracked %v", r.Schema, r.Tracked)
	}
	found := false
	for _, o := range r.Owners {
		for _, cs := range o.Caches {
			found = found || o.Owner == q.TestModule.Module && cs.Cache == q.TestModule.Cache && cs.Evidence == "data-pointer+constructor"
		}
	}
	if !found {
		t.Errorf("the test module does not own its cache: %+v", r.Owners)
	}
}
