package elfcore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"sync"

	"github.com/golang/snappy"
)

// AVML's compressed LiME (version 2; see lime.go). Each block's bytes are a
// Snappy framing-format stream (github.com/google/snappy framing_format.txt):
// 4-byte chunk headers (type, 24-bit length); 0xff stream identifier
// "sNaPpY", 0x00 compressed and 0x01 uncompressed data (a masked CRC-32C of
// the uncompressed bytes, then the data; at most 65536 bytes uncompressed),
// 0xfe padding and 0x80-0xfd skippable; 0x02-0x7f are reserved and fatal.

const (
	snappyChunkCompressed   = 0x00
	snappyChunkUncompressed = 0x01
	snappyChunkPadding      = 0xfe
	snappyChunkStreamID     = 0xff
	snappyMaxChunkData      = 65536
	avmlMaxBlock            = 16 << 20 // MAX_BLOCK_SIZE
	avmlChunkCache          = 16       // decoded chunks kept (1 MiB)
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// avmlChunk is one data chunk: ulen bytes of the logical file at uoff,
// stored at off (CRC first) as clen bytes.
type avmlChunk struct {
	uoff       uint64
	off        int64
	clen, ulen uint32
	compressed bool
}

// avmlReader presents the decompressed blocks back to back as one logical
// file, which the pieces index like an uncompressed LiME image.
type avmlReader struct {
	r      io.ReaderAt
	name   string
	chunks []avmlChunk
	size   uint64

	mu    sync.Mutex
	cache []avmlDecoded // most recent last
}

type avmlDecoded struct {
	idx  int
	data []byte
}

func (d *Dump) openAVML() error {
	ar := &avmlReader{r: d.r, name: d.name}
	e := &elfCore{}
	var off int64
	var prevEnd uint64
	for off < d.size {
		if len(e.pieces) == maxImageRanges {
			return &FormatError{d.name, off, fmt.Sprintf("more than %d AVML blocks", maxImageRanges)}
		}
		h, err := d.readLiMEHeader(off, avmlMagic, 2, prevEnd, len(e.pieces) == 0)
		if err != nil {
			return err
		}
		if h.end-h.start > avmlMaxBlock {
			return &FormatError{d.name, off + 8, fmt.Sprintf("AVML block %#x-%#x is over %d bytes", h.start, h.end-1, avmlMaxBlock)}
		}
		e.pieces = append(e.pieces, piece{start: h.start, fileEnd: h.end, end: h.end, off: ar.size})
		prevEnd = h.end
		end, err := ar.indexStream(off+limeHeaderSize, d.size, h.end-h.start)
		if err != nil {
			var te truncatedError
			if errors.As(err, &te) {
				// The file ends inside this block: what it has is readable.
				d.incomplete = true
				break
			}
			return err
		}
		off = end
	}
	d.elf, d.img, d.pageSize = e, &memImage{compression: "snappy"}, imagePageSize
	d.r, d.size = ar, int64(ar.size)
	e.finishImage(ar.size, d.pageSize)
	return nil
}

type truncatedError struct{ off int64 }

func (e truncatedError) Error() string {
	return fmt.Sprintf("file ends at %#x inside an AVML block", e.off)
}

// indexStream indexes the chunks of one block's stream at off, which must
// decompress to want bytes, and checks the u64 length after it; it returns
// the offset of the next header.
func (ar *avmlReader) indexStream(off, fileSize int64, want uint64) (int64, error) {
	start := off
	var got uint64
	var hdr [8]byte
	for got < want {
		if fileSize-off < 4 {
			return 0, truncatedError{off}
		}
		if _, err := ar.r.ReadAt(hdr[:8], off); err != nil && !(errors.Is(err, io.EOF) && fileSize-off < 8) {
			return 0, fmt.Errorf("elfcore: %s: reading a snappy chunk at %#x: %w", ar.name, off, err)
		}
		typ := hdr[0]
		n := int64(hdr[1]) | int64(hdr[2])<<8 | int64(hdr[3])<<16
		data := off + 4
		if n > fileSize-data {
			return 0, truncatedError{off}
		}
		switch {
		case typ == snappyChunkStreamID:
			if off != start {
				// Concatenated streams are legal; AVML writes one per block.
				break
			}
			if n != 6 {
				return 0, &FormatError{ar.name, off, "bad snappy stream identifier"}
			}
			var id [6]byte
			if _, err := ar.r.ReadAt(id[:], data); err != nil || string(id[:]) != "sNaPpY" {
				return 0, &FormatError{ar.name, off, "bad snappy stream identifier"}
			}
		case typ == snappyChunkCompressed || typ == snappyChunkUncompressed:
			if n < 4 || n-4 > snappyMaxChunkData+snappyMaxChunkData/6+32 {
				return 0, &FormatError{ar.name, off, fmt.Sprintf("snappy chunk of %d bytes", n)}
			}
			ulen := uint64(n - 4)
			if typ == snappyChunkCompressed {
				// The block format starts with the decoded length, a varint.
				var v [10]byte
				m, _ := ar.r.ReadAt(v[:min(int64(len(v)), n-4)], data+4)
				dl, err := snappy.DecodedLen(v[:m])
				if err != nil {
					return 0, &FormatError{ar.name, data + 4, "snappy chunk: " + err.Error()}
				}
				ulen = uint64(dl)
			}
			if ulen > snappyMaxChunkData || ulen > want-got {
				return 0, &FormatError{ar.name, off, fmt.Sprintf("snappy chunk of %d bytes overruns its %d-byte block", ulen, want)}
			}
			if ulen > 0 {
				ar.chunks = append(ar.chunks, avmlChunk{uoff: ar.size + got, off: data, clen: uint32(n), ulen: uint32(ulen), compressed: typ == snappyChunkCompressed})
			}
			got += ulen
		case typ == snappyChunkPadding || typ >= 0x80:
		default:
			return 0, &FormatError{ar.name, off, fmt.Sprintf("reserved snappy chunk type %#x", typ)}
		}
		off = data + n
	}
	if fileSize-off < 8 {
		return 0, truncatedError{off}
	}
	if _, err := ar.r.ReadAt(hdr[:], off); err != nil {
		return 0, fmt.Errorf("elfcore: %s: reading an AVML block length at %#x: %w", ar.name, off, err)
	}
	if l := binary.LittleEndian.Uint64(hdr[:]); l != uint64(off-start) {
		return 0, &FormatError{ar.name, off, fmt.Sprintf("AVML block length %d, but its snappy stream is %d bytes", l, off-start)}
	}
	ar.size += want
	return off + 8, nil
}

// ReadAt reads the logical (decompressed) file.
func (ar *avmlReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("elfcore: negative offset")
	}
	n := 0
	for n < len(p) {
		u := uint64(off) + uint64(n)
		if u >= ar.size {
			return n, io.EOF
		}
		i, found := slices.BinarySearchFunc(ar.chunks, u, func(c avmlChunk, u uint64) int {
			switch {
			case c.uoff+uint64(c.ulen) <= u:
				return -1
			case c.uoff > u:
				return 1
			}
			return 0
		})
		if !found {
			return n, fmt.Errorf("elfcore: %s: logical offset %#x in no snappy chunk", ar.name, u)
		}
		data, err := ar.chunk(i)
		if err != nil {
			return n, err
		}
		n += copy(p[n:], data[u-ar.chunks[i].uoff:])
	}
	return n, nil
}

