package elfcore

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// splitSpec is one dump of 48 pfns: dumped pages (one stored as the shared
// zero page), RAM pages filtered out, and holes. parts cuts it the way
// makedumpfile --split does: every file has the whole header and bitmaps,
// and the descriptors and pages of its own pfn range only.
func splitSpec(version int32) kdSpec {
	pages := rawPages(1, 2, 9, 10, 15, 16, 17, 30, 31, 40, 47)
	return kdSpec{version: version, maxMapnr: 48, pages: pages, ram: []uint64{5, 20, 33}, zero: []uint64{34}}
}

func splitParts(t *testing.T, s kdSpec, bounds ...uint64) []*Dump {
	t.Helper()
	var ds []*Dump
	for i := 0; i+1 < len(bounds); i++ {
		p := s
		p.split, p.start, p.end = true, bounds[i], bounds[i+1]
		ds = append(ds, openNamed(t, buildKdump(p), fmt.Sprintf("part%d", i+1)))
	}
	return ds
}

func openNamed(t *testing.T, b []byte, name string) *Dump {
	t.Helper()
	d, err := NewDump(bytes.NewReader(b), int64(len(b)), name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return d
}

// readPFN reads one page: its bytes, or the reason it is missing.
func readPFN(d *Dump, pfn uint64) ([]byte, MissingReason, error) {
	buf := make([]byte, d.PageSize())
	_, err := d.ReadPhys(buf, pfn*d.PageSize())
	var mp *MissingPageError
	if errors.As(err, &mp) {
		return nil, mp.Reason, nil
	}
	return buf, -1, err
}

func TestSplitJoin(t *testing.T) {
	for _, v := range []int32{2, 6} {
		for _, bounds := range [][]uint64{{0, 16, 32, 48}, {0, 20, 48}, {0, 48, 48}, {0, 0, 48}, {0, 1, 47, 48}} {
			t.Run(fmt.Sprintf("v%d-%v", v, bounds), func(t *testing.T) {
				s := splitSpec(v)
				whole := mustOpen(t, buildKdump(s))
				d, err := NewSplitDump(splitParts(t, s, bounds...))
				if err != nil {
					t.Fatal(err)
				}
				defer d.Close()
				for pfn := uint64(0); pfn < 50; pfn++ {
					a, ra, errA := readPFN(d, pfn)
					b, rb, errB := readPFN(whole, pfn)
					if errA != nil || errB != nil {
						t.Fatalf("pfn %d: %v / %v", pfn, errA, errB)
					}
					if ra != rb || !bytes.Equal(a, b) {
						t.Errorf("pfn %d: joined %v %x..., whole %v %x...", pfn, ra, a[:min(8, len(a))], rb, b[:min(8, len(b))])
					}
				}
				if have, want := d.PhysRanges(), whole.PhysRanges(); !reflect.DeepEqual(have, want) {
					t.Errorf("ranges %v, want %v", have, want)
				}
				p1, e1, z1 := d.PageCounts()
				p2, e2, z2 := whole.PageCounts()
				if p1 != p2 || e1 != e2 || z1 != z2 {
					t.Errorf("counts %d/%d/%d, want %d/%d/%d", p1, e1, z1, p2, e2, z2)
				}
				si := d.Split()
				if si == nil || !si.Complete() || len(si.Parts) != len(bounds)-1 || si.MaxPFN != 48 {
					t.Fatalf("Split() = %+v", si)
				}
				if h := d.Kdump(); h == nil || h.Split != 1 || h.StartPFN != 0 || h.EndPFN != 48 {
					t.Errorf("header %+v", h)
				}
				if d.Format() != FormatKdump || d.Arch() != "x86_64" || d.PageSize() != 4096 {
					t.Errorf("format %v arch %q page size %d", d.Format(), d.Arch(), d.PageSize())
				}
				if whole.Split() != nil {
					t.Error("an unsplit dump has split info")
				}
			})
		}
	}
}

// Zero fill covers a lone part's missing pfns like any other absent page.
func TestSplitZeroFill(t *testing.T) {
	ps := splitParts(t, splitSpec(6), 0, 16, 48)
	d := ps[1]
	d.SetZeroFill(true)
	buf := bytes.Repeat([]byte{0xAA}, 4096)
	if _, err := d.ReadPhys(buf, 1*4096); err != nil || !bytes.Equal(buf, make([]byte, 4096)) {
		t.Errorf("zero-filled read of another part's page: %v", err)
	}
	if d.ZeroFilled() != 1 {
		t.Errorf("zero filled %d", d.ZeroFilled())
	}
}

func TestSplitLone(t *testing.T) {
	s := splitSpec(6)
	whole := mustOpen(t, buildKdump(s))
	for _, tc := range []struct {
		bounds  []uint64
		idx     int
		missing []PFNRange
		say     string
	}{
		{[]uint64{0, 16, 32, 48}, 0, []PFNRange{{16, 48}}, "part 1 of a split dump: pfns [0x10, 0x30) are in other parts"},
		{[]uint64{0, 16, 32, 48}, 1, []PFNRange{{0, 16}, {32, 48}}, "a part of a split dump: pfns [0x0, 0x10) and [0x20, 0x30) are in other parts"},
		{[]uint64{0, 16, 32, 48}, 2, []PFNRange{{0, 32}}, "the last part of a split dump: pfns [0x0, 0x20) are in other parts"},
		{[]uint64{0, 48, 48}, 0, nil, "part 1 of a split dump, holding all of pfns [0, 0x30): the other parts are empty"},
		{[]uint64{0, 48, 48}, 1, []PFNRange{{0, 48}}, "an empty part of a split dump: pfns [0x0, 0x30) are in other parts"},
	} {
		t.Run(fmt.Sprint(tc.bounds, tc.idx), func(t *testing.T) {
			d := splitParts(t, s, tc.bounds...)[tc.idx]
			si := d.Split()
			if si == nil || len(si.Parts) != 1 {
				t.Fatalf("Split() = %+v", si)
			}
			if !reflect.DeepEqual(si.Missing, tc.missing) || si.Complete() != (tc.missing == nil) {
				t.Errorf("missing %v, want %v", si.Missing, tc.missing)
			}
			if si.String() != tc.say {
				t.Errorf("says %q, want %q", si.String(), tc.say)
			}
			lo, hi := tc.bounds[tc.idx], tc.bounds[tc.idx+1]
			var present uint64
			for pfn := uint64(0); pfn < 48; pfn++ {
				a, ra, _ := readPFN(d, pfn)
				b, rb, _ := readPFN(whole, pfn)
				switch {
				case pfn < lo || pfn >= hi:
					if ra != ReasonOtherPart {
						t.Errorf("pfn %d (another part's): %v, want %v", pfn, ra, ReasonOtherPart)
					}
				case ra != rb || !bytes.Equal(a, b):
					t.Errorf("pfn %d: %v, whole dump %v", pfn, ra, rb)
				case a != nil:
					present++
				}
			}
			if p, _, _ := d.PageCounts(); p != present {
				t.Errorf("present %d, want %d", p, present)
			}
		})
	}
	t.Run("message", func(t *testing.T) {
		d := splitParts(t, s, 0, 16, 48)[1]
		_, err := d.ReadPhys(make([]byte, 8), 2*4096)
		if err == nil || !strings.Contains(err.Error(), "in another part of a split dump") || strings.Contains(err.Error(), "excluded") {
			t.Errorf("read of another part's page: %v", err)
		}
	})
	t.Run("excluded-counted-in-range", func(t *testing.T) {
		ps := splitParts(t, s, 0, 16, 32, 48)
		// RAM pages not dumped: 5 (part 1), 20 (part 2), 33 (part 3).
		for i, p := range ps {
			if _, e, _ := p.PageCounts(); e != 1 {
				t.Errorf("part %d: %d excluded, want 1", i+1, e)
			}
		}
	})
}

func TestSplitErrors(t *testing.T) {
	s := splitSpec(6)
	other := func(mod func(*kdSpec), start, end uint64, name string) func(t *testing.T) *Dump {
		return func(t *testing.T) *Dump {
			o := s
			mod(&o)
			o.split, o.start, o.end = true, start, end
			return openNamed(t, buildKdump(o), name)
		}
	}
	part := func(i int) func(t *testing.T) *Dump {
		return func(t *testing.T) *Dump { return splitParts(t, s, 0, 16, 32, 48)[i-1] }
	}
	for _, tc := range []struct {
		name  string
		parts []func(t *testing.T) *Dump
		file  string
		want  string
	}{
		{"wrong-order", []func(*testing.T) *Dump{part(2), part(1), part(3)}, "part2", "pfns [0x10, 0x20): parts out of order: part 1 must hold pfns from 0x0"},
		{"reversed", []func(*testing.T) *Dump{part(3), part(2), part(1)}, "part3", "pfns [0x20, 0x30): parts out of order"},
		{"missing-middle", []func(*testing.T) *Dump{part(1), part(3)}, "part3", "pfns [0x20, 0x30): pfns [0x10, 0x20) before it are in no part given (a part is missing)"},
		{"missing-first", []func(*testing.T) *Dump{part(2), part(3)}, "part2", "pfns [0x10, 0x20): pfns [0x0, 0x10) before it are in no part given"},
		{"missing-last", []func(*testing.T) *Dump{part(1), part(2)}, "part2", "pfns [0x10, 0x20): pfns [0x20, 0x30) after it are in no part given (a part is missing)"},
		{"duplicated", []func(*testing.T) *Dump{part(1), part(2), part(2), part(3)}, "part2", "pfns [0x10, 0x20): given twice (also as part2)"},
		{"copy", []func(*testing.T) *Dump{part(1), other(func(*kdSpec) {}, 0, 16, "copy-of-part1"), part(2), part(3)}, "copy-of-part1", "given twice (also as part1)"},
		{"overlap", []func(*testing.T) *Dump{part(1), other(func(*kdSpec) {}, 8, 32, "wide"), part(3)}, "wide", "pfns [0x8, 0x20): overlaps pfns [0x8, 0x10) of the parts before it"},
		{"other-timestamp", []func(*testing.T) *Dump{part(1), other(func(o *kdSpec) { o.stamp = 1800000000 }, 16, 32, "later"), part(3)}, "later", "pfns [0x10, 0x20): not part of the same dump as part1: timestamp"},
		{"other-host", []func(*testing.T) *Dump{part(1), part(2), other(func(o *kdSpec) { o.nodename = "elsewhere" }, 32, 48, "there")}, "there", "not part of the same dump as part1: utsname nodename elsewhere, not testhost"},
		{"other-size", []func(*testing.T) *Dump{part(1), part(2), other(func(o *kdSpec) { o.maxMapnr = 64 }, 32, 64, "bigger")}, "bigger", "max_mapnr 64, not 48"},
		{"other-vmcoreinfo", []func(*testing.T) *Dump{part(1), other(func(o *kdSpec) { o.vmcoreinfo = []byte("OSRELEASE=x\n") }, 16, 32, "vi"), part(3)}, "vi", "VMCOREINFO differs"},
		{"not-split", []func(*testing.T) *Dump{part(1), func(t *testing.T) *Dump { return openNamed(t, buildKdump(s), "whole") }}, "whole", "is not part of a split dump: its kdump header (version 6) has no split flag"},
		{"elf", []func(*testing.T) *Dump{part(1), func(t *testing.T) *Dump {
			return openNamed(t, buildELF(elfSpec{loads: []elfLoad{{paddr: 0, data: make([]byte, 4096)}}}), "core.elf")
		}}, "core.elf", "is not part of a split dump: a elf file, not kdump-compressed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ps []*Dump
			for _, f := range tc.parts {
				ps = append(ps, f(t))
			}
			d, err := NewSplitDump(ps)
			var se *SplitError
			if !errors.As(err, &se) {
				t.Fatalf("have %v, %v; want a *SplitError", d, err)
			}
			if se.File != tc.file || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q (file %s), want file %s and %q", err, se.File, tc.file, tc.want)
			}
		})
	}
}

