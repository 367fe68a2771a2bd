package kernel_test

import (
	"path/filepath"
	"testing"

	"github.com/vmleak/vmleak/elfcore"
	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/kernel"
)

// ReserveCache grows a compressed dump's page cache to the work asked for,
// no further than Options.CacheLimit (default DefaultCacheLimit), and
// leaves an ELF dump, read through the operating system's page cache, alone.
func TestReserveCacheLimit(t *testing.T) {
	m := fixture.Load(t, "bookworm-kdump")
	tests := []struct {
		file      string
		limit     uint64
		reserve   uint64
		wantPages int
	}{
		{"kdump.lzo", 0, 1 << 40, kernel.DefaultCacheLimit / 4096},
		{"kdump.lzo", 4 << 20, 1 << 40, 1024},
		{"kdump.zlib", 64 << 20, 8 << 20, 2048},
		{"kdump.zlib", 0, 4096, elfcore.DefaultCachePages}, // never below the default
		{"kdump.elf", 0, 1 << 30, 0},
	}
	for _, tc := range tests {
		k, err := kernel.Open(filepath.Join(m.Dir, tc.file), kernel.Options{Vmlinux: m.Vmlinux(), CacheLimit: tc.limit})
		if err != nil {
			t.Fatal(err)
		}
		k.ReserveCache(tc.reserve)
		if have := k.Dump().CacheStats().Pages; have != tc.wantPages {
			t.Errorf("%s limit %d reserve %d: cache of %d pages, want %d", tc.file, tc.limit, tc.reserve, have, tc.wantPages)
		}
		k.Close()
	}
}
