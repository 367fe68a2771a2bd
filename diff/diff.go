// Package diff compares two summaries of dumps, before and after: which
// caches grew or shrank, which appeared or vanished, which owners and call
// sites hold more, how meminfo moved; and checks growth against limits.
//
// It is pure data in, data out: it imports no kernel code and reads no
// dump, so that diffing two saved summaries costs milliseconds. Caches are
// matched by name and object size, never by address (KASLR and reboots move
// everything). A cache partial on either side (slabs missing from a dump)
// is marked and never counted as growth, by Compare or by Check.
package diff

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/vmleak/vmleak/summary"
)

// Schema is the version of the Diff JSON: raised when a field changes
// meaning or goes away (added fields keep it).
const Schema = 1

// Cache statuses.
const (
	Changed  = "changed"  // on both sides, counts differ
	Same     = "same"     // on both sides, the same counts (listed with Options.All)
	Appeared = "appeared" // only after
	Vanished = "vanished" // only before
	// Merged: on one side its own cache, on the other a name merged into
	// another cache (an alias); its objects there are counted in that
	// cache's row and cannot be told apart, so it has no delta.
	Merged = "merged"
)

// Diff is what changed between two summaries.
type Diff struct {
	Schema int  `json:"schema"`
	Before Side `json:"before"`
	After  Side `json:"after"`
	// Total is the slab memory of every cache on each side, less the caches
	// partial on either side (Total.Excluded names them).
	Total Total `json:"total"`
	// Caches that differ, largest byte growth first, then the caches with
	// no delta (partial, merged) by name.
	Caches  []Cache   `json:"caches"`
	Owners  []Owner   `json:"owners"`
	Sites   []Site    `json:"sites"`
	Meminfo []Meminfo `json:"meminfo"`
	// Notes say what the reader must know to read the rest: different
	// kernels, partial sides, caches matched through aliases.
	Notes []string `json:"notes"`
	// Checks are the results of Check, when limits were given.
	Checks []CheckResult `json:"checks"`

	cacheNames, ownerNames map[string]bool // on either side, for Check
}

// Side identifies one of the two summaries.
type Side struct {
	File      string     `json:"file"`
	Hostname  string     `json:"hostname"`
	Release   string     `json:"release"`
	BuildID   string     `json:"build_id"`
	CrashTime *time.Time `json:"crash_time"`
	Partial   bool       `json:"partial"`
}

// Counts are one cache's numbers on one side.
type Counts struct {
	Allocated int64 `json:"allocated"`
	Total     int64 `json:"total"`
	Slabs     int64 `json:"slabs"`
	Bytes     int64 `json:"bytes"` // slab memory: slabs × slab size
}

func (c Counts) sub(o Counts) Counts {
	return Counts{c.Allocated - o.Allocated, c.Total - o.Total, c.Slabs - o.Slabs, c.Bytes - o.Bytes}
}

// Cache is one cache's change.
type Cache struct {
	Name       string  `json:"name"`
	ObjectSize int64   `json:"object_size"`
	Status     string  `json:"status"`
	Before     *Counts `json:"before"` // nil: not on this side
	After      *Counts `json:"after"`
	// Delta is After - Before (a missing side counts as zero); nil when
	// the cache is partial on either side or merged on one.
	Delta *Counts `json:"delta"`
	// Ratio is after bytes / before bytes; nil without a delta or with no
	// memory before.
	Ratio *float64 `json:"ratio"`
	// Partial names the side(s) whose census of the cache missed slabs:
	// "before", "after", "both" or "".
	Partial string `json:"partial"`
	Note    string `json:"note"`
}

// Growth is the cache's byte growth, 0 when it has no delta.
func (c *Cache) Growth() int64 {
	if c.Delta == nil {
		return 0
	}
	return c.Delta.Bytes
}

// Total is all slab memory.
type Total struct {
	Before int64    `json:"before"`
	After  int64    `json:"after"`
	Delta  int64    `json:"delta"`
	Ratio  *float64 `json:"ratio"`
	// Excluded are the caches left out of both sides because they are
	// partial on one.
	Excluded []string `json:"excluded"`
}

