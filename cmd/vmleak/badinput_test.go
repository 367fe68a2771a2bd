package main

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"math/bits"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/vmleak/vmleak/elfcore"
	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/walk"
)

// dumpCommands are the commands that read a dump, each run on every row of
// the bad-input table.
var dumpCommands = []string{"info", "slabs", "slabinfo", "meminfo", "whatis", "objects", "owners", "leaks",
	"modules", "check", "summary", "diff", "report", "dmesg", "allocinfo"}

// commandLine is cmd's command line on one dump.
func commandLine(cmd, dump, vmlinux, dir string) []string {
	var args []string
	switch cmd {
	case "whatis":
		args = []string{cmd, dump, "0xffffffff81000000"}
	case "objects":
		args = []string{cmd, dump, "kmalloc-64"}
	case "diff":
		args = []string{cmd, dump, dump}
	case "report":
		args = []string{cmd, dump, "-o", filepath.Join(dir, "report.html")}
	case "summary":
		args = []string{cmd, dump, "-o", filepath.Join(dir, "summary.json")}
	default:
		args = []string{cmd, dump}
	}
	if vmlinux != "" {
		args = append(args, "--vmlinux", vmlinux)
	}
	return args
}

// badRow is one bad input: how to make it, and what every command must do
// with it: exit with code, the last line of stderr holding msg (and the
// input's name where name is set). Commands whose outcome differs for a
// reason of their own are in codes and msgs.
type badRow struct {
	name    string
	make    func(t *testing.T, b *badInputs) (dump, vmlinux string)
	code    int
	msg     string
	noName  bool // the line need not name the file (a partial result's summary line)
	codes   map[string]int
	msgs    map[string]string
	timeout time.Duration
}

// badInputs holds the intact fixtures the rows are made from.
type badInputs struct {
	qemu    *fixture.Manifest // bookworm-qemu: a kdump (zlib), its flattened stream and an ELF dump
	lzo     *fixture.Manifest // bookworm-kdump: a kdump (lzo)
	other   *fixture.Manifest // trixie-qemu: another kernel's vmlinux
	k       *kernel.Kernel    // the bookworm-qemu kdump, intact
	zlib    string
	dir     string
	elfHead []byte // the first MiB of qemu1.elf: headers and notes
}

// kdumpFile is a kdump-compressed file in memory, to be edited: its page
// descriptors found from the dump bitmap, pages re-encoded and appended
// at the end (a descriptor may point anywhere in the file).
type kdumpFile struct {
	b                   []byte
	bs                  int64
	bitmapOff, descOff  int64
	bitmapLen           int64
	subHdrOff, maxMapnr int64
}

const (
	kdStatusOff     = 424 // disk_dump_header.status
	kdMachineOff    = 12 + 4*65
	kdIncomplete    = 0x8
	descSize        = 24
	flagZlib        = 0x1
	flagLZO         = 0x2
	flagSnappy      = 0x4
	flagZstd        = 0x20
	subMaxMapnr64At = 96
)

func loadKdump(t *testing.T, path string) *kdumpFile {
	t.Helper()
	d, err := elfcore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	kh := d.Kdump()
	d.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bs := int64(kh.BlockSize)
	f := &kdumpFile{b: b, bs: bs, subHdrOff: bs, bitmapOff: (1 + int64(kh.SubHdrSize)) * bs, bitmapLen: int64(kh.BitmapBlocks) * bs}
	f.descOff = f.bitmapOff + f.bitmapLen
	return f
}

func (f *kdumpFile) clone() *kdumpFile {
	c := *f
	c.b = bytes.Clone(f.b)
	return &c
}

// descIndex is the index of pfn's descriptor: the dumped pages before it,
// counted in the second (dump) bitmap.
func (f *kdumpFile) descIndex(t *testing.T, pfn uint64) int64 {
	t.Helper()
	bm := f.b[f.bitmapOff+f.bitmapLen/2 : f.bitmapOff+f.bitmapLen]
	if pfn/8 >= uint64(len(bm)) || bm[pfn/8]&(1<<(pfn%8)) == 0 {
		t.Fatalf("pfn %#x is not in the dump", pfn)
	}
	var n int64
	for _, x := range bm[:pfn/8] {
		n += int64(bits.OnesCount8(x))
	}
	return n + int64(bits.OnesCount8(bm[pfn/8]&(1<<(pfn%8)-1)))
}

