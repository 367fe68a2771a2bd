package walk

import "testing"

// An object on the slab's freelist and a CPU freelist both is counted once.
func TestOverlap(t *testing.T) {
	free := []uint64{0b0111, 1 << 63}
	cpu := []uint64{0b0110, 1 << 63}
	if n := overlap(free, cpu); n != 3 {
		t.Errorf("free∩cpu = %d, want 3", n)
	}
	// |F|+|C| less the overlap readSlabHeads subtracts is |F∪C| = 4.
	if union := 4 + 3 - overlap(free, cpu); union != 4 {
		t.Errorf("union %d, want 4", union)
	}
}
