package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/diff"
	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/oracle"
	"github.com/vmleak/vmleak/summary"
	"github.com/vmleak/vmleak/walk"
)

// summarizeTo runs vmleak summary on one dump file of a fixture into dir.
func summarizeTo(t *testing.T, m *fixture.Manifest, d fixture.DumpFile, dir, ext string, extra ...string) string {
	t.Helper()
	out := filepath.Join(dir, m.Name+"-"+d.File+ext)
	args := append([]string{"summary", m.DumpPath(d), "--vmlinux", m.Vmlinux(), "-o", out}, extra...)
	if code, _, errs := vmleak(t, args...); code != ExitOK {
		t.Fatalf("summary %s: exit %d: %s", d.File, code, errs)
	}
	return out
}

func diffJSON(t *testing.T, wantCode int, args ...string) *diff.Diff {
	t.Helper()
	code, out, errs := vmleak(t, append([]string{"diff", "--json"}, args...)...)
	if code != wantCode {
		t.Fatalf("diff %v: exit %d (want %d): %s", args, code, wantCode, errs)
	}
	d := new(diff.Diff)
	if err := json.Unmarshal([]byte(out), d); err != nil {
		t.Fatal(err)
	}
	return d
}

// grownSlabs is how many slabs the guest's growslabs steps added between
// dump index-1 and dump index (testdata/vmcores/guest/init).
func grownSlabs(t *testing.T, m *fixture.Manifest, index int) int64 {
	dumps, n := 0, int64(0)
	for _, step := range strings.Split(m.Steps, ",") {
		if step == "dump" {
			dumps++
			continue
		}
		if v, ok := strings.CutPrefix(step, "growslabs:"); ok && dumps == index-1 {
			k, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("steps %q: %v", m.Steps, err)
			}
			n += k
		}
	}
	return n
}

func firstOfIndex(t *testing.T, m *fixture.Manifest, index int) fixture.DumpFile {
	for _, d := range m.Dumps {
		if d.Index == index {
			return d
		}
	}
	t.Fatalf("%s has no dump %d", m.Name, index)
	return fixture.DumpFile{}
}

