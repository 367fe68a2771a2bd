package elfcore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// ELF constants used here; debug/elf has them but its File type cannot read
// extended program header numbering, so the headers are parsed by hand.
const (
	elfHeaderSize = 64
	elfPhdrSize   = 56
	elfShdrSize   = 64
	etCore        = 4
	ptLoad        = 1
	ptNote        = 4
	pnXNum        = 0xffff

	// dumpELFIncomplete is makedumpfile's DUMP_ELF_INCOMPLETE, set in
	// e_flags when it could not write the whole dump.
	dumpELFIncomplete = 0x1

	// maxNoteSegment bounds one PT_NOTE we are willing to load: real ones
	// are kilobytes (device dumps can reach megabytes).
	maxNoteSegment = 64 << 20
	// maxPhnum bounds the program header count beyond the file-size check:
	// one PT_LOAD per memory block fits easily.
	maxPhnum = 1 << 22
)

var elfMachines = map[uint16]string{
	3:   "i386",
	8:   "mips",
	20:  "ppc",
	21:  "ppc64",
	22:  "s390x",
	40:  "arm",
	62:  "x86_64",
	183: "aarch64",
	243: "riscv64",
	258: "loongarch64",
}

func isELF(m []byte) bool { return len(m) >= 4 && string(m[:4]) == "\x7fELF" }

// elfCore is the ELF back end: PT_LOADs flattened into non-overlapping
// pieces sorted by physical address.
type elfCore struct {
	segs     []Segment
	pieces   []piece
	ranges   []Range
	flags    uint32
	present  uint64
	excluded uint64
}

// piece is the part of a PT_LOAD that no earlier-sorted segment covers.
// [start, fileEnd) is backed by the file at off; [fileEnd, end) is the
// memsz > filesz tail that the dump tool left out.
type piece struct {
	start, fileEnd, end uint64
	off                 uint64
}

func (d *Dump) openELF() error {
	hdr, err := d.meta(0, elfHeaderSize, "ELF header")
	if err != nil {
		return err
	}
	if hdr[4] != 2 {
		return &FormatError{d.name, 4, fmt.Sprintf("ELF class %d not supported (only ELF64)", hdr[4])}
	}
	var bo binary.ByteOrder
	switch hdr[5] {
	case 1:
		bo = binary.LittleEndian
	case 2:
		bo = binary.BigEndian
	default:
		return &FormatError{d.name, 5, fmt.Sprintf("bad ELF data encoding %d", hdr[5])}
	}
	f := fields{b: hdr, bo: bo}
	etype := f.u16(16)
	machine := f.u16(18)
	phoff := f.u64(32)
	shoff := f.u64(40)
	eflags := f.u32(48)
	phentsize := f.u16(54)
	phnum := uint64(f.u16(56))
	shentsize := f.u16(58)
	if etype != etCore {
		return &FormatError{d.name, 16, fmt.Sprintf("ELF type %d is not ET_CORE", etype)}
	}
	if phentsize != elfPhdrSize {
		return &FormatError{d.name, 54, fmt.Sprintf("e_phentsize %d, want %d", phentsize, elfPhdrSize)}
	}
	if phnum == pnXNum {
		// Extended numbering: the real count is sh_info of section 0.
		if shentsize != elfShdrSize {
			return &FormatError{d.name, 58, fmt.Sprintf("e_phnum is PN_XNUM but e_shentsize %d, want %d", shentsize, elfShdrSize)}
		}
		if shoff > uint64(d.size) {
			return &FormatError{d.name, 40, "e_shoff beyond end of file"}
		}
		sh, err := d.meta(int64(shoff), elfShdrSize, "section header 0")
		if err != nil {
			return err
		}
		phnum = uint64(bo.Uint32(sh[44:]))
	}
	if phnum == 0 || phnum > maxPhnum {
		return &FormatError{d.name, 56, fmt.Sprintf("implausible program header count %d", phnum)}
	}
	if phoff > uint64(d.size) {
		return &FormatError{d.name, 32, "e_phoff beyond end of file"}
	}
	ph, err := d.meta(int64(phoff), int64(phnum*elfPhdrSize), fmt.Sprintf("%d program headers", phnum))
	if err != nil {
		return err
	}

	e := &elfCore{flags: eflags}
	d.elf = e
	d.arch = elfMachines[machine]
	d.incomplete = eflags&dumpELFIncomplete != 0
	d.pageSize = 4096

	for i := uint64(0); i < phnum; i++ {
		p := fields{b: ph[i*elfPhdrSize : (i+1)*elfPhdrSize], bo: bo}
		typ := p.u32(0)
		off, vaddr, paddr := p.u64(8), p.u64(16), p.u64(24)
		filesz, memsz := p.u64(32), p.u64(40)
		phOff := int64(phoff + i*elfPhdrSize)
		switch typ {
		case ptLoad:
			if paddr+memsz < paddr || off+filesz < off {
				return &FormatError{d.name, phOff, "PT_LOAD address or offset range overflows"}
			}
			if filesz > memsz {
				// Nothing sane writes this; trust memsz as the extent
				// and the file for what it has.
				memsz = filesz
			}
			e.segs = append(e.segs, Segment{PAddr: paddr, VAddr: vaddr, FileOff: off, FileSize: filesz, MemSize: memsz})
		case ptNote:
			if filesz > maxNoteSegment {
				return &FormatError{d.name, phOff, fmt.Sprintf("PT_NOTE of %d bytes is implausibly large", filesz)}
			}
			if off > uint64(d.size) {
				return &FormatError{d.name, phOff, "PT_NOTE offset beyond end of file"}
			}
			buf, err := d.meta(int64(off), int64(filesz), "PT_NOTE segment")
			if err != nil {
				return err
			}
			notes, err := parseNotes(buf, bo)
			if err != nil {
				return &FormatError{d.name, int64(off), err.Error()}
			}
			d.notes = append(d.notes, notes...)
		}
	}
	d.finishNotes()
	if ps := pageSizeFromVMCOREINFO(d.vmcoreinfo); ps != 0 {
		d.pageSize = ps
	}
	e.build(uint64(d.size), d.pageSize)
	return nil
}

