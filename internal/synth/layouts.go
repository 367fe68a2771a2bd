package synth

import (
	"slices"

	"github.com/cilium/ebpf/btf"
)

// Version is the kernel whose type layouts a synthetic kernel has.
type Version int

// The layouts. Each names the kernel commits that make it differ from the
// next; members are declared in source order under the Config's options,
// with the x86_64 options the distributions enable (SYSFS, MEMCG, SMP,
// SLUB_CPU_PARTIAL, SLAB_FREELIST_RANDOM, SPARSEMEM_VMEMMAP; no KASAN,
// lockdep or SLUB_STATS).
const (
	// V4_18 is RHEL 8's base: the slab fields live in struct page (before
	// d122019bf061, v5.17) with inuse:16/objects:15/frozen:1 bitfields,
	// kmem_cache_cpu has page (bb192ed9aa71, v5.17, renamed it slab),
	// PG_slab is a page flag, page_type is its own field (6e292b9be7f4,
	// v4.18), and hardened free pointers are not byte-swapped (2482ddec670f,
	// v4.14; swab came with 1ad53d9fa3f6, v5.7). Upstream v4.18 layouts;
	// RHEL 8's backports add members after the ones read here.
	V4_18 Version = iota
	// V6_1 is Debian 12's: struct slab (d122019bf061, v5.17), PG_slab flag.
	// Checked member by member against Debian's 6.1.0 vmlinux.
	V6_1
	// V6_10: struct slab rearranged (130d4df57390, v6.2), PG_slab a page
	// type cleared in page_type under PAGE_TYPE_BASE (46df8e73a4a3, "mm:
	// free up PG_slab"), the types an enum with the low-bit values
	// (PG_slab 0x1000, PAGE_TYPE_BASE 0xf0000000), memcg_data renamed
	// obj_exts ("mm: introduce slabobj_ext to support slab object
	// extensions", v6.10).
	V6_10
	// V6_11: the page types moved to the high bits ("mm: allow reuse of the
	// lower 16 bit of the page type with an actual type": PG_slab
	// 0x02000000, PAGE_TYPE_BASE 0x80000000). 4ffca5a96678 (v6.12) replaced
	// the scheme with PGTY_* in the top byte.
	V6_11
)

func (v Version) String() string {
	switch v {
	case V4_18:
		return "4.18"
	case V6_1:
		return "6.1"
	case V6_10:
		return "6.10"
	case V6_11:
		return "6.11"
	}
	return "unknown"
}

// release is a uname -r that says what it is.
func (v Version) release() string {
	switch v {
	case V4_18:
		return "4.18.0-synth.x86_64"
	case V6_1:
		return "6.1.0-synth-amd64"
	case V6_10:
		return "6.10.0-synth-amd64"
	}
	return "6.11.0-synth-amd64"
}

// pageTypes says how a version marks slab and free buddy pages.
type pageTypes struct {
	slabFlag     int    // PG_slab bit of page->flags; -1 when slab is a page type
	headFlag     int    // PG_head
	lruFlag      int    // PG_lru
	uptodateFlag int    // PG_uptodate
	slabType     uint32 // bit cleared in page_type for slab pages (inverted scheme)
	buddyType    uint32 // bit cleared in page_type for free buddy heads
	typeBase     uint32 // PAGE_TYPE_BASE
}

func (v Version) pageTypes() pageTypes {
	bit := func(name string) int {
		if i := slices.Index(v.pageflags(), name); i >= 0 {
			return i
		}
		return -1
	}
	pt := pageTypes{slabFlag: bit("PG_slab"), headFlag: bit("PG_head"), lruFlag: bit("PG_lru"),
		uptodateFlag: bit("PG_uptodate"), buddyType: 0x80, typeBase: 0xf0000000}
	switch v {
	case V6_10:
		pt.slabType = 0x1000
	case V6_11:
		pt.slabType, pt.buddyType, pt.typeBase = 0x02000000, 0x40000000, 0x80000000
	}
	return pt
}

