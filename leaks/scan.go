package leaks

import (
	"encoding/binary"
	"github.com/vmleak/vmleak/kernel"
	"sync"
	"sync/atomic"
)

// Memory is what the scan reads: kernel virtual memory (*kernel.Kernel).
type Memory interface {
	ReadVirt(p []byte, va uint64) error
}

// Region is one root: memory scanned for pointers whatever points to it.
type Region struct {
	Kind string // "data", "bss", "ro_after_init", "percpu", "module", "stack", "struct pages", "registers"
	Name string // which one: the module, the task, the CPU
	VA   uint64
	Size uint64
	// Words, when set, are the root's values themselves instead of memory
	// at VA: a crashed CPU's saved registers.
	Words []uint64
}

// pageSize is the unit of reads: a missing page loses only itself.
const pageSize = 4096

// stats is what one scan read, summed over workers.
type stats struct {
	rootBytes, objectBytes atomic.Uint64
	rootMissing            atomic.Int64 // root pages that could not be read
	// reservedCorrupt are reserved root pages the dump holds but that
	// could not be read (a corrupt compressed page): unlike reserved pages
	// absent from the dump, they make the result partial.
	reservedCorrupt atomic.Int64
	objects         atomic.Int64 // objects scanned

	mu            sync.Mutex
	missing       map[uint64]struct{} // object pages that could not be read
	rootMissingBy map[string]int64    // root pages that could not be read, by kind
}

func (st *stats) missingPage(va uint64) {
	st.mu.Lock()
	if st.missing == nil {
		st.missing = map[uint64]struct{}{}
	}
	st.missing[va&^(pageSize-1)] = struct{}{}
	st.mu.Unlock()
}

// scanner marks every object reachable from the roots. The mark bitset is
// shared by the workers; an object is marked (atomically) before it is
// queued, so each object is queued and scanned once and cycles end.
type scanner struct {
	mem    Memory
	t      *table
	marked []atomic.Uint64
	st     stats
}

func newScanner(mem Memory, t *table) *scanner {
	return &scanner{mem: mem, t: t, marked: make([]atomic.Uint64, (t.n+63)/64)}
}

// mark sets object idx's bit and tells whether it was clear before.
func (s *scanner) mark(idx uint64) bool {
	w, bit := &s.marked[idx/64], uint64(1)<<(idx%64)
	for {
		old := w.Load()
		if old&bit != 0 {
			return false
		}
		if w.CompareAndSwap(old, old|bit) {
			return true
		}
	}
}

func (s *scanner) isMarked(idx uint64) bool { return s.marked[idx/64].Load()&(1<<(idx%64)) != 0 }

// worker owns a gray stack (objects marked but not yet scanned), a read
// buffer and the last pages it read.
type worker struct {
	s     *scanner
	gray  []uint64
	buf   []byte
	pages *[workerPages]workerPage
}

// workerPages is how many slab pages a worker keeps: the mark phase
// reaches objects in the order their lists link them, mostly neighbours
// in one slab page, so one page read serves all its objects instead of
// one read (a system call on an ELF dump) per object. 64 pages, 256 KiB
// per worker, direct-mapped by page number.
const workerPages = 64

type workerPage struct {
	va   uint64
	ok   bool
	data [pageSize]byte
}

// inPage returns an object that lies in one page from the worker's pages,
// reading the page on a miss; false when the object crosses a page or its
// page cannot be read whole (the caller then reads the object itself).
func (w *worker) inPage(start, size uint64) ([]byte, bool) {
	pva := start &^ (pageSize - 1)
	if size == 0 || (start+size-1)&^(pageSize-1) != pva {
		return nil, false
	}
	if w.pages == nil {
		w.pages = new([workerPages]workerPage)
	}
	p := &w.pages[(pva/pageSize)%workerPages]
	if !p.ok || p.va != pva {
		p.ok = false
		if err := w.s.mem.ReadVirt(p.data[:], pva); err != nil {
			return nil, false
		}
		p.va, p.ok = pva, true
	}
	return p.data[start-pva : start-pva+size], true
}

