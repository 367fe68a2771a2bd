package report

import (
	"encoding/hex"
	"fmt"
	"github.com/vmleak/vmleak/internal/human"
	"html/template"
	"sort"
	"strings"
	"time"

	"github.com/vmleak/vmleak/diff"
	"github.com/vmleak/vmleak/forensics"
	"github.com/vmleak/vmleak/leaks"
	"github.com/vmleak/vmleak/meminfo"
	"github.com/vmleak/vmleak/owners"
	"github.com/vmleak/vmleak/summary"
	"github.com/vmleak/vmleak/walk"
)

// Bounds on the long lists, so that a page stays small (the census is
// never cut: every cache has its row). What is left out is counted on the
// page.
const (
	maxSites      = 150
	maxOwnerCache = 40
	maxLeakGroups = 150
	maxFindings   = 300
	maxWarnings   = 60
	maxBars       = 25
	maxDiffRows   = 400
)

var funcs = template.FuncMap{
	// human takes the signed and unsigned counts the structures carry.
	"human": func(v any) string {
		switch n := v.(type) {
		case uint64:
			return humanBytes(n)
		case int64:
			if n < 0 {
				return "-" + humanBytes(uint64(-n))
			}
			return humanBytes(uint64(n))
		}
		return fmt.Sprint(v)
	},
	"signed": signed,
	"deref": func(p *int64) string {
		if p == nil {
			return "-"
		}
		return fmt.Sprint(*p)
	},
}

type headline struct{ Label, Value, Note string }

type ident struct {
	File, Host, Release, Arch, BuildID, Crash, Boot, Panic, Format, Size, Completeness string
	Partial                                                                            bool
}

type kv struct{ K, V string }

type single struct {
	Ident    ident
	Head     []headline
	Treemap  *treemap
	Bar      *stackBar
	Meminfo  string
	Census   []censusRow
	NCaches  int
	Owners   *ownersView
	Leaks    *leaksView
	Check    *checkView
	Partial  *partialView
	Skipped  []kv
	Warnings []string
	WarnMore int
}

func singleView(d *Dump) (*single, error) {
	if d.Summary == nil {
		return nil, fmt.Errorf("report: a dump needs its summary (identity)")
	}
	v := &single{Ident: identOf(d.Summary)}
	if i := d.Info; i != nil {
		v.Ident.Format = i.Format
		if len(i.Compression) > 0 {
			v.Ident.Format += " (" + strings.Join(i.Compression, ", ") + ")"
		}
	}
	v.Ident.Completeness, v.Ident.Partial = completeness(d)
	var total uint64
	var top *walk.CacheStats
	if c := d.Census; c != nil {
		for _, cs := range c.Caches {
			total += cs.MemoryBytes()
			if top == nil || cs.MemoryBytes() > top.MemoryBytes() {
				top = cs
			}
		}
		v.Census = censusRows(c, total)
		v.NCaches = len(c.Caches)
		v.Treemap = buildTreemap(apportion(censusMem(c), reportShares(d.Owners)))
	} else {
		v.Treemap = buildTreemap(apportion(summaryMem(d.Summary), summaryShares(d.Summary)))
		total = v.Treemap.Total
	}
	v.Head = append(v.Head, headline{"Slab memory", humanBytes(total), fmt.Sprintf("%d caches", len(v.Census))})
	if d.Meminfo != nil {
		if kb, ok := d.Meminfo.Get("SUnreclaim"); ok {
			v.Head = append(v.Head, headline{"Unreclaimable slab", humanBytes(uint64(kb) * 1024), "meminfo SUnreclaim"})
		}
		v.Bar = meminfoBar(d.Meminfo)
		var sb strings.Builder
		d.Meminfo.WriteText(&sb)
		v.Meminfo = sb.String()
	}
	if top != nil {
		v.Head = append(v.Head, headline{"Top cache", top.Name, humanBytes(top.MemoryBytes()) + ", " + pct(top.MemoryBytes(), total) + " of slab"})
	}
	if o := d.Owners; o != nil {
		var best *owners.OwnerShare
		for i := range o.Owners {
			if best == nil || o.Owners[i].Bytes > best.Bytes {
				best = &o.Owners[i]
			}
		}
		if best != nil {
			v.Head = append(v.Head, headline{"Top owner", best.Owner, humanBytes(uint64(best.Bytes)) + " in allocated objects"})
		}
		v.Owners = ownersOf(o)
	}
	if l := d.Leaks; l != nil {
		v.Head = append(v.Head, headline{"Leak suspects", fmt.Sprint(l.Unreferenced), humanBytes(l.UnreferencedBytes) + " unreferenced"})
		v.Leaks = leaksOf(l)
	} else {
		v.Head = append(v.Head, headline{"Leak suspects", "-", "not scanned: " + d.Skipped["leaks"]})
	}
	if c := d.Check; c != nil {
		v.Check = checkOf(c)
		v.Head = append(v.Head, headline{"High-severity findings", fmt.Sprint(v.Check.High), fmt.Sprintf("%d findings in all", len(c.Findings))})
	} else {
		v.Head = append(v.Head, headline{"High-severity findings", "-", "not checked: " + d.Skipped["check"]})
	}
	for _, k := range sortedKeys(d.Skipped) {
		v.Skipped = append(v.Skipped, kv{k, d.Skipped[k]})
	}
	v.Partial = partialOf(d)
	v.Warnings = d.Warnings
	if len(v.Warnings) > maxWarnings {
		v.WarnMore = len(v.Warnings) - maxWarnings
		v.Warnings = v.Warnings[:maxWarnings]
	}
	return v, nil
}

