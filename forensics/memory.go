package forensics

import (
	"errors"
	"slices"

	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/owners"
	"github.com/vmleak/vmleak/stackdepot"
	"github.com/vmleak/vmleak/symbolize"
	"github.com/vmleak/vmleak/walk"
)

// AttachMemory fills rep.Memory with the slab memory each suspect module
// holds, from the attribution of allocations with the hidden modules made
// known (a hidden module's allocation tracks point into memory the modules
// list does not name). A suspect holding nothing is listed with zeros: that
// is an answer too. Without allocation tracks (no slub_debug=U) only the
// caches a module owns are evidence, as in `vmleak owners`.
func AttachMemory(rep *Report, k *kernel.Kernel, w *walk.Walker, c *walk.Census) error {
	hidden := rep.HiddenModules
	suspects := rep.SuspectModules()
	if len(suspects) == 0 {
		return nil
	}
	mods, merr := k.Modules()
	if merr != nil {
		rep.Warnings = append(rep.Warnings, merr.Error())
	}
	mods = append(mods, hidden...)
	sym := symbolize.New(w)
	defer sym.Close()
	sym.AddModules(hidden...)
	d, err := stackdepot.New(k)
	if err != nil {
		if !errors.Is(err, kernel.ErrAbsent) {
			rep.Warnings = append(rep.Warnings, "stack depot: "+err.Error())
		}
		d = nil
	}
	or, err := owners.Build(w, c, mods, sym, d)
	if err != nil {
		return err
	}
	rep.Warnings = append(rep.Warnings, or.Warnings...)
	for _, name := range suspects {
		mm := ModuleMemory{Module: name}
		i := slices.IndexFunc(or.Owners, func(o owners.OwnerShare) bool { return o.Owner == name })
		if i >= 0 {
			o := or.Owners[i]
			mm.Objects, mm.Bytes = o.Objects, o.Bytes
			for _, cs := range o.Caches {
				mm.Caches = append(mm.Caches, CacheMemory{Cache: cs.Cache, Objects: cs.Objects, Bytes: cs.Bytes, Evidence: cs.Evidence})
			}
		}
		rep.Memory = append(rep.Memory, mm)
	}
	return nil
}
