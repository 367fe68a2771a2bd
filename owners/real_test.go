package owners_test

import (
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/testkernel"
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

// On the slub_debug=U dump every allocated object is counted at one call
// site (or as unknown) exactly once, and the test module's cache objects
// are all attributed to the test module, by their allocation tracks.
func TestTrackedAllocations(t *testing.T) {
	m := fixture.Load(t, "bookworm-slubdbg")
	for _, d := range m.Dumps {
		t.Run(d.File, func(t *testing.T) {
			k := testkernel.Open(t, m, d)
			w, err := walk.New(k)
			if err != nil {
				t.Fatal(err)
			}
			c, err := w.Census()
			if err != nil {
				t.Fatal(err)
			}
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
				t.Fatal("no cache stores tracks on the slub_debug=U dump")
			}
			obj := c.Cache(m.TestModule.Cache)
			if want := int64(m.TestModule.NObj); module != want || moduleBytes != want*int64(obj.ObjectSize) {
				t.Errorf("%s: %d objects, %d bytes attributed to %s; want %d, %d", m.TestModule.Cache, module, moduleBytes, m.TestModule.Module, want, want*int64(obj.ObjectSize))
			}
			t.Logf("%d call sites over %d tracked caches", len(sites), tracked)
		})
	}
}
