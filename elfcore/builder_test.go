package elfcore

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// Writers for synthetic dumps. They follow the layouts the package reads
// (makedumpfile's diskdump_mod.h, the ELF64 spec) but are written
// independently of the readers, field by field.

var le = binary.LittleEndian

type elfLoad struct {
	paddr, vaddr uint64
	data         []byte // file-backed bytes (p_filesz = len)
	memsz        uint64 // 0 means len(data)
}

type elfSpec struct {
	machine uint16
	flags   uint32
	xnum    bool // e_phnum = PN_XNUM, real count in shdr 0's sh_info
	loads   []elfLoad
	notes   []Note
	// noteSegs > 1 splits the notes over that many PT_NOTEs.
	noteSegs int
}

func encodeNotes(notes []Note) []byte { return encodeNotesBO(notes, le) }

func encodeNotesBO(notes []Note, bo binary.ByteOrder) []byte {
	var b bytes.Buffer
	for _, n := range notes {
		name := append([]byte(n.Name), 0)
		var h [12]byte
		bo.PutUint32(h[0:], uint32(len(name)))
		bo.PutUint32(h[4:], uint32(len(n.Desc)))
		bo.PutUint32(h[8:], n.Type)
		b.Write(h[:])
		b.Write(name)
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
		b.Write(n.Desc)
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
	}
	return b.Bytes()
}

func buildELF(s elfSpec) []byte {
	if s.machine == 0 {
		s.machine = 62
	}
	segs := max(s.noteSegs, 1)
	var noteBlobs [][]byte
	if len(s.notes) > 0 {
		per := (len(s.notes) + segs - 1) / segs
		for i := 0; i < len(s.notes); i += per {
			noteBlobs = append(noteBlobs, encodeNotes(s.notes[i:min(i+per, len(s.notes))]))
		}
	}
	phnum := len(noteBlobs) + len(s.loads)
	shoff := 0
	phoff := 64
	if s.xnum {
		shoff = 64
		phoff = 128
	}
	off := phoff + phnum*56
	out := make([]byte, off)
	copy(out, "\x7fELF")
	out[4], out[5], out[6] = 2, 1, 1
	le.PutUint16(out[16:], 4) // ET_CORE
	le.PutUint16(out[18:], s.machine)
	le.PutUint32(out[20:], 1)
	le.PutUint64(out[32:], uint64(phoff))
	le.PutUint64(out[40:], uint64(shoff))
	le.PutUint32(out[48:], s.flags)
	le.PutUint16(out[52:], 64)
	le.PutUint16(out[54:], 56)
	if s.xnum {
		le.PutUint16(out[56:], 0xffff)
		le.PutUint16(out[58:], 64)
		le.PutUint16(out[60:], 1)
		le.PutUint32(out[shoff+44:], uint32(phnum)) // sh_info
	} else {
		le.PutUint16(out[56:], uint16(phnum))
	}
	ph := phoff
	put := func(typ uint32, off, vaddr, paddr, filesz, memsz uint64) {
		le.PutUint32(out[ph:], typ)
		le.PutUint64(out[ph+8:], off)
		le.PutUint64(out[ph+16:], vaddr)
		le.PutUint64(out[ph+24:], paddr)
		le.PutUint64(out[ph+32:], filesz)
		le.PutUint64(out[ph+40:], memsz)
		ph += 56
	}
	type pending struct {
		data []byte
		at   int
	}
	var body []pending
	for _, nb := range noteBlobs {
		put(4, uint64(off), 0, 0, uint64(len(nb)), 0)
		body = append(body, pending{nb, off})
		off += len(nb)
	}
	for _, l := range s.loads {
		memsz := l.memsz
		if memsz == 0 {
			memsz = uint64(len(l.data))
		}
		put(1, uint64(off), l.vaddr, l.paddr, uint64(len(l.data)), memsz)
		body = append(body, pending{l.data, off})
		off += len(l.data)
	}
	out = append(out, make([]byte, off-len(out))...)
	for _, p := range body {
		copy(out[p.at:], p.data)
	}
	return out
}

