package walk_test

import (
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/walk"
)

// A census is the caller's: changing one, or taking another, leaves the
// other as it was (diff and attribution hold several at once).
func TestCensusOwnedByCaller(t *testing.T) {
	m := fixture.Load(t, "bookworm-pair")
	k, err := kernel.Open(m.DumpPath(m.Dumps[0]), kernel.Options{Vmlinux: m.Vmlinux()})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	w, err := walk.New(k)
	if err != nil {
		t.Fatal(err)
	}
	a, err := w.Census()
	if err != nil {
		t.Fatal(err)
	}
	want := make([]walk.CacheStats, len(a.Caches))
	for i, cs := range a.Caches {
		want[i] = *cs
	}
	b, err := w.Census()
	if err != nil {
		t.Fatal(err)
	}
	if a.Schema != walk.CensusSchema || b.Schema != walk.CensusSchema {
		t.Errorf("schema %d and %d, want %d", a.Schema, b.Schema, walk.CensusSchema)
	}
	for i, cs := range b.Caches {
		if cs == a.Caches[i] {
			t.Fatalf("%s: both censuses share one *CacheStats", cs.Name)
		}
		cs.Allocated, cs.Name = -1, "changed"
	}
	for i, cs := range a.Caches {
		if cs.Allocated != want[i].Allocated || cs.Name != want[i].Name || cs.Total != want[i].Total {
			t.Errorf("cache %d changed under the first census: %s %d, was %s %d", i, cs.Name, cs.Allocated, want[i].Name, want[i].Allocated)
		}
	}
}