func sortedKeys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func identOf(s *summary.Summary) ident {
	d := s.Dump
	id := ident{File: d.File, Host: d.Hostname, Release: d.Release, Arch: d.Arch, BuildID: d.BuildID, Panic: d.Panic,
		Format: d.Format, Size: humanBytes(uint64(d.Size)), Partial: s.Partial}
	if d.CrashTime != nil {
		id.Crash = d.CrashTime.Format(time.RFC3339)
		if d.CrashTimeSource != "" {
			id.Crash += " (" + d.CrashTimeSource + ")"
		}
	}
	if d.BootTime != nil {
		id.Boot = d.BootTime.Format(time.RFC3339)
	}
	id.Completeness = "complete"
	if s.Partial {
		id.Completeness = "partial: memory missing from the dump"
	}
	return id
}

func completeness(d *Dump) (string, bool) {
	var parts []string
	partial := d.Summary.Partial
	if i := d.Info; i != nil {
		if i.Incomplete {
			parts = append(parts, "incomplete (the dump was cut short)")
			partial = true
		}
		var lvl string
		if i.DumpLevel != nil && *i.DumpLevel != 0 {
			lvl = fmt.Sprintf("dump level %d", *i.DumpLevel)
		}
		switch {
		case i.PagesExcluded > 0 && lvl != "":
			parts = append(parts, fmt.Sprintf("filtered (%s: %d of %d pages excluded)", lvl, i.PagesExcluded, i.PagesExcluded+i.PagesPresent))
		case i.PagesExcluded > 0:
			parts = append(parts, fmt.Sprintf("%d of %d pages excluded", i.PagesExcluded, i.PagesExcluded+i.PagesPresent))
		case lvl != "":
			parts = append(parts, lvl+", no page excluded")
		}
	}
	if c := d.Census; c != nil {
		n := 0
		for _, cs := range c.Caches {
			if cs.UnreadableSlabs > 0 {
				n++
			}
		}
		if n > 0 || c.Partial {
			parts = append(parts, fmt.Sprintf("%d caches with slabs missing", n))
			partial = true
		}
	}
	if l := d.Leaks; l != nil && l.Partial {
		parts = append(parts, "leak scan partial")
		partial = true
	}
	if c := d.Check; c != nil && c.Partial() {
		parts = append(parts, "some checks partial")
		partial = true
	}
	head := "complete"
	if partial {
		head = "partial"
	}
	if len(parts) == 0 {
		return head, partial
	}
	return head + ": " + strings.Join(parts, "; "), partial
}

// Census rows: the columns of vmleak slabs --wide, with the raw numbers
// for sorting.
type censusRow struct {
	Addr                      string
	ObjSize, Allocated, Total uint64
	Slabs                     int64
	SSize                     string
	SlabBytes                 uint64
	Memory                    uint64
	Share                     string
	ShareV                    float64
	Name, Aliases, Status     string
	Partial                   bool
}

