package walk

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/kernel/mm"
)

// maxCaches bounds the slab_caches walk (a few hundred is typical).
const maxCaches = 1 << 16

// cacheInfo is what the walkers need of one struct kmem_cache.
type cacheInfo struct {
	va                            uint64
	stats                         *CacheStats
	size, offset, random, redLeft uint64
	inuse                         uint64 // kmem_cache.inuse: where the metadata after the object starts
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
	mm     *mm.MM
	l      *layout
	caches []*cacheInfo
	byAddr map[uint64]*cacheInfo
	// cpuFree maps a CPU slab's address to the heads of CPU freelists of it.
	cpuFree map[uint64][]uint64
	nrCPUs  int
	nodeIDs []int // nodes whose kmem_cache_node pointers are read
	// enc is the freelist pointer encoding: encUnknown until the first
	// pointer decides between swab and plain (hardened kernels).
	enc         atomic.Int32
	rcuFreeSlab uint64

	// lost counts caches that could not be read, namesLost caches whose
	// name could not be: the census is partial.
	lost, namesLost int

	trackL trackLayout // struct track and SLAB_STORE_USER, probed on first use

	// live: the kernel is running (live.go).
	live bool
	// cpuOffs are the per-CPU offsets of the CPUs whose state is read.
	cpuOffs []uint64

	mu       sync.Mutex
	warnings []string
	warnOnce sync.Once // the mem_section fallback, said once
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
	m, err := mm.New(k)
	if err != nil {
		return nil, err
	}
	if uint64(l.slabSize) > m.StructPageSize() {
		return nil, fmt.Errorf("walk: struct slab (%d bytes) is larger than struct page (%d)", l.slabSize, m.StructPageSize())
	}
	w := &Walker{k: k, mm: m, l: l, byAddr: make(map[uint64]*cacheInfo), cpuFree: make(map[uint64][]uint64), live: k.Live()}
	if !l.hardened {
		w.enc.Store(encRaw)
	}
	offs, err := k.PerCPUOffsets()
	if err != nil {
		return nil, err
	}
	w.nrCPUs = len(offs)
	nodes, err := m.Nodes()
	if err != nil {
		// Node 0 exists on every kernel; the others' slabs are still found
		// by the census, but their kernel counters are not read.
		w.warnf("walk: NUMA nodes: %v; reading node 0's kmem_cache_node only", err)
		w.lost++
		nodes = []mm.Node{{ID: 0}}
	}
	for _, n := range nodes {
		if int64(n.ID) >= l.maxNumNodes {
			return nil, fmt.Errorf("walk: node %d beyond kmem_cache's %d nodes", n.ID, l.maxNumNodes)
		}
		w.nodeIDs = append(w.nodeIDs, n.ID)
	}
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
		ci, err := w.readCache(e - l.cacheList.Offset())
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
	w.cpuOffs = offs
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
	last := int64(w.nodeIDs[len(w.nodeIDs)-1]) + 1
	n := int64(l.cacheNode.Offset()) + last*8
	if l.cachePerNode.Present() {
		n = int64(l.cachePerNode.Offset()) + last*l.perNodeSize
	}
	b := make([]byte, n)
	if err := w.k.ReadVirt(b, va); err != nil {
		return nil, fmt.Errorf("walk: reading struct kmem_cache at %#x: %w", va, err)
	}
	d := kernel.Decode(b)
	namePtr := d.Uint(l.cacheName)
	oo := d.Uint(l.cacheOO)
	ci := &cacheInfo{
		va:         va,
		size:       d.Uint(l.cacheSize),
		offset:     d.Uint(l.cacheOffset),
		inuse:      d.Uint(l.cacheInuse),
		objPerSlab: oo & 0xffff, // struct kmem_cache_order_objects: objects in the low 16 bits
	}
	objSize, flags := d.Uint(l.cacheObjSize), d.Uint(l.cacheFlags)
	if l.cacheRandom.Present() {
		ci.random = d.Uint(l.cacheRandom)
	}
	if l.cacheRedLeft.Present() {
		ci.redLeft = d.Uint(l.cacheRedLeft)
	}
	if l.cacheCPUSlab.Present() {
		ci.cpuSlab = d.Uint(l.cacheCPUSlab)
	}
	if l.cacheCPUSheaves.Present() {
		ci.cpuSheaves = d.Uint(l.cacheCPUSheaves)
	}
	if err := d.Err(); err != nil {
		return nil, fmt.Errorf("walk: struct kmem_cache at %#x: %w", va, err)
	}
	name, err := w.k.ReadCString(namePtr, 256)
	if err != nil {
		// The counts stand; the name is lost with its page: the census is
		// partial (a missing page is never silent).
		name = fmt.Sprintf("<unreadable name at %#x>", namePtr)
		w.warnf("cache %#x: name: %v", va, err)
		w.namesLost++
	}
	name = kernel.PrintableName(name)
	order := oo >> 16
	ci.stats = &CacheStats{
		Addr: va, Name: name, ObjectSize: objSize, Size: ci.size,
		ObjPerSlab: ci.objPerSlab, Order: order, SlabBytes: w.mm.PageSize() << order, Flags: flags,
	}
	if ci.size == 0 || ci.objPerSlab == 0 || order > 10 {
		return nil, fmt.Errorf("walk: cache %s at %#x: implausible size %d, %d objects of order %d", name, va, ci.size, ci.objPerSlab, order)
	}
	ci.nodes = make([]uint64, last)
	if l.cachePerNode.Present() {
		ci.barns = make([]uint64, last)
	}
	for _, node := range w.nodeIDs {
		if l.cachePerNode.Present() {
			e := kernel.Decode(b[int64(l.cachePerNode.Offset())+int64(node)*l.perNodeSize:])
			ci.nodes[node] = e.Uint(l.perNodeNode)
			if l.perNodeBarn.Present() {
				ci.barns[node] = e.Uint(l.perNodeBarn)
			}
			if err := e.Err(); err != nil {
				return nil, fmt.Errorf("walk: cache %s at %#x: per_node[%d]: %w", name, va, node, err)
			}
		} else {
			ci.nodes[node] = binary.LittleEndian.Uint64(b[int64(l.cacheNode.Offset())+int64(node)*8:])
		}
	}
	return ci, nil
}

