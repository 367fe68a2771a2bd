package owners

import (
	"sort"
	"strings"

	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/stackdepot"
	"github.com/vmleak/vmleak/symbolize"
	"github.com/vmleak/vmleak/walk"
)

// ReportSchema is the version of the Report JSON.
const ReportSchema = 1

// Owner names in a report besides modules.
const (
	OwnerKernel       = "kernel"       // allocation tracks name a kernel call site
	OwnerUnattributed = "unattributed" // no evidence: counted, never guessed
)

// Report says whose the allocated slab objects of one dump are.
type Report struct {
	Schema int `json:"schema"`
	// Tracked is set when some cache stores allocation tracks; without them
	// only cache ownership is evidence, and generic caches stay unattributed.
	Tracked bool         `json:"tracked"`
	Owners  []OwnerShare `json:"owners"` // modules by bytes, then kernel, then unattributed
	Caches  []CacheOwner `json:"caches"` // cache ownership evidence
	Sites   []Site       `json:"sites,omitempty"`
	// References are allocated objects module data points into: heuristic
	// evidence, listed beside the owners, not counted in them.
	References []Reference `json:"references,omitempty"`
	Warnings   []string    `json:"warnings,omitempty"`
	Partial    bool        `json:"partial"`
}

// OwnerShare is what one owner holds.
type OwnerShare struct {
	Owner   string       `json:"owner"`
	Objects int64        `json:"objects"`
	Bytes   int64        `json:"bytes"`
	Caches  []CacheShare `json:"caches"`
}

// CacheShare is an owner's objects in one cache, and on what evidence.
type CacheShare struct {
	Cache    string `json:"cache"`
	Objects  int64  `json:"objects"`
	Bytes    int64  `json:"bytes"`
	Evidence string `json:"evidence"` // EvidenceTrack, EvidenceDataPointer+EvidenceConstructor, or ""
}

// Build attributes every allocated object of a census: by its allocation
// track where the cache keeps them, else to the module owning the cache
// (a merged cache is shared, so it is not given to one module), else to
// no one. d may be nil (no stack depot).
func Build(w *walk.Walker, c *walk.Census, mods []kernel.Module, s *symbolize.Symbolizer, d *stackdepot.Depot) (*Report, error) {
	r := &Report{Schema: ReportSchema, Partial: c.Partial}
	var warn []string
	r.Caches, warn = CacheOwners(w.Kernel(), c, mods)
	r.Warnings = append(r.Warnings, warn...)
	r.References, warn = References(w, mods)
	r.Warnings = append(r.Warnings, warn...)
	owned := map[string]CacheOwner{}
	for _, o := range r.Caches {
		if !o.Merged {
			owned[o.Cache] = o
		}
	}
	// owner -> cache and evidence -> share: one owner's objects of a cache
	// may rest on two kinds of evidence, and each is its own row.
	shares := map[string]map[string]*CacheShare{}
	add := func(owner, cache, evidence string, objects, bytes int64) {
		if shares[owner] == nil {
			shares[owner] = map[string]*CacheShare{}
		}
		key := cache + "\x00" + evidence
		cs := shares[owner][key]
		if cs == nil {
			cs = &CacheShare{Cache: cache, Evidence: evidence}
			shares[owner][key] = cs
		}
		cs.Objects += objects
		cs.Bytes += bytes
	}
	tracked := map[string]bool{}
	for _, cs := range c.Caches {
		if ok, err := w.StoresUser(cs.Name); err == nil && ok {
			tracked[cs.Name] = true
		}
	}
	if len(tracked) > 0 {
		r.Tracked = true
		sites, warn, err := Tracked(w, s, d)
		if err != nil {
			return nil, err
		}
		r.Warnings = append(r.Warnings, warn...)
		r.Partial = r.Partial || len(warn) > 0
		r.Sites = sites
		for i := range sites {
			st := &sites[i]
			evidence := EvidenceTrack
			if st.Owner == OwnerUnattributed {
				// Freed init text, module space or no readable track: the
				// track names no one, so the next evidence decides — the
				// module owning the cache, as in an untracked cache (a
				// module's init allocating from its own cache is common).
				if o, ok := owned[st.Cache]; ok {
					st.Owner, evidence = o.Module, evidenceKinds(o)
				}
			}
			add(st.Owner, st.Cache, evidence, st.Objects, st.Bytes)
		}
	}
	for _, cs := range c.Caches {
		if tracked[cs.Name] || cs.Allocated == 0 {
			continue
		}
		bytes := cs.Allocated * int64(cs.ObjectSize)
		if o, ok := owned[cs.Name]; ok {
			add(o.Module, cs.Name, evidenceKinds(o), cs.Allocated, bytes)
			continue
		}
		add(OwnerUnattributed, cs.Name, "", cs.Allocated, bytes)
	}
	for owner, byCache := range shares {
		sh := OwnerShare{Owner: owner}
		for _, cs := range byCache {
			sh.Objects += cs.Objects
			sh.Bytes += cs.Bytes
			sh.Caches = append(sh.Caches, *cs)
		}
		sort.Slice(sh.Caches, func(i, j int) bool {
			if sh.Caches[i].Bytes != sh.Caches[j].Bytes {
				return sh.Caches[i].Bytes > sh.Caches[j].Bytes
			}
			if sh.Caches[i].Cache != sh.Caches[j].Cache {
				return sh.Caches[i].Cache < sh.Caches[j].Cache
			}
			return sh.Caches[i].Evidence < sh.Caches[j].Evidence
		})
		r.Owners = append(r.Owners, sh)
	}
	// Modules that own caches are listed even when those hold nothing.
	for _, o := range r.Caches {
		if shares[o.Module] == nil {
			shares[o.Module] = map[string]*CacheShare{}
			r.Owners = append(r.Owners, OwnerShare{Owner: o.Module, Caches: []CacheShare{{Cache: o.Cache, Evidence: evidenceKinds(o)}}})
		}
	}
	rank := func(o string) int {
		switch o {
		case OwnerKernel:
			return 1
		case OwnerUnattributed:
			return 2
		}
		return 0
	}
	sort.Slice(r.Owners, func(i, j int) bool {
		a, b := r.Owners[i], r.Owners[j]
		if rank(a.Owner) != rank(b.Owner) {
			return rank(a.Owner) < rank(b.Owner)
		}
		if a.Bytes != b.Bytes {
			return a.Bytes > b.Bytes
		}
		return a.Owner < b.Owner
	})
	return r, nil
}