func censusRows(c *walk.Census, total uint64) []censusRow {
	rows := make([]censusRow, 0, len(c.Caches))
	for _, cs := range c.Caches {
		r := censusRow{Addr: fmt.Sprintf("%x", cs.Addr), ObjSize: cs.ObjectSize, Allocated: uint64(max(cs.Allocated, 0)),
			Total: uint64(max(cs.Total, 0)), Slabs: cs.Slabs, SSize: fmt.Sprintf("%dk", cs.SlabBytes/1024), SlabBytes: cs.SlabBytes,
			Memory: cs.MemoryBytes(), Share: "-", Name: cs.Name, Aliases: strings.Join(cs.Aliases, ",")}
		if total > 0 {
			r.ShareV = 100 * float64(cs.MemoryBytes()) / float64(total)
			r.Share = fmt.Sprintf("%.1f%%", r.ShareV)
		}
		var st []string
		if cs.UnreadableSlabs > 0 {
			st = append(st, fmt.Sprintf("partial: %d slabs unreadable", cs.UnreadableSlabs))
			r.Partial = true
		}
		if cs.Disagree {
			w := "census and counters disagree"
			if cs.Why != "" {
				w += ": " + cs.Why
			}
			st = append(st, w)
		}
		st = append(st, cs.Corrupt...)
		r.Status = strings.Join(st, "; ")
		rows = append(rows, r)
	}
	// Largest first, as slabs --sort memory: the page is read from the top.
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Memory > rows[j].Memory })
	return rows
}

func censusMem(c *walk.Census) []cacheMem {
	var out []cacheMem
	for _, cs := range c.Caches {
		out = append(out, cacheMem{Name: cs.Name, Bytes: cs.MemoryBytes(), Objects: cs.Allocated})
	}
	return out
}

func reportShares(r *owners.Report) []share {
	if r == nil {
		return nil
	}
	var out []share
	for _, o := range r.Owners {
		for _, cs := range o.Caches {
			out = append(out, share{Owner: o.Owner, Cache: cs.Cache, Objects: cs.Objects, Evidence: cs.Evidence})
		}
	}
	return out
}

func summaryMem(s *summary.Summary) []cacheMem {
	var out []cacheMem
	for _, c := range s.Caches {
		out = append(out, cacheMem{Name: c.Name, Bytes: uint64(max(c.Bytes, 0)), Objects: c.Allocated})
	}
	return out
}

func summaryShares(s *summary.Summary) []share {
	var out []share
	for _, o := range s.Owners {
		out = append(out, share{Owner: o.Owner, Cache: o.Cache, Objects: o.Objects, Evidence: o.Evidence})
	}
	return out
}

// The meminfo stacked bar.
type barSeg struct {
	Label, Fill, Title, X, W string
	KB                       int64
	Size                     string
	Text                     string // a label inside, where it fits
	TX                       string
}

type stackBar struct {
	W, H  int
	Total string
	Segs  []barSeg
	Note  string
}

func meminfoBar(m *meminfo.Meminfo) *stackBar {
	total, ok := m.Get("MemTotal")
	if !ok || total <= 0 {
		return nil
	}
	get := func(names ...string) int64 {
		var n int64
		for _, name := range names {
			v, _ := m.Get(name)
			n += v
		}
		return n
	}
	parts := []struct {
		label, fill string
		kb          int64
	}{
		{"slab", "hsl(28,70%,55%)", get("Slab")},
		{"page cache", "hsl(130,40%,55%)", get("Buffers", "Cached")},
		{"anon", "hsl(210,55%,58%)", get("AnonPages")},
		{"kernel stack", "hsl(280,40%,60%)", get("KernelStack")},
		{"page tables", "hsl(350,50%,62%)", get("PageTables")},
		{"vmalloc", "hsl(50,60%,55%)", get("VmallocUsed")},
		{"free", "hsl(0,0%,88%)", get("MemFree")},
	}
	b := &stackBar{W: treemapW, H: 34, Total: humanBytes(uint64(total) * 1024)}
	var sum int64
	for _, p := range parts {
		sum += p.kb
	}
	if other := total - sum; other > 0 {
		parts = append(parts, struct {
			label, fill string
			kb          int64
		}{"other", "hsl(0,0%,70%)", other})
		sum = total
	} else if other < 0 {
		b.Note = "the parts overlap (their sum exceeds MemTotal): the bar is scaled to their sum"
	}
	x := 0.0
	for _, p := range parts {
		if p.kb <= 0 {
			continue
		}
		w := float64(p.kb) / float64(sum) * treemapW
		s := barSeg{Label: p.label, Fill: p.fill, KB: p.kb, Size: humanBytes(uint64(p.kb) * 1024), X: f(x), W: f(w),
			Title: fmt.Sprintf("%s: %s (%d kB, %s of MemTotal)", p.label, humanBytes(uint64(p.kb)*1024), p.kb, pct(uint64(p.kb), uint64(total)))}
		if w > float64(len(p.label))*6.5+8 {
			s.Text, s.TX = p.label, f(x+4)
		}
		b.Segs = append(b.Segs, s)
		x += w
	}
	return b
}

