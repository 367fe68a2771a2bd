package xlat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"sync"
	"sync/atomic"
)

// ARM64Config describes the kernel half (TTBR1) of an arm64 translation
// regime: what TCR_EL1 and the kernel's configuration fix at boot.
type ARM64Config struct {
	// Granule is the translation granule in bytes: 4096, 16384 or 65536
	// (CONFIG_ARM64_{4K,16K,64K}_PAGES; the kernel's PAGE_SIZE).
	Granule uint64
	// VABits is the size of the kernel half's address space, 64 - T1SZ:
	// 36 to 52 (NUMBER(TCR_EL1_T1SZ) where VMCOREINFO has it, else
	// NUMBER(VA_BITS)).
	VABits uint
	// LPA2 says the 4 KiB or 16 KiB granule tables use FEAT_LPA2's 52-bit
	// output addresses (TCR_EL1.DS = 1, as 52-bit VA with those granules
	// implies): bits 9:8 of an entry are then output-address bits 51:50,
	// not shareability. With the 64 KiB granule the 52-bit (FEAT_LPA)
	// format needs no flag: its high address bits 15:12 are otherwise RES0.
	LPA2 bool
	// PACMask is NUMBER(KERNELPACMASK): the pointer-authentication code
	// bits of kernel pointers, set back to ones before translation (the
	// kernel exports GENMASK(63, vabits_actual), so it includes bit 55 and
	// the top byte). The top byte (tags under TBI) is restored whatever the
	// mask says.
	PACMask uint64
}

// ARM64 translates kernel virtual addresses (the TTBR1 half, bit 55 set)
// with the VMSAv8-64 stage 1 translation tables. Like X86_64 it is safe for
// concurrent use and caches without invalidation, memory being a dump.
type ARM64 struct {
	mem  PhysReader
	root uint64
	cfg  ARM64Config

	gShift  uint // log2(Granule)
	stride  uint // index bits per level: gShift - 3
	levels  int  // lookup levels walked, 2..5
	topBits uint // index bits of the top (possibly partial) table
	oaMask  uint64

	setMu sync.Mutex
	fast  atomic.Pointer[arm64Fast]

	tlb    [tlbSlots]atomic.Pointer[tlbEntry]
	tables [tableSlots]atomic.Pointer[arm64Table]

	noCache   bool // tests: walk from memory every time
	walkLimit int  // tests: overrides defaultWalkLimit when > 0
}

// arm64Fast holds the linear ranges translated by arithmetic: the linear
// map (pa = va - lmBase + lmPhys) and the kernel image
// (pa = va - kimageVoffset).
type arm64Fast struct {
	lmBase, lmSize, lmPhys uint64
	kStart, kSize, kVoff   uint64
}

type arm64Table struct {
	pa   uint64
	ents []uint64 // nil if the table could not be read whole
}

// Descriptor bits (Arm ARM D8.3, VMSAv8-64 translation table format).
const (
	descValid = 1 << 0
	descTable = 1 << 1 // table (levels < 3) or page (level 3); clear: block
)

// NewARM64 returns a translator for the kernel tables rooted at rootPA,
// the physical address of swapper_pg_dir (TTBR1_EL1's base address).
func NewARM64(mem PhysReader, rootPA uint64, cfg ARM64Config) (*ARM64, error) {
	if mem == nil {
		return nil, errors.New("xlat: nil PhysReader")
	}
	t := &ARM64{mem: mem, root: rootPA, cfg: cfg}
	switch cfg.Granule {
	case 4 << 10:
		t.gShift = 12
	case 16 << 10:
		t.gShift = 14
	case 64 << 10:
		t.gShift = 16
		if cfg.LPA2 {
			return nil, errors.New("xlat: arm64 LPA2 applies to the 4 KiB and 16 KiB granules only")
		}
	default:
		return nil, fmt.Errorf("xlat: arm64 granule %d is not 4, 16 or 64 KiB", cfg.Granule)
	}
	t.stride = t.gShift - 3
	// 48 bits is the most without FEAT_LVA/LPA2; 52 with them.
	maxVA := uint(48)
	if cfg.Granule == 64<<10 || cfg.LPA2 {
		maxVA = 52
	}
	if cfg.VABits < 36 || cfg.VABits > maxVA {
		return nil, fmt.Errorf("xlat: arm64 VA size %d bits is outside 36..%d for a %d KiB granule", cfg.VABits, maxVA, cfg.Granule>>10)
	}
	span := cfg.VABits - t.gShift
	t.levels = int((span + t.stride - 1) / t.stride)
	t.topBits = span - uint(t.levels-1)*t.stride
	t.oaMask = (1<<48 - 1) &^ (cfg.Granule - 1)
	if cfg.LPA2 {
		t.oaMask = (1<<50 - 1) &^ (cfg.Granule - 1)
	}
	if cfg.PACMask&(1<<cfg.VABits-1) != 0 {
		return nil, fmt.Errorf("xlat: arm64 PAC mask %#x overlaps the %d address bits", cfg.PACMask, cfg.VABits)
	}
	if rootPA&(t.topEntries()*8-1) != 0 || rootPA >= 1<<52 {
		return nil, fmt.Errorf("xlat: root table address %#x is not an aligned 52-bit physical address", rootPA)
	}
	return t, nil
}

