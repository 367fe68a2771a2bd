// Package walk reads the SLUB allocator's state out of a crashed kernel and
// counts every cache's objects, two independent ways:
//
//   - counters, as crash's `kmem -s` does: the per-node slab and object
//     totals minus the free objects found on every CPU and node list;
//   - a census: every slab page of memory is visited and its objects are
//     counted, minus its own freelist and any CPU freelist that points into
//     it. Full slabs sit on no list; only the census sees them directly.
//
// The census is the answer; disagreements are reported per cache. The walk
// is bounded and detects cycles everywhere: a corrupt freelist or list is
// reported with the cache and slab address and the walk goes on. Results are
// plain data (Census) that round-trips through JSON; rendering lives in the
// command. walk reads kernel memory only through package kernel.
//
// Kernel versions are handled by probing types, never by version numbers:
//   - struct slab split from struct page: d122019bf061 (v5.17); before it the
//     same fields live in struct page (RHEL 8's 4.18) and are read from there.
//   - struct slab fields rearranged: 130d4df57390 (v6.2).
//   - PG_slab became a page type: 46df8e73a4a3 (v6.10), one type per page in
//     the top byte of page_type (PGTY_slab): 4ffca5a96678 (v6.12).
//   - per-CPU sheaves: 2d517aa09bbc (v6.18); struct kmem_cache_cpu removed:
//     32c894c7274b (v7.0); kmem_cache.node became per_node[].node:
//     5ba6bc27b1f9 (v7.1).
//   - hardened freelist pointers with swab: 1ad53d9fa3f6 (v5.7); before it
//     without swab (2482ddec670f, v4.14). Detected per dump.
package walk

import (
	"fmt"

	"github.com/vmleak/vmleak/kdwarf"
	"github.com/vmleak/vmleak/kernel"
)

// field is a member's location; ok is false when the kernel lacks it.
type field struct {
	off, bitOff, bitSize int64
	size                 int64 // bytes of the member's type
	ok                   bool
}

// layout holds the offsets the walkers need, probed once per kernel.
type layout struct {
	// struct kmem_cache
	cacheName, cacheObjSize, cacheSize, cacheOffset, cacheRandom, cacheRedLeft,
	cacheOO, cacheFlags, cacheCPUSlab, cacheNode, cacheList, cacheCPUSheaves, cachePerNode field
	perNodeSize int64 // element size of per_node[] (7.1+)
	perNodeNode field // kmem_cache_per_node_ptrs.node
	perNodeBarn field
	maxNumNodes int64
	// struct kmem_cache_cpu
	cpuFreelist, cpuSlab, cpuPartial field
	// struct kmem_cache_node
	nodeNrPartial, nodePartial, nodeNrSlabs, nodeTotalObjects field
	// struct slab (or struct page before v5.17)
	slabSize                                                            int64
	slabCache, slabFreelist, slabInuse, slabObjects, slabList, slabNext field
	slabRCUFunc                                                         field // rcu_head.func overlaying slab_list
	// struct page
	pageSize     int64
	pageFlags    field
	pageType     field
	pageCompound field  // compound_head, or compound_info since d50569612c29 (v7.1)
	slabFlagBit  int64  // PG_slab bit in page->flags (page-flag kernels)
	slabPageType uint32 // PGTY_slab (top byte of page_type), 6.12+
	pageTypeBase uint32 // PAGE_TYPE_BASE for the 6.10/6.11 inverted scheme
	pageTypeSlab uint32 // PG_slab bit of the inverted scheme
	slabTypeMode int    // slabByFlag, slabByTypeByte, slabByTypeBit
	hardened     bool   // CONFIG_SLAB_FREELIST_HARDENED (kmem_cache.random exists)
	// sheaves (7.x)
	pcsMain, pcsSpare, sheafSize, sheafObjects, barnFull, sheafBarnList field
}

const (
	slabByFlag = iota
	slabByTypeByte
	slabByTypeBit
)

func probe(k *kernel.Kernel, t *kdwarf.Type, path string) field {
	if t == nil {
		return field{}
	}
	m, err := t.Field(path)
	if err != nil {
		return field{}
	}
	f := field{off: m.Offset, size: m.Type.Strip().Size, ok: true}
	if m.BitSize != 0 {
		f.bitOff, f.bitSize = m.BitOffset, m.BitSize
	}
	return f
}

