package synth

import (
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"math/bits"
)

var le = binary.LittleEndian

// The synthetic machine's address space: x86_64's defaults without KASLR
// (Documentation/arch/x86/x86_64/mm.rst), a kernel loaded at 16 MiB.
const (
	PageOffset     = 0xffff888000000000 // page_offset_base
	VmemmapBase    = 0xffffea0000000000 // vmemmap_base
	VmallocBase    = 0xffffc90000000000 // vmalloc_base
	startKernelMap = 0xffffffff80000000 // __START_KERNEL_map
	textVA         = 0xffffffff81000000 // _text
	physBase       = 0                  // phys_base: the image runs where it was linked

	PageSize = 4096
	// StructPageSize is sizeof(struct page) in every layout here.
	StructPageSize = 64

	// RAM handed out by the builder: page frames [16, ramPFNs).
	ramPFNs = 1024
	// The memory map (struct pages of section 0: 2^27 bytes of memory
	// in 4 KiB pages, 64 bytes each) lives in one 2 MiB page above it,
	// mapped at vmemmap_base by the page tables, as vmemmap_populate does.
	vmemmapPA   = 4 << 20
	vmemmapSize = 2 << 20
	sectionBits = 27
	// The kernel image: phys_base + (_text - __START_KERNEL_map).
	imagePA = 16 << 20

	// Image sections at fixed link addresses (sizes are bounds).
	rodataVA = textVA + 0x1000
	dataVA   = textVA + 0x200000
	bssVA    = textVA + 0x600000
	imageEnd = textVA + 0x700000

	percpuUnit = 8 * PageSize // each CPU's per-CPU area

	// ModulesVA is MODULES_VADDR: __START_KERNEL_map + KERNEL_IMAGE_SIZE
	// (1 GiB under CONFIG_RANDOMIZE_BASE). Module memory is mapped there
	// page by page (mapPage), as vmalloc does.
	ModulesVA = 0xffffffffc0000000
)

// Config is one synthetic kernel's build configuration.
type Config struct {
	Version   Version
	SlubDebug bool // CONFIG_SLUB_DEBUG: kmem_cache_node keeps nr_slabs and total_objects
	Hardened  bool // CONFIG_SLAB_FREELIST_HARDENED: kmem_cache.random, encoded free pointers
	NUMA      bool // CONFIG_NUMA: node_data[], MAX_NUMNODES 1024; else contig_page_data
	CPUs      int  // nr_cpu_ids; 0 means 2
	// AllocProfiling is CONFIG_MEM_ALLOC_PROFILING (v6.10+): the code tag
	// types, and tags laid out by AddAllocTags.
	AllocProfiling bool
	// ModuleTagsArea puts module tags in one module_tags area, as
	// 0db6f8d7820a ("alloc_tag: load module tags into separate contiguous
	// memory", v6.13) does, instead of each module's own memory.
	ModuleTagsArea bool
	// AllocTagsSection, without AllocProfiling, defines __start_alloc_tags
	// and __stop_alloc_tags around an empty section, as the linker script
	// of some kernels without profiling does (Debian's 6.12).
	AllocTagsSection bool
	// Forensics declares the types the forensics checks read (IDT gates,
	// ftrace_ops, kprobes, seq_operations, /proc entries).
	Forensics bool
}

// Place is where a slab sits in SLUB's bookkeeping.
type Place int

// Slab places.
const (
	Full        Place = iota // on no list: every object allocated
	NodePartial              // on kmem_cache_node.partial
	CPUSlab                  // a CPU's active slab (frozen); its free objects on the CPU freelist
	CPUPartial               // on a CPU's partial chain (kmem_cache_cpu.partial, slab->next)
	RCUPending               // discarded, waiting in call_rcu for rcu_free_slab (SLAB_TYPESAFE_BY_RCU)
)

// SlabSpec describes one slab.
type SlabSpec struct {
	Place Place
	CPU   int   // CPUSlab, CPUPartial
	Free  []int // object indices on the slab's own freelist, head first
	// CPUFree (CPUSlab only) are the object indices on the CPU's lockless
	// freelist, head first; Free then holds remote frees.
	CPUFree []int
	// FreelistLoop makes the last object of Free point back at the first:
	// a corrupt, cyclic freelist.
	FreelistLoop bool
	// PFN places the slab's head page; 0 lets the builder choose.
	PFN uint64
}

// CacheSpec describes one struct kmem_cache and its slabs.
type CacheSpec struct {
	Name       string
	ObjectSize uint32 // kmem_cache.object_size
	Size       uint32 // kmem_cache.size: the stride
	Offset     uint32 // free pointer offset in the object
	Order      uint   // pages per slab: 1 << Order
	Flags      uint32 // slab_flags_t (SLAB_TYPESAFE_BY_RCU = 0x00080000)
	Slabs      []SlabSpec
}

