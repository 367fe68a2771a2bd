package synth

import (
	"fmt"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// ctypes declares C types as BTF, laying members out as GCC does on
// x86_64 (the System V ABI: natural alignment, bitfields packed into units
// of their declared type without straddling one). Structs are declared in
// source order with their #ifdef'd members present or not, so each offset
// follows from the configuration instead of being typed in by hand.
type ctypes struct {
	align map[btf.Type]uint32 // struct and union alignment
	roots []btf.Type          // named types, in declaration order
	names map[string]btf.Type // "struct page", "unsigned int", "nodemask_t", ...
}

func newCTypes() *ctypes {
	return &ctypes{align: map[btf.Type]uint32{}, names: map[string]btf.Type{}}
}

// field is one member as declared: bits is the width of a bitfield, 0 for
// an ordinary member. An empty name is an anonymous struct or union.
type field struct {
	name string
	typ  btf.Type
	bits uint32
}

func f(name string, t btf.Type) field { return field{name: name, typ: t} }

func bitfield(name string, t btf.Type, bits uint32) field {
	return field{name: name, typ: t, bits: bits}
}

func anon(t btf.Type) field { return field{typ: t} }

// add records a named type so it is marshalled and can be looked up.
func (c *ctypes) add(key string, t btf.Type) btf.Type {
	if _, dup := c.names[key]; dup {
		panic("synth: type " + key + " declared twice")
	}
	c.names[key] = t
	c.roots = append(c.roots, t)
	return t
}

func (c *ctypes) base(name string, size uint32, enc btf.IntEncoding) *btf.Int {
	t := &btf.Int{Name: name, Size: size, Encoding: enc}
	c.add(name, t)
	return t
}

func (c *ctypes) typedef(name string, t btf.Type) *btf.Typedef {
	td := &btf.Typedef{Name: name, Type: t}
	c.add(name, td)
	return td
}

func (c *ctypes) enum(name string, size uint32, signed bool, values ...btf.EnumValue) *btf.Enum {
	e := &btf.Enum{Name: name, Size: size, Signed: signed, Values: values}
	key := "enum " + name
	if name == "" {
		key = fmt.Sprintf("enum #%d", len(c.roots))
	}
	c.add(key, e)
	return e
}

// fwd declares a struct that is only pointed at.
func (c *ctypes) fwd(name string) *btf.Fwd {
	t := &btf.Fwd{Name: name, Kind: btf.FwdStruct}
	c.add("fwd "+name, t)
	return t
}

// declare makes a named struct that can be pointed at before define gives
// it members.
func (c *ctypes) declare(name string) *btf.Struct {
	s := &btf.Struct{Name: name}
	c.add("struct "+name, s)
	return s
}

// structOf declares and defines a named struct.
func (c *ctypes) structOf(name string, fields ...field) *btf.Struct {
	s := c.declare(name)
	c.define(s, 0, fields...)
	return s
}

// define lays out a struct's members; minAlign is an __aligned() attribute (0: none).
func (c *ctypes) define(s *btf.Struct, minAlign uint32, fields ...field) *btf.Struct {
	var bit uint64 // next free bit
	align := max(minAlign, 1)
	for _, fl := range fields {
		size, a := c.sizeAlign(fl.typ)
		align = max(align, a)
		m := btf.Member{Name: fl.name, Type: fl.typ}
		if fl.bits != 0 {
			unit := uint64(size) * 8
			if bit/unit != (bit+uint64(fl.bits)-1)/unit {
				bit = (bit + unit - 1) / unit * unit
			}
			m.Offset, m.BitfieldSize = btf.Bits(bit), btf.Bits(fl.bits)
			bit += uint64(fl.bits)
		} else {
			off := roundUp((bit+7)/8, uint64(a))
			m.Offset = btf.Bits(off * 8)
			bit = (off + uint64(size)) * 8
		}
		s.Members = append(s.Members, m)
	}
	s.Size = uint32(roundUp((bit+7)/8, uint64(align)))
	c.align[s] = align
	return s
}

// anonStruct is an anonymous struct member's type.
func (c *ctypes) anonStruct(fields ...field) *btf.Struct {
	return c.define(&btf.Struct{}, 0, fields...)
}

// anonUnion is an anonymous union member's type.
func (c *ctypes) anonUnion(fields ...field) *btf.Union {
	u := &btf.Union{}
	var size uint64
	align := uint32(1)
	for _, fl := range fields {
		s, a := c.sizeAlign(fl.typ)
		align = max(align, a)
		m := btf.Member{Name: fl.name, Type: fl.typ}
		if fl.bits != 0 {
			m.BitfieldSize = btf.Bits(fl.bits)
		}
		size = max(size, uint64(s))
		u.Members = append(u.Members, m)
	}
	u.Size = uint32(roundUp(size, uint64(align)))
	c.align[u] = align
	return u
}

// unionOf is a named union.
func (c *ctypes) unionOf(name string, fields ...field) *btf.Union {
	u := c.anonUnion(fields...)
	u.Name = name
	c.add("union "+name, u)
	return u
}

func ptr(t btf.Type) *btf.Pointer { return &btf.Pointer{Target: t} }

func array(t btf.Type, n uint32, index btf.Type) *btf.Array {
	return &btf.Array{Type: t, Index: index, Nelems: n}
}

func roundUp(x, a uint64) uint64 { return (x + a - 1) / a * a }

// sizeAlign is a type's size and alignment in bytes.
func (c *ctypes) sizeAlign(t btf.Type) (uint32, uint32) {
	switch t := t.(type) {
	case *btf.Int:
		return t.Size, max(t.Size, 1)
	case *btf.Enum:
		return t.Size, t.Size
	case *btf.Pointer:
		return 8, 8
	case *btf.Typedef:
		return c.sizeAlign(t.Type)
	case *btf.Const:
		return c.sizeAlign(t.Type)
	case *btf.Volatile:
		return c.sizeAlign(t.Type)
	case *btf.Array:
		s, a := c.sizeAlign(t.Type)
		return s * t.Nelems, a
	case *btf.Struct:
		a, ok := c.align[t]
		if !ok {
			panic("synth: struct " + t.Name + " used by value before it is defined")
		}
		return t.Size, a
	case *btf.Union:
		return t.Size, c.align[t]
	}
	panic(fmt.Sprintf("synth: no size for %T", t))
}

// lookup is a declared type by its C name.
func (c *ctypes) lookup(name string) btf.Type {
	t, ok := c.names[name]
	if !ok {
		panic("synth: no type " + name)
	}
	return t
}

// marshal encodes every declared type as a .BTF section.
func (c *ctypes) marshal() ([]byte, error) {
	b, err := btf.NewBuilder(c.roots, nil)
	if err != nil {
		return nil, fmt.Errorf("synth: btf: %w", err)
	}
	raw, err := b.Marshal(nil, &btf.MarshalOptions{Order: le})
	if err != nil {
		return nil, fmt.Errorf("synth: btf: %w", err)
	}
	return raw, nil
}

// member is where a member of a struct lies: bytes from the start, and for
// a bitfield its first bit within that byte and its width.
type member struct {
	off, bitOff, bits, size uint32
}

// memberOf resolves a dotted member path, looking into anonymous structs
// and unions as C does. It is this package's own resolver, independent of
// the readers under test.
func (c *ctypes) memberOf(t btf.Type, path string) (member, error) {
	var acc uint64 // bits from the start of t
	cur := t
	for name := range strings.SplitSeq(path, ".") {
		m, bit, ok := c.find(strip(cur), name)
		if !ok {
			return member{}, fmt.Errorf("synth: %s has no member %s", typeName(t), path)
		}
		acc += bit
		if m.BitfieldSize != 0 {
			size, _ := c.sizeAlign(m.Type)
			return member{off: uint32(acc / 8), bitOff: uint32(acc % 8), bits: uint32(m.BitfieldSize), size: size}, nil
		}
		cur = m.Type
	}
	size, _ := c.sizeAlign(cur)
	return member{off: uint32(acc / 8), size: size}, nil
}

func (c *ctypes) find(t btf.Type, name string) (btf.Member, uint64, bool) {
	var ms []btf.Member
	switch t := t.(type) {
	case *btf.Struct:
		ms = t.Members
	case *btf.Union:
		ms = t.Members
	default:
		return btf.Member{}, 0, false
	}
	for _, m := range ms {
		if m.Name == name {
			return m, uint64(m.Offset), true
		}
	}
	for _, m := range ms {
		if m.Name != "" {
			continue
		}
		if sub, bit, ok := c.find(strip(m.Type), name); ok {
			return sub, uint64(m.Offset) + bit, true
		}
	}
	return btf.Member{}, 0, false
}

func strip(t btf.Type) btf.Type {
	for {
		switch u := t.(type) {
		case *btf.Typedef:
			t = u.Type
		case *btf.Const:
			t = u.Type
		case *btf.Volatile:
			t = u.Type
		default:
			return t
		}
	}
}

func typeName(t btf.Type) string {
	switch t := t.(type) {
	case *btf.Struct:
		return "struct " + t.Name
	case *btf.Union:
		return "union " + t.Name
	}
	return fmt.Sprint(t)
}
