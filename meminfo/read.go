package meminfo

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/vmleak/vmleak/kdwarf"
	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/kernel/mm"
)

// pageShift is PAGE_SHIFT on x86_64, the only architecture package kernel
// supports: show_val_kb prints pages << (PAGE_SHIFT - 10).
const pageShift = 12

// Bounds on walks over kernel data, so that corrupt memory cannot make Read
// spin or allocate without end.
const (
	maxBdevInodes = 1 << 20 // block-device inodes on blockdev_superblock
	maxPools      = 1 << 10 // zswap pools
)

type reader struct {
	k    *kernel.Kernel
	mm   *mm.MM
	out  *Meminfo
	zone statArray
	node statArray
	memo map[string]memoVal
}

type memoVal struct {
	v   int64
	err error
}

// statArray is vm_zone_stat or vm_node_stat: atomic_long_t[NR_VM_*_STAT_ITEMS].
type statArray struct {
	sym  string
	base uint64
	n    int64
	err  error
}

// Read reconstructs /proc/meminfo from the kernel's own counters, line by
// line in the order meminfo_proc_show prints them on this kernel. A line
// whose source cannot be read is left out with a warning; a line the kernel
// would not print (its config option is off) is left out silently.
func Read(k *kernel.Kernel) (*Meminfo, error) {
	if k == nil || !k.HasTypes() {
		return nil, errors.New("meminfo: kernel types (vmlinux) are needed")
	}
	m, err := mm.New(k)
	if err != nil {
		return nil, fmt.Errorf("meminfo: %w", err)
	}
	r := &reader{k: k, mm: m, out: &Meminfo{}, memo: map[string]memoVal{}}
	r.zone = r.statArray("vm_zone_stat", "NR_VM_ZONE_STAT_ITEMS")
	r.node = r.statArray("vm_node_stat", "NR_VM_NODE_STAT_ITEMS")
	if r.zone.err != nil && r.node.err != nil {
		return nil, fmt.Errorf("meminfo: no vmstat counters: %v; %v", r.zone.err, r.node.err)
	}
	r.lines()
	return r.out, nil
}

func (r *reader) warnf(format string, args ...any) {
	r.out.Warnings = append(r.out.Warnings, fmt.Sprintf(format, args...))
}

// add appends a line, or a warning when its value cannot be computed.
// get returns the value in pages when unit is "pages", else as printed.
func (r *reader) add(name, unit, source string, get func() (int64, error)) {
	v, err := get()
	if err != nil {
		r.warnf("%s: left out: %v", name, err)
		if kernel.IsMissing(err) {
			r.out.Partial = true
		}
		return
	}
	if unit == "pages" {
		v <<= pageShift - 10
		unit = "kB"
	}
	r.out.Lines = append(r.out.Lines, Line{Name: name, Value: v, Unit: unit, Source: source})
}

func (r *reader) pages(name, source string, get func() (int64, error)) {
	r.add(name, "pages", source, get)
}

func zero() (int64, error) { return 0, nil }

// once memoizes a value used by several lines.
func (r *reader) once(key string, f func() (int64, error)) (int64, error) {
	if m, ok := r.memo[key]; ok {
		return m.v, m.err
	}
	v, err := f()
	r.memo[key] = memoVal{v, err}
	return v, err
}

// ---- symbols and counters ----

func (r *reader) hasSym(name string) bool {
	_, err := r.k.Types().Symbol(name)
	return err == nil
}

func (r *reader) hasEnum(name string) bool {
	_, err := r.k.Types().Enumerator(name)
	return err == nil
}

func (r *reader) enum(name string) (int64, error) {
	v, err := r.k.Types().Enumerator(name)
	if err != nil {
		if errors.Is(err, kdwarf.ErrNotFound) {
			return 0, fmt.Errorf("no enumerator %s in this kernel's debuginfo", name)
		}
		return 0, err
	}
	return v, nil
}

// symAddr returns a global's run-time address and its symbol size, and
// whether that size is only an upper bound (kallsyms).
func (r *reader) symAddr(name string) (uint64, uint64, bool, error) {
	s, err := r.k.Types().Symbol(name)
	if err != nil {
		if errors.Is(err, kdwarf.ErrNotFound) {
			return 0, 0, false, fmt.Errorf("no symbol %s in this kernel", name)
		}
		return 0, 0, false, err
	}
	a, err := r.k.Symbol(name)
	return a, s.Size, s.SizeBound, err
}

func (r *reader) statArray(sym, nrItems string) statArray {
	a := statArray{sym: sym}
	base, size, bound, err := r.symAddr(sym)
	if err != nil {
		a.err = err
		return a
	}
	n, err := r.enum(nrItems)
	if err != nil {
		a.err = err
		return a
	}
	if size != 0 && uint64(n)*8 != size && !(bound && uint64(n)*8 <= size) {
		a.err = fmt.Errorf("%s is %d bytes, %s = %d items of 8", sym, size, nrItems, n)
		return a
	}
	a.base, a.n = base, n
	return a
}