// Owners.
type ownerCacheRow struct {
	Cache, Evidence string
	Objects, Bytes  int64
}

type ownerRow struct {
	Owner          string
	Objects, Bytes int64
	Caches         []ownerCacheRow
	More           int
}

type siteRow struct {
	Cache, Owner, Site string
	Objects, Bytes     int64
}

type refRow struct {
	Module, Cache  string
	Objects, Bytes int64
}

type ownersView struct {
	Tracked   bool
	Owners    []ownerRow
	Sites     []siteRow
	SitesMore int
	Refs      []refRow
}

func ownersOf(r *owners.Report) *ownersView {
	v := &ownersView{Tracked: r.Tracked}
	for _, o := range r.Owners {
		row := ownerRow{Owner: o.Owner, Objects: o.Objects, Bytes: o.Bytes}
		for i, cs := range o.Caches {
			if i == maxOwnerCache {
				row.More = len(o.Caches) - i
				break
			}
			ev := cs.Evidence
			if ev == "" {
				ev = "-"
			}
			row.Caches = append(row.Caches, ownerCacheRow{cs.Cache, ev, cs.Objects, cs.Bytes})
		}
		v.Owners = append(v.Owners, row)
	}
	sites := append([]owners.Site(nil), r.Sites...)
	sort.SliceStable(sites, func(i, j int) bool { return sites[i].Bytes > sites[j].Bytes })
	for i, s := range sites {
		if i == maxSites {
			v.SitesMore = len(sites) - i
			break
		}
		name := s.Caller.String()
		if s.Caller.Addr == 0 {
			name = "- (" + s.Caller.What + ")"
		}
		v.Sites = append(v.Sites, siteRow{s.Cache, s.Owner, name, s.Objects, s.Bytes})
	}
	for _, ref := range r.References {
		v.Refs = append(v.Refs, refRow{ref.Module, ref.Cache, ref.Objects, ref.Bytes})
	}
	return v
}

// Leaks.
type leakRow struct {
	Cache, Owner, Site, Evidence string
	Objects                      int64
	Bytes                        uint64
	Sample                       string
}

type leaksView struct {
	Line    string
	Roots   string
	Partial bool
	Rows    []leakRow
	More    int
}

func leaksOf(l *leaks.Result) *leaksView {
	v := &leaksView{Partial: l.Partial}
	v.Line = fmt.Sprintf("%d unreferenced objects (%s) of %d allocated; %s scanned", l.Unreferenced, humanBytes(l.UnreferencedBytes), l.Objects, humanBytes(l.ScannedBytes))
	if l.UnreadablePages > 0 {
		v.Line += fmt.Sprintf("; %d pages unreadable", l.UnreadablePages)
	}
	var roots []string
	for _, rs := range l.Roots {
		roots = append(roots, fmt.Sprintf("%s %s in %d", rs.Kind, humanBytes(rs.Bytes), rs.Regions))
	}
	v.Roots = strings.Join(roots, ", ")
	n := 0
	for _, c := range l.Caches {
		for _, g := range c.Groups {
			if n == maxLeakGroups {
				v.More++
				continue
			}
			n++
			site := g.Site
			if site == "" {
				site = "-"
			}
			row := leakRow{Cache: c.Cache, Owner: g.Owner, Site: site, Evidence: g.Evidence, Objects: g.Objects, Bytes: g.Bytes}
			if len(g.Samples) > 0 {
				s := g.Samples[0]
				row.Sample = fmt.Sprintf("%#x", uint64(s.Addr))
				if b, err := hex.DecodeString(s.Bytes); err == nil && len(b) > 0 {
					row.Sample += ": " + hexLine(b[:min(len(b), 16)])
				}
			}
			v.Rows = append(v.Rows, row)
		}
	}
	return v
}

