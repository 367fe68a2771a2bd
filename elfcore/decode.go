package elfcore

import (
	"encoding/binary"
	"fmt"
	"io"
)

// fields is a sticky-error little decoder over a fixed byte slice: reads past
// the end return zero and set short, so a parser can read a whole structure
// and check once.
type fields struct {
	b     []byte
	bo    binary.ByteOrder
	short bool
}

func (f *fields) u16(off int) uint16 {
	if off < 0 || off+2 > len(f.b) {
		f.short = true
		return 0
	}
	return f.bo.Uint16(f.b[off:])
}

func (f *fields) u32(off int) uint32 {
	if off < 0 || off+4 > len(f.b) {
		f.short = true
		return 0
	}
	return f.bo.Uint32(f.b[off:])
}

func (f *fields) u64(off int) uint64 {
	if off < 0 || off+8 > len(f.b) {
		f.short = true
		return 0
	}
	return f.bo.Uint64(f.b[off:])
}

// cstr returns the NUL-terminated string in b[off:off+n].
func (f *fields) cstr(off, n int) string {
	if off < 0 || off+n > len(f.b) {
		f.short = true
		return ""
	}
	s := f.b[off : off+n]
	for i, c := range s {
		if c == 0 {
			return string(s[:i])
		}
	}
	return string(s)
}

// readMeta reads n bytes of metadata at off, refusing before allocating when
// the range is not inside the file. what names the structure for the error.
func readMeta(r io.ReaderAt, size int64, name string, off int64, n int64, what string) ([]byte, error) {
	if n < 0 || off < 0 || off > size || n > size-off {
		return nil, &FormatError{name, off, what + " extends beyond end of file"}
	}
	b := make([]byte, n)
	// io.ReaderAt may return io.EOF alongside a full buffer; only the count
	// matters.
	if m, err := r.ReadAt(b, off); int64(m) != n {
		msg := "short read of " + what
		if err != nil {
			msg += ": " + err.Error()
		}
		return nil, &FormatError{name, off, msg}
	}
	return b, nil
}

func isEOF(err error) bool { return err == io.EOF || err == io.ErrUnexpectedEOF }

// meta is readMeta on the dump's logical file, additionally refusing more
// than the bytes actually stored: a flattened stream can place a record at
// a huge logical offset, and the zeros of the gap before it must not be
// taken as room for metadata.
func (d *Dump) meta(off, n int64, what string) ([]byte, error) {
	if d.stored < d.size && n > d.stored {
		return nil, &FormatError{d.name, off, fmt.Sprintf("%s of %d bytes exceeds the %d bytes stored", what, n, d.stored)}
	}
	return readMeta(d.r, d.size, d.name, off, n, what)
}
