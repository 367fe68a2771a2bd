package kernel_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/testkernel"
	"github.com/vmleak/vmleak/kernel"
)

// corruptible is a fixture ELF dump opened as it is (good), plus a way to
// open it again with kernel words overwritten.
type corruptible struct {
	m    *fixture.Manifest
	path string
	good *kernel.Kernel
}

// loadCorruptible opens the bookworm-qemu ELF dump, whose physical
// addresses map to file offsets directly.
func loadCorruptible(t *testing.T) *corruptible {
	t.Helper()
	m := fixture.Load(t, "bookworm-qemu")
	d := m.Dumps[0]
	if d.Format != "elf" {
		t.Fatalf("want the ELF dump first, have %s", d.File)
	}
	return &corruptible{m: m, path: m.DumpPath(d), good: testkernel.Open(t, m, d)}
}

// word reads the 8 bytes at va in the good dump.
func (c *corruptible) word(t *testing.T, va uint64) uint64 {
	t.Helper()
	w, err := c.good.ReadPtr(va)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// open opens the dump with each 8-byte word at a kernel virtual address
// replaced, closed when the test ends.
func (c *corruptible) open(t *testing.T, words map[uint64]uint64) *kernel.Kernel {
	t.Helper()
	return testkernel.OpenPatched(t, c.m, c.path, c.good, words)
}

func wantIn(t *testing.T, what, have string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(have, w) {
			t.Errorf("%s %q lacks %q", what, have, w)
		}
	}
}

func hexVA(v uint64) string { return fmt.Sprintf("%#x", v) }
