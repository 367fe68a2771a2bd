package walk_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vmleak/vmleak/internal/synth"
	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/walk"
)

// The layouts the walker probes for, as synthetic kernels (internal/synth):
// every count below follows from the slabs the scenario puts in memory.
var synthLayouts = []struct {
	name string
	cfg  synth.Config
	enc  string // Census.FreelistEncoding
}{
	// RHEL 8: slab fields in struct page, kmem_cache_cpu.page, PG_slab flag,
	// hardened free pointers without swab.
	{"4.18", synth.Config{Version: synth.V4_18, SlubDebug: true, Hardened: true, NUMA: true}, "plain"},
	// The control: Debian 12's struct slab and PG_slab flag.
	{"6.1", synth.Config{Version: synth.V6_1, SlubDebug: true, Hardened: true, NUMA: true}, "swab"},
	// PG_slab cleared in page_type under PAGE_TYPE_BASE, low and high bits.
	{"6.10", synth.Config{Version: synth.V6_10, SlubDebug: true, Hardened: true, NUMA: true}, "swab"},
	{"6.11", synth.Config{Version: synth.V6_11, SlubDebug: true, NUMA: true}, "raw"},
	// Without CONFIG_SLUB_DEBUG (and NUMA): no kernel counters to compare.
	{"6.1-nodebug", synth.Config{Version: synth.V6_1}, "raw"},
}

// fullSlabPFN places kmalloc-256's full slab alone among 64 page frames,
// so that dropping the page of struct pages describing it loses only it.
const fullSlabPFN = 0x380

// scenario is three caches: kmalloc-256 (order 1) with a full, a node
// partial and a CPU slab with remote frees; kmalloc-64 with a CPU slab,
// two CPU partial slabs and a node partial one; sighand_cache
// (SLAB_TYPESAFE_BY_RCU, order 3) with a slab waiting for RCU.
func scenario(v synth.Version) []synth.CacheSpec {
	mid := func(size uint32) uint32 {
		if v == synth.V4_18 {
			return 0 // the middle of the object from 3202fa62fb43 (v5.7)
		}
		return size / 2
	}
	seq := func(from, to int) []int {
		var s []int
		for i := from; i < to; i++ {
			s = append(s, i)
		}
		return s
	}
	return []synth.CacheSpec{
		{Name: "kmalloc-256", ObjectSize: 256, Size: 256, Offset: mid(256), Order: 1, Slabs: []synth.SlabSpec{
			{Place: synth.Full, PFN: fullSlabPFN},
			{Place: synth.NodePartial, Free: []int{3, 7, 1, 30, 12}},
			{Place: synth.CPUSlab, CPU: 0, Free: []int{4, 9}, CPUFree: []int{0, 2, 5}},
		}},
		{Name: "kmalloc-64", ObjectSize: 64, Size: 64, Offset: mid(64), Slabs: []synth.SlabSpec{
			{Place: synth.CPUSlab, CPU: 1, CPUFree: seq(10, 20)},
			{Place: synth.CPUPartial, CPU: 1, Free: seq(0, 20)},
			{Place: synth.CPUPartial, CPU: 1, Free: []int{5, 6, 7}},
			{Place: synth.NodePartial, Free: slices.Delete(seq(0, 64), 42, 43)},
			{Place: synth.Full},
		}},
		// Free pointer after the object (RCU caches), stride rounded to a cache line.
		{Name: "sighand_cache", ObjectSize: 2088, Size: 2112, Offset: 2088, Order: 3,
			Flags: synth.SlabTypesafeByRCU | 0x2000 | 0x40000 | 0x4000000, Slabs: []synth.SlabSpec{
				{Place: synth.NodePartial, Free: []int{2, 14, 8, 0}},
				{Place: synth.RCUPending, Free: seq(0, 15)},
				{Place: synth.Full},
				{Place: synth.CPUSlab, CPU: 0, CPUFree: []int{1, 3}},
			}},
	}
}

type synthKernel struct {
	sk     *synth.Kernel
	k      *kernel.Kernel
	w      *walk.Walker
	caches map[string]*synth.Cache
}

