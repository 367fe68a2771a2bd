package kernel_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/kdwarf"
	"github.com/vmleak/vmleak/kernel"
)

// moduleTypes are types defined by a module's own sources, to look up in
// its DWARF; every module's DWARF also has struct module (__this_module).
var moduleTypes = map[string]string{
	"virtio_pci":  "struct virtio_pci_device",
	"virtio_blk":  "struct virtio_blk",
	"virtio_ring": "struct vring_virtqueue",
	"qemu_fw_cfg": "struct fw_cfg_sysfs_entry",
}

func TestModuleDebuginfo(t *testing.T) {
	eachFixtureKernel(t, func(t *testing.T, m *fixture.Manifest, k *kernel.Kernel) {
		dbgDir := m.Path(m.DebuginfoDir)                // <root>/usr/lib/debug/lib/modules/<release>
		root := m.Path(filepath.Dir(m.KernelJSON))      // <root>: the -dbg layout
		dirs := []string{root}                          // searched as a Debian -dbg root
		vmlinuxModule, err := k.TypeOf("struct module") // for comparing sizes
		if err != nil {
			t.Fatal(err)
		}
		mods, err := k.Modules()
		if err != nil {
			t.Fatal(err)
		}
		opened, outOfTree := 0, 0
		for _, mod := range mods {
			if m.TestModule != nil && mod.Name == m.TestModule.Module {
				testOutOfTree(t, m, k, mod, dbgDir)
				outOfTree++
				continue
			}
			md, err := k.OpenModuleDebuginfo(mod, dirs)
			if err != nil {
				t.Errorf("%s: %v", mod.Name, err)
				continue
			}
			opened++
			checkModuleDebug(t, k, md, vmlinuxModule.Strip())
			md.Close()
		}
		if opened == 0 {
			t.Error("no module debuginfo opened")
		}
		if m.TestModule != nil && outOfTree != 1 {
			t.Errorf("the test module %s is loaded %d times, want once: its debuginfo went unchecked", m.TestModule.Module, outOfTree)
		}
		t.Logf("%s: debuginfo of %d of %d modules found and checked", m.Name, opened, len(mods))

		// The -dbg directory itself, as a plain tree.
		if len(mods) > 0 {
			mod := mods[len(mods)-1]
			p, err := kernel.FindModuleDebuginfo(k.Release(), mod.Name, nil, []string{dbgDir})
			if err != nil || !strings.HasPrefix(p, dbgDir) {
				t.Errorf("%s in the plain tree %s: %q, %v", mod.Name, dbgDir, p, err)
			}
		}
	})
}

func checkModuleDebug(t *testing.T, k *kernel.Kernel, md *kernel.ModuleDebug, vmlinuxModule *kdwarf.Type) {
	t.Helper()
	name := md.Module.Name
	if md.BuildIDErr != nil {
		t.Errorf("%s: build-id: %v", name, md.BuildIDErr)
	} else if !bytes.Equal(md.BuildID, md.File.BuildID()) {
		t.Errorf("%s: build-id %x in the dump, %x in %s", name, md.BuildID, md.File.BuildID(), md.Path)
	}
	if md.SectionsFrom != "sect_attrs" {
		t.Errorf("%s: sections from %q", name, md.SectionsFrom)
	}
	if _, ok := md.Sections[".text"]; !ok {
		t.Errorf("%s: no .text in %v", name, md.Sections)
	}
	// The fallback: section addresses inferred from kallsyms agree.
	inferred, err := md.KallsymsSections()
	if err != nil {
		t.Errorf("%s: %v", name, err)
	}
	for sec, a := range inferred {
		if have, ok := md.Sections[sec]; !ok || have != a {
			t.Errorf("%s: section %s at %#x from kallsyms, %#x (%v) from sect_attrs", name, sec, a, have, ok)
		}
	}
	if _, ok := inferred[".text"]; !ok {
		t.Errorf("%s: kallsyms gave no .text (%v)", name, inferred)
	}
	// Every function of the module's kallsyms that its .symtab has once.
	ks, err := k.ModuleKallsyms(md.Module)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	count := map[string]int{}
	for _, s := range ks {
		count[s.Name]++
	}
	funcs, data, bad := 0, 0, 0
	for _, s := range ks {
		if count[s.Name] != 1 {
			continue
		}
		sym, err := md.File.Symbol(s.Name)
		if err != nil || sym.Section == "" {
			continue
		}
		addr, err := md.SymbolAddr(s.Name)
		switch {
		case err != nil:
			t.Errorf("%s: SymbolAddr(%s): %v", name, s.Name, err)
			bad++
		case addr != s.Addr:
			t.Errorf("%s: SymbolAddr(%s) = %#x, kallsyms %#x (section %s)", name, s.Name, addr, s.Addr, sym.Section)
			bad++
		case sym.Kind == kdwarf.SymFunc:
			// The section and offset a source line is looked up at.
			if sec, off, ok := md.SectionOf(s.Addr); !ok || sec != sym.Section || off != sym.Value {
				t.Errorf("%s: SectionOf(%s at %#x) = %s+%#x (%v), .symtab %s+%#x", name, s.Name, s.Addr, sec, off, ok, sym.Section, sym.Value)
				bad++
			}
			funcs++
		default:
			data++
		}
	}
	if funcs == 0 {
		t.Errorf("%s: no function compared (%d kallsyms)", name, len(ks))
	}
	t.Logf("%s (%s): %d functions and %d other symbols at their kallsyms address, %d not", name, filepath.Base(md.Path), funcs, data, bad)

	if src := md.File.Source(); src != "dwarf" {
		t.Errorf("%s: types from %q", name, src)
	}
	st, err := md.File.Type("struct module")
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if st.Size != vmlinuxModule.Size {
		t.Errorf("%s: struct module is %d bytes in the module's DWARF, %d in vmlinux", name, st.Size, vmlinuxModule.Size)
	}
	if tn, ok := moduleTypes[name]; ok {
		ty, err := md.File.Type(tn)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		} else if ty.Size == 0 || len(ty.Members) == 0 {
			t.Errorf("%s: %s has size %d and %d members", name, tn, ty.Size, len(ty.Members))
		}
	}
}

