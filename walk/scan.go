package walk

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sort"
	"sync"

	"github.com/vmleak/vmleak/kernel"
)

// x86_64 sparsemem (arch/x86/include/asm/sparsemem.h).
const (
	sectionSizeBits  = 27
	sectionHasMemMap = 1 << 1
	maxSections      = 1 << 25 // 4 PiB of 128 MiB sections: bounds a corrupt count
)

// pfnRange is a run of page frames whose struct pages exist.
type pfnRange struct{ start, end uint64 }

// memoryRanges returns the pfn ranges of present memory sections, from
// mem_section (SPARSEMEM_EXTREME: an array of root pointers to arrays of
// struct mem_section). If those cannot be read (pages missing from the
// dump), the sections holding the dump's physical ranges stand in.
func (w *Walker) memoryRanges() ([]pfnRange, error) {
	rs, err := w.sectionRanges()
	if err == nil {
		return rs, nil
	}
	w.warnf("%v; scanning the memory sections of the dump's physical ranges instead", err)
	pfnPerSection := uint64(1) << (sectionSizeBits - 12)
	ps := w.k.Dump.PageSize()
	for _, r := range w.k.Dump.PhysRanges() {
		start := r.Start / ps / pfnPerSection * pfnPerSection
		end := (r.End/ps + pfnPerSection - 1) / pfnPerSection * pfnPerSection
		if n := len(rs); n > 0 && rs[n-1].end >= start {
			rs[n-1].end = max(rs[n-1].end, end)
		} else {
			rs = append(rs, pfnRange{start, end})
		}
	}
	if len(rs) == 0 {
		return nil, err
	}
	return rs, nil
}

func (w *Walker) sectionRanges() ([]pfnRange, error) {
	k := w.k
	ms := structType(k, "mem_section")
	if ms == nil || ms.Size == 0 {
		return nil, fmt.Errorf("walk: no struct mem_section")
	}
	mapOff := probe(k, ms, "section_mem_map")
	perRoot := k.Dump.PageSize() / uint64(ms.Size)
	highest, err := k.Var("__highest_present_section_nr", "unsigned long").Uint()
	if err != nil {
		return nil, err
	}
	if highest >= maxSections {
		return nil, fmt.Errorf("walk: __highest_present_section_nr %d is implausible", highest)
	}
	rootsVA, err := k.Var("mem_section", "unsigned long").Uint()
	if err != nil {
		return nil, err
	}
	pfnPerSection := uint64(1) << (sectionSizeBits - 12)
	var out []pfnRange
	var root uint64
	buf := make([]byte, k.Dump.PageSize())
	for nr := uint64(0); nr <= highest; nr++ {
		if nr%perRoot == 0 {
			root, err = k.ReadPtr(rootsVA + nr/perRoot*8)
			if err != nil {
				return nil, fmt.Errorf("walk: mem_section root %d: %w", nr/perRoot, err)
			}
			if root != 0 {
				if err := k.ReadVirt(buf, root); err != nil {
					return nil, fmt.Errorf("walk: mem_section root %d at %#x: %w", nr/perRoot, root, err)
				}
			}
		}
		if root == 0 {
			continue
		}
		smm := mapOff.u64(buf[(nr%perRoot)*uint64(ms.Size):])
		if smm&sectionHasMemMap == 0 {
			continue
		}
		start := nr * pfnPerSection
		if n := len(out); n > 0 && out[n-1].end == start {
			out[n-1].end += pfnPerSection
		} else {
			out = append(out, pfnRange{start, start + pfnPerSection})
		}
	}
	return out, nil
}

// slabVisit is one slab page found by the scan.
type slabVisit struct {
	pfn, slabVA uint64
	raw         []byte // the struct slab bytes
}

