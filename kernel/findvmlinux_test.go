package kernel_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vmleak/vmleak/kernel"
)

// A vmlinux named for the release wins over a bare vmlinux, whichever root
// comes first: the lab passes every kernel's root, each with a bare
// vmlinux of its own release.
func TestFindVmlinux(t *testing.T) {
	dir := t.TempDir()
	put := func(p string) string {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	put("a/vmlinux")
	want := put("b/usr/lib/debug/boot/vmlinux-6.1.0-56-cloud-amd64")
	bare := put("c/vmlinux")
	roots := []string{filepath.Join(dir, "a"), filepath.Join(dir, "b")}
	if have := kernel.FindVmlinux("6.1.0-56-cloud-amd64", roots); have != want {
		t.Errorf("found %q, want %q", have, want)
	}
	if have := kernel.FindVmlinux("6.12.0-1-amd64", []string{filepath.Join(dir, "c")}); have != bare {
		t.Errorf("without a named file: %q, want the bare %q", have, bare)
	}
	if have := kernel.FindVmlinux("", roots); have != "" {
		t.Errorf("no release: %q", have)
	}
}
