// Package owners attributes slab memory to the modules that own it, and
// says for every attribution which evidence it rests on. This file holds
// the first kind of evidence, cache ownership: a module owns a cache when
// its memory holds the pointer to the cache's struct kmem_cache (the
// kmem_cache_create() result kept in a static variable), or when the
// cache's constructor is code of the module.
//
// It reads memory through package kernel and takes the census from walk;
// results are data the caller owns.
package owners

import (
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/walk"
)

// Evidence kinds, strongest first.
const (
	// EvidenceDataPointer: the module's data holds the kmem_cache pointer.
	EvidenceDataPointer = "data-pointer"
	// EvidenceConstructor: the cache's ctor lies in the module's text.
	EvidenceConstructor = "constructor"
)

// Evidence is one fact an attribution rests on.
type Evidence struct {
	Kind string     `json:"kind"`
	Addr kernel.Hex `json:"addr"` // where the pointer is stored, or the constructor
	What string     `json:"what"`
}

// CacheOwner is a cache a module owns.
type CacheOwner struct {
	Cache     string     `json:"cache"`
	CacheAddr kernel.Hex `json:"cache_addr"`
	Module    string     `json:"module"`
	// Merged is set when the cache is shared by merged aliases: the module
	// holds a pointer to a cache its own kmem_cache_create() merged into,
	// so it owns a share of it, not all of it.
	Merged   bool       `json:"merged,omitempty"`
	Evidence []Evidence `json:"evidence"`
}

// scanChunk bounds one read of module memory; a missing page loses only
// its own chunk.
const scanChunk = 4096

// CacheOwners finds which loaded module owns which cache of a census. A
// module whose memory cannot be read is a warning; the others are scanned.
func CacheOwners(k *kernel.Kernel, c *walk.Census, mods []kernel.Module) ([]CacheOwner, []string) {
	var warnings []string
	byAddr := make(map[uint64]*walk.CacheStats, len(c.Caches))
	for _, cs := range c.Caches {
		byAddr[cs.Addr] = cs
	}
	found := map[[2]uint64]*CacheOwner{} // (cache, module) -> owner
	add := func(cs *walk.CacheStats, m *kernel.Module, e Evidence) {
		key := [2]uint64{cs.Addr, m.Addr}
		o := found[key]
		if o == nil {
			o = &CacheOwner{Cache: cs.Name, CacheAddr: kernel.Hex(cs.Addr), Module: m.Name, Merged: len(cs.Aliases) > 0}
			found[key] = o
		}
		o.Evidence = append(o.Evidence, e)
	}
	warnings = append(warnings, scanModuleData(k, mods, func(m *kernel.Module, kind string, at, p uint64) {
		if cs := byAddr[p]; cs != nil {
			add(cs, m, Evidence{Kind: EvidenceDataPointer, Addr: kernel.Hex(at),
				What: fmt.Sprintf("module %s's %s at %#x holds the pointer to kmem_cache %s", m.Name, kind, at, cs.Name)})
		}
	})...)
	for _, cs := range c.Caches {
		ctor, err := k.Object(cs.Addr, "struct kmem_cache").Field("ctor").Ptr()
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("owners: cache %s: %v", cs.Name, err))
			continue
		}
		if ctor == 0 {
			continue
		}
		for i := range mods {
			m := &mods[i]
			if r, ok := m.Contains(ctor); ok && textRange(r.Kind) {
				add(cs, m, Evidence{Kind: EvidenceConstructor, Addr: kernel.Hex(ctor),
					What: fmt.Sprintf("constructor %#x is in module %s's %s", ctor, m.Name, r.Kind)})
			}
		}
	}
	out := make([]CacheOwner, 0, len(found))
	for _, o := range found {
		sort.Slice(o.Evidence, func(i, j int) bool {
			return o.Evidence[i].Kind > o.Evidence[j].Kind || o.Evidence[i].Kind == o.Evidence[j].Kind && o.Evidence[i].Addr < o.Evidence[j].Addr
		})
		out = append(out, *o)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Module != out[j].Module {
			return out[i].Module < out[j].Module
		}
		return out[i].Cache < out[j].Cache
	})
	return out, warnings
}

// scanModuleData calls visit for every aligned word of every loaded
// module's live data (dataRange), with where it is stored. A chunk that
// cannot be read is a warning; the scan goes on.
func scanModuleData(k *kernel.Kernel, mods []kernel.Module, visit func(m *kernel.Module, kind string, at, word uint64)) []string {
	var warnings []string
	buf := make([]byte, scanChunk)
	for i := range mods {
		m := &mods[i]
		for _, r := range m.Ranges {
			if !dataRange(r.Kind) {
				continue
			}
			for off := uint64(0); off < r.Size; off += scanChunk {
				n := min(scanChunk, r.Size-off)
				va := r.Base + off
				if err := k.ReadVirt(buf[:n], va); err != nil {
					warnings = append(warnings, fmt.Sprintf("owners: module %s %s at %#x: %v", m.Name, r.Kind, va, err))
					continue
				}
				for j := uint64(0); j+8 <= n; j += 8 {
					visit(m, r.Kind, va+j, binary.LittleEndian.Uint64(buf[j:]))
				}
			}
		}
	}
	return warnings
}

// dataRange tells whether a module region holds data a pointer may sit in:
// 6.4+'s data, rodata and ro_after_init (ac3b43283923), or 6.1's whole core
// layout (its text, rodata and data are one range there). Init memory is
// freed after load and is not scanned.
func dataRange(kind string) bool {
	switch kind {
	case "data", "rodata", "ro_after_init", "core":
		return true
	}
	return false
}

// textRange tells whether a module region holds live code.
func textRange(kind string) bool { return kind == "text" || kind == "core" }
