package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/htmlcheck"
	"github.com/vmleak/vmleak/internal/testkernel"
)

// maxPage is the bound on a report's size: a 200-cache dump's page must
// stay under it.
const maxPage = 1 << 20

// readPage reads a written report and checks that it is well formed and
// under maxPage, logging its size.
func readPage(t *testing.T, path string, caches int) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d bytes, %d caches", filepath.Base(path), len(b), caches)
	if len(b) >= maxPage {
		t.Errorf("page is %d bytes, want < %d", len(b), maxPage)
	}
	counts, err := htmlcheck.Check(string(b))
	if err != nil {
		t.Fatal(err)
	}
	if counts["script"] != 1 || counts["style"] != 1 {
		t.Errorf("%d script and %d style blocks, want one each", counts["script"], counts["style"])
	}
	return string(b)
}

// censusNames are the cache names of the page's census table, in order.
func censusNames(t *testing.T, page string) []string {
	t.Helper()
	i := strings.Index(page, `<table id="census"`)
	if i < 0 {
		t.Fatal("no census table")
	}
	table := page[i:]
	table = table[:strings.Index(table, "</table>")]
	var names []string
	for _, m := range regexp.MustCompile(`<td class="name">([^<]*)</td>`).FindAllStringSubmatch(table, -1) {
		names = append(names, m[1])
	}
	return names
}

// vmleak report works on one dump of every fixture: the page is well
// formed, under 1 MiB, and its census table has every cache of the census.
func TestReportEveryFixture(t *testing.T) {
	dir := t.TempDir()
	for _, m := range fixture.All(t) {
		d := m.Dumps[0]
		t.Run(m.Name+"/"+d.File, func(t *testing.T) {
			out := filepath.Join(dir, m.Name+".html")
			code, _, errs := vmleak(t, "report", m.DumpPath(d), "--vmlinux", m.Vmlinux(), "-o", out)
			if code != ExitOK && code != ExitPartial {
				t.Fatalf("exit %d: %s", code, errs)
			}
			_, cen := testkernel.Census(t, testkernel.Open(t, m, d))
			page := readPage(t, out, len(cen.Caches))
			names := censusNames(t, page)
			if len(names) != len(cen.Caches) {
				t.Errorf("%d census rows, the census has %d caches", len(names), len(cen.Caches))
			}
			if code == ExitPartial && !strings.Contains(page, `id="partial"`) {
				t.Error("exit 5 but the page has no partial results section")
			}
		})
	}
}

// The comparison of every pair fixture; on bookworm-pair the largest
// growth bar is the test module's cache.
func TestReportPairs(t *testing.T) {
	dir := t.TempDir()
	n := 0
	for _, m := range fixture.All(t) {
		var d1, d2 *fixture.DumpFile
		for i := range m.Dumps {
			switch d := &m.Dumps[i]; {
			case d.Index == 1 && d1 == nil:
				d1 = d
			case d.Index == 2 && d2 == nil:
				d2 = d
			}
		}
		if d1 == nil || d2 == nil {
			continue
		}
		n++
		t.Run(m.Name, func(t *testing.T) {
			out := filepath.Join(dir, m.Name+"-cmp.html")
			code, _, errs := vmleak(t, "report", m.DumpPath(*d1), m.DumpPath(*d2), "--vmlinux", m.Vmlinux(), "-o", out)
			if code != ExitOK {
				t.Fatalf("exit %d: %s", code, errs)
			}
			page := readPage(t, out, -1)
			bars := regexp.MustCompile(`<g class="bar (grow|shrink)" data-label="([^"]*)" data-value="(-?\d+)"`).FindAllStringSubmatch(page, -1)
			if len(bars) == 0 {
				t.Fatal("no growth bars")
			}
			if m.Name == "bookworm-pair" && (bars[0][2] != m.TestModule.Cache || bars[0][1] != "grow") {
				t.Errorf("top bar %q (%s), want the test module's cache %s", bars[0][2], bars[0][1], m.TestModule.Cache)
			}
		})
	}
	if n == 0 {
		fixture.Missing(t, "a before/after pair", "bookworm-pair")
	}
}

// A dump cut short: the page lists the caches whose slabs are missing, as
// the census counts them, and the command exits 5.
func TestReportPartial(t *testing.T) {
	m := fixture.Load(t, "bookworm-kdump")
	d := dumpOf(t, m, "kdump.zlib")
	truncated := truncatedCopy(t, m.DumpPath(d), 2<<20)
	out := filepath.Join(t.TempDir(), "partial.html")
	code, _, errs := vmleak(t, "report", truncated, "--vmlinux", m.Vmlinux(), "-o", out, "--no-leaks")
	if code != ExitPartial {
		t.Fatalf("exit %d (want %d): %s", code, ExitPartial, errs)
	}
	page := readPage(t, out, -1)
	i := strings.Index(page, `id="partial-caches"`)
	if i < 0 {
		t.Fatal("no partial caches table")
	}
	table := page[i:]
	table = table[:strings.Index(table, "</table>")]
	rows := regexp.MustCompile(`<tr data-cache="[^"]*"><td>[^<]*</td><td class="n">(\d+)</td>`).FindAllStringSubmatch(table, -1)
	partial := regexp.MustCompile(`partial: slabs missing from the dump in `).FindStringIndex(errs)
	if len(rows) == 0 || partial == nil {
		t.Fatalf("%d partial caches on the page; stderr:\n%s", len(rows), errs)
	}
	if !strings.Contains(page, "Not scanned: --no-leaks") {
		t.Error("the skipped leak scan is not said")
	}
}

// Usage errors.
func TestReportUsage(t *testing.T) {
	for _, args := range [][]string{{"report", "x"}, {"report", "a", "b", "c", "-o", "x.html"}, {"report", "a", "b", "-o", "x.html", "--no-leaks"}} {
		if code, _, errs := vmleak(t, args...); code != ExitUsage {
			t.Errorf("%v: exit %d (want %d): %s", args, code, ExitUsage, errs)
		}
	}
}
