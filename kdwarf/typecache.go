package kdwarf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"sort"
)

// The type half of the start-up cache (see symcache.go): the answers the
// commands asked of the file's types, kept so that the next Open of the
// same file answers them without parsing BTF or DWARF. It records every
// Type, Enumerator, Has and HasEnumerator answer, found or not, and the
// source they came from; a question the cache cannot answer loads the
// source as before, and the new answers are written back on Close.
//
// Layout (little-endian) after a 32-byte header (magic, version u32,
// length u64, CRC-32C u32 of what follows the header, 8 zero bytes):
//
//	key      str (the identity key, see cacheKey)
//	source   str ("btf" or "dwarf")
//	types    u32 count, then per type: kind u8, flags u8 (1 signed,
//	         2 float, 4 opaque, 8 has elem, 16 members and 32
//	         enumerators present, even if none), name str, size i64, len i64,
//	         [elem u32], members u32 × (name str, type u32, offset i64,
//	         bit offset i64, bit size i64), enumerators u32 × (name str,
//	         value i64)
//	names    u32 count × (name str, found u8, type u32 | error str)
//	enums    u32 count × (name str, found u8, value i64 | error str)
//	has      u32 count × (name str, u8)
//	hasEnum  u32 count × (name str, u8)
//
// where str is a u32 length and the bytes, and type a type index.
const (
	typeCacheMagic   = "VMLKTYP\x00"
	typeCacheVersion = 1
	typeHeaderSize   = 32
)

// cachedNotFound is a not-found answer read from the cache: its message,
// as the source gave it, and ErrNotFound.
type cachedNotFound struct{ msg string }

func (e *cachedNotFound) Error() string { return e.msg }
func (e *cachedNotFound) Unwrap() error { return ErrNotFound }

// typeAnswers are the answers kept for the cache.
type typeAnswers struct {
	typeMiss map[string]error
	enumMiss map[string]error
	has      map[string]bool
	hasEnum  map[string]bool
	dirty    bool // answers were added since the cache was read
}

// startupKey returns the file's type cache key, computed once: the file's
// identity and the type source asked for (SourceDWARF must never be
// answered from what BTF said); "" without a cache. f.mu is held.
func (f *File) startupKey() string {
	if !f.keyDone {
		f.keyDone = true
		if k := f.cacheKey(); k != "" {
			f.key = k + "\x00source=" + string(f.cfg.source)
		}
	}
	return f.key
}

// loadTypeCache reads the type cache once. f.mu is held.
func (f *File) loadTypeCache() {
	if f.tcLoaded {
		return
	}
	f.tcLoaded = true
	f.tc = typeAnswers{typeMiss: map[string]error{}, enumMiss: map[string]error{}, has: map[string]bool{}, hasEnum: map[string]bool{}}
	key := f.startupKey()
	if key == "" {
		return
	}
	path := f.cachePath(key, ".types")
	b, err := readCacheFile(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			f.typeCacheErr = err
		}
		return
	}
	if err := f.decodeTypeCache(path, b, key); err != nil {
		f.typeCacheErr = err
		// Nothing of a bad file is kept.
		f.byName, f.enumVal, f.source = nil, nil, ""
		f.tc = typeAnswers{typeMiss: map[string]error{}, enumMiss: map[string]error{}, has: map[string]bool{}, hasEnum: map[string]bool{}, dirty: true}
		return
	}
	f.typesFromCache = true
}

// saveTypeCache writes the answers back when there are new ones. f.mu is
// held; best effort.
func (f *File) saveTypeCache() {
	if !f.tcLoaded || !f.tc.dirty || f.source == "" {
		return
	}
	key := f.startupKey()
	if key == "" {
		return
	}
	_ = writeCacheFile(f.cachePath(key, ".types"), f.encodeTypeCache(key))
}

// TypeCacheError says why the type half of the start-up cache was not
// used (a corrupt or foreign file, ignored and rewritten), or nil.
func (f *File) TypeCacheError() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.typeCacheErr
}

// TypesFromCache tells whether type answers were read from the start-up
// cache.
func (f *File) TypesFromCache() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.typesFromCache
}

type encoder struct{ b []byte }