func (s *synthKernel) cache(t *testing.T, name string) *synth.Cache {
	c := s.caches[name]
	if c == nil {
		t.Fatalf("no cache %s built", name)
	}
	return c
}

// openSynth builds the scenario, lets change alter it, and opens it.
func openSynth(t *testing.T, cfg synth.Config, change func(*synth.Kernel, map[string]*synth.Cache)) *synthKernel {
	t.Helper()
	s := &synthKernel{sk: synth.New(cfg), caches: map[string]*synth.Cache{}}
	for _, spec := range scenario(cfg.Version) {
		s.caches[spec.Name] = s.sk.AddCache(spec)
	}
	if change != nil {
		change(s.sk, s.caches)
	}
	return s.open(t)
}

// wantStats is a cache's census and counters as the scenario implies.
type wantStats struct {
	Allocated, Total, Slabs, RCUPending int64
	Free                                walk.FreeCounts
	Counters                            walk.CounterStats
}

func expect(c *synth.Cache, slubDebug bool) wantStats {
	var w wantStats
	for _, s := range c.Slabs {
		if s.Spec.Place == synth.RCUPending {
			w.RCUPending++
			continue
		}
		free, cpuFree := int64(len(s.Spec.Free)), int64(len(s.Spec.CPUFree))
		w.Slabs++
		w.Total += int64(s.Objects)
		w.Allocated += int64(len(s.Allocated()))
		w.Free.SlabFreelists += free
		w.Free.CPUFreelists += cpuFree
		switch s.Spec.Place {
		case synth.CPUSlab:
			w.Counters.CPUSlab += free
			w.Counters.CPUFreelist += cpuFree
		case synth.CPUPartial:
			w.Counters.CPUPartial += free
		case synth.NodePartial:
			w.Counters.NodePartial += free
		}
	}
	if slubDebug {
		w.Counters.Allocated, w.Counters.Total, w.Counters.Slabs = w.Allocated, w.Total, w.Slabs
	} else {
		w.Counters = walk.CounterStats{Unavailable: "struct kmem_cache_node has no nr_slabs/total_objects (CONFIG_SLUB_DEBUG off)"}
	}
	return w
}

func have(cs *walk.CacheStats) wantStats {
	return wantStats{Allocated: cs.Allocated, Total: cs.Total, Slabs: cs.Slabs, RCUPending: cs.RCUPendingSlabs,
		Free: cs.Free, Counters: cs.Counters}
}

// The census counts exactly the objects the scenario allocated, the
// counters agree (or are unavailable without SLUB_DEBUG), and the free
// pointer encoding is recognised.
func TestSynthCensus(t *testing.T) {
	for _, l := range synthLayouts {
		t.Run(l.name, func(t *testing.T) {
			s := openSynth(t, l.cfg, nil)
			c, err := s.w.Census()
			if err != nil {
				t.Fatal(err)
			}
			if c.Partial || len(c.Warnings) > 0 {
				t.Errorf("partial %v, warnings %q", c.Partial, c.Warnings)
			}
			if c.FreelistEncoding != l.enc {
				t.Errorf("freelist encoding %s, want %s", c.FreelistEncoding, l.enc)
			}
			if c.Release != s.sk.Release() {
				t.Errorf("release %q, want %q", c.Release, s.sk.Release())
			}
			if len(c.Caches) != len(s.caches) {
				t.Errorf("%d caches, want %d", len(c.Caches), len(s.caches))
			}
			for name, sc := range s.caches {
				cs := c.Cache(name)
				if cs == nil {
					t.Errorf("no cache %s in the census", name)
					continue
				}
				if d := cmp.Diff(expect(sc, l.cfg.SlubDebug), have(cs)); d != "" {
					t.Errorf("%s (-want +have):\n%s", name, d)
				}
				if cs.Disagree || len(cs.Corrupt) > 0 || cs.UnreadableSlabs > 0 {
					t.Errorf("%s: disagree %v (%s), corrupt %q, unreadable %d", name, cs.Disagree, cs.Why, cs.Corrupt, cs.UnreadableSlabs)
				}
				if cs.Addr != sc.VA || cs.Size != uint64(sc.Spec.Size) || cs.ObjectSize != uint64(sc.Spec.ObjectSize) ||
					cs.ObjPerSlab != uint64(sc.Objects) || cs.Order != uint64(sc.Spec.Order) || cs.Flags != uint64(sc.Spec.Flags) {
					t.Errorf("%s: header %+v, want addr %#x size %d object size %d, %d objects of order %d, flags %#x",
						name, cs, sc.VA, sc.Spec.Size, sc.Spec.ObjectSize, sc.Objects, sc.Spec.Order, sc.Spec.Flags)
				}
			}
		})
	}
}

