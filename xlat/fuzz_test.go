package xlat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
)

// Fuzz input encoding: a sequence of 11-byte records, each placing one
// page-table entry in fake physical memory:
//
//	[0]     page number: the table page is at physical page<<12
//	[1:3]   entry index, little endian, taken mod 512
//	[3:11]  entry value, little endian
//
// The root table is always page 1 (0x1000). Pages no record touches are
// absent, so reads of them fail like pages filtered out of a dump.
const fuzzRecord = 11

func encodeTables(tables []pte) []byte {
	var b []byte
	for _, e := range tables {
		if e.idx == all {
			panic("encodeTables: fill entries not supported")
		}
		var r [fuzzRecord]byte
		r[0] = byte(e.pa >> pageShift)
		binary.LittleEndian.PutUint16(r[1:], uint16(e.idx))
		binary.LittleEndian.PutUint64(r[3:], e.val)
		b = append(b, r[:]...)
	}
	return b
}

func decodeTables(data []byte) *fakeMem {
	var tables []pte
	for ; len(data) >= fuzzRecord; data = data[fuzzRecord:] {
		tables = append(tables, pte{
			pa:  uint64(data[0]) << pageShift,
			idx: int(binary.LittleEndian.Uint16(data[1:]) % nEntries),
			val: binary.LittleEndian.Uint64(data[3:]),
		})
	}
	return newMem(tables)
}

func FuzzTranslate(f *testing.F) {
	for _, va := range []uint64{0xffff888000000abc, 0xffff888000200000, 0xffff888040000000, 0xffffffff81234567, 0xffff888000002000, 0xffff8880c0000000} {
		f.Add(encodeTables(tables4), va, false)
	}
	f.Add(encodeTables(tables5), uint64(0xff11000000001234), true)
	f.Add(encodeTables(tables5), uint64(0x0001000000000042), true)
	f.Add(encodeTables(tablesLoop), uint64(0x1ff), false)
	f.Fuzz(func(t *testing.T, data []byte, va uint64, la57 bool) {
		if len(data) > 64<<10 {
			return
		}
		mem := decodeTables(data)
		levels := 4
		if la57 {
			levels = 5
		}
		x := newT(t, mem, levels, false)
		x.walkLimit = 64
		ref := newT(t, mem, levels, true)

		pa, size, err := x.Translate(va)
		rpa, rsize, rerr := ref.Translate(va)
		if fmt.Sprint(pa, size, err) != fmt.Sprint(rpa, rsize, rerr) {
			t.Fatalf("cached %#x %#x %v != uncached %#x %#x %v", pa, size, err, rpa, rsize, rerr)
		}
		if again := fmt.Sprint(x.Translate(va)); again != fmt.Sprint(pa, size, err) {
			t.Fatalf("second (cached) translation differs: %s", again)
		}
		if err != nil {
			var te *TranslateError
			if !errors.As(err, &te) || te.VA != va || te.Level < 0 || te.Level > levels {
				t.Fatalf("bad error %#v", err)
			}
		} else {
			checkLeaf(t, va, pa, size)
		}

		// Mappings over the single byte at va agrees with Translate,
		// except where Mappings refuses to follow a loop.
		var got []Mapping
		var errs []error
		loop := false
		for m, e := range x.Mappings(va, va+1) {
			if e != nil {
				errs = append(errs, e)
				loop = loop || errors.Is(e, ErrTableLoop)
				continue
			}
			got = append(got, m)
		}
		switch {
		case err == nil && !loop:
			if len(got) != 1 || got[0] != (Mapping{va, pa, 1, size}) || len(errs) != 0 {
				t.Fatalf("Mappings(%#x) = %v %v; Translate = %#x %#x", va, got, errs, pa, size)
			}
		case err != nil:
			if len(got) != 0 {
				t.Fatalf("Mappings(%#x) = %v, but Translate failed: %v", va, got, err)
			}
			if !loop && (errors.Is(err, ErrNotMapped) || errors.Is(err, ErrNonCanonical)) && len(errs) != 0 {
				t.Fatalf("Mappings(%#x) errors %v, Translate: %v", va, errs, err)
			}
		}

		// A full walk terminates, is ordered, and agrees with Translate.
		var next uint64  // end of the previous mapping
		wrapped := false // the previous mapping ended at 2^64
		n := 0
		for m, e := range x.Mappings(0, 0) {
			if n++; n > 2000 {
				break
			}
			if e != nil {
				continue
			}
			if m.Size == 0 || wrapped || m.VA < next {
				t.Fatalf("bad or unordered mapping %+v after end %#x", m, next)
			}
			next = m.VA + m.Size
			wrapped = next == 0
			for _, off := range []uint64{0, m.Size - 1} {
				p, s, err := x.Translate(m.VA + off)
				if err != nil || p != m.PA+off || s != m.PageSize {
					t.Fatalf("mapping %+v: Translate(+%#x) = %#x %#x %v", m, off, p, s, err)
				}
			}
		}

		buf := make([]byte, 64)
		if n, err := x.ReadVirt(buf, va); n > len(buf) || (n < len(buf)) != (err != nil) {
			t.Fatalf("ReadVirt = %d, %v", n, err)
		}
	})
}

func checkLeaf(t *testing.T, va, pa, size uint64) {
	t.Helper()
	switch size {
	case 4 << 10, 2 << 20, 1 << 30:
	default:
		t.Fatalf("page size %#x", size)
	}
	if pa&(size-1) != va&(size-1) || pa >= 1<<52 {
		t.Fatalf("Translate(%#x) = %#x with page size %#x", va, pa, size)
	}
}
