package forensics_test

import (
	"strings"
	"testing"

	"github.com/vmleak/vmleak/forensics"
	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/testkernel"
)

// cleanFile is the file of a fixture the clean-dump tests read: one per
// dump is enough (the formats are tested to read the same memory), the
// most filtered one where there is a choice, so that "not checked" paths
// meet real missing pages.
func cleanFile(m *fixture.Manifest) fixture.DumpFile {
	best := m.Dumps[0]
	for _, d := range m.Dumps {
		if d.Format == "kdump" && d.Index == 1 {
			return d
		}
	}
	return best
}

// On every clean fixture (5.10 to 7.x), `check` finds nothing above low:
// every view of the modules agrees with the list, every text difference is
// the kernel's own run-time patching, no system call table entry differs
// from the vmlinux,
// every IDT handler is entry code (or the boot handler the kernel leaves on
// reserved vectors), no ftrace ops or kprobe has a handler outside kernel
// text, every seq_operations table equals the vmlinux's. The test modules'
// taint (out-of-tree, unsigned) is low.
func TestCleanFixtures(t *testing.T) {
	for _, m := range fixture.All(t) {
		if m.Rootkit != nil {
			continue
		}
		d := cleanFile(m)
		t.Run(m.Name+"/"+d.File, func(t *testing.T) {
			k := testkernel.Open(t, m, d)
			rep, err := forensics.Run(k, forensics.Options{})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range rep.Checks {
				t.Logf("%-9s %-11s %5d %s", c.Check, c.Status, c.Checked, c.Note)
				if c.Status == forensics.StatusNotChecked || c.Status == forensics.StatusPartial {
					t.Errorf("check %s: %s (%s)", c.Check, c.Status, c.Note)
				}
				if c.Check != "taint" && c.Check != "kprobes" && c.Check != "ftrace" && c.Checked == 0 {
					t.Errorf("check %s examined nothing", c.Check)
				}
			}
			for _, f := range rep.Findings {
				t.Logf("%s %s %s", f.Severity, f.Kind, f.Summary)
				if f.Severity > forensics.Low {
					t.Errorf("clean dump: %s finding %s: %s", f.Severity, f.Kind, f.Summary)
				}
				if f.Check == "taint" && f.Severity == forensics.Low && m.TestModule != nil &&
					!strings.Contains(f.Summary, m.TestModule.Module) {
					t.Errorf("taint %q does not name the test module", f.Summary)
				}
			}
		})
	}
}