// kdPage is one dumped page: its raw content and how it is stored.
type kdPage struct {
	raw   []byte
	flags uint32 // DUMP_DH_COMPRESSED_*; 0 = raw
	enc   []byte // stored bytes; nil means raw
}

type kdSpec struct {
	version    int32
	blockSize  int
	maxMapnr   uint64
	ram        []uint64 // extra pfns in RAM but excluded (bitmap 1 only)
	pages      map[uint64]kdPage
	zero       []uint64 // pfns stored as the shared zero page
	status     uint32
	machine    string
	notes      []Note
	vmcoreinfo []byte
	split      bool
	start, end uint64
	// stamp is the header timestamp's seconds (0: 1700000000); nodename
	// the utsname nodename ("": testhost).
	stamp    int64
	nodename string
	// The target's struct layouts: bits 32 writes the 32-bit
	// disk_dump_header (timeval of two 4-byte longs at 404, block_size at
	// 416) and kdump_sub_header (4-byte unsigned longs; pack aligns its
	// 64-bit fields to 4 as i386 does, else to 8 as 32-bit ARM does). be
	// writes every field big-endian.
	bits int
	be   bool
	pack bool
	// empty writes no bitmap blocks (with maxMapnr 0: a dump of nothing).
	empty bool
}

// buildKdump writes a kdump-compressed file: header block, sub-header
// blocks (sub-header, VMCOREINFO, notes), two bitmaps, descriptors, the
// shared zero page, page data in pfn order.
func buildKdump(s kdSpec) []byte {
	bs := s.blockSize
	if bs == 0 {
		bs = 4096
	}
	if s.machine == "" {
		s.machine = "x86_64"
	}
	var bo binary.ByteOrder = le
	if s.be {
		bo = binary.BigEndian
	}
	// kdump_sub_header field offsets for the target.
	type subLayout struct {
		size, ulong                            int
		physBase, dumpLevel, split, start, end int
		offVI, sizeVI, offNote, sizeNote       int
		start64, end64, maxMapnr64             int
	}
	sl := subLayout{104, 8, 0, 8, 12, 16, 24, 32, 40, 48, 56, 80, 88, 96}
	if s.bits == 32 {
		if s.pack {
			sl = subLayout{80, 4, 0, 4, 8, 12, 16, 20, 28, 32, 40, 56, 64, 72}
		} else {
			sl = subLayout{96, 4, 0, 4, 8, 12, 16, 24, 32, 40, 48, 72, 80, 88}
		}
	}
	putUlong := func(b []byte, v uint64) {
		if sl.ulong == 4 {
			bo.PutUint32(b, uint32(v))
		} else {
			bo.PutUint64(b, v)
		}
	}
	// Sub-header area: struct at 0, then VMCOREINFO, then notes.
	subArea := make([]byte, sl.size)
	var offVI, offNote uint64
	if s.version >= 3 && s.vmcoreinfo != nil {
		offVI = uint64(bs + len(subArea))
		subArea = append(subArea, s.vmcoreinfo...)
	}
	noteBlob := encodeNotesBO(s.notes, bo)
	if s.version >= 4 && len(s.notes) > 0 {
		offNote = uint64(bs + len(subArea))
		subArea = append(subArea, noteBlob...)
	}
	subBlocks := (len(subArea) + bs - 1) / bs
	bitmapBytes := int((s.maxMapnr + 7) / 8)
	halfBlocks := max((bitmapBytes+bs-1)/bs, 1)
	if s.empty {
		halfBlocks = 0
	}
	bm1 := make([]byte, halfBlocks*bs)
	bm2 := make([]byte, halfBlocks*bs)
	set := func(bm []byte, pfn uint64) { bm[pfn/8] |= 1 << (pfn % 8) }
	dumped := map[uint64]bool{}
	for pfn := range s.pages {
		dumped[pfn] = true
	}
	for _, pfn := range s.zero {
		dumped[pfn] = true
	}
	var pfns []uint64
	for pfn := range dumped {
		pfns = append(pfns, pfn)
		set(bm1, pfn)
		set(bm2, pfn)
	}
	slices.Sort(pfns)
	if s.split {
		// A split file carries descriptors only for its own pfn range.
		pfns = slices.DeleteFunc(pfns, func(p uint64) bool { return p < s.start || p >= s.end })
	}
	for _, pfn := range s.ram {
		set(bm1, pfn)
	}

	descOff := (1 + subBlocks + 2*halfBlocks) * bs
	// Page data (the zero page first) follows room for the descriptors of
	// every dumped pfn, also in a split file, which writes only its own.
	dataOff := descOff + 24*len(dumped)
	var data bytes.Buffer
	zeroOff := -1
	if len(s.zero) > 0 {
		zeroOff = dataOff
		data.Write(make([]byte, bs))
	}
	descs := make([]byte, 24*len(pfns))
	isZero := map[uint64]bool{}
	for _, z := range s.zero {
		isZero[z] = true
	}
	for i, pfn := range pfns {
		d := descs[24*i:]
		if isZero[pfn] {
			bo.PutUint64(d, uint64(zeroOff))
			bo.PutUint32(d[8:], uint32(bs))
			continue
		}
		p := s.pages[pfn]
		enc := p.enc
		if enc == nil {
			enc = p.raw
		}
		bo.PutUint64(d, uint64(dataOff+data.Len()))
		bo.PutUint32(d[8:], uint32(len(enc)))
		bo.PutUint32(d[12:], p.flags)
		data.Write(enc)
	}

	out := make([]byte, bs, dataOff+data.Len())
	copy(out, "KDUMP   ")
	bo.PutUint32(out[8:], uint32(s.version))
	if s.stamp == 0 {
		s.stamp = 1700000000
	}
	if s.nodename == "" {
		s.nodename = "testhost"
	}
	uts := []string{"Linux", s.nodename, "6.8.0-test", "#1 SMP", s.machine, "(none)"}
	for i, u := range uts {
		copy(out[12+65*i:], u)
	}
	// struct timeval, then the fields from status on.
	tv, fld := 408, 424
	if s.bits == 32 {
		tv, fld = 404, 412
		bo.PutUint32(out[tv:], uint32(s.stamp))
		bo.PutUint32(out[tv+4:], 123456)
	} else {
		bo.PutUint64(out[tv:], uint64(s.stamp))
		bo.PutUint64(out[tv+8:], 123456)
	}
	bo.PutUint32(out[fld:], s.status)
	bo.PutUint32(out[fld+4:], uint32(bs))
	bo.PutUint32(out[fld+8:], uint32(subBlocks))
	bo.PutUint32(out[fld+12:], uint32(2*halfBlocks))
	bo.PutUint32(out[fld+16:], uint32(s.maxMapnr))
	bo.PutUint32(out[fld+36:], 2) // nr_cpus
	sub := subArea
	putUlong(sub[sl.physBase:], 0x1000000)
	bo.PutUint32(sub[sl.dumpLevel:], 31)
	if s.version >= 2 {
		if s.split {
			bo.PutUint32(sub[sl.split:], 1)
			putUlong(sub[sl.start:], s.start)
			putUlong(sub[sl.end:], s.end)
		}
	}
	if s.version >= 3 {
		bo.PutUint64(sub[sl.offVI:], offVI)
		putUlong(sub[sl.sizeVI:], uint64(len(s.vmcoreinfo)))
	}
	if s.version >= 4 && len(s.notes) > 0 {
		bo.PutUint64(sub[sl.offNote:], offNote)
		putUlong(sub[sl.sizeNote:], uint64(len(noteBlob)))
	}
	if s.version >= 6 {
		if s.split {
			bo.PutUint64(sub[sl.start64:], s.start)
			bo.PutUint64(sub[sl.end64:], s.end)
		}
		bo.PutUint64(sub[sl.maxMapnr64:], s.maxMapnr)
	}
	out = append(out, sub...)
	out = append(out, make([]byte, (1+subBlocks)*bs-len(out))...)
	out = append(out, bm1...)
	out = append(out, bm2...)
	out = append(out, descs...)
	out = append(out, make([]byte, dataOff-len(out))...)
	out = append(out, data.Bytes()...)
	return out
}

