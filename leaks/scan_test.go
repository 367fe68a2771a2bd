package leaks

import (
	"encoding/binary"
	"fmt"
	"slices"
	"testing"

	"github.com/vmleak/vmleak/walk"
)

// fakeMem is sparse memory: 4 KiB pages by address; a read touching an
// absent page fails, as a page missing from a dump does.
type fakeMem map[uint64][]byte

func (m fakeMem) ReadVirt(p []byte, va uint64) error {
	for i := 0; i < len(p); {
		a := va + uint64(i)
		pg, ok := m[a&^(pageSize-1)]
		if !ok {
			return fmt.Errorf("fake: %#x missing", a)
		}
		i += copy(p[i:], pg[a%pageSize:])
	}
	return nil
}

func (m fakeMem) put(va, v uint64) {
	pg := m[va&^(pageSize-1)]
	if pg == nil {
		pg = make([]byte, pageSize)
		m[va&^(pageSize-1)] = pg
	}
	binary.LittleEndian.PutUint64(pg[va%pageSize:], v)
}

// The synthetic heap: two slabs of 8 objects (48 bytes in 64-byte slots),
// on pages of their own, and one page of root data.
const (
	slabA  = 0xffff888000100000 // objects 0-7
	slabB  = 0xffff888000200000 // objects 8-15
	stride = 64
	osize  = 48
	root   = 0xffffffff82a00000
)

func obj(i int) uint64 {
	if i < 8 {
		return slabA + uint64(i)*stride
	}
	return slabB + uint64(i-8)*stride
}

func TestScan(t *testing.T) {
	const poison = 0xdead000000000100 // LIST_POISON1
	tests := []struct {
		name       string
		free       []int
		roots      []uint64         // words of the root page
		objs       map[int][]uint64 // words of objects
		missing    []uint64         // pages absent from the dump
		regs       []uint64         // a CPU's saved registers (a root by value)
		want       []int            // reported
		unreadable int64
	}{
		{name: "nothing referenced", want: span(0, 16)},
		{name: "root", roots: []uint64{obj(3)}, want: without(span(0, 16), 3)},
		{name: "chain", roots: []uint64{obj(0)}, objs: map[int][]uint64{0: {obj(9)}, 9: {0, obj(2)}, 2: {0, 0, 0, 0, 0, obj(15)}},
			want: without(span(0, 16), 0, 9, 2, 15)},
		{name: "unrooted cycle is a leak", objs: map[int][]uint64{4: {obj(5)}, 5: {obj(4)}}, want: span(0, 16)},
		{name: "rooted cycle ends", roots: []uint64{obj(4)}, objs: map[int][]uint64{4: {obj(5)}, 5: {obj(6)}, 6: {obj(4)}},
			want: without(span(0, 16), 4, 5, 6)},
		{name: "self reference", objs: map[int][]uint64{7: {obj(7)}}, want: span(0, 16)},
		{name: "interior pointer", roots: []uint64{obj(1) + 17, obj(10) + osize - 1}, want: without(span(0, 16), 1, 10)},
		{name: "past object_size is padding", roots: []uint64{obj(1) + osize, obj(2) - 1}, want: span(0, 16)},
		{name: "free object is no root", free: []int{3}, objs: map[int][]uint64{3: {obj(4)}}, want: without(span(0, 16), 3)},
		{name: "pointer to a free object is no reference", free: []int{3}, roots: []uint64{obj(3)}, objs: map[int][]uint64{3: {obj(4)}},
			want: without(span(0, 16), 3)},
		{name: "low-bit tags", roots: []uint64{obj(1) | 1, obj(2) | 2, obj(3) | 3, obj(4) | 7}, want: without(span(0, 16), 1, 2, 3, 4)},
		{name: "poison and noise", roots: []uint64{poison, 0x122 + poison, 0xffffffffffffffff, 1, slabA - 8, slabB + 8*stride}, want: span(0, 16)},
		{name: "missing object page", roots: []uint64{obj(0), obj(9)}, objs: map[int][]uint64{0: {obj(1)}, 9: {obj(2)}},
			missing: []uint64{slabB}, want: without(span(0, 16), 0, 1, 9), unreadable: 1},
		{name: "missing root page", roots: []uint64{obj(0)}, missing: []uint64{root}, want: span(0, 16), unreadable: 1},
		{name: "held in a register", regs: []uint64{0, obj(6) + 8, poison}, objs: map[int][]uint64{6: {obj(12)}},
			want: without(span(0, 16), 6, 12)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := fakeMem{}
			for _, pg := range []uint64{slabA, slabB, root} {
				mem[pg] = make([]byte, pageSize)
			}
			for i, v := range tt.roots {
				mem.put(root+uint64(i)*8, v)
			}
			for o, words := range tt.objs {
				for i, v := range words {
					mem.put(obj(o)+uint64(i)*8, v)
				}
			}
			for _, pg := range tt.missing {
				delete(mem, pg)
			}
			var slabs []walk.Slab
			for _, base := range []uint64{slabB, slabA} { // out of order: the table sorts
				s := walk.Slab{Cache: "test", First: base, Stride: stride, ObjectSize: osize, N: 8, Allocated: []uint64{0xff}}
				for _, f := range tt.free {
					if obj(f)-base < 8*stride {
						s.Allocated[0] &^= 1 << ((obj(f) - base) / stride)
					}
				}
				slabs = append(slabs, s)
			}
			tab, warnings := newTable(slabs)
			if len(warnings) > 0 {
				t.Fatal(warnings)
			}
			for _, workers := range []int{1, 2} {
				roots := []Region{{Kind: "data", VA: root, Size: pageSize}}
				if tt.regs != nil {
					roots = append(roots, Region{Kind: "registers", Size: 8 * uint64(len(tt.regs)), Words: tt.regs})
				}
				sc := scan(mem, tab, roots, workers)
				var got []int
				for _, l := range sc.leaks() {
					for i := 0; i < 16; i++ {
						if obj(i) == l.Addr {
							got = append(got, i)
						}
					}
				}
				want := tt.want
				for _, f := range tt.free {
					want = without(want, f)
				}
				if !slices.Equal(got, want) {
					t.Errorf("%d workers: reported %v, want %v", workers, got, want)
				}
				var r Result
				sc.fill(&r, nil)
				if r.UnreadablePages != tt.unreadable {
					t.Errorf("%d workers: %d unreadable pages, want %d", workers, r.UnreadablePages, tt.unreadable)
				}
				if r.Objects != int64(16-len(tt.free)) || r.Referenced != r.Objects-int64(len(got)) {
					t.Errorf("%d workers: objects %d, referenced %d, reported %d", workers, r.Objects, r.Referenced, len(got))
				}
			}
		})
	}
}