func (f *kdumpFile) desc(i int64) (off int64, size, flags uint32) {
	at := f.descOff + i*descSize
	le := binary.LittleEndian
	return int64(le.Uint64(f.b[at:])), le.Uint32(f.b[at+8:]), le.Uint32(f.b[at+12:])
}

func (f *kdumpFile) setDesc(i, off int64, size, flags uint32) {
	at := f.descOff + i*descSize
	le := binary.LittleEndian
	le.PutUint64(f.b[at:], uint64(off))
	le.PutUint32(f.b[at+8:], size)
	le.PutUint32(f.b[at+12:], flags)
}

// page is pfn's contents (zlib or stored pages only).
func (f *kdumpFile) page(t *testing.T, pfn uint64) []byte {
	t.Helper()
	off, size, flags := f.desc(f.descIndex(t, pfn))
	data := f.b[off : off+int64(size)]
	switch flags {
	case 0:
		return bytes.Clone(data)
	case flagZlib:
		zr, err := zlib.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(zr)
		if err != nil || int64(len(out)) != f.bs {
			t.Fatalf("pfn %#x: %d bytes, %v", pfn, len(out), err)
		}
		return out
	}
	t.Fatalf("pfn %#x: descriptor flags %#x", pfn, flags)
	return nil
}

// replace points pfn's descriptor at enc, appended to the file.
func (f *kdumpFile) replace(t *testing.T, pfn uint64, enc []byte, flags uint32) {
	t.Helper()
	i := f.descIndex(t, pfn)
	off := int64(len(f.b))
	f.b = append(f.b, enc...)
	f.setDesc(i, off, uint32(len(enc)), flags)
}

// encode compresses a page with one of the codecs.
func encode(t *testing.T, page []byte, flags uint32) []byte {
	t.Helper()
	switch flags {
	case flagZlib:
		var b bytes.Buffer
		zw := zlib.NewWriter(&b)
		zw.Write(page)
		zw.Close()
		return b.Bytes()
	case flagSnappy:
		return snappy.Encode(nil, page)
	case flagZstd:
		enc, err := zstd.NewWriter(nil)
		if err != nil {
			t.Fatal(err)
		}
		defer enc.Close()
		return enc.EncodeAll(page, nil)
	}
	t.Fatalf("no encoder for flags %#x", flags)
	return nil
}

// patch writes 8-byte words at kernel virtual addresses, re-encoding each
// page touched.
func (f *kdumpFile) patch(t *testing.T, k *kernel.Kernel, words map[uint64]uint64) {
	t.Helper()
	pages := map[uint64][]byte{}
	for va, v := range words {
		pa, err := k.Translate(va)
		if err != nil {
			t.Fatal(err)
		}
		pfn := pa / uint64(f.bs)
		pg, ok := pages[pfn]
		if !ok {
			pg = f.page(t, pfn)
			pages[pfn] = pg
		}
		binary.LittleEndian.PutUint64(pg[pa%uint64(f.bs):], v)
	}
	for pfn, pg := range pages {
		f.replace(t, pfn, encode(t, pg, flagZlib), flagZlib)
	}
}

// dataOffsetOf is the file offset of the page data of the page that holds
// the kernel symbol sym.
func (f *kdumpFile) dataOffsetOf(t *testing.T, k *kernel.Kernel, sym string) int64 {
	t.Helper()
	off, _, _ := f.desc(f.descIndex(t, pfnOf(t, k, sym)))
	if off <= f.descOff || off >= int64(len(f.b)) {
		t.Fatalf("%s: page data at %#x, outside the page data", sym, off)
	}
	return off
}

func (f *kdumpFile) write(t *testing.T, dir, name string, cut int64) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, f.b[:int64(len(f.b))-cut], 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// pfnOf is the page frame holding a kernel symbol.
func pfnOf(t *testing.T, k *kernel.Kernel, sym string) uint64 {
	t.Helper()
	va, err := k.Symbol(sym)
	if err != nil {
		t.Fatal(err)
	}
	pa, err := k.Translate(va)
	if err != nil {
		t.Fatal(err)
	}
	return pa / k.PageSize()
}

