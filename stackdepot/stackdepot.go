// Package stackdepot reads the stack traces a crashed kernel keeps in its
// stack depot (lib/stackdepot.c): each unique trace is stored once, in a
// record inside one of a few pools of pages, and the users of the depot —
// SLUB's allocation tracking (SLAB_STORE_USER), page_owner, KASAN — keep
// only its 32-bit handle.
//
// It owns turning a handle into its record and the record into frames. It
// names no address (package symbolize does) and reads memory only through
// package kernel; walk and attribution code sit above it.
//
// Layouts are probed from the kernel's own types — union handle_parts, whose
// bitfield names and widths are read, never assumed, and struct
// stack_record — and from its symbols:
//   - cd11016e5f52 (v4.6): pools in stack_slabs[], handle {slabindex, offset,
//     valid, extra}, records of variable size, the last trace's frames in
//     entries[]; record at pool + (offset << DEPOT_STACK_ALIGN), which is 4
//     in every release (STACK_ALLOC_ALIGN up to v6.2). The pool index is
//     bounded by depot_index, the pool being filled.
//   - 961c949b012f (v6.3, "lib/stackdepot: rename slab to pool"):
//     stack_pools[], pool_index (global and handle member).
//   - v6.8, the series of fc60e0caa94d ("lib/stackdepot: use fixed-sized
//     slots for stack records"): records of fixed size with
//     entries[CONFIG_STACKDEPOT_MAX_FRAMES], kept on a freelist; pools_num
//     counts the pools; "lib/stackdepot: drop valid bit from handles" gave
//     its bit to the pool index.
//   - 3ee34eabac2a (v6.9-rc1, also in 6.8.3 and 6.8.4): the handle's pool
//     index is the index plus one, so no valid handle is 0; a6c1d9cb9a68
//     (v6.9-rc3) renamed the member pool_index_plus_1. A handle_parts with
//     pool_index and no valid bit is therefore either (6.8.0-6.8.2 plain,
//     6.8.3, 6.8.4 and v6.9-rc1/rc2 plus one): the record whose own handle
//     matches decides, once per depot.
//   - ed4f142f72a9 ("stackdepot: make max number of pools boot-time
//     configurable", after v6.15): stack_pools is a pointer to an array of
//     stack_max_pools entries instead of a static array; the symbol's size
//     tells which.
//
// The pool size is 1 << (width of the offset bitfield + DEPOT_STACK_ALIGN):
// the kernel sizes that bitfield to address one pool (DEPOT_OFFSET_BITS =
// DEPOT_POOL_ORDER + PAGE_SHIFT - DEPOT_STACK_ALIGN).
//
// Errors: a kernel without a stack depot gives an error wrapping
// kernel.ErrAbsent from New; handle 0 (no trace was saved) is ErrNoStack; a
// handle that cannot name a record, or names one that disagrees, is a
// *HandleError.
package stackdepot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/vmleak/vmleak/kdwarf"
	"github.com/vmleak/vmleak/kernel"
)

// depotStackAlign is DEPOT_STACK_ALIGN (STACK_ALLOC_ALIGN before v6.3): 4
// since cd11016e5f52 (v4.6).
const depotStackAlign = 4

// maxCached bounds the handles whose answers are kept: a corrupt dump can
// offer any number of distinct bad handles.
const maxCached = 1 << 20

// ErrNoStack is handle 0: the kernel saved no trace (the depot was full or
// disabled, or could not allocate a pool).
var ErrNoStack = errors.New("stackdepot: handle 0: no stack saved")

// HandleError is a handle that does not lead to a sound record.
type HandleError struct {
	Handle uint32
	Record uint64 // the record's address, 0 when none could be computed
	Msg    string
	Err    error // a failed read, or nil
}

func (e *HandleError) Error() string {
	s := fmt.Sprintf("stackdepot: handle %#08x", e.Handle)
	if e.Record != 0 {
		s += fmt.Sprintf(" (record %#x)", e.Record)
	}
	s += ": " + e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *HandleError) Unwrap() error { return e.Err }

