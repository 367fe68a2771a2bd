package walk

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/kdwarf"
	"github.com/vmleak/vmleak/kernel"
)

// get_info_end: the tracks follow s->inuse, and the free pointer first when
// it is stored outside the object (s->offset >= s->inuse: caches with a
// constructor, SLAB_TYPESAFE_BY_RCU or poisoning).
func TestTrackOffset(t *testing.T) {
	for _, tc := range []struct {
		name                string
		inuse, offset, size uint64
		redLeft             uint64
		want                uint64
		room                bool
	}{
		{"free pointer in the middle of the object", 232, 112, 304, 0, 232, true},
		{"free pointer after the object", 232, 232, 304, 0, 240, true},
		{"free pointer at 0 (before v5.7's relocation)", 64, 0, 128, 0, 64, true},
		{"left red zone", 64, 32, 8 + 64 + 64 + 8, 8, 64, true},
		{"no room for two tracks", 232, 232, 280, 0, 240, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ci := &cacheInfo{inuse: tc.inuse, offset: tc.offset, size: tc.size, redLeft: tc.redLeft,
				stats: &CacheStats{Name: "c", ObjectSize: tc.inuse}}
			if have := trackOffset(ci); have != tc.want {
				t.Errorf("track offset %d, want %d", have, tc.want)
			}
			err := checkTrackRoom(ci, &trackLayout{size: 32})
			if (err == nil) != tc.room {
				t.Errorf("room check: %v, want room %v", err, tc.room)
			}
		})
	}
}

// struct track of 6.1, 6.12 and 7.x: {addr; handle; cpu; pid; when}.
func TestTrackDecode(t *testing.T) {
	ulong := &kdwarf.Type{Kind: kdwarf.Base, Name: "long unsigned int", Size: 8}
	u32 := &kdwarf.Type{Kind: kdwarf.Base, Name: "unsigned int", Size: 4}
	i32 := &kdwarf.Type{Kind: kdwarf.Base, Name: "int", Size: 4, Signed: true}
	track := &kdwarf.Type{Kind: kdwarf.Struct, Name: "track", Size: 32, Members: []kdwarf.Member{
		{Name: "addr", Type: ulong},
		{Name: "handle", Type: &kdwarf.Type{Kind: kdwarf.Typedef, Name: "depot_stack_handle_t", Elem: u32}, Offset: 8, BitOffset: 64},
		{Name: "cpu", Type: i32, Offset: 12, BitOffset: 96},
		{Name: "pid", Type: i32, Offset: 16, BitOffset: 128},
		{Name: "when", Type: ulong, Offset: 24, BitOffset: 192},
	}}
	l := &trackLayout{size: 32}
	for _, f := range []struct {
		m    *kernel.Member
		name string
	}{{&l.addr, "addr"}, {&l.handle, "handle"}, {&l.cpu, "cpu"}, {&l.pid, "pid"}, {&l.when, "when"}} {
		m, err := kernel.MemberIn(track, f.name)
		if err != nil {
			t.Fatal(err)
		}
		*f.m = m
	}
	b := make([]byte, 32)
	binary.LittleEndian.PutUint64(b, 0xffffffffc05af0a5)
	binary.LittleEndian.PutUint32(b[8:], 0x06950040)
	binary.LittleEndian.PutUint32(b[12:], 1)
	binary.LittleEndian.PutUint32(b[16:], 0xffffffff) // pid -1
	binary.LittleEndian.PutUint64(b[24:], 4294894647)
	have, err := l.decode(b)
	want := Track{Addr: 0xffffffffc05af0a5, Handle: 0x06950040, CPU: 1, PID: -1, When: 4294894647}
	if err != nil || have != want {
		t.Errorf("have %+v, %v; want %+v", have, err, want)
	}
	if _, err := l.decode(b[:20]); err == nil || !strings.Contains(err.Error(), "when") {
		t.Errorf("a short track decoded: %v", err)
	}
}
