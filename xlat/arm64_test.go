package xlat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
)

// armBuilder writes VMSAv8-64 tables into fake physical memory.
type armBuilder struct {
	tb   testing.TB
	cfg  ARM64Config
	x    *ARM64 // geometry (checked against armGeometry by the tests)
	mem  *fakeMem
	next uint64 // physical address of the next free table
	root uint64
}

// Attribute bits a real kernel sets (AF, SH inner shareable, PXN, UXN, and
// the software dirty bit), which must not affect the output address.
const armAttrs = 1<<10 | 3<<8 | 1<<53 | 1<<54 | 1<<55

func newARMBuilder(tb testing.TB, cfg ARM64Config) *armBuilder {
	tb.Helper()
	b := &armBuilder{tb: tb, cfg: cfg, mem: newMem(nil), next: 0x4000_0000}
	b.root = b.alloc()
	x, err := NewARM64(b.mem, b.root, cfg)
	if err != nil {
		tb.Fatalf("NewARM64(%+v): %v", cfg, err)
	}
	x.noCache = true // builders add entries after translating
	b.x = x
	return b
}

func (b *armBuilder) alloc() uint64 {
	pa := b.next
	b.next += b.cfg.Granule
	for off := uint64(0); off < b.cfg.Granule; off += pageSize {
		b.mem.page(pa + off)
	}
	return pa
}

func (b *armBuilder) put(pa, val uint64) {
	binary.LittleEndian.PutUint64(b.mem.page(pa &^ (pageSize - 1))[pa%pageSize:], val)
}

func (b *armBuilder) get(pa uint64) uint64 {
	return binary.LittleEndian.Uint64(b.mem.page(pa &^ (pageSize - 1))[pa%pageSize:])
}

// encode places an output address in a descriptor, as the hardware reads it.
func (b *armBuilder) encode(pa uint64) uint64 {
	switch {
	case b.cfg.Granule == 64<<10:
		return pa&(1<<48-1) | (pa>>48&0xf)<<12
	case b.cfg.LPA2:
		return pa&(1<<50-1) | (pa>>50&3)<<8
	}
	return pa
}

func (b *armBuilder) attrs() uint64 {
	if b.cfg.LPA2 {
		return armAttrs &^ (3 << 8) // bits 9:8 are address bits
	}
	return armAttrs
}

// slot returns the physical address of the entry for va at walk level l,
// creating the tables above it.
func (b *armBuilder) slot(va uint64, l int) uint64 {
	table := b.root
	for lv := b.x.levels; ; lv-- {
		idx := (va >> b.x.shift(lv)) & (b.x.entries(lv) - 1)
		ea := table + idx*8
		if lv == l {
			return ea
		}
		e := b.get(ea)
		if e&3 != 3 {
			next := b.alloc()
			e = b.encode(next) | 3
			b.put(ea, e)
		}
		table = b.x.outAddr(e)
	}
}

// mapAt maps va to pa with a leaf at walk level l (1: a page).
func (b *armBuilder) mapAt(va, pa uint64, l int) {
	d := b.encode(pa) | b.attrs() | descValid
	if l == 1 {
		d |= descTable
	}
	b.put(b.slot(va, l), d)
}

// armGeometry: levels walked and the block sizes at Arm levels 2 and 1
// (0: none) for each granule and VA size, from the Arm ARM's tables.
var armGeometry = []struct {
	granule uint64
	va      uint
	lpa2    bool
	levels  int
	l2, l1  uint64
}{
	{4 << 10, 39, false, 3, 2 << 20, 1 << 30},
	{4 << 10, 42, false, 4, 2 << 20, 1 << 30},
	{4 << 10, 48, false, 4, 2 << 20, 1 << 30},
	{4 << 10, 52, true, 5, 2 << 20, 1 << 30},
	{16 << 10, 36, false, 2, 32 << 20, 0},
	{16 << 10, 47, false, 3, 32 << 20, 0},
	{16 << 10, 48, false, 4, 32 << 20, 0},
	{16 << 10, 52, true, 4, 32 << 20, 64 << 30},
	{64 << 10, 42, false, 2, 512 << 20, 0},
	{64 << 10, 48, false, 3, 512 << 20, 4 << 40},
	{64 << 10, 52, false, 3, 512 << 20, 4 << 40},
}

