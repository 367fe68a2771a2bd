package kdwarf

import (
	"fmt"

	"github.com/cilium/ebpf/btf"
)

// btfTypes answers lookups from a BTF spec.
type btfTypes struct {
	spec    *btf.Spec
	ptrSize int64

	full    map[btf.Type]*Type
	shallow map[btf.Type]*Type
	named   map[string]*Type
	enums   map[string]int64 // built on first enumerator lookup
	raw     []byte           // the .BTF section, for scanBTFEnums
}

func newBTFTypes(spec *btf.Spec, raw []byte, ptrSize int64) *btfTypes {
	return &btfTypes{
		spec:    spec,
		raw:     raw,
		ptrSize: ptrSize,
		full:    make(map[btf.Type]*Type),
		shallow: make(map[btf.Type]*Type),
		named:   make(map[string]*Type),
	}
}

func btfKindMatches(k Kind, t btf.Type) bool {
	switch t.(type) {
	case *btf.Struct:
		return k == Struct
	case *btf.Union:
		return k == Union
	case *btf.Enum:
		return k == Enum
	case *btf.Typedef:
		return k == Typedef
	case *btf.Int, *btf.Float:
		return k == Base
	}
	return false
}

func (bt *btfTypes) lookup(k Kind, name string) (*Type, error) {
	key := string(kindLetter(k)) + name
	if t, ok := bt.named[key]; ok {
		return t, nil
	}
	cands, _ := bt.spec.AnyTypesByName(name)
	var best btf.Type
	var bestID btf.TypeID
	for _, c := range cands {
		if !btfKindMatches(k, c) {
			continue
		}
		id, err := bt.spec.TypeID(c)
		if err != nil {
			continue
		}
		if best == nil || id < bestID {
			best, bestID = c, id
		}
	}
	if best == nil {
		return nil, notFound(k, name)
	}
	t := bt.convert(best, false)
	bt.named[key] = t
	return t, nil
}

func (bt *btfTypes) enumerator(name string) (int64, error) {
	if bt.enums == nil && bt.raw != nil {
		if m, err := scanBTFEnums(bt.raw); err == nil {
			bt.enums = m
		}
	}
	if bt.enums == nil {
		bt.enums = make(map[string]int64)
		for t, err := range bt.spec.All() {
			if err != nil {
				return 0, fmt.Errorf("kdwarf: btf: %w", err)
			}
			e, ok := t.(*btf.Enum)
			if !ok {
				continue
			}
			for _, v := range e.Values {
				if _, dup := bt.enums[v.Name]; !dup {
					bt.enums[v.Name] = int64(v.Value)
				}
			}
		}
	}
	v, ok := bt.enums[name]
	if !ok {
		return 0, fmt.Errorf("kdwarf: enumerator %s: %w", name, ErrNotFound)
	}
	return v, nil
}

// convert turns a BTF type into a Type; see dwarfTypes.convert.
func (bt *btfTypes) convert(t btf.Type, shallow bool) *Type {
	memo := bt.full
	if shallow {
		memo = bt.shallow
	}
	if r, ok := memo[t]; ok {
		return r
	}
	r := &Type{}
	memo[t] = r
	var members []btf.Member
	switch t := t.(type) {
	case *btf.Struct:
		r.Kind, r.Name, r.Size, members = Struct, t.Name, int64(t.Size), t.Members
	case *btf.Union:
		r.Kind, r.Name, r.Size, members = Union, t.Name, int64(t.Size), t.Members
	case *btf.Fwd:
		r.Kind, r.Name, r.Opaque = Struct, t.Name, true
		if t.Kind == btf.FwdUnion {
			r.Kind = Union
		}
	case *btf.Enum:
		r.Kind, r.Name, r.Size, r.Signed = Enum, t.Name, int64(t.Size), t.Signed
		r.Enumerators = make([]Enumerator, len(t.Values))
		for i, v := range t.Values {
			r.Enumerators[i] = Enumerator{Name: v.Name, Value: int64(v.Value)}
		}
	case *btf.Typedef:
		r.Kind, r.Name = Typedef, t.Name
		r.Elem = bt.convert(t.Type, shallow)
		r.Size = r.Elem.Size
	case *btf.Pointer:
		r.Kind, r.Size = Pointer, bt.ptrSize
		r.Elem = bt.convert(t.Target, true)
	case *btf.Array:
		r.Kind = Array
		r.Elem = bt.convert(t.Type, shallow)
		r.Len = int64(t.Nelems)
		r.Size = r.Len * r.Elem.Size
	case *btf.Const:
		r.Kind = Const
		r.Elem = bt.convert(t.Type, shallow)
		r.Size = r.Elem.Size
	case *btf.Volatile:
		r.Kind = Volatile
		r.Elem = bt.convert(t.Type, shallow)
		r.Size = r.Elem.Size
	case *btf.Restrict:
		r.Kind = Restrict
		r.Elem = bt.convert(t.Type, shallow)
		r.Size = r.Elem.Size
	case *btf.TypeTag:
		// A type tag (__rcu, __user) is an annotation: look through it.
		delete(memo, t)
		target := bt.convert(t.Type, shallow)
		memo[t] = target
		return target
	case *btf.FuncProto, *btf.Func:
		r.Kind = Func
	case *btf.Int:
		r.setBase(t.Name, int64(t.Size), t.Encoding&btf.Signed != 0, false)
	case *btf.Float:
		r.setBase(t.Name, int64(t.Size), true, true)
	default:
		r.Kind = Void
	}
	if members == nil || (shallow && r.Name != "") {
		if members != nil {
			r.Opaque = true
		}
		return r
	}
	r.Members = make([]Member, len(members))
	for i, m := range members {
		mt := bt.convert(m.Type, false)
		bit := int64(m.Offset)
		r.Members[i] = Member{Name: m.Name, Type: mt, Offset: bit / 8, BitOffset: bit, BitSize: int64(m.BitfieldSize)}
		if m.BitfieldSize == 0 && bit%8 != 0 {
			// Not expected from pahole; keep the bit position visible.
			r.Members[i].BitSize = mt.Size * 8
		}
	}
	return r
}
