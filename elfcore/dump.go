package elfcore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sync/atomic"

	"github.com/vmleak/vmleak/internal/regular"
)

// Format identifies the container a dump was read from.
type Format int

const (
	FormatUnknown Format = iota
	FormatELF
	FormatKdump
	FormatFlattenedKdump
	FormatFlattenedELF
	FormatLiME // memory images: lime.go
	FormatAVML
	FormatRaw
)

func (f Format) String() string {
	switch f {
	case FormatELF:
		return "elf"
	case FormatKdump:
		return "kdump"
	case FormatFlattenedKdump:
		return "flattened-kdump"
	case FormatFlattenedELF:
		return "flattened-elf"
	case FormatLiME:
		return "lime"
	case FormatAVML:
		return "avml"
	case FormatRaw:
		return "raw"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// Range is a half-open physical address range [Start, End).
type Range struct {
	Start, End uint64
}

// Segment is one ELF PT_LOAD program header, as written.
type Segment struct {
	PAddr, VAddr      uint64
	FileOff, FileSize uint64
	MemSize           uint64
}

// Note is one ELF note (from a PT_NOTE segment, or from the note area a
// kdump-compressed sub-header points at). Name has its trailing NULs removed.
type Note struct {
	Name string
	Type uint32
	Desc []byte
}

// DefaultCachePages is the number of decompressed pages a Dump keeps.
const DefaultCachePages = 512

// Dump is an open vmcore, presented as physical memory. Its read methods are
// safe for concurrent use.
type Dump struct {
	name   string
	r      io.ReaderAt // the logical file (the flattened index when flattened)
	size   int64       // size of the logical file
	stored int64       // bytes of data actually in the file: bounds allocations
	closer io.Closer

	format     Format
	arch       string
	target     Target
	pageSize   uint64
	notes      []Note
	vmcoreinfo []byte
	prstatus   []PRStatus
	qemu       []QEMUCPUState
	incomplete bool
	live       bool // /proc/kcore: the running kernel's memory

	elf *elfCore
	kd  *kdump
	img *memImage // memory images (lime.go): elf holds their ranges
	// split: the dump is (part of) a makedumpfile --split dump; parts: the
	// parts it was joined from (NewSplitDump), which then serve reads.
	split *SplitInfo
	parts []*Dump

	zeroFill   atomic.Bool
	zeroFilled atomic.Uint64
}

// Open opens the named file and probes its format. Close closes the file.
func Open(path string) (*Dump, error) {
	f, size, err := regular.Open(path)
	if err != nil {
		return nil, err
	}
	d, err := NewDump(f, size, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	d.closer = f
	if d.live {
		kr := newKcoreReader(f, path)
		d.r, d.closer = kr, closers{kr, f}
	}
	return d, nil
}

// closers closes each in turn.
type closers []io.Closer

func (cs closers) Close() error {
	var first error
	for _, c := range cs {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// NewDump probes r (size bytes long) as, in order, an ELF64 core, a
// kdump-compressed dump, a LiME or AVML memory image and a flattened
// makedumpfile stream (headerless raw images need OpenRaw). name is used
// in error messages only.
func NewDump(r io.ReaderAt, size int64, name string) (*Dump, error) {
	if size < 0 {
		return nil, &FormatError{name, 0, "negative file size"}
	}
	if size == 0 {
		return nil, &FormatError{name, 0, "empty file"}
	}
	var magic [16]byte
	n, _ := r.ReadAt(magic[:], 0)
	m := magic[:n]
	d := &Dump{name: name, r: r, size: size, stored: size}
	switch {
	case isELF(m):
		d.format = FormatELF
		if err := d.openELF(); err != nil {
			return nil, err
		}
		if d.live {
			d.r = newKcoreReader(d.r, "")
		}
	case isKdump(m):
		d.format = FormatKdump
		if err := d.openKdump(); err != nil {
			return nil, err
		}
	case isLiME(m):
		d.format = FormatLiME
		if err := d.openLiME(); err != nil {
			return nil, err
		}
	case isAVML(m):
		d.format = FormatAVML
		if err := d.openAVML(); err != nil {
			return nil, err
		}
	case isFlat(m):
		fr, err := newFlatReader(r, size, name)
		if err != nil {
			return nil, err
		}
		d.r, d.size = fr, fr.size
		d.stored = min(fr.size, fr.stored)
		n, _ := fr.ReadAt(magic[:], 0)
		m = magic[:n]
		switch {
		case isELF(m):
			d.format = FormatFlattenedELF
			err = d.openELF()
		case isKdump(m):
			d.format = FormatFlattenedKdump
			err = d.openKdump()
		default:
			err = fmt.Errorf("%w: %s: flattened stream holds neither ELF nor kdump data", ErrUnrecognizedFormat, name)
		}
		if err != nil {
			return nil, err
		}
		// No end record: the stream was cut short, whatever its header says.
		d.incomplete = d.incomplete || !fr.ended
	default:
		if f := otherFormat(r, m); f != "" {
			return nil, &UnsupportedFormatError{File: name, Format: f}
		}
		return nil, fmt.Errorf("%w: %s", ErrUnrecognizedFormat, name)
	}
	return d, nil
}

// Magic numbers of crash dump formats vmleak does not read.
const (
	// LKCD: dh_magic_number, a u64 at 0 in the dumped machine's byte order
	// (DUMP_MAGIC_NUMBER in crash's lkcd_dump_v*.h; libkdumpfile's lkcd.c
	// probes both byte orders).
	lkcdMagic = 0xa8190173618f23ed
	// Xen's old (pre-ELF) xc_core: xch_magic, a u32 at 0 (XC_CORE_MAGIC
	// and XC_CORE_MAGIC_HVM in xenctrl.h; crash's xendump.h).
	xcCoreMagic    = 0xF00FEBED
	xcCoreMagicHVM = 0xF00FEBEE
	// sadump (Fujitsu stand-alone dump): the partition header's signature
	// "sadu" "mp\0\0" at 0 (single partition, disk set) or, after the
	// media header, at 4096 (media backup) (makedumpfile's sadump_mod.h;
	// libkdumpfile's sadump.c).
	sadumpSig          = "sadump\x00\x00"
	sadumpMediaPartOff = 4096
)

// otherFormat names the unsupported dump format whose magic m (the file's
// first bytes) or the bytes at its sadump media offset carry, or "".
func otherFormat(r io.ReaderAt, m []byte) string {
	if len(m) >= 8 {
		if v := binary.LittleEndian.Uint64(m); v == lkcdMagic || binary.BigEndian.Uint64(m) == lkcdMagic {
			return "LKCD"
		}
		if string(m[:8]) == sadumpSig {
			return "sadump"
		}
	}
	if len(m) >= 4 {
		for _, v := range []uint32{binary.LittleEndian.Uint32(m), binary.BigEndian.Uint32(m)} {
			if v == xcCoreMagic || v == xcCoreMagicHVM {
				return "Xen xc_core"
			}
		}
	}
	var s [8]byte
	if n, _ := r.ReadAt(s[:], sadumpMediaPartOff); n == len(s) && string(s[:]) == sadumpSig {
		return "sadump"
	}
	return ""
}

// Close closes the file opened by Open; for NewDump it only drops caches.
func (d *Dump) Close() error {
	if d.parts != nil {
		var errs []error
		for _, p := range d.parts {
			errs = append(errs, p.Close())
		}
		return errors.Join(errs...)
	}
	if d.kd != nil {
		d.kd.cache.reset()
	}
	if d.closer != nil {
		c := d.closer
		d.closer = nil
		return c.Close()
	}
	return nil
}

// Format reports the container format.
func (d *Dump) Format() Format { return d.format }

// Live tells whether the dump is /proc/kcore: the memory of the running
// kernel, which changes while it is read.
func (d *Dump) Live() bool { return d.live }

// Arch reports the machine, e.g. "x86_64", from e_machine or
// utsname.machine; "" if unknown.
func (d *Dump) Arch() string { return d.arch }

// PageSize is the dump's page size: the kdump block size, or for ELF the
// VMCOREINFO PAGESIZE (4096 if absent).
func (d *Dump) PageSize() uint64 { return d.pageSize }

// Notes returns every note, in file order.
func (d *Dump) Notes() []Note { return d.notes }

// VMCOREINFO returns the raw VMCOREINFO text, or nil.
func (d *Dump) VMCOREINFO() []byte { return d.vmcoreinfo }

// PRStatus returns the NT_PRSTATUS notes (one per CPU that was online).
func (d *Dump) PRStatus() []PRStatus { return d.prstatus }

// QEMUCPUStates returns QEMU's per-CPU "QEMU" notes (x86 only).
func (d *Dump) QEMUCPUStates() []QEMUCPUState { return d.qemu }

// Incomplete reports whether the writer flagged the dump as incomplete
// (ELF e_flags DUMP_ELF_INCOMPLETE, kdump status
// DUMP_DH_COMPRESSED_INCOMPLETE).
func (d *Dump) Incomplete() bool { return d.incomplete }

// Segments returns the ELF PT_LOAD segments in program header order; nil
// for kdump.
func (d *Dump) Segments() []Segment {
	if d.elf == nil {
		return nil
	}
	return slices.Clone(d.elf.segs)
}

// Kdump returns the kdump-compressed header, or nil for ELF dumps. For a
// split dump joined from its parts it is the first part's, with the split
// range widened to the whole dump.
func (d *Dump) Kdump() *KdumpHeader {
	if d.parts != nil {
		return d.splitHeader()
	}
	if d.kd == nil {
		return nil
	}
	h := d.kd.hdr
	return &h
}

// Compression lists the page encodings of the dump ("none", "zlib",
// "lzo", "snappy", "zstd"), sorted. For kdump it is the union of what the
// header declares and what the descriptors read so far used.
func (d *Dump) Compression() []string {
	if d.img != nil {
		return []string{d.img.compression}
	}
	if d.parts != nil {
		return d.splitCompression()
	}
	if d.kd == nil {
		return []string{"none"}
	}
	return d.kd.compressions()
}

// PhysRanges returns the present physical ranges, sorted and merged.
func (d *Dump) PhysRanges() []Range {
	if d.parts != nil {
		return d.splitRanges()
	}
	if d.kd != nil {
		return slices.Clone(d.kd.physRanges())
	}
	return slices.Clone(d.elf.ranges)
}

// PageCounts reports pages present in the dump, pages excluded by the dump
// tool, and pages that point at kdump's shared zero page. The zero count
// costs one pass over the page descriptors on first call.
func (d *Dump) PageCounts() (present, excluded, zero uint64) {
	if d.parts != nil {
		return d.splitCounts()
	}
	if d.kd != nil {
		return d.kd.pageCounts(d)
	}
	return d.elf.present, d.elf.excluded, 0
}

// SetZeroFill makes absent bytes (excluded, holes, truncated) read as zeros
// instead of failing with *MissingPageError; only the bytes the dump lacks
// are zeroed, so data starting later in the same page is still read. Addresses beyond the end of the
// dump still fail, so a runaway reader stops.
func (d *Dump) SetZeroFill(on bool) { d.zeroFill.Store(on) }

// ZeroFilled counts the chunks that ReadPhys has zero-filled so far: each is
// one absent stretch within one page, never more than a page.
func (d *Dump) ZeroFilled() uint64 { return d.zeroFilled.Load() }

// SetCacheSize sets how many decompressed pages the kdump page cache keeps
// (minimum 1). It has no effect on ELF dumps, which are read directly.
func (d *Dump) SetCacheSize(pages int) {
	for _, p := range d.parts {
		p.SetCacheSize(pages)
	}
	if d.kd != nil {
		d.kd.cache.setCap(pages)
	}
}

// NoneDumped is true when the dump provably holds no byte of physical
// memory [pa, pa+size): a kdump-compressed file (or the parts of a split
// one, joined) whose bitmap marks none of its blocks dumped. makedumpfile
// leaves out free, page cache and user pages by their struct pages' state,
// and keeps zero pages in the bitmap (as its shared zero page), so such
// memory was never a slab page. ELF dumps and memory images, whose absent
// ranges do not say why, and addresses beyond the bitmaps give false.
func (d *Dump) NoneDumped(pa, size uint64) bool {
	if size == 0 || pa+size < pa {
		return false
	}
	if d.parts != nil {
		// Each part answers for its range; NewSplitDump checked that
		// together they cover every pfn.
		for _, p := range d.parts {
			if p.kd == nil || !p.kd.noneDumpedAt(pa, size, true) {
				return false
			}
		}
		return true
	}
	return d.kd != nil && d.kd.noneDumpedAt(pa, size, false)
}

// ReserveCache grows the kdump page cache to hold n bytes of decompressed
// memory, for a command about to read that much memory more than once (leaks
// scans every slab object after the census walked the freelists of the same
// pages). It never shrinks the cache, so callers size it from their work and
// the largest wins; the caller bounds n. No effect on ELF and other
// uncompressed dumps, whose reads come from the operating system's page cache.
func (d *Dump) ReserveCache(n uint64) {
	for _, p := range d.parts {
		p.ReserveCache(n)
	}
	if d.kd != nil {
		d.kd.cache.grow(int(min(n/d.kd.bs, math.MaxInt32)))
	}
}

// CacheStats counts what the kdump page cache served: Hits, Misses (each a
// page read and decompressed) and its capacity in pages; zero for dumps
// read directly.
type CacheStats struct {
	Hits, Misses uint64
	Pages        int
}

// CacheStats is the page cache's count so far, summed over a split dump's parts.
func (d *Dump) CacheStats() CacheStats {
	var cs CacheStats
	for _, p := range d.parts {
		ps := p.CacheStats()
		cs.Hits, cs.Misses, cs.Pages = cs.Hits+ps.Hits, cs.Misses+ps.Misses, cs.Pages+ps.Pages
	}
	if d.kd != nil {
		h, m, n := d.kd.cache.stats()
		cs.Hits, cs.Misses, cs.Pages = cs.Hits+h, cs.Misses+m, cs.Pages+n
	}
	return cs
}

// ReadPhys reads len(p) bytes of physical memory at pa. It may cross pages.
// At the first absent byte it stops and returns the bytes read so far with a
// *MissingPageError (unless zero fill is on).
func (d *Dump) ReadPhys(p []byte, pa uint64) (int, error) {
	n := 0
	for n < len(p) {
		a := pa + uint64(n)
		if a < pa {
			return n, &MissingPageError{PA: math.MaxUint64, Reason: ReasonBeyondEnd}
		}
		var m int
		var err error
		if d.parts != nil {
			m, err = d.splitRead(p[n:], a)
		} else if d.kd != nil {
			m, err = d.kd.read(d, p[n:], a)
		} else {
			m, err = d.elf.read(d, p[n:], a)
		}
		n += m
		if err == nil {
			continue
		}
		var mp *MissingPageError
		if !d.zeroFill.Load() || !errors.As(err, &mp) || mp.Reason == ReasonBeyondEnd {
			return n, err
		}
		// Zero what is absent, up to the next page boundary: the rest of
		// the page may be present (ELF segments need not be page-aligned;
		// kdump pages are whole).
		a = pa + uint64(n)
		z := d.pageSize - a%d.pageSize
		if d.elf != nil {
			if np := d.elf.nextPresent(a); np > a && np-a < z {
				z = np - a
			}
		}
		if rest := uint64(len(p) - n); z > rest {
			z = rest
		}
		clear(p[n : n+int(z)])
		n += int(z)
		d.zeroFilled.Add(1)
	}
	return n, nil
}

// mergeRanges sorts and merges touching/overlapping ranges in place.
func mergeRanges(rs []Range) []Range {
	slices.SortFunc(rs, func(a, b Range) int {
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return 0
	})
	out := rs[:0]
	for _, r := range rs {
		if r.End <= r.Start {
			continue
		}
		if k := len(out); k > 0 && r.Start <= out[k-1].End {
			out[k-1].End = max(out[k-1].End, r.End)
			continue
		}
		out = append(out, r)
	}
	return out
}

// kcoreReader reads /proc/kcore through several descriptors, each used by
// one read at a time. fs/proc/kcore.c (6.1, for one) bounces every read of
// an open /proc/kcore through one buffer of that open file
// (file->private_data), so two concurrent reads of one descriptor can each
// return the other's bytes: a census so read counted some slabs twice.
type kcoreReader struct {
	free chan io.ReaderAt
	fds  []*os.File
}

// kcoreFDs is how many reads of /proc/kcore may run at once.
const kcoreFDs = 4

func newKcoreReader(first io.ReaderAt, path string) *kcoreReader {
	k := &kcoreReader{free: make(chan io.ReaderAt, kcoreFDs)}
	k.free <- first
	for path != "" && len(k.fds) < kcoreFDs-1 {
		f, err := os.Open(path)
		if err != nil {
			break // fewer descriptors: reads wait for each other
		}
		k.fds = append(k.fds, f)
		k.free <- f
	}
	return k
}

func (k *kcoreReader) ReadAt(p []byte, off int64) (int, error) {
	r := <-k.free
	defer func() { k.free <- r }()
	return r.ReadAt(p, off)
}

func (k *kcoreReader) Close() error {
	for _, f := range k.fds {
		f.Close()
	}
	return nil
}
