package walk

import (
	"errors"
	"fmt"
	"math/bits"

	"github.com/vmleak/vmleak/kernel"
)

// ErrNotSlab: the address is not in slab memory.
var ErrNotSlab = errors.New("walk: not a slab object")

// ErrNoCache: no cache of that name is on slab_caches.
var ErrNoCache = errors.New("walk: no such cache")

// ErrCachesLost: no cache of that name was read, but some caches could not
// be (their kmem_cache or name is unreadable or implausible): the cache
// asked for may be one of them.
var ErrCachesLost = errors.New("walk: cache not found among those read")

// noCache is the error for a cache name not found among w's caches.
func (w *Walker) noCache(cache string) error {
	if w.lost > 0 || w.namesLost > 0 {
		return fmt.Errorf("%w: %q, and %d caches could not be read (see the warnings): it may be one of them", ErrCachesLost, cache, w.lost+w.namesLost)
	}
	return fmt.Errorf("%w: %q (aliases name the cache they merged into: see slabs --wide)", ErrNoCache, cache)
}

// Object is one slab object.
type Object struct {
	Cache     string `json:"cache"`
	CacheAddr uint64 `json:"cache_addr"`
	Slab      uint64 `json:"slab"` // address of the struct slab (its struct page)
	Index     uint64 `json:"index"`
	Addr      uint64 `json:"addr"`   // start of the object
	Offset    uint64 `json:"offset"` // of the asked address within the object (whatis)
	Size      uint64 `json:"size"`   // kmem_cache.object_size
	Allocated bool   `json:"allocated"`
	// FreeOn says where a free object is: "slab freelist", "cpu freelist", "sheaf".
	FreeOn string `json:"free_on,omitempty"`
}

// slabState is one slab's objects and which of them are free.
type slabState struct {
	ci     *cacheInfo
	slabVA uint64
	r      slabRange
	free   []uint64 // bitmap: on the slab's freelist
	cpu    []uint64 // bitmap: on a CPU freelist
	sheaf  []uint64 // bitmap: in a sheaf
	// Counts of the bitmaps, and problems met reading the freelists (the
	// slab is still counted as far as it could be read).
	nFree, nCPU, nSheaf int64
	errs                []error
	// rcuPending: the slab was discarded and waits for an RCU grace period
	// (SLAB_TYPESAFE_BY_RCU); all its objects are free.
	rcuPending bool
}

func (s *slabState) state(i uint64) (allocated bool, where string) {
	bit := func(b []uint64) bool { return b[i/64]&(1<<(i%64)) != 0 }
	switch {
	case s.rcuPending:
		return false, "slab awaiting RCU free"
	case bit(s.cpu):
		return false, "cpu freelist"
	case bit(s.free):
		return false, "slab freelist"
	case bit(s.sheaf):
		return false, "sheaf"
	}
	return true, ""
}

// allocated is the number of objects in use.
func (s *slabState) allocated() int64 {
	if s.rcuPending {
		return 0
	}
	return int64(s.r.n) - s.nFree - s.nCPU - s.nSheaf
}

// readSlab reads one slab whose struct page is at slabVA (raw holds it),
// describing page frame pfn: its objects and which are free. An error means
// the slab header itself is implausible; freelist problems are in errs.
func (w *Walker) readSlab(ci *cacheInfo, slabVA, pfn uint64, raw []byte) (*slabState, error) {
	return w.readSlabHeads(ci, slabVA, pfn, raw, w.cpuFree[slabVA])
}

// readSlabHeads is readSlab with the heads of the CPU freelists on the slab
// given (a live kernel's, read again).
func (w *Walker) readSlabHeads(ci *cacheInfo, slabVA, pfn uint64, raw []byte, cpuHeads []uint64) (*slabState, error) {
	l := w.l
	d := kernel.Decode(raw)
	objects, freelist := d.Uint(l.slabObjects), d.Uint(l.slabFreelist)
	var rcuFunc uint64
	if l.slabRCUFunc.Present() {
		rcuFunc = d.Uint(l.slabRCUFunc)
	}
	if err := d.Err(); err != nil {
		return nil, fmt.Errorf("slab %#x of %s: %w", slabVA, ci.stats.Name, err)
	}
	if objects == 0 || objects > ci.objPerSlab*8 {
		return nil, fmt.Errorf("slab %#x of %s: %d objects", slabVA, ci.stats.Name, objects)
	}
	n := (objects + 63) / 64
	s := &slabState{ci: ci, slabVA: slabVA, free: make([]uint64, n), cpu: make([]uint64, n), sheaf: make([]uint64, n),
		r: slabRange{base: w.mm.Virt(pfn), size: ci.size, n: objects, redLeft: ci.redLeft}}
	if w.rcuFreeSlab != 0 && rcuFunc == w.rcuFreeSlab {
		// rcu_head.func overlays slab_list: it is rcu_free_slab only on a
		// slab queued by call_rcu, never on a live list.
		s.rcuPending = true
		return s, nil
	}
	var err error
	if s.nFree, err = w.walkFreelist(ci, s.r, freelist, s.free); err != nil {
		s.errs = append(s.errs, fmt.Errorf("slab %#x of %s: %w", slabVA, ci.stats.Name, err))
	}
	for _, head := range cpuHeads {
		nc, err := w.walkFreelist(ci, s.r, head, s.cpu)
		s.nCPU += nc
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("slab %#x of %s: CPU freelist: %w", slabVA, ci.stats.Name, err))
		}
	}
	// An object is free in one place only. On two (a torn read, a crafted
	// dump) it is counted once, so allocated never goes below zero, and
	// the slab is corrupt.
	if n := overlap(s.free, s.cpu); n > 0 {
		s.nCPU -= n
		s.errs = append(s.errs, fmt.Errorf("slab %#x of %s: %d objects on both its freelist and a CPU freelist", slabVA, ci.stats.Name, n))
	}
	var onFreelists int64
	for _, o := range ci.sheafObjs {
		i, ok := s.r.index(o)
		if !ok || s.sheaf[i/64]&(1<<(i%64)) != 0 {
			continue
		}
		if (s.free[i/64]|s.cpu[i/64])&(1<<(i%64)) != 0 {
			onFreelists++
			continue
		}
		s.sheaf[i/64] |= 1 << (i % 64)
		s.nSheaf++
	}
	if onFreelists > 0 {
		s.errs = append(s.errs, fmt.Errorf("slab %#x of %s: %d objects both in a sheaf and on a freelist", slabVA, ci.stats.Name, onFreelists))
	}
	return s, nil
}

