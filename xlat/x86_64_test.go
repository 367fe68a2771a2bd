package xlat

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

// tables4 is a 4-level hierarchy rooted at 0x1000. Each comment gives the
// virtual range an entry covers and what it leads to.
var tables4 = []pte{
	// PML4 @0x1000
	{0x1000, 0x001, 0xa003}, // 0x0000008000000000 -> PDPT @0xa000, missing from the dump
	{0x1000, 0x111, 0x2003}, // 0xffff888000000000 -> PDPT @0x2000 (direct-map style)
	{0x1000, 0x1ff, 0x3003}, // 0xffffff8000000000 -> PDPT @0x3000 (kernel image)

	// PDPT @0x2000 (1 GiB per entry from 0xffff888000000000)
	{0x2000, 0, 0x4003},             // 0xffff888000000000 -> PD @0x4000
	{0x2000, 1, 0x80000000400010e3}, // 0xffff888040000000 -> 1G page 0x40000000 (NX, PAT bit 12 ignored)
	{0x2000, 2, 0x0000000000000002}, // 0xffff888080000000 -> not present (RW without P)
	{0x2000, 3, 0x9003},             // 0xffff8880c0000000 -> PD @0x9000, missing from the dump
	{0x2000, 5, 0x00000001400000e3}, // 0xffff888140000000 -> 1G page 0x140000000
	{0x2000, 6, 0x00000001800000e3}, // 0xffff888180000000 -> 1G page 0x180000000 (merges with [5])
	{0x3000, 0x1fe, 0xd003},         // PDPT @0x3000: 0xffffffff80000000 -> PD @0xd000
	{0x4000, 0, 0x5003},             // PD @0x4000: 0xffff888000000000 -> PT @0x5000
	{0x4000, 1, 0x8000000000a000e3}, // 0xffff888000200000 -> 2M page 0xa00000 (NX)
	{0x4000, 3, 0x0000000000c01083}, // 0xffff888000600000 -> 2M page 0xc00000 (PAT bit 12 ignored); [2] not present
	{0x4000, 4, 0xb003},             // 0xffff888000800000 -> PT @0xb000, missing from the dump
	{0xd000, 8, 0x00000000010000e3}, // PD @0xd000: 0xffffffff81000000 -> 2M page 0x1000000
	{0xd000, 9, 0x00000000012000e3}, // 0xffffffff81200000 -> 2M page 0x1200000 (merges with [8])
	{0x5000, 0, 0x7003},             // PT @0x5000: 0xffff888000000000 -> 0x7000
	{0x5000, 1, 0x20063},            // 0xffff888000001000 -> 0x20000; [2] not present
	{0x5000, 3, 0x8000000000030083}, // 0xffff888000003000 -> 0x30000 (bit 7 is PAT here, not PS)
	{0x5000, 4, 0x31003},            // 0xffff888000004000 -> 0x31000
	{0x5000, 5, 0x32003},            // 0xffff888000005000 -> 0x32000
	{0x5000, 6, 0x33003},            // 0xffff888000006000 -> 0x33000
	{0x5000, 7, 0x40003},            // 0xffff888000007000 -> 0x40000
}

// tables5 is a 5-level (LA57) hierarchy rooted at 0x1000.
var tables5 = []pte{
	// PML5 @0x1000 (256 TiB per entry)
	{0x1000, 0x001, 0x6003}, // 0x0001000000000000 -> PML4 @0x6000 (user half, above 2^47)
	{0x1000, 0x111, 0x2003}, // 0xff11000000000000 -> PML4 @0x2000 (the LA57 direct-map base)
	{0x2000, 0, 0x3003},     // PML4 @0x2000: 0xff11000000000000 -> PDPT @0x3000
	{0x3000, 0, 0x4003},     // PDPT @0x3000: 0xff11000000000000 -> PD @0x4000
	{0x3000, 1, 0x800000e3}, // 0xff11000040000000 -> 1G page 0x80000000
	{0x4000, 0, 0x5003},     // PD @0x4000: 0xff11000000000000 -> PT @0x5000
	{0x5000, 1, 0x9003},     // PT @0x5000: 0xff11000000001000 -> 0x9000
	{0x6000, 0, 0x7003},     // PML4 @0x6000: 0x0001000000000000 -> PDPT @0x7000
	{0x7000, 0, 0xc00000e3}, // PDPT @0x7000: 0x0001000000000000 -> 1G page 0xc0000000
}

