package forensics_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/forensics"
	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/testkernel"
)

// moduleDirs are where a fixture's module .ko files are: the kernel's
// debuginfo (Debian's -dbg: the in-tree modules, unstripped) and the lab's
// builds of the lab's own modules next to the kernel: the test modules
// (test-modules-<key>/) and LiME's two copies (lime-modules-<key>/).
func moduleDirs(m *fixture.Manifest) []string {
	dirs := []string{m.Path(m.DebuginfoDir)}
	for _, pat := range []string{"test-modules-*", "lime-modules-*"} {
		built, _ := filepath.Glob(filepath.Join(m.Path(filepath.Dir(m.KernelJSON)), pat))
		dirs = append(dirs, built...)
	}
	return dirs
}

// runModText runs the text check with the fixture's .ko files.
func runModText(t testing.TB, m *fixture.Manifest, d fixture.DumpFile) (*forensics.Report, forensics.CheckResult) {
	t.Helper()
	k := testkernel.Open(t, m, d)
	rep, err := forensics.Run(k, forensics.Options{Checks: []string{"text"}, ModuleDirs: moduleDirs(m)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rep.Checks {
		if c.Check == "text" {
			return rep, c
		}
	}
	t.Fatal("no text check result")
	return nil, forensics.CheckResult{}
}

// On every clean fixture (5.10, 6.1, 6.12, 7.2) the text of every listed
// module is compared with its .ko — the in-tree modules' from the
// kernel's -dbg package, the test modules' from the lab's builds — and
// every difference is the kernel's own patching of the module, explained
// from the module's tables: no module is left out, none differs.
func TestModuleTextCleanFixtures(t *testing.T) {
	for _, m := range fixture.All(t) {
		if m.Rootkit != nil {
			continue
		}
		d := textDump(m)
		t.Run(m.Name+"/"+d.File, func(t *testing.T) {
			rep, res := runModText(t, m, d)
			t.Logf("text: %s, %d bytes checked, note %q", res.Status, res.Checked, res.Note)
			if res.Status != forensics.StatusClean {
				t.Errorf("text: %s (%s)", res.Status, res.Note)
			}
			compared := false
			for _, f := range rep.Findings {
				if f.Check != "text" {
					continue
				}
				if f.Severity > forensics.Info {
					t.Errorf("%s %s %s at %#x (%s, module %q) -> %s\n  %v", f.Severity, f.Kind, f.Summary, f.Addr, f.Symbol, f.Module, f.TargetName, f.Evidence)
					continue
				}
				if f.Kind != "module-text" && !strings.HasPrefix(f.Symbol, "modules: ") {
					continue
				}
				t.Logf("%s", f.Summary)
				if strings.Contains(f.Summary, "not checked") {
					t.Errorf("%s\n  %s", f.Summary, strings.Join(f.Evidence, "\n  "))
				}
				if strings.HasPrefix(f.Summary, "text of ") {
					compared = true
					for _, e := range f.Evidence {
						if strings.Contains(e, "not compared") {
							t.Errorf("partly compared: %s", e)
						}
					}
				}
			}
			if !compared {
				t.Errorf("no module's text was compared")
			}
		})
	}
}