// Owner is the change of what one owner (a module, "kernel",
// "unattributed") holds, over all caches and per cache.
type Owner struct {
	Owner         string       `json:"owner"`
	ObjectsBefore int64        `json:"objects_before"`
	ObjectsAfter  int64        `json:"objects_after"`
	DeltaObjects  int64        `json:"delta_objects"`
	BytesBefore   int64        `json:"bytes_before"`
	BytesAfter    int64        `json:"bytes_after"`
	DeltaBytes    int64        `json:"delta_bytes"`
	Caches        []OwnerCache `json:"caches"`
	// Partial: some of its caches are partial on a side; their deltas are
	// left out of the owner's, which is then a lower bound.
	Partial bool `json:"partial"`
}

// OwnerCache is an owner's change in one cache.
type OwnerCache struct {
	Cache         string `json:"cache"`
	ObjectsBefore int64  `json:"objects_before"`
	ObjectsAfter  int64  `json:"objects_after"`
	DeltaObjects  int64  `json:"delta_objects"`
	BytesBefore   int64  `json:"bytes_before"`
	BytesAfter    int64  `json:"bytes_after"`
	DeltaBytes    int64  `json:"delta_bytes"`
	Partial       bool   `json:"partial"`
}

// Site is the change of the tracked allocations of one call site in one cache.
type Site struct {
	Cache         string `json:"cache"`
	Site          string `json:"site"`
	Module        string `json:"module"`
	ObjectsBefore int64  `json:"objects_before"`
	ObjectsAfter  int64  `json:"objects_after"`
	DeltaObjects  int64  `json:"delta_objects"`
	DeltaBytes    int64  `json:"delta_bytes"`
	Partial       bool   `json:"partial"`
}

// Meminfo is one /proc/meminfo line that moved; a line on one side only
// has the other nil.
type Meminfo struct {
	Name   string `json:"name"`
	Unit   string `json:"unit"`
	Before *int64 `json:"before"`
	After  *int64 `json:"after"`
	Delta  int64  `json:"delta"`
}

// Options controls Compare.
type Options struct {
	All bool // list unchanged caches, owners and meminfo lines too
}

// ErrIncomparable is wrapped when two summaries cannot be compared at all
// (different architectures or page sizes).
var ErrIncomparable = errors.New("diff: summaries cannot be compared")

// Compare computes what changed from before to after.
func Compare(before, after *summary.Summary, o Options) (*Diff, error) {
	if before.Dump.Arch != after.Dump.Arch {
		return nil, fmt.Errorf("%w: %s is %s, %s is %s", ErrIncomparable, before.Dump.File, before.Dump.Arch, after.Dump.File, after.Dump.Arch)
	}
	if before.Dump.PageSize != after.Dump.PageSize {
		return nil, fmt.Errorf("%w: %s has %d-byte pages, %s %d-byte", ErrIncomparable, before.Dump.File, before.Dump.PageSize, after.Dump.File, after.Dump.PageSize)
	}
	d := &Diff{Schema: Schema, Before: side(before), After: side(after),
		Caches: []Cache{}, Owners: []Owner{}, Sites: []Site{}, Meminfo: []Meminfo{}, Notes: []string{}, Checks: []CheckResult{}}
	d.Total.Excluded = []string{}
	switch {
	case before.Dump.Release != after.Dump.Release:
		d.note("different kernels (%s before, %s after): caches are matched by name and object size; a struct that changed size is a different cache", before.Dump.Release, after.Dump.Release)
	case before.Dump.BuildID != after.Dump.BuildID && before.Dump.BuildID != "" && after.Dump.BuildID != "":
		d.note("same release %s, different builds (build-id %s before, %s after)", before.Dump.Release, before.Dump.BuildID, after.Dump.BuildID)
	}
	for _, s := range []*summary.Summary{before, after} {
		if s.Partial {
			d.note("%s is partial (memory missing from the dump): its partial caches, and the caches missing from it, are marked and never counted as growth", s.Dump.File)
		}
	}
	d.cacheNames, d.ownerNames = map[string]bool{}, map[string]bool{}
	for _, s := range []*summary.Summary{before, after} {
		for _, c := range s.Caches {
			d.cacheNames[c.Name] = true
		}
		for _, o := range s.Owners {
			d.ownerNames[o.Owner] = true
		}
	}
	partialCaches := d.caches(before, after, o)
	d.owners(before, after, partialCaches, o)
	d.sites(before, after, partialCaches)
	d.meminfo(before, after, o)
	return d, nil
}

