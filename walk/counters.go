package walk

import (
	"fmt"
)

// maxListSlabs bounds a partial list walk.
const maxListSlabs = 1 << 22

// slabHeader reads a struct slab.
func (w *Walker) slabHeader(slab uint64) ([]byte, error) {
	b := make([]byte, w.l.slabSize)
	if err := w.k.ReadVirt(b, slab); err != nil {
		return nil, err
	}
	return b, nil
}

// freeOf is a slab's objects - inuse: its free objects as the kernel counts them.
func (w *Walker) freeOf(b []byte) int64 {
	return int64(w.l.slabObjects.val(b)) - int64(w.l.slabInuse.val(b))
}

// counters computes crash's `kmem -s` numbers for one cache: TOTAL and SLABS
// from kmem_cache_node.total_objects and nr_slabs, ALLOCATED = TOTAL minus
// the free objects on CPU slabs (objects - inuse: remote frees), CPU
// freelists, CPU partial slabs and node partial lists. On 7.x there are no
// CPU slabs; objects in sheaves count as allocated there, as in crash.
func (w *Walker) counters(ci *cacheInfo) (CounterStats, map[int]NodeStats, []string) {
	l := w.l
	var c CounterStats
	var problems []string
	perNode := make(map[int]NodeStats) // the kernel's own per-node counters
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	for node, kn := range ci.nodes {
		if kn == 0 {
			continue
		}
		b := make([]byte, l.nodeTotalObjects.off+8)
		if err := w.k.ReadVirt(b, kn); err != nil {
			bad("node %d: kmem_cache_node at %#x: %v", node, kn, err)
			continue
		}
		perNode[node] = NodeStats{Node: node, Partial: int64(l.nodeNrPartial.u64(b)),
			KernelSlabs: int64(l.nodeNrSlabs.u64(b)), KernelTotal: int64(l.nodeTotalObjects.u64(b))}
		c.Slabs += int64(l.nodeNrSlabs.u64(b))
		c.Total += int64(l.nodeTotalObjects.u64(b))
		for e, err := range w.k.ListHead(kn+uint64(l.nodePartial.off), maxListSlabs) {
			if err != nil {
				bad("node %d partial list: %v", node, err)
				break
			}
			sb, err := w.slabHeader(e - uint64(l.slabList.off))
			if err != nil {
				bad("node %d partial slab %#x: %v", node, e-uint64(l.slabList.off), err)
				continue
			}
			c.NodePartial += w.freeOf(sb)
		}
	}
	for _, cs := range ci.cpus {
		if cs.slab == 0 {
			continue
		}
		sb, err := w.slabHeader(cs.slab)
		if err != nil {
			bad("CPU %d slab %#x: %v", cs.cpu, cs.slab, err)
			continue
		}
		c.CPUSlab += w.freeOf(sb)
		if cs.freelist != 0 {
			objs := l.slabObjects.val(sb)
			free := make([]uint64, (objs+63)/64)
			n, err := w.walkFreelist(ci, w.slabRangeOf(ci, cs.slab, objs), cs.freelist, free)
			c.CPUFreelist += n
			if err != nil {
				bad("CPU %d freelist: %v", cs.cpu, err)
			}
		}
		if !l.cpuPartial.ok || !l.slabNext.ok {
			continue
		}
		// The CPU partial chain is linked through slab->next (NULL-terminated).
		seen := make(map[uint64]bool)
		for p := cs.partial; p != 0; {
			if seen[p] || len(seen) > maxListSlabs {
				bad("CPU %d partial chain loops at %#x", cs.cpu, p)
				break
			}
			seen[p] = true
			sb, err := w.slabHeader(p)
			if err != nil {
				bad("CPU %d partial slab %#x: %v", cs.cpu, p, err)
				break
			}
			c.CPUPartial += w.freeOf(sb)
			p = l.slabNext.u64(sb)
		}
	}
	c.Allocated = c.Total - c.CPUSlab - c.CPUFreelist - c.CPUPartial - c.NodePartial
	return c, perNode, problems
}

// slabRangeOf describes a slab's objects from its struct slab address: the
// slab's memory is the direct-map address of the page the struct describes.
func (w *Walker) slabRangeOf(ci *cacheInfo, slab, objects uint64) slabRange {
	pfn := (slab - w.k.VmemmapBase) / uint64(w.l.pageSize)
	return slabRange{
		base:    w.k.PageOffset + pfn*w.k.Dump.PageSize(),
		size:    ci.size,
		n:       objects,
		redLeft: ci.redLeft,
	}
}
