package kernel

import (
	"errors"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/kdwarf"
)

func TestDecodeUint(t *testing.T) {
	b := []byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa}
	for _, tc := range []struct {
		name                       string
		off, bitOff, bitSize, size int64
		want                       uint64
		ok                         bool
	}{
		{"u8", 1, 0, 0, 1, 0x22, true},
		{"u16", 2, 0, 0, 2, 0x4433, true},
		{"u32", 0, 0, 0, 4, 0x44332211, true},
		{"u64", 2, 0, 0, 8, 0xaa99887766554433, true},
		{"u64 past the end", 3, 0, 0, 8, 0, false},
		{"size 3 is no integer", 0, 0, 0, 3, 0, false},
		{"negative offset", -1, 0, 0, 1, 0, false},
		// 0x2211 = 0b0010_0010_0001_0001: bits 4..11 are 0x21.
		{"bitfield in two bytes", 0, 4, 8, 4, 0x21, true},
		{"one bit", 1, 1, 1, 4, 1, true},   // 0x22 bit 1
		{"bit clear", 1, 0, 1, 4, 0, true}, // 0x22 bit 0
		// 15 bits from bit 0 of byte 8: 0xaa99 & 0x7fff.
		{"15-bit field at the end", 8, 0, 15, 4, 0x2a99, true},
		{"bitfield past the end", 9, 4, 8, 4, 0, false},
		{"64-bit field across 9 bytes", 0, 4, 64, 8, 0x9887766554433221, true},
		{"bit offset out of range", 0, 8, 1, 4, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			have, ok := decodeUint(b, tc.off, tc.bitOff, tc.bitSize, tc.size)
			if ok != tc.ok || have != tc.want {
				t.Errorf("have %#x, %v; want %#x, %v", have, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestMemberAbsentAndShort(t *testing.T) {
	var absent Member
	if absent.Present() {
		t.Fatal("the zero Member is present")
	}
	if _, err := absent.Uint(make([]byte, 64)); !errors.Is(err, ErrAbsent) {
		t.Errorf("absent member: have %v, want ErrAbsent", err)
	}
	m := Member{path: "struct x.y", off: 8, size: 8, present: true}
	if _, err := m.Uint(make([]byte, 12)); err == nil {
		t.Error("a member past the buffer decoded without error")
	}
	d := Decode(make([]byte, 12))
	d.Uint(Member{path: "struct x.a", off: 0, size: 4, present: true})
	d.Uint(m)
	d.Uint(absent)
	if err := d.Err(); err == nil || !strings.Contains(err.Error(), "struct x.y") {
		t.Errorf("decoder error %v, want the first failure (struct x.y)", err)
	}
}

// MemberIn reads members of a type defined in full by the caller: bitfields
// keep the widths the type gives them, and a missing member is ErrAbsent.
func TestMemberIn(t *testing.T) {
	u32 := &kdwarf.Type{Kind: kdwarf.Base, Name: "u32", Size: 4}
	bits := &kdwarf.Type{Kind: kdwarf.Struct, Size: 4, Members: []kdwarf.Member{
		{Name: "lo", Type: u32, Offset: 0, BitOffset: 0, BitSize: 17},
		{Name: "hi", Type: u32, Offset: 2, BitOffset: 17, BitSize: 10},
	}}
	u := &kdwarf.Type{Kind: kdwarf.Union, Name: "parts", Size: 4, Members: []kdwarf.Member{
		{Name: "all", Type: u32},
		{Type: bits},
	}}
	hi, err := MemberIn(u, "hi")
	if err != nil {
		t.Fatal(err)
	}
	if hi.Bits() != 10 || !hi.IsBitfield() {
		t.Errorf("hi: %d bits, bitfield %v; want 10, true", hi.Bits(), hi.IsBitfield())
	}
	// 0x3ff << 17 | 5
	b := []byte{0x05, 0x00, 0xfe, 0x07}
	if v, err := hi.Uint(b); err != nil || v != 0x3ff {
		t.Errorf("hi = %#x, %v; want 0x3ff", v, err)
	}
	lo, _ := MemberIn(u, "lo")
	if v, err := lo.Uint(b); err != nil || v != 5 {
		t.Errorf("lo = %#x, %v; want 5", v, err)
	}
	if _, err := MemberIn(u, "valid"); !errors.Is(err, ErrAbsent) {
		t.Errorf("a missing member: %v, want ErrAbsent", err)
	}
	if _, err := MemberIn(&kdwarf.Type{Kind: kdwarf.Struct, Name: "stub", Opaque: true}, "x"); err == nil {
		t.Error("an opaque type resolved without a kernel")
	}
}