// tablesLoop has a PML4 entry pointing at the PML4 itself, as recursive
// page-table mappings (or a crafted dump) do.
var tablesLoop = []pte{
	{0x1000, 0, 0x1003}, // PML4[0] -> PML4 @0x1000, read again as PDPT, PD, PT
}

// tablesFan points every entry of each table at one shared table below:
// no loop, but 512^3 leaves, which only the walk limit keeps bounded.
var tablesFan = []pte{
	{0x1000, 0, 0x2003},   // PML4[0] -> PDPT @0x2000
	{0x2000, all, 0x3003}, // every PDPT entry -> PD @0x3000
	{0x3000, all, 0x4003}, // every PD entry -> PT @0x4000
	{0x4000, all, 0x5003}, // every PT entry -> 0x5000
}

func newT(t testing.TB, mem PhysReader, levels int, noCache bool) *X86_64 {
	t.Helper()
	x, err := NewX86_64(mem, 0x1000, levels)
	if err != nil {
		t.Fatal(err)
	}
	x.noCache = noCache
	return x
}

// forEachCache runs f against a cached and an uncached translator. The
// cached one runs each check twice so the second pass is served from the
// TLB and table caches.
func forEachCache(t *testing.T, mem PhysReader, levels int, f func(t *testing.T, x *X86_64)) {
	for _, mode := range []struct {
		name    string
		noCache bool
		passes  int
	}{{"cached", false, 2}, {"uncached", true, 1}} {
		t.Run(mode.name, func(t *testing.T) {
			x := newT(t, mem, levels, mode.noCache)
			for range mode.passes {
				f(t, x)
			}
		})
	}
}

type xlatCase struct {
	va       uint64
	pa, size uint64
	level    int   // for errors: the level reported
	err      error // sentinel expected via errors.Is; nil for success
	missing  uint64
}

func checkTranslate(t *testing.T, x *X86_64, tests []xlatCase) {
	t.Helper()
	for _, tt := range tests {
		pa, size, err := x.Translate(tt.va)
		switch {
		case tt.err == nil && tt.missing == 0:
			if err != nil || pa != tt.pa || size != tt.size {
				t.Errorf("Translate(%#x) = %#x, %#x, %v; want %#x, %#x", tt.va, pa, size, err, tt.pa, tt.size)
			}
		default:
			var te *TranslateError
			if !errors.As(err, &te) {
				t.Errorf("Translate(%#x) err = %v, want *TranslateError", tt.va, err)
				continue
			}
			if te.VA != tt.va || te.Level != tt.level {
				t.Errorf("Translate(%#x) err VA %#x level %d, want level %d: %v", tt.va, te.VA, te.Level, tt.level, err)
			}
			if tt.err != nil && !errors.Is(err, tt.err) {
				t.Errorf("Translate(%#x) err = %v, want %v", tt.va, err, tt.err)
			}
			var mp *missingPage
			if tt.missing != 0 && (!errors.As(err, &mp) || mp.PA != tt.missing) {
				t.Errorf("Translate(%#x) err = %v, want wrapped missing page %#x", tt.va, err, tt.missing)
			}
			if pa != 0 || size != 0 {
				t.Errorf("Translate(%#x) returned %#x, %#x with error", tt.va, pa, size)
			}
		}
	}
}

