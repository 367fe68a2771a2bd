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
//     same fields live in struct page (RHEL 8's 4.18, Debian 11's 5.10) and
//     are read from there, and kmem_cache_cpu names its slab "page".
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
	"errors"
	"fmt"

	"github.com/vmleak/vmleak/kernel"
)

// layout holds the members the walkers need, probed once per kernel. An
// optional member a kernel lacks is the zero kernel.Member (Present false).
type layout struct {
	// struct kmem_cache
	cacheName, cacheObjSize, cacheSize, cacheOffset, cacheInuse, cacheRandom, cacheRedLeft,
	cacheOO, cacheFlags, cacheCPUSlab, cacheNode, cacheList, cacheCPUSheaves, cachePerNode kernel.Member
	perNodeSize int64         // element size of per_node[] (7.1+)
	perNodeNode kernel.Member // kmem_cache_per_node_ptrs.node
	perNodeBarn kernel.Member
	maxNumNodes int64
	// struct kmem_cache_cpu (before 32c894c7274b, v7.0)
	cpuSize                          int64
	cpuFreelist, cpuSlab, cpuPartial kernel.Member
	// struct kmem_cache_node
	nodeSize                                                  int64
	nodeNrPartial, nodePartial, nodeNrSlabs, nodeTotalObjects kernel.Member
	// struct slab (or struct page before v5.17)
	slabSize                                                            int64
	slabCache, slabFreelist, slabInuse, slabObjects, slabList, slabNext kernel.Member
	slabRCUFunc                                                         kernel.Member // callback_head.func overlaying slab_list
	hardened                                                            bool          // CONFIG_SLAB_FREELIST_HARDENED (kmem_cache.random exists)
	// sheaves (7.x)
	pcsSize                                                  int64
	pcsMain, pcsSpare, sheafObjects, barnFull, sheafBarnList kernel.Member
}

// prober resolves members of one struct type with a sticky error: a member
// the kernel lacks is absent (Present false) from opt and an error from req.
type prober struct {
	k   *kernel.Kernel
	st  string
	err error
}

func (p *prober) opt(path string) kernel.Member {
	if p.err != nil {
		return kernel.Member{}
	}
	m, err := p.k.Probe(p.st, path)
	if err != nil {
		p.err = err
	}
	return m
}

func (p *prober) req(path string) kernel.Member {
	if p.err != nil {
		return kernel.Member{}
	}
	m, err := p.k.Member(p.st, path)
	if err != nil {
		p.err = fmt.Errorf("walk: %w", err)
	}
	return m
}

