package kernel_test

import (
	"errors"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/kdwarf"
	"github.com/vmleak/vmleak/kernel"
)

// Two dumps of one boot share one open vmlinux (Options.Types): each
// kernel reads its own memory through it, closing one leaves the types to
// the other, and a vmlinux of another build is refused as an opened one is.
func TestSharedTypes(t *testing.T) {
	m := fixture.Load(t, "bookworm-pair")
	f, err := kdwarf.Open(m.Vmlinux())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ks []*kernel.Kernel
	for _, d := range m.Dumps {
		if d.Format != "kdump" {
			continue
		}
		k, err := kernel.Open(m.DumpPath(d), kernel.Options{Types: f})
		if err != nil {
			t.Fatal(err)
		}
		ks = append(ks, k)
	}
	if len(ks) != 2 {
		t.Fatalf("%d kdump files in bookworm-pair, want 2", len(ks))
	}
	ks[0].Close()
	own, err := kernel.Open(m.DumpPath(m.Dumps[len(m.Dumps)-1]), kernel.Options{Vmlinux: m.Vmlinux()})
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	for _, k := range []*kernel.Kernel{ks[1], own} {
		if _, err := k.TypeOf("struct kmem_cache"); err != nil {
			t.Errorf("%s: after the other kernel closed: %v", k.Path(), err)
		}
	}
	if a, b := ks[1].Release(), own.Release(); a != b {
		t.Errorf("release %q through shared types, %q through its own", a, b)
	}
	ks[1].Close()
	if _, err := f.Type("struct page"); err != nil {
		t.Errorf("the shared vmlinux was closed with its kernels: %v", err)
	}

	// Another kernel's vmlinux: refused as a mismatch.
	for _, other := range fixture.All(t) {
		if other.KernelRelease == m.KernelRelease {
			continue
		}
		_, err := kernel.Open(other.DumpPath(other.Dumps[0]), kernel.Options{Types: f})
		var me *kernel.MismatchError
		if !errors.As(err, &me) {
			t.Errorf("%s with %s's vmlinux: %v, want a MismatchError", other.Name, m.Name, err)
		}
		break
	}
}
