package allocinfo

import (
	"errors"
	"fmt"
	"iter"

	"github.com/vmleak/vmleak/kdwarf"
	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/kernel/mm"
)

// Errors a caller can test for with errors.Is.
var (
	// ErrNotEnabled: the kernel was built without allocation profiling
	// (no __start_alloc_tags or mem_alloc_profiling_key symbol, or no
	// struct alloc_tag type).
	ErrNotEnabled = errors.New("allocinfo: the kernel has no allocation profiling (CONFIG_MEM_ALLOC_PROFILING, v6.10+)")
	// ErrCounters: a tag's counters pointer is no per-CPU pointer.
	ErrCounters = errors.New("counters pointer outside per-CPU space")
	// ErrLayout: the kernel's code tag types or symbols are not the layout
	// this package reads.
	ErrLayout = errors.New("allocinfo: unrecognized code tag layout")
)

// Bounds on what is read from the dump.
const (
	// MaxTags bounds one tag range: a kernel has some thousands of
	// allocation call sites, a module fewer.
	MaxTags = 1 << 20
	// maxModules bounds the mod_idr walk (modules plus the kernel).
	maxModules = 1 << 14
	// String bounds: MODULE_NAME_LEN (56) with room, KSYM_NAME_LEN (512)
	// and PATH_MAX.
	maxModname  = 64
	maxFunction = 512
	maxFilename = 4096
)

// FlagInaccurate is CODETAG_FLAG_INACCURATE (include/linux/codetag.h):
// the tag missed allocations whose slab object extension could not be
// allocated ("alloc_tag: mark inaccurate allocation counters in
// /proc/allocinfo output", allocinfo version 2.0). Kernels before it never
// set codetag.flags.
const FlagInaccurate = 1 << 0

// RangeError is a tag range, or the module registration behind one, that
// cannot be read as an array of struct alloc_tag.
type RangeError struct {
	Module      string // "" for the kernel's own tags, or a module not yet named
	Registered  uint64 // the struct codetag_module; 0 for the kernel's symbols
	Start, Stop uint64
	Msg         string
	Err         error
}

func (e *RangeError) Error() string {
	who := "the kernel's tags"
	switch {
	case e.Module != "":
		who = "module " + kernel.Printable(e.Module) + "'s tags"
	case e.Registered != 0:
		who = "the tags registered by codetag_module " + fmt.Sprintf("%#x", e.Registered)
	}
	s := fmt.Sprintf("allocinfo: %s [%#x, %#x): %s", who, e.Start, e.Stop, e.Msg)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *RangeError) Unwrap() error { return e.Err }

// TagError is one struct alloc_tag that cannot be read whole.
type TagError struct {
	Addr   uint64 // the struct alloc_tag
	Module string // the registration it belongs to; "" for the kernel
	Field  string // what failed: "" (the struct), "modname", "function", "filename", "counters"
	Err    error
}

func (e *TagError) Error() string {
	s := fmt.Sprintf("allocinfo: tag at %#x", e.Addr)
	if e.Module != "" {
		s += " of module " + kernel.Printable(e.Module)
	}
	if e.Field != "" {
		s += ": " + e.Field
	}
	return s + ": " + e.Err.Error()
}

func (e *TagError) Unwrap() error { return e.Err }

// Reader reads one kernel's allocation tags. It is not safe for
// concurrent use.
type Reader struct {
	k       *kernel.Kernel
	tagSize uint64
	// struct alloc_tag, with its struct codetag ct.
	flags, lineno, modname, function, filename, counters kernel.Member
	ctrSize                                              int64
	ctrBytes, ctrCalls                                   kernel.Member
	start, stop                                          uint64 // the kernel's tags

	// Per-CPU space: the possible CPUs and their __per_cpu_offset, the
	// first chunk's unit (__per_cpu_start, pcpu_unit_size) and the
	// vmalloc area later chunks are mapped in.
	cpus            []int
	offs            []uint64
	pcpuStart, unit uint64
	vmalloc         mm.Region

	warnings []string
}

