package leaks

import (
	"fmt"
	"runtime"

	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/owners"
	"github.com/vmleak/vmleak/symbolize"
	"github.com/vmleak/vmleak/walk"
)

// Schema is the version of Result as JSON, raised when a field changes
// meaning or goes away.
const Schema = 1

// Evidence for a group's owner.
const (
	EvidenceTrack = owners.EvidenceTrack // the object's allocation track
	EvidenceCache = "cache-owner"        // the module owning the object's cache
	EvidenceNone  = "none"               // no evidence: unattributed
)

// SampleBytes is how much of each sample object is dumped, as kmemleak's
// report does.
const SampleBytes = 32

// SamplesPerGroup bounds the samples kept for one group.
const SamplesPerGroup = 3

// Result is one dump's unreferenced objects: data, rendered by the caller.
type Result struct {
	Schema  int    `json:"schema"`
	Release string `json:"release"`
	Dump    string `json:"dump"`
	// Objects is the allocated slab objects considered; Referenced those
	// reached from the roots.
	Objects           int64       `json:"objects"`
	Referenced        int64       `json:"referenced"`
	Unreferenced      int64       `json:"unreferenced"`
	UnreferencedBytes uint64      `json:"unreferenced_bytes"`
	Roots             []RootStats `json:"roots"`
	// ScannedBytes is the memory read for pointers: roots and referenced
	// objects.
	ScannedBytes uint64 `json:"scanned_bytes"`
	// UnreadablePages could not be read (missing from the dump): root
	// pages, and pages of referenced objects whose own references are then
	// unknown; reserved pages absent from the dump are counted in Roots
	// only (firmware areas and holes are reserved and never dumped), those
	// the dump holds but that cannot be read (corrupt) here too. Either makes the result Partial, as do slabs that could not
	// be read or told apart and roots that could not be found (Warnings).
	UnreadablePages int64        `json:"unreadable_pages"`
	Partial         bool         `json:"partial"`
	Caches          []CacheLeaks `json:"caches"`
	Warnings        []string     `json:"warnings,omitempty"`
	// Leaks is every unreferenced object, in address order (--addresses).
	Leaks []Leak `json:"-"`
}

// RootStats is one kind of root.
type RootStats struct {
	Kind    string `json:"kind"`
	Regions int    `json:"regions"`
	Bytes   uint64 `json:"bytes"`
	// UnreadablePages of these roots were missing from the dump.
	UnreadablePages int64 `json:"unreadable_pages,omitempty"`
}

// CacheLeaks is one cache's unreferenced objects, by owner.
type CacheLeaks struct {
	Cache      string  `json:"cache"`
	ObjectSize uint64  `json:"object_size"`
	Objects    int64   `json:"objects"`
	Bytes      uint64  `json:"bytes"`
	Groups     []Group `json:"groups"`
}

// Group is the unreferenced objects of one cache with one owner and call
// site.
type Group struct {
	Owner    string   `json:"owner"`          // a module, "kernel" or "unattributed"
	Site     string   `json:"site,omitempty"` // the allocation's caller, from its track
	Evidence string   `json:"evidence"`
	Objects  int64    `json:"objects"`
	Bytes    uint64   `json:"bytes"`
	Samples  []Sample `json:"samples"`
}

// Sample is one object of a group: its address and first bytes.
type Sample struct {
	Addr  kernel.Hex `json:"addr"`
	Bytes string     `json:"bytes"` // hex, up to SampleBytes; empty when unreadable
}

// Leak is one unreferenced object and whom it is attributed to.
type Leak struct {
	Addr     uint64
	Size     uint64
	Cache    string
	Owner    string
	Site     string
	Evidence string
}

// Find scans a dump: the roots of Roots, the objects of w.Slabs, and
// attribution by allocation tracks (where caches keep them) or by the
// cache's owning module (from c). Unreadable memory makes the result
// partial, never an error; an error is a dump that cannot be scanned.
func Find(k *kernel.Kernel, w *walk.Walker, c *walk.Census, s *symbolize.Symbolizer) (*Result, error) {
	r := &Result{Schema: Schema, Release: k.Release(), Dump: k.Path(), Partial: c.Partial}
	// The slab pages are read twice more, by the freelist walks of Slabs
	// and by the scan of their objects: on a compressed dump keep them
	// decompressed in between (the struct pages Slabs reads again too).
	k.ReserveCache(slabBytes(c) + w.MM().MaxPFN()*w.MM().StructPageSize())
	slabs, slabErrs, err := w.Slabs()
	if err != nil {
		return nil, fmt.Errorf("leaks: %w", err)
	}
	for _, e := range slabErrs {
		r.Warnings = append(r.Warnings, e.Error())
	}
	t, warnings := newTable(slabs)
	slabs = nil
	r.Warnings = append(r.Warnings, warnings...)
	mods, err := k.Modules()
	if err != nil {
		r.Warnings = append(r.Warnings, fmt.Sprintf("leaks: modules: %v", err))
	}
	roots, warnings := Roots(k, w.MM(), s, mods)
	r.Warnings = append(r.Warnings, warnings...)
	sc := scan(k, t, roots, runtime.GOMAXPROCS(0))
	sc.fill(r, roots)
	r.Partial = r.Partial || len(r.Warnings) > 0 || r.UnreadablePages > 0
	r.Leaks = sc.leaks()
	attribute(r, k, w, c, s, mods)
	group(r, k)
	return r, nil
}

