package elfcore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
)

func compressedKdumpSpec(t testing.TB) kdSpec {
	pages := map[uint64]kdPage{}
	for pfn := uint64(0); pfn < 40; pfn += 3 {
		i := int(pfn % 4)
		c := codecs[int(pfn)%len(codecs)]
		pages[pfn] = kdPage{raw: fixturePage(t, i, "raw"), flags: c.flags, enc: fixturePage(t, i, c.ext)}
	}
	return kdSpec{version: 6, maxMapnr: 48, pages: pages, zero: []uint64{1, 2}, ram: []uint64{4, 5},
		vmcoreinfo: []byte(testVMCOREINFO), notes: []Note{{Name: "CORE", Type: 1, Desc: prstatusDesc(3, [27]uint64{})}}}
}

// sameMemory checks that two dumps read identically page by page.
func sameMemory(t *testing.T, want, have *Dump, pages uint64) {
	t.Helper()
	for pfn := uint64(0); pfn < pages; pfn++ {
		a, b := make([]byte, 4096), make([]byte, 4096)
		na, ea := want.ReadPhys(a, pfn*4096)
		nb, eb := have.ReadPhys(b, pfn*4096)
		if na != nb || (ea == nil) != (eb == nil) || !bytes.Equal(a, b) {
			t.Errorf("pfn %d: want n=%d err=%v, have n=%d err=%v (equal %v)", pfn, na, ea, nb, eb, bytes.Equal(a, b))
		}
	}
}

func TestFlattened(t *testing.T) {
	kd := buildKdump(compressedKdumpSpec(t))
	spec, _, _ := kdumpELF(true, 0)
	el := buildELF(spec)
	for _, tc := range []struct {
		name      string
		logical   []byte
		chunk     int
		shuffle   bool
		overrides bool
		want      Format
		pages     uint64
	}{
		{"kdump-in-order", kd, 4096, false, false, FormatFlattenedKdump, 48},
		{"kdump-odd-chunks-shuffled", kd, 1000, true, false, FormatFlattenedKdump, 48},
		{"kdump-overrides", kd, 777, true, true, FormatFlattenedKdump, 48},
		{"elf-shuffled-overrides", el, 333, true, true, FormatFlattenedELF, 0x110},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := mustOpen(t, tc.logical)
			flat := flatten(tc.logical, tc.chunk, tc.shuffle, tc.overrides, 42)
			d := mustOpen(t, flat)
			if d.Format() != tc.want {
				t.Errorf("Format: have %v, want %v", d.Format(), tc.want)
			}
			// The logical view must be byte-identical to the original.
			fr := d.r.(*flatReader)
			if fr.size != int64(len(tc.logical)) {
				t.Errorf("logical size: have %d, want %d", fr.size, len(tc.logical))
			}
			got := make([]byte, len(tc.logical))
			if n, err := fr.ReadAt(got, 0); n != len(got) || (err != nil && err != io.EOF) {
				t.Fatalf("logical ReadAt: n=%d err=%v", n, err)
			}
			if !bytes.Equal(got, tc.logical) {
				t.Errorf("logical file differs from original")
			}
			sameMemory(t, ref, d, tc.pages)
			if string(d.VMCOREINFO()) != string(ref.VMCOREINFO()) || len(d.PRStatus()) != len(ref.PRStatus()) {
				t.Errorf("metadata differs: vmcoreinfo %q prstatus %d", d.VMCOREINFO(), len(d.PRStatus()))
			}
		})
	}
}

