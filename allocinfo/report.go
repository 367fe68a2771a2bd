package allocinfo

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/vmleak/vmleak/kernel"
)

// Schema is the version of the Report JSON.
const Schema = 1

// Report is a dump's /proc/allocinfo, and its totals per module.
type Report struct {
	Schema  int    `json:"schema"`
	Release string `json:"release"`
	Dump    string `json:"dump"`
	// Enabled is mem_alloc_profiling_key: false when profiling was
	// switched off at run time (the counters froze then); absent when it
	// could not be read.
	Enabled *bool `json:"enabled,omitempty"`
	// Tags in /proc/allocinfo's order (the kernel's, then each module's)
	// unless sorted.
	Tags []Tag `json:"tags"`
	// Modules are the totals of the kernel ("") and of each module with
	// tags, by bytes.
	Modules []ModuleTotal `json:"modules"`
	// Unreadable are the tags that could not be read; they are in no total.
	Unreadable []BadTag `json:"unreadable,omitempty"`
	Warnings   []string `json:"warnings,omitempty"`
	Partial    bool     `json:"partial"`
}

// Tag is one allocation call site and what it holds.
type Tag struct {
	Addr     kernel.Hex `json:"addr"`  // the struct alloc_tag
	Bytes    int64      `json:"bytes"` // allocated and not freed, summed over the possible CPUs (an s64, as the kernel prints it)
	Calls    uint64     `json:"calls"` // allocations not freed
	File     string     `json:"file"`
	Line     uint32     `json:"line"`
	Function string     `json:"function"`
	Module   string     `json:"module,omitempty"` // codetag.modname; "" for the kernel's own code
	Flags    uint32     `json:"flags,omitempty"`  // codetag.flags (FlagInaccurate)
}

// Inaccurate tells whether the kernel marked the tag's counters as missing
// allocations (FlagInaccurate).
func (t Tag) Inaccurate() bool { return t.Flags&FlagInaccurate != 0 }

// BadTag is a tag that could not be read.
type BadTag struct {
	Addr   kernel.Hex `json:"addr"`
	Module string     `json:"module,omitempty"`
	Error  string     `json:"error"`
}

// ModuleTotal is what one module's call sites (or the kernel's) hold.
type ModuleTotal struct {
	Module     string `json:"module"` // "" for the kernel
	Tags       int    `json:"tags"`
	Bytes      int64  `json:"bytes"`
	Calls      uint64 `json:"calls"`
	Unreadable int    `json:"unreadable,omitempty"`
}

// Read reads every allocation tag of the kernel. It fails only when the
// kernel has no allocation profiling (ErrNotEnabled) or its layout cannot
// be read; a tag, range or module that cannot be read is listed
// (Unreadable, Warnings) and makes the report Partial.
func Read(k *kernel.Kernel) (*Report, error) {
	r, err := New(k)
	if err != nil {
		return nil, err
	}
	rep := &Report{Schema: Schema, Release: k.Release(), Dump: k.Path(), Tags: []Tag{}}
	if on, ok := r.Enabled(); ok {
		rep.Enabled = &on
		if !on {
			rep.Warnings = append(rep.Warnings, "allocation profiling was switched off (mem_alloc_profiling_key): the counters stopped when it was")
		}
	}
	for t, err := range r.Tags() {
		if err == nil {
			rep.Tags = append(rep.Tags, t)
			continue
		}
		rep.Partial = true
		var te *TagError
		if errors.As(err, &te) {
			rep.Unreadable = append(rep.Unreadable, BadTag{Addr: t.Addr, Module: t.Module, Error: err.Error()})
			continue
		}
		rep.Warnings = append(rep.Warnings, err.Error())
	}
	rep.Warnings = append(rep.Warnings, r.Warnings()...)
	rep.Modules = Totals(rep.Tags, rep.Unreadable)
	return rep, nil
}

// Totals adds tags up per module, by bytes (then name); the kernel is the
// module "".
func Totals(tags []Tag, bad []BadTag) []ModuleTotal {
	by := map[string]*ModuleTotal{}
	get := func(m string) *ModuleTotal {
		if by[m] == nil {
			by[m] = &ModuleTotal{Module: m}
		}
		return by[m]
	}
	for _, t := range tags {
		mt := get(t.Module)
		mt.Tags++
		mt.Bytes += t.Bytes
		mt.Calls += t.Calls
	}
	for _, b := range bad {
		get(b.Module).Unreadable++
	}
	out := make([]ModuleTotal, 0, len(by))
	for _, mt := range by {
		out = append(out, *mt)
	}
	slices.SortFunc(out, func(a, b ModuleTotal) int {
		if c := cmp.Compare(b.Bytes, a.Bytes); c != 0 {
			return c
		}
		return cmp.Compare(a.Module, b.Module)
	})
	return out
}

// KernelName is how the kernel's own call sites are named where a module
// name is expected (Select, the per-module table).
const KernelName = "kernel"

// Select keeps the tags of one module (KernelName for the kernel's own;
// "" keeps all) and, with nonzero, only those holding memory or calls
// (/proc/allocinfo itself lists every tag). The totals are recomputed
// from what is kept.
func (r *Report) Select(module string, nonzero bool) *Report {
	out := *r
	want := func(m string) bool { return module == "" || m == module || (module == KernelName && m == "") }
	out.Tags = []Tag{}
	for _, t := range r.Tags {
		if want(t.Module) && (!nonzero || t.Bytes != 0 || t.Calls != 0) {
			out.Tags = append(out.Tags, t)
		}
	}
	out.Unreadable = nil
	for _, b := range r.Unreadable {
		if want(b.Module) {
			out.Unreadable = append(out.Unreadable, b)
		}
	}
	out.Modules = Totals(out.Tags, out.Unreadable)
	return &out
}

// Sort orders.
const (
	SortBytes    = "bytes"    // bytes, largest first (the default)
	SortCalls    = "calls"    // calls, most first
	SortLocation = "location" // file, line, function
	SortKernel   = "kernel"   // /proc/allocinfo's own order
)

// SortOrders are the orders Sort knows.
var SortOrders = []string{SortBytes, SortCalls, SortLocation, SortKernel}

// Sort orders the tags in place; ties fall back to the location, so the
// output is the same from run to run.
func (r *Report) Sort(by string) error {
	loc := func(a, b Tag) int {
		if c := cmp.Compare(a.File, b.File); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Line, b.Line); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Function, b.Function); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Module, b.Module); c != 0 {
			return c
		}
		return cmp.Compare(a.Addr, b.Addr)
	}
	switch by {
	case SortBytes:
		slices.SortStableFunc(r.Tags, func(a, b Tag) int { return cmp.Or(cmp.Compare(b.Bytes, a.Bytes), loc(a, b)) })
	case SortCalls:
		slices.SortStableFunc(r.Tags, func(a, b Tag) int { return cmp.Or(cmp.Compare(b.Calls, a.Calls), loc(a, b)) })
	case SortLocation:
		slices.SortStableFunc(r.Tags, loc)
	case SortKernel:
	default:
		return fmt.Errorf("allocinfo: unknown sort order %q (want one of %v)", by, SortOrders)
	}
	return nil
}
