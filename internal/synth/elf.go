package synth

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ELF64 constants (the System V gABI and its x86_64 supplement), written
// field by field: the standard library reads ELF but does not write it.
const (
	etExec       = 2
	etCore       = 4
	emX86_64     = 62
	ptLoad       = 1
	ptNote       = 4
	shtProgbits  = 1
	shtSymtab    = 2
	shtStrtab    = 3
	shtNote      = 7
	shtNobits    = 8
	shfWrite     = 0x1
	shfAlloc     = 0x2
	shfExec      = 0x4
	sttNotype    = 0
	sttObject    = 1
	sttFunc      = 2
	stbLocal     = 0
	stbGlobal    = 1
	ehdrSize     = 64
	phdrSize     = 56
	shdrSize     = 64
	symSize      = 24
	ntGNUBuildID = 3
)

// Files are the two files of a synthetic kernel.
type Files struct {
	Vmlinux string // ELF with .BTF and .symtab
	Vmcore  string // ELF core with VMCOREINFO
}

// Write finishes the kernel and writes vmlinux and vmcore into dir. It
// reports the first misuse of the builder instead, if there was one.
func (k *Kernel) Write(dir string) (Files, error) {
	k.finish()
	if k.err != nil {
		return Files{}, k.err
	}
	btfRaw, err := k.ts.marshal()
	if err != nil {
		return Files{}, err
	}
	fs := Files{Vmlinux: filepath.Join(dir, "vmlinux-"+k.Release()), Vmcore: filepath.Join(dir, "vmcore")}
	if err := k.writeVmlinux(fs.Vmlinux, btfRaw); err != nil {
		return Files{}, err
	}
	for _, t := range k.tamper {
		k.put(t.va, t.b)
	}
	if err := k.writeVmcore(fs.Vmcore); err != nil {
		return Files{}, err
	}
	return fs, nil
}

// physRanges is the memory the machine has, in page frames [start, end):
// RAM with the memory map, and the kernel image.
func (k *Kernel) physRanges() [][2]uint64 {
	return [][2]uint64{
		{0, (vmemmapPA + vmemmapSize) / PageSize},
		{imagePA / PageSize, (imagePA + imageEnd - textVA) / PageSize},
	}
}

// NodeSpan is node 0's node_start_pfn and node_spanned_pages: all of the
// machine's memory, image included.
func (k *Kernel) NodeSpan() (start, pages uint64) {
	rs := k.physRanges()
	return rs[0][0], rs[len(rs)-1][1]
}

func (k *Kernel) finish() {
	if k.cfg.AllocProfiling && !k.allocDone {
		k.AddAllocTags(&AllocTags{}) // a kernel with no tags still has the code tag type
	}
	var present uint64
	rs := k.physRanges()
	for _, r := range rs {
		present += r[1] - r[0]
	}
	pg := func(path string, v uint64) { k.set(k.pgdat, "struct pglist_data", path, v) }
	pg("nr_zones", 3)
	start, spanned := k.NodeSpan()
	pg("node_start_pfn", start)
	pg("node_present_pages", present)
	pg("node_spanned_pages", spanned)
	pg("node_id", 0)
}

func (k *Kernel) vmcoreinfo() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	v := k.cfg.Version
	p("OSRELEASE=%s", k.Release())
	p("BUILD-ID=%s", hex.EncodeToString(k.buildID))
	p("PAGESIZE=%d", PageSize)
	p("SYMBOL(mem_section)=%x", k.memSection)
	msSize, _ := k.ts.sizeAlign(k.ts.lookup("struct mem_section"))
	p("LENGTH(mem_section)=%d", uint64(1<<(46-sectionBits))/(PageSize/uint64(msSize)))
	p("SIZE(mem_section)=%d", msSize)
	p("OFFSET(mem_section.section_mem_map)=0")
	if v >= V6_1 {
		p("NUMBER(SECTION_SIZE_BITS)=%d", sectionBits) // 4f5aecdff25f (v5.13)
	}
	p("NUMBER(MAX_PHYSMEM_BITS)=46")
	p("SIZE(page)=%d", StructPageSize)
	p("OFFSET(page.flags)=%d", k.Offset("struct page", "flags"))
	p("OFFSET(page._mapcount)=%d", k.Offset("struct page", "_mapcount"))
	p("OFFSET(page.compound_head)=%d", k.Offset("struct page", "compound_head"))
	if k.pt.slabFlag >= 0 {
		p("NUMBER(PG_slab)=%d", k.pt.slabFlag)
	}
	p("NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=%d", int32(^k.pt.buddyType)) // ~PG_buddy
	for _, s := range k.syms {
		if s.name == "init_top_pgt" {
			p("SYMBOL(init_top_pgt)=%x", s.value)
		}
	}
	p("NUMBER(pgtable_l5_enabled)=0")
	p("NUMBER(phys_base)=%d", physBase)
	p("KERNELOFFSET=0")
	return b.String()
}