func hexLine(b []byte) string {
	hx, txt := human.HexLine(b)
	return hx + "  " + txt
}

// Check.
type findingRow struct {
	Severity, Check, Kind, Summary, Where, Evidence string
}

type memRow struct {
	Module, Cache, Evidence string
	Objects, Bytes          int64
}

type checkView struct {
	Checks                 []forensics.CheckResult
	Findings               []findingRow
	More                   int
	High, Medium, Low, Inf int
	Memory                 []memRow
}

func checkOf(r *forensics.Report) *checkView {
	v := &checkView{Checks: r.Checks}
	for _, fd := range r.Findings {
		switch fd.Severity {
		case forensics.High:
			v.High++
		case forensics.Medium:
			v.Medium++
		case forensics.Low:
			v.Low++
		default:
			v.Inf++
		}
		if len(v.Findings) == maxFindings {
			v.More++
			continue
		}
		var at []string
		if fd.Addr != 0 {
			s := fmt.Sprintf("at %#x", fd.Addr)
			if fd.Symbol != "" {
				s += " (" + fd.Symbol + ")"
			}
			at = append(at, s)
		}
		if fd.Target != 0 {
			at = append(at, fmt.Sprintf("→ %#x %s", fd.Target, fd.TargetName))
		}
		v.Findings = append(v.Findings, findingRow{fd.Severity.String(), fd.Check, fd.Kind, fd.Summary, strings.Join(at, " "), strings.Join(fd.Evidence, "; ")})
	}
	for _, m := range r.Memory {
		v.Memory = append(v.Memory, memRow{Module: m.Module, Cache: "(all)", Objects: m.Objects, Bytes: m.Bytes})
		for _, cs := range m.Caches {
			v.Memory = append(v.Memory, memRow{"", cs.Cache, cs.Evidence, cs.Objects, cs.Bytes})
		}
	}
	return v
}

// Partial results.
type partialCache struct {
	Name              string
	Unreadable, Slabs int64
	Allocated         int64
}

type partialView struct {
	Why    []string
	Caches []partialCache
}

func partialOf(d *Dump) *partialView {
	v := &partialView{}
	if i := d.Info; i != nil {
		if i.Incomplete {
			v.Why = append(v.Why, "the dump file is incomplete: it was cut short (a full disk, a crash while dumping)")
		}
		if i.DumpLevel != nil && *i.DumpLevel != 0 && i.PagesExcluded > 0 {
			v.Why = append(v.Why, fmt.Sprintf("makedumpfile filtered the dump (dump level %d): %d pages were excluded (zero, page cache, user or free pages); slabs on them cannot be read", *i.DumpLevel, i.PagesExcluded))
		}
	}
	if c := d.Census; c != nil {
		for _, cs := range c.Caches {
			if cs.UnreadableSlabs > 0 {
				v.Caches = append(v.Caches, partialCache{cs.Name, cs.UnreadableSlabs, cs.Slabs, cs.Allocated})
			}
		}
		if len(v.Caches) > 0 {
			v.Why = append(v.Why, fmt.Sprintf("%d caches have slabs missing from the dump: their counts are lower bounds", len(v.Caches)))
		}
	}
	if m := d.Meminfo; m != nil && m.Partial {
		v.Why = append(v.Why, "meminfo: lines left out for memory missing from the dump: "+strings.Join(m.Warnings, "; "))
	}
	if o := d.Owners; o != nil && o.Partial && (d.Census == nil || !d.Census.Partial) {
		v.Why = append(v.Why, "owners: part of the attribution could not be read (see the warnings)")
	}
	if l := d.Leaks; l != nil && l.Partial {
		v.Why = append(v.Why, "leaks: objects referenced only from memory that could not be read are reported as unreferenced")
	}
	if c := d.Check; c != nil {
		for _, cr := range c.Checks {
			if cr.Status == forensics.StatusPartial || cr.Status == forensics.StatusNotChecked {
				v.Why = append(v.Why, fmt.Sprintf("check %s: %s (%s)", cr.Check, cr.Status, cr.Note))
			}
		}
	}
	if len(v.Why) == 0 {
		return nil
	}
	return v
}

// The pair.
type divBar struct {
	Label, Full, Title, Text, Class string
	Value                           int64
	X, W, Y, LY, TX                 string
	Anchor                          string
}

type divBars struct {
	W, H int
	Axis string
	Rows []divBar
	More int
	Unit string
}