// Index meanings of the handle's pool index member.
const (
	indexPlain  = iota // slabindex; pool_index with a valid bit (v6.3 to v6.7)
	indexPlus1         // pool_index_plus_1
	indexEither        // pool_index without a valid bit (6.8.y, v6.9-rc1/rc2): plain or plus one
)

// layout is what decoding needs of union handle_parts and struct
// stack_record, from the kernel's types.
type layout struct {
	index, offset, valid, extra kernel.Member // of union handle_parts; valid, extra optional
	indexMode                   int
	poolSize                    uint64 // bytes of one pool

	hdrSize     uint64        // bytes of struct stack_record before entries
	size        kernel.Member // stack_record.size
	handle      kernel.Member // stack_record.handle.handle
	maxFrames   uint64        // len(entries) when fixed, else 0 (flexible)
	recordBytes uint64        // sizeof(struct stack_record) when fixed
}

// newLayout reads the layout from the two types.
func newLayout(parts, record *kdwarf.Type, member func(*kdwarf.Type, string) (kernel.Member, error)) (*layout, error) {
	l := &layout{}
	var err error
	opt := func(path string) (kernel.Member, error) {
		m, err := member(parts, path)
		if errors.Is(err, kernel.ErrAbsent) {
			return kernel.Member{}, nil
		}
		return m, err
	}
	for _, c := range []struct {
		path string
		mode int
	}{{"pool_index_plus_1", indexPlus1}, {"pool_index", indexEither}, {"slabindex", indexPlain}} {
		if l.index, err = opt(c.path); err != nil {
			return nil, fmt.Errorf("stackdepot: %w", err)
		}
		if l.index.Present() {
			l.indexMode = c.mode
			break
		}
	}
	if !l.index.Present() {
		return nil, fmt.Errorf("stackdepot: %s has no pool index member (pool_index_plus_1, pool_index or slabindex)", parts)
	}
	if l.offset, err = member(parts, "offset"); err != nil {
		return nil, fmt.Errorf("stackdepot: %w", err)
	}
	if l.valid, err = opt("valid"); err != nil {
		return nil, fmt.Errorf("stackdepot: %w", err)
	}
	if l.extra, err = opt("extra"); err != nil {
		return nil, fmt.Errorf("stackdepot: %w", err)
	}
	if l.valid.Present() && l.indexMode == indexEither {
		// A valid bit means v6.3 to v6.7, before the bit was dropped and
		// long before the index became plus one: pool_index is the index.
		l.indexMode = indexPlain
	}
	if !l.offset.IsBitfield() || l.offset.Bits() > 24 {
		return nil, fmt.Errorf("stackdepot: %s.offset is not a bitfield of a plausible width (%d bits)", parts, l.offset.Bits())
	}
	l.poolSize = 1 << (uint(l.offset.Bits()) + depotStackAlign)

	if l.size, err = member(record, "size"); err != nil {
		return nil, fmt.Errorf("stackdepot: %w", err)
	}
	if l.handle, err = member(record, "handle.handle"); err != nil {
		return nil, fmt.Errorf("stackdepot: %w", err)
	}
	st := record.Strip()
	ent, err := st.Field("entries")
	if err != nil {
		return nil, fmt.Errorf("stackdepot: %s.entries: %w", record, err)
	}
	et := ent.Type.Strip()
	if et.Kind != kdwarf.Array || et.Elem == nil || et.Elem.Strip().Size != 8 {
		return nil, fmt.Errorf("stackdepot: %s.entries is %s, not an array of unsigned long", record, ent.Type)
	}
	l.hdrSize = uint64(ent.Offset)
	if et.Len > 0 {
		// Fixed-size records: entries[CONFIG_STACKDEPOT_MAX_FRAMES].
		l.maxFrames = uint64(et.Len)
		l.recordBytes = uint64(st.Size)
		if l.recordBytes < l.hdrSize+8*l.maxFrames {
			return nil, fmt.Errorf("stackdepot: %s is %d bytes, less than its entries end", record, st.Size)
		}
	}
	if l.hdrSize == 0 || l.hdrSize >= l.poolSize {
		return nil, fmt.Errorf("stackdepot: %s has entries at byte %d of a %d-byte pool", record, l.hdrSize, l.poolSize)
	}
	return l, nil
}

