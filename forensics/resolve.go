package forensics

import (
	"fmt"
	"sort"
	"sync"

	"github.com/vmleak/vmleak/kernel"
)

// Where an address lies, as Resolve tells.
const (
	InKernelText = "kernel text"      // _stext.._etext
	InInitText   = "kernel init text" // freed after boot: no live code lives there
	InKernel     = "kernel image"     // the image outside text (data, rodata)
	InModule     = "module"           // a module on the modules list
	InHidden     = "hidden module"    // a module found only by another view
	InUnknown    = "unknown memory"
)

// Place is where an address lies and its name there.
type Place struct {
	Where  string `json:"where"`
	Module string `json:"module,omitempty"`
	Name   string `json:"name"` // function+0xoff, module:function+0xoff, or the Where
}

// Resolver names code addresses: kernel symbols from the vmlinux (shifted by
// KASLR), module symbols from each module's own kallsyms in the dump, hidden
// modules from what the module check found.
type Resolver struct {
	k                    *kernel.Kernel
	textStart, textEnd   uint64
	initStart, initEnd   uint64
	imageStart, imageEnd uint64

	mu      sync.Mutex
	mods    []resolvedModule
	symErrs []string
}

type resolvedModule struct {
	mod    kernel.Module
	hidden bool
	syms   []kernel.KSym // by address; nil until needed
	loaded bool
}

// NewResolver reads the kernel image bounds; mods are the listed modules.
func NewResolver(k *kernel.Kernel, mods []kernel.Module) (*Resolver, error) {
	r := &Resolver{k: k}
	var err error
	bound := func(name string) uint64 {
		if err != nil {
			return 0
		}
		var v uint64
		v, err = k.Symbol(name)
		return v
	}
	r.textStart, r.textEnd = bound("_stext"), bound("_etext")
	r.initStart, r.initEnd = bound("_sinittext"), bound("_einittext")
	r.imageStart, r.imageEnd = bound("_text"), bound("_end")
	if err != nil {
		return nil, fmt.Errorf("forensics: kernel image bounds: %w", err)
	}
	for _, m := range mods {
		r.mods = append(r.mods, resolvedModule{mod: m})
	}
	return r, nil
}

// AddHidden makes a module found outside the modules list resolvable.
func (r *Resolver) AddHidden(m kernel.Module) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mods = append(r.mods, resolvedModule{mod: m, hidden: true})
}

// KernelText tells whether va is in the kernel's (non-init) text.
func (r *Resolver) KernelText(va uint64) bool { return va >= r.textStart && va < r.textEnd }

// TextBounds is the run-time [start, end) of the kernel's text.
func (r *Resolver) TextBounds() (uint64, uint64) { return r.textStart, r.textEnd }

// Resolve says where va lies and names it.
func (r *Resolver) Resolve(va uint64) Place {
	switch {
	case r.KernelText(va):
		return Place{Where: InKernelText, Name: r.kernelName(va)}
	case va >= r.initStart && va < r.initEnd:
		return Place{Where: InInitText, Name: r.kernelName(va) + " (freed init text)"}
	case va >= r.imageStart && va < r.imageEnd:
		return Place{Where: InKernel, Name: r.kernelName(va)}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.mods {
		m := &r.mods[i]
		rg, ok := m.mod.Contains(va)
		if !ok {
			continue
		}
		where := InModule
		if m.hidden {
			where = InHidden
		}
		name := m.mod.Name + ":" + r.moduleSymbol(m, va, rg)
		if m.hidden {
			name += " (hidden module)"
		}
		return Place{Where: where, Module: m.mod.Name, Name: name}
	}
	return Place{Where: InUnknown, Name: fmt.Sprintf("unknown memory %#x", va)}
}

func (r *Resolver) kernelName(va uint64) string {
	t := r.k.Types()
	link := va - r.k.Layout().KASLROffset
	if s, off, ok := t.SymbolAt(link); ok {
		return fmt.Sprintf("%s+%#x", s.Name, off)
	}
	for _, sec := range []string{".text", ".init.text", ".noinstr.text", ".entry.text"} {
		if s, off, ok := t.SymbolBefore(link, sec); ok {
			return fmt.Sprintf("%s+%#x", s.Name, off)
		}
	}
	return fmt.Sprintf("%#x", va)
}

// moduleSymbol names va inside one of m's ranges from the module's own
// kallsyms (loaded once); without them, the range and offset.
func (r *Resolver) moduleSymbol(m *resolvedModule, va uint64, rg kernel.ModuleRange) string {
	if !m.loaded {
		m.loaded = true
		syms, err := r.k.ModuleKallsyms(m.mod)
		if err != nil {
			r.symErrs = append(r.symErrs, err.Error())
		}
		sort.Slice(syms, func(i, j int) bool { return syms[i].Addr < syms[j].Addr })
		m.syms = syms
	}
	// The nearest symbol below va in the same region: code or data (an
	// ftrace_ops or a fake table is data), never one of another region.
	i := sort.Search(len(m.syms), func(i int) bool { return m.syms[i].Addr > va }) - 1
	if i >= 0 {
		if s := m.syms[i]; s.Addr >= rg.Base && s.Addr-rg.Base < rg.Size {
			return fmt.Sprintf("%s+%#x", kernel.Printable(s.Name), va-s.Addr)
		}
	}
	return fmt.Sprintf("%s+%#x", rg.Kind, va-rg.Base)
}

// Warnings are the module symbol tables that could not be read.
func (r *Resolver) Warnings() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.symErrs...)
}
