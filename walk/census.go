package walk

import (
	"fmt"
	"sort"
)

// Census is the state of every slab cache in one dump. It is data: the
// commands render it, and attribution and comparison consume it.
type Census struct {
	// Schema is the version of this structure as JSON: CensusSchema, raised
	// when a field changes meaning or goes away (added fields keep it).
	Schema   int           `json:"schema"`
	Release  string        `json:"release"`
	Dump     string        `json:"dump"`
	Method   string        `json:"method"` // "census" (per object) — counters are kept per cache
	Caches   []*CacheStats `json:"caches"`
	Warnings []string      `json:"warnings,omitempty"`
	// Partial is true when some slab memory could not be read, or some
	// slab's metadata was corrupt: the affected caches say how many slabs
	// they could not read (UnreadableSlabs) and what was corrupt (Corrupt).
	Partial bool `json:"partial"`
	// FreelistEncoding is how free pointers were stored: "swab", "plain"
	// (hardened without swab, before v5.7) or "raw" (not hardened).
	FreelistEncoding string `json:"freelist_encoding"`
	// PagesScanned counts the struct pages the census read.
	PagesScanned uint64 `json:"pages_scanned"`
	// PagesNotDumped counts the struct pages it did not read because the
	// dump holds none of the page frames they describe (a makedumpfile -d
	// 31 dump leaves out free, page cache and user pages, never slabs).
	PagesNotDumped uint64 `json:"pages_not_dumped,omitempty"`
	// Live is true when the memory was the running kernel's (/proc/kcore):
	// each cache's counts are of a moment during the scan, and caches that
	// changed under it are marked Moved.
	Live bool `json:"live,omitempty"`
}

// CensusSchema is the version of the Census JSON this package writes.
const CensusSchema = 1

// CacheStats is one slab cache. Allocated/Total/Slabs are the census; the
// Counters field holds what crash's counter method gives.
type CacheStats struct {
	Addr       uint64   `json:"addr"`
	Name       string   `json:"name"`
	ObjectSize uint64   `json:"object_size"` // kmem_cache.object_size (crash's OBJSIZE)
	Size       uint64   `json:"size"`        // kmem_cache.size: the stride of one object
	ObjPerSlab uint64   `json:"objects_per_slab"`
	Order      uint64   `json:"order"`
	SlabBytes  uint64   `json:"slab_bytes"` // PAGE_SIZE << order (crash's SSIZE)
	Flags      uint64   `json:"flags"`
	Aliases    []string `json:"aliases,omitempty"`

	Allocated int64 `json:"allocated"`
	Total     int64 `json:"total"`
	Slabs     int64 `json:"slabs"`
	// Where the free objects sit.
	Free FreeCounts `json:"free"`

	Nodes []NodeStats `json:"nodes,omitempty"`

	Counters CounterStats `json:"counters"`
	// Disagree is set when the census and the counter method differ; Why
	// explains a known cause (RCU-delayed slab frees, objects in sheaves).
	Disagree bool   `json:"disagree"`
	Why      string `json:"why,omitempty"`

	// RCUPendingSlabs are slabs of SLAB_TYPESAFE_BY_RCU caches already
	// discarded (no longer in the counters) but not yet freed.
	RCUPendingSlabs int64 `json:"rcu_pending_slabs,omitempty"`
	// UnreadableSlabs could not be read from the dump; the cache is partial.
	UnreadableSlabs int64    `json:"unreadable_slabs,omitempty"`
	Corrupt         []string `json:"corrupt,omitempty"`

	// Live kernels only. Moved: the cache changed while it was read (the
	// census and the counters read after it differ, or a slab stayed torn);
	// TornSlabs were still inconsistent after re-reading and are counted
	// from their struct slab's own counters; GoneSlabs were freed or
	// reused between the scan finding them and reading them.
	Moved     bool  `json:"moved,omitempty"`
	TornSlabs int64 `json:"torn_slabs,omitempty"`
	GoneSlabs int64 `json:"gone_slabs,omitempty"`
}

// FreeCounts says where a cache's free objects are.
type FreeCounts struct {
	SlabFreelists int64 `json:"slab_freelists"` // on slabs' own freelists (partial, and remote frees on CPU slabs)
	CPUFreelists  int64 `json:"cpu_freelists"`  // on per-CPU lockless freelists
	Sheaves       int64 `json:"sheaves"`        // in per-CPU and per-node sheaves (7.x)
}

// NodeStats is a cache's census on one NUMA node.
type NodeStats struct {
	Node      int   `json:"node"`
	Slabs     int64 `json:"slabs"`
	Total     int64 `json:"total"`
	Allocated int64 `json:"allocated"`
	// What the node's struct kmem_cache_node counts, for comparison.
	Partial     int64 `json:"partial_slabs"` // nr_partial
	KernelSlabs int64 `json:"kernel_slabs"`  // nr_slabs
	KernelTotal int64 `json:"kernel_total"`  // total_objects
}

// CounterStats is crash's `kmem -s` computation: node totals minus the free
// objects found on CPU slabs, CPU freelists, CPU partial and node partial lists.
type CounterStats struct {
	// Unavailable says why the kernel keeps no counters to compare with
	// (without CONFIG_SLUB_DEBUG kmem_cache_node has no nr_slabs or
	// total_objects); the numbers below are then not computed.
	Unavailable string `json:"unavailable,omitempty"`
	Allocated   int64  `json:"allocated"`
	Total       int64  `json:"total"`
	Slabs       int64  `json:"slabs"`
	// Free objects by list, as counted there.
	CPUSlab     int64 `json:"cpu_slab"`
	CPUFreelist int64 `json:"cpu_freelist"`
	CPUPartial  int64 `json:"cpu_partial"`
	NodePartial int64 `json:"node_partial"`
}

// MemoryBytes is the memory a cache's slabs occupy.
func (c *CacheStats) MemoryBytes() uint64 { return uint64(c.Slabs) * c.SlabBytes }

// Cache returns the named cache, or nil.
func (c *Census) Cache(name string) *CacheStats {
	for _, cs := range c.Caches {
		if cs.Name == name {
			return cs
		}
	}
	return nil
}

// SortBy orders caches by a key: "name", "allocated", "total", "slabs",
// "memory", "objsize"; "" keeps the kernel's order (slab_caches, newest first).
func (c *Census) SortBy(key string) error {
	less := map[string]func(a, b *CacheStats) bool{
		"name":      func(a, b *CacheStats) bool { return a.Name < b.Name },
		"allocated": func(a, b *CacheStats) bool { return a.Allocated > b.Allocated },
		"total":     func(a, b *CacheStats) bool { return a.Total > b.Total },
		"slabs":     func(a, b *CacheStats) bool { return a.Slabs > b.Slabs },
		"memory":    func(a, b *CacheStats) bool { return a.MemoryBytes() > b.MemoryBytes() },
		"objsize":   func(a, b *CacheStats) bool { return a.ObjectSize > b.ObjectSize },
	}
	if key == "" {
		return nil
	}
	f, ok := less[key]
	if !ok {
		return fmt.Errorf("walk: unknown sort key %q (name, allocated, total, slabs, memory, objsize)", key)
	}
	sort.SliceStable(c.Caches, func(i, j int) bool { return f(c.Caches[i], c.Caches[j]) })
	return nil
}
