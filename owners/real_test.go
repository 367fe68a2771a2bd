package owners_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/oracle"
	"github.com/vmleak/vmleak/internal/testkernel"
	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/owners"
	"github.com/vmleak/vmleak/stackdepot"
	"github.com/vmleak/vmleak/symbolize"
	"github.com/vmleak/vmleak/walk"
)

// On every fixture, the modules that create their own caches own them by
// both kinds of evidence: vmleak_test its vmleak_test_obj (6.1 guests) and
// isofs its isofs_inode_cache (every guest loads it); both caches have a
// constructor, so they are never merged.
func TestModulesOwnTheirCaches(t *testing.T) {
	for _, m := range fixture.All(t) {
		d := m.Dumps[0]
		t.Run(m.Name+"/"+d.File, func(t *testing.T) {
			k, _, c := dumpCensus(t, m, d)
			mods, err := k.Modules()
			if err != nil {
				t.Fatal(err)
			}
			got, warnings := owners.CacheOwners(k, c, mods)
			for _, w := range warnings {
				t.Error(w)
			}
			want := map[string]string{"isofs_inode_cache": "isofs"}
			if m.TestModule != nil {
				want[m.TestModule.Cache] = m.TestModule.Module
			}
			for cache, module := range want {
				var o *owners.CacheOwner
				for i := range got {
					if got[i].Cache == cache && got[i].Module == module {
						o = &got[i]
					}
				}
				if o == nil {
					t.Errorf("%s does not own %s; owners: %+v", module, cache, got)
					continue
				}
				kinds := map[string]int{}
				for _, e := range o.Evidence {
					kinds[e.Kind]++
				}
				if kinds[owners.EvidenceDataPointer] == 0 || kinds[owners.EvidenceConstructor] != 1 || o.Merged {
					t.Errorf("%s owns %s on evidence %+v (merged %v), want a data pointer and the constructor", module, cache, o.Evidence, o.Merged)
				}
			}
			for _, o := range got {
				t.Logf("%s owns %s: %d pieces of evidence", o.Module, o.Cache, len(o.Evidence))
			}
		})
	}
}