// Levels returns the number of lookup levels walked (3 for 4 KiB pages and
// 39-bit VA, 4 for 48-bit, 2 or 3 for 64 KiB pages).
func (t *ARM64) Levels() int { return t.levels }

// Root returns the physical address of the top-level table.
func (t *ARM64) Root() uint64 { return t.root }

// Config returns the configuration the translator was made with.
func (t *ARM64) Config() ARM64Config { return t.cfg }

func (t *ARM64) topEntries() uint64 { return 1 << t.topBits }

// armLevel is the Arm ARM's lookup-level number of walk level l (l counts
// down to 1 at the last level, as TranslateError.Level does): 3 is the
// page level, and 52-bit 4 KiB tables start at -1.
func armLevel(l int) int { return 4 - l }

func armLevelName(l int) string { return fmt.Sprintf("L%d", armLevel(l)) }

// Strip returns va with the bits that do not take part in translation
// restored: the top byte (a tag under TBI) and, with a PAC mask, the
// pointer-authentication code, both set to what bit 55 says. Addresses of
// the lower half (bit 55 clear) are returned unchanged.
func (t *ARM64) Strip(va uint64) uint64 {
	if va&(1<<55) == 0 {
		return va
	}
	return va | 0xff<<56 | t.cfg.PACMask
}

// SetDirectMap installs a fast path for the linear map: a va in
// [base, base+size) translates to va - base + physOffset. On arm64 base is
// PAGE_OFFSET (the bottom of the kernel half since v5.4) and physOffset
// PHYS_OFFSET (memstart_addr); size 0 removes the fast path. Like x86's,
// the fast path trusts the caller over the tables.
func (t *ARM64) SetDirectMap(base, physOffset, size uint64) {
	t.setMu.Lock()
	defer t.setMu.Unlock()
	f := t.loadFast()
	f.lmBase, f.lmPhys, f.lmSize = base, physOffset, min(size, -base)
	t.fast.Store(&f)
}

// SetKernelImage installs a fast path for the kernel image: a va in
// [start, end) translates to va - kimageVoffset (NUMBER(kimage_voffset),
// which includes KASLR). start == end removes it.
func (t *ARM64) SetKernelImage(start, end, kimageVoffset uint64) error {
	if end < start || start&(1<<55) == 0 {
		return fmt.Errorf("xlat: kernel image range [%#x, %#x) is not in the kernel half", start, end)
	}
	t.setMu.Lock()
	defer t.setMu.Unlock()
	f := t.loadFast()
	f.kStart, f.kSize, f.kVoff = start, end-start, kimageVoffset
	t.fast.Store(&f)
	return nil
}

func (t *ARM64) loadFast() arm64Fast {
	if f := t.fast.Load(); f != nil {
		return *f
	}
	return arm64Fast{}
}

// Translate returns the physical address va maps to and the size of the
// page or block containing it. Tag and PAC bits are stripped first (Strip).
// Errors are of type *TranslateError; the lower half (user space, TTBR0)
// is not translated and reports ErrNotMapped.
func (t *ARM64) Translate(va uint64) (pa, pageSize uint64, err error) {
	pa, pageSize, _, err = t.translate(va)
	return pa, pageSize, err
}