// cycleAfter makes the list at head loop without returning to it: the
// n-th entry's next points back at the first (n = 1: the first at itself).
func cycleAfter(t *testing.T, k *kernel.Kernel, head uint64, n int) map[uint64]uint64 {
	t.Helper()
	first, err := k.ReadPtr(head)
	if err != nil {
		t.Fatal(err)
	}
	e := first
	for i := 1; i < n; i++ {
		if e, err = k.ReadPtr(e); err != nil || e == head {
			t.Fatalf("list at %#x is shorter than %d (%v)", head, n, err)
		}
	}
	return map[uint64]uint64{e: first}
}

// member reads a struct field.
func member(t *testing.T, k *kernel.Kernel, typ, path string, addr uint64) uint64 {
	t.Helper()
	m, err := k.Member(typ, path)
	if err != nil {
		t.Fatal(err)
	}
	size, err := k.SizeOf(typ)
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, size)
	if err := k.ReadVirt(raw, addr); err != nil {
		t.Fatal(err)
	}
	v, err := m.Uint(raw)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func fieldAddr(t *testing.T, k *kernel.Kernel, typ, path string, addr uint64) uint64 {
	t.Helper()
	m, err := k.Member(typ, path)
	if err != nil {
		t.Fatal(err)
	}
	return addr + m.Offset()
}

