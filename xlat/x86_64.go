package xlat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"sync"
	"sync/atomic"
)

// StartKernelMap is x86_64's __START_KERNEL_map, the virtual base of the
// kernel image mapping. The image is mapped linearly from there:
// pa = va - StartKernelMap + phys_base, with phys_base (NUMBER(phys_base)
// in VMCOREINFO) already including any KASLR physical displacement.
const StartKernelMap = 0xffffffff80000000

// kernelImageMax is the largest KERNEL_IMAGE_SIZE (1 GiB, with KASLR);
// beyond it lies the module area, which is not linearly mapped.
const kernelImageMax = 1 << 30

// Page-table entry bits (Intel SDM vol. 3, 4.5).
const (
	pteP     = 1 << 0             // present
	ptePS    = 1 << 7             // page size: leaf at PDPT (1 GiB) and PD (2 MiB); PAT at PT
	addrMask = 0x000ffffffffff000 // bits 12..51: next table or 4 KiB frame
	// Bit 63 (NX) and the protection/accessed/dirty bits do not affect
	// where an address lands, so they are ignored.
)

// BUG(xlat): With AMD SME/SEV the memory-encryption bit (the C-bit,
// NUMBER(sme_mask) in VMCOREINFO, commonly bit 47 or 51) lies inside the
// entries' address field and is not stripped, so the tables of encrypted
// machines translate to bogus physical addresses. Such dumps are out of
// scope for now; the fix is a mask supplied by the layer above.

const (
	pageShift = 12
	pageSize  = 1 << pageShift
	nEntries  = 512

	// Cache geometry. Direct-mapped slots keep lookups to one load; the
	// sizes cover the working set of a typical analysis (a few hundred hot
	// pages, a handful of page-table pages per region) in under 13 KiB.
	tlbSlots   = 1024
	tableSlots = 64

	// defaultWalkLimit bounds the page-table pages one Mappings call
	// visits (each visit examines up to 512 entries). Real kernel tables
	// for a single root are far smaller — a 4 TiB direct map split entirely
	// into 4 KiB pages needs 2M tables — so reaching it means a crafted or
	// corrupt dump whose tables fan back into each other.
	defaultWalkLimit = 1 << 22
)

// X86_64 translates virtual addresses with x86_64 4- or 5-level paging.
// It is safe for concurrent use. It assumes physical memory does not
// change, as is the case for a crash dump: translations and page-table
// pages are cached without invalidation.
type X86_64 struct {
	mem    PhysReader
	root   uint64
	levels int
	vaBits uint // 48 or 57

	setMu sync.Mutex // serializes setters; readers use fast.Load
	fast  atomic.Pointer[fastPaths]

	tlb    [tlbSlots]atomic.Pointer[tlbEntry]
	tables [tableSlots]atomic.Pointer[tablePage]

	// For tests and benchmarks only.
	noCache   bool // walk from memory every time
	walkLimit int  // overrides defaultWalkLimit when > 0
}

// fastPaths holds the linear mappings that are translated by arithmetic.
// A zero size disables a range. It is replaced wholesale, never mutated,
// so Translate can read it without locking.
type fastPaths struct {
	dmBase, dmSize uint64
	kStart, kSize  uint64
	kPhysBase      uint64
}

// tlbEntry caches one leaf translation: the page of size size at va maps
// to pa. vpn is the 4 KiB page number it was looked up by.
type tlbEntry struct {
	vpn, va, pa, size uint64
}

// tablePage caches one page-table page. ents is nil if the page could not
// be read whole, so later walks go straight to reading single entries.
type tablePage struct {
	pa   uint64
	ents *[nEntries]uint64
}

// NewX86_64 returns a translator for the page tables rooted at rootPA, the
// physical address of the PML4 (levels == 4) or PML5 (levels == 5) table:
// CR3 with the PCID and flag bits masked off, or the physical address of
// init_top_pgt.
func NewX86_64(mem PhysReader, rootPA uint64, levels int) (*X86_64, error) {
	if mem == nil {
		return nil, errors.New("xlat: nil PhysReader")
	}
	if levels != 4 && levels != 5 {
		return nil, fmt.Errorf("xlat: x86_64 paging has 4 or 5 levels, not %d", levels)
	}
	if rootPA&^addrMask != 0 {
		return nil, fmt.Errorf("xlat: root table address %#x is not a page-aligned 52-bit physical address", rootPA)
	}
	t := &X86_64{mem: mem, root: rootPA, levels: levels, vaBits: 48}
	if levels == 5 {
		t.vaBits = 57
	}
	return t, nil
}

