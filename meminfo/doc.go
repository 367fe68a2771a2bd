// Package meminfo reconstructs /proc/meminfo from a kernel crash dump.
//
// Read computes every line the way fs/proc/meminfo.c meminfo_proc_show
// does on the dumped kernel (checked against the Debian 6.1, 6.12 and 7.2
// sources; 5.10 differs in SwapCached and SecPageTables, below), from the
// kernel's own state; WriteText prints the lines in the kernel's exact
// format.
//
// # Sources
//
// Enum indices come from the kernel's debuginfo (k.Types().Enumerator), never
// from tables per version. The vmstat lines read the global atomics
// vm_zone_stat[] and vm_node_stat[] clamped at 0, as global_zone_page_state
// and global_node_page_state do: the per-CPU deltas are not folded in by the
// kernel either, so the value is what /proc/meminfo would have printed at
// the dump's instant. NR_SLAB_*_B are kept in pages at the global level;
// NR_KERNEL_STACK_KB (and NR_KERNEL_SCS_KB) in kB and printed as is.
// The other lines:
//
//   - MemAvailable: si_mem_available(): NR_FREE_PAGES − totalreserve_pages,
//     plus file LRU pages and NR_SLAB_RECLAIMABLE_B + NR_KERNEL_MISC_RECLAIMABLE,
//     each less min(half, Σ low watermarks), where the watermarks are
//     _watermark[WMARK_LOW] + watermark_boost over every zone of every online
//     node (node_states[N_ONLINE], node_data[]).
//   - Buffers: nr_blockdev_pages(): Σ i_mapping->nrpages over
//     blockdev_superblock->s_inodes (bounded, cycle-checked walk).
//     Cached: NR_FILE_PAGES − SwapCached − Buffers, at least 0.
//   - SwapCached: total_swapcache_pages(): NR_SWAPCACHE from b6038942480e
//     (v5.12); before it (5.10) Σ nrpages of swapper_spaces[type][] over the
//     swap types below nr_swapfiles whose swap_info is set (and SWP_VALID).
//   - SwapTotal/SwapFree: si_swapinfo(): total_swap_pages / nr_swap_pages plus
//     the in-use pages of swap areas being swapped off (SWP_USED and not
//     SWP_WRITEOK; inuse_pages, masked on 6.13+ where it is atomic_long_t).
//   - Zswap: zswap_pool_total_size >> 10 before 6.10, else Σ zsmalloc
//     pages_allocated over zswap_pools. Zswapped: zswap_stored_pages.
//   - CommitLimit: vm_commit_limit(). Committed_AS: percpu_counter_sum_positive
//     of vm_committed_as: count plus the per-CPU s32 counters of the online
//     CPUs (and of the dying ones from 6.5). crash's `kmem -i` COMMITTED reads
//     count only and differs.
//   - VmallocTotal: VMALLOC_END − VMALLOC_START for the dump's paging depth
//     (32 TB, or 12800 TB with 5-level paging). VmallocUsed: nr_vmalloc_pages
//     where it exists (≤ 6.x), else node stat NR_VMALLOC (7.x).
//   - Percpu: pcpu_nr_populated × pcpu_nr_units.
//   - HugePages_*, Hugepagesize: hstates[default_hstate_idx]; Hugetlb: every
//     hstate up to hugetlb_max_hstate.
//   - DirectMap4k/2M/1G: direct_pages_count[PG_LEVEL_*] (1G only when
//     direct_gbpages is set, as the kernel prints it).
//
// Lines that exist only with a config option appear exactly when the kernel
// would print them, decided from the vmlinux: Zswap/Zswapped
// (zswap_stored_pages), ShadowCallStack (NR_KERNEL_SCS_KB), EarlyMemtestBad
// (early_memtest_done set), HardwareCorrupted (num_poisoned_pages), the THP
// lines (transparent_hugepage_flags), CmaTotal/CmaFree (cma_area_count:
// totalcma_pages exists without CONFIG_CMA on 6.1), Unaccepted
// (NR_UNACCEPTED), Balloon and GPU* (their node stats), the HugeTLB lines
// (hstates). Bounce and WritebackTmp are printed as constant 0 by kernels
// that dropped NR_BOUNCE / NR_WRITEBACK_TEMP (7.x), NFS_Unstable and
// VmallocChunk always; SecPageTables from 6.0 (NR_SECONDARY_PAGETABLE). A
// line the kernel prints but whose source cannot be read is left out with a
// warning in Meminfo.Warnings; nothing is invented.
//
// # Agreement with the guest
//
// The tests compare Read with the guest's own /proc/meminfo captured just
// before each fixture dump (and just after, for QEMU dumps), for every dump
// of every fixture (5.10 kdump and QEMU; 6.1 incl. 5-level paging, NUMA,
// kdump; 6.12; 7.2), and,
// where the fixture has it, with crash's `kmem -i` of the same dump.
//
// Exact on every dump: the line names and their order; MemTotal, Buffers,
// SwapCached, the file LRUs, Unevictable, Mlocked, SwapTotal, SwapFree,
// Zswap, Zswapped, Dirty, Writeback, SecPageTables, NFS_Unstable, Bounce,
// WritebackTmp, CommitLimit, VmallocTotal, VmallocChunk, Percpu,
// HardwareCorrupted, the THP, CMA, Unaccepted, Balloon and GPU lines, the
// HugeTLB lines and DirectMap*: sizes fixed at boot and counters of activity
// the guest does not have between the captures. Each such line is
// byte-identical to the guest's. Only MemTotal, CommitLimit, VmallocTotal,
// Percpu, Hugepagesize, DirectMap4k and DirectMap2M are non-zero in the
// fixtures' guests; the others are 0 in every one (no block I/O, swap,
// hugetlb, THP, CMA, ...), so for them equality shows only that 0 is read
// as 0, and the test keeps them in a separate, named list. On the 5.10 and
// 6.1 fixtures, MemTotal, MemFree, Buffers, Cached and CommitLimit also equal
// crash's `kmem -i` on the same dump (the fixtures' crash cannot read the
// 6.12 and 7.2 dumps).
//
// Not equal to the capture, because the capture itself moves them: a `cat`
// process runs while /proc/meminfo is read and the other captures fork more
// processes, while at the dump only the init shell is alive. Committed_AS
// is below both captures (cat's commit charge, 336 kB with the fixtures'
// busybox); KernelStack is at most the larger capture (one 16 kB stack per
// task); Cached, Shmem, Mapped and the slab lines lie between the two
// captures. MemFree, MemAvailable, Active/Inactive and their anon parts,
// AnonPages, PageTables and VmallocUsed move both ways within a second
// (per-CPU free lists and LRU batches, cat's own pages and vmapped stack);
// MemAvailable's formula is checked instead by applying it to the guest's
// own counters with the dump's totalreserve_pages and watermarks.
package meminfo
