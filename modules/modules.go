package modules

import (
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/vmleak/vmleak/kernel"
)

// Schema is the version of Report's JSON form.
const Schema = 1

// Bounds on what the dump may claim, against corrupt memory.
const (
	maxUsers  = 1 << 12 // entries of one module's source_list
	maxParams = 1 << 12 // num_kp
	maxArray  = 1 << 10 // elements of one array parameter
)

// Report is the modules and taint of one dump.
type Report struct {
	Schema  int      `json:"schema"`
	Release string   `json:"release"`
	Dump    string   `json:"dump"`
	Taint   Taint    `json:"taint"`
	Modules []Module `json:"modules"`
	// Warnings say what could not be read; Partial is set when any of it
	// was part of the result (a module left out, a field unread).
	Warnings []string `json:"warnings,omitempty"`
	Partial  bool     `json:"partial"`
}

// Module is one loaded module.
type Module struct {
	Name string     `json:"name"`
	Addr kernel.Hex `json:"struct_module"`
	// Base and Size are the address and size /proc/modules prints.
	Base    kernel.Hex `json:"base"`
	Size    uint64     `json:"size"`
	Regions []Region   `json:"regions"`
	// Refcount is module_refcount(); nil where the kernel has no module
	// unloading (no refcnt) or it could not be read (see Errors).
	Refcount  *int64   `json:"refcount"`
	UsedBy    []string `json:"used_by"`
	Permanent bool     `json:"permanent,omitempty"`
	State     string   `json:"state"` // Live, Loading, Unloading, Unformed
	// Taints is mod->taints; TaintFlags what /proc/modules prints for it
	// ("(OE)"), "" when it prints nothing.
	Taints     uint64 `json:"taints"`
	TaintFlags string `json:"taint_flags,omitempty"`
	// BuildID is the module's GNU build-id in hex, when the dump tells it.
	BuildID      string `json:"build_id,omitempty"`
	BuildIDError string `json:"build_id_error,omitempty"`
	// Debuginfo is the file with the module's DWARF, when one was found.
	Debuginfo      string  `json:"debuginfo,omitempty"`
	DebuginfoError string  `json:"debuginfo_error,omitempty"`
	Params         []Param `json:"params"`
	// Errors are the parts of the module that could not be read.
	Errors []string `json:"errors,omitempty"`
}

// Region is one memory region of a module: "core"/"init" up to 6.3, the
// mod_mem_type ("text", "data", "rodata", ...) from 6.4.
type Region struct {
	Kind string     `json:"kind"`
	Base kernel.Hex `json:"base"`
	Size uint64     `json:"size"`
}

// Param is one module parameter (struct kernel_param).
type Param struct {
	Name string `json:"name"`
	// Ops is the symbol of kp->ops ("param_ops_uint", or a module's own
	// ops), or its address when no symbol names it.
	Ops string `json:"ops"`
	// Value is what /sys/module/<mod>/parameters/<name> would print, for
	// the kernel's own ops; nil otherwise.
	Value *string `json:"value,omitempty"`
	Perm  string  `json:"perm"` // octal, as in module_param(..., 0444)
	Error string  `json:"error,omitempty"`
}

// Options controls Read.
type Options struct {
	// DebugDirs are the roots searched for module debuginfo
	// (kernel.FindModuleDebuginfo), before the system's own places.
	DebugDirs []string
	// SkipDebuginfo leaves out the debuginfo search.
	SkipDebuginfo bool
}

// Read reports the loaded modules and the kernel's taint. It fails only
// when the modules list cannot be found at all; a module that cannot be
// read is a warning and the others go on.
func Read(k *kernel.Kernel, opts Options) (*Report, error) {
	if k == nil || !k.HasTypes() {
		return nil, errors.New("modules: kernel types (vmlinux) are needed")
	}
	r := &reader{k: k, out: &Report{Schema: Schema, Release: k.Release(), Dump: k.Path(), Modules: []Module{}}}
	if _, err := k.Symbol("modules"); err != nil {
		return nil, fmt.Errorf("modules: %w", err)
	}
	mods, err := k.Modules()
	if err != nil {
		r.warn(err)
		r.out.Partial = true
	}
	r.mods = mods
	table, terr := r.taintTable()
	if terr != nil {
		r.warnf("taint_flags: %v; using the built-in table", terr)
	}
	r.table = table
	r.opsSyms = r.paramOps()
	r.states = r.moduleStates()
	for _, m := range mods {
		mo := r.module(m, opts)
		if len(mo.Errors) > 0 {
			r.out.Partial = true
			for _, e := range mo.Errors {
				r.warnf("module %s at %#x: %s", mo.Name, uint64(mo.Addr), e)
			}
		}
		r.out.Modules = append(r.out.Modules, mo)
	}
	r.out.Taint = r.taint()
	return r.out, nil
}

type reader struct {
	k       *kernel.Kernel
	out     *Report
	mods    []kernel.Module
	table   taintTable
	opsSyms map[uint64]string // address of each param_ops_* → its name
	states  map[uint64]string // enum module_state value → /proc/modules word
	modSyms map[uint64]map[uint64]string
}

// warn records an error of kernel.Modules, which joins its errors
// (errors.Join): one warning each.
func (r *reader) warn(err error) {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			r.out.Warnings = append(r.out.Warnings, e.Error())
		}
		return
	}
	r.out.Warnings = append(r.out.Warnings, err.Error())
}