// New probes a kernel's allocation profiling layout. A kernel built
// without it gives an error wrapping ErrNotEnabled.
func New(k *kernel.Kernel) (*Reader, error) {
	if !k.HasTypes() {
		return nil, errors.New("allocinfo: kernel types (vmlinux) are needed")
	}
	r := &Reader{k: k}
	var err error
	if r.start, err = k.Symbol("__start_alloc_tags"); err != nil {
		if errors.Is(err, kdwarf.ErrNotFound) {
			return nil, fmt.Errorf("%w: no __start_alloc_tags in %s", ErrNotEnabled, k.Types().Path())
		}
		return nil, fmt.Errorf("allocinfo: %w", err)
	}
	// The linker script of some kernels (Debian's 6.12 among them) defines
	// the empty tag section, __start_alloc_tags and all, in every kernel;
	// lib/alloc_tag.c, which defines mem_alloc_profiling_key, is built
	// only with CONFIG_MEM_ALLOC_PROFILING (lib/Makefile, 22d407b164ff).
	if _, err := k.Symbol("mem_alloc_profiling_key"); err != nil {
		if errors.Is(err, kdwarf.ErrNotFound) {
			return nil, fmt.Errorf("%w: %s has __start_alloc_tags but no mem_alloc_profiling_key", ErrNotEnabled, k.Types().Path())
		}
		return nil, fmt.Errorf("allocinfo: %w", err)
	}
	if !k.HasType("struct alloc_tag") {
		return nil, fmt.Errorf("%w: no struct alloc_tag in %s's types", ErrNotEnabled, k.Types().Path())
	}
	if r.stop, err = k.Symbol("__stop_alloc_tags"); err != nil {
		return nil, fmt.Errorf("%w: __start_alloc_tags without __stop_alloc_tags: %v", ErrLayout, err)
	}
	size, err := k.SizeOf("struct alloc_tag")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrLayout, err)
	}
	r.tagSize = uint64(size)
	for _, m := range []struct {
		dst        *kernel.Member
		typ, field string
	}{
		{&r.flags, "struct alloc_tag", "ct.flags"}, {&r.lineno, "struct alloc_tag", "ct.lineno"},
		{&r.modname, "struct alloc_tag", "ct.modname"}, {&r.function, "struct alloc_tag", "ct.function"},
		{&r.filename, "struct alloc_tag", "ct.filename"}, {&r.counters, "struct alloc_tag", "counters"},
		{&r.ctrBytes, "struct alloc_tag_counters", "bytes"}, {&r.ctrCalls, "struct alloc_tag_counters", "calls"},
	} {
		if *m.dst, err = k.Member(m.typ, m.field); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrLayout, err)
		}
	}
	if r.ctrSize, err = k.SizeOf("struct alloc_tag_counters"); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrLayout, err)
	}
	if err := r.perCPU(); err != nil {
		return nil, err
	}
	return r, nil
}

// perCPU reads what summing and checking per-CPU counters needs.
func (r *Reader) perCPU() error {
	k := r.k
	offs, err := k.PerCPUOffsets()
	if err != nil {
		return fmt.Errorf("allocinfo: %w", err)
	}
	m, err := mm.New(k)
	if err != nil {
		return fmt.Errorf("allocinfo: %w", err)
	}
	// alloc_tag_read() sums for_each_possible_cpu.
	possible, err := m.CPUMask("__cpu_possible_mask")
	if err != nil {
		return fmt.Errorf("allocinfo: possible CPUs: %w", err)
	}
	for _, c := range possible {
		if c < len(offs) {
			r.cpus = append(r.cpus, c)
		}
	}
	if len(r.cpus) == 0 {
		return fmt.Errorf("allocinfo: no possible CPU below nr_cpu_ids %d", len(offs))
	}
	r.offs = offs
	if r.pcpuStart, err = k.Symbol("__per_cpu_start"); err != nil {
		return fmt.Errorf("allocinfo: per-CPU areas: %w", err)
	}
	unit, err := k.Var("pcpu_unit_size", "int").Int()
	if err != nil {
		return fmt.Errorf("allocinfo: per-CPU areas: %w", err)
	}
	if unit <= 0 || unit > 1<<30 {
		return fmt.Errorf("allocinfo: pcpu_unit_size %d is implausible", unit)
	}
	r.unit = uint64(unit)
	if r.vmalloc, err = m.Vmalloc(); err != nil {
		return fmt.Errorf("allocinfo: %w", err)
	}
	return nil
}