func span(a, b int) []int {
	var out []int
	for i := a; i < b; i++ {
		out = append(out, i)
	}
	return out
}

func without(s []int, drop ...int) []int {
	var out []int
	for _, v := range s {
		if !slices.Contains(drop, v) {
			out = append(out, v)
		}
	}
	return out
}

// Slabs a corrupt cache or struct slab describes are left out, never
// indexed or read at their claimed size.
func TestTableBadGeometry(t *testing.T) {
	ok := walk.Slab{Cache: "ok", First: slabA, Stride: stride, ObjectSize: osize, N: 8, Allocated: []uint64{0xff}}
	tests := []struct {
		name string
		s    walk.Slab
	}{
		{"object larger than its slot", walk.Slab{Cache: "bad", First: slabB, Stride: 64, ObjectSize: 65, N: 8, Allocated: []uint64{0xff}}},
		{"absurd count", walk.Slab{Cache: "bad", First: slabB, Stride: 64, ObjectSize: 64, N: 1 << 40, Allocated: []uint64{0xff}}},
		{"absurd stride", walk.Slab{Cache: "bad", First: slabB, Stride: 1 << 40, ObjectSize: 64, N: 1, Allocated: []uint64{1}}},
		{"zero stride", walk.Slab{Cache: "bad", First: slabB, ObjectSize: 0, N: 1, Allocated: []uint64{1}}},
		{"short bitmap", walk.Slab{Cache: "bad", First: slabB, Stride: 64, ObjectSize: 64, N: 65, Allocated: []uint64{1}}},
		{"wraps", walk.Slab{Cache: "bad", First: ^uint64(0) - 100, Stride: 64, ObjectSize: 64, N: 8, Allocated: []uint64{0xff}}},
		{"overlaps", walk.Slab{Cache: "bad", First: slabA + 8, Stride: 64, ObjectSize: 64, N: 8, Allocated: []uint64{0xff}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, warnings := newTable([]walk.Slab{ok, tt.s})
			if len(warnings) != 1 || len(tab.slabs) != 1 || tab.n != 8 {
				t.Errorf("table of %d slabs, %d objects, warnings %q; want the good slab only and one warning", len(tab.slabs), tab.n, warnings)
			}
		})
	}
}

