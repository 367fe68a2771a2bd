package forensics

import (
	"fmt"
	"slices"
	"sync"

	"github.com/vmleak/vmleak/kernel"
)

// Options choose what Run does.
type Options struct {
	// Checks names the checks to run (CheckNames); all when empty. The
	// modules check always runs: the others resolve addresses into the
	// hidden modules it finds.
	Checks []string
	// ModuleDirs are searched for module .ko files (by name) whose text the
	// text check compares with the loaded modules'; none when empty.
	ModuleDirs []string
}

// Context is what every check reads. Checks other than modules run
// concurrently and must only read it (Resolver is safe to share).
type Context struct {
	K *kernel.Kernel
	// Modules is the modules list; ModulesErr is set when the list could
	// not be read wholly (Modules then holds what could be).
	Modules    []kernel.Module
	ModulesErr error
	// Hidden are the modules found outside the list (set by the modules
	// check before the others run).
	Hidden   []kernel.Module
	Resolver *Resolver
	Opts     Options

	mu       sync.Mutex
	warnings []string
}

// Warnf records a problem that does not stop a check.
func (c *Context) Warnf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.warnings = append(c.warnings, fmt.Sprintf(format, args...))
}

type checkFunc func(*Context) ([]Finding, CheckResult)

// needsVmlinuxNote is the Note of what is not checked in dump-only mode
// (kernel.Kernel.FromDump): what compares the kernel with the vmlinux as
// built has nothing to compare with.
func needsVmlinuxNote(what string) string {
	return "not checked: needs the vmlinux (" + what + "; types and symbols were read from the dump)"
}

// The checks, in report order. The first is run before the rest. Those
// with an x86Only reason are reported unsupported on other architectures.
var checks = []struct {
	name    string
	run     checkFunc
	x86Only string
}{
	{"modules", checkModules, ""},
	{"syscalls", checkSyscalls, "x86_64 system call tables, compared with the vmlinux's link-time entries"},
	{"idt", checkIDT, "the x86 interrupt descriptor table"},
	{"ftrace", checkFtrace, ""},
	{"kprobes", checkKprobes, ""},
	// arm64's vmlinux is position-independent: its link-time pointers are
	// R_AARCH64_RELATIVE relocations applied at boot, 0 in the file.
	{"seq_ops", checkSeqOps, "compares pointers with the vmlinux's link-time values, which arm64 relocates at boot"},
	{"text", checkText, "x86 instruction decoding and patch sites"},
	{"taint", checkTaint, ""},
}

// CheckNames lists the checks Run knows, in report order.
func CheckNames() []string {
	out := make([]string, len(checks))
	for i, c := range checks {
		out[i] = c.name
	}
	return out
}

// Run runs the checks on k. An error means the checks could not start (no
// symbols, no kernel image bounds); a check that fails on its own is
// reported in its CheckResult and the others go on.
func Run(k *kernel.Kernel, opts Options) (*Report, error) {
	if !k.HasTypes() {
		return nil, fmt.Errorf("forensics: %s: the checks need the vmlinux's symbols and types", k.Path())
	}
	for _, n := range opts.Checks {
		if !slices.Contains(CheckNames(), n) {
			return nil, fmt.Errorf("forensics: unknown check %q (known: %v)", n, CheckNames())
		}
	}
	c := &Context{K: k, Opts: opts}
	c.Modules, c.ModulesErr = k.Modules()
	res, err := NewResolver(k, c.Modules)
	if err != nil {
		return nil, err
	}
	c.Resolver = res

	results := make([]CheckResult, len(checks))
	found := make([][]Finding, len(checks))
	arch := k.Layout().Arch
	run := func(i int) {
		if checks[i].x86Only != "" && arch != "x86_64" {
			results[i] = CheckResult{Check: checks[i].name, Status: StatusUnsupported,
				Note: fmt.Sprintf("not supported on %s: %s", arch, checks[i].x86Only)}
			return
		}
		found[i], results[i] = checks[i].run(c)
		results[i].Check = checks[i].name
		if results[i].Status == "" {
			results[i].Status = StatusClean
			for _, f := range found[i] {
				if f.Severity > Info {
					results[i].Status = StatusFindings
					break
				}
			}
		}
		for j := range found[i] {
			found[i][j].Check = checks[i].name
		}
	}
	run(0)
	for _, h := range c.Hidden {
		res.AddHidden(h)
	}
	// The text check reads megabytes; the table checks a few pages each.
	// Two goroutines use the two cores without contending for the dump.
	wanted := func(i int) bool { return len(opts.Checks) == 0 || slices.Contains(opts.Checks, checks[i].name) }
	var wg sync.WaitGroup
	var heavy, light []int
	for i := 1; i < len(checks); i++ {
		if !wanted(i) {
			continue
		}
		if checks[i].name == "text" {
			heavy = append(heavy, i)
		} else {
			light = append(light, i)
		}
	}
	for _, group := range [][]int{heavy, light} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, i := range group {
				run(i)
			}
		}()
	}
	wg.Wait()

	rep := &Report{Schema: SchemaVersion, Release: k.Release(), Findings: []Finding{}, HiddenModules: c.Hidden}
	order := map[string]int{}
	for i := range checks {
		order[checks[i].name] = i
		if i == 0 || wanted(i) {
			rep.Checks = append(rep.Checks, results[i])
			rep.Findings = append(rep.Findings, found[i]...)
		}
	}
	sortFindings(rep.Findings, order)
	rep.Warnings = append(c.warnings, res.Warnings()...)
	return rep, nil
}