// Warnings are what went wrong without failing a tag or a range.
func (r *Reader) Warnings() []string { return append([]string(nil), r.warnings...) }

func (r *Reader) warnf(format string, args ...any) {
	r.warnings = append(r.warnings, fmt.Sprintf(format, args...))
}

// Enabled tells whether mem_alloc_profiling_key was on: profiling can be
// switched off at run time (sysctl vm.mem_profiling), which freezes the
// counters. ok is false when the key cannot be read.
func (r *Reader) Enabled() (on, ok bool) {
	va, err := r.k.Symbol("mem_alloc_profiling_key")
	if err != nil || !r.k.HasType("struct static_key") {
		return false, false
	}
	// DEFINE_STATIC_KEY_MAYBE: a static_key_true or _false, each a
	// struct static_key first.
	n, err := r.k.Object(va, "struct static_key").Field("enabled").Field("counter").Int()
	if err != nil {
		return false, false
	}
	return n > 0, true
}

// Tags yields every allocation tag in /proc/allocinfo's order: the
// kernel's, then each module's by mod_idr id. A tag that cannot be read
// is yielded with what is known of it (Addr, Module) and a *TagError; a
// range or registration that cannot be read yields a zero Tag and its
// error (a *RangeError, or one wrapping ErrLayout). Either way the walk
// goes on.
func (r *Reader) Tags() iter.Seq2[Tag, error] {
	return func(yield func(Tag, error) bool) {
		if !r.rangeTags("", 0, r.start, r.stop, yield) {
			return
		}
		for m, err := range r.modules() {
			if err != nil {
				if !yield(Tag{}, err) {
					return
				}
				continue
			}
			if !r.rangeTags(m.name, m.registered, m.start, m.stop, yield) {
				return
			}
		}
	}
}

// rangeTags yields the tags of one range, false when yield stopped.
func (r *Reader) rangeTags(module string, registered, start, stop uint64, yield func(Tag, error) bool) bool {
	fail := func(msg string) bool {
		return yield(Tag{}, &RangeError{Module: module, Registered: registered, Start: start, Stop: stop, Msg: msg})
	}
	switch {
	case stop < start:
		return fail("ends before it starts")
	case (stop-start)%r.tagSize != 0:
		return fail(fmt.Sprintf("%d bytes are not a whole number of %d-byte struct alloc_tag", stop-start, r.tagSize))
	case (stop-start)/r.tagSize > MaxTags:
		return fail(fmt.Sprintf("%d tags, more than %d", (stop-start)/r.tagSize, MaxTags))
	}
	for va := start; va < stop; va += r.tagSize {
		t, err := r.readTag(va, module)
		if !yield(t, err) {
			return false
		}
	}
	return true
}

// readTag reads one struct alloc_tag and sums its counters.
func (r *Reader) readTag(va uint64, module string) (Tag, error) {
	t := Tag{Addr: kernel.Hex(va), Module: module}
	fail := func(field string, err error) (Tag, error) {
		return t, &TagError{Addr: va, Module: module, Field: field, Err: err}
	}
	b := make([]byte, r.tagSize)
	if err := r.k.ReadVirt(b, va); err != nil {
		return fail("", err)
	}
	d := kernel.Decode(b)
	flags, line := d.Uint(r.flags), d.Uint(r.lineno)
	modname, function, filename, ctrs := d.Uint(r.modname), d.Uint(r.function), d.Uint(r.filename), d.Uint(r.counters)
	if err := d.Err(); err != nil {
		return fail("", err)
	}
	t.Flags, t.Line = uint32(flags), uint32(line)
	// CT_MODULE_NAME is NULL for built-in code: modname names a module.
	if modname != 0 {
		s, err := r.str(modname, maxModname)
		if err != nil {
			return fail("modname", err)
		}
		switch {
		case module == "":
			r.warnf("tag at %#x: modname %q in one of the kernel's own tags", va, kernel.Printable(s))
		case s != module:
			r.warnf("tag at %#x: modname %q in the tag, registered by module %s", va, kernel.Printable(s), kernel.Printable(module))
		}
		t.Module = s
	} else if module != "" {
		r.warnf("tag at %#x: no modname, registered by module %s", va, kernel.Printable(module))
	}
	var err error
	if t.Function, err = r.str(function, maxFunction); err != nil {
		return fail("function", err)
	}
	if t.File, err = r.str(filename, maxFilename); err != nil {
		return fail("filename", err)
	}
	if t.Bytes, t.Calls, err = r.sum(ctrs); err != nil {
		return fail("counters", err)
	}
	return t, nil
}

