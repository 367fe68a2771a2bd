// Package symbolize says what a kernel virtual address is: a slab object
// (allocated or free, and on which freelist), a struct page, a per-CPU
// variable of some CPU, a task's kernel stack, a module's code or data, a
// kernel symbol, a vmalloc area and its caller, or a page of the direct
// map. It is the library half of `vmleak whatis`; attribution and leak
// reports name addresses with it too.
//
// Regions are tried from the most specific to the most general: per-CPU
// areas and stacks live inside the direct map or vmalloc space, module
// memory inside the module mapping space, so those are asked first.
//
// Code addresses (track callers, stack frames) are named by Code and
// Stack; their source lines, from the line tables of the vmlinux and of
// the modules' debuginfo, by Line, for the frames a caller shows.
//
// It reads memory through package kernel, the memory model through
// kernel/mm and slabs through walk; it renders nothing.
package symbolize

import (
	"errors"
	"fmt"
	"sync"

	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/kernel/mm"
	"github.com/vmleak/vmleak/walk"
)

// Kinds of address.
const (
	KindSlab      = "slab"
	KindPage      = "struct-page" // inside the struct page of a page frame
	KindVmemmap   = "vmemmap"     // in the memory map's region, but of no page frame of the dump
	KindPerCPU    = "per-cpu"
	KindStack     = "stack"
	KindModule    = "module"
	KindSymbol    = "symbol"
	KindVmalloc   = "vmalloc"
	KindDirectMap = "direct-map"
	KindUnknown   = "unknown"
)

// Result describes one address. Kind, What and Error are always set as far
// as known; the other fields belong to their kind.
type Result struct {
	Addr   kernel.Hex   `json:"addr"`
	Kind   string       `json:"kind"`
	What   string       `json:"what"`
	Object *walk.Object `json:"object,omitempty"`
	Page   *Page        `json:"page,omitempty"`
	CPU    *int         `json:"cpu,omitempty"`
	Task   *Task        `json:"task,omitempty"`
	Module string       `json:"module,omitempty"`
	Symbol string       `json:"symbol,omitempty"` // name+0xoff
	Area   *Area        `json:"vmalloc_area,omitempty"`
	// File and Line are the source line of a code address (kernel or
	// module text), where line tables are available.
	File  string `json:"file,omitempty"`
	Line  int    `json:"line,omitempty"`
	Error string `json:"error,omitempty"`
	// Missing is set when memory the answer needed is absent from the
	// dump: the answer is partial.
	Missing bool `json:"missing,omitempty"`
}

// Page is what a struct page says of its page frame.
type Page struct {
	PFN      kernel.Hex `json:"pfn"`
	Phys     kernel.Hex `json:"phys"`
	StructVA kernel.Hex `json:"struct_page"`
	Flags    kernel.Hex `json:"flags"`
	State    string     `json:"state"` // "slab", "buddy (free)", "in use", "tail of <head>"
	Cache    string     `json:"cache,omitempty"`
}

// Task is the owner of a kernel stack.
type Task struct {
	PID   int64      `json:"pid"`
	Comm  string     `json:"comm"`
	Addr  kernel.Hex `json:"task_struct"`
	Stack kernel.Hex `json:"stack"`
}

// Area is a vmalloc/vmap area.
type Area struct {
	Start  kernel.Hex `json:"start"`
	End    kernel.Hex `json:"end"`
	VM     kernel.Hex `json:"vm_struct,omitempty"`
	Caller string     `json:"caller,omitempty"`
}

// Symbolizer identifies addresses of one kernel. Lists it needs (modules,
// tasks, vmap areas) are read once, on first use. It is not safe for
// concurrent use: its caches of module symbols and code addresses are plain
// maps.
type Symbolizer struct {
	k  *kernel.Kernel
	mm *mm.MM
	w  *walk.Walker

	modsOnce sync.Once
	mods     []kernel.Module
	// extraMods are modules outside the modules list (AddModules).
	extraMods []kernel.Module
	modsErr   error
	modSyms   map[uint64][]kernel.KSym // by struct module

	initsOnce sync.Once
	inits     map[uint64]bool // the modules' init functions (mod->init)

	cpuOnce sync.Once
	cpus    []cpuArea
	cpuErr  error

	tasksOnce sync.Once
	tasks     []Task
	tasksErr  error

	areasOnce sync.Once
	areas     []Area
	areasErr  error

	codeCache map[uint64]Frame // Code's answers

	lineCache    map[uint64]srcLine             // Line's answers
	modDebug     map[uint64]*kernel.ModuleDebug // by struct module; nil: none found
	lineErrs     []error
	lineErrFiles map[string]bool
}

