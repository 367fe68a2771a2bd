package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/fuzzseed"
)

// testXA is struct xa_node as x86_64 lays it out with XA_CHUNK_SHIFT 6:
// shift, offset at 0 and 1, parent at 8, slots at 40.
var testXA = xaLayout{
	size:   576,
	shift:  Member{path: "shift", off: 0, size: 1, present: true},
	offset: Member{path: "offset", off: 1, size: 1, present: true},
	parent: Member{path: "parent", off: 8, size: 8, present: true},
	slots:  40, chunk: 64, chunkBits: 6,
}

// xaNodes is kernel memory holding xa_nodes by address.
type xaNodes map[uint64][]byte

func (m xaNodes) node(va uint64, shift, offset uint8, parent uint64, slots map[int]uint64) uint64 {
	b := make([]byte, testXA.size)
	b[0], b[1] = shift, offset
	binary.LittleEndian.PutUint64(b[8:], parent)
	for i, e := range slots {
		binary.LittleEndian.PutUint64(b[40+8*i:], e)
	}
	m[va] = b
	return va | 2 // xa_mk_node
}

func (m xaNodes) read(va uint64) ([]byte, error) {
	if b, ok := m[va]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("no node at %#x", va)
}

func TestXArrayWalk(t *testing.T) {
	const (
		array = 0xffffffff82100000
		n1    = 0xffff888001000000
		n2    = 0xffff888001001000
		n3    = 0xffff888001002000
		p     = 0xffff888003000000 // stored pointers
	)
	sibling, retry, zero := uint64(1<<2|2), uint64(256<<2|2), uint64(257<<2|2)
	for _, tc := range []struct {
		name  string
		build func(m xaNodes) uint64 // returns xa_head
		limit int
		want  []XArrayEntry
		err   string // substring of the *XArrayError; "" for none
	}{
		{name: "empty", build: func(xaNodes) uint64 { return 0 }},
		{name: "lone entry at 0", build: func(xaNodes) uint64 { return p }, want: []XArrayEntry{{0, p}}},
		{name: "zero entry head", build: func(xaNodes) uint64 { return zero }},
		{name: "one leaf node", build: func(m xaNodes) uint64 {
			return m.node(n1, 0, 0, 0, map[int]uint64{0: p, 3: p + 8, 5: sibling, 6: retry, 7: zero, 9: 0x2b, 63: p + 16})
		}, want: []XArrayEntry{{0, p}, {3, p + 8}, {9, 0x2b}, {63, p + 16}}},
		{name: "two levels in index order", build: func(m xaNodes) uint64 {
			c0 := m.node(n2, 0, 0, n1, map[int]uint64{2: p})
			c1 := m.node(n3, 0, 1, n1, map[int]uint64{5: p + 8})
			return m.node(n1, 6, 0, 0, map[int]uint64{0: c0, 1: c1})
		}, want: []XArrayEntry{{2, p}, {69, p + 8}}},
		{name: "child with the wrong shift", build: func(m xaNodes) uint64 {
			c := m.node(n2, 6, 1, n1, map[int]uint64{0: p})
			return m.node(n1, 6, 0, 0, map[int]uint64{0: p + 8, 1: c})
		}, want: []XArrayEntry{{0, p + 8}}, err: "shift 6 under a node of shift 6"},
		{name: "child with the wrong parent", build: func(m xaNodes) uint64 {
			c := m.node(n2, 0, 1, n3, map[int]uint64{0: p})
			return m.node(n1, 6, 0, 0, map[int]uint64{1: c})
		}, err: "parent 0xffff888001002000, reached through slot 1"},
		{name: "node under a leaf", build: func(m xaNodes) uint64 {
			return m.node(n1, 0, 0, 0, map[int]uint64{4: n2 | 2})
		}, err: "slot 4 of a leaf node"},
		{name: "past the index space", build: func(m xaNodes) uint64 {
			c := m.node(n2, 54, 16, n1, nil)
			return m.node(n1, 60, 0, 0, map[int]uint64{15: p, 16: c})
		}, want: []XArrayEntry{{15 << 60, p}}, err: "slot 16 of a node of shift 60 is past the 64-bit index space"},
		{name: "odd shift", build: func(m xaNodes) uint64 { return m.node(n1, 5, 0, 0, nil) }, err: "shift 5 is not a multiple of 6"},
		{name: "unreadable child", build: func(m xaNodes) uint64 {
			return m.node(n1, 6, 0, 0, map[int]uint64{0: n2 | 2})
		}, err: "unreadable node (node 0xffff888001001000, index 0x0): no node at"},
		{name: "limit", limit: 2, build: func(m xaNodes) uint64 {
			return m.node(n1, 0, 0, 0, map[int]uint64{0: p, 1: p, 2: p})
		}, want: []XArrayEntry{{0, p}}, err: "more than 2 nodes and entries"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := xaNodes{}
			head := tc.build(m)
			var have []XArrayEntry
			var err error
			for e, werr := range walkXArray(m.read, testXA, array, head, tc.limit) {
				if werr != nil {
					err = werr
					break
				}
				have = append(have, e)
			}
			if !slices.Equal(have, tc.want) {
				t.Errorf("entries %v, want %v", have, tc.want)
			}
			var xe *XArrayError
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case tc.err != "" && (!errors.As(err, &xe) || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("error %v, want an *XArrayError containing %q", err, tc.err)
			}
		})
	}
}