// Lookups allocate nothing: the scan's inner loop.
func TestLookupAllocs(t *testing.T) {
	tab, _ := newTable([]walk.Slab{{Cache: "x", First: slabA, Stride: stride, ObjectSize: osize, N: 8, Allocated: []uint64{0xff}}})
	if n := testing.AllocsPerRun(100, func() { tab.lookup(obj(3) + 5) }); n != 0 {
		t.Errorf("lookup allocates %v times", n)
	}
}

// BenchmarkWords is the scan's inner loop over a page of words of which a
// quarter point into a table of 64k slabs: no allocation per word.
func BenchmarkWords(b *testing.B) {
	const nslabs = 1 << 16
	var slabs []walk.Slab
	for i := range uint64(nslabs) {
		slabs = append(slabs, walk.Slab{Cache: "x", First: slabA + i*pageSize, Stride: stride, ObjectSize: osize, N: pageSize / stride, Allocated: []uint64{^uint64(0)}})
	}
	tab, _ := newTable(slabs)
	page := make([]byte, pageSize)
	for i := 0; i < pageSize; i += 8 {
		v := uint64(i) * 0x9e3779b97f4a7c15
		if i%32 == 0 {
			v = slabA + v%(nslabs*pageSize)
		}
		binary.LittleEndian.PutUint64(page[i:], v)
	}
	s := newScanner(fakeMem{}, tab)
	w := &worker{s: s}
	b.ReportAllocs()
	b.SetBytes(pageSize)
	for b.Loop() {
		w.words(page)
		for _, idx := range w.gray { // every reference a fresh one
			s.marked[idx/64].Store(0)
		}
		w.gray = w.gray[:0]
	}
}

// countingMem counts reads, to see the worker's pages at work.
type countingMem struct {
	fakeMem
	reads int
}

func (m *countingMem) ReadVirt(p []byte, va uint64) error {
	m.reads++
	return m.fakeMem.ReadVirt(p, va)
}

// The mark phase reads a slab page once for all the objects it reaches in
// it, re-reads a page another page evicted from its slot (slabA and slabB
// share slot 0), and reads an object that crosses a page boundary itself.
func TestWorkerPages(t *testing.T) {
	const cross = slabB + pageSize - 16 // a 48-byte object over slabB's end
	tests := []struct {
		name      string
		chain     []uint64 // root -> chain[0] -> chain[1] -> ...
		wantReads int
	}{
		{"eight neighbours", []uint64{obj(0), obj(1), obj(2), obj(3), obj(4), obj(5), obj(6), obj(7)}, 1 + 1},
		{"two pages in one slot", []uint64{obj(0), obj(8), obj(1), obj(9)}, 1 + 4},
		{"page crossing", []uint64{obj(0), cross}, 1 + 1 + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := &countingMem{fakeMem: fakeMem{}}
			for _, pg := range []uint64{slabA, slabB, slabB + pageSize, root} {
				mem.fakeMem[pg] = make([]byte, pageSize)
			}
			mem.put(root, tt.chain[0])
			for i := 0; i+1 < len(tt.chain); i++ {
				mem.put(tt.chain[i], tt.chain[i+1])
			}
			slabs := []walk.Slab{
				{Cache: "test", First: slabA, Stride: stride, ObjectSize: osize, N: 8, Allocated: []uint64{0xff}},
				{Cache: "test", First: slabB, Stride: stride, ObjectSize: osize, N: 8, Allocated: []uint64{0xff}},
				{Cache: "cross", First: cross, Stride: stride, ObjectSize: osize, N: 1, Allocated: []uint64{1}},
			}
			tab, warnings := newTable(slabs)
			if len(warnings) > 0 {
				t.Fatal(warnings)
			}
			sc := scan(mem, tab, []Region{{Kind: "data", VA: root, Size: pageSize}}, 1)
			for _, va := range tt.chain {
				if idx, ok := tab.lookup(va); !ok || !sc.isMarked(idx) {
					t.Errorf("%#x not marked", va)
				}
			}
			if mem.reads != tt.wantReads {
				t.Errorf("%d reads, want %d", mem.reads, tt.wantReads)
			}
			if have, want := sc.st.objectBytes.Load(), uint64(len(tt.chain))*osize; have != want {
				t.Errorf("%d object bytes scanned, want %d", have, want)
			}
		})
	}
}
