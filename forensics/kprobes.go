package forensics

import (
	"errors"
	"fmt"

	"github.com/vmleak/vmleak/kdwarf"
)

// Bounds on the kprobe walk.
const (
	maxKprobes        = 1 << 16
	maxKprobeChildren = 1024
)

// checkKprobes walks kprobe_table (the hash of registered probes) and
// resolves each probe's address and handlers; an aggregate probe
// (aggr_pre_handler) stands for the probes on its list, and a kretprobe's
// own handlers sit in the struct kretprobe around its kprobe. A handler in
// a module is Medium (tracers and rootkits both do this); in memory no
// listed module owns, High; the kernel's own (perf, trace_kprobe) Info.
func checkKprobes(c *Context) ([]Finding, CheckResult) {
	k := c.K
	tab, err := k.Types().Symbol("kprobe_table")
	if errors.Is(err, kdwarf.ErrNotFound) {
		return nil, CheckResult{Status: StatusAbsent, Note: "the kernel has no kprobes (no kprobe_table)"}
	}
	if err != nil {
		return nil, CheckResult{Status: StatusNotChecked, Note: err.Error()}
	}
	n := tab.Size / 8
	if n == 0 || n > 1<<12 {
		return nil, CheckResult{Status: StatusNotChecked, Note: fmt.Sprintf("kprobe_table: %d bytes is implausible", tab.Size)}
	}
	base := tab.Value + k.Layout().KASLROffset
	aggr, _ := k.Symbol("aggr_pre_handler")
	kret, _ := k.Symbol("pre_handler_kretprobe")
	listOff, err1 := k.Member("struct kprobe", "list")
	hlistOff, err2 := k.Member("struct kprobe", "hlist")
	if err := firstError(err1, err2); err != nil {
		return nil, CheckResult{Status: StatusNotChecked, Note: err.Error()}
	}
	res := CheckResult{}
	var fs []Finding
	var problems []string
	seen := map[uint64]bool{}
	for b := range n {
		node, err := k.ReadPtr(base + 8*b)
		for err == nil && node != 0 {
			if seen[node] || len(seen) >= maxKprobes {
				err = fmt.Errorf("kprobe_table[%d] loops at %#x", b, node)
				break
			}
			seen[node] = true
			kp := node - hlistOff.Offset()
			pre, perr := k.Object(kp, "struct kprobe").Field("pre_handler").Ptr()
			if perr != nil {
				err = perr
				break
			}
			probes := []uint64{kp}
			if aggr != 0 && pre == aggr {
				probes = nil
				for e, lerr := range k.ListHead(kp+listOff.Offset(), maxKprobeChildren) {
					if lerr != nil {
						problems = append(problems, fmt.Sprintf("aggregate kprobe %#x: %v", kp, lerr))
						break
					}
					probes = append(probes, e-listOff.Offset())
				}
			}
			for _, p := range probes {
				res.Checked++
				f, ferr := c.kprobe(p, kret)
				if ferr != nil {
					res.Skipped++
					problems = append(problems, ferr.Error())
					continue
				}
				fs = append(fs, f)
			}
			node, err = k.ReadPtr(node)
		}
		if err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		res.Status = StatusPartial
		res.Note = fmt.Sprintf("%d problems, first: %s", len(problems), problems[0])
	}
	return fs, res
}

// kprobe describes one probe.
func (c *Context) kprobe(kp, kretPre uint64) (Finding, error) {
	k := c.K
	v := k.Object(kp, "struct kprobe").Load()
	addr, err1 := v.Field("addr").Ptr()
	pre, err2 := v.Field("pre_handler").Ptr()
	post, err3 := v.Field("post_handler").Ptr()
	flags, err4 := v.Field("flags").Uint()
	if err := firstError(err1, err2, err3, err4); err != nil {
		return Finding{}, fmt.Errorf("kprobe %#x: %w", kp, err)
	}
	type handler struct {
		what string
		va   uint64
	}
	handlers := []handler{{"pre_handler", pre}, {"post_handler", post}}
	if kretPre != 0 && pre == kretPre {
		// A kretprobe's own handlers sit in the struct kretprobe around it.
		rp := k.Object(kp, "struct kretprobe")
		if rp.HasField("handler") {
			h, _ := rp.Field("handler").Ptr()
			e, _ := rp.Field("entry_handler").Ptr()
			handlers = append(handlers, handler{"kretprobe handler", h}, handler{"kretprobe entry_handler", e})
		}
	}
	probed := c.Resolver.Resolve(addr)
	f := Finding{Kind: "kprobe", Severity: Info, Addr: addr, Symbol: probed.Name}
	worst := Place{Where: InKernelText}
	for _, h := range handlers {
		if h.va == 0 {
			continue
		}
		p := c.Resolver.Resolve(h.va)
		f.Evidence = append(f.Evidence, fmt.Sprintf("%s %#x %s", h.what, h.va, p.Name))
		if rank(p.Where) > rank(worst.Where) {
			worst = p
			f.Target, f.TargetName, f.Module = h.va, p.Name, p.Module
		}
	}
	state := "armed"
	switch {
	case flags&kprobeFlagGone != 0:
		state = "gone (its module was unloaded)"
	case flags&kprobeFlagDisabled != 0:
		state = "disabled"
	}
	how := "int3 breakpoint"
	if flags&kprobeFlagFtrace != 0 {
		how = "ftrace call site"
	}
	f.Evidence = append(f.Evidence, fmt.Sprintf("struct kprobe %#x, %s, through an %s (flags %#x)", kp, state, how, flags))
	switch worst.Where {
	case InKernelText:
		f.Summary = fmt.Sprintf("kprobe on %s with kernel handlers", probed.Name)
	case InModule:
		f.Kind, f.Severity = "kprobe-hook", Medium
		f.Summary = fmt.Sprintf("module %s probes %s (%s)", worst.Module, probed.Name, f.TargetName)
	default:
		f.Kind, f.Severity = "kprobe-hook", High
		f.Summary = fmt.Sprintf("kprobe on %s handled by %s", probed.Name, f.TargetName)
	}
	return f, nil
}

// rank orders places from the most to the least expected home of a handler.
func rank(where string) int {
	switch where {
	case InKernelText:
		return 0
	case InModule:
		return 1
	}
	return 2
}
