package forensics

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/testkernel"
	"github.com/vmleak/vmleak/kernel"
)

// textRootkit is the part of the rootkit fixture's manifest the text check
// is tested against.
type textRootkit struct {
	Module       string `json:"module"`
	StructModule string `json:"struct_module"`
	CoreBase     string `json:"core_base"`
	CoreSize     uint64 `json:"core_size"`
	Patch        struct {
		Addr       string `json:"addr"`
		Function   string `json:"function"`
		TargetAddr string `json:"target_addr"`
	} `json:"patch"`
	Ftrace struct {
		Addr     string `json:"addr"`
		Function string `json:"function"`
		Callback string `json:"callback"`
	} `json:"ftrace"`
	Kprobe struct {
		Addr    string `json:"addr"`
		Symbol  string `json:"symbol"`
		Handler string `json:"handler"`
	} `json:"kprobe"`
}

func hexAddr(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The rootkit fixture (6.1): its module, hidden from the modules list,
// overwrites the ftrace nop at version_proc_show+0 (the kernel's
// proc_version_show) with a jmp into itself, registers a kprobe on
// do_sys_openat2 (a kprobe on ftrace: the function's first instruction is
// its ftrace site) and an ftrace_ops on vfs_statx. The text check reports
// the jmp as an inline hook (High) wherever the module is, and the two
// enabled ftrace sites with the module's handlers: High while the module
// is in no known place (unknown memory: the modules check, which finds
// hidden modules, did not run), Medium, with the module named, once the
// hidden module is known to the resolver.
func TestTextRootkit(t *testing.T) {
	m, err := fixture.LoadManifest("bookworm-rootkit")
	if err != nil {
		t.Skipf("no rootkit fixture: %v", err)
	}
	raw, err := os.ReadFile(filepath.Join(m.Dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var man struct {
		Rootkit textRootkit `json:"rootkit"`
	}
	if err := json.Unmarshal(raw, &man); err != nil {
		t.Fatal(err)
	}
	rk := man.Rootkit
	var d fixture.DumpFile
	for _, f := range m.Dumps {
		if f.Format == "kdump" {
			d = f
		}
	}
	k := testkernel.Open(t, m, d)
	hidden := kernel.Module{Name: rk.Module, Addr: hexAddr(t, rk.StructModule),
		Ranges: []kernel.ModuleRange{{Kind: "text", Base: hexAddr(t, rk.CoreBase), Size: rk.CoreSize}}}

	for _, found := range []bool{false, true} {
		name := "module unknown"
		if found {
			name = "hidden module found"
		}
		t.Run(name, func(t *testing.T) {
			mods, err := k.Modules()
			if err != nil {
				t.Fatal(err)
			}
			res, err := NewResolver(k, mods)
			if err != nil {
				t.Fatal(err)
			}
			c := &Context{K: k, Modules: mods, Resolver: res}
			if found {
				c.Hidden = []kernel.Module{hidden}
				res.AddHidden(hidden)
			}
			fs, cr := checkText(c)
			if cr.Status != "" && cr.Status != StatusFindings {
				t.Errorf("status %q (%s)", cr.Status, cr.Note)
			}
			byAddr := map[uint64]Finding{}
			for _, f := range fs {
				if f.Severity > Info {
					t.Logf("%s %s %s -> %s", f.Severity, f.Kind, f.Summary, f.TargetName)
					byAddr[f.Addr] = f
				}
			}
			if len(byAddr) != 3 {
				t.Errorf("%d findings above info, want 3 (the hook, the kprobe, the ftrace_ops)", len(byAddr))
			}
			hook, ok := byAddr[hexAddr(t, rk.Patch.Addr)]
			switch {
			case !ok:
				t.Errorf("no finding at %s (%s)", rk.Patch.Addr, rk.Patch.Function)
			case hook.Kind != "inline-hook" || hook.Severity != High || hook.Symbol != rk.Patch.Function+"+0x0" ||
				hook.Target != hexAddr(t, rk.Patch.TargetAddr):
				t.Errorf("the hook is %+v", hook)
			case found && (hook.Module != rk.Module || !strings.Contains(hook.TargetName, rk.Module)):
				t.Errorf("the hook's target is %q in %q, want the hidden %s", hook.TargetName, hook.Module, rk.Module)
			case !found && !strings.HasPrefix(hook.TargetName, "unknown memory"):
				t.Errorf("the hook's target is %q, want unknown memory", hook.TargetName)
			}
			for _, want := range []struct{ kind, addr, function, handler string }{
				{"kprobe-site", rk.Kprobe.Addr, rk.Kprobe.Symbol, rk.Kprobe.Handler},
				{"ftrace-site", rk.Ftrace.Addr, rk.Ftrace.Function, rk.Ftrace.Callback},
			} {
				f, ok := byAddr[hexAddr(t, want.addr)]
				sev := High
				if found {
					sev = Medium
				}
				switch {
				case !ok:
					t.Errorf("no finding at %s (%s)", want.addr, want.function)
				case f.Kind != want.kind || f.Severity != sev || f.Symbol != want.function+"+0x0":
					t.Errorf("%s: %s %s at %s, want %s %s", want.function, f.Severity, f.Kind, f.Symbol, sev, want.kind)
				case found && (f.Module != rk.Module || !strings.Contains(f.TargetName, want.handler)):
					t.Errorf("%s: handler %q in %q, want %s:%s", want.function, f.TargetName, f.Module, rk.Module, want.handler)
				}
			}
		})
	}
}