// stat is global_zone_page_state / global_node_page_state_pages: the global
// atomic, clamped at 0 (per-CPU deltas are not folded in, as in the kernel).
func (r *reader) stat(a *statArray, item string) (int64, error) {
	if a.err != nil {
		return 0, a.err
	}
	i, err := r.enum(item)
	if err != nil {
		return 0, err
	}
	if i < 0 || i >= a.n {
		return 0, fmt.Errorf("%s = %d outside %s[%d]", item, i, a.sym, a.n)
	}
	v, err := r.k.Object(a.base+uint64(i)*8, "atomic_long_t").Field("counter").Int()
	if err != nil {
		return 0, fmt.Errorf("%s[%s]: %w", a.sym, item, err)
	}
	return max(v, 0), nil
}

func (r *reader) zoneStat(item string) func() (int64, error) {
	return func() (int64, error) { return r.stat(&r.zone, item) }
}

func (r *reader) nodeStat(item string) func() (int64, error) {
	return func() (int64, error) { return r.stat(&r.node, item) }
}

func sum(fs ...func() (int64, error)) func() (int64, error) {
	return func() (int64, error) {
		var t int64
		for _, f := range fs {
			v, err := f()
			if err != nil {
				return 0, err
			}
			t += v
		}
		return t, nil
	}
}

// ---- the lines, in meminfo_proc_show's order ----