func TestARM64Geometry(t *testing.T) {
	for _, g := range armGeometry {
		t.Run(fmt.Sprintf("%dK-%d", g.granule>>10, g.va), func(t *testing.T) {
			b := newARMBuilder(t, ARM64Config{Granule: g.granule, VABits: g.va, LPA2: g.lpa2})
			x := b.x
			if x.Levels() != g.levels {
				t.Fatalf("levels %d, want %d", x.Levels(), g.levels)
			}
			base := -(uint64(1) << g.va)
			top := -g.granule
			// A page at the bottom of the kernel half, one at the very top,
			// and a block at Arm level 2 (walk level 2) in between.
			blk := base + 8*g.l2
			mid := base + (uint64(1)<<g.va)/2
			want := []Mapping{
				{VA: base, PA: 0x8000_0000, Size: g.granule, PageSize: g.granule},
				{VA: blk, PA: 0xc000_0000 &^ (g.l2 - 1), Size: g.l2, PageSize: g.l2},
				{VA: top, PA: 0x9000_0000, Size: g.granule, PageSize: g.granule},
			}
			b.mapAt(want[0].VA, want[0].PA, 1)
			b.mapAt(want[1].VA, want[1].PA, 2)
			b.mapAt(want[2].VA, want[2].PA, 1)
			if g.l1 != 0 {
				m := Mapping{VA: mid, PA: 4 * g.l1, Size: g.l1, PageSize: g.l1}
				b.mapAt(m.VA, m.PA, 3)
				want = append(want[:2], m, want[2])
			}
			for _, m := range want {
				for _, off := range []uint64{0, 8, m.Size - 1} {
					pa, size, err := x.Translate(m.VA + off)
					if err != nil || pa != m.PA+off || size != m.PageSize {
						t.Errorf("Translate(%#x) = %#x, %#x, %v; want %#x, %#x", m.VA+off, pa, size, err, m.PA+off, m.PageSize)
					}
				}
			}
			var got []Mapping
			for m, err := range x.Mappings(0, 0) {
				if err != nil {
					t.Fatalf("Mappings: %v", err)
				}
				got = append(got, m)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("Mappings = %x\nwant       %x", got, want)
			}
			// An unmapped neighbour fails at the last level the tables reach.
			_, _, err := x.Translate(base + g.granule)
			var te *TranslateError
			if !errors.As(err, &te) || !errors.Is(err, ErrNotMapped) || te.Level != 1 {
				t.Errorf("Translate(unmapped) = %v, want not mapped at walk level 1", err)
			}
		})
	}
}

func TestARM64HighPA(t *testing.T) {
	for _, c := range []struct {
		cfg ARM64Config
		pa  uint64
	}{
		{ARM64Config{Granule: 64 << 10, VABits: 48}, 0xa_bcde_0000_0000 | 0x1234_0000},
		{ARM64Config{Granule: 64 << 10, VABits: 52}, 0xf_0000_0000_0000},
		{ARM64Config{Granule: 4 << 10, VABits: 52, LPA2: true}, 0xc_0000_1234_5000},
		{ARM64Config{Granule: 16 << 10, VABits: 52, LPA2: true}, 0x4_0000_0000_c000},
	} {
		b := newARMBuilder(t, c.cfg)
		va := -(uint64(1) << c.cfg.VABits) + 3*c.cfg.Granule
		b.mapAt(va, c.pa, 1)
		if pa, _, err := b.x.Translate(va + 5); err != nil || pa != c.pa+5 {
			t.Errorf("%+v: Translate = %#x, %v; want %#x", c.cfg, pa, err, c.pa+5)
		}
	}
}

