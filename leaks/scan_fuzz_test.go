package leaks

import (
	"encoding/binary"
	"slices"
	"sort"
	"testing"

	"github.com/vmleak/vmleak/internal/fuzzseed"
	"github.com/vmleak/vmleak/walk"
)

// FuzzScan runs the pointer scan on a small synthetic memory the input
// describes and checks it against a reference mark phase: up to four slabs
// (stride, object size, count and allocation bits from the input; slabs
// may overlap or claim objects larger than their slots), object and root
// words pointing at objects (at their start, inside, in the padding), at
// NULL or list poison, and missing pages. The reference indexes objects
// by a linear search and marks breadth first; the scan, on one worker and
// on three, must report exactly the allocated objects it did not reach and
// count the same objects and unreadable pages.
func FuzzScan(f *testing.F) {
	for _, s := range scanSeeds() {
		f.Add(s[0].([]byte), s[1].([]byte), s[2].(uint16))
	}
	f.Fuzz(func(t *testing.T, geom, ptrs []byte, missing uint16) {
		const base, span = 0xffff888000100000, 0x4000
		allOnes := ^uint64(0)
		var slabs []walk.Slab
		for k := 0; len(geom) >= 5 && k < 4; k, geom = k+1, geom[5:] {
			stride := 8 * (1 + uint64(geom[0])%64)
			size := 8 * (1 + uint64(geom[1])%64) // may exceed the stride: refused
			n := 1 + uint64(geom[2])%64
			alloc := uint64(geom[3]) | uint64(geom[4])<<8 | allOnes<<16
			first := base + uint64(k)*span + uint64(geom[1]>>6)*0x400
			slabs = append(slabs, walk.Slab{Cache: "c", First: first, Stride: stride, ObjectSize: size, N: n, Allocated: []uint64{alloc}})
		}
		// The reference's slab table: the geometry rules, then overlaps.
		type rs struct{ first, stride, size, n, alloc uint64 }
		var ref []rs
		sorted := slices.Clone(slabs)
		sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].First < sorted[j].First })
		for _, s := range sorted {
			if s.ObjectSize > s.Stride {
				continue
			}
			if len(ref) > 0 && s.First < ref[len(ref)-1].first+ref[len(ref)-1].n*ref[len(ref)-1].stride {
				continue
			}
			ref = append(ref, rs{s.First, s.Stride, s.ObjectSize, s.N, s.Allocated[0]})
		}
		type obj struct{ start, size uint64 }
		var objs []obj // allocated objects of the accepted slabs
		for _, s := range ref {
			for i := uint64(0); i < s.n; i++ {
				if s.alloc&(1<<i) != 0 {
					objs = append(objs, obj{s.first + i*s.stride, s.size})
				}
			}
		}
		lookup := func(v uint64) int {
			for i, o := range objs {
				if v >= o.start && v < o.start+o.size {
					return i
				}
			}
			return -1
		}

		// Memory: every page of the slabs and one root page, words from
		// ptrs: (255, x) NULL, (254, x) list poison, (a, b) object a%len
		// plus b%96 bytes (past its end at times).
		mem := fakeMem{}
		for _, s := range slabs {
			for pg := s.First &^ (pageSize - 1); pg < s.First+s.N*s.Stride; pg += pageSize {
				mem[pg] = make([]byte, pageSize)
			}
		}
		const root = 0xffffffff82a00000
		mem[root] = make([]byte, pageSize)
		word := func() (uint64, bool) {
			if len(ptrs) < 2 {
				return 0, false
			}
			a, b := ptrs[0], ptrs[1]
			ptrs = ptrs[2:]
			switch {
			case a == 255:
				return 0, true
			case a == 254:
				return 0xdead000000000100, true
			case len(objs) == 0:
				return base + uint64(b), true
			}
			return objs[int(a)%len(objs)].start + uint64(b)%96, true
		}
		for i := 0; i < 8; i++ {
			v, ok := word()
			if !ok {
				break
			}
			mem.put(root+8*uint64(i), v)
		}
		for _, o := range objs {
			for j := uint64(0); j < o.size/8 && j < 4; j++ {
				v, ok := word()
				if !ok {
					break
				}
				mem.put(o.start+8*j, v)
			}
		}
		var pages []uint64
		for pg := range mem {
			pages = append(pages, pg)
		}
		slices.Sort(pages)
		var gone int64
		for i, pg := range pages {
			if i < 16 && missing&(1<<i) != 0 {
				delete(mem, pg)
				if pg == root {
					gone++
				}
			}
		}

		// The reference mark phase, breadth first from the root page.
		marked := make([]bool, len(objs))
		var queue []int
		scanWords := func(from, size uint64) {
			for va := from; va+8 <= from+size; va += 8 {
				pg, ok := mem[va&^(pageSize-1)]
				if !ok {
					continue
				}
				if i := lookup(binary.LittleEndian.Uint64(pg[va%pageSize:])); i >= 0 && !marked[i] {
					marked[i] = true
					queue = append(queue, i)
				}
			}
		}
		scanWords(root, pageSize)
		missingObjPages := map[uint64]bool{}
		for len(queue) > 0 {
			o := objs[queue[0]]
			queue = queue[1:]
			for va := o.start &^ (pageSize - 1); va < o.start+o.size; va += pageSize {
				if _, ok := mem[va]; !ok {
					missingObjPages[va] = true
				}
			}
			scanWords(o.start, o.size)
		}
		var want []uint64
		for i, o := range objs {
			if !marked[i] {
				want = append(want, o.start)
			}
		}

		tab, _ := newTable(slabs)
		for _, workers := range []int{1, 3} {
			sc := scan(mem, tab, []Region{{Kind: "data", VA: root, Size: pageSize}}, workers)
			var got []uint64
			for _, l := range sc.leaks() {
				got = append(got, l.Addr)
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("%d workers: leaks %x, the reference %x", workers, got, want)
			}
			var r Result
			sc.fill(&r, nil)
			if r.Objects != int64(len(objs)) || r.Referenced != int64(len(objs)-len(want)) {
				t.Fatalf("%d workers: %d objects, %d referenced; the reference %d, %d", workers, r.Objects, r.Referenced, len(objs), len(objs)-len(want))
			}
			if r.UnreadablePages != gone+int64(len(missingObjPages)) {
				t.Fatalf("%d workers: %d unreadable pages, the reference %d", workers, r.UnreadablePages, gone+int64(len(missingObjPages)))
			}
		}
	})
}

