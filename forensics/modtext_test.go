package forensics_test

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/forensics"
	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/testkernel"
	"github.com/vmleak/vmleak/kernel"
)

// elfDump is a fixture's ELF dump file (the one OpenPatched rewrites).
func elfDump(t testing.TB, m *fixture.Manifest) fixture.DumpFile {
	t.Helper()
	for _, d := range m.Dumps {
		if d.Format == "elf" {
			return d
		}
	}
	t.Skipf("%s has no ELF dump", m.Name)
	return fixture.DumpFile{}
}

// coreFunc is the address of a function of a listed module in its core
// text, from the module's kallsyms: name, or the first text symbol when
// name is "".
func coreFunc(t *testing.T, k *kernel.Kernel, module, name string) (uint64, string) {
	t.Helper()
	mods, err := k.Modules()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mods {
		if m.Name != module {
			continue
		}
		syms, err := k.ModuleKallsyms(m)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range syms {
			if (name == "" && (s.Type == 't' || s.Type == 'T') || s.Name == name) && !strings.HasPrefix(s.Name, "__") {
				if r, ok := m.Contains(s.Addr); ok && !strings.HasPrefix(r.Kind, "init") {
					return s.Addr, s.Name
				}
			}
		}
		t.Fatalf("no core text symbol %q in %s", name, module)
	}
	t.Fatalf("no module %s", module)
	return 0, ""
}

// A module's text patched in the dump is reported High with the module
// named: a byte flipped inside virtio_ring's virtqueue_kick (unexplained
// bytes), and a jmp to unknown memory written over the ftrace site at the
// entry of a function of the test module (an inline hook).
func TestModuleTextPatched(t *testing.T) {
	m := fixture.Load(t, "bookworm-kdump")
	d := elfDump(t, m)
	good := testkernel.Open(t, m, d)
	word := func(va uint64) uint64 {
		var b [8]byte
		if err := good.ReadVirt(b[:], va); err != nil {
			t.Fatal(err)
		}
		return binary.LittleEndian.Uint64(b[:])
	}
	kick, _ := coreFunc(t, good, "virtio_ring", "virtqueue_kick")
	flip := kick + 0x10
	hookAt, hookName := coreFunc(t, good, m.TestModule.Module, "")
	const rel = 0x3000000
	target := hookAt + 5 + rel
	jmp := uint64(0xe9) | uint64(rel)<<8 | word(hookAt)&^(1<<40-1)
	if hookAt&7 != 0 {
		t.Fatalf("%s at %#x is not 8-byte aligned", hookName, hookAt)
	}
	k := testkernel.OpenPatched(t, m, m.DumpPath(d), good, map[uint64]uint64{
		flip &^ 7: word(flip&^7) ^ 0xff<<(8*(flip&7)),
		hookAt:    jmp,
	})
	rep, err := forensics.Run(k, forensics.Options{Checks: []string{"text"}, ModuleDirs: moduleDirs(m)})
	if err != nil {
		t.Fatal(err)
	}
	var gotFlip, gotHook bool
	for _, f := range rep.Findings {
		if f.Severity <= forensics.Info {
			if f.Kind == "module-text" {
				t.Logf("%s", f.Summary)
			}
			continue
		}
		t.Logf("%s %s %s (module %q, %s -> %s)\n  %s", f.Severity, f.Kind, f.Summary, f.Module, f.Symbol, f.TargetName, strings.Join(f.Evidence, "\n  "))
		switch {
		case f.Addr <= flip && flip < f.Addr+max(f.Size, 1):
			gotFlip = f.Severity == forensics.High && f.Module == "virtio_ring" && f.Kind == "patched-text" &&
				strings.HasPrefix(f.Symbol, "virtio_ring:virtqueue_kick+")
		case f.Addr == hookAt:
			gotHook = f.Severity == forensics.High && f.Module == m.TestModule.Module && f.Kind == "inline-hook" &&
				f.Target == target && strings.HasPrefix(f.TargetName, "unknown memory")
		default:
			t.Errorf("unexpected finding")
		}
	}
	if !gotFlip {
		t.Errorf("the flipped byte at %#x (virtqueue_kick+0x10) is not reported High in virtio_ring", flip)
	}
	if !gotHook {
		t.Errorf("the jmp at %s (%#x) is not reported as an inline hook of %s", hookName, hookAt, m.TestModule.Module)
	}
}