// A slab of a SLAB_TYPESAFE_BY_RCU cache that was discarded but waits for
// its grace period has rcu_free_slab in the callback_head overlaying
// slab_list. The counters dropped it; the census must count it apart, its
// objects free, on every layout.
func TestSynthRCUPendingSlab(t *testing.T) {
	for _, l := range synthLayouts {
		t.Run(l.name, func(t *testing.T) {
			s := openSynth(t, l.cfg, nil)
			sc := s.cache(t, "sighand_cache")
			c, err := s.w.Census()
			if err != nil {
				t.Fatal(err)
			}
			cs := c.Cache(sc.Spec.Name)
			if d := cmp.Diff(expect(sc, l.cfg.SlubDebug), have(cs)); d != "" {
				t.Errorf("%s (-want +have):\n%s", sc.Spec.Name, d)
			}
			pending := sc.Slabs[1]
			if pending.Spec.Place != synth.RCUPending {
				t.Fatal("the scenario changed")
			}
			o, err := s.w.FindObject(pending.Object(4))
			if err != nil || o.Allocated || o.FreeOn != "slab awaiting RCU free" {
				t.Errorf("FindObject in the RCU-pending slab: %+v, %v", o, err)
			}
		})
	}
}

// Without CONFIG_SLUB_DEBUG the kernel keeps no slab or object totals: the
// counters say why they are missing, and no cache is called disagreeing,
// complete or partial.
func TestSynthCountersUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name    string
		change  func(*synth.Kernel, map[string]*synth.Cache)
		partial bool
	}{
		{"complete", nil, false},
		{"missing struct pages", func(k *synth.Kernel, _ map[string]*synth.Cache) { k.DropStructPages(fullSlabPFN) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openSynth(t, synth.Config{Version: synth.V6_1}, tc.change)
			c, err := s.w.Census()
			if err != nil {
				t.Fatal(err)
			}
			if c.Partial != tc.partial {
				t.Errorf("partial %v, want %v", c.Partial, tc.partial)
			}
			for _, cs := range c.Caches {
				if cs.Counters.Unavailable == "" || cs.Disagree || cs.Why != "" {
					t.Errorf("%s: counters %+v, disagree %v (%s); want unavailable, no disagreement", cs.Name, cs.Counters, cs.Disagree, cs.Why)
				}
			}
		})
	}
}

// FindObject names the slab, index and state of allocated and free objects,
// through compound tail pages, and refuses what is not slab memory.
func TestSynthFindObject(t *testing.T) {
	for _, l := range synthLayouts {
		t.Run(l.name, func(t *testing.T) {
			s := openSynth(t, l.cfg, nil)
			k256, sig := s.cache(t, "kmalloc-256"), s.cache(t, "sighand_cache")
			for _, tc := range []struct {
				name      string
				slab      *synth.Slab
				index     int
				offset    uint64
				allocated bool
				freeOn    string
			}{
				{"allocated, full slab", k256.Slabs[0], 31, 17, true, ""},
				{"allocated, partial slab", k256.Slabs[1], 2, 0, true, ""},
				{"free, node partial freelist", k256.Slabs[1], 30, 255, false, "slab freelist"},
				{"free, CPU freelist", k256.Slabs[2], 5, 8, false, "cpu freelist"},
				{"free, remote free on a CPU slab", k256.Slabs[2], 9, 0, false, "slab freelist"},
				{"allocated, in a tail page", sig.Slabs[0], 6, 100, true, ""},
				{"free, CPU freelist in a tail page", sig.Slabs[3], 3, 0, false, "cpu freelist"},
				{"slab awaiting RCU", sig.Slabs[1], 4, 0, false, "slab awaiting RCU free"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					va := tc.slab.Object(tc.index) + tc.offset
					o, err := s.w.FindObject(va)
					if err != nil {
						t.Fatalf("FindObject(%#x): %v", va, err)
					}
					want := walk.Object{Cache: tc.slab.Cache.Spec.Name, CacheAddr: tc.slab.Cache.VA, Slab: tc.slab.PageVA,
						Index: uint64(tc.index), Addr: tc.slab.Object(tc.index), Offset: tc.offset,
						Size: uint64(tc.slab.Cache.Spec.ObjectSize), Allocated: tc.allocated, FreeOn: tc.freeOn}
					if d := cmp.Diff(want, *o); d != "" {
						t.Errorf("FindObject(%#x) (-want +have):\n%s", va, d)
					}
				})
			}
			if _, err := s.w.FindObject(k256.VA); !errors.Is(err, walk.ErrNotSlab) {
				t.Errorf("FindObject(struct kmem_cache %#x): %v, want ErrNotSlab", k256.VA, err)
			}
		})
	}
}

