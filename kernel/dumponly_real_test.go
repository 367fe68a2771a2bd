package kernel_test

import (
	"bytes"
	"debug/elf"
	"errors"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/testkernel"
	"github.com/vmleak/vmleak/kdwarf"
	"github.com/vmleak/vmleak/kernel"
)

func openDumpOnly(t *testing.T, m *fixture.Manifest, d fixture.DumpFile) *kernel.Kernel {
	t.Helper()
	k, err := kernel.Open(m.DumpPath(d), kernel.Options{NoVmlinux: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// Types and symbols read from the dump are the vmlinux's: the same BTF,
// the same layout, and kallsyms' symbols at the vmlinux's addresses, in
// its sections, with sizes that bound the vmlinux's.
func TestDumpOnlySymbolsMatchVmlinux(t *testing.T) {
	for _, name := range []string{"bullseye-qemu", "bookworm-qemu", "trixie-qemu", "sid-qemu"} {
		t.Run(name, func(t *testing.T) {
			m := fixture.Load(t, name)
			kv := testkernel.Open(t, m, m.Dumps[0])
			kd := openDumpOnly(t, m, m.Dumps[0])
			if !kd.FromDump() || kv.FromDump() {
				t.Fatalf("FromDump: dump-only %v, vmlinux %v", kd.FromDump(), kv.FromDump())
			}
			if kd.Layout() != kv.Layout() {
				t.Errorf("layout %+v, with the vmlinux %+v", kd.Layout(), kv.Layout())
			}
			btf := kv.Types().ELF().Section(".BTF")
			raw, err := btf.Data()
			if err != nil {
				t.Fatal(err)
			}
			o := kd.Origin()
			mem, err := kd.ReadBTF(o.BTFAddr, o.BTFAddr+o.BTFSize)
			if err != nil || !bytes.Equal(mem, raw) {
				t.Errorf("BTF from the dump (%d bytes at %#x, %v) is not the vmlinux's .BTF (%d bytes)", o.BTFSize, o.BTFAddr, err, len(raw))
			}
			for _, s := range []string{"init_task", "slab_caches", "runqueues", "__per_cpu_offset", "__per_cpu_start", "linux_banner", "page_offset_base", "init_top_pgt", "_stext", "schedule"} {
				a, err1 := kd.Symbol(s)
				b, err2 := kv.Symbol(s)
				if err1 != nil || err2 != nil || a != b {
					t.Errorf("%s: dump-only %#x %v, vmlinux %#x %v", s, a, err1, b, err2)
				}
			}
			syms, err := kd.Types().Symbols()
			if err != nil {
				t.Fatal(err)
			}
			// .symtab by name and value: several locals share a name.
			all, err := kv.Types().ELF().Symbols()
			if err != nil {
				t.Fatal(err)
			}
			type nv struct {
				name  string
				value uint64
			}
			inSymtab := map[string]bool{}
			byNV := map[nv]kdwarf.Symbol{}
			ef := kv.Types().ELF()
			for _, e := range all {
				inSymtab[e.Name] = true
				if _, dup := byNV[nv{e.Name, e.Value}]; dup || e.Section >= elf.SHN_LORESERVE || int(e.Section) >= len(ef.Sections) {
					continue
				}
				v := kdwarf.Symbol{Name: e.Name, Value: e.Value, Size: e.Size, Section: ef.Sections[e.Section].Name}
				switch elf.ST_TYPE(e.Info) {
				case elf.STT_FUNC:
					v.Kind = kdwarf.SymFunc
				case elf.STT_OBJECT:
					v.Kind = kdwarf.SymObject
				}
				byNV[nv{e.Name, e.Value}] = v
			}
			var n, value, section, kind, size, sized int
			var bad []string
			kinds := map[string]int{}
			for _, s := range syms {
				if !inSymtab[s.Name] {
					continue // not in .symtab
				}
				n++
				v, ok := byNV[nv{s.Name, s.Value}]
				if !ok {
					continue
				}
				value++
				if v.Section == s.Section {
					section++
				} else if len(bad) < 5 {
					bad = append(bad, s.Name+" in "+s.Section+", vmlinux "+v.Section)
				}
				if v.Kind == s.Kind {
					kind++
				} else {
					kinds[v.Kind.String()+"->"+s.Kind.String()+" "+s.Section]++
				}
				if v.Size > 0 {
					sized++
					if s.SizeBound && s.Size >= v.Size {
						size++
					}
				}
			}
			t.Logf("kinds that differ: %v", kinds)
			t.Logf("%d kallsyms symbols in .symtab: %d at its address, %d in its section (e.g. %s), %d of its kind; %d of %d sized ones bound its size",
				n, value, section, strings.Join(bad, "; "), kind, size, sized)
			pct := func(a, b int) float64 { return 100 * float64(a) / float64(max(b, 1)) }
			if n < 50000 || pct(value, n) < 99 || pct(section, value) < 99.5 || pct(kind, value) < 98.5 || pct(size, sized) < 99.9 {
				t.Errorf("symbols from kallsyms stray from the vmlinux's: %.2f%% values, %.2f%% sections, %.2f%% kinds, %.2f%% size bounds",
					pct(value, n), pct(section, value), pct(kind, value), pct(size, sized))
			}
			// Per-CPU variables.
			for _, s := range []string{"runqueues", "cpu_number", "current_task", "this_cpu_off"} {
				a, err1 := kd.Types().Symbol(s)
				b, err2 := kv.Types().Symbol(s)
				if errors.Is(err2, kdwarf.ErrNotFound) {
					continue
				}
				if err1 != nil || a.Value != b.Value || a.Section != kdwarf.PerCPUSection || a.Size < b.Size {
					t.Errorf("per-CPU %s: dump-only %+v %v, vmlinux %+v %v", s, a, err1, b, err2)
				}
			}
			// Before 6.0 the kallsyms tables were found in the image.
			if found := kd.KallsymsFound(); kd.Info().Symbols["kallsyms_names"] == 0 {
				if len(found) < 6 {
					t.Errorf("kallsyms tables found: %v", found)
				}
				for s, va := range found {
					if want, err := kv.Symbol(s); err != nil || va != want {
						t.Errorf("%s found at %#x, the vmlinux says %#x (%v)", s, va, want, err)
					}
				}
			} else if found != nil {
				t.Errorf("kallsyms searched for though VMCOREINFO has it: %v", found)
			}
			// What reads the vmlinux file says it needs it.
			va, _ := kd.Symbol("linux_banner")
			if _, err := kd.ImageBytes(va, 16); !errors.Is(err, kernel.ErrNeedsVmlinux) {
				t.Errorf("ImageBytes without a vmlinux: %v", err)
			}
		})
	}
}

// Reading the BTF from a page the dump left out is a clear error.
func TestDumpOnlyBTFMissingPage(t *testing.T) {
	m := fixture.Load(t, "bookworm-kdump")
	var d fixture.DumpFile
	for _, x := range m.Dumps {
		if x.File == "kdump.lzo" {
			d = x
		}
	}
	if d.File == "" {
		fixture.Missing(t, "bookworm-kdump/kdump.lzo", "bookworm-kdump")
	}
	k := openDumpOnly(t, m, d)
	// A free page, excluded at dump level 31.
	var buf [8]byte
	for pa := uint64(64 << 20); pa < 512<<20; pa += 4096 {
		va := k.Layout().PageOffset + pa
		if err := k.ReadVirt(buf[:], va); err == nil || !kernel.IsMissing(err) {
			continue
		}
		_, err := k.ReadBTF(va-4096, va+4096)
		if err == nil || !kernel.IsMissing(err) || !strings.Contains(err.Error(), "reading the kernel's BTF (8192 bytes at") {
			t.Errorf("BTF over a missing page: %v", err)
		}
		return
	}
	t.Fatal("no page missing from a -d 31 dump")
}