// testOutOfTree checks the test module, which has no debuginfo package.
func testOutOfTree(t *testing.T, m *fixture.Manifest, k *kernel.Kernel, mod kernel.Module, dbgDir string) {
	t.Helper()
	_, err := k.OpenModuleDebuginfo(mod, []string{dbgDir})
	if !errors.Is(err, kernel.ErrNoDebuginfo) || !strings.Contains(err.Error(), mod.Name) {
		t.Errorf("%s without its directory: want ErrNoDebuginfo naming it, have %v", mod.Name, err)
	} else {
		t.Logf("%s without its directory: %v", mod.Name, err)
	}
	// The lab keeps its builds of the test modules in test-modules-<key>/.
	kos, _ := filepath.Glob(filepath.Join(m.Path(filepath.Dir(m.KernelJSON)), "test-modules-*", mod.Name+".ko"))
	if len(kos) == 0 {
		t.Fatalf("no test-modules-*/%s.ko next to %s", mod.Name, m.KernelJSON)
	}
	md, err := k.OpenModuleDebuginfo(mod, []string{dbgDir, filepath.Dir(kos[0])})
	if err != nil {
		t.Fatal(err)
	}
	defer md.Close()
	if !bytes.Equal(md.BuildID, md.File.BuildID()) {
		t.Errorf("%s: build-id %x in the dump, %x in %s", mod.Name, md.BuildID, md.File.BuildID(), md.Path)
	}
	addr, err := md.SymbolAddr("bss_objs")
	if err != nil {
		t.Fatal(err)
	}
	// The data region: mem[MOD_DATA] from 6.4, else the writable tail of
	// core_layout, [base+ro_after_init_size, base+size).
	r, ok := mod.Contains(addr)
	switch {
	case !ok:
		t.Fatalf("bss_objs at %#x is outside %s (%+v)", addr, mod.Name, mod.Ranges)
	case r.Kind == "core":
		ro, err := k.Object(mod.Addr, "struct module").Field("core_layout.ro_after_init_size").Uint()
		if err != nil {
			t.Fatal(err)
		}
		if addr < r.Base+ro {
			t.Errorf("bss_objs at %#x is in the read-only part of core (base %#x, ro_after_init_size %#x)", addr, r.Base, ro)
		}
	case r.Kind != "data":
		t.Errorf("bss_objs at %#x is in region %s", addr, r.Kind)
	}
	n := m.TestModule.BSS
	b := make([]byte, 8*n)
	if err := k.ReadVirt(b, addr); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		p := binary.LittleEndian.Uint64(b[8*i:])
		if p == 0 {
			t.Fatalf("bss_objs[%d] is NULL", i)
		}
		if i < 3 {
			s, err := k.ReadCString(p, 64)
			if want := fmt.Sprintf("VMLEAK-BSS %d", i); err != nil || s != want {
				t.Errorf("*bss_objs[%d] at %#x = %q, %v; want %q", i, p, s, err, want)
			}
		}
	}
	t.Logf("%s (%s): bss_objs at %#x holds %d kmalloc'ed objects", mod.Name, md.Path, addr, n)
}

func TestFindModuleDebuginfoShipped(t *testing.T) {
	kern := fixture.KernelOf(t, "trixie")
	_, err := kernel.FindModuleDebuginfo(kern.Release, "virtio_blk", nil, []string{kern.ModulesDir()})
	if !errors.Is(err, kernel.ErrNoDebuginfo) || !strings.Contains(err.Error(), "no DWARF") {
		t.Fatalf("a shipped module: want ErrNoDebuginfo saying it has no DWARF, have %v", err)
	}
	t.Log(err)
	// '-' and '_' are one: the virtio-rng module ships as virtio-rng.ko.
	p, err := kernel.FindModuleDebuginfo(kern.Release, "virtio_rng", nil, []string{kern.Dir})
	if err != nil || filepath.Base(p) != "virtio-rng.ko" {
		t.Errorf("virtio_rng: %q, %v", p, err)
	}
	// A build-id that is not the file's is refused.
	_, err = kernel.FindModuleDebuginfo(kern.Release, "virtio_blk", []byte{1, 2, 3, 4}, []string{kern.Dir})
	if !errors.Is(err, kernel.ErrNoDebuginfo) || !strings.Contains(err.Error(), "build-id") {
		t.Errorf("wrong build-id: %v", err)
	}
}
