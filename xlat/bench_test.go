package xlat

import (
	"testing"
)

// benchTables maps benchPages 4 KiB pages at benchVA through 16 fully
// populated PTs: more pages than TLB slots, so a sequential sweep misses
// the TLB and exercises the table-page cache instead.
const (
	benchVA    = 0xffffc90000000000 // vmalloc-style 4 KiB mappings
	benchPages = 16 * nEntries
)

func benchMem() *fakeMem {
	tables := []pte{
		{0x1000, 0x192, 0x2003}, // PML4: 0xffffc90000000000 -> PDPT @0x2000
		{0x2000, 0, 0x3003},     // PDPT[0] -> PD @0x3000
	}
	for pt := range uint64(16) {
		ptPA := 0x10000 + pt*pageSize
		tables = append(tables, pte{0x3000, int(pt), ptPA | 3})
		for i := range uint64(nEntries) {
			// Physically scattered, so Mappings cannot merge them.
			tables = append(tables, pte{ptPA, int(i), (0x100000+(pt*nEntries+i)*2*pageSize)&addrMask | 3})
		}
	}
	return newMem(tables, 0x100000)
}

func BenchmarkTranslate(b *testing.B) {
	mem := benchMem()
	for _, bc := range []struct {
		name    string
		noCache bool
		stride  uint64 // in pages; 0 = same address every time
	}{
		{"tlb-hit", false, 0},
		{"table-cache", false, 1},
		{"uncached", true, 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			x := newT(b, mem, 4, bc.noCache)
			b.ReportAllocs()
			var page uint64
			for b.Loop() {
				if _, _, err := x.Translate(benchVA + page*pageSize + 0x10); err != nil {
					b.Fatal(err)
				}
				page = (page + bc.stride) % benchPages
			}
		})
	}
}

func BenchmarkTranslateParallel(b *testing.B) {
	x := newT(b, benchMem(), 4, false)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var page uint64
		for pb.Next() {
			if _, _, err := x.Translate(benchVA + page*pageSize); err != nil {
				b.Fatal(err)
			}
			page = (page + 1) % 64 // stays within the TLB
		}
	})
}

func BenchmarkReadVirt(b *testing.B) {
	x := newT(b, benchMem(), 4, false)
	buf := make([]byte, 64)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, err := x.ReadVirt(buf, benchVA+0x100); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMappings(b *testing.B) {
	x := newT(b, benchMem(), 4, false)
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		for _, err := range x.Mappings(0, 0) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != benchPages {
			b.Fatalf("%d mappings", n)
		}
	}
}

// BenchmarkTranslateLargePages sweeps every 4 KiB page of 64 MiB mapped by
// 2 MiB pages, as the struct page scan does through the vmemmap: each large
// page is walked once and then found in the TLB for all its 4 KiB pages.
func BenchmarkTranslateLargePages(b *testing.B) {
	const va = 0xffffea0000000000 // vmemmap_base's default
	tables := []pte{
		{0x1000, 0x1d4, 0x2003}, // PML4 -> PDPT @0x2000
		{0x2000, 0, 0x3003},     // PDPT[0] -> PD @0x3000
	}
	const large = 32
	for i := range uint64(large) {
		tables = append(tables, pte{0x3000, int(i), (0x40000000+i*(1<<21))&addrMask | 0x83})
	}
	x := newT(b, newMem(tables), 4, false)
	b.ReportAllocs()
	var page uint64
	for b.Loop() {
		if _, _, err := x.Translate(va + page*pageSize); err != nil {
			b.Fatal(err)
		}
		page = (page + 1) % (large * nEntries)
	}
}
