package main

import (
	"encoding/csv"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/synth"
)

// hostileName is a cache name crafted to break every output: a terminal
// escape, a newline (a new row), spaces (new columns), a comma and a quote
// (CSV), a pipe (a Markdown cell), markup.
const hostileName = "evil\x1b[31m a,b\"|c\n<i>x</i>"

// A crafted cache name comes out escaped in every format: no control
// byte reaches the output, the row and column counts of text, slabinfo and
// CSV do not change, JSON carries the same escaped name, and a Markdown
// diff keeps its table shape.
func TestHostileCacheName(t *testing.T) {
	sk := synth.New(synth.Config{Version: synth.V6_1, SlubDebug: true})
	for _, name := range []string{"kmalloc-64", hostileName} {
		sk.AddCache(synth.CacheSpec{Name: name, ObjectSize: 64, Size: 64, Order: 0,
			Slabs: []synth.SlabSpec{{Place: synth.Full}}})
	}
	args := synthDump(t, sk)
	clean := func(what, out string) {
		t.Helper()
		if strings.ContainsFunc(out, func(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' || r == 0x7f }) {
			t.Errorf("%s: a control byte reaches the output:\n%q", what, out)
		}
	}
	run := func(what string, a ...string) string {
		t.Helper()
		code, out, errs := vmleak(t, append(a, args...)...)
		// A synthetic kernel has no meminfo counters or modules: a summary
		// of it is partial.
		if code != ExitOK && !(code == ExitPartial && what == "summary") {
			t.Fatalf("%s: exit %d: %s", what, code, errs)
		}
		clean(what, out)
		return out
	}

	// slabs text: one row per cache, every row with as many fields as the
	// kmalloc-64 row.
	out := run("slabs", "slabs")
	rows := map[int]int{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		rows[len(strings.Fields(l))]++
	}
	if len(rows) != 1 {
		t.Errorf("slabs rows have different field counts %v:\n%s", rows, out)
	}
	// slabinfo: the name is the first field, 16 fields a row as in /proc/slabinfo 2.1.
	out = run("slabinfo", "slabinfo")
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(l, "#") || strings.HasPrefix(l, "slabinfo") {
			continue
		}
		if n := len(strings.Fields(l)); n != 16 {
			t.Errorf("slabinfo row has %d fields: %q", n, l)
		}
	}
	// CSV: a header and two records, the name one field.
	out = run("slabs --csv", "slabs", "--csv")
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(recs) != 3 {
		t.Fatalf("CSV: %v, %d records:\n%s", err, len(recs), out)
	}
	// JSON: the census carries the escaped name; it round-trips.
	out = run("json", "slabs", "--json")
	var cen struct{ Caches []struct{ Name string } }
	if err := json.Unmarshal([]byte(out), &cen); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cen.Caches {
		names = append(names, c.Name)
	}
	want := `evil\x1b[31m\x20a,b"|c\x0a<i>x</i>`
	if !strings.Contains(strings.Join(names, "\n"), want) {
		t.Errorf("JSON names %q, want one %q", names, want)
	}
	// A Markdown diff of two summaries: every table row has the header's
	// number of cells.
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	run("summary", "summary", "-o", a)
	run("summary", "summary", "-o", b)
	code, md, errs := vmleak(t, "diff", a, b, "--markdown", "--all")
	if code != ExitOK && code != ExitPartial {
		t.Fatalf("diff: exit %d %s", code, errs)
	}
	clean("markdown", md)
	if !strings.Contains(md, `evil\x1b[31m\x20a,b"\|c\x0a<i>x</i>`) {
		t.Errorf("the Markdown diff does not list the cache, escaped:\n%s", md)
	}
	cells := -1
	for _, l := range strings.Split(md, "\n") {
		if !strings.HasPrefix(l, "|") {
			cells = -1
			continue
		}
		n := strings.Count(strings.ReplaceAll(l, `\|`, ""), "|")
		if cells >= 0 && n != cells {
			t.Errorf("Markdown row with %d cell borders, the table has %d: %q", n, cells, l)
		}
		cells = n
	}
}