// SLAB_TYPESAFE_BY_RCU (include/linux/slab.h).
const SlabTypesafeByRCU = 0x00080000

// Cache is a cache as built.
type Cache struct {
	Spec    CacheSpec
	VA      uint64 // struct kmem_cache
	Objects int    // objects per slab (oo)
	Random  uint64 // kmem_cache.random (hardened kernels)
	Slabs   []*Slab
	nodeVA  uint64
	cpuSlab uint64 // the __percpu offset of kmem_cache_cpu
}

// Slab is a slab as built.
type Slab struct {
	Spec    SlabSpec
	Cache   *Cache
	PFN     uint64 // head page frame
	PageVA  uint64 // its struct page (struct slab) address
	Base    uint64 // direct-map address of object 0
	Objects int
}

// Object is the address of object i.
func (s *Slab) Object(i int) uint64 { return s.Base + uint64(i)*uint64(s.Cache.Spec.Size) }

// Allocated lists the objects that are in use, by index.
func (s *Slab) Allocated() []int {
	if s.Spec.Place == RCUPending {
		return nil
	}
	free := map[int]bool{}
	for _, i := range s.Spec.Free {
		free[i] = true
	}
	for _, i := range s.Spec.CPUFree {
		free[i] = true
	}
	var out []int
	for i := range s.Objects {
		if !free[i] {
			out = append(out, i)
		}
	}
	return out
}

type section struct {
	name   string
	typ    uint32
	flags  uint64
	addr   uint64
	size   uint64 // bump pointer
	bound  uint64
	nobits bool
}

type symbol struct {
	name        string
	sec         int // index into Kernel.secs
	value, size uint64
	typ         uint8 // STT_*
	local       bool
}

const (
	secText = iota
	secRodata
	secData
	secBss
	secPerCPU
)

// Kernel is a synthetic kernel being built: its types, its symbols and its
// physical memory. Methods record the first misuse and Write reports it.
type Kernel struct {
	cfg  Config
	ts   *ctypes
	pt   pageTypes
	mem  map[uint64]*[PageSize]byte // by page frame
	used map[uint64]bool            // RAM page frames handed out
	next uint64                     // where the page allocator looks next
	drop map[uint64]bool            // page frames left out of the dump
	vmap map[uint64]uint64          // page-table mappings outside the linear maps: virtual page -> page frame
	secs []*section
	syms []symbol
	err  error

	Caches []*Cache
	// MappedPFNs are page-cache pages mapped into user space (_mapcount 0).
	MappedPFNs   []uint64
	slabCaches   uint64
	percpu       []uint64 // each CPU's per-CPU area (direct map)
	percpuNext   uint64
	heap, heapTo uint64
	rcuFreeSlab  uint64
	initTopPgt   uint64
	memSection   uint64 // the roots array mem_section points at
	pgdat        uint64
	buildID      []byte
	banner       string
	allocDone    bool   // AddAllocTags ran
	modNext      uint64 // module memory handed out up to here
	vmallocNext  uint64 // VmallocCounters handed out from vmallocCounters
	tamper       []tamperWrite
	ftraceHead   uint64
	ftraceEnd    uint64
	kprobeTable  uint64
}

