package browser

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/testkernel"
	"github.com/vmleak/vmleak/meminfo"
	"github.com/vmleak/vmleak/owners"
	"github.com/vmleak/vmleak/report"
	"github.com/vmleak/vmleak/summary"
	"github.com/vmleak/vmleak/walk"
)

// installChromium is how the lab installs the browser (testdata/vmcores/build.sh).
const installChromium = "apt-get install -y --no-install-recommends chromium"

// chromium finds the browser, or reports it missing as a missing fixture
// is: a skip locally, a failure under CI=true.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "chromium is not installed; install it with: " + installChromium
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// artifacts is where screenshots go: $VMLEAK_ARTIFACTS, else the test's
// temporary directory.
func artifacts(t *testing.T) string {
	if d := os.Getenv("VMLEAK_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// vmleak builds the command once per test binary and runs it.
func vmleak(t *testing.T, args ...string) (int, string) {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vmleak-browser")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "vmleak")
		// Built in the root module, with its own go.sum: this module
		// requires only the packages its tests import.
		build := exec.Command("go", "build", "-o", binary, "./cmd/vmleak")
		build.Dir = ".."
		out, err := build.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if code != 0 && code != 5 {
		t.Fatalf("vmleak %v: exit %d: %s", args, code, stderr.String())
	}
	return code, stdout.String()
}

// session is one page open in headless Chromium, with what it did: the
// requests it made, its console and log messages, exceptions and dialogs.
type session struct {
	ctx                        context.Context
	mu                         sync.Mutex
	requests, console, dialogs []string
}

func (s *session) add(list *[]string, v string) {
	s.mu.Lock()
	*list = append(*list, v)
	s.mu.Unlock()
}

// cspListener records the page's Content-Security-Policy violations; it is
// injected by the browser before the page's own script, which the CSP does
// not apply to.
const cspListener = `window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.violatedDirective + " " + e.blockedURI + " " + e.sample);
});`

// open loads a page file in a new browser.
func open(t *testing.T, path string) *session {
	t.Helper()
	exe := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.WindowSize(1100, 1000))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelA)
	s := &session{}
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(func(ev any) {
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			s.add(&s.requests, e.Request.URL)
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range e.Args {
				args = append(args, string(a.Value))
			}
			s.add(&s.console, fmt.Sprintf("console.%s %s", e.Type, strings.Join(args, " ")))
		case *runtime.EventExceptionThrown:
			s.add(&s.console, "exception: "+e.ExceptionDetails.Text)
		case *cdplog.EventEntryAdded:
			s.add(&s.console, fmt.Sprintf("log %s %s: %s", e.Entry.Source, e.Entry.Level, e.Entry.Text))
		case *page.EventJavascriptDialogOpening:
			s.add(&s.dialogs, e.Message)
			go chromedp.Call(s.ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}))
	t.Cleanup(cancel)
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancelT)
	s.ctx = ctx
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	u := (&url.URL{Scheme: "file", Path: abs}).String()
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspListener}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(u)); err != nil {
		t.Fatal(err)
	}
	// Let anything late (an image, a font) be asked for before judging.
	time.Sleep(300 * time.Millisecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.requests {
		if r != u {
			t.Errorf("the page requested %s", r)
		}
	}
	if len(s.requests) == 0 {
		t.Error("no request seen, not even the file's: are network events recorded?")
	}
	for _, c := range s.console {
		t.Errorf("console: %s", c)
	}
	violations := eval[[]string](t, s, "window.__csp")
	for _, v := range violations {
		t.Errorf("CSP violation: %s", v)
	}
	return s
}

func eval[T any](t *testing.T, s *session, js string) T {
	t.Helper()
	v, err := chromedp.Run(s.ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %.60q: %v", js, err)
	}
	return v
}

// check reports what the session saw since open: dialogs and console
// messages (the page's own script must log nothing).
func (s *session) check(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.dialogs {
		t.Errorf("a dialog opened: %q", d)
	}
	for _, c := range s.console {
		t.Errorf("console: %s", c)
	}
	s.console = nil
}