func note(name string, typ uint32, desc []byte) []byte {
	var b bytes.Buffer
	var h [12]byte
	le.PutUint32(h[0:], uint32(len(name)+1))
	le.PutUint32(h[4:], uint32(len(desc)))
	le.PutUint32(h[8:], typ)
	b.Write(h[:])
	b.WriteString(name)
	b.WriteByte(0)
	for b.Len()%4 != 0 {
		b.WriteByte(0)
	}
	b.Write(desc)
	for b.Len()%4 != 0 {
		b.WriteByte(0)
	}
	return b.Bytes()
}

// sparseFile collects writes at offsets; pages of zeros are left as holes.
type sparseFile struct {
	f    *os.File
	size int64
	err  error
}

func (s *sparseFile) writeAt(b []byte, off int64) {
	s.size = max(s.size, off+int64(len(b)))
	if s.err != nil || len(bytes.TrimLeft(b, "\x00")) == 0 {
		return
	}
	_, s.err = s.f.WriteAt(b, off)
}

func createSparse(path string, fill func(*sparseFile)) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	s := &sparseFile{f: f}
	fill(s)
	if s.err == nil {
		s.err = f.Truncate(s.size)
	}
	if err := f.Close(); s.err == nil {
		s.err = err
	}
	if s.err != nil {
		return fmt.Errorf("synth: writing %s: %w", path, s.err)
	}
	return nil
}

func ehdr(typ uint16, phoff, phnum, shoff, shnum, shstrndx uint64) []byte {
	h := make([]byte, ehdrSize)
	copy(h, "\x7fELF")
	h[4], h[5], h[6] = 2, 1, 1 // ELFCLASS64, ELFDATA2LSB, EV_CURRENT
	le.PutUint16(h[16:], typ)
	le.PutUint16(h[18:], emX86_64)
	le.PutUint32(h[20:], 1)
	le.PutUint64(h[32:], phoff)
	le.PutUint64(h[40:], shoff)
	le.PutUint16(h[52:], ehdrSize)
	le.PutUint16(h[54:], phdrSize)
	le.PutUint16(h[56:], uint16(phnum))
	le.PutUint16(h[58:], shdrSize)
	le.PutUint16(h[60:], uint16(shnum))
	le.PutUint16(h[62:], uint16(shstrndx))
	return h
}

type strtab struct{ b bytes.Buffer }

func (t *strtab) add(s string) uint32 {
	if t.b.Len() == 0 {
		t.b.WriteByte(0)
	}
	if s == "" {
		return 0
	}
	off := uint32(t.b.Len())
	t.b.WriteString(s)
	t.b.WriteByte(0)
	return off
}

