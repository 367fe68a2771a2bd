package owners_test

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/testkernel"
	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/owners"
	"github.com/vmleak/vmleak/stackdepot"
	"github.com/vmleak/vmleak/symbolize"
	"github.com/vmleak/vmleak/walk"
)

// victim is an object whose track a test corrupts.
type victim struct {
	obj   walk.Object
	track walk.Track
}

// Bad tracks in a real dump, as a corrupt or crafted one has them: on the
// 6.1 slub_debug=U ELF dump, one leaked object's track caller is made wild,
// another's stack depot handle points past the pools, and the stack record
// the leaks share claims an absurd size. Each is reported (the object's
// address, the handle, the size), every object is still counted once (the
// wild one as unattributed, the others by their callers, which do not
// depend on the stack), and the report is partial.
func TestCorruptTracks(t *testing.T) {
	m := fixture.Load(t, "bookworm-slubdbg")
	var d fixture.DumpFile
	for _, f := range m.Dumps {
		if f.Format == "elf" {
			d = f
		}
	}
	if d.File == "" {
		t.Fatal("bookworm-slubdbg has no ELF dump to patch")
	}
	good := testkernel.Open(t, m, d)
	w, err := walk.New(good)
	if err != nil {
		t.Fatal(err)
	}
	tm := m.TestModule
	leakCache := "kmalloc-" + kmallocName(tm.LeakSize)
	s := symbolize.New(w)
	// Two leaked objects of the test module, by their tracks.
	var leaks []victim
	err = w.Tracks(leakCache, false, func(o walk.Object, tr walk.Tracks, err error) bool {
		if err != nil {
			t.Fatal(err)
		}
		if f := s.Code(tr.Alloc.Addr); siteIn(f, tm.Module, tm.LeakSite) {
			leaks = append(leaks, victim{o, tr.Alloc})
		}
		return len(leaks) < 2
	})
	if err != nil || len(leaks) < 2 {
		t.Fatalf("%d leaked objects found (%v)", len(leaks), err)
	}
	// trackAt finds the alloc track's caller word in an object's slot:
	// the leaked objects hold only text, so the first word equal to the
	// caller past the object's payload is the track.
	slot := func(o walk.Object) []byte {
		b := make([]byte, 2*o.Size+256)
		if err := good.ReadVirt(b, o.Addr); err != nil {
			t.Fatal(err)
		}
		return b
	}
	trackAt := func(v victim) uint64 {
		b := slot(v.obj)
		for off := uint64(tm.LeakSize) &^ 7; off+8 <= uint64(len(b)); off += 8 {
			if binary.LittleEndian.Uint64(b[off:]) == v.track.Addr {
				return v.obj.Addr + off
			}
		}
		t.Fatalf("no track in the slot of %#x", v.obj.Addr)
		return 0
	}
	handleOff := memberOffset(t, good, "struct track", "handle")
	addrOff := memberOffset(t, good, "struct track", "addr")

	const wild = 0xdead4ead00000000
	wildTrack := trackAt(leaks[0]) - addrOff
	badTrack := trackAt(leaks[1]) - addrOff
	// 6.1's handle: slabindex:16 | offset:10 | valid:1; pool 0xffff is
	// far past depot_index.
	badHandle := uint32(0xffff | 1<<26)
	handleWord := badTrack + (handleOff &^ 7)
	sizeWord, sizeOff := recordSize(t, good, leaks[0])
	words := map[uint64]uint64{
		wildTrack + addrOff: wild,
		handleWord:          withLow32(t, good, handleWord, handleOff%8, badHandle),
		sizeWord:            withLow32(t, good, sizeWord, sizeOff, 1<<20), // the leak stack's size: absurd
	}
	k := testkernel.OpenPatched(t, m, m.DumpPath(d), good, words)
	pw, c := testkernel.Census(t, k)
	dep, err := stackdepot.New(k)
	if err != nil {
		t.Fatal(err)
	}
	mods, err := k.Modules()
	if err != nil {
		t.Fatal(err)
	}
	r, err := owners.Build(pw, c, mods, symbolize.New(pw), dep)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Partial {
		t.Error("the report is not partial")
	}
	for _, want := range []string{
		fmt.Sprintf("%#x: track caller %#x", leaks[0].obj.Addr, uint64(wild)),
		fmt.Sprintf("%#08x", badHandle),
		"1048576 frames",
	} {
		found := false
		for _, w := range r.Warnings {
			found = found || strings.Contains(w, want)
		}
		if !found {
			t.Errorf("no warning says %q; warnings: %q", want, r.Warnings)
		}
	}
	var census, counted, unattributedLeak, moduleLeak int64
	for _, cs := range c.Caches {
		census += cs.Allocated
	}
	for _, o := range r.Owners {
		counted += o.Objects
		for _, cs := range o.Caches {
			if cs.Cache != leakCache {
				continue
			}
			switch o.Owner {
			case owners.OwnerUnattributed:
				unattributedLeak += cs.Objects
			case tm.Module:
				moduleLeak += cs.Objects
			}
		}
	}
	if counted != census {
		t.Errorf("owners hold %d objects, the census %d", counted, census)
	}
	if moduleLeak != int64(tm.Leak-1) || unattributedLeak < 1 {
		t.Errorf("%s holds %d objects of %s, unattributed %d; want %d (the wild one unattributed)", tm.Module, moduleLeak, leakCache, unattributedLeak, tm.Leak-1)
	}
	for _, st := range r.Sites {
		if st.Caller.Addr == wild && (st.Owner != owners.OwnerUnattributed || st.Objects != 1) {
			t.Errorf("the wild caller's site: %+v", st)
		}
	}
}

func memberOffset(t *testing.T, k *kernel.Kernel, typ, path string) uint64 {
	t.Helper()
	mb, err := k.Member(typ, path)
	if err != nil {
		t.Fatal(err)
	}
	return mb.Offset()
}

// withLow32 is the word at va with the 4 bytes at byte off replaced by v.
func withLow32(t *testing.T, k *kernel.Kernel, va, off uint64, v uint32) uint64 {
	t.Helper()
	w, err := k.ReadPtr(va)
	if err != nil {
		t.Fatal(err)
	}
	shift := 8 * off
	return w&^(0xffffffff<<shift) | uint64(v)<<shift
}

// recordSize is the address of the 8-byte word holding stack_record.size
// of a victim's stack, and the size's byte offset in it, by 6.1's handle
// layout (stack_slabs[slabindex] + offset << 4).
func recordSize(t *testing.T, k *kernel.Kernel, v victim) (uint64, uint64) {
	t.Helper()
	slabs, err := k.Symbol("stack_slabs")
	if err != nil {
		t.Fatal(err)
	}
	h := v.track.Handle
	pool, err := k.ReadPtr(slabs + 8*uint64(h&0xffff))
	if err != nil {
		t.Fatal(err)
	}
	rec := pool + uint64(h>>16&0x3ff)<<4
	off := memberOffset(t, k, "struct stack_record", "size")
	if off%4 != 0 {
		t.Fatalf("stack_record.size at byte %d", off)
	}
	// size is a u32 in 6.1: its word is patched keeping the neighbour.
	return rec + off&^7, off % 8
}