// evidenceKinds is the kinds of an ownership's evidence, strongest first.
func evidenceKinds(o CacheOwner) string {
	seen := map[string]bool{}
	var s string
	for _, k := range []string{EvidenceDataPointer, EvidenceConstructor} {
		for _, e := range o.Evidence {
			if e.Kind == k && !seen[k] {
				seen[k] = true
				if s != "" {
					s += "+"
				}
				s += k
			}
		}
	}
	return s
}

// Filter keeps the shares of one owner.
func Filter(shares []OwnerShare, owner string) []OwnerShare {
	var out []OwnerShare
	for _, s := range shares {
		if s.Owner == owner {
			out = append(out, s)
		}
	}
	return out
}

// FilterCache keeps each owner's share of one cache, and the owners that
// have one, with their totals recounted.
func FilterCache(shares []OwnerShare, cache string) []OwnerShare {
	var out []OwnerShare
	for _, s := range shares {
		kept := OwnerShare{Owner: s.Owner}
		for _, cs := range s.Caches {
			if cs.Cache == cache {
				kept.Caches = append(kept.Caches, cs)
				kept.Objects += cs.Objects
				kept.Bytes += cs.Bytes
			}
		}
		if len(kept.Caches) > 0 {
			out = append(out, kept)
		}
	}
	return out
}

// ModulesByCache names, per cache, the modules that hold its objects or own
// it ("mod1,mod2", sorted); caches no module has a share of are absent.
func (r *Report) ModulesByCache() map[string]string {
	sets := map[string]map[string]bool{}
	mark := func(cache, module string) {
		if sets[cache] == nil {
			sets[cache] = map[string]bool{}
		}
		sets[cache][module] = true
	}
	for _, o := range r.Owners {
		if o.Owner == OwnerKernel || o.Owner == OwnerUnattributed {
			continue
		}
		for _, cs := range o.Caches {
			mark(cs.Cache, o.Owner)
		}
	}
	for _, o := range r.Caches {
		mark(o.Cache, o.Module)
	}
	out := make(map[string]string, len(sets))
	for cache, mods := range sets {
		names := make([]string, 0, len(mods))
		for m := range mods {
			names = append(names, m)
		}
		sort.Strings(names)
		out[cache] = strings.Join(names, ",")
	}
	return out
}