// freelistCycle finds a slab of kmalloc-64 whose struct slab freelist has
// two objects or more, A then B, and makes B's free pointer lead back to A.
func freelistCycle(t *testing.T, k *kernel.Kernel) map[uint64]uint64 {
	t.Helper()
	w, err := walk.New(k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := w.Census()
	if err != nil {
		t.Fatal(err)
	}
	cs := c.Cache("kmalloc-64")
	if cs == nil {
		t.Fatal("no kmalloc-64")
	}
	offset := member(t, k, "struct kmem_cache", "offset", cs.Addr)
	random := member(t, k, "struct kmem_cache", "random", cs.Addr)
	slabs, _, err := w.Slabs()
	if err != nil {
		t.Fatal(err)
	}
	enc := w.Encoding()
	code := func(next, at uint64) uint64 {
		switch enc {
		case "swab":
			return next ^ random ^ bits.ReverseBytes64(at)
		case "plain":
			return next ^ random ^ at
		}
		return next
	}
	for _, s := range slabs {
		if s.Cache != "kmalloc-64" {
			continue
		}
		a := member(t, k, "struct slab", "freelist", s.SlabVA)
		if a == 0 {
			continue
		}
		stored, err := k.ReadPtr(a + offset)
		if err != nil {
			continue
		}
		b := code(stored, a+offset) // decoding is the same xor
		if b == 0 || b < s.First || b >= s.First+s.N*s.Stride {
			continue
		}
		return map[uint64]uint64{b + offset: code(a, b+offset)}
	}
	t.Fatal("no kmalloc-64 slab with two free objects on its freelist")
	return nil
}

// flatRecords splits a flattened stream into its records' start offsets.
func flatRecords(t *testing.T, b []byte) (starts []int64, end int64) {
	t.Helper()
	be := binary.BigEndian
	pos := int64(4096)
	for pos+16 <= int64(len(b)) {
		off, n := int64(be.Uint64(b[pos:])), int64(be.Uint64(b[pos+8:]))
		if off == -1 && n == -1 {
			return starts, pos
		}
		starts = append(starts, pos)
		pos += 16 + n
	}
	t.Fatal("flattened stream without an end record")
	return nil, 0
}

func badRows() []badRow {
	kd := func(edit func(t *testing.T, b *badInputs, f *kdumpFile) int64) func(t *testing.T, b *badInputs) (string, string) {
		return func(t *testing.T, b *badInputs) (string, string) {
			f := loadKdump(t, b.zlib)
			cut := edit(t, b, f)
			return f.write(t, b.dir, "bad.zlib", cut), b.qemu.Vmlinux()
		}
	}
	// prefix is the first n bytes of a kdump.
	prefix := func(n func(f *kdumpFile) int64) func(t *testing.T, b *badInputs, f *kdumpFile) int64 {
		return func(t *testing.T, b *badInputs, f *kdumpFile) int64 { return int64(len(f.b)) - n(f) }
	}
	elf := func(edit func(h []byte) []byte) func(t *testing.T, b *badInputs) (string, string) {
		return func(t *testing.T, b *badInputs) (string, string) {
			return writeFile(t, b.dir, "bad.elf", edit(bytes.Clone(b.elfHead))), b.qemu.Vmlinux()
		}
	}
	le := binary.LittleEndian
	phoff := func(h []byte) int { return int(le.Uint64(h[32:])) }
	noteSeg := func(h []byte) (off, size int) {
		for i := 0; i < int(le.Uint16(h[56:])); i++ {
			ph := h[phoff(h)+56*i:]
			if le.Uint32(ph) == 4 { // PT_NOTE
				return int(le.Uint64(ph[8:])), int(le.Uint64(ph[32:]))
			}
		}
		return 0, 0
	}
	corruptBanner := func(flags uint32) func(t *testing.T, b *badInputs, f *kdumpFile) int64 {
		return func(t *testing.T, b *badInputs, f *kdumpFile) int64 {
			pfn := pfnOf(t, b.k, "linux_banner")
			enc := encode(t, f.page(t, pfn), flags)
			for i := len(enc) / 3; i < len(enc)/3+8 && i < len(enc); i++ {
				enc[i] ^= 0x5a
			}
			f.replace(t, pfn, enc, flags)
			return 0
		}
	}
	return []badRow{
		// Files that are not dumps at all.
		{name: "empty file", make: func(t *testing.T, b *badInputs) (string, string) {
			return writeFile(t, b.dir, "empty", nil), b.qemu.Vmlinux()
		}, code: ExitInput, msg: "empty file"},
		{name: "directory", make: func(t *testing.T, b *badInputs) (string, string) {
			p := filepath.Join(b.dir, "adir")
			os.Mkdir(p, 0o755)
			return p, b.qemu.Vmlinux()
		}, code: ExitInput, msg: "a directory, not a regular file"},
		// As root a mode of 000 does not stop a read: a symlink loop fails
		// to open for anyone.
		{name: "unreadable file", make: func(t *testing.T, b *badInputs) (string, string) {
			p := filepath.Join(b.dir, "unreadable")
			if os.Geteuid() == 0 {
				os.Symlink(p, p)
			} else {
				writeFile(t, b.dir, "unreadable", []byte("x"))
				os.Chmod(p, 0)
			}
			return p, b.qemu.Vmlinux()
		}, code: ExitInput, msg: "open "},
		{name: "FIFO", make: func(t *testing.T, b *badInputs) (string, string) {
			p := filepath.Join(b.dir, "fifo")
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Skip("no FIFOs:", err)
			}
			return p, b.qemu.Vmlinux()
		}, code: ExitInput, msg: "a FIFO, not a regular file"},

		// ELF: truncated at each structure, lying counts and sizes.
		{name: "ELF: truncated in the ELF header", make: elf(func(h []byte) []byte { return h[:40] }),
			code: ExitInput, msg: "offset 0x0: ELF header extends beyond end"},
		{name: "ELF: truncated in the program headers", make: elf(func(h []byte) []byte { return h[:phoff(h)+56+20] }),
			code: ExitInput, msg: "program headers extends beyond end"},
		{name: "ELF: truncated in the notes", make: elf(func(h []byte) []byte { off, size := noteSeg(h); return h[:off+size/2] }),
			code: ExitInput, msg: "beyond end"},
		{name: "ELF: phnum lies", make: elf(func(h []byte) []byte { le.PutUint16(h[56:], 0xfff0); return h }),
			code: ExitInput, msg: "program headers extends beyond end"},
		{name: "ELF: a note's size lies", make: elf(func(h []byte) []byte {
			off, _ := noteSeg(h)
			le.PutUint32(h[off+4:], 0x7ffffff0) // n_descsz
			return h
		}), code: ExitInput, msg: "note"},
		{name: "ELF: wrong architecture", make: elf(func(h []byte) []byte { le.PutUint16(h[18:], 183); return h }), // EM_AARCH64
			code: ExitInput, msg: "aarch64"},

		// kdump: truncated at each structure.
		{name: "kdump: truncated in the header", make: kd(prefix(func(f *kdumpFile) int64 { return 300 })),
			code: ExitInput, msg: "kdump header extends"},
		{name: "kdump: truncated in the sub-header", make: kd(prefix(func(f *kdumpFile) int64 { return f.subHdrOff + 50 })),
			code: ExitInput, msg: "offset 0x"},
		{name: "kdump: truncated in the bitmaps", make: kd(prefix(func(f *kdumpFile) int64 { return f.bitmapOff + f.bitmapLen/3 })),
			code: ExitInput, msg: "offset 0x"},
		// Cut in the descriptors, the dump has lost the kernel's own pages:
		// the kernel cannot be located.
		{name: "kdump: truncated in the descriptors", make: kd(prefix(func(f *kdumpFile) int64 { return f.descOff + 1000*descSize + 7 })),
			code: ExitInput, msg: "not in dump (truncated)"},
		// Cut where the page holding nr_cpu_ids begins (the page data is in
		// pfn order: it and the kernel image after it are lost): what needs
		// it cannot start, what does not is partial. Anchored to the symbol,
		// not to a distance from the end, which moves with each kernel build.
		{name: "kdump: truncated in the page data", make: kd(func(t *testing.T, b *badInputs, f *kdumpFile) int64 {
			return int64(len(f.b)) - f.dataOffsetOf(t, b.k, "nr_cpu_ids")
		}),
			code: ExitInput, msg: "not in dump (truncated)", codes: truncatedCodes, msgs: truncatedMsgs},

		// kdump: lying counts and sizes.
		{name: "kdump: max_mapnr lies", make: kd(func(t *testing.T, b *badInputs, f *kdumpFile) int64 {
			le.PutUint64(f.b[f.subHdrOff+subMaxMapnr64At:], 1<<40)
			return 0
		}), code: ExitOK}, // frames past the bitmaps are never looked up: the same results
		{name: "kdump: every descriptor's size lies", make: kd(func(t *testing.T, b *badInputs, f *kdumpFile) int64 {
			for i := int64(0); f.descOff+(i+1)*descSize <= int64(len(f.b)); i++ {
				off, _, flags := f.desc(i)
				if off <= f.descOff || off >= int64(len(f.b)) {
					break
				}
				f.setDesc(i, off, 1<<20, flags)
			}
			return 0
		}), code: ExitInput, msg: "offset 0x"},
		{name: "kdump: a compressed size too small", make: kd(func(t *testing.T, b *badInputs, f *kdumpFile) int64 {
			i := f.descIndex(t, pfnOf(t, b.k, "linux_banner"))
			off, size, flags := f.desc(i)
			f.setDesc(i, off, size/2, flags)
			return 0
		}), code: ExitInput, msg: "zlib"},
		{name: "kdump: a corrupt zlib page", make: kd(corruptBanner(flagZlib)), code: ExitInput, msg: "zlib"},
		{name: "kdump: a corrupt snappy page", make: kd(corruptBanner(flagSnappy)), code: ExitInput, msg: "snappy"},
		{name: "kdump: a corrupt zstd page", make: kd(corruptBanner(flagZstd)), code: ExitInput, msg: "zstd"},
		{name: "kdump: a corrupt lzo page", make: func(t *testing.T, b *badInputs) (string, string) {
			f := loadKdump(t, b.lzo.DumpPath(dumpOf(t, b.lzo, "kdump.lzo")))
			kl := openKernel(t, b.lzo, "kdump.lzo")
			i := f.descIndex(t, pfnOf(t, kl, "linux_banner"))
			off, size, _ := f.desc(i)
			for j := off + int64(size)/3; j < off+int64(size)/3+8; j++ {
				f.b[j] ^= 0x5a
			}
			return f.write(t, b.dir, "bad.lzo", 0), b.lzo.Vmlinux()
		}, code: ExitInput, msg: "lzo"},
		{name: "kdump: incomplete flag, nothing missing", make: kd(func(t *testing.T, b *badInputs, f *kdumpFile) int64 {
			f.b[kdStatusOff] |= kdIncomplete
			return 0
		}), code: ExitOK, msg: "marked incomplete"},
		{name: "kdump: incomplete flag, truncated", make: kd(func(t *testing.T, b *badInputs, f *kdumpFile) int64 {
			f.b[kdStatusOff] |= kdIncomplete
			return int64(len(f.b)) - f.dataOffsetOf(t, b.k, "nr_cpu_ids")
		}), code: ExitInput, msg: "not in dump (truncated)", codes: truncatedCodes, msgs: truncatedMsgs},
		{name: "kdump: wrong architecture", make: kd(func(t *testing.T, b *badInputs, f *kdumpFile) int64 {
			copy(f.b[kdMachineOff:], "aarch64\x00")
			return 0
		}), code: ExitInput, msg: "aarch64"},

		// Flattened streams.
		{name: "flattened: no end record", make: func(t *testing.T, b *badInputs) (string, string) {
			raw := readFixture(t, b.qemu, "qemu1.flat-zlib")
			_, end := flatRecords(t, raw)
			return writeFile(t, b.dir, "bad.flat", raw[:end]), b.qemu.Vmlinux()
		}, code: ExitOK, msg: "marked incomplete"},
		{name: "flattened: a bad end record", make: func(t *testing.T, b *badInputs) (string, string) {
			raw := readFixture(t, b.qemu, "qemu1.flat-zlib")
			_, end := flatRecords(t, raw)
			binary.BigEndian.PutUint64(raw[end+8:], 12345)
			return writeFile(t, b.dir, "bad.flat", raw), b.qemu.Vmlinux()
		}, code: ExitInput, msg: "flattened record"},
		{name: "flattened: an end record in the wrong byte order", make: func(t *testing.T, b *badInputs) (string, string) {
			raw := readFixture(t, b.qemu, "qemu1.flat-zlib")
			starts, end := flatRecords(t, raw)
			// The last data record's header little-endian, as a writer
			// of the wrong byte order would leave it.
			last := starts[len(starts)-1]
			off, n := binary.BigEndian.Uint64(raw[last:]), binary.BigEndian.Uint64(raw[last+8:])
			le.PutUint64(raw[last:], off)
			le.PutUint64(raw[last+8:], n)
			_ = end
			return writeFile(t, b.dir, "bad.flat", raw), b.qemu.Vmlinux()
		}, code: ExitInput, msg: "flattened record"},

		// Kernel structures planted in a copy of the real dump.
		{name: "planted: cyclic slab_caches", make: kd(func(t *testing.T, b *badInputs, f *kdumpFile) int64 {
			head, err := b.k.Symbol("slab_caches")
			if err != nil {
				t.Fatal(err)
			}
			f.patch(t, b.k, cycleAfter(t, b.k, head, 3))
			return 0
		}), code: ExitPartial, msg: "partial", noName: true, codes: withCodes(notSlabs, "objects", ExitOK)},
		{name: "planted: cyclic module list", make: kd(func(t *testing.T, b *badInputs, f *kdumpFile) int64 {
			head, err := b.k.Symbol("modules")
			if err != nil {
				t.Fatal(err)
			}
			f.patch(t, b.k, cycleAfter(t, b.k, head, 2))
			return 0
		}), code: ExitPartial, msg: "partial", noName: true, codes: notModules, msgs: map[string]string{"whatis": "cycle not through the head"}},
		{name: "planted: cyclic freelist", make: kd(func(t *testing.T, b *badInputs, f *kdumpFile) int64 {
			f.patch(t, b.k, freelistCycle(t, b.k))
			return 0
		}), code: ExitPartial, msg: "partial", noName: true, codes: notSlabs},
		{name: "planted: absurd object size in a kmem_cache", make: kd(func(t *testing.T, b *badInputs, f *kdumpFile) int64 {
			f.patch(t, b.k, kmemCacheWord(t, b, "kmalloc-64", "size", 0x7ffffff0))
			return 0
		}), code: ExitPartial, msg: "partial", noName: true, codes: notSlabs},
		{name: "planted: absurd object count in a kmem_cache", make: kd(func(t *testing.T, b *badInputs, f *kdumpFile) int64 {
			f.patch(t, b.k, kmemCacheWord(t, b, "kmalloc-64", "oo", 0x7fff_ffff))
			return 0
		}), code: ExitPartial, msg: "partial", noName: true, codes: notSlabs},

		// Debuginfo that is not the dump's.
		{name: "wrong vmlinux", make: func(t *testing.T, b *badInputs) (string, string) {
			return b.zlib, b.other.Vmlinux()
		}, code: ExitMismatch, msg: "does not match"},
	}
}

