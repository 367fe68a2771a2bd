package kdwarf

import (
	"debug/dwarf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"
)

// dwarfTypes answers lookups from .debug_info through the name index.
type dwarfTypes struct {
	f       *File
	secs    *debugSections
	whole   *dwarf.Data // all units in one Data; nil: one Data per unit
	units   []unitSpan
	cus     map[int]*dwarf.Data // per-unit Data, by index in units
	info    []byte
	abbrev  []byte
	order   binary.ByteOrder
	ptrSize int64

	idx      *index
	idxFile  string // on-disk index path, "" if none
	fromDisk bool   // idx was read from idxFile

	full    map[dwarf.Offset]*Type
	shallow map[dwarf.Offset]*Type
	named   map[string]*Type // kind letter + name
}

func newDWARFTypes(f *File, secs *debugSections, whole *dwarf.Data) (*dwarfTypes, error) {
	units, err := parseUnits(secs.info, f.ef.ByteOrder)
	if err != nil {
		return nil, err
	}
	if len(units) == 0 {
		return nil, errNoInfo
	}
	dt := &dwarfTypes{
		f:       f,
		secs:    secs,
		whole:   whole,
		units:   units,
		cus:     make(map[int]*dwarf.Data),
		info:    secs.info,
		abbrev:  secs.abbrev,
		order:   f.ef.ByteOrder,
		ptrSize: f.ptrSize(),
		full:    make(map[dwarf.Offset]*Type),
		shallow: make(map[dwarf.Offset]*Type),
		named:   make(map[string]*Type),
	}
	if err := dt.loadIndex(); err != nil {
		return nil, err
	}
	return dt, nil
}

// loadIndex reads the on-disk index or builds (and stores) a new one.
func (dt *dwarfTypes) loadIndex() error {
	fp := dt.fingerprint()
	if dir := dt.f.cfg.cacheDir; dir != "" && len(dt.f.buildID) > 0 {
		dt.idxFile = indexPath(dir, dt.f.buildID)
		if idx, err := readIndexFile(dt.idxFile, fp); err == nil {
			dt.idx, dt.fromDisk = idx, true
			return nil
		}
	}
	return dt.rebuild(fp)
}

func (dt *dwarfTypes) rebuild(fp fingerprint) error {
	idx, err := dt.buildIndex()
	if err != nil {
		return err
	}
	dt.idx, dt.fromDisk = idx, false
	if dt.idxFile != "" {
		// Best effort: a read-only cache directory only costs speed.
		_ = writeIndexFile(dt.idxFile, fp, idx)
	}
	return nil
}

var tagOfKind = map[Kind]dwarf.Tag{
	Struct:  dwarf.TagStructType,
	Union:   dwarf.TagUnionType,
	Enum:    dwarf.TagEnumerationType,
	Typedef: dwarf.TagTypedef,
	Base:    dwarf.TagBaseType,
}

// debugSections are the debug sections a per-unit dwarf.Data needs.
type debugSections struct {
	abbrev, info, str []byte
	line, ranges      []byte            // for line tables and DWARF 4 unit ranges
	aranges           []byte            // not given to dwarf.New: read by the line index
	extra             map[string][]byte // .debug_str_offsets, .debug_addr, ...
}

