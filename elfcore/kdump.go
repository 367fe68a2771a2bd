package elfcore

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// makedumpfile's struct disk_dump_header (diskdump_mod.h) is written in the
// dumped machine's layout: signature[8], int header_version, struct
// new_utsname (6 x 65 chars, ending at 402), struct timeval (two longs,
// aligned to them), then ten 4-byte fields from status to nr_cpus. On 64-bit
// targets the timeval is 16 bytes at 408 and status is at 424 (block_size at
// 428); on 32-bit targets it is 8 bytes at 404 and status is at 412
// (block_size at 416). Every field is in the target's byte order. (The same
// layouts, as disk_dump_header_32 and _64, in libkdumpfile's diskdump.c.)
const (
	kdumpSig        = "KDUMP   "
	kdHdrVersionOff = 8
	kdUtsnameOff    = 12
	kdUtsFieldLen   = 65
	kdHeaderSize    = 464 // the larger (64-bit) header

	// Offsets from status.
	kdStatus       = 0
	kdBlockSize    = 4
	kdSubHdrSize   = 8
	kdBitmapBlocks = 12
	kdMaxMapnr     = 16
	kdTotalRAM     = 20
	kdDeviceBlocks = 24
	kdWritten      = 28
	kdCurrentCPU   = 32
	kdNrCPUs       = 36

	// struct kdump_sub_header, all versions up to 6, on 64-bit targets.
	kdSubHdrFullSize = 104

	pageDescSize = 24 // struct page_desc: off_t offset, size, flags, page_flags

	minBlockSize = 512
	maxBlockSize = 1 << 18
)

// kdLayout is one target's layout of the kdump headers.
type kdLayout struct {
	bits int
	bo   binary.ByteOrder
	// pack: a 32-bit target that aligns 64-bit fields to 4 bytes (i386),
	// which packs kdump_sub_header's off_t fields; others align them to 8.
	pack bool
}

func (l kdLayout) timestampOff() int { return map[bool]int{true: 408, false: 404}[l.bits == 64] }
func (l kdLayout) fieldsOff() int    { return map[bool]int{true: 424, false: 412}[l.bits == 64] }
func (l kdLayout) target() Target {
	return Target{Bits: l.bits, BigEndian: l.bo == binary.ByteOrder(binary.BigEndian)}
}

// kdSubLayout is where kdump_sub_header's fields sit. On 32-bit targets
// phys_base, start_pfn, end_pfn and the size_* fields are 4-byte unsigned
// longs, and each off_t (8 bytes) follows them either packed (i386) or
// aligned to 8 after 4 bytes of padding (libkdumpfile's
// kdump_sub_header_32pack and _32pad).
type kdSubLayout struct {
	size, ulong                            int
	physBase, dumpLevel, split, start, end int
	offVI, sizeVI, offNote, sizeNote       int
	offErase, sizeErase                    int
	start64, end64, maxMapnr64             int
}

var (
	kdSub64     = kdSubLayout{104, 8, 0, 8, 12, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96}
	kdSub32Pack = kdSubLayout{80, 4, 0, 4, 8, 12, 16, 20, 28, 32, 40, 44, 52, 56, 64, 72}
	kdSub32Pad  = kdSubLayout{96, 4, 0, 4, 8, 12, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88}
)

// machineLayout maps utsname.machine to its layout, for the machines
// makedumpfile has a back end for (and their 32-bit relatives).
func machineLayout(m string) (kdLayout, bool) {
	le, be := binary.ByteOrder(binary.LittleEndian), binary.ByteOrder(binary.BigEndian)
	switch {
	case m == "x86_64" || m == "aarch64" || m == "riscv64" || m == "loongarch64" || m == "ppc64le" || m == "ia64":
		return kdLayout{64, le, false}, true
	case m == "s390x" || m == "ppc64" || m == "sparc64":
		return kdLayout{64, be, false}, true
	case len(m) == 4 && m[0] == 'i' && m[2:] == "86":
		return kdLayout{32, le, true}, true
	case strings.HasPrefix(m, "armv") && strings.HasSuffix(m, "l") || m == "arm" || m == "riscv32":
		return kdLayout{32, le, false}, true
	case strings.HasPrefix(m, "armv") && strings.HasSuffix(m, "b") || m == "ppc" || m == "s390":
		return kdLayout{32, be, false}, true
	}
	return kdLayout{}, false
}