func TestTranslate4Level(t *testing.T) {
	mem := newMem(tables4)
	tests := []xlatCase{
		// 4 KiB pages
		{va: 0xffff888000000000, pa: 0x7000, size: 4 << 10},
		{va: 0xffff888000000abc, pa: 0x7abc, size: 4 << 10},
		{va: 0xffff888000001fff, pa: 0x20fff, size: 4 << 10},
		{va: 0xffff888000003123, pa: 0x30123, size: 4 << 10},
		// 2 MiB pages
		{va: 0xffff888000200000, pa: 0xa00000, size: 2 << 20},
		{va: 0xffff8880003fffff, pa: 0xbfffff, size: 2 << 20},
		{va: 0xffff888000612345, pa: 0xc12345, size: 2 << 20},
		{va: 0xffffffff81234567, pa: 0x1234567, size: 2 << 20},
		// 1 GiB pages
		{va: 0xffff888040000000, pa: 0x40000000, size: 1 << 30},
		{va: 0xffff88807fffffff, pa: 0x7fffffff, size: 1 << 30},
		{va: 0xffff888187654321, pa: 0x187654321, size: 1 << 30},
		// not present at each level
		{va: 0x0000000000001000, level: 4, err: ErrNotMapped},
		{va: 0xffff800000000000, level: 4, err: ErrNotMapped}, // lowest canonical upper-half address
		{va: 0x00007fffffffffff, level: 4, err: ErrNotMapped}, // highest canonical lower-half address
		{va: 0xffff888080000000, level: 3, err: ErrNotMapped},
		{va: 0xffff888000400000, level: 2, err: ErrNotMapped},
		{va: 0xffff888000002000, level: 1, err: ErrNotMapped},
		// page-table page missing from the dump, at each level below the root
		{va: 0x0000008000000000, level: 3, missing: 0xa000},
		{va: 0xffff8880c0000000, level: 2, missing: 0x9000},
		{va: 0xffff888000800000, level: 1, missing: 0xb000},
		// non-canonical for 48-bit addresses
		{va: 0x0000800000000000, level: 0, err: ErrNonCanonical},
		{va: 0xffff7fffffffffff, level: 0, err: ErrNonCanonical},
		{va: 0x8000000000000000, level: 0, err: ErrNonCanonical},
		{va: 0xff11000000000000, level: 0, err: ErrNonCanonical}, // fine with LA57, not here
	}
	forEachCache(t, mem, 4, func(t *testing.T, x *X86_64) { checkTranslate(t, x, tests) })
}

func TestTranslate5Level(t *testing.T) {
	mem := newMem(tables5)
	tests := []xlatCase{
		{va: 0xff11000000001234, pa: 0x9234, size: 4 << 10},
		{va: 0xff11000040000010, pa: 0x80000010, size: 1 << 30},
		{va: 0x0001000000000042, pa: 0xc0000042, size: 1 << 30}, // above 2^47: needs LA57
		{va: 0xff12000000000000, level: 5, err: ErrNotMapped},
		{va: 0xff11008000000000, level: 4, err: ErrNotMapped},
		{va: 0xff11000080000000, level: 3, err: ErrNotMapped},
		{va: 0xff11000000200000, level: 2, err: ErrNotMapped},
		{va: 0xff11000000000000, level: 1, err: ErrNotMapped},
		{va: 0x0100000000000000, level: 0, err: ErrNonCanonical},
		{va: 0xfeffffffffffffff, level: 0, err: ErrNonCanonical},
	}
	forEachCache(t, mem, 5, func(t *testing.T, x *X86_64) { checkTranslate(t, x, tests) })
	if x := newT(t, mem, 5, false); x.Levels() != 5 || x.Root() != 0x1000 {
		t.Errorf("Levels, Root = %d, %#x", x.Levels(), x.Root())
	}
}

func TestTranslateErrorText(t *testing.T) {
	x := newT(t, newMem(tables4), 4, false)
	tests := []struct {
		va   uint64
		want string
	}{
		{0xffff888000400000, "xlat: virtual address 0xffff888000400000 not mapped (PD entry 0x0 not present)"},
		{0xffff888080000000, "xlat: virtual address 0xffff888080000000 not mapped (PDPT entry 0x2 not present)"},
		{0xffff8880c0000000, "xlat: virtual address 0xffff8880c0000000 not translatable (reading PD entry at physical 0x9000): physical page 0x9000 missing from dump"},
		{0x0000800000000000, "xlat: virtual address 0x800000000000 is not canonical for 4-level paging"},
	}
	for _, tt := range tests {
		_, _, err := x.Translate(tt.va)
		if err == nil || err.Error() != tt.want {
			t.Errorf("Translate(%#x) error\n got %v\nwant %s", tt.va, err, tt.want)
		}
	}
	var te *TranslateError
	_, _, err := x.Translate(0xffff888080000000)
	if !errors.As(err, &te) || te.Entry != 2 || te.EntryPA != 0x2010 {
		t.Errorf("Entry, EntryPA = %#x, %#x; want 0x2, 0x2010", te.Entry, te.EntryPA)
	}
}

