package symbolize_test

import (
	"debug/elf"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/oracle"
	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/stackdepot"
	"github.com/vmleak/vmleak/symbolize"
	"github.com/vmleak/vmleak/walk"
)

// openWithDebuginfo is open with the fixture's kernel directory as a
// debuginfo root: Debian's -dbg tree and the test module's .ko are there.
func openWithDebuginfo(t *testing.T, m *fixture.Manifest, d fixture.DumpFile) (*kernel.Kernel, *walk.Walker, *symbolize.Symbolizer) {
	t.Helper()
	root := m.Path(filepath.Dir(m.KernelJSON))
	k, err := kernel.Open(m.DumpPath(d), kernel.Options{Vmlinux: m.Vmlinux(), DebugDirs: []string{root}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	w, err := walk.New(k)
	if err != nil {
		t.Fatal(err)
	}
	s := symbolize.New(w)
	t.Cleanup(func() { s.Close() })
	return k, w, s
}

// On the slub_debug fixture, the source line of every distinct code frame
// of every allocation track and its saved stack (kernel, the test module
// and in-tree modules) is the line binutils' addr2line gives for the
// instruction before the return address: for the kernel at its link-time
// address (less the KASLR offset the dump's VMCOREINFO gives), for a
// module at its offset in its section of the module's debuginfo, that
// offset found from the module's kallsyms symbol and the .ko's symbol
// table, not from the section addresses the dump keeps (which Line uses).
func TestLinesAgainstAddr2line(t *testing.T) {
	m := fixture.Load(t, "bookworm-slubdbg")
	d := m.Dumps[0]
	k, w, s := openWithDebuginfo(t, m, d)
	depot, err := stackdepot.New(k)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	var frames []symbolize.Frame
	add := func(f symbolize.Frame) {
		if f.Text && !seen[uint64(f.Addr)] && (f.Kind == symbolize.FrameKernel || f.Kind == symbolize.FrameModule) {
			seen[uint64(f.Addr)] = true
			frames = append(frames, s.Line(f))
		}
	}
	stacks := map[uint32]bool{}
	err = w.Tracks("", false, func(o walk.Object, tr walk.Tracks, err error) bool {
		if err != nil || tr.Alloc.Addr == 0 {
			return true
		}
		add(s.Code(tr.Alloc.Addr))
		if h := tr.Alloc.Handle; h != 0 && !stacks[h] {
			stacks[h] = true
			st, err := depot.Stack(h)
			if err == nil {
				for _, f := range s.Stack(st) {
					add(f)
				}
			}
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(frames, func(i, j int) bool { return frames[i].Addr < frames[j].Addr })

	kaslr := kernelOffset(t, k)
	var kaddrs []uint64
	var khave []oracle.SourceLine
	type modKey struct{ path, section string }
	maddrs := map[modKey][]uint64{}
	mhave := map[modKey][]oracle.SourceLine{}
	perModule := map[string]int{}
	mods, err := k.Modules()
	if err != nil {
		t.Fatal(err)
	}
	noLine := 0
	for _, f := range frames {
		if f.Line == 0 {
			noLine++
		}
		have := oracle.SourceLine{File: f.File, Line: f.Line}
		if f.Kind == symbolize.FrameKernel {
			kaddrs = append(kaddrs, uint64(f.Addr)-1-kaslr)
			khave = append(khave, have)
			continue
		}
		sec, off := moduleSectionOffset(t, k, mods, f)
		key := modKey{sec.path, sec.name}
		maddrs[key] = append(maddrs[key], off-1)
		mhave[key] = append(mhave[key], have)
		perModule[f.Module]++
	}
	bad, decided := oracle.CompareLines(t, m.Vmlinux(), "", kaddrs, khave)
	for key, addrs := range maddrs {
		b, _ := oracle.CompareLines(t, key.path, key.section, addrs, mhave[key])
		bad = append(bad, b...)
	}
	for i, b := range bad {
		if i == 20 {
			t.Errorf("... and %d more", len(bad)-i)
			break
		}
		t.Error(b)
	}
	if noLine > len(frames)/20 {
		t.Errorf("%d of %d frames have no line", noLine, len(frames))
	}
	// The test module allocates its cache's objects from grow_by;
	// qemu_fw_cfg its sysfs entries when it loads.
	if perModule[m.TestModule.Module] == 0 || perModule["qemu_fw_cfg"] == 0 {
		t.Errorf("module frames %v: want the test module %s and the in-tree qemu_fw_cfg", perModule, m.TestModule.Module)
	}
	t.Logf("%d distinct frames: %d kernel (llvm-addr2line decided %d), module %v; %d without a line", len(frames), len(kaddrs), decided, perModule, noLine)
}

// kernelOffset is the KASLR offset as VMCOREINFO states it.
func kernelOffset(t *testing.T, k *kernel.Kernel) uint64 {
	t.Helper()
	if i := k.Info(); i != nil && i.HasKernelOffset {
		return i.KernelOffset
	}
	t.Fatal("the dump's VMCOREINFO has no KERNELOFFSET")
	return 0
}

type modSection struct{ path, name string }

// moduleSectionOffset is where module frame f lies in the module's
// debuginfo: the section of its kallsyms symbol in the .ko's symbol table,
// and the symbol's value there plus f's offset from it.
func moduleSectionOffset(t *testing.T, k *kernel.Kernel, mods []kernel.Module, f symbolize.Frame) (modSection, uint64) {
	t.Helper()
	name, offHex, ok := strings.Cut(f.Symbol, "+")
	off, err := strconv.ParseUint(strings.TrimPrefix(offHex, "0x"), 16, 64)
	if !ok || err != nil {
		t.Fatalf("frame %s: symbol %q", f, f.Symbol)
	}
	var mod *kernel.Module
	for i := range mods {
		if mods[i].Name == f.Module {
			mod = &mods[i]
		}
	}
	if mod == nil {
		t.Fatalf("frame %s: no module %s", f, f.Module)
	}
	md, err := k.OpenModuleDebuginfo(*mod, nil)
	if err != nil {
		t.Fatal(err)
	}
	path := md.Path
	md.Close()
	ef, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	syms, err := ef.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if s.Name == name && elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Section < elf.SHN_LORESERVE {
			return modSection{path, ef.Sections[s.Section].Name}, s.Value + off
		}
	}
	t.Fatalf("frame %s: no function %s in %s", f, name, path)
	return modSection{}, 0
}

// whatis gives the source line of a code address itself (not of the call
// before it): a kernel function's and a module function's, as addr2line
// does; data has none.
func TestIdentifyLines(t *testing.T) {
	m := fixture.Load(t, "bookworm-slubdbg")
	k, _, s := openWithDebuginfo(t, m, m.Dumps[0])
	sym, err := k.Symbol("kmem_cache_free")
	if err != nil {
		t.Fatal(err)
	}
	kaslr := kernelOffset(t, k)
	r := s.Identify(sym + 0x10)
	if r.Kind != symbolize.KindSymbol || r.Line == 0 || !strings.Contains(r.What, fmt.Sprintf(" at %s:%d", r.File, r.Line)) {
		t.Errorf("kmem_cache_free+0x10: %+v", r)
	}
	want := oracle.Addr2line(t, m.Vmlinux(), "", []uint64{sym + 0x10 - kaslr})
	if !want[0].Agrees(r.File, r.Line) {
		t.Errorf("kmem_cache_free+0x10: %s:%d, addr2line %s", r.File, r.Line, want[0])
	}
	if data, err := k.Symbol("slab_caches"); err != nil {
		t.Fatal(err)
	} else if r := s.Identify(data); r.Line != 0 {
		t.Errorf("slab_caches has a source line: %+v", r)
	}

	mods, err := k.Modules()
	if err != nil {
		t.Fatal(err)
	}
	for _, mod := range mods {
		if mod.Name != m.TestModule.Module {
			continue
		}
		syms, err := k.ModuleKallsyms(mod)
		if err != nil {
			t.Fatal(err)
		}
		for _, ks := range syms {
			if ks.Name != "grow_by" {
				continue
			}
			r := s.Identify(ks.Addr + 0x10)
			f := symbolize.Frame{Kind: symbolize.FrameModule, Module: mod.Name, Symbol: "grow_by+0x10"}
			sec, off := moduleSectionOffset(t, k, mods, f)
			want := oracle.Addr2line(t, sec.path, sec.name, []uint64{off})
			if r.Kind != symbolize.KindModule || r.Line == 0 || !want[0].Agrees(r.File, r.Line) {
				t.Errorf("grow_by+0x10 [%s]: %s:%d (%s), addr2line %s", mod.Name, r.File, r.Line, r.What, want[0])
			}
			return
		}
		t.Fatalf("no grow_by in %s's kallsyms", mod.Name)
	}
	t.Fatalf("test module %s not loaded", m.TestModule.Module)
}
