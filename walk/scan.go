package walk

import (
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/kernel/mm"
)

// memoryRanges is the memory whose struct pages the scans read; a fallback
// from mem_section to the dump's ranges is a warning.
func (w *Walker) memoryRanges() ([]mm.PFNRange, error) {
	rs, err := w.mm.MemoryRanges()
	if err != nil {
		return nil, err
	}
	if !rs.FromSections {
		w.warnOnce.Do(func() {
			w.warnf("%v; scanning the memory sections of the dump's physical ranges instead", rs.SectionsErr)
		})
	}
	return rs.PFNs, nil
}

// slabVisit is one slab page found by the scan.
type slabVisit struct {
	pfn, slabVA uint64
	raw         []byte // the struct slab bytes
}

// scanSlabs calls visit for every slab head page of present memory, from
// workers running in parallel over disjoint pfn chunks. It returns the number
// of struct pages read and left unread, and the pfn chunks that could not be read.
func (w *Walker) scanSlabs(visit func(worker int, s slabVisit)) (scanned scanCount, unreadable []badRange, err error) {
	ranges, err := w.memoryRanges()
	if err != nil {
		return scanCount{}, nil, err
	}
	const chunk = scanRead // pfns per work item: 256 KiB of struct pages
	type item struct{ start, end uint64 }
	var items []item
	for _, r := range ranges {
		for s := r.Start; s < r.End; s += chunk {
			items = append(items, item{s, min(s+chunk, r.End)})
		}
	}
	workers := max(1, min(runtime.GOMAXPROCS(0), 8))
	next := make(chan item)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for wk := 0; wk < workers; wk++ {
		wg.Add(1)
		go func(wk int) {
			defer wg.Done()
			var n scanCount
			var errs []badRange
			buf := w.scanBuf()
			for it := range next {
				n.add(w.scanRange(it.start, it.end, buf, &errs, func(s slabVisit) bool { visit(wk, s); return true }))
			}
			mu.Lock()
			scanned.add(n)
			unreadable = append(unreadable, errs...)
			mu.Unlock()
		}(wk)
	}
	for _, it := range items {
		next <- it
	}
	close(next)
	wg.Wait()
	return scanned, mergeBad(unreadable), nil
}

// badRange is a run of page frames whose struct pages could not be read.
type badRange struct {
	start, end uint64
	err        error // the first error of the run
}

func (b badRange) String() string {
	return fmt.Sprintf("struct pages of pfn %#x-%#x (%d page frames) could not be read: %v", b.start, b.end, b.end-b.start, b.err)
}

// mergeBad sorts and joins adjacent bad ranges.
func mergeBad(rs []badRange) []badRange {
	sort.Slice(rs, func(i, j int) bool { return rs[i].start < rs[j].start })
	var out []badRange
	for _, r := range rs {
		if n := len(out); n > 0 && out[n-1].end == r.start {
			out[n-1].end = r.end
			continue
		}
		out = append(out, r)
	}
	return out
}

// scanRead struct pages (256 KiB on x86_64) are read at once: one read
// per work item, and through the vmemmap's 2 MiB mappings one translation
// per 128 MiB of memory. A read that fails is retried scanBatch struct
// pages (4 KiB, page-aligned) at a time, so a missing vmemmap page costs
// only its own 64 pfns.
const (
	scanRead  = 1 << 12
	scanBatch = 64
)

// scanBuf is a worker's buffer for scanRange.
func (w *Walker) scanBuf() []byte { return make([]byte, scanRead*w.mm.StructPageSize()) }

// scanCount is what a scan did with the struct pages of its memory.
type scanCount struct {
	read uint64
	// notDumped were not read: the dump holds none of the page frames
	// they describe, each run of scanBatch (mm.MM.NotDumped).
	notDumped uint64
}

func (c *scanCount) add(o scanCount) { c.read += o.read; c.notDumped += o.notDumped }

// scanRange visits the slab head pages among pfns [start, end). The struct
// pages of each scanBatch page frames the dump holds none of are not read:
// on a makedumpfile -d 31 dump most of memory is free and left out, and
// its struct pages would be decompressed only to say so.
func (w *Walker) scanRange(start, end uint64, buf []byte, errs *[]badRange, visit func(slabVisit) bool) scanCount {
	var c scanCount
	notDumped := func(lo uint64) bool { return w.mm.NotDumped(lo, min(lo+scanBatch, end)-lo) }
	for lo := start; lo < end; {
		if notDumped(lo) {
			c.notDumped += min(lo+scanBatch, end) - lo
			lo += scanBatch
			continue
		}
		hi := lo + scanBatch
		for hi < end && !notDumped(hi) {
			hi += scanBatch
		}
		hi = min(hi, end)
		n, more := w.scanRun(lo, hi, buf, errs, visit)
		c.read += n
		if !more {
			return c
		}
		lo = hi
	}
	return c
}