// readCPUState records each CPU's slab and freelist (pre-7.0), or the
// objects held in sheaves (7.x), for one cache.
func (w *Walker) readCPUState(ci *cacheInfo, offs []uint64) {
	l := w.l
	if ci.cpuSlab != 0 && l.cpuSlab.Present() {
		b := make([]byte, l.cpuSize)
		for cpu, off := range offs {
			c := ci.cpuSlab + off
			if err := w.k.ReadVirt(b, c); err != nil {
				w.warnf("cache %s: CPU %d kmem_cache_cpu at %#x: %v", ci.stats.Name, cpu, c, err)
				continue
			}
			d := kernel.Decode(b)
			cs := cpuSlab{cpu: cpu, slab: d.Uint(l.cpuSlab), freelist: d.Uint(l.cpuFreelist)}
			if l.cpuPartial.Present() {
				cs.partial = d.Uint(l.cpuPartial)
			}
			if err := d.Err(); err != nil {
				w.warnf("cache %s: CPU %d kmem_cache_cpu at %#x: %v", ci.stats.Name, cpu, c, err)
				continue
			}
			ci.cpus = append(ci.cpus, cs)
			if cs.slab != 0 && cs.freelist != 0 {
				w.cpuFree[cs.slab] = append(w.cpuFree[cs.slab], cs.freelist)
			}
		}
	}
	if ci.cpuSheaves != 0 && l.pcsMain.Present() {
		b := make([]byte, l.pcsSize)
		for cpu, off := range offs {
			pcs := ci.cpuSheaves + off
			if err := w.k.ReadVirt(b, pcs); err != nil {
				w.warnf("cache %s: CPU %d sheaves at %#x: %v", ci.stats.Name, cpu, pcs, err)
				continue
			}
			d := kernel.Decode(b)
			main, spare := d.Uint(l.pcsMain), d.Uint(l.pcsSpare)
			if err := d.Err(); err != nil {
				w.warnf("cache %s: CPU %d sheaves at %#x: %v", ci.stats.Name, cpu, pcs, err)
				continue
			}
			for _, sh := range []uint64{main, spare} {
				ci.sheafObjs = w.appendSheaf(ci, ci.sheafObjs, sh)
			}
		}
		for node, barn := range ci.barns {
			if barn == 0 || !l.barnFull.Present() {
				continue
			}
			if !l.sheafBarnList.Present() {
				w.warnf("cache %s: node %d barn: struct slab_sheaf has no barn_list", ci.stats.Name, node)
				continue
			}
			for e, err := range w.k.ListHead(barn+l.barnFull.Offset(), 1<<16) {
				if err != nil {
					w.warnf("cache %s: node %d barn full sheaves: %v", ci.stats.Name, node, err)
					break
				}
				ci.sheafObjs = w.appendSheaf(ci, ci.sheafObjs, e-l.sheafBarnList.Offset())
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
	n64, err := w.k.Object(sheaf, "struct slab_sheaf").Field("size").Uint()
	if err != nil {
		w.warnf("cache %s: sheaf at %#x: %v", ci.stats.Name, sheaf, err)
		return objs
	}
	n := uint32(n64)
	if n == 0 {
		return objs
	}
	if n > maxSheaf {
		w.warnf("cache %s: sheaf at %#x claims %d objects", ci.stats.Name, sheaf, n)
		return objs
	}
	b := make([]byte, 8*n)
	if err := w.k.ReadVirt(b, sheaf+w.l.sheafObjects.Offset()); err != nil {
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
	return w.walkFreelistIn(w.k.ReadPtr, ci, r, head, free)
}

// walkFreelistIn is walkFreelist reading the links with readPtr (kernel
// memory, or a map in the fuzz test).
func (w *Walker) walkFreelistIn(readPtr func(uint64) (uint64, error), ci *cacheInfo, r slabRange, head uint64, free []uint64) (int64, error) {
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
		stored, err := readPtr(ptrAddr)
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

// Kernel is the kernel the walker reads.
func (w *Walker) Kernel() *kernel.Kernel { return w.k }

// MM is the memory model the walker uses.
func (w *Walker) MM() *mm.MM { return w.mm }
