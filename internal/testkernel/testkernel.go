// Package testkernel opens fixture dumps as kernels for the tests of the
// packages above kernel (kdwarf and elfcore tests use internal/fixture,
// which cannot import kernel).
package testkernel

import (
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/kernel"
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
