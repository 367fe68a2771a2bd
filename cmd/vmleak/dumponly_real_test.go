package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/testkernel"
)

// dumpOnlyDumps are one dump per kernel, and dump-level-31 kdumps.
var dumpOnlyDumps = []struct {
	fixture, file string
	readable      bool // types and symbols can be read from the dump
}{
	{"bullseye-qemu", "qemu1.zlib", true},   // 5.10: kallsyms found in the image
	{"bullseye-kdump", "kdump.lzo", true},   // 5.10, -d 31
	{"bookworm-kdump", "kdump.lzo", true},   // 6.1, -d 31: kallsyms from VMCOREINFO
	{"bookworm-qemu", "qemu1.zlib", true},   // 6.1
	{"trixie-qemu", "qemu1.zlib", true},     // 6.12
	{"sid-qemu", "qemu1.zlib", true},        // 7.2
	{"bookworm-novmci", "qemu1.elf", false}, // no VMCOREINFO
}

func fixtureDump(t *testing.T, m *fixture.Manifest, file string) fixture.DumpFile {
	t.Helper()
	for _, d := range m.Dumps {
		if d.File == file {
			return d
		}
	}
	fixture.Missing(t, m.Name+"/"+file, m.Name)
	return fixture.DumpFile{}
}

// whatisAddrs are addresses of every kind whatis names, taken from the
// kernel opened with its vmlinux: slab objects, data symbols, a per-CPU
// variable, a module, a direct-map page, a struct page. text is a kernel
// function's address, whose file:line only the vmlinux gives.
func whatisAddrs(t *testing.T, m *fixture.Manifest, d fixture.DumpFile) (addrs []string, text string) {
	t.Helper()
	k := testkernel.Open(t, m, d)
	sym := func(name string, off uint64) string {
		va, err := k.Symbol(name)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%#x", va+off)
	}
	addrs = append(addrs, sym("init_task", 0x10), sym("__per_cpu_offset", 8), sym("slab_caches", 0), sym("init_uts_ns", 4))
	rq, err := k.Symbol("runqueues")
	if err != nil {
		t.Fatal(err)
	}
	if pc, err := k.PerCPU(rq, 0); err == nil {
		addrs = append(addrs, fmt.Sprintf("%#x", pc+0x40))
	}
	mods, err := k.Modules()
	if err != nil {
		t.Fatal(err)
	}
	for _, mo := range mods {
		if m.TestModule != nil && mo.Name == m.TestModule.Module || m.TestModule == nil && len(addrs) < 10 {
			addrs = append(addrs, fmt.Sprintf("%#x", mo.Addr), fmt.Sprintf("%#x", mo.Ranges[0].Base+0x20))
		}
	}
	l := k.Layout()
	addrs = append(addrs, fmt.Sprintf("%#x", l.PageOffset+0x1234000), fmt.Sprintf("%#x", l.VmemmapBase+64*0x1234+8))
	return addrs, sym("schedule", 4)
}