// parts is a decoded handle.
type parts struct {
	index, offset uint64 // index as the handle stores it
	valid         bool   // the valid bit, true where the kernel has none
}

func (l *layout) decode(handle uint32) parts {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], handle)
	d := kernel.Decode(b[:])
	p := parts{index: d.Uint(l.index), offset: d.Uint(l.offset), valid: true}
	if l.valid.Present() {
		p.valid = d.Uint(l.valid) == 1
	}
	return p
}

// extraMask is the handle's extra bits, which users may set in the handles
// they keep and which the record's own copy never holds.
func (l *layout) extraMask() uint32 {
	if !l.extra.Present() {
		return 0
	}
	var b [4]byte
	var mask uint32
	for bit := 0; bit < 32; bit++ {
		binary.LittleEndian.PutUint32(b[:], 1<<bit)
		if v, _ := l.extra.Uint(b[:]); v != 0 {
			mask |= 1 << bit
		}
	}
	return mask
}

// memory reads kernel virtual memory (kernel.Kernel in use, a map in tests).
type memory interface {
	ReadVirt(p []byte, va uint64) error
}

// pools is where the pool pointers are: an array at va of n entries. The
// valid indexes are below limit.
type pools struct {
	va    uint64
	n     uint64
	limit uint64
	what  string // "stack_pools[8192], pools_num=3", for messages
}

// Depot reads one kernel's stack depot. It is safe for concurrent use.
type Depot struct {
	l     *layout
	mem   memory
	pools pools
	extra uint32

	// indexMode resolved for indexEither layouts: 0 unknown, else
	// indexPlain+1 or indexPlus1+1.
	resolved atomic.Int32

	mu      sync.RWMutex
	cache   map[uint32]result
	poolPtr map[uint64]uint64
}

type result struct {
	frames []uint64
	err    error
}

// New probes the kernel's stack depot layout. A kernel built without a
// stack depot gives an error wrapping kernel.ErrAbsent.
func New(k *kernel.Kernel) (*Depot, error) {
	partsT, err := k.StructType("union handle_parts")
	if err != nil {
		return nil, fmt.Errorf("stackdepot: %w", err)
	}
	recordT, err := k.StructType("struct stack_record")
	if err != nil {
		return nil, fmt.Errorf("stackdepot: %w", err)
	}
	l, err := newLayout(partsT, recordT, k.MemberOf)
	if err != nil {
		return nil, err
	}
	p, err := findPools(k)
	if err != nil {
		return nil, err
	}
	return newDepot(l, k, p), nil
}

func newDepot(l *layout, mem memory, p pools) *Depot {
	return &Depot{l: l, mem: mem, pools: p, extra: l.extraMask(), cache: map[uint32]result{}, poolPtr: map[uint64]uint64{}}
}

// maxPools bounds the pool array (8192 in every release: DEPOT_POOLS_CAP,
// STACK_ALLOC_SLABS_CAP; stack_depot_max_pools= accepts up to the index
// width, 1 << 17).
const maxPools = 1 << 17

