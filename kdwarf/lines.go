package kdwarf

import (
	"bytes"
	"cmp"
	"debug/dwarf"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
)

// ErrNoLines means the file has no usable line tables (.debug_line).
var ErrNoLines = errors.New("kdwarf: no line tables")

// Pos is a place in the source, as a line table names it.
type Pos struct {
	// File is the line table's name for the file, joined to its
	// directory: relative to the source tree where the build mapped its
	// paths (Debian's kernels), else as the compiler saw it, less the
	// compile directory (DW_AT_comp_dir) where it starts with it.
	File string
	Line int
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d", p.File, p.Line) }

// Bounds of the line index, against a corrupt file and to cap memory: the
// bytes of the line tables kept at once, and what one unit or
// .debug_aranges may claim.
const (
	maxLineCache    = 64 << 20
	maxUnitRows     = 1 << 24
	maxArangeTuples = 1 << 22
)

// maxScratch bounds the buffers read reuses.
const maxScratch = 4 << 20

// markCost is what one mark holds, in bytes.
const markCost = 40

// markEvery is the spacing of a sequence's marks, in rows: a look-up
// decodes at most this many rows.
const markEvery = 64

// LineAt returns the source position of link-time address pc in a linked
// file (a vmlinux): the last line table row at or below pc in the sequence
// holding it (of several at one address, the last, as binutils keeps it).
// For inlined code that is the innermost function's line: the line table
// knows nothing of the call chain (DW_TAG_inlined_subroutine would, and is
// not read). The error wraps ErrNotFound when no row covers pc or the row
// has line 0 (code of no source line), ErrNoLines when the file has no
// line tables.
//
// Only the compile unit holding pc is read: the unit is found through
// .debug_aranges (units it leaves out, through their DW_AT_ranges), and
// each unit's line program is decoded through once, on first use, keeping
// where its sequences are and the decoder's state every markEvery rows.
func (f *File) LineAt(pc uint64) (Pos, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return Pos{}, ErrClosed
	}
	if f.ef == nil {
		return Pos{}, fmt.Errorf("%w: %w", f.noELF("source lines"), ErrNoLines)
	}
	if f.ef.Type == elf.ET_REL {
		return Pos{}, fmt.Errorf("kdwarf: %s is relocatable: use SectionLineAt", f.path)
	}
	li, err := f.lineIndex()
	if err != nil {
		return Pos{}, err
	}
	return li.at(pc)
}

// SectionLineAt returns the source position at offset off of section sec
// (".text", ".init.text", ...) of a relocatable file (a module's .ko), as
// LineAt does for a linked one.
//
// In a .ko every section starts at 0, so line table addresses alone do not
// tell .text+0x10 from .text.unlikely+0x10. debug/elf's relocation of
// DWARF (elf.File.DWARF) resolves each DW_LNE_set_address to a section
// offset, losing which section it was; here the debug sections are
// relocated as if each allocated section were linked at a base of its own,
// so each line sequence keeps its section. Only x86-64 relocations are
// known (R_X86_64_64, _32, _32S: all that debug sections use).
func (f *File) SectionLineAt(sec string, off uint64) (Pos, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return Pos{}, ErrClosed
	}
	if f.ef == nil {
		return Pos{}, fmt.Errorf("%w: %w", f.noELF("source lines"), ErrNoLines)
	}
	if f.ef.Type != elf.ET_REL {
		return Pos{}, fmt.Errorf("kdwarf: %s is not relocatable: use LineAt", f.path)
	}
	li, err := f.lineIndex()
	if err != nil {
		return Pos{}, err
	}
	base, ok := li.secBase[sec]
	if !ok {
		return Pos{}, fmt.Errorf("kdwarf: %s: no allocated section %s: %w", f.path, sec, ErrNotFound)
	}
	if size := li.secSize[sec]; off >= size {
		return Pos{}, fmt.Errorf("kdwarf: %s: %s+%#x is past the section's %#x bytes: %w", f.path, sec, off, size, ErrNotFound)
	}
	return li.at(base + off)
}

// lineIndex builds the line index once. f.mu is held.
func (f *File) lineIndex() (*lineIndex, error) {
	if f.lines == nil && f.linesErr == nil {
		f.lines, f.linesErr = f.newLineIndex()
		if f.linesErr != nil && !errors.Is(f.linesErr, ErrNoLines) {
			f.linesErr = fmt.Errorf("kdwarf: %s: line tables: %w", f.path, f.linesErr)
		}
	}
	return f.lines, f.linesErr
}