// str reads a NUL-terminated string of at most max bytes.
func (r *Reader) str(va uint64, max int) (string, error) {
	if va == 0 {
		return "", errors.New("NULL string pointer")
	}
	s, err := r.k.ReadCString(va, max+1)
	if err != nil {
		return "", fmt.Errorf("string at %#x: %w", va, err)
	}
	if len(s) > max {
		return "", fmt.Errorf("string at %#x: no NUL within %d bytes", va, max)
	}
	return s, nil
}

// sum is alloc_tag_read(): the counters of every possible CPU added up,
// bytes as the s64 /proc/allocinfo prints.
func (r *Reader) sum(p uint64) (int64, uint64, error) {
	if err := r.checkPerCPU(p); err != nil {
		return 0, 0, err
	}
	var bytes, calls uint64
	b := make([]byte, r.ctrSize)
	for _, cpu := range r.cpus {
		va := p + r.offs[cpu]
		if err := r.k.ReadVirt(b, va); err != nil {
			return 0, 0, fmt.Errorf("CPU %d's counters at %#x: %w", cpu, va, err)
		}
		d := kernel.Decode(b)
		bytes += d.Uint(r.ctrBytes) // u64 arithmetic wraps as the kernel's does
		calls += d.Uint(r.ctrCalls)
		if err := d.Err(); err != nil {
			return 0, 0, err
		}
	}
	return int64(bytes), calls, nil
}

// checkPerCPU tells whether p is a __percpu pointer to a struct
// alloc_tag_counters: in the first chunk (a static DEFINE_PER_CPU, a
// module's per-CPU section in the reserved part, or an early
// alloc_percpu), whose units start at __per_cpu_start plus each CPU's
// offset; or in a later chunk, whose units the percpu allocator maps in the
// vmalloc area for every CPU (mm/percpu-vm.c).
func (r *Reader) checkPerCPU(p uint64) error {
	if p == 0 {
		return fmt.Errorf("%w: NULL", ErrCounters)
	}
	size := uint64(r.ctrSize)
	if off := p - r.pcpuStart; off < r.unit && r.unit-off >= size {
		return nil
	}
	for _, cpu := range r.cpus {
		va := p + r.offs[cpu]
		if !r.vmalloc.Contains(va) || !r.vmalloc.Contains(va+size-1) {
			return fmt.Errorf("%w: %#x is neither in the first chunk (%#x bytes from __per_cpu_start %#x) nor, for CPU %d at %#x, in the vmalloc area",
				ErrCounters, p, r.unit, r.pcpuStart, cpu, va)
		}
	}
	return nil
}

// modRange is one module's registered tag range.
type modRange struct {
	name        string
	registered  uint64 // struct codetag_module
	start, stop uint64
}