// New makes a Symbolizer over a kernel's slab walker. Close releases the
// module debuginfo it opens for source lines.
func New(w *walk.Walker) *Symbolizer {
	return &Symbolizer{k: w.Kernel(), mm: w.MM(), w: w, modSyms: map[uint64][]kernel.KSym{}, modDebug: map[uint64]*kernel.ModuleDebug{}}
}

// Warnings are what could not be read while identifying (a module list
// that broke, a task list that could not be walked): identification went on
// without it.
func (s *Symbolizer) Warnings() []string {
	var out []string
	for _, err := range append([]error{s.modsErr, s.cpuErr, s.tasksErr, s.areasErr}, s.lineErrs...) {
		if err != nil {
			out = append(out, err.Error())
		}
	}
	return out
}

// Partial tells whether a list identification depends on (modules, tasks,
// vmap areas, per-CPU areas) could not be read whole because memory is
// missing from the dump: an address may then be named less precisely than
// it could be.
func (s *Symbolizer) Partial() bool {
	for _, err := range []error{s.modsErr, s.cpuErr, s.tasksErr, s.areasErr} {
		if err != nil && kernel.IsMissing(err) {
			return true
		}
	}
	return false
}

// Identify says what holds va.
func (s *Symbolizer) Identify(va uint64) Result {
	r := Result{Addr: kernel.Hex(va)}
	for _, try := range []func(*Result, uint64) bool{s.perCPU, s.stack} {
		if try(&r, va) {
			return r
		}
	}
	if _, ok := s.mm.VirtPFN(va); ok {
		s.directMap(&r, va)
		return r
	}
	for _, try := range []func(*Result, uint64) bool{s.module, s.symbol, s.structPage, s.vmalloc} {
		if try(&r, va) {
			return r
		}
	}
	r.Kind, r.What = KindUnknown, "not a slab object, struct page, per-CPU, stack, module, symbol, vmalloc or direct-map address"
	return r
}

// directMap is a slab object or some other page of the direct map.
func (s *Symbolizer) directMap(r *Result, va uint64) {
	o, err := s.w.FindObject(va)
	switch {
	case o != nil:
		r.Kind, r.Object = KindSlab, o
		state := "allocated"
		if !o.Allocated {
			state = "free (on the " + o.FreeOn + ")"
		}
		r.What = fmt.Sprintf("%s object %d at %#x+%#x (%d bytes), %s; slab %#x, cache %#x",
			o.Cache, o.Index, o.Addr, o.Offset, o.Size, state, o.Slab, o.CacheAddr)
		if err != nil {
			r.Error = err.Error()
			r.Missing = kernel.IsMissing(err)
		}
		return
	}
	pfn, _ := s.mm.VirtPFN(va)
	r.Kind = KindDirectMap
	r.What = fmt.Sprintf("page frame %#x (physical %#x)", pfn, va-s.k.Layout().PageOffset)
	if !errors.Is(err, walk.ErrNotSlab) {
		r.Error, r.Missing = err.Error(), kernel.IsMissing(err)
		return
	}
	r.What += ", not slab memory"
	p, err := s.page(pfn)
	if err != nil {
		r.Error, r.Missing = err.Error(), kernel.IsMissing(err)
		return
	}
	r.Page = p
	r.What += "; " + p.State
}

