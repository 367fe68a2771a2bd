package forensics_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/forensics"
	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/testkernel"
)

// rootkitFixture is the dump whose module hides itself and plants hooks,
// with the ground truth the module printed and crash confirmed.
func rootkitFixture(t *testing.T) *fixture.Manifest {
	for _, m := range fixture.All(t) {
		if m.Rootkit != nil {
			return m
		}
	}
	fixture.Missing(t, "a rootkit fixture", "bookworm-rootkit")
	return nil
}

// find returns the findings of one check and kind.
func find(rep *forensics.Report, check, kind string) []forensics.Finding {
	var out []forensics.Finding
	for _, f := range rep.Findings {
		if f.Check == check && f.Kind == kind {
			out = append(out, f)
		}
	}
	return out
}

// On every file of the rootkit dump, every planted hook and the hidden
// module are reported, high, with the targets the module printed; the
// hidden module's leaked slab memory is counted from its allocation
// tracks; and nothing else (the two clean test modules, the kernel's own
// run-time patching) is high.
func TestRootkitFindings(t *testing.T) {
	m := rootkitFixture(t)
	rk := m.Rootkit
	for _, d := range m.Dumps {
		t.Run(d.File, func(t *testing.T) {
			k := testkernel.Open(t, m, d)
			rep, err := forensics.Run(k, forensics.Options{})
			if err != nil {
				t.Fatal(err)
			}
			hidden := find(rep, "modules", "hidden-module")
			if len(hidden) != 1 || hidden[0].Module != rk.Module || hidden[0].Addr != uint64(rk.StructModule) || hidden[0].Severity != forensics.High {
				t.Fatalf("hidden modules: %+v, want %s at %#x", hidden, rk.Module, rk.StructModule)
			}
			if len(rep.HiddenModules) != 1 {
				t.Fatalf("HiddenModules %+v", rep.HiddenModules)
			}
			if _, ok := rep.HiddenModules[0].Contains(uint64(rk.CoreBase) + rk.CoreSize - 1); !ok {
				t.Errorf("hidden module's ranges %+v miss its core %#x+%#x", rep.HiddenModules[0].Ranges, rk.CoreBase, rk.CoreSize)
			}
			named := func(what string, f forensics.Finding, target uint64, fn string) {
				t.Helper()
				want := rk.Module + ":" + fn + "+0x0 (hidden module)"
				if f.Severity != forensics.High || f.Target != target || f.TargetName != want || f.Module != rk.Module {
					t.Errorf("%s: %s %#x %q module %q; want high %#x %q", what, f.Severity, f.Target, f.TargetName, f.Module, target, want)
				}
			}
			sc := find(rep, "syscalls", "syscall-hook")
			if len(sc) != 1 || sc[0].Addr != uint64(rk.Syscall.Entry) || sc[0].Symbol != fmt.Sprintf("sys_call_table[%d]", rk.Syscall.NR) ||
				!strings.Contains(sc[0].Summary, "("+rk.Syscall.Name+")") {
				t.Fatalf("syscall hooks: %+v", sc)
			}
			named("syscall hook", sc[0], uint64(rk.Syscall.New), rk.Syscall.Hook)
			kp := find(rep, "kprobes", "kprobe-hook")
			if len(kp) != 1 || kp[0].Addr != uint64(rk.Kprobe.Addr) || !strings.HasPrefix(kp[0].Symbol, rk.Kprobe.Symbol+"+") {
				t.Fatalf("kprobe hooks: %+v", kp)
			}
			named("kprobe", kp[0], uint64(rk.Kprobe.HandlerAddr), rk.Kprobe.Handler)
			ft := find(rep, "ftrace", "ftrace-hook")
			if len(ft) != 1 || ft[0].Addr != uint64(rk.Ftrace.Ops) || !strings.Contains(ft[0].Evidence[0], rk.Ftrace.Function+"+0x0") {
				t.Fatalf("ftrace hooks: %+v", ft)
			}
			named("ftrace ops", ft[0], uint64(rk.Ftrace.CallbackAddr), rk.Ftrace.Callback)
			ih := find(rep, "text", "inline-hook")
			if len(ih) != 1 || ih[0].Addr != uint64(rk.Patch.Addr) || ih[0].Symbol != rk.Patch.Function+"+0x0" {
				t.Fatalf("inline hooks: %+v", ih)
			}
			named("inline hook", ih[0], uint64(rk.Patch.TargetAddr), rk.Patch.Target)
			for _, f := range rep.Findings {
				if f.Severity >= forensics.Medium && f.Module != rk.Module {
					t.Errorf("finding not about the rootkit: %s %s %s", f.Severity, f.Kind, f.Summary)
				}
			}
			if got := rep.SuspectModules(); len(got) != 1 || got[0] != rk.Module {
				t.Errorf("suspects %v", got)
			}

			// Its slab memory: the leaks of vmleak_rootkit_stash, from the
			// allocation tracks (slub_debug=U) into the hidden module.
			w, c := testkernel.Census(t, k)
			if err := forensics.AttachMemory(rep, k, w, c); err != nil {
				t.Fatal(err)
			}
			if len(rep.Memory) != 1 || rep.Memory[0].Module != rk.Module {
				t.Fatalf("memory: %+v", rep.Memory)
			}
			byCache := map[string]int64{}
			for _, cs := range rep.Memory[0].Caches {
				byCache[cs.Cache] += cs.Objects
				if cs.Evidence != "alloc-track" {
					t.Errorf("%s: evidence %q, want the allocation tracks", cs.Cache, cs.Evidence)
				}
			}
			kmalloc := fmt.Sprintf("kmalloc-%d", rk.LeakSize)
			if byCache[kmalloc] != int64(rk.Leak) || byCache[rk.Cache] != int64(rk.NObj) {
				t.Errorf("memory by cache %v, want %s %d and %s %d", byCache, kmalloc, rk.Leak, rk.Cache, rk.NObj)
			}
		})
	}
}
