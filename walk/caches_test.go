package walk

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
)

// A slab_caches entry whose next link is poisoned loses no cache: the rest
// of the list is read backwards from the head, and the break is reported
// with the entry that holds it.
func TestSlabCachesBrokenLink(t *testing.T) {
	m := fixture.Load(t, "bookworm-qemu")
	path := m.DumpPath(m.Dumps[0]) // qemu1.elf
	w0, done := openWalker(t, m, path, nil)
	defer done()
	k := w0.k
	victim := w0.caches[len(w0.caches)/2]
	link := victim.va + w0.l.cacheList.Offset() // its list.next
	pa, err := k.Translate(link)
	if err != nil {
		t.Fatal(err)
	}
	w, done := openWalker(t, m, path, map[int64]uint64{fixture.FileOffset(t, k.Dump(), pa): 0xdead000000000100})
	defer done()
	if len(w.caches) != len(w0.caches) {
		t.Fatalf("%d caches, want %d", len(w.caches), len(w0.caches))
	}
	for i, ci := range w.caches {
		if ci.va != w0.caches[i].va || ci.stats.Name != w0.caches[i].stats.Name {
			t.Errorf("cache %d: %s at %#x, want %s at %#x", i, ci.stats.Name, ci.va, w0.caches[i].stats.Name, w0.caches[i].va)
		}
	}
	warn := strings.Join(w.Warnings(), "\n")
	for _, want := range []string{"slab_caches", "unreadable link", fmt.Sprintf("linked from entry %#x", link)} {
		if !strings.Contains(warn, want) {
			t.Errorf("warnings %q lack %q", warn, want)
		}
	}
}
