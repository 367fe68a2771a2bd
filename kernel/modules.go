package kernel

import (
	"fmt"
)

// Module is one loaded kernel module.
type Module struct {
	Name   string        `json:"name"`
	Addr   uint64        `json:"addr"` // struct module
	Ranges []ModuleRange `json:"ranges"`
}

// ModuleRange is one memory region of a module.
type ModuleRange struct {
	Kind string `json:"kind"` // "text", "data", "rodata", "ro_after_init", "init_text", ... or "core"/"init"
	Base uint64 `json:"base"`
	Size uint64 `json:"size"`
}

// Contains tells whether va lies in one of the module's regions.
func (m *Module) Contains(va uint64) (ModuleRange, bool) {
	for _, r := range m.Ranges {
		if va >= r.Base && va-r.Base < r.Size {
			return r, true
		}
	}
	return ModuleRange{}, false
}

// maxModules bounds the modules list walk.
const maxModules = 1 << 14

// module_memory kinds in enum mod_mem_type order (include/linux/module.h, 6.4+).
var modMemKinds = []string{"text", "data", "rodata", "ro_after_init", "init_text", "init_data", "init_rodata"}

// Modules walks the modules list, newest first (like /proc/modules).
//
// Module memory: up to 6.3, struct module has core_layout and init_layout
// ({base, size, ...}); ac3b43283923 (v6.4, "module: replace module_layout
// with module_memory") replaced them with mem[MOD_MEM_NUM_TYPES] of
// {base, size}.
func (k *Kernel) Modules() ([]Module, error) {
	head, err := k.Symbol("modules")
	if err != nil {
		return nil, err
	}
	var out []Module
	for e, err := range k.ListHead(head, maxModules) {
		if err != nil {
			return out, fmt.Errorf("kernel: modules list: %w", err)
		}
		mv := k.Object(e, "struct list_head").ContainerOf("struct module", "list")
		name, err := mv.Field("name").String()
		if err != nil {
			return out, err
		}
		m := Module{Name: Printable(name), Addr: mv.Addr()}
		if mv.HasField("mem") {
			for i, kind := range modMemKinds {
				mm := mv.Field("mem").Index(int64(i))
				base, err1 := mm.Field("base").Ptr()
				size, err2 := mm.Field("size").Uint()
				if err1 != nil || err2 != nil {
					break // fewer kinds on this kernel
				}
				if size > 0 {
					m.Ranges = append(m.Ranges, ModuleRange{kind, base, size})
				}
			}
		} else {
			for _, kind := range []string{"core", "init"} {
				l := mv.Field(kind + "_layout")
				base, err1 := l.Field("base").Ptr()
				size, err2 := l.Field("size").Uint()
				if err1 != nil || err2 != nil {
					return out, fmt.Errorf("kernel: module %s: %v", name, firstErr(err1, err2))
				}
				if size > 0 {
					m.Ranges = append(m.Ranges, ModuleRange{kind, base, size})
				}
			}
		}
		out = append(out, m)
	}
	return out, nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
