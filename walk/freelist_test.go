package walk

import (
	"math/bits"
	"testing"
)

// Free pointers as SLAB_FREELIST_HARDENED stores them: since 1ad53d9fa3f6
// (v5.7) ptr ^ s->random ^ swab(address of the pointer), before it without
// the swab (2482ddec670f, v4.14), and raw without hardening.
func TestDecode(t *testing.T) {
	const (
		random  = 0x5a5a_1234_dead_beef
		ptrAddr = 0xffff_8880_0123_4568
		next    = 0xffff_8880_0123_4600
	)
	for _, tc := range []struct {
		name   string
		enc    int32
		stored uint64
	}{
		{"swab (v5.7+)", encSwab, next ^ random ^ bits.ReverseBytes64(ptrAddr)},
		{"plain (v4.14-v5.6)", encPlain, next ^ random ^ ptrAddr},
		{"raw (not hardened)", encRaw, next},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if have := decode(tc.enc, tc.stored, random, ptrAddr); have != next {
				t.Errorf("decode = %#x, want %#x", have, uint64(next))
			}
		})
	}
}

// The first pointer of a dump decides the encoding: whichever form decodes
// to an object of the same slab (or to NULL).
func TestDetectEncoding(t *testing.T) {
	r := slabRange{base: 0xffff_8880_0123_4000, size: 0x100, n: 16}
	ci := &cacheInfo{random: 0x1357_9bdf_2468_ace0, offset: 0x80}
	obj := r.base + 3*r.size
	ptrAddr := obj + ci.offset
	next := r.base + 7*r.size
	for _, tc := range []struct {
		name   string
		stored uint64
		want   string
	}{
		{"swab", next ^ ci.random ^ bits.ReverseBytes64(ptrAddr), "swab"},
		{"plain", next ^ ci.random ^ ptrAddr, "plain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &Walker{}
			have, err := w.decodeNext(ci, r, tc.stored, ptrAddr)
			if err != nil || have != next {
				t.Fatalf("decodeNext = %#x, %v; want %#x", have, err, next)
			}
			if w.Encoding() != tc.want {
				t.Errorf("encoding %s, want %s", w.Encoding(), tc.want)
			}
			// Once decided, it stays: a plain-encoded pointer now decodes wrongly.
			if tc.want == "swab" {
				if v, _ := w.decodeNext(ci, r, next^ci.random^ptrAddr, ptrAddr); v == next {
					t.Error("encoding was decided again")
				}
			}
		})
	}
}

func TestSlabRangeIndex(t *testing.T) {
	r := slabRange{base: 0x1000, size: 0x40, n: 4, redLeft: 0x10}
	for _, tc := range []struct {
		obj  uint64
		idx  uint64
		want bool
	}{
		{0x1010, 0, true}, {0x10d0, 3, true},
		{0x1000, 0, false}, // the red zone, not an object
		{0x1011, 0, false}, // inside an object
		{0x1110, 0, false}, // past the last object
		{0, 0, false},
	} {
		i, ok := r.index(tc.obj)
		if ok != tc.want || (ok && i != tc.idx) {
			t.Errorf("index(%#x) = %d, %v; want %d, %v", tc.obj, i, ok, tc.idx, tc.want)
		}
	}
}