func (r *reader) lines() {
	zs, ns := r.zoneStat, r.nodeStat
	// CONFIG_SWAP off: total_swapcache_pages() and si_swapinfo() are 0.
	swap := r.hasSym("nr_swap_pages")
	swapCache := ns("NR_SWAPCACHE")
	swapCacheSrc := "vm_node_stat[NR_SWAPCACHE]"
	switch {
	case !swap:
		swapCache, swapCacheSrc = zero, "0 (CONFIG_SWAP off)"
	case !r.hasEnum("NR_SWAPCACHE"):
		// The node stat came with b6038942480e (v5.12); before it
		// total_swapcache_pages() sums the swap address spaces (5.10).
		swapCache = func() (int64, error) { return r.once("swapcache", r.swapSpaces) }
		swapCacheSrc = "total_swapcache_pages(): Σ swapper_spaces[type][0..nr_swapper_spaces[type]).nrpages over the valid swap types"
	}

	r.pages("MemTotal", "_totalram_pages", r.totalram)
	r.pages("MemFree", "vm_zone_stat[NR_FREE_PAGES]", zs("NR_FREE_PAGES"))
	r.pages("MemAvailable", "si_mem_available(): NR_FREE_PAGES - totalreserve_pages + page cache and reclaimable kernel memory beyond min(half, Σ zone low watermarks)", r.available)
	r.pages("Buffers", "nr_blockdev_pages(): Σ i_mapping->nrpages over blockdev_superblock->s_inodes", r.buffers)
	r.pages("Cached", "vm_node_stat[NR_FILE_PAGES] - "+swapCacheSrc+" - Buffers, at least 0", func() (int64, error) {
		fp, err := ns("NR_FILE_PAGES")()
		if err != nil {
			return 0, err
		}
		sc, err := swapCache()
		if err != nil {
			return 0, err
		}
		b, err := r.buffers()
		if err != nil {
			return 0, fmt.Errorf("Buffers: %w", err)
		}
		return max(fp-sc-b, 0), nil
	})
	r.pages("SwapCached", swapCacheSrc, swapCache)
	r.pages("Active", "vm_node_stat[NR_ACTIVE_ANON] + vm_node_stat[NR_ACTIVE_FILE]", sum(ns("NR_ACTIVE_ANON"), ns("NR_ACTIVE_FILE")))
	r.pages("Inactive", "vm_node_stat[NR_INACTIVE_ANON] + vm_node_stat[NR_INACTIVE_FILE]", sum(ns("NR_INACTIVE_ANON"), ns("NR_INACTIVE_FILE")))
	r.pages("Active(anon)", "vm_node_stat[NR_ACTIVE_ANON]", ns("NR_ACTIVE_ANON"))
	r.pages("Inactive(anon)", "vm_node_stat[NR_INACTIVE_ANON]", ns("NR_INACTIVE_ANON"))
	r.pages("Active(file)", "vm_node_stat[NR_ACTIVE_FILE]", ns("NR_ACTIVE_FILE"))
	r.pages("Inactive(file)", "vm_node_stat[NR_INACTIVE_FILE]", ns("NR_INACTIVE_FILE"))
	r.pages("Unevictable", "vm_node_stat[NR_UNEVICTABLE]", ns("NR_UNEVICTABLE"))
	r.pages("Mlocked", "vm_zone_stat[NR_MLOCK]", zs("NR_MLOCK"))
	// CONFIG_HIGHMEM lines: never on x86_64.

	if swap {
		r.pages("SwapTotal", "total_swap_pages + inuse_pages of swap areas being swapped off", func() (int64, error) {
			t, _, err := r.swapinfo()
			return t, err
		})
		r.pages("SwapFree", "nr_swap_pages + inuse_pages of swap areas being swapped off", func() (int64, error) {
			_, f, err := r.swapinfo()
			return f, err
		})
	} else {
		r.pages("SwapTotal", "0 (CONFIG_SWAP off)", zero)
		r.pages("SwapFree", "0 (CONFIG_SWAP off)", zero)
	}
	if r.hasSym("zswap_stored_pages") { // CONFIG_ZSWAP
		r.zswap()
	}
	r.pages("Dirty", "vm_node_stat[NR_FILE_DIRTY]", ns("NR_FILE_DIRTY"))
	r.pages("Writeback", "vm_node_stat[NR_WRITEBACK]", ns("NR_WRITEBACK"))
	r.pages("AnonPages", "vm_node_stat[NR_ANON_MAPPED]", ns("NR_ANON_MAPPED"))
	r.pages("Mapped", "vm_node_stat[NR_FILE_MAPPED]", ns("NR_FILE_MAPPED"))
	r.pages("Shmem", "vm_node_stat[NR_SHMEM]", ns("NR_SHMEM"))
	// The *_B slab items are kept in pages at node and global level
	// (__mod_node_page_state shifts bytes to pages).
	r.pages("KReclaimable", "vm_node_stat[NR_SLAB_RECLAIMABLE_B] + vm_node_stat[NR_KERNEL_MISC_RECLAIMABLE]", sum(ns("NR_SLAB_RECLAIMABLE_B"), ns("NR_KERNEL_MISC_RECLAIMABLE")))
	r.pages("Slab", "vm_node_stat[NR_SLAB_RECLAIMABLE_B] + vm_node_stat[NR_SLAB_UNRECLAIMABLE_B]", sum(ns("NR_SLAB_RECLAIMABLE_B"), ns("NR_SLAB_UNRECLAIMABLE_B")))
	r.pages("SReclaimable", "vm_node_stat[NR_SLAB_RECLAIMABLE_B]", ns("NR_SLAB_RECLAIMABLE_B"))
	r.pages("SUnreclaim", "vm_node_stat[NR_SLAB_UNRECLAIMABLE_B]", ns("NR_SLAB_UNRECLAIMABLE_B"))
	r.add("KernelStack", "kB", "vm_node_stat[NR_KERNEL_STACK_KB] (kept in kB)", ns("NR_KERNEL_STACK_KB"))
	if r.hasEnum("NR_KERNEL_SCS_KB") { // CONFIG_SHADOW_CALL_STACK
		r.add("ShadowCallStack", "kB", "vm_node_stat[NR_KERNEL_SCS_KB] (kept in kB)", ns("NR_KERNEL_SCS_KB"))
	}
	r.pages("PageTables", "vm_node_stat[NR_PAGETABLE]", ns("NR_PAGETABLE"))
	// The line came with its node stat (ebc97a52b5d6, v6.0): the debuginfo's
	// enum node_stat_item is the kernel's whole list, so without the item
	// the kernel does not print the line (5.10).
	if r.hasEnum("NR_SECONDARY_PAGETABLE") {
		r.pages("SecPageTables", "vm_node_stat[NR_SECONDARY_PAGETABLE]", ns("NR_SECONDARY_PAGETABLE"))
	}
	r.pages("NFS_Unstable", "0 (constant since 5.8)", zero)
	if r.hasEnum("NR_BOUNCE") {
		r.pages("Bounce", "vm_zone_stat[NR_BOUNCE]", zs("NR_BOUNCE"))
	} else {
		r.pages("Bounce", "0 (constant: NR_BOUNCE removed from this kernel)", zero)
	}
	if r.hasEnum("NR_WRITEBACK_TEMP") {
		r.pages("WritebackTmp", "vm_node_stat[NR_WRITEBACK_TEMP]", ns("NR_WRITEBACK_TEMP"))
	} else {
		r.pages("WritebackTmp", "0 (constant: NR_WRITEBACK_TEMP removed from this kernel)", zero)
	}
	r.pages("CommitLimit", "vm_commit_limit(): sysctl_overcommit_kbytes, or (totalram - hugetlb pages) * sysctl_overcommit_ratio / 100; + total_swap_pages", r.commitLimit)
	r.pages("Committed_AS", "percpu_counter_sum_positive(&vm_committed_as): count + per-CPU counters", r.committed)
	r.add("VmallocTotal", "kB", "(VMALLOC_END - VMALLOC_START) >> 10", r.vmallocTotal)
	if r.hasSym("nr_vmalloc_pages") {
		r.pages("VmallocUsed", "nr_vmalloc_pages", func() (int64, error) { return r.k.GlobalInt("nr_vmalloc_pages", "atomic_long_t") })
	} else {
		r.pages("VmallocUsed", "vm_node_stat[NR_VMALLOC]", ns("NR_VMALLOC"))
	}
	r.pages("VmallocChunk", "0 (constant since 5.3)", zero)
	r.pages("Percpu", "pcpu_nr_populated * pcpu_nr_units", func() (int64, error) {
		p, err := r.k.GlobalInt("pcpu_nr_populated", "unsigned long")
		if err != nil {
			return 0, err
		}
		u, err := r.k.GlobalInt("pcpu_nr_units", "int")
		return p * u, err
	})
	if r.hasSym("early_memtest_done") { // CONFIG_MEMTEST, 6.3+
		r.memtest()
	}
	if r.hasSym("num_poisoned_pages") { // CONFIG_MEMORY_FAILURE
		r.pages("HardwareCorrupted", "num_poisoned_pages", func() (int64, error) { return r.k.GlobalInt("num_poisoned_pages", "atomic_long_t") })
	}
	if r.hasSym("transparent_hugepage_flags") { // CONFIG_TRANSPARENT_HUGEPAGE
		r.pages("AnonHugePages", "vm_node_stat[NR_ANON_THPS]", ns("NR_ANON_THPS"))
		r.pages("ShmemHugePages", "vm_node_stat[NR_SHMEM_THPS]", ns("NR_SHMEM_THPS"))
		r.pages("ShmemPmdMapped", "vm_node_stat[NR_SHMEM_PMDMAPPED]", ns("NR_SHMEM_PMDMAPPED"))
		r.pages("FileHugePages", "vm_node_stat[NR_FILE_THPS]", ns("NR_FILE_THPS"))
		r.pages("FilePmdMapped", "vm_node_stat[NR_FILE_PMDMAPPED]", ns("NR_FILE_PMDMAPPED"))
	}
	// totalcma_pages exists without CONFIG_CMA on older kernels; mm/cma.c's
	// cma_area_count does not.
	if r.hasSym("cma_area_count") {
		r.pages("CmaTotal", "totalcma_pages", func() (int64, error) { return r.k.GlobalInt("totalcma_pages", "unsigned long") })
		r.pages("CmaFree", "vm_zone_stat[NR_FREE_CMA_PAGES]", zs("NR_FREE_CMA_PAGES"))
	}
	if r.hasEnum("NR_UNACCEPTED") { // CONFIG_UNACCEPTED_MEMORY
		r.pages("Unaccepted", "vm_zone_stat[NR_UNACCEPTED]", zs("NR_UNACCEPTED"))
	}
	if r.hasEnum("NR_BALLOON_PAGES") {
		r.pages("Balloon", "vm_node_stat[NR_BALLOON_PAGES]", ns("NR_BALLOON_PAGES"))
	}
	if r.hasEnum("NR_GPU_ACTIVE") {
		r.pages("GPUActive", "vm_node_stat[NR_GPU_ACTIVE]", ns("NR_GPU_ACTIVE"))
		r.pages("GPUReclaim", "vm_node_stat[NR_GPU_RECLAIM]", ns("NR_GPU_RECLAIM"))
	}
	if r.hasSym("hstates") { // CONFIG_HUGETLB_PAGE
		r.hugetlb()
	}
	r.directMap()
}