func (s *session) screenshot(t *testing.T, name string, full bool) string {
	t.Helper()
	act := chromedp.CaptureScreenshot()
	if full {
		act = chromedp.FullScreenshot(100)
	}
	b, err := chromedp.Run(s.ctx, act)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(artifacts(t), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s (%d bytes)", p, len(b))
	return p
}

// What the page's treemap holds, as the browser laid it out.
type box struct {
	Owner, Cache string
	Bytes        float64
	Area         float64
}

type treemapDOM struct {
	Total    float64
	Area     float64
	Cells    []box
	Owners   []box
	Labels   []string
	Elements int
}

const treemapJS = `(function () {
  var svg = document.getElementById("treemap"), sb = svg.getBoundingClientRect();
  function boxes(sel) {
    return Array.prototype.map.call(svg.querySelectorAll(sel), function (r) {
      var b = r.getBoundingClientRect();
      return {Owner: r.dataset.owner, Cache: r.dataset.cache || "", Bytes: +r.dataset.bytes, Area: b.width * b.height};
    });
  }
  return {Total: +svg.dataset.total, Area: sb.width * sb.height, Cells: boxes("rect.cell"), Owners: boxes("rect.owner-box"),
    Labels: Array.prototype.map.call(svg.querySelectorAll("text"), function (x) { return x.textContent; })};
})()`

// checkTreemap: one rectangle per owner and cache, each cache's cells
// holding its slab memory, every area proportional to its bytes.
func checkTreemap(t *testing.T, s *session, cen *walk.Census) treemapDOM {
	t.Helper()
	tm := eval[treemapDOM](t, s, treemapJS)
	var total uint64
	for _, c := range cen.Caches {
		total += c.MemoryBytes()
	}
	if tm.Total != float64(total) {
		t.Errorf("treemap total %.0f bytes, the census's slab memory %d", tm.Total, total)
	}
	seen := map[[2]string]bool{}
	byCache := map[string]float64{}
	byOwner := map[string]float64{}
	// An area may be off by the coordinates' rounding (3 decimals) along
	// its edges, and a float's last bits.
	near := func(b box, what string) {
		want := b.Bytes / tm.Total * tm.Area
		if math.Abs(b.Area-want) > 0.5+1e-4*want {
			t.Errorf("%s %s/%s: area %.2f px², want %.2f for %.0f bytes", what, b.Owner, b.Cache, b.Area, want, b.Bytes)
		}
	}
	for _, c := range tm.Cells {
		k := [2]string{c.Owner, c.Cache}
		if seen[k] {
			t.Errorf("two rectangles for %s in %s", c.Owner, c.Cache)
		}
		seen[k] = true
		byCache[c.Cache] += c.Bytes
		byOwner[c.Owner] += c.Bytes
		near(c, "cell")
	}
	for _, cs := range cen.Caches {
		if byCache[cs.Name] != float64(cs.MemoryBytes()) {
			t.Errorf("cache %s: cells hold %.0f bytes, the census %d", cs.Name, byCache[cs.Name], cs.MemoryBytes())
		}
	}
	if len(tm.Owners) != len(byOwner) {
		t.Errorf("%d owner rectangles for %d owners", len(tm.Owners), len(byOwner))
	}
	for _, o := range tm.Owners {
		if o.Bytes != byOwner[o.Owner] {
			t.Errorf("owner %s: %.0f bytes, its cells %.0f", o.Owner, o.Bytes, byOwner[o.Owner])
		}
		near(o, "owner")
	}
	t.Logf("treemap: %d cells of %d owners", len(tm.Cells), len(tm.Owners))
	return tm
}

// The census table's rows, cell by cell, with each cell's number.
const censusJS = `Array.prototype.map.call(document.querySelectorAll("#census tbody tr"), function (tr) {
  return Array.prototype.map.call(tr.cells, function (td) { return td.textContent; });
})`

// slabsWide runs vmleak slabs --wide --sort memory: the rows the table
// must equal.
func slabsWide(t *testing.T, dump, vmlinux string) [][]string {
	t.Helper()
	_, out := vmleak(t, "slabs", dump, "--vmlinux", vmlinux, "--wide", "--sort", "memory")
	var rows [][]string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 9 || f[0] == "CACHE" {
			continue
		}
		aliases := ""
		rest := f[9:]
		if len(rest) > 0 && rest[0] == "*" {
			rest = rest[1:]
		}
		if len(rest) > 0 {
			aliases = rest[0]
		}
		rows = append(rows, append(f[:9:9], aliases))
	}
	return rows
}