// structType returns a struct's full type, or nil when the kernel has none
// (a version probe: absence is answered without a DWARF fallback).
func structType(k *kernel.Kernel, name string) *kdwarf.Type {
	if !k.Types.Has("struct " + name) {
		return nil
	}
	t, err := k.TypeOf("struct " + name)
	if err != nil {
		return nil
	}
	t, err = k.Types.Resolve(t.Strip())
	if err != nil {
		return nil
	}
	return t
}

// newLayout probes the kernel's SLUB types.
func newLayout(k *kernel.Kernel) (*layout, error) {
	l := &layout{}
	kc := structType(k, "kmem_cache")
	if kc == nil {
		return nil, fmt.Errorf("walk: the vmlinux has no struct kmem_cache (not a SLUB kernel?)")
	}
	l.cacheName = probe(k, kc, "name")
	l.cacheObjSize = probe(k, kc, "object_size")
	l.cacheSize = probe(k, kc, "size")
	l.cacheOffset = probe(k, kc, "offset")
	l.cacheRandom = probe(k, kc, "random")
	l.cacheRedLeft = probe(k, kc, "red_left_pad")
	l.cacheOO = probe(k, kc, "oo")
	l.cacheFlags = probe(k, kc, "flags")
	l.cacheCPUSlab = probe(k, kc, "cpu_slab")
	l.cacheNode = probe(k, kc, "node")
	l.cacheList = probe(k, kc, "list")
	l.cacheCPUSheaves = probe(k, kc, "cpu_sheaves")
	l.cachePerNode = probe(k, kc, "per_node")
	l.hardened = l.cacheRandom.ok
	for _, f := range []struct {
		name string
		f    field
	}{{"name", l.cacheName}, {"object_size", l.cacheObjSize}, {"size", l.cacheSize}, {"offset", l.cacheOffset},
		{"oo", l.cacheOO}, {"list", l.cacheList}} {
		if !f.f.ok {
			return nil, fmt.Errorf("walk: struct kmem_cache has no %s", f.name)
		}
	}
	// node[MAX_NUMNODES] of pointers, or (7.1+, 5ba6bc27b1f9) per_node[] of {barn, node}.
	if m, err := kc.Field("node"); err == nil {
		l.maxNumNodes = m.Type.Strip().Len
	} else if m, err := kc.Field("per_node"); err == nil {
		at := m.Type.Strip()
		l.maxNumNodes = at.Len
		et, err := k.Types.Resolve(at.Elem.Strip())
		if err != nil {
			return nil, fmt.Errorf("walk: kmem_cache.per_node: %w", err)
		}
		l.perNodeSize = et.Size
		l.perNodeNode = probe(k, et, "node")
		l.perNodeBarn = probe(k, et, "barn")
	} else {
		return nil, fmt.Errorf("walk: struct kmem_cache has neither node[] nor per_node[]")
	}
	if kcc := structType(k, "kmem_cache_cpu"); kcc != nil {
		l.cpuFreelist = probe(k, kcc, "freelist")
		l.cpuSlab = probe(k, kcc, "slab")
		if !l.cpuSlab.ok {
			l.cpuSlab = probe(k, kcc, "page") // before bb192ed9aa71 (v5.17)
		}
		l.cpuPartial = probe(k, kcc, "partial")
	}
	kn := structType(k, "kmem_cache_node")
	if kn == nil {
		return nil, fmt.Errorf("walk: no struct kmem_cache_node")
	}
	l.nodeNrPartial = probe(k, kn, "nr_partial")
	l.nodePartial = probe(k, kn, "partial")
	l.nodeNrSlabs = probe(k, kn, "nr_slabs")
	l.nodeTotalObjects = probe(k, kn, "total_objects")

	page := structType(k, "page")
	if page == nil {
		return nil, fmt.Errorf("walk: no struct page")
	}
	l.pageSize = page.Size
	l.pageFlags = probe(k, page, "flags")
	l.pageType = probe(k, page, "page_type")
	if l.pageCompound = probe(k, page, "compound_head"); !l.pageCompound.ok {
		l.pageCompound = probe(k, page, "compound_info")
	}
	slab := structType(k, "slab") // d122019bf061 (v5.17)
	if slab == nil {
		slab = page
	}
	l.slabSize = slab.Size
	l.slabCache = probe(k, slab, "slab_cache")
	l.slabFreelist = probe(k, slab, "freelist")
	l.slabInuse = probe(k, slab, "inuse")
	l.slabObjects = probe(k, slab, "objects")
	l.slabList = probe(k, slab, "slab_list")
	if !l.slabList.ok {
		l.slabList = probe(k, slab, "lru")
	}
	l.slabNext = probe(k, slab, "next")
	l.slabRCUFunc = probe(k, slab, "rcu_head.func")
	for _, f := range []struct {
		name string
		f    field
	}{{"slab_cache", l.slabCache}, {"freelist", l.slabFreelist}, {"inuse", l.slabInuse}, {"objects", l.slabObjects}, {"slab_list", l.slabList}} {
		if !f.f.ok {
			return nil, fmt.Errorf("walk: struct slab has no %s", f.name)
		}
	}

	// How a slab page is marked.
	enum := func(name string) (int64, bool) {
		if !k.Types.HasEnumerator(name) {
			return 0, false
		}
		v, err := k.Types.Enumerator(name)
		return v, err == nil
	}
	if v, ok := enum("PGTY_slab"); ok && l.pageType.ok {
		l.slabTypeMode, l.slabPageType = slabByTypeByte, uint32(v)
	} else if base, ok := enum("PAGE_TYPE_BASE"); ok && l.pageType.ok {
		if bit, ok := enum("PG_slab"); ok && bit >= 0x80 {
			l.slabTypeMode, l.pageTypeBase, l.pageTypeSlab = slabByTypeBit, uint32(base), uint32(bit)
		}
	}
	if l.slabTypeMode == slabByFlag {
		v, err := k.Types.Enumerator("PG_slab")
		if err != nil {
			return nil, fmt.Errorf("walk: cannot tell slab pages: %w", err)
		}
		l.slabFlagBit = v
		if !l.pageFlags.ok {
			return nil, fmt.Errorf("walk: struct page has no flags")
		}
	}
	if pcs := structType(k, "slub_percpu_sheaves"); pcs != nil {
		l.pcsMain = probe(k, pcs, "main")
		l.pcsSpare = probe(k, pcs, "spare")
	}
	if sh := structType(k, "slab_sheaf"); sh != nil {
		l.sheafSize = probe(k, sh, "size")
		l.sheafObjects = probe(k, sh, "objects")
		l.sheafBarnList = probe(k, sh, "barn_list")
	}
	if b := structType(k, "node_barn"); b != nil {
		l.barnFull = probe(k, b, "sheaves_full")
	}
	return l, nil
}

