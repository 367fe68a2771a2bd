//go:build !unix

package kdwarf

import (
	"errors"
	"os"
)

func mmapFile(f *os.File) ([]byte, func() error, error) {
	return nil, nil, errors.New("kdwarf: mmap not supported")
}
