package owners

import (
	"encoding/binary"
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
	buf := make([]byte, scanChunk)
	for i := range mods {
		mod := &mods[i]
		seen := map[uint64]bool{} // objects of this module already counted
		for _, r := range mod.Ranges {
			if !dataRange(r.Kind) {
				continue
			}
			for off := uint64(0); off < r.Size; off += scanChunk {
				n := min(scanChunk, r.Size-off)
				va := r.Base + off
				if err := k.ReadVirt(buf[:n], va); err != nil {
					warnings = append(warnings, fmt.Sprintf("owners: module %s %s at %#x: %v", mod.Name, r.Kind, va, err))
					continue
				}
				for j := uint64(0); j+8 <= n; j += 8 {
					if at := va + j; at >= mod.Addr && at-mod.Addr < uint64(modSize) {
						continue
					}
					p := binary.LittleEndian.Uint64(buf[j:])
					if _, ok := m.VirtPFN(p); !ok {
						continue // slab objects live in the direct map
					}
					o, err := w.FindObject(p)
					if errors.Is(err, walk.ErrNotSlab) || o == nil || !o.Allocated || o.Cache == "kmem_cache" || seen[o.Addr] {
						continue
					}
					seen[o.Addr] = true
					kk := key{mod.Name, o.Cache}
					ref := counts[kk]
					if ref == nil {
						ref = &Reference{Module: mod.Name, Cache: o.Cache}
						counts[kk] = ref
					}
					ref.Objects++
					ref.Bytes += int64(o.Size)
				}
			}
		}
	}
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
