package diff_test

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/diff"
	"github.com/vmleak/vmleak/internal/goldenfile"
	"github.com/vmleak/vmleak/internal/summarytest"
	"github.com/vmleak/vmleak/summary"
)

func golden(t *testing.T, name string, have []byte) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", name), have)
}

func compare(t *testing.T, b, a *summary.Summary) *diff.Diff {
	t.Helper()
	d, err := diff.Compare(b, a, diff.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func row(d *diff.Diff, name string) *diff.Cache {
	for i := range d.Caches {
		if d.Caches[i].Name == name {
			return &d.Caches[i]
		}
	}
	return nil
}

// The sample pair: largest growth first, exact deltas, one-sided caches,
// and a partial cache never counted as growth although it looks like it.
func TestCompare(t *testing.T) {
	d := compare(t, summarytest.Before(), summarytest.After())
	var order []string
	for _, c := range d.Caches {
		order = append(order, c.Name+":"+c.Status)
	}
	want := "vmleak_test_obj:changed kmalloc-1k:changed new_cache:appeared dentry:changed kmalloc-4k:changed old_cache:vanished"
	if got := strings.Join(order, " "); got != want {
		t.Errorf("rows %s\nwant %s", got, want)
	}
	top := d.Caches[0]
	if top.Delta == nil || *top.Delta != (diff.Counts{Allocated: 204, Total: 204, Slabs: 12, Bytes: 12 * 4096}) || *top.Ratio != 1.3 {
		t.Errorf("top row %+v delta %+v", top, top.Delta)
	}
	p := row(d, "kmalloc-4k")
	if p.Delta != nil || p.Ratio != nil || p.Partial != "after" || p.Growth() != 0 {
		t.Errorf("partial row %+v: want no delta", p)
	}
	// The after side is partial: old_cache, gone from it, may be one it
	// could not read.
	if v := row(d, "old_cache"); v.Delta != nil || v.Partial != "after" {
		t.Errorf("vanished from a partial side: %+v", v)
	}
	if strings.Join(d.Total.Excluded, ",") != "kmalloc-4k,old_cache" {
		t.Errorf("excluded %v", d.Total.Excluded)
	}
	// 48K + 32K + 12K - 20K: kmalloc-4k's 80K more slabs left out.
	if d.Total.Delta != (12+8+3-5)*4096 {
		t.Errorf("total delta %d", d.Total.Delta)
	}
	if o := d.Owners[0]; o.Owner != "vmleak_test" || o.DeltaObjects != 204+45 || o.DeltaBytes != 204*232+45*1024 {
		t.Errorf("owners[0] %+v", o)
	}
	if len(d.Sites) != 1 || d.Sites[0].DeltaObjects != 45 {
		t.Errorf("sites %+v", d.Sites)
	}
	if len(d.Meminfo) != 3 || d.Meminfo[0].Name != "MemFree" || d.Meminfo[0].Delta != -984 {
		t.Errorf("meminfo %+v", d.Meminfo)
	}
	if d.Empty() {
		t.Error("Empty")
	}
	j, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "diff.json", append(j, '\n'))
}

func TestCompareItself(t *testing.T) {
	d := compare(t, summarytest.After(), summarytest.After())
	if !d.Empty() || len(d.Caches) != 0 || len(d.Owners) != 0 || len(d.Meminfo) != 0 || d.Total.Delta != 0 {
		t.Errorf("a summary against itself: %+v", d)
	}
	all, err := diff.Compare(summarytest.After(), summarytest.After(), diff.Options{All: true})
	if err != nil || len(all.Caches) != len(summarytest.After().Caches) || !all.Empty() {
		t.Errorf("--all: %d rows, %v", len(all.Caches), err)
	}
}

// A cache merged on one side is matched through the other side's aliases
// and has no delta; a name whose object size changed is two caches.
func TestMergedAndResized(t *testing.T) {
	b, a := summarytest.Before(), summarytest.Before()
	a.Caches[1].Aliases = append(a.Caches[1].Aliases, "old_cache") // old_cache merged into kmalloc-1k after
	a.Caches = append(a.Caches[:3], a.Caches[4:]...)
	a.Caches[0] = summarytest.Cache("dentry", 200, 200, 1, 515, 10000, 10300)
	d := compare(t, b, a)
	m := row(d, "old_cache")
	if m == nil || m.Status != diff.Merged || m.Delta != nil || !strings.Contains(m.Note, "kmalloc-1k") {
		t.Errorf("old_cache: %+v", m)
	}
	var dentries []string
	for _, c := range d.Caches {
		if c.Name == "dentry" {
			dentries = append(dentries, c.Status)
			if !strings.Contains(c.Note, "object size") {
				t.Errorf("dentry %s: note %q", c.Status, c.Note)
			}
		}
	}
	if strings.Join(dentries, ",") != "appeared,vanished" {
		t.Errorf("dentry rows %v", dentries)
	}
	k := row(d, "kmalloc-1k")
	if k == nil || !strings.Contains(k.Note, "aliases") {
		t.Errorf("kmalloc-1k: %+v", k)
	}
}

func TestIncomparable(t *testing.T) {
	a := summarytest.After()
	a.Dump.Arch = "aarch64"
	if _, err := diff.Compare(summarytest.Before(), a, diff.Options{}); !errors.Is(err, diff.ErrIncomparable) || !strings.Contains(err.Error(), "aarch64") {
		t.Errorf("have %v", err)
	}
}

func TestParseLimit(t *testing.T) {
	for _, tc := range []struct {
		in    string
		bytes int64
		pct   float64
		isPct bool
		bad   bool
	}{
		{"4096", 4096, 0, false, false},
		{"512K", 512 << 10, 0, false, false},
		{"10MiB", 10 << 20, 0, false, false},
		{"1.5G", 3 << 29, 0, false, false},
		{"0", 0, 0, false, false},
		{"5%", 0, 5, true, false},
		{"0.5 %", 0, 0.5, true, false},
		{"10MB", 0, 0, false, true},
		{"-1", 0, 0, false, true},
		{"x%", 0, 0, false, true},
		{"", 0, 0, false, true},
		{"99999999T", 0, 0, false, true},
	} {
		b, p, isPct, err := diff.ParseLimit(tc.in)
		if (err != nil) != tc.bad || b != tc.bytes || p != tc.pct || isPct != tc.isPct {
			t.Errorf("%q: %d, %v, %v, %v", tc.in, b, p, isPct, err)
		}
	}
}

func TestCheck(t *testing.T) {
	rule := func(scope, name, limit string) diff.Rule {
		r, err := diff.NewRule(scope, name, limit)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, tc := range []struct {
		name  string
		rules []diff.Rule
		fired []string // What of each exceeded check
		err   string
	}{
		{"overall bytes", []diff.Rule{rule(diff.ScopeOverall, "", "32K")}, []string{"slab memory"}, ""},
		{"overall percent", []diff.Rule{rule(diff.ScopeOverall, "", "50%")}, nil, ""},
		{"cache percent", []diff.Rule{rule(diff.ScopeCache, "vmleak_test_obj", "29%")}, []string{"cache vmleak_test_obj"}, ""},
		{"cache under", []diff.Rule{rule(diff.ScopeCache, "vmleak_test_obj", "48K")}, nil, ""},
		{"partial cache", []diff.Rule{rule(diff.ScopeCache, "kmalloc-4k", "0")}, nil, ""},
		{"every cache", []diff.Rule{rule(diff.ScopeCache, "*", "16K")}, []string{"cache vmleak_test_obj", "cache kmalloc-1k"}, ""},
		{"appeared, percent", []diff.Rule{rule(diff.ScopeCache, "new_cache", "1000%")}, []string{"cache new_cache"}, ""},
		{"module", []diff.Rule{rule(diff.ScopeModule, "vmleak_test", "64K")}, []string{"module vmleak_test"}, ""},
		{"module under", []diff.Rule{rule(diff.ScopeModule, "vmleak_test", "1M")}, nil, ""},
		{"every module", []diff.Rule{rule(diff.ScopeModule, "*", "0")}, []string{"module vmleak_test"}, ""},
		{"no such cache", []diff.Rule{rule(diff.ScopeCache, "dentri", "1")}, nil, "no such cache"},
		{"no such module", []diff.Rule{rule(diff.ScopeModule, "vmleak_tset", "1")}, nil, "no such owner"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := compare(t, summarytest.Before(), summarytest.After())
			fired, err := d.Check(tc.rules)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("have %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range fired {
				got = append(got, f.What)
			}
			if strings.Join(got, ",") != strings.Join(tc.fired, ",") {
				t.Errorf("fired %v, want %v (checks %+v)", got, tc.fired, d.Checks)
			}
		})
	}
}
