package elfcore

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
)

// /proc/kcore as fs/proc/kcore.c writes it: a CORE NT_TASKSTRUCT note, RAM
// segments at direct-map addresses (p_paddr = __pa), the kernel image's
// alias (p_paddr = __pa_symbol) and segments with no physical address
// (p_paddr = -1: vmalloc, modules, vmemmap).
func TestKcore(t *testing.T) {
	const pageOffset = 0xffff888000000000
	ram := bytes.Repeat([]byte{0xaa}, 0x4000)
	alias := bytes.Repeat([]byte{0x00}, 0x1000) // freed init memory reads as zeros there
	loads := []elfLoad{
		{paddr: 0x2000, vaddr: 0xffffffff81000000, data: alias}, // first: must not win
		{paddr: 0, vaddr: pageOffset, data: ram},
		{paddr: math.MaxUint64, vaddr: 0xffffc90000000000, data: make([]byte, 0x1000)},
	}
	kcoreNotes := []Note{{Name: "CORE", Type: 1, Desc: make([]byte, 336)}, {Name: "CORE", Type: 4, Desc: make([]byte, 64)},
		{Name: "VMCOREINFO", Type: 0, Desc: []byte("OSRELEASE=6.1.0\nPAGESIZE=4096\n")}}
	d := mustOpen(t, buildELF(elfSpec{loads: loads, notes: kcoreNotes}))
	if !d.Live() {
		t.Fatal("kcore not recognized as live")
	}
	got := make([]byte, 16)
	if _, err := d.ReadPhys(got, 0x2000); err != nil || !bytes.Equal(got, ram[:16]) {
		t.Errorf("ReadPhys(0x2000) = %x, %v; want the direct map's bytes", got, err)
	}
	if rs := d.PhysRanges(); len(rs) != 1 || rs[0].Start != 0 || rs[0].End != 0x4000 {
		t.Errorf("ranges %v, want the RAM segment only", rs)
	}

	// The same headers without kcore's note are a corrupt core, not a live one.
	_, err := NewDump(bytes.NewReader(buildELF(elfSpec{loads: loads, notes: kcoreNotes[2:]})), 1<<20, "fake.core")
	var fe *FormatError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "overflows") {
		t.Errorf("p_paddr -1 without kcore's note: %v, want a FormatError", err)
	}
}
