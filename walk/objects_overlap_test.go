package walk

import "testing"

// An object free in two places is counted once: the free sets' union.
func TestOverlap(t *testing.T) {
	free := []uint64{0b0111, 1 << 63}
	cpu := []uint64{0b0110, 1 << 63}
	sheaf := []uint64{0b1100, 0}
	if n := overlap(free, cpu); n != 3 {
		t.Errorf("free∩cpu = %d, want 3", n)
	}
	if n := overlap3(free, cpu, sheaf); n != 1 {
		t.Errorf("free∩cpu∩sheaf = %d, want 1", n)
	}
	// |F|+|C|+|S| less what readSlabHeads subtracts is |F∪C∪S| = 5.
	union := 4 + 3 + 2 - overlap(free, cpu) - (overlap(free, sheaf) + overlap(cpu, sheaf) - overlap3(free, cpu, sheaf))
	if union != 5 {
		t.Errorf("union %d, want 5", union)
	}
}