func (t *ARM64) translate(va uint64) (pa, size, linear uint64, err error) {
	if va&(1<<55) == 0 {
		return 0, 0, 0, &TranslateError{VA: va, Msg: "is in the lower (TTBR0, user) half, which is not translated", Err: ErrNotMapped}
	}
	orig := va
	va = t.Strip(va)
	if va>>t.cfg.VABits != 1<<(64-t.cfg.VABits)-1 {
		return 0, 0, 0, &TranslateError{VA: orig, Msg: fmt.Sprintf("is outside the %d-bit kernel address space", t.cfg.VABits), Err: ErrNonCanonical}
	}
	if f := t.fast.Load(); f != nil {
		if off := va - f.lmBase; va >= f.lmBase && off < f.lmSize {
			return f.lmPhys + off, t.cfg.Granule, f.lmSize - off, nil
		}
		if off := va - f.kStart; va >= f.kStart && off < f.kSize {
			return va - f.kVoff, t.cfg.Granule, f.kSize - off, nil
		}
	}
	vpn := va >> t.gShift
	slot := &t.tlb[vpn%tlbSlots]
	if !t.noCache {
		if e := slot.Load(); e != nil && e.vpn == vpn {
			off := va - e.va
			return e.pa + off, e.size, e.size - off, nil
		}
	}
	pa, size, err = t.walk(orig, va)
	if err != nil {
		return 0, 0, 0, err
	}
	if !t.noCache {
		slot.Store(&tlbEntry{vpn: vpn, va: va &^ (size - 1), pa: pa &^ (size - 1), size: size})
	}
	return pa, size, size - va&(size-1), nil
}

// shift is the number of VA bits below walk level l's index.
func (t *ARM64) shift(l int) uint { return t.gShift + t.stride*uint(l-1) }

// entries is the number of entries in a table at walk level l.
func (t *ARM64) entries(l int) uint64 {
	if l == t.levels {
		return t.topEntries()
	}
	return 1 << t.stride
}

// outAddr extracts the output address of a descriptor: bits 47:granule,
// plus bits 51:48 from 15:12 (64 KiB, FEAT_LPA) or 51:50 from 9:8 (LPA2).
func (t *ARM64) outAddr(e uint64) uint64 {
	a := e & t.oaMask
	switch {
	case t.gShift == 16:
		a |= (e >> 12 & 0xf) << 48
	case t.cfg.LPA2:
		a |= (e >> 8 & 3) << 50
	}
	return a
}

// leafKind classifies descriptor e at walk level l: 0 invalid, 1 table,
// 2 leaf (page or block).
func (t *ARM64) leafKind(e uint64, l int) int {
	if e&descValid == 0 {
		return 0
	}
	if l == 1 {
		if e&descTable == 0 {
			return 0 // bits 1:0 = 01 is reserved at level 3
		}
		return 2
	}
	if e&descTable != 0 {
		return 1
	}
	// Blocks exist at levels 1 and 2 (Arm level 0 with LPA2's 4 KiB
	// granule; level 1 for 64 KiB only with FEAT_LPA, which Linux maps
	// with tables anyway); a block elsewhere is a translation fault.
	switch al := armLevel(l); {
	case al == 2, al == 1 && t.gShift == 12, al == 1 && (t.cfg.LPA2 || t.gShift == 16), al == 0 && t.cfg.LPA2 && t.gShift == 12:
		return 2
	}
	return 0
}

func (t *ARM64) walk(orig, va uint64) (pa, size uint64, err error) {
	table := t.root
	for l := t.levels; l >= 1; l-- {
		shift := t.shift(l)
		idx := (va >> shift) & (t.entries(l) - 1)
		entryPA := table + idx*8
		e, err := t.readEntry(table, idx, l)
		if err != nil {
			return 0, 0, &TranslateError{VA: orig, Level: l, EntryPA: entryPA,
				Msg: fmt.Sprintf("not translatable (reading %s entry at physical %#x)", armLevelName(l), entryPA), Err: err}
		}
		switch t.leafKind(e, l) {
		case 0:
			return 0, 0, &TranslateError{VA: orig, Level: l, Entry: e, EntryPA: entryPA,
				Msg: fmt.Sprintf("not mapped (%s entry %#x not valid)", armLevelName(l), e), Err: ErrNotMapped}
		case 2:
			size := uint64(1) << shift
			return t.outAddr(e)&^(size-1) | va&(size-1), size, nil
		}
		table = t.outAddr(e)
	}
	panic("unreachable")
}