// Levels returns the paging depth, 4 or 5.
func (t *X86_64) Levels() int { return t.levels }

// Root returns the physical address of the top-level table.
func (t *X86_64) Root() uint64 { return t.root }

// SetDirectMap installs a fast path for the kernel's direct map: a va in
// [pageOffsetBase, pageOffsetBase+size) translates to va-pageOffsetBase
// without a page-table walk. pageOffsetBase is the (KASLR-randomized)
// value of the kernel variable page_offset_base; size is typically the
// end of physical memory. Size 0 removes the fast path.
//
// The fast path trusts the caller: an address in the range translates
// even if the page tables do not map it (the kernel unmaps some direct-map
// pages, e.g. with debug_pagealloc or for secretmem).
func (t *X86_64) SetDirectMap(pageOffsetBase, size uint64) {
	t.setMu.Lock()
	defer t.setMu.Unlock()
	f := t.loadFast()
	f.dmBase, f.dmSize = pageOffsetBase, min(size, math.MaxUint64-pageOffsetBase+1)
	if pageOffsetBase == 0 && size != 0 {
		f.dmSize = size // the min above wrapped to 0
	}
	t.fast.Store(&f)
}

// SetKernelImage installs a fast path for the kernel image mapping: a va
// in [start, end) translates to va - StartKernelMap + physBase. start and
// end are run-time addresses (e.g. SYMBOL(_stext) or _text, and _end,
// which VMCOREINFO and a relocated System.map already give with the KASLR
// offset applied); physBase is NUMBER(phys_base). The range must lie in
// the 1 GiB image region above StartKernelMap. start == end removes the
// fast path.
func (t *X86_64) SetKernelImage(start, end, physBase uint64) error {
	if start != end && (start < StartKernelMap || end < start || end-StartKernelMap > kernelImageMax) {
		return fmt.Errorf("xlat: kernel image range [%#x, %#x) is outside [%#x, %#x)",
			start, end, uint64(StartKernelMap), uint64(StartKernelMap+kernelImageMax))
	}
	t.setMu.Lock()
	defer t.setMu.Unlock()
	f := t.loadFast()
	f.kStart, f.kSize, f.kPhysBase = start, end-start, physBase
	t.fast.Store(&f)
	return nil
}

func (t *X86_64) loadFast() fastPaths {
	if f := t.fast.Load(); f != nil {
		return *f
	}
	return fastPaths{}
}

// Translate returns the physical address va maps to and the size of the
// page containing it (4 KiB, 2 MiB or 1 GiB). Addresses served by a fast
// path report 4 KiB, the granularity the caller vouched for, since the
// tables are not consulted. Errors are of type *TranslateError.
func (t *X86_64) Translate(va uint64) (pa, pageSize uint64, err error) {
	pa, pageSize, _, err = t.translate(va)
	return pa, pageSize, err
}

