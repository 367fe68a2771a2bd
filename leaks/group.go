package leaks

import (
	"encoding/hex"
	"sort"
)

// group sums r.Leaks by cache and then by owner and site, biggest first,
// with the first SamplesPerGroup objects of each group read as samples.
func group(r *Result, mem Memory) {
	type gkey struct{ cache, owner, site, ev string }
	caches := map[string]*CacheLeaks{}
	groups := map[gkey]*Group{}
	r.Caches, r.Unreferenced, r.UnreferencedBytes = nil, 0, 0
	var order []gkey
	for _, l := range r.Leaks {
		c := caches[l.Cache]
		if c == nil {
			c = &CacheLeaks{Cache: l.Cache, ObjectSize: l.Size}
			caches[l.Cache] = c
		}
		c.Objects++
		c.Bytes += l.Size
		r.Unreferenced++
		r.UnreferencedBytes += l.Size
		k := gkey{l.Cache, l.Owner, l.Site, l.Evidence}
		g := groups[k]
		if g == nil {
			g = &Group{Owner: l.Owner, Site: l.Site, Evidence: l.Evidence}
			groups[k] = g
			order = append(order, k)
		}
		g.Objects++
		g.Bytes += l.Size
		if len(g.Samples) < SamplesPerGroup {
			g.Samples = append(g.Samples, sample(mem, l.Addr, l.Size))
		}
	}
	for _, k := range order {
		c := caches[k.cache]
		c.Groups = append(c.Groups, *groups[k])
	}
	for _, c := range caches {
		sort.SliceStable(c.Groups, func(i, j int) bool {
			a, b := c.Groups[i], c.Groups[j]
			if a.Objects != b.Objects {
				return a.Objects > b.Objects
			}
			if a.Owner != b.Owner {
				return a.Owner < b.Owner
			}
			return a.Site < b.Site
		})
		r.Caches = append(r.Caches, *c)
	}
	sort.Slice(r.Caches, func(i, j int) bool {
		a, b := r.Caches[i], r.Caches[j]
		if a.Bytes != b.Bytes {
			return a.Bytes > b.Bytes
		}
		return a.Cache < b.Cache
	})
}

func sample(mem Memory, va, size uint64) Sample {
	s := Sample{Addr: hexAddr(va)}
	if mem == nil {
		return s
	}
	b := make([]byte, min(SampleBytes, size))
	if mem.ReadVirt(b, va) == nil {
		s.Bytes = hex.EncodeToString(b)
	}
	return s
}

// Filter keeps the leaks of one cache and/or one owner (empty: any) and
// regroups them; samples are read again from mem.
func (r *Result) Filter(mem Memory, cache, owner string) {
	keep := r.Leaks[:0]
	for _, l := range r.Leaks {
		if (cache == "" || l.Cache == cache) && (owner == "" || l.Owner == owner) {
			keep = append(keep, l)
		}
	}
	r.Leaks = keep
	group(r, mem)
}