// page reads what the struct page of pfn says.
func (s *Symbolizer) page(pfn uint64) (*Page, error) {
	raw := make([]byte, s.mm.StructPageSize())
	if err := s.mm.ReadStructPages(raw, pfn, 1); err != nil {
		return nil, fmt.Errorf("symbolize: struct page of pfn %#x: %w", pfn, err)
	}
	pva := s.mm.Page(pfn)
	flags, err := s.mm.Flags(raw)
	if err != nil {
		return nil, err
	}
	p := &Page{PFN: kernel.Hex(pfn), Phys: kernel.Hex(pfn * s.mm.PageSize()), StructVA: kernel.Hex(pva), Flags: kernel.Hex(flags)}
	head, err := s.mm.CompoundHead(pva, raw)
	if err != nil {
		return nil, err
	}
	if head != pva {
		hpfn, _, ok := s.mm.PagePFN(head)
		if !ok {
			return nil, fmt.Errorf("symbolize: struct page %#x: compound head %#x outside the memory map", pva, head)
		}
		h, err := s.page(hpfn)
		if err != nil {
			return nil, err
		}
		p.State, p.Cache = fmt.Sprintf("tail page of pfn %#x (%s)", hpfn, h.State), h.Cache
		return p, nil
	}
	slab, err := s.mm.IsSlab(raw)
	if err != nil {
		return nil, err
	}
	buddy, known, err := s.mm.IsBuddy(raw)
	if err != nil {
		return nil, err
	}
	switch {
	case slab:
		p.State = "slab"
		if o, err := s.w.FindObject(s.mm.Virt(pfn)); o != nil || err == nil {
			if o != nil {
				p.Cache = o.Cache
				p.State = "slab of " + o.Cache
			}
		}
	case buddy:
		p.State = "free (buddy allocator)"
	case known:
		p.State = "in use, not slab"
	default:
		p.State = "not slab"
	}
	return p, nil
}

// structPage is an address inside the memory map.
func (s *Symbolizer) structPage(r *Result, va uint64) bool {
	if !s.mm.Vmemmap().Contains(va) {
		return false
	}
	pfn, off, ok := s.mm.PagePFN(va)
	if !ok {
		// Past the dump's memory there are no struct pages to read.
		r.Kind, r.What = KindVmemmap, "memory map region, past the struct pages of the dump's memory"
		return true
	}
	r.Kind = KindPage
	p, err := s.page(pfn)
	if err != nil {
		r.What = fmt.Sprintf("struct page of page frame %#x, +%#x", pfn, off)
		r.Error, r.Missing = err.Error(), kernel.IsMissing(err)
		return true
	}
	r.Page = p
	r.What = fmt.Sprintf("struct page of page frame %#x (physical %#x)+%#x: %s", pfn, uint64(p.Phys), off, p.State)
	return true
}

// symbol is an address in the kernel image.
func (s *Symbolizer) symbol(r *Result, va uint64) bool {
	off := s.k.Layout().KASLROffset
	if va < off {
		return false
	}
	sym, d, ok := s.k.Types().SymbolAt(va - off)
	if !ok || sym.Section == "" {
		return false
	}
	r.Kind = KindSymbol
	r.Symbol = fmt.Sprintf("%s+%#x", sym.Name, d)
	r.What = fmt.Sprintf("%s+%#x (%s, %s)", sym.Name, d, sym.Kind, sym.Section)
	if isTextSection(sym.Section) {
		r.File, r.Line = s.kernelLine(va)
		r.What += atLine(r.File, r.Line)
	}
	return true
}

// module is an address in a module's memory.
func (s *Symbolizer) module(r *Result, va uint64) bool {
	m, rg, ok := s.moduleAt(va)
	if !ok {
		return false
	}
	r.Kind, r.Module = KindModule, m.Name
	r.What = fmt.Sprintf("module %s, %s+%#x", m.Name, rg.Kind, va-rg.Base)
	if ks, ok := s.moduleKSym(m, va); ok {
		name, d := kernel.Printable(ks.Name), va-ks.Addr
		r.Symbol = fmt.Sprintf("%s+%#x", name, d)
		r.What += fmt.Sprintf(" (%s+%#x [%s])", name, d, m.Name)
		if ks.Type == 't' || ks.Type == 'T' {
			r.File, r.Line = s.moduleLine(m, va)
			r.What += atLine(r.File, r.Line)
		}
	}
	return true
}

// atLine is " at file:line", or "" where the line is unknown.
func atLine(file string, line int) string {
	if line <= 0 {
		return ""
	}
	return fmt.Sprintf(" at %s:%d", file, line)
}

// moduleAt is the loaded module whose memory holds va, and the region.
func (s *Symbolizer) moduleAt(va uint64) (*kernel.Module, kernel.ModuleRange, bool) {
	s.modsOnce.Do(s.readModules)
	for i := range s.mods {
		if rg, ok := s.mods[i].Contains(va); ok {
			return &s.mods[i], rg, true
		}
	}
	return nil, kernel.ModuleRange{}, false
}
