// Package leaks is an offline kmemleak: it finds the allocated slab objects
// of a dump that nothing points to.
//
// The kernel's kmemleak (mm/kmemleak.c) only runs live, on a kernel built
// with CONFIG_DEBUG_KMEMLEAK. A vmcore already holds all of memory, so the
// same conservative scan works after the fact on any kernel. This package
// owns the scan and its result; it reads memory through kernel and the
// slab layout through walk, and leaves rendering to its caller.
//
// # Objects
//
// Every allocated object of every slab cache, as walk.Slabs reads them:
// start, kmem_cache.object_size, allocated or free (slab and CPU
// freelists, sheaves, slabs awaiting RCU). They are indexed once, slab by
// slab in address order, so a candidate word is looked up with a bounds
// check and a binary search over slabs, without allocating. A word that
// points anywhere inside [start, start+object_size) references the object
// (interior pointers: list_head members, container_of); padding, red zones
// and tracks between objects do not. Slabs with implausible geometry (a
// corrupt cache or struct slab) are left out with a warning, never read at
// their claimed size.
//
// Not objects yet: large kmalloc allocations (kmalloc_large, straight from
// the page allocator), vmalloc areas and per-CPU allocations. None is
// reported: they are scanned as roots (below), so a leaked one is missed
// and hides what only it points to.
//
// # Roots
//
// Scanned whatever points to them (Roots):
//   - vmlinux .data (_sdata.._edata), .bss (__bss_start..__bss_stop),
//     .data..ro_after_init (inside .rodata on x86_64) and .data_nosave;
//     init data is freed after boot; .data..percpu is only the template of
//     the per-CPU areas and is not scanned itself;
//   - each possible CPU's unit of the first per-CPU chunk,
//     __per_cpu_start + __per_cpu_offset[cpu], pcpu_unit_size bytes: the
//     static per-CPU variables, the reserved part and the first chunk's
//     dynamic part. Later chunks are vmap areas whose vm_struct lists no
//     pages; their backing pages are covered by the kernel pages below;
//   - every module's data and .bss (6.4+'s data and ro_after_init regions;
//     6.1's whole core layout, where text and data are one range);
//   - every task's kernel stack, THREAD_SIZE bytes, whole (stale words below
//     the stack pointer may hide a leak, as in kmemleak);
//   - the registers each CPU saved at the crash (the dump's NT_PRSTATUS
//     notes), by value: a pointer the crashing code held only in a register;
//   - every VM_ALLOC vmalloc area's mapped pages (BPF programs, vmalloc'd
//     tables; task stacks once): roots, not objects, so a leaked vmalloc
//     area is not reported and hides what only it points to;
//   - v6.9+'s vmap_nodes array (d093602919ad, "mm: vmalloc: remove
//     global vmap_area_root rb-tree"): the roots of vmalloc's busy trees,
//     page-allocator memory (larger than the largest kmalloc cache);
//     without it every vmap_area and vm_struct was reported on 6.12 and
//     7.x. The kernel pages below cover it too;
//   - the struct page array of present memory (page->mapping keeps inodes
//     and anon_vmas reachable, as kmemleak's struct page scan does);
//   - the kernel's pages outside slab (kernelPages): in use (_refcount >
//     0) with no mapping — large kmalloc, alloc_pages tables, per-CPU
//     chunks, page tables — or PG_reserved: memblock allocations made at
//     boot (the large system hashes), the kernel image. Not the crash
//     kernel's reservation. Anonymous and page cache pages hold user data
//     and file contents and are not scanned; free pages (_refcount 0, on
//     the buddy or per-CPU lists) are not either.
//
// IRQ and exception stacks are vmap areas without VM_ALLOC, but on x86_64
// their memory is per-CPU (irq_stack_backing_store, exception_stacks), so
// the per-CPU units cover them.
//
// Not roots yet, each a source of false reports: ioremap and other vmap
// areas of memory the kernel did not allocate. Objects the kernel deliberately drops and marks
// kmemleak_not_leak (sysctl table headers of register_sysctl_init) are
// reported: the mark lives only in kmemleak's own metadata. They are the
// only false reports left on the test fixtures.
//
// # Propagation
//
// Each worker takes the next piece of root memory, scans its words, and
// then every object they newly reached, depth first from an explicit gray
// stack (no recursion). An object is marked in a shared atomic bitset
// before it is queued, so each is queued and scanned once and cycles end;
// the scan is linear in the bytes scanned. Workers share nothing else. Free
// objects are never scanned and never referenced: their stale pointers
// (and hardened freelist pointers) would hide leaks.
//
// # Encodings
//
// Words are read at 8-byte alignment as stored. Low-bit tagged pointers —
// struct page's mapping bits (PAGE_MAPPING_ANON), XArray node entries
// ((x & 3) == 2), rb_node's parent color, bit locks — still point inside
// the same object, since objects are at least 8 bytes and 8-byte aligned:
// the interior-pointer rule covers them. List poison (0xdead...) and
// other non-addresses fail the bounds check. Not handled: pointers kept
// encoded (XOR-ed or shifted, such as the hardened freelist in allocated
// objects' neighbours, which are free, or PFNs stored instead of
// addresses), and top-byte tags (arm64 TBI, KASAN software tags): vmleak
// reads x86_64 only.
//
// # Missing memory
//
// A root page that cannot be read is skipped and counted; a referenced
// object whose memory cannot be read is still referenced, but what it
// points to is unknown, so its page is counted. Either makes the result
// partial: objects referenced only from the missing memory are reported.
// Reserved pages are the exception: firmware areas and holes are
// PG_reserved and never dumped, so they are counted under their root kind
// only.
// makedumpfile -d 31 drops user, page cache, free and zero-filled pages,
// which hold no slab objects; on the 6.1 kdump the missing pages are 226
// pages of vmlinux .bss, and the counts reported equal the unfiltered
// ELF's.
package leaks
