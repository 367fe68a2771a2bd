package kernel

import (
	"errors"
	"fmt"
	"sort"
)

// VmapArea is one busy vmap area: [Start, End) of kernel virtual addresses,
// the guard page included where the area has one.
type VmapArea struct {
	Addr  uint64 // the struct vmap_area
	Start uint64
	End   uint64
	VM    uint64 // its struct vm_struct; 0 for vm_map_ram areas
}

// Bounds on the vmap area lists.
const (
	maxVmapAreas = 1 << 22
	maxVmapNodes = 1 << 10
)

// VmapAreas lists the busy vmap areas that meet [lo, hi), sorted by
// address: on vmap_area_list up to v6.8; since d093602919ad (v6.9, "mm:
// vmalloc: remove global vmap_area_root rb-tree") on each
// vmap_nodes[i].busy.head. Each list is kept in address order (link_va), so
// it is read backwards from its head and left at the first area below lo:
// the module mapping space, at the top of the address space, costs a walk
// of the areas inside it only. The error joins the lists or areas that
// could not be read; the areas read are returned with it.
func (k *Kernel) VmapAreas(lo, hi uint64) ([]VmapArea, error) {
	listOff, err := k.Member("struct vmap_area", "list")
	if err != nil {
		return nil, fmt.Errorf("kernel: vmap areas: %w", err)
	}
	var heads []uint64
	if h, err := k.Symbol("vmap_area_list"); err == nil {
		heads = append(heads, h)
	} else {
		nodes, err1 := k.Var("vmap_nodes", "struct vmap_node *").Ptr()
		n, err2 := k.Var("nr_vmap_nodes", "unsigned int").Uint()
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("kernel: vmap areas: %w", err)
		}
		if n == 0 || n > maxVmapNodes {
			return nil, fmt.Errorf("kernel: vmap areas: nr_vmap_nodes %d is implausible", n)
		}
		size, err := k.SizeOf("struct vmap_node")
		if err != nil {
			return nil, fmt.Errorf("kernel: vmap areas: %w", err)
		}
		for i := range int64(n) {
			head := k.Object(nodes+uint64(i*size), "struct vmap_node").Field("busy.head")
			if head.Err() != nil {
				return nil, fmt.Errorf("kernel: vmap areas: %w", head.Err())
			}
			heads = append(heads, head.Addr())
		}
	}
	var out []VmapArea
	var errs []error
	for _, h := range heads {
		for e, err := range k.ListHeadReverse(h, maxVmapAreas) {
			if err != nil {
				errs = append(errs, fmt.Errorf("kernel: vmap area list %#x: %w", h, err))
				break
			}
			a, err := k.readVmapArea(e - listOff.Offset())
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if a.End <= lo {
				break
			}
			if a.Start < hi {
				out = append(out, a)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	return out, errors.Join(errs...)
}

func (k *Kernel) readVmapArea(va uint64) (VmapArea, error) {
	v := k.Object(va, "struct vmap_area").Load()
	start, err1 := v.Field("va_start").Uint()
	end, err2 := v.Field("va_end").Uint()
	vm, err3 := v.Field("vm").Ptr()
	if err := errors.Join(err1, err2, err3); err != nil {
		return VmapArea{}, fmt.Errorf("kernel: vmap_area %#x: %w", va, err)
	}
	if end < start {
		return VmapArea{}, fmt.Errorf("kernel: vmap_area %#x: end %#x before start %#x", va, end, start)
	}
	return VmapArea{Addr: va, Start: start, End: end, VM: vm}, nil
}
