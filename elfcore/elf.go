package elfcore

import (
	"bytes"
	"cmp"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
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

	// noPhysAddr is the p_paddr /proc/kcore gives segments with no
	// physical address of their own (vmalloc, modules, vmemmap).
	noPhysAddr = math.MaxUint64

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

// elf32Machines are the e_machine values of 32-bit machines.
var elf32Machines = map[uint16]bool{3: true, 20: true, 40: true}

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

// piece is a stretch of physical addresses that one PT_LOAD provides (see
// build for which). Either it is backed by the file at off (fileEnd = end)
// or it is memsz > filesz tail that the dump tool left out (fileEnd = start).
type piece struct {
	start, fileEnd, end uint64
	off                 uint64
}

func (d *Dump) openELF() error {
	var ident [5]byte
	if n, _ := d.r.ReadAt(ident[:], 0); n == len(ident) && ident[4] == 1 {
		// ELFCLASS32: a netdump or 32-bit kdump core (crash reads them as
		// NETDUMP_ELF32/KDUMP_ELF32).
		return &UnsupportedFormatError{File: d.name, Format: "ELF32", Detail: "only ELF64 cores are read"}
	}
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
	if phnum == 0 && d.isXenCore(bo, shoff, f.u16(60), f.u16(62), shentsize) {
		return &UnsupportedFormatError{File: d.name, Format: "Xen xc_core", Detail: "ELF dump-core of a Xen domain"}
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
	d.target = Target{Bits: 64, BigEndian: bo == binary.ByteOrder(binary.BigEndian)}
	if elf32Machines[machine] {
		// kexec writes ELF64 headers for 32-bit machines too.
		d.target.Bits = 32
	}
	d.incomplete = eflags&dumpELFIncomplete != 0
	d.pageSize = 4096

	virtOnly := int64(-1) // offset of the first PT_LOAD without a physical address
	for i := uint64(0); i < phnum; i++ {
		p := fields{b: ph[i*elfPhdrSize : (i+1)*elfPhdrSize], bo: bo}
		typ := p.u32(0)
		off, vaddr, paddr := p.u64(8), p.u64(16), p.u64(24)
		filesz, memsz := p.u64(32), p.u64(40)
		phOff := int64(phoff + i*elfPhdrSize)
		switch typ {
		case ptLoad:
			if paddr == noPhysAddr && memsz > 0 {
				// Only /proc/kcore writes these (decided once its notes
				// are read): they alias memory its RAM segments hold.
				if virtOnly < 0 {
					virtOnly = phOff
				}
				continue
			}
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
	if virtOnly >= 0 && !d.live {
		return &FormatError{d.name, virtOnly, "PT_LOAD address or offset range overflows"}
	}
	if d.live {
		e.segs = directMapSegments(e.segs)
	}
	if ps := pageSizeFromVMCOREINFO(d.vmcoreinfo); ps != 0 {
		d.pageSize = ps
	}
	e.build(uint64(d.size), d.pageSize)
	return nil
}

// build resolves overlapping PT_LOADs and computes ranges and page counts.
//
// Where segments overlap, bytes the file holds win over a p_memsz > p_filesz
// tail: a later segment lying inside an earlier one's tail is read, and only
// the rest of the tail is excluded. Where two segments both hold file bytes
// for an address, the first in program header order wins. That is what
// makedumpfile (elf_info.c, paddr_to_offset: the first PT_LOAD whose
// [p_paddr, p_paddr+p_filesz) holds the address) and crash (netdump.c,
// read_netdump: the same walk in header order) read, so vmleak sees the
// bytes they see. (crash differs on tails: it returns zeros for an address
// in an earlier segment's tail even when a later segment has its bytes.)
//
// Ranges stop at the end of the file so a truncated dump does not advertise
// what it lacks.
func (e *elfCore) build(fileSize, ps uint64) {
	n := len(e.segs)
	type span struct {
		start, end uint64
		prio       int // lower wins: file parts by header index, then tails
		off        uint64
		file       bool
	}
	spans := make([]span, 0, 2*n)
	for i, s := range e.segs {
		fileEnd := s.PAddr + s.FileSize
		if s.FileSize > 0 {
			spans = append(spans, span{s.PAddr, fileEnd, i, s.FileOff, true})
		}
		if s.MemSize > s.FileSize {
			spans = append(spans, span{fileEnd, s.PAddr + s.MemSize, n + i, 0, false})
		}
	}
	bounds := make([]uint64, 0, 2*len(spans))
	for _, sp := range spans {
		bounds = append(bounds, sp.start, sp.end)
	}
	slices.Sort(bounds)
	bounds = slices.Compact(bounds)
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	// Sweep the boundaries keeping the spans that cover the current point
	// in a min-heap by priority.
	h := &spanHeap{less: func(i, j int) bool { return spans[i].prio < spans[j].prio }}
	next := 0
	for j := 0; j+1 < len(bounds); j++ {
		lo, hi := bounds[j], bounds[j+1]
		for next < len(spans) && spans[next].start <= lo {
			heap.Push(h, next)
			next++
		}
		for h.Len() > 0 && spans[h.idx[0]].end <= lo {
			heap.Pop(h)
		}
		if h.Len() == 0 {
			continue
		}
		top := spans[h.idx[0]]
		pc := piece{start: lo, fileEnd: lo, end: hi}
		if top.file {
			pc.fileEnd, pc.off = hi, top.off+(lo-top.start)
		}
		if k := len(e.pieces); k > 0 {
			last := &e.pieces[k-1]
			fileLast, filePc := last.fileEnd == last.end, pc.fileEnd == pc.end
			switch {
			case last.end == lo && !fileLast && !filePc:
				last.end, last.fileEnd = hi, last.start
				continue
			case last.end == lo && fileLast && filePc && last.off+(last.end-last.start) == pc.off:
				last.end, last.fileEnd = hi, hi
				continue
			}
		}
		e.pieces = append(e.pieces, pc)
	}
	var tails []Range
	for _, p := range e.pieces {
		if p.fileEnd == p.start {
			tails = append(tails, Range{p.start, p.end})
			continue
		}
		avail := p.fileEnd
		if p.off >= fileSize {
			avail = p.start
		} else if fileSize-p.off < avail-p.start {
			avail = p.start + (fileSize - p.off)
		}
		e.ranges = append(e.ranges, Range{p.start, avail})
	}
	e.ranges = mergeRanges(e.ranges)
	// A page counts as present if any byte of it is; as excluded, per
	// page-sized stretch of tail.
	counted := false
	var lastPage uint64
	for _, r := range e.ranges {
		first, last := r.Start/ps, (r.End-1)/ps
		if counted && first <= lastPage {
			first = lastPage + 1
		}
		if last >= first {
			e.present += last - first + 1
		}
		lastPage, counted = last, true
	}
	for _, r := range mergeRanges(tails) {
		e.excluded += (r.End - r.Start) / ps
	}
}

// spanHeap is a heap of indices ordered by less.
type spanHeap struct {
	idx  []int
	less func(i, j int) bool
}

func (h *spanHeap) Len() int           { return len(h.idx) }
func (h *spanHeap) Less(i, j int) bool { return h.less(h.idx[i], h.idx[j]) }
func (h *spanHeap) Swap(i, j int)      { h.idx[i], h.idx[j] = h.idx[j], h.idx[i] }
func (h *spanHeap) Push(x any)         { h.idx = append(h.idx, x.(int)) }
func (h *spanHeap) Pop() any {
	x := h.idx[len(h.idx)-1]
	h.idx = h.idx[:len(h.idx)-1]
	return x
}

// nextPresent is the first address at or after pa that the dump holds, or
// math.MaxUint64 if none.
func (e *elfCore) nextPresent(pa uint64) uint64 {
	i, _ := slices.BinarySearchFunc(e.ranges, pa, func(r Range, pa uint64) int {
		if r.End <= pa {
			return -1
		}
		return 1
	})
	if i == len(e.ranges) {
		return math.MaxUint64
	}
	return max(e.ranges[i].Start, pa)
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

// isXenCore reports whether an ELF64 core without program headers is Xen's
// dump-core (xl dump-core, xc_domain_dumpcore): it has no PT_LOAD, only
// sections found by name, .xen_pages holding the pages and .note.Xen the
// notes (tools/libs/guest/xg_core.c in Xen). Only the section name table is
// read, bounded.
func (d *Dump) isXenCore(bo binary.ByteOrder, shoff uint64, shnum, shstrndx, shentsize uint16) bool {
	if shentsize != elfShdrSize || shnum == 0 || shstrndx >= shnum || shoff > uint64(d.size) {
		return false
	}
	sh, err := d.meta(int64(shoff)+int64(shstrndx)*elfShdrSize, elfShdrSize, "section name table header")
	if err != nil {
		return false
	}
	off, size := bo.Uint64(sh[24:]), bo.Uint64(sh[32:])
	const maxNames = 1 << 16 // Xen's table has a 16-bit length
	if size == 0 || size > maxNames || off > uint64(d.size) {
		return false
	}
	names, err := d.meta(int64(off), int64(size), "section names")
	if err != nil {
		return false
	}
	return bytes.Contains(names, []byte("\x00.xen_pages\x00")) || bytes.Contains(names, []byte("\x00.note.Xen\x00"))
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

// directMapSegments keeps, of /proc/kcore's segments with a physical
// address, those of the direct map: the RAM segments, which share one
// virtual-physical offset. The kernel image's alias (KCORE_TEXT, p_paddr
// from __pa_symbol) is left out: it holds the same physical pages, but x86
// unmaps freed init memory from that alias, so reading those pages —
// ordinary memory again, slabs among it — through it gives zeros, not what
// the direct map holds.
func directMapSegments(segs []Segment) []Segment {
	size := map[uint64]uint64{}
	var best uint64
	for _, s := range segs {
		delta := s.VAddr - s.PAddr
		size[delta] += s.MemSize
		if size[delta] > size[best] {
			best = delta
		}
	}
	out := segs[:0]
	for _, s := range segs {
		if s.VAddr-s.PAddr == best {
			out = append(out, s)
		}
	}
	return out
}