// newLayout probes the kernel's SLUB types.
func newLayout(k *kernel.Kernel) (*layout, error) {
	l := &layout{}
	if !k.HasType("struct kmem_cache") {
		return nil, fmt.Errorf("walk: the vmlinux has no struct kmem_cache (not a SLUB kernel?)")
	}
	kc := &prober{k: k, st: "struct kmem_cache"}
	l.cacheName = kc.req("name")
	l.cacheObjSize = kc.req("object_size")
	l.cacheSize = kc.req("size")
	l.cacheOffset = kc.req("offset")
	l.cacheInuse = kc.req("inuse")
	l.cacheOO = kc.req("oo")
	l.cacheList = kc.req("list")
	l.cacheFlags = kc.req("flags")
	l.cacheRandom = kc.opt("random")
	l.cacheRedLeft = kc.opt("red_left_pad")
	l.cacheCPUSlab = kc.opt("cpu_slab")
	l.cacheNode = kc.opt("node")
	l.cacheCPUSheaves = kc.opt("cpu_sheaves")
	l.cachePerNode = kc.opt("per_node")
	if kc.err != nil {
		return nil, kc.err
	}
	l.hardened = l.cacheRandom.Present()
	kcT, err := k.StructType("struct kmem_cache")
	if err != nil {
		return nil, fmt.Errorf("walk: %w", err)
	}
	// node[MAX_NUMNODES] of pointers, or (7.1+, 5ba6bc27b1f9) per_node[] of {barn, node}.
	if m, err := kcT.Field("node"); err == nil {
		l.maxNumNodes = m.Type.Strip().Len
	} else if m, err := kcT.Field("per_node"); err == nil {
		at := m.Type.Strip()
		l.maxNumNodes = at.Len
		et, err := k.Types().Resolve(at.Elem.Strip())
		if err != nil {
			return nil, fmt.Errorf("walk: kmem_cache.per_node: %w", err)
		}
		l.perNodeSize = et.Size
		if l.perNodeNode, err = k.MemberOf(et, "node"); err != nil {
			return nil, fmt.Errorf("walk: %w", err)
		}
		if l.perNodeBarn, err = k.MemberOf(et, "barn"); err != nil && !errors.Is(err, kernel.ErrAbsent) {
			return nil, fmt.Errorf("walk: %w", err)
		}
	} else {
		return nil, fmt.Errorf("walk: struct kmem_cache has neither node[] nor per_node[]")
	}
	if l.maxNumNodes <= 0 {
		return nil, fmt.Errorf("walk: kmem_cache's node array has %d entries", l.maxNumNodes)
	}
	if k.HasType("struct kmem_cache_cpu") {
		kcc := &prober{k: k, st: "struct kmem_cache_cpu"}
		l.cpuFreelist = kcc.req("freelist")
		if l.cpuSlab = kcc.opt("slab"); !l.cpuSlab.Present() {
			l.cpuSlab = kcc.req("page") // before bb192ed9aa71 (v5.17)
		}
		l.cpuPartial = kcc.opt("partial") // CONFIG_SLUB_CPU_PARTIAL
		if kcc.err != nil {
			return nil, kcc.err
		}
		if l.cpuSize, err = k.SizeOf("struct kmem_cache_cpu"); err != nil {
			return nil, fmt.Errorf("walk: %w", err)
		}
	}
	kn := &prober{k: k, st: "struct kmem_cache_node"}
	l.nodeNrPartial = kn.req("nr_partial")
	l.nodePartial = kn.req("partial")
	// CONFIG_SLUB_DEBUG: without it the kernel keeps no slab or object
	// totals, and the counter method cannot be computed.
	l.nodeNrSlabs = kn.opt("nr_slabs")
	l.nodeTotalObjects = kn.opt("total_objects")
	if kn.err != nil {
		return nil, kn.err
	}
	if l.nodeSize, err = k.SizeOf("struct kmem_cache_node"); err != nil {
		return nil, fmt.Errorf("walk: %w", err)
	}

	slabType := "struct slab" // d122019bf061 (v5.17)
	if !k.HasType(slabType) {
		slabType = "struct page"
	}
	if l.slabSize, err = k.SizeOf(slabType); err != nil {
		return nil, fmt.Errorf("walk: %w", err)
	}
	sl := &prober{k: k, st: slabType}
	l.slabCache = sl.req("slab_cache")
	l.slabFreelist = sl.req("freelist")
	l.slabInuse = sl.req("inuse")
	l.slabObjects = sl.req("objects")
	if l.slabList = sl.opt("slab_list"); !l.slabList.Present() {
		l.slabList = sl.req("lru")
	}
	l.slabNext = sl.opt("next")
	// The rcu_head a discarded slab is queued with: include/linux/types.h
	// #defines rcu_head to callback_head, so the member declared
	// "struct rcu_head rcu_head" is named callback_head in the debuginfo.
	if l.slabRCUFunc = sl.opt("callback_head.func"); !l.slabRCUFunc.Present() {
		l.slabRCUFunc = sl.opt("rcu_head.func")
	}
	if sl.err != nil {
		return nil, sl.err
	}

	if k.HasType("struct slub_percpu_sheaves") {
		pcs := &prober{k: k, st: "struct slub_percpu_sheaves"}
		l.pcsMain = pcs.req("main")
		l.pcsSpare = pcs.req("spare")
		sh := &prober{k: k, st: "struct slab_sheaf"}
		l.sheafObjects = sh.req("objects")
		l.sheafBarnList = sh.opt("barn_list")
		for _, p := range []*prober{pcs, sh} {
			if p.err != nil {
				return nil, p.err
			}
		}
		if l.pcsSize, err = k.SizeOf("struct slub_percpu_sheaves"); err != nil {
			return nil, fmt.Errorf("walk: %w", err)
		}
		if k.HasType("struct node_barn") {
			b := &prober{k: k, st: "struct node_barn"}
			l.barnFull = b.req("sheaves_full")
			if b.err != nil {
				return nil, b.err
			}
		}
	}
	return l, nil
}