// plausible reports whether the header read with l has a block size a page
// can have and bitmaps that cover max_mapnr (libkdumpfile's try_header),
// and whether its blocks fit the file.
func (l kdLayout) plausible(h []byte, size int64) bool {
	f := fields{b: h, bo: l.bo}
	o := l.fieldsOff()
	bs, sub, bmb, mapnr := int64(int32(f.u32(o+kdBlockSize))), int64(int32(f.u32(o+kdSubHdrSize))), int64(f.u32(o+kdBitmapBlocks)), uint64(f.u32(o+kdMaxMapnr))
	if bs < minBlockSize || bs > maxBlockSize || bs&(bs-1) != 0 || sub < 0 || f.short {
		return false
	}
	return uint64(bmb)*uint64(bs)*8 >= mapnr && (1+sub+bmb)*bs <= size
}

// kdumpLayout picks the layout of a kdump header: the one its machine
// implies, else the first of 64-bit LE, 32-bit LE, 64-bit BE, 32-bit BE
// under which the header is plausible (64-bit little-endian if none is, so
// the error names those offsets).
func kdumpLayout(h []byte, size int64) (l kdLayout, known bool) {
	f := fields{b: h, bo: binary.LittleEndian}
	if l, ok := machineLayout(f.cstr(kdUtsnameOff+4*kdUtsFieldLen, kdUtsFieldLen)); ok {
		return l, true
	}
	le, be := binary.ByteOrder(binary.LittleEndian), binary.ByteOrder(binary.BigEndian)
	for _, l := range []kdLayout{{64, le, false}, {32, le, false}, {64, be, false}, {32, be, false}} {
		if l.plausible(h, size) {
			return l, false
		}
	}
	return kdLayout{64, le, false}, false
}

func isKdump(m []byte) bool { return len(m) >= 8 && string(m[:8]) == kdumpSig }

// KdumpHeader is the decoded disk_dump_header plus kdump_sub_header. Fields
// a header version does not have are zero.
type KdumpHeader struct {
	HeaderVersion int32
	Sysname       string
	Nodename      string
	Release       string
	Version       string
	Machine       string
	Domainname    string
	Timestamp     time.Time
	Status        uint32
	BlockSize     int32
	SubHdrSize    int32 // blocks
	BitmapBlocks  uint32
	MaxMapnr      uint64 // max_mapnr_64 for version >= 6
	TotalRAMBlock uint32
	DeviceBlocks  uint32
	WrittenBlocks uint32
	CurrentCPU    uint32
	NrCPUs        int32

	PhysBase                         uint64
	DumpLevel                        int32
	Split                            int32
	StartPFN                         uint64 // start_pfn_64 for version >= 6
	EndPFN                           uint64 // end_pfn_64 for version >= 6
	OffsetVMCOREINFO, SizeVMCOREINFO uint64
	OffsetNote, SizeNote             uint64
	OffsetEraseinfo, SizeEraseinfo   uint64
}

// kdump is the kdump-compressed back end.
type kdump struct {
	hdr       KdumpHeader
	bo        binary.ByteOrder // the target's byte order
	bs        uint64           // block (page) size
	maxPFN    uint64           // pfns the bitmaps describe: min(max_mapnr, bitmap bits)
	startPFN  uint64           // split range [startPFN, endPFN), else [0, maxPFN)
	endPFN    uint64
	bm1, bm2  []uint64 // RAM bitmap, dumped bitmap; bits >= maxPFN cleared
	super     []uint64 // super[i] = popcount(bm2 words [0, 8i))
	rankBase  uint64   // rank of startPFN
	descOff   int64
	nDumped   uint64
	zeroOff   int64 // where makedumpfile puts the shared zero page
	cache     *pageCache
	seen      atomic.Uint32
	declared  uint32
	bufPool   sync.Pool
	countOnce sync.Once
	present   uint64
	excluded  uint64
	zero      uint64
	rangeOnce sync.Once
	ranges    []Range
}

func (d *Dump) kdErr(off int64, format string, args ...any) error {
	return &FormatError{d.name, off, fmt.Sprintf(format, args...)}
}