// Commands that read no slab cache, and none that read the modules list,
// are unaffected by a corrupt one: their results are whole.
var (
	notSlabs = map[string]int{"info": ExitOK, "meminfo": ExitOK, "whatis": ExitOK, "modules": ExitOK, "check": ExitOK, "dmesg": ExitOK}
	// whatis names a kernel text address whatever the modules list holds,
	// and warns that it could not read the list whole.
	notModules = map[string]int{"info": ExitOK, "slabs": ExitOK, "slabinfo": ExitOK, "meminfo": ExitOK, "objects": ExitOK, "whatis": ExitOK, "dmesg": ExitOK}
	// A dump whose end is gone: info describes the file and warns; meminfo,
	// modules and check read what they need elsewhere and say what is
	// missing; the rest need the lost kernel data.
	truncatedCodes = map[string]int{"info": ExitOK, "meminfo": ExitPartial, "modules": ExitPartial, "check": ExitPartial}
	truncatedMsgs  = map[string]string{"info": "not in dump (truncated)", "meminfo": "partial", "modules": "partial", "check": "partial"}
)

// withCodes is codes with cmd's exit code set.
func withCodes(codes map[string]int, cmd string, code int) map[string]int {
	out := maps.Clone(codes)
	out[cmd] = code
	return out
}

