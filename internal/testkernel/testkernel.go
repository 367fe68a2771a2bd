// Package testkernel opens fixture dumps as kernels for the tests of the
// packages above kernel (kdwarf and elfcore tests use internal/fixture,
// which cannot import kernel).
package testkernel

import (
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/synth"
	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/walk"
)

// Open opens one dump file of a fixture with its vmlinux; it is
// closed when the test ends.
func Open(t testing.TB, m *fixture.Manifest, d fixture.DumpFile) *kernel.Kernel {
	t.Helper()
	k, err := kernel.Open(m.DumpPath(d), kernel.Options{Vmlinux: m.Vmlinux()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// Uint reads an integer or pointer a test needs, failing the test if it
// cannot.
func Uint(t testing.TB, v kernel.Value) uint64 {
	t.Helper()
	u, err := v.Uint()
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Census opens a kernel's slab walker and takes its census, with merged
// caches' aliases set, failing the test if it cannot.
func Census(t testing.TB, k *kernel.Kernel) (*walk.Walker, *walk.Census) {
	t.Helper()
	w, err := walk.New(k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := w.Census()
	if err != nil {
		t.Fatal(err)
	}
	w.SetAliases(c)
	return w, c
}

// OpenPatched reopens the ELF dump file at path, read by good, with each
// 8-byte word at a kernel virtual address replaced, as a corrupted or
// crafted dump would have it. It is closed when the test ends.
func OpenPatched(t testing.TB, m *fixture.Manifest, path string, good *kernel.Kernel, words map[uint64]uint64) *kernel.Kernel {
	t.Helper()
	fileWords := make(map[int64]uint64, len(words))
	for va, v := range words {
		pa, err := good.Translate(va)
		if err != nil {
			t.Fatal(err)
		}
		for _, off := range fixture.FileOffsets(t, good.Dump(), pa) {
			fileWords[off] = v
		}
	}
	k, err := kernel.OpenDump(fixture.OpenPatched(t, path, fileWords), path, kernel.Options{Vmlinux: m.Vmlinux()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// Synth writes a synthetic kernel's files into a temporary directory and
// opens them; the kernel is closed when the test ends.
func Synth(t testing.TB, sk *synth.Kernel) *kernel.Kernel {
	t.Helper()
	dir := t.TempDir()
	fs, err := sk.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	k, err := kernel.Open(fs.Vmcore, kernel.Options{Vmlinux: fs.Vmlinux, IndexDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}