// NoneDumped says which memory a kdump file provably lacks: RAM it left
// out and holes, never the shared zero page's pfns, never past its bitmaps,
// and, for a part read alone, nothing outside its own range.
func TestNoneDumped(t *testing.T) {
	s := splitSpec(6)
	whole := mustOpen(t, buildKdump(s))
	joined, err := NewSplitDump(splitParts(t, s, 0, 16, 32, 48))
	if err != nil {
		t.Fatal(err)
	}
	part1 := splitParts(t, s, 0, 20, 48)[0]
	const ps = 4096
	tests := []struct {
		name              string
		pa, size          uint64
		whole, alonePart1 bool
	}{
		{"holes", 3 * ps, 2 * ps, true, true},
		{"holes and excluded RAM", 3 * ps, 3 * ps, true, true},
		{"a dumped page", 0, 2 * ps, false, false},
		{"the zero page is dumped", 34 * ps, ps, false, false},
		{"across parts", 18 * ps, 12 * ps, true, false},
		{"to the last pfn", 41 * ps, 6 * ps, true, false},
		{"with the last pfn", 41 * ps, 7 * ps, false, false},
		{"past the bitmaps", 41 * ps, 8 * ps, false, false},
		{"unaligned, one page's worth over two", 3*ps + 100, ps, true, true},
		{"empty", 3 * ps, 0, false, false},
		{"wraps", 1<<64 - ps, 2 * ps, false, false},
	}
	for _, tc := range tests {
		if have := whole.NoneDumped(tc.pa, tc.size); have != tc.whole {
			t.Errorf("%s: whole %v, want %v", tc.name, have, tc.whole)
		}
		if have := joined.NoneDumped(tc.pa, tc.size); have != tc.whole {
			t.Errorf("%s: joined parts %v, want %v", tc.name, have, tc.whole)
		}
		if have := part1.NoneDumped(tc.pa, tc.size); have != tc.alonePart1 {
			t.Errorf("%s: part 1 alone %v, want %v", tc.name, have, tc.alonePart1)
		}
	}
	// An ELF dump's absent ranges do not say why: never.
	elf := mustOpen(t, buildELF(elfSpec{loads: []elfLoad{{data: pattern(0, 4*ps)}}}))
	if elf.NoneDumped(64*ps, ps) {
		t.Error("ELF: memory outside its loads reported as left out")
	}
}