// scanSlabs calls visit for every slab head page of present memory, from
// workers running in parallel over disjoint pfn chunks. It returns the number
// of struct pages scanned and the pfn chunks that could not be read.
func (w *Walker) scanSlabs(visit func(worker int, s slabVisit)) (scanned uint64, unreadable []badRange, err error) {
	ranges, err := w.memoryRanges()
	if err != nil {
		return 0, nil, err
	}
	const chunk = 1 << 12 // pfns per work item: 256 KiB of struct pages
	type item struct{ start, end uint64 }
	var items []item
	for _, r := range ranges {
		for s := r.start; s < r.end; s += chunk {
			items = append(items, item{s, min(s+chunk, r.end)})
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
			var n uint64
			var errs []badRange
			buf := make([]byte, scanBatch*w.l.pageSize)
			for it := range next {
				n += w.scanRange(it.start, it.end, buf, &errs, func(s slabVisit) bool { visit(wk, s); return true })
			}
			mu.Lock()
			scanned += n
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

// scanBatch struct pages (4 KiB on x86_64) are read at once: page-aligned,
// so a missing vmemmap page costs only its own 64 pfns.
const scanBatch = 64

// scanRange visits the slab head pages among pfns [start, end); it returns
// the number of struct pages read, and stops early when visit returns false.
func (w *Walker) scanRange(start, end uint64, buf []byte, errs *[]badRange, visit func(slabVisit) bool) uint64 {
	ps := uint64(w.l.pageSize)
	var n uint64
	for pfn := start; pfn < end; pfn += scanBatch {
		cnt := min(scanBatch, end-pfn)
		va := w.k.VmemmapBase + pfn*ps
		b := buf[:cnt*ps]
		if err := w.k.ReadVirt(b, va); err != nil {
			*errs = append(*errs, badRange{pfn, pfn + cnt, err})
			continue
		}
		n += cnt
		for i := uint64(0); i < cnt; i++ {
			p := b[i*ps : (i+1)*ps]
			if w.isSlab(p) && !visit(slabVisit{pfn: pfn + i, slabVA: va + i*ps, raw: p}) {
				return n
			}
		}
	}
	return n
}

// scanSlabsOrdered is scanSlabs on one goroutine, in pfn order, stoppable.
func (w *Walker) scanSlabsOrdered(visit func(slabVisit) bool) (scanned uint64, unreadable []badRange, err error) {
	ranges, err := w.memoryRanges()
	if err != nil {
		return 0, nil, err
	}
	buf := make([]byte, scanBatch*w.l.pageSize)
	stopped := false
	for _, r := range ranges {
		scanned += w.scanRange(r.start, r.end, buf, &unreadable, func(s slabVisit) bool {
			if !visit(s) {
				stopped = true
			}
			return !stopped
		})
		if stopped {
			break
		}
	}
	return scanned, mergeBad(unreadable), nil
}

// isSlab tells whether a struct page is the head of a slab.
func (w *Walker) isSlab(p []byte) bool {
	l := w.l
	switch l.slabTypeMode {
	case slabByTypeByte:
		// 4ffca5a96678 (v6.12): page_type holds PGTY_<type> in its top byte.
		return l.pageType.u32(p)>>24 == l.slabPageType
	case slabByTypeBit:
		// 46df8e73a4a3 (v6.10): a type bit is set by clearing it under PAGE_TYPE_BASE.
		return l.pageType.u32(p)&(l.pageTypeBase|l.pageTypeSlab) == l.pageTypeBase
	}
	return binary.LittleEndian.Uint64(p[l.pageFlags.off:])&(1<<uint(l.slabFlagBit)) != 0
}

// Census counts every cache's objects by visiting every slab page, and the
// counter method beside it. Pages missing from the dump make the census
// partial; the caches affected say how many slabs they lost where known.
func (w *Walker) Census() (*Census, error) {
	k := w.k
	type acc struct {
		slabs, total, alloc, slabFree, cpuFree, sheaf, rcu, unreadable int64
		nodes                                                          map[int]*NodeStats
		corrupt                                                        []string
	}
	workers := max(1, min(runtime.GOMAXPROCS(0), 8))
	accs := make([]map[*cacheInfo]*acc, workers)
	for i := range accs {
		accs[i] = make(map[*cacheInfo]*acc)
	}
	nodeOf := w.nodeRanges()
	var unknown sync.Map
	scanned, unreadable, err := w.scanSlabs(func(wk int, s slabVisit) {
		l := w.l
		ci := w.byAddr[l.slabCache.u64(s.raw)]
		if ci == nil {
			unknown.Store(s.slabVA, l.slabCache.u64(s.raw))
			return
		}
		a := accs[wk][ci]
		if a == nil {
			a = &acc{nodes: make(map[int]*NodeStats)}
			accs[wk][ci] = a
		}
		st, err := w.readSlab(ci, s.slabVA, s.pfn, s.raw)
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
		node := nodeOf(s.pfn)
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
	c := &Census{Release: k.Release, Dump: k.DumpPath, Method: "census", PagesScanned: scanned}
	for _, e := range unreadable {
		c.Warnings = append(c.Warnings, e.String())
	}
	if len(unreadable) > 0 || w.lost > 0 {
		c.Partial = true
	}
	unknown.Range(func(slab, cache any) bool {
		c.Warnings = append(c.Warnings, fmt.Sprintf("slab %#x belongs to %#x, not a cache on slab_caches", slab, cache))
		return true
	})
	for _, ci := range w.caches {
		cs := ci.stats
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
		if total.unreadable > 0 {
			c.Partial = true
		}
		sort.Strings(total.corrupt)
		cs.Corrupt = total.corrupt
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
		w.explain(cs, len(unreadable) > 0 || k.Dump.ZeroFilled() > 0)
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

// nodeRanges returns a pfn → NUMA node function from node_data[].
func (w *Walker) nodeRanges() func(pfn uint64) int {
	type nr struct {
		start, end uint64
		node       int
	}
	var rs []nr
	k := w.k
	base, err := k.Symbol("node_data")
	if err == nil && w.nrNodes > 1 {
		for n := 0; n < w.nrNodes; n++ {
			p, err := k.ReadPtr(base + uint64(n)*8)
			if err != nil || p == 0 {
				continue
			}
			pg := k.Object(p, "struct pglist_data")
			start, e1 := pg.Field("node_start_pfn").Uint()
			span, e2 := pg.Field("node_spanned_pages").Uint()
			if e1 == nil && e2 == nil {
				rs = append(rs, nr{start, start + span, n})
			}
		}
	}
	return func(pfn uint64) int {
		for _, r := range rs {
			if pfn >= r.start && pfn < r.end {
				return r.node
			}
		}
		return 0
	}
}
