package elfcore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/golang/snappy"
)

// limeRange is one range of a synthetic image: [start, end) and its bytes.
type limeRange struct {
	start, end uint64
}

func limeHeaderBytes(magic, version uint32, start, end uint64) []byte {
	h := make([]byte, limeHeaderSize)
	binary.LittleEndian.PutUint32(h, magic)
	binary.LittleEndian.PutUint32(h[4:], version)
	binary.LittleEndian.PutUint64(h[8:], start)
	binary.LittleEndian.PutUint64(h[16:], end-1)
	return h
}

// buildLiME writes LiME's lime format: header, bytes (pattern(start)), ...
func buildLiME(rs []limeRange) []byte {
	var b bytes.Buffer
	for _, r := range rs {
		b.Write(limeHeaderBytes(limeMagic, 1, r.start, r.end))
		b.Write(pattern(r.start, int(r.end-r.start)))
	}
	return b.Bytes()
}

// buildAVML writes AVML's version 2: blocks of at most block bytes, each a
// header, a snappy framing stream and the stream's length; all-zero blocks
// are left out, as AVML does.
func buildAVML(t testing.TB, rs []limeRange, data func(start uint64, n int) []byte, block uint64) []byte {
	var b bytes.Buffer
	for _, r := range rs {
		for s := r.start; s < r.end; s += block {
			e := min(s+block, r.end)
			d := data(s, int(e-s))
			if !bytes.ContainsFunc(d, func(c rune) bool { return c != 0 }) {
				continue
			}
			b.Write(limeHeaderBytes(avmlMagic, 2, s, e))
			var z bytes.Buffer
			w := snappy.NewBufferedWriter(&z)
			if _, err := w.Write(d); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			b.Write(z.Bytes())
			binary.Write(&b, binary.LittleEndian, uint64(z.Len()))
		}
	}
	return b.Bytes()
}

var limeRanges = []limeRange{{0x1000, 0x9fc00}, {0x100000, 0x180000}, {0x200000, 0x201000}}

func checkImage(t *testing.T, d *Dump, rs []limeRange, data func(start uint64, n int) []byte) {
	t.Helper()
	if !d.IsMemoryImage() || d.Arch() != "" || d.PageSize() != 4096 || len(d.VMCOREINFO()) != 0 || len(d.Notes()) != 0 {
		t.Errorf("memory image %v arch %q page %d vmcoreinfo %d notes %d", d.IsMemoryImage(), d.Arch(), d.PageSize(), len(d.VMCOREINFO()), len(d.Notes()))
	}
	var want []Range
	for _, r := range rs {
		want = append(want, Range{r.start, r.end})
	}
	if got := d.PhysRanges(); !slices.Equal(got, want) {
		t.Errorf("ranges %x, want %x", got, want)
	}
	for _, r := range rs {
		for _, at := range []uint64{r.start, r.start + 17, r.end - 100} {
			got := make([]byte, min(100, r.end-at))
			if _, err := d.ReadPhys(got, at); err != nil {
				t.Fatalf("ReadPhys(%#x): %v", at, err)
			}
			if w := data(r.start, int(r.end-r.start))[at-r.start:][:len(got)]; !bytes.Equal(got, w) {
				t.Fatalf("ReadPhys(%#x) = %x..., want %x...", at, got[:8], w[:8])
			}
		}
	}
	// A gap is a hole; above the last range, beyond end; a read stops there.
	missing := func(pa uint64, want MissingReason) {
		t.Helper()
		var mp *MissingPageError
		if _, err := d.ReadPhys(make([]byte, 8), pa); !errors.As(err, &mp) || mp.Reason != want || mp.PA != pa {
			t.Errorf("ReadPhys(%#x): %v, want %v at %#x", pa, err, want, pa)
		}
	}
	missing(0, ReasonHole)
	missing(0x9fc00, ReasonHole)
	missing(rs[len(rs)-1].end, ReasonBeyondEnd)
	buf := make([]byte, 0x1000)
	n, err := d.ReadPhys(buf, rs[0].end-0x800)
	var mp *MissingPageError
	if n != 0x800 || !errors.As(err, &mp) || mp.PA != rs[0].end {
		t.Errorf("read across a gap: %d bytes, %v", n, err)
	}
}

func patternOf(start uint64, n int) []byte { return pattern(start, n) }

func TestLiME(t *testing.T) {
	d := mustOpen(t, buildLiME(limeRanges))
	if d.Format() != FormatLiME || d.Format().String() != "lime" || d.Incomplete() {
		t.Errorf("format %v incomplete %v", d.Format(), d.Incomplete())
	}
	if c := d.Compression(); len(c) != 1 || c[0] != "none" {
		t.Errorf("compression %v", c)
	}
	checkImage(t, d, limeRanges, patternOf)
	present, excluded, _ := d.PageCounts()
	if present != 0x9f+0x80+1 || excluded != 0 { // the partial page at 0x9f000 counts
		t.Errorf("pages %d present %d excluded", present, excluded)
	}
}