func side(s *summary.Summary) Side {
	return Side{File: s.Dump.File, Hostname: s.Dump.Hostname, Release: s.Dump.Release, BuildID: s.Dump.BuildID,
		CrashTime: s.Dump.CrashTime, Partial: s.Partial}
}

func (d *Diff) note(format string, a ...any) { d.Notes = append(d.Notes, fmt.Sprintf(format, a...)) }

type cacheKey struct {
	name string
	size int64
}

func counts(c *summary.Cache) *Counts {
	return &Counts{c.Allocated, c.Total, c.Slabs, c.Bytes}
}

// caches matches the two sides' caches and returns the names partial on
// either side.
func (d *Diff) caches(before, after *summary.Summary, o Options) map[string]bool {
	// Several caches may share a name and size: the n-th before matches the n-th after.
	index := func(s *summary.Summary) (map[cacheKey][]*summary.Cache, map[string]*summary.Cache) {
		byKey := map[cacheKey][]*summary.Cache{}
		alias := map[string]*summary.Cache{}
		for i := range s.Caches {
			c := &s.Caches[i]
			k := cacheKey{c.Name, c.ObjectSize}
			byKey[k] = append(byKey[k], c)
			for _, a := range c.Aliases {
				alias[a] = c
			}
		}
		return byKey, alias
	}
	_, bAlias := index(before)
	aKeys, aAlias := index(after)
	names := func(s *summary.Summary) map[string]bool {
		m := map[string]bool{}
		for _, c := range s.Caches {
			m[c.Name] = true
		}
		return m
	}
	bNames, aNames := names(before), names(after)
	partial := map[string]bool{}
	used := map[*summary.Cache]bool{}
	var rows []Cache
	add := func(b, a *summary.Cache) {
		r := Cache{}
		if b != nil {
			r.Name, r.ObjectSize, r.Before = b.Name, b.ObjectSize, counts(b)
		}
		if a != nil {
			r.Name, r.ObjectSize, r.After = a.Name, a.ObjectSize, counts(a)
		}
		// A cache missing from a partial side may be one it could not read
		// (its struct kmem_cache lost with the rest): partial there too.
		r.Partial = partialSide(b != nil && b.Partial || b == nil && before.Partial, a != nil && a.Partial || a == nil && after.Partial)
		switch {
		case b != nil && a != nil && *r.Before == *r.After:
			r.Status = Same
		case b != nil && a != nil:
			r.Status = Changed
		case b != nil:
			r.Status = Vanished
		default:
			r.Status = Appeared
		}
		if r.Partial != "" {
			partial[r.Name] = true
		} else {
			var zero Counts
			bc, ac := zero, zero
			if r.Before != nil {
				bc = *r.Before
			}
			if r.After != nil {
				ac = *r.After
			}
			delta := ac.sub(bc)
			r.Delta = &delta
			if bc.Bytes > 0 {
				ratio := float64(ac.Bytes) / float64(bc.Bytes)
				r.Ratio = &ratio
			}
		}
		// A partial side may have lost the aliases with the rest (kernfs).
		if b != nil && a != nil && !slices.Equal(b.Aliases, a.Aliases) && !before.Partial && !after.Partial {
			r.Note = fmt.Sprintf("aliases %v before, %v after", b.Aliases, a.Aliases)
		}
		rows = append(rows, r)
	}
	for i := range before.Caches {
		b := &before.Caches[i]
		k := cacheKey{b.Name, b.ObjectSize}
		if as := aKeys[k]; len(as) > 0 {
			aKeys[k] = as[1:]
			used[as[0]] = true
			add(b, as[0])
			continue
		}
		if y := aAlias[b.Name]; y != nil && !aNames[b.Name] {
			rows = append(rows, Cache{Name: b.Name, ObjectSize: b.ObjectSize, Status: Merged, Before: counts(b),
				Partial: partialSide(b.Partial, false),
				Note:    fmt.Sprintf("after, merged into %s (its objects are counted in %s's row)", y.Name, y.Name)})
			d.note("%s is its own cache before and merged into %s after: matched through its aliases, without a delta", b.Name, y.Name)
			if b.Partial {
				partial[b.Name] = true
			}
			continue
		}
		add(b, nil)
	}
	for i := range after.Caches {
		a := &after.Caches[i]
		if used[a] {
			continue
		}
		if y := bAlias[a.Name]; y != nil && !bNames[a.Name] {
			rows = append(rows, Cache{Name: a.Name, ObjectSize: a.ObjectSize, Status: Merged, After: counts(a),
				Partial: partialSide(false, a.Partial),
				Note:    fmt.Sprintf("before, merged into %s (its objects were counted in %s's row)", y.Name, y.Name)})
			d.note("%s was merged into %s before and is its own cache after: matched through its aliases, without a delta", a.Name, y.Name)
			if a.Partial {
				partial[a.Name] = true
			}
			continue
		}
		add(nil, a)
	}
	// A name on both sides with different object sizes is two caches; say why.
	for i := range rows {
		r := &rows[i]
		if r.Status == Appeared && bNames[r.Name] || r.Status == Vanished && aNames[r.Name] {
			r.Note = "object size differs on the other side: not the same cache"
		}
	}
	// Totals leave out the caches partial on either side, whole.
	for _, c := range before.Caches {
		if !partial[c.Name] {
			d.Total.Before += c.Bytes
		}
	}
	for _, c := range after.Caches {
		if !partial[c.Name] {
			d.Total.After += c.Bytes
		}
	}
	d.Total.Delta = d.Total.After - d.Total.Before
	if d.Total.Before > 0 {
		r := float64(d.Total.After) / float64(d.Total.Before)
		d.Total.Ratio = &r
	}
	for n := range partial {
		d.Total.Excluded = append(d.Total.Excluded, n)
	}
	sort.Strings(d.Total.Excluded)
	for _, r := range rows {
		if r.Status != Same || o.All || r.Note != "" {
			d.Caches = append(d.Caches, r)
		}
	}
	sort.SliceStable(d.Caches, func(i, j int) bool {
		a, b := &d.Caches[i], &d.Caches[j]
		if (a.Delta == nil) != (b.Delta == nil) {
			return a.Delta != nil
		}
		if a.Growth() != b.Growth() {
			return a.Growth() > b.Growth()
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.ObjectSize < b.ObjectSize
	})
	return partial
}

func partialSide(before, after bool) string {
	switch {
	case before && after:
		return "both"
	case before:
		return "before"
	case after:
		return "after"
	}
	return ""
}

func (d *Diff) owners(before, after *summary.Summary, partial map[string]bool, o Options) {
	type key struct{ owner, cache string }
	type pair struct{ b, a summary.Owner }
	m := map[key]*pair{}
	for _, ow := range before.Owners {
		m[key{ow.Owner, ow.Cache}] = &pair{b: ow}
	}
	for _, ow := range after.Owners {
		k := key{ow.Owner, ow.Cache}
		if m[k] == nil {
			m[k] = &pair{}
		}
		m[k].a = ow
	}
	byOwner := map[string]*Owner{}
	for k, p := range m {
		oc := OwnerCache{Cache: k.cache, ObjectsBefore: p.b.Objects, ObjectsAfter: p.a.Objects, BytesBefore: p.b.Bytes, BytesAfter: p.a.Bytes,
			Partial: partial[k.cache]}
		oc.DeltaObjects, oc.DeltaBytes = oc.ObjectsAfter-oc.ObjectsBefore, oc.BytesAfter-oc.BytesBefore
		ow := byOwner[k.owner]
		if ow == nil {
			ow = &Owner{Owner: k.owner, Caches: []OwnerCache{}}
			byOwner[k.owner] = ow
		}
		ow.ObjectsBefore += oc.ObjectsBefore
		ow.ObjectsAfter += oc.ObjectsAfter
		ow.BytesBefore += oc.BytesBefore
		ow.BytesAfter += oc.BytesAfter
		if oc.Partial {
			ow.Partial = true
		} else {
			ow.DeltaObjects += oc.DeltaObjects
			ow.DeltaBytes += oc.DeltaBytes
		}
		if oc.DeltaObjects != 0 || oc.DeltaBytes != 0 || o.All {
			ow.Caches = append(ow.Caches, oc)
		}
	}
	for _, ow := range byOwner {
		if len(ow.Caches) == 0 {
			continue
		}
		sort.Slice(ow.Caches, func(i, j int) bool {
			a, b := ow.Caches[i], ow.Caches[j]
			if a.DeltaBytes != b.DeltaBytes {
				return a.DeltaBytes > b.DeltaBytes
			}
			return a.Cache < b.Cache
		})
		d.Owners = append(d.Owners, *ow)
	}
	sort.Slice(d.Owners, func(i, j int) bool {
		a, b := d.Owners[i], d.Owners[j]
		if a.DeltaBytes != b.DeltaBytes {
			return a.DeltaBytes > b.DeltaBytes
		}
		return a.Owner < b.Owner
	})
}

func (d *Diff) sites(before, after *summary.Summary, partial map[string]bool) {
	if !before.Tracked && !after.Tracked {
		return
	}
	if before.Tracked != after.Tracked {
		d.note("allocation tracks only %s: call-site deltas compare with nothing on the other side", map[bool]string{true: "before", false: "after"}[before.Tracked])
	}
	type key struct{ cache, site string }
	m := map[key]*Site{}
	var order []key
	get := func(s summary.Site) *Site {
		k := key{s.Cache, s.Site}
		if m[k] == nil {
			m[k] = &Site{Cache: s.Cache, Site: s.Site, Module: s.Module, Partial: partial[s.Cache]}
			order = append(order, k)
		}
		return m[k]
	}
	var bBytes, aBytes = map[key]int64{}, map[key]int64{}
	for _, s := range before.Sites {
		st := get(s)
		st.ObjectsBefore += s.Objects
		bBytes[key{s.Cache, s.Site}] += s.Bytes
	}
	for _, s := range after.Sites {
		st := get(s)
		st.ObjectsAfter += s.Objects
		aBytes[key{s.Cache, s.Site}] += s.Bytes
	}
	for _, k := range order {
		st := m[k]
		st.DeltaObjects, st.DeltaBytes = st.ObjectsAfter-st.ObjectsBefore, aBytes[k]-bBytes[k]
		if st.DeltaObjects != 0 || st.DeltaBytes != 0 {
			d.Sites = append(d.Sites, *st)
		}
	}
	sort.SliceStable(d.Sites, func(i, j int) bool {
		a, b := d.Sites[i], d.Sites[j]
		if a.DeltaBytes != b.DeltaBytes {
			return a.DeltaBytes > b.DeltaBytes
		}
		if a.Cache != b.Cache {
			return a.Cache < b.Cache
		}
		return a.Site < b.Site
	})
}

func (d *Diff) meminfo(before, after *summary.Summary, o Options) {
	bv := map[string]summary.MeminfoLine{}
	for _, l := range before.Meminfo {
		bv[l.Name] = l
	}
	seen := map[string]bool{}
	// The after side's line order is the kernel's; lines gone are appended.
	for _, l := range after.Meminfo {
		seen[l.Name] = true
		a := l.Value
		m := Meminfo{Name: l.Name, Unit: l.Unit, After: &a}
		if b, ok := bv[l.Name]; ok {
			v := b.Value
			m.Before, m.Delta = &v, a-v
		}
		if m.Before == nil || m.Delta != 0 || o.All {
			d.Meminfo = append(d.Meminfo, m)
		}
	}
	for _, l := range before.Meminfo {
		if !seen[l.Name] {
			v := l.Value
			d.Meminfo = append(d.Meminfo, Meminfo{Name: l.Name, Unit: l.Unit, Before: &v, Delta: -v})
		}
	}
}

// Empty tells whether nothing changed.
func (d *Diff) Empty() bool {
	for _, c := range d.Caches {
		if c.Status != Same {
			return false
		}
	}
	for _, o := range d.Owners {
		for _, c := range o.Caches {
			if c.DeltaObjects != 0 || c.DeltaBytes != 0 {
				return false
			}
		}
	}
	for _, m := range d.Meminfo {
		if m.Delta != 0 || m.Before == nil || m.After == nil {
			return false
		}
	}
	return len(d.Sites) == 0
}