// data returns a dwarf.Data over info, which is all of .debug_info or the
// bytes of one unit.
func (s *debugSections) data(info []byte) (*dwarf.Data, error) {
	d, err := dwarf.New(s.abbrev, nil, nil, info, s.line, nil, s.ranges, s.str)
	if err != nil {
		return nil, err
	}
	for name, b := range s.extra {
		if err := d.AddSection(name, b); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// crossUnitForms reports whether any abbreviation uses a form that refers
// outside its unit (DW_FORM_ref_addr, ref_sig8, the GNU dwz alt forms):
// such DWARF (LTO, dwz) needs the whole-file dwarf.Data. Unparseable
// abbreviations answer true, the safe side.
func crossUnitForms(abbrev []byte) bool {
	uleb := func() (uint64, bool) {
		v, n := binary.Uvarint(abbrev)
		if n <= 0 {
			return 0, false
		}
		abbrev = abbrev[n:]
		return v, true
	}
	for len(abbrev) > 0 {
		code, ok := uleb()
		if !ok {
			return true
		}
		if code == 0 { // end of one unit's table
			continue
		}
		if _, ok := uleb(); !ok || len(abbrev) < 1 { // tag
			return true
		}
		abbrev = abbrev[1:] // children
		for {
			attr, ok1 := uleb()
			form, ok2 := uleb()
			if !ok1 || !ok2 {
				return true
			}
			if attr == 0 && form == 0 {
				break
			}
			switch form {
			case 0x10, 0x20, 0x1f20, 0x1f21: // ref_addr, ref_sig8, GNU_ref_alt, GNU_strp_alt
				return true
			case 0x21: // implicit_const: SLEB128 value
				_, n := binary.Varint(abbrev) // length only; value unused
				if n <= 0 {
					return true
				}
				abbrev = abbrev[n:]
			}
		}
	}
	return false
}

// unitData returns the dwarf.Data holding off and the offset of that
// Data's first byte in .debug_info.
func (dt *dwarfTypes) unitData(off dwarf.Offset) (*dwarf.Data, dwarf.Offset, error) {
	if dt.whole != nil {
		return dt.whole, 0, nil
	}
	i := sort.Search(len(dt.units), func(i int) bool { return dt.units[i].end > uint64(off) })
	if i == len(dt.units) || uint64(off) < dt.units[i].die {
		return nil, 0, fmt.Errorf("offset %#x is not in a unit", off)
	}
	d, ok := dt.cus[i]
	if !ok {
		u := dt.units[i]
		var err error
		if d, err = dt.secs.data(dt.info[u.hdr:u.end]); err != nil {
			return nil, 0, fmt.Errorf("unit at %#x: %w", u.hdr, err)
		}
		dt.cus[i] = d
	}
	return d, dwarf.Offset(dt.units[i].hdr), nil
}

// rebase turns the offsets of an entry read from a per-unit Data into
// .debug_info offsets.
func rebase(e *dwarf.Entry, base dwarf.Offset) {
	if base == 0 || e == nil {
		return
	}
	e.Offset += base
	for i := range e.Field {
		if o, ok := e.Field[i].Val.(dwarf.Offset); ok && e.Field[i].Class == dwarf.ClassReference {
			e.Field[i].Val = o + base
		}
	}
}

// entryAt reads the DIE at off, or nil.
func (dt *dwarfTypes) entryAt(off dwarf.Offset) *dwarf.Entry {
	if uint64(off) >= uint64(len(dt.info)) {
		return nil
	}
	d, base, err := dt.unitData(off)
	if err != nil {
		return nil
	}
	r := d.Reader()
	r.Seek(off - base)
	e, err := r.Next()
	if err != nil || e == nil || e.Offset != off-base {
		return nil
	}
	rebase(e, base)
	return e
}

// verified returns the index entry for key, checking that the DIE there is
// what the index claims. An index that lies is rebuilt, once.
func (dt *dwarfTypes) verified(key string, check func(*dwarf.Entry) bool) (dwarf.Offset, bool, error) {
	for attempt := 0; ; attempt++ {
		off, ok := dt.idx.m[key]
		if !ok {
			return 0, false, nil
		}
		if e := dt.entryAt(off); e != nil && check(e) {
			return off, true, nil
		}
		if attempt > 0 || !dt.fromDisk {
			return 0, false, fmt.Errorf("kdwarf: %s: index entry %q at %#x does not match .debug_info", dt.f.path, key[1:], off)
		}
		// A stale or forged on-disk index: drop it and rebuild.
		if dt.idxFile != "" {
			os.Remove(dt.idxFile)
		}
		if err := dt.rebuild(dt.fingerprint()); err != nil {
			return 0, false, err
		}
	}
}

func (dt *dwarfTypes) lookup(k Kind, name string) (*Type, error) {
	key := string(kindLetter(k)) + name
	if t, ok := dt.named[key]; ok {
		return t, nil
	}
	tag := tagOfKind[k]
	off, ok, err := dt.verified(key, func(e *dwarf.Entry) bool {
		n, _ := e.Val(dwarf.AttrName).(string)
		return e.Tag == tag && n == name
	})
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, notFound(k, name)
	}
	t, err := dt.convert(off, false)
	if err != nil {
		return nil, fmt.Errorf("kdwarf: %s: %s %s: %w", dt.f.path, k, name, err)
	}
	dt.named[key] = t
	return t, nil
}

func notFound(k Kind, name string) error {
	what := name
	if k == Struct || k == Union || k == Enum {
		what = k.String() + " " + name
	}
	return fmt.Errorf("kdwarf: type %s: %w", what, ErrNotFound)
}

func (dt *dwarfTypes) enumerator(name string) (int64, error) {
	off, ok, err := dt.verified(string(kindLetter(Invalid))+name, func(e *dwarf.Entry) bool {
		return e.Tag == dwarf.TagEnumerationType
	})
	if err != nil {
		return 0, err
	}
	if ok {
		t, err := dt.convert(off, false)
		if err != nil {
			return 0, fmt.Errorf("kdwarf: %s: enumerator %s: %w", dt.f.path, name, err)
		}
		for _, v := range t.Enumerators {
			if v.Name == name {
				return v.Value, nil
			}
		}
	}
	return 0, fmt.Errorf("kdwarf: enumerator %s: %w", name, ErrNotFound)
}

// convert decodes the type DIE at off into a Type, reading DIEs directly
// rather than through (*dwarf.Data).Type: that decodes every type reachable
// through pointers (most of a compile unit for a kernel struct), and its
// "zero-length array" fixup zeroes the length of an array followed by a
// bitfield whose storage unit starts at the same byte (GCC DWARF 4 and 5
// both do this). Under a pointer (shallow), a named struct or union becomes
// an opaque stub and its members are not read.
func (dt *dwarfTypes) convert(off dwarf.Offset, shallow bool) (*Type, error) {
	memo := dt.full
	if shallow {
		memo = dt.shallow
	}
	if r, ok := memo[off]; ok {
		return r, nil
	}
	e := dt.entryAt(off)
	if e == nil {
		return nil, fmt.Errorf("no DIE at %#x", off)
	}
	r := &Type{}
	memo[off] = r
	var err error
	elem := func(sh bool) (*Type, error) {
		to, ok := e.Val(dwarf.AttrType).(dwarf.Offset)
		if !ok {
			return voidType, nil
		}
		return dt.convert(to, sh)
	}
	name, _ := e.Val(dwarf.AttrName).(string)
	size, hasSize := e.Val(dwarf.AttrByteSize).(int64)
	switch e.Tag {
	case dwarf.TagStructType, dwarf.TagUnionType:
		r.Kind, r.Name = Struct, name
		if e.Tag == dwarf.TagUnionType {
			r.Kind = Union
		}
		if hasSize {
			r.Size = size
		}
		if e.Val(dwarf.AttrDeclaration) != nil || (shallow && name != "") {
			r.Opaque = true
			break
		}
		err = dt.members(r, e)
	case dwarf.TagEnumerationType:
		r.Kind, r.Name, r.Size = Enum, name, size
		if e.Val(dwarf.AttrDeclaration) != nil {
			break
		}
		kids, kerr := dt.children(e)
		if kerr != nil {
			err = kerr
			break
		}
		for _, k := range kids {
			if k.Tag != dwarf.TagEnumerator {
				continue
			}
			n, _ := k.Val(dwarf.AttrName).(string)
			v, _ := k.Val(dwarf.AttrConstValue).(int64)
			r.Enumerators = append(r.Enumerators, Enumerator{Name: n, Value: v})
			if v < 0 {
				r.Signed = true
			}
		}
		if enc, ok := dt.baseEncoding(e); ok && (enc == 5 || enc == 6) {
			r.Signed = true
		}
	case dwarf.TagTypedef:
		r.Kind, r.Name = Typedef, name
		r.Elem, err = elem(shallow)
		if err == nil {
			r.Size = r.Elem.Size
		}
	case dwarf.TagPointerType, dwarf.TagReferenceType, dwarf.TagRvalueReferenceType, dwarf.TagPtrToMemberType:
		r.Kind, r.Size = Pointer, size
		if !hasSize || size <= 0 {
			r.Size = dt.ptrSize
		}
		r.Elem, err = elem(true)
	case dwarf.TagConstType, dwarf.TagVolatileType, dwarf.TagRestrictType:
		r.Kind = map[dwarf.Tag]Kind{dwarf.TagConstType: Const, dwarf.TagVolatileType: Volatile, dwarf.TagRestrictType: Restrict}[e.Tag]
		r.Elem, err = elem(shallow)
		if err == nil {
			r.Size = r.Elem.Size
		}
	case dwarf.TagAtomicType:
		// _Atomic T has T's layout: look through it.
		var t *Type
		if t, err = elem(shallow); err == nil {
			*r = *t
		}
	case dwarf.TagArrayType:
		err = dt.array(r, e, shallow)
	case dwarf.TagSubroutineType, dwarf.TagSubprogram:
		r.Kind = Func
	case dwarf.TagBaseType:
		enc, _ := e.Val(dwarf.AttrEncoding).(int64)
		// DW_ATE_complex_float 3, float 4, signed 5, signed_char 6.
		r.setBase(name, size, enc >= 3 && enc <= 6, enc == 3 || enc == 4)
	case dwarf.TagUnspecifiedType:
		r.Kind, r.Name = Void, name
	default:
		err = fmt.Errorf("DIE at %#x: unsupported tag %v", off, e.Tag)
	}
	if err != nil {
		delete(memo, off)
		return nil, err
	}
	return r, nil
}

var voidType = &Type{Kind: Void}

// baseEncoding returns DW_AT_encoding of the base type an enum is based on
// (DW_AT_type, DWARF 3+).
func (dt *dwarfTypes) baseEncoding(e *dwarf.Entry) (int64, bool) {
	to, ok := e.Val(dwarf.AttrType).(dwarf.Offset)
	if !ok {
		return 0, false
	}
	b := dt.entryAt(to)
	if b == nil || b.Tag != dwarf.TagBaseType {
		return 0, false
	}
	enc, ok := b.Val(dwarf.AttrEncoding).(int64)
	return enc, ok
}

// children reads the direct children of e.
func (dt *dwarfTypes) children(e *dwarf.Entry) ([]*dwarf.Entry, error) {
	if !e.Children {
		return nil, nil
	}
	d, base, err := dt.unitData(e.Offset)
	if err != nil {
		return nil, err
	}
	r := d.Reader()
	r.Seek(e.Offset - base)
	if _, err := r.Next(); err != nil {
		return nil, err
	}
	var kids []*dwarf.Entry
	for {
		k, err := r.Next()
		if err != nil {
			return nil, err
		}
		if k == nil || k.Tag == 0 {
			return kids, nil
		}
		rebase(k, base)
		kids = append(kids, k)
		if k.Children {
			r.SkipChildren()
		}
	}
}

func (dt *dwarfTypes) members(r *Type, e *dwarf.Entry) error {
	kids, err := dt.children(e)
	if err != nil {
		return err
	}
	r.Members = make([]Member, 0, len(kids))
	for _, k := range kids {
		if k.Tag != dwarf.TagMember {
			continue
		}
		m := Member{}
		m.Name, _ = k.Val(dwarf.AttrName).(string)
		to, ok := k.Val(dwarf.AttrType).(dwarf.Offset)
		if !ok {
			return fmt.Errorf("member %s at %#x has no type", m.Name, k.Offset)
		}
		if m.Type, err = dt.convert(to, false); err != nil {
			return err
		}
		var byteOff int64
		switch loc := k.Val(dwarf.AttrDataMemberLoc).(type) {
		case int64:
			byteOff = loc
		case []byte:
			// DWARF 2: DW_OP_plus_uconst ULEB128.
			if len(loc) < 2 || loc[0] != 0x23 {
				return fmt.Errorf("member %s at %#x: unsupported location expression", m.Name, k.Offset)
			}
			v, n := binary.Uvarint(loc[1:])
			if n <= 0 {
				return fmt.Errorf("member %s at %#x: bad location expression", m.Name, k.Offset)
			}
			byteOff = int64(v)
		}
		bitSize, _ := k.Val(dwarf.AttrBitSize).(int64)
		if bitSize == 0 {
			m.Offset, m.BitOffset = byteOff, byteOff*8
		} else {
			m.BitSize = bitSize
			if dbo, ok := k.Val(dwarf.AttrDataBitOffset).(int64); ok {
				// DWARF 4+: from the start of the struct.
				m.BitOffset = byteOff*8 + dbo
			} else {
				// DWARF 2-4: from the most significant bit of the
				// storage unit at byteOff.
				bo, _ := k.Val(dwarf.AttrBitOffset).(int64)
				unit, ok := k.Val(dwarf.AttrByteSize).(int64)
				if !ok {
					unit = m.Type.Size
				}
				if dt.order == binary.BigEndian {
					m.BitOffset = byteOff*8 + bo
				} else {
					m.BitOffset = byteOff*8 + unit*8 - bo - bitSize
				}
			}
			m.Offset = m.BitOffset / 8
		}
		r.Members = append(r.Members, m)
	}
	return nil
}

// array decodes an array DIE; each DW_TAG_subrange_type child is one
// dimension, outermost first.
func (dt *dwarfTypes) array(r *Type, e *dwarf.Entry, shallow bool) error {
	to, ok := e.Val(dwarf.AttrType).(dwarf.Offset)
	if !ok {
		return fmt.Errorf("array at %#x has no element type", e.Offset)
	}
	el, err := dt.convert(to, shallow)
	if err != nil {
		return err
	}
	kids, err := dt.children(e)
	if err != nil {
		return err
	}
	var dims []int64
	for _, k := range kids {
		if k.Tag != dwarf.TagSubrangeType && k.Tag != dwarf.TagEnumerationType {
			continue
		}
		n, ok := k.Val(dwarf.AttrCount).(int64)
		if !ok {
			if ub, ok := k.Val(dwarf.AttrUpperBound).(int64); ok {
				lb, _ := k.Val(dwarf.AttrLowerBound).(int64)
				n = ub - lb + 1
			}
		}
		dims = append(dims, max(n, 0)) // x[] and x[0] have no elements
	}
	if len(dims) == 0 {
		dims = []int64{0}
	}
	// Build inner dimensions as fresh types; r is the outermost.
	for i := len(dims) - 1; i >= 1; i-- {
		el = &Type{Kind: Array, Elem: el, Len: dims[i], Size: dims[i] * el.Size}
	}
	r.Kind, r.Elem, r.Len, r.Size = Array, el, dims[0], dims[0]*el.Size
	return nil
}

// kindLetter is the index key prefix of a kind; Invalid keys enumerators.
func kindLetter(k Kind) byte {
	switch k {
	case Struct:
		return 's'
	case Union:
		return 'u'
	case Enum:
		return 'e'
	case Typedef:
		return 't'
	case Base:
		return 'b'
	}
	return 'k'
}

var errNoInfo = errors.New("kdwarf: empty .debug_info")

func (r *Type) setBase(name string, size int64, signed, float bool) {
	r.Kind, r.Name, r.Size, r.Signed, r.Float = Base, name, size, signed, float
}
