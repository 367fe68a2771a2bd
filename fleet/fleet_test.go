package fleet

import (
	"database/sql"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/testkernel"
	"github.com/vmleak/vmleak/summary"
	"github.com/vmleak/vmleak/walk"
)

// dump is what the checks need of one summarized dump, the numbers taken
// from its census (not from the summary the engine reads).
type dump struct {
	name                string // fixture/file
	file, host, release string
	boot, crash         time.Time
	partial             bool
	caches              map[key]*walk.CacheStats
	owners              map[string][]string // cache -> modules (from the summary: attribution, not census)
	fixture             *fixture.Manifest
	index               int
	slabBytes           int64
}

type key struct {
	name string
	size int64
}

// summarizeLab writes a Parquet summary of every capture of every fixture
// (one file per capture: a capture's formats hold the same memory).
func summarizeLab(t *testing.T, dir string) []*dump {
	var out []*dump
	for _, m := range fixture.All(t) {
		seen := map[int]bool{}
		for _, d := range m.Dumps {
			if seen[d.Index] {
				continue
			}
			seen[d.Index] = true
			k := testkernel.Open(t, m, d)
			w, err := walk.New(k)
			if err != nil {
				t.Fatal(err)
			}
			c, err := w.Census()
			if err != nil {
				t.Fatal(err)
			}
			w.SetAliases(c)
			s, err := summary.Take(k, w, c, summary.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := summary.WriteFile(filepath.Join(dir, m.Name+"-"+d.File+".parquet"), s, summary.Parquet); err != nil {
				t.Fatal(err)
			}
			x := &dump{name: m.Name + "/" + d.File, file: s.Dump.File, host: s.Dump.Hostname, release: s.Dump.Release,
				boot: *s.Dump.BootTime, crash: *s.Dump.CrashTime, partial: s.Partial, fixture: m, index: d.Index,
				caches: map[key]*walk.CacheStats{}, owners: map[string][]string{}}
			for _, cs := range c.Caches {
				x.caches[key{cs.Name, int64(cs.ObjectSize)}] = cs
				x.slabBytes += int64(cs.MemoryBytes())
			}
			for _, sc := range s.Caches {
				if len(sc.Owners) > 0 {
					x.owners[sc.Name] = sc.Owners
				}
			}
			out = append(out, x)
			k.Close()
		}
	}
	return out
}

func query(t *testing.T, db *sql.DB, file string, args ...any) [][]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "queries", file))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(string(b), args...)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, vals)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// The lab's summaries in DuckDB: each committed query's answer is what the
// census says, computed here the plain way.
func TestFleetQueries(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	dumps := summarizeLab(t, dir)
	t.Logf("%d summaries written in %v", len(dumps), time.Since(start).Round(time.Millisecond))
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The one engine-specific line: the same files are a table elsewhere.
	if _, err := db.Exec(fmt.Sprintf("CREATE VIEW summaries AS SELECT * FROM read_parquet('%s')", filepath.Join(dir, "*.parquet"))); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM summaries").Scan(&n); err != nil || n != len(dumps) {
		t.Fatalf("%d rows in DuckDB, %d summaries written (%v)", n, len(dumps), err)
	}
	releases := map[string]bool{}
	for _, d := range dumps {
		releases[d.release] = true
	}
	t.Run("top_cache_growth", func(t *testing.T) {
		for rel := range releases {
			got := query(t, db, "top_cache_growth.sql", sql.Named("release", rel))
			want := topGrowth(dumps, rel)
			if !equalRows(got, want) {
				t.Errorf("%s:\nDuckDB %v\nwant   %v", rel, got, want)
			}
			t.Logf("%s: %d caches grew; top %v", rel, len(got), first(got))
		}
		// The before/after pair: the test module's cache grew most, by the slabs the guest added.
		pair := fixture.Load(t, "bookworm-pair")
		got := query(t, db, "top_cache_growth.sql", sql.Named("release", pair.KernelRelease))
		if len(got) == 0 || got[0][0] != pair.TestModule.Cache || got[0][4] != grownSlabs(t, pair) {
			t.Errorf("6.1: top growth %v, want %s by %d slabs", first(got), pair.TestModule.Cache, grownSlabs(t, pair))
		}
	})
	t.Run("slab_outliers", func(t *testing.T) {
		got := query(t, db, "slab_outliers.sql")
		want := outliers(dumps)
		if !equalRows(got, want) {
			t.Errorf("DuckDB %v\nwant   %v", got, want)
		}
		for _, r := range got {
			t.Logf("outlier: %v", r)
		}
	})
	t.Run("largest_cache_owners", func(t *testing.T) {
		got := query(t, db, "largest_cache_owners.sql")
		want := largestOwners(dumps)
		if !equalRows(got, want) || len(got) == 0 {
			t.Errorf("DuckDB %v\nwant   %v", got, want)
		}
		t.Logf("%v", got)
	})
}

