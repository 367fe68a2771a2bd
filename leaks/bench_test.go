package leaks_test

import (
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/testkernel"
	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/leaks"
	"github.com/vmleak/vmleak/symbolize"
)

// BenchmarkFind is `vmleak leaks` without the printing, per format of the
// 1 GiB 6.1 kdump (ELF, lzo, zlib; -d 31), on a fresh kernel each time:
// census, the Slabs pass and the mark phase. On the compressed files the
// page cache is sized from the census (Kernel.ReserveCache), so the mark
// phase finds the slab pages Slabs just decompressed; the "default-cache"
// runs keep the cache at its default, the cost before. misses/op is the
// pages decompressed. `go test -run - -bench Find ./leaks`.
func BenchmarkFind(b *testing.B) {
	m := fixture.Load(b, "bookworm-kdump")
	cache := b.TempDir()
	for _, d := range m.Dumps {
		if d.Format == "flattened" {
			continue
		}
		for _, limit := range []struct {
			name  string
			bytes uint64
		}{{"sized", 0}, {"default-cache", 1}} {
			b.Run(d.File+"/"+limit.name, func(b *testing.B) {
				b.ReportAllocs()
				var cs float64
				for b.Loop() {
					k, err := kernel.Open(m.DumpPath(d), kernel.Options{Vmlinux: m.Vmlinux(), TypeCache: cache, CacheLimit: limit.bytes})
					if err != nil {
						b.Fatal(err)
					}
					w, c := testkernel.Census(b, k)
					if _, err := leaks.Find(k, w, c, symbolize.New(w)); err != nil {
						b.Fatal(err)
					}
					cs += float64(k.Dump().CacheStats().Misses)
					k.Close()
				}
				b.ReportMetric(cs/float64(b.N), "misses/op")
			})
		}
	}
}
