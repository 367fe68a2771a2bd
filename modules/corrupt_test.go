package modules_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/testkernel"
	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/modules"
)

// patchable is the bookworm-qemu ELF dump (physical addresses map to file
// offsets directly), read as it is and reopened with words overwritten.
type patchable struct {
	m    *fixture.Manifest
	path string
	good *kernel.Kernel
	rep  *modules.Report
}

func loadPatchable(t *testing.T) *patchable {
	t.Helper()
	m := fixture.Load(t, "bookworm-qemu")
	d := m.Dumps[0]
	if d.Format != "elf" {
		t.Fatalf("want the ELF dump first, have %s", d.File)
	}
	k := testkernel.Open(t, m, d)
	rep, err := modules.Read(k, modules.Options{SkipDebuginfo: true})
	if err != nil {
		t.Fatal(err)
	}
	return &patchable{m: m, path: m.DumpPath(d), good: k, rep: rep}
}

// open reads the dump with each 8-byte word at a kernel virtual address
// replaced.
func (p *patchable) open(t *testing.T, words map[uint64]uint64) *modules.Report {
	t.Helper()
	k := testkernel.OpenPatched(t, p.m, p.path, p.good, words)
	rep, err := modules.Read(k, modules.Options{SkipDebuginfo: true})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// field is the address of a member of the struct module of a module.
func (p *patchable) field(t *testing.T, name, path string) uint64 {
	t.Helper()
	i := slices.IndexFunc(p.rep.Modules, func(m modules.Module) bool { return m.Name == name })
	if i < 0 {
		t.Fatalf("no module %s", name)
	}
	v := p.good.Object(uint64(p.rep.Modules[i].Addr), "struct module").Field(path)
	if err := v.Err(); err != nil {
		t.Fatal(err)
	}
	return v.Addr()
}

// with is the word at va with its low size bytes replaced by v.
func (p *patchable) with(t *testing.T, va uint64, size int, v uint64) uint64 {
	t.Helper()
	w, err := p.good.ReadPtr(va)
	if err != nil {
		t.Fatal(err)
	}
	mask := ^uint64(0) << (8 * size)
	return w&mask | v&^mask
}

func module(t *testing.T, rep *modules.Report, name string) modules.Module {
	t.Helper()
	i := slices.IndexFunc(rep.Modules, func(m modules.Module) bool { return m.Name == name })
	if i < 0 {
		t.Fatalf("no module %s in %d modules", name, len(rep.Modules))
	}
	return rep.Modules[i]
}

func enumValue(t *testing.T, k *kernel.Kernel, name string) uint64 {
	t.Helper()
	v, err := k.Types().Enumerator(name)
	if err != nil {
		t.Fatal(err)
	}
	return uint64(v)
}

// Real dumps with one field overwritten: each reads as the kernel would
// print it, and a field that cannot be read makes that module's report
// partial while every other module reads whole.
func TestPatchedDumps(t *testing.T) {
	p := loadPatchable(t)
	const test = "vmleak_test"
	state := p.field(t, test, "state")
	maskVA, err := p.good.Symbol("tainted_mask")
	if err != nil {
		t.Fatal(err)
	}
	flagsVA, err := p.good.Symbol("taint_flags")
	if err != nil {
		t.Fatal(err)
	}
	flagSize, err := p.good.SizeOf("struct taint_flag")
	if err != nil {
		t.Fatal(err)
	}
	kp := p.good.Object(p.field(t, test, "kp"), "struct kernel_param *")
	kp0, err := kp.Ptr()
	if err != nil {
		t.Fatal(err)
	}
	opsVA := kp.Index(0).Field("ops").Addr()
	unmapped := uint64(0xffffc9ffff000000) // vmalloc space no guest maps

	for _, tc := range []struct {
		name  string
		words map[uint64]uint64
		check func(t *testing.T, rep *modules.Report)
	}{
		{"loading", map[uint64]uint64{state: p.with(t, state, 4, enumValue(t, p.good, "MODULE_STATE_COMING"))},
			func(t *testing.T, rep *modules.Report) {
				if m := module(t, rep, test); m.State != "Loading" || m.TaintFlags != "(OE+)" {
					t.Errorf("state %s, flags %s; want Loading, (OE+)", m.State, m.TaintFlags)
				}
			}},
		{"unloading", map[uint64]uint64{state: p.with(t, state, 4, enumValue(t, p.good, "MODULE_STATE_GOING"))},
			func(t *testing.T, rep *modules.Report) {
				if m := module(t, rep, test); m.State != "Unloading" || m.TaintFlags != "(OE-)" {
					t.Errorf("state %s, flags %s; want Unloading, (OE-)", m.State, m.TaintFlags)
				}
			}},
		{"a warning too", map[uint64]uint64{maskVA: 1<<9 | 1<<12 | 1<<13},
			func(t *testing.T, rep *modules.Report) {
				if want := "Tainted: G        W  OE     "; rep.Taint.String != want {
					t.Errorf("taint %q, want %q", rep.Taint.String, want)
				}
				if f := rep.Taint.Flags[0]; f.Bit != 9 || f.Char != "W" || f.Name != "WARN" || len(f.Modules) != 0 {
					t.Errorf("first flag %+v, want W (WARN) carried by no module", f)
				}
			}},
		{"a module taint the kernel lacks", map[uint64]uint64{maskVA: 1 << 12},
			func(t *testing.T, rep *modules.Report) {
				if !slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.Contains(w, "tainted_mask 0x1000 lacks") }) {
					t.Errorf("no warning about bit 13: %q", rep.Warnings)
				}
			}},
		{"taint letter escaped", map[uint64]uint64{flagsVA + 12*uint64(flagSize): p.with(t, flagsVA+12*uint64(flagSize), 1, 0x1b)},
			func(t *testing.T, rep *modules.Report) {
				if !strings.Contains(rep.Taint.String, `\x1bE`) || module(t, rep, test).TaintFlags != `(\x1bE)` {
					t.Errorf("taint %q, module flags %q: the escape byte is not escaped", rep.Taint.String, module(t, rep, test).TaintFlags)
				}
			}},
		{"unknown ops", map[uint64]uint64{opsVA: kp0 + 1},
			func(t *testing.T, rep *modules.Report) {
				m := module(t, rep, test)
				if ps := m.Params[0]; ps.Value != nil || !strings.HasPrefix(ps.Ops, "0x") || len(m.Errors) > 0 {
					t.Errorf("param %+v, errors %q; want an undecoded parameter named by its ops address", ps, m.Errors)
				}
			}},
		{"unreadable kp", map[uint64]uint64{p.field(t, test, "kp"): unmapped},
			func(t *testing.T, rep *modules.Report) {
				if m := module(t, rep, test); len(m.Errors) == 0 || !rep.Partial {
					t.Errorf("errors %q, partial %v", m.Errors, rep.Partial)
				}
			}},
		{"num_kp too large", map[uint64]uint64{p.field(t, test, "num_kp"): p.with(t, p.field(t, test, "num_kp"), 4, 1<<20)},
			func(t *testing.T, rep *modules.Report) {
				if m := module(t, rep, test); len(m.Params) != 0 || !slices.ContainsFunc(m.Errors, func(e string) bool { return strings.Contains(e, "num_kp") }) {
					t.Errorf("params %d, errors %q", len(m.Params), m.Errors)
				}
			}},
		{"broken source_list", map[uint64]uint64{p.field(t, "cdrom", "source_list"): 0xdead000000000100},
			func(t *testing.T, rep *modules.Report) {
				if m := module(t, rep, "cdrom"); len(m.Errors) == 0 || !rep.Partial {
					t.Errorf("cdrom: used by %q, errors %q, partial %v", m.UsedBy, m.Errors, rep.Partial)
				}
			}},
		{"broken modules list", map[uint64]uint64{p.field(t, "cdrom", "list"): 0xdead000000000100},
			func(t *testing.T, rep *modules.Report) {
				if !rep.Partial || !slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.Contains(w, "after module cdrom") }) {
					t.Errorf("partial %v, warnings %q", rep.Partial, rep.Warnings)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := p.open(t, tc.words)
			tc.check(t, rep)
			// Every module the intact dump has is still there, and every
			// one untouched reads the same.
			if len(rep.Modules) != len(p.rep.Modules) {
				t.Fatalf("%d modules, the intact dump has %d", len(rep.Modules), len(p.rep.Modules))
			}
			for i, m := range rep.Modules {
				if good := p.rep.Modules[i]; m.Name != good.Name || m.Addr != good.Addr || m.Size != good.Size || m.Base != good.Base {
					t.Errorf("module %d: %s %#x, intact %s %#x", i, m.Name, uint64(m.Addr), good.Name, uint64(good.Addr))
				}
			}
		})
	}
}