// lineIndex finds a pc's compile unit and reads its line table.
type lineIndex struct {
	secs   *debugSections
	order  binary.ByteOrder
	units  []unitSpan
	ranges []cuRange // sorted by lo

	tables map[int]*lineTable // by index in units
	fifo   []int              // units in tables, oldest first
	cost   uint64             // bytes the tables hold

	// A mapped file: the file, and the file offsets of .debug_info and
	// .debug_line, read through it rather than the mapping (see read).
	file             io.ReaderAt
	infoOff, lineOff uint64
	unitBuf, progBuf []byte // what read reads into, reused

	// A relocatable file: the base each allocated section was relocated
	// to, and its size, by name.
	secBase map[string]uint64
	secSize map[string]uint64
}

// cuRange is a range of addresses of one compile unit.
type cuRange struct {
	lo, hi uint64
	unit   int
}

// lineTable is one unit's line program, read through once: where each
// sequence starts and ends, and the decoder's state every markEvery rows,
// from which a look-up decodes a few rows again instead of keeping them
// all (a 6.1 vmlinux has about four million).
type lineTable struct {
	prog    *lineProg // its header; nil: the unit has no line table
	compDir string
	seqs    []lineSeq // sorted by lo
	cost    uint64    // bytes held: the header and the marks

	// Where the program's opcodes are in .debug_line, read again by a
	// look-up (rowAt) rather than kept.
	progOff, progLen uint64
}

// lineSeq is one sequence of the program, rows of increasing address up
// to its end address hi; marks[k] is the state before row k×markEvery.
type lineSeq struct {
	lo, hi uint64
	marks  []lineMark
}

type lineMark struct {
	addr uint64 // of the row decoded next from st
	st   lineState
}

func (f *File) newLineIndex() (*lineIndex, error) {
	if f.ef.Section(".debug_line") == nil || !f.hasDWARF() {
		return nil, fmt.Errorf("%w in %s", ErrNoLines, f.path)
	}
	li := &lineIndex{tables: map[int]*lineTable{}, order: f.ef.ByteOrder}
	var covered map[int]bool
	switch {
	case f.ef.Type == elf.ET_REL:
		secs, bases, sizes, err := relocatedSections(f.ef)
		if err != nil {
			return nil, err
		}
		li.secs, li.secBase, li.secSize = secs, bases, sizes
	default:
		li.secs = f.mappedDebugSections()
		if li.secs != nil && f.osf != nil {
			li.file = f.osf
			li.infoOff, li.lineOff = f.ef.Section(".debug_info").Offset, f.ef.Section(".debug_line").Offset
		}
		if li.secs == nil {
			// Not mapped, or compressed sections: read (a copy of) them.
			secs, err := readDebugSections(f.ef)
			if err != nil {
				return nil, err
			}
			li.secs = secs
		}
	}
	var units []unitSpan
	var err error
	if li.file != nil {
		// Walking the 2,172 unit headers of a 6.1 vmlinux through the
		// mapping mapped 100 MB of it (see read).
		units, err = parseUnitsAt(li.file, li.infoOff, uint64(len(li.secs.info)), li.order)
	} else {
		units, err = parseUnits(li.secs.info, li.order)
	}
	if err != nil {
		return nil, err
	}
	li.units = units
	if len(li.secs.aranges) > 0 {
		if covered, err = li.aranges(li.secs.aranges); err != nil {
			// A bad .debug_aranges costs speed, not answers.
			li.ranges, covered = nil, nil
		}
	}
	li.unitRanges(covered)
	return li, nil
}

// readDebugSections reads the debug sections of a file (decompressing
// them where needed).
func readDebugSections(ef *elf.File) (*debugSections, error) {
	sec := map[string][]byte{}
	for _, s := range ef.Sections {
		name, ok := strings.CutPrefix(s.Name, ".debug_")
		if !ok || s.Type == elf.SHT_NOBITS {
			continue
		}
		if _, dup := sec[name]; dup {
			continue
		}
		b, err := s.Data()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Name, err)
		}
		sec[name] = b
	}
	return sectionsOf(sec), nil
}