// New lays out a kernel of the given configuration: symbols, page tables,
// the memory map, mem_section, one NUMA node, per-CPU areas and an empty
// slab_caches.
func New(cfg Config) *Kernel {
	if cfg.CPUs == 0 {
		cfg.CPUs = 2
	}
	k := &Kernel{cfg: cfg, ts: kernelTypes(cfg), pt: cfg.Version.pageTypes(),
		mem: map[uint64]*[PageSize]byte{}, used: map[uint64]bool{}, next: 16, drop: map[uint64]bool{}, vmap: map[uint64]uint64{}}
	k.secs = []*section{
		{name: ".text", typ: shtProgbits, flags: shfAlloc | shfExec, addr: textVA, bound: rodataVA},
		{name: ".rodata", typ: shtProgbits, flags: shfAlloc, addr: rodataVA, bound: dataVA},
		{name: ".data", typ: shtProgbits, flags: shfAlloc | shfWrite, addr: dataVA, bound: bssVA},
		{name: ".bss", typ: shtNobits, flags: shfAlloc | shfWrite, addr: bssVA, bound: imageEnd, nobits: true},
		// Linked at 0 as x86_64 SMP kernels before 7.2 link it: its
		// symbols are offsets into each CPU's area. Memory is not
		// written through it (the areas are in the direct map).
		{name: ".data..percpu", typ: shtNobits, flags: shfAlloc | shfWrite, addr: 0, bound: percpuUnit, nobits: true},
	}
	sum := sha1.Sum(fmt.Appendf(nil, "%+v", cfg))
	k.buildID = sum[:]
	k.banner = fmt.Sprintf("Linux version %s (synth@vmleak) (gcc (GCC) 12.2.0, GNU ld 2.40) #1 SMP PREEMPT_DYNAMIC\n", cfg.Version.release())

	k.symbol(secText, "_text", 0, 0, sttNotype, false)
	k.symbol(secText, "_stext", 0, 0, sttNotype, false)
	k.rcuFreeSlab = k.symbol(secText, "rcu_free_slab", 32, 16, sttFunc, true) // static in mm/slub.c
	banner := k.symbol(secRodata, "linux_banner", uint64(len(k.banner)+1), 32, sttObject, false)
	k.put(banner, []byte(k.banner))

	// Page tables: init_top_pgt maps the memory map with one 2 MiB page;
	// the direct map and the image are translated by arithmetic above.
	k.initTopPgt = k.symbol(secData, "init_top_pgt", 2*PageSize, PageSize, sttObject, false)
	pdpt := k.allocPages(1, 1)
	pd := k.allocPages(1, 1)
	const tablePTE, largePTE = 0x63, 0x80000000000001e3 // _KERNPG_TABLE; __PAGE_KERNEL_LARGE
	k.put64(k.initTopPgt+8*((VmemmapBase>>39)&511), pdpt<<12|tablePTE)
	k.put64(PageOffset+pdpt<<12+8*((VmemmapBase>>30)&511), pd<<12|tablePTE)
	k.put64(PageOffset+pd<<12+8*((VmemmapBase>>21)&511), vmemmapPA|largePTE)

	for _, b := range []struct {
		name string
		val  uint64
	}{{"page_offset_base", PageOffset}, {"vmemmap_base", VmemmapBase}, {"vmalloc_base", VmallocBase}} {
		k.put64(k.symbol(secData, b.name, 8, 8, sttObject, false), b.val)
	}

	// Every struct page starts as the kernel initialises it: _mapcount
	// (page_type) -1, no flags.
	for pfn := uint64(0); pfn < vmemmapSize/StructPageSize; pfn++ {
		k.set(k.PageVA(pfn), "struct page", "page_type", 0xffffffff)
	}

	// mem_section (SPARSEMEM_EXTREME): a pointer to NR_SECTION_ROOTS
	// pointers to pages of struct mem_section; section 0 is present.
	msSize, _ := k.ts.sizeAlign(k.ts.lookup("struct mem_section"))
	roots := uint64(1<<(46-sectionBits)) / (PageSize / uint64(msSize)) // MAX_PHYSMEM_BITS 46
	k.memSection = k.kzalloc(roots * 8)
	root0 := k.kzalloc(PageSize)
	k.put64(k.memSection, root0)
	flags := uint64(0x7) // SECTION_MARKED_PRESENT | SECTION_HAS_MEM_MAP | SECTION_IS_ONLINE
	if cfg.Version >= V6_1 {
		flags |= 1 << 3 // SECTION_IS_EARLY
	}
	k.set(root0, "struct mem_section", "section_mem_map", VmemmapBase|flags) // sparse_encode_mem_map(vmemmap, 0)
	k.put64(k.symbol(secBss, "mem_section", 8, 8, sttObject, false), k.memSection)
	k.symbol(secBss, "__highest_present_section_nr", 8, 8, sttObject, false) // 0

	// One node, 0, online with memory and CPUs.
	pgSize, _ := k.ts.sizeAlign(k.ts.lookup("struct pglist_data"))
	if cfg.NUMA {
		k.pgdat = k.kzalloc(uint64(pgSize))
		nodeData := k.symbol(secData, "node_data", 8*uint64(cfg.maxNumNodes()), 32, sttObject, false)
		k.put64(nodeData, k.pgdat)
		k.put32(k.symbol(secData, "nr_node_ids", 4, 4, sttObject, false), 1)
	} else {
		k.pgdat = k.symbol(secData, "contig_page_data", uint64(pgSize), 64, sttObject, false)
	}
	maskSize, _ := k.ts.sizeAlign(k.ts.lookup("nodemask_t"))
	nrStates := 5
	if cfg.Version >= V6_1 {
		nrStates = 6
	}
	states := k.symbol(secData, "node_states", uint64(maskSize)*uint64(nrStates), 32, sttObject, false)
	for st := range 5 { // N_POSSIBLE, N_ONLINE, N_NORMAL_MEMORY, N_MEMORY, N_CPU
		k.put64(states+uint64(st)*uint64(maskSize), 1)
	}

	// Per-CPU areas in the direct map (the embedded first chunk); values of
	// __percpu pointers are offsets from __per_cpu_start (0).
	k.put32(k.symbol(secData, "nr_cpu_ids", 4, 4, sttObject, false), uint32(cfg.CPUs))
	offs := k.symbol(secData, "__per_cpu_offset", 8*nrCPUs, 32, sttObject, false)
	for cpu := range cfg.CPUs {
		unit := PageOffset + k.allocPages(percpuUnit/PageSize, 1)<<12
		k.percpu = append(k.percpu, unit)
		k.put64(offs+8*uint64(cpu), unit)
	}
	k.percpuNext = 0x2000 // the static area before it holds nothing read here
	k.symbol(secPerCPU, "__per_cpu_start", 0, 1, sttNotype, false)
	k.put32(k.symbol(secData, "pcpu_unit_size", 4, 4, sttObject, false), percpuUnit)
	possible := k.symbol(secData, "__cpu_possible_mask", nrCPUs/8, 32, sttObject, false)
	for cpu := range cfg.CPUs {
		k.put(possible+uint64(cpu/8), []byte{k.get8(possible+uint64(cpu/8)) | 1<<(cpu%8)})
	}

	if cfg.AllocTagsSection && !cfg.AllocProfiling {
		k.symbol(secData, "__start_alloc_tags", 0, 8, sttNotype, false)
		k.symbol(secData, "__stop_alloc_tags", 0, 8, sttNotype, false)
	}

	k.slabCaches = k.symbol(secData, "slab_caches", 16, 16, sttObject, false)
	k.listInit(k.slabCaches)

	// Page-cache pages mapped once into user space: _mapcount 0, so
	// page_type is 0, every page type bit clear under a clear
	// PAGE_TYPE_BASE; on an LRU list through lru, where struct slab has
	// slab_cache (v6.2+) or slab_list.
	mapping := k.kzalloc(256) // a struct address_space's worth
	lru := k.kzalloc(16)
	k.listInit(lru)
	for i := range uint64(8) {
		pfn := k.allocPages(1, 1)
		k.MappedPFNs = append(k.MappedPFNs, pfn)
		pg := k.PageVA(pfn)
		k.set(pg, "struct page", "flags", 1<<k.pt.lruFlag|1<<k.pt.uptodateFlag)
		k.set(pg, "struct page", "mapping", mapping)
		k.set(pg, "struct page", "index", i)
		k.set(pg, "struct page", "_mapcount", 0)
		k.set(pg, "struct page", "_refcount", 2)
		k.listAddTail(pg+k.Offset("struct page", "lru"), lru)
	}
	return k
}

