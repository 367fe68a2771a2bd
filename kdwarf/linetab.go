package kdwarf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
)

// The line program reader. debug/dwarf's LineReader answers the same
// questions, but through it a look-up costs a dwarf.Data per unit, whose
// abbreviation table it parses whole, and a header whose every file name
// it joins and cleans: the 1,369 distinct frames of one 6.1 dump (404
// units) took 0.4-0.6 s on a busy 2-core machine, a third of it parsing
// abbreviations, a fifth joining paths, an eighth reading rows. This
// reader decodes only the unit's first DIE, keeps the header's names
// where they lie and makes a string of the one a look-up returns; the
// same frames then take about 0.1 s.

// cursor reads DWARF data with a sticky error: the first failure is kept,
// every later read returns zero, and the decoder checks once.
type cursor struct {
	b     []byte
	off   int
	order binary.ByteOrder
	err   error
}

func (c *cursor) fail(what string) {
	if c.err == nil {
		c.err = fmt.Errorf("%s at %#x", what, c.off)
	}
	c.off = len(c.b)
}

func (c *cursor) take(n int) []byte {
	if c.err != nil {
		return nil
	}
	if n < 0 || n > len(c.b)-c.off {
		c.fail("truncated")
		return nil
	}
	v := c.b[c.off : c.off+n]
	c.off += n
	return v
}

func (c *cursor) u8() uint8 {
	if c.err != nil || c.off >= len(c.b) {
		c.fail("truncated")
		return 0
	}
	v := c.b[c.off]
	c.off++
	return v
}

// uN reads an n-byte unsigned integer, n in 1..8.
func (c *cursor) uN(n int) uint64 {
	b := c.take(n)
	if b == nil {
		return 0
	}
	switch n {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(c.order.Uint16(b))
	case 4:
		return uint64(c.order.Uint32(b))
	case 8:
		return c.order.Uint64(b)
	}
	var v uint64
	for i := range n {
		if c.order == binary.BigEndian {
			v = v<<8 | uint64(b[i])
		} else {
			v |= uint64(b[i]) << (8 * i)
		}
	}
	return v
}

func (c *cursor) uleb() uint64 {
	var v uint64
	for shift := 0; ; shift += 7 {
		if c.err != nil || c.off >= len(c.b) {
			c.fail("truncated LEB128")
			return 0
		}
		b := c.b[c.off]
		c.off++
		if shift < 64 {
			v |= uint64(b&0x7f) << shift
		}
		if b&0x80 == 0 {
			return v
		}
	}
}

func (c *cursor) sleb() int64 {
	var v int64
	shift := 0
	for {
		if c.err != nil || c.off >= len(c.b) {
			c.fail("truncated LEB128")
			return 0
		}
		b := c.b[c.off]
		c.off++
		if shift < 64 {
			v |= int64(b&0x7f) << shift
		}
		shift += 7
		if b&0x80 == 0 {
			if shift < 64 && b&0x40 != 0 {
				v |= -1 << shift
			}
			return v
		}
	}
}

// cstr reads a NUL-terminated string.
func (c *cursor) cstr() string {
	if c.err != nil {
		return ""
	}
	i := bytes.IndexByte(c.b[c.off:], 0)
	if i < 0 {
		c.fail("unterminated string")
		return ""
	}
	s := string(c.b[c.off : c.off+i])
	c.off += i + 1
	return s
}

// strAt is the NUL-terminated string at off of a string section, or "".
func strAt(sec []byte, off uint64) string {
	if off >= uint64(len(sec)) {
		return ""
	}
	b := sec[off:]
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return string(b[:i])
	}
	return ""
}

// DWARF constants this reader uses (DWARF 5 §7).
const (
	atStmtList = 0x10
	atCompDir  = 0x1b

	formAddr          = 0x01
	formBlock2        = 0x03
	formBlock4        = 0x04
	formData2         = 0x05
	formData4         = 0x06
	formData8         = 0x07
	formString        = 0x08
	formBlock         = 0x09
	formBlock1        = 0x0a
	formData1         = 0x0b
	formFlag          = 0x0c
	formSdata         = 0x0d
	formStrp          = 0x0e
	formUdata         = 0x0f
	formRefAddr       = 0x10
	formRef1          = 0x11
	formRef2          = 0x12
	formRef4          = 0x13
	formRef8          = 0x14
	formRefUdata      = 0x15
	formIndirect      = 0x16
	formSecOffset     = 0x17
	formExprloc       = 0x18
	formFlagPresent   = 0x19
	formStrx          = 0x1a
	formAddrx         = 0x1b
	formRefSup4       = 0x1c
	formStrpSup       = 0x1d
	formData16        = 0x1e
	formLineStrp      = 0x1f
	formRefSig8       = 0x20
	formImplicitConst = 0x21
	formLoclistx      = 0x22
	formRnglistx      = 0x23
	formRefSup8       = 0x24
	formStrx1         = 0x25
	formStrx2         = 0x26
	formStrx3         = 0x27
	formStrx4         = 0x28
	formAddrx1        = 0x29
	formAddrx2        = 0x2a
	formAddrx3        = 0x2b
	formAddrx4        = 0x2c
	formGNUAddrIndex  = 0x1f01
	formGNUStrIndex   = 0x1f02
	formGNURefAlt     = 0x1f20
	formGNUStrpAlt    = 0x1f21

	lnctPath     = 1
	lnctDirIndex = 2
)