func TestARM64StripAndErrors(t *testing.T) {
	const pac = 0xffff_0000_0000_0000 // GENMASK(63, 48), KERNELPACMASK on 48-bit VA
	b := newARMBuilder(t, ARM64Config{Granule: 4 << 10, VABits: 48, PACMask: pac})
	va := uint64(0xffff_8000_1234_5000)
	b.mapAt(va, 0x4_5678_9000, 1)
	// A loop: an entry of a level-3 table pointing back at the root.
	loopVA := uint64(0xffff_f000_0000_0000)
	b.put(b.slot(loopVA, 2), b.root|3)
	// A reserved descriptor (01) at level 3, and a 512 GiB block at level 0,
	// which only LPA2 allows.
	resVA := va + 0x1000
	b.put(b.slot(resVA, 1), 0x4_0000_0000|1)
	b.put(b.root+300*8, 0x80_0000_0000|1)
	// A table whose page is absent from the dump.
	missVA := uint64(0xffff_c000_0000_0000)
	b.put(b.slot(missVA, 3), 0x7_0000_0000|3)

	cases := []struct {
		name  string
		va    uint64
		pa    uint64
		err   error
		level int
	}{
		{"plain", va + 0x42, 0x4_5678_9042, nil, 0},
		{"tag", va&^(0xff<<56) | 0xf2<<56 + 0x42, 0x4_5678_9042, nil, 0},
		{"pac", va&^(0x7f<<48) | 0x35<<48 + 0x42, 0x4_5678_9042, nil, 0},
		{"pac+tag", va&^(0xff<<56|0x7f<<48) | 0x3b<<56 | 1<<48, 0x4_5678_9000, nil, 0},
		{"user", 0x0000_7fff_1234_5000, 0, ErrNotMapped, 0},
		{"reserved-l3", resVA, 0, ErrNotMapped, 1},
		{"block-l0", 0xffff_0000_0000_0000 | 300<<39, 0, ErrNotMapped, 4},
		{"missing", missVA, 0, &missingPage{}, 2},
	}
	for _, c := range cases {
		pa, _, err := b.x.Translate(c.va)
		var te *TranslateError
		switch {
		case c.err == nil:
			if err != nil || pa != c.pa {
				t.Errorf("%s: Translate(%#x) = %#x, %v; want %#x", c.name, c.va, pa, err, c.pa)
			}
		case !errors.As(err, &te) || te.Level != c.level || te.VA != c.va:
			t.Errorf("%s: Translate(%#x) = %v (%+v); want level %d", c.name, c.va, err, te, c.level)
		default:
			var mp *missingPage
			if _, ok := c.err.(*missingPage); ok && !errors.As(err, &mp) || !ok && !errors.Is(err, c.err) {
				t.Errorf("%s: Translate(%#x) = %v; want %v", c.name, c.va, err, c.err)
			}
		}
	}

	// Without a PAC mask, bits between VA_BITS and 55 must all be set.
	nb := newARMBuilder(t, ARM64Config{Granule: 4 << 10, VABits: 48})
	if _, _, err := nb.x.Translate(0xffbf_8000_0000_0000); !errors.Is(err, ErrNonCanonical) {
		t.Errorf("no PAC mask: %v, want non-canonical", err)
	}
	// A loop terminates in Translate (a fixed depth) and is reported by Mappings.
	if _, _, err := b.x.Translate(loopVA); err == nil {
		t.Log("loop translated") // what it lands on is the tables' business
	}
	var loop, miss bool
	for _, err := range b.x.Mappings(0, 0) {
		loop = loop || errors.Is(err, ErrTableLoop)
		var mp *missingPage
		miss = miss || errors.As(err, &mp)
	}
	if !loop || !miss {
		t.Errorf("Mappings: loop reported %v, missing table reported %v", loop, miss)
	}
	b.x.walkLimit = 2
	var limit bool
	for _, err := range b.x.Mappings(0, 0) {
		limit = limit || errors.Is(err, ErrWalkLimit)
	}
	if !limit {
		t.Error("walk limit not reported")
	}
}

func TestARM64FastPathsAndRead(t *testing.T) {
	b := newARMBuilder(t, ARM64Config{Granule: 4 << 10, VABits: 48})
	// Two virtually adjacent pages, physically apart.
	va := uint64(0xffff_8000_0800_0ff0)
	b.mapAt(va&^0xfff, 0x10_0000, 1)
	b.mapAt(va&^0xfff+0x1000, 0x30_0000, 1)
	for _, pa := range []uint64{0x10_0000, 0x30_0000, 0x4000_5000, 0x4000_6000} {
		b.mem.page(pa)
		for i := range uint64(pageSize) {
			b.mem.page(pa)[i] = pat(pa + i)
		}
	}
	buf := make([]byte, 32)
	if n, err := b.x.ReadVirt(buf, va); n != 32 || err != nil {
		t.Fatalf("ReadVirt = %d, %v", n, err)
	}
	for i, c := range buf {
		pa := uint64(0x10_0ff0 + i)
		if i >= 16 {
			pa = 0x30_0000 + uint64(i-16)
		}
		if c != pat(pa) {
			t.Fatalf("byte %d = %#x, want %#x", i, c, pat(pa))
		}
	}
	const lm, phys = 0xffff_0000_0000_0000, 0x4000_0000
	b.x.SetDirectMap(lm, phys, 1<<30)
	if pa, _, err := b.x.Translate(lm + 0x5123); err != nil || pa != phys+0x5123 {
		t.Errorf("linear map: %#x, %v", pa, err)
	}
	const kimg, voff = 0xffff_8000_0800_0000, 0xffff_7fff_8800_0000
	if err := b.x.SetKernelImage(kimg, kimg+0x10_0000, voff); err != nil {
		t.Fatal(err)
	}
	if pa, _, err := b.x.Translate(kimg + 0x2010); err != nil || pa != kimg+0x2010-voff {
		t.Errorf("kernel image: %#x, %v", pa, err)
	}
	if err := b.x.SetKernelImage(0x1000, 0x2000, 0); err == nil {
		t.Error("user-half image accepted")
	}
	if n, err := b.x.ReadVirt(buf, lm+0x5ff0); n != 32 || err != nil || buf[20] != pat(phys+0x6004) {
		t.Errorf("ReadVirt over the linear map = %d, %v", n, err)
	}
}