// On the before/after pair the top growth row is the test module's cache,
// grown by exactly the objects, slabs and bytes the guest added between
// the dumps, and the top owner is the test module with those objects; the
// same from two dumps, two summaries (JSON, Parquet) or one of each.
func TestDiffPair(t *testing.T) {
	m := fixture.Load(t, "bookworm-pair")
	d1, d2 := firstOfIndex(t, m, 1), firstOfIndex(t, m, 2)
	// The oracles: the module's own count and the guest's slabinfo, before each dump.
	kv1, err := oracle.ParseKeyValues(m.Oracle(t, d1.Oracle+".test-module"))
	if err != nil {
		t.Fatal(err)
	}
	kv2, err := oracle.ParseKeyValues(m.Oracle(t, d2.Oracle+".test-module"))
	if err != nil {
		t.Fatal(err)
	}
	si1, err := oracle.ParseSlabinfo(m.Oracle(t, d1.Oracle+".slabinfo"))
	if err != nil {
		t.Fatal(err)
	}
	si2, err := oracle.ParseSlabinfo(m.Oracle(t, d2.Oracle+".slabinfo"))
	if err != nil {
		t.Fatal(err)
	}
	cache, mod := m.TestModule.Cache, m.TestModule.Module
	wantObjects := kv2["allocated"] - kv1["allocated"]
	wantSlabs := si2[cache].NumSlabs - si1[cache].NumSlabs
	wantBytes := wantSlabs * si2[cache].PagesPerSlab * 4096
	if g := grownSlabs(t, m, 2); wantSlabs != g || wantObjects != g*si2[cache].ObjPerSlab || wantObjects <= 0 {
		t.Fatalf("oracles disagree: %d objects, %d slabs; the steps grew %d slabs of %d", wantObjects, wantSlabs, g, si2[cache].ObjPerSlab)
	}

	dir := t.TempDir()
	j1 := summarizeTo(t, m, d1, dir, ".json")
	p2 := summarizeTo(t, m, d2, dir, ".parquet")
	fromDumps := diffJSON(t, ExitOK, m.DumpPath(d1), m.DumpPath(d2), "--vmlinux", m.Vmlinux())
	fromSummaries := diffJSON(t, ExitOK, j1, p2)
	mixed := diffJSON(t, ExitOK, j1, m.DumpPath(d2), "--vmlinux-after", m.Vmlinux())
	for name, d := range map[string]*diff.Diff{"dumps": fromDumps, "summaries": fromSummaries, "summary and dump": mixed} {
		t.Run(name, func(t *testing.T) {
			top := d.Caches[0]
			want := diff.Counts{Allocated: wantObjects, Total: wantObjects, Slabs: wantSlabs, Bytes: wantBytes}
			if top.Name != cache || top.Status != diff.Changed || top.Delta == nil || *top.Delta != want {
				t.Errorf("top row %s %s delta %+v, want %s %+v", top.Name, top.Status, top.Delta, cache, want)
			}
			for _, c := range d.Caches[1:] {
				if c.Growth() >= wantBytes {
					t.Errorf("%s grew %d bytes, as much as the test module's cache", c.Name, c.Growth())
				}
			}
			o := d.Owners[0]
			if o.Owner != mod || o.DeltaObjects != wantObjects || o.DeltaBytes != wantObjects*top.ObjectSize ||
				len(o.Caches) != 1 || o.Caches[0].Cache != cache {
				t.Errorf("top owner %+v, want %s with %d objects in %s", o, mod, wantObjects, cache)
			}
			if len(d.Notes) != 0 || d.Before.Partial || d.After.Partial {
				t.Errorf("notes %v", d.Notes)
			}
		})
	}
	// Identical, not just alike: a summary is all a diff needs.
	a, _ := json.Marshal(fromDumps)
	b, _ := json.Marshal(fromSummaries)
	if string(a) != string(b) {
		t.Errorf("diff of summaries differs from diff of dumps:\n%s\n%s", a, b)
	}
	// The text says it too, and a limit under the growth fires on it.
	code, out, errs := vmleak(t, "diff", j1, p2, "--fail-if-growth", strconv.FormatInt(wantBytes-1, 10), "--cache", cache)
	lines := strings.Split(out, "\n")
	first := ""
	for i, l := range lines {
		if strings.HasPrefix(l, "CACHE ") && i+1 < len(lines) {
			first = lines[i+1]
		}
	}
	if code != ExitGrowth || !strings.Contains(errs, "cache "+cache) || !strings.HasPrefix(first, cache+" ") {
		t.Errorf("exit %d (want %d)\n%s\n%s", code, ExitGrowth, out, errs)
	}
	if code, _, errs := vmleak(t, "diff", j1, p2, "--fail-if-growth", strconv.FormatInt(wantBytes, 10), "--cache", cache); code != ExitOK {
		t.Errorf("limit at the growth: exit %d: %s", code, errs)
	}
}