func (d *Dump) openKdump() error {
	h, err := d.meta(0, min(kdHeaderSize, d.size), "kdump header")
	if err != nil {
		return err
	}
	lay, known := kdumpLayout(h, d.size)
	f := fields{b: h, bo: lay.bo}
	k := &kdump{bo: lay.bo}
	hd := &k.hdr
	hd.HeaderVersion = int32(f.u32(kdHdrVersionOff))
	uts := []*string{&hd.Sysname, &hd.Nodename, &hd.Release, &hd.Version, &hd.Machine, &hd.Domainname}
	for i, s := range uts {
		*s = f.cstr(kdUtsnameOff+i*kdUtsFieldLen, kdUtsFieldLen)
	}
	var sec, usec int64
	if tv := lay.timestampOff(); lay.bits == 64 {
		sec, usec = int64(f.u64(tv)), int64(f.u64(tv+8))
	} else {
		sec, usec = int64(int32(f.u32(tv))), int64(int32(f.u32(tv+4)))
	}
	if (sec != 0 || usec != 0) && usec >= 0 && usec < 1e6 {
		hd.Timestamp = time.Unix(sec, usec*1000).UTC()
	}
	o := lay.fieldsOff()
	hd.Status = f.u32(o + kdStatus)
	hd.BlockSize = int32(f.u32(o + kdBlockSize))
	hd.SubHdrSize = int32(f.u32(o + kdSubHdrSize))
	hd.BitmapBlocks = f.u32(o + kdBitmapBlocks)
	hd.MaxMapnr = uint64(f.u32(o + kdMaxMapnr))
	hd.TotalRAMBlock = f.u32(o + kdTotalRAM)
	hd.DeviceBlocks = f.u32(o + kdDeviceBlocks)
	hd.WrittenBlocks = f.u32(o + kdWritten)
	hd.CurrentCPU = f.u32(o + kdCurrentCPU)
	hd.NrCPUs = int32(f.u32(o + kdNrCPUs))
	if f.short {
		return d.kdErr(0, "kdump header extends beyond end of file")
	}

	if hd.HeaderVersion < 1 {
		return d.kdErr(kdHdrVersionOff, "unsupported kdump header version %d", hd.HeaderVersion)
	}
	bs := int64(hd.BlockSize)
	if bs < minBlockSize || bs > maxBlockSize || bs&(bs-1) != 0 {
		return d.kdErr(int64(o+kdBlockSize), "implausible block size %d (%s layout)", hd.BlockSize, lay.target())
	}
	k.bs = uint64(bs)
	if hd.SubHdrSize < 0 {
		return d.kdErr(int64(o+kdSubHdrSize), "negative sub-header size %d", hd.SubHdrSize)
	}
	// All block arithmetic in uint64 blocks; every product is checked
	// against the file size before use.
	nblocks := uint64(d.size) / k.bs
	sub := uint64(hd.SubHdrSize)
	bmb := uint64(hd.BitmapBlocks)
	if 1+sub > nblocks || bmb > nblocks-1-sub {
		return d.kdErr(int64(o+kdBitmapBlocks), "sub-header (%d blocks) and bitmaps (%d blocks) of %d-byte blocks exceed the %d-byte file", sub, bmb, k.bs, d.size)
	}

	// Sub-header: read what the version defines and the file holds.
	if sub > 0 {
		sl := kdSub64
		if lay.bits == 32 {
			sl = kdSub32Pad
			if lay.pack {
				sl = kdSub32Pack
			}
		}
		n := min(sub*k.bs, uint64(max(kdSub64.size, kdSub32Pad.size)))
		sb, err := d.meta(int64(k.bs), int64(n), "kdump sub-header")
		if err != nil {
			return err
		}
		s := fields{b: sb, bo: lay.bo}
		v := hd.HeaderVersion
		if lay.bits == 32 && !known && v >= 3 {
			// A 32-bit machine the table does not know: packed if the
			// packed reading puts VMCOREINFO (or nothing) in the
			// sub-header blocks, as libkdumpfile's read_sub_hdr_32 decides.
			off, size := s.u64(kdSub32Pack.offVI), uint64(s.u32(kdSub32Pack.sizeVI))
			if off == 0 && size == 0 || off > k.bs && off+size >= off && off+size <= (1+sub)*k.bs {
				sl = kdSub32Pack
			}
		}
		ulong := func(off int) uint64 {
			if sl.ulong == 4 {
				return uint64(s.u32(off))
			}
			return s.u64(off)
		}
		hd.PhysBase = ulong(sl.physBase)
		hd.DumpLevel = int32(s.u32(sl.dumpLevel))
		if v >= 2 {
			hd.Split = int32(s.u32(sl.split))
			hd.StartPFN, hd.EndPFN = ulong(sl.start), ulong(sl.end)
		}
		if v >= 3 {
			hd.OffsetVMCOREINFO, hd.SizeVMCOREINFO = s.u64(sl.offVI), ulong(sl.sizeVI)
		}
		if v >= 4 {
			hd.OffsetNote, hd.SizeNote = s.u64(sl.offNote), ulong(sl.sizeNote)
		}
		if v >= 5 {
			hd.OffsetEraseinfo, hd.SizeEraseinfo = s.u64(sl.offErase), ulong(sl.sizeErase)
		}
		if v >= 6 {
			hd.StartPFN, hd.EndPFN = s.u64(sl.start64), s.u64(sl.end64)
			hd.MaxMapnr = s.u64(sl.maxMapnr64)
		}
		if s.short {
			return d.kdErr(int64(k.bs), "kdump sub-header too short for header version %d", v)
		}
	}
	switch {
	case hd.MaxMapnr == 0 && bmb == 0:
		// An empty dump: no pages, no bitmaps.
	case hd.MaxMapnr == 0:
		return d.kdErr(int64(o+kdMaxMapnr), "max_mapnr is 0 with %d bitmap blocks", bmb)
	case bmb < 2:
		return d.kdErr(int64(o+kdBitmapBlocks), "bitmap_blocks %d: need two bitmaps", bmb)
	}

	// Bitmaps: two halves of bitmap_blocks blocks.
	half := bmb * k.bs / 2
	bm1Off := int64((1 + sub) * k.bs)
	k.maxPFN = min(hd.MaxMapnr, half*8)
	words := (k.maxPFN + 63) / 64
	if k.bm1, err = readBitmap(d, bm1Off, words, k.maxPFN, "RAM bitmap"); err != nil {
		return err
	}
	if k.bm2, err = readBitmap(d, bm1Off+int64(half), words, k.maxPFN, "dump bitmap"); err != nil {
		return err
	}
	// One cumulative count per 8 words (512 pfns): rank costs at most 8
	// popcounts and the table is 1/8 the size of the bitmap.
	k.super = make([]uint64, len(k.bm2)/8+1)
	var acc uint64
	for i, w := range k.bm2 {
		if i%8 == 0 {
			k.super[i/8] = acc
		}
		acc += uint64(bits.OnesCount64(w))
	}
	if len(k.bm2)%8 == 0 {
		k.super[len(k.bm2)/8] = acc
	}

	k.startPFN, k.endPFN = 0, k.maxPFN
	if hd.Split != 0 {
		if hd.StartPFN > hd.EndPFN {
			return d.kdErr(int64(k.bs), "split range start_pfn %#x > end_pfn %#x", hd.StartPFN, hd.EndPFN)
		}
		k.startPFN, k.endPFN = min(hd.StartPFN, k.maxPFN), min(hd.EndPFN, k.maxPFN)
	}
	k.rankBase = k.rank(k.startPFN)
	k.nDumped = k.rank(k.endPFN) - k.rankBase
	k.descOff = bm1Off + int64(2*half)
	// makedumpfile puts the shared zero page after room for the
	// descriptors of every dumped pfn of the whole dump: in a file of a
	// split dump, past its own descriptors, where the unsplit file has it.
	// rank(maxPFN) <= maxPFN <= 8*file size, so this cannot overflow.
	k.zeroOff = k.descOff + int64(k.rank(k.maxPFN)*pageDescSize)
	k.cache = newPageCache(DefaultCachePages)
	k.bufPool.New = func() any { b := make([]byte, k.bs); return &b }

	d.kd = k
	if hd.Split != 0 {
		d.split = loneSplit(d.name, k)
	}
	d.pageSize = k.bs
	d.arch = hd.Machine
	d.target = lay.target()
	d.incomplete = hd.Status&dumpDHCompressedIncomplete != 0
	k.declared = hd.Status & dumpDHCompressedAny

	if err := d.kdumpNotes(); err != nil {
		return err
	}
	if _, known := machineLayout(d.arch); !known && lay.bits == 64 && lay.bo == binary.ByteOrder(binary.LittleEndian) {
		// QEMU writes utsname.machine "Unknown" for targets other than
		// x86 (dump/dump.c uses ELF_MACHINE_UNAME, which only some targets
		// define); the CPUs' notes still say what the machine was.
		if m := machineFromPRStatus(d.notes); m != "" {
			d.arch = m
		}
	}
	d.finishNotes()
	k.sampleDescriptors(d, 64)
	return nil
}