func TestNewARM64Errors(t *testing.T) {
	mem := newMem(nil)
	for _, c := range []ARM64Config{
		{Granule: 8 << 10, VABits: 48},
		{Granule: 4 << 10, VABits: 52},
		{Granule: 4 << 10, VABits: 35},
		{Granule: 64 << 10, VABits: 52, LPA2: true},
		{Granule: 4 << 10, VABits: 48, PACMask: 0xffff_8000_0000_0000},
	} {
		if _, err := NewARM64(mem, 0x1000, c); err == nil {
			t.Errorf("NewARM64(%+v) accepted", c)
		}
	}
	if _, err := NewARM64(mem, 0x1008, ARM64Config{Granule: 4 << 10, VABits: 48}); err == nil {
		t.Error("unaligned root accepted")
	}
	if _, err := NewARM64(nil, 0, ARM64Config{Granule: 4 << 10, VABits: 48}); err == nil {
		t.Error("nil reader accepted")
	}
}

// armFuzzConfigs are the configurations FuzzARM64Translate chooses from.
var armFuzzConfigs = []ARM64Config{
	{Granule: 4 << 10, VABits: 48, PACMask: 0xffff_0000_0000_0000},
	{Granule: 4 << 10, VABits: 39},
	{Granule: 4 << 10, VABits: 52, LPA2: true},
	{Granule: 16 << 10, VABits: 47},
	{Granule: 64 << 10, VABits: 42},
	{Granule: 64 << 10, VABits: 52},
}

// decodeARMTables reads fuzz records (the layout of fuzzRecord: table
// number, entry index, value); table n lies at physical (n+1)*granule, so
// the root (table 0) is at one granule.
func decodeARMTables(cfg ARM64Config, data []byte) *fakeMem {
	m := newMem(nil)
	for ; len(data) >= fuzzRecord; data = data[fuzzRecord:] {
		pa := (uint64(data[0]) + 1) * cfg.Granule
		idx := uint64(binary.LittleEndian.Uint16(data[1:])) % (cfg.Granule / 8)
		a := pa + idx*8
		for off := uint64(0); off < cfg.Granule; off += pageSize {
			m.page(pa + off) // a table is present whole or not at all
		}
		binary.LittleEndian.PutUint64(m.page(a &^ (pageSize - 1))[a%pageSize:], binary.LittleEndian.Uint64(data[3:]))
	}
	return m
}

// encodeARMTables turns a builder's tables into fuzz records.
func encodeARMTables(b *armBuilder) []byte {
	var out []byte
	for pa := b.root; pa < b.next; pa += 8 {
		v := b.get(pa)
		if v == 0 {
			continue
		}
		var r [fuzzRecord]byte
		r[0] = byte((pa&^(b.cfg.Granule-1))/b.cfg.Granule - b.root/b.cfg.Granule)
		binary.LittleEndian.PutUint16(r[1:], uint16(pa%b.cfg.Granule/8))
		// Table pointers are relative to the builder's first table.
		if v&3 == 3 && b.x.outAddr(v) >= b.root && b.x.outAddr(v) < b.next {
			v = v&^b.x.oaMask | b.encode(b.x.outAddr(v)-b.root+b.cfg.Granule)&b.x.oaMask
		}
		binary.LittleEndian.PutUint64(r[3:], v)
		out = append(out, r[:]...)
	}
	return out
}

