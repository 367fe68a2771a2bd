package forensics_test

import (
	"fmt"
	"testing"

	"github.com/vmleak/vmleak/forensics"
	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/testkernel"
)

// textDump picks one file of a fixture: kdump/zlib when it has one, else
// ELF, else the first.
func textDump(m *fixture.Manifest) fixture.DumpFile {
	for _, want := range []struct{ format, comp string }{{"kdump", "zlib"}, {"elf", "none"}} {
		for _, d := range m.Dumps {
			if d.Format == want.format && d.Compression == want.comp {
				return d
			}
		}
	}
	return m.Dumps[0]
}

func runText(t testing.TB, m *fixture.Manifest, d fixture.DumpFile) *forensics.Report {
	t.Helper()
	k := testkernel.Open(t, m, d)
	rep, err := forensics.Run(k, forensics.Options{Checks: []string{"text"}})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestTextCleanFixtures(t *testing.T) {
	for _, m := range fixture.All(t) {
		d := textDump(m)
		t.Run(m.Name+"/"+d.File, func(t *testing.T) {
			rep := runText(t, m, d)
			for _, c := range rep.Checks {
				if c.Check == "text" {
					t.Logf("text: %s, %d bytes checked, note %q", c.Status, c.Checked, c.Note)
				}
			}
			for _, f := range rep.Findings {
				if f.Check != "text" {
					continue
				}
				if f.Severity == forensics.Info {
					t.Logf("%s", f.Summary)
					continue
				}
				t.Errorf("%s %s %s at %#x (%s) -> %s\n  %v", f.Severity, f.Kind, f.Summary, f.Addr, f.Symbol, f.TargetName, f.Evidence)
			}
			for _, w := range rep.Warnings {
				t.Logf("warning: %s", w)
			}
			_ = fmt.Sprint()
		})
	}
}
