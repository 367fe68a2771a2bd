package kdwarf

import (
	"fmt"
	"strconv"
	"strings"
)

// Kind is the kind of a [Type].
type Kind int

// Kinds of types.
const (
	Invalid  Kind = iota
	Void          // void
	Base          // integer, character, boolean or floating-point type
	Pointer       // Elem is the pointee
	Array         // Elem is the element type, Len the element count
	Struct        // Members
	Union         // Members
	Enum          // Enumerators
	Typedef       // Elem is the target
	Const         // Elem is the qualified type
	Volatile      // Elem is the qualified type
	Restrict      // Elem is the qualified type
	Func          // a function type; only reached through pointers
)

var kindNames = [...]string{
	Invalid:  "invalid",
	Void:     "void",
	Base:     "base",
	Pointer:  "pointer",
	Array:    "array",
	Struct:   "struct",
	Union:    "union",
	Enum:     "enum",
	Typedef:  "typedef",
	Const:    "const",
	Volatile: "volatile",
	Restrict: "restrict",
	Func:     "func",
}

func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Type is a C type, converted from DWARF or BTF into one model.
//
// Types are immutable once returned and may be shared between callers.
//
// To keep a lookup from pulling in the kernel's whole type graph, a named
// struct or union reached through a pointer is an opaque stub: Opaque is
// set, Members is nil and Size may be 0. [File.Resolve] returns the full
// definition. Declarations without a definition (struct foo;) are opaque
// too.
type Type struct {
	Kind        Kind
	Name        string // tag or typedef or base name as in the debug info ("long unsigned int"); "" if anonymous
	Size        int64  // in bytes; 0 for void, functions, flexible arrays and opaque stubs whose size is unknown
	Members     []Member
	Elem        *Type // Pointer, Array, Typedef, Const, Volatile, Restrict
	Len         int64 // Array: element count; 0 for flexible (x[]) and zero-length arrays
	Enumerators []Enumerator
	Signed      bool // Base, Enum
	Float       bool // Base: floating point
	Opaque      bool // Struct, Union: members not loaded; see File.Resolve
}

// Member is a member of a struct or union.
type Member struct {
	Name string // "" for an anonymous struct or union member
	Type *Type
	// Offset is in bytes from the start of the containing type. A Member
	// returned by Type.Field counts from the start of the type Field was
	// called on. For a bitfield it is the byte holding the first bit
	// (BitOffset/8).
	Offset int64
	// BitOffset is Offset*8 for ordinary members. For a bitfield it is the
	// bit number of the field's least significant bit counted from the start
	// of the struct, on little-endian targets: the value is
	// (load(Offset...) >> (BitOffset%8)) & (1<<BitSize-1).
	BitOffset int64
	BitSize   int64 // 0 if the member is not a bitfield
}

// Enumerator is one constant of an enum.
type Enumerator struct {
	Name  string
	Value int64
}

// Strip returns t with typedefs and const, volatile and restrict qualifiers
// removed.
func (t *Type) Strip() *Type {
	for t != nil {
		switch t.Kind {
		case Typedef, Const, Volatile, Restrict:
			if t.Elem == nil {
				return t
			}
			t = t.Elem
		default:
			return t
		}
	}
	return t
}

// Field returns the member named by path, a dot-separated list of member
// names ("a.b.c"). Members of anonymous structs and unions are reachable by
// their own names, as in C. Typedefs and qualifiers are resolved on the way
// and offsets accumulate, so the result's Offset and BitOffset count from
// the start of t. Field cannot look through pointers.
func (t *Type) Field(path string) (Member, error) {
	cur := t.Strip()
	var acc Member
	acc.Type = t
	rest := path
	first := true
	for {
		name, more, _ := strings.Cut(rest, ".")
		if name == "" {
			return Member{}, &FieldError{Type: t.String(), Path: path, Reason: "empty element"}
		}
		if cur == nil || (cur.Kind != Struct && cur.Kind != Union) {
			what := "not a struct or union"
			if cur != nil && cur.Opaque {
				what = "opaque " + cur.String() + " (use File.Resolve)"
			} else if cur != nil {
				what = cur.String() + " is not a struct or union"
			}
			return Member{}, &FieldError{Type: t.String(), Path: path, Reason: what}
		}
		if cur.Opaque {
			return Member{}, &FieldError{Type: t.String(), Path: path, Reason: "opaque " + cur.String() + " (use File.Resolve)"}
		}
		m, ok := findMember(cur, name)
		if !ok {
			return Member{}, &FieldError{Type: t.String(), Path: path, Reason: fmt.Sprintf("%s has no member %q", cur, name), notFound: true}
		}
		if first {
			acc = m
			first = false
		} else {
			base := acc.Offset
			acc = m
			acc.Offset += base
			acc.BitOffset += base * 8
		}
		if more == "" {
			return acc, nil
		}
		rest = more
		cur = acc.Type.Strip()
	}
}

// HasField reports whether t.Field(path) succeeds.
func (t *Type) HasField(path string) bool {
	_, err := t.Field(path)
	return err == nil
}

// findMember looks name up among the members of t, descending into
// anonymous struct and union members. Offsets are relative to t.
func findMember(t *Type, name string) (Member, bool) {
	for _, m := range t.Members {
		if m.Name == name {
			return m, true
		}
	}
	for _, m := range t.Members {
		if m.Name != "" {
			continue
		}
		at := m.Type.Strip()
		if at == nil || (at.Kind != Struct && at.Kind != Union) {
			continue
		}
		if sub, ok := findMember(at, name); ok {
			sub.Offset += m.Offset
			sub.BitOffset += m.Offset * 8
			return sub, true
		}
	}
	return Member{}, false
}

// String returns the C spelling of t: "struct page", "long unsigned int",
// "struct page *", "int [3][4]", "const char *".
func (t *Type) String() string {
	if t == nil {
		return "<nil>"
	}
	switch t.Kind {
	case Void:
		return "void"
	case Struct, Union, Enum:
		if t.Name == "" {
			return t.Kind.String() + " {...}"
		}
		return t.Kind.String() + " " + t.Name
	case Typedef, Base:
		return t.Name
	case Pointer:
		if t.Elem == nil {
			return "void *"
		}
		s := t.Elem.String()
		if strings.HasSuffix(s, "*") {
			return s + "*"
		}
		return s + " *"
	case Array:
		var dims strings.Builder
		e := t
		for e != nil && e.Kind == Array {
			fmt.Fprintf(&dims, "[%d]", e.Len)
			e = e.Elem
		}
		return e.String() + " " + dims.String()
	case Const, Volatile, Restrict:
		if t.Elem != nil && t.Elem.Kind == Pointer {
			return t.Elem.String() + " " + t.Kind.String()
		}
		return t.Kind.String() + " " + t.Elem.String()
	case Func:
		return "func"
	}
	return t.Kind.String()
}

// FieldError reports a failed Type.Field path.
type FieldError struct {
	Type   string // the type Field was called on
	Path   string
	Reason string

	notFound bool
}

func (e *FieldError) Error() string {
	return "kdwarf: " + e.Type + ": field " + strconv.Quote(e.Path) + ": " + e.Reason
}

// Is makes errors.Is(err, ErrNotFound) true for a missing member.
func (e *FieldError) Is(target error) bool { return e.notFound && target == ErrNotFound }
