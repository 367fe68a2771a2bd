package stackdepot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/kdwarf"
	"github.com/vmleak/vmleak/kernel"
)

// Synthetic types with the layouts of the kernels' own union handle_parts
// and struct stack_record (measured from the fixtures' BTF for 6.1 and 6.12,
// and from lib/stackdepot.c for the releases between).
var (
	u32T   = &kdwarf.Type{Kind: kdwarf.Base, Name: "u32", Size: 4}
	ulongT = &kdwarf.Type{Kind: kdwarf.Base, Name: "long unsigned int", Size: 8}
	ptrT   = &kdwarf.Type{Kind: kdwarf.Pointer, Size: 8}
	listT  = &kdwarf.Type{Kind: kdwarf.Struct, Name: "list_head", Size: 16, Members: []kdwarf.Member{
		{Name: "next", Type: ptrT}, {Name: "prev", Type: ptrT, Offset: 8, BitOffset: 64}}}
)

type bitfield struct {
	name string
	bits int64
}

// handleParts builds union handle_parts { handle; struct { fields } }.
func handleParts(fields ...bitfield) *kdwarf.Type {
	s := &kdwarf.Type{Kind: kdwarf.Struct, Size: 4}
	var at int64
	for _, f := range fields {
		s.Members = append(s.Members, kdwarf.Member{Name: f.name, Type: u32T, Offset: at / 8, BitOffset: at, BitSize: f.bits})
		at += f.bits
	}
	return &kdwarf.Type{Kind: kdwarf.Union, Name: "handle_parts", Size: 4, Members: []kdwarf.Member{
		{Name: "handle", Type: &kdwarf.Type{Kind: kdwarf.Typedef, Name: "depot_stack_handle_t", Elem: u32T}},
		{Type: s},
	}}
}

var (
	// 6.1 (and v4.6 to v6.2): slabindex:16 offset:10 valid:1 extra:5.
	parts61 = handleParts(bitfield{"slabindex", 16}, bitfield{"offset", 10}, bitfield{"valid", 1}, bitfield{"extra", 5})
	// v6.3 to v6.7: pool_index:16 offset:10 valid:1 extra:5.
	parts63 = handleParts(bitfield{"pool_index", 16}, bitfield{"offset", 10}, bitfield{"valid", 1}, bitfield{"extra", 5})
	// 6.8.y and v6.9-rc1/rc2: pool_index:17 offset:10 extra:5, the index
	// itself up to 6.8.2, the index plus one in 6.8.3, 6.8.4 and the rcs.
	parts68 = handleParts(bitfield{"pool_index", 17}, bitfield{"offset", 10}, bitfield{"extra", 5})
	// v6.9 on: pool_index_plus_1:17 offset:10 extra:5.
	parts69 = handleParts(bitfield{"pool_index_plus_1", 17}, bitfield{"offset", 10}, bitfield{"extra", 5})
)

// record61 is 6.1's struct stack_record { next; hash; size; handle; entries[] }.
func record61(parts *kdwarf.Type) *kdwarf.Type {
	return &kdwarf.Type{Kind: kdwarf.Struct, Name: "stack_record", Size: 24, Members: []kdwarf.Member{
		{Name: "next", Type: ptrT},
		{Name: "hash", Type: u32T, Offset: 8, BitOffset: 64},
		{Name: "size", Type: u32T, Offset: 12, BitOffset: 96},
		{Name: "handle", Type: parts, Offset: 16, BitOffset: 128},
		{Name: "entries", Type: &kdwarf.Type{Kind: kdwarf.Array, Elem: ulongT}, Offset: 24, BitOffset: 192},
	}}
}

