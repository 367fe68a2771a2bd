package modules_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/oracle"
	"github.com/vmleak/vmleak/internal/testkernel"
	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/modules"
)

// kernelDir is the fixture kernel's extracted tree: Debian's -dbg modules
// under usr/lib/debug, and the test module's .ko at its top.
func kernelDir(m *fixture.Manifest) string { return filepath.Dir(m.Path(m.KernelJSON)) }

// crashFile is the crash output for a dump file: crash read flattened
// streams through their rearranged twin.
func crashFile(d fixture.DumpFile, cmd string) string {
	return "crash/" + strings.Replace(d.File, "flat-", "", 1) + "." + cmd
}

// compared counts the oracles the checks met, so that a check that found
// nothing to compare with fails instead of passing.
type compared struct{ crashMod, crashSys, kernelLog, params int }

// Every dump file of every fixture (6.1, 6.12, 7.2) is opened and read
// once; the checks below run on that report.
func TestRealDumps(t *testing.T) {
	var n compared
	for _, m := range fixture.All(t) {
		for i, d := range m.Dumps {
			t.Run(m.Name+"/"+d.File, func(t *testing.T) {
				k := testkernel.Open(t, m, d)
				// The first file of each fixture also looks for debuginfo:
				// the files of one fixture hold the same memory.
				rep, err := modules.Read(k, modules.Options{DebugDirs: []string{kernelDir(m)}, SkipDebuginfo: i > 0})
				if err != nil {
					t.Fatal(err)
				}
				if rep.Partial || len(rep.Warnings) > 0 {
					t.Errorf("partial %v, warnings %q", rep.Partial, rep.Warnings)
				}
				t.Run("proc-modules", func(t *testing.T) { checkProcModules(t, m, d, rep, i == 0) })
				t.Run("crash-mod", func(t *testing.T) { checkCrashMod(t, m, d, rep, &n) })
				t.Run("taint", func(t *testing.T) { checkTaint(t, m, d, k, rep, &n) })
				t.Run("params", func(t *testing.T) { checkTestModuleParams(t, m, d, rep, &n) })
			})
		}
	}
	if n.crashMod == 0 || n.crashSys == 0 || n.kernelLog == 0 || n.params == 0 {
		t.Errorf("compared with %+v oracles; want some of each", n)
	}
}

// The report equals the guest's /proc/modules captured just before the
// dump, line by line: names and order, sizes, refcounts, users, states,
// base addresses and taint flags. With debuginfo, every module's is found,
// by the build-id the dump holds.
func checkProcModules(t *testing.T, m *fixture.Manifest, d fixture.DumpFile, rep *modules.Report, debuginfo bool) {
	want, err := oracle.ParseModules(m.Oracle(t, d.Oracle+".modules"))
	if err != nil {
		t.Fatal(err)
	}
	if len(want) == 0 {
		t.Fatal("the guest's /proc/modules lists no module")
	}
	var haveNames, wantNames []string
	for _, mo := range rep.Modules {
		haveNames = append(haveNames, mo.Name)
	}
	for _, w := range want {
		wantNames = append(wantNames, w.Name)
	}
	if !slices.Equal(haveNames, wantNames) {
		t.Fatalf("modules %v, /proc/modules %v", haveNames, wantNames)
	}
	for j, w := range want {
		have := rep.Modules[j]
		if len(have.Errors) > 0 {
			t.Errorf("%s: %q", have.Name, have.Errors)
		}
		if have.Size != uint64(w.Size) {
			t.Errorf("%s: size %d, /proc/modules %d", w.Name, have.Size, w.Size)
		}
		if !w.RefcountKnown || have.Refcount == nil || *have.Refcount != w.Refcount {
			t.Errorf("%s: refcount %s, /proc/modules %d (known %v)", w.Name, refString(have.Refcount), w.Refcount, w.RefcountKnown)
		}
		usedBy := slices.Clone(have.UsedBy)
		if have.Permanent {
			usedBy = append(usedBy, "[permanent]")
		}
		if !slices.Equal(usedBy, w.UsedBy) && (len(usedBy) > 0 || len(w.UsedBy) > 0) {
			t.Errorf("%s: used by %q, /proc/modules %q", w.Name, usedBy, w.UsedBy)
		}
		if have.State != w.State {
			t.Errorf("%s: state %s, /proc/modules %s", w.Name, have.State, w.State)
		}
		if uint64(have.Base) != w.Addr {
			t.Errorf("%s: base %#x, /proc/modules %#x", w.Name, uint64(have.Base), w.Addr)
		}
		if flags := strings.TrimSuffix(strings.TrimPrefix(have.TaintFlags, "("), ")"); flags != w.Taints {
			t.Errorf("%s: taint flags %q, /proc/modules %q", w.Name, have.TaintFlags, w.Taints)
		}
		if have.BuildID == "" {
			t.Errorf("%s: no build-id: %s", w.Name, have.BuildIDError)
		}
		if debuginfo && have.Debuginfo == "" {
			t.Errorf("%s: no debuginfo: %s", w.Name, have.DebuginfoError)
		}
		var sum uint64
		for _, r := range have.Regions {
			sum += r.Size
		}
		if sum != have.Size || len(have.Regions) == 0 {
			t.Errorf("%s: regions %+v do not add up to size %d", w.Name, have.Regions, have.Size)
		}
	}
}

