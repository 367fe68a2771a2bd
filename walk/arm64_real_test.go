package walk_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
)

// drgnCensus reads drgn's per-object walk of a dump (oracle/drgn/<file>.slabs:
// "name allocated" per cache, in slab_caches order), or of a dump of the
// same index when drgn could not read this file (it refuses QEMU's arm64
// kdump files): dumps of one index hold the same memory.
func drgnCensus(t *testing.T, m *fixture.Manifest, d fixture.DumpFile) (map[string]int64, []string) {
	t.Helper()
	name := "drgn/" + d.File + ".slabs"
	for _, e := range m.Dumps {
		if !m.HasOracle(name) && e.Index == d.Index {
			name = "drgn/" + e.File + ".slabs"
		}
	}
	if !m.HasOracle(name) {
		t.Fatalf("no drgn census for %s (oracle/drgn/*.slabs)", d.File)
	}
	counts := map[string]int64{}
	var order []string
	for _, l := range strings.Split(strings.TrimSpace(m.Oracle(t, name)), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			t.Fatalf("%s: bad line %q", name, l)
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			t.Fatalf("%s: %q: %v", name, l, err)
		}
		counts[f[0]] = n
		order = append(order, f[0])
	}
	return counts, order
}

// On the arm64 dumps, the census equals drgn 0.3.0's per-object walk
// (slab_cache_for_each_allocated_object) on every cache, in the same order.
func TestCensusEqualsDrgn(t *testing.T) {
	for _, m := range fixture.ARM64(t) {
		for _, d := range m.Dumps {
			t.Run(m.Name+"/"+d.File, func(t *testing.T) {
				want, order := drgnCensus(t, m, d)
				_, _, c := census(t, m, d)
				if len(c.Caches) != len(order) {
					t.Errorf("census has %d caches, drgn %d", len(c.Caches), len(order))
				}
				for i, cs := range c.Caches {
					if i < len(order) && cs.Name != order[i] {
						t.Errorf("cache %d: census %s, drgn %s", i, cs.Name, order[i])
					}
					n, ok := want[cs.Name]
					if !ok || n != cs.Allocated {
						t.Errorf("%s: census %d allocated, drgn %d (listed %v)", cs.Name, cs.Allocated, n, ok)
					}
				}
			})
		}
	}
}

// The per-object listing and the census agree on every cache of an arm64 dump.
func TestObjectsEqualCensusARM64(t *testing.T) {
	for _, m := range fixture.ARM64(t) {
		t.Run(m.Name, func(t *testing.T) {
			_, w, c := census(t, m, m.Dumps[0])
			for _, cs := range c.Caches {
				if n := countObjects(t, w, cs.Name); n != cs.Allocated {
					t.Errorf("%s: census %d allocated, listing %d", cs.Name, cs.Allocated, n)
				}
			}
		})
	}
}
