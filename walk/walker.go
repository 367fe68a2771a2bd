package walk

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/vmleak/vmleak/kernel"
)

// maxCaches bounds the slab_caches walk (a few hundred is typical).
const maxCaches = 1 << 16

// cacheInfo is what the walkers need of one struct kmem_cache.
type cacheInfo struct {
	va                            uint64
	stats                         *CacheStats
	size, offset, random, redLeft uint64
	objPerSlab                    uint64
	cpuSlab, cpuSheaves           uint64
	cpus                          []cpuSlab // each CPU's kmem_cache_cpu (pre-7.0), read once
	nodes                         []uint64  // kmem_cache_node pointers by node id
	barns                         []uint64  // node_barn pointers (7.1+)
	sheafObjs                     []uint64  // sorted: objects sitting in sheaves (7.x)
}

// cpuSlab is what one CPU's struct kmem_cache_cpu holds.
type cpuSlab struct {
	cpu                     int
	slab, freelist, partial uint64
}

// Walker reads SLUB state from one kernel. Create it with New; it is safe
// for concurrent use by the census workers.
type Walker struct {
	k      *kernel.Kernel
	l      *layout
	caches []*cacheInfo
	byAddr map[uint64]*cacheInfo
	// cpuFree maps a CPU slab's address to the heads of CPU freelists of it.
	cpuFree map[uint64][]uint64
	nrCPUs  int
	nrNodes int
	// enc is the freelist pointer encoding: encUnknown until the first
	// pointer decides between swab and plain (hardened kernels).
	enc         atomic.Int32
	rcuFreeSlab uint64

	// lost counts caches that could not be read: the census is partial.
	lost int

	mu       sync.Mutex
	warnings []string
}

// cacheEntries returns the list_head addresses of slab_caches in order. If a
// link is broken (a page missing from the dump, a corrupt pointer), the rest
// is reached backwards through prev links (kernel.ListEntries), so one bad
// page loses one cache, not the rest of the list.
func (w *Walker) cacheEntries(head uint64) ([]uint64, error) {
	entries, err := w.k.ListEntries(head, maxCaches)
	if err != nil {
		if len(entries) == 0 {
			return nil, fmt.Errorf("walk: slab_caches: %w", err)
		}
		w.warnf("slab_caches: %v", err)
		w.lost++ // at least the entry behind the broken link
	}
	return entries, nil
}

const (
	encUnknown = iota
	encRaw
	encPlain
	encSwab
)

func (w *Walker) warnf(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.warnings = append(w.warnings, fmt.Sprintf(format, args...))
}

// New reads slab_caches and every cache's per-CPU and per-node state.
func New(k *kernel.Kernel) (*Walker, error) {
	l, err := newLayout(k)
	if err != nil {
		return nil, err
	}
	w := &Walker{k: k, l: l, byAddr: make(map[uint64]*cacheInfo), cpuFree: make(map[uint64][]uint64)}
	if !l.hardened {
		w.enc.Store(encRaw)
	}
	offs, err := k.PerCPUOffsets()
	if err != nil {
		return nil, err
	}
	w.nrCPUs = len(offs)
	nn, err := k.Var("nr_node_ids", "unsigned int").Uint()
	if err != nil || nn == 0 || int64(nn) > max(l.maxNumNodes, 1) {
		nn = 1
	}
	w.nrNodes = int(nn)
	if a, err := k.Symbol("rcu_free_slab"); err == nil {
		w.rcuFreeSlab = a
	}
	head, err := k.Symbol("slab_caches")
	if err != nil {
		return nil, err
	}
	entries, err := w.cacheEntries(head)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		ci, err := w.readCache(e - uint64(l.cacheList.off))
		if err != nil {
			w.warnf("%v", err)
			w.lost++
			continue
		}
		w.caches = append(w.caches, ci)
		w.byAddr[ci.va] = ci
	}
	if len(w.caches) == 0 {
		return nil, fmt.Errorf("walk: no readable cache on slab_caches")
	}
	for _, ci := range w.caches {
		w.readCPUState(ci, offs)
	}
	return w, nil
}

// Warnings returns problems met while walking.
func (w *Walker) Warnings() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.warnings...)
}