// A .ko of another build is refused, and said so: the 5.10 build of the
// test module given for the 6.1 dump is "not checked: .ko does not
// match", never compared; the modules without a .ko are not checked
// either, and the check does not call them clean.
func TestModuleTextMismatch(t *testing.T) {
	m := fixture.Load(t, "bookworm-kdump")
	var other string
	for _, kk := range fixture.Kernels() {
		if kk.Release != m.KernelRelease {
			if p, _ := filepath.Glob(filepath.Join(kk.Dir, "test-modules-*", m.TestModule.Module+".ko")); len(p) > 0 {
				other = p[0]
				break
			}
		}
	}
	if other == "" {
		t.Skip("no test module of another kernel")
	}
	dir := t.TempDir()
	b, err := os.ReadFile(other)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, m.TestModule.Module+".ko"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	k := testkernel.Open(t, m, textDump(m))
	rep, err := forensics.Run(k, forensics.Options{Checks: []string{"text"}, ModuleDirs: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	var mismatch, noKo bool
	for _, f := range rep.Findings {
		if f.Severity > forensics.Info {
			t.Errorf("%s %s", f.Severity, f.Summary)
		}
		if f.Kind != "module-text" {
			continue
		}
		t.Logf("%s\n  %s", f.Summary, strings.Join(f.Evidence, "\n  "))
		switch {
		case strings.HasPrefix(f.Summary, "text of "):
			t.Errorf("a module was compared: %s", f.Summary)
		case strings.Contains(f.Summary, "not checked: .ko does not match: "+m.TestModule.Module):
			mismatch = true
		case strings.Contains(f.Summary, "not checked: no .ko: "):
			noKo = !strings.Contains(f.Summary, m.TestModule.Module)
		}
	}
	if !mismatch || !noKo {
		t.Errorf("mismatched .ko reported %v, modules without .ko %v", mismatch, noKo)
	}
	for _, c := range rep.Checks {
		if c.Check == "text" && !strings.Contains(c.Note, "not checked: .ko does not match") {
			t.Errorf("text note %q does not say the .ko does not match", c.Note)
		}
	}
}

// On the rootkit fixture the listed modules' text is clean: the findings
// above info are the rootkit's three, all in kernel text; the hidden
// rootkit, whose .ko is not given, is not checked and said so.
func TestModuleTextRootkit(t *testing.T) {
	m, err := fixture.LoadManifest("bookworm-rootkit")
	if err != nil {
		t.Skipf("no rootkit fixture: %v", err)
	}
	rep, res := runModText(t, m, textDump(m))
	t.Logf("text: %s, %d bytes, note %q", res.Status, res.Checked, res.Note)
	k := testkernel.Open(t, m, textDump(m))
	mods, _ := k.Modules()
	high, compared, hidden := 0, false, false
	for _, f := range rep.Findings {
		if f.Check != "text" {
			continue
		}
		if f.Severity > forensics.Info {
			high++
			for _, mo := range mods {
				if _, in := mo.Contains(f.Addr); in {
					t.Errorf("finding in listed module %s: %s", mo.Name, f.Summary)
				}
			}
			continue
		}
		if f.Kind != "module-text" {
			continue
		}
		t.Logf("%s", f.Summary)
		switch {
		case strings.HasPrefix(f.Summary, "text of "):
			compared = !strings.Contains(f.Summary, m.Rootkit.Module)
			for _, mo := range mods {
				if !strings.Contains(f.Summary, " "+mo.Name) {
					t.Errorf("listed module %s not compared", mo.Name)
				}
			}
		case strings.Contains(f.Summary, "not checked: no .ko: "+m.Rootkit.Module+" (hidden)"):
			hidden = true
		default:
			t.Errorf("unexpected: %s", f.Summary)
		}
	}
	if high != 3 || !compared || !hidden {
		t.Errorf("%d findings above info (want the rootkit's 3), listed modules compared %v, hidden one not checked %v", high, compared, hidden)
	}
}

// BenchmarkModuleTextCheck times the text check with the modules' .ko
// (the kernel's and every module's text) on the 1 GiB ELF kdump.
func BenchmarkModuleTextCheck(b *testing.B) {
	m := fixture.Load(b, "bookworm-kdump")
	k := testkernel.Open(b, m, elfDump(b, m))
	opts := forensics.Options{Checks: []string{"text"}, ModuleDirs: moduleDirs(m)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := forensics.Run(k, opts); err != nil {
			b.Fatal(err)
		}
	}
}
