package walk

import (
	"fmt"
	"math/bits"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/kernel"
)

// fileOffset maps a physical address to its offset in an ELF dump.
var fileOffset = fixture.FileOffset

func openWalker(t *testing.T, m *fixture.Manifest, path string, words map[int64]uint64) (*Walker, func()) {
	d := fixture.OpenPatched(t, path, words)
	k, err := kernel.OpenDump(d, path, kernel.Options{Vmlinux: m.Vmlinux()})
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(k)
	if err != nil {
		t.Fatal(err)
	}
	return w, func() { k.Close() }
}

// A slab with a non-empty freelist, of a cache with several slabs.
func partialSlab(t *testing.T, w *Walker) (ci *cacheInfo, slabVA, head uint64) {
	_, _, err := w.scanSlabsOrdered(func(s slabVisit) bool {
		c, _ := w.cacheOf(s.raw)
		d := kernel.Decode(s.raw)
		fl, objects := d.Uint(w.l.slabFreelist), d.Uint(w.l.slabObjects)
		if d.Err() != nil {
			t.Fatal(d.Err())
		}
		if c != nil && fl != 0 && objects > 4 && c.stats.Name != "kmem_cache" {
			ci, slabVA, head = c, s.slabVA, fl
			return false
		}
		return true
	})
	if err != nil || ci == nil {
		t.Fatalf("no partial slab found (%v)", err)
	}
	return ci, slabVA, head
}

// Corrupt and cyclic freelists and lists are reported with the cache and
// slab address, and the walk goes on: every other cache is counted as before.
func TestCorruptSlabs(t *testing.T) {
	m := fixture.Load(t, "bookworm-qemu")
	path := m.DumpPath(m.Dumps[0]) // qemu1.elf: physical addresses map to file offsets directly
	if !strings.HasSuffix(path, ".elf") {
		t.Fatalf("want the ELF dump first, have %s", path)
	}
	w0, done := openWalker(t, m, path, nil)
	defer done()
	good, err := w0.Census()
	if err != nil {
		t.Fatal(err)
	}
	ci, slabVA, head := partialSlab(t, w0)
	k := w0.k
	ptrAddr := head + ci.offset // where the head object's free pointer is stored
	off := fileOffset(t, k.Dump(), ptrAddr-k.Layout().PageOffset)
	encode := func(next uint64) uint64 { return next ^ ci.random ^ bits.ReverseBytes64(ptrAddr) }

	// A node partial list made to loop: its first slab's slab_list.next
	// points at itself, a cycle that never returns to the list head.
	var listCache *cacheInfo
	var listNext uint64
	for _, c := range w0.caches {
		if c.nodes[0] == 0 || listCache != nil {
			continue
		}
		for e, err := range k.ListHead(c.nodes[0]+w0.l.nodePartial.Offset(), 100) {
			if err == nil && listCache == nil {
				listCache, listNext = c, e
			}
		}
	}
	if listCache == nil {
		t.Fatal("no cache has a node partial slab")
	}
	pa, err := k.Translate(listNext)
	if err != nil {
		t.Fatal(err)
	}
	listOff := fileOffset(t, k.Dump(), pa)

	for _, tc := range []struct {
		name  string
		cache *cacheInfo
		words map[int64]uint64
		want  []string // in the cache's Corrupt or in the warnings
	}{
		{"freelist cycle", ci, map[int64]uint64{off: encode(head)}, []string{"already free", fmt.Sprintf("%#x", slabVA)}},
		{"freelist pointer outside the slab", ci, map[int64]uint64{off: encode(0xffff000000001000)}, []string{"outside the slab", fmt.Sprintf("%#x", slabVA)}},
		{"partial list loop", listCache, map[int64]uint64{listOff: listNext}, []string{"cycle", fmt.Sprintf("%#x", listNext), listCache.stats.Name}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, done := openWalker(t, m, path, tc.words)
			defer done()
			c, err := w.Census()
			if err != nil {
				t.Fatal(err)
			}
			bad := c.Cache(tc.cache.stats.Name)
			report := strings.Join(append(bad.Corrupt, c.Warnings...), "\n")
			for _, want := range tc.want {
				if !strings.Contains(report, want) {
					t.Errorf("%s: want a report with %q, have:\n%s", tc.cache.stats.Name, want, report)
				}
			}
			if len(c.Caches) != len(good.Caches) {
				t.Fatalf("%d caches, want %d", len(c.Caches), len(good.Caches))
			}
			for i, cs := range c.Caches {
				g := good.Caches[i]
				if cs.Name != tc.cache.stats.Name && (cs.Allocated != g.Allocated || cs.Total != g.Total || cs.Slabs != g.Slabs) {
					t.Errorf("%s changed: %d/%d/%d, was %d/%d/%d", cs.Name, cs.Allocated, cs.Total, cs.Slabs, g.Allocated, g.Total, g.Slabs)
				}
			}
		})
	}
}
