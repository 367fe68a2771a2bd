package walk

import (
	"fmt"

	"github.com/vmleak/vmleak/kernel"
)

// The consistency model of a census of a running kernel (/proc/kcore).
//
// Nothing stops the kernel while it is read, so a slab may be allocated
// from, freed to, discarded or created between the reads that describe it.
// The scan reads each slab once and keeps what is self-consistent; where it
// is not (a freelist pointer outside the slab, a loop, an object count of
// zero, a CPU freelist read earlier that no longer fits), it reads the
// struct slab and the CPU freelists of its cache again, up to liveRetries
// times. A slab still torn after that is counted from its struct slab's
// own objects and inuse fields (TornSlabs); one that meanwhile left the
// cache is not counted (GoneSlabs). After the scan the kernel's counters
// are read: a cache whose census differs from them, or that had torn or
// gone slabs, is marked Moved — its counts are those of some moment during
// the scan, not of one instant. A cache that did not move is exact. Every
// walk stays bounded as in a dump, so a torn read can cost a retry, never a
// loop or a crash.

// liveRetries bounds the re-reads of one torn slab.
const liveRetries = 3

// torn tells whether a slab read is inconsistent.
func torn(st *slabState, err error) bool { return err != nil || (st != nil && len(st.errs) > 0) }

// rereadLive reads a slab of a running kernel again until it is consistent.
// gone reports that it no longer belongs to ci; st is nil when it stayed
// torn, with counted holding what its struct slab says.
func (w *Walker) rereadLive(ci *cacheInfo, s slabVisit) (st *slabState, gone bool, counted tornCount) {
	var raw []byte
	for try := 0; try < liveRetries; try++ {
		var err error
		if raw, err = w.slabHeader(s.slabVA); err != nil {
			break
		}
		if now, _ := w.cacheOf(raw); now != ci {
			return nil, true, tornCount{}
		}
		st, err := w.readSlabHeads(ci, s.slabVA, s.pfn, raw, w.liveCPUHeads(ci, s.slabVA))
		if !torn(st, err) {
			return st, false, tornCount{}
		}
	}
	if raw == nil {
		raw = s.raw
	}
	d := kernel.Decode(raw)
	objects, inuse := int64(d.Uint(w.l.slabObjects)), int64(d.Uint(w.l.slabInuse))
	if d.Err() != nil || objects <= 0 || uint64(objects) > ci.objPerSlab*8 || inuse < 0 || inuse > objects {
		return nil, true, tornCount{}
	}
	return nil, false, tornCount{objects: objects, inuse: inuse}
}

// tornCount is a torn slab as its struct slab counts it.
type tornCount struct{ objects, inuse int64 }

// liveCPUHeads reads, now, the CPU freelist heads that point into slabVA
// for ci, without touching the state New read (workers share it).
func (w *Walker) liveCPUHeads(ci *cacheInfo, slabVA uint64) []uint64 {
	l := w.l
	if ci.cpuSlab == 0 || !l.cpuSlab.Present() {
		return nil
	}
	var heads []uint64
	b := make([]byte, l.cpuSize)
	for _, off := range w.cpuOffs {
		if w.k.ReadVirt(b, ci.cpuSlab+off) != nil {
			continue
		}
		d := kernel.Decode(b)
		slab, fl := d.Uint(l.cpuSlab), d.Uint(l.cpuFreelist)
		if d.Err() == nil && slab == slabVA && fl != 0 {
			heads = append(heads, fl)
		}
	}
	return heads
}

// explainLive marks a live kernel's cache that changed under the scan.
func explainLive(cs *CacheStats) {
	cnt := cs.Counters
	if !cs.Disagree && cs.TornSlabs == 0 && cs.GoneSlabs == 0 {
		return
	}
	cs.Moved, cs.Disagree = true, false
	cs.Why = fmt.Sprintf("changed while it was read (live kernel): census %d/%d/%d (allocated/total/slabs), counters read after the scan %d/%d/%d",
		cs.Allocated, cs.Total, cs.Slabs, cnt.Allocated, cnt.Total, cnt.Slabs)
	if cs.TornSlabs > 0 || cs.GoneSlabs > 0 {
		cs.Why += fmt.Sprintf("; %d slabs counted from their own counters after %d re-reads, %d left the cache", cs.TornSlabs, liveRetries, cs.GoneSlabs)
	}
}
