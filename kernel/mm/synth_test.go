package mm_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vmleak/vmleak/internal/synth"
	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/kernel/mm"
)

// The three ways kernels mark slab pages, and the 6.1 control, as
// synthetic kernels (internal/synth).
var layouts = []struct {
	name string
	cfg  synth.Config
}{
	{"4.18", synth.Config{Version: synth.V4_18, SlubDebug: true, Hardened: true, NUMA: true}}, // PG_slab flag, #defined page types
	{"6.1", synth.Config{Version: synth.V6_1, SlubDebug: true, Hardened: true, NUMA: true}},   // PG_slab flag, SECTION_*_BIT enum
	{"6.10", synth.Config{Version: synth.V6_10, SlubDebug: true, NUMA: true}},                 // PG_slab 0x1000 under 0xf0000000
	{"6.11", synth.Config{Version: synth.V6_11, SlubDebug: true, NUMA: true}},                 // PG_slab 0x02000000 under 0x80000000
	{"6.1-nonuma", synth.Config{Version: synth.V6_1}},                                         // contig_page_data
}

const buddyPFN = 0x300 // an order-2 free block

type world struct {
	sk   *synth.Kernel
	k    *kernel.Kernel
	m    *mm.MM
	slab *synth.Slab // order 1
	obj  uint64      // the page holding a struct kmem_cache: allocated, no type
}

func open(t *testing.T, cfg synth.Config) *world {
	t.Helper()
	w := &world{sk: synth.New(cfg)}
	c := w.sk.AddCache(synth.CacheSpec{Name: "kmalloc-256", ObjectSize: 256, Size: 256, Order: 1,
		Slabs: []synth.SlabSpec{{Place: synth.NodePartial, Free: []int{1, 2}}}})
	w.sk.FreeBuddy(buddyPFN, 2)
	dir := t.TempDir()
	fs, err := w.sk.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	if w.k, err = kernel.Open(fs.Vmcore, kernel.Options{Vmlinux: fs.Vmlinux, IndexDir: dir}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.k.Close() })
	if w.m, err = mm.New(w.k); err != nil {
		t.Fatal(err)
	}
	w.slab = c.Slabs[0]
	w.obj = (c.VA - synth.PageOffset) / synth.PageSize
	return w
}

// IsSlab, IsBuddy and CompoundHead on the struct pages of a slab's head
// and tail, a free buddy block's head and tail, a user-mapped page
// (_mapcount 0: every page type bit clear) and ordinary allocated pages.
func TestSynthPageClassification(t *testing.T) {
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			w := open(t, l.cfg)
			head := w.slab.PFN
			for _, tc := range []struct {
				name        string
				pfn         uint64
				slab, buddy bool
				headPFN     uint64
			}{
				{"slab head", head, true, false, head},
				{"slab tail", head + 1, false, false, head},
				{"buddy head", buddyPFN, false, true, buddyPFN},
				{"buddy tail", buddyPFN + 3, false, false, buddyPFN + 3},
				{"user-mapped page", w.sk.MappedPFNs[0], false, false, w.sk.MappedPFNs[0]},
				{"kernel allocation", w.obj, false, false, w.obj},
				{"memory never touched", 0x3f0, false, false, 0x3f0},
			} {
				t.Run(tc.name, func(t *testing.T) {
					raw := make([]byte, w.m.StructPageSize())
					if err := w.m.ReadStructPages(raw, tc.pfn, 1); err != nil {
						t.Fatal(err)
					}
					slab, err := w.m.IsSlab(raw)
					if err != nil || slab != tc.slab {
						t.Errorf("IsSlab(pfn %#x) = %v, %v; want %v", tc.pfn, slab, err, tc.slab)
					}
					buddy, known, err := w.m.IsBuddy(raw)
					if err != nil || !known || buddy != tc.buddy {
						t.Errorf("IsBuddy(pfn %#x) = %v (known %v), %v; want %v", tc.pfn, buddy, known, err, tc.buddy)
					}
					h, err := w.m.CompoundHead(w.m.Page(tc.pfn), raw)
					if err != nil || h != w.m.Page(tc.headPFN) {
						t.Errorf("CompoundHead(pfn %#x) = %#x, %v; want %#x", tc.pfn, h, err, w.m.Page(tc.headPFN))
					}
				})
			}
		})
	}
}

// The memory model: mem_section (with 4.18's 32-byte sections and no
// SECTION_SIZE_BITS in VMCOREINFO), the node from node_data or
// contig_page_data, and the pfn arithmetic both ways.
func TestSynthMemoryModel(t *testing.T) {
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			w := open(t, l.cfg)
			rs, err := w.m.MemoryRanges()
			if err != nil {
				t.Fatal(err)
			}
			if want := []mm.PFNRange{{Start: 0, End: 1 << (27 - 12)}}; !rs.FromSections || !cmp.Equal(rs.PFNs, want) {
				t.Errorf("memory ranges %+v (from sections %v, %v), want %+v from mem_section", rs.PFNs, rs.FromSections, rs.SectionsErr, want)
			}
			nodes, err := w.m.Nodes()
			if err != nil {
				t.Fatal(err)
			}
			start, spanned := w.sk.NodeSpan()
			if len(nodes) != 1 || nodes[0].ID != 0 || nodes[0].StartPFN != start || nodes[0].Spanned != spanned {
				t.Errorf("nodes %+v, want node 0 spanning %#x+%#x", nodes, start, spanned)
			}
			if l.cfg.NUMA {
				online, err := w.m.NodeMask("N_ONLINE")
				if err != nil || !cmp.Equal(online, []int{0}) {
					t.Errorf("N_ONLINE %v, %v; want [0]", online, err)
				}
			}
			pfn := w.slab.PFN
			if va := w.m.Page(pfn); va != w.slab.PageVA {
				t.Errorf("Page(%#x) = %#x, want %#x", pfn, va, w.slab.PageVA)
			}
			if p, off, ok := w.m.PagePFN(w.slab.PageVA + 8); !ok || p != pfn || off != 8 {
				t.Errorf("PagePFN(%#x) = %#x+%d, %v", w.slab.PageVA+8, p, off, ok)
			}
			if p, ok := w.m.VirtPFN(w.slab.Object(17)); !ok || p != pfn+1 {
				t.Errorf("VirtPFN(object 17) = %#x, %v; want %#x", p, ok, pfn+1)
			}
		})
	}
}