// scanRun visits the slab head pages among pfns [start, end), reading
// their struct pages len(buf) bytes at a time; it returns how many it read
// and false when visit stopped the scan.
func (w *Walker) scanRun(start, end uint64, buf []byte, errs *[]badRange, visit func(slabVisit) bool) (uint64, bool) {
	ps := w.mm.StructPageSize()
	per := max(scanBatch, uint64(len(buf))/ps)
	var n uint64
	for pfn := start; pfn < end; pfn += per {
		cnt := min(per, end-pfn)
		if cnt > scanBatch && w.mm.ReadStructPages(buf, pfn, cnt) == nil {
			n += cnt
			if !w.visitPages(buf, pfn, cnt, errs, visit) {
				return n, false
			}
			continue
		}
		for sub := pfn; sub < pfn+cnt; sub += scanBatch {
			c := min(scanBatch, pfn+cnt-sub)
			if err := w.mm.ReadStructPages(buf, sub, c); err != nil {
				*errs = append(*errs, badRange{sub, sub + c, err})
				continue
			}
			n += c
			if !w.visitPages(buf, sub, c, errs, visit) {
				return n, false
			}
		}
	}
	return n, true
}

// visitPages visits the slab head pages among the cnt struct pages in buf,
// of pfns from pfn; false when visit stopped the scan.
func (w *Walker) visitPages(buf []byte, pfn, cnt uint64, errs *[]badRange, visit func(slabVisit) bool) bool {
	ps := w.mm.StructPageSize()
	for i := uint64(0); i < cnt; i++ {
		p := buf[i*ps : (i+1)*ps]
		slab, err := w.mm.IsSlab(p)
		if err != nil {
			*errs = append(*errs, badRange{pfn + i, pfn + i + 1, err})
			continue
		}
		if slab && !visit(slabVisit{pfn: pfn + i, slabVA: w.mm.Page(pfn + i), raw: p}) {
			return false
		}
	}
	return true
}

// scanSlabsOrdered is scanSlabs on one goroutine, in pfn order, stoppable.
func (w *Walker) scanSlabsOrdered(visit func(slabVisit) bool) (scanned scanCount, unreadable []badRange, err error) {
	ranges, err := w.memoryRanges()
	if err != nil {
		return scanCount{}, nil, err
	}
	buf := w.scanBuf()
	stopped := false
	for _, r := range ranges {
		scanned.add(w.scanRange(r.Start, r.End, buf, &unreadable, func(s slabVisit) bool {
			if !visit(s) {
				stopped = true
			}
			return !stopped
		}))
		if stopped {
			break
		}
	}
	return scanned, mergeBad(unreadable), nil
}

