package owners

import (
	"errors"

	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/stackdepot"
	"github.com/vmleak/vmleak/symbolize"
	"github.com/vmleak/vmleak/walk"
)

// Attribute is Build with everything the kernel offers: its modules, its
// stack depot where it has one, and sym (a new symbolizer when nil). A
// modules list that could not be read wholly makes the report partial.
func Attribute(k *kernel.Kernel, w *walk.Walker, c *walk.Census, sym *symbolize.Symbolizer) (*Report, error) {
	if sym == nil {
		sym = symbolize.New(w)
		defer sym.Close()
	}
	mods, merr := k.Modules()
	d, err := stackdepot.New(k)
	if err != nil {
		if !errors.Is(err, kernel.ErrAbsent) {
			k.Warnf("stack depot: %v", err)
		}
		d = nil
	}
	rep, err := Build(w, c, mods, sym, d)
	if err != nil {
		return nil, err
	}
	if merr != nil {
		rep.Warnings = append(rep.Warnings, merr.Error())
		rep.Partial = true
	}
	return rep, nil
}