// Dump-only mode (no vmlinux: types from the dump's BTF, symbols from its
// kallsyms) prints exactly what the vmlinux does, on every kernel; a dump
// without VMCOREINFO is refused clearly.
func TestDumpOnlyMatchesVmlinux(t *testing.T) {
	if testing.Short() {
		t.Skip("reads real dumps")
	}
	for _, tc := range dumpOnlyDumps {
		t.Run(tc.fixture+"/"+tc.file, func(t *testing.T) {
			m := fixture.Load(t, tc.fixture)
			d := fixtureDump(t, m, tc.file)
			dump := m.DumpPath(d)
			if !tc.readable {
				code, _, errs := vmleak(t, "slabs", dump, "--no-vmlinux")
				if code != ExitInput || !strings.Contains(errs, "no VMCOREINFO") || !strings.Contains(errs, "pass --vmlinux") {
					t.Errorf("dump-only on a dump without VMCOREINFO: exit %d, %s", code, errs)
				}
				code, out, errs := vmleak(t, "info", dump, "--no-vmlinux")
				if code != ExitOK || !strings.Contains(errs, "own types cannot be read") || strings.Contains(out, "types:") {
					t.Errorf("info without types: exit %d\n%s%s", code, out, errs)
				}
				return
			}
			addrs, text := whatisAddrs(t, m, d)
			cmds := [][]string{
				{"slabs"}, {"slabs", "--json"}, {"slabinfo"}, {"meminfo"}, {"modules"}, {"owners"}, {"leaks"}, {"dmesg"},
				{"objects", "kmalloc-64"}, {"objects", "kmalloc-64", "--all", "--json"},
				append([]string{"whatis"}, addrs...),
				append([]string{"whatis", "--json"}, addrs...),
			}
			if m.TestModule != nil {
				cmds = append(cmds, []string{"objects", m.TestModule.Cache, "--all"})
			}
			for _, c := range cmds {
				args := append([]string{c[0], dump}, c[1:]...)
				wc, wout, werr := vmleak(t, append(args, "--vmlinux", m.Vmlinux())...)
				dc, dout, derr := vmleak(t, append(args, "--no-vmlinux")...)
				name := strings.Join(c, " ")
				if len(name) > 40 {
					name = name[:40] + "..."
				}
				if wc != dc {
					t.Errorf("%s: exit %d with the vmlinux, %d without\n%s\n%s", name, wc, dc, werr, derr)
				}
				if wout != dout {
					t.Errorf("%s: dump-only output differs from the vmlinux's:\n%s", name, labelledDiff(dout, wout, "dump-only: ", "vmlinux:   "))
				}
				if wc != ExitOK && wc != ExitPartial {
					t.Errorf("%s: exit %d: %s", name, wc, werr)
				}
			}

			// A kernel function: the same symbol, without the file:line.
			_, wout, _ := vmleak(t, "whatis", dump, text, "--vmlinux", m.Vmlinux())
			_, dout, derr := vmleak(t, "whatis", dump, text, "--no-vmlinux")
			atLine := regexp.MustCompile(` at \S+:\d+\n$`)
			if !atLine.MatchString(wout) || dout != atLine.ReplaceAllString(wout, "\n") {
				t.Errorf("whatis %s: vmlinux %q, dump-only %q", text, wout, dout)
			}
			if !strings.Contains(derr, "need the vmlinux") {
				t.Errorf("whatis of kernel text without the vmlinux does not say lines need it: %q", derr)
			}

			// info says where types and symbols came from; the rest is the
			// same but for the compressions met in the pages read (reading
			// the BTF reads more).
			_, wout, _ = vmleak(t, "info", dump, "--vmlinux", m.Vmlinux())
			_, dout, _ = vmleak(t, "info", dump, "--no-vmlinux")
			from := regexp.MustCompile(`(?m)^(vmlinux|types|symbols|compression): .*\n`)
			if w, dd := from.ReplaceAllString(wout, ""), from.ReplaceAllString(dout, ""); w != dd {
				t.Errorf("info differs beyond where types came from:\n%s", labelledDiff(dd, w, "dump-only: ", "vmlinux:   "))
			}
			if !regexp.MustCompile(`(?m)^types: +BTF from the dump \(\d+\.\d MB at 0xffffffff[0-9a-f]+\)$`).MatchString(dout) ||
				!regexp.MustCompile(`(?m)^symbols: +kallsyms from the dump \(\d+\)$`).MatchString(dout) {
				t.Errorf("info does not say types and symbols came from the dump:\n%s", dout)
			}
			if !regexp.MustCompile(`(?m)^types: +BTF from ` + regexp.QuoteMeta(m.Vmlinux()) + `$`).MatchString(wout) {
				t.Errorf("info with the vmlinux does not say types came from it:\n%s", wout)
			}
		})
	}
}

// check runs in dump-only mode; what compares with the vmlinux says it was
// not checked, and the exit code says the result is partial.
func TestDumpOnlyCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("reads real dumps")
	}
	m := fixture.Load(t, "bookworm-qemu")
	d := fixtureDump(t, m, "qemu1.zlib")
	code, out, errs := vmleak(t, "check", m.DumpPath(d), "--no-vmlinux")
	if code != ExitPartial || !strings.Contains(errs, "needs the vmlinux") {
		t.Errorf("exit %d, %s", code, errs)
	}
	for _, want := range []string{
		`(?m)^syscalls +not checked +0 +not checked: needs the vmlinux`,
		`(?m)^text +not checked +0 +not checked: needs the vmlinux`,
		`(?m)^seq_ops +partial .*seq_operations tables not checked: needs the vmlinux`,
		`(?m)^modules +clean`, `(?m)^idt +clean`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	if code, _, errs := vmleak(t, "slabs", m.DumpPath(d), "--no-vmlinux", "--vmlinux", m.Vmlinux()); code != ExitUsage {
		t.Errorf("--no-vmlinux with --vmlinux: exit %d, %s", code, errs)
	}
}