// TestTranslateLoop: a self-referencing PML4 entry makes the walk reuse the
// PML4 at every level. The walk must end after Levels steps, the same as
// the CPU, landing on the PML4 page itself.
func TestTranslateLoop(t *testing.T) {
	tests := []xlatCase{
		{va: 0x0, pa: 0x1000, size: 4 << 10},
		{va: 0x1ff, pa: 0x11ff, size: 4 << 10},
		{va: 0x1000, level: 1, err: ErrNotMapped},       // PT index 1 of the PML4-as-PT
		{va: 0x8000000000, level: 4, err: ErrNotMapped}, // PML4[1]
		{va: 0x40000000, level: 3, err: ErrNotMapped},   // PDPT index 1
		{va: 0x0000000000200000, level: 2, err: ErrNotMapped},
	}
	forEachCache(t, newMem(tablesLoop), 4, func(t *testing.T, x *X86_64) { checkTranslate(t, x, tests) })
}

// TestTranslateEntryFallback: a reader that cannot return whole pages
// (e.g. a dump whose table page is only partly present) still translates,
// through single-entry reads.
func TestTranslateEntryFallback(t *testing.T) {
	mem := newMem(tables4)
	mem.maxRead = 8
	x := newT(t, mem, 4, false)
	for range 2 {
		checkTranslate(t, x, []xlatCase{{va: 0xffff888000000abc, pa: 0x7abc, size: 4 << 10}})
	}
}

func TestNewX86_64Errors(t *testing.T) {
	mem := newMem(nil)
	for _, tt := range []struct {
		mem    PhysReader
		root   uint64
		levels int
	}{
		{nil, 0x1000, 4},
		{mem, 0x1000, 3},
		{mem, 0x1000, 6},
		{mem, 0x1001, 4},             // PCID bits not masked
		{mem, 0x8000000000001000, 4}, // CR3 bit 63 not masked
		{mem, 0x0010000000000000, 4}, // beyond 52 bits
	} {
		if _, err := NewX86_64(tt.mem, tt.root, tt.levels); err == nil {
			t.Errorf("NewX86_64(%v, %#x, %d) succeeded", tt.mem, tt.root, tt.levels)
		}
	}
}

func TestDirectMap(t *testing.T) {
	const base = 0xffff888000000000
	x := newT(t, newMem(tables4), 4, false)
	x.SetDirectMap(base, 64<<30)
	checkTranslate(t, x, []xlatCase{
		// Not in the page tables at all: served by arithmetic alone.
		{va: base + 0x123456789, pa: 0x123456789, size: 4 << 10},
		{va: base + 64<<30 - 1, pa: 64<<30 - 1, size: 4 << 10},
		// Past the end: back to walking, which finds nothing.
		{va: base + 64<<30, level: 3, err: ErrNotMapped},
		{va: base - 1, level: 4, err: ErrNotMapped},
	})
	x.SetDirectMap(base, 0)
	checkTranslate(t, x, []xlatCase{{va: base + 0x123456789, level: 3, err: ErrNotMapped}})

	// A range reaching the top of the address space must not wrap.
	x.SetDirectMap(0xffffffffffff0000, 1<<20)
	checkTranslate(t, x, []xlatCase{
		{va: 0xffffffffffffffff, pa: 0xffff, size: 4 << 10},
		{va: 0x10, level: 4, err: ErrNotMapped},
	})
}