// record69 is v6.9's struct stack_record { hash_list; hash; size; handle;
// count; union { entries[64]; struct { free_list; rcu_state } } }.
func record69(parts *kdwarf.Type) *kdwarf.Type {
	entries := &kdwarf.Type{Kind: kdwarf.Array, Elem: ulongT, Len: 64, Size: 512}
	free := &kdwarf.Type{Kind: kdwarf.Struct, Size: 24, Members: []kdwarf.Member{
		{Name: "free_list", Type: listT}, {Name: "rcu_state", Type: ulongT, Offset: 16, BitOffset: 128}}}
	u := &kdwarf.Type{Kind: kdwarf.Union, Size: 512, Members: []kdwarf.Member{{Name: "entries", Type: entries}, {Type: free}}}
	return &kdwarf.Type{Kind: kdwarf.Struct, Name: "stack_record", Size: 544, Members: []kdwarf.Member{
		{Name: "hash_list", Type: listT},
		{Name: "hash", Type: u32T, Offset: 16, BitOffset: 128},
		{Name: "size", Type: u32T, Offset: 20, BitOffset: 160},
		{Name: "handle", Type: parts, Offset: 24, BitOffset: 192},
		{Name: "count", Type: u32T, Offset: 28, BitOffset: 224},
		{Type: u, Offset: 32, BitOffset: 256},
	}}
}

func mustLayout(t *testing.T, parts, record *kdwarf.Type) *layout {
	t.Helper()
	l, err := newLayout(parts, record, kernel.MemberIn)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Each handle layout splits handles as the kernel's bitfields say.
func TestDecodeHandles(t *testing.T) {
	for _, tc := range []struct {
		name   string
		parts  *kdwarf.Type
		handle uint32
		want   parts
		mode   int
	}{
		{"6.1 first record", parts61, 1 << 26, parts{0, 0, true}, indexPlain},
		{"6.1 pool 3 offset 0x2a", parts61, 3 | 0x2a<<16 | 1<<26, parts{3, 0x2a, true}, indexPlain},
		{"6.1 last offset, top pool", parts61, 0xffff | 0x3ff<<16 | 1<<26, parts{0xffff, 0x3ff, true}, indexPlain},
		{"6.1 extra bits do not move the fields", parts61, 7 | 5<<16 | 1<<26 | 0x1f<<27, parts{7, 5, true}, indexPlain},
		{"6.1 valid clear", parts61, 7 | 5<<16, parts{7, 5, false}, indexPlain},
		{"6.3 pool_index with valid", parts63, 2 | 9<<16 | 1<<26, parts{2, 9, true}, indexPlain},
		{"6.8.y pool_index without valid", parts68, 2 | 9<<17, parts{2, 9, true}, indexEither},
		{"6.9 first record of pool 0", parts69, 1, parts{1, 0, true}, indexPlus1},
		{"6.9 pool_index_plus_1 17 bits", parts69, 0x1ffff | 0x3ff<<17, parts{0x1ffff, 0x3ff, true}, indexPlus1},
		{"6.9 extra bits", parts69, 4 | 0x21<<17 | 0x15<<27, parts{4, 0x21, true}, indexPlus1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := record61(tc.parts)
			l := mustLayout(t, tc.parts, rec)
			if l.indexMode != tc.mode {
				t.Errorf("index mode %d, want %d", l.indexMode, tc.mode)
			}
			if have := l.decode(tc.handle); have != tc.want {
				t.Errorf("handle %#08x: have %+v, want %+v", tc.handle, have, tc.want)
			}
			if l.poolSize != 16384 {
				t.Errorf("pool size %d, want 16384 (4 pages: offset 10 bits << 4)", l.poolSize)
			}
		})
	}
}

func TestLayouts(t *testing.T) {
	l := mustLayout(t, parts61, record61(parts61))
	if l.hdrSize != 24 || l.maxFrames != 0 || l.size.Offset() != 12 || l.handle.Offset() != 16 {
		t.Errorf("6.1 record: header %d, max frames %d, size at %d, handle at %d; want 24, 0 (flexible), 12, 16",
			l.hdrSize, l.maxFrames, l.size.Offset(), l.handle.Offset())
	}
	if m := l.extraMask(); m != 0xf8000000 {
		t.Errorf("6.1 extra mask %#x, want 0xf8000000", m)
	}
	l = mustLayout(t, parts69, record69(parts69))
	if l.hdrSize != 32 || l.maxFrames != 64 || l.recordBytes != 544 || l.size.Offset() != 20 || l.handle.Offset() != 24 {
		t.Errorf("6.9 record: header %d, max frames %d, %d bytes, size at %d, handle at %d; want 32, 64, 544, 20, 24",
			l.hdrSize, l.maxFrames, l.recordBytes, l.size.Offset(), l.handle.Offset())
	}
	for _, bad := range []struct {
		name  string
		parts *kdwarf.Type
	}{
		{"no index member", handleParts(bitfield{"idx", 16}, bitfield{"offset", 10})},
		{"offset not a bitfield", &kdwarf.Type{Kind: kdwarf.Union, Name: "handle_parts", Size: 4, Members: []kdwarf.Member{
			{Name: "pool_index_plus_1", Type: u32T, BitSize: 17}, {Name: "offset", Type: u32T}}}},
		{"no offset", handleParts(bitfield{"pool_index_plus_1", 17})},
	} {
		if _, err := newLayout(bad.parts, record61(parts61), kernel.MemberIn); err == nil {
			t.Errorf("%s: a layout was accepted", bad.name)
		}
	}
}