func FuzzARM64Translate(f *testing.F) {
	for i, cfg := range armFuzzConfigs {
		b := &armBuilder{tb: f, cfg: cfg, mem: newMem(nil), next: cfg.Granule}
		b.root = b.alloc()
		x, err := NewARM64(b.mem, b.root, cfg)
		if err != nil {
			f.Fatal(err)
		}
		b.x = x
		base := -(uint64(1) << cfg.VABits)
		b.mapAt(base+cfg.Granule, 0x1234_0000&^(cfg.Granule-1), 1)
		b.mapAt(base+(uint64(1)<<cfg.VABits)/2, 0x8000_0000, 2)
		b.put(b.slot(-cfg.Granule, 2), b.root|3) // a loop
		data := encodeARMTables(b)
		f.Add(data, byte(i), base+cfg.Granule+0x42)
		f.Add(data, byte(i), base+(uint64(1)<<cfg.VABits)/2+0x1234)
		f.Add(data, byte(i), ^uint64(0))
	}
	f.Fuzz(func(t *testing.T, data []byte, which byte, va uint64) {
		if len(data) > 64<<10 {
			return
		}
		cfg := armFuzzConfigs[int(which)%len(armFuzzConfigs)]
		mem := decodeARMTables(cfg, data)
		x, err := NewARM64(mem, cfg.Granule, cfg)
		if err != nil {
			t.Fatal(err)
		}
		x.walkLimit = 64
		ref, _ := NewARM64(mem, cfg.Granule, cfg)
		ref.noCache = true

		pa, size, err := x.Translate(va)
		rpa, rsize, rerr := ref.Translate(va)
		if fmt.Sprint(pa, size, err) != fmt.Sprint(rpa, rsize, rerr) {
			t.Fatalf("cached %#x %#x %v != uncached %#x %#x %v", pa, size, err, rpa, rsize, rerr)
		}
		if again := fmt.Sprint(x.Translate(va)); again != fmt.Sprint(pa, size, err) {
			t.Fatalf("second translation differs: %s", again)
		}
		if err != nil {
			var te *TranslateError
			if !errors.As(err, &te) || te.VA != va || te.Level < 0 || te.Level > x.Levels() {
				t.Fatalf("bad error %#v", err)
			}
		} else if size < cfg.Granule || size&(size-1) != 0 || pa&(size-1) != va&(size-1) || pa >= 1<<52 {
			t.Fatalf("Translate(%#x) = %#x with page size %#x", va, pa, size)
		}

		// Mappings of the byte at va agree with Translate (for the
		// stripped address, which Mappings reports), loops aside.
		sva := x.Strip(va)
		var got []Mapping
		loop := false
		for m, e := range x.Mappings(sva, sva+1) {
			if e != nil {
				loop = loop || errors.Is(e, ErrTableLoop) || errors.Is(e, ErrWalkLimit)
				continue
			}
			got = append(got, m)
		}
		if err == nil && !loop && (len(got) != 1 || got[0] != (Mapping{sva, pa, 1, size})) {
			t.Fatalf("Mappings(%#x) = %v; Translate = %#x %#x", sva, got, pa, size)
		}
		if err != nil && len(got) != 0 {
			t.Fatalf("Mappings(%#x) = %v, but Translate failed: %v", sva, got, err)
		}

		var next uint64
		wrapped := false
		n := 0
		for m, e := range x.Mappings(0, 0) {
			if n++; n > 2000 {
				break
			}
			if e != nil {
				continue
			}
			if m.Size == 0 || wrapped || m.VA < next {
				t.Fatalf("bad or unordered mapping %+v after end %#x", m, next)
			}
			next = m.VA + m.Size
			wrapped = next == 0
			for _, off := range []uint64{0, m.Size - 1} {
				p, s, err := x.Translate(m.VA + off)
				if err != nil || p != m.PA+off || s != m.PageSize {
					t.Fatalf("mapping %+v: Translate(+%#x) = %#x %#x %v", m, off, p, s, err)
				}
			}
		}
		buf := make([]byte, 64)
		if n, err := x.ReadVirt(buf, va); n > len(buf) || (n < len(buf)) != (err != nil) {
			t.Fatalf("ReadVirt = %d, %v", n, err)
		}
	})
}
