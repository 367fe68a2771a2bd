// Package synth builds synthetic x86_64 kernels for tests: a vmlinux (ELF
// with a .BTF section and a symbol table) and an ELF vmcore (VMCOREINFO and
// physical memory) whose SLUB state is described in Go, so the walkers can
// be run on layouts no real fixture has and every count is known in advance.
//
// It owns the C layout of the kernel types (laid out by the x86_64 ABI
// from the members each version declares, see Version), the machine's
// memory and the writers of both files. It writes files independently of
// the packages that read them and imports none of them: a test opens the
// files with package kernel as it would a real dump. It is imported only by
// _test files.
//
// The machine: KASLR off, the kernel image at 16 MiB (phys_base 0), the
// direct map at page_offset_base, the memory map (struct pages of memory
// section 0) in one 2 MiB page that init_top_pgt maps at vmemmap_base,
// one NUMA node, per-CPU areas in the direct map, module memory and vmalloc
// pages mapped by 4 KiB page tables as they are needed. New lays that out;
// each AddCache adds a struct kmem_cache with its kmem_cache_node, per-CPU
// kmem_cache_cpu and slabs in the places a SlabSpec names; AddAllocTags
// (Config.AllocProfiling) adds allocation profiling's tags, counters and
// code tag registrations; Write writes the files. Misuse (an object listed
// twice, two CPU slabs for one CPU) is reported by Write.
package synth