// sectionsOf makes debugSections from section contents by name less
// ".debug_".
func sectionsOf(sec map[string][]byte) *debugSections {
	secs := &debugSections{
		abbrev: sec["abbrev"], info: sec["info"], str: sec["str"],
		line: sec["line"], ranges: sec["ranges"], aranges: sec["aranges"],
		extra: map[string][]byte{},
	}
	for _, name := range []string{"addr", "line_str", "str_offsets", "rnglists", "loclists"} {
		if b := sec[name]; b != nil {
			secs.extra[".debug_"+name] = b
		}
	}
	return secs
}

// aranges reads .debug_aranges into li.ranges and returns the units it
// covers.
func (li *lineIndex) aranges(b []byte) (map[int]bool, error) {
	order := li.order
	covered := map[int]bool{}
	tuples := 0
	for off := 0; off < len(b); {
		rest := b[off:]
		if len(rest) < 4 {
			break
		}
		length, hlen, offSize := uint64(order.Uint32(rest)), 4, 4
		if length == 0xffffffff {
			if len(rest) < 12 {
				return nil, fmt.Errorf(".debug_aranges truncated at %#x", off)
			}
			length, hlen, offSize = order.Uint64(rest[4:]), 12, 8
		}
		if length > uint64(len(rest)-hlen) {
			return nil, fmt.Errorf(".debug_aranges set at %#x overruns the section", off)
		}
		set := rest[:hlen+int(length)]
		next := off + len(set)
		if len(set) < hlen+2+offSize+2 {
			return nil, fmt.Errorf(".debug_aranges set at %#x too short", off)
		}
		p := hlen + 2 // past the version
		var cuOff uint64
		if offSize == 8 {
			cuOff = order.Uint64(set[p:])
		} else {
			cuOff = uint64(order.Uint32(set[p:]))
		}
		p += offSize
		addrSize, segSize := int(set[p]), int(set[p+1])
		p += 2
		if addrSize != 8 && addrSize != 4 || segSize != 0 {
			return nil, fmt.Errorf(".debug_aranges set at %#x: address size %d, segment size %d", off, addrSize, segSize)
		}
		u := sort.Search(len(li.units), func(i int) bool { return li.units[i].hdr >= cuOff })
		if u == len(li.units) || li.units[u].hdr != cuOff {
			return nil, fmt.Errorf(".debug_aranges set at %#x names no unit (%#x)", off, cuOff)
		}
		// Tuples start at a multiple of twice the address size.
		if r := p % (2 * addrSize); r != 0 {
			p += 2*addrSize - r
		}
		for ; p+2*addrSize <= len(set); p += 2 * addrSize {
			var lo, n uint64
			if addrSize == 8 {
				lo, n = order.Uint64(set[p:]), order.Uint64(set[p+8:])
			} else {
				lo, n = uint64(order.Uint32(set[p:])), uint64(order.Uint32(set[p+4:]))
			}
			if lo == 0 && n == 0 {
				break
			}
			if tuples++; tuples > maxArangeTuples {
				return nil, fmt.Errorf(".debug_aranges has more than %d ranges", maxArangeTuples)
			}
			if n > 0 && lo+n > lo {
				li.ranges = append(li.ranges, cuRange{lo, lo + n, u})
			}
		}
		covered[u] = true
		off = next
	}
	return covered, nil
}

// unitRanges adds the DW_AT_low_pc/high_pc or DW_AT_ranges of every unit
// not in covered (decoded by debug/dwarf: range lists have many forms),
// then sorts the ranges. A unit that cannot be read has no lines; the
// others keep theirs.
func (li *lineIndex) unitRanges(covered map[int]bool) {
	for i, u := range li.units {
		if covered[i] {
			continue
		}
		d, err := li.secs.data(li.secs.info[u.hdr:u.end])
		if err != nil {
			continue
		}
		r := d.Reader()
		r.Seek(dwarf.Offset(u.die - u.hdr))
		cu, err := r.Next()
		if err != nil || cu == nil {
			continue
		}
		rs, err := d.Ranges(cu)
		if err != nil {
			continue
		}
		for _, r := range rs {
			if r[1] > r[0] {
				li.ranges = append(li.ranges, cuRange{r[0], r[1], i})
			}
		}
	}
	slices.SortFunc(li.ranges, func(a, b cuRange) int {
		return cmp.Or(cmp.Compare(a.lo, b.lo), cmp.Compare(a.hi, b.hi), cmp.Compare(a.unit, b.unit))
	})
}

