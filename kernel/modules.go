package kernel

import (
	"errors"
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

// maxModuleErrors bounds how many unreadable modules Modules names one by
// one: a corrupt list can lead to thousands of bad entries.
const maxModuleErrors = 8

// module_memory kinds in enum mod_mem_type order (include/linux/module.h, 6.4+).
var modMemKinds = []string{"text", "data", "rodata", "ro_after_init", "init_text", "init_data", "init_rodata"}

// ModuleError is an entry of the modules list whose struct module cannot be
// read. Name is empty when the name itself could not be read.
type ModuleError struct {
	Addr uint64 // struct module
	Name string
	Err  error
}

func (e *ModuleError) Error() string {
	if e.Name == "" {
		return fmt.Sprintf("kernel: module at %#x: %v", e.Addr, e.Err)
	}
	return fmt.Sprintf("kernel: module %s at %#x: %v", e.Name, e.Addr, e.Err)
}

func (e *ModuleError) Unwrap() error { return e.Err }

// Modules walks the modules list, newest first (like /proc/modules).
//
// The walk goes on past what it cannot read: a module whose fields cannot
// be read is a *ModuleError and is left out; a broken link is bypassed
// through prev links (ListEntries). Modules returns every module it read
// and, if any was lost, an error joining what went wrong.
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
	entries, lerr := k.ListEntries(head, maxModules)
	var errs []error
	if lerr != nil {
		errs = append(errs, k.modulesListError(head, lerr))
	}
	var out []Module
	bad := 0
	for _, e := range entries {
		m, err := k.readModule(k.Object(e, "struct list_head").ContainerOf("struct module", "list"))
		if err != nil {
			if bad++; bad <= maxModuleErrors {
				errs = append(errs, err)
			}
			continue
		}
		out = append(out, m)
	}
	if bad > maxModuleErrors {
		errs = append(errs, fmt.Errorf("kernel: %d more unreadable modules", bad-maxModuleErrors))
	}
	return out, errors.Join(errs...)
}

// modulesListError names the module whose link broke, when it can be read.
func (k *Kernel) modulesListError(head uint64, err error) error {
	var le *ListError
	if !errors.As(err, &le) || le.From == 0 || le.From == head {
		return fmt.Errorf("kernel: modules list: %w", err)
	}
	mv := k.Object(le.From, "struct list_head").ContainerOf("struct module", "list")
	name, nerr := mv.Field("name").String()
	if nerr != nil {
		return fmt.Errorf("kernel: modules list: after the module at %#x: %w", mv.Addr(), err)
	}
	return fmt.Errorf("kernel: modules list: after module %s at %#x: %w", Printable(name), mv.Addr(), err)
}

// ModuleAt reads the struct module at addr as Modules reads each entry of
// the modules list (name and memory regions, in either layout), for
// modules found some other way: through sysfs, the module address tree or
// by carving module memory. It checks nothing beyond readability: a caller
// that was not led there by the modules list validates what it reads.
func (k *Kernel) ModuleAt(addr uint64) (Module, error) {
	return k.readModule(k.Object(addr, "struct module"))
}

// readModule reads one struct module.
func (k *Kernel) readModule(mv Value) (Module, error) {
	name, err := mv.Field("name").String()
	if err != nil {
		return Module{}, &ModuleError{Addr: mv.Addr(), Err: err}
	}
	m := Module{Name: PrintableName(name), Addr: mv.Addr()}
	type region struct {
		kind string
		v    Value // a struct with base and size
	}
	var regions []region
	if mv.HasField("mem") {
		mem := mv.Field("mem")
		n := len(modMemKinds)
		if l := mem.Type().Strip().Len; l > 0 && l < int64(n) {
			n = int(l) // MOD_MEM_NUM_TYPES of this kernel
		}
		for i, kind := range modMemKinds[:n] {
			regions = append(regions, region{kind, mem.Index(int64(i))})
		}
	} else {
		for _, kind := range []string{"core", "init"} {
			regions = append(regions, region{kind, mv.Field(kind + "_layout")})
		}
	}
	for _, r := range regions {
		base, err1 := r.v.Field("base").Ptr()
		size, err2 := r.v.Field("size").Uint()
		if err := firstErr(err1, err2); err != nil {
			return Module{}, &ModuleError{Addr: m.Addr, Name: m.Name, Err: err}
		}
		if size > 0 {
			m.Ranges = append(m.Ranges, ModuleRange{r.kind, base, size})
		}
	}
	return m, nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
