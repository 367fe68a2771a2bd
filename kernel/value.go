package kernel

import (
	"fmt"
	"strings"

	"github.com/vmleak/vmleak/kdwarf"
)

// Value is a typed location in kernel memory. Errors are sticky: a chain such
// as v.Field("a").Deref().Field("b").Uint() reports the first failure, with
// the path that led to it and the address. Nothing panics.
type Value struct {
	k    *Kernel
	va   uint64
	t    *kdwarf.Type
	path string
	// For bitfields: bit offset from va and width.
	bitOff, bitSize int64
	err             error
	// Set by Load: the bytes of a struct read whole, starting at bufVA;
	// members inside it are decoded from them without reading memory again.
	buf   []byte
	bufVA uint64
}

// Err returns the first error met while building the value.
func (v Value) Err() error { return v.err }

// Addr returns the value's kernel virtual address.
func (v Value) Addr() uint64 { return v.va }

// Type returns the value's type (typedefs kept).
func (v Value) Type() *kdwarf.Type { return v.t }

// Path describes how the value was reached, for messages.
func (v Value) Path() string { return v.path }

func (v Value) fail(format string, args ...any) Value {
	if v.err == nil {
		v.err = fmt.Errorf("kernel: %s: %s", v.path, fmt.Sprintf(format, args...))
	}
	return v
}

// TypeOf looks a type up by C name ("struct kmem_cache", "unsigned long"),
// caching the answer.
func (k *Kernel) TypeOf(name string) (*kdwarf.Type, error) {
	if t, ok := k.typeCache.Load(name); ok {
		return t.(*kdwarf.Type), nil
	}
	t, err := k.types.Type(name)
	if err != nil {
		return nil, err
	}
	k.typeCache.Store(name, t)
	return t, nil
}

// Object is the value of type typeName at va.
func (k *Kernel) Object(va uint64, typeName string) Value {
	v := Value{k: k, va: va, path: fmt.Sprintf("(%s *)%#x", typeName, va)}
	t, err := k.TypeOf(typeName)
	if err != nil {
		v.err = err
		return v
	}
	v.t = t
	return v
}

// Var is the global variable name, read as typeName (vmlinux symbols carry no
// type; the caller names it as the kernel source declares it).
func (k *Kernel) Var(name, typeName string) Value {
	va, err := k.Symbol(name)
	v := k.Object(va, typeName)
	v.path = name
	if err != nil && v.err == nil {
		v.err = err
	}
	return v
}

// Field selects a member (a dotted path; members of anonymous structs and
// unions are reached by name, as in C).
func (v Value) Field(path string) Value {
	if v.err != nil {
		return v
	}
	st, err := v.k.types.Resolve(v.t.Strip())
	if err != nil {
		return v.fail("%v", err)
	}
	m, err := st.Field(path)
	if err != nil {
		return v.fail("%v", err)
	}
	out := Value{k: v.k, va: v.va + uint64(m.Offset), t: m.Type, path: v.path + "." + path, buf: v.buf, bufVA: v.bufVA}
	if m.BitSize != 0 {
		out.va = v.va + uint64(m.BitOffset/8)
		out.bitOff, out.bitSize = m.BitOffset%8, m.BitSize
	}
	return out
}

// HasField tells whether the value's struct has a member path (version probes).
func (v Value) HasField(path string) bool {
	if v.err != nil {
		return false
	}
	st, err := v.k.types.Resolve(v.t.Strip())
	return err == nil && st.HasField(path)
}

// Arrow is C's v->path: Deref then Field.
func (v Value) Arrow(path string) Value { return v.Deref().Field(path) }

// Deref follows a pointer.
func (v Value) Deref() Value {
	if v.err != nil {
		return v
	}
	t := v.t.Strip()
	if t.Kind != kdwarf.Pointer {
		return v.fail("dereferencing a non-pointer %s", t)
	}
	p, err := v.Ptr()
	if err != nil {
		v.err = err
		return v
	}
	if p == 0 {
		return v.fail("NULL pointer dereference")
	}
	elem := t.Elem
	if elem == nil {
		return v.fail("dereferencing void *")
	}
	return Value{k: v.k, va: p, t: elem, path: "(*" + v.path + ")"}
}