// Objects lists exactly the allocated objects, in address order; with all,
// every object of every slab, RCU-pending ones as free.
func TestSynthObjects(t *testing.T) {
	for _, l := range synthLayouts {
		t.Run(l.name, func(t *testing.T) {
			s := openSynth(t, l.cfg, nil)
			for name, sc := range s.caches {
				var want []uint64
				total := 0
				for _, sl := range sc.Slabs {
					for _, i := range sl.Allocated() {
						want = append(want, sl.Object(i))
					}
					total += sl.Objects
				}
				slices.Sort(want)
				var haveAlloc []uint64
				n := 0
				for _, all := range []bool{false, true} {
					err := s.w.Objects(name, all, func(o walk.Object, err error) bool {
						if err != nil {
							t.Errorf("%s: %v", name, err)
							return true
						}
						if all {
							n++
						} else {
							haveAlloc = append(haveAlloc, o.Addr)
						}
						return true
					})
					if err != nil {
						t.Fatalf("Objects(%s, %v): %v", name, all, err)
					}
				}
				if d := cmp.Diff(want, haveAlloc); d != "" {
					t.Errorf("%s: allocated objects (-want +have):\n%s", name, d)
				}
				if n != total {
					t.Errorf("%s: %d objects with all, want %d", name, n, total)
				}
			}
			if err := s.w.Objects("no-such-cache", false, func(walk.Object, error) bool { return true }); !errors.Is(err, walk.ErrNoCache) {
				t.Errorf("Objects(no-such-cache): %v, want ErrNoCache", err)
			}
		})
	}
}

// A freelist that loops back to its head is reported with the cache and
// slab address, in the census and by Objects; the counts stand and every
// other cache is untouched.
func TestSynthCorruptFreelist(t *testing.T) {
	for _, l := range synthLayouts {
		t.Run(l.name, func(t *testing.T) {
			s := openSynthWith(t, l.cfg, func(specs []synth.CacheSpec) {
				specs[0].Slabs[1].FreelistLoop = true
			})
			bad := s.cache(t, "kmalloc-256").Slabs[1]
			c, err := s.w.Census()
			if err != nil {
				t.Fatal(err)
			}
			slabVA := fmt.Sprintf("%#x", bad.PageVA)
			for name, sc := range s.caches {
				cs := c.Cache(name)
				if d := cmp.Diff(expect(sc, l.cfg.SlubDebug), have(cs)); d != "" {
					t.Errorf("%s (-want +have):\n%s", name, d)
				}
				if name != "kmalloc-256" {
					if len(cs.Corrupt) > 0 {
						t.Errorf("%s: corrupt %q", name, cs.Corrupt)
					}
					continue
				}
				if len(cs.Corrupt) != 1 || !strings.Contains(cs.Corrupt[0], slabVA) ||
					!strings.Contains(cs.Corrupt[0], "already free") || !strings.Contains(cs.Corrupt[0], name) {
					t.Errorf("%s: corrupt %q, want one report of slab %s: already free", name, cs.Corrupt, slabVA)
				}
			}
			var errs []error
			if err := s.w.Objects("kmalloc-256", false, func(o walk.Object, err error) bool {
				if err != nil {
					errs = append(errs, err)
				}
				return true
			}); err != nil {
				t.Fatal(err)
			}
			if len(errs) != 1 || !strings.Contains(errs[0].Error(), slabVA) {
				t.Errorf("Objects errors %v, want one naming slab %s", errs, slabVA)
			}
			o, err := s.w.FindObject(bad.Object(3))
			if err == nil || !strings.Contains(err.Error(), "already free") || o == nil || o.Allocated {
				t.Errorf("FindObject in the corrupt slab: %+v, %v; want the free object and the corruption", o, err)
			}
		})
	}
}