// readBitmap loads a bitmap as little-endian words (bit pfn%64 of word
// pfn/64, which is makedumpfile's byte pfn>>3, bit pfn&7), clearing bits at
// and above limit so counts and ranks need no further masking.
func readBitmap(d *Dump, off int64, words, limit uint64, what string) ([]uint64, error) {
	nbytes := (limit + 7) / 8
	if off < 0 || nbytes > uint64(d.stored) || nbytes > uint64(d.size) || uint64(off) > uint64(d.size)-nbytes {
		return nil, d.kdErr(off, "%s of %d bytes extends beyond end of file", what, nbytes)
	}
	bm := make([]uint64, words)
	const chunk = 1 << 20
	buf := make([]byte, min(chunk, nbytes))
	for done := uint64(0); done < nbytes; {
		n := min(uint64(len(buf)), nbytes-done)
		if m, err := d.r.ReadAt(buf[:n], off+int64(done)); uint64(m) != n {
			return nil, d.kdErr(off+int64(done), "short read of %s: %v", what, err)
		}
		// done is a multiple of the chunk size, hence of 8: whole words
		// decode directly, only the final partial word bytewise.
		i := uint64(0)
		for ; i+8 <= n; i += 8 {
			bm[(done+i)/8] = binary.LittleEndian.Uint64(buf[i:])
		}
		for ; i < n; i++ {
			b := done + i
			bm[b/8] |= uint64(buf[i]) << (8 * (b % 8))
		}
		done += n
	}
	if r := limit % 64; r != 0 && words > 0 {
		bm[words-1] &= 1<<r - 1
	}
	return bm, nil
}

