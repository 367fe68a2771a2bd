package symbolize_test

import (
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/symbolize"
	"github.com/vmleak/vmleak/walk"
)

// Code names kernel functions (also past a label of size 0), module code by
// the module's kallsyms, and module space no module holds as such; Stack
// tells that space called from do_one_initcall as freed init text.
func TestCodeAndStack(t *testing.T) {
	firstDumps(t, func(t *testing.T, m *fixture.Manifest, d fixture.DumpFile) {
		k, s := open(t, m, d)
		sym := func(name string) uint64 {
			a, err := k.Symbol(name)
			if err != nil {
				t.Fatal(err)
			}
			return a
		}
		if f := s.Code(sym("kmem_cache_free") + 4); f.Kind != symbolize.FrameKernel || !f.Text || f.Symbol != "kmem_cache_free+0x4" {
			t.Errorf("kmem_cache_free+4: %+v", f)
		}
		if f := s.Code(sym("slab_caches")); f.Kind != symbolize.FrameKernel || f.Text {
			t.Errorf("slab_caches is data, not code: %+v", f)
		}
		if ssv, err := k.Symbol("secondary_startup_64_no_verify"); err == nil {
			// The padding after secondary_startup_64's end lies in no sized
			// symbol: it is named by the last label of size 0 before it,
			// secondary_startup_64_no_verify (5.10, 6.1) or common_startup_64
			// (6.12, 7.x), inside that function (head_64.S).
			ss, err := k.Types().Symbol("secondary_startup_64")
			if err != nil {
				t.Fatal(err)
			}
			past := sym("secondary_startup_64") + ss.Size
			f := s.Code(past)
			label, _, _ := strings.Cut(f.Symbol, "+")
			ls, err := k.Types().Symbol(label)
			if f.Kind != symbolize.FrameKernel || !f.Text || err != nil || ls.Size != 0 || sym(label) < ssv || sym(label) > past {
				t.Errorf("past a label of size 0 (%#x): %s: %s", past, f.Kind, f.What)
			}
		}
		mods, err := k.Modules()
		if err != nil || len(mods) == 0 {
			t.Fatalf("modules: %d, %v", len(mods), err)
		}
		syms, err := k.ModuleKallsyms(mods[0])
		if err != nil {
			t.Fatal(err)
		}
		named := false
		for _, ks := range syms {
			if ks.Type != 't' && ks.Type != 'T' {
				continue
			}
			f := s.Code(ks.Addr)
			if f.Kind != symbolize.FrameModule || f.Module != mods[0].Name || !f.Text || !strings.HasPrefix(f.Symbol, ks.Name+"+0x0") {
				t.Errorf("%s [%s] at %#x: %+v", ks.Name, mods[0].Name, ks.Addr, f)
			}
			named = true
			break
		}
		if !named {
			t.Errorf("module %s has no function in its kallsyms", mods[0].Name)
		}

		w, err := walk.New(k)
		if err != nil {
			t.Fatal(err)
		}
		region := w.MM().Modules()
		gone := region.Start + region.Size - 0x10000 // the top of module space: no module there
		if f := s.Code(gone); f.Kind != symbolize.FrameModuleSpace {
			t.Fatalf("%#x: %+v, want module space", gone, f)
		}
		st := s.Stack([]uint64{sym("kmem_cache_free") + 8, gone + 0x20, gone, sym("do_one_initcall") + 0x59, sym("do_init_module") + 0x4a})
		for i, want := range []string{symbolize.FrameKernel, symbolize.FrameFreedInit, symbolize.FrameFreedInit, symbolize.FrameKernel, symbolize.FrameKernel} {
			if st[i].Kind != want {
				t.Errorf("frame %d: %s (%s), want %s", i, st[i].Kind, st[i].What, want)
			}
		}
		if !strings.Contains(st[1].What, "do_init_module") {
			t.Errorf("freed init text without its caller: %s", st[1].What)
		}
		if f := s.Caller(gone, []uint64{gone, sym("do_one_initcall") + 0x59}); f.Kind != symbolize.FrameFreedInit {
			t.Errorf("caller in freed init text: %+v", f)
		}
		if st := s.Stack([]uint64{gone, sym("kmem_cache_free")}); st[0].Kind != symbolize.FrameModuleSpace {
			t.Errorf("module space not called from do_one_initcall: %+v", st[0])
		}
	})
}

// A frame prints as crash's sym names it, and its source line once known.
func TestFrameString(t *testing.T) {
	for _, tc := range []struct {
		f    symbolize.Frame
		want string
	}{
		{symbolize.Frame{Addr: 0xffffffff8136c189, Kind: symbolize.FrameKernel, Symbol: "__d_alloc+0x29"}, "__d_alloc+0x29"},
		{symbolize.Frame{Addr: 0xffffffff8136c189, Kind: symbolize.FrameKernel, Symbol: "__d_alloc+0x29", File: "fs/dcache.c", Line: 1776}, "__d_alloc+0x29 fs/dcache.c:1776"},
		{symbolize.Frame{Addr: 0xffffffffc025e235, Kind: symbolize.FrameModule, Symbol: "grow_by+0x35", Module: "vmleak_test", File: "/tmp/m/vmleak_test.c", Line: 74},
			"grow_by+0x35 [vmleak_test] /tmp/m/vmleak_test.c:74"},
		{symbolize.Frame{Addr: 0xffffffffc04c7010, Kind: symbolize.FrameFreedInit}, "0xffffffffc04c7010 (freed-init-text)"},
	} {
		if have := tc.f.String(); have != tc.want {
			t.Errorf("have %q, want %q", have, tc.want)
		}
	}
}