// overlap counts the bits set in both a and b.
func overlap(a, b []uint64) int64 {
	var n int64
	for i := range a {
		n += int64(bits.OnesCount64(a[i] & b[i]))
	}
	return n
}

func (s *slabState) object(i uint64) Object {
	alloc, where := s.state(i)
	return Object{Cache: s.ci.stats.Name, CacheAddr: s.ci.va, Slab: s.slabVA, Index: i,
		Addr: s.r.base + s.r.redLeft + i*s.r.size, Size: s.ci.stats.ObjectSize, Allocated: alloc, FreeOn: where}
}

// FindObject says which slab object holds a kernel address, and whether it
// is allocated. An address outside slab memory is ErrNotSlab.
func (w *Walker) FindObject(va uint64) (*Object, error) {
	pfn, ok := w.mm.VirtPFN(va)
	if !ok {
		return nil, ErrNotSlab
	}
	raw := make([]byte, w.mm.StructPageSize())
	if err := w.mm.ReadStructPages(raw, pfn, 1); err != nil {
		return nil, fmt.Errorf("walk: struct page of %#x: %w", va, err)
	}
	pageVA := w.mm.Page(pfn)
	head, err := w.mm.CompoundHead(pageVA, raw)
	if err != nil {
		return nil, fmt.Errorf("walk: struct page of %#x: %w", va, err)
	}
	if head != pageVA {
		hpfn, off, ok := w.mm.PagePFN(head)
		if !ok || off != 0 {
			return nil, fmt.Errorf("walk: struct page %#x of %#x has a bad compound head %#x", pageVA, va, head)
		}
		if err := w.mm.ReadStructPages(raw, hpfn, 1); err != nil {
			return nil, fmt.Errorf("walk: head page of %#x: %w", va, err)
		}
		pageVA, pfn = head, hpfn
	}
	slab, err := w.mm.IsSlab(raw)
	if err != nil {
		return nil, fmt.Errorf("walk: struct page %#x: %w", pageVA, err)
	}
	if !slab {
		return nil, ErrNotSlab
	}
	ci, cache := w.cacheOf(raw)
	if ci == nil {
		return nil, fmt.Errorf("walk: %#x is in slab %#x of unknown cache %#x", va, pageVA, cache)
	}
	s, err := w.readSlab(ci, pageVA, pfn, raw)
	if err != nil {
		return nil, fmt.Errorf("walk: %w", err)
	}
	err = errors.Join(s.errs...)
	if va < s.r.base+s.r.redLeft {
		return nil, fmt.Errorf("walk: %#x is in the left red zone of slab %#x (%s)", va, pageVA, ci.stats.Name)
	}
	i := (va - s.r.base - s.r.redLeft) / s.r.size
	if i >= s.r.n {
		return nil, fmt.Errorf("walk: %#x is past the last object of slab %#x (%s)", va, pageVA, ci.stats.Name)
	}
	o := s.object(i)
	o.Offset = va - o.Addr
	return &o, err
}

// Objects calls yield for every object of the named cache (allocated only,
// unless all), in physical address order. A slab with a corrupt freelist is
// reported through yield's error and the walk goes on.
func (w *Walker) Objects(cache string, all bool, yield func(Object, error) bool) error {
	var ci *cacheInfo
	for _, c := range w.caches {
		if c.stats.Name == cache {
			ci = c
		}
	}
	if ci == nil {
		return w.noCache(cache)
	}
	stop := false
	_, unreadable, err := w.scanSlabsOrdered(func(s slabVisit) bool {
		if c, _ := w.cacheOf(s.raw); c != ci {
			return true
		}
		st, err := w.readSlab(ci, s.slabVA, s.pfn, s.raw)
		if err != nil {
			err = fmt.Errorf("walk: %w", err)
		} else {
			err = errors.Join(st.errs...)
		}
		if err != nil && !yield(Object{}, err) {
			stop = true
			return false
		}
		if st == nil {
			return true
		}
		for i := uint64(0); i < st.r.n; i++ {
			o := st.object(i)
			if (o.Allocated || all) && !yield(o, nil) {
				stop = true
				return false
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	for _, e := range unreadable {
		if stop || !yield(Object{}, fmt.Errorf("walk: %s", e)) {
			break
		}
	}
	return nil
}