// Index is element i of an array, or of the array a pointer points at.
func (v Value) Index(i int64) Value {
	if v.err != nil {
		return v
	}
	t := v.t.Strip()
	base := v.va
	switch t.Kind {
	case kdwarf.Array:
		if t.Len > 0 && (i < 0 || i >= t.Len) {
			return v.fail("index %d out of range [0,%d)", i, t.Len)
		}
	case kdwarf.Pointer:
		p, err := v.Ptr()
		if err != nil {
			v.err = err
			return v
		}
		base = p
	default:
		return v.fail("indexing a %s", t)
	}
	elem := t.Elem
	if elem == nil {
		return v.fail("indexing void")
	}
	size := v.k.sizeOf(elem)
	return Value{k: v.k, va: base + uint64(i*size), t: elem, path: fmt.Sprintf("%s[%d]", v.path, i)}
}

// Cast reinterprets the value's address as typeName.
func (v Value) Cast(typeName string) Value {
	if v.err != nil {
		return v
	}
	out := v.k.Object(v.va, typeName)
	out.path = fmt.Sprintf("(%s)%s", typeName, v.path)
	return out
}

// ContainerOf is the struct typeName whose member path holds this value
// (the kernel's container_of).
func (v Value) ContainerOf(typeName, member string) Value {
	if v.err != nil {
		return v
	}
	t, err := v.k.TypeOf(typeName)
	if err != nil {
		return v.fail("%v", err)
	}
	st, err := v.k.types.Resolve(t.Strip())
	if err != nil {
		return v.fail("%v", err)
	}
	m, err := st.Field(member)
	if err != nil {
		return v.fail("%v", err)
	}
	return Value{k: v.k, va: v.va - uint64(m.Offset), t: t, path: fmt.Sprintf("container_of(%s, %s, %s)", v.path, typeName, member)}
}

func (k *Kernel) sizeOf(t *kdwarf.Type) int64 {
	s := t.Strip()
	if s.Opaque {
		if r, err := k.types.Resolve(s); err == nil {
			s = r
		}
	}
	return s.Size
}

// Size is the size of the value's type in bytes.
func (v Value) Size() int64 { return v.k.sizeOf(v.t) }

// Bytes reads the value's bytes.
func (v Value) Bytes() ([]byte, error) {
	if v.err != nil {
		return nil, v.err
	}
	n := v.Size()
	if n <= 0 || n > 1<<20 {
		return nil, v.fail("cannot read %d bytes", n).err
	}
	b := make([]byte, n)
	if err := v.read(b); err != nil {
		return nil, err
	}
	return b, nil
}

// Uint reads an unsigned integer, enum, bool, pointer or bitfield.
func (v Value) Uint() (uint64, error) {
	if v.err != nil {
		return 0, v.err
	}
	t := v.t.Strip()
	switch t.Kind {
	case kdwarf.Base, kdwarf.Enum, kdwarf.Pointer:
	default:
		return 0, v.fail("reading %s as an integer", t).err
	}
	size := t.Size
	if v.bitSize == 0 && size != 1 && size != 2 && size != 4 && size != 8 {
		return 0, v.fail("integer of size %d", size).err
	}
	n := size
	if v.bitSize != 0 {
		n = (v.bitOff + v.bitSize + 7) / 8
	}
	var tmp [16]byte
	if err := v.read(tmp[:n]); err != nil {
		return 0, err
	}
	x, ok := decodeUint(tmp[:n], 0, v.bitOff, v.bitSize, size)
	if !ok {
		return 0, v.fail("cannot decode %d bytes as %s", n, t).err
	}
	return x, nil
}

// read fills p with the value's first len(p) bytes: from the buffer of a
// loaded struct when the value lies inside it, else from memory.
func (v Value) read(p []byte) error {
	if v.buf != nil && v.va >= v.bufVA && v.va-v.bufVA+uint64(len(p)) <= uint64(len(v.buf)) {
		copy(p, v.buf[v.va-v.bufVA:])
		return nil
	}
	if err := v.k.ReadVirt(p, v.va); err != nil {
		return &ReadError{VA: v.va, Path: v.path, Err: err}
	}
	return nil
}

// Load reads the whole value (a struct, typically) once; members reached
// from the result with Field are decoded from those bytes. It is the batched
// read for code that needs many members of one struct.
func (v Value) Load() Value {
	if v.err != nil {
		return v
	}
	b, err := v.Bytes()
	if err != nil {
		v.err = err
		return v
	}
	v.buf, v.bufVA = b, v.va
	return v
}

// Int reads a signed integer (sign-extended).
func (v Value) Int() (int64, error) {
	u, err := v.Uint()
	if err != nil {
		return 0, err
	}
	bits := v.bitSize
	if bits == 0 {
		bits = v.t.Strip().Size * 8
	}
	if bits < 64 && u&(1<<uint(bits-1)) != 0 {
		u |= ^uint64(0) << uint(bits)
	}
	return int64(u), nil
}