func (e *encoder) u8(v byte)    { e.b = append(e.b, v) }
func (e *encoder) u32(v uint32) { e.b = binary.LittleEndian.AppendUint32(e.b, v) }
func (e *encoder) i64(v int64)  { e.b = binary.LittleEndian.AppendUint64(e.b, uint64(v)) }
func (e *encoder) str(s string) { e.u32(uint32(len(s))); e.b = append(e.b, s...) }

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func (f *File) encodeTypeCache(key string) []byte {
	// Number every type reachable from the answers, sharing kept.
	ids := map[*Type]uint32{}
	var order []*Type
	var visit func(t *Type)
	visit = func(t *Type) {
		if t == nil {
			return
		}
		if _, ok := ids[t]; ok {
			return
		}
		ids[t] = uint32(len(order))
		order = append(order, t)
		visit(t.Elem)
		for i := range t.Members {
			visit(t.Members[i].Type)
		}
	}
	names := sortedKeys(f.byName)
	for _, n := range names {
		visit(f.byName[n])
	}
	e := &encoder{b: make([]byte, typeHeaderSize, 64<<10)}
	e.str(key)
	e.str(f.source)
	e.u32(uint32(len(order)))
	for _, t := range order {
		e.u8(byte(t.Kind))
		var fl byte
		if t.Signed {
			fl |= 1
		}
		if t.Float {
			fl |= 2
		}
		if t.Opaque {
			fl |= 4
		}
		if t.Elem != nil {
			fl |= 8
		}
		if t.Members != nil {
			fl |= 16
		}
		if t.Enumerators != nil {
			fl |= 32
		}
		e.u8(fl)
		e.str(t.Name)
		e.i64(t.Size)
		e.i64(t.Len)
		if t.Elem != nil {
			e.u32(ids[t.Elem])
		}
		e.u32(uint32(len(t.Members)))
		for _, m := range t.Members {
			e.str(m.Name)
			e.u32(ids[m.Type])
			e.i64(m.Offset)
			e.i64(m.BitOffset)
			e.i64(m.BitSize)
		}
		e.u32(uint32(len(t.Enumerators)))
		for _, en := range t.Enumerators {
			e.str(en.Name)
			e.i64(en.Value)
		}
	}
	misses := sortedKeys(f.tc.typeMiss)
	e.u32(uint32(len(names) + len(misses)))
	for _, n := range names {
		e.str(n)
		e.u8(1)
		e.u32(ids[f.byName[n]])
	}
	for _, n := range misses {
		e.str(n)
		e.u8(0)
		e.str(f.tc.typeMiss[n].Error())
	}
	enums, emiss := sortedKeys(f.enumVal), sortedKeys(f.tc.enumMiss)
	e.u32(uint32(len(enums) + len(emiss)))
	for _, n := range enums {
		e.str(n)
		e.u8(1)
		e.i64(f.enumVal[n])
	}
	for _, n := range emiss {
		e.str(n)
		e.u8(0)
		e.str(f.tc.enumMiss[n].Error())
	}
	for _, m := range []map[string]bool{f.tc.has, f.tc.hasEnum} {
		ks := sortedKeys(m)
		e.u32(uint32(len(ks)))
		for _, n := range ks {
			e.str(n)
			v := byte(0)
			if m[n] {
				v = 1
			}
			e.u8(v)
		}
	}
	b := e.b
	copy(b, typeCacheMagic)
	binary.LittleEndian.PutUint32(b[8:], typeCacheVersion)
	binary.LittleEndian.PutUint64(b[12:], uint64(len(b)))
	binary.LittleEndian.PutUint32(b[20:], crc32.Checksum(b[typeHeaderSize:], castagnoli))
	return b
}

// decoder reads the cache format; the first out-of-bounds read sets err
// and every later read returns zero.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n uint64) []byte {
	if d.err != nil || n > uint64(len(d.b)) {
		if d.err == nil {
			d.err = errors.New("truncated")
		}
		return nil
	}
	s := d.b[:n]
	d.b = d.b[n:]
	return s
}
func (d *decoder) u8() byte {
	if s := d.take(1); s != nil {
		return s[0]
	}
	return 0
}
func (d *decoder) u32() uint32 {
	if s := d.take(4); s != nil {
		return binary.LittleEndian.Uint32(s)
	}
	return 0
}
func (d *decoder) i64() int64 {
	if s := d.take(8); s != nil {
		return int64(binary.LittleEndian.Uint64(s))
	}
	return 0
}
func (d *decoder) str() string { return string(d.take(uint64(d.u32()))) }