// pageflags are the first members of enum pageflags (include/linux/page-flags.h).
func (v Version) pageflags() []string {
	switch v {
	case V4_18:
		return []string{"PG_locked", "PG_error", "PG_referenced", "PG_uptodate", "PG_dirty", "PG_lru", "PG_active",
			"PG_waiters", "PG_slab", "PG_owner_priv_1", "PG_arch_1", "PG_reserved", "PG_private", "PG_private_2",
			"PG_writeback", "PG_head", "PG_mappedtodisk", "PG_reclaim", "PG_swapbacked", "PG_unevictable", "PG_mlocked"}
	case V6_1:
		return []string{"PG_locked", "PG_referenced", "PG_uptodate", "PG_dirty", "PG_lru", "PG_active", "PG_workingset",
			"PG_waiters", "PG_error", "PG_slab", "PG_owner_priv_1", "PG_arch_1", "PG_reserved", "PG_private",
			"PG_private_2", "PG_writeback", "PG_head", "PG_mappedtodisk", "PG_reclaim", "PG_swapbacked",
			"PG_unevictable", "PG_mlocked"}
	}
	return []string{"PG_locked", "PG_writeback", "PG_referenced", "PG_uptodate", "PG_dirty", "PG_lru", "PG_head",
		"PG_waiters", "PG_active", "PG_workingset", "PG_error", "PG_owner_priv_1", "PG_arch_1", "PG_reserved",
		"PG_private", "PG_private_2", "PG_mappedtodisk", "PG_reclaim", "PG_swapbacked", "PG_unevictable",
		"PG_mlocked"}
}

// hasStructSlab: d122019bf061 (v5.17).
func (v Version) hasStructSlab() bool { return v >= V6_1 }

// swab: 1ad53d9fa3f6 (v5.7) byte-swaps the pointer's address in hardened free pointers.
func (v Version) swab() bool { return v >= V6_1 }

const (
	maxNrZones = 5 // DMA, DMA32, NORMAL, MOVABLE, DEVICE
	nrCPUs     = 8192
)

func (cfg Config) maxNumNodes() uint32 {
	if cfg.NUMA {
		return 1024 // NODES_SHIFT 10, as Debian and RHEL build
	}
	return 1
}

