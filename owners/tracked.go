package owners

import (
	"errors"
	"fmt"
	"sort"

	"github.com/vmleak/vmleak/stackdepot"
	"github.com/vmleak/vmleak/symbolize"
	"github.com/vmleak/vmleak/walk"
)

// EvidenceTrack: the object's SLUB allocation track (SLAB_STORE_USER,
// e.g. slub_debug=U) names its caller: the strongest evidence there is.
const EvidenceTrack = "alloc-track"

// Site is the allocated objects of one cache whose allocation tracks name
// one call site.
type Site struct {
	Cache  string          `json:"cache"`
	Caller symbolize.Frame `json:"caller"`
	Module string          `json:"module,omitempty"` // "" for the kernel or where unknown
	// Owner is whom the report counts the objects for: Module, else
	// OwnerKernel for a kernel caller; where the track names no one,
	// OwnerUnattributed, or in Build the module owning the cache.
	Owner   string `json:"owner"`
	Objects int64  `json:"objects"`
	Bytes   int64  `json:"bytes"` // objects × the cache's object size
	// Stack is the site's most common stack (by objects), as saved by the
	// kernel; Stacks all of them.
	Stack  []symbolize.Frame `json:"stack,omitempty"`
	Stacks []SiteStack       `json:"stacks,omitempty"`
}

// SiteStack is the objects of a site allocated along one full stack.
type SiteStack struct {
	Handle  uint32            `json:"handle"` // the stack depot handle
	Objects int64             `json:"objects"`
	Bytes   int64             `json:"bytes"`
	Frames  []symbolize.Frame `json:"frames"`
}

// Tracked sums what the allocation tracks say: per cache, call site and
// full stack, every allocated object of every cache that stores tracks. An
// object whose track is unreadable counts as unattributed in its cache
// (Caller kind "unknown") — never dropped. Each stack depot record is
// decoded and symbolized once.
func Tracked(w *walk.Walker, s *symbolize.Symbolizer, d *stackdepot.Depot) ([]Site, []string, error) {
	return sites(w, s, d, false)
}

// Freed is Tracked for the free objects, by their free tracks: where each
// was last freed, for use-after-free forensics. A free object never
// allocated has no free track ("no track recorded").
func Freed(w *walk.Walker, s *symbolize.Symbolizer, d *stackdepot.Depot) ([]Site, []string, error) {
	return sites(w, s, d, true)
}

func sites(w *walk.Walker, s *symbolize.Symbolizer, d *stackdepot.Depot, freed bool) ([]Site, []string, error) {
	type key struct {
		cache string
		addr  uint64
	}
	type agg struct {
		site    *Site
		handles map[uint32]*SiteStack
	}
	sites := map[key]*agg{}
	var warnings []string
	// Each handle's record, decoded once: its raw frames and their names.
	type record struct {
		raw    []uint64
		frames []symbolize.Frame
	}
	records := map[uint32]*record{}
	stackOf := func(o walk.Object, h uint32) *record {
		if r, ok := records[h]; ok {
			return r
		}
		r := &record{}
		raw, err := d.Stack(h)
		if err != nil && !errors.Is(err, stackdepot.ErrNoStack) {
			warnings = append(warnings, fmt.Sprintf("owners: %s object %#x: %v", o.Cache, o.Addr, err))
		}
		if err == nil {
			r.raw, r.frames = raw, s.Stack(raw)
		}
		records[h] = r
		return r
	}
	err := w.Tracks("", freed, func(o walk.Object, tr walk.Tracks, err error) bool {
		if err != nil {
			warnings = append(warnings, err.Error())
			if o.Addr == 0 {
				return true
			}
		}
		if o.Allocated == freed {
			return true
		}
		t := tr.Alloc
		if freed {
			t = tr.Free
		}
		var rec *record
		if d != nil && t.Handle != 0 {
			rec = stackOf(o, t.Handle)
		}
		k := key{o.Cache, t.Addr}
		a := sites[k]
		if a == nil {
			st := &Site{Cache: o.Cache}
			var raw []uint64
			if rec != nil {
				raw = rec.raw
			}
			if t.Addr == 0 {
				st.Caller = symbolize.Frame{Kind: symbolize.FrameUnknown, What: "no track recorded"}
			} else {
				st.Caller = s.Caller(t.Addr, raw)
			}
			st.Module = st.Caller.Module
			switch {
			case st.Module != "":
				st.Owner = st.Module
			case st.Caller.Kind == symbolize.FrameKernel:
				st.Owner = OwnerKernel
			default:
				st.Owner = OwnerUnattributed
			}
			a = &agg{site: st, handles: map[uint32]*SiteStack{}}
			sites[k] = a
		}
		a.site.Objects++
		a.site.Bytes += int64(o.Size)
		if rec != nil && rec.frames != nil {
			ss := a.handles[t.Handle]
			if ss == nil {
				ss = &SiteStack{Handle: t.Handle, Frames: rec.frames}
				a.handles[t.Handle] = ss
			}
			ss.Objects++
			ss.Bytes += int64(o.Size)
		}
		return true
	})
	if err != nil {
		return nil, warnings, err
	}
	out := make([]Site, 0, len(sites))
	for _, a := range sites {
		st := a.site
		for _, ss := range a.handles {
			st.Stacks = append(st.Stacks, *ss)
		}
		sort.Slice(st.Stacks, func(i, j int) bool {
			if st.Stacks[i].Objects != st.Stacks[j].Objects {
				return st.Stacks[i].Objects > st.Stacks[j].Objects
			}
			return st.Stacks[i].Handle < st.Stacks[j].Handle
		})
		if len(st.Stacks) > 0 {
			st.Stack = st.Stacks[0].Frames
		}
		out = append(out, *st)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Bytes != out[j].Bytes {
			return out[i].Bytes > out[j].Bytes
		}
		if out[i].Cache != out[j].Cache {
			return out[i].Cache < out[j].Cache
		}
		return out[i].Caller.Addr < out[j].Caller.Addr
	})
	return out, warnings, nil
}