// Census counts every cache's objects by visiting every slab page, and the
// counter method beside it. Pages missing from the dump make the census
// partial; the caches affected say how many slabs they lost where known.
func (w *Walker) Census() (*Census, error) {
	k := w.k
	type acc struct {
		slabs, total, alloc, slabFree, cpuFree, sheaf, rcu, unreadable int64
		torn, gone                                                     int64
		nodes                                                          map[int]*NodeStats
		corrupt                                                        []string
	}
	workers := max(1, min(runtime.GOMAXPROCS(0), 8))
	accs := make([]map[*cacheInfo]*acc, workers)
	for i := range accs {
		accs[i] = make(map[*cacheInfo]*acc)
	}
	var unknown sync.Map
	var liveUnknown atomic.Int64 // live: slabs naming no cache even when read again
	scanned, unreadable, err := w.scanSlabs(func(wk int, s slabVisit) {
		ci, cache := w.cacheOf(s.raw)
		if ci == nil && w.live {
			// Perhaps being made a slab of another cache as it was read.
			if raw, err := w.slabHeader(s.slabVA); err == nil {
				if ci, _ = w.cacheOf(raw); ci != nil {
					s.raw = raw
				}
			}
			if ci == nil {
				liveUnknown.Add(1)
				return
			}
		}
		if ci == nil {
			unknown.Store(s.slabVA, cache)
			return
		}
		a := accs[wk][ci]
		if a == nil {
			a = &acc{nodes: make(map[int]*NodeStats)}
			accs[wk][ci] = a
		}
		st, err := w.readSlab(ci, s.slabVA, s.pfn, s.raw)
		if w.live && torn(st, err) {
			var gone bool
			var tc tornCount
			if st, gone, tc = w.rereadLive(ci, s); gone {
				a.gone++
				return
			} else if st == nil {
				a.torn++
				a.slabs++
				a.total += tc.objects
				a.alloc += tc.inuse
				a.slabFree += tc.objects - tc.inuse
				node, _ := w.mm.NodeOf(s.pfn)
				nsx := a.nodes[node]
				if nsx == nil {
					nsx = &NodeStats{Node: node}
					a.nodes[node] = nsx
				}
				nsx.Slabs++
				nsx.Total += tc.objects
				nsx.Allocated += tc.inuse
				return
			}
			err = nil
		}
		if err != nil {
			a.corrupt = append(a.corrupt, err.Error())
			return
		}
		if st.rcuPending {
			// The kernel's counters already forgot it; its objects are all free.
			a.rcu++
			return
		}
		for _, err := range st.errs {
			if kernel.IsMissing(err) {
				a.unreadable++
			}
			a.corrupt = append(a.corrupt, err.Error())
		}
		objects := st.r.n
		alloc := st.allocated()
		a.slabs++
		a.total += int64(objects)
		a.slabFree += st.nFree
		a.cpuFree += st.nCPU
		a.sheaf += st.nSheaf
		a.alloc += alloc
		node, _ := w.mm.NodeOf(s.pfn)
		nsx := a.nodes[node]
		if nsx == nil {
			nsx = &NodeStats{Node: node}
			a.nodes[node] = nsx
		}
		nsx.Slabs++
		nsx.Total += int64(objects)
		nsx.Allocated += alloc
	})
	if err != nil {
		return nil, err
	}
	c := &Census{Schema: CensusSchema, Release: k.Release(), Dump: k.Path(), Method: "census",
		PagesScanned: scanned.read, PagesNotDumped: scanned.notDumped, Live: w.live}
	if n := k.ZeroFilled(); n > 0 {
		// --zero-fill: the result must say it stands partly on invented zeros.
		c.Warnings = append(c.Warnings, fmt.Sprintf("%d reads of memory missing from the dump returned zeros (--zero-fill): counts may be wrong", n))
		c.Partial = true
	}
	c.Warnings = append(c.Warnings, k.Warnings()...)
	for _, e := range unreadable {
		c.Warnings = append(c.Warnings, e.String())
	}
	if len(unreadable) > 0 || w.lost > 0 || w.namesLost > 0 {
		c.Partial = true
	}
	if n := liveUnknown.Load(); n > 0 {
		c.Warnings = append(c.Warnings, fmt.Sprintf("live kernel: %d slab pages named no cache when read, twice (being allocated or freed): not counted", n))
	}
	unknown.Range(func(slab, cache any) bool {
		c.Warnings = append(c.Warnings, fmt.Sprintf("slab %#x belongs to %#x, not a cache on slab_caches", slab, cache))
		return true
	})
	for _, ci := range w.caches {
		// A copy: the census is the caller's, and a second Census call
		// must not change the first one's result.
		cs := new(CacheStats)
		*cs = *ci.stats
		total := &acc{nodes: make(map[int]*NodeStats)}
		for _, m := range accs {
			a := m[ci]
			if a == nil {
				continue
			}
			total.slabs += a.slabs
			total.total += a.total
			total.alloc += a.alloc
			total.slabFree += a.slabFree
			total.cpuFree += a.cpuFree
			total.sheaf += a.sheaf
			total.rcu += a.rcu
			total.unreadable += a.unreadable
			total.torn += a.torn
			total.gone += a.gone
			total.corrupt = append(total.corrupt, a.corrupt...)
			for n, ns := range a.nodes {
				t := total.nodes[n]
				if t == nil {
					t = &NodeStats{Node: n}
					total.nodes[n] = t
				}
				t.Slabs += ns.Slabs
				t.Total += ns.Total
				t.Allocated += ns.Allocated
			}
		}
		cs.Slabs, cs.Total, cs.Allocated = total.slabs, total.total, total.alloc
		cs.Free = FreeCounts{SlabFreelists: total.slabFree, CPUFreelists: total.cpuFree, Sheaves: total.sheaf}
		cs.RCUPendingSlabs = total.rcu
		cs.UnreadableSlabs = total.unreadable
		cs.TornSlabs, cs.GoneSlabs = total.torn, total.gone
		// A slab whose metadata is corrupt (a freelist that loops or leaves
		// the slab) was counted as far as it could be: the cache's counts
		// are not known to be right.
		if total.unreadable > 0 || len(total.corrupt) > 0 {
			c.Partial = true
		}
		sort.Strings(total.corrupt)
		cs.Corrupt = total.corrupt
		if len(cs.Corrupt) > 0 {
			// In the warnings too, so every command that prints them (owners,
			// summary, diff) names the address of what was corrupt.
			more := ""
			if len(cs.Corrupt) > 1 {
				more = fmt.Sprintf(" (and %d more)", len(cs.Corrupt)-1)
			}
			c.Warnings = append(c.Warnings, fmt.Sprintf("cache %s: corrupt slab metadata: %s%s", cs.Name, cs.Corrupt[0], more))
		}
		cs.Nodes = nil
		for _, ns := range total.nodes {
			cs.Nodes = append(cs.Nodes, *ns)
		}
		sort.Slice(cs.Nodes, func(i, j int) bool { return cs.Nodes[i].Node < cs.Nodes[j].Node })
		var problems []string
		var perNode map[int]NodeStats
		cs.Counters, perNode, problems = w.counters(ci)
		for node, kn := range perNode {
			if total.nodes[node] == nil && kn.KernelSlabs > 0 {
				cs.Nodes = append(cs.Nodes, NodeStats{Node: node}) // slabs the census did not see
			}
		}
		for i := range cs.Nodes {
			kn := perNode[cs.Nodes[i].Node]
			cs.Nodes[i].Partial, cs.Nodes[i].KernelSlabs, cs.Nodes[i].KernelTotal = kn.Partial, kn.KernelSlabs, kn.KernelTotal
		}
		sort.Slice(cs.Nodes, func(i, j int) bool { return cs.Nodes[i].Node < cs.Nodes[j].Node })
		for _, p := range problems {
			c.Warnings = append(c.Warnings, fmt.Sprintf("cache %s: counters: %s", cs.Name, p))
		}
		w.explain(cs, len(unreadable) > 0 || k.ZeroFilled() > 0)
		if w.live {
			explainLive(cs)
		}
		if cs.UnreadableSlabs > 0 {
			c.Partial = true
		}
		c.Caches = append(c.Caches, cs)
	}
	c.FreelistEncoding = w.Encoding()
	c.Warnings = append(c.Warnings, w.Warnings()...)
	return c, nil
}