// openSynthWith is openSynth on an altered scenario.
func openSynthWith(t *testing.T, cfg synth.Config, alter func([]synth.CacheSpec)) *synthKernel {
	t.Helper()
	specs := scenario(cfg.Version)
	alter(specs)
	s := &synthKernel{sk: synth.New(cfg), caches: map[string]*synth.Cache{}}
	for _, spec := range specs {
		s.caches[spec.Name] = s.sk.AddCache(spec)
	}
	return s.open(t)
}

func (s *synthKernel) open(t *testing.T) *synthKernel {
	t.Helper()
	dir := t.TempDir()
	fs, err := s.sk.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.k, err = kernel.Open(fs.Vmcore, kernel.Options{Vmlinux: fs.Vmlinux, IndexDir: dir}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.k.Close() })
	if s.w, err = walk.New(s.k); err != nil {
		t.Fatal(err)
	}
	return s
}

// A page of struct pages missing from the dump makes the census partial:
// the slab it described is lost, the rest is counted, and where the kernel
// counts slabs the loss is explained rather than called a disagreement.
func TestSynthMissingStructPages(t *testing.T) {
	for _, l := range synthLayouts {
		t.Run(l.name, func(t *testing.T) {
			s := openSynth(t, l.cfg, func(k *synth.Kernel, cs map[string]*synth.Cache) {
				for _, c := range cs {
					for _, sl := range c.Slabs {
						if sl.PFN/64 == fullSlabPFN/64 && sl != cs["kmalloc-256"].Slabs[0] {
							t.Fatalf("slab at %#x shares the dropped struct pages", sl.PFN)
						}
					}
				}
				k.DropStructPages(fullSlabPFN)
			})
			c, err := s.w.Census()
			if err != nil {
				t.Fatal(err)
			}
			if !c.Partial {
				t.Error("census not partial")
			}
			if !slices.ContainsFunc(c.Warnings, func(w string) bool {
				return strings.Contains(w, "could not be read") && strings.Contains(w, fmt.Sprintf("%#x", fullSlabPFN/64*64))
			}) {
				t.Errorf("no warning about the struct pages of pfn %#x: %q", fullSlabPFN/64*64, c.Warnings)
			}
			for name, sc := range s.caches {
				cs := c.Cache(name)
				want := expect(sc, l.cfg.SlubDebug)
				if name != "kmalloc-256" {
					if d := cmp.Diff(want, have(cs)); d != "" {
						t.Errorf("%s (-want +have):\n%s", name, d)
					}
					continue
				}
				lost := sc.Slabs[0]
				if cs.Slabs != want.Slabs-1 || cs.Total != want.Total-int64(lost.Objects) || cs.Allocated != want.Allocated-int64(lost.Objects) {
					t.Errorf("%s: census %d/%d/%d, want %d/%d/%d (one full slab lost)", name, cs.Allocated, cs.Total, cs.Slabs,
						want.Allocated-int64(lost.Objects), want.Total-int64(lost.Objects), want.Slabs-1)
				}
				if cs.Disagree {
					t.Errorf("%s: disagreement (%s) where the dump lacks struct pages", name, cs.Why)
				}
				// Only the kernel's nr_slabs tells that a slab is missing.
				wantLost := int64(0)
				if l.cfg.SlubDebug {
					wantLost = 1
				}
				if cs.UnreadableSlabs != wantLost {
					t.Errorf("%s: %d unreadable slabs, want %d (%s)", name, cs.UnreadableSlabs, wantLost, cs.Why)
				}
			}
		})
	}
}