func (t *ARM64) readEntry(tablePA, idx uint64, l int) (uint64, error) {
	if !t.noCache {
		if tp := t.tablePage(tablePA, l); tp.ents != nil {
			return tp.ents[idx], nil
		}
	}
	var b [8]byte
	if err := readFull(t.mem, b[:], tablePA+idx*8); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

// tablePage caches whole tables; the top table may be shorter than a
// granule, so a slot is keyed by address and length.
func (t *ARM64) tablePage(pa uint64, l int) *arm64Table {
	n := t.entries(l)
	slot := &t.tables[(pa>>t.gShift)%tableSlots]
	if tp := slot.Load(); tp != nil && tp.pa == pa && (tp.ents == nil || uint64(len(tp.ents)) >= n) {
		return tp
	}
	tp := &arm64Table{pa: pa}
	buf := make([]byte, n*8)
	if readFull(t.mem, buf, pa) == nil {
		tp.ents = make([]uint64, n)
		for i := range tp.ents {
			tp.ents[i] = binary.LittleEndian.Uint64(buf[i*8:])
		}
	}
	slot.Store(tp)
	return tp
}

// ReadVirt reads len(p) bytes of virtual memory at va, with the semantics
// of X86_64.ReadVirt.
func (t *ARM64) ReadVirt(p []byte, va uint64) (int, error) {
	return readVirt(t.mem, t.translate, p, va)
}

// Mappings walks the kernel-half tables and yields the mapped ranges
// intersecting [start, end) (end == 0: the top of the address space), with
// the semantics of X86_64.Mappings. Addresses are reported with the top
// bits set, as the kernel uses them.
func (t *ARM64) Mappings(start, end uint64) iter.Seq2[Mapping, error] {
	return func(yield func(Mapping, error) bool) {
		last := end - 1
		if end != 0 && start >= end {
			return
		}
		base := -(uint64(1) << t.cfg.VABits)
		if last < base {
			return
		}
		w := &arm64Walker{t: t, yield: yield, limit: t.walkLimit}
		if w.limit <= 0 {
			w.limit = defaultWalkLimit
		}
		if w.walk(t.root, t.levels, base, max(start, base), last) {
			w.flush()
		}
	}
}

type arm64Walker struct {
	t       *ARM64
	yield   func(Mapping, error) bool
	pending Mapping
	has     bool
	visits  int
	limit   int
	path    [7]uint64
	bufs    [7][]byte // one table buffer per level, reused
}

func (w *arm64Walker) walk(tablePA uint64, l int, base, lo, hi uint64) bool {
	t := w.t
	if w.visits >= w.limit {
		w.fail(&TranslateError{VA: lo, Level: l, EntryPA: tablePA,
			Msg: fmt.Sprintf("not walked (limit of %d tables reached at %s table %#x)", w.limit, armLevelName(l), tablePA), Err: ErrWalkLimit})
		return false
	}
	w.visits++
	w.path[l] = tablePA
	n := t.entries(l)
	if uint64(len(w.bufs[l])) != n*8 {
		w.bufs[l] = make([]byte, n*8)
	}
	buf := w.bufs[l]
	if err := readFull(t.mem, buf, tablePA); err != nil {
		return w.fail(&TranslateError{VA: lo, Level: l, EntryPA: tablePA,
			Msg: fmt.Sprintf("not walked (reading %s table at physical %#x)", armLevelName(l), tablePA), Err: err})
	}
	shift := t.shift(l)
	size := uint64(1) << shift
	for i := (lo - base) >> shift; i <= (hi-base)>>shift && i < n; i++ {
		e := binary.LittleEndian.Uint64(buf[i*8:])
		kind := t.leafKind(e, l)
		if kind == 0 {
			continue
		}
		eLo := base + i<<shift
		eHi := eLo + size - 1
		from, to := max(lo, eLo), min(hi, eHi)
		if kind == 2 {
			pa := t.outAddr(e) &^ (size - 1)
			if !w.emit(Mapping{VA: from, PA: pa + (from - eLo), Size: to - from + 1, PageSize: size}) {
				return false
			}
			continue
		}
		next := t.outAddr(e)
		if w.onPath(next, l) {
			entryPA := tablePA + i*8
			if !w.fail(&TranslateError{VA: from, Level: l, Entry: e, EntryPA: entryPA,
				Msg: fmt.Sprintf("not walked (%s entry %#x at physical %#x points back to an enclosing table)", armLevelName(l), e, entryPA), Err: ErrTableLoop}) {
				return false
			}
			continue
		}
		if !w.walk(next, l-1, eLo, from, to) {
			return false
		}
	}
	return true
}

func (w *arm64Walker) onPath(tablePA uint64, l int) bool {
	for i := l; i <= w.t.levels; i++ {
		if w.path[i] == tablePA {
			return true
		}
	}
	return false
}

func (w *arm64Walker) emit(m Mapping) bool {
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

func (w *arm64Walker) flush() bool {
	if !w.has {
		return true
	}
	w.has = false
	return w.yield(w.pending, nil)
}

func (w *arm64Walker) fail(err error) bool {
	return w.flush() && w.yield(Mapping{}, err)
}
