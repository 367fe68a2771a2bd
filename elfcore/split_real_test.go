package elfcore_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/elfcore"
	"github.com/vmleak/vmleak/internal/fixture"
)

// comparePages reads every pfn of both dumps: each must be present in both
// with equal bytes, or absent from both. It returns the pages present.
func comparePages(t *testing.T, a, b *elfcore.Dump, what string, lo, hi uint64) uint64 {
	t.Helper()
	ps := a.PageSize()
	x, y := make([]byte, ps), make([]byte, ps)
	var present uint64
	for pfn := lo; pfn < hi; pfn++ {
		_, ea := a.ReadPhys(x, pfn*ps)
		_, eb := b.ReadPhys(y, pfn*ps)
		var ma, mb *elfcore.MissingPageError
		switch {
		case errors.As(ea, &ma) && errors.As(eb, &mb):
			if ma.Reason == elfcore.ReasonOtherPart {
				t.Fatalf("%s: pfn %#x: %v", what, pfn, ea)
			}
		case ea != nil || eb != nil:
			t.Fatalf("%s: pfn %#x: %v / reference: %v", what, pfn, ea, eb)
		case !bytes.Equal(x, y):
			t.Fatalf("%s: pfn %#x differs from the reference", what, pfn)
		default:
			present++
		}
	}
	return present
}

// The parts of makedumpfile --split dumps, read together, are the dump
// makedumpfile wrote whole at the same level (-d 31, lzo), page for page;
// each part alone holds its own range and says where the rest is.
func TestSplitDumpsReal(t *testing.T) {
	dv := fixture.LoadDerived(t, "bookworm-kdump")
	ref, err := elfcore.Open(dv.ReferencePath())
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	rp, re, rz := ref.PageCounts()
	for name, parts := range dv.SplitSets(t) {
		t.Run(name, func(t *testing.T) {
			d, err := elfcore.OpenSplit(dv.Paths(parts)...)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			maxPFN := parts[0].MaxMapnr
			si := d.Split()
			if si == nil || !si.Complete() || len(si.Parts) != len(parts) || si.MaxPFN != maxPFN {
				t.Fatalf("Split() = %+v", si)
			}
			for i, p := range si.Parts {
				if p.PFNs != (elfcore.PFNRange{Start: parts[i].StartPFN, End: parts[i].EndPFN}) {
					t.Errorf("part %d: pfns %v, sub-header says [%#x, %#x)", i+1, p.PFNs, parts[i].StartPFN, parts[i].EndPFN)
				}
				if p.PFNs.Start == p.PFNs.End {
					t.Errorf("part %d holds no pfns: the fixture does not test splitting", i+1)
				}
			}
			n := comparePages(t, d, ref, name, 0, maxPFN+8)
			if p, e, z := d.PageCounts(); p != rp || e != re || z != rz || n != rp {
				t.Errorf("pages %d/%d/%d (%d read), reference %d/%d/%d", p, e, z, n, rp, re, rz)
			}
			if !reflect.DeepEqual(d.PhysRanges(), ref.PhysRanges()) {
				t.Errorf("physical ranges differ from the reference's")
			}
			t.Logf("%s: %d parts, %d pages identical to %s", name, len(parts), n, dv.Reference)

			for i, pf := range parts {
				lone, err := elfcore.Open(dv.Path(pf))
				if err != nil {
					t.Fatal(err)
				}
				defer lone.Close()
				var want []elfcore.PFNRange
				if pf.StartPFN > 0 {
					want = append(want, elfcore.PFNRange{Start: 0, End: pf.StartPFN})
				}
				if pf.EndPFN < maxPFN {
					want = append(want, elfcore.PFNRange{Start: pf.EndPFN, End: maxPFN})
				}
				ls := lone.Split()
				if ls == nil || !reflect.DeepEqual(ls.Missing, want) {
					t.Errorf("%s alone: %+v, want missing %v", pf.File, ls, want)
					continue
				}
				if i == 0 && !strings.HasPrefix(ls.String(), "part 1 of a split dump: pfns ") {
					t.Errorf("%s alone says %q", pf.File, ls.String())
				}
				comparePages(t, lone, ref, pf.File, pf.StartPFN, pf.EndPFN)
				var mp *elfcore.MissingPageError
				other := want[0].Start
				if _, err := lone.ReadPhys(make([]byte, 8), other*lone.PageSize()); !errors.As(err, &mp) || mp.Reason != elfcore.ReasonOtherPart {
					t.Errorf("%s alone, pfn %#x: %v, want in another part", pf.File, other, err)
				}
			}
		})
	}
}

// makedumpfile -E -d 31 of the kdump ELF holds what makedumpfile -d 31 -l
// wrote in the guest, as far as the formats allow: every page in both reads
// the same; a page only the kdump file has is a zero page (kdump-compressed
// output keeps those as its shared zero page, ELF output drops them with
// the other excluded pages); a page only the ELF has is a filtered-out page
// makedumpfile -E writes anyway (it cuts PT_LOADs only at long runs of
// excluded pages).
func TestFilteredELFReal(t *testing.T) {
	dv := fixture.LoadDerived(t, "bookworm-kdump")
	ref, err := elfcore.Open(dv.ReferencePath())
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	fs := dv.Kind("elf")
	if len(fs) == 0 {
		t.Fatal("no -E ELF among the derived fixtures")
	}
	for _, f := range fs {
		d, err := elfcore.Open(dv.Path(f))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if d.Format() != elfcore.FormatELF || d.Split() != nil || d.VMCOREINFO() == nil {
			t.Errorf("%s: format %v", f.File, d.Format())
		}
		rp, _, rz := ref.PageCounts()
		ps := ref.PageSize()
		x, y, zero := make([]byte, ps), make([]byte, ps), make([]byte, ps)
		var both, onlyRef, onlyELF uint64
		for _, r := range ref.PhysRanges() {
			for pa := r.Start; pa < r.End; pa += ps {
				if _, err := ref.ReadPhys(y, pa); err != nil {
					t.Fatal(err)
				}
				_, err := d.ReadPhys(x, pa)
				var mp *elfcore.MissingPageError
				switch {
				case errors.As(err, &mp):
					if !bytes.Equal(y, zero) {
						t.Fatalf("%s: page %#x is missing (%v) but not zero in %s", f.File, pa, mp.Reason, dv.Reference)
					}
					onlyRef++
				case err != nil:
					t.Fatal(err)
				case !bytes.Equal(x, y):
					t.Fatalf("%s: page %#x differs from %s", f.File, pa, dv.Reference)
				default:
					both++
				}
			}
		}
		ep, _, _ := d.PageCounts()
		onlyELF = ep - both
		t.Logf("%s: %d pages as in %s, %d zero pages only there, %d filtered pages only in the ELF", f.File, both, dv.Reference, onlyRef, onlyELF)
		if onlyRef > rz || both+onlyRef != rp || onlyELF > rp/10 {
			t.Errorf("%s: %d+%d pages of %d (%d zero); %d extra", f.File, both, onlyRef, rp, rz, onlyELF)
		}
	}
}