// slabBytes is the memory of every slab the census counted.
func slabBytes(c *walk.Census) uint64 {
	var n uint64
	for _, cs := range c.Caches {
		n += cs.MemoryBytes()
	}
	return n
}

// scan runs the mark phase.
func scan(mem Memory, t *table, roots []Region, workers int) *scanner {
	sc := newScanner(mem, t)
	sc.run(roots, workers)
	return sc
}

// fill writes the scan's counts into r.
func (s *scanner) fill(r *Result, roots []Region) {
	kinds := map[string]int{}
	for _, rg := range roots {
		i, ok := kinds[rg.Kind]
		if !ok {
			i = len(r.Roots)
			kinds[rg.Kind] = i
			r.Roots = append(r.Roots, RootStats{Kind: rg.Kind})
		}
		r.Roots[i].Regions++
		r.Roots[i].Bytes += rg.Size
	}
	for i := uint64(0); i < s.t.n; i++ {
		if s.t.isAllocated(i) {
			r.Objects++
			if s.isMarked(i) {
				r.Referenced++
			}
		}
	}
	for i := range r.Roots {
		r.Roots[i].UnreadablePages = s.st.rootMissingBy[r.Roots[i].Kind]
	}
	r.ScannedBytes = s.st.rootBytes.Load() + s.st.objectBytes.Load()
	r.UnreadablePages = s.st.rootMissing.Load() + int64(len(s.st.missing)) - s.st.rootMissingBy[KindReserved] + s.st.reservedCorrupt.Load()
}

// leaks lists the allocated objects no root reached, in address order.
func (s *scanner) leaks() []Leak {
	var out []Leak
	for _, sl := range s.t.slabs {
		n := (sl.end - sl.first) / sl.stride
		for i := uint64(0); i < n; i++ {
			idx := sl.base + i
			if s.t.isAllocated(idx) && !s.isMarked(idx) {
				out = append(out, Leak{Addr: sl.first + i*sl.stride, Size: sl.size, Cache: s.t.caches[sl.cache]})
			}
		}
	}
	return out
}

// attribute sets each leak's owner: its allocation track's caller where
// the cache keeps tracks, else the module owning the cache, else
// unattributed.
func attribute(r *Result, k *kernel.Kernel, w *walk.Walker, c *walk.Census, s *symbolize.Symbolizer, mods []kernel.Module) {
	byAddr := make(map[uint64]int, len(r.Leaks))
	tracked := map[string]bool{}
	for i, l := range r.Leaks {
		byAddr[l.Addr] = i
		if _, ok := tracked[l.Cache]; !ok {
			yes, _ := w.StoresUser(l.Cache)
			tracked[l.Cache] = yes
		}
	}
	cacheOwner := map[string]string{}
	cos, warnings := owners.CacheOwners(k, c, mods)
	r.Warnings = append(r.Warnings, warnings...)
	for _, o := range cos {
		if prev, ok := cacheOwner[o.Cache]; ok && prev != o.Module {
			cacheOwner[o.Cache] = "" // two modules claim it: say nothing
			continue
		}
		if !o.Merged {
			cacheOwner[o.Cache] = o.Module
		}
	}
	for i := range r.Leaks {
		l := &r.Leaks[i]
		l.Owner, l.Evidence = owners.OwnerUnattributed, EvidenceNone
		if m := cacheOwner[l.Cache]; m != "" {
			l.Owner, l.Evidence = m, EvidenceCache
		}
	}
	any := false
	for _, v := range tracked {
		any = any || v
	}
	if !any {
		return
	}
	callers := map[uint64]symbolize.Frame{}
	err := w.Tracks("", false, func(o walk.Object, tr walk.Tracks, err error) bool {
		if err != nil {
			return true // the same slabs' problems are already warnings
		}
		i, ok := byAddr[o.Addr]
		if !ok {
			return true
		}
		if tr.Alloc.Addr == 0 {
			return true
		}
		f, ok := callers[tr.Alloc.Addr]
		if !ok {
			f = s.Caller(tr.Alloc.Addr, nil)
			callers[tr.Alloc.Addr] = f
		}
		l := &r.Leaks[i]
		switch {
		case f.Module != "":
			l.Owner = f.Module
		case f.Kind == symbolize.FrameKernel:
			l.Owner = owners.OwnerKernel
		}
		l.Site, l.Evidence = f.String(), EvidenceTrack
		return true
	})
	if err != nil {
		r.Warnings = append(r.Warnings, fmt.Sprintf("leaks: allocation tracks: %v", err))
	}
}

func hexAddr(va uint64) kernel.Hex { return kernel.Hex(va) }
