package walk

import (
	"errors"
	"fmt"
	"sort"
	"sync"
)

// Slab is one slab's objects as a pointer scan needs them: where they lie
// and which are allocated, without one Object per object.
type Slab struct {
	Cache      string `json:"cache"`
	CacheAddr  uint64 `json:"cache_addr"`
	SlabVA     uint64 `json:"slab"`        // the struct slab (its struct page)
	First      uint64 `json:"first"`       // object 0 (after its left red zone)
	Stride     uint64 `json:"stride"`      // kmem_cache.size
	ObjectSize uint64 `json:"object_size"` // kmem_cache.object_size
	N          uint64 `json:"objects"`
	// Allocated has bit i set when object i is allocated (free on no
	// freelist, CPU freelist or sheaf, and the slab not awaiting RCU).
	Allocated []uint64 `json:"-"`
}

// IsAllocated tells whether object i is allocated.
func (s *Slab) IsAllocated(i uint64) bool {
	return i < s.N && s.Allocated[i/64]&(1<<(i%64)) != 0
}

// Slabs lists every slab of present memory in address order, read on every
// core. A slab whose header is implausible is left out and named in the
// error list, as is a freelist that could not be walked (its slab is kept:
// objects up to the break are told apart) and a run of unreadable struct
// pages; any of them makes a result built on Slabs partial.
func (w *Walker) Slabs() ([]Slab, []error, error) {
	var mu sync.Mutex
	var out []Slab
	var errs []error
	_, unreadable, err := w.scanSlabs(func(_ int, v slabVisit) {
		ci, cache := w.cacheOf(v.raw)
		if ci == nil {
			mu.Lock()
			errs = append(errs, fmt.Errorf("walk: slab %#x of unknown cache %#x", v.slabVA, cache))
			mu.Unlock()
			return
		}
		st, err := w.readSlab(ci, v.slabVA, v.pfn, v.raw)
		var s Slab
		if st != nil {
			s = Slab{Cache: ci.stats.Name, CacheAddr: ci.va, SlabVA: v.slabVA, First: st.r.base + st.r.redLeft,
				Stride: st.r.size, ObjectSize: ci.stats.ObjectSize, N: st.r.n, Allocated: make([]uint64, (st.r.n+63)/64)}
			for i := uint64(0); i < st.r.n; i++ {
				if a, _ := st.state(i); a {
					s.Allocated[i/64] |= 1 << (i % 64)
				}
			}
			err = errors.Join(st.errs...)
		}
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("walk: %w", err))
		}
		if st != nil {
			out = append(out, s)
		}
	})
	if err != nil {
		return nil, nil, err
	}
	for _, b := range unreadable {
		errs = append(errs, fmt.Errorf("walk: %s", b))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].First < out[j].First })
	return out, errs, nil
}