// FuzzXArrayWalk walks nodes of arbitrary bytes: the walk ends (within
// its limit), never panics, and yields strictly increasing indices.
func FuzzXArrayWalk(f *testing.F) {
	for _, s := range xarraySeeds() {
		f.Add(s[0].(uint8), s[1].([]byte))
	}
	f.Fuzz(fuzzXArrayWalk)
}

func TestWriteXArraySeeds(t *testing.T) {
	fuzzseed.Enabled(t)
	fuzzseed.Write(t, "FuzzXArrayWalk", xarraySeeds())
}

// xarraySeeds are a leaf node, a root with one leaf, and a short buffer.
func xarraySeeds() [][]any {
	leaf := make([]byte, testXA.size)
	binary.LittleEndian.PutUint64(leaf[40:], 0xffff888003000000)
	binary.LittleEndian.PutUint64(leaf[40+8*9:], 0x2b)
	out := [][]any{{uint8(0), leaf}}
	two := make([]byte, 2*testXA.size)
	two[0] = 6
	binary.LittleEndian.PutUint64(two[40+8:], xaFuzzBase+uint64(testXA.size)|2)
	two[testXA.size+1] = 1
	binary.LittleEndian.PutUint64(two[testXA.size+8:], xaFuzzBase)
	binary.LittleEndian.PutUint64(two[testXA.size+40+8*5:], 0xffff888003000008)
	return append(out, []any{uint8(0), two}, []any{uint8(3), []byte{1, 2, 3}})
}

func fuzzXArrayWalk(t *testing.T, headSel uint8, mem []byte) {
	m := xaNodes{}
	for i := 0; i*int(testXA.size) < len(mem) && i < 8; i++ {
		b := make([]byte, testXA.size)
		copy(b, mem[i*int(testXA.size):])
		m[xaFuzzBase+uint64(i)*uint64(testXA.size)] = b
	}
	head := xaFuzzBase + uint64(headSel%8)*uint64(testXA.size) | 2
	if headSel >= 128 {
		head = uint64(headSel) // a lone or internal entry
	}
	const limit = 1000
	n, last := 0, uint64(0)
	for e, err := range walkXArray(m.read, testXA, 0xffffffff82100000, head, limit) {
		if err != nil {
			break
		}
		if n > 0 && e.Index <= last {
			t.Fatalf("index %d after %d", e.Index, last)
		}
		last = e.Index
		if n++; n > limit {
			t.Fatalf("%d entries past the limit", n)
		}
	}
}

const xaFuzzBase = 0xffff888001000000
