package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/forensics"
	"github.com/vmleak/vmleak/internal/fixture"
)

// The rootkit dump exits 7 with its findings and the hidden module's memory
// in the JSON; its clean twin (same kernel, same test modules) exits 0; the
// filtered kdump of a clean kernel is clean too, not partial (makedumpfile
// -d 31 keeps kernel text and module memory).
func TestCheckExitCodes(t *testing.T) {
	rk := fixture.Load(t, "bookworm-rootkit")
	code, out, errs := vmleak(t, "check", rk.DumpPath(dumpOf(t, rk, "qemu1.zlib")), "--vmlinux", rk.Vmlinux(), "--json")
	if code != ExitFindings {
		t.Fatalf("rootkit: exit %d, want %d\n%s", code, ExitFindings, errs)
	}
	var rep forensics.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, f := range rep.Findings {
		if f.Severity == forensics.High {
			kinds[f.Kind] = true
		}
	}
	for _, k := range []string{"hidden-module", "syscall-hook", "kprobe-hook", "ftrace-hook", "inline-hook"} {
		if !kinds[k] {
			t.Errorf("rootkit: no high %s finding in the JSON (have %v)", k, kinds)
		}
	}
	if len(rep.Memory) != 1 || rep.Memory[0].Module != rk.Rootkit.Module || rep.Memory[0].Objects != int64(rk.Rootkit.Leak+rk.Rootkit.NObj) {
		t.Errorf("suspect memory %+v", rep.Memory)
	}
	if !strings.Contains(errs, "high-severity finding") {
		t.Errorf("stderr does not say why the exit code: %q", errs)
	}

	for _, c := range []struct{ fixture, file string }{{"bookworm-slubdbg", "qemu1.zlib"}, {"bookworm-kdump", "kdump.lzo"}} {
		m := fixture.Load(t, c.fixture)
		code, out, errs := vmleak(t, "check", m.DumpPath(dumpOf(t, m, c.file)), "--vmlinux", m.Vmlinux())
		if code != ExitOK {
			t.Errorf("%s/%s: exit %d, want 0\n%s%s", c.fixture, c.file, code, out, errs)
		}
		if !strings.Contains(out, "findings: 0 high, 0 medium") {
			t.Errorf("%s/%s: %s", c.fixture, c.file, out)
		}
	}
}
