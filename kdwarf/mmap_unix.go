//go:build unix

package kdwarf

import (
	"errors"
	"os"
	"syscall"
)

// mmapFile maps f read-only. Debug sections are then sliced out of the
// mapping instead of being copied, so only the pages a lookup touches are
// read.
func mmapFile(f *os.File) ([]byte, func() error, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	size := st.Size()
	if !st.Mode().IsRegular() || size <= 0 || int64(int(size)) != size {
		return nil, nil, errors.New("kdwarf: cannot map")
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	return b, func() error { return syscall.Munmap(b) }, nil
}