// maxOverlap bounds how far back at looks for a unit range holding pc,
// past ranges that start lower but end before it.
const maxOverlap = 8

// at finds the row of pc.
func (li *lineIndex) at(pc uint64) (Pos, error) {
	i := sort.Search(len(li.ranges), func(i int) bool { return li.ranges[i].lo > pc }) - 1
	var firstErr error
	tried := 0
	for j := i; j >= 0 && j > i-maxOverlap; j-- {
		r := li.ranges[j]
		if pc >= r.hi {
			continue
		}
		tried++
		t, err := li.table(r.unit)
		if err == nil && t.prog != nil {
			var p Pos
			var ok bool
			if p, ok, err = li.rowAt(t, pc); ok {
				return p, nil
			}
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return Pos{}, firstErr
	}
	return Pos{}, fmt.Errorf("kdwarf: no line for address %#x (%d units hold it): %w", pc, tried, ErrNotFound)
}

// rowAt is the row of pc in table t, or false. It decodes from the mark
// at or below pc, reading the program from there (a window first, which
// nearly always holds the few rows needed, else the rest of it).
func (li *lineIndex) rowAt(t *lineTable, pc uint64) (Pos, bool, error) {
	i := sort.Search(len(t.seqs), func(i int) bool { return t.seqs[i].lo > pc }) - 1
	for ; i >= 0 && pc >= t.seqs[i].hi; i-- {
		if pc-t.seqs[i].lo > 1<<24 {
			return Pos{}, false, nil // sequences are functions or sections: none starts this far below
		}
	}
	if i < 0 {
		return Pos{}, false, nil
	}
	s := &t.seqs[i]
	k := sort.Search(len(s.marks), func(k int) bool { return s.marks[k].addr > pc }) - 1
	if k < 0 {
		return Pos{}, false, nil
	}
	from := uint64(s.marks[k].st.off)
	for size := uint64(rowWindow); ; size *= 16 {
		n := min(size, t.progLen-from)
		b, err := li.read(li.secs.line, li.lineOff, t.progOff+from, n, &li.progBuf)
		if err != nil {
			return Pos{}, false, err
		}
		view := *t.prog
		view.prog = b
		st := s.marks[k].st
		st.off = 0
		best, ok, err := view.rowFrom(&st, pc)
		if ok || from+n == t.progLen {
			if err != nil || best.end || best.line <= 0 {
				return Pos{}, false, err // line 0: code of no source line
			}
			name := t.prog.path(best.file)
			if name == "" {
				return Pos{}, false, nil
			}
			return Pos{File: shortPath(name, t.compDir), Line: int(best.line)}, true, nil
		}
	}
}

// rowWindow is how much of a program a look-up reads first: 64 rows of
// a vmlinux take 300 bytes on average. A variable for tests.
var rowWindow = 4096

// rowFrom decodes rows from s (the row at or below pc first) to the last
// at or below pc in its sequence. ok is false if the program ended first,
// or an opcode was cut short: the caller reads more.
func (p *lineProg) rowFrom(s *lineState, pc uint64) (best lineRow, ok bool, err error) {
	best, err = p.next(s)
	if err != nil {
		return lineRow{}, false, err
	}
	for !best.end {
		r, err := p.next(s)
		if err != nil {
			return best, false, err
		}
		if r.end || r.addr > pc {
			break
		}
		best = r
	}
	return best, true, nil
}

// table returns unit i's line table, reading it on first use and dropping
// the oldest tables past maxLineMarks.
func (li *lineIndex) table(i int) (*lineTable, error) {
	if t, ok := li.tables[i]; ok {
		return t, nil
	}
	t, err := li.readTable(li.units[i])
	if err != nil {
		return nil, fmt.Errorf("kdwarf: line table of the unit at %#x: %w", li.units[i].hdr, err)
	}
	for li.cost+t.cost > maxLineCache && len(li.fifo) > 0 {
		old := li.fifo[0]
		li.fifo = li.fifo[1:]
		li.cost -= li.tables[old].cost
		delete(li.tables, old)
	}
	li.tables[i] = t
	li.fifo = append(li.fifo, i)
	li.cost += t.cost
	return t, nil
}

// read returns n bytes at off of a debug section: sec's own bytes, or,
// for a mapped file, read from the file at the section's offset base into
// *scratch (grown as needed; the bytes are valid until its next use). The
// few kilobytes a look-up needs of a unit lie far apart, and each page
// fault on the mapping maps the pages around it too: the 404 units of one
// dump's frames mapped 50 MB of a 6.1 vmlinux that way.
func (li *lineIndex) read(sec []byte, base, off, n uint64, scratch *[]byte) ([]byte, error) {
	if off > uint64(len(sec)) || n > uint64(len(sec))-off {
		return nil, fmt.Errorf("%#x bytes at %#x past the section", n, off)
	}
	if li.file == nil {
		return sec[off : off+n : off+n], nil
	}
	var b []byte
	switch {
	case n > maxScratch:
		b = make([]byte, n) // not kept
	case uint64(cap(*scratch)) < n:
		*scratch = make([]byte, n)
		fallthrough
	default:
		b = (*scratch)[:n]
	}
	if _, err := li.file.ReadAt(b, int64(base+off)); err != nil {
		return nil, err
	}
	return b, nil
}

// readTable decodes a unit's line program through, marking it.
func (li *lineIndex) readTable(u unitSpan) (*lineTable, error) {
	unit, err := li.read(li.secs.info, li.infoOff, u.hdr, min(u.end-u.hdr, 512), &li.unitBuf)
	if err != nil {
		return nil, err
	}
	stmt, compDir, ok, err := unitLineAttrs(unit, u, li.secs, li.order)
	if err != nil && uint64(len(unit)) < u.end-u.hdr {
		// A first DIE longer than what was read (inline strings).
		if unit, err = li.read(li.secs.info, li.infoOff, u.hdr, u.end-u.hdr, &li.unitBuf); err == nil {
			stmt, compDir, ok, err = unitLineAttrs(unit, u, li.secs, li.order)
		}
	}
	if err != nil || !ok {
		return &lineTable{}, err
	}
	lineLen := uint64(len(li.secs.line))
	if stmt >= lineLen {
		return nil, fmt.Errorf("DW_AT_stmt_list %#x past .debug_line", stmt)
	}
	head, err := li.read(li.secs.line, li.lineOff, stmt, min(12, lineLen-stmt), &li.progBuf)
	if err != nil {
		return nil, err
	}
	size := lineProgSize(head, li.order)
	if size == 0 || size > lineLen-stmt {
		return nil, fmt.Errorf("line program at %#x overruns .debug_line", stmt)
	}
	b, err := li.read(li.secs.line, li.lineOff, stmt, size, &li.progBuf)
	if err != nil {
		return nil, err
	}
	p, err := readLineProg(b, stmt, li.secs, li.order)
	if err != nil {
		return nil, err
	}
	hdr := len(b) - len(p.prog)
	t := &lineTable{prog: p, compDir: compDir, progOff: stmt + uint64(hdr), progLen: uint64(len(p.prog))}
	var st lineState
	st.reset()
	var cur *lineSeq
	rows := 0
	for n := 0; ; n++ {
		before := st
		r, err := p.next(&st)
		if err == errProgEnd {
			break
		}
		if err != nil {
			return nil, err
		}
		if n > maxUnitRows {
			return nil, fmt.Errorf("more than %d rows", maxUnitRows)
		}
		if r.end {
			if cur != nil && r.addr > cur.lo {
				cur.hi = r.addr
				t.seqs = append(t.seqs, *cur)
				t.cost += uint64(len(cur.marks)) * markCost
			}
			cur = nil
			continue
		}
		if cur == nil {
			cur, rows = &lineSeq{lo: r.addr}, 0
		}
		if rows%markEvery == 0 {
			cur.marks = append(cur.marks, lineMark{r.addr, before})
		}
		rows++
	}
	slices.SortStableFunc(t.seqs, func(a, b lineSeq) int { return cmp.Compare(a.lo, b.lo) })
	// Keep the header (its names), not the program: a copy, so that what
	// read returned can go.
	p.unit, p.prog = bytes.Clone(b[:hdr]), nil
	t.cost += uint64(hdr)
	return t, nil
}

// shortPath is name less the compile directory it starts with.
func shortPath(name, compDir string) string {
	compDir = strings.TrimRight(compDir, "/")
	if compDir != "" {
		if rel, ok := strings.CutPrefix(name, compDir+"/"); ok && rel != "" {
			return rel
		}
	}
	return name
}

// relocatedSections returns the debug sections of a relocatable file with
// their relocations applied as if every allocated section were linked at a
// base of its own (bases and sizes by section name; of several sections of
// one name, the first).
func relocatedSections(ef *elf.File) (*debugSections, map[string]uint64, map[string]uint64, error) {
	if ef.Machine != elf.EM_X86_64 || ef.Class != elf.ELFCLASS64 {
		return nil, nil, nil, fmt.Errorf("relocating the debug sections of %v %v files is not supported", ef.Class, ef.Machine)
	}
	bases := make([]uint64, len(ef.Sections))
	byName, sizes := map[string]uint64{}, map[string]uint64{}
	next := uint64(1 << 20) // above 0, where unrelocated addresses lie
	for i, s := range ef.Sections {
		if s.Flags&elf.SHF_ALLOC == 0 || s.Type == elf.SHT_NULL {
			continue
		}
		align := max(s.Addralign, 16)
		if align&(align-1) != 0 || align > 1<<20 {
			align = 1 << 12
		}
		next = (next + align - 1) &^ (align - 1)
		bases[i] = next
		if _, dup := byName[s.Name]; !dup {
			byName[s.Name], sizes[s.Name] = next, s.Size
		}
		if s.Size > 1<<40 || next > 1<<50 {
			return nil, nil, nil, fmt.Errorf("section %s: size %#x", s.Name, s.Size)
		}
		next += max(s.Size, 1)
	}
	syms, err := ef.Symbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return nil, nil, nil, err
	}
	sec := map[string][]byte{}
	for i, s := range ef.Sections {
		name, ok := strings.CutPrefix(s.Name, ".debug_")
		if !ok || s.Type == elf.SHT_NOBITS {
			continue
		}
		if _, dup := sec[name]; dup {
			continue
		}
		b, err := s.Data() // a copy (decompressed where SHF_COMPRESSED): ours to patch
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", s.Name, err)
		}
		for _, rs := range ef.Sections {
			if rs.Type != elf.SHT_RELA || int(rs.Info) != i {
				continue
			}
			if err := relocateRela(b, rs, ef.ByteOrder, syms, bases); err != nil {
				return nil, nil, nil, fmt.Errorf("%s: %w", rs.Name, err)
			}
		}
		sec[name] = b
	}
	return sectionsOf(sec), byName, sizes, nil
}