// translate is Translate that also reports how many bytes from va onward
// share the translation (pa+i for va+i), so ReadVirt can issue one
// physical read per linear run instead of one per page.
func (t *X86_64) translate(va uint64) (pa, size, linear uint64, err error) {
	if !t.canonical(va) {
		return 0, 0, 0, &TranslateError{VA: va, Level: 0,
			Msg: fmt.Sprintf("is not canonical for %d-level paging", t.levels), Err: ErrNonCanonical}
	}
	if f := t.fast.Load(); f != nil {
		if off := va - f.dmBase; va >= f.dmBase && off < f.dmSize {
			return off, pageSize, f.dmSize - off, nil
		}
		if off := va - f.kStart; va >= f.kStart && off < f.kSize {
			return va - StartKernelMap + f.kPhysBase, pageSize, f.kSize - off, nil
		}
	}
	vpn := va >> pageShift
	if !t.noCache {
		if e := t.tlb[vpn%tlbSlots].Load(); e != nil && e.vpn == vpn {
			off := va - e.va
			return e.pa + off, e.size, e.size - off, nil
		}
		// A large page is cached once, in the slot of its first 4 KiB
		// page: a scan of the vmemmap (2 MiB pages) walks each once, not
		// once per 4 KiB page of it.
		for _, sz := range [...]uint64{1 << 21, 1 << 30} {
			base := va &^ (sz - 1)
			if e := t.tlb[(base>>pageShift)%tlbSlots].Load(); e != nil && e.size == sz && e.va == base {
				off := va - e.va
				return e.pa + off, e.size, e.size - off, nil
			}
		}
	}
	pa, size, err = t.walk(va)
	if err != nil {
		return 0, 0, 0, err
	}
	if !t.noCache {
		base := va &^ (size - 1)
		t.tlb[(base>>pageShift)%tlbSlots].Store(&tlbEntry{vpn: base >> pageShift, va: base, pa: pa &^ (size - 1), size: size})
	}
	return pa, size, size - va&(size-1), nil
}

// canonical reports whether bits 63..vaBits-1 of va are all equal, which
// the CPU requires before it will even start a walk.
func (t *X86_64) canonical(va uint64) bool {
	s := 64 - t.vaBits
	return uint64(int64(va<<s)>>s) == va
}

// levelShift is the number of VA bits below a level's index: 12 for the
// PT, 21 for the PD, ... 48 for the PML5.
func levelShift(level int) uint { return pageShift + 9*uint(level-1) }

// walk translates va from the page tables. Its depth is fixed by
// t.levels, so tables that point back at themselves cannot make it loop:
// like the CPU, it simply reinterprets the table at the next level down.
func (t *X86_64) walk(va uint64) (pa, size uint64, err error) {
	table := t.root
	for level := t.levels; level >= 1; level-- {
		shift := levelShift(level)
		idx := (va >> shift) % nEntries
		entryPA := table + idx*8
		e, err := t.readEntry(table, idx)
		if err != nil {
			return 0, 0, &TranslateError{VA: va, Level: level, EntryPA: entryPA,
				Msg: fmt.Sprintf("not translatable (reading %s entry at physical %#x)", LevelName(level), entryPA),
				Err: err}
		}
		if e&pteP == 0 {
			return 0, 0, &TranslateError{VA: va, Level: level, Entry: e, EntryPA: entryPA,
				Msg: fmt.Sprintf("not mapped (%s entry %#x not present)", LevelName(level), e),
				Err: ErrNotMapped}
		}
		// PS is a leaf marker only in the PDPT and PD; in the PT the same
		// bit is PAT, and in the PML4/PML5 it is reserved — Linux never
		// sets it there (p4d_leaf/pgd_leaf are 0 on x86), so like Linux's
		// own software walkers we treat those entries as table pointers.
		if level == 1 || (level <= 3 && e&ptePS != 0) {
			size := uint64(1) << shift
			// For large pages bits 12..shift-1 hold PAT and reserved
			// bits, not address bits.
			return e&addrMask&^(size-1) | va&(size-1), size, nil
		}
		table = e & addrMask
	}
	panic("unreachable")
}

