package kernel_test

import (
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/testkernel"
	"github.com/vmleak/vmleak/kernel"
)

// eachFixtureKernel opens the first dump of every fixture: one per guest
// boot is enough for what is read from kernel memory, and keeps the run
// short (the dump formats are tested elsewhere).
func eachFixtureKernel(t *testing.T, fn func(t *testing.T, m *fixture.Manifest, k *kernel.Kernel)) {
	for _, m := range fixture.All(t) {
		t.Run(m.Name, func(t *testing.T) { fn(t, m, testkernel.Open(t, m, m.Dumps[0])) })
	}
}

// moduleFuncs are functions of loaded modules, present in 6.1, 6.12 and 7.2.
var moduleFuncs = map[string]string{
	"virtio_ring": "vring_create_virtqueue",
	"virtio":      "register_virtio_driver",
	"virtio_pci":  "vp_find_vqs",
	"virtio_blk":  "virtblk_probe",
	"qemu_fw_cfg": "fw_cfg_sysfs_probe",
}

func TestKallsyms(t *testing.T) {
	eachFixtureKernel(t, func(t *testing.T, m *fixture.Manifest, k *kernel.Kernel) {
		syms, err := k.Kallsyms()
		if err != nil {
			t.Fatal(err)
		}
		if len(syms) < 50000 {
			t.Fatalf("only %d kallsyms", len(syms))
		}
		count := map[string]int{}
		for _, s := range syms {
			count[s.Name]++
		}
		compared, agree, perCPU := 0, 0, 0
		var bad []string
		for _, s := range syms {
			if count[s.Name] != 1 {
				continue // a static name used in several files
			}
			vs, err := k.Types().Symbol(s.Name)
			if err != nil {
				continue
			}
			// k.Symbol shifts by KASLR what moves with the image and keeps
			// per-CPU offsets and absolute symbols as they are.
			want, err := k.Symbol(s.Name)
			if err != nil {
				t.Fatal(err)
			}
			if want == vs.Value {
				perCPU++
			}
			compared++
			if s.Addr == want {
				agree++
			} else if len(bad) < 5 {
				bad = append(bad, s.Name)
				t.Logf("%s %c: kallsyms %#x, vmlinux %#x (section %q)", s.Name, s.Type, s.Addr, want, vs.Section)
			}
		}
		t.Logf("%s: %d kallsyms, %d compared with .symtab (%d per-CPU or absolute), %d agree", m.Name, len(syms), compared, perCPU, agree)
		if compared < 1000 || agree*100 < compared*99 {
			t.Errorf("%d of %d compared symbols agree (need >= 1000 compared and 99%%)", agree, compared)
		}
		// Types: text symbols are t/T, and start_kernel is global text.
		startKernel := 0
		for _, s := range syms {
			if s.Name == "start_kernel" {
				startKernel++
				if s.Type != 'T' {
					t.Errorf("start_kernel has type %c", s.Type)
				}
			}
		}
		if startKernel != 1 {
			t.Errorf("start_kernel is in kallsyms %d times, want once", startKernel)
		}

		mods, err := k.Modules()
		if err != nil {
			t.Fatal(err)
		}
		checked := 0
		for _, mod := range mods {
			ks, err := k.ModuleKallsyms(mod)
			if err != nil {
				t.Errorf("%s: %v", mod.Name, err)
				continue
			}
			if len(ks) == 0 {
				t.Errorf("%s: no kallsyms", mod.Name)
			}
			// Every symbol lies in the module's memory, but for per-CPU
			// variables, which live in its per-CPU area.
			mv := k.Object(mod.Addr, "struct module")
			pcpu, _ := mv.Field("percpu").Ptr()
			pcpuSize, _ := mv.Field("percpu_size").Uint()
			for _, s := range ks {
				if _, ok := mod.Contains(s.Addr); !ok && s.Addr-pcpu >= pcpuSize {
					t.Errorf("%s: %s (%c) at %#x outside the module (ranges %+v)", mod.Name, s.Name, s.Type, s.Addr, mod.Ranges)
				}
			}
			fn, ok := moduleFuncs[mod.Name]
			if !ok {
				continue
			}
			found := false
			for _, s := range ks {
				if s.Name != fn {
					continue
				}
				found = true
				r, in := mod.Contains(s.Addr)
				if !in || (r.Kind != "text" && r.Kind != "core") || (s.Type != 't' && s.Type != 'T') {
					t.Errorf("%s: %s (%c) at %#x, not in the module's text (ranges %+v)", mod.Name, fn, s.Type, s.Addr, mod.Ranges)
				}
				if r.Kind == "core" {
					// 6.1: text is the first text_size bytes of core_layout.
					ts, err := k.Object(mod.Addr, "struct module").Field("core_layout.text_size").Uint()
					if err != nil {
						t.Fatal(err)
					}
					if s.Addr-r.Base >= ts {
						t.Errorf("%s: %s at %#x beyond core text (base %#x, text_size %#x)", mod.Name, fn, s.Addr, r.Base, ts)
					}
				}
			}
			if !found {
				t.Errorf("%s: %s not in its kallsyms (%d symbols)", mod.Name, fn, len(ks))
			}
			checked++
		}
		if checked == 0 {
			t.Errorf("none of %v loaded", moduleFuncs)
		}
		t.Logf("%s: module kallsyms checked for %d of %d modules", m.Name, checked, len(mods))
	})
}