// Ptr reads a pointer (or an unsigned long holding an address).
func (v Value) Ptr() (uint64, error) { return v.Uint() }

// String reads a NUL-terminated string from a char array or a char pointer,
// at most 4096 bytes.
func (v Value) String() (string, error) {
	if v.err != nil {
		return "", v.err
	}
	t := v.t.Strip()
	va, limit := v.va, int64(4096)
	switch t.Kind {
	case kdwarf.Array:
		if t.Len > 0 {
			limit = min(limit, t.Len)
		}
	case kdwarf.Pointer:
		p, err := v.Ptr()
		if err != nil {
			return "", err
		}
		if p == 0 {
			return "", v.fail("NULL string pointer").err
		}
		va = p
	default:
		return "", v.fail("reading %s as a string", t).err
	}
	return v.k.ReadCString(va, int(limit))
}

// ReadCString reads a NUL-terminated string of at most max bytes, stopping
// at a page end that cannot be read once something was read.
func (k *Kernel) ReadCString(va uint64, max int) (string, error) {
	var sb strings.Builder
	buf := make([]byte, 64)
	for sb.Len() < max {
		n := min(len(buf), max-sb.Len())
		// Do not cross a page in one read: the next page may be missing.
		if left := 4096 - int(va%4096); n > left {
			n = left
		}
		if err := k.ReadVirt(buf[:n], va); err != nil {
			return sb.String(), err
		}
		for i := 0; i < n; i++ {
			if buf[i] == 0 {
				sb.Write(buf[:i])
				return sb.String(), nil
			}
		}
		sb.Write(buf[:n])
		va += uint64(n)
	}
	return sb.String(), nil
}

// Printable makes a string read from a dump safe to print: control and
// non-UTF-8 bytes are escaped (\x1b), so a corrupt or crafted dump cannot
// write terminal escapes or binary into the output.
func Printable(s string) string { return escape(s, false) }

// PrintableName is Printable for a name that column-based outputs
// (slabs, slabinfo, owners, modules) print as one field: a space is escaped
// too (\x20), so a crafted cache or module name cannot shift columns. No
// real cache or module name has one: /proc/slabinfo's own format could not
// carry it either.
func PrintableName(s string) string { return escape(s, true) }

func escape(s string, space bool) string {
	bad := func(c byte) bool { return c < 0x20 || c >= 0x7f || (space && c == ' ') }
	for i := 0; i < len(s); i++ {
		if bad(s[i]) {
			goto escape
		}
	}
	return s
escape:
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; bad(c) || c == '\\' {
			fmt.Fprintf(&sb, "\\x%02x", c)
		} else {
			sb.WriteByte(c)
		}
	}
	return sb.String()
}

// GlobalInt reads an integer global variable: an integer, bool, enum, or an
// atomic_t / atomic_long_t / atomic64_t (their counter). decls are the C
// types the kernel source declares it with — several where the declaration
// changed between releases. vmlinux symbols carry no type, so the symbol's
// size chooses among them, and a size that matches none is an error rather
// than a guess. Where the size is only an upper bound (symbols from
// kallsyms: up to the next symbol), the first declaration that fits is
// read.
func (k *Kernel) GlobalInt(name string, decls ...string) (int64, error) {
	if k.types == nil {
		return 0, fmt.Errorf("kernel: %s: no types (no vmlinux)", name)
	}
	sym, err := k.types.Symbol(name)
	if err != nil {
		return 0, err
	}
	var sizes []int64
	for _, decl := range decls {
		t, err := k.TypeOf(decl)
		if err != nil {
			return 0, fmt.Errorf("kernel: %s as %s: %w", name, decl, err)
		}
		size := k.sizeOf(t)
		sizes = append(sizes, size)
		if sym.Size != 0 && uint64(size) != sym.Size && !(sym.SizeBound && uint64(size) <= sym.Size) {
			continue
		}
		v := k.Var(name, decl)
		if st := t.Strip(); st.Kind == kdwarf.Struct {
			v = v.Field("counter")
		}
		if v.err != nil {
			return 0, v.err
		}
		if v.t.Strip().Signed {
			return v.Int()
		}
		u, err := v.Uint()
		return int64(u), err
	}
	return 0, fmt.Errorf("kernel: %s is %d bytes, not a %s (%v bytes)", name, sym.Size, strings.Join(decls, " or "), sizes)
}
