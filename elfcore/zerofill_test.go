package elfcore

import (
	"bytes"
	"slices"
	"testing"
)

// Zero fill fills only the bytes the dump lacks: a read that starts in a gap
// keeps the data that starts later in the same page.
func TestZeroFillKeepsLaterBytesOfPage(t *testing.T) {
	data := pattern(0x200, 0x1e00)
	d := mustOpen(t, buildELF(elfSpec{loads: []elfLoad{
		{paddr: 0x200, data: data}, // 0x200-0x2000
		{paddr: 0x2100, data: pattern(0x2100, 0x100)},
	}}))
	d.SetZeroFill(true)
	buf := bytes.Repeat([]byte{0xAA}, 0x2200)
	if n, err := d.ReadPhys(buf, 0); err != nil || n != len(buf) {
		t.Fatalf("have n=%#x err=%v", n, err)
	}
	want := slices.Concat(make([]byte, 0x200), data, make([]byte, 0x100), pattern(0x2100, 0x100))
	if !bytes.Equal(buf, want) {
		i := 0
		for i < len(buf) && buf[i] == want[i] {
			i++
		}
		t.Errorf("zero-filled read differs first at %#x", i)
	}
	// Two gaps, each within one page: two chunks.
	if have := d.ZeroFilled(); have != 2 {
		t.Errorf("ZeroFilled: have %d, want 2", have)
	}
}
