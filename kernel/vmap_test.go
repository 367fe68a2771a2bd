package kernel_test

import (
	"cmp"
	"slices"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/oracle"
	"github.com/vmleak/vmleak/internal/testkernel"
	"github.com/vmleak/vmleak/kernel"
)

// The busy vmap areas of module space are the guest's /proc/vmallocinfo
// lines there, read through vmap_area_list (5.10, 6.1) and vmap_nodes
// (6.12, 7.2), and hold every module's memory.
func TestVmapAreasAsVmallocinfo(t *testing.T) {
	const lo, hi = 0xffffffffa0000000, 0xffffffffff000000
	for _, m := range fixture.All(t) {
		d := m.Dumps[0]
		t.Run(m.Name+"/"+d.File, func(t *testing.T) {
			if !m.HasOracle(d.Oracle + ".vmallocinfo") {
				t.Skip("no vmallocinfo oracle")
			}
			want, err := oracle.ParseVmallocinfo(m.Oracle(t, d.Oracle+".vmallocinfo"))
			if err != nil {
				t.Fatal(err)
			}
			k := testkernel.Open(t, m, d)
			areas, err := k.VmapAreas(lo, hi)
			if err != nil {
				t.Fatal(err)
			}
			var have, wantRanges [][2]uint64
			for i, a := range areas {
				have = append(have, [2]uint64{a.Start, a.End})
				if i > 0 && areas[i-1].End > a.Start {
					t.Errorf("areas %#x-%#x and %#x-%#x overlap or are out of order", areas[i-1].Start, areas[i-1].End, a.Start, a.End)
				}
			}
			for _, w := range want {
				if w.Start >= lo && w.Start < hi {
					wantRanges = append(wantRanges, [2]uint64{w.Start, w.End})
				}
			}
			// 6.9+ prints each vmap node's areas in turn.
			slices.SortFunc(wantRanges, func(a, b [2]uint64) int { return cmp.Compare(a[0], b[0]) })
			if m.HasOracle(d.Oracle + ".modules") {
				mods, err := oracle.ParseModules(m.Oracle(t, d.Oracle+".modules"))
				if err != nil {
					t.Fatal(err)
				}
				if last, cut := oracle.VmallocinfoEnd(want, mods); cut {
					// Compared up to where the capture ends.
					t.Logf("%s.vmallocinfo ends early, at %#x", d.Oracle, last)
					have = slices.DeleteFunc(have, func(r [2]uint64) bool { return r[0] > last })
				}
			}
			if !slices.Equal(have, wantRanges) {
				t.Errorf("vmap areas in module space\n%#x\nvmallocinfo\n%#x", have, wantRanges)
			}
			mods, err := k.Modules()
			if err != nil {
				t.Fatal(err)
			}
			for _, mo := range mods {
				for _, r := range mo.Ranges {
					if !slices.ContainsFunc(areas, func(a kernel.VmapArea) bool { return r.Base >= a.Start && r.Base+r.Size <= a.End }) {
						t.Errorf("%s %s %#x+%#x in no vmap area", mo.Name, r.Kind, r.Base, r.Size)
					}
				}
			}
		})
	}
}