// build resolves overlapping PT_LOADs (the lower-addressed, then earlier,
// segment wins) and computes ranges and page counts. Ranges stop at the end
// of the file so a truncated dump does not advertise what it lacks.
func (e *elfCore) build(fileSize, ps uint64) {
	sorted := slices.Clone(e.segs)
	slices.SortStableFunc(sorted, func(a, b Segment) int {
		switch {
		case a.PAddr < b.PAddr:
			return -1
		case a.PAddr > b.PAddr:
			return 1
		}
		return 0
	})
	var covered uint64 // end of what earlier pieces cover
	first := true
	for _, s := range sorted {
		start, end := s.PAddr, s.PAddr+s.MemSize
		if !first && start < covered {
			start = covered
		}
		if end <= start {
			continue
		}
		skip := start - s.PAddr
		fileEnd := s.PAddr + s.FileSize
		if fileEnd < start {
			fileEnd = start
		}
		e.pieces = append(e.pieces, piece{start: start, fileEnd: fileEnd, end: end, off: s.FileOff + skip})
		covered, first = end, false
	}
	for _, p := range e.pieces {
		avail := p.fileEnd
		if p.off >= fileSize {
			avail = p.start
		} else if fileSize-p.off < avail-p.start {
			avail = p.start + (fileSize - p.off)
		}
		e.ranges = append(e.ranges, Range{p.start, avail})
		e.present += (avail - p.start + ps - 1) / ps
		e.excluded += (p.end - p.fileEnd) / ps
	}
	e.ranges = mergeRanges(e.ranges)
}

// read reads what one piece holds at pa.
func (e *elfCore) read(d *Dump, p []byte, pa uint64) (int, error) {
	i, _ := slices.BinarySearchFunc(e.pieces, pa, func(pc piece, pa uint64) int {
		if pc.end <= pa {
			return -1
		}
		return 1
	})
	if i == len(e.pieces) {
		return 0, &MissingPageError{PA: pa, Reason: ReasonBeyondEnd}
	}
	pc := &e.pieces[i]
	if pa < pc.start {
		return 0, &MissingPageError{PA: pa, Reason: ReasonHole}
	}
	if pa >= pc.fileEnd {
		return 0, &MissingPageError{PA: pa, Reason: ReasonExcluded}
	}
	n := uint64(len(p))
	if rest := pc.fileEnd - pa; n > rest {
		n = rest
	}
	off := pc.off + (pa - pc.start)
	if off >= uint64(d.size) {
		return 0, &MissingPageError{PA: pa, Reason: ReasonTruncated}
	}
	if rest := uint64(d.size) - off; n > rest {
		n = rest
	}
	m, err := d.r.ReadAt(p[:n], int64(off))
	if m == int(n) {
		// Whatever follows (the next piece, or the end of the file) is
		// the next call's business.
		return m, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return m, &MissingPageError{PA: pa + uint64(m), Reason: ReasonTruncated}
	}
	return m, fmt.Errorf("elfcore: %s: reading physical %#x at offset %#x: %w", d.name, pa, off, err)
}

// pageSizeFromVMCOREINFO returns PAGESIZE=n from VMCOREINFO text, or 0.
func pageSizeFromVMCOREINFO(info []byte) uint64 {
	for line := range bytes.SplitSeq(info, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("PAGESIZE=")); ok {
			var n uint64
			for _, c := range v {
				if c < '0' || c > '9' || n > 1<<40 {
					return 0
				}
				n = n*10 + uint64(c-'0')
			}
			if n >= 512 && n <= 1<<20 && n&(n-1) == 0 {
				return n
			}
			return 0
		}
	}
	return 0
}
