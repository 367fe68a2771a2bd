package oracle

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseSlabinfo(t *testing.T) {
	text := `slabinfo - version: 2.1
# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>
vmleak_test_obj     1003   1003    240   17    1 : tunables    0    0    0 : slabdata     59     59      0
kmalloc-4k            80     80   4096    8    8 : tunables    0    0    0 : slabdata     10     10      0
`
	rows, err := ParseSlabinfo(text)
	if err != nil {
		t.Fatal(err)
	}
	want := SlabinfoRow{Name: "vmleak_test_obj", ActiveObjs: 1003, NumObjs: 1003, ObjSize: 240, ObjPerSlab: 17, PagesPerSlab: 1, ActiveSlabs: 59, NumSlabs: 59}
	if have := rows["vmleak_test_obj"]; have != want {
		t.Errorf("have %+v, want %+v", have, want)
	}
	if len(rows) != 2 {
		t.Errorf("have %d rows, want 2", len(rows))
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		fn   func() error
		want string
	}{
		{"slabinfo header", func() error { _, err := ParseSlabinfo("bogus\n"); return err }, "unexpected header"},
		{"slabinfo short line", func() error { _, err := ParseSlabinfo("slabinfo - version: 2.1\nx 1 2\n"); return err }, "line 2"},
		{"slabinfo empty", func() error { _, err := ParseSlabinfo(""); return err }, "empty"},
		{"kmem -s no rows", func() error { _, err := ParseKmemS("CACHE OBJSIZE\n"); return err }, "no rows"},
		{"kmem -s bad address", func() error { _, err := ParseKmemS("zz 1 2 3 4 4k x\n"); return err }, "line 1"},
		{"meminfo", func() error { _, err := ParseMeminfo("MemTotal: x kB\n"); return err }, "line 1"},
		{"modules", func() error { _, err := ParseModules("a b\n"); return err }, "line 1"},
		{"key values", func() error { _, err := ParseKeyValues("a 1 2\n"); return err }, "line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.fn()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("have error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestParseKmemS(t *testing.T) {
	text := `CACHE             OBJSIZE  ALLOCATED     TOTAL  SLABS  SSIZE  NAME
ffff8c87647d5d00      232       1000      1003     59     4k  vmleak_test_obj
ffff8c87647d5000      128          6        21      1     4k  bio-128
`
	rows, err := ParseKmemS(text)
	if err != nil {
		t.Fatal(err)
	}
	want := KmemSRow{Cache: 0xffff8c87647d5d00, ObjSize: 232, Allocated: 1000, Total: 1003, Slabs: 59, SSize: "4k", Name: "vmleak_test_obj"}
	if len(rows) != 2 || rows[0] != want {
		t.Errorf("have %+v, want first row %+v", rows, want)
	}
}

func TestParseMeminfoModules(t *testing.T) {
	mi, err := ParseMeminfo("MemTotal:        1000 kB\nHugePages_Total:       0\n")
	if err != nil || mi["MemTotal"] != 1000 || mi["HugePages_Total"] != 0 {
		t.Errorf("have %v, %v", mi, err)
	}
	ms, err := ParseModules("vmleak_test 49152 0 - Live 0xffffffffc044b000 (OE)\nvirtio 20480 2 virtio_blk,virtio_pci, Live 0x0000000000000000\nfoo 4096 - - Loading 0xffffffffc0000000 (+)\n")
	if err != nil || len(ms) != 3 {
		t.Fatalf("have %v, %v", ms, err)
	}
	for i, want := range []Module{
		{Name: "vmleak_test", Size: 49152, RefcountKnown: true, State: "Live", Addr: 0xffffffffc044b000, Taints: "OE"},
		{Name: "virtio", Size: 20480, Refcount: 2, RefcountKnown: true, UsedBy: []string{"virtio_blk", "virtio_pci"}, State: "Live"},
		{Name: "foo", Size: 4096, State: "Loading", Addr: 0xffffffffc0000000, Taints: "+"},
	} {
		if have := ms[i]; !reflect.DeepEqual(have, want) {
			t.Errorf("line %d: have %+v, want %+v", i+1, have, want)
		}
	}
	for _, bad := range []string{"a 1 2 - Live\n", "a 1 x - Live 0x0\n", "a 1 0 - Live c0000000\n", "a 1 0 - Live 0x0 OE\n"} {
		if _, err := ParseModules(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestVmallocinfoEnd(t *testing.T) {
	areas := []VmallocArea{{Start: 0x1000, End: 0x2000}, {Start: 0x3000, End: 0x5000}}
	mods := func(addrs ...uint64) (ms []Module) {
		for _, a := range addrs {
			ms = append(ms, Module{Addr: a})
		}
		return ms
	}
	if last, cut := VmallocinfoEnd(areas, mods(0x3000)); cut || last != 0x3000 {
		t.Errorf("whole capture: %#x %v", last, cut)
	}
	if last, cut := VmallocinfoEnd(areas, mods(0x1000, 0x9000)); !cut || last != 0x3000 {
		t.Errorf("cut capture: %#x %v", last, cut)
	}
	if _, cut := VmallocinfoEnd([]VmallocArea{areas[1], areas[0]}, mods(0x9000)); cut {
		t.Error("a per-node capture is not judged")
	}
}
