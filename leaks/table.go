package leaks

import (
	"fmt"
	"sort"

	"github.com/vmleak/vmleak/walk"
)

// Bounds on what one slab may claim: a corrupt struct slab or kmem_cache
// must not make the table (or a read) huge. SLUB's largest slabs are
// order 3 by default (slub_max_order), 2 MiB leaves room for any booted
// slub_max_order; objects are at most KMALLOC_MAX_CACHE_SIZE (two pages)
// unless a cache asks for more, which also stays inside its slab.
const maxSlabBytes = 2 << 20

// table is every allocated slab object, indexed once: slabs sorted by
// address, each with the index of its first object in the global bitsets.
// A candidate word is looked up by a bounds check and a binary search over
// slabs, with no allocation.
type table struct {
	slabs     []tslab
	lo, hi    uint64   // the span of all slabs: a cheap first filter
	allocated []uint64 // bitset over all objects
	n         uint64   // objects (allocated or not)
	caches    []string // cache names, indexed by tslab.cache
}

type tslab struct {
	first, end   uint64 // [first, first+n*stride)
	stride, size uint64
	base         uint64 // index of object 0
	cache        int32
}

// newTable indexes slabs (as walk.Slabs gives them). Slabs with an
// implausible geometry, or overlapping one already indexed, are left out
// and returned as warnings.
func newTable(slabs []walk.Slab) (*table, []string) {
	t := &table{}
	var warnings []string
	sorted := append([]walk.Slab(nil), slabs...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].First < sorted[j].First })
	cacheIdx := map[string]int32{}
	for _, s := range sorted {
		if s.N == 0 || s.Stride == 0 || s.ObjectSize == 0 || s.ObjectSize > s.Stride ||
			s.Stride > maxSlabBytes || s.N > maxSlabBytes/s.Stride || uint64(len(s.Allocated)) < (s.N+63)/64 ||
			s.First+s.N*s.Stride < s.First {
			warnings = append(warnings, fmt.Sprintf("leaks: slab %#x of %s: implausible geometry (%d objects of %d bytes, stride %d): not scanned",
				s.SlabVA, s.Cache, s.N, s.ObjectSize, s.Stride))
			continue
		}
		if k := len(t.slabs); k > 0 && s.First < t.slabs[k-1].end {
			warnings = append(warnings, fmt.Sprintf("leaks: slab %#x of %s overlaps the slab before it: not scanned", s.SlabVA, s.Cache))
			continue
		}
		ci, ok := cacheIdx[s.Cache]
		if !ok {
			ci = int32(len(t.caches))
			cacheIdx[s.Cache] = ci
			t.caches = append(t.caches, s.Cache)
		}
		t.slabs = append(t.slabs, tslab{first: s.First, end: s.First + s.N*s.Stride, stride: s.Stride, size: s.ObjectSize, base: t.n, cache: ci})
		for i := uint64(0); i < s.N; i++ {
			if s.IsAllocated(i) {
				t.setAllocated(t.n + i)
			}
		}
		t.n += s.N
	}
	if len(t.slabs) > 0 {
		t.lo, t.hi = t.slabs[0].first, t.slabs[len(t.slabs)-1].end
	}
	return t, warnings
}

func (t *table) setAllocated(i uint64) {
	for uint64(len(t.allocated)) <= i/64 {
		t.allocated = append(t.allocated, 0)
	}
	t.allocated[i/64] |= 1 << (i % 64)
}

func (t *table) isAllocated(i uint64) bool {
	return i/64 < uint64(len(t.allocated)) && t.allocated[i/64]&(1<<(i%64)) != 0
}

// lookup is the allocated object a word points into: any byte of
// [start, start+object_size) counts (interior pointers), padding, red
// zones and tracks between objects do not, and neither do free objects.
func (t *table) lookup(word uint64) (uint64, bool) {
	if word < t.lo || word >= t.hi {
		return 0, false
	}
	// The last slab starting at or before word.
	lo, hi := 0, len(t.slabs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if t.slabs[m].first <= word {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return 0, false
	}
	s := &t.slabs[lo-1]
	if word >= s.end {
		return 0, false
	}
	off := word - s.first
	i := off / s.stride
	if off-i*s.stride >= s.size {
		return 0, false
	}
	idx := s.base + i
	if !t.isAllocated(idx) {
		return 0, false
	}
	return idx, true
}

// object is the start, size and cache of object idx.
func (t *table) object(idx uint64) (start, size uint64, cache int32) {
	j := sort.Search(len(t.slabs), func(j int) bool { return t.slabs[j].base > idx }) - 1
	s := &t.slabs[j]
	return s.first + (idx-s.base)*s.stride, s.size, s.cache
}