func bitSet(bm []uint64, pfn uint64) bool {
	return bm[pfn/64]>>(pfn%64)&1 != 0
}

// rank is the number of dumped pfns below pfn (pfn <= maxPFN).
func (k *kdump) rank(pfn uint64) uint64 {
	w := pfn / 64
	r := k.super[w/8]
	for i := w &^ 7; i < w; i++ {
		r += uint64(bits.OnesCount64(k.bm2[i]))
	}
	if b := pfn % 64; b != 0 {
		r += uint64(bits.OnesCount64(k.bm2[w] & (1<<b - 1)))
	}
	return r
}

// kdumpNotes loads the ELF notes and VMCOREINFO the sub-header points at.
func (d *Dump) kdumpNotes() error {
	hd := &d.kd.hdr
	bo := d.kd.bo
	if hd.SizeNote > 0 {
		if hd.SizeNote > maxNoteSegment {
			return d.kdErr(int64(d.kd.bs), "note area of %d bytes is implausibly large", hd.SizeNote)
		}
		if hd.OffsetNote > uint64(d.size) {
			return d.kdErr(int64(d.kd.bs), "note offset %#x beyond end of file", hd.OffsetNote)
		}
		b, err := d.meta(int64(hd.OffsetNote), int64(hd.SizeNote), "note area")
		if err != nil {
			return err
		}
		notes, err := parseNotes(b, bo)
		if err != nil {
			return d.kdErr(int64(hd.OffsetNote), "%v", err)
		}
		d.notes = notes
	}
	if hd.SizeVMCOREINFO > 0 {
		if hd.SizeVMCOREINFO > maxNoteSegment {
			return d.kdErr(int64(d.kd.bs), "VMCOREINFO of %d bytes is implausibly large", hd.SizeVMCOREINFO)
		}
		if hd.OffsetVMCOREINFO > uint64(d.size) {
			return d.kdErr(int64(d.kd.bs), "VMCOREINFO offset %#x beyond end of file", hd.OffsetVMCOREINFO)
		}
		b, err := d.meta(int64(hd.OffsetVMCOREINFO), int64(hd.SizeVMCOREINFO), "VMCOREINFO")
		if err != nil {
			return err
		}
		d.vmcoreinfo = trimNUL(b)
	}
	return nil
}

type pageDesc struct {
	off   int64
	size  uint32
	flags uint32
}

func decodeDesc(b []byte, bo binary.ByteOrder) pageDesc {
	return pageDesc{off: int64(bo.Uint64(b)), size: bo.Uint32(b[8:]), flags: bo.Uint32(b[12:])}
}