// count reads a count of items of at least min bytes each, bounded by
// what is left.
func (d *decoder) count(min uint64) int {
	n := uint64(d.u32())
	if d.err == nil && n*min > uint64(len(d.b)) {
		d.err = errors.New("count exceeds the file")
		return 0
	}
	return int(n)
}

func (f *File) decodeTypeCache(path string, b []byte, key string) error {
	bad := func(why string) error { return &CacheError{Path: path, Reason: why} }
	le := binary.LittleEndian
	if len(b) < typeHeaderSize || string(b[:8]) != typeCacheMagic {
		return bad("not a type cache")
	}
	if v := le.Uint32(b[8:]); v != typeCacheVersion {
		return bad(fmt.Sprintf("version %d, want %d", v, typeCacheVersion))
	}
	if le.Uint64(b[12:]) != uint64(len(b)) {
		return bad("truncated or extended")
	}
	if crc32.Checksum(b[typeHeaderSize:], castagnoli) != le.Uint32(b[20:]) {
		return bad("checksum mismatch")
	}
	d := &decoder{b: b[typeHeaderSize:]}
	if d.str() != key {
		return bad("for another file")
	}
	source := d.str()
	if source != "btf" && source != "dwarf" {
		return bad("unknown source")
	}
	n := d.count(1 + 1 + 4 + 8 + 8 + 4 + 4)
	types := make([]Type, n)
	typeAt := func(i uint32) *Type {
		if uint64(i) >= uint64(len(types)) {
			if d.err == nil {
				d.err = errors.New("type index out of bounds")
			}
			return nil
		}
		return &types[i]
	}
	for i := range types {
		t := &types[i]
		k := Kind(d.u8())
		if k <= Invalid || k > Func {
			return bad("unknown kind")
		}
		fl := d.u8()
		t.Kind, t.Signed, t.Float, t.Opaque = k, fl&1 != 0, fl&2 != 0, fl&4 != 0
		t.Name = d.str()
		t.Size, t.Len = d.i64(), d.i64()
		if t.Size < 0 || t.Len < 0 || t.Size > math.MaxInt32 {
			return bad("bad size")
		}
		if fl&8 != 0 {
			t.Elem = typeAt(d.u32())
		}
		switch k {
		case Pointer, Array, Typedef, Const, Volatile, Restrict:
			if fl&8 == 0 {
				return bad(fmt.Sprintf("%s without its type", k))
			}
		}
		if nm := d.count(4 + 4 + 24); nm > 0 || fl&16 != 0 {
			t.Members = make([]Member, nm)
			for j := range t.Members {
				m := &t.Members[j]
				m.Name = d.str()
				m.Type = typeAt(d.u32())
				m.Offset, m.BitOffset, m.BitSize = d.i64(), d.i64(), d.i64()
			}
		}
		if ne := d.count(4 + 8); ne > 0 || fl&32 != 0 {
			t.Enumerators = make([]Enumerator, ne)
			for j := range t.Enumerators {
				t.Enumerators[j] = Enumerator{Name: d.str(), Value: d.i64()}
			}
		}
		if d.err != nil {
			return bad(d.err.Error())
		}
	}
	byName := map[string]*Type{}
	for range d.count(4 + 1 + 4) {
		name := d.str()
		if d.u8() == 1 {
			byName[name] = typeAt(d.u32())
		} else {
			f.tc.typeMiss[name] = &cachedNotFound{d.str()}
		}
	}
	enumVal := map[string]int64{}
	for range d.count(4 + 1 + 4) {
		name := d.str()
		if d.u8() == 1 {
			enumVal[name] = d.i64()
		} else {
			f.tc.enumMiss[name] = &cachedNotFound{d.str()}
		}
	}
	for _, m := range []map[string]bool{f.tc.has, f.tc.hasEnum} {
		for range d.count(4 + 1) {
			name := d.str()
			m[name] = d.u8() == 1
		}
	}
	if d.err != nil {
		return bad(d.err.Error())
	}
	if len(d.b) != 0 {
		return bad("trailing bytes")
	}
	f.byName, f.enumVal, f.source = byName, enumVal, source
	return nil
}