// vmleak summary says what the census says, in both formats alike.
func TestSummaryOfDump(t *testing.T) {
	m := fixture.Load(t, "bookworm-pair")
	d := firstOfIndex(t, m, 1)
	dir := t.TempDir()
	js, err := summary.ReadFile(summarizeTo(t, m, d, dir, ".json", "--sha256"))
	if err != nil {
		t.Fatal(err)
	}
	pq, err := summary.ReadFile(summarizeTo(t, m, d, dir, ".parquet", "--sha256"))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(js)
	b, _ := json.Marshal(pq)
	if string(a) != string(b) {
		t.Errorf("JSON and Parquet summaries differ:\n%s\n%s", a, b)
	}
	if js.Dump.SHA256 != d.SHA256 || js.Dump.Size != d.Size || js.Dump.Release != m.KernelRelease || js.Dump.CrashTime == nil {
		t.Errorf("identity %+v, manifest %+v", js.Dump, d)
	}
	code, out, errs := vmleak(t, "slabs", m.DumpPath(d), "--vmlinux", m.Vmlinux(), "--json")
	if code != ExitOK {
		t.Fatalf("slabs: exit %d: %s", code, errs)
	}
	var c walk.Census
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Caches) != len(js.Caches) {
		t.Errorf("%d caches in the census, %d in the summary", len(c.Caches), len(js.Caches))
	}
	for _, cs := range c.Caches {
		s := js.Cache(cs.Name)
		if s == nil || s.Allocated != cs.Allocated || s.Total != cs.Total || s.Slabs != cs.Slabs || s.Bytes != int64(cs.MemoryBytes()) {
			t.Errorf("%s: census %d/%d/%d, summary %+v", cs.Name, cs.Allocated, cs.Total, cs.Slabs, s)
		}
	}
	if o := js.Cache(m.TestModule.Cache); o == nil || strings.Join(o.Owners, ",") != m.TestModule.Module {
		t.Errorf("test cache owners: %+v", o)
	}
	mi, err := oracle.ParseMeminfo(m.Oracle(t, d.Oracle+".meminfo"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range js.Meminfo {
		if l.Name == "MemTotal" && l.Value != mi["MemTotal"] {
			t.Errorf("MemTotal %d, guest %d", l.Value, mi["MemTotal"])
		}
	}
}

// A dump against itself is empty; 6.1 against 6.12 lists the caches each
// kernel has alone, each truly absent from the other's summary.
func TestDiffItselfAndAcrossKernels(t *testing.T) {
	a := fixture.Load(t, "bookworm-qemu")
	b := fixture.Load(t, "trixie-qemu")
	da, db := firstOfIndex(t, a, 1), firstOfIndex(t, b, 1)
	dir := t.TempDir()
	sa := summarizeTo(t, a, da, dir, ".json")
	sb := summarizeTo(t, b, db, dir, ".parquet")
	self := diffJSON(t, ExitOK, a.DumpPath(da), a.DumpPath(da), "--vmlinux", a.Vmlinux())
	if len(self.Caches) != 0 || len(self.Owners) != 0 || len(self.Meminfo) != 0 || len(self.Sites) != 0 || self.Total.Delta != 0 {
		t.Errorf("a dump against itself: %+v", self)
	}
	code, out, _ := vmleak(t, "diff", sa, sa, "--fail-if-growth", "0")
	if code != ExitOK || !strings.Contains(out, "no change") {
		t.Errorf("summary against itself: exit %d\n%s", code, out)
	}
	cross := diffJSON(t, ExitOK, sa, sb)
	before, err := summary.ReadFile(sa)
	if err != nil {
		t.Fatal(err)
	}
	after, err := summary.ReadFile(sb)
	if err != nil {
		t.Fatal(err)
	}
	key := func(name string, size int64) string { return name + "/" + strconv.FormatInt(size, 10) }
	has := func(s *summary.Summary) map[string]bool {
		m := map[string]bool{}
		for _, c := range s.Caches {
			m[key(c.Name, c.ObjectSize)] = true
		}
		return m
	}
	hb, ha := has(before), has(after)
	n := map[string]int{}
	for _, c := range cross.Caches {
		n[c.Status]++
		k := key(c.Name, c.ObjectSize)
		switch c.Status {
		case diff.Appeared:
			if hb[k] || !ha[k] {
				t.Errorf("%s appeared, yet before has it %v, after %v", k, hb[k], ha[k])
			}
		case diff.Vanished:
			if !hb[k] || ha[k] {
				t.Errorf("%s vanished, yet before has it %v, after %v", k, hb[k], ha[k])
			}
		}
	}
	if n[diff.Appeared] == 0 || n[diff.Vanished] == 0 || n[diff.Changed] == 0 || len(cross.Notes) == 0 || !strings.Contains(cross.Notes[0], "different kernels") {
		t.Errorf("6.1 against 6.12: %v, notes %v", n, cross.Notes)
	}
	t.Logf("6.1 -> 6.12: %v", n)
}

// A side with memory missing (a dump cut short, diffed against itself
// whole) never shows growth, on either side, and exits 5 even under a
// zero limit.
func TestDiffPartialSide(t *testing.T) {
	m := fixture.Load(t, "bookworm-pair")
	var whole string
	for _, d := range m.Dumps {
		if d.Index == 2 && d.Format == "kdump" {
			whole = m.DumpPath(d)
		}
	}
	if whole == "" {
		t.Fatalf("%s has no kdump-compressed file of its second dump", m.Name)
	}
	// Cut enough to lose slabs and kmem_caches but keep the kernel image
	// (page data is stored in pfn order, and the image is not at the top):
	// how much that is depends on how the dump compressed.
	var cut string
	for _, n := range []int64{256 << 10, 128 << 10, 512 << 10, 64 << 10, 1 << 20} {
		c := truncatedCopy(t, whole, n)
		if code, _, _ := vmleak(t, "summary", c, "--vmlinux", m.Vmlinux()); code == ExitPartial {
			cut = c
			break
		}
	}
	if cut == "" {
		t.Fatal("no cut of the dump gave a partial summary")
	}
	for _, order := range [][2]string{{cut, whole}, {whole, cut}} {
		dd := diffJSON(t, ExitPartial, order[0], order[1], "--vmlinux", m.Vmlinux(), "--fail-if-growth", "0", "--cache", "*")
		partial := 0
		for _, c := range dd.Caches {
			if c.Partial != "" {
				partial++
				if c.Delta != nil || c.Ratio != nil {
					t.Errorf("partial %s has a delta %+v", c.Name, c.Delta)
				}
				continue
			}
			if c.Growth() > 0 {
				t.Errorf("%s grew %d bytes between a dump and itself", c.Name, c.Growth())
			}
		}
		if partial == 0 || dd.Total.Delta != 0 {
			t.Errorf("%d partial caches, total delta %d", partial, dd.Total.Delta)
		}
		for _, ch := range dd.Checks {
			if ch.Exceeded {
				t.Errorf("check fired on a partial side: %+v", ch)
			}
		}
	}
	if code, _, errs := vmleak(t, "diff", cut, whole, "--vmlinux", m.Vmlinux(), "--fail-if-growth", "0"); code != ExitPartial {
		t.Errorf("overall limit: exit %d: %s", code, errs)
	}
}

// The diff command's exit codes: usage, unusable input (bad summaries,
// incomparable sides), growth, partial.
func TestDiffExitCodes(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	before, after := sampleSummaryFiles(t, dir)
	good, err := os.ReadFile(before)
	if err != nil {
		t.Fatal(err)
	}
	v2 := write("v2.json", []byte(strings.Replace(string(good), `"schema": 1`, `"schema": 2`, 1)))
	cut := write("cut.json", good[:len(good)/2])
	arm := write("arm.json", []byte(strings.Replace(string(good), `"arch": "x86_64"`, `"arch": "aarch64"`, 1)))
	edited := write("edited.json", []byte(strings.Replace(string(good), `"bytes": 2109440`, `"bytes": 1`, 1)))
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"growth within limits", []string{before, after, "--fail-if-growth", "1M"}, ExitPartial, "partial"},
		{"growth over the overall limit", []string{before, after, "--fail-if-growth", "32K"}, ExitGrowth, "slab memory grew +72.0K"},
		{"growth over a cache limit", []string{before, after, "--fail-if-growth", "10%", "--cache", "vmleak_test_obj"}, ExitGrowth, "cache vmleak_test_obj grew +48.0K (+30.0%)"},
		{"growth over a module limit", []string{before, after, "--fail-if-growth", "1", "--module", "vmleak_test"}, ExitGrowth, "module vmleak_test grew"},
		{"no growth, complete sides", []string{before, before, "--fail-if-growth", "0"}, ExitOK, ""},
		{"usage: one side", []string{before}, ExitUsage, "takes 2 argument"},
		{"usage: bad limit", []string{before, after, "--fail-if-growth", "10MB"}, ExitUsage, "powers of 1024"},
		{"usage: --cache without a limit", []string{before, after, "--cache", "dentry"}, ExitUsage, "give a limit"},
		{"usage: no such cache", []string{before, after, "--fail-if-growth", "1", "--cache", "dentri"}, ExitUsage, "no such cache"},
		{"usage: json and markdown", []string{before, after, "--json", "--markdown"}, ExitUsage, "exclude"},
		{"input: unknown version", []string{v2, after}, ExitInput, "v2.json: field schema: 2: this vmleak reads version 1"},
		{"input: truncated", []string{before, cut}, ExitInput, "cut.json: field caches["},
		{"input: edited", []string{edited, after}, ExitInput, "edited.json: field caches[0].bytes"},
		{"input: other architecture", []string{arm, after}, ExitInput, "aarch64"},
		{"input: missing", []string{before, filepath.Join(dir, "nope.json")}, ExitInput, "nope.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := vmleak(t, append([]string{"diff"}, tc.args...)...)
			if code != tc.code || !strings.Contains(errs, tc.msg) {
				t.Errorf("exit %d (want %d), stderr:\n%s", code, tc.code, errs)
			}
			if strings.Contains(errs, "panic") || strings.Contains(errs, "goroutine ") {
				t.Errorf("stderr shows a panic:\n%s", errs)
			}
		})
	}
}