// crash's `mod` (5.10 and 6.1 dumps) names the same struct module, base and size.
func checkCrashMod(t *testing.T, m *fixture.Manifest, d fixture.DumpFile, rep *modules.Report, n *compared) {
	if !m.HasOracle(crashFile(d, "mod")) {
		if m.CrashReads() {
			t.Errorf("no crash output %s for a %s dump", crashFile(d, "mod"), m.KernelRelease)
		}
		return // crash cannot read this kernel
	}
	byName := map[string]modules.Module{}
	for _, mo := range rep.Modules {
		byName[mo.Name] = mo
	}
	rows := 0
	for _, l := range strings.Split(m.Oracle(t, crashFile(d, "mod")), "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || f[0] == "MODULE" {
			continue
		}
		rows++
		mod, err1 := strconv.ParseUint(f[0], 16, 64)
		base, err2 := strconv.ParseUint(f[2], 16, 64)
		size, err3 := strconv.ParseUint(f[3], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatalf("crash mod line %q", l)
		}
		have, ok := byName[f[1]]
		if !ok {
			t.Errorf("crash lists %s, vmleak does not", f[1])
			continue
		}
		if uint64(have.Addr) != mod || uint64(have.Base) != base || have.Size != size {
			t.Errorf("%s: module %#x base %#x size %d, crash %#x %#x %d", f[1], uint64(have.Addr), uint64(have.Base), have.Size, mod, base, size)
		}
	}
	if rows != len(rep.Modules) {
		t.Errorf("crash lists %d modules, vmleak %d", rows, len(rep.Modules))
	}
	n.crashMod++
}