func (r *reader) warnf(format string, args ...any) {
	r.out.Warnings = append(r.out.Warnings, fmt.Sprintf(format, args...))
}

// moduleStates maps enum module_state values to what m_show prints, by
// enumerator name. Without the enum (never seen) the values are those of
// include/linux/module.h since MODULE_STATE_UNFORMED (v3.7): LIVE 0,
// COMING 1, GOING 2, UNFORMED 3.
func (r *reader) moduleStates() map[uint64]string {
	states := map[uint64]string{}
	words := []struct{ enum, word string }{
		{"MODULE_STATE_LIVE", "Live"}, {"MODULE_STATE_COMING", "Loading"},
		{"MODULE_STATE_GOING", "Unloading"}, {"MODULE_STATE_UNFORMED", "Unformed"},
	}
	for i, w := range words {
		v, err := r.k.Types().Enumerator(w.enum)
		if err != nil {
			r.warnf("enum module_state: %v; taking %s = %d", err, w.enum, i)
			v = int64(i)
		}
		states[uint64(v)] = w.word
	}
	return states
}

// module reads what Module holds beyond kernel.Module.
func (r *reader) module(m kernel.Module, opts Options) Module {
	k := r.k
	mo := Module{Name: m.Name, Addr: kernel.Hex(m.Addr), Regions: []Region{}, UsedBy: []string{}, Params: []Param{}}
	fail := func(what string, err error) { mo.Errors = append(mo.Errors, fmt.Sprintf("%s: %v", what, err)) }
	for _, rg := range m.Ranges {
		mo.Regions = append(mo.Regions, Region{Kind: rg.Kind, Base: kernel.Hex(rg.Base), Size: rg.Size})
		mo.Size += rg.Size
	}
	mv := k.Object(m.Addr, "struct module")

	var baseV kernel.Value
	if mv.HasField("mem") {
		text, err := k.Types().Enumerator("MOD_TEXT")
		if err != nil {
			text = 0 // the first of enum mod_mem_type since it was added
		}
		baseV = mv.Field("mem").Index(text).Field("base")
	} else {
		baseV = mv.Field("core_layout.base")
	}
	if b, err := baseV.Ptr(); err != nil {
		fail("base", err)
	} else {
		mo.Base = kernel.Hex(b)
	}

	state, err := mv.Field("state").Uint()
	if err != nil {
		fail("state", err)
		mo.State = "?"
	} else if w, ok := r.states[state]; ok {
		mo.State = w
	} else {
		mo.State = fmt.Sprintf("state %d", state)
	}

	if mv.HasField("refcnt") {
		r.unloadInfo(mv, &mo, fail)
	}

	if t, err := mv.Field("taints").Uint(); err != nil {
		fail("taints", err)
	} else {
		mo.Taints = t
		if t != 0 {
			mo.TaintFlags = "(" + r.table.moduleLetters(t)
			switch mo.State {
			case "Unloading":
				mo.TaintFlags += "-"
			case "Loading":
				mo.TaintFlags += "+"
			}
			mo.TaintFlags += ")"
		}
	}

	id, err := k.ModuleBuildID(m)
	if err != nil {
		mo.BuildIDError = err.Error()
		var re *kernel.ReadError
		if !errors.Is(err, kernel.ErrNoBuildID) || errors.As(err, &re) {
			fail("build-id", err)
		}
	} else {
		mo.BuildID = hex.EncodeToString(id)
	}
	if !opts.SkipDebuginfo {
		p, err := kernel.FindModuleDebuginfo(k.Release(), m.Name, id, opts.DebugDirs)
		if err != nil {
			mo.DebuginfoError = err.Error()
		} else {
			mo.Debuginfo = p
		}
	}

	r.params(mv, &mo, fail)
	return mo
}

// unloadInfo reads what print_unload_info prints: the refcount, the
// modules using this one and [permanent].
func (r *reader) unloadInfo(mv kernel.Value, mo *Module, fail func(string, error)) {
	rv := mv.Field("refcnt")
	if !rv.HasField("counter") {
		fail("refcnt", fmt.Errorf("refcnt is a %s, not the atomic_t module_refcount() reads", rv.Type()))
	} else if c, err := rv.Field("counter").Int(); err != nil {
		fail("refcnt", err)
	} else {
		n := c - 1 // MODULE_REF_BASE
		mo.Refcount = &n
	}

	head := mv.Field("source_list")
	if err := head.Err(); err != nil {
		fail("source_list", err)
		return
	}
	for e, err := range r.k.ListHead(head.Addr(), maxUsers) {
		if err != nil {
			fail("source_list", err)
			break
		}
		name, err := r.k.Object(e, "struct list_head").ContainerOf("struct module_use", "source_list").
			Field("source").Deref().Field("name").String()
		if err != nil {
			fail("source_list", err)
			break
		}
		mo.UsedBy = append(mo.UsedBy, kernel.Printable(name))
	}
	init, err1 := mv.Field("init").Ptr()
	exit, err2 := mv.Field("exit").Ptr()
	if err := errors.Join(err1, err2); err != nil {
		fail("init/exit", err)
	} else {
		mo.Permanent = init != 0 && exit == 0
	}
}