// unitHeader is what the line reader needs of a unit header.
type unitHeader struct {
	version  int
	dwarf64  bool
	addrSize int
	abbrev   uint64
}

// readUnitHeader reads the header of the unit whose bytes start unit.
func readUnitHeader(unit []byte, u unitSpan, order binary.ByteOrder) (unitHeader, error) {
	if u.die-u.hdr > uint64(len(unit)) {
		return unitHeader{}, fmt.Errorf("unit at %#x: truncated header", u.hdr)
	}
	c := &cursor{b: unit[:u.die-u.hdr], order: order}
	var h unitHeader
	if c.uN(4) == 0xffffffff {
		h.dwarf64 = true
		c.uN(8)
	}
	offSize := 4
	if h.dwarf64 {
		offSize = 8
	}
	h.version = int(c.uN(2))
	if h.version >= 5 {
		c.u8() // unit_type
		h.addrSize = int(c.u8())
		h.abbrev = c.uN(offSize)
	} else {
		h.abbrev = c.uN(offSize)
		h.addrSize = int(c.u8())
	}
	return h, c.err
}

// unitLineAttrs reads DW_AT_stmt_list and DW_AT_comp_dir from the first
// DIE of unit u, decoding that DIE alone, from unit: the unit's bytes, or
// the first of them (a DIE past its end is an error, naming the offset).
// ok is false when the unit has no line table.
func unitLineAttrs(unit []byte, u unitSpan, secs *debugSections, order binary.ByteOrder) (stmt uint64, compDir string, ok bool, err error) {
	h, err := readUnitHeader(unit, u, order)
	if err != nil {
		return 0, "", false, err
	}
	if h.abbrev >= uint64(len(secs.abbrev)) {
		return 0, "", false, fmt.Errorf("abbreviation offset %#x past .debug_abbrev", h.abbrev)
	}
	die := &cursor{b: unit[u.die-u.hdr:], order: order}
	code := die.uleb()
	if die.err != nil || code == 0 {
		return 0, "", false, die.err
	}
	// The unit's abbreviation table, to the entry of the DIE's code.
	ab := &cursor{b: secs.abbrev[h.abbrev:], order: order}
	type spec struct {
		attr, form uint64
	}
	var specs []spec
	for {
		c := ab.uleb()
		if ab.err != nil || c == 0 {
			return 0, "", false, fmt.Errorf("abbreviation %d not found: %v", code, ab.err)
		}
		ab.uleb() // tag
		ab.u8()   // children
		match := c == code
		for {
			attr, form := ab.uleb(), ab.uleb()
			if ab.err != nil {
				return 0, "", false, ab.err
			}
			if attr == 0 && form == 0 {
				break
			}
			if form == formImplicitConst {
				ab.sleb()
			}
			if match {
				specs = append(specs, spec{attr, form})
			}
		}
		if match {
			break
		}
	}
	offSize := 4
	if h.dwarf64 {
		offSize = 8
	}
	lineStr := secs.extra[".debug_line_str"]
	for _, s := range specs {
		form := s.form
		for form == formIndirect {
			form = die.uleb()
		}
		var v uint64
		var str string
		switch form {
		case formAddr:
			v = die.uN(h.addrSize)
		case formData1, formRef1, formFlag, formStrx1, formAddrx1:
			v = die.uN(1)
		case formData2, formRef2, formStrx2, formAddrx2:
			v = die.uN(2)
		case formStrx3, formAddrx3:
			v = die.uN(3)
		case formData4, formRef4, formRefSup4, formStrx4, formAddrx4:
			v = die.uN(4)
		case formData8, formRef8, formRefSig8, formRefSup8:
			v = die.uN(8)
		case formData16:
			die.take(16)
		case formSdata:
			die.sleb()
		case formUdata, formRefUdata, formStrx, formAddrx, formLoclistx, formRnglistx, formGNUAddrIndex, formGNUStrIndex:
			v = die.uleb()
		case formString:
			str = die.cstr()
		case formStrp:
			str = strAt(secs.str, die.uN(offSize))
		case formLineStrp:
			str = strAt(lineStr, die.uN(offSize))
		case formSecOffset, formStrpSup, formGNURefAlt, formGNUStrpAlt:
			v = die.uN(offSize)
		case formRefAddr:
			if h.version <= 2 {
				die.uN(h.addrSize)
			} else {
				die.uN(offSize)
			}
		case formBlock1:
			die.take(int(die.uN(1)))
		case formBlock2:
			die.take(int(die.uN(2)))
		case formBlock4:
			die.take(int(die.uN(4)))
		case formBlock, formExprloc:
			die.take(int(die.uleb()))
		case formFlagPresent, formImplicitConst:
		default:
			return 0, "", false, fmt.Errorf("unit at %#x: unknown form %#x", u.hdr, form)
		}
		if die.err != nil {
			return 0, "", false, fmt.Errorf("unit at %#x: %w", u.hdr, die.err)
		}
		switch s.attr {
		case atStmtList:
			switch form {
			case formSecOffset, formData4, formData8:
				stmt, ok = v, true
			}
		case atCompDir:
			compDir = str // "" for forms that need more than this DIE (strx)
		}
	}
	return stmt, compDir, ok, nil
}