func (w *Walker) readCache(va uint64) (*cacheInfo, error) {
	l := w.l
	// Everything up to the node array (and its used part) in one read.
	n := l.cacheNode.off + int64(w.nrNodes)*8
	if l.cachePerNode.ok {
		n = l.cachePerNode.off + int64(w.nrNodes)*l.perNodeSize
	}
	b := make([]byte, n)
	if err := w.k.ReadVirt(b, va); err != nil {
		return nil, fmt.Errorf("walk: reading struct kmem_cache at %#x: %w", va, err)
	}
	namePtr := l.cacheName.u64(b)
	name, err := w.k.ReadCString(namePtr, 256)
	if err != nil {
		name = fmt.Sprintf("<unreadable name at %#x>", namePtr)
		w.warnf("cache %#x: %v", va, err)
	}
	name = kernel.Printable(name)
	oo := l.cacheOO.val(b)
	ci := &cacheInfo{
		va:         va,
		size:       l.cacheSize.val(b),
		offset:     l.cacheOffset.val(b),
		random:     l.cacheRandom.val(b),
		redLeft:    l.cacheRedLeft.val(b),
		objPerSlab: oo & 0xffff, // struct kmem_cache_order_objects: objects in the low 16 bits
		cpuSlab:    l.cacheCPUSlab.val(b),
		cpuSheaves: l.cacheCPUSheaves.val(b),
	}
	order := oo >> 16
	pageSize := w.k.Dump.PageSize()
	ci.stats = &CacheStats{
		Addr: va, Name: name, ObjectSize: l.cacheObjSize.val(b), Size: ci.size,
		ObjPerSlab: ci.objPerSlab, Order: order, SlabBytes: pageSize << order, Flags: l.cacheFlags.val(b),
	}
	if ci.size == 0 || ci.objPerSlab == 0 || order > 10 {
		return nil, fmt.Errorf("walk: cache %s at %#x: implausible size %d, %d objects of order %d", name, va, ci.size, ci.objPerSlab, order)
	}
	for node := 0; node < w.nrNodes; node++ {
		if l.cachePerNode.ok {
			e := b[l.cachePerNode.off+int64(node)*l.perNodeSize:]
			ci.nodes = append(ci.nodes, l.perNodeNode.u64(e))
			ci.barns = append(ci.barns, l.perNodeBarn.u64(e))
		} else {
			ci.nodes = append(ci.nodes, binary.LittleEndian.Uint64(b[l.cacheNode.off+int64(node)*8:]))
		}
	}
	return ci, nil
}

// readCPUState records each CPU's slab and freelist (pre-7.0), or the
// objects held in sheaves (7.x), for one cache.
func (w *Walker) readCPUState(ci *cacheInfo, offs []uint64) {
	l := w.l
	if ci.cpuSlab != 0 && l.cpuSlab.ok {
		for cpu, off := range offs {
			var b [64]byte
			c := ci.cpuSlab + off
			if err := w.k.ReadVirt(b[:], c); err != nil {
				w.warnf("cache %s: CPU %d kmem_cache_cpu at %#x: %v", ci.stats.Name, cpu, c, err)
				continue
			}
			cs := cpuSlab{cpu: cpu, slab: l.cpuSlab.u64(b[:]), freelist: l.cpuFreelist.u64(b[:]), partial: l.cpuPartial.u64(b[:])}
			ci.cpus = append(ci.cpus, cs)
			if cs.slab != 0 && cs.freelist != 0 {
				w.cpuFree[cs.slab] = append(w.cpuFree[cs.slab], cs.freelist)
			}
		}
	}
	if ci.cpuSheaves != 0 && l.pcsMain.ok {
		for cpu, off := range offs {
			var b [32]byte
			pcs := ci.cpuSheaves + off
			if err := w.k.ReadVirt(b[:], pcs); err != nil {
				w.warnf("cache %s: CPU %d sheaves at %#x: %v", ci.stats.Name, cpu, pcs, err)
				continue
			}
			for _, sh := range []uint64{l.pcsMain.u64(b[:]), l.pcsSpare.u64(b[:])} {
				ci.sheafObjs = w.appendSheaf(ci, ci.sheafObjs, sh)
			}
		}
		for node, barn := range ci.barns {
			if barn == 0 || !l.barnFull.ok {
				continue
			}
			for e, err := range w.k.ListHead(barn+uint64(l.barnFull.off), 1<<16) {
				if err != nil {
					w.warnf("cache %s: node %d barn full sheaves: %v", ci.stats.Name, node, err)
					break
				}
				ci.sheafObjs = w.appendSheaf(ci, ci.sheafObjs, e-uint64(l.sheafBarnList.off))
			}
		}
		sort.Slice(ci.sheafObjs, func(i, j int) bool { return ci.sheafObjs[i] < ci.sheafObjs[j] })
	}
}

