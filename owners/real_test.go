package owners_test

import (
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/testkernel"
	"github.com/vmleak/vmleak/owners"
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