// lineProg is one line number program: its header and its opcodes.
type lineProg struct {
	order     binary.ByteOrder
	version   int
	minInst   uint64
	lineBase  int64
	lineRange uint64
	opBase    int
	stdLens   []byte
	dirs      []lineName
	files     []lineFile // by the file register's value
	prog      []byte
	unit      []byte // the whole program, header included
	secs      *debugSections

	// What each special opcode adds to the address (in units of minInst)
	// and to the line: the divisions it implies, done once.
	specAddr [256]uint8
	specLine [256]int16
}

type lineFile struct {
	dir  uint64
	name lineName
}

// lineName is a name in a program's header, turned into a string only when
// a look-up returns it (a unit names hundreds of files; a look-up, one):
// in which section it lies and where.
type lineName struct {
	sec uint8 // 0: none, or one of:
	off uint64
}

// Sections a lineName is in.
const (
	inHeader  = 1 // the header itself (DW_FORM_string)
	inLineStr = 2 // .debug_line_str
	inStr     = 3 // .debug_str
)

// name returns n as a string, or "".
func (p *lineProg) name(n lineName) string {
	switch n.sec {
	case inHeader:
		return strAt(p.unit, n.off)
	case inLineStr:
		return strAt(p.secs.extra[".debug_line_str"], n.off)
	case inStr:
		return strAt(p.secs.str, n.off)
	}
	return ""
}

// skipStr skips a NUL-terminated string, returning where it starts as a
// lineName, or none if it is empty.
func skipStr(c *cursor) lineName {
	if c.err != nil {
		return lineName{}
	}
	i := bytes.IndexByte(c.b[c.off:], 0)
	if i < 0 {
		c.fail("unterminated string")
		return lineName{}
	}
	n := lineName{inHeader, uint64(c.off)}
	c.off += i + 1
	if i == 0 {
		return lineName{}
	}
	return n
}

// lineProgSize is the length of the line program whose first bytes
// (at least 12) are b, unit length included.
func lineProgSize(b []byte, order binary.ByteOrder) uint64 {
	if len(b) < 4 {
		return 0
	}
	if n := order.Uint32(b); n != 0xffffffff {
		return 4 + uint64(n)
	}
	if len(b) < 12 {
		return 0
	}
	return 12 + order.Uint64(b[4:])
}

