package report

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vmleak/vmleak/diff"
	"github.com/vmleak/vmleak/internal/htmlcheck"
	"github.com/vmleak/vmleak/leaks"
	"github.com/vmleak/vmleak/meminfo"
	"github.com/vmleak/vmleak/owners"
	"github.com/vmleak/vmleak/summary"
	"github.com/vmleak/vmleak/walk"
)

// Every rectangle's area is its value's share of the whole, the
// rectangles tile the whole, and none is a sliver where a square fits.
func TestSquarify(t *testing.T) {
	for _, vals := range [][]float64{
		{6, 6, 4, 3, 2, 2, 1},
		{1},
		{1e9, 1, 1, 1},
		{5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5},
	} {
		r := rect{10, 20, 600, 400}
		out := squarify(vals, r)
		var sum, area float64
		for _, v := range vals {
			sum += v
		}
		for i, o := range out {
			want := vals[i] / sum * r.W * r.H
			if got := o.W * o.H; math.Abs(got-want) > 1e-6*r.W*r.H {
				t.Errorf("%v: rect %d area %.3f, want %.3f", vals, i, got, want)
			}
			if o.X < r.X-1e-9 || o.Y < r.Y-1e-9 || o.X+o.W > r.X+r.W+1e-6 || o.Y+o.H > r.Y+r.H+1e-6 {
				t.Errorf("%v: rect %d %+v outside %+v", vals, i, o, r)
			}
			area += o.W * o.H
		}
		if math.Abs(area-r.W*r.H) > 1e-6 {
			t.Errorf("%v: rectangles cover %.3f of %.3f", vals, area, r.W*r.H)
		}
	}
	// Equal values in a square come out as squares.
	for _, o := range squarify([]float64{1, 1, 1, 1}, rect{0, 0, 100, 100}) {
		if math.Abs(o.W-50) > 1e-9 || math.Abs(o.H-50) > 1e-9 {
			t.Errorf("4 equal values in a square: %+v", o)
		}
	}
}

// A cache's slab memory is split among its owners by objects, exactly.
func TestApportion(t *testing.T) {
	items := apportion([]cacheMem{{"a", 4096 * 3, 10}, {"b", 8192, 0}, {"c", 0, 0}},
		[]share{{"m1", "a", 1, "alloc-track"}, {"kernel", "a", 2, "alloc-track"}, {"m1", "a", 1, ""}, {"kernel", "c", 5, ""}})
	got := map[string]uint64{}
	for _, it := range items {
		got[it.Owner+"/"+it.Cache] = it.Bytes
	}
	want := map[string]uint64{"kernel/a": 6144, "m1/a": 6144, NoObjects + "/b": 8192}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("apportion = %v, want %v", got, want)
	}
}

// crafted are names a hostile dump could give its caches and modules.
var crafted = []string{`<img src=x onerror=alert(1)>`, `</script><script>alert(2)</script>`, `"><svg onload=alert(3)>`, `</title><b>x`, `' onmouseover='alert(4)`}