type diffCacheRow struct {
	Name, Status, Note    string
	ObjSize               int64
	Before, After         string
	BytesB, BytesA, Delta int64
	HasDelta              bool
	DeltaText, Ratio      string
}

type diffOwnerRow struct {
	Owner, Cache          string
	ObjB, ObjA, DObj      int64
	BytesB, BytesA, DByte int64
	Partial               bool
	Sub                   bool
}

type pair struct {
	Before, After ident
	Head          []headline
	Notes         []string
	CacheBars     *divBars
	OwnerBars     *divBars
	MeminfoBars   *divBars
	Appeared      []diffCacheRow
	Vanished      []diffCacheRow
	Undelta       []diffCacheRow
	Caches        []diffCacheRow
	CachesMore    int
	Owners        []diffOwnerRow
	Sites         []diff.Site
	Meminfo       []diff.Meminfo
	Excluded      []string
	Treemap       *treemap
}

func pairView(p *Pair) (*pair, error) {
	if p.Before == nil || p.After == nil || p.Diff == nil {
		return nil, fmt.Errorf("report: a pair needs both summaries and their diff")
	}
	d := p.Diff
	v := &pair{Before: identOf(p.Before), After: identOf(p.After), Notes: d.Notes, Excluded: d.Total.Excluded}
	tot := fmt.Sprintf("%s → %s", humanBytes(uint64(d.Total.Before)), humanBytes(uint64(d.Total.After)))
	note := signed(d.Total.Delta)
	if d.Total.Ratio != nil {
		note += fmt.Sprintf(" (%+.1f%%)", 100*(*d.Total.Ratio-1))
	}
	v.Head = append(v.Head, headline{"Slab memory", tot, note})
	var topGrow *diff.Cache
	appeared, vanished := 0, 0
	for i := range d.Caches {
		c := &d.Caches[i]
		if c.Delta != nil && c.Delta.Bytes > 0 && (topGrow == nil || c.Delta.Bytes > topGrow.Delta.Bytes) {
			topGrow = c
		}
		row := diffRow(c)
		switch {
		case c.Status == diff.Appeared:
			appeared++
			v.Appeared = append(v.Appeared, row)
		case c.Status == diff.Vanished:
			vanished++
			v.Vanished = append(v.Vanished, row)
		}
		if c.Delta == nil {
			v.Undelta = append(v.Undelta, row)
		}
		if len(v.Caches) < maxDiffRows {
			v.Caches = append(v.Caches, row)
		} else {
			v.CachesMore++
		}
	}
	if topGrow != nil {
		v.Head = append(v.Head, headline{"Top growing cache", topGrow.Name, signed(topGrow.Delta.Bytes)})
	} else {
		v.Head = append(v.Head, headline{"Top growing cache", "-", "no cache grew"})
	}
	var topOwner *diff.Owner
	for i := range d.Owners {
		o := &d.Owners[i]
		if o.DeltaBytes > 0 && (topOwner == nil || o.DeltaBytes > topOwner.DeltaBytes) {
			topOwner = o
		}
		v.Owners = append(v.Owners, diffOwnerRow{Owner: o.Owner, ObjB: o.ObjectsBefore, ObjA: o.ObjectsAfter, DObj: o.DeltaObjects,
			BytesB: o.BytesBefore, BytesA: o.BytesAfter, DByte: o.DeltaBytes, Partial: o.Partial})
		for _, oc := range o.Caches {
			v.Owners = append(v.Owners, diffOwnerRow{Owner: o.Owner, Cache: oc.Cache, ObjB: oc.ObjectsBefore, ObjA: oc.ObjectsAfter, DObj: oc.DeltaObjects,
				BytesB: oc.BytesBefore, BytesA: oc.BytesAfter, DByte: oc.DeltaBytes, Partial: oc.Partial, Sub: true})
		}
	}
	if topOwner != nil {
		v.Head = append(v.Head, headline{"Top growing owner", topOwner.Owner, signed(topOwner.DeltaBytes)})
	} else {
		v.Head = append(v.Head, headline{"Top growing owner", "-", "no owner grew"})
	}
	v.Head = append(v.Head, headline{"Caches appeared / vanished", fmt.Sprintf("%d / %d", appeared, vanished), ""})
	if len(d.Total.Excluded) > 0 {
		v.Head = append(v.Head, headline{"Partial caches", fmt.Sprint(len(d.Total.Excluded)), "left out of every delta"})
	}
	var cb, ob, mb []barIn
	for _, c := range d.Caches {
		if c.Delta != nil && c.Delta.Bytes != 0 {
			cb = append(cb, barIn{c.Name, c.Delta.Bytes, signed(c.Delta.Bytes)})
		}
	}
	for _, o := range d.Owners {
		if o.DeltaBytes != 0 {
			ob = append(ob, barIn{o.Owner, o.DeltaBytes, signed(o.DeltaBytes)})
		}
	}
	for _, m := range d.Meminfo {
		if m.Delta != 0 && m.Unit == "kB" {
			mb = append(mb, barIn{m.Name, m.Delta, fmt.Sprintf("%+d kB", m.Delta)})
		}
	}
	v.CacheBars, v.OwnerBars, v.MeminfoBars = diverging(cb, "bytes"), diverging(ob, "bytes"), diverging(mb, "kB")
	v.Sites = d.Sites
	if len(v.Sites) > maxSites {
		v.Sites = v.Sites[:maxSites]
	}
	v.Meminfo = d.Meminfo
	v.Treemap = buildTreemap(apportion(summaryMem(p.After), summaryShares(p.After)))
	return v, nil
}

