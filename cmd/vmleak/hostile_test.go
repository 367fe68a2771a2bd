package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/vmleak/vmleak/internal/fixture"
)

// A real kdump file with bytes overwritten at random (header, bitmaps,
// descriptors, page data): vmleak ends with a documented exit code, never an
// internal error, and prints nothing that is not text.
func TestCorruptedDumps(t *testing.T) {
	m := fixture.Load(t, "bookworm-qemu")
	orig, err := os.ReadFile(m.DumpPath(dumpOf(t, m, "qemu1.zlib")))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 11))
	path := filepath.Join(t.TempDir(), "corrupt.zlib")
	codes := map[int]int{}
	for i := range 16 {
		b := append([]byte(nil), orig...)
		// Most of the format's structure is in the first MiB; page data after.
		region := []int{4096, 65536, 1 << 20, len(b)}[i%4]
		for range []int{1, 8, 64}[i%3] {
			b[rng.IntN(min(region, len(b)))] = byte(rng.IntN(256))
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, cmd := range []string{"slabs", "info"} {
			code, out, errs := vmleak(t, cmd, path, "--vmlinux", m.Vmlinux())
			codes[code]++
			switch code {
			case ExitOK, ExitInput, ExitMismatch, ExitPartial:
			default:
				t.Errorf("mutation %d, %s: exit %d\n%s", i, cmd, code, errs)
			}
			if strings.Contains(errs, "internal error") {
				t.Errorf("mutation %d, %s: %s", i, cmd, errs)
			}
			for _, s := range []string{out, errs} {
				if !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' }) {
					t.Errorf("mutation %d, %s: output is not plain text", i, cmd)
				}
			}
		}
	}
	t.Logf("exit codes: %v", codes)
}
