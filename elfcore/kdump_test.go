package elfcore

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// codecs maps fixture extensions to descriptor flags.
var codecs = []struct {
	name  string
	ext   string
	flags uint32
}{
	{"zlib", "zlib", dumpDHCompressedZlib},
	{"lzo", "lzo", dumpDHCompressedLZO},
	{"snappy", "snappy", dumpDHCompressedSnappy},
	{"zstd", "zst", dumpDHCompressedZstd},
}

func TestDecompressFixtures(t *testing.T) {
	for _, c := range codecs {
		for i := 0; i < 4; i++ {
			t.Run(fmt.Sprintf("%s/page%d", c.name, i), func(t *testing.T) {
				raw := fixturePage(t, i, "raw")
				enc := fixturePage(t, i, c.ext)
				have := make([]byte, 4096)
				if err := decompressPage(have, enc, c.flags); err != nil {
					t.Fatalf("decompress: %v", err)
				}
				if !bytes.Equal(have, raw) {
					t.Errorf("decompressed page differs from page%d.raw", i)
				}
				// The same stream against a wrong block size must fail.
				if err := decompressPage(make([]byte, 8192), enc, c.flags); err == nil {
					t.Errorf("8192-byte block: have nil error, want size mismatch")
				}
				if err := decompressPage(have, enc[:len(enc)/2], c.flags); err == nil {
					t.Errorf("half stream: have nil error, want one")
				}
			})
		}
	}
}

// rawPages builds a spec with raw pages at the given pfns.
func rawPages(pfns ...uint64) map[uint64]kdPage {
	m := map[uint64]kdPage{}
	for _, pfn := range pfns {
		m[pfn] = kdPage{raw: pattern(pfn*4096, 4096)}
	}
	return m
}

func TestKdumpVersions(t *testing.T) {
	for v := int32(1); v <= 6; v++ {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			spec := kdSpec{
				version:    v,
				maxMapnr:   100,
				pages:      rawPages(0, 1, 2, 7, 64, 65, 99),
				ram:        []uint64{3, 4, 5},
				vmcoreinfo: []byte(testVMCOREINFO),
				notes:      []Note{{Name: "CORE", Type: 1, Desc: prstatusDesc(7, [27]uint64{RegRIP: 0xffffffff81001234})}, {Name: "VMCOREINFO", Desc: []byte("FROM_NOTE=1\n")}},
			}
			d := mustOpen(t, buildKdump(spec))
			if have, want := d.Format(), FormatKdump; have != want {
				t.Errorf("Format: have %v, want %v", have, want)
			}
			h := d.Kdump()
			if h == nil {
				t.Fatal("Kdump() = nil")
			}
			if h.HeaderVersion != v || h.Release != "6.8.0-test" || h.Machine != "x86_64" || h.BlockSize != 4096 || h.MaxMapnr != 100 || h.PhysBase != 0x1000000 || h.DumpLevel != 31 || h.NrCPUs != 2 {
				t.Errorf("header: have %+v", h)
			}
			if h.Timestamp.Unix() != 1700000000 {
				t.Errorf("Timestamp: have %v", h.Timestamp)
			}
			if d.Arch() != "x86_64" || d.PageSize() != 4096 || d.Segments() != nil {
				t.Errorf("Arch/PageSize/Segments: have %q %d %v", d.Arch(), d.PageSize(), d.Segments())
			}
			// The sub-header's VMCOREINFO (v3+) wins over the note (v4+).
			wantVI := ""
			if v >= 3 {
				wantVI = testVMCOREINFO
			}
			if have := string(d.VMCOREINFO()); have != wantVI {
				t.Errorf("VMCOREINFO: have %q, want %q", have, wantVI)
			}
			wantPR := 0
			if v >= 4 {
				wantPR = 1
			}
			if have := len(d.PRStatus()); have != wantPR {
				t.Errorf("PRStatus: have %d, want %d", have, wantPR)
			} else if wantPR == 1 && (d.PRStatus()[0].PID != 7 || d.PRStatus()[0].RIP() != 0xffffffff81001234) {
				t.Errorf("PRStatus[0]: have %+v", d.PRStatus()[0])
			}
			for _, pfn := range []uint64{0, 1, 2, 7, 64, 65, 99} {
				buf := make([]byte, 4096)
				if n, err := d.ReadPhys(buf, pfn*4096); err != nil || n != 4096 || !bytes.Equal(buf, pattern(pfn*4096, 4096)) {
					t.Errorf("pfn %d: have n=%d err=%v", pfn, n, err)
				}
			}
			// Cross-page read over pfns 0..2 and into the hole at 3.
			buf := make([]byte, 4*4096)
			n, err := d.ReadPhys(buf, 0x10)
			var mp *MissingPageError
			if !errors.As(err, &mp) || mp.Reason != ReasonExcluded || mp.PA != 0x3000 || n != 0x3000-0x10 {
				t.Errorf("cross-page read: have n=%#x err=%v", n, err)
			}
			for _, tc := range []struct {
				pa     uint64
				reason MissingReason
			}{
				{3 * 4096, ReasonExcluded},
				{6 * 4096, ReasonHole},
				{100 * 4096, ReasonBeyondEnd},
				{1 << 50, ReasonBeyondEnd},
			} {
				_, err := d.ReadPhys(buf[:8], tc.pa)
				if !errors.As(err, &mp) || mp.Reason != tc.reason || mp.PA != tc.pa {
					t.Errorf("ReadPhys(%#x): have %v, want %v", tc.pa, err, tc.reason)
				}
			}
			wantR := []Range{{0, 3 * 4096}, {7 * 4096, 8 * 4096}, {64 * 4096, 66 * 4096}, {99 * 4096, 100 * 4096}}
			if diff := cmp.Diff(wantR, d.PhysRanges()); diff != "" {
				t.Errorf("PhysRanges (-want +have):\n%s", diff)
			}
			p, e, z := d.PageCounts()
			if p != 7 || e != 3 || z != 0 {
				t.Errorf("PageCounts: have %d,%d,%d, want 7,3,0", p, e, z)
			}
			if have := d.Compression(); !slices.Equal(have, []string{"none"}) {
				t.Errorf("Compression: have %v", have)
			}
		})
	}
}