func TestKernelImage(t *testing.T) {
	walker := newT(t, newMem(tables4), 4, true)
	x := newT(t, newMem(tables4), 4, false)
	if err := x.SetKernelImage(0xffffffff81000000, 0xffffffff81400000, 0); err != nil {
		t.Fatal(err)
	}
	// The fast path must agree with the page tables where both apply.
	for _, va := range []uint64{0xffffffff81000000, 0xffffffff81234567, 0xffffffff813fffff} {
		fpa, _, err1 := x.Translate(va)
		wpa, _, err2 := walker.Translate(va)
		if err1 != nil || err2 != nil || fpa != wpa {
			t.Errorf("Translate(%#x): fast %#x %v, walk %#x %v", va, fpa, err1, wpa, err2)
		}
	}
	// phys_base shifts the whole image; a KASLR-shifted _text moves only va.
	if err := x.SetKernelImage(0xffffffff98e00000, 0xffffffff9b000000, 0x41200000); err != nil {
		t.Fatal(err)
	}
	checkTranslate(t, x, []xlatCase{
		{va: 0xffffffff98e00000, pa: 0x18e00000 + 0x41200000, size: 4 << 10},
		{va: 0xffffffff81000000, pa: 0x1000000, size: 2 << 20}, // outside the new range: walked
	})
	for _, r := range [][2]uint64{
		{0xffffffff7fffffff, 0xffffffff81000000},
		{0xffffffff81000000, 0xffffffffc0000001},
		{0xffffffff82000000, 0xffffffff81000000},
	} {
		if err := x.SetKernelImage(r[0], r[1], 0); err == nil {
			t.Errorf("SetKernelImage(%#x, %#x) accepted", r[0], r[1])
		}
	}
	if err := x.SetKernelImage(0, 0, 0); err != nil {
		t.Errorf("clearing: %v", err)
	}
	checkTranslate(t, x, []xlatCase{{va: 0xffffffff98e00000, level: 2, err: ErrNotMapped}})
}

func TestReadVirt(t *testing.T) {
	mem := newMem(tables4, 0x7000, 0x20000, 0xa00000, 0xa01000, 0x31000, 0x32000)
	want := func(pas ...[2]uint64) []byte { // {pa, len} runs
		var b []byte
		for _, r := range pas {
			for i := range r[1] {
				b = append(b, pat(r[0]+i))
			}
		}
		return b
	}
	tests := []struct {
		name    string
		va      uint64
		len     int
		want    []byte
		errVA   uint64 // of the TranslateError, if any
		missing uint64 // physical page of the wrapped read error, if any
	}{
		{name: "within page", va: 0xffff888000000100, len: 16, want: want([2]uint64{0x7100, 16})},
		{name: "across scattered pages", va: 0xffff888000000ff8, len: 16, want: want([2]uint64{0x7ff8, 8}, [2]uint64{0x20000, 8})},
		{name: "across contiguous pages", va: 0xffff888000004ffc, len: 8, want: want([2]uint64{0x31ffc, 8})},
		{name: "within 2M page across 4K frames", va: 0xffff888000200ff0, len: 32, want: want([2]uint64{0xa00ff0, 32})},
		{name: "into unmapped page", va: 0xffff888000001ff0, len: 32, want: want([2]uint64{0x20ff0, 16}), errVA: 0xffff888000002000},
		{name: "unmapped start", va: 0xffff888000002000, len: 8, want: nil, errVA: 0xffff888000002000},
		{name: "data page missing", va: 0xffff888000003000, len: 8, want: nil, missing: 0x30000},
		{name: "data page missing midway", va: 0xffff888000005ff8, len: 16, want: want([2]uint64{0x32ff8, 8}), missing: 0x33000},
		{name: "empty", va: 0x8000000000000000, len: 0, want: nil},
	}
	forEachCache(t, mem, 4, func(t *testing.T, x *X86_64) {
		for _, tt := range tests {
			buf := make([]byte, tt.len)
			n, err := x.ReadVirt(buf, tt.va)
			if n != len(tt.want) || !slices.Equal(buf[:n], tt.want) {
				t.Errorf("%s: read %d bytes %x, want %x", tt.name, n, buf[:n], tt.want)
			}
			var te *TranslateError
			var mp *missingPage
			switch {
			case tt.errVA != 0:
				if !errors.As(err, &te) || te.VA != tt.errVA || !errors.Is(err, ErrNotMapped) {
					t.Errorf("%s: err = %v, want not-mapped at %#x", tt.name, err, tt.errVA)
				}
			case tt.missing != 0:
				if !errors.As(err, &mp) || mp.PA != tt.missing || !strings.Contains(err.Error(), "virtual address 0x") {
					t.Errorf("%s: err = %v, want wrapped missing page %#x", tt.name, err, tt.missing)
				}
			case err != nil:
				t.Errorf("%s: err = %v", tt.name, err)
			}
		}
	})
}