// The kernel's taint: the characters come from the dump's own
// taint_flags, the string has print_tainted()'s shape and agrees with what
// the modules carry; where crash's `sys` ran (6.1) its [TAINTED] mark
// agrees; where the kernel printed its taint itself (the kdump fixture's
// panic: "CPU: 0 PID: 1 Comm: init Kdump: loaded Tainted: G ... <release>"),
// the string is the kernel's.
func checkTaint(t *testing.T, m *fixture.Manifest, d fixture.DumpFile, k *kernel.Kernel, rep *modules.Report, n *compared) {
	tt := rep.Taint
	if tt.Table != "taint_flags" || tt.Error != "" {
		t.Errorf("taint table %q, error %q", tt.Table, tt.Error)
	}
	var carried uint64
	for _, mo := range rep.Modules {
		carried |= mo.Taints
	}
	if carried&^tt.Mask != 0 {
		t.Errorf("modules carry %#x, tainted_mask %#x", carried, tt.Mask)
	}
	if m.TestModule != nil && carried == 0 {
		t.Errorf("the out-of-tree, unsigned test module is loaded but no module is tainted")
	}
	if tt.Mask == 0 {
		if tt.String != "Not tainted" || len(tt.Flags) != 0 {
			t.Errorf("mask 0: %q, flags %+v", tt.String, tt.Flags)
		}
	} else {
		flags, ok := strings.CutPrefix(tt.String, "Tainted: ")
		if !ok || flags[0] != 'G' && flags[0] != 'P' {
			t.Errorf("taint string %q", tt.String)
		}
		for _, f := range tt.Flags {
			if f.Bit >= len(flags) || string(flags[f.Bit]) != f.Char || f.Char == " " || f.Name == "" {
				t.Errorf("bit %d %+v in %q", f.Bit, f, tt.String)
			}
			for _, name := range f.Modules {
				i := slices.IndexFunc(rep.Modules, func(mo modules.Module) bool { return mo.Name == name })
				if i < 0 || !strings.Contains(rep.Modules[i].TaintFlags, f.Char) {
					t.Errorf("%s carries %s but shows %q", name, f.Char, rep.Modules[i].TaintFlags)
				}
			}
		}
	}
	if sys := crashFile(d, "sys"); m.HasOracle(sys) {
		marked := false
		for _, l := range strings.Split(m.Oracle(t, sys), "\n") {
			if strings.Contains(l, "KERNEL:") {
				marked = strings.Contains(l, "[TAINTED]")
			}
		}
		if marked != (tt.Mask != 0) {
			t.Errorf("crash sys [TAINTED] %v, tainted_mask %#x", marked, tt.Mask)
		}
		n.crashSys++
	}
	recs, err := k.Log()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		// dump_stack_print_info: "CPU: %d PID: %d Comm: %.20s %s%s %.*s",
		// print_tainted() then the release.
		if i := strings.Index(r.Text, " Tainted: "); i >= 0 && strings.Contains(r.Text, " Comm: ") {
			if want := tt.String + " " + k.Release(); !strings.Contains(r.Text[i+1:], want) {
				t.Errorf("the kernel printed %q, vmleak %q", r.Text, want)
			}
			n.kernelLog++
		}
	}
}

// The test module's parameters (6.1 guests) hold what the guest's sysfs
// said they held; its callback parameters are named by their ops, which
// only the module's own kallsyms knows.
func checkTestModuleParams(t *testing.T, m *fixture.Manifest, d fixture.DumpFile, rep *modules.Report, n *compared) {
	if m.TestModule == nil {
		return
	}
	want, err := oracle.ParseKeyValues(m.Oracle(t, d.Oracle+".test-module"))
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(rep.Modules, func(mo modules.Module) bool { return mo.Name == m.TestModule.Module })
	if i < 0 {
		t.Fatalf("no module %s", m.TestModule.Module)
	}
	params := map[string]modules.Param{}
	for _, p := range rep.Modules[i].Params {
		params[p.Name] = p
	}
	for _, name := range []string{"nobj", "leak", "leak_size", "bss", "bss_size"} {
		p, ok := params[name]
		switch {
		case !ok:
			t.Errorf("no parameter %s", name)
		case p.Ops != "param_ops_uint" || p.Perm != "0444" || p.Value == nil || *p.Value != fmt.Sprint(want[name]):
			t.Errorf("%s: %+v (value %s), sysfs %d", name, p, deref(p.Value), want[name])
		}
	}
	for name, ops := range map[string]string{"allocated": "allocated_ops", "grow": "grow_ops"} {
		if p := params[name]; p.Ops != ops || p.Value != nil {
			t.Errorf("%s: %+v, want ops %s and no value", name, p, ops)
		}
	}
	if len(params) != 7 {
		t.Errorf("%d parameters, the module has 7", len(params))
	}
	n.params++
}

func refString(p *int64) string {
	if p == nil {
		return "<nil>"
	}
	return strconv.FormatInt(*p, 10)
}

func deref(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}