func (k *kdump) isZeroDesc(pd pageDesc) bool {
	return pd.off == k.zeroOff && uint64(pd.size) == k.bs && pd.flags&dumpDHCompressedAny == 0
}

// sampleDescriptors records the encodings of the first n descriptors so
// Compression says something useful before any page is read.
func (k *kdump) sampleDescriptors(d *Dump, n uint64) {
	n = min(n, k.nDumped)
	if n == 0 || k.descOff > d.size || int64(n*pageDescSize) > d.size-k.descOff {
		return
	}
	b := make([]byte, n*pageDescSize)
	if m, _ := d.r.ReadAt(b, k.descOff); uint64(m) != n*pageDescSize {
		return
	}
	for i := uint64(0); i < n; i++ {
		pd := decodeDesc(b[i*pageDescSize:], k.bo)
		if !k.isZeroDesc(pd) && pd.size != 0 {
			k.seen.Or(seenBit(pd.flags))
		}
	}
}

func (k *kdump) compressions() []string { return encodingNames(k.encodings()) }

// encodings is the seen* mask of what the header declares and the
// descriptors read so far used.
func (k *kdump) encodings() uint32 {
	m := k.seen.Load()
	for _, f := range []uint32{dumpDHCompressedZlib, dumpDHCompressedLZO, dumpDHCompressedSnappy, dumpDHCompressedZstd} {
		if k.declared&f != 0 {
			m |= seenBit(f)
		}
	}
	return m
}

func encodingNames(m uint32) []string {
	var out []string
	for _, s := range seenNames {
		if m&s.bit != 0 {
			out = append(out, s.name)
		}
	}
	if out == nil {
		out = []string{"none"}
	}
	return out
}

func (k *kdump) physRanges() []Range {
	k.rangeOnce.Do(func() {
		var rs []Range
		inRun := false
		var start uint64
		for pfn := k.startPFN; pfn < k.endPFN; {
			w := k.bm2[pfn/64]
			if pfn%64 == 0 && pfn+64 <= k.endPFN && (w == 0 && !inRun || w == ^uint64(0) && inRun) {
				pfn += 64
				continue
			}
			set := w>>(pfn%64)&1 != 0
			if set && !inRun {
				start, inRun = pfn, true
			} else if !set && inRun {
				rs = append(rs, Range{start * k.bs, pfn * k.bs})
				inRun = false
			}
			pfn++
		}
		if inRun {
			rs = append(rs, Range{start * k.bs, k.endPFN * k.bs})
		}
		k.ranges = rs
	})
	return k.ranges
}

func (k *kdump) pageCounts(d *Dump) (present, excluded, zero uint64) {
	k.countOnce.Do(func() {
		k.present = k.nDumped
		// Only this file's pfns: in a split dump the others are another
		// part's to count.
		k.excluded = k.excludedIn(k.startPFN, k.endPFN)
		k.zero = k.countZero(d)
	})
	return k.present, k.excluded, k.zero
}

// noneDumpedAt is true when this file holds no block of physical memory
// [pa, pa+size): its dumped bitmap counts no block there (rank). Blocks
// past the bitmaps, or outside this file's range when it is one part of a
// split dump read alone, it cannot answer for: false. With ownRange, as one
// of a joined split dump's parts, it answers for its own range only.
func (k *kdump) noneDumpedAt(pa, size uint64, ownRange bool) bool {
	lo, hi := pa/k.bs, (pa+size-1)/k.bs+1
	if hi > k.maxPFN {
		return false
	}
	if ownRange {
		lo, hi = max(lo, k.startPFN), min(hi, k.endPFN)
		if lo >= hi {
			return true
		}
	} else if lo < k.startPFN || hi > k.endPFN {
		return false
	}
	return k.rank(hi) == k.rank(lo)
}

// excludedIn counts the pfns in [lo, hi) that are RAM but not dumped.
func (k *kdump) excludedIn(lo, hi uint64) uint64 {
	var n uint64
	for pfn := lo; pfn < hi; {
		w := k.bm1[pfn/64] &^ k.bm2[pfn/64]
		if pfn%64 == 0 && pfn+64 <= hi {
			n += uint64(bits.OnesCount64(w))
			pfn += 64
			continue
		}
		n += w >> (pfn % 64) & 1
		pfn++
	}
	return n
}

