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
	Cache   string          `json:"cache"`
	Caller  symbolize.Frame `json:"caller"`
	Module  string          `json:"module,omitempty"` // "" for the kernel or where unknown
	Objects int64           `json:"objects"`
	Bytes   int64           `json:"bytes"` // objects × the cache's object size
	// Stack is the first stack seen for the site, as saved by the kernel.
	Stack []symbolize.Frame `json:"stack,omitempty"`
}

// Tracked sums what the allocation tracks say: per cache and call site,
// every allocated object of every cache that stores tracks. An object
// whose track is unreadable counts as unattributed in its cache (Caller
// kind "unknown") — never dropped. Each stack is decoded once.
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
	sites := map[key]*Site{}
	var warnings []string
	frames := map[uint32][]symbolize.Frame{}
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
		k := key{o.Cache, t.Addr}
		st := sites[k]
		if st == nil {
			st = &Site{Cache: o.Cache}
			var stack []uint64
			if d != nil && t.Handle != 0 {
				var serr error
				stack, serr = d.Stack(t.Handle)
				if serr != nil && !errors.Is(serr, stackdepot.ErrNoStack) {
					warnings = append(warnings, fmt.Sprintf("owners: %s object %#x: %v", o.Cache, o.Addr, serr))
				}
				if f, ok := frames[t.Handle]; ok {
					st.Stack = f
				} else if stack != nil {
					st.Stack = s.Stack(stack)
					frames[t.Handle] = st.Stack
				}
			}
			if t.Addr == 0 {
				st.Caller = symbolize.Frame{Kind: symbolize.FrameUnknown, What: "no track recorded"}
			} else {
				st.Caller = s.Caller(t.Addr, stack)
			}
			st.Module = st.Caller.Module
			sites[k] = st
		}
		st.Objects++
		st.Bytes += int64(o.Size)
		return true
	})
	if err != nil {
		return nil, warnings, err
	}
	out := make([]Site, 0, len(sites))
	for _, st := range sites {
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