// val extracts an unsigned member (bitfield or 1/2/4/8-byte integer) from a
// struct's bytes.
func (f field) val(b []byte) uint64 {
	if !f.ok {
		return 0
	}
	if f.bitSize == 0 {
		switch f.size {
		case 8:
			return f.u64(b)
		case 4:
			return uint64(f.u32(b))
		case 2:
			if f.off+2 <= int64(len(b)) {
				return uint64(b[f.off]) | uint64(b[f.off+1])<<8
			}
		case 1:
			if f.off < int64(len(b)) {
				return uint64(b[f.off])
			}
		}
		return 0
	}
	start := f.bitOff / 8
	var x uint64
	for i := int64(0); i < 8 && start+i < int64(len(b)); i++ {
		x |= uint64(b[start+i]) << (8 * i)
	}
	x >>= uint(f.bitOff % 8)
	return x & (1<<uint(f.bitSize) - 1)
}

func (f field) u64(b []byte) uint64 {
	if !f.ok || f.off+8 > int64(len(b)) {
		return 0
	}
	o := f.off
	return uint64(b[o]) | uint64(b[o+1])<<8 | uint64(b[o+2])<<16 | uint64(b[o+3])<<24 |
		uint64(b[o+4])<<32 | uint64(b[o+5])<<40 | uint64(b[o+6])<<48 | uint64(b[o+7])<<56
}

func (f field) u32(b []byte) uint32 {
	if !f.ok || f.off+4 > int64(len(b)) {
		return 0
	}
	o := f.off
	return uint32(b[o]) | uint32(b[o+1])<<8 | uint32(b[o+2])<<16 | uint32(b[o+3])<<24
}