func (r *reader) totalram() (int64, error) {
	return r.once("totalram", func() (int64, error) { return r.k.GlobalInt("_totalram_pages", "atomic_long_t") })
}

// ---- MemAvailable ----

func (r *reader) available() (int64, error) {
	free, err := r.stat(&r.zone, "NR_FREE_PAGES")
	if err != nil {
		return 0, err
	}
	reserve, wl, err := r.availableInputs()
	if err != nil {
		return 0, err
	}
	pc, err := sum(r.nodeStat("NR_ACTIVE_FILE"), r.nodeStat("NR_INACTIVE_FILE"))()
	if err != nil {
		return 0, err
	}
	rec, err := sum(r.nodeStat("NR_SLAB_RECLAIMABLE_B"), r.nodeStat("NR_KERNEL_MISC_RECLAIMABLE"))()
	if err != nil {
		return 0, err
	}
	return siMemAvailable(free, reserve, wl, pc, rec), nil
}

// siMemAvailable is si_mem_available()'s arithmetic, all in pages: free is
// NR_FREE_PAGES, pagecache the file LRUs, reclaimable NR_SLAB_RECLAIMABLE_B
// + NR_KERNEL_MISC_RECLAIMABLE, wmarkLow the sum of the zones' low
// watermarks (with boost). Identical in 6.1, 6.12 and 7.2.
func siMemAvailable(free, reserve, wmarkLow, pagecache, reclaimable int64) int64 {
	avail := free - reserve
	avail += pagecache - min(pagecache/2, wmarkLow)
	avail += reclaimable - min(reclaimable/2, wmarkLow)
	return max(avail, 0)
}

// availableInputs returns totalreserve_pages and the summed low watermarks.
func (r *reader) availableInputs() (reserve, wmarkLow int64, err error) {
	reserve, err = r.k.GlobalInt("totalreserve_pages", "unsigned long")
	if err != nil {
		return 0, 0, err
	}
	wmarkLow, err = r.wmarkLow()
	return reserve, wmarkLow, err
}

