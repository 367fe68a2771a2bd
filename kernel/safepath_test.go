package kernel

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// A release or module name read from a crafted dump must not make a
// debuginfo lookup leave the trees it searches: "../" sequences, NUL and
// other control bytes make the value unusable as a path element.
func TestCraftedNamesStayInTheTrees(t *testing.T) {
	root := t.TempDir()
	// A file a "../" release would reach: root/usr/lib/debug/boot/vmlinux-../../../secret
	// resolves to root/usr/secret... put the target where each trick lands.
	secret := filepath.Join(root, "secret")
	if err := os.WriteFile(filepath.Join(root, "vmlinux-x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secret, []byte("not a vmlinux"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", ".", "..", "../../../../secret", "x/../../secret", "6.1\x00/../secret", "6.1\n", "a\\b", string(make([]byte, 300))} {
		if SafePathElement(bad) {
			t.Errorf("SafePathElement(%q) = true", bad)
		}
		if f := FindVmlinux(bad, []string{filepath.Join(root, "a", "b")}); f != "" {
			t.Errorf("FindVmlinux(%q) = %s", bad, f)
		}
		if _, err := FindModuleDebuginfo("6.1.0", bad, nil, []string{root}); !errors.Is(err, ErrNoDebuginfo) {
			t.Errorf("FindModuleDebuginfo(name %q): %v", bad, err)
		}
	}
	for _, good := range []string{"6.1.0-56-cloud-amd64", "7.2.13+deb14-cloud-amd64", "5.10.0-32-cloud-amd64", "vmleak_test"} {
		if !SafePathElement(good) {
			t.Errorf("SafePathElement(%q) = false", good)
		}
	}
	// A crafted release still lets a module be found by the given roots.
	dir := filepath.Join(root, "mods")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := FindModuleDebuginfo("../../..", "vmleak_test", nil, []string{dir}); !errors.Is(err, ErrNoDebuginfo) {
		t.Errorf("crafted release: %v", err)
	}
}