// Config is the kernel's configuration.
func (k *Kernel) Config() Config { return k.cfg }

// Release is the kernel's uname -r.
func (k *Kernel) Release() string { return k.cfg.Version.release() }

func (k *Kernel) fail(format string, args ...any) {
	if k.err == nil {
		k.err = fmt.Errorf("synth: "+format, args...)
	}
}

// symbol reserves size bytes in an image section and names them.
func (k *Kernel) symbol(sec int, name string, size, align uint64, typ uint8, local bool) uint64 {
	va := k.reserve(sec, size, align)
	k.syms = append(k.syms, symbol{name: name, sec: sec, value: va, size: size, typ: typ, local: local})
	return va
}

// reserve is symbol without a name: anonymous data such as string literals.
func (k *Kernel) reserve(sec int, size, align uint64) uint64 {
	s := k.secs[sec]
	va := roundUp(s.addr+s.size, max(align, 1))
	if va+size > s.bound {
		k.fail("section %s full", s.name)
		return s.addr
	}
	s.size = va + size - s.addr
	return va
}

// PageVA is the struct page address of a page frame.
func (k *Kernel) PageVA(pfn uint64) uint64 { return VmemmapBase + pfn*StructPageSize }

// pa translates a virtual address the way the kernel maps it.
func (k *Kernel) pa(va uint64) (uint64, bool) {
	if pfn, ok := k.vmap[va/PageSize]; ok {
		return pfn*PageSize + va%PageSize, true
	}
	switch {
	case va >= ModulesVA:
		return 0, false // mapped page by page, or not at all
	case va >= startKernelMap:
		return va - startKernelMap + physBase, true
	case va >= VmemmapBase && va-VmemmapBase < vmemmapSize:
		return vmemmapPA + va - VmemmapBase, true
	case va >= PageOffset && va-PageOffset < 1<<46:
		return va - PageOffset, true
	}
	return 0, false
}

func (k *Kernel) page(pfn uint64) *[PageSize]byte {
	p := k.mem[pfn]
	if p == nil {
		p = new([PageSize]byte)
		k.mem[pfn] = p
	}
	return p
}

// put writes bytes at a kernel virtual address.
func (k *Kernel) put(va uint64, b []byte) {
	pa, ok := k.pa(va)
	if !ok {
		k.fail("write to unmapped %#x", va)
		return
	}
	for len(b) > 0 {
		p := k.page(pa / PageSize)
		n := copy(p[pa%PageSize:], b)
		b, pa = b[n:], pa+uint64(n)
	}
}