// writeVmlinux writes the image sections, the build-id note, .BTF and the
// symbol table. .text and .rodata hold what memory holds (linux_banner is
// compared with the dump's); .data is left zero, as a vmlinux has only the
// initial values.
func (k *Kernel) writeVmlinux(path string, btfRaw []byte) error {
	type shdr struct {
		name                 string
		typ                  uint32
		flags, addr, off, sz uint64
		link, info           uint32
		align, entsize       uint64
		data                 []byte
	}
	var shs []shdr
	for _, s := range k.secs {
		size := roundUp(s.size, PageSize)
		var data []byte
		if !s.nobits {
			data = make([]byte, size)
			if s.name != ".data" {
				k.get(s.addr, data)
			}
		}
		shs = append(shs, shdr{name: s.name, typ: s.typ, flags: s.flags, addr: s.addr, sz: size, align: PageSize, data: data})
	}
	shs = append(shs, shdr{name: ".notes", typ: shtNote, align: 4, data: note("GNU", ntGNUBuildID, k.buildID)})
	shs = append(shs, shdr{name: ".BTF", typ: shtProgbits, align: 4, data: btfRaw})

	var names strtab
	syms := make([]byte, symSize) // the null symbol
	sorted := slices.Clone(k.syms)
	slices.SortStableFunc(sorted, func(a, b symbol) int {
		switch {
		case a.local == b.local:
			return 0
		case a.local:
			return -1
		}
		return 1
	})
	firstGlobal := uint32(1)
	for _, s := range sorted {
		e := make([]byte, symSize)
		le.PutUint32(e[0:], names.add(s.name))
		bind := uint8(stbGlobal)
		if s.local {
			bind = stbLocal
			firstGlobal++
		}
		e[4] = bind<<4 | s.typ
		le.PutUint16(e[6:], uint16(1+s.sec))
		le.PutUint64(e[8:], s.value)
		le.PutUint64(e[16:], s.size)
		syms = append(syms, e...)
	}
	symtabIdx := uint32(len(shs) + 1)
	shs = append(shs, shdr{name: ".symtab", typ: shtSymtab, link: symtabIdx + 1, info: firstGlobal, align: 8, entsize: symSize, data: syms})
	shs = append(shs, shdr{name: ".strtab", typ: shtStrtab, align: 1, data: names.b.Bytes()})
	var shstr strtab
	nameOff := make([]uint32, len(shs)+1)
	shstr.add("")
	for i := range shs {
		nameOff[i] = shstr.add(shs[i].name)
	}
	nameOff[len(shs)] = shstr.add(".shstrtab")
	shs = append(shs, shdr{name: ".shstrtab", typ: shtStrtab, align: 1})
	shs[len(shs)-1].data = shstr.b.Bytes()

	off := uint64(ehdrSize)
	for i := range shs {
		s := &shs[i]
		off = roundUp(off, max(s.align, 1))
		s.off = off
		if s.typ != shtNobits {
			if s.sz == 0 {
				s.sz = uint64(len(s.data))
			}
			off += s.sz
		}
	}
	shoff := roundUp(off, 8)
	return createSparse(path, func(f *sparseFile) {
		f.writeAt(ehdr(etExec, 0, 0, shoff, uint64(len(shs)+1), uint64(len(shs))), 0)
		table := make([]byte, shdrSize) // SHN_UNDEF
		for i, s := range shs {
			h := make([]byte, shdrSize)
			le.PutUint32(h[0:], nameOff[i])
			le.PutUint32(h[4:], s.typ)
			le.PutUint64(h[8:], s.flags)
			le.PutUint64(h[16:], s.addr)
			le.PutUint64(h[24:], s.off)
			le.PutUint64(h[32:], s.sz)
			le.PutUint32(h[40:], s.link)
			le.PutUint32(h[44:], s.info)
			le.PutUint64(h[48:], s.align)
			le.PutUint64(h[56:], s.entsize)
			table = append(table, h...)
			if s.data != nil {
				f.writeAt(s.data, int64(s.off))
			}
		}
		f.writeAt(table, int64(shoff))
	})
}

// writeVmcore writes an ELF core as kdump's /proc/vmcore does: a PT_NOTE
// with VMCOREINFO, and one PT_LOAD per run of memory in the dump.
func (k *Kernel) writeVmcore(path string) error {
	type load struct{ start, end uint64 } // page frames
	var loads []load
	for _, r := range k.physRanges() {
		for pfn := r[0]; pfn < r[1]; pfn++ {
			if k.drop[pfn] {
				continue
			}
			if n := len(loads); n > 0 && loads[n-1].end == pfn {
				loads[n-1].end++
			} else {
				loads = append(loads, load{pfn, pfn + 1})
			}
		}
	}
	notes := note("VMCOREINFO", 0, []byte(k.vmcoreinfo()))
	phnum := uint64(1 + len(loads))
	noteOff := uint64(ehdrSize) + phnum*phdrSize
	dataOff := roundUp(noteOff+uint64(len(notes)), PageSize)
	return createSparse(path, func(f *sparseFile) {
		f.writeAt(ehdr(etCore, ehdrSize, phnum, 0, 0, 0), 0)
		ph := func(i int, typ uint32, off, vaddr, paddr, size uint64) {
			h := make([]byte, phdrSize)
			le.PutUint32(h[0:], typ)
			le.PutUint32(h[4:], 7) // PF_R|PF_W|PF_X
			le.PutUint64(h[8:], off)
			le.PutUint64(h[16:], vaddr)
			le.PutUint64(h[24:], paddr)
			le.PutUint64(h[32:], size)
			le.PutUint64(h[40:], size)
			f.writeAt(h, int64(ehdrSize+i*phdrSize))
		}
		ph(0, ptNote, noteOff, 0, 0, uint64(len(notes)))
		f.writeAt(notes, int64(noteOff))
		off := dataOff
		for i, l := range loads {
			pa := l.start * PageSize
			size := (l.end - l.start) * PageSize
			ph(i+1, ptLoad, off, PageOffset+pa, pa, size)
			for pfn := l.start; pfn < l.end; pfn++ {
				if p := k.mem[pfn]; p != nil {
					f.writeAt(p[:], int64(off+(pfn-l.start)*PageSize))
				}
			}
			off += size
		}
		f.size = max(f.size, int64(off))
	})
}