// flatRecord is one write of a flattened stream.
type flatRecord struct {
	off  int64
	data []byte
}

// buildFlat writes records as a makedumpfile -F stream.
func buildFlat(recs []flatRecord, endMarker bool) []byte {
	out := make([]byte, 4096)
	copy(out, "makedumpfile")
	binary.BigEndian.PutUint64(out[16:], 1)
	binary.BigEndian.PutUint64(out[24:], 1)
	for _, r := range recs {
		var h [16]byte
		binary.BigEndian.PutUint64(h[:], uint64(r.off))
		binary.BigEndian.PutUint64(h[8:], uint64(len(r.data)))
		out = append(out, h[:]...)
		out = append(out, r.data...)
	}
	if endMarker {
		out = append(out, bytes.Repeat([]byte{0xff}, 16)...)
	}
	return out
}

// flatten chops a logical file into chunk-sized writes, optionally shuffled
// and preceded by garbage writes that later records override.
func flatten(logical []byte, chunk int, shuffle, overrides bool, seed uint64) []byte {
	var recs []flatRecord
	for off := 0; off < len(logical); off += chunk {
		recs = append(recs, flatRecord{int64(off), logical[off:min(off+chunk, len(logical))]})
	}
	r := rand.New(rand.NewPCG(seed, 0))
	if shuffle {
		r.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
	}
	if overrides {
		// Garbage first, overlapping chunk boundaries; the real data,
		// written later, must win.
		var junk []flatRecord
		for i := 0; i < 8; i++ {
			off := r.IntN(len(logical))
			n := min(1+r.IntN(3*chunk), len(logical)-off)
			junk = append(junk, flatRecord{int64(off), bytes.Repeat([]byte{0xEE}, n)})
		}
		recs = append(junk, recs...)
	}
	return buildFlat(recs, true)
}