// kmemCacheWord is the word of a cache's kmem_cache field set to v (the
// field's neighbours in its 8 bytes kept).
func kmemCacheWord(t *testing.T, b *badInputs, cache, field string, v uint64) map[uint64]uint64 {
	t.Helper()
	w, err := walk.New(b.k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := w.Census()
	if err != nil {
		t.Fatal(err)
	}
	cs := c.Cache(cache)
	if cs == nil {
		t.Fatalf("no %s", cache)
	}
	at := fieldAddr(t, b.k, "struct kmem_cache", field, cs.Addr)
	old, err := b.k.ReadPtr(at &^ 7)
	if err != nil {
		t.Fatal(err)
	}
	shift := 8 * (at & 7)
	mask := uint64(0xffffffff) << shift
	return map[uint64]uint64{at &^ 7: old&^mask | (v<<shift)&mask}
}

func readFixture(t *testing.T, m *fixture.Manifest, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(m.DumpPath(dumpOf(t, m, file)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func openKernel(t *testing.T, m *fixture.Manifest, file string) *kernel.Kernel {
	t.Helper()
	k, err := kernel.Open(m.DumpPath(dumpOf(t, m, file)), kernel.Options{Vmlinux: m.Vmlinux()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// runLimited runs one command line with a deadline: a hang fails the row
// (the goroutine is left behind, the rest of the table goes on).
func runLimited(t *testing.T, d time.Duration, args []string) (code int, stdout, stderr string, ok bool) {
	type result struct {
		code     int
		out, err string
	}
	done := make(chan result, 1)
	go func() {
		var out, errb bytes.Buffer
		c := run(args, &out, &errb)
		done <- result{c, out.String(), errb.String()}
	}()
	select {
	case r := <-done:
		return r.code, r.out, r.err, true
	case <-time.After(d):
		return 0, "", "", false
	}
}

// TestBadInputs runs every command that reads a dump on every bad input:
// no panic, no hang, the documented exit code, and an error of one line
// naming the file (and the offset or address where the format has one).
// The corrupted-dump test (random bytes overwritten) and elfcore's
// TestBadInputs (each header field) cover the parsers more finely; this
// table is the contract at the command line.
func TestBadInputs(t *testing.T) {
	b := &badInputs{
		qemu:  fixture.Load(t, "bookworm-qemu"),
		lzo:   fixture.Load(t, "bookworm-kdump"),
		other: fixture.Load(t, "trixie-qemu"),
	}
	b.zlib = b.qemu.DumpPath(dumpOf(t, b.qemu, "qemu1.zlib"))
	b.k = openKernel(t, b.qemu, "qemu1.zlib")
	f, err := os.Open(b.qemu.DumpPath(dumpOf(t, b.qemu, "qemu1.elf")))
	if err != nil {
		t.Fatal(err)
	}
	b.elfHead = make([]byte, 1<<20)
	if _, err := io.ReadFull(f, b.elfHead); err != nil {
		t.Fatal(err)
	}
	f.Close()
	only := os.Getenv("VMLEAK_BADINPUT_ROW")
	for _, row := range badRows() {
		if only != "" && !strings.Contains(row.name, only) {
			continue
		}
		t.Run(row.name, func(t *testing.T) {
			b.dir = t.TempDir()
			dump, vmlinux := row.make(t, b)
			var codes, msgsSeen []string
			seen := map[string]bool{}
			defer func() {
				t.Logf("exit codes %s; last lines:\n%s", strings.Join(codes, " "), strings.Join(msgsSeen, "\n"))
			}()
			for _, cmd := range dumpCommands {
				want, msg := row.code, row.msg
				if c, ok := row.codes[cmd]; ok {
					want = c
					if c == ExitOK {
						msg = "" // unaffected: nothing to say
					}
				}
				if m, ok := row.msgs[cmd]; ok {
					msg = m
				}
				// A kernel without allocation profiling is unusable input
				// for allocinfo whatever else holds.
				if cmd == "allocinfo" && (want == ExitOK || want == ExitPartial) {
					want, msg = ExitInput, "no allocation profiling"
				}
				timeout := row.timeout
				if timeout == 0 {
					timeout = 5 * time.Minute
				}
				code, out, errs, ok := runLimited(t, timeout, commandLine(cmd, dump, vmlinux, b.dir))
				if !ok {
					t.Errorf("%s: no answer in %v", cmd, timeout)
					continue
				}
				lines := strings.Split(strings.TrimRight(errs, "\n"), "\n")
				last := lines[len(lines)-1]
				codes = append(codes, fmt.Sprintf("%s=%d", cmd, code))
				if !seen[last] {
					seen[last] = true
					msgsSeen = append(msgsSeen, cmd+": "+last)
				}
				if strings.Contains(errs, "internal error") || strings.Contains(errs, "goroutine ") {
					t.Errorf("%s: a panic:\n%s", cmd, errs)
					continue
				}
				// allocinfo learns the kernel lacks the feature as soon as it
				// has the kernel's symbols, before it reads what is damaged.
				if cmd == "allocinfo" && code == ExitInput && strings.Contains(last, "no allocation profiling") {
					continue
				}
				if code != want {
					t.Errorf("%s: exit %d, want %d:\n%s", cmd, code, want, errs)
					continue
				}
				if want == ExitOK {
					if msg != "" && !strings.Contains(errs, msg) {
						t.Errorf("%s: exit 0 and stderr %q, want a warning saying %q", cmd, errs, msg)
					}
					continue
				}
				if want == ExitPartial && msg == "partial" {
					// The last line sums up; the warnings before it name
					// what was missing or corrupt, by address.
					// (diff, owners, summary and check carry them in their
					// output.)
					if !strings.Contains(errs, "0x") && !strings.Contains(out, "0x") {
						t.Errorf("%s: partial, and nothing names an address:\n%s", cmd, errs)
					}
				}
				if !strings.HasPrefix(last, "vmleak: ") || !strings.Contains(last, msg) {
					t.Errorf("%s: last line %q, want one saying %q", cmd, last, msg)
				}
				if !row.noName && want != ExitPartial && !strings.Contains(last, filepath.Base(dump)) {
					t.Errorf("%s: %q does not name %s", cmd, last, filepath.Base(dump))
				}
			}
		})
	}
}
