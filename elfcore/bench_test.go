package elfcore

import (
	"math/rand/v2"
	"testing"
)

const benchPages = 1024 // 4 MiB of physical memory

// benchDumps builds ELF and kdump dumps of benchPages pages; compressed
// kdumps cycle through the four fixture pages.
func benchDumps(b *testing.B) map[string][]byte {
	b.Helper()
	out := map[string][]byte{}
	out["elf"] = buildELF(elfSpec{loads: []elfLoad{{data: pattern(0, benchPages*4096)}}})
	raw := map[uint64]kdPage{}
	for pfn := uint64(0); pfn < benchPages; pfn++ {
		raw[pfn] = kdPage{raw: pattern(pfn*4096, 4096)}
	}
	out["kdump-raw"] = buildKdump(kdSpec{version: 6, maxMapnr: benchPages, pages: raw})
	for _, c := range codecs {
		pages := map[uint64]kdPage{}
		for pfn := uint64(0); pfn < benchPages; pfn++ {
			i := int(pfn % 4)
			pages[pfn] = kdPage{raw: fixturePage(b, i, "raw"), flags: c.flags, enc: fixturePage(b, i, c.ext)}
		}
		out["kdump-"+c.name] = buildKdump(kdSpec{version: 6, maxMapnr: benchPages, pages: pages})
	}
	out["flat-kdump-lzo"] = flatten(out["kdump-lzo"], 4096, true, false, 1)
	return out
}

var benchOrder = []string{"elf", "kdump-raw", "kdump-zlib", "kdump-lzo", "kdump-snappy", "kdump-zstd", "flat-kdump-lzo"}

// BenchmarkRandomRead8 reads 8 bytes at random addresses: mostly cache
// misses for kdump, since the dump is 2x the default cache.
func BenchmarkRandomRead8(b *testing.B) {
	dumps := benchDumps(b)
	for _, name := range benchOrder {
		b.Run(name, func(b *testing.B) {
			d := mustOpen(b, dumps[name])
			r := rand.New(rand.NewPCG(1, 2))
			var buf [8]byte
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				pa := r.Uint64N(benchPages*4096-8) &^ 7
				if _, err := d.ReadPhys(buf[:], pa); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSequentialPages reads whole pages in order.
func BenchmarkSequentialPages(b *testing.B) {
	dumps := benchDumps(b)
	for _, name := range benchOrder {
		b.Run(name, func(b *testing.B) {
			d := mustOpen(b, dumps[name])
			buf := make([]byte, 4096)
			b.ReportAllocs()
			b.SetBytes(4096)
			pfn := uint64(0)
			for b.Loop() {
				if _, err := d.ReadPhys(buf, pfn*4096); err != nil {
					b.Fatal(err)
				}
				pfn = (pfn + 1) % benchPages
			}
		})
	}
}

// BenchmarkOpen measures probing and index building.
func BenchmarkOpen(b *testing.B) {
	dumps := benchDumps(b)
	for _, name := range []string{"elf", "kdump-lzo", "flat-kdump-lzo"} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				mustOpen(b, dumps[name])
			}
		})
	}
}
