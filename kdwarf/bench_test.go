package kdwarf

import (
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/vmleak/vmleak/internal/fixture"
)

// lookupAll does 30 lookups: the 27 names of realTypes (on 6.1, struct
// module_memory and struct page_ext are absent), list_head and slab again
// (cached) and "unsigned long".
func lookupAll(b *testing.B, f *File) {
	n := 0
	for _, name := range append(realTypes, "struct list_head", "struct slab", "unsigned long") {
		if _, err := f.Type(name); err == nil {
			n++
		}
	}
	if n < 25 {
		b.Fatalf("only %d lookups succeeded", n)
	}
}

// forKernels runs a benchmark on the 6.1 and the 7.x vmlinux.
func forKernels(b *testing.B, fn func(b *testing.B, k *fixture.Kernel)) {
	for _, suite := range []string{"bookworm", "sid"} {
		b.Run(suite, func(b *testing.B) { fn(b, fixture.KernelOf(b, suite)) })
	}
}

// cpuTime returns the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports CPU time per op next to wall time: on a shared,
// oversubscribed machine wall time mostly measures the wait for a core.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64((cpuTime()-start).Milliseconds())/float64(b.N), "cpu-ms/op")
}

// BenchmarkColdIndex opens the vmlinux with an empty index cache:
// ELF, DWARF sections, parallel name-index build, index write, one lookup.
func BenchmarkColdIndex(b *testing.B) {
	forKernels(b, func(b *testing.B, k *fixture.Kernel) {
		b.ReportAllocs()
		defer reportCPU(b, cpuTime())
		for b.Loop() {
			dir, err := os.MkdirTemp("", "kdwarf-bench-")
			if err != nil {
				b.Fatal(err)
			}
			f, err := Open(k.Vmlinux(), WithSource(SourceDWARF), WithCacheDir(dir), WithStartupCache(""))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := f.Struct("slab"); err != nil {
				b.Fatal(err)
			}
			f.Close()
			os.RemoveAll(dir)
		}
	})
}

// BenchmarkWarm opens the vmlinux with its index on disk and looks up
// the 30 types.
func BenchmarkWarm(b *testing.B) {
	forKernels(b, func(b *testing.B, k *fixture.Kernel) {
		dir := b.TempDir()
		f, err := Open(k.Vmlinux(), WithSource(SourceDWARF), WithCacheDir(dir), WithStartupCache(""))
		if err != nil {
			b.Fatal(err)
		}
		f.Struct("slab") // build and store the index
		f.Close()
		b.ReportAllocs()
		defer reportCPU(b, cpuTime())
		for b.Loop() {
			f, err := Open(k.Vmlinux(), WithSource(SourceDWARF), WithCacheDir(dir), WithStartupCache(""))
			if err != nil {
				b.Fatal(err)
			}
			lookupAll(b, f)
			if !f.dw.fromDisk {
				b.Fatal("index not read from disk")
			}
			f.Close()
		}
	})
}

// BenchmarkBTF opens the vmlinux and looks the 30 types up in BTF.
func BenchmarkBTF(b *testing.B) {
	forKernels(b, func(b *testing.B, k *fixture.Kernel) {
		b.ReportAllocs()
		defer reportCPU(b, cpuTime())
		for b.Loop() {
			f, err := Open(k.Vmlinux(), WithSource(SourceBTF), WithStartupCache(""))
			if err != nil {
				b.Fatal(err)
			}
			lookupAll(b, f)
			f.Close()
		}
	})
}

// BenchmarkSymbols loads .symtab and resolves one address; "cached" reads
// the symbols from the start-up cache instead.
func BenchmarkSymbols(b *testing.B) {
	forKernels(b, func(b *testing.B, k *fixture.Kernel) {
		b.Run("symtab", func(b *testing.B) { benchSymbols(b, k, "") })
		b.Run("cached", func(b *testing.B) { benchSymbols(b, k, b.TempDir()) })
	})
}

func benchSymbols(b *testing.B, k *fixture.Kernel, cache string) {
	f, err := Open(k.Vmlinux(), WithStartupCache(cache))
	if err != nil {
		b.Fatal(err)
	}
	f.Symbol("kmem_cache_free") // fills the cache
	f.Close()
	b.ReportAllocs()
	defer reportCPU(b, cpuTime())
	for b.Loop() {
		f, err := Open(k.Vmlinux(), WithStartupCache(cache))
		if err != nil {
			b.Fatal(err)
		}
		s, err := f.Symbol("kmem_cache_free") // in every lab kernel (7.x has no kmem_cache_alloc)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, ok := f.SymbolAt(s.Value + 1); !ok {
			b.Fatal("SymbolAt")
		}
		if f.SymbolsFromCache() != (cache != "") {
			b.Fatal("start-up cache not used as asked")
		}
		f.Close()
	}
}

// BenchmarkTypesCached is BenchmarkBTF's 30 lookups answered by the
// start-up cache, BTF never parsed.
func BenchmarkTypesCached(b *testing.B) {
	forKernels(b, func(b *testing.B, k *fixture.Kernel) {
		dir := b.TempDir()
		f, err := Open(k.Vmlinux(), WithSource(SourceBTF), WithStartupCache(dir))
		if err != nil {
			b.Fatal(err)
		}
		lookupAll(b, f)
		f.Close() // writes the cache
		b.ReportAllocs()
		defer reportCPU(b, cpuTime())
		for b.Loop() {
			f, err := Open(k.Vmlinux(), WithSource(SourceBTF), WithStartupCache(dir))
			if err != nil {
				b.Fatal(err)
			}
			lookupAll(b, f)
			if f.btfDone {
				b.Fatal("BTF parsed")
			}
			f.Close()
		}
	})
}

// BenchmarkLineAt opens the vmlinux and looks up the lines of 1,000
// functions spread over it (about 600 compile units): the line index, and
// the line programs of those units decoded once each.
func BenchmarkLineAt(b *testing.B) {
	forKernels(b, func(b *testing.B, k *fixture.Kernel) {
		f0, err := Open(k.Vmlinux())
		if err != nil {
			b.Fatal(err)
		}
		var addrs []uint64
		for _, s := range sampleFuncs(b, f0, map[string]bool{".text": true}, 1000) {
			addrs = append(addrs, s.Value+s.Size/2)
		}
		f0.Close()
		b.ReportAllocs()
		defer reportCPU(b, cpuTime())
		for b.Loop() {
			f, err := Open(k.Vmlinux())
			if err != nil {
				b.Fatal(err)
			}
			for _, a := range addrs {
				if _, err := f.LineAt(a); err != nil && !errors.Is(err, ErrNotFound) {
					b.Fatal(err)
				}
			}
			f.Close()
		}
	})
}