// trackedFixtures are the slub_debug=U fixtures (6.1, 6.12, 7.x).
func trackedFixtures(t *testing.T) []*fixture.Manifest {
	var out []*fixture.Manifest
	for _, m := range fixture.All(t) {
		if m.SlubDebug() {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		t.Fatal("no slub_debug=U fixture")
	}
	return out
}

// testModules are the test modules a fixture loaded, with their counts.
func testModules(t *testing.T, m *fixture.Manifest) []*fixture.TestModule {
	var out []*fixture.TestModule
	for _, tm := range []*fixture.TestModule{m.TestModule, m.PeerModule} {
		if tm == nil {
			continue
		}
		if tm.LeakSite == "" {
			t.Fatalf("%s: the manifest names no allocating function of %s (a fixture built before they were named: rebuild it)", m.Name, tm.Module)
		}
		out = append(out, tm)
	}
	return out
}

// siteIn tells that a frame is function fn of module mod.
func siteIn(f symbolize.Frame, mod, fn string) bool {
	return f.Module == mod && strings.HasPrefix(f.Symbol, fn+"+")
}

// On the slub_debug=U dumps every allocated object is counted at one call
// site (or as unknown) exactly once; the test module's cache objects are
// all attributed to it by their allocation tracks; and each test module's
// leaked kmalloc objects (and vmleak_test's .bss-referenced ones) are
// exactly the objects of the module function that allocated them — M
// objects, M times the kmalloc cache's object size — with a stack that
// names that function. Two modules leaking into one cache stay apart.
func TestTrackedAllocations(t *testing.T) {
	for _, m := range trackedFixtures(t) {
		for _, d := range m.Dumps {
			if d.Format == "flattened" {
				continue // the same memory as its rearranged twin
			}
			t.Run(m.Name+"/"+d.File, func(t *testing.T) {
				k, w, c := dumpCensus(t, m, d)
				dep, err := stackdepot.New(k)
				if err != nil {
					t.Fatal(err)
				}
				sites, warnings, err := owners.Tracked(w, symbolize.New(w), dep)
				if err != nil {
					t.Fatal(err)
				}
				for _, w := range warnings {
					t.Error(w)
				}
				perCache := map[string]int64{}
				var module, moduleBytes int64
				for _, s := range sites {
					perCache[s.Cache] += s.Objects
					var along int64
					for _, st := range s.Stacks {
						along += st.Objects
					}
					if along > s.Objects {
						t.Errorf("%s at %s: %d objects along its stacks, %d at the site", s.Cache, s.Caller, along, s.Objects)
					}
					if s.Cache == m.TestModule.Cache {
						if s.Module != m.TestModule.Module || len(s.Stack) == 0 {
							t.Errorf("%s objects at %s (module %q), want module %s with a stack", s.Cache, s.Caller, s.Module, m.TestModule.Module)
						}
						module += s.Objects
						moduleBytes += s.Bytes
					}
				}
				tracked := 0
				for _, cs := range c.Caches {
					stores, err := w.StoresUser(cs.Name)
					if err != nil {
						t.Fatal(err)
					}
					if n, ok := perCache[cs.Name]; ok || stores {
						tracked++
						if n != cs.Allocated {
							t.Errorf("%s: %d objects at call sites, the census has %d allocated", cs.Name, n, cs.Allocated)
						}
					}
				}
				if tracked == 0 {
					t.Fatal("no cache stores tracks on a slub_debug=U dump")
				}
				obj := c.Cache(m.TestModule.Cache)
				if want := int64(m.TestModule.NObj); module != want || moduleBytes != want*int64(obj.ObjectSize) {
					t.Errorf("%s: %d objects, %d bytes attributed to %s; want %d, %d", m.TestModule.Cache, module, moduleBytes, m.TestModule.Module, want, want*int64(obj.ObjectSize))
				}
				type want struct {
					module, fn, cache string
					objects           int
				}
				var wants []want
				for _, tm := range testModules(t, m) {
					wants = append(wants, want{tm.Module, tm.LeakSite, "kmalloc-" + kmallocName(tm.LeakSize), tm.Leak})
					if tm.BSSSite != "" {
						wants = append(wants, want{tm.Module, tm.BSSSite, "kmalloc-" + kmallocName(tm.BSSSize), tm.BSS})
					}
				}
				if len(wants) < 3 {
					t.Fatalf("%s loads %d test-module call sites, want both modules' (3)", m.Name, len(wants))
				}
				for _, wt := range wants {
					var objects, bytes int64
					for _, s := range sites {
						if !siteIn(s.Caller, wt.module, wt.fn) {
							continue
						}
						objects += s.Objects
						bytes += s.Bytes
						if s.Cache != wt.cache {
							t.Errorf("%s [%s]: %d objects in %s, want them in %s", wt.fn, wt.module, s.Objects, s.Cache, wt.cache)
						}
						var along int64
						for _, st := range s.Stacks {
							along += st.Objects
							named := false
							for _, f := range st.Frames {
								named = named || siteIn(f, wt.module, wt.fn)
							}
							if !named {
								t.Errorf("%s [%s]: no frame of stack %#x names it: %v", wt.fn, wt.module, st.Handle, st.Frames)
							}
						}
						if along != s.Objects || len(s.Stacks) == 0 {
							t.Errorf("%s [%s]: %d objects along %d stacks, %d at the site", wt.fn, wt.module, along, len(s.Stacks), s.Objects)
						}
					}
					size := int64(c.Cache(wt.cache).ObjectSize)
					if objects != int64(wt.objects) || bytes != int64(wt.objects)*size {
						t.Errorf("%s [%s]: %d objects, %d bytes; want %d, %d (%d x %d)", wt.fn, wt.module, objects, bytes,
							wt.objects, int64(wt.objects)*size, wt.objects, size)
					}
				}
				t.Logf("%d call sites over %d tracked caches", len(sites), tracked)
			})
		}
	}
}

// On every fixture, the report counts every allocated object of the census
// exactly once, under one owner; the modules with their own caches own
// them; on the slub_debug=U dumps the test module holds exactly its cache
// objects by their tracks, each test module exactly its leaked kmalloc
// objects, and vmleak_peer its cache objects — allocated by its freed init
// code, whose tracks name no one — by the cache's ownership evidence.
func TestReportCountsEveryObject(t *testing.T) {
	for _, m := range fixture.All(t) {
		d := m.Dumps[0]
		t.Run(m.Name+"/"+d.File, func(t *testing.T) {
			k, w, c := dumpCensus(t, m, d)
			mods, err := k.Modules()
			if err != nil {
				t.Fatal(err)
			}
			dep, err := stackdepot.New(k)
			if errors.Is(err, kernel.ErrAbsent) && !m.KernelAtLeast(5, 18) {
				dep = nil // no depot before 5.18 (stackdepot's TestEveryKernelsDepot)
			} else if err != nil {
				t.Fatal(err)
			}
			r, err := owners.Build(w, c, mods, symbolize.New(w), dep)
			if err != nil {
				t.Fatal(err)
			}
			var census, counted int64
			for _, cs := range c.Caches {
				census += cs.Allocated
			}
			// owner -> cache -> the share, its evidence kinds joined by "|"
			// where an owner's objects of one cache rest on several.
			share := map[string]map[string]owners.CacheShare{}
			for _, o := range r.Owners {
				var objs int64
				share[o.Owner] = map[string]owners.CacheShare{}
				for _, cs := range o.Caches {
					objs += cs.Objects
					if prev, ok := share[o.Owner][cs.Cache]; ok {
						cs.Objects += prev.Objects
						cs.Bytes += prev.Bytes
						cs.Evidence = prev.Evidence + "|" + cs.Evidence
					}
					share[o.Owner][cs.Cache] = cs
				}
				if objs != o.Objects {
					t.Errorf("%s: %d objects, its caches add up to %d", o.Owner, o.Objects, objs)
				}
				counted += o.Objects
			}
			if counted != census {
				t.Errorf("owners hold %d objects, the census %d", counted, census)
			}
			if _, ok := share["isofs"]["isofs_inode_cache"]; !ok {
				t.Errorf("isofs does not own isofs_inode_cache: %+v", r.Owners)
			}
			tm := m.TestModule
			if tm == nil {
				return
			}
			kv, err := oracle.ParseKeyValues(m.Oracle(t, d.Oracle+".test-module"))
			if err != nil {
				t.Fatal(err)
			}
			held, ok := kv["allocated"]
			if !ok {
				t.Fatalf("%s.test-module has no allocated count", d.Oracle)
			}
			own := share[tm.Module][tm.Cache]
			wantEv := "data-pointer+constructor"
			if m.SlubDebug() {
				wantEv = owners.EvidenceTrack
			}
			if own.Objects != held || own.Evidence != wantEv {
				t.Errorf("%s holds %+v in %s, want the %d objects it says it holds, on %s", tm.Module, own, tm.Cache, held, wantEv)
			}
			if !m.SlubDebug() {
				return
			}
			for _, tm := range testModules(t, m) {
				leakCache := "kmalloc-" + kmallocName(tm.LeakSize)
				// The modules allocate nothing else in this cache.
				if got := share[tm.Module][leakCache]; got.Objects != int64(tm.Leak) || got.Evidence != owners.EvidenceTrack {
					t.Errorf("%s holds %+v in %s, want its %d leaked objects by their tracks", tm.Module, got, leakCache, tm.Leak)
				}
			}
			if p := m.PeerModule; p != nil {
				got := share[p.Module][p.Cache]
				if got.Objects != int64(p.NObj) || got.Evidence != "data-pointer+constructor" {
					t.Errorf("%s holds %+v in %s, want its %d objects by the cache's ownership", p.Module, got, p.Cache, p.NObj)
				}
			}
		})
	}
}

// kmallocName is the kmalloc cache size suffix of an allocation size.
func kmallocName(size int) string {
	for _, s := range []int{8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192} {
		if size <= s {
			if s >= 1024 {
				return fmt.Sprintf("%dk", s/1024)
			}
			return fmt.Sprint(s)
		}
	}
	return "large"
}

// The test module keeps bss kmalloc(bss_size) objects referenced only from
// its .bss: reference evidence finds them, on every 6.1 fixture.
func TestReferences(t *testing.T) {
	for _, m := range fixture.All(t) {
		if m.TestModule == nil {
			continue
		}
		d := m.Dumps[0]
		t.Run(m.Name+"/"+d.File, func(t *testing.T) {
			k, w, _ := dumpCensus(t, m, d)
			mods, err := k.Modules()
			if err != nil {
				t.Fatal(err)
			}
			refs, warnings := owners.References(w, mods)
			for _, w := range warnings {
				t.Error(w)
			}
			tm := m.TestModule
			cache := "kmalloc-" + kmallocName(tm.BSSSize)
			var found *owners.Reference
			for i, r := range refs {
				if r.Module == tm.Module && r.Cache == cache {
					found = &refs[i]
				}
				t.Logf("%s -> %s: %d objects, %d bytes", r.Module, r.Cache, r.Objects, r.Bytes)
			}
			if found == nil || found.Objects != int64(tm.BSS) {
				t.Errorf("%s references %+v in %s, want its %d .bss objects", tm.Module, found, cache, tm.BSS)
			}
		})
	}
}

// Free objects by their free tracks: every free object of every tracked
// cache is counted once, at the site that freed it or as never freed, on
// each slub_debug=U fixture.
func TestFreedSites(t *testing.T) {
	for _, m := range trackedFixtures(t) {
		d := m.Dumps[0]
		t.Run(m.Name+"/"+d.File, func(t *testing.T) {
			k, w, c := dumpCensus(t, m, d)
			dep, err := stackdepot.New(k)
			if err != nil {
				t.Fatal(err)
			}
			sites, warnings, err := owners.Freed(w, symbolize.New(w), dep)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range warnings {
				t.Error(w)
			}
			perCache := map[string]int64{}
			named := int64(0)
			for _, s := range sites {
				perCache[s.Cache] += s.Objects
				if s.Caller.Addr != 0 {
					named += s.Objects
				}
			}
			for _, cs := range c.Caches {
				if free := cs.Total - cs.Allocated; perCache[cs.Name] != free {
					t.Errorf("%s: %d free objects at free sites, the census has %d free", cs.Name, perCache[cs.Name], free)
				}
			}
			if named == 0 {
				t.Error("no free object has a free track")
			}
			t.Logf("%d free sites; %d free objects with a free track", len(sites), named)
		})
	}
}

// dumpCensus opens a fixture dump, its walker and its census (with aliases).
func dumpCensus(t *testing.T, m *fixture.Manifest, d fixture.DumpFile) (*kernel.Kernel, *walk.Walker, *walk.Census) {
	t.Helper()
	k := testkernel.Open(t, m, d)
	w, c := testkernel.Census(t, k)
	return k, w, c
}