func TestKdumpCompressed(t *testing.T) {
	for _, c := range codecs {
		t.Run(c.name, func(t *testing.T) {
			pages := map[uint64]kdPage{}
			for i := 0; i < 4; i++ {
				pages[uint64(10+i)] = kdPage{raw: fixturePage(t, i, "raw"), flags: c.flags, enc: fixturePage(t, i, c.ext)}
			}
			pages[20] = kdPage{raw: pattern(20*4096, 4096)} // incompressible page stored raw
			spec := kdSpec{version: 6, maxMapnr: 300, pages: pages, zero: []uint64{5, 6, 200}, status: c.flags}
			d := mustOpen(t, buildKdump(spec))
			d.SetCacheSize(2) // force evictions
			for round := 0; round < 2; round++ {
				for pfn, pg := range pages {
					buf := make([]byte, 4096)
					if n, err := d.ReadPhys(buf, pfn*4096); err != nil || n != 4096 || !bytes.Equal(buf, pg.raw) {
						t.Errorf("round %d pfn %d: have n=%d err=%v", round, pfn, n, err)
					}
				}
			}
			for _, pfn := range []uint64{5, 6, 200} {
				buf := bytes.Repeat([]byte{1}, 4096)
				if n, err := d.ReadPhys(buf, pfn*4096); err != nil || n != 4096 || !bytes.Equal(buf, make([]byte, 4096)) {
					t.Errorf("zero pfn %d: have n=%d err=%v", pfn, n, err)
				}
			}
			p, e, z := d.PageCounts()
			if p != 8 || e != 0 || z != 3 {
				t.Errorf("PageCounts: have %d,%d,%d, want 8,0,3", p, e, z)
			}
			if have, want := d.Compression(), []string{c.name, "none"}; !sameSet(have, want) {
				t.Errorf("Compression: have %v, want %v", have, want)
			}
		})
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestKdumpBadPage(t *testing.T) {
	raw := fixturePage(t, 0, "raw")
	for _, tc := range []struct {
		name  string
		page  kdPage
		want  string
		trunc bool
	}{
		{"zlib-garbage", kdPage{raw: raw, flags: dumpDHCompressedZlib, enc: []byte("not zlib at all")}, "zlib", false},
		{"lzo-garbage", kdPage{raw: raw, flags: dumpDHCompressedLZO, enc: bytes.Repeat([]byte{0xff}, 64)}, "lzo", false},
		{"snappy-wrong-size", kdPage{raw: raw, flags: dumpDHCompressedSnappy, enc: []byte{0x10, 0x3c, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', 'p'}}, "snappy", false},
		{"zstd-garbage", kdPage{raw: raw, flags: dumpDHCompressedZstd, enc: []byte{0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3}}, "zstd", false},
		{"raw-short", kdPage{raw: raw, enc: raw[:100]}, "raw page of 100 bytes", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := mustOpen(t, buildKdump(kdSpec{version: 6, maxMapnr: 16, pages: map[uint64]kdPage{3: tc.page}}))
			_, err := d.ReadPhys(make([]byte, 8), 3*4096+8)
			var pe *PageError
			if !errors.As(err, &pe) || pe.PFN != 3 || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "pfn 0x3") {
				t.Errorf("have %v, want *PageError for pfn 3 mentioning %q", err, tc.want)
			}
		})
	}
}

func TestKdumpIncomplete(t *testing.T) {
	spec := kdSpec{version: 6, maxMapnr: 64, pages: rawPages(1, 2, 3, 4), status: dumpDHCompressedIncomplete}
	b := buildKdump(spec)
	d := mustOpen(t, b)
	if !d.Incomplete() {
		t.Errorf("Incomplete: have false, want true")
	}
	t.Run("zeroed-descriptor", func(t *testing.T) {
		b := slices.Clone(b)
		// Descriptors follow 1 header + 1 sub-header + 2 bitmap blocks.
		clear(b[4*4096+3*24 : 4*4096+4*24]) // pfn 4's descriptor never written
		d := mustOpen(t, b)
		var mp *MissingPageError
		if _, err := d.ReadPhys(make([]byte, 8), 4*4096+16); !errors.As(err, &mp) || mp.Reason != ReasonTruncated || mp.PA != 4*4096+16 {
			t.Errorf("have %v, want truncated at %#x", err, 4*4096+16)
		}
		if _, err := d.ReadPhys(make([]byte, 8), 3*4096); err != nil {
			t.Errorf("pfn 3: have %v", err)
		}
	})
	t.Run("file-cut-in-data", func(t *testing.T) {
		d := mustOpen(t, b[:len(b)-4096-100])
		var mp *MissingPageError
		if _, err := d.ReadPhys(make([]byte, 8), 4*4096); !errors.As(err, &mp) || mp.Reason != ReasonTruncated {
			t.Errorf("pfn 4: have %v, want truncated", err)
		}
		if _, err := d.ReadPhys(make([]byte, 8), 2*4096); err != nil {
			t.Errorf("pfn 2: have %v", err)
		}
		d.SetZeroFill(true)
		if n, err := d.ReadPhys(make([]byte, 3*4096), 2*4096); err != nil || n != 3*4096 || d.ZeroFilled() != 2 {
			t.Errorf("zero fill: have n=%d err=%v filled=%d, want 2 filled", n, err, d.ZeroFilled())
		}
	})
	t.Run("file-cut-in-descriptors", func(t *testing.T) {
		d := mustOpen(t, b[:4*4096+30])
		var mp *MissingPageError
		if _, err := d.ReadPhys(make([]byte, 8), 3*4096); !errors.As(err, &mp) || mp.Reason != ReasonTruncated {
			t.Errorf("pfn 3: have %v, want truncated", err)
		}
	})
}

func TestKdumpSplit(t *testing.T) {
	for _, v := range []int32{2, 6} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			// This file of a split dump holds pfns [8, 16); its bitmap
			// also marks pages the other file holds.
			all := rawPages(1, 2, 9, 10)
			b := buildKdump(kdSpec{version: v, maxMapnr: 32, pages: all, split: true, start: 8, end: 16})
			d := mustOpen(t, b)
			for _, pfn := range []uint64{9, 10} {
				buf := make([]byte, 4096)
				if _, err := d.ReadPhys(buf, pfn*4096); err != nil || !bytes.Equal(buf, all[pfn].raw) {
					t.Errorf("pfn %d: have err %v or wrong content", pfn, err)
				}
			}
			var mp *MissingPageError
			if _, err := d.ReadPhys(make([]byte, 8), 1*4096); !errors.As(err, &mp) || mp.Reason != ReasonOtherPart {
				t.Errorf("pfn 1 (other file): have %v, want in another part", err)
			}
			if p, _, _ := d.PageCounts(); p != 2 {
				t.Errorf("present: have %d, want 2", p)
			}
		})
	}
}