func (k *Kernel) get(va uint64, b []byte) {
	pa, ok := k.pa(va)
	if !ok {
		k.fail("read of unmapped %#x", va)
		return
	}
	for len(b) > 0 {
		var n int
		if p := k.mem[pa/PageSize]; p != nil {
			n = copy(b, p[pa%PageSize:])
		} else {
			n = min(len(b), int(PageSize-pa%PageSize))
			clear(b[:n])
		}
		b, pa = b[n:], pa+uint64(n)
	}
}

func (k *Kernel) put64(va, v uint64) {
	var b [8]byte
	le.PutUint64(b[:], v)
	k.put(va, b[:])
}

func (k *Kernel) put32(va uint64, v uint32) {
	var b [4]byte
	le.PutUint32(b[:], v)
	k.put(va, b[:])
}

func (k *Kernel) get8(va uint64) byte {
	var b [1]byte
	k.get(va, b[:])
	return b[0]
}

func (k *Kernel) get64(va uint64) uint64 {
	var b [8]byte
	k.get(va, b[:])
	return le.Uint64(b[:])
}

// Poke64 overwrites a word of memory after the fact, as corruption would.
func (k *Kernel) Poke64(va, v uint64) { k.put64(va, v) }

// Poke writes bytes after the fact, as corruption would.
func (k *Kernel) Poke(va uint64, b []byte) { k.put(va, b) }

// PerCPU is CPU cpu's __per_cpu_offset: where its per-CPU area starts.
func (k *Kernel) PerCPU(cpu int) uint64 { return k.percpu[cpu] }

// Symbol is the address of a symbol the builder defined (0 if none).
func (k *Kernel) Symbol(name string) uint64 {
	for _, s := range k.syms {
		if s.name == name {
			return s.value
		}
	}
	return 0
}

// MoveSymbol gives a symbol another value in the vmlinux's symbol table,
// as a vmlinux that does not match its dump (or a corrupt one) would.
func (k *Kernel) MoveSymbol(name string, va uint64) {
	for i := range k.syms {
		if k.syms[i].name == name {
			k.syms[i].value = va
			return
		}
	}
	k.fail("no symbol %s to move", name)
}

// DropPage leaves the page holding va out of the dump.
func (k *Kernel) DropPage(va uint64) {
	pa, ok := k.pa(va)
	if !ok {
		k.fail("dropping unmapped %#x", va)
		return
	}
	k.drop[pa/PageSize] = true
}

// mapPage maps the virtual page at va to a fresh page frame of RAM in
// init_top_pgt (4 KiB pages; tables allocated as needed), as vmalloc and
// the module loader map memory outside the linear maps.
func (k *Kernel) mapPage(va uint64) {
	if _, ok := k.vmap[va/PageSize]; ok {
		return
	}
	const tablePTE, pagePTE = 0x63, 0x8000000000000063 // _KERNPG_TABLE; PAGE_KERNEL (NX)
	table := k.initTopPgt
	for _, shift := range []uint{39, 30, 21} {
		slot := table + 8*((va>>shift)&511)
		next := k.get64(slot)
		if next == 0 {
			next = k.allocPages(1, 1)<<12 | tablePTE
			k.put64(slot, next)
		} else if next&0x80 != 0 {
			k.fail("mapping %#x: a large page is in the way", va)
			return
		}
		table = PageOffset + next&0x000ffffffffff000
	}
	pfn := k.allocPages(1, 1)
	k.put64(table+8*((va>>12)&511), pfn<<12|pagePTE)
	k.vmap[va/PageSize] = pfn
}

// mapRange maps every page of [va, va+size) not mapped yet.
func (k *Kernel) mapRange(va, size uint64) {
	for p := va &^ (PageSize - 1); p < va+size; p += PageSize {
		k.mapPage(p)
	}
}

// Offset is the byte offset of a member (a dotted path) of a C type.
func (k *Kernel) Offset(typ, path string) uint64 {
	m, err := k.ts.memberOf(k.ts.lookup(typ), path)
	if err != nil {
		k.fail("%v", err)
	}
	return uint64(m.off)
}

// SizeOf is the size of a C type in bytes.
func (k *Kernel) SizeOf(typ string) uint64 {
	size, _ := k.ts.sizeAlign(k.ts.lookup(typ))
	return uint64(size)
}

// Has tells whether a C type has a member.
func (k *Kernel) Has(typ, path string) bool {
	_, err := k.ts.memberOf(k.ts.lookup(typ), path)
	return err == nil
}

// set writes a member of the struct of type typ at va; a bitfield is
// merged into the bytes around it.
func (k *Kernel) set(va uint64, typ, path string, v uint64) {
	m, err := k.ts.memberOf(k.ts.lookup(typ), path)
	if err != nil {
		k.fail("%v", err)
		return
	}
	at := va + uint64(m.off)
	if m.bits == 0 {
		var b [8]byte
		le.PutUint64(b[:], v)
		if m.size > 8 {
			k.fail("%s.%s is %d bytes, not an integer", typ, path, m.size)
			return
		}
		k.put(at, b[:m.size])
		return
	}
	if v >= 1<<m.bits {
		k.fail("%s.%s: %d does not fit in %d bits", typ, path, v, m.bits)
		return
	}
	var b [8]byte
	n := (m.bitOff + m.bits + 7) / 8
	k.get(at, b[:n])
	w := le.Uint64(b[:])
	mask := uint64(1)<<m.bits - 1
	w = w&^(mask<<m.bitOff) | v<<m.bitOff
	le.PutUint64(b[:], w)
	k.put(at, b[:n])
}

