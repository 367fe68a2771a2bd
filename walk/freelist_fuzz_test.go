package walk

import (
	"errors"
	"math/bits"
	"testing"

	"github.com/vmleak/vmleak/internal/fuzzseed"
)

// Link bytes of FuzzFreelist: an object index (mod the slab's count), or
// one of these.
const (
	linkNull       = 255 // end of the freelist
	linkOutside    = 254 // a pointer past the slab
	linkUnreadable = 253 // the link's page is missing from the dump
	linkInterior   = 252 // a pointer inside an object, not at its start
)

// FuzzFreelist checks the freelist walk against a plain reference: the
// fuzz input lays out a slab of up to 255 objects whose free pointers
// (encoded raw, plain or swab, at the cache's offset) lead to another
// object, NULL, outside the slab, inside an object or to unreadable memory.
// The walk must mark exactly the objects the reference visits, stop where
// it stops, with the same kind of error, and never visit an object twice.
func FuzzFreelist(f *testing.F) {
	for _, s := range freelistSeeds() {
		f.Add(s[0].([]byte), s[1].(uint8), s[2].(uint8), s[3].(uint8), s[4].(uint64))
	}
	f.Fuzz(func(t *testing.T, links []byte, head, geom, enc uint8, random uint64) {
		if len(links) == 0 || len(links) > 255 {
			return
		}
		n := uint64(len(links))
		size := uint64(8) << (geom % 6)        // 8 to 256 bytes
		offset := (uint64(geom>>3) * 8) % size // free pointer inside the object
		redLeft := uint64(0)
		if geom&0x80 != 0 {
			redLeft = 16
		}
		r := slabRange{base: 0xffff888012340000, size: size, n: n, redLeft: redLeft}
		ci := &cacheInfo{offset: offset, random: random}
		e := []int32{encRaw, encPlain, encSwab}[int(enc)%3]
		if e == encRaw {
			ci.random = 0
		}
		objAt := func(i uint64) uint64 { return r.base + redLeft + i*size }
		target := func(b byte) uint64 {
			switch b {
			case linkNull:
				return 0
			case linkOutside:
				return objAt(n)
			case linkInterior:
				return objAt(0) + 8
			}
			return objAt(uint64(b) % n)
		}
		mem := map[uint64]uint64{}
		for i, b := range links {
			if b == linkUnreadable {
				continue
			}
			ptrAddr := objAt(uint64(i)) + offset
			next := target(b)
			var stored uint64
			switch e {
			case encRaw:
				stored = next
			case encPlain:
				stored = next ^ ci.random ^ ptrAddr
			case encSwab:
				stored = next ^ ci.random ^ bits.ReverseBytes64(ptrAddr)
			}
			mem[ptrAddr] = stored
		}
		errUnread := errors.New("unreadable")
		read := func(va uint64) (uint64, error) {
			v, ok := mem[va]
			if !ok {
				return 0, errUnread
			}
			return v, nil
		}
		var start uint64
		switch head {
		case linkNull:
			start = 0
		case linkOutside, linkInterior:
			start = target(head)
		default:
			start = objAt(uint64(head) % n)
		}

		// The reference follows the links by index.
		refFree := map[uint64]bool{}
		refEnd, refAt := "end", uint64(0)
		cur := start
		for cur != 0 {
			d := cur - r.base - redLeft
			if cur < r.base+redLeft || d%size != 0 || d/size >= n {
				refEnd, refAt = "outside", cur
				break
			}
			i := d / size
			if refFree[i] {
				refEnd, refAt = "repeat", cur
				break
			}
			refFree[i] = true
			if links[i] == linkUnreadable {
				refEnd = "unreadable"
				break
			}
			cur = target(links[i])
		}

		w := &Walker{}
		w.enc.Store(e)
		free := make([]uint64, (n+63)/64)
		got, err := w.walkFreelistIn(read, ci, r, start, free)
		marked := 0
		for i := uint64(0); i < n; i++ {
			m := free[i/64]&(1<<(i%64)) != 0
			if m != refFree[i] {
				t.Fatalf("object %d: marked %v, the reference %v", i, m, refFree[i])
			}
			if m {
				marked++
			}
		}
		if got != int64(marked) {
			t.Fatalf("walk counted %d, marked %d", got, marked)
		}
		var fe *freelistError
		switch refEnd {
		case "end":
			if err != nil {
				t.Fatalf("a proper freelist of %d: %v", marked, err)
			}
		case "outside", "repeat":
			if !errors.As(err, &fe) || fe.at != refAt || fe.head != start {
				t.Fatalf("%s at %#x: walk gave %v", refEnd, refAt, err)
			}
		case "unreadable":
			if !errors.Is(err, errUnread) {
				t.Fatalf("unreadable link: walk gave %v", err)
			}
		}

		// Detection (encUnknown) on the same slab: it decides one encoding
		// and never marks more objects than exist or loops.
		w2 := &Walker{}
		free2 := make([]uint64, (n+63)/64)
		if got2, _ := w2.walkFreelistIn(read, ci, r, start, free2); got2 < 0 || uint64(got2) > n {
			t.Fatalf("detecting walk counted %d of %d objects", got2, n)
		}
	})
}

func freelistSeeds() [][]any {
	return [][]any{
		{[]byte{1, 2, 3, linkNull}, uint8(0), uint8(3), uint8(2), uint64(0x5a5a1234deadbeef)}, // 0 -> 1 -> 2 -> 3 -> NULL, swab
		{[]byte{1, 2, 0}, uint8(0), uint8(0x12), uint8(1), uint64(0x1357)},                    // cycle, plain
		{[]byte{1, linkUnreadable}, uint8(0), uint8(0x81), uint8(0), uint64(0)},               // unreadable link, red zone
		{[]byte{linkOutside}, uint8(0), uint8(5), uint8(2), uint64(0x42)},                     // out of the slab
		{[]byte{linkInterior, 0}, uint8(1), uint8(4), uint8(0), uint64(0)},                    // interior pointer
		{[]byte{0}, uint8(linkNull), uint8(2), uint8(1), uint64(0)},                           // empty freelist
	}
}

func TestWriteFreelistSeeds(t *testing.T) {
	fuzzseed.Enabled(t)
	fuzzseed.Write(t, "FuzzFreelist", freelistSeeds())
}