// testData is a synthetic dump of n caches and a few owners with sites, its
// names crafted where k%7 == 0.
func testData(n int) *Data {
	cen := &walk.Census{Schema: walk.CensusSchema, Release: "6.1.0-test", Dump: "vmcore"}
	rep := &owners.Report{Tracked: true}
	byOwner := map[string]*owners.OwnerShare{}
	mods := []string{"kernel", "unattributed", crafted[2], "mod_a"}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("cache-%03d", i)
		if i%7 == 0 {
			name = crafted[(i/7)%len(crafted)] + fmt.Sprint(i)
		}
		slabs := int64(1 + (n-i)*3)
		cs := &walk.CacheStats{Addr: 0xffff888000000000 + uint64(i)*0x100, Name: name, ObjectSize: 64, Size: 64,
			ObjPerSlab: 64, SlabBytes: 4096, Slabs: slabs, Total: slabs * 64, Allocated: slabs * 60}
		if i == 3 {
			cs.UnreadableSlabs = 2
			cen.Partial = true
		}
		cen.Caches = append(cen.Caches, cs)
		for j, m := range mods[:1+i%len(mods)] {
			o := byOwner[m]
			if o == nil {
				o = &owners.OwnerShare{Owner: m}
				byOwner[m] = o
			}
			objs := cs.Allocated / int64(1+i%len(mods))
			if j == 0 {
				objs += cs.Allocated % int64(1+i%len(mods))
			}
			o.Objects += objs
			o.Bytes += objs * 64
			o.Caches = append(o.Caches, owners.CacheShare{Cache: name, Objects: objs, Bytes: objs * 64, Evidence: "alloc-track"})
		}
	}
	for _, m := range mods {
		rep.Owners = append(rep.Owners, *byOwner[m])
	}
	for i := 0; i < 3*n; i++ {
		st := owners.Site{Cache: cen.Caches[i%n].Name, Owner: "kernel", Objects: int64(i + 1), Bytes: int64(64 * (i + 1))}
		st.Caller.Symbol = fmt.Sprintf("alloc_fn_%d+0x%x", i, i)
		st.Caller.Addr = 0xffffffff81000000
		if i == 5 {
			st.Caller.Symbol = crafted[1]
		}
		rep.Sites = append(rep.Sites, st)
	}
	mi := &meminfo.Meminfo{Lines: []meminfo.Line{{Name: "MemTotal", Value: 1 << 20, Unit: "kB"}, {Name: "MemFree", Value: 1 << 19, Unit: "kB"},
		{Name: "Cached", Value: 1 << 17, Unit: "kB"}, {Name: "Slab", Value: 1 << 16, Unit: "kB"}, {Name: "SUnreclaim", Value: 1 << 15, Unit: "kB"},
		{Name: "AnonPages", Value: 1 << 16, Unit: "kB"}}}
	lr := &leaks.Result{Objects: 1000, Unreferenced: 2, UnreferencedBytes: 128, Caches: []leaks.CacheLeaks{{Cache: crafted[0], ObjectSize: 64, Objects: 2, Bytes: 128,
		Groups: []leaks.Group{{Owner: crafted[4], Site: crafted[3], Evidence: "alloc-track", Objects: 2, Bytes: 128, Samples: []leaks.Sample{{Addr: 0xffff888000001000, Bytes: "3c7363726970743e"}}}}}}}
	crash := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := &summary.Summary{Dump: summary.Dump{File: "vmcore", Hostname: crafted[0], Release: "6.1.0-test", Arch: "x86_64", Format: "kdump",
		CrashTime: &crash, Panic: crafted[1]}, Partial: true}
	return &Data{Dump: &Dump{Summary: s, Census: cen, Owners: rep, Meminfo: mi, Leaks: lr, Skipped: map[string]string{"check": "--no-check"},
		Warnings: []string{crafted[1]}}}
}

