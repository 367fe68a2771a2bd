package walk_test

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/oracle"
	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/walk"
)

type result struct {
	k   *kernel.Kernel
	w   *walk.Walker
	c   *walk.Census
	err error
}

var (
	censusMu    sync.Mutex
	censusCache = map[string]*result{}
)

// census opens a fixture dump once per test binary and takes its census.
func census(t *testing.T, m *fixture.Manifest, d fixture.DumpFile) (*kernel.Kernel, *walk.Walker, *walk.Census) {
	t.Helper()
	censusMu.Lock()
	defer censusMu.Unlock()
	p := m.DumpPath(d)
	r := censusCache[p]
	if r == nil {
		r = &result{}
		r.k, r.err = kernel.Open(p, kernel.Options{Vmlinux: m.Vmlinux()})
		if r.err == nil {
			r.w, r.err = walk.New(r.k)
		}
		if r.err == nil {
			r.c, r.err = r.w.Census()
		}
		if r.err == nil {
			r.w.SetAliases(r.c)
		}
		censusCache[p] = r
	}
	if r.err != nil {
		t.Fatalf("%s: %v", p, r.err)
	}
	return r.k, r.w, r.c
}

func forEachDump(t *testing.T, fn func(t *testing.T, m *fixture.Manifest, d fixture.DumpFile)) {
	for _, m := range fixture.All(t) {
		for _, d := range m.Dumps {
			t.Run(m.Name+"/"+d.File, func(t *testing.T) { fn(t, m, d) })
		}
	}
}

// forEachDumpAnyArch is forEachDump over the arm64 fixtures too, for the
// tests whose oracles are the guest's own.
func forEachDumpAnyArch(t *testing.T, fn func(t *testing.T, m *fixture.Manifest, d fixture.DumpFile)) {
	forEachDump(t, fn)
	for _, m := range fixture.ARM64(t) {
		for _, d := range m.Dumps {
			t.Run(m.Name+"/"+d.File, func(t *testing.T) { fn(t, m, d) })
		}
	}
}

// Every row of crash's kmem -s, on every dump crash can read (all the 5.10
// and 6.1 fixtures, every format), equals the census: same caches in the same order,
// same object size, allocated, total, slabs and slab size.
func TestCensusEqualsCrash(t *testing.T) {
	compared := 0
	forEachDump(t, func(t *testing.T, m *fixture.Manifest, d fixture.DumpFile) {
		crashFile := "crash/" + d.File + ".kmem-s"
		if d.Format == "flattened" {
			// crash reads the rearranged twin; the memory is the same.
			crashFile = "crash/" + strings.Replace(d.File, "flat-", "", 1) + ".kmem-s"
		}
		if !m.HasOracle(crashFile) {
			if m.CrashReads() {
				t.Fatalf("no crash output %s for a %s dump", crashFile, m.KernelRelease)
			}
			t.Skipf("crash cannot read %s kernels (recorded in oracle/crash/*.error); checked against /proc/slabinfo instead", m.KernelRelease)
		}
		rows, err := oracle.ParseKmemS(m.Oracle(t, crashFile))
		if err != nil {
			t.Fatal(err)
		}
		k, _, c := census(t, m, d)
		if len(rows) != len(c.Caches) {
			t.Errorf("crash lists %d caches, census %d", len(rows), len(c.Caches))
		}
		var off []int // rows where crash and the census disagree
		for i := range min(len(rows), len(c.Caches)) {
			r, cs := rows[i], c.Caches[i]
			have := fmt.Sprintf("%x %d %d %d %d %dk %s", cs.Addr, cs.ObjectSize, cs.Allocated, cs.Total, cs.Slabs, cs.SlabBytes/1024, cs.Name)
			want := fmt.Sprintf("%x %d %d %d %d %s %s", r.Cache, r.ObjSize, r.Allocated, r.Total, r.Slabs, r.SSize, r.Name)
			if have == want {
				continue
			}
			// The oracles disagree. crash computes from the kernel's counters: it
			// must equal our counter method. Then the census must equal an
			// independent count of every object (naive_test.go, which shares no
			// code with walk): then the census is right and crash is off.
			cnt := cs.Counters
			if cnt.Allocated != r.Allocated || cnt.Total != r.Total || cnt.Slabs != r.Slabs {
				t.Errorf("row %d: census %q, crash %q, and crash is not the counter method (%+v)", i, have, want, cnt)
				continue
			}
			if cs.Addr != r.Cache || cs.Name != r.Name || int64(cs.ObjectSize) != r.ObjSize || fmt.Sprintf("%dk", cs.SlabBytes/1024) != r.SSize {
				t.Errorf("row %d: census %q, crash %q: not the same cache", i, have, want)
				continue
			}
			off = append(off, i)
		}
		if len(off) > 0 {
			var names []string
			for _, i := range off {
				names = append(names, c.Caches[i].Name)
			}
			naive, err := naiveCensus(k, names)
			if err != nil {
				t.Fatalf("naive count of %v: %v", names, err)
			}
			for _, i := range off {
				cs := c.Caches[i]
				n := naive[cs.Addr]
				if n == nil || n.Allocated != cs.Allocated || n.Total != cs.Total || n.Slabs != cs.Slabs {
					t.Errorf("row %d %s: crash (the counters) %d/%d/%d, census %d/%d/%d, naive count %v: the census is not confirmed",
						i, cs.Name, rows[i].Allocated, rows[i].Total, rows[i].Slabs, cs.Allocated, cs.Total, cs.Slabs, n)
					continue
				}
				t.Logf("%s: crash says %d allocated (the kernel's counters), the census and an independent count of every object say %d: crash is off",
					cs.Name, rows[i].Allocated, cs.Allocated)
			}
		}
		compared++
	})
	if compared == 0 {
		t.Fatal("no dump was compared with crash")
	}
}