// readLineProg reads the line program in b, which begins with it (at
// offset off of .debug_line).
func readLineProg(b []byte, off uint64, secs *debugSections, order binary.ByteOrder) (*lineProg, error) {
	c := &cursor{b: b, order: order}
	offSize := 4
	length := c.uN(4)
	if length == 0xffffffff {
		offSize = 8
		length = c.uN(8)
	}
	if c.err != nil || length > uint64(len(c.b)-c.off) {
		return nil, fmt.Errorf("line program at %#x overruns .debug_line", off)
	}
	c.b = c.b[:c.off+int(length)]
	p := &lineProg{order: order, unit: b, secs: secs}
	p.version = int(c.uN(2))
	if p.version < 2 || p.version > 5 {
		return nil, fmt.Errorf("line program at %#x: version %d", off, p.version)
	}
	if p.version >= 5 {
		c.u8() // address_size: DW_LNE_set_address says its own
		c.u8() // segment_selector_size
	}
	hlen := c.uN(offSize)
	if c.err != nil || hlen > uint64(len(c.b)-c.off) {
		return nil, fmt.Errorf("line program at %#x: header overruns it", off)
	}
	progStart := c.off + int(hlen)
	p.minInst = uint64(c.u8())
	if p.version >= 4 {
		c.u8() // maximum_operations_per_instruction: VLIW only; taken as 1
	}
	c.u8() // default_is_stmt
	p.lineBase = int64(int8(c.u8()))
	p.lineRange = uint64(c.u8())
	p.opBase = int(c.u8())
	if p.lineRange == 0 || p.opBase == 0 {
		return nil, fmt.Errorf("line program at %#x: line_range %d, opcode_base %d", off, p.lineRange, p.opBase)
	}
	p.stdLens = c.take(p.opBase - 1)
	for op := p.opBase; op < 256; op++ {
		adj := uint64(op - p.opBase)
		p.specAddr[op] = uint8(adj / p.lineRange)
		p.specLine[op] = int16(p.lineBase + int64(adj%p.lineRange))
	}
	if p.version >= 5 {
		dirs, err := p.entries(c, offSize)
		if err != nil {
			return nil, fmt.Errorf("line program at %#x: directories: %w", off, err)
		}
		for _, d := range dirs {
			p.dirs = append(p.dirs, d.name)
		}
		if p.files, err = p.entries(c, offSize); err != nil {
			return nil, fmt.Errorf("line program at %#x: files: %w", off, err)
		}
	} else {
		p.dirs = []lineName{{}} // the compile directory: names stay relative to it
		for {
			d := skipStr(c)
			if d.sec == 0 || c.err != nil {
				break
			}
			p.dirs = append(p.dirs, d)
		}
		p.files = []lineFile{{}} // file numbers count from 1
		for {
			name := skipStr(c)
			if name.sec == 0 || c.err != nil {
				break
			}
			dir := c.uleb()
			c.uleb() // mtime
			c.uleb() // length
			p.files = append(p.files, lineFile{dir, name})
		}
	}
	if c.err != nil {
		return nil, fmt.Errorf("line program at %#x: header: %w", off, c.err)
	}
	p.prog = c.b[progStart:]
	return p, nil
}

// entries reads a DWARF 5 directory or file name table: the entry
// formats, then the entries, keeping the path and directory index.
func (p *lineProg) entries(c *cursor, offSize int) ([]lineFile, error) {
	type format struct{ lnct, form uint64 }
	nf := int(c.u8())
	fs := make([]format, 0, nf)
	for range nf {
		fs = append(fs, format{c.uleb(), c.uleb()})
	}
	n := c.uleb()
	if c.err != nil {
		return nil, c.err
	}
	if n > uint64(len(c.b)-c.off) {
		return nil, fmt.Errorf("%d entries in %d bytes", n, len(c.b)-c.off)
	}
	out := make([]lineFile, 0, n)
	for range n {
		var e lineFile
		for _, f := range fs {
			var v uint64
			var s lineName
			switch f.form {
			case formString:
				s = skipStr(c)
			case formLineStrp:
				s = lineName{inLineStr, c.uN(offSize)}
			case formStrp:
				s = lineName{inStr, c.uN(offSize)}
			case formStrpSup, formGNUStrpAlt, formSecOffset:
				c.uN(offSize)
			case formUdata:
				v = c.uleb()
			case formData1, formStrx1:
				v = c.uN(1)
			case formData2, formStrx2:
				v = c.uN(2)
			case formStrx3:
				v = c.uN(3)
			case formData4, formStrx4:
				v = c.uN(4)
			case formData8:
				v = c.uN(8)
			case formData16:
				c.take(16)
			case formStrx:
				c.uleb()
			case formBlock:
				c.take(int(c.uleb()))
			default:
				return nil, fmt.Errorf("unknown form %#x", f.form)
			}
			switch f.lnct {
			case lnctPath:
				e.name = s // none where the form needs the unit's string offsets (strx)
			case lnctDirIndex:
				e.dir = v
			}
		}
		if c.err != nil {
			return nil, c.err
		}
		out = append(out, e)
	}
	return out, nil
}

