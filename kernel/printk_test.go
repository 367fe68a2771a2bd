package kernel

import (
	"errors"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/fuzzseed"
)

// Positions in a 4 KiB ring: wrap w, index i.
func lpos(w, i uint64) uint64 { return w<<12 | i }

func TestTextSpan(t *testing.T) {
	ring := textRing{va: 0xffff888001000000, size: 4096}
	for _, tc := range []struct {
		name              string
		r                 textRing
		begin, next, tlen uint64
		wantOff           uint64
		wantErr           string // "" for none, "no text" for errNoText
	}{
		{name: "regular, text fills the block", r: ring, begin: lpos(3, 16), next: lpos(3, 64), tlen: 40, wantOff: 16},
		{name: "regular, text shorter than the block", r: ring, begin: lpos(3, 16), next: lpos(3, 64), tlen: 3, wantOff: 16},
		{name: "regular, ends at the last byte", r: ring, begin: lpos(7, 4000), next: lpos(7, 4088), tlen: 80, wantOff: 4000},
		{name: "wrapping: stored at the start", r: ring, begin: lpos(3, 4000), next: lpos(4, 48), tlen: 40, wantOff: 0},
		{name: "wrapping across 2^64", r: ring, begin: ^uint64(0) - 95, next: 48, tlen: 40, wantOff: 0},
		{name: "data-less", r: ring, begin: 1, next: 1, tlen: 12, wantErr: "no text"},
		{name: "data-less, empty line", r: ring, begin: 3, next: 3, tlen: 0, wantErr: "no text"},
		{name: "empty text", r: ring, begin: lpos(1, 8), next: lpos(1, 16), tlen: 0, wantErr: "no text"},
		{name: "one position odd", r: ring, begin: lpos(1, 9), next: lpos(1, 64), tlen: 8, wantErr: "not aligned"},
		{name: "misaligned next", r: ring, begin: lpos(1, 8), next: lpos(1, 60), tlen: 8, wantErr: "not aligned"},
		{name: "next before begin", r: ring, begin: lpos(2, 64), next: lpos(2, 16), tlen: 8, wantErr: "not one block"},
		{name: "positions two wraps apart", r: ring, begin: lpos(2, 64), next: lpos(4, 16), tlen: 8, wantErr: "not one block"},
		{name: "offsets far past the ring", r: ring, begin: lpos(1<<40, 0), next: lpos(1, 16), tlen: 8, wantErr: "not one block"},
		{name: "text longer than the block", r: ring, begin: lpos(3, 16), next: lpos(3, 64), tlen: 41, wantErr: "does not fit"},
		{name: "wrapping block shorter than its id", r: ring, begin: lpos(3, 4000), next: lpos(4, 0), tlen: 1, wantErr: "does not fit"},
		{name: "text past the ring's end", r: ring, begin: lpos(3, 4088), next: lpos(4, 8), tlen: 4000, wantErr: "does not fit"},
		{name: "text_len above a u16", r: ring, begin: lpos(3, 16), next: lpos(3, 64), tlen: 1 << 20, wantErr: "above"},
		{name: "zero-size ring", r: textRing{va: ring.va}, begin: 16, next: 64, tlen: 8, wantErr: "not a power of two"},
		{name: "size not a power of two", r: textRing{va: ring.va, size: 3000}, begin: 16, next: 64, tlen: 8, wantErr: "not a power of two"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			off, err := tc.r.span(tc.begin, tc.next, tc.tlen)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("error %v, want offset %#x", err, tc.wantOff)
			case tc.wantErr == "no text" && !errors.Is(err, errNoText):
				t.Fatalf("error %v, want errNoText", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("offset %#x, error %v; want an error with %q", off, err, tc.wantErr)
			case tc.wantErr == "" && off != tc.wantOff:
				t.Fatalf("offset %#x, want %#x", off, tc.wantOff)
			}
		})
	}
}

func TestRingChecks(t *testing.T) {
	const at = 0xffffffff82a00000
	for _, tc := range []struct {
		name        string
		va, n, size uint64
		sizeBits    uint64 // for newTextRing
		text        bool   // newTextRing(va, sizeBits), else checkRingArray(va, n, size)
		wantErr     string
	}{
		{name: "descs", va: 0xffffffff83000000, n: 4096, size: 24},
		{name: "NULL", va: 0, n: 4096, size: 24, wantErr: "is NULL"},
		{name: "zero element size", va: 0xffffffff83000000, n: 4096, size: 0, wantErr: "element size 0"},
		{name: "huge element size", va: 0xffffffff83000000, n: 4096, size: 1 << 40, wantErr: "element size"},
		{name: "no elements", va: 0xffffffff83000000, n: 0, size: 24, wantErr: "0 elements"},
		{name: "wraps the address space", va: 0xfffffffffffff000, n: 4096, size: 24, wantErr: "wraps"},
		{name: "ends at the top", va: 0xffffffffffffff00, n: 8, size: 32},
		{name: "text ring", va: 0xffffffff83000000, sizeBits: 17, text: true},
		{name: "text ring of 2^33", va: 0xffffffff83000000, sizeBits: 33, text: true, wantErr: "2^33"},
		{name: "text ring of 2^64", va: 0xffffffff83000000, sizeBits: 64, text: true, wantErr: "2^64"},
		{name: "text ring wraps", va: 0xffffffffffff0000, sizeBits: 17, text: true, wantErr: "wraps"},
		{name: "text ring NULL", va: 0, sizeBits: 17, text: true, wantErr: "is NULL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.text {
				var r textRing
				r, err = newTextRing(at, tc.va, tc.sizeBits)
				if err == nil && (r.va != tc.va || r.size != 1<<tc.sizeBits) {
					t.Fatalf("ring %+v", r)
				}
			} else {
				err = checkRingArray(at, "descs", tc.va, tc.n, tc.size)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var le *LogError
			if !errors.As(err, &le) || le.VA != at || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want a *LogError at %#x with %q", err, uint64(at), tc.wantErr)
			}
		})
	}
}

// FuzzTextSpan: whatever the positions, a span without error lies in the
// ring with room for the block id and the text.
func FuzzTextSpan(f *testing.F) {
	for _, s := range textSpanSeeds() {
		f.Add(s[0].(uint64), s[1].(uint64), s[2].(uint64), s[3].(uint64))
	}
	f.Fuzz(func(t *testing.T, sizeBits, begin, next, tlen uint64) {
		r := textRing{va: 0xffff888001000000, size: 1 << (sizeBits % 40)}
		if sizeBits%7 == 0 {
			r.size = sizeBits // also sizes that are not powers of two
		}
		off, err := r.span(begin, next, tlen)
		if err != nil {
			return
		}
		if tlen == 0 || tlen > maxLogText || off > r.size || r.size-off < blockIDSize+tlen {
			t.Fatalf("ring of %d: [%#x,%#x) text %d gave offset %#x", r.size, begin, next, tlen, off)
		}
	})
}

func textSpanSeeds() [][]any {
	return [][]any{
		{uint64(12), lpos(3, 16), lpos(3, 64), uint64(40)},
		{uint64(12), lpos(3, 4000), lpos(4, 48), uint64(40)},
		{uint64(12), ^uint64(0) - 95, uint64(48), uint64(40)},
		{uint64(0), uint64(0), uint64(8), uint64(1)},
	}
}

func TestWriteTextSpanSeeds(t *testing.T) {
	fuzzseed.Enabled(t)
	fuzzseed.Write(t, "FuzzTextSpan", textSpanSeeds())
}