// The naive reader (naive_test.go), which shares no code with walk, counts
// what the census counts on every non-flattened 6.1 dump file of the genuine
// kdump, slub_debug and NUMA fixtures, on the 5.10 kdump and QEMU files (slab
// fields in struct page there), and on the 6.12 dumps (slab pages told by
// page type), for the test module's cache (5.10, 6.1) or shmem_inode_cache
// (6.12), kmalloc-64, dentry, task_struct and the cache with the most free
// objects on its slabs' own freelists: allocated, total and slabs equal, and
// so do the free objects on slabs' own and on CPU freelists. The 7.x dumps
// are skipped: the naive reader does not count sheaves (see naive_test.go).
func TestNaiveEqualsCensus(t *testing.T) {
	start := time.Now()
	var files int
	var sum naiveCount
	for _, name := range []string{"bullseye-kdump", "bullseye-qemu", "bookworm-kdump", "bookworm-slubdbg", "bookworm-numa", "trixie-qemu", "sid-qemu"} {
		t.Run(name, func(t *testing.T) {
			m := fixture.Load(t, name)
			for _, d := range m.Dumps {
				if d.Format == "flattened" {
					continue
				}
				t.Run(d.File, func(t *testing.T) {
					k, _, c := census(t, m, d)
					names := []string{"shmem_inode_cache"} // the guest's tmpfs files
					if m.TestModule != nil {
						names = []string{m.TestModule.Cache}
					}
					names = append(names, "kmalloc-64", "dentry", "task_struct")
					// The cache with the most free objects on its slabs' own
					// freelists: partial slabs, on node lists or (all of them on
					// the 5.10 kdump) CPU partial lists.
					var most *walk.CacheStats
					var mostFree int64 = -1
					for _, cs := range c.Caches {
						if p := cs.Free.SlabFreelists; p > mostFree && !slices.Contains(names, cs.Name) {
							most, mostFree = cs, p
						}
					}
					if most == nil || mostFree <= 0 {
						t.Fatalf("no cache with free objects on its slabs' freelists")
					}
					names = append(names, most.Name)
					t0 := time.Now()
					naive, err := naiveCensus(k, names)
					if errors.Is(err, errNaiveSheaves) {
						t.Skipf("%s: %v; the 7.x census is checked against /proc/slabinfo (TestCensusWithinSlabinfo)", m.KernelRelease, err)
					}
					if err != nil {
						t.Fatal(err)
					}
					for _, name := range names {
						cs := c.Cache(name)
						if cs == nil {
							t.Errorf("no cache %s in the census", name)
							continue
						}
						n := naive[cs.Addr]
						if n == nil || n.Slabs == 0 {
							t.Errorf("%s: the naive reader found no slab of it (%v)", name, n)
							continue
						}
						if n.Allocated != cs.Allocated || n.Total != cs.Total || n.Slabs != cs.Slabs ||
							n.SlabFree != cs.Free.SlabFreelists || n.CPUFree != cs.Free.CPUFreelists || n.RCUPending != cs.RCUPendingSlabs {
							t.Errorf("%s: naive %v; census %d/%d/%d, free %d on slabs + %d on CPUs, %d RCU-pending",
								name, n, cs.Allocated, cs.Total, cs.Slabs, cs.Free.SlabFreelists, cs.Free.CPUFreelists, cs.RCUPendingSlabs)
						}
						sum.Slabs += n.Slabs
						sum.SlabFree += n.SlabFree
						sum.CPUFree += n.CPUFree
					}
					files++
					t.Logf("naive count of %v (%s has %d free objects on slab freelists): %v", names, most.Name, mostFree, time.Since(t0).Round(time.Millisecond))
				})
			}
		})
	}
	if files == 0 {
		return // every fixture skipped
	}
	// The reader's freelist and CPU-freelist paths were exercised, not just
	// its zeros compared.
	if sum.SlabFree == 0 || sum.CPUFree == 0 {
		t.Errorf("over %d files the naive reader found %d free objects on slabs and %d on CPU freelists: a path went unexercised", files, sum.SlabFree, sum.CPUFree)
	}
	t.Logf("%d files, %d slabs counted naively, in %v (census and kernel open included)", files, sum.Slabs, time.Since(start).Round(time.Millisecond))
}