// kernelTypes declares the types package walk and kernel/mm read, and
// those around them, for one configuration.
func kernelTypes(cfg Config) *ctypes {
	c := newCTypes()
	v := cfg.Version
	void := &btf.Void{}
	voidp := ptr(void)

	char := c.base("char", 1, btf.Signed|btf.Char)
	uchar := c.base("unsigned char", 1, 0)
	ushort := c.base("short unsigned int", 2, 0)
	sint := c.base("int", 4, btf.Signed)
	uint := c.base("unsigned int", 4, 0)
	c.base("long int", 8, btf.Signed)
	ulong := c.base("long unsigned int", 8, 0)
	llong := c.base("long long int", 8, btf.Signed)
	ullong := c.base("long long unsigned int", 8, 0)
	bool_ := c.base("_Bool", 1, btf.Bool)
	idx := c.base("__ARRAY_SIZE_TYPE__", 4, 0)
	u8 := c.typedef("u8", uchar)
	c.typedef("u16", ushort)
	u32 := c.typedef("u32", uint)
	c.typedef("u64", ullong)
	s64 := c.typedef("s64", llong)
	gfp := c.typedef("gfp_t", uint)
	slabFlags := c.typedef("slab_flags_t", uint)
	pgoff := c.typedef("pgoff_t", ulong)
	constChar := &btf.Const{Type: char}

	atomic := c.typedef("atomic_t", c.anonStruct(f("counter", sint)))
	atomic64 := c.typedef("atomic64_t", c.anonStruct(f("counter", s64)))
	atomicLong := c.typedef("atomic_long_t", atomic64)
	refcount := c.typedef("refcount_t", c.structOf("refcount_struct", f("refs", atomic)))
	kref := c.structOf("kref", f("refcount", refcount))
	qspin := c.structOf("qspinlock", f("val", atomic))
	archSpin := c.typedef("arch_spinlock_t", qspin)
	rawSpin := c.structOf("raw_spinlock", f("raw_lock", archSpin))
	spinlock := c.typedef("spinlock_t", c.structOf("spinlock", anon(c.anonUnion(f("rlock", rawSpin)))))

	listHead := c.declare("list_head")
	c.define(listHead, 0, f("next", ptr(listHead)), f("prev", ptr(listHead)))
	// struct rcu_head is #define'd to callback_head (include/linux/types.h),
	// so members declared "struct rcu_head rcu_head" are named callback_head.
	cbHead := c.declare("callback_head")
	c.define(cbHead, 0, f("next", ptr(cbHead)),
		f("func", ptr(&btf.FuncProto{Return: void, Params: []btf.FuncParam{{Name: "head", Type: ptr(cbHead)}}})))

	page := c.declare("page")
	kmemCache := c.declare("kmem_cache")
	addrSpace := c.fwd("address_space")
	mmStruct := c.fwd("mm_struct")
	devPagemap := c.fwd("dev_pagemap")
	kset := c.fwd("kset")
	kobjType := c.fwd("kobj_type")
	kernfsNode := c.fwd("kernfs_node")
	pgtable := c.typedef("pgtable_t", ptr(page))
	var u128, freelistABA btf.Type
	if v >= V6_10 {
		// freelist_aba_t: "slub: Replace cmpxchg_double()" (v6.5).
		u128 = c.typedef("u128", c.base("__int128 unsigned", 16, 0))
		freelistABA = c.typedef("freelist_aba_t", c.anonUnion(
			anon(c.anonStruct(f("freelist", voidp), f("counter", ulong))),
			f("full", u128)))
	}

	// Enumerators the readers look up, with their neighbours.
	pt := v.pageTypes()
	var flags []btf.EnumValue
	for i, n := range v.pageflags() {
		flags = append(flags, btf.EnumValue{Name: n, Value: uint64(i)})
	}
	c.enum("pageflags", 4, false, append(flags, btf.EnumValue{Name: "__NR_PAGEFLAGS", Value: uint64(len(flags))})...)
	if v >= V6_10 {
		// An enum with values past INT_MAX and below zero is 8 bytes:
		// pahole writes it as BTF_KIND_ENUM64.
		neg := func(x int64) uint64 { return uint64(x) }
		vals := []btf.EnumValue{
			{Name: "PG_buddy", Value: 0x80}, {Name: "PG_offline", Value: 0x100}, {Name: "PG_table", Value: 0x200},
			{Name: "PG_guard", Value: 0x400}, {Name: "PG_hugetlb", Value: 0x800}, {Name: "PG_slab", Value: 0x1000},
			{Name: "PAGE_TYPE_BASE", Value: 0xf0000000}, {Name: "PAGE_MAPCOUNT_RESERVE", Value: neg(-128)},
		}
		if v == V6_11 {
			vals = []btf.EnumValue{
				{Name: "PG_buddy", Value: 0x40000000}, {Name: "PG_offline", Value: 0x20000000},
				{Name: "PG_table", Value: 0x10000000}, {Name: "PG_guard", Value: 0x08000000},
				{Name: "PG_hugetlb", Value: 0x04000000}, {Name: "PG_slab", Value: 0x02000000},
				{Name: "PG_zsmalloc", Value: 0x01000000}, {Name: "PG_unaccepted", Value: 0x00800000},
				{Name: "PAGE_TYPE_BASE", Value: 0x80000000}, {Name: "PAGE_MAPCOUNT_RESERVE", Value: neg(^0x0000ffff)},
			}
		}
		if uint32(vals[5].Value) != pt.slabType || uint32(vals[0].Value) != pt.buddyType {
			panic("synth: page type values disagree")
		}
		c.enum("pagetype", 8, true, vals...)
	}
	states := []string{"N_POSSIBLE", "N_ONLINE", "N_NORMAL_MEMORY", "N_MEMORY", "N_CPU"}
	if v >= V6_1 {
		states = append(states, "N_GENERIC_INITIATOR") // v5.10
	}
	var sv []btf.EnumValue
	for i, n := range states {
		sv = append(sv, btf.EnumValue{Name: n, Value: uint64(i)})
		if n == "N_NORMAL_MEMORY" {
			sv = append(sv, btf.EnumValue{Name: "N_HIGH_MEMORY", Value: uint64(i)}) // no HIGHMEM on x86_64
		}
	}
	c.enum("node_states", 4, false, append(sv, btf.EnumValue{Name: "NR_NODE_STATES", Value: uint64(len(states))})...)
	if v >= V6_1 {
		// "mm: memory_hotplug: enumerate all supported section flags" (v6.0).
		c.enum("", 4, false,
			btf.EnumValue{Name: "SECTION_MARKED_PRESENT_BIT", Value: 0}, btf.EnumValue{Name: "SECTION_HAS_MEM_MAP_BIT", Value: 1},
			btf.EnumValue{Name: "SECTION_IS_ONLINE_BIT", Value: 2}, btf.EnumValue{Name: "SECTION_IS_EARLY_BIT", Value: 3},
			btf.EnumValue{Name: "SECTION_TAINT_ZONE_DEVICE_BIT", Value: 4}, btf.EnumValue{Name: "SECTION_MAP_LAST_BIT", Value: 5})
	}

	// struct page (include/linux/mm_types.h), aligned to two words
	// (CONFIG_HAVE_ALIGNED_STRUCT_PAGE, selected by SLUB).
	slabCounters := func() btf.Type {
		return c.anonUnion(f("counters", ulong), anon(c.anonStruct(
			bitfield("inuse", uint, 16), bitfield("objects", uint, 15), bitfield("frozen", uint, 1))))
	}
	lruUnion := func() btf.Type {
		return c.anonUnion(f("lru", listHead),
			anon(c.anonStruct(f("__filler", voidp), f("mlock_count", uint))),
			f("buddy_list", listHead), f("pcp_list", listHead))
	}
	switch v {
	case V4_18:
		c.define(page, 16,
			f("flags", ulong),
			anon(c.anonUnion(
				anon(c.anonStruct(f("lru", listHead), f("mapping", ptr(addrSpace)), f("index", pgoff), f("private", ulong))),
				anon(c.anonStruct(
					anon(c.anonUnion(f("slab_list", listHead),
						anon(c.anonStruct(f("next", ptr(page)), f("pages", sint), f("pobjects", sint))))),
					f("slab_cache", ptr(kmemCache)),
					f("freelist", voidp),
					anon(c.anonUnion(f("s_mem", voidp), f("counters", ulong), anon(c.anonStruct(
						bitfield("inuse", uint, 16), bitfield("objects", uint, 15), bitfield("frozen", uint, 1))))))),
				anon(c.anonStruct(f("compound_head", ulong), f("compound_dtor", uchar), f("compound_order", uchar),
					f("compound_mapcount", atomic))),
				anon(c.anonStruct(f("_compound_pad_1", ulong), f("_compound_pad_2", ulong), f("deferred_list", listHead))),
				anon(c.anonStruct(f("_pt_pad_1", ulong), f("pmd_huge_pte", pgtable), f("_pt_pad_2", ulong),
					f("pt_mm", ptr(mmStruct)), f("ptl", spinlock))),
				anon(c.anonStruct(f("pgmap", ptr(devPagemap)), f("hmm_data", ulong), f("_zd_pad_1", ulong))),
				f("callback_head", cbHead))),
			anon(c.anonUnion(f("_mapcount", atomic), f("page_type", uint), f("active", uint), f("units", sint))),
			f("_refcount", atomic),
			f("mem_cgroup", ptr(c.fwd("mem_cgroup"))))
	case V6_1:
		c.define(page, 16,
			f("flags", ulong),
			anon(c.anonUnion(
				anon(c.anonStruct(anon(lruUnion()), f("mapping", ptr(addrSpace)), f("index", pgoff), f("private", ulong))),
				anon(c.anonStruct(f("pp_magic", ulong), f("pp", ptr(c.fwd("page_pool"))), f("_pp_mapping_pad", ulong),
					f("dma_addr", ulong), anon(c.anonUnion(f("dma_addr_upper", ulong), f("pp_frag_count", atomicLong))))),
				anon(c.anonStruct(f("compound_head", ulong), f("compound_dtor", uchar), f("compound_order", uchar),
					f("compound_mapcount", atomic), f("compound_pincount", atomic), f("compound_nr", uint),
					f("_private_1", ulong))),
				anon(c.anonStruct(f("_compound_pad_1", ulong), f("_compound_pad_2", ulong), f("deferred_list", listHead))),
				anon(c.anonStruct(f("_pt_pad_1", ulong), f("pmd_huge_pte", pgtable), f("_pt_pad_2", ulong),
					anon(c.anonUnion(f("pt_mm", ptr(mmStruct)), f("pt_frag_refcount", atomic))), f("ptl", spinlock))),
				anon(c.anonStruct(f("pgmap", ptr(devPagemap)), f("zone_device_data", voidp))),
				f("callback_head", cbHead))),
			anon(c.anonUnion(f("_mapcount", atomic), f("page_type", uint))),
			f("_refcount", atomic),
			f("memcg_data", ulong))
	default: // V6_10, V6_11
		c.define(page, 16,
			f("flags", ulong),
			anon(c.anonUnion(
				anon(c.anonStruct(anon(lruUnion()), f("mapping", ptr(addrSpace)),
					anon(c.anonUnion(f("index", pgoff), f("share", ulong))), f("private", ulong))),
				anon(c.anonStruct(f("pp_magic", ulong), f("pp", ptr(c.fwd("page_pool"))), f("_pp_mapping_pad", ulong),
					f("dma_addr", ulong), f("pp_ref_count", atomicLong))),
				anon(c.anonStruct(f("compound_head", ulong))),
				anon(c.anonStruct(f("pgmap", ptr(devPagemap)), f("zone_device_data", voidp))),
				f("callback_head", cbHead))),
			anon(c.anonUnion(f("page_type", uint), f("_mapcount", atomic))),
			f("_refcount", atomic),
			f("memcg_data", ulong))
	}

	// struct slab (mm/slab.h), SLUB's half.
	slabRef := btf.Type(page)
	if v.hasStructSlab() {
		slab := c.declare("slab")
		slabRef = slab
		switch v {
		case V6_1:
			c.define(slab, 0,
				f("__page_flags", ulong),
				anon(c.anonUnion(f("slab_list", listHead), f("callback_head", cbHead),
					anon(c.anonStruct(f("next", ptr(slab)), f("slabs", sint))))),
				f("slab_cache", ptr(kmemCache)),
				f("freelist", voidp),
				anon(slabCounters()),
				f("__unused", uint),
				f("__page_refcount", atomic),
				f("memcg_data", ulong))
		default:
			c.define(slab, 0,
				f("__page_flags", ulong),
				f("slab_cache", ptr(kmemCache)),
				anon(c.anonUnion(
					anon(c.anonStruct(
						anon(c.anonUnion(f("slab_list", listHead), anon(c.anonStruct(f("next", ptr(slab)), f("slabs", sint))))),
						anon(c.anonUnion(
							anon(c.anonStruct(f("freelist", voidp), anon(slabCounters()))),
							f("freelist_counter", freelistABA))))),
					f("callback_head", cbHead))),
				f("__page_type", uint),
				f("__page_refcount", atomic),
				f("obj_exts", ulong))
		}
	}

	// include/linux/slub_def.h
	cpu := c.declare("kmem_cache_cpu")
	switch v {
	case V4_18:
		c.define(cpu, 0, f("freelist", ptr(voidp)), f("tid", ulong), f("page", ptr(page)), f("partial", ptr(page)))
	case V6_1:
		c.define(cpu, 0, f("freelist", ptr(voidp)), f("tid", ulong), f("slab", ptr(slabRef)), f("partial", ptr(slabRef)),
			f("lock", c.typedef("local_lock_t", c.anonStruct())))
	default:
		c.define(cpu, 0,
			anon(c.anonUnion(anon(c.anonStruct(f("freelist", ptr(voidp)), f("tid", ulong))), f("freelist_tid", freelistABA))),
			f("slab", ptr(slabRef)), f("partial", ptr(slabRef)),
			f("lock", c.typedef("local_lock_t", c.anonStruct())))
	}
	// mm/slab.h (mm/slub.c since v6.8): the totals only with CONFIG_SLUB_DEBUG.
	node := []field{f("list_lock", spinlock), f("nr_partial", ulong), f("partial", listHead)}
	if cfg.SlubDebug {
		node = append(node, f("nr_slabs", atomicLong), f("total_objects", atomicLong), f("full", listHead))
	}
	kcn := c.structOf("kmem_cache_node", node...)
	oo := c.structOf("kmem_cache_order_objects", f("x", uint))
	kobj := c.declare("kobject")
	c.define(kobj, 0, f("name", ptr(constChar)), f("entry", listHead), f("parent", ptr(kobj)), f("kset", ptr(kset)),
		f("ktype", ptr(kobjType)), f("sd", ptr(kernfsNode)), f("kref", kref),
		bitfield("state_initialized", uint, 1), bitfield("state_in_sysfs", uint, 1),
		bitfield("state_add_uevent_sent", uint, 1), bitfield("state_remove_uevent_sent", uint, 1),
		bitfield("uevent_suppress", uint, 1))
	ctor := ptr(&btf.FuncProto{Return: void, Params: []btf.FuncParam{{Type: voidp}}})

	kc := []field{f("cpu_slab", ptr(cpu)), f("flags", slabFlags), f("min_partial", ulong),
		f("size", uint), f("object_size", uint)}
	if v >= V6_1 {
		// reciprocal_size: "mm: slub: implement SLUB version of obj_to_index()" (v5.9).
		kc = append(kc, f("reciprocal_size", c.structOf("reciprocal_value", f("m", u32), f("sh1", u8), f("sh2", u8))))
	}
	kc = append(kc, f("offset", uint), f("cpu_partial", uint))
	if v >= V6_1 {
		// "mm, slub: change percpu partial accounting from objects to pages" (v5.16).
		kc = append(kc, f("cpu_partial_slabs", uint))
	}
	kc = append(kc, f("oo", oo))
	if v == V4_18 {
		kc = append(kc, f("max", oo)) // gone by v6.1; not read
	}
	kc = append(kc, f("min", oo), f("allocflags", gfp), f("refcount", sint), f("ctor", ctor),
		f("inuse", uint), f("align", uint), f("red_left_pad", uint), f("name", ptr(constChar)),
		f("list", listHead), f("kobj", kobj))
	if v == V4_18 {
		workFunc := c.declare("work_struct")
		fn := ptr(&btf.FuncProto{Return: void, Params: []btf.FuncParam{{Type: ptr(workFunc)}}})
		c.define(workFunc, 0, f("data", atomicLong), f("entry", listHead), f("func", c.typedef("work_func_t", fn)))
		memcgArray := c.fwd("memcg_cache_array")
		params := c.structOf("memcg_cache_params",
			f("root_cache", ptr(kmemCache)),
			anon(c.anonUnion(
				anon(c.anonStruct(f("memcg_caches", ptr(memcgArray)), f("__root_caches_node", listHead),
					f("children", listHead), f("dying", bool_))),
				anon(c.anonStruct(f("memcg", ptr(c.lookup("fwd mem_cgroup"))), f("children_node", listHead),
					f("kmem_caches_node", listHead),
					f("deact_fn", ptr(&btf.FuncProto{Return: void, Params: []btf.FuncParam{{Type: ptr(kmemCache)}}})),
					anon(c.anonUnion(f("deact_rcu_head", cbHead), f("deact_work", workFunc))))))))
		kc = append(kc, f("kobj_remove_work", workFunc), f("memcg_params", params),
			f("max_attr_size", uint), f("memcg_kset", ptr(kset)))
	}
	if cfg.Hardened {
		kc = append(kc, f("random", ulong))
	}
	if cfg.NUMA {
		kc = append(kc, f("remote_node_defrag_ratio", uint))
	}
	kc = append(kc, f("random_seq", ptr(uint)), f("useroffset", uint), f("usersize", uint),
		f("node", array(ptr(kcn), cfg.maxNumNodes(), idx)))
	c.define(kmemCache, 0, kc...)

	// include/linux/mmzone.h
	ms := []field{f("section_mem_map", ulong)}
	if v == V4_18 {
		// RHEL 8 builds CONFIG_PAGE_EXTENSION (page_owner): 32 bytes.
		ms = append(ms, f("pageblock_flags", ptr(ulong)), f("page_ext", ptr(c.fwd("page_ext"))), f("pad", ulong))
	} else {
		// "mm/sparsemem: introduce struct mem_section_usage" (v5.3).
		ms = append(ms, f("usage", ptr(c.fwd("mem_section_usage"))))
	}
	c.structOf("mem_section", ms...)

	zone := c.declare("zone")
	c.define(zone, 64, f("_watermark", array(ulong, 4, idx)), f("watermark_boost", ulong))
	zone.Size = 1536 // Debian 6.1's SIZE(zone): the members between are not read
	zoneref := c.structOf("zoneref", f("zone", ptr(zone)), f("zone_idx", sint))
	maxZonelists := uint32(1)
	if cfg.NUMA {
		maxZonelists = 2
	}
	zonelist := c.structOf("zonelist", f("_zonerefs", array(zoneref, cfg.maxNumNodes()*maxNrZones+1, idx)))
	pg := c.structOf("pglist_data",
		f("node_zones", array(zone, maxNrZones, idx)),
		f("node_zonelists", array(zonelist, maxZonelists, idx)),
		f("nr_zones", sint),
		f("node_size_lock", spinlock),
		f("node_start_pfn", ulong),
		f("node_present_pages", ulong),
		f("node_spanned_pages", ulong),
		f("node_id", sint))
	c.typedef("pg_data_t", pg)
	c.typedef("nodemask_t", c.anonStruct(f("bits", array(ulong, (cfg.maxNumNodes()+63)/64, idx))))
	c.structOf("cpumask", f("bits", array(ulong, nrCPUs/64, idx)))
	if cfg.AllocProfiling {
		allocTagTypes(c, cfg, char, uchar, uint, ulong, atomic, atomicLong, listHead, cbHead, rawSpin, spinlock, gfp, idx)
	}
	if cfg.Forensics {
		forensicsTypes(c)
	}
	return c
}

