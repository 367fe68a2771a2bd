package walk_test

import (
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/walk"
)

// BenchmarkCensus is `vmleak slabs` without the printing, per format of
// the 1 GiB 6.1 kdump (ELF, lzo, zlib; -d 31): opening the dump and the
// vmlinux (start-up cache warm after the first iteration), the struct page
// scan over both cores and every slab's freelist walk. `go test -run -
// -bench Census ./walk`.
func BenchmarkCensus(b *testing.B) {
	m := fixture.Load(b, "bookworm-kdump")
	cache := b.TempDir()
	for _, d := range m.Dumps {
		if d.Format == "flattened" {
			continue
		}
		b.Run(d.File, func(b *testing.B) {
			b.ReportAllocs()
			var read uint64
			for b.Loop() {
				k, err := kernel.Open(m.DumpPath(d), kernel.Options{Vmlinux: m.Vmlinux(), TypeCache: cache})
				if err != nil {
					b.Fatal(err)
				}
				w, err := walk.New(k)
				if err != nil {
					b.Fatal(err)
				}
				c, err := w.Census()
				if err != nil {
					b.Fatal(err)
				}
				read = c.PagesScanned
				k.Close()
			}
			// On the -d 31 files, the struct pages of the page frames
			// makedumpfile left out are not read (decompressed) at all.
			b.ReportMetric(float64(read), "structpages-read/op")
		})
	}
}

// BenchmarkCensusWarm repeats the census on one open kernel: the struct
// page scan and the freelist walks alone, the dump's pages cached.
func BenchmarkCensusWarm(b *testing.B) {
	m := fixture.Load(b, "bookworm-kdump")
	for _, d := range m.Dumps {
		if d.Format == "flattened" {
			continue
		}
		b.Run(d.File, func(b *testing.B) {
			k, err := kernel.Open(m.DumpPath(d), kernel.Options{Vmlinux: m.Vmlinux(), TypeCache: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer k.Close()
			w, err := walk.New(k)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := w.Census(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