// wmarkLow is Σ low_wmark_pages(zone) for_each_zone: every zone of every
// online node, populated or not.
func (r *reader) wmarkLow() (int64, error) {
	return r.once("wmarkLow", func() (int64, error) {
		low, err := r.enum("WMARK_LOW")
		if err != nil {
			return 0, err
		}
		nodes, err := r.mm.Nodes()
		if err != nil {
			return 0, err
		}
		var total int64
		for _, n := range nodes {
			zones := r.k.Object(n.Pgdat, "struct pglist_data").Field("node_zones")
			if zones.Err() != nil {
				return 0, zones.Err()
			}
			n := zones.Type().Strip().Len
			for z := range n {
				zone := zones.Index(z)
				wm := "_watermark"
				if !zone.HasField(wm) {
					wm = "watermark" // before 5.0
				}
				w, err := zone.Field(wm).Index(low).Uint()
				if err != nil {
					return 0, err
				}
				total += int64(w)
				if zone.HasField("watermark_boost") {
					b, err := zone.Field("watermark_boost").Uint()
					if err != nil {
						return 0, err
					}
					total += int64(b)
				}
			}
		}
		return total, nil
	})
}

// ---- Buffers ----

func (r *reader) buffers() (int64, error) {
	return r.once("buffers", func() (int64, error) {
		a, _, _, err := r.symAddr("blockdev_superblock")
		if err != nil {
			return 0, err
		}
		sb, err := r.k.ReadPtr(a)
		if err != nil {
			return 0, fmt.Errorf("blockdev_superblock: %w", err)
		}
		if sb == 0 {
			return 0, errors.New("blockdev_superblock is NULL")
		}
		head := r.k.Object(sb, "struct super_block").Field("s_inodes")
		if head.Err() != nil {
			return 0, head.Err()
		}
		var total int64
		for e, err := range r.k.ListHead(head.Addr(), maxBdevInodes) {
			if err != nil {
				return 0, fmt.Errorf("blockdev_superblock->s_inodes: %w", err)
			}
			inode := r.k.Object(e, "struct list_head").ContainerOf("struct inode", "i_sb_list")
			n, err := inode.Field("i_mapping").Deref().Field("nrpages").Uint()
			if err != nil {
				return 0, err
			}
			total += int64(n)
		}
		return total, nil
	})
}

// ---- swap ----

// swapinfo is si_swapinfo(): totalswap and freeswap in pages.
// swapSpaces is total_swapcache_pages() of kernels before v5.12: the pages
// of every swap type's address spaces, for the types below nr_swapfiles
// whose swap_info is set and (where the flag exists, v5.6 to v5.15) has
// SWP_VALID, as get_swap_device() requires.
func (r *reader) swapSpaces() (int64, error) {
	n, err := r.k.GlobalInt("nr_swapfiles", "unsigned int")
	if err != nil {
		return 0, err
	}
	info, infoSize, _, err := r.symAddr("swap_info")
	if err != nil {
		return 0, err
	}
	spaces, spacesSize, _, err := r.symAddr("swapper_spaces")
	if err != nil {
		return 0, err
	}
	counts, _, _, err := r.symAddr("nr_swapper_spaces")
	if err != nil {
		return 0, err
	}
	if n < 0 || uint64(n) > infoSize/8 || uint64(n) > spacesSize/8 {
		return 0, fmt.Errorf("nr_swapfiles %d beyond swap_info[%d] or swapper_spaces[%d]", n, infoSize/8, spacesSize/8)
	}
	var valid uint64
	if v, err := r.enum("SWP_VALID"); err == nil {
		valid = uint64(v)
	}
	asSize, err := r.k.SizeOf("struct address_space")
	if err != nil {
		return 0, err
	}
	var pages int64
	for t := range n {
		p, err := r.k.ReadPtr(info + uint64(t)*8)
		if err != nil {
			return 0, fmt.Errorf("swap_info[%d]: %w", t, err)
		}
		if p == 0 {
			continue
		}
		flags, err := r.k.Object(p, "struct swap_info_struct").Field("flags").Uint()
		if err != nil {
			return 0, err
		}
		if flags&valid != valid {
			continue
		}
		sp, err := r.k.ReadPtr(spaces + uint64(t)*8)
		if err != nil {
			return 0, fmt.Errorf("swapper_spaces[%d]: %w", t, err)
		}
		nr, err := r.k.Object(counts+uint64(t)*4, "unsigned int").Uint()
		if err != nil {
			return 0, fmt.Errorf("nr_swapper_spaces[%d]: %w", t, err)
		}
		// One space per 64 MiB of swap (SWAP_ADDRESS_SPACE_SHIFT 14): a
		// 16 TiB swap area has 2^18.
		if sp == 0 || nr > 1<<18 {
			return 0, fmt.Errorf("swap type %d: swapper_spaces %#x, nr_swapper_spaces %d", t, sp, nr)
		}
		for j := range nr {
			v, err := r.k.Object(sp+j*uint64(asSize), "struct address_space").Field("nrpages").Int()
			if err != nil {
				return 0, fmt.Errorf("swapper_spaces[%d][%d]: %w", t, j, err)
			}
			pages += v
		}
	}
	return pages, nil
}