// allocTagTypes declares allocation profiling's types: include/linux/codetag.h
// and alloc_tag.h as 22d407b164ff ("lib: add allocation tagging support for
// memory allocation profiling", v6.10) made them, lib/codetag.c's private
// codetag_type and codetag_module (a473573964e5, "lib: code tagging module
// support", v6.10), the IDR they hang on (an xarray, include/linux/idr.h and
// xarray.h), struct module's first members, and the 6.13 module_tags area
// (0db6f8d7820a).
func allocTagTypes(c *ctypes, cfg Config, char, uchar, uint, ulong btf.Type, atomic, atomicLong btf.Type,
	listHead, cbHead, rawSpin *btf.Struct, spinlock, gfp, idx btf.Type) {
	void := &btf.Void{}
	voidp := ptr(void)
	constChar := &btf.Const{Type: char}
	u64 := c.lookup("u64")
	sizeT := c.typedef("size_t", ulong)

	codetag := c.declare("codetag")
	c.define(codetag, 8, f("flags", uint), f("lineno", uint), f("modname", ptr(constChar)),
		f("function", ptr(constChar)), f("filename", ptr(constChar)))
	counters := c.structOf("alloc_tag_counters", f("bytes", u64), f("calls", u64))
	c.define(c.declare("alloc_tag"), 8, f("ct", codetag), f("counters", ptr(counters)))
	rng := c.structOf("codetag_range", f("start", ptr(codetag)), f("stop", ptr(codetag)))

	// include/linux/module.h: MODULE_NAME_LEN is 64 - sizeof(unsigned long).
	module := c.declare("module")
	state := c.enum("module_state", 4, false, btf.EnumValue{Name: "MODULE_STATE_LIVE", Value: 0},
		btf.EnumValue{Name: "MODULE_STATE_COMING", Value: 1}, btf.EnumValue{Name: "MODULE_STATE_GOING", Value: 2},
		btf.EnumValue{Name: "MODULE_STATE_UNFORMED", Value: 3})
	c.define(module, 0, f("state", state), f("list", listHead), f("name", array(char, 56, idx)))
	cmod := c.structOf("codetag_module", f("mod", ptr(module)), f("range", rng))

	xarray := c.declare("xarray")
	c.define(xarray, 0, f("xa_lock", spinlock), f("xa_flags", gfp), f("xa_head", voidp))
	xaNode := c.declare("xa_node")
	c.define(xaNode, 0, f("shift", uchar), f("offset", uchar), f("count", uchar), f("nr_values", uchar),
		f("parent", ptr(xaNode)), f("array", ptr(xarray)),
		anon(c.anonUnion(f("private_list", listHead), f("rcu_head", cbHead))),
		f("slots", array(voidp, 64, idx)), // XA_CHUNK_SHIFT 6 (CONFIG_BASE_SMALL off)
		anon(c.anonUnion(f("tags", array(array(ulong, 1, idx), 3, idx)), f("marks", array(array(ulong, 1, idx), 3, idx)))))
	// radix_tree_root is #defined to xarray (include/linux/radix-tree.h).
	idr := c.structOf("idr", f("idr_rt", xarray), f("idr_base", uint), f("idr_next", uint))
	osq := c.structOf("optimistic_spin_queue", f("tail", atomic))
	rwsem := c.structOf("rw_semaphore", f("count", atomicLong), f("owner", atomicLong), f("osq", osq),
		f("wait_lock", rawSpin), f("wait_list", listHead))
	cttype := c.declare("codetag_type")
	hook := ptr(&btf.FuncProto{Return: void, Params: []btf.FuncParam{{Name: "cttype", Type: ptr(cttype)}, {Name: "cmod", Type: ptr(cmod)}}})
	desc := c.structOf("codetag_type_desc", f("section", ptr(constChar)), f("tag_size", sizeT),
		f("module_load", hook), f("module_unload", hook))
	c.define(cttype, 0, f("link", listHead), f("count", uint), f("mod_idr", idr), f("mod_lock", rwsem), f("desc", desc))

	// DEFINE_STATIC_KEY_MAYBE: a struct static_key_true or _false, each
	// holding a struct static_key (include/linux/jump_label.h).
	key := c.structOf("static_key", f("enabled", atomic), anon(c.anonUnion(f("type", ulong), f("entries", voidp))))
	c.structOf("static_key_true", f("key", key))
	if cfg.ModuleTagsArea {
		c.structOf("alloc_tag_module_section", f("start_addr", ulong), f("end_addr", ulong), f("size", ulong))
	}
}