// TestReadVirtLinear: a read through the direct-map fast path spanning
// many pages is one physical read, not one per page.
func TestReadVirtLinear(t *testing.T) {
	mem := newMem(tables4, 0x0, 0x100000, 0x101000, 0x102000, 0x103000)
	x := newT(t, mem, 4, false)
	x.SetDirectMap(0xffff888000000000, 1<<30)
	buf := make([]byte, 3*pageSize)
	before := mem.reads.Load()
	n, err := x.ReadVirt(buf, 0xffff888000100800)
	if n != len(buf) || err != nil {
		t.Fatalf("ReadVirt = %d, %v", n, err)
	}
	if got := mem.reads.Load() - before; got != 1 {
		t.Errorf("%d physical reads, want 1", got)
	}
	if buf[0] != pat(0x100800) || buf[len(buf)-1] != pat(0x103800-1) {
		t.Error("wrong bytes")
	}
	// Wrapping past 2^64 is refused, not silently continued at 0.
	x.SetDirectMap(0xfffffffffffff000, pageSize)
	if n, err := x.ReadVirt(make([]byte, 32), 0xfffffffffffffff0); n != 16 || !errors.Is(err, ErrNonCanonical) {
		t.Errorf("wrapping read = %d, %v", n, err)
	}
}

// collect gathers Mappings output, rendering errors by level, sentinel or
// missing page so expectations can be written as data.
func collect(x *X86_64, start, end uint64) []string {
	var out []string
	for m, err := range x.Mappings(start, end) {
		if err != nil {
			out = append(out, errString(err))
			continue
		}
		out = append(out, fmt.Sprintf("%#x -> %#x size %#x page %#x", m.VA, m.PA, m.Size, m.PageSize))
	}
	return out
}

func errString(err error) string {
	var te *TranslateError
	if !errors.As(err, &te) {
		return "untyped error: " + err.Error()
	}
	var mp *missingPage
	switch {
	case errors.As(err, &mp):
		return fmt.Sprintf("error %#x %s: missing %#x", te.VA, LevelName(te.Level), mp.PA)
	default:
		return fmt.Sprintf("error %#x %s: %v", te.VA, LevelName(te.Level), te.Err)
	}
}

func TestMappings(t *testing.T) {
	x := newT(t, newMem(tables4), 4, false)
	tests := []struct {
		name       string
		start, end uint64
		want       []string
	}{
		{"everything", 0, 0, []string{
			"error 0x8000000000 PDPT: missing 0xa000",
			"0xffff888000000000 -> 0x7000 size 0x1000 page 0x1000",
			"0xffff888000001000 -> 0x20000 size 0x1000 page 0x1000",
			"0xffff888000003000 -> 0x30000 size 0x4000 page 0x1000", // PT[3..6] merged
			"0xffff888000007000 -> 0x40000 size 0x1000 page 0x1000",
			"0xffff888000200000 -> 0xa00000 size 0x200000 page 0x200000",
			"0xffff888000600000 -> 0xc00000 size 0x200000 page 0x200000",
			"error 0xffff888000800000 PT: missing 0xb000",
			"0xffff888040000000 -> 0x40000000 size 0x40000000 page 0x40000000",
			"error 0xffff8880c0000000 PD: missing 0x9000",
			"0xffff888140000000 -> 0x140000000 size 0x80000000 page 0x40000000", // PDPT[5..6] merged
			"0xffffffff81000000 -> 0x1000000 size 0x400000 page 0x200000",       // PD[8..9] merged
		}},
		{"clipped", 0xffff888000004800, 0xffff888000200800, []string{
			"0xffff888000004800 -> 0x31800 size 0x2800 page 0x1000",
			"0xffff888000007000 -> 0x40000 size 0x1000 page 0x1000",
			"0xffff888000200000 -> 0xa00000 size 0x800 page 0x200000",
		}},
		{"inside one 1G page", 0xffff888041000000, 0xffff888041000010, []string{
			"0xffff888041000000 -> 0x41000000 size 0x10 page 0x40000000",
		}},
		{"lower half only", 0, 1 << 47, []string{"error 0x8000000000 PDPT: missing 0xa000"}},
		{"non-canonical hole", 1 << 47, 0xffff800000000000, nil},
		{"across the hole", 0x7fffffffffff, 0xffff888000001000, []string{
			"0xffff888000000000 -> 0x7000 size 0x1000 page 0x1000",
		}},
		{"empty", 0xffff888000000000, 0xffff888000000000, nil},
		{"reversed", 0xffff888000001000, 0xffff888000000000, nil},
		{"last byte", 0xffffffffffffffff, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := collect(x, tt.start, tt.end)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Mappings(%#x, %#x):\n got %s\nwant %s", tt.start, tt.end,
					strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
			}
		})
	}
}