func (r *reader) swapinfo() (total, free int64, err error) {
	tot, err := r.k.GlobalInt("total_swap_pages", "long")
	if err != nil {
		return 0, 0, err
	}
	fr, err := r.k.GlobalInt("nr_swap_pages", "atomic_long_t")
	if err != nil {
		return 0, 0, err
	}
	n, err := r.k.GlobalInt("nr_swapfiles", "unsigned int")
	if err != nil {
		return 0, 0, err
	}
	arr, arrSize, _, err := r.symAddr("swap_info")
	if err != nil {
		return 0, 0, err
	}
	if n < 0 || uint64(n) > arrSize/8 {
		return 0, 0, fmt.Errorf("nr_swapfiles %d beyond swap_info[%d]", n, arrSize/8)
	}
	used, err := r.enum("SWP_USED")
	if err != nil {
		return 0, 0, err
	}
	writeok, err := r.enum("SWP_WRITEOK")
	if err != nil {
		return 0, 0, err
	}
	var unused int64
	for t := range n {
		p, err := r.k.ReadPtr(arr + uint64(t)*8)
		if err != nil {
			return 0, 0, fmt.Errorf("swap_info[%d]: %w", t, err)
		}
		if p == 0 {
			continue
		}
		si := r.k.Object(p, "struct swap_info_struct")
		flags, err := si.Field("flags").Uint()
		if err != nil {
			return 0, 0, err
		}
		if flags&uint64(used) == 0 || flags&uint64(writeok) != 0 {
			continue
		}
		in := si.Field("inuse_pages")
		if in.Err() == nil && in.Type().Strip().Kind == kdwarf.Struct {
			// 6.13+: atomic_long_t; swap_usage_in_pages() masks SWAP_USAGE_OFFLIST_BIT.
			u, err := in.Field("counter").Uint()
			if err != nil {
				return 0, 0, err
			}
			unused += int64(u &^ (1 << 62))
			continue
		}
		u, err := in.Uint()
		if err != nil {
			return 0, 0, err
		}
		unused += int64(u)
	}
	return tot + unused, fr + unused, nil
}

// ---- zswap ----

func (r *reader) zswap() {
	if r.hasSym("zswap_pool_total_size") {
		// Before 6.10: a u64 byte count, printed >> 10.
		r.add("Zswap", "kB", "zswap_pool_total_size >> 10", func() (int64, error) {
			b, err := r.k.GlobalInt("zswap_pool_total_size", "u64")
			return b >> 10, err
		})
	} else {
		r.pages("Zswap", "zswap_total_pages(): Σ pool pages over zswap_pools", r.zswapTotalPages)
	}
	r.pages("Zswapped", "zswap_stored_pages", func() (int64, error) { return r.k.GlobalInt("zswap_stored_pages", "atomic_long_t", "atomic_t") })
}

