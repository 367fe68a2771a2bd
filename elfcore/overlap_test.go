package elfcore

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

// A later PT_LOAD inside the p_filesz < p_memsz tail of an earlier one: the
// file holds its bytes, so they are read; only the rest of the tail is
// excluded.
func TestELFSegmentInsideEarlierTail(t *testing.T) {
	head := pattern(0, 0x1000)
	inner := pattern(0x2000, 0x1000)
	raw := buildELF(elfSpec{loads: []elfLoad{
		{paddr: 0, data: head, memsz: 0x4000},
		{paddr: 0x2000, data: inner},
	}})
	d := mustOpen(t, raw)
	buf := make([]byte, 0x1000)
	if n, err := d.ReadPhys(buf, 0x2000); err != nil || n != 0x1000 || !bytes.Equal(buf, inner) {
		t.Errorf("ReadPhys(0x2000): have n=%#x err=%v, want the later segment's bytes", n, err)
	}
	for _, tc := range []struct{ pa, errPA uint64 }{{0x1000, 0x1000}, {0x3000, 0x3000}, {0x0ff0, 0x1000}} {
		n, err := d.ReadPhys(buf[:0x20], tc.pa)
		var mp *MissingPageError
		if !errors.As(err, &mp) || mp.Reason != ReasonExcluded || mp.PA != tc.errPA || uint64(n) != tc.errPA-tc.pa {
			t.Errorf("ReadPhys(%#x): have n=%#x err=%v, want excluded at %#x", tc.pa, n, err, tc.errPA)
		}
	}
	if want := []Range{{0, 0x1000}, {0x2000, 0x3000}}; !slices.Equal(d.PhysRanges(), want) {
		t.Errorf("PhysRanges: have %v, want %v", d.PhysRanges(), want)
	}
	if present, excluded, _ := d.PageCounts(); present != 2 || excluded != 2 {
		t.Errorf("PageCounts: have %d present %d excluded, want 2 and 2", present, excluded)
	}
	// A read across the whole extent with zero fill: the tail's pages are
	// zeros, the inner segment's page is its data.
	d.SetZeroFill(true)
	all := bytes.Repeat([]byte{0xAA}, 0x4000)
	if n, err := d.ReadPhys(all, 0); err != nil || n != 0x4000 {
		t.Fatalf("zero-filled ReadPhys: have n=%#x err=%v", n, err)
	}
	want := slices.Concat(head, make([]byte, 0x1000), inner, make([]byte, 0x1000))
	if !bytes.Equal(all, want) {
		t.Errorf("zero-filled read has wrong content")
	}
}

// Where two PT_LOADs both have file bytes for an address, the first in
// program header order wins, as in makedumpfile's paddr_to_offset and crash's
// read_netdump; the rest of each comes from itself.
func TestELFOverlapFirstHeaderWins(t *testing.T) {
	a := pattern(0, 0x2000)
	b := pattern(0x1000000, 0x2000)
	d := mustOpen(t, buildELF(elfSpec{loads: []elfLoad{
		{paddr: 0x1000, data: b},
		{paddr: 0x0, data: a},
	}}))
	buf := make([]byte, 0x3000)
	if n, err := d.ReadPhys(buf, 0); err != nil || n != 0x3000 {
		t.Fatalf("have n=%#x err=%v", n, err)
	}
	if !bytes.Equal(buf[:0x1000], a[:0x1000]) || !bytes.Equal(buf[0x1000:], b) {
		t.Errorf("overlap resolution wrong: want a's first page, then all of b (listed first)")
	}
	if present, _, _ := d.PageCounts(); present != 3 {
		t.Errorf("PageCounts: have %d present, want 3", present)
	}
}