// allocPages hands out n page frames of RAM aligned to align frames.
func (k *Kernel) allocPages(n, align uint64) uint64 {
	for pfn := roundUp(k.next, align); pfn+n <= ramPFNs; pfn += align {
		free := true
		for i := range n {
			if k.used[pfn+i] {
				free = false
				break
			}
		}
		if free {
			k.claim(pfn, n)
			if pfn == roundUp(k.next, align) {
				k.next = pfn + n
			}
			return pfn
		}
	}
	k.fail("out of RAM allocating %d pages", n)
	return 0
}

func (k *Kernel) claim(pfn, n uint64) {
	for i := range n {
		if pfn+i < 16 || pfn+i >= ramPFNs || k.used[pfn+i] {
			k.fail("page frame %#x is not free RAM", pfn+i)
		}
		k.used[pfn+i] = true
		k.set(k.PageVA(pfn+i), "struct page", "_refcount", 1)
	}
}

// kzalloc returns zeroed direct-map memory: whole pages from 2 KiB up,
// else a 64-byte-aligned piece of a shared page.
func (k *Kernel) kzalloc(size uint64) uint64 {
	if size >= PageSize/2 {
		n := (size + PageSize - 1) / PageSize
		return PageOffset + k.allocPages(n, 1)<<12
	}
	size = roundUp(size, 64)
	if k.heap == 0 || k.heap+size > k.heapTo {
		k.heap = PageOffset + k.allocPages(1, 1)<<12
		k.heapTo = k.heap + PageSize
	}
	va := k.heap
	k.heap += size
	return va
}

func (k *Kernel) percpuAlloc(size, align uint64) uint64 {
	off := roundUp(k.percpuNext, align)
	if off+size > percpuUnit {
		k.fail("per-CPU areas full")
		return 0
	}
	k.percpuNext = off + size
	return off
}

func (k *Kernel) listInit(head uint64) {
	k.put64(head, head)
	k.put64(head+8, head)
}

// listAdd is list_add (at the front); listAddTail is list_add_tail.
func (k *Kernel) listAdd(entry, head uint64) { k.listInsert(entry, head, k.get64(head)) }

func (k *Kernel) listAddTail(entry, head uint64) { k.listInsert(entry, k.get64(head+8), head) }

func (k *Kernel) listInsert(entry, prev, next uint64) {
	k.put64(next+8, entry)
	k.put64(entry, next)
	k.put64(entry+8, prev)
	k.put64(prev, entry)
}

// FreeBuddy marks a free block of the buddy allocator: its head page gets
// PG_buddy (cleared in page_type) and the order in page->private.
func (k *Kernel) FreeBuddy(pfn uint64, order uint) {
	k.claim(pfn, 1<<order)
	k.set(k.PageVA(pfn), "struct page", "page_type", uint64(0xffffffff&^k.pt.buddyType))
	k.set(k.PageVA(pfn), "struct page", "private", uint64(order))
	for i := range uint64(1) << order {
		k.set(k.PageVA(pfn+i), "struct page", "_refcount", 0)
	}
}

// DropStructPages leaves out of the dump the page of the memory map that
// holds pfn's struct page (and those of its 63 neighbours).
func (k *Kernel) DropStructPages(pfn uint64) {
	pa, _ := k.pa(k.PageVA(pfn))
	k.drop[pa/PageSize] = true
}