func TestFlatIndex(t *testing.T) {
	// Later writes win, gaps read as zeros, no end marker is fine.
	recs := []flatRecord{
		{10, []byte("aaaaaaaaaa")}, // [10,20)
		{0, []byte("bbbbb")},       // [0,5)
		{15, []byte("CCCCCCCCCC")}, // [15,25) overrides 15..20
		{12, []byte("dd")},         // [12,14)
		{30, []byte("e")},
	}
	fr, err := newFlatReader(bytes.NewReader(buildFlat(recs, false)), int64(len(buildFlat(recs, false))), "t")
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 31)
	if n, err := fr.ReadAt(got, 0); n != 31 || err != nil {
		t.Fatalf("ReadAt: n=%d err=%v", n, err)
	}
	want := "bbbbb\x00\x00\x00\x00\x00aaddaCCCCCCCCCC\x00\x00\x00\x00\x00e"
	if string(got) != want {
		t.Errorf("have %q, want %q", got, want)
	}
	if n, err := fr.ReadAt(got[:4], 29); n != 2 || err != io.EOF {
		t.Errorf("read past end: have n=%d err=%v, want 2, EOF", n, err)
	}
}

func TestFlatBad(t *testing.T) {
	good := buildFlat([]flatRecord{{0, []byte("KDUMP   ")}}, true)
	for _, tc := range []struct {
		name string
		edit func([]byte) []byte
		want string
	}{
		{"size-beyond-eof", func(b []byte) []byte {
			binary.BigEndian.PutUint64(b[4096+8:], 1<<40)
			return b
		}, "runs past end of file"},
		{"negative-offset", func(b []byte) []byte {
			binary.BigEndian.PutUint64(b[4096:], uint64(1<<63))
			return b
		}, "bad flattened record"},
		{"truncated-record-header", func(b []byte) []byte { return b[:4096+8] }, "truncated flattened record header"},
		{"bad-type", func(b []byte) []byte {
			binary.BigEndian.PutUint64(b[16:], 2)
			return b
		}, "type 2"},
		{"short-header", func(b []byte) []byte { return b[:100] }, "flattened header extends beyond end"},
		{"huge-offset", func(b []byte) []byte {
			binary.BigEndian.PutUint64(b[4096:], 1<<62)
			return b
		}, "out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.edit(bytes.Clone(good))
			_, err := NewDump(bytes.NewReader(b), int64(len(b)), "flat.bin")
			var fe *FormatError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "flat.bin") {
				t.Errorf("have %v, want *FormatError containing %q", err, tc.want)
			}
		})
	}
}

// TestFlatSparseLogicalSize is the regression for a fuzzer hang: a record
// at a huge logical offset made the logical file terabytes long, and header
// fields then sized bitmaps against that instead of the bytes stored.
func TestFlatSparseLogicalSize(t *testing.T) {
	kd := buildKdump(kdSpec{version: 6, maxMapnr: 64, pages: rawPages(1)})
	le.PutUint32(kd[436:], 1<<26)     // bitmap_blocks: 256 GiB of bitmap
	le.PutUint64(kd[4096+96:], 1<<40) // max_mapnr_64
	el, _, _ := kdumpELF(false, 0)
	elf := buildELF(el)
	le.PutUint16(elf[56:], 0xfff0) // phnum: 3.6 MB of headers, all in the gap
	for _, tc := range []struct {
		name    string
		logical []byte
		want    string
	}{
		{"kdump-bitmaps", kd, "bitmap"},
		{"elf-phdrs", elf, "exceeds the"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := buildFlat([]flatRecord{{0, tc.logical[:8192]}, {1 << 40, []byte{1}}}, true)
			_, err := NewDump(bytes.NewReader(b), int64(len(b)), "sparse.flat")
			var fe *FormatError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("have %v, want *FormatError containing %q", err, tc.want)
			}
		})
	}
}

// A stream without its end record was cut short by its writer: it reads,
// but the dump is incomplete even when its header says otherwise.
func TestFlatWithoutEndRecord(t *testing.T) {
	kd := buildKdump(compressedKdumpSpec(t))
	full := flatten(kd, 4096, false, false, 1)
	if d := mustOpen(t, full); d.Incomplete() {
		t.Fatal("a whole stream reads as incomplete")
	}
	cut := full[:len(full)-flatRecHdrSize]
	d := mustOpen(t, cut)
	if !d.Incomplete() {
		t.Error("a stream without its end record reads as complete")
	}
}
