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
		if m.Rootkit != nil {
			continue // text_rootkit_test.go
		}
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

// On the filtered kdump (makedumpfile -d 31: zero, cache, user and free
// pages dropped) the kernel's text is all there: text pages are none of
// those (and no page of text is all zeros), so the check examines every
// byte and is as clean as on the unfiltered ELF of the same crash.
func TestTextFilteredKdump(t *testing.T) {
	m := fixture.Load(t, "bookworm-kdump")
	var lzo, elf fixture.DumpFile
	for _, d := range m.Dumps {
		switch {
		case d.Format == "kdump" && d.Compression == "lzo":
			lzo = d
		case d.Format == "elf":
			elf = d
		}
	}
	results := map[string]forensics.CheckResult{}
	for _, d := range []fixture.DumpFile{lzo, elf} {
		rep := runText(t, m, d)
		for _, c := range rep.Checks {
			if c.Check == "text" {
				results[d.File] = c
			}
		}
		for _, f := range rep.Findings {
			if f.Check == "text" && f.Severity > forensics.Info {
				t.Errorf("%s: %s %s", d.File, f.Severity, f.Summary)
			}
		}
	}
	a, b := results[lzo.File], results[elf.File]
	if a.Status != forensics.StatusClean || a.Skipped != 0 || a.Checked != b.Checked || a.Checked == 0 {
		t.Errorf("%s: %+v; %s: %+v", lzo.File, a, elf.File, b)
	}
}

// BenchmarkTextCheck times the text check (and the modules list and
// resolver Run sets up) on the 1 GiB ELF kdump.
func BenchmarkTextCheck(b *testing.B) {
	m := fixture.Load(b, "bookworm-kdump")
	var d fixture.DumpFile
	for _, f := range m.Dumps {
		if f.Format == "elf" {
			d = f
		}
	}
	k := testkernel.Open(b, m, d)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := forensics.Run(k, forensics.Options{Checks: []string{"text"}}); err != nil {
			b.Fatal(err)
		}
	}
}