func (r *reader) zswapTotalPages() (int64, error) {
	head, _, _, err := r.symAddr("zswap_pools")
	if err != nil {
		return 0, err
	}
	var total int64
	for e, err := range r.k.ListHead(head, maxPools) {
		if err != nil {
			return 0, fmt.Errorf("zswap_pools: %w", err)
		}
		pool := r.k.Object(e, "struct list_head").ContainerOf("struct zswap_pool", "list")
		var zs kernel.Value
		switch {
		case pool.HasField("zs_pool"): // 6.17+: zsmalloc only
			zs = pool.Field("zs_pool").Deref()
		case pool.HasField("zpool"):
			zp := pool.Field("zpool").Deref()
			typ, err := zp.Field("driver").Deref().Field("type").String()
			if err != nil {
				return 0, err
			}
			if typ != "zsmalloc" {
				return 0, fmt.Errorf("zswap pool with zpool driver %q (only zsmalloc is read)", typ)
			}
			p, err := zp.Field("pool").Ptr()
			if err != nil {
				return 0, err
			}
			zs = r.k.Object(p, "struct zs_pool")
		default:
			return 0, errors.New("struct zswap_pool has neither zs_pool nor zpool")
		}
		n, err := zs.Field("pages_allocated").Field("counter").Int()
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// ---- CommitLimit, Committed_AS ----

// hugetlbTotal is hugetlb_total_pages(): Σ nr_huge_pages << order.
func (r *reader) hugetlbTotal() (int64, error) {
	return r.once("hugetlbTotal", func() (int64, error) {
		if !r.hasSym("hstates") {
			return 0, nil
		}
		hs, err := r.hstates()
		if err != nil {
			return 0, err
		}
		var t int64
		for _, h := range hs {
			t += h.nr << h.order
		}
		return t, nil
	})
}

func (r *reader) commitLimit() (int64, error) {
	kb, err := r.k.GlobalInt("sysctl_overcommit_kbytes", "unsigned long")
	if err != nil {
		return 0, err
	}
	var allowed int64
	if kb != 0 {
		allowed = kb >> (pageShift - 10)
	} else {
		tr, err := r.totalram()
		if err != nil {
			return 0, err
		}
		ht, err := r.hugetlbTotal()
		if err != nil {
			return 0, err
		}
		ratio, err := r.k.GlobalInt("sysctl_overcommit_ratio", "int")
		if err != nil {
			return 0, err
		}
		allowed = int64(uint64(tr-ht) * uint64(ratio) / 100)
	}
	if r.hasSym("total_swap_pages") {
		sw, err := r.k.GlobalInt("total_swap_pages", "long")
		if err != nil {
			return 0, err
		}
		allowed += sw
	}
	return allowed, nil
}

// committed is percpu_counter_sum_positive(&vm_committed_as): count plus
// the per-CPU s32 counters of the online CPUs (and, since 6.5, of the dying
// ones: for_each_cpu_or(cpu, cpu_online_mask, cpu_dying_mask)).
func (r *reader) committed() (int64, error) {
	a, _, _, err := r.symAddr("vm_committed_as")
	if err != nil {
		return 0, err
	}
	pc := r.k.Object(a, "struct percpu_counter")
	count, err := pc.Field("count").Int()
	if err != nil {
		return 0, err
	}
	if !pc.HasField("counters") { // !CONFIG_SMP
		return max(count, 0), nil
	}
	ctrs, err := pc.Field("counters").Ptr()
	if err != nil {
		return 0, err
	}
	offs, err := r.k.PerCPUOffsets()
	if err != nil {
		return 0, err
	}
	cpus, err := r.cpuMask("__cpu_online_mask", len(offs))
	if err != nil {
		return 0, err
	}
	if r.hasSym("__cpu_dying_mask") {
		dying, err := r.cpuMask("__cpu_dying_mask", len(offs))
		if err != nil {
			return 0, err
		}
		extra := 0
		for c := range dying {
			if !cpus[c] {
				extra++
			}
		}
		if extra > 0 {
			switch sumsDying(r.k.Release()) {
			case 1:
				for c := range dying {
					cpus[c] = true
				}
			case 0:
				r.warnf("Committed_AS: release %q unknown; %d dying CPU(s) left out of the sum", r.k.Release(), extra)
			}
		}
	}
	for c := range cpus {
		v, err := r.k.Object(ctrs+offs[c], "s32").Int()
		if err != nil {
			return 0, fmt.Errorf("vm_committed_as.counters on CPU %d: %w", c, err)
		}
		count += v
	}
	return max(count, 0), nil
}

// sumsDying tells whether __percpu_counter_sum of release also sums the
// dying CPUs (6.5+): 1 yes, -1 no, 0 unknown.
func sumsDying(release string) int {
	maj, rest, ok := strings.Cut(release, ".")
	if !ok {
		return 0
	}
	minor := rest
	if i := strings.IndexFunc(rest, func(c rune) bool { return c < '0' || c > '9' }); i >= 0 {
		minor = rest[:i]
	}
	a, err1 := strconv.Atoi(maj)
	b, err2 := strconv.Atoi(minor)
	if err1 != nil || err2 != nil {
		return 0
	}
	if a > 6 || (a == 6 && b >= 5) {
		return 1
	}
	return -1
}

// cpuMask returns the CPUs below n set in the struct cpumask symbol.
func (r *reader) cpuMask(sym string, n int) (map[int]bool, error) {
	cpus, err := r.mm.CPUMask(sym)
	if err != nil {
		return nil, err
	}
	m := make(map[int]bool, len(cpus))
	for _, c := range cpus {
		if c < n {
			m[c] = true
		}
	}
	return m, nil
}

// ---- Vmalloc ----

func (r *reader) vmallocTotal() (int64, error) {
	// /proc/meminfo prints (VMALLOC_END - VMALLOC_START) >> 10: on x86_64
	// VMALLOC_END is VMALLOC_START + size - 1, on arm64 the end itself.
	v, err := r.mm.Vmalloc()
	if err != nil {
		return 0, err
	}
	if r.k.Layout().Arch == "arm64" {
		return int64(v.Size >> 10), nil
	}
	return int64((v.Size - 1) >> 10), nil
}

// ---- EarlyMemtestBad ----

func (r *reader) memtest() {
	done, err := r.k.GlobalInt("early_memtest_done", "_Bool")
	if err != nil {
		r.warnf("EarlyMemtestBad: left out: %v", err)
		return
	}
	if done == 0 { // the kernel prints the line only after a memtest ran
		return
	}
	r.add("EarlyMemtestBad", "kB", "early_memtest_bad_size >> 10 (at least 1 if any)", func() (int64, error) {
		b, err := r.k.GlobalInt("early_memtest_bad_size", "phys_addr_t")
		if err != nil {
			return 0, err
		}
		kb := b >> 10
		if b != 0 && kb == 0 {
			kb = 1
		}
		return kb, nil
	})
}

// ---- HugeTLB ----

type hstate struct {
	order                uint
	nr, free, resv, surp int64
	isDefault            bool
}

func (r *reader) hstates() ([]hstate, error) {
	base, size, _, err := r.symAddr("hstates")
	if err != nil {
		return nil, err
	}
	n, err := r.k.GlobalInt("hugetlb_max_hstate", "int")
	if err != nil {
		return nil, err
	}
	def, err := r.k.GlobalInt("default_hstate_idx", "unsigned int")
	if err != nil {
		return nil, err
	}
	h0 := r.k.Object(base, "struct hstate")
	if h0.Err() != nil {
		return nil, h0.Err()
	}
	hsize := uint64(h0.Size())
	if hsize == 0 || n < 0 || uint64(n)*hsize > size {
		return nil, fmt.Errorf("hugetlb_max_hstate %d beyond hstates (%d bytes of %d)", n, size, hsize)
	}
	var out []hstate
	for i := range n {
		h := r.k.Object(base+uint64(i)*hsize, "struct hstate")
		var hs hstate
		order, err := h.Field("order").Uint()
		if err != nil {
			return nil, err
		}
		if order >= 40 {
			return nil, fmt.Errorf("hstates[%d].order %d", i, order)
		}
		hs.order = uint(order)
		for _, f := range []struct {
			name string
			dst  *int64
		}{{"nr_huge_pages", &hs.nr}, {"free_huge_pages", &hs.free}, {"resv_huge_pages", &hs.resv}, {"surplus_huge_pages", &hs.surp}} {
			v, err := h.Field(f.name).Uint()
			if err != nil {
				return nil, err
			}
			*f.dst = int64(v)
		}
		hs.isDefault = i == def
		out = append(out, hs)
	}
	return out, nil
}

// hugetlb is hugetlb_report_meminfo(): the default hstate's counts, then
// Hugetlb, the memory of every hstate.
func (r *reader) hugetlb() {
	hs, err := r.hstates()
	if err != nil {
		for _, n := range []string{"HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp", "Hugepagesize", "Hugetlb"} {
			r.warnf("%s: left out: %v", n, err)
		}
		return
	}
	var total int64
	for _, h := range hs {
		total += h.nr << (pageShift + h.order) >> 10
		if !h.isDefault {
			continue
		}
		src := "hstates[default_hstate_idx]."
		for _, l := range []Line{
			{"HugePages_Total", h.nr, "", src + "nr_huge_pages"},
			{"HugePages_Free", h.free, "", src + "free_huge_pages"},
			{"HugePages_Rsvd", h.resv, "", src + "resv_huge_pages"},
			{"HugePages_Surp", h.surp, "", src + "surplus_huge_pages"},
			{"Hugepagesize", 1 << (pageShift + h.order) >> 10, "kB", "PAGE_SIZE << hstates[default_hstate_idx].order"},
		} {
			r.out.Lines = append(r.out.Lines, l)
		}
	}
	r.out.Lines = append(r.out.Lines, Line{"Hugetlb", total, "kB", "Σ over hstates of nr_huge_pages * huge page size"})
}

// ---- DirectMap (arch_report_meminfo, x86) ----

func (r *reader) directMap() {
	base, size, _, err := r.symAddr("direct_pages_count")
	if err != nil {
		for _, n := range []string{"DirectMap4k", "DirectMap2M"} {
			r.warnf("%s: left out: %v", n, err)
		}
		return
	}
	level := func(name string, shift uint) func() (int64, error) {
		return func() (int64, error) {
			i, err := r.enum(name)
			if err != nil {
				return 0, err
			}
			if i < 0 || uint64(i+1)*8 > size {
				return 0, fmt.Errorf("%s = %d beyond direct_pages_count (%d bytes)", name, i, size)
			}
			u, err := r.k.Object(base+uint64(i)*8, "unsigned long").Uint()
			v := int64(u)
			if err != nil {
				return 0, fmt.Errorf("direct_pages_count[%s]: %w", name, err)
			}
			return v << shift, nil
		}
	}
	r.add("DirectMap4k", "kB", "direct_pages_count[PG_LEVEL_4K] << 2", level("PG_LEVEL_4K", 2))
	r.add("DirectMap2M", "kB", "direct_pages_count[PG_LEVEL_2M] << 11", level("PG_LEVEL_2M", 11))
	gb, err := r.k.GlobalInt("direct_gbpages", "int")
	if err != nil {
		r.warnf("DirectMap1G: left out: %v", err)
		return
	}
	if gb != 0 {
		r.add("DirectMap1G", "kB", "direct_pages_count[PG_LEVEL_1G] << 20", level("PG_LEVEL_1G", 20))
	}
}