func scanSeeds() [][]any {
	return [][]any{
		// Two slabs of 64-byte slots, 48-byte objects; a chain from the root.
		{[]byte{7, 5, 7, 0xff, 0, 7, 5, 7, 0xf0, 0}, []byte{0, 0, 3, 8, 255, 0, 1, 40}, uint16(0)},
		// A rooted cycle and an unrooted one; poison; interior pointers.
		{[]byte{3, 2, 15, 0xff, 0xff}, []byte{2, 17, 254, 0, 4, 0, 5, 0, 2, 0, 3, 0, 2, 0}, uint16(0)},
		// An object larger than its slot is refused; overlapping slabs.
		{[]byte{1, 9, 3, 7, 0, 63, 0x40, 63, 0xff, 0xff, 63, 0x41, 63, 1, 0}, []byte{0, 0, 1, 0, 2, 0}, uint16(0)},
		// Missing pages: the root page, then an object page.
		{[]byte{63, 63, 20, 0xff, 0xff}, []byte{0, 0, 5, 0}, uint16(1)},
		{[]byte{63, 63, 20, 0xff, 0xff}, []byte{0, 0, 9, 0, 12, 0}, uint16(2)},
	}
}

func TestWriteScanSeeds(t *testing.T) {
	fuzzseed.Enabled(t)
	fuzzseed.Write(t, "FuzzScan", scanSeeds())
}