func TestLiMETruncated(t *testing.T) {
	b := buildLiME(limeRanges)
	d := mustOpen(t, b[:len(b)-0x800])
	if !d.Incomplete() {
		t.Error("a cut image is not incomplete")
	}
	last := limeRanges[len(limeRanges)-1]
	var mp *MissingPageError
	if _, err := d.ReadPhys(make([]byte, 8), last.end-0x100); !errors.As(err, &mp) || mp.Reason != ReasonTruncated {
		t.Errorf("read past the cut: %v", err)
	}
	if _, err := d.ReadPhys(make([]byte, 8), last.start); err != nil {
		t.Errorf("read before the cut: %v", err)
	}
}

func TestLiMEBad(t *testing.T) {
	good := buildLiME(limeRanges)
	second := limeHeaderSize + int(limeRanges[0].end-limeRanges[0].start) // offset of the second header
	cases := map[string]func(b []byte) []byte{
		"trailing zeros": func(b []byte) []byte { return append(b, make([]byte, 4096)...) },
		"reserved":       func(b []byte) []byte { b[second+24] = 1; return b },
		"overlap": func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[second+8:], 0x2000)
			return b
		},
		"end before start": func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[second+16:], 0x1000)
			return b
		},
		"version": func(b []byte) []byte { b[second+4] = 2; return b },
		"short":   func(b []byte) []byte { return append(b, 'E', 'M') },
	}
	for name, mut := range cases {
		t.Run(name, func(t *testing.T) {
			b := mut(bytes.Clone(good))
			_, err := NewDump(bytes.NewReader(b), int64(len(b)), "img")
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("err %v, want a FormatError", err)
			}
		})
	}
}

// zeroesAt: memory whose second 64 KiB block is all zeros (AVML leaves it out).
func zeroesAt(start uint64, n int) []byte {
	b := pattern(start, n)
	for i := range b {
		if a := start + uint64(i); a >= 0x110000 && a < 0x120000 {
			b[i] = 0
		}
	}
	return b
}

func TestAVML(t *testing.T) {
	rs := []limeRange{{0x1000, 0x9fc00}, {0x100000, 0x180000}}
	// 64 KiB blocks (AVML's are 16 MiB; the format is the same), so that
	// ranges span several blocks and one block is all zeros.
	img := buildAVML(t, rs, zeroesAt, 0x10000)
	d := mustOpen(t, img)
	if d.Format() != FormatAVML || d.Format().String() != "avml" {
		t.Errorf("format %v", d.Format())
	}
	if c := d.Compression(); len(c) != 1 || c[0] != "snappy" {
		t.Errorf("compression %v", c)
	}
	want := []Range{{0x1000, 0x9fc00}, {0x100000, 0x110000}, {0x120000, 0x180000}}
	if got := d.PhysRanges(); !slices.Equal(got, want) {
		t.Errorf("ranges %x, want %x", got, want)
	}
	got := make([]byte, 0x30000)
	if _, err := d.ReadPhys(got, 0x10000); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, zeroesAt(0x10000, len(got))) {
		t.Error("AVML read across blocks differs")
	}
	var mp *MissingPageError
	if _, err := d.ReadPhys(make([]byte, 8), 0x110000); !errors.As(err, &mp) || mp.Reason != ReasonHole {
		t.Errorf("the left-out zero block: %v, want a hole", err)
	}
	if _, err := d.ReadPhys(got[:16], 0x17fff0); err != nil || !bytes.Equal(got[:16], pattern(0x17fff0, 16)) {
		t.Errorf("last bytes: %v", err)
	}
}