// readEntry returns entry idx of the table at tablePA, through the
// table-page cache unless disabled.
func (t *X86_64) readEntry(tablePA, idx uint64) (uint64, error) {
	if !t.noCache {
		if tp := t.tablePage(tablePA); tp.ents != nil {
			return tp.ents[idx], nil
		}
		// The page is not readable as a whole (a dump may carry only part
		// of it); the one entry needed may still be there.
	}
	var b [8]byte
	if err := readFull(t.mem, b[:], tablePA+idx*8); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

// tablePage returns the cached copy of the table page at pa, reading it on
// a miss. Concurrent misses may both read; the last store wins, and since
// memory is immutable both copies are the same.
func (t *X86_64) tablePage(pa uint64) *tablePage {
	slot := &t.tables[(pa>>pageShift)%tableSlots]
	if tp := slot.Load(); tp != nil && tp.pa == pa {
		return tp
	}
	tp := &tablePage{pa: pa}
	ents := new([nEntries]uint64)
	if readTable(t.mem, ents, pa, new([pageSize]byte)) == nil {
		tp.ents = ents
	}
	slot.Store(tp)
	return tp
}

// readTable reads the 512 entries of the table page at pa, using buf for
// the raw bytes (passed in because anything handed to an interface
// method escapes, and Mappings reuses one buffer for its whole walk).
func readTable(mem PhysReader, ents *[nEntries]uint64, pa uint64, buf *[pageSize]byte) error {
	if err := readFull(mem, buf[:], pa); err != nil {
		return err
	}
	for i := range ents {
		ents[i] = binary.LittleEndian.Uint64(buf[i*8:])
	}
	return nil
}

// readFull reads len(p) bytes at pa, turning a silent short read into
// io.ErrUnexpectedEOF.
func readFull(mem PhysReader, p []byte, pa uint64) error {
	n, err := mem.ReadPhys(p, pa)
	if n == len(p) {
		return nil // io.ReaderAt allows io.EOF with a full read
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// ReadVirt reads len(p) bytes of virtual memory starting at va,
// translating each page separately, so a buffer may span pages that are
// physically scattered. Like io.ReaderAt it returns the number of bytes
// read and, if that is short, why: a *TranslateError for the first
// unmapped address, or the PhysReader's error wrapped with the virtual and
// physical address it hit.
func (t *X86_64) ReadVirt(p []byte, va uint64) (int, error) {
	return readVirt(t.mem, t.translate, p, va)
}

// Mappings walks the page tables and yields the mapped ranges
// intersecting [start, end), clipped to it, in ascending address order.
// Adjacent leaf pages are merged into one Mapping when they are contiguous
// both virtually and physically and have the same page size. end == 0
// means the top of the address space, so Mappings(0, 0) yields everything.
//
// Not-present entries skip their whole subtree without reading it, so
// sparse regions cost one entry test per 512 GiB, 1 GiB or 2 MiB.
//
// Problems are yielded as errors (with a zero Mapping), and the walk goes
// on if the consumer keeps ranging: a page-table page that cannot be read
// (the subtree is skipped), an entry pointing back at a table enclosing it
// (ErrTableLoop; the subtree is skipped, whereas Translate would follow it
// as the CPU does), and exhaustion of the bound on page-table pages visited
// (ErrWalkLimit; the walk stops). The bound guarantees termination in
// bounded time even for crafted tables whose entries all point at the same
// lower-level tables. Mappings reads tables directly, bypassing the
// caches, so a full walk does not evict Translate's working set.
func (t *X86_64) Mappings(start, end uint64) iter.Seq2[Mapping, error] {
	return func(yield func(Mapping, error) bool) {
		last := end - 1 // inclusive; end == 0 wraps to the top
		if end != 0 && start >= end {
			return
		}
		w := &mapWalker{t: t, yield: yield, limit: t.walkLimit}
		if w.limit <= 0 {
			w.limit = defaultWalkLimit
		}
		w.path[t.levels] = t.root
		// Walk in the linear space [0, 2^vaBits) that the table indices
		// span: the lower canonical half maps to its first half, the upper
		// canonical half (the kernel's) to its second.
		half := uint64(1) << (t.vaBits - 1)
		if start < half {
			if !w.walk(t.root, t.levels, 0, start, min(last, half-1)) {
				return
			}
		}
		if upper := -half; last >= upper {
			mask := 2*half - 1
			if !w.walk(t.root, t.levels, 0, max(start, upper)&mask, last&mask) {
				return
			}
		}
		w.flush()
	}
}

// mapWalker is the state of one Mappings iteration.
type mapWalker struct {
	t       *X86_64
	yield   func(Mapping, error) bool
	pending Mapping
	has     bool
	visits  int
	limit   int
	path    [6]uint64           // table PA at each level on the current path
	ents    [6][nEntries]uint64 // one table buffer per level
	buf     [pageSize]byte
}

// walk visits the table at tablePA, at the given level, covering linear
// addresses from base; lo and hi (inclusive) bound the part to report.
// It returns false once the consumer has stopped or the walk must end.
func (w *mapWalker) walk(tablePA uint64, level int, base, lo, hi uint64) bool {
	if w.visits >= w.limit {
		w.fail(&TranslateError{VA: w.va(lo), Level: level, EntryPA: tablePA,
			Msg: fmt.Sprintf("not walked (limit of %d page-table pages reached at %s table %#x)", w.limit, LevelName(level), tablePA),
			Err: ErrWalkLimit})
		return false
	}
	w.visits++
	w.path[level] = tablePA
	ents := &w.ents[level]
	if err := readTable(w.t.mem, ents, tablePA, &w.buf); err != nil {
		return w.fail(&TranslateError{VA: w.va(lo), Level: level, EntryPA: tablePA,
			Msg: fmt.Sprintf("not walked (reading %s table at physical %#x)", LevelName(level), tablePA),
			Err: err})
	}
	shift := levelShift(level)
	size := uint64(1) << shift
	for i := (lo - base) >> shift; i <= (hi-base)>>shift; i++ {
		e := ents[i]
		if e&pteP == 0 {
			continue
		}
		eLo := base + i<<shift
		eHi := eLo + size - 1
		from, to := max(lo, eLo), min(hi, eHi)
		if level == 1 || (level <= 3 && e&ptePS != 0) {
			pa := e & addrMask &^ (size - 1)
			if !w.emit(Mapping{VA: w.va(from), PA: pa + (from - eLo), Size: to - from + 1, PageSize: size}) {
				return false
			}
			continue
		}
		next := e & addrMask
		if w.onPath(next, level) {
			entryPA := tablePA + i*8
			if !w.fail(&TranslateError{VA: w.va(from), Level: level, Entry: e, EntryPA: entryPA,
				Msg: fmt.Sprintf("not walked (%s entry %#x at physical %#x points back to an enclosing table)", LevelName(level), e, entryPA),
				Err: ErrTableLoop}) {
				return false
			}
			continue
		}
		if !w.walk(next, level-1, eLo, from, to) {
			return false
		}
	}
	return true
}

// onPath reports whether tablePA is one of the tables enclosing (or being)
// the table at level.
func (w *mapWalker) onPath(tablePA uint64, level int) bool {
	for l := level; l <= w.t.levels; l++ {
		if w.path[l] == tablePA {
			return true
		}
	}
	return false
}

// va converts a linear table-index address back to a canonical VA by
// sign-extending bit vaBits-1.
func (w *mapWalker) va(linear uint64) uint64 {
	s := 64 - w.t.vaBits
	return uint64(int64(linear<<s) >> s)
}

func (w *mapWalker) emit(m Mapping) bool {
	p := &w.pending
	if w.has && p.VA+p.Size == m.VA && p.PA+p.Size == m.PA && p.PageSize == m.PageSize {
		p.Size += m.Size
		return true
	}
	if !w.flush() {
		return false
	}
	w.pending, w.has = m, true
	return true
}

func (w *mapWalker) flush() bool {
	if !w.has {
		return true
	}
	w.has = false
	return w.yield(w.pending, nil)
}

// fail reports err after any pending mapping, keeping address order.
func (w *mapWalker) fail(err error) bool {
	return w.flush() && w.yield(Mapping{}, err)
}

// readVirt is ReadVirt over any architecture's translate: one physical read
// per linearly mapped stretch.
func readVirt(mem PhysReader, translate func(uint64) (pa, size, linear uint64, err error), p []byte, va uint64) (int, error) {
	n := 0
	for n < len(p) {
		cur := va + uint64(n)
		if cur < va {
			return n, &TranslateError{VA: cur, Msg: "is past the end of the address space (read wrapped around)", Err: ErrNonCanonical}
		}
		pa, _, linear, err := translate(cur)
		if err != nil {
			return n, err
		}
		chunk := p[n:]
		if uint64(len(chunk)) > linear {
			chunk = chunk[:linear]
		}
		m, err := mem.ReadPhys(chunk, pa)
		n += m
		if m < len(chunk) {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return n, fmt.Errorf("xlat: reading virtual address %#x (physical %#x): %w", cur+uint64(m), pa+uint64(m), err)
		}
	}
	return n, nil
}