func first(rows [][]any) any {
	if len(rows) == 0 {
		return nil
	}
	return rows[0]
}

// grownSlabs is the test module's growth between the pair's two dumps
// (growslabs steps between them, testdata/vmcores/guest/init).
func grownSlabs(t *testing.T, m *fixture.Manifest) int64 {
	dumps, n := 0, int64(0)
	for _, step := range strings.Split(m.Steps, ",") {
		if step == "dump" {
			dumps++
		} else if v, ok := strings.CutPrefix(step, "growslabs:"); ok && dumps == 1 {
			var k int64
			if _, err := fmt.Sscan(v, &k); err != nil {
				t.Fatal(err)
			}
			n += k
		}
	}
	return n
}

// topGrowth is top_cache_growth.sql's definition, in Go over the census.
func topGrowth(dumps []*dump, release string) [][]any {
	type boot struct {
		host string
		boot time.Time
	}
	series := map[boot][]*dump{}
	for _, d := range dumps {
		if d.release == release {
			b := boot{d.host, d.boot}
			series[b] = append(series[b], d)
		}
	}
	type acc struct{ bytes, objects, slabs, n int64 }
	sum := map[key]*acc{}
	for _, ds := range series {
		sort.Slice(ds, func(i, j int) bool {
			if !ds[i].crash.Equal(ds[j].crash) {
				return ds[i].crash.Before(ds[j].crash)
			}
			return ds[i].file < ds[j].file
		})
		for i := 1; i < len(ds); i++ {
			a, b := ds[i-1], ds[i]
			if a.partial || b.partial {
				continue
			}
			for k, cb := range b.caches {
				ca, ok := a.caches[k]
				if !ok {
					continue
				}
				s := sum[k]
				if s == nil {
					s = &acc{}
					sum[k] = s
				}
				s.bytes += int64(cb.MemoryBytes()) - int64(ca.MemoryBytes())
				s.objects += cb.Allocated - ca.Allocated
				s.slabs += cb.Slabs - ca.Slabs
				s.n++
			}
		}
	}
	var keys []key
	for k, s := range sum {
		if s.bytes > 0 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if sum[a].bytes != sum[b].bytes {
			return sum[a].bytes > sum[b].bytes
		}
		if a.name != b.name {
			return a.name < b.name
		}
		return a.size < b.size
	})
	var rows [][]any
	for i, k := range keys {
		if i == 20 {
			break
		}
		s := sum[k]
		rows = append(rows, []any{k.name, k.size, s.bytes, s.objects, s.slabs, s.n})
	}
	return rows
}

// quantile is DuckDB's quantile_cont: linear between the nearest ranks.
func quantile(xs []float64, q float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	pos := q * float64(len(s)-1)
	lo := int(math.Floor(pos))
	if lo+1 >= len(s) {
		return s[lo]
	}
	return s[lo] + (pos-float64(lo))*(s[lo+1]-s[lo])
}

