package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/vmleak/vmleak/kdwarf"
)

// ErrAbsent is wrapped by errors about a type, member or symbol this kernel
// does not have: a version difference, not corrupt data. Callers probing for
// a layout test it with errors.Is and take another branch; nothing reads a
// missing member as zero.
var ErrAbsent = errors.New("absent in this kernel")

// Member is the place of one member of a struct type, resolved once from
// the kernel's types. It is the fast path for structs read whole (a scan
// over every struct page, a freelist walk): Uint decodes the member from
// the struct's bytes, with the same decoder Value uses.
//
// The zero Member is absent: Present is false and every read is an error.
type Member struct {
	path    string // "struct slab.inuse", for messages
	off     int64  // byte offset; for a bitfield, of the byte holding its first bit
	bitOff  int64  // bitfields: first bit within the byte at off (0..7)
	bitSize int64  // 0 unless a bitfield
	size    int64  // bytes of the member's type
	present bool
}

// Present tells whether the kernel has the member.
func (m Member) Present() bool { return m.present }

// Offset is the member's byte offset in its struct.
func (m Member) Offset() uint64 { return uint64(m.off) }

// Size is the size of the member's type in bytes.
func (m Member) Size() int64 { return m.size }

// IsBitfield tells whether the member is a bitfield.
func (m Member) IsBitfield() bool { return m.bitSize != 0 }

// Bits is the width of a bitfield in bits; 0 for other members.
func (m Member) Bits() int64 { return m.bitSize }

func (m Member) String() string { return m.path }

// Uint decodes the member (an integer, enum, pointer or bitfield) from the
// bytes of its struct.
func (m Member) Uint(b []byte) (uint64, error) {
	if !m.present {
		return 0, fmt.Errorf("kernel: reading %s: %w", m.path, ErrAbsent)
	}
	x, ok := decodeUint(b, m.off, m.bitOff, m.bitSize, m.size)
	if !ok {
		return 0, fmt.Errorf("kernel: %s (%d bytes at offset %d) does not fit in %d bytes", m.path, m.size, m.off, len(b))
	}
	return x, nil
}

// decodeUint is the one little-endian decoder of integers and bitfields:
// size bytes at off, or bitSize bits starting bitOff bits into the byte at
// off. ok is false when b is too short or the size is not an integer's.
func decodeUint(b []byte, off, bitOff, bitSize, size int64) (uint64, bool) {
	if off < 0 {
		return 0, false
	}
	if bitSize != 0 {
		if bitSize > 64 || bitOff < 0 || bitOff > 7 {
			return 0, false
		}
		span := (bitOff + bitSize + 7) / 8
		if off+span > int64(len(b)) {
			return 0, false
		}
		var buf [16]byte
		copy(buf[:], b[off:off+span])
		lo := binary.LittleEndian.Uint64(buf[:8])
		hi := binary.LittleEndian.Uint64(buf[8:])
		x := lo >> uint(bitOff)
		if bitOff > 0 {
			x |= hi << uint(64-bitOff)
		}
		if bitSize < 64 {
			x &= 1<<uint(bitSize) - 1
		}
		return x, true
	}
	if off+size > int64(len(b)) {
		return 0, false
	}
	switch size {
	case 1:
		return uint64(b[off]), true
	case 2:
		return uint64(binary.LittleEndian.Uint16(b[off:])), true
	case 4:
		return uint64(binary.LittleEndian.Uint32(b[off:])), true
	case 8:
		return binary.LittleEndian.Uint64(b[off:]), true
	}
	return 0, false
}

// StructType returns the full definition of a struct or union by C name
// ("struct slab"). A kernel without it gives an error wrapping ErrAbsent,
// answered without building a DWARF index just to learn the type is not
// there.
func (k *Kernel) StructType(name string) (*kdwarf.Type, error) {
	if k.types == nil {
		return nil, fmt.Errorf("kernel: %s: no types (no vmlinux)", name)
	}
	if !k.types.Has(name) {
		return nil, fmt.Errorf("kernel: %s: %w", name, ErrAbsent)
	}
	t, err := k.TypeOf(name)
	if err != nil {
		return nil, err
	}
	return k.types.Resolve(t.Strip())
}

