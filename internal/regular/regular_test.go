package regular

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A FIFO is refused without waiting for a writer, a directory by name; a
// regular file opens with its size.
func TestOpen(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("12345"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, want string
	}{{fifo, "a FIFO, not a regular file"}, {dir, "a directory, not a regular file"}, {"/dev/null", "a character device"}} {
		done := make(chan error, 1)
		go func() {
			f, _, err := Open(tc.path)
			if f != nil {
				f.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			var ne *NotRegularError
			if !errors.As(err, &ne) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
				t.Errorf("%s: %v, want a NotRegularError saying %q", tc.path, err, tc.want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: Open blocked", tc.path)
		}
	}
	f, size, err := Open(file)
	if err != nil || size != 5 {
		t.Fatalf("regular file: size %d, %v", size, err)
	}
	b := make([]byte, 5)
	if _, err := f.ReadAt(b, 0); err != nil || string(b) != "12345" {
		t.Errorf("read %q, %v", b, err)
	}
	f.Close()
	if _, err := ReadFile(file, 4); err == nil {
		t.Error("a 5-byte file read with a 4-byte bound")
	}
	if b, err := ReadFile(file, 5); err != nil || string(b) != "12345" {
		t.Errorf("ReadFile: %q, %v", b, err)
	}
}