// fakeMem is sparse kernel memory.
type fakeMem struct {
	regions map[uint64][]byte
	reads   int
}

var errMissing = errors.New("missing from the dump")

func (f *fakeMem) put(va uint64, b []byte) {
	if f.regions == nil {
		f.regions = map[uint64][]byte{}
	}
	f.regions[va] = b
}

func (f *fakeMem) ReadVirt(p []byte, va uint64) error {
	f.reads++
	for start, b := range f.regions {
		if va >= start && va+uint64(len(p)) <= start+uint64(len(b)) {
			copy(p, b[va-start:])
			return nil
		}
	}
	return fmt.Errorf("%#x: %w", va, errMissing)
}

const (
	poolArray = 0xffffffff82000000
	poolBase  = 0xffff888010000000 // pool i at poolBase + i*0x100000
)

// depotFixture lays out pools and records in fake memory.
type depotFixture struct {
	t     *testing.T
	l     *layout
	mem   *fakeMem
	pools [][]byte
}

func newFixture(t *testing.T, l *layout, nPools, arrayLen int) *depotFixture {
	f := &depotFixture{t: t, l: l, mem: &fakeMem{}}
	arr := make([]byte, 8*arrayLen)
	for i := 0; i < nPools; i++ {
		p := make([]byte, l.poolSize)
		f.pools = append(f.pools, p)
		binary.LittleEndian.PutUint64(arr[8*i:], poolBase+uint64(i)*0x100000)
		f.mem.put(poolBase+uint64(i)*0x100000, p)
	}
	f.mem.put(poolArray, arr)
	return f
}

// put writes a record with its own handle and frames at offset (in 16-byte
// units) of pool i.
func (f *depotFixture) put(i int, offset uint64, own uint32, frames []uint64) {
	b := f.pools[i][offset<<depotStackAlign:]
	binary.LittleEndian.PutUint32(b[f.l.size.Offset():], uint32(len(frames)))
	binary.LittleEndian.PutUint32(b[f.l.handle.Offset():], own)
	for j, fr := range frames {
		binary.LittleEndian.PutUint64(b[f.l.hdrSize+8*uint64(j):], fr)
	}
}

func (f *depotFixture) depot(limit uint64) *Depot {
	return newDepot(f.l, f.mem, pools{va: poolArray, n: 8, limit: limit, what: "stack_pools[8]"})
}

func frames(n int, base uint64) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = base + uint64(i)*0x10
	}
	return out
}

