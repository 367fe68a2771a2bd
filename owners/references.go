package owners

import (
	"errors"
	"fmt"
	"sort"

	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/walk"
)

// EvidenceReference: a module's data holds a pointer into the object. A
// heuristic: the module uses the object, which does not prove it allocated
// it (a static array of pointers to its own buffers is the case it finds).
const EvidenceReference = "reference (heuristic)"

// Reference is the allocated objects of one cache that one module's data
// points into.
type Reference struct {
	Module  string `json:"module"`
	Cache   string `json:"cache"`
	Objects int64  `json:"objects"`
	Bytes   int64  `json:"bytes"`
}

// References scans every loaded module's data for pointers into allocated
// slab objects (interior pointers count, as in kmemleak). Each object is
// counted once per module however many pointers reach it. Pointers to
// kmem_cache structs themselves (cache ownership, see CacheOwners) are
// left out.
func References(w *walk.Walker, mods []kernel.Module) ([]Reference, []string) {
	k := w.Kernel()
	m := w.MM()
	var warnings []string
	type key struct{ module, cache string }
	counts := map[key]*Reference{}
	// struct module lies in its module's data, but what it points to is the
	// kernel's bookkeeping of the module (kobject, sysfs attributes, notes),
	// not memory the module uses.
	modSize, err := k.SizeOf("struct module")
	if err != nil {
		return nil, []string{fmt.Sprintf("owners: references: %v", err)}
	}
	seen := map[string]map[uint64]bool{} // module -> objects already counted
	warnings = append(warnings, scanModuleData(k, mods, func(mod *kernel.Module, _ string, at, p uint64) {
		if at >= mod.Addr && at-mod.Addr < uint64(modSize) {
			return
		}
		if _, ok := m.VirtPFN(p); !ok {
			return // slab objects live in the direct map
		}
		o, err := w.FindObject(p)
		if errors.Is(err, walk.ErrNotSlab) || o == nil || !o.Allocated || o.Cache == "kmem_cache" || seen[mod.Name][o.Addr] {
			return
		}
		if seen[mod.Name] == nil {
			seen[mod.Name] = map[uint64]bool{}
		}
		seen[mod.Name][o.Addr] = true
		kk := key{mod.Name, o.Cache}
		ref := counts[kk]
		if ref == nil {
			ref = &Reference{Module: mod.Name, Cache: o.Cache}
			counts[kk] = ref
		}
		ref.Objects++
		ref.Bytes += int64(o.Size)
	})...)
	out := make([]Reference, 0, len(counts))
	for _, r := range counts {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Module != out[j].Module {
			return out[i].Module < out[j].Module
		}
		return out[i].Cache < out[j].Cache
	})
	return out, warnings
}
