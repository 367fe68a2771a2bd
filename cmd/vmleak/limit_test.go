package main

import (
	"bytes"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vmleak/vmleak/internal/fixture"
)

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"4G", 4 << 30, true}, {"512M", 512 << 20, true}, {"512MiB", 512 << 20, true},
		{"100k", 100 << 10, true}, {"1T", 1 << 40, true}, {"12345", 12345, true},
		{"", 0, false}, {"-1", 0, false}, {"4X", 0, false}, {"99999999999T", 0, false}, {"1.5G", 0, false},
	} {
		got, err := parseBytes(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	if code, _, errs := vmleak(t, "info", "x", "--max-memory", "lots"); code != ExitUsage || !strings.Contains(errs, "--max-memory") {
		t.Errorf("bad --max-memory: exit %d %q", code, errs)
	}
}

// A command that needs more memory than --max-memory is stopped with exit
// code 8 and one line naming the input; the default limit leaves the same
// command alone.
func TestMemoryLimit(t *testing.T) {
	m := fixture.Load(t, "bookworm-qemu")
	dump := m.DumpPath(dumpOf(t, m, "qemu1.zlib"))
	codes := make(chan int, 1)
	exitProcess = func(code int) {
		select {
		case codes <- code:
		default:
		}
	}
	defer func() { exitProcess = os.Exit }()
	var stderr bytes.Buffer
	run([]string{"slabs", dump, "--vmlinux", m.Vmlinux(), "--max-memory", "8M"}, &bytes.Buffer{}, &stderr)
	select {
	case code := <-codes:
		if code != ExitResource {
			t.Errorf("exit %d, want %d", code, ExitResource)
		}
	case <-time.After(time.Second):
		t.Fatal("8 MiB did not stop slabs")
	}
	if line := stderr.String(); !strings.Contains(line, "resource limit") || !strings.Contains(line, dump) {
		t.Errorf("message %q does not name the limit and the input", line)
	}
	exitProcess = func(code int) { t.Errorf("the default limit stopped slabs: exit %d", code) }
	if code, _, errs := vmleak(t, "slabs", dump, "--vmlinux", m.Vmlinux()); code != ExitOK {
		t.Errorf("slabs under the default limit: exit %d %s", code, errs)
	}
}

// The resident measure counts anonymous memory: a fresh 64 MiB heap buffer,
// once written, shows up in it.
func TestAnonResidentBytes(t *testing.T) {
	if _, err := os.Stat("/proc/self/statm"); err != nil {
		t.Skip("no /proc/self/statm")
	}
	before := anonResidentBytes()
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	after := anonResidentBytes()
	if after-before < 48<<20 {
		t.Errorf("anonymous resident memory grew by %d bytes after writing 64 MiB", after-before)
	}
	runtime.KeepAlive(buf)
}