// pattern returns n bytes that differ per address, so misplaced reads show.
func pattern(base uint64, n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		var w [8]byte
		le.PutUint64(w[:], (base+uint64(i))*0x9E3779B97F4A7C15|1)
		copy(b[i:], w[:])
	}
	return b
}

func prstatusDesc(pid int32, regs [27]uint64) []byte {
	b := make([]byte, 336)
	le.PutUint32(b[32:], uint32(pid))
	for i, r := range regs {
		le.PutUint64(b[112+8*i:], r)
	}
	return b
}

func qemuDesc(rip, cr3, gdtBase, idtBase, gsBase, kgs uint64, withKGS bool) []byte {
	size := 432
	if withKGS {
		size = 440
	}
	b := make([]byte, size)
	le.PutUint32(b[0:], 1)
	le.PutUint32(b[4:], uint32(size))
	for i := 0; i < 16; i++ {
		le.PutUint64(b[8+8*i:], uint64(0x100+i))
	}
	le.PutUint64(b[136:], rip)
	le.PutUint64(b[144:], 0x246)
	seg := func(i int, sel uint32, base uint64) {
		o := 152 + 24*i
		le.PutUint32(b[o:], sel)
		le.PutUint32(b[o+4:], 0xffff)
		le.PutUint32(b[o+8:], 0xa09b00)
		le.PutUint64(b[o+16:], base)
	}
	seg(0, 0x10, 0)    // cs
	seg(4, 0, gsBase)  // gs
	seg(8, 0, gdtBase) // gdt
	seg(9, 0, idtBase) // idt
	le.PutUint64(b[392+24:], cr3)
	if withKGS {
		le.PutUint64(b[432:], kgs)
	}
	return b
}

// fixturePage loads testdata/pages/pageN.ext.
func fixturePage(t testing.TB, n int, ext string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "pages", "page"+string(rune('0'+n))+"."+ext))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustOpen(t testing.TB, b []byte) *Dump {
	t.Helper()
	d, err := NewDump(bytes.NewReader(b), int64(len(b)), "test")
	if err != nil {
		t.Fatalf("NewDump: %v", err)
	}
	return d
}

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o644) }
