package elfcore

// Memory images: physical memory as a forensic acquisition tool wrote it,
// with no kernel metadata at all (no VMCOREINFO, no CPU state, no virtual
// addresses). Three layouts are read:
//
//   - LiME's "lime" format (Linux Memory Extractor, lime-forensics 1.9.1,
//     main.c write_lime_header/write_range): for each top-level iomem
//     resource named "System RAM", in iomem order, a 32-byte header (u32
//     magic 0x4C694D45, u32 version 1, u64 first and u64 last physical
//     address of the range, inclusive, 8 reserved zero bytes) and then the
//     range's bytes. LiME writes a partial last page as zeros. Detected by
//     its magic (isLiME).
//   - AVML's compressed variant of it (microsoft/avml, src/image.rs): the
//     same header with magic 0x4C4D5641 ("AVML") and version 2; ranges are
//     cut into blocks of at most 16 MiB, each followed by its bytes as a
//     Snappy framing-format stream and a u64 of the stream's length. AVML
//     leaves out blocks of at most 16 MiB that are all zeros, so they read
//     as holes here, like any range the image does not hold. The stream's
//     chunks (at most 64 KiB of data each) are indexed at open, so a read
//     decompresses one chunk (avml.go).
//   - Headerless images (raw.go): LiME's "raw" (the ranges back to back) and
//     "padded" (zeros from address 0 up to each range, i.e. a raw image of
//     base 0), and any raw physical image with a base address. They carry
//     no ranges and are opened with OpenRaw and the ranges from the user.
//
// All are presented through the ELF back end's pieces (a file offset per
// physical range), so reads, gaps and truncation behave as for an ELF core:
// a gap between ranges is a ReasonHole, past the last range ReasonBeyondEnd,
// a range the file ends inside ReasonTruncated (and the image Incomplete).

import (
	"encoding/binary"
	"fmt"
)

const (
	limeMagic      = 0x4C694D45 // LIME_MAGIC: "EMiL" in the file
	avmlMagic      = 0x4C4D5641 // AVML_MAGIC: "AVML" in the file
	limeHeaderSize = 32
	// maxImageRanges bounds the headers of one image: a machine has tens
	// of System RAM ranges; AVML cuts 16 MiB blocks (65536 cover 1 TiB).
	maxImageRanges = 1 << 20
	imagePageSize  = 4096
)

// memImage is what a memory image adds to a Dump.
type memImage struct {
	compression string // "none" or "snappy"
}

// IsMemoryImage tells whether the dump is a memory image (LiME, AVML or
// raw) rather than a crash dump: it has no notes, no VMCOREINFO, no CPU
// state and no architecture of its own (Arch is "").
func (d *Dump) IsMemoryImage() bool { return d.img != nil }

func isLiME(m []byte) bool {
	return len(m) >= 8 && binary.LittleEndian.Uint32(m) == limeMagic && binary.LittleEndian.Uint32(m[4:]) == 1
}

func isAVML(m []byte) bool {
	return len(m) >= 8 && binary.LittleEndian.Uint32(m) == avmlMagic && binary.LittleEndian.Uint32(m[4:]) == 2
}

// limeHeader is one decoded range header; [start, end) is half-open.
type limeHeader struct {
	off        int64 // of the header in the file
	start, end uint64
}

// readLiMEHeader decodes the header at off, which must have the given magic and version.
func (d *Dump) readLiMEHeader(off int64, magic, version uint32, prevEnd uint64, first bool) (limeHeader, error) {
	b, err := d.meta(off, limeHeaderSize, "LiME range header")
	if err != nil {
		return limeHeader{}, err
	}
	f := fields{b: b, bo: binary.LittleEndian}
	m, v, s, e, res := f.u32(0), f.u32(4), f.u64(8), f.u64(16), f.u64(24)
	switch {
	case m != magic || v != version:
		return limeHeader{}, &FormatError{d.name, off, fmt.Sprintf("no LiME range header (magic %#x version %d; want %#x version %d): trailing data after the last range?", m, v, magic, version)}
	case res != 0:
		return limeHeader{}, &FormatError{d.name, off + 24, fmt.Sprintf("LiME header's reserved field is %#x, not 0", res)}
	case e < s || e == ^uint64(0):
		return limeHeader{}, &FormatError{d.name, off + 8, fmt.Sprintf("LiME range %#x-%#x is empty or overflows", s, e)}
	case !first && s < prevEnd:
		return limeHeader{}, &FormatError{d.name, off + 8, fmt.Sprintf("LiME range %#x-%#x overlaps or precedes the one before (ending %#x)", s, e, prevEnd)}
	}
	return limeHeader{off: off, start: s, end: e + 1}, nil
}

// openLiME indexes a "lime" image: header, bytes, header, bytes, ...
func (d *Dump) openLiME() error {
	e := &elfCore{}
	d.elf, d.img, d.pageSize = e, &memImage{compression: "none"}, imagePageSize
	var off int64
	var prevEnd uint64
	for off < d.size {
		if len(e.pieces) == maxImageRanges {
			return &FormatError{d.name, off, fmt.Sprintf("more than %d LiME ranges", maxImageRanges)}
		}
		h, err := d.readLiMEHeader(off, limeMagic, 1, prevEnd, len(e.pieces) == 0)
		if err != nil {
			return err
		}
		data := uint64(off) + limeHeaderSize
		e.pieces = append(e.pieces, piece{start: h.start, fileEnd: h.end, end: h.end, off: data})
		prevEnd = h.end
		n := h.end - h.start
		if n > uint64(d.size)-data {
			// The file ends inside this range: what it has is readable.
			d.incomplete = true
			break
		}
		off = int64(data + n)
	}
	e.finishImage(uint64(d.size), d.pageSize)
	return nil
}

// finishImage computes ranges and page counts from the pieces, each backed
// by the file from off (the ELF back end's build, without segments).
func (e *elfCore) finishImage(fileSize, ps uint64) {
	for _, p := range e.pieces {
		avail := p.fileEnd
		if p.off >= fileSize {
			avail = p.start
		} else if fileSize-p.off < avail-p.start {
			avail = p.start + (fileSize - p.off)
		}
		e.ranges = append(e.ranges, Range{p.start, avail})
		e.present += (avail - p.start + ps - 1) / ps
	}
	e.ranges = mergeRanges(e.ranges)
}