// countZero scans the descriptor table for pages that point at the shared
// zero page, after checking that page really is zeros.
func (k *kdump) countZero(d *Dump) uint64 {
	if k.zeroOff < 0 || uint64(k.zeroOff) > uint64(d.size) || uint64(d.size)-uint64(k.zeroOff) < k.bs {
		return 0
	}
	zp := make([]byte, k.bs)
	if m, _ := d.r.ReadAt(zp, k.zeroOff); uint64(m) != k.bs || slices.ContainsFunc(zp, func(c byte) bool { return c != 0 }) {
		return 0
	}
	var n uint64
	const per = 1 << 15
	buf := make([]byte, per*pageDescSize)
	for i := uint64(0); i < k.nDumped; i += per {
		c := min(per, k.nDumped-i)
		off := k.descOff + int64(i*pageDescSize)
		m, _ := d.r.ReadAt(buf[:c*pageDescSize], off)
		for j := 0; j+pageDescSize <= m; j += pageDescSize {
			if k.isZeroDesc(decodeDesc(buf[j:], k.bo)) {
				n++
			}
		}
		if uint64(m) != c*pageDescSize {
			break
		}
	}
	return n
}

// read copies from the page holding pa, via the cache.
func (k *kdump) read(d *Dump, p []byte, pa uint64) (int, error) {
	pfn, off := pa/k.bs, pa%k.bs
	if pfn >= k.maxPFN {
		return 0, &MissingPageError{PA: pa, Reason: ReasonBeyondEnd}
	}
	if pfn < k.startPFN || pfn >= k.endPFN {
		// Another file of a split dump holds it.
		return 0, &MissingPageError{PA: pa, Reason: ReasonOtherPart}
	}
	if !bitSet(k.bm2, pfn) {
		if bitSet(k.bm1, pfn) {
			return 0, &MissingPageError{PA: pa, Reason: ReasonExcluded}
		}
		return 0, &MissingPageError{PA: pa, Reason: ReasonHole}
	}
	n := min(uint64(len(p)), k.bs-off)
	if m, ok := k.cache.copyOut(pfn, int(off), p[:n]); ok {
		return m, nil
	}
	page, err := k.loadPage(d, pfn)
	if err != nil {
		if mp, ok := err.(*MissingPageError); ok {
			mp.PA = pa
		}
		return 0, err
	}
	m := copy(p[:n], page[off:])
	k.cache.put(pfn, page)
	return m, nil
}

// loadPage reads and decodes one dumped page into a fresh (or recycled)
// buffer that the caller hands to the cache.
func (k *kdump) loadPage(d *Dump, pfn uint64) ([]byte, error) {
	idx := k.rank(pfn) - k.rankBase
	descPos := k.descOff + int64(idx*pageDescSize)
	var db [pageDescSize]byte
	if m, err := d.r.ReadAt(db[:], descPos); m != pageDescSize {
		if err != nil && !isEOF(err) {
			return nil, &PageError{d.name, pfn, descPos, fmt.Errorf("reading page descriptor: %w", err)}
		}
		return nil, &MissingPageError{Reason: ReasonTruncated}
	}
	pd := decodeDesc(db[:], k.bo)
	// An incomplete dump leaves unwritten descriptors zeroed.
	if pd.off == 0 || pd.size == 0 {
		return nil, &MissingPageError{Reason: ReasonTruncated}
	}
	if pd.off < 0 || uint64(pd.size) > k.bs {
		return nil, &PageError{d.name, pfn, descPos, fmt.Errorf("bad page descriptor: offset %#x size %d flags %#x", pd.off, pd.size, pd.flags)}
	}
	if pd.off > d.size || int64(pd.size) > d.size-pd.off {
		return nil, &MissingPageError{Reason: ReasonTruncated}
	}
	if !k.isZeroDesc(pd) {
		k.seen.Or(seenBit(pd.flags))
	}
	bp := k.bufPool.Get().(*[]byte)
	defer k.bufPool.Put(bp)
	src := (*bp)[:pd.size]
	if m, err := d.r.ReadAt(src, pd.off); m != len(src) {
		if err != nil && !isEOF(err) {
			return nil, &PageError{d.name, pfn, pd.off, err}
		}
		return nil, &MissingPageError{Reason: ReasonTruncated}
	}
	page := k.cache.buffer(int(k.bs))
	if err := decompressPage(page, src, pd.flags); err != nil {
		return nil, &PageError{d.name, pfn, pd.off, err}
	}
	return page, nil
}