// maxSheaf bounds a sheaf's size field (sheaf_capacity is a few dozen).
const maxSheaf = 1 << 12

func (w *Walker) appendSheaf(ci *cacheInfo, objs []uint64, sheaf uint64) []uint64 {
	if sheaf == 0 {
		return objs
	}
	var sb [4]byte
	if err := w.k.ReadVirt(sb[:], sheaf+uint64(w.l.sheafSize.off)); err != nil {
		w.warnf("cache %s: sheaf at %#x: %v", ci.stats.Name, sheaf, err)
		return objs
	}
	n := binary.LittleEndian.Uint32(sb[:])
	if n == 0 {
		return objs
	}
	if n > maxSheaf {
		w.warnf("cache %s: sheaf at %#x claims %d objects", ci.stats.Name, sheaf, n)
		return objs
	}
	b := make([]byte, 8*n)
	if err := w.k.ReadVirt(b, sheaf+uint64(w.l.sheafObjects.off)); err != nil {
		w.warnf("cache %s: sheaf at %#x: %v", ci.stats.Name, sheaf, err)
		return objs
	}
	for i := uint32(0); i < n; i++ {
		objs = append(objs, binary.LittleEndian.Uint64(b[8*i:]))
	}
	return objs
}

// decode turns a stored free pointer at ptrAddr into the next object.
func decode(enc int32, stored, random, ptrAddr uint64) uint64 {
	switch enc {
	case encSwab:
		return stored ^ random ^ bits.ReverseBytes64(ptrAddr)
	case encPlain:
		return stored ^ random ^ ptrAddr
	}
	return stored
}

// slabRange is the objects of one slab.
type slabRange struct {
	base, size, n, redLeft uint64
}

// index returns the object index of a free pointer, or false if it does not
// point at an object of this slab.
func (r slabRange) index(obj uint64) (uint64, bool) {
	if obj < r.base+r.redLeft {
		return 0, false
	}
	d := obj - r.base - r.redLeft
	if d%r.size != 0 || d/r.size >= r.n {
		return 0, false
	}
	return d / r.size, true
}

// freelistError is a corrupt freelist.
type freelistError struct {
	head, at uint64
	msg      string
}

func (e *freelistError) Error() string {
	return fmt.Sprintf("freelist from %#x: %s at %#x", e.head, e.msg, e.at)
}

// walkFreelist marks the objects of a freelist starting at head in free
// (one bit per object index) and returns how many it marked. It stops at a
// pointer outside the slab, a repeated object or an unreadable link.
func (w *Walker) walkFreelist(ci *cacheInfo, r slabRange, head uint64, free []uint64) (int64, error) {
	var n int64
	obj := head
	for obj != 0 {
		i, ok := r.index(obj)
		if !ok {
			return n, &freelistError{head, obj, "pointer outside the slab"}
		}
		if free[i/64]&(1<<(i%64)) != 0 {
			// Bounded by the bitmap: a freelist visits each object at most once.
			return n, &freelistError{head, obj, "object already free (cycle or overlapping freelists)"}
		}
		free[i/64] |= 1 << (i % 64)
		n++
		ptrAddr := obj + ci.offset
		stored, err := w.k.ReadPtr(ptrAddr)
		if err != nil {
			return n, err
		}
		next, err := w.decodeNext(ci, r, stored, ptrAddr)
		if err != nil {
			return n, err
		}
		obj = next
	}
	return n, nil
}

// decodeNext decodes a stored pointer; on a hardened kernel the first
// non-NULL pointer decides whether the swab form (v5.7+) or the plain one is
// in use, by which decodes to an object of the same slab.
func (w *Walker) decodeNext(ci *cacheInfo, r slabRange, stored, ptrAddr uint64) (uint64, error) {
	enc := w.enc.Load()
	if enc != encUnknown {
		return decode(enc, stored, ci.random, ptrAddr), nil
	}
	for _, e := range []int32{encSwab, encPlain} {
		next := decode(e, stored, ci.random, ptrAddr)
		if _, ok := r.index(next); ok || next == 0 {
			w.enc.CompareAndSwap(encUnknown, e)
			return next, nil
		}
	}
	return decode(encSwab, stored, ci.random, ptrAddr), nil
}

// Encoding names the freelist pointer encoding in use.
func (w *Walker) Encoding() string {
	switch w.enc.Load() {
	case encRaw:
		return "raw"
	case encPlain:
		return "plain"
	case encSwab:
		return "swab"
	}
	return "unknown"
}