// countObjects lists a cache's allocated objects one by one.
func countObjects(t *testing.T, w *walk.Walker, cache string) int64 {
	var n int64
	err := w.Objects(cache, false, func(o walk.Object, err error) bool {
		if err != nil {
			t.Errorf("%s: %v", cache, err)
		}
		if o.Allocated {
			n++
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// The per-object listing and the census agree on every cache.
func TestObjectsEqualCensus(t *testing.T) {
	m := fixture.Load(t, "bookworm-numa")
	_, w, c := census(t, m, m.Dumps[0])
	for _, cs := range c.Caches {
		if n := countObjects(t, w, cs.Name); n != cs.Allocated {
			t.Errorf("%s: census %d allocated, listing %d", cs.Name, cs.Allocated, n)
		}
	}
}

// Census and counters agree on every cache of every dump (arm64's too), or the
// disagreement has a known cause recorded with it.
func TestCensusAgreesWithCounters(t *testing.T) {
	forEachDumpAnyArch(t, func(t *testing.T, m *fixture.Manifest, d fixture.DumpFile) {
		_, _, c := census(t, m, d)
		if c.Partial {
			t.Errorf("census partial: %v", c.Warnings)
		}
		for _, cs := range c.Caches {
			if cs.Disagree {
				t.Errorf("%s: %s", cs.Name, cs.Why)
			}
			if len(cs.Corrupt) > 0 {
				t.Errorf("%s: corrupt: %v", cs.Name, cs.Corrupt)
			}
			free := cs.Free.SlabFreelists + cs.Free.CPUFreelists + cs.Free.Sheaves
			if cs.Allocated+free != cs.Total {
				t.Errorf("%s: allocated %d + free %d != total %d", cs.Name, cs.Allocated, free, cs.Total)
			}
		}
		if c.FreelistEncoding != "swab" {
			t.Errorf("freelist encoding %q on a hardened v5.7+ kernel, want swab", c.FreelistEncoding)
		}
	})
}

// The test module's own cache holds exactly what the module says it holds.
func TestTestModuleCache(t *testing.T) {
	forEachDumpAnyArch(t, func(t *testing.T, m *fixture.Manifest, d fixture.DumpFile) {
		if m.TestModule == nil {
			t.Skip("no test module on this kernel")
		}
		kv, err := oracle.ParseKeyValues(m.Oracle(t, d.Oracle+".test-module"))
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := kv["allocated"]; !ok {
			t.Fatalf("%s.test-module has no allocated count: %v", d.Oracle, kv)
		}
		_, _, c := census(t, m, d)
		cs := c.Cache(m.TestModule.Cache)
		if cs == nil {
			t.Fatalf("no cache %s", m.TestModule.Cache)
		}
		if cs.Allocated != kv["allocated"] {
			t.Errorf("%s allocated %d, module holds %d", cs.Name, cs.Allocated, kv["allocated"])
		}
		if len(cs.Aliases) != 0 {
			t.Errorf("%s (with a constructor) was merged with %v", cs.Name, cs.Aliases)
		}
	})
}

// On every dump, each cache's line of the guest's /proc/slabinfo bounds the
// census. For a cache whose line is the same just before and just after the
// dump (QEMU dumps resume the guest), TOTAL and SLABS equal num_objs and
// num_slabs exactly and ALLOCATED <= active_objs (the kernel counts the free
// objects of CPU slabs, and of sheaves, as active). A cache that moved lies
// between its two captures. A kdump has only the "before" capture, taken
// while the kernel was still running, so only quiet-by-construction caches
// (the test module's) are held exactly there.
func TestCensusWithinSlabinfo(t *testing.T) {
	forEachDumpAnyArch(t, func(t *testing.T, m *fixture.Manifest, d fixture.DumpFile) {
		pre, err := oracle.ParseSlabinfo(m.Oracle(t, d.Oracle+".slabinfo"))
		if err != nil {
			t.Fatal(err)
		}
		postName := strings.Replace(d.Oracle, "pre", "post", 1) + ".slabinfo"
		if !m.HasOracle(postName) {
			if m.TestModule == nil {
				t.Skip("no after-dump capture")
			}
			_, _, c := census(t, m, d)
			cs, row := c.Cache(m.TestModule.Cache), pre[m.TestModule.Cache]
			if row.NumObjs == 0 {
				t.Fatalf("%s: not in the guest's slabinfo, or empty: %+v", m.TestModule.Cache, row)
			}
			if cs == nil || cs.Total != row.NumObjs || cs.Slabs != row.NumSlabs || cs.Allocated > row.ActiveObjs {
				t.Errorf("%s: census %+v, slabinfo %+v", m.TestModule.Cache, cs, row)
			}
			return
		}
		post, err := oracle.ParseSlabinfo(m.Oracle(t, postName))
		if err != nil {
			t.Fatal(err)
		}
		_, _, c := census(t, m, d)
		quiet := 0
		for _, cs := range c.Caches {
			a, okA := pre[cs.Name]
			b, okB := post[cs.Name]
			if !okA || !okB {
				t.Errorf("%s: not in the guest's slabinfo", cs.Name)
				continue
			}
			if a == b {
				quiet++
				if cs.Total != a.NumObjs || cs.Slabs != a.NumSlabs || cs.Allocated > a.ActiveObjs {
					t.Errorf("quiet %s: census %d/%d/%d (allocated/total/slabs), slabinfo %d/%d/%d (active/num/slabs)",
						cs.Name, cs.Allocated, cs.Total, cs.Slabs, a.ActiveObjs, a.NumObjs, a.NumSlabs)
				}
				if uint64(a.ObjSize) != cs.Size || uint64(a.ObjPerSlab) != cs.ObjPerSlab {
					t.Errorf("%s: size %d x %d per slab, slabinfo %d x %d", cs.Name, cs.Size, cs.ObjPerSlab, a.ObjSize, a.ObjPerSlab)
				}
				continue
			}
			if !between(cs.Total, a.NumObjs, b.NumObjs) || !between(cs.Slabs, a.NumSlabs, b.NumSlabs) || cs.Allocated > max(a.ActiveObjs, b.ActiveObjs) {
				t.Errorf("moving %s: census %d/%d/%d, before %d/%d/%d, after %d/%d/%d", cs.Name,
					cs.Allocated, cs.Total, cs.Slabs, a.ActiveObjs, a.NumObjs, a.NumSlabs, b.ActiveObjs, b.NumObjs, b.NumSlabs)
			}
		}
		if quiet < len(c.Caches)/2 {
			t.Errorf("only %d of %d caches were quiet: the captures do not bracket the dump", quiet, len(c.Caches))
		}
	})
}

func between(x, a, b int64) bool { return x >= min(a, b) && x <= max(a, b) }

// Aliases equal the guest's /sys/kernel/slab links: every link to a cache's
// directory other than the cache's own name.
func TestAliases(t *testing.T) {
	forEachDumpAnyArch(t, func(t *testing.T, m *fixture.Manifest, d fixture.DumpFile) {
		links := map[string][]string{} // target dir -> link names
		for _, l := range strings.Split(strings.TrimSpace(m.Oracle(t, d.Oracle+".slab-aliases")), "\n") {
			f := strings.Fields(l)
			if len(f) == 2 && !strings.HasPrefix(l, "#") {
				links[f[1]] = append(links[f[1]], f[0])
			}
		}
		_, _, c := census(t, m, d)
		want := map[string]string{}
		for _, names := range links {
			var cache string
			for _, n := range names {
				if c.Cache(n) != nil {
					cache = n
				}
			}
			var al []string
			for _, n := range names {
				if n != cache {
					al = append(al, n)
				}
			}
			if cache == "" && len(names) > 0 {
				// A merged cache whose own name is itself a link.
				t.Errorf("links %v point at no cache on slab_caches", names)
				continue
			}
			sort.Strings(al)
			if len(al) > 0 {
				want[cache] = strings.Join(al, ",")
			}
		}
		// Every kernel here merges caches unless slub_debug turns merging
		// off: no alias at all would make the comparison below "" against ""
		// on every cache.
		noMerge := strings.Contains(" "+m.Guest.Cmdline, " slub_debug")
		if len(want) == 0 && !noMerge {
			t.Errorf("%s.slab-aliases shows no merged cache", d.Oracle)
		}
		if len(want) != 0 && noMerge {
			t.Errorf("%s.slab-aliases shows merged caches %v under slub_debug", d.Oracle, want)
		}
		for _, cs := range c.Caches {
			if have := strings.Join(cs.Aliases, ","); have != want[cs.Name] {
				t.Errorf("%s: aliases %q, /sys/kernel/slab %q", cs.Name, have, want[cs.Name])
			}
		}
	})
}

// filesAt is how many tmpfs files the guest had made before dump n.
func filesAt(m *fixture.Manifest, n int) int64 {
	files, dumps := int64(m.TmpfsFiles), 0
	for _, s := range strings.Split(m.Steps, ",") {
		switch {
		case s == "dump":
			dumps++
			if dumps == n {
				return files
			}
		case strings.HasPrefix(s, "files:"):
			var k int64
			fmt.Sscan(strings.TrimPrefix(s, "files:"), &k)
			files += k
		}
	}
	return files
}

// Known workloads show their counts: every tmpfs file the guest made holds a
// shmem inode; the in-tree isofs module's own cache exists, unmerged and
// empty (nothing is mounted).
func TestKnownWorkloads(t *testing.T) {
	forEachDumpAnyArch(t, func(t *testing.T, m *fixture.Manifest, d fixture.DumpFile) {
		_, _, c := census(t, m, d)
		iso := c.Cache("isofs_inode_cache")
		if iso == nil || iso.Allocated != 0 || len(iso.Aliases) != 0 {
			t.Errorf("isofs_inode_cache: %+v", iso)
		}
		files := filesAt(m, d.Index)
		sh := c.Cache("shmem_inode_cache")
		if sh == nil || sh.Allocated < files {
			t.Fatalf("shmem_inode_cache %+v, guest made %d tmpfs files", sh, files)
		}
		if d.Index < 2 {
			return
		}
		var first fixture.DumpFile
		for _, e := range m.Dumps {
			if e.Index == 1 && e.Format == d.Format {
				first = e
			}
		}
		_, _, c1 := census(t, m, first)
		grew := sh.Allocated - c1.Cache("shmem_inode_cache").Allocated
		added := files - filesAt(m, 1)
		// Other shmem users (the capture's own pipes and files) may add a few.
		if grew < added || grew > added+64 {
			t.Errorf("shmem_inode_cache grew by %d between dumps; the guest made %d files", grew, added)
		}
	})
}

// On the two-node machine every cache's slabs are found on the node whose
// struct kmem_cache_node counts them.
func TestNUMANodes(t *testing.T) {
	m := fixture.Load(t, "bookworm-numa")
	for _, d := range m.Dumps {
		_, _, c := census(t, m, d)
		nodes := map[int]bool{}
		for _, cs := range c.Caches {
			for _, n := range cs.Nodes {
				nodes[n.Node] = true
				if n.Slabs != n.KernelSlabs || n.Total != n.KernelTotal {
					t.Errorf("%s node %d: census %d slabs/%d objects, kmem_cache_node %d/%d",
						cs.Name, n.Node, n.Slabs, n.Total, n.KernelSlabs, n.KernelTotal)
				}
			}
		}
		if len(nodes) != 2 {
			t.Errorf("slabs on nodes %v, want 0 and 1", nodes)
		}
	}
}