func TestKdumpConcurrent(t *testing.T) {
	pages := map[uint64]kdPage{}
	for pfn := uint64(0); pfn < 64; pfn++ {
		i := int(pfn % 4)
		c := codecs[int(pfn/4)%len(codecs)]
		pages[pfn] = kdPage{raw: fixturePage(t, i, "raw"), flags: c.flags, enc: fixturePage(t, i, c.ext)}
	}
	d := mustOpen(t, buildKdump(kdSpec{version: 6, maxMapnr: 64, pages: pages}))
	d.SetCacheSize(8)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 4096)
			for i := 0; i < 400; i++ {
				pfn := uint64((i*7 + g*13) % 64)
				if _, err := d.ReadPhys(buf, pfn*4096); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(buf, pages[pfn].raw) {
					errs <- fmt.Errorf("pfn %d: wrong content", pfn)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// ReserveCache grows the page cache to the work and never shrinks it: a
// second pass over pages that fit is all hits, and the counts say so.
func TestReserveCache(t *testing.T) {
	pages := map[uint64]kdPage{}
	for pfn := uint64(0); pfn < 32; pfn++ {
		c := codecs[int(pfn)%len(codecs)]
		pages[pfn] = kdPage{raw: fixturePage(t, int(pfn%4), "raw"), flags: c.flags, enc: fixturePage(t, int(pfn%4), c.ext)}
	}
	pass := func(d *Dump) {
		t.Helper()
		buf := make([]byte, 4096)
		for pfn := uint64(0); pfn < 32; pfn++ {
			if _, err := d.ReadPhys(buf, pfn*4096); err != nil || !bytes.Equal(buf, pages[pfn].raw) {
				t.Fatalf("pfn %d: err %v or wrong content", pfn, err)
			}
		}
	}
	tests := []struct {
		name       string
		reserve    []uint64 // bytes, in order
		wantPages  int
		wantHits   uint64 // after two passes over the 32 pages
		wantMisses uint64
	}{
		{"none", nil, 4, 0, 64},
		{"too small", []uint64{2 * 4096}, 4, 0, 64},
		{"all pages", []uint64{32 * 4096}, 32, 32, 32},
		{"partial block rounds down", []uint64{32*4096 - 1}, 31, 0, 64},
		{"never shrinks", []uint64{32 * 4096, 8 * 4096}, 32, 32, 32},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := mustOpen(t, buildKdump(kdSpec{version: 6, maxMapnr: 32, pages: pages}))
			d.SetCacheSize(4)
			for _, n := range tc.reserve {
				d.ReserveCache(n)
			}
			pass(d)
			pass(d)
			cs := d.CacheStats()
			if cs.Pages != tc.wantPages || cs.Hits != tc.wantHits || cs.Misses != tc.wantMisses {
				t.Errorf("have %+v, want %d pages, %d hits, %d misses", cs, tc.wantPages, tc.wantHits, tc.wantMisses)
			}
		})
	}
	// An ELF dump has no page cache: nothing to reserve, nothing counted.
	elf := mustOpen(t, buildELF(elfSpec{loads: []elfLoad{{data: pattern(0, 4*4096)}}}))
	elf.ReserveCache(1 << 30)
	if cs := elf.CacheStats(); cs != (CacheStats{}) {
		t.Errorf("ELF: %+v", cs)
	}
}