// HasType tells whether the kernel has a type of that C name.
func (k *Kernel) HasType(name string) bool {
	return k.types != nil && k.types.Has(name)
}

// SizeOf is the size in bytes of a type by C name.
func (k *Kernel) SizeOf(name string) (int64, error) {
	t, err := k.TypeOf(name)
	if err != nil {
		return 0, err
	}
	if s := k.sizeOf(t); s > 0 {
		return s, nil
	}
	return 0, fmt.Errorf("kernel: %s has no size", name)
}

// MemberOf resolves a member path ("inuse", "rcu_head.func") of a struct
// type. A member the kernel lacks is an error wrapping ErrAbsent.
func (k *Kernel) MemberOf(t *kdwarf.Type, path string) (Member, error) {
	name := t.String() + "." + path
	st := t.Strip()
	if st.Opaque {
		r, err := k.types.Resolve(st)
		if err != nil {
			return Member{}, err
		}
		st = r
	}
	return memberIn(st, name, path, k.sizeOf)
}

// MemberIn is MemberOf for a type that needs no kernel to resolve: one
// whose members, and their types, are all defined (no opaque stubs), such
// as types built by a test to stand for a layout no fixture has.
func MemberIn(t *kdwarf.Type, path string) (Member, error) {
	name := t.String() + "." + path
	st := t.Strip()
	if st.Opaque {
		return Member{}, fmt.Errorf("kernel: %s: %s is not defined here", name, st)
	}
	return memberIn(st, name, path, func(t *kdwarf.Type) int64 { return t.Strip().Size })
}

func memberIn(st *kdwarf.Type, name, path string, sizeOf func(*kdwarf.Type) int64) (Member, error) {
	f, err := st.Field(path)
	if err != nil {
		if errors.Is(err, kdwarf.ErrNotFound) {
			return Member{}, fmt.Errorf("kernel: %s: %w", name, ErrAbsent)
		}
		return Member{}, fmt.Errorf("kernel: %s: %w", name, err)
	}
	m := Member{path: name, off: f.Offset, size: sizeOf(f.Type), present: true}
	if f.BitSize != 0 {
		m.off, m.bitOff, m.bitSize = f.BitOffset/8, f.BitOffset%8, f.BitSize
	}
	end := m.off + m.size
	if m.bitSize != 0 {
		end = m.off + (m.bitOff+m.bitSize+7)/8
	}
	if st.Size > 0 && end > st.Size {
		return Member{}, fmt.Errorf("kernel: %s ends at byte %d, past its struct's %d", name, end, st.Size)
	}
	return m, nil
}

// Member is MemberOf by struct name: k.Member("struct slab", "inuse").
func (k *Kernel) Member(typeName, path string) (Member, error) {
	t, err := k.StructType(typeName)
	if err != nil {
		return Member{}, err
	}
	return k.MemberOf(t, path)
}

// Probe is Member for a member that only some kernels have: absent, it
// returns the zero Member (Present false); any other failure is returned.
func (k *Kernel) Probe(typeName, path string) (Member, error) {
	m, err := k.Member(typeName, path)
	if errors.Is(err, ErrAbsent) {
		return Member{}, nil
	}
	return m, err
}

// Decoder decodes members from the bytes of one struct with a sticky
// error: a run of reads is checked once, at the end, and the first failure
// names the member.
type Decoder struct {
	b   []byte
	err error
}

// Decode starts decoding members from a struct's bytes.
func Decode(b []byte) *Decoder { return &Decoder{b: b} }

// Uint decodes one member; after a failure it returns 0 and Err reports
// the first failure.
func (d *Decoder) Uint(m Member) uint64 {
	if d.err != nil {
		return 0
	}
	v, err := m.Uint(d.b)
	if err != nil {
		d.err = err
	}
	return v
}

// Err is the first failure of the decoder's reads.
func (d *Decoder) Err() error { return d.err }

// ProbeEnumerator is an enumerator only some kernels have (a version
// probe): ok is false when this kernel's types lack it, answered without a
// DWARF fallback; err is any other failure to read it.
func (k *Kernel) ProbeEnumerator(name string) (v int64, ok bool, err error) {
	if k.types == nil || !k.types.HasEnumerator(name) {
		return 0, false, nil
	}
	v, err = k.types.Enumerator(name)
	return v, true, err
}