// modules yields the module tag ranges registered on alloc_tag_cttype's
// mod_idr, in id order, checking the kernel's own registration against
// the symbols.
func (r *Reader) modules() iter.Seq2[modRange, error] {
	return func(yield func(modRange, error) bool) {
		k := r.k
		sym, err := k.Symbol("alloc_tag_cttype")
		if err != nil {
			yield(modRange{}, fmt.Errorf("%w: module tags: %v", ErrLayout, err))
			return
		}
		ct, err := k.ReadPtr(sym)
		if err != nil {
			yield(modRange{}, fmt.Errorf("allocinfo: module tags: alloc_tag_cttype at %#x: %w", sym, err))
			return
		}
		if ct == 0 {
			// alloc_tag_init() registers the type only when profiling is
			// supported (not "sysctl.vm.mem_profiling=never").
			r.warnf("alloc_tag_cttype is NULL: allocation profiling was not initialized (no /proc/allocinfo), no module tags")
			return
		}
		for _, m := range [][2]string{{"struct codetag_type", "mod_idr"}, {"struct codetag_type", "desc.tag_size"},
			{"struct codetag_module", "mod"}, {"struct codetag_module", "range.start"}, {"struct codetag_module", "range.stop"},
			{"struct module", "name"}} {
			if _, err := k.Member(m[0], m[1]); err != nil {
				yield(modRange{}, fmt.Errorf("%w: module tags: %v", ErrLayout, err))
				return
			}
		}
		cttype := k.Object(ct, "struct codetag_type")
		// The kernel walks each range in steps of desc.tag_size.
		step, err := cttype.Field("desc").Field("tag_size").Uint()
		if err != nil {
			yield(modRange{}, fmt.Errorf("allocinfo: module tags: codetag_type at %#x: %w", ct, err))
			return
		}
		if step != r.tagSize {
			yield(modRange{}, fmt.Errorf("%w: codetag_type at %#x has tag_size %d, struct alloc_tag is %d bytes", ErrLayout, ct, step, r.tagSize))
			return
		}
		idr := cttype.Field("mod_idr")
		area, hasArea, err := r.moduleTagsArea()
		if err != nil {
			yield(modRange{}, err)
			return
		}
		for e, err := range k.XArray(idr.Field("idr_rt").Addr(), maxModules) {
			if err != nil {
				yield(modRange{}, fmt.Errorf("allocinfo: module tags: mod_idr of codetag_type %#x: %w", ct, err))
				return
			}
			m, err := r.registration(e.Entry)
			switch {
			case err != nil:
			case m.registered == 0:
				continue // the kernel's own range, checked
			case hasArea && (m.start < area.Start || m.stop > area.Start+area.Size):
				err = &RangeError{Module: m.name, Registered: e.Entry, Start: m.start, Stop: m.stop,
					Msg: fmt.Sprintf("outside the module_tags area [%#x, %#x)", area.Start, area.Start+area.Size)}
			}
			if !yield(m, err) {
				return
			}
		}
	}
}

// registration reads one struct codetag_module. The kernel's own (mod
// NULL) is compared with __start_alloc_tags/__stop_alloc_tags and comes
// back with registered 0.
func (r *Reader) registration(va uint64) (modRange, error) {
	fail := func(msg string, err error) (modRange, error) {
		return modRange{}, &RangeError{Registered: va, Msg: msg, Err: err}
	}
	if va&1 != 0 || va == 0 {
		return fail("mod_idr holds a value entry, not a pointer", nil)
	}
	cm := r.k.Object(va, "struct codetag_module").Load()
	mod, err1 := cm.Field("mod").Ptr()
	start, err2 := cm.Field("range").Field("start").Ptr()
	stop, err3 := cm.Field("range").Field("stop").Ptr()
	if err := first(err1, err2, err3); err != nil {
		return fail("unreadable", err)
	}
	if mod == 0 {
		if start != r.start || stop != r.stop {
			r.warnf("the kernel's tags are registered as [%#x, %#x), __start_alloc_tags/__stop_alloc_tags say [%#x, %#x): the latter are read",
				start, stop, r.start, r.stop)
		}
		return modRange{}, nil
	}
	name, err := r.k.Object(mod, "struct module").Field("name").String()
	if err != nil {
		return modRange{registered: va, start: start, stop: stop}, &RangeError{Registered: va, Start: start, Stop: stop,
			Msg: fmt.Sprintf("struct module at %#x", mod), Err: err}
	}
	return modRange{name: name, registered: va, start: start, stop: stop}, nil
}

// moduleTagsArea is [module_tags.start_addr, +size): where 0db6f8d7820a
// ("alloc_tag: load module tags into separate contiguous memory", v6.13)
// copies every module's tags. Earlier kernels have no module_tags and
// keep each module's tags in its own memory: ok is false.
func (r *Reader) moduleTagsArea() (mm.Region, bool, error) {
	va, err := r.k.Symbol("module_tags")
	if err != nil || !r.k.HasType("struct alloc_tag_module_section") {
		return mm.Region{}, false, nil
	}
	mt := r.k.Object(va, "struct alloc_tag_module_section")
	start, err1 := mt.Field("start_addr").Uint()
	size, err2 := mt.Field("size").Uint()
	if err := first(err1, err2); err != nil {
		return mm.Region{}, false, fmt.Errorf("allocinfo: module_tags at %#x: %w", va, err)
	}
	return mm.Region{Start: start, Size: size}, true, nil
}

// first is the first error of a run of reads.
func first(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
