package forensics

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vmleak/vmleak/kdwarf"
	"github.com/vmleak/vmleak/kernel"
)

// Bounds on what the dump may claim.
const (
	maxFtraceOps      = 4096
	maxFilterEntries  = 1 << 20
	maxFilterListed   = 16 // filtered functions named in a finding's evidence
	maxFtraceHashBits = 24
)

// checkFtrace walks ftrace_ops_list (to &ftrace_list_end, as
// kernel/trace/ftrace.c does) and resolves each ops' callback and the
// functions its filter hash selects. A callback in a module is where
// rootkits hook, and where tracers and livepatches live too (Medium); in
// memory no listed module owns, High.
func checkFtrace(c *Context) ([]Finding, CheckResult) {
	k := c.K
	head, err := k.Symbol("ftrace_ops_list")
	if errors.Is(err, kdwarf.ErrNotFound) {
		return nil, CheckResult{Status: StatusAbsent, Note: "the kernel has no ftrace (no ftrace_ops_list)"}
	}
	if err != nil {
		return nil, CheckResult{Status: StatusNotChecked, Note: err.Error()}
	}
	end, err := k.Symbol("ftrace_list_end")
	if err != nil {
		return nil, CheckResult{Status: StatusNotChecked, Note: err.Error()}
	}
	res := CheckResult{}
	var fs []Finding
	ops, err := k.ReadPtr(head)
	seen := map[uint64]bool{}
	for err == nil && ops != end {
		if ops == 0 || seen[ops] || len(seen) >= maxFtraceOps {
			err = fmt.Errorf("ftrace_ops_list broken at ops %#x after %d ops (NULL, a loop or too long)", ops, len(seen))
			break
		}
		seen[ops] = true
		res.Checked++
		if f, ok := c.ftraceOps(ops); ok {
			fs = append(fs, f)
		}
		ops, err = k.Object(ops, "struct ftrace_ops").Field("next").Ptr()
	}
	if err != nil {
		res.Status = StatusPartial
		res.Note = err.Error()
		if res.Checked == 0 {
			res.Status = StatusNotChecked
		}
	}
	return fs, res
}

// ftraceOps describes one ops; ok is false for ops the kernel itself
// registers that have no filter worth listing.
func (c *Context) ftraceOps(ops uint64) (Finding, bool) {
	v := c.K.Object(ops, "struct ftrace_ops").Load()
	fn, err := v.Field("func").Ptr()
	if err != nil {
		c.Warnf("ftrace: ops %#x: %v", ops, err)
		return Finding{}, false
	}
	flags, _ := v.Field("flags").Uint()
	tramp, _ := v.Field("trampoline").Ptr()
	funcs, total, ferr := c.ftraceFilter(v)
	place := c.Resolver.Resolve(fn)
	opsName, opsSym := fmt.Sprintf("at %#x", ops), ""
	if p := c.Resolver.Resolve(ops); p.Where != InUnknown {
		opsName, opsSym = p.Name, p.Name
	}
	f := Finding{
		Kind:       "ftrace-hook",
		Addr:       ops,
		Symbol:     opsSym,
		Target:     fn,
		TargetName: place.Name,
		Module:     place.Module,
	}
	what := "every traced function"
	switch {
	case ferr != nil:
		what = "functions that could not be read (" + ferr.Error() + ")"
	case total > 0:
		what = strings.Join(funcs, ", ")
		if total > len(funcs) {
			what += fmt.Sprintf(" and %d more", total-len(funcs))
		}
	}
	f.Evidence = append(f.Evidence, "filters: "+what)
	if tramp != 0 {
		f.Evidence = append(f.Evidence, fmt.Sprintf("trampoline %#x", tramp))
	}
	f.Evidence = append(f.Evidence, fmt.Sprintf("flags %#x", flags))
	switch place.Where {
	case InKernelText:
		f.Kind, f.Severity = "ftrace-ops", Info
		f.Summary = fmt.Sprintf("kernel ftrace ops %s calls %s on %s", opsName, place.Name, what)
	case InModule:
		f.Severity = Medium
		f.Summary = fmt.Sprintf("module %s traces %s with %s", place.Module, what, place.Name)
	default:
		f.Severity = High
		f.Summary = fmt.Sprintf("ftrace ops %s calls %s on %s", opsName, place.Name, what)
	}
	return f, true
}

// ftraceFilter lists the functions an ops' filter hash selects (up to
// maxFilterListed names, and the total); an empty hash means all.
func (c *Context) ftraceFilter(v kernel.Value) ([]string, int, error) {
	k := c.K
	hp, err := v.Field("func_hash").Ptr()
	if err != nil || hp == 0 {
		return nil, 0, err
	}
	h, err := k.Object(hp, "struct ftrace_ops_hash").Field("filter_hash").Ptr()
	if err != nil || h == 0 {
		return nil, 0, err
	}
	hv := k.Object(h, "struct ftrace_hash").Load()
	bits, err1 := hv.Field("size_bits").Uint()
	count, err2 := hv.Field("count").Uint()
	buckets, err3 := hv.Field("buckets").Ptr()
	if err := firstError(err1, err2, err3); err != nil {
		return nil, 0, err
	}
	if count == 0 {
		return nil, 0, nil
	}
	if bits > maxFtraceHashBits || count > maxFilterEntries {
		return nil, 0, fmt.Errorf("filter hash %#x: size_bits %d, count %d out of range", h, bits, count)
	}
	off, err := k.Member("struct ftrace_func_entry", "hlist")
	if err != nil {
		return nil, 0, err
	}
	var names []string
	total := 0
	seen := map[uint64]bool{}
	for b := range uint64(1) << bits {
		node, err := k.ReadPtr(buckets + 8*b)
		for err == nil && node != 0 {
			if seen[node] || len(seen) > int(count) {
				return names, total, fmt.Errorf("filter hash %#x: bucket %d loops or holds more than its count %d", h, b, count)
			}
			seen[node] = true
			ip, ierr := k.Object(node-off.Offset(), "struct ftrace_func_entry").Field("ip").Uint()
			if ierr != nil {
				return names, total, ierr
			}
			total++
			if len(names) < maxFilterListed {
				names = append(names, c.Resolver.Resolve(ip).Name)
			}
			node, err = k.ReadPtr(node)
		}
		if err != nil {
			return names, total, fmt.Errorf("filter hash %#x bucket %d: %w", h, b, err)
		}
	}
	return names, total, nil
}
