package stackdepot

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/vmleak/vmleak/internal/fuzzseed"
)

// refLayout is a handle layout spelled out in bits, for the reference
// decoder of FuzzStack (the depot reads its layout from types instead).
type refLayout struct {
	idxBits          uint
	valid            bool // a valid bit above the offset (v4.6 to v6.7)
	mode             int
	hdr, sizeAt, hAt uint64
	maxFrames        uint64
}

var refLayouts = []refLayout{
	{idxBits: 16, valid: true, mode: indexPlain, hdr: 24, sizeAt: 12, hAt: 16},
	{idxBits: 17, mode: indexPlus1, hdr: 32, sizeAt: 20, hAt: 24, maxFrames: 64},
	{idxBits: 17, mode: indexEither, hdr: 32, sizeAt: 20, hAt: 24, maxFrames: 64},
}

const (
	refPoolSize = 16384 // offset:10 << DEPOT_STACK_ALIGN
	refExtra    = 0xf8000000
)

// FuzzStack decodes handles against a depot whose records the input
// writes (pool, offset, own handle, frame count; frames are a pattern),
// and checks every answer against a reference that decodes the handle's
// bits by hand: the same frames or an error, ErrNoStack only for handle 0,
// every other error a *HandleError naming the handle, and no frame count
// beyond what fits in the pool (or in entries[]).
func FuzzStack(f *testing.F) {
	for _, s := range stackSeeds() {
		f.Add(s[0].(uint8), s[1].(uint8), s[2].([]byte), s[3].([]byte))
	}
	f.Fuzz(func(t *testing.T, which, geom uint8, recs, handles []byte) {
		rl := refLayouts[int(which)%len(refLayouts)]
		var l *layout
		switch rl.mode {
		case indexPlain:
			l = mustLayout(t, parts61, record61(parts61))
		case indexPlus1:
			l = mustLayout(t, parts69, record69(parts69))
		default:
			l = mustLayout(t, parts68, record69(parts68))
		}
		nPools := 1 + int(geom%3)
		limit := uint64(geom>>2) % 9
		fx := newFixture(t, l, nPools, 8)
		for ; len(recs) >= 9; recs = recs[9:] {
			i := int(recs[0]) % nPools
			off := uint64(binary.LittleEndian.Uint16(recs[1:])) % (refPoolSize >> depotStackAlign)
			b := fx.pools[i][off<<depotStackAlign:]
			if uint64(len(b)) < rl.hAt+4 {
				continue
			}
			binary.LittleEndian.PutUint32(b[rl.sizeAt:], uint32(binary.LittleEndian.Uint16(recs[7:])))
			copy(b[rl.hAt:rl.hAt+4], recs[3:7])
			for j := rl.hdr; j+8 <= uint64(len(b)) && j < rl.hdr+8*80; j += 8 {
				binary.LittleEndian.PutUint64(b[j:], 0xffffffff81000000+uint64(i)<<20+off<<8+j)
			}
		}
		// A pool whose tail is missing from the dump.
		short := geom&0x80 != 0
		if short {
			fx.mem.regions[poolBase] = fx.pools[0][:refPoolSize/2]
		}
		d := fx.depot(limit)

		readable := func(i, from, n uint64) bool {
			return !(short && i == 0 && from+n > refPoolSize/2)
		}
		record := func(h uint32, i, off uint64) ([]uint64, bool) {
			if i >= limit || int(i) >= nPools {
				return nil, false
			}
			at := off << depotStackAlign
			if at+rl.hdr > refPoolSize || !readable(i, at, rl.hdr) {
				return nil, false
			}
			p := fx.pools[i]
			own := binary.LittleEndian.Uint32(p[at+rl.hAt:])
			size := uint64(binary.LittleEndian.Uint32(p[at+rl.sizeAt:]))
			room := (refPoolSize - at - rl.hdr) / 8
			if rl.maxFrames > 0 {
				room = min(room, rl.maxFrames)
			}
			if own&^refExtra != h&^refExtra || size == 0 || size > room || !readable(i, at+rl.hdr, 8*size) {
				return nil, false
			}
			out := make([]uint64, size)
			for j := range out {
				out[j] = binary.LittleEndian.Uint64(p[at+rl.hdr+8*uint64(j):])
			}
			return out, true
		}
		resolved := -1
		cache := map[uint32][]uint64{}
		for ; len(handles) >= 4; handles = handles[4:] {
			h := binary.LittleEndian.Uint32(handles)
			got, err := d.Stack(h)
			if h&^refExtra == 0 {
				if !errors.Is(err, ErrNoStack) {
					t.Fatalf("handle %#x: %v, want ErrNoStack", h, err)
				}
				continue
			}
			want, cached := cache[h]
			if !cached {
				idx := uint64(h) & (1<<rl.idxBits - 1)
				off := uint64(h>>rl.idxBits) & 0x3ff
				ok := false
				switch {
				case rl.valid && h>>26&1 == 0:
				case rl.mode == indexPlain || (rl.mode == indexEither && resolved == indexPlain):
					want, ok = record(h, idx, off)
				case rl.mode == indexPlus1 || resolved == indexPlus1:
					if idx > 0 {
						want, ok = record(h, idx-1, off)
					}
				default:
					if want, ok = record(h, idx, off); ok {
						resolved = indexPlain
					} else if idx > 0 {
						if want, ok = record(h, idx-1, off); ok {
							resolved = indexPlus1
						}
					}
				}
				if !ok {
					want = nil
				}
				cache[h] = want
			}
			if want == nil {
				var he *HandleError
				if !errors.As(err, &he) || he.Handle != h {
					t.Fatalf("handle %#08x: %x, %v; want a HandleError", h, got, err)
				}
				continue
			}
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("handle %#08x: %x, %v; want %x", h, got, err, want)
			}
		}
	})
}

func stackSeeds() [][]any {
	rec := func(pool uint8, off uint16, own uint32, size uint16) []byte {
		b := []byte{pool, byte(off), byte(off >> 8)}
		b = binary.LittleEndian.AppendUint32(b, own)
		return binary.LittleEndian.AppendUint16(b, size)
	}
	hs := func(h ...uint32) []byte {
		var b []byte
		for _, v := range h {
			b = binary.LittleEndian.AppendUint32(b, v)
		}
		return b
	}
	h61 := func(idx, off uint32) uint32 { return idx | off<<16 | 1<<26 }
	h69 := func(idxPlus1, off uint32) uint32 { return idxPlus1 | off<<17 }
	return [][]any{
		{uint8(0), uint8(2 | 3<<2), append(rec(0, 0, h61(0, 0), 5), rec(1, 4, h61(1, 4), 3)...), hs(h61(0, 0), h61(1, 4), h61(1, 4)|3<<27, h61(2, 0), 0)},
		{uint8(1), uint8(1 | 2<<2), append(rec(0, 0, h69(1, 0), 7), rec(1, 34, h69(2, 34), 65)...), hs(h69(1, 0), h69(2, 34), h69(0, 3))},
		{uint8(2), uint8(2 | 3<<2), append(rec(1, 34, h69(2, 34), 2), rec(1, 68, h69(1, 68), 4)...), hs(h69(2, 34), h69(1, 68))},
		{uint8(0), uint8(0x80 | 1<<2), rec(0, 0x3fe, h61(0, 0x3fe), 1), hs(h61(0, 0x3fe), h61(0, 0x3ff))},
	}
}

func TestWriteStackSeeds(t *testing.T) {
	fuzzseed.Enabled(t)
	fuzzseed.Write(t, "FuzzStack", stackSeeds())
}