func TestAVMLBad(t *testing.T) {
	rs := []limeRange{{0x1000, 0x9000}, {0x10000, 0x20000}}
	good := buildAVML(t, rs, patternOf, 0x10000)
	// The first block's stream starts after its header: stream id (10 bytes),
	// then the first chunk's header and CRC.
	chunk := limeHeaderSize + 10
	t.Run("crc", func(t *testing.T) {
		b := bytes.Clone(good)
		b[chunk+4] ^= 1
		d := mustOpen(t, b)
		var pe *PageError
		if _, err := d.ReadPhys(make([]byte, 8), 0x1000); !errors.As(err, &pe) || !strings.Contains(err.Error(), "CRC") {
			t.Errorf("corrupt CRC: %v", err)
		}
	})
	t.Run("length", func(t *testing.T) {
		b := bytes.Clone(good)
		// The first block's trailing length is 8 bytes before the second header.
		i := bytes.Index(b[1:], limeHeaderBytes(avmlMagic, 2, 0x10000, 0x20000)[:8]) + 1
		b[i-8]++
		var fe *FormatError
		if _, err := NewDump(bytes.NewReader(b), int64(len(b)), "img"); !errors.As(err, &fe) {
			t.Errorf("wrong block length: %v", err)
		}
	})
	t.Run("reserved chunk", func(t *testing.T) {
		b := bytes.Clone(good)
		b[chunk] = 0x02
		var fe *FormatError
		if _, err := NewDump(bytes.NewReader(b), int64(len(b)), "img"); !errors.As(err, &fe) {
			t.Errorf("reserved chunk type: %v", err)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		b := good[:len(good)-100]
		d := mustOpen(t, b)
		if !d.Incomplete() {
			t.Error("not incomplete")
		}
		if _, err := d.ReadPhys(make([]byte, 8), 0x1000); err != nil {
			t.Errorf("first block: %v", err)
		}
		var mp *MissingPageError
		if _, err := d.ReadPhys(make([]byte, 8), 0x10000); !errors.As(err, &mp) {
			t.Errorf("cut block: %v", err)
		}
	})
}

func TestRaw(t *testing.T) {
	var img []byte
	for _, r := range limeRanges {
		img = append(img, pattern(r.start, int(r.end-r.start))...)
	}
	var rs []Range
	for _, r := range limeRanges {
		rs = append(rs, Range{r.start, r.end})
	}
	d, err := NewRawDump(bytes.NewReader(img), int64(len(img)), "raw", RawLayout{Ranges: rs})
	if err != nil {
		t.Fatal(err)
	}
	if d.Format() != FormatRaw || d.Incomplete() {
		t.Errorf("format %v incomplete %v", d.Format(), d.Incomplete())
	}
	checkImage(t, d, limeRanges, patternOf)

	// Shorter than the ranges: incomplete; longer: the ranges are wrong.
	if d, err := NewRawDump(bytes.NewReader(img), int64(len(img)-10), "raw", RawLayout{Ranges: rs}); err != nil || !d.Incomplete() {
		t.Errorf("short raw image: %v", err)
	}
	if _, err := NewRawDump(bytes.NewReader(img), int64(len(img)+4096), "raw", RawLayout{Ranges: rs}); err == nil || !strings.Contains(err.Error(), "wrong ranges") {
		t.Errorf("long raw image: %v", err)
	}
	if _, err := NewRawDump(bytes.NewReader(img), int64(len(img)), "raw", RawLayout{Ranges: []Range{rs[1], rs[0]}}); err == nil {
		t.Error("unsorted ranges accepted")
	}

	// A base: one range from it (LiME padded: base 0, gaps as zeros).
	d, err = NewRawDump(bytes.NewReader(img), int64(len(img)), "raw", RawLayout{Base: 0x40000000})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.PhysRanges(); len(got) != 1 || got[0] != (Range{0x40000000, 0x40000000 + uint64(len(img))}) {
		t.Errorf("based ranges %x", got)
	}
	b := make([]byte, 16)
	if _, err := d.ReadPhys(b, 0x40000000); err != nil || !bytes.Equal(b, img[:16]) {
		t.Errorf("based read: %v", err)
	}
}

func TestParseRanges(t *testing.T) {
	rs, err := ParseRanges("00001000-0009fbff, 0x100000-0x1ffd9fff")
	if err != nil || !slices.Equal(rs, []Range{{0x1000, 0x9fc00}, {0x100000, 0x1ffda000}}) {
		t.Errorf("ParseRanges: %x %v", rs, err)
	}
	for _, bad := range []string{"", "1000", "2000-1000", "x-y", "0-ffffffffffffffff"} {
		if _, err := ParseRanges(bad); err == nil {
			t.Errorf("ParseRanges(%q) accepted", bad)
		}
	}
	iomem := `00000000-00000fff : Reserved
00001000-0009fbff : System RAM
000f0000-000fffff : Reserved
  000f0000-000fffff : System ROM
00100000-1ffd9fff : System RAM
  0e000000-0ec02b26 : Kernel code
  0f000000-0f20bfff : System RAM
fed00000-fed003ff : PNP0103:00
`
	rs, err = ParseIomem(strings.NewReader(iomem))
	if err != nil || !slices.Equal(rs, []Range{{0x1000, 0x9fc00}, {0x100000, 0x1ffda000}}) {
		t.Errorf("ParseIomem: %x %v", rs, err)
	}
	if _, err := ParseIomem(strings.NewReader("00000000-00000000 : System RAM\n")); err == nil {
		t.Error("an unprivileged /proc/iomem (all zeros) accepted")
	}
}