// findPools locates the pool array and the bound on its used part.
func findPools(k *kernel.Kernel) (pools, error) {
	name := "stack_pools" // 961c949b012f (v6.3)
	sym, err := k.Types().Symbol(name)
	if err != nil {
		name = "stack_slabs"
		if sym, err = k.Types().Symbol(name); err != nil {
			return pools{}, fmt.Errorf("stackdepot: neither stack_pools nor stack_slabs: %w", kernel.ErrAbsent)
		}
	}
	va, err := k.Symbol(name)
	if err != nil {
		return pools{}, fmt.Errorf("stackdepot: %w", err)
	}
	p := pools{va: va, n: sym.Size / 8}
	isPtr := sym.Size == 8
	if sym.SizeBound {
		// Symbols from kallsyms have no sizes, only the distance to the
		// next symbol: the pointer came with stack_max_pools, and the
		// array's length (DEPOT_MAX_POOLS, STACK_ALLOC_MAX_SLABS) is a
		// power of two.
		_, err := k.Types().Symbol("stack_max_pools")
		isPtr = err == nil
		for p.n&(p.n-1) != 0 {
			p.n &= p.n - 1
		}
	}
	what := fmt.Sprintf("%s[%d]", name, p.n)
	if isPtr {
		// A pointer to stack_max_pools entries (ed4f142f72a9).
		if p.va, err = k.ReadPtr(va); err != nil {
			return pools{}, fmt.Errorf("stackdepot: %s: %w", name, err)
		}
		max, err := k.GlobalInt("stack_max_pools", "unsigned int")
		if err != nil {
			return pools{}, fmt.Errorf("stackdepot: %s is a pointer: %w", name, err)
		}
		p.n = uint64(max)
		what = fmt.Sprintf("*%s (stack_max_pools=%d)", name, max)
		if p.va == 0 {
			// No user asked for the depot: it was never initialised, and
			// holds no trace.
			p.what = fmt.Sprintf("%s, NULL: the depot was never initialised", what)
			return p, nil
		}
	}
	if p.n == 0 || p.n > maxPools {
		return pools{}, fmt.Errorf("stackdepot: %s: %d pools is implausible", what, p.n)
	}
	p.limit = p.n
	// The used part: pools_num counts pools (v6.8); before it, depot_index
	// (pool_index from v6.3) is the index of the pool being filled.
	for _, c := range []struct {
		sym   string
		count bool
	}{{"pools_num", true}, {"pool_index", false}, {"depot_index", false}} {
		if _, err := k.Types().Symbol(c.sym); err != nil {
			continue
		}
		v, err := k.GlobalInt(c.sym, "int")
		if err != nil {
			return pools{}, fmt.Errorf("stackdepot: %w", err)
		}
		what += fmt.Sprintf(", %s=%d", c.sym, v)
		if !c.count {
			v++
		}
		if v < 0 || uint64(v) > p.n {
			return pools{}, fmt.Errorf("stackdepot: %s is outside the array", what)
		}
		p.limit = uint64(v)
		break
	}
	p.what = what
	return p, nil
}

// PoolSize is the size of one pool in bytes.
func (d *Depot) PoolSize() uint64 { return d.l.poolSize }

// Pools says where the pools are, for messages.
func (d *Depot) Pools() string { return d.pools.what }

// Stack returns the frames of the trace a handle names, innermost first.
// Each handle's record is read once; the slice returned is shared between
// callers and must not be modified. A handle whose extra bits are set names
// the same trace as without them.
func (d *Depot) Stack(handle uint32) ([]uint64, error) {
	if handle&^d.extra == 0 {
		return nil, ErrNoStack
	}
	d.mu.RLock()
	r, ok := d.cache[handle]
	d.mu.RUnlock()
	if ok {
		return r.frames, r.err
	}
	frames, err := d.fetch(handle)
	d.mu.Lock()
	if len(d.cache) < maxCached {
		d.cache[handle] = result{frames, err}
	}
	d.mu.Unlock()
	return frames, err
}