// AddCache builds a cache with its slabs and puts it on slab_caches.
func (k *Kernel) AddCache(spec CacheSpec) *Cache {
	cfg := k.cfg
	c := &Cache{Spec: spec}
	if spec.Size == 0 || spec.Size < spec.ObjectSize || spec.Offset+8 > spec.Size {
		k.fail("cache %s: size %d, object size %d, offset %d", spec.Name, spec.Size, spec.ObjectSize, spec.Offset)
		return c
	}
	c.Objects = int((PageSize << spec.Order) / uint64(spec.Size))
	kcSize, _ := k.ts.sizeAlign(k.ts.lookup("struct kmem_cache"))
	c.VA = k.kzalloc(uint64(kcSize))
	name := k.kzalloc(uint64(len(spec.Name) + 1))
	k.put(name, []byte(spec.Name))
	cpuSize, cpuAlign := k.ts.sizeAlign(k.ts.lookup("struct kmem_cache_cpu"))
	c.cpuSlab = k.percpuAlloc(uint64(cpuSize), uint64(max(cpuAlign, 16)))
	nodeSize, _ := k.ts.sizeAlign(k.ts.lookup("struct kmem_cache_node"))
	c.nodeVA = k.kzalloc(uint64(nodeSize))
	if cfg.Hardened {
		h := sha1.Sum([]byte(spec.Name))
		c.Random = le.Uint64(h[:]) // get_random_long() at kmem_cache_open
	}

	set := func(path string, v uint64) { k.set(c.VA, "struct kmem_cache", path, v) }
	set("cpu_slab", c.cpuSlab)
	set("flags", uint64(spec.Flags))
	set("min_partial", 5)
	set("size", uint64(spec.Size))
	set("object_size", uint64(spec.ObjectSize))
	set("offset", uint64(spec.Offset))
	set("cpu_partial", 30)
	set("oo.x", uint64(spec.Order)<<16|uint64(c.Objects)) // oo_make (OO_SHIFT 16)
	set("min.x", uint64(PageSize/spec.Size))
	set("refcount", 1)
	set("inuse", roundUp(uint64(spec.ObjectSize), 8))
	set("align", 8)
	set("name", name)
	if cfg.Hardened {
		set("random", c.Random)
	}
	k.put64(c.VA+k.Offset("struct kmem_cache", "node"), c.nodeVA) // node[0]
	k.listAdd(c.VA+k.Offset("struct kmem_cache", "list"), k.slabCaches)

	k.listInit(c.nodeVA + k.Offset("struct kmem_cache_node", "partial"))
	if cfg.SlubDebug {
		k.listInit(c.nodeVA + k.Offset("struct kmem_cache_node", "full"))
	}
	for cpu := range cfg.CPUs {
		k.set(k.percpu[cpu]+c.cpuSlab, "struct kmem_cache_cpu", "tid", uint64(cpu)) // init_tid
	}
	partials := make([][]*Slab, cfg.CPUs)
	var nrSlabs, totalObjects, nrPartial uint64
	for _, ss := range spec.Slabs {
		s := k.addSlab(c, ss)
		if s == nil {
			return c
		}
		c.Slabs = append(c.Slabs, s)
		if ss.Place != RCUPending {
			nrSlabs++
			totalObjects += uint64(s.Objects)
		}
		switch ss.Place {
		case NodePartial:
			k.listAddTail(s.PageVA+k.slabOffset("slab_list"), c.nodeVA+k.Offset("struct kmem_cache_node", "partial"))
			nrPartial++
		case CPUPartial:
			partials[ss.CPU] = append(partials[ss.CPU], s)
		}
	}
	k.set(c.nodeVA, "struct kmem_cache_node", "nr_partial", nrPartial)
	if cfg.SlubDebug {
		k.set(c.nodeVA, "struct kmem_cache_node", "nr_slabs", nrSlabs)
		k.set(c.nodeVA, "struct kmem_cache_node", "total_objects", totalObjects)
	}
	// Each CPU's partial chain, linked through slab->next; the head counts
	// the slabs (and, before v5.16, the free objects) from it onward.
	for cpu, chain := range partials {
		if len(chain) == 0 {
			continue
		}
		k.set(k.percpu[cpu]+c.cpuSlab, "struct kmem_cache_cpu", "partial", chain[0].PageVA)
		free := 0
		for i := len(chain) - 1; i >= 0; i-- {
			s := chain[i]
			free += len(s.Spec.Free)
			var next uint64
			if i+1 < len(chain) {
				next = chain[i+1].PageVA
			}
			k.setSlab(s, "next", next)
			if cfg.Version == V4_18 {
				k.setSlab(s, "pages", uint64(len(chain)-i))
				k.setSlab(s, "pobjects", uint64(free))
			} else {
				k.setSlab(s, "slabs", uint64(len(chain)-i))
			}
		}
	}
	k.Caches = append(k.Caches, c)
	return c
}

func (k *Kernel) slabType() string {
	if k.cfg.Version.hasStructSlab() {
		return "struct slab"
	}
	return "struct page"
}

func (k *Kernel) slabOffset(path string) uint64 { return k.Offset(k.slabType(), path) }

func (k *Kernel) setSlab(s *Slab, path string, v uint64) { k.set(s.PageVA, k.slabType(), path, v) }

// encode stores a free pointer as freelist_ptr() does.
func (k *Kernel) encode(c *Cache, next, ptrAddr uint64) uint64 {
	switch {
	case !k.cfg.Hardened:
		return next
	case k.cfg.Version.swab():
		return next ^ c.Random ^ bits.ReverseBytes64(ptrAddr)
	}
	return next ^ c.Random ^ ptrAddr
}