func (ar *avmlReader) chunk(i int) ([]byte, error) {
	ar.mu.Lock()
	for j, c := range ar.cache {
		if c.idx == i {
			ar.cache = append(append(ar.cache[:j:j], ar.cache[j+1:]...), c)
			ar.mu.Unlock()
			return c.data, nil
		}
	}
	ar.mu.Unlock()
	c := ar.chunks[i]
	raw := make([]byte, c.clen)
	if _, err := ar.r.ReadAt(raw, c.off); err != nil {
		return nil, &PageError{File: ar.name, PFN: c.uoff / imagePageSize, Off: c.off, Err: err}
	}
	data := raw[4:]
	if c.compressed {
		var err error
		if data, err = snappy.Decode(make([]byte, c.ulen), raw[4:]); err != nil || len(data) != int(c.ulen) {
			if err == nil {
				err = fmt.Errorf("decoded %d bytes, want %d", len(data), c.ulen)
			}
			return nil, &PageError{File: ar.name, PFN: c.uoff / imagePageSize, Off: c.off, Err: fmt.Errorf("snappy: %w", err)}
		}
	}
	sum := crc32.Checksum(data, crc32c)
	if want := binary.LittleEndian.Uint32(raw); (sum>>15|sum<<17)+0xa282ead8 != want {
		return nil, &PageError{File: ar.name, PFN: c.uoff / imagePageSize, Off: c.off, Err: errors.New("snappy chunk CRC mismatch")}
	}
	ar.mu.Lock()
	if len(ar.cache) == avmlChunkCache {
		ar.cache = ar.cache[1:]
	}
	ar.cache = append(ar.cache, avmlDecoded{i, data})
	ar.mu.Unlock()
	return data, nil
}
