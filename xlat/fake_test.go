package xlat

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
)

// pte is one page-table entry placed in fake physical memory: entry idx of
// the table page at pa holds val. idx == all fills every entry of the page.
type pte struct {
	pa  uint64
	idx int
	val uint64
}

const all = -1

// missingPage is what fakeMem returns for a physical page it does not
// hold, standing in for a page filtered out of a dump.
type missingPage struct{ PA uint64 }

func (e *missingPage) Error() string { return fmt.Sprintf("physical page %#x missing from dump", e.PA) }

// fakeMem is sparse physical memory: page-table pages built from a []pte
// table, plus data pages whose bytes are pat(pa).
type fakeMem struct {
	pages   map[uint64]*[pageSize]byte
	maxRead int // if > 0, longer reads fail (a reader that can't serve whole pages)
	reads   atomic.Int64
}

// pat is the content of data pages: a function of the physical address,
// so tests can check which physical bytes a virtual read returned.
func pat(pa uint64) byte { return byte(pa ^ pa>>12 ^ pa>>20) }

func newMem(tables []pte, dataPages ...uint64) *fakeMem {
	m := &fakeMem{pages: make(map[uint64]*[pageSize]byte)}
	for _, e := range tables {
		pg := m.page(e.pa)
		if e.idx == all {
			for i := 0; i < nEntries; i++ {
				binary.LittleEndian.PutUint64(pg[i*8:], e.val)
			}
			continue
		}
		binary.LittleEndian.PutUint64(pg[e.idx*8:], e.val)
	}
	for _, pa := range dataPages {
		pg := m.page(pa)
		for i := range pg {
			pg[i] = pat(pa + uint64(i))
		}
	}
	return m
}

func (m *fakeMem) page(pa uint64) *[pageSize]byte {
	if pa%pageSize != 0 {
		panic(fmt.Sprintf("unaligned page %#x", pa))
	}
	pg := m.pages[pa]
	if pg == nil {
		pg = new([pageSize]byte)
		m.pages[pa] = pg
	}
	return pg
}

func (m *fakeMem) ReadPhys(p []byte, pa uint64) (int, error) {
	m.reads.Add(1)
	if m.maxRead > 0 && len(p) > m.maxRead {
		return 0, fmt.Errorf("read of %d bytes too large", len(p))
	}
	n := 0
	for n < len(p) {
		a := pa + uint64(n)
		pg := m.pages[a&^(pageSize-1)]
		if pg == nil {
			return n, &missingPage{a &^ (pageSize - 1)}
		}
		n += copy(p[n:], pg[a%pageSize:])
	}
	return n, nil
}