// fetch reads a handle's record.
func (d *Depot) fetch(handle uint32) ([]uint64, error) {
	p := d.l.decode(handle)
	if !p.valid {
		return nil, &HandleError{Handle: handle, Msg: "the valid bit is clear"}
	}
	mode := d.l.indexMode
	if mode == indexEither {
		if r := d.resolved.Load(); r != 0 {
			mode = int(r - 1)
		}
	}
	switch mode {
	case indexPlain:
		return d.record(handle, p.index, p.offset)
	case indexPlus1:
		if p.index == 0 {
			return nil, &HandleError{Handle: handle, Msg: "pool index 0 in a kernel that counts pools from 1"}
		}
		return d.record(handle, p.index-1, p.offset)
	}
	// pool_index without a valid bit: try the index as it is and the one
	// below; the record that carries this handle is the one.
	var firstErr error
	for _, c := range []struct {
		mode int
		ok   bool
		idx  uint64
	}{{indexPlain, true, p.index}, {indexPlus1, p.index > 0, p.index - 1}} {
		if !c.ok {
			continue
		}
		frames, err := d.record(handle, c.idx, p.offset)
		if err == nil {
			d.resolved.CompareAndSwap(0, int32(c.mode+1))
			return frames, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

// pool returns the address of pool i.
func (d *Depot) pool(handle uint32, i uint64) (uint64, error) {
	if i >= d.pools.limit {
		return 0, &HandleError{Handle: handle, Msg: fmt.Sprintf("pool %d is outside %s", i, d.pools.what)}
	}
	d.mu.RLock()
	va, ok := d.poolPtr[i]
	d.mu.RUnlock()
	if ok {
		return va, nil
	}
	var b [8]byte
	at := d.pools.va + 8*i
	if err := d.mem.ReadVirt(b[:], at); err != nil {
		return 0, &HandleError{Handle: handle, Msg: fmt.Sprintf("reading pool pointer %d at %#x", i, at), Err: err}
	}
	va = binary.LittleEndian.Uint64(b[:])
	if va == 0 {
		return 0, &HandleError{Handle: handle, Msg: fmt.Sprintf("pool %d is NULL", i)}
	}
	d.mu.Lock()
	d.poolPtr[i] = va
	d.mu.Unlock()
	return va, nil
}

// record reads the record at offset (in DEPOT_STACK_ALIGN units) of pool i.
func (d *Depot) record(handle uint32, i, offset uint64) ([]uint64, error) {
	l := d.l
	pool, err := d.pool(handle, i)
	if err != nil {
		return nil, err
	}
	off := offset << depotStackAlign
	rec := pool + off
	// Only the header must fit here: since v6.8 (31639fd6cebd, "stackdepot:
	// use variable size records for non-evictable entries") a record taken
	// without STACK_DEPOT_FLAG_GET, as SLUB's are, holds just its frames, so
	// the last record of a pool may end before a full struct stack_record
	// would. The frames are bounded against the pool below.
	if off+l.hdrSize > l.poolSize {
		return nil, &HandleError{Handle: handle, Record: rec, Msg: fmt.Sprintf("offset %#x is past the end of the %d-byte pool", off, l.poolSize)}
	}
	hdr := make([]byte, l.hdrSize)
	if err := d.mem.ReadVirt(hdr, rec); err != nil {
		return nil, &HandleError{Handle: handle, Record: rec, Msg: "reading the record", Err: err}
	}
	dec := kernel.Decode(hdr)
	size, own := dec.Uint(l.size), uint32(dec.Uint(l.handle))
	if err := dec.Err(); err != nil {
		return nil, &HandleError{Handle: handle, Record: rec, Msg: "decoding the record", Err: err}
	}
	if own&^d.extra != handle&^d.extra {
		return nil, &HandleError{Handle: handle, Record: rec, Msg: fmt.Sprintf("the record's own handle is %#08x", own)}
	}
	room := (l.poolSize - off - l.hdrSize) / 8
	if l.maxFrames > 0 && l.maxFrames < room {
		room = l.maxFrames
	}
	if size == 0 || size > room {
		return nil, &HandleError{Handle: handle, Record: rec, Msg: fmt.Sprintf("%d frames (at most %d fit)", size, room)}
	}
	raw := make([]byte, 8*size)
	if err := d.mem.ReadVirt(raw, rec+l.hdrSize); err != nil {
		return nil, &HandleError{Handle: handle, Record: rec, Msg: "reading the frames", Err: err}
	}
	frames := make([]uint64, size)
	for j := range frames {
		frames[j] = binary.LittleEndian.Uint64(raw[8*j:])
	}
	return frames, nil
}
