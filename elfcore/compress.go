package elfcore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	lzo "github.com/anchore/go-lzo"
	"github.com/golang/snappy"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// Page descriptor flags (makedumpfile diskdump_mod.h).
const (
	dumpDHCompressedZlib       = 0x1
	dumpDHCompressedLZO        = 0x2
	dumpDHCompressedSnappy     = 0x4
	dumpDHCompressedIncomplete = 0x8 // header status only
	dumpDHExcludedVmemmap      = 0x10
	dumpDHCompressedZstd       = 0x20

	dumpDHCompressedAny = dumpDHCompressedZlib | dumpDHCompressedLZO | dumpDHCompressedSnappy | dumpDHCompressedZstd
)

// Bits of the per-dump "seen" mask, one per encoding name.
const (
	seenNone = 1 << iota
	seenZlib
	seenLZO
	seenSnappy
	seenZstd
)

var seenNames = []struct {
	bit  uint32
	name string
}{
	{seenLZO, "lzo"}, {seenNone, "none"}, {seenSnappy, "snappy"}, {seenZlib, "zlib"}, {seenZstd, "zstd"},
}

func seenBit(flags uint32) uint32 {
	switch {
	case flags&dumpDHCompressedZlib != 0:
		return seenZlib
	case flags&dumpDHCompressedLZO != 0:
		return seenLZO
	case flags&dumpDHCompressedSnappy != 0:
		return seenSnappy
	case flags&dumpDHCompressedZstd != 0:
		return seenZstd
	}
	return seenNone
}

var errSizeMismatch = errors.New("decompressed size differs from block size")

var zlibPool sync.Pool // of io.ReadCloser implementing zlib.Resetter

// zstdDecoder is shared: DecodeAll is safe for concurrent use. Built on
// first use because most dumps never need it.
var zstdDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
	return zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0),
		zstd.WithDecoderMaxMemory(1<<24),
		zstd.WithDecoderMaxWindow(1<<24))
})

// decompressPage decodes src (encoded per descriptor flags) into dst, whose
// length is the block size, and insists on exactly len(dst) bytes out.
func decompressPage(dst, src []byte, flags uint32) (err error) {
	switch {
	case flags&dumpDHCompressedZlib != 0:
		return inflate(dst, src)
	case flags&dumpDHCompressedLZO != 0:
		// Third-party decoder fed untrusted bytes: convert a panic into
		// an error rather than take the process down.
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("lzo: decoder panic: %v", r)
			}
		}()
		n, err := lzo.Decompress(src, dst)
		if err != nil {
			return err
		}
		if n != len(dst) {
			return fmt.Errorf("lzo: %w (%d, want %d)", errSizeMismatch, n, len(dst))
		}
		return nil
	case flags&dumpDHCompressedSnappy != 0:
		n, err := snappy.DecodedLen(src)
		if err != nil {
			return fmt.Errorf("snappy: %w", err)
		}
		if n != len(dst) {
			return fmt.Errorf("snappy: %w (%d, want %d)", errSizeMismatch, n, len(dst))
		}
		out, err := snappy.Decode(dst, src)
		if err != nil {
			return fmt.Errorf("snappy: %w", err)
		}
		if len(out) != len(dst) {
			return fmt.Errorf("snappy: %w", errSizeMismatch)
		}
		return nil
	case flags&dumpDHCompressedZstd != 0:
		dec, err := zstdDecoder()
		if err != nil {
			return fmt.Errorf("zstd: %w", err)
		}
		out, err := dec.DecodeAll(src, dst[:0])
		if err != nil {
			return fmt.Errorf("zstd: %w", err)
		}
		if len(out) != len(dst) {
			return fmt.Errorf("zstd: %w (%d, want %d)", errSizeMismatch, len(out), len(dst))
		}
		if &out[0] != &dst[0] {
			copy(dst, out) // decoder grew a new buffer; cannot happen for a matching size
		}
		return nil
	}
	if len(src) != len(dst) {
		return fmt.Errorf("raw page of %d bytes, want %d", len(src), len(dst))
	}
	copy(dst, src)
	return nil
}

func inflate(dst, src []byte) error {
	br := bytes.NewReader(src)
	var zr io.ReadCloser
	if v := zlibPool.Get(); v != nil {
		zr = v.(io.ReadCloser)
		if err := zr.(zlib.Resetter).Reset(br, nil); err != nil {
			return fmt.Errorf("zlib: %w", err)
		}
	} else {
		var err error
		if zr, err = zlib.NewReader(br); err != nil {
			return fmt.Errorf("zlib: %w", err)
		}
	}
	defer zlibPool.Put(zr)
	if _, err := io.ReadFull(zr, dst); err != nil {
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			return fmt.Errorf("zlib: %w (short)", errSizeMismatch)
		}
		return fmt.Errorf("zlib: %w", err)
	}
	// One more byte must hit the end of the stream (which also verifies
	// the Adler-32 checksum).
	var one [1]byte
	if n, err := zr.Read(one[:]); n != 0 {
		return fmt.Errorf("zlib: %w (long)", errSizeMismatch)
	} else if err != io.EOF {
		if err == nil {
			// A reader may return 0, nil; ask again once.
			if n, err = zr.Read(one[:]); n != 0 || err != io.EOF {
				return fmt.Errorf("zlib: trailing data or checksum: %v", err)
			}
			return nil
		}
		return fmt.Errorf("zlib: %w", err)
	}
	return nil
}
