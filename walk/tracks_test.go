package walk_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/stackdepot"
	"github.com/vmleak/vmleak/symbolize"
	"github.com/vmleak/vmleak/walk"
)

// The flag comes from the kernel's own enum where it has one (v6.9+), from
// the #define of 5.10 and 6.1 otherwise; no fixture but slub_debug=U's has a
// cache that keeps tracks, and asking such a cache for tracks is ErrNoTracks.
func TestStoreUserFlag(t *testing.T) {
	for _, m := range fixture.All(t) {
		d := m.Dumps[0]
		t.Run(m.Name+"/"+d.File, func(t *testing.T) {
			_, w, c := census(t, m, d)
			flag, from, err := w.StoreUserFlag()
			if err != nil {
				t.Fatal(err)
			}
			want := uint64(0x10000) // include/linux/slab.h, 5.10 and 6.1
			if m.KernelAtLeast(6, 9) {
				want = 1 << 7 // _SLAB_STORE_USER in enum _slab_flag_bits of 6.12 and 7.x
			}
			if flag != want {
				t.Errorf("SLAB_STORE_USER = %#x (%s), want %#x", flag, from, want)
			}
			debug := m.SlubDebug()
			n := 0
			for _, cs := range c.Caches {
				ok, err := w.StoresUser(cs.Name)
				if err != nil {
					t.Fatal(err)
				}
				if ok != debug {
					t.Errorf("cache %s (flags %#x): stores users %v, want %v", cs.Name, cs.Flags, ok, debug)
				}
				if ok {
					n++
				}
			}
			if debug {
				return
			}
			err = w.Tracks(c.Caches[0].Name, false, func(walk.Object, walk.Tracks, error) bool { return true })
			if !errors.Is(err, walk.ErrNoTracks) {
				t.Errorf("tracks of %s: %v, want ErrNoTracks", c.Caches[0].Name, err)
			}
			err = w.Tracks("", false, func(o walk.Object, _ walk.Tracks, err error) bool {
				t.Errorf("a track of %s without slub_debug (%v)", o.Cache, err)
				return false
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
}

// With slub_debug=U (6.1, 6.12, 7.x) every allocated object of every cache
// has an allocation track: its caller is kernel or module code, its stack
// decodes, and the stack has the caller in it. The test module's objects
// were allocated by its grow_by, its leaked and .bss-referenced kmalloc
// objects by the functions the manifest names, each called from the init
// function, whose text was freed after load: freed init text, told from the
// stack — even where the second module, loaded after, reuses those pages.
// That module's objects were allocated by its leak function and, in its own
// cache, by its freed init function itself.
func TestTracksSlubdbg(t *testing.T) {
	var ms []*fixture.Manifest
	for _, m := range fixture.All(t) {
		if m.SlubDebug() {
			ms = append(ms, m)
		}
	}
	if len(ms) == 0 {
		t.Fatal("no slub_debug=U fixture")
	}
	for _, m := range ms {
		tm, peer := m.TestModule, m.PeerModule
		if tm == nil || peer == nil || tm.LeakSite == "" || tm.BSSSite == "" || peer.LeakSite == "" {
			t.Fatalf("%s: the slub_debug fixture lacks a test module or its named call sites (rebuild it)", m.Name)
		}
		for _, d := range m.Dumps {
			if d.Format == "flattened" {
				continue // the same memory as its rearranged twin
			}
			t.Run(m.Name+"/"+d.File, func(t *testing.T) { tracksSlubdbg(t, m, d) })
		}
	}
}

// fromInit tells a stack where the caller at va was called by freed init
// text, which do_one_initcall called. (The caller need not be frame 0: on
// 6.1 a kmalloc stack starts in __kmalloc.)
func fromInit(st []symbolize.Frame, va uint64) bool {
	for i, f := range st {
		if uint64(f.Addr) == va {
			return i+2 < len(st) && st[i+1].Kind == symbolize.FrameFreedInit && strings.HasPrefix(st[i+2].Symbol, "do_one_initcall+")
		}
	}
	return false
}

// calledBy tells a stack where the caller at va was called by function fn.
func calledBy(st []symbolize.Frame, va uint64, fn string) bool {
	for i, f := range st {
		if uint64(f.Addr) == va {
			return i+1 < len(st) && strings.HasPrefix(st[i+1].Symbol, fn+"+")
		}
	}
	return false
}

func tracksSlubdbg(t *testing.T, m *fixture.Manifest, d fixture.DumpFile) {
	tm, peer := m.TestModule, m.PeerModule
	{
		{
			k, w, c := census(t, m, d)
			depot, err := stackdepot.New(k)
			if err != nil {
				t.Fatal(err)
			}
			s := symbolize.New(w)
			per := map[string]int64{}
			var zero []string
			var bad []string
			fail := func(format string, args ...any) {
				if bad = append(bad, fmt.Sprintf(format, args...)); len(bad) <= 10 {
					t.Errorf(format, args...)
				}
			}
			var modObjs, leaks, bssObjs, peerObjs, peerLeaks int
			head := make([]byte, 16)
			err = w.Tracks("", false, func(o walk.Object, tr walk.Tracks, err error) bool {
				if err != nil {
					fail("%v", err)
					return true
				}
				per[o.Cache]++
				a := tr.Alloc
				if a.Addr == 0 {
					zero = append(zero, fmt.Sprintf("%s %#x (handle %#x)", o.Cache, o.Addr, a.Handle))
					return true
				}
				frames, err := depot.Stack(a.Handle)
				if err != nil {
					fail("%s object %#x: alloc track %+v: %v", o.Cache, o.Addr, a, err)
					return true
				}
				f := s.Caller(a.Addr, frames)
				switch {
				case f.Kind == symbolize.FrameFreedInit:
				case (f.Kind == symbolize.FrameKernel || f.Kind == symbolize.FrameModule) && f.Text:
				default:
					fail("%s object %#x: alloc caller %#x is %s: %s", o.Cache, o.Addr, a.Addr, f.Kind, f.What)
				}
				if !inStack(a.Addr, frames) {
					fail("%s object %#x: caller %s is not in its stack %x", o.Cache, o.Addr, f, frames)
				}
				// site checks that the object was allocated by fn of mod,
				// called from freed init text.
				site := func(mod, fn string) {
					st := s.Stack(frames)
					if f.Module != mod || !strings.HasPrefix(f.Symbol, fn+"+") || !fromInit(st, a.Addr) {
						fail("%s object %#x: caller %s, stack %v; want %s [%s] called from freed init text called from do_one_initcall", o.Cache, o.Addr, f, st, fn, mod)
					}
				}
				switch o.Cache {
				case tm.Cache:
					modObjs++
					site(tm.Module, "grow_by")
				case peer.Cache:
					peerObjs++
					if st := s.Stack(frames); f.Kind != symbolize.FrameFreedInit || !calledBy(st, a.Addr, "do_one_initcall") {
						fail("%s object %#x: caller %s, stack %v; want freed init text called from do_one_initcall", o.Cache, o.Addr, f, st)
					}
				}
				if o.Size >= uint64(len(head)) {
					if err := k.ReadVirt(head, o.Addr); err != nil {
						fail("%s object %#x: %v", o.Cache, o.Addr, err)
						return true
					}
					switch {
					case bytes.HasPrefix(head, []byte("VMLEAK-LEAK ")):
						leaks++
						site(tm.Module, tm.LeakSite)
					case bytes.HasPrefix(head, []byte("VMLEAK-BSS ")):
						bssObjs++
						site(tm.Module, tm.BSSSite)
					case bytes.HasPrefix(head, []byte("VMLEAK-PEER ")):
						peerLeaks++
						site(peer.Module, peer.LeakSite)
					}
				}
				return true
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, cs := range c.Caches {
				if per[cs.Name] != cs.Allocated {
					t.Errorf("%s: tracks of %d objects, census %d allocated", cs.Name, per[cs.Name], cs.Allocated)
				}
			}
			if modObjs != tm.NObj || leaks != tm.Leak || bssObjs != tm.BSS {
				t.Errorf("test module: %d cache objects, %d leaked, %d in .bss; the module made %d, %d, %d", modObjs, leaks, bssObjs, tm.NObj, tm.Leak, tm.BSS)
			}
			if peerObjs != peer.NObj || peerLeaks != peer.Leak {
				t.Errorf("second module: %d cache objects, %d leaked; the module made %d, %d", peerObjs, peerLeaks, peer.NObj, peer.Leak)
			}
			// Only kmem_cache_node's first objects, made by
			// early_kmem_cache_node_alloc before any cache existed, are
			// allocated without a track (mm/slub.c of 6.1 to 7.x:
			// init_tracking, no set_track).
			nodes := len(c.Cache("kmem_cache_node").Nodes)
			for _, z := range zero {
				if !strings.HasPrefix(z, "kmem_cache_node ") {
					t.Errorf("allocated without an alloc track: %s", z)
				}
			}
			if len(zero) > nodes {
				t.Errorf("%d kmem_cache_node objects without a track, %d nodes: %v", len(zero), nodes, zero)
			}
			t.Logf("%d caches, %d tracked objects, %d without a track: %v; depot %s", len(per), sum(per), len(zero), zero, depot.Pools())
		}
	}
}

func inStack(va uint64, frames []uint64) bool {
	for _, f := range frames {
		if f == va {
			return true
		}
	}
	return false
}

func sum(m map[string]int64) (n int64) {
	for _, v := range m {
		n += v
	}
	return n
}

// The cost of tracks beside the census, on the slub_debug=U dump: `go test
// -run - -bench Tracks ./walk`.
func BenchmarkTracks(b *testing.B) {
	m := fixture.Load(b, "bookworm-slubdbg")
	d := m.Dumps[len(m.Dumps)-1] // the kdump-compressed file
	k, err := kernel.Open(m.DumpPath(d), kernel.Options{Vmlinux: m.Vmlinux()})
	if err != nil {
		b.Fatal(err)
	}
	defer k.Close()
	w, err := walk.New(k)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("census", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := w.Census(); err != nil {
				b.Fatal(err)
			}
		}
	})
	walkTracks := func(b *testing.B, stacks bool) {
		b.ReportAllocs()
		for b.Loop() {
			var depot *stackdepot.Depot
			if stacks {
				if depot, err = stackdepot.New(k); err != nil {
					b.Fatal(err)
				}
			}
			n := 0
			err := w.Tracks("", false, func(_ walk.Object, tr walk.Tracks, err error) bool {
				if err != nil {
					b.Fatal(err)
				}
				n++
				if stacks && tr.Alloc.Handle != 0 {
					if _, err := depot.Stack(tr.Alloc.Handle); err != nil {
						b.Fatal(err)
					}
				}
				return true
			})
			if err != nil || n == 0 {
				b.Fatal(n, err)
			}
		}
	}
	b.Run("tracks", func(b *testing.B) { walkTracks(b, false) })
	b.Run("tracks+stacks", func(b *testing.B) { walkTracks(b, true) })
}
