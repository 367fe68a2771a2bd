// Package goldenfile compares test output with golden files, which the tests
// rewrite when run with -update.
package goldenfile

import (
	"bytes"
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// Check compares have with the file at path, or rewrites the file with
// -update.
func Check(t testing.TB, path string, have []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, have, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if !bytes.Equal(have, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\nhave:\n%s\nwant:\n%s", path, have, want)
	}
}