func render(t *testing.T, d *Data) string {
	t.Helper()
	var buf bytes.Buffer
	if err := Render(&buf, d); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// The page is well formed; no crafted name reaches it as markup; its style
// and script are the only inline blocks and the CSP allows them by hash.
func TestRenderEscapesAndCSP(t *testing.T) {
	page := render(t, testData(30))
	counts, err := htmlcheck.Check(page)
	if err != nil {
		t.Fatal(err)
	}
	if counts["script"] != 1 || counts["style"] != 1 || counts["img"] != 0 || counts["b"] != 0 {
		t.Errorf("elements: %d script, %d style, %d img, %d b; want 1, 1, 0, 0", counts["script"], counts["style"], counts["img"], counts["b"])
	}
	for _, c := range crafted {
		if strings.Contains(page, c) {
			t.Errorf("crafted name %q is in the page unescaped", c)
		}
	}
	for a := range counts {
		if strings.HasPrefix(a, "@on") || a == "@style" || a == "@src" || a == "@href" {
			t.Errorf("attribute %s in the page", a[1:])
		}
	}
	csp := regexp.MustCompile(`<meta http-equiv="Content-Security-Policy" content="([^"]*)">`).FindStringSubmatch(page)
	if csp == nil {
		t.Fatal("no CSP meta tag")
	}
	policy := html.UnescapeString(csp[1])
	if !strings.HasPrefix(policy, "default-src 'none';") || strings.Contains(policy, "unsafe") {
		t.Errorf("policy %q", policy)
	}
	for _, tag := range []string{"style", "script"} {
		m := regexp.MustCompile(`(?s)<` + tag + `>(.*?)</` + tag + `>`).FindStringSubmatch(page)
		h := sha256.Sum256([]byte(m[1]))
		want := tag + "-src 'sha256-" + base64.StdEncoding.EncodeToString(h[:]) + "'"
		if !strings.Contains(policy, want) {
			t.Errorf("policy %q does not allow the %s block (%s)", policy, tag, want)
		}
	}
}

// The census table has every cache, the treemap's cells add up to each
// cache's slab memory, and partial caches are listed.
func TestRenderSingle(t *testing.T) {
	d := testData(40)
	page := render(t, d)
	table := page[strings.Index(page, `<table id="census"`):]
	table = table[:strings.Index(table, "</table>")]
	rows := regexp.MustCompile(`<tr(?: class="partial")? data-cache="`).FindAllString(table, -1)
	if len(rows) != 40 {
		t.Errorf("%d census rows, want 40", len(rows))
	}
	tm := buildTreemap(apportion(censusMem(d.Dump.Census), reportShares(d.Dump.Owners)))
	byCache := map[string]uint64{}
	for _, o := range tm.Owners {
		for _, c := range o.Cells {
			byCache[c.Cache] += c.Bytes
		}
	}
	for _, cs := range d.Dump.Census.Caches {
		if byCache[cs.Name] != cs.MemoryBytes() {
			t.Errorf("%s: cells hold %d bytes, the cache %d", cs.Name, byCache[cs.Name], cs.MemoryBytes())
		}
	}
	if !strings.Contains(page, `id="partial-caches"`) || !strings.Contains(page, `<td>cache-003</td><td class="n">2</td>`) {
		t.Error("the partial cache is not listed")
	}
	for _, want := range []string{"Not checked: --no-check", "Leak suspects", "Unreclaimable slab", `id="treemap"`, `id="meminfo-bar"`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

// A 200-cache dump with many owners and call sites stays well under 1 MiB.
func TestRenderSize(t *testing.T) {
	page := render(t, testData(200))
	t.Logf("200 caches, 4 owners, 600 call sites: %d bytes", len(page))
	if len(page) >= 1<<20 {
		t.Errorf("page is %d bytes, want < 1 MiB", len(page))
	}
}

// A pair: growth both ways, appeared and vanished caches, meminfo.
func TestRenderPair(t *testing.T) {
	mk := func(file string, caches map[string]int64) *summary.Summary {
		s := &summary.Summary{Dump: summary.Dump{File: file, Arch: "x86_64", PageSize: 4096, Release: "6.1"}}
		for n, slabs := range caches {
			s.Caches = append(s.Caches, summary.Cache{Name: n, ObjectSize: 64, SlabBytes: 4096, Slabs: slabs, Bytes: slabs * 4096, Allocated: slabs * 60, Total: slabs * 64})
			s.Owners = append(s.Owners, summary.Owner{Owner: "kernel", Cache: n, Objects: slabs * 60, Bytes: slabs * 60 * 64})
		}
		s.Meminfo = []summary.MeminfoLine{{Name: "Slab", Value: 100, Unit: "kB"}}
		return s
	}
	b := mk("before", map[string]int64{"grows": 10, "shrinks": 10, "vanishes": 3, crafted[0]: 1})
	a := mk("after", map[string]int64{"grows": 30, "shrinks": 4, "appears": 2, crafted[0]: 1})
	a.Meminfo[0].Value = 180
	dd, err := diff.Compare(b, a, diff.Options{})
	if err != nil {
		t.Fatal(err)
	}
	page := render(t, &Data{Pair: &Pair{Before: b, After: a, Diff: dd}})
	if _, err := htmlcheck.Check(page); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`class="bar grow" data-label="grows" data-value="81920"`, `class="bar shrink" data-label="shrinks" data-value="-24576"`,
		"<td>appears</td><td>appeared</td>", "<td>vanishes</td><td>vanished</td>", `data-label="Slab" data-value="80"`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, crafted[0]) {
		t.Error("crafted name unescaped")
	}
}
