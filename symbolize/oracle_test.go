package symbolize_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/oracle"
	"github.com/vmleak/vmleak/symbolize"
)

// crashTwin is the non-flattened file crash read for a dump file.
func crashTwin(d fixture.DumpFile) string {
	return strings.Replace(d.File, "flat-", "", 1)
}

// On every 6.1 fixture, crash chose addresses of every kind from its own
// listings (kmem -S, kmem -v, kmem -o, ps, sym, kmem -F) and answered
// `kmem ADDR` for each (oracle/crash/<file>.whatis, written by the fixture
// pipeline): whatis must say the same of each, on every file of that
// capture (the files hold the same memory; a later capture of the same
// boot does not).
func TestWhatisAgainstCrash(t *testing.T) {
	compared := 0
	for _, m := range fixture.All(t) {
		if m.Suite != "bookworm" {
			continue // crash 8.0 cannot read 6.12 and 7.x; see TestWhatisAgainstGuest
		}
		var entries []oracle.WhatisEntry
		capture := 0 // the index of the capture crash was asked about
		for _, d := range m.Dumps {
			name := "crash/" + crashTwin(d) + ".whatis"
			if m.HasOracle(name) {
				var err error
				if entries, err = oracle.ParseWhatis(m.Oracle(t, name)); err != nil {
					t.Fatal(err)
				}
				capture = d.Index
				break
			}
		}
		if entries == nil {
			t.Fatalf("%s: no crash whatis oracle", m.Name)
		}
		for _, d := range m.Dumps {
			if d.Index != capture {
				continue // another capture of the boot: objects came and went since
			}
			t.Run(m.Name+"/"+d.File, func(t *testing.T) {
				_, s := open(t, m, d)
				for _, e := range entries {
					r := s.Identify(e.Addr)
					if err := agreesWithCrash(e, r); err != nil {
						t.Errorf("%s %#x: %v\nvmleak: %s: %s (error %q)", e.Kind, e.Addr, err, r.Kind, r.What, r.Error)
					}
					compared++
				}
			})
		}
	}
	if compared == 0 {
		t.Fatal("no address was compared with crash")
	}
	t.Logf("%d addresses compared with crash", compared)
}

// agreesWithCrash checks a result against the facts crash gave.
func agreesWithCrash(e oracle.WhatisEntry, r symbolize.Result) error {
	fact := func(k string) string { v, _ := e.Fact(k); return v }
	hex := func(k string) uint64 {
		v, err := e.Hex(k)
		if err != nil {
			return ^uint64(0)
		}
		return v
	}
	want := func(kind string) error {
		if r.Kind != kind {
			return fmt.Errorf("kind %s, crash says %s", r.Kind, kind)
		}
		return nil
	}
	switch e.Kind {
	case "slab-allocated", "slab-free":
		if err := want(symbolize.KindSlab); err != nil {
			return err
		}
		o := r.Object
		switch {
		case o.Cache != fact("cache"):
			return fmt.Errorf("cache %s, crash says %s", o.Cache, fact("cache"))
		case o.Addr != hex("object"):
			return fmt.Errorf("object %#x, crash says %#x", o.Addr, hex("object"))
		case o.Slab != hex("slab"):
			return fmt.Errorf("slab %#x, crash says %#x", o.Slab, hex("slab"))
		case o.Allocated != (fact("state") == "allocated"):
			return fmt.Errorf("allocated %v, crash says %s", o.Allocated, fact("state"))
		case strings.Contains(fact("crash_note"), "cpu") && !strings.Contains(o.FreeOn, "cpu"):
			return fmt.Errorf("free on the %s, crash says %s", o.FreeOn, fact("crash_note"))
		}
	case "slab-page":
		if err := want(symbolize.KindPage); err != nil {
			return err
		}
		if p := r.Page; uint64(p.PFN) != hex("pfn") || p.Cache != fact("cache") {
			return fmt.Errorf("pfn %#x of %q, crash says %#x of %q", uint64(p.PFN), p.Cache, hex("pfn"), fact("cache"))
		}
	case "vmalloc":
		if err := want(symbolize.KindVmalloc); err != nil {
			return err
		}
		a := r.Area
		if a == nil || uint64(a.Start) != hex("start") || uint64(a.End) != hex("end") ||
			!strings.HasPrefix(a.Caller, fact("caller")+"+") {
			return fmt.Errorf("area %+v, crash says %s-%s by %s", a, fact("start"), fact("end"), fact("caller"))
		}
	case "module-text", "module-data":
		if err := want(symbolize.KindModule); err != nil {
			return err
		}
		if sym := fact("symbol") + "+" + fact("offset"); r.Module != fact("module") || r.Symbol != sym {
			return fmt.Errorf("%s in %s, crash says %s in %s", r.Symbol, r.Module, sym, fact("module"))
		}
	case "percpu":
		if err := want(symbolize.KindPerCPU); err != nil {
			return err
		}
		if sym := fact("symbol") + "+" + fact("offset"); r.CPU == nil || fmt.Sprint(*r.CPU) != fact("cpu") || r.Symbol != sym {
			return fmt.Errorf("CPU %v %s, crash says CPU %s %s", r.CPU, r.Symbol, fact("cpu"), sym)
		}
	case "stack":
		if err := want(symbolize.KindStack); err != nil {
			return err
		}
		if tk := r.Task; tk == nil || fmt.Sprint(tk.PID) != fact("pid") || tk.Comm != fact("comm") || uint64(tk.Addr) != hex("task") {
			return fmt.Errorf("task %+v, crash says pid %s (%s) task %s", tk, fact("pid"), fact("comm"), fact("task"))
		}
	case "direct-free", "direct-pagecache":
		if err := want(symbolize.KindDirectMap); err != nil {
			return err
		}
		p := r.Page
		if p == nil || uint64(p.PFN) != hex("pfn") {
			return fmt.Errorf("page %+v, crash says pfn %s", p, fact("pfn"))
		}
		if free := strings.Contains(p.State, "free"); free != (e.Kind == "direct-free") {
			return fmt.Errorf("state %q, crash says %s", p.State, fact("state"))
		}
	default:
		return fmt.Errorf("unknown oracle kind")
	}
	return nil
}

