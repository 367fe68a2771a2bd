package walk_test

import (
	"slices"
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
