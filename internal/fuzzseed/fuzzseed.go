// Package fuzzseed writes a fuzz target's seed corpus in the format go test
// replays (testdata/fuzz/<Target>/<name>), so that the seeds a test builds
// from real structures are committed and replayed by every go test run.
// It is imported only by _test files.
package fuzzseed

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Env is the variable that asks the seed writers to run.
const Env = "VMLEAK_WRITE_SEEDS"

// Enabled skips the calling test unless VMLEAK_WRITE_SEEDS=1.
func Enabled(t testing.TB) {
	t.Helper()
	if os.Getenv(Env) != "1" {
		t.Skip("set " + Env + "=1 to regenerate the seed corpus")
	}
}

// Write replaces testdata/fuzz/<target>/seed-* with one file per entry of
// seeds, each entry holding the target's arguments in order. Supported
// argument types: []byte, string, bool, uint8, uint16, uint32, uint64,
// int and int64.
func Write(t testing.TB, target string, seeds [][]any) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	old, _ := filepath.Glob(filepath.Join(dir, "seed-*"))
	for _, p := range old {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	for i, args := range seeds {
		body, err := Encode(args...)
		if err != nil {
			t.Fatalf("%s seed %d: %v", target, i, err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%d", i)), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Encode renders one corpus entry.
func Encode(args ...any) ([]byte, error) {
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			b.WriteString("[]byte(" + strconv.Quote(string(v)) + ")")
		case string:
			b.WriteString("string(" + strconv.Quote(v) + ")")
		case bool:
			b.WriteString("bool(" + strconv.FormatBool(v) + ")")
		case uint8:
			b.WriteString("byte(" + strconv.FormatUint(uint64(v), 10) + ")")
		case uint16:
			b.WriteString("uint16(" + strconv.FormatUint(uint64(v), 10) + ")")
		case uint32:
			b.WriteString("uint32(" + strconv.FormatUint(uint64(v), 10) + ")")
		case uint64:
			b.WriteString("uint64(" + strconv.FormatUint(v, 10) + ")")
		case int:
			b.WriteString("int(" + strconv.Itoa(v) + ")")
		case int64:
			b.WriteString("int64(" + strconv.FormatInt(v, 10) + ")")
		default:
			return nil, fmt.Errorf("fuzzseed: unsupported argument type %T", a)
		}
		b.WriteByte('\n')
	}
	return []byte(b.String()), nil
}