func diffRow(c *diff.Cache) diffCacheRow {
	r := diffCacheRow{Name: c.Name, Status: c.Status, Note: c.Note, ObjSize: c.ObjectSize, Before: "-", After: "-", DeltaText: "-", Ratio: "-"}
	if c.Partial != "" {
		r.Status += ", partial " + c.Partial
	}
	if c.Before != nil {
		r.BytesB = c.Before.Bytes
		r.Before = fmt.Sprintf("%s (%d objects)", humanBytes(uint64(c.Before.Bytes)), c.Before.Allocated)
	}
	if c.After != nil {
		r.BytesA = c.After.Bytes
		r.After = fmt.Sprintf("%s (%d objects)", humanBytes(uint64(c.After.Bytes)), c.After.Allocated)
	}
	if c.Delta != nil {
		r.HasDelta, r.Delta, r.DeltaText = true, c.Delta.Bytes, signed(c.Delta.Bytes)
	}
	if c.Ratio != nil {
		r.Ratio = fmt.Sprintf("%.2f", *c.Ratio)
	}
	return r
}

type barIn struct {
	label string
	value int64
	text  string
}

// diverging draws the largest changes (by size) as bars from a centre
// axis: growth to the right, shrinking to the left.
func diverging(in []barIn, unit string) *divBars {
	if len(in) == 0 {
		return nil
	}
	sort.SliceStable(in, func(i, j int) bool {
		a, b := abs(in[i].value), abs(in[j].value)
		if a != b {
			return a > b
		}
		return in[i].label < in[j].label
	})
	v := &divBars{W: treemapW, Unit: unit}
	if len(in) > maxBars {
		v.More = len(in) - maxBars
		in = in[:maxBars]
	}
	sort.SliceStable(in, func(i, j int) bool { return in[i].value > in[j].value })
	var most int64
	for _, b := range in {
		most = max(most, abs(b.value))
	}
	const labelW, axis, half, rowH = 300.0, 650.0, 270.0, 20.0
	v.Axis = f(axis)
	for i, b := range in {
		w := float64(abs(b.value)) / float64(most) * half
		y := 4 + float64(i)*rowH
		r := divBar{Full: b.label, Label: shorten(b.label, 46), Value: b.value, Text: b.text,
			Y: f(y), LY: f(y + 13), W: f(w), Title: b.label + ": " + b.text}
		if b.value > 0 {
			r.Class, r.X, r.TX, r.Anchor = "grow", f(axis), f(axis+w+4), "start"
		} else {
			r.Class, r.X, r.TX, r.Anchor = "shrink", f(axis-w), f(axis-w-4), "end"
		}
		_ = labelW
		v.Rows = append(v.Rows, r)
	}
	v.H = int(8 + float64(len(in))*rowH)
	return v
}

func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

func signed(b int64) string {
	if b < 0 {
		return "-" + humanBytes(uint64(-b))
	}
	return "+" + humanBytes(uint64(b))
}

// humanBytes is vmleak's size format (as the text outputs print it).
func humanBytes(b uint64) string { return human.Bytes(b) }

func pct(part, whole uint64) string {
	if whole == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(part)/float64(whole))
}