func (k *Kernel) addSlab(c *Cache, ss SlabSpec) *Slab {
	spec := c.Spec
	n := uint64(1) << spec.Order
	s := &Slab{Spec: ss, Cache: c, Objects: c.Objects}
	if ss.PFN != 0 {
		if ss.PFN%n != 0 {
			k.fail("cache %s: slab at page frame %#x not aligned to its order", spec.Name, ss.PFN)
			return nil
		}
		k.claim(ss.PFN, n)
		s.PFN = ss.PFN
	} else {
		s.PFN = k.allocPages(n, n)
	}
	s.PageVA, s.Base = k.PageVA(s.PFN), PageOffset+s.PFN<<12
	if ss.Place == RCUPending && spec.Flags&SlabTypesafeByRCU == 0 {
		k.fail("cache %s: an RCU-pending slab in a cache without SLAB_TYPESAFE_BY_RCU", spec.Name)
	}
	if (ss.Place == CPUSlab || ss.Place == CPUPartial) && (ss.CPU < 0 || ss.CPU >= k.cfg.CPUs) {
		k.fail("cache %s: CPU %d", spec.Name, ss.CPU)
		return nil
	}
	if len(ss.CPUFree) > 0 && ss.Place != CPUSlab {
		k.fail("cache %s: a CPU freelist on a slab that is no CPU slab", spec.Name)
	}
	seen := map[int]bool{}
	for _, i := range append(append([]int(nil), ss.Free...), ss.CPUFree...) {
		if i < 0 || i >= c.Objects || seen[i] {
			k.fail("cache %s: free object %d of %d listed twice or out of range", spec.Name, i, c.Objects)
			return nil
		}
		seen[i] = true
	}
	// Object contents: a pattern, so a walker reading an allocated object
	// as a free pointer meets garbage.
	obj := make([]byte, spec.Size)
	for i := range c.Objects {
		for j := range obj {
			obj[j] = byte(0x80 | i ^ j)
		}
		k.put(s.Object(i), obj)
	}
	k.freelist(c, s, ss.Free, ss.FreelistLoop)
	k.freelist(c, s, ss.CPUFree, false)

	pt := k.pt
	var flags uint64
	if pt.slabFlag >= 0 {
		flags |= 1 << pt.slabFlag
	} else {
		k.set(s.PageVA, "struct page", "page_type", uint64(0xffffffff&^pt.slabType))
	}
	if n > 1 {
		flags |= 1 << pt.headFlag
		for i := uint64(1); i < n; i++ {
			k.set(k.PageVA(s.PFN+i), "struct page", "compound_head", s.PageVA|1)
		}
		if k.Has("struct page", "compound_order") {
			k.set(k.PageVA(s.PFN+1), "struct page", "compound_order", uint64(spec.Order))
		}
	}
	k.set(s.PageVA, "struct page", "flags", flags)
	k.setSlab(s, "slab_cache", c.VA)
	if len(ss.Free) > 0 {
		k.setSlab(s, "freelist", s.Object(ss.Free[0]))
	}
	k.setSlab(s, "objects", uint64(c.Objects))
	k.setSlab(s, "inuse", uint64(c.Objects-len(ss.Free)))
	switch ss.Place {
	case CPUSlab:
		k.setSlab(s, "frozen", 1)
		cpu := k.percpu[ss.CPU] + c.cpuSlab
		if k.get64(cpu+k.Offset("struct kmem_cache_cpu", k.cpuSlabMember())) != 0 {
			k.fail("cache %s: two slabs for CPU %d", spec.Name, ss.CPU)
		}
		k.set(cpu, "struct kmem_cache_cpu", k.cpuSlabMember(), s.PageVA)
		if len(ss.CPUFree) > 0 {
			k.set(cpu, "struct kmem_cache_cpu", "freelist", s.Object(ss.CPUFree[0]))
		}
	case CPUPartial:
		// Frozen until "slub: Keep track of whether slub is on the
		// per-node partial list" stopped freezing them (v6.8).
		if k.cfg.Version < V6_10 {
			k.setSlab(s, "frozen", 1)
		}
	case RCUPending:
		// free_slab: call_rcu(&slab->rcu_head, rcu_free_slab); the
		// counters were dropped by discard_slab before.
		k.setSlab(s, "callback_head.next", 0)
		k.setSlab(s, "callback_head.func", k.rcuFreeSlab)
	}
	return s
}

func (k *Kernel) cpuSlabMember() string {
	if k.cfg.Version.hasStructSlab() {
		return "slab"
	}
	return "page"
}

// freelist links objects idx of slab s, head first, as free pointers.
func (k *Kernel) freelist(c *Cache, s *Slab, idx []int, loop bool) {
	for j, i := range idx {
		var next uint64
		switch {
		case j+1 < len(idx):
			next = s.Object(idx[j+1])
		case loop:
			next = s.Object(idx[0])
		}
		ptrAddr := s.Object(i) + uint64(c.Spec.Offset)
		k.put64(ptrAddr, k.encode(c, next, ptrAddr))
	}
}