// words queues every object a buffer of 8-byte words points into. Words
// are read at 8-byte alignment, as the kernel stores pointers.
//
// Encodings: a pointer with low tag bits (struct page mapping's
// PAGE_MAPPING_ANON/MOVABLE, an XArray node entry (x & 3) == 2, an RCU or
// list-bit-locked pointer) still points into the same object, as objects
// are at least 8-byte aligned and sized: interior pointers cover it. List
// poison (0xdead...) and other non-kernel values fail the bounds check.
func (w *worker) words(b []byte) {
	t := w.s.t
	for i := 0; i+8 <= len(b); i += 8 {
		v := binary.LittleEndian.Uint64(b[i:])
		if v < t.lo || v >= t.hi {
			continue
		}
		if idx, ok := t.lookup(v); ok && w.s.mark(idx) {
			w.gray = append(w.gray, idx)
		}
	}
}

// region scans a root page by page; unreadable pages are counted and
// skipped.
func (w *worker) region(r Region) {
	if r.Words != nil {
		b := make([]byte, 8*len(r.Words))
		for i, v := range r.Words {
			binary.LittleEndian.PutUint64(b[8*i:], v)
		}
		w.s.st.rootBytes.Add(uint64(len(b)))
		w.words(b)
		return
	}
	end := r.VA + r.Size
	for va := r.VA; va < end; {
		n := min(pageSize-va%pageSize, end-va)
		b := w.buf[:n]
		if err := w.s.mem.ReadVirt(b, va); err != nil {
			st := &w.s.st
			st.rootMissing.Add(1)
			if r.Kind == KindReserved && !kernel.IsMissing(err) {
				st.reservedCorrupt.Add(1)
			}
			st.mu.Lock()
			if st.rootMissingBy == nil {
				st.rootMissingBy = map[string]int64{}
			}
			st.rootMissingBy[r.Kind]++
			st.mu.Unlock()
		} else {
			w.s.st.rootBytes.Add(n)
			w.words(b)
		}
		va += n
	}
}

// drain scans queued objects until none is left.
func (w *worker) drain() {
	for len(w.gray) > 0 {
		idx := w.gray[len(w.gray)-1]
		w.gray = w.gray[:len(w.gray)-1]
		start, size, _ := w.s.t.object(idx)
		w.object(start, size)
	}
}

// object scans one object: in one read, or where part of it is missing,
// page by page so only the missing pages are lost.
func (w *worker) object(start, size uint64) {
	s := w.s
	s.st.objects.Add(1)
	if b, ok := w.inPage(start, size); ok {
		s.st.objectBytes.Add(size)
		w.words(b)
		return
	}
	if uint64(cap(w.buf)) < size {
		w.buf = make([]byte, size)
	}
	if err := s.mem.ReadVirt(w.buf[:size], start); err == nil {
		s.st.objectBytes.Add(size)
		w.words(w.buf[:size])
		return
	}
	end := start + size
	for va := start; va < end; {
		n := min(pageSize-va%pageSize, end-va)
		b := w.buf[:n]
		if err := s.mem.ReadVirt(b, va); err != nil {
			s.st.missingPage(va)
		} else {
			s.st.objectBytes.Add(n)
			w.words(b)
		}
		va += n
	}
}

// run scans the roots on n workers: each takes the next root, scans it and
// then everything it newly marked, depth first, before taking another.
func (s *scanner) run(roots []Region, n int) {
	// Roots cut into 64 KiB pieces so two workers share a large root.
	const piece = 64 << 10
	var work []Region
	for _, r := range roots {
		if r.Words != nil {
			work = append(work, r)
			continue
		}
		for off := uint64(0); off < r.Size; off += piece {
			work = append(work, Region{Kind: r.Kind, Name: r.Name, VA: r.VA + off, Size: min(piece, r.Size-off)})
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(1, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &worker{s: s, buf: make([]byte, pageSize)}
			for {
				i := next.Add(1) - 1
				if i >= int64(len(work)) {
					return
				}
				w.region(work[i])
				w.drain()
			}
		}()
	}
	wg.Wait()
}