// path is the name of file i as the table gives it: joined to its
// directory unless absolute; "" if unknown.
func (p *lineProg) path(i uint64) string {
	if i >= uint64(len(p.files)) {
		return "" // beyond the header (DW_LNE_define_file, never emitted by gcc or clang)
	}
	f := p.files[i]
	name := p.name(f.name)
	if name == "" || strings.HasPrefix(name, "/") || f.dir >= uint64(len(p.dirs)) {
		return name
	}
	dir := p.name(p.dirs[f.dir])
	if dir == "" {
		return name
	}
	return strings.TrimSuffix(dir, "/") + "/" + name
}

// lineState is the state machine's registers that a look-up needs, and
// where in the program it is.
type lineState struct {
	off  int
	addr uint64
	file uint64
	line int64
}

func (s *lineState) reset() { s.addr, s.file, s.line = 0, 1, 1 }

// lineRow is one row of the matrix; end marks DW_LNE_end_sequence (whose
// address is the first past the sequence).
type lineRow struct {
	addr uint64
	file uint64
	line int64
	end  bool
}

var errProgEnd = io.EOF

// next runs opcodes from s to the next row, returning it with s after it,
// or errProgEnd at the program's end. It is the hot loop of a look-up (a
// unit's program is decoded through once), so it indexes the program
// directly, with the registers in locals, rather than through a cursor.
func (p *lineProg) next(s *lineState) (lineRow, error) {
	b, i := p.prog, s.off
	addr, file, line := s.addr, s.file, s.line
	opBase, minInst := p.opBase, p.minInst
	for i < len(b) {
		op := int(b[i])
		i++
		if op >= opBase {
			addr += minInst * uint64(p.specAddr[op])
			line += int64(p.specLine[op])
			s.off, s.addr, s.file, s.line = i, addr, file, line
			return lineRow{addr, file, line, false}, nil
		}
		ok := true
		switch op {
		case 0: // extended
			n, k := binary.Uvarint(b[i:])
			if k <= 0 || n == 0 || n > uint64(len(b)-i-k) {
				ok = false
				break
			}
			i += k
			end := i + int(n)
			switch b[i] {
			case 1: // DW_LNE_end_sequence
				s.reset()
				s.off = end
				return lineRow{addr, file, line, true}, nil
			case 2: // DW_LNE_set_address
				switch n - 1 {
				case 8:
					addr = p.order.Uint64(b[i+1:])
				case 4:
					addr = uint64(p.order.Uint32(b[i+1:]))
				default:
					ok = false
				}
			}
			i = end // define_file, set_discriminator, vendor opcodes
		case 1: // DW_LNS_copy
			s.off, s.addr, s.file, s.line = i, addr, file, line
			return lineRow{addr, file, line, false}, nil
		case 2: // DW_LNS_advance_pc
			v, k := binary.Uvarint(b[i:])
			i, ok = i+k, k > 0
			addr += minInst * v
		case 3: // DW_LNS_advance_line
			if i < len(b) && b[i] < 0x80 {
				line += int64(int8(b[i]<<1) >> 1) // one byte: bit 6 is the sign
				i++
				break
			}
			v, k := sleb128(b[i:])
			i, ok = i+k, k > 0
			line += v
		case 4: // DW_LNS_set_file
			v, k := binary.Uvarint(b[i:])
			i, ok = i+k, k > 0
			file = v
		case 8: // DW_LNS_const_add_pc
			addr += minInst * uint64(p.specAddr[255])
		case 9: // DW_LNS_fixed_advance_pc
			if ok = len(b)-i >= 2; ok {
				addr += uint64(p.order.Uint16(b[i:]))
				i += 2
			}
		case 6, 7, 10, 11: // negate_stmt, set_basic_block, set_prologue_end, set_epilogue_begin
		case 5, 12: // set_column, set_isa: one operand, most often a byte
			if i < len(b) && b[i] < 0x80 {
				i++
				break
			}
			_, k := binary.Uvarint(b[i:])
			i, ok = i+k, k > 0
		default: // one this reader does not know: skip its operands
			for range int(p.stdLens[op-1]) {
				_, k := binary.Uvarint(b[i:])
				if k <= 0 {
					ok = false
					break
				}
				i += k
			}
		}
		if !ok {
			s.off = len(b)
			return lineRow{}, fmt.Errorf("line program: bad operands of opcode %d before %#x", op, i)
		}
	}
	s.off = i
	return lineRow{}, errProgEnd
}

// sleb128 decodes a signed LEB128 number, returning it and its length,
// or a length of 0 if b ends first.
func sleb128(b []byte) (int64, int) {
	var v int64
	shift := 0
	for k, c := range b {
		if shift < 64 {
			v |= int64(c&0x7f) << shift
		}
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			return v, k + 1
		}
	}
	return 0, 0
}