func sameFrames(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Records of both layouts decode, and every way a handle can be wrong is a
// HandleError naming the handle (and the record, once it is known).
func TestStack(t *testing.T) {
	h61 := func(idx, off uint32) uint32 { return idx | off<<16 | 1<<26 }
	h69 := func(idxPlus1, off uint32) uint32 { return idxPlus1 | off<<17 }
	text := uint64(0xffffffff81000000)

	l61 := mustLayout(t, parts61, record61(parts61))
	f61 := newFixture(t, l61, 3, 8)
	f61.put(0, 0, h61(0, 0), frames(5, text))
	f61.put(2, 0x10, h61(2, 0x10), frames(16, text+0x1000))
	f61.put(1, 4, h61(1, 4), frames(3, text+0x2000)) // valid record
	f61.put(1, 8, h61(1, 9), frames(3, text))        // own handle disagrees
	f61.put(1, 0x20, h61(1, 0x20), nil)              // no frames
	// The last slot whose header fits: one frame would, two do not.
	binary.LittleEndian.PutUint32(f61.pools[2][0x3fe<<4+12:], 2)
	binary.LittleEndian.PutUint32(f61.pools[2][0x3fe<<4+16:], h61(2, 0x3fe))
	binary.LittleEndian.PutUint32(f61.pools[1][0x30<<4+12:], 5000) // size beyond the pool
	binary.LittleEndian.PutUint32(f61.pools[1][0x30<<4+16:], h61(1, 0x30))

	l69 := mustLayout(t, parts69, record69(parts69))
	f69 := newFixture(t, l69, 2, 8)
	f69.put(0, 0, h69(1, 0), frames(7, text))
	f69.put(1, 544>>4*3, h69(2, 544>>4*3), frames(64, text+0x3000))
	f69.put(1, 544>>4, h69(2, 544>>4), frames(65, text)) // more than entries[64]
	// A variable-size record (v6.8+) at the end of a pool: its header and
	// the frames that fit there are a record where a full struct
	// stack_record would not be; one frame more overruns the pool.
	tail := (l69.poolSize - l69.hdrSize - 9*8) >> depotStackAlign
	room := int(l69.poolSize-tail<<depotStackAlign-l69.hdrSize) / 8
	f69.put(1, tail, h69(2, uint32(tail)), frames(room, text+0x4000))
	f69.put(0, tail, h69(1, uint32(tail)), frames(room, text))
	binary.LittleEndian.PutUint32(f69.pools[0][tail<<depotStackAlign+l69.size.Offset():], uint32(room+1))
	overrun := fmt.Sprintf("%d frames (at most %d fit)", room+1, room)

	type want struct {
		frames []uint64
		err    string // substring of the HandleError, "" for success
	}
	for _, tc := range []struct {
		name   string
		d      *Depot
		handle uint32
		want   want
	}{
		{"6.1 first record", f61.depot(3), h61(0, 0), want{frames(5, text), ""}},
		{"6.1 pool 2", f61.depot(3), h61(2, 0x10), want{frames(16, text+0x1000), ""}},
		{"6.1 extra bits set by the user", f61.depot(3), h61(1, 4) | 3<<27, want{frames(3, text+0x2000), ""}},
		{"6.1 pool past depot_index", f61.depot(2), h61(2, 0x10), want{nil, "pool 2 is outside"}},
		{"6.1 pool past the array", f61.depot(3), h61(9, 0), want{nil, "pool 9 is outside"}},
		{"6.1 NULL pool", f61.depot(4), h61(3, 0), want{nil, "pool 3 is NULL"}},
		{"6.1 own handle disagrees", f61.depot(3), h61(1, 8), want{nil, "own handle is 0x04090001"}},
		{"6.1 empty record", f61.depot(3), h61(1, 0x20), want{nil, "0 frames"}},
		{"6.1 absurd size", f61.depot(3), h61(1, 0x30), want{nil, "5000 frames"}},
		{"6.1 frames past the pool", f61.depot(3), h61(2, 0x3fe), want{nil, "2 frames (at most 1 fit)"}},
		{"6.1 header past the pool", f61.depot(3), h61(2, 0x3ff), want{nil, "offset 0x3ff0 is past the end"}},
		{"6.1 valid bit clear", f61.depot(3), 2 | 0x10<<16, want{nil, "valid bit is clear"}},
		{"6.9 first record", f69.depot(2), h69(1, 0), want{frames(7, text), ""}},
		{"6.9 a full record", f69.depot(2), h69(2, 544>>4*3), want{frames(64, text+0x3000), ""}},
		{"6.9 pool index 0", f69.depot(2), h69(0, 5), want{nil, "pool index 0"}},
		{"6.9 header past the pool", f69.depot(2), h69(1, 0x3ff), want{nil, "past the end of the 16384-byte pool"}},
		{"6.9 short record ends the pool", f69.depot(2), h69(2, uint32(tail)), want{frames(room, text+0x4000), ""}},
		{"6.9 short record overruns the pool", f69.depot(2), h69(1, uint32(tail)), want{nil, overrun}},
		{"6.9 more frames than entries", f69.depot(2), h69(2, 544>>4), want{nil, "65 frames (at most 64 fit)"}},
		{"6.9 beyond pools_num", f69.depot(1), h69(2, 0), want{nil, "pool 1 is outside"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			have, err := tc.d.Stack(tc.handle)
			if tc.want.err == "" {
				if err != nil || !sameFrames(have, tc.want.frames) {
					t.Fatalf("have %x, %v; want %x", have, err, tc.want.frames)
				}
				return
			}
			var he *HandleError
			if !errors.As(err, &he) || he.Handle != tc.handle || !strings.Contains(err.Error(), tc.want.err) {
				t.Fatalf("have %x, %v; want a HandleError for %#08x containing %q", have, err, tc.handle, tc.want.err)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%#08x", tc.handle)) {
				t.Errorf("error %q does not name the handle", err)
			}
		})
	}

	t.Run("handle 0", func(t *testing.T) {
		for _, h := range []uint32{0, 0x1f << 27} {
			if _, err := f61.depot(3).Stack(h); !errors.Is(err, ErrNoStack) {
				t.Errorf("handle %#x: %v, want ErrNoStack", h, err)
			}
		}
	})
	t.Run("unreadable record", func(t *testing.T) {
		f := newFixture(t, l61, 1, 8)
		d := f.depot(1)
		f.mem.regions[poolBase] = f.mem.regions[poolBase][:0x100] // the pool's tail is missing
		_, err := d.Stack(h61(0, 0x20))
		var he *HandleError
		if !errors.As(err, &he) || !errors.Is(err, errMissing) || he.Record != poolBase+0x200 {
			t.Errorf("have %v, want a HandleError at %#x wrapping the read error", err, uint64(poolBase+0x200))
		}
	})
	t.Run("each record read once", func(t *testing.T) {
		d := f61.depot(3)
		a, _ := d.Stack(h61(2, 0x10))
		n := f61.mem.reads
		for range 10 {
			b, err := d.Stack(h61(2, 0x10))
			if err != nil || &a[0] != &b[0] {
				t.Fatal("a cached stack came back different")
			}
			if _, err := d.Stack(h61(1, 8)); err == nil {
				t.Fatal("a bad handle decoded once cached")
			}
		}
		if f61.mem.reads != n+2 { // the bad handle's pool pointer and header, once
			t.Errorf("%d reads for 20 cached lookups", f61.mem.reads-n)
		}
	})
}

// A pool_index without a valid bit (6.8.y, v6.9-rc1/rc2) means the index
// (6.8.0 to 6.8.2) or the index plus one (6.8.3, 6.8.4, the rcs); the
// record's own handle decides.
func TestAmbiguousPoolIndex(t *testing.T) {
	l := mustLayout(t, parts68, record69(parts68))
	h := func(idx, off uint32) uint32 { return idx | off<<17 }
	for _, tc := range []struct {
		name  string
		plus1 bool
	}{{"index as it is", false}, {"index plus one", true}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, l, 3, 8)
			// Handle index n names pool n-1 under plus-one, pool n otherwise:
			// fill every slot with the handle it would carry.
			for i := range 3 {
				for _, off := range []uint32{0, 34, 68} {
					stored := uint32(i)
					if tc.plus1 {
						stored++
					}
					f.put(i, uint64(off), h(stored, off), frames(2+i, 0xffffffff81000000+0x100*uint64(i)))
				}
			}
			d := f.depot(3)
			pool := 1
			idx := uint32(pool)
			if tc.plus1 {
				idx++
			}
			have, err := d.Stack(h(idx, 34))
			if err != nil || len(have) != 2+pool {
				t.Fatalf("have %x, %v; want the 3 frames of pool %d", have, err, pool)
			}
			wantMode := int32(indexPlain + 1)
			if tc.plus1 {
				wantMode = indexPlus1 + 1
			}
			if r := d.resolved.Load(); r != wantMode {
				t.Errorf("resolved %d, want %d", r, wantMode)
			}
		})
	}
}