// explain compares the census with the counters and says why they differ
// when the reason is known.
func (w *Walker) explain(cs *CacheStats, scanIncomplete bool) {
	cnt := cs.Counters
	if cnt.Unavailable != "" {
		// No counters to compare with (CONFIG_SLUB_DEBUG off): the census
		// stands alone, and cannot disagree.
		return
	}
	// Sheaf objects are free to users but allocated from the slabs' view,
	// which is what the counters (and crash, and /proc/slabinfo) report.
	if cs.Allocated+cs.Free.Sheaves == cnt.Allocated && cs.Total == cnt.Total && cs.Slabs == cnt.Slabs {
		if cs.Free.Sheaves > 0 {
			cs.Why = fmt.Sprintf("%d free objects sit in sheaves: the counters count them as allocated", cs.Free.Sheaves)
		}
		return
	}
	if scanIncomplete && cs.Slabs < cnt.Slabs {
		// The kernel knows of slabs the census could not reach: their struct
		// pages are missing from the dump. That is partial, not a disagreement.
		cs.UnreadableSlabs += cnt.Slabs - cs.Slabs
		cs.Why = fmt.Sprintf("%d of the kernel's %d slabs lie where the dump has no struct pages (missing, or zero-filled)", cnt.Slabs-cs.Slabs, cnt.Slabs)
		return
	}
	cs.Disagree = true
	switch {
	case cs.UnreadableSlabs > 0:
		cs.Why = fmt.Sprintf("%d slabs could not be read from the dump", cs.UnreadableSlabs)
	case len(cs.Corrupt) > 0:
		cs.Why = "corrupt slab metadata: " + cs.Corrupt[0]
	default:
		cs.Why = fmt.Sprintf("census %d/%d/%d (allocated/total/slabs), counters %d/%d/%d: the kernel's counters are racy, stale or corrupt",
			cs.Allocated, cs.Total, cs.Slabs, cnt.Allocated, cnt.Total, cnt.Slabs)
	}
}

// cacheOf is the cache a slab's struct slab names (nil when it names none
// on slab_caches), and the kmem_cache address it holds.
func (w *Walker) cacheOf(raw []byte) (*cacheInfo, uint64) {
	cache, err := w.l.slabCache.Uint(raw)
	if err != nil {
		return nil, 0
	}
	return w.byAddr[cache], cache
}