// The report of the slub_debug dump: its treemap is the census's slab
// memory laid out by area, its table is slabs --wide row for row and the
// census number for number, its table sorts and filters (its script ran,
// allowed by its hash), and it loads nothing and breaks no policy.
func TestReportInBrowser(t *testing.T) {
	chromium(t)
	m := fixture.Load(t, "bookworm-slubdbg")
	d := m.Dumps[0]
	for _, x := range m.Dumps {
		if x.Format == "kdump" {
			d = x
		}
	}
	out := filepath.Join(artifacts(t), "report.html")
	vmleak(t, "report", m.DumpPath(d), "--vmlinux", m.Vmlinux(), "-o", out)
	_, cen := testkernel.Census(t, testkernel.Open(t, m, d))

	s := open(t, out)
	checkTreemap(t, s, cen)

	rows := eval[[][]string](t, s, censusJS)
	want := slabsWide(t, m.DumpPath(d), m.Vmlinux())
	if len(rows) != len(want) || len(rows) != len(cen.Caches) {
		t.Fatalf("%d table rows, slabs --wide %d, the census %d caches", len(rows), len(want), len(cen.Caches))
	}
	for i, r := range rows {
		// CACHE OBJSIZE ALLOCATED TOTAL SLABS SSIZE MEMORY SHARE NAME ALIASES (STATUS)
		if got := strings.Join(r[:10], " "); got != strings.Join(want[i], " ") {
			t.Errorf("row %d:\n  page:  %s\n  slabs: %s", i, got, strings.Join(want[i], " "))
		}
		cs := cen.Cache(r[8])
		if cs == nil {
			t.Errorf("row %d: no cache %q in the census", i, r[8])
			continue
		}
		if nums := fmt.Sprint(cs.ObjectSize, cs.Allocated, cs.Total, cs.Slabs); strings.Join(r[1:5], " ") != nums {
			t.Errorf("%s: page %v, census %s", cs.Name, r[1:5], nums)
		}
	}

	// The style applied and the script ran: CSP let both through.
	if c := eval[string](t, s, `getComputedStyle(document.querySelector("#census th")).cursor`); c != "pointer" {
		t.Errorf("the table header's cursor is %q: the style block did not apply", c)
	}
	first := eval[string](t, s, `document.querySelector("#census tbody tr td.name").textContent`)
	eval[bool](t, s, `(function () { var th = document.querySelectorAll("#census th")[2]; th.click(); th.click(); return true; })()`)
	top := eval[[]string](t, s, `Array.prototype.map.call(document.querySelectorAll("#census tbody tr"), function (tr) { return tr.cells[2].textContent; })`)
	for i := 1; i < len(top); i++ {
		if atoi(top[i]) > atoi(top[i-1]) {
			t.Fatalf("sorted by ALLOCATED descending, row %d (%s) > row %d (%s)", i, top[i], i-1, top[i-1])
		}
	}
	shown := eval[int](t, s, `(function () { var f = document.querySelector("input.filter[data-table=census]");
	  f.value = "kmalloc-1"; f.dispatchEvent(new Event("input"));
	  return Array.prototype.filter.call(document.querySelectorAll("#census tbody tr"), function (r) { return !r.hidden; }).length; })()`)
	n := 0
	for _, c := range cen.Caches {
		if strings.Contains(strings.ToLower(fmt.Sprintf("%x %s %s", c.Addr, c.Name, strings.Join(c.Aliases, ","))), "kmalloc-1") {
			n++
		}
	}
	if shown == 0 || shown > n+5 {
		t.Errorf("filter kmalloc-1 shows %d rows; %d caches are named so", shown, n)
	}
	t.Logf("first row %s; filter kmalloc-1: %d rows", first, shown)
	eval[bool](t, s, `(function () { var f = document.querySelector("input.filter[data-table=census]"); f.value = ""; f.dispatchEvent(new Event("input")); return true; })()`)
	s.check(t)
	s.screenshot(t, "report-full.png", true)
	// The README's picture: the header, the headline numbers and the treemap.
	if err := chromedp.Do(s.ctx, chromedp.EmulateViewport(1100, 1180)); err != nil {
		t.Fatal(err)
	}
	p := s.screenshot(t, "report-top.png", false)
	if os.Getenv("VMLEAK_UPDATE_SCREENSHOT") != "" {
		b, _ := os.ReadFile(p)
		if err := os.WriteFile("../docs/report.png", b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func atoi(s string) int64 {
	var n int64
	fmt.Sscan(s, &n)
	return n
}

// The names a hostile dump can give: a page built from a real census with
// caches renamed so renders them as text, with no element, script or
// dialog of theirs.
func TestCraftedNamesInBrowser(t *testing.T) {
	chromium(t)
	m := fixture.Load(t, "bookworm-pair")
	d := m.Dumps[len(m.Dumps)-1]
	k := testkernel.Open(t, m, d)
	w, cen := testkernel.Census(t, k)
	if err := cen.SortBy("memory"); err != nil {
		t.Fatal(err)
	}
	rep, err := owners.Attribute(k, w, cen, nil)
	if err != nil {
		t.Fatal(err)
	}
	mi, err := meminfo.Read(k)
	if err != nil {
		t.Fatal(err)
	}
	crafted := []string{`<img src=x onerror=alert(1)>`, `</script><script>alert(2)</script>`, `"><svg onload=alert(3)>`, `</title><b id=b>x`}
	rename := map[string]string{}
	for i, name := range crafted {
		old := cen.Caches[i].Name
		rename[old] = name
		cen.Caches[i].Name = name
	}
	for i := range rep.Owners {
		for j := range rep.Owners[i].Caches {
			if n, ok := rename[rep.Owners[i].Caches[j].Cache]; ok {
				rep.Owners[i].Caches[j].Cache = n
			}
		}
	}
	s, err := summary.Take(k, w, cen, summary.Options{Owners: rep, Meminfo: mi})
	if err != nil {
		t.Fatal(err)
	}
	s.Dump.Hostname, s.Dump.Panic = crafted[0], crafted[1]
	out := filepath.Join(artifacts(t), "crafted.html")
	if err := report.WriteFile(out, &report.Data{Dump: &report.Dump{Summary: s, Info: k.Summary(), Census: cen, Owners: rep, Meminfo: mi,
		Skipped: map[string]string{"leaks": "not asked", "check": "not asked"}, Warnings: crafted}}); err != nil {
		t.Fatal(err)
	}
	sess := open(t, out)
	checkTreemap(t, sess, cen)
	type counts struct{ Img, Script, B, Svg, Names, Children, Cells, Labels int }
	for _, name := range crafted {
		js := fmt.Sprintf(`(function (name) {
		  var tds = Array.prototype.filter.call(document.querySelectorAll("#census td.name"), function (td) { return td.textContent === name; });
		  return {Img: document.querySelectorAll("img").length, Script: document.scripts.length, B: document.querySelectorAll("b").length,
		    Svg: document.querySelectorAll("svg[onload]").length, Names: tds.length, Children: tds.length ? tds[0].children.length : -1,
		    Cells: Array.prototype.filter.call(document.querySelectorAll("#treemap rect.cell"), function (r) { return r.dataset.cache === name; }).length,
		    Labels: Array.prototype.filter.call(document.querySelectorAll("#treemap text"), function (x) { return x.textContent === name; }).length};
		})(%q)`, name)
		c := eval[counts](t, sess, js)
		if c.Img != 0 || c.Script != 1 || c.B != 0 || c.Svg != 0 || c.Names != 1 || c.Children != 0 || c.Cells < 1 {
			t.Errorf("%q: %+v; want no img, one script, no b, no svg[onload], one census cell of text only, a treemap cell", name, c)
		}
		t.Logf("%q: %+v", name, c)
	}
	if title := eval[string](t, sess, `document.title`); !strings.Contains(title, "vmleak report") {
		t.Errorf("title %q", title)
	}
	if h := eval[string](t, sess, `document.querySelector("dl.ident dd:nth-of-type(2)").textContent`); h != crafted[0] {
		t.Errorf("host shown as %q, want %q as text", h, crafted[0])
	}
	time.Sleep(200 * time.Millisecond)
	sess.check(t)
	sess.screenshot(t, "crafted.png", false)
}

// The before/after pair: growth bars for the test module's cache, the page
// loads nothing and breaks no policy.
func TestPairInBrowser(t *testing.T) {
	chromium(t)
	m := fixture.Load(t, "bookworm-pair")
	var d1, d2 fixture.DumpFile
	for _, d := range m.Dumps {
		if d.Format == "kdump" && d.Index == 1 {
			d1 = d
		}
		if d.Format == "kdump" && d.Index == 2 {
			d2 = d
		}
	}
	out := filepath.Join(artifacts(t), "cmp.html")
	vmleak(t, "report", m.DumpPath(d1), m.DumpPath(d2), "--vmlinux", m.Vmlinux(), "-o", out)
	s := open(t, out)
	type bar struct {
		Label string
		Value float64
		Width float64
		Grow  bool
	}
	bars := eval[[]bar](t, s, `Array.prototype.map.call(document.querySelectorAll("#growth g.bar"), function (g) {
	  return {Label: g.dataset.label, Value: +g.dataset.value, Width: g.querySelector("rect").getBoundingClientRect().width, Grow: g.classList.contains("grow")};
	})`)
	if len(bars) == 0 || bars[0].Label != m.TestModule.Cache || !bars[0].Grow {
		t.Fatalf("bars %+v; want the test module's cache %s first, growing", bars, m.TestModule.Cache)
	}
	// Within one chart, widths are proportional to the values.
	for _, b := range bars[1:] {
		if b.Label == m.TestModule.Module {
			break // the owners' chart starts
		}
		want := math.Abs(b.Value) / bars[0].Value * bars[0].Width
		if math.Abs(b.Width-want) > 0.05 {
			t.Errorf("bar %s: width %.2f, want %.2f", b.Label, b.Width, want)
		}
	}
	if got := eval[int](t, s, `document.querySelectorAll("#owners tbody tr").length`); got == 0 {
		t.Error("no owner rows")
	}
	s.check(t)
	s.screenshot(t, "cmp-full.png", true)
}