// On every fixture, every vmap area the guest's own /proc/vmallocinfo listed
// just before the dump is named with its caller: as a kernel stack when
// a task's stack, as module memory when a module's, else as a vmap area.
// Areas of tasks that ran only for the capture are gone at the dump.
func TestWhatisAgainstGuest(t *testing.T) {
	firstDumps(t, func(t *testing.T, m *fixture.Manifest, d fixture.DumpFile) {
		areas, err := oracle.ParseVmallocinfo(m.Oracle(t, d.Oracle+".vmallocinfo"))
		if err != nil {
			t.Fatal(err)
		}
		_, s := open(t, m, d)
		named, gone := 0, 0
		for _, a := range areas {
			if a.Caller == "" || strings.HasPrefix(a.Caller, "0x") {
				continue // vm_map_ram and unpurged areas have no caller to check
			}
			r := s.Identify(a.Start + 0x10)
			// Kernel stacks are allocated by alloc_thread_stack_node, which
			// the guest prints as its callers once it is inlined.
			stackCaller := slices.Contains([]string{"alloc_thread_stack_node", "dup_task_struct", "copy_process", "kernel_clone", "fork_idle"}, a.Func())
			switch {
			case r.Kind == symbolize.KindStack:
				// A stack of a live task: the guest's area, allocated as one.
				if !stackCaller {
					t.Errorf("%#x (%s): a stack, the guest says %s", a.Start, r.What, a.Caller)
				}
			case r.Kind == symbolize.KindModule:
				if a.Func() != "load_module" && !strings.HasPrefix(a.Func(), "module_") && !strings.Contains(a.Func(), "execmem") {
					t.Errorf("%#x (%s): module memory, the guest says %s", a.Start, r.What, a.Caller)
				}
			case r.Kind == symbolize.KindVmalloc && r.Area == nil:
				if !stackCaller {
					t.Errorf("%#x: in no vmap area, the guest lists %s", a.Start, a.Caller)
				}
				gone++
				continue
			case r.Kind == symbolize.KindVmalloc && m.Rootkit != nil && a.Module == m.Rootkit.Module:
				// The guest names callers in the hidden module (its
				// kallsyms still find it through mod_tree); vmleak, like
				// crash, learns modules from the list: the caller stays an
				// address, in the module's core.
				c, err := strconv.ParseUint(strings.TrimPrefix(r.Area.Caller, "0x"), 16, 64)
				if uint64(r.Area.Start) != a.Start || uint64(r.Area.End) != a.End || err != nil || !m.Rootkit.InCore(fixture.Addr(c)) {
					t.Errorf("%#x-%#x %s (hidden module): whatis says %s", a.Start, a.End, a.Caller, r.What)
				}
			case r.Kind == symbolize.KindVmalloc:
				if uint64(r.Area.Start) != a.Start || uint64(r.Area.End) != a.End || !strings.HasPrefix(r.Area.Caller, a.Func()+"+") {
					t.Errorf("%#x-%#x %s: whatis says %s", a.Start, a.End, a.Caller, r.What)
				}
			default:
				t.Errorf("%#x (%s): %s: %s", a.Start, a.Caller, r.Kind, r.What)
			}
			named++
		}
		if named < 50 {
			t.Errorf("only %d vmap areas checked", named)
		}
		t.Logf("%d vmap areas named as the guest listed them, %d stack areas gone by the dump", named, gone)
	})
}
