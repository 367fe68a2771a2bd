package walk

import (
	"errors"
	"fmt"

	"github.com/vmleak/vmleak/kernel"
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
func (w *Walker) freeOf(b []byte) (int64, error) {
	d := kernel.Decode(b)
	objects, inuse := d.Uint(w.l.slabObjects), d.Uint(w.l.slabInuse)
	return int64(objects) - int64(inuse), d.Err()
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
	if !l.nodeNrSlabs.Present() || !l.nodeTotalObjects.Present() {
		c.Unavailable = "struct kmem_cache_node has no nr_slabs/total_objects (CONFIG_SLUB_DEBUG off)"
		return c, perNode, nil
	}
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	b := make([]byte, l.nodeSize)
	for _, node := range w.nodeIDs {
		kn := ci.nodes[node]
		if kn == 0 {
			continue
		}
		if err := w.k.ReadVirt(b, kn); err != nil {
			bad("node %d: kmem_cache_node at %#x: %v", node, kn, err)
			continue
		}
		d := kernel.Decode(b)
		ns := NodeStats{Node: node, Partial: int64(d.Uint(l.nodeNrPartial)),
			KernelSlabs: int64(d.Uint(l.nodeNrSlabs)), KernelTotal: int64(d.Uint(l.nodeTotalObjects))}
		if err := d.Err(); err != nil {
			bad("node %d: kmem_cache_node at %#x: %v", node, kn, err)
			continue
		}
		perNode[node] = ns
		c.Slabs += ns.KernelSlabs
		c.Total += ns.KernelTotal
		for e, err := range w.k.ListHead(kn+l.nodePartial.Offset(), maxListSlabs) {
			if err != nil {
				bad("node %d partial list: %v", node, err)
				break
			}
			slab := e - l.slabList.Offset()
			sb, err := w.slabHeader(slab)
			if err != nil {
				bad("node %d partial slab %#x: %v", node, slab, err)
				continue
			}
			free, err := w.freeOf(sb)
			if err != nil {
				bad("node %d partial slab %#x: %v", node, slab, err)
				continue
			}
			c.NodePartial += free
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
		free, err := w.freeOf(sb)
		if err != nil {
			bad("CPU %d slab %#x: %v", cs.cpu, cs.slab, err)
			continue
		}
		c.CPUSlab += free
		if cs.freelist != 0 {
			r, err := w.slabRangeOf(ci, cs.slab, sb)
			if err != nil {
				bad("CPU %d slab %#x: %v", cs.cpu, cs.slab, err)
				continue
			}
			n, err := w.walkFreelist(ci, r, cs.freelist, make([]uint64, (r.n+63)/64))
			c.CPUFreelist += n
			if err != nil {
				bad("CPU %d freelist: %v", cs.cpu, err)
			}
		}
		if !l.cpuPartial.Present() || !l.slabNext.Present() {
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
			free, err := w.freeOf(sb)
			next, err2 := l.slabNext.Uint(sb)
			if err := errors.Join(err, err2); err != nil {
				bad("CPU %d partial slab %#x: %v", cs.cpu, p, err)
				break
			}
			c.CPUPartial += free
			p = next
		}
	}
	c.Allocated = c.Total - c.CPUSlab - c.CPUFreelist - c.CPUPartial - c.NodePartial
	return c, perNode, problems
}

// slabRangeOf describes a slab's objects from its struct slab address and
// bytes: the slab's memory is the direct-map address of the page the
// struct describes.
func (w *Walker) slabRangeOf(ci *cacheInfo, slab uint64, raw []byte) (slabRange, error) {
	pfn, off, ok := w.mm.PagePFN(slab)
	if !ok || off != 0 {
		return slabRange{}, fmt.Errorf("walk: %#x is not a struct page address", slab)
	}
	objects, err := w.l.slabObjects.Uint(raw)
	if err != nil {
		return slabRange{}, err
	}
	return slabRange{base: w.mm.Virt(pfn), size: ci.size, n: objects, redLeft: ci.redLeft}, nil
}
