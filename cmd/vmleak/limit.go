package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"
)

// exitProcess ends the process when the memory limit is hit; tests replace it.
var exitProcess = os.Exit

// memoryLimit watches the Go runtime's memory and the process's anonymous
// resident memory while a command runs (every 5 ms): past limit bytes it
// prints one line naming the inputs and ends the process with ExitResource.
// The runtime's soft limit is set just below, so the collector works harder
// before that. It returns the function that stops watching.
func memoryLimit(limit int64, inputs []string, stderr io.Writer) func() {
	if limit <= 0 {
		return func() {}
	}
	prev := debug.SetMemoryLimit(limit / 10 * 9)
	stop := make(chan struct{})
	var once sync.Once
	go func() {
		samples := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			metrics.Read(samples)
			used := int64(samples[0].Value.Uint64() - samples[1].Value.Uint64())
			// Anonymous resident memory too: what the runtime returned may
			// stay resident a while, and the bound is on what the machine gives.
			if rss := anonResidentBytes(); rss > used {
				used = rss
			}
			if used > limit {
				fmt.Fprintf(stderr, "vmleak: resource limit: memory use %s exceeds --max-memory %s reading %s (raise it with --max-memory, 0 for none)\n",
					humanBytes(uint64(used)), humanBytes(uint64(limit)), strings.Join(inputs, ", "))
				exitProcess(ExitResource)
				return
			}
		}
	}()
	return func() {
		once.Do(func() {
			close(stop)
			debug.SetMemoryLimit(prev)
		})
	}
}

// anonResidentBytes is the process's resident memory that is not backed by
// a file (statm's resident minus shared), or 0 where /proc/self/statm cannot
// be read (not Linux). The mapped vmlinux's pages are the page cache's, which
// the kernel reclaims at will: they are not memory vmleak holds.
func anonResidentBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return 0
	}
	resident, err1 := strconv.ParseInt(f[1], 10, 64)
	shared, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil || resident < shared || shared < 0 {
		return 0
	}
	return (resident - shared) * int64(os.Getpagesize())
}

// parseBytes reads a size: a number of bytes with an optional K, M, G or T
// suffix (powers of 1024, "B" or "iB" after it allowed).
func parseBytes(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	mult := int64(1)
	if n := len(t); n > 0 {
		if i := strings.IndexByte("KMGT", t[n-1]); i >= 0 {
			mult = 1 << (10 * (i + 1))
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size (e.g. 4G, 512M, 0 for no limit)", s)
	}
	return v * mult, nil
}