// relocateRela applies one SHT_RELA section to b: S + A, with S a symbol's
// value plus its section's base (0 for sections not allocated: debug
// sections refer to each other by offset). Relocations against undefined
// symbols are left alone, as debug/elf does.
func relocateRela(b []byte, rs *elf.Section, order binary.ByteOrder, syms []elf.Symbol, bases []uint64) error {
	if rs.Entsize != 0 && rs.Entsize != 24 {
		return fmt.Errorf("entry size %d", rs.Entsize)
	}
	rel, err := rs.Data()
	if err != nil {
		return err
	}
	for p := 0; p+24 <= len(rel); p += 24 {
		off := order.Uint64(rel[p:])
		info := order.Uint64(rel[p+8:])
		addend := order.Uint64(rel[p+16:])
		symNo, typ := info>>32, elf.R_X86_64(info&0xffffffff)
		if symNo == 0 || symNo > uint64(len(syms)) {
			continue
		}
		sym := syms[symNo-1]
		if sym.Section == elf.SHN_UNDEF || sym.Section >= elf.SHN_LORESERVE || int(sym.Section) >= len(bases) {
			continue
		}
		v := bases[sym.Section] + sym.Value + addend
		size := 0
		switch typ {
		case elf.R_X86_64_64:
			size = 8
		case elf.R_X86_64_32, elf.R_X86_64_32S:
			size = 4
		default:
			continue
		}
		if off > uint64(len(b)) || uint64(len(b))-off < uint64(size) {
			return fmt.Errorf("relocation at %#x past the section", off)
		}
		if size == 8 {
			order.PutUint64(b[off:], v)
		} else {
			order.PutUint32(b[off:], uint32(v))
		}
	}
	return nil
}
