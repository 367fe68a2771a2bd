package kernel_test

import (
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/kernel"
)

// BenchmarkOpen is the start-up every command pays (`vmleak info`): the
// 1 GiB 6.1 kdump and its vmlinux opened, the kernel located, with the
// start-up cache (symbols, types) and without it. `go test -run - -bench
// Open ./kernel`.
func BenchmarkOpen(b *testing.B) {
	m := fixture.Load(b, "bookworm-kdump")
	path := m.DumpPath(m.Dumps[0])
	for _, bc := range []struct {
		name  string
		cache string
	}{{"cached", b.TempDir()}, {"uncached", kernel.NoTypeCache}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				k, err := kernel.Open(path, kernel.Options{Vmlinux: m.Vmlinux(), TypeCache: bc.cache})
				if err != nil {
					b.Fatal(err)
				}
				if !k.HasType("struct kmem_cache_cpu") { // one type question, as every command asks
					b.Fatal("no struct kmem_cache_cpu")
				}
				k.Close()
			}
		})
	}
}