// outliers is slab_outliers.sql's definition, in Go over the census.
func outliers(dumps []*dump) [][]any {
	byRel := map[string][]*dump{}
	for _, d := range dumps {
		if !d.partial {
			byRel[d.release] = append(byRel[d.release], d)
		}
	}
	type row struct {
		d       *dump
		med, md float64
		z       float64
	}
	var rs []row
	for _, ds := range byRel {
		var xs []float64
		for _, d := range ds {
			xs = append(xs, float64(d.slabBytes))
		}
		med := quantile(xs, 0.5)
		var dev []float64
		for _, x := range xs {
			dev = append(dev, math.Abs(x-med))
		}
		md := quantile(dev, 0.5)
		if len(ds) < 3 || md == 0 {
			continue
		}
		for _, d := range ds {
			if math.Abs(float64(d.slabBytes)-med) > 3.5*1.4826*md {
				rs = append(rs, row{d, med, md, (float64(d.slabBytes) - med) / (1.4826 * md)})
			}
		}
	}
	sort.Slice(rs, func(i, j int) bool {
		if math.Abs(rs[i].z) != math.Abs(rs[j].z) {
			return math.Abs(rs[i].z) > math.Abs(rs[j].z)
		}
		return rs[i].d.file < rs[j].d.file
	})
	var out [][]any
	for _, r := range rs {
		out = append(out, []any{r.d.file, r.d.host, r.d.release, r.d.crash, r.d.slabBytes, r.med, r.md, r.z})
	}
	return out
}

// largestOwners is largest_cache_owners.sql's definition, in Go.
func largestOwners(dumps []*dump) [][]any {
	count := map[string]int64{}
	caches := map[string]map[string]bool{}
	for _, d := range dumps {
		var best *walk.CacheStats
		for _, cs := range d.caches {
			if len(d.owners[cs.Name]) == 0 {
				continue
			}
			if best == nil || cs.MemoryBytes() > best.MemoryBytes() || cs.MemoryBytes() == best.MemoryBytes() && cs.Name < best.Name {
				best = cs
			}
		}
		if best == nil {
			continue
		}
		for _, m := range d.owners[best.Name] {
			count[m]++
			if caches[m] == nil {
				caches[m] = map[string]bool{}
			}
			caches[m][best.Name] = true
		}
	}
	var mods []string
	for m := range count {
		mods = append(mods, m)
	}
	sort.Slice(mods, func(i, j int) bool {
		if count[mods[i]] != count[mods[j]] {
			return count[mods[i]] > count[mods[j]]
		}
		return mods[i] < mods[j]
	})
	var out [][]any
	for _, m := range mods {
		var cs []string
		for c := range caches[m] {
			cs = append(cs, c)
		}
		sort.Strings(cs)
		out = append(out, []any{m, count[m], strings.Join(cs, ",")})
	}
	return out
}

// equalRows compares DuckDB's rows with Go's, by value: integers of any
// width alike, floats to a relative 1e-9, times to the second.
func equalRows(got, want [][]any) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if len(got[i]) != len(want[i]) {
			return false
		}
		for j := range got[i] {
			if !equalValue(got[i][j], want[i][j]) {
				return false
			}
		}
	}
	return true
}

func equalValue(g, w any) bool {
	num := func(v any) (float64, bool) {
		r := reflect.ValueOf(v)
		switch r.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			return float64(r.Int()), true
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			return float64(r.Uint()), true
		case reflect.Float32, reflect.Float64:
			return r.Float(), true
		}
		return 0, false
	}
	if a, ok := num(g); ok {
		b, ok := num(w)
		return ok && (a == b || math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b)))
	}
	if a, ok := g.(time.Time); ok {
		b, ok := w.(time.Time)
		return ok && a.Unix() == b.Unix()
	}
	return reflect.DeepEqual(g, w)
}