func TestMappings5Level(t *testing.T) {
	x := newT(t, newMem(tables5), 5, false)
	want := []string{
		"0x1000000000000 -> 0xc0000000 size 0x40000000 page 0x40000000",
		"0xff11000000001000 -> 0x9000 size 0x1000 page 0x1000",
		"0xff11000040000000 -> 0x80000000 size 0x40000000 page 0x40000000",
	}
	if got := collect(x, 0, 0); !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// TestMappingsStop: breaking out of the loop at any point must stop the
// walk; calling yield again would panic in range-over-func.
func TestMappingsStop(t *testing.T) {
	x := newT(t, newMem(tables4), 4, false)
	total := len(collect(x, 0, 0))
	for stop := 1; stop <= total; stop++ {
		n := 0
		for range x.Mappings(0, 0) {
			n++
			if n == stop {
				break
			}
		}
		if n != stop {
			t.Errorf("stop at %d: got %d items", stop, n)
		}
	}
}

func TestMappingsLoop(t *testing.T) {
	x := newT(t, newMem(tablesLoop), 4, false)
	want := []string{"error 0x0 PML4: page-table loop"}
	if got := collect(x, 0, 0); !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestMappingsFanOut: shared tables multiply the leaves without a loop.
// The walk limit ends the iteration after a bounded number of tables.
func TestMappingsFanOut(t *testing.T) {
	x := newT(t, newMem(tablesFan), 4, false)
	x.walkLimit = 10
	var maps, errs int
	var last error
	for m, err := range x.Mappings(0, 0) {
		if err != nil {
			errs++
			last = err
			continue
		}
		maps++
		if m.PA != 0x5000 || m.Size != pageSize {
			t.Fatalf("unexpected mapping %+v", m)
		}
	}
	// PML4, PDPT, PD and 7 PTs of 512 leaves each.
	if maps != 7*512 || errs != 1 || !errors.Is(last, ErrWalkLimit) {
		t.Errorf("got %d mappings, %d errors, last %v", maps, errs, last)
	}
	if pa, _, err := x.Translate(0x7fffffffff); pa != 0x5fff || err != nil {
		t.Errorf("Translate = %#x, %v", pa, err)
	}
}

// TestConcurrent exercises the lock-free caches from several goroutines;
// run with -race.
func TestConcurrent(t *testing.T) {
	mem := newMem(tables4)
	ref := newT(t, mem, 4, true)
	x := newT(t, mem, 4, false)
	var vas []uint64
	for _, va := range []uint64{0xffff888000000010, 0xffff888000001010, 0xffff888000200010, 0xffff888040000010,
		0xffff888000002000, 0xffffffff81000010, 0xffff8880c0000000, 0xffff888000004010} {
		for off := range uint64(4) {
			vas = append(vas, va+off*0x1000) // neighbouring pages, some in other TLB slots
		}
	}
	want := make([]string, len(vas))
	for i, va := range vas {
		pa, size, err := ref.Translate(va)
		want[i] = fmt.Sprint(pa, size, err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 4000 {
				k := (i*7 + g) % len(vas)
				pa, size, err := x.Translate(vas[k])
				if got := fmt.Sprint(pa, size, err); got != want[k] {
					t.Errorf("Translate(%#x) = %s, want %s", vas[k], got, want[k])
					return
				}
			}
		})
	}
	wg.Wait()
}
