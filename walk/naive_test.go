package walk_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"

	"github.com/vmleak/vmleak/kernel"
)

// A deliberately naive census of a few caches, written apart from package
// walk so that it can check it: it shares none of walk's code (no layout
// probe, no page scanner, no freelist walker) and reads every kernel
// structure by field name through kernel.Value, one field at a time. It is
// slow and knows only the kernels the fixtures run (5.10, 6.1 and 6.12 SLUB
// on x86_64); it refuses what it does not know instead of guessing.
//
// What it does, as the kernel defines it:
//   - every section of mem_section with SECTION_HAS_MEM_MAP, up to
//     __highest_present_section_nr, gives the struct pages of 32768 page
//     frames (SECTION_SIZE_BITS 27 on x86_64);
//   - a struct page that is not a compound tail (compound_head bit 0) is a
//     slab when PG_slab is set in page->flags (before v6.10) or when the top
//     byte of page_type is PGTY_slab (4ffca5a96678, v6.12);
//   - struct slab (d122019bf061, v5.17) overlays it: slab_cache, freelist,
//     and the objects bitfield; before it (5.10) they are struct page's own
//     members, and kmem_cache_cpu names its slab "page", not "slab"
//     (bb192ed9aa71, v5.17);
//   - a slab queued by call_rcu (SLAB_TYPESAFE_BY_RCU, rcu_head.func ==
//     rcu_free_slab; the member is named callback_head in debuginfo, since
//     include/linux/types.h #defines rcu_head so) is already gone from the
//     kernel's counters: counted apart, not as a slab;
//   - the free objects are the slab's own freelist plus the freelist of
//     every CPU whose kmem_cache_cpu.slab is this slab; each link is stored
//     at object + kmem_cache.offset, encoded with CONFIG_SLAB_FREELIST_HARDENED
//     as ptr ^ kmem_cache.random ^ swab64(address of the link) (1ad53d9fa3f6,
//     v5.7; every kernel this reader accepts is later).
//
// Kernels with per-CPU sheaves (2d517aa09bbc, v6.18; every 7.x) are refused
// with errNaiveSheaves: counting sheaves needs per-CPU and per-node barn
// walks that this reader does not implement, and no test runs it there.

var errNaiveSheaves = errors.New("naive reader: kernel has slab sheaves (v6.18+), not implemented")

// naiveCount is one cache as the naive reader counts it.
type naiveCount struct {
	Name                        string
	Slabs, Total, Allocated     int64
	SlabFree, CPUFree           int64 // free objects on slabs' own and on CPU freelists
	RCUPending                  int64 // slabs waiting for an RCU grace period
	size, offset, random, redLP uint64
	hardened                    bool
}

func (n naiveCount) String() string {
	return fmt.Sprintf("%d/%d/%d (allocated/total/slabs), free %d on slabs + %d on CPUs, %d RCU-pending",
		n.Allocated, n.Total, n.Slabs, n.SlabFree, n.CPUFree, n.RCUPending)
}

const (
	naivePagesPerSection = 1 << (27 - 12)
	naiveSectionHasMap   = 1 << 1
	naivePageSize        = 4096
)

// naiveCensus counts the caches named (by their name on slab_caches) in one
// scan of every struct page, keyed by kmem_cache address.
func naiveCensus(k *kernel.Kernel, names []string) (map[uint64]*naiveCount, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}

	// The caches, from slab_caches.
	head, err := k.Symbol("slab_caches")
	if err != nil {
		return nil, err
	}
	caches := map[uint64]*naiveCount{}
	for e, err := range k.ListHead(head, 1<<16) {
		if err != nil {
			return nil, fmt.Errorf("slab_caches: %w", err)
		}
		kc := k.Object(e, "struct list_head").ContainerOf("struct kmem_cache", "list")
		name, err := kc.Field("name").String()
		if err != nil {
			return nil, err
		}
		if !want[name] {
			continue
		}
		if kc.HasField("cpu_sheaves") {
			return nil, errNaiveSheaves
		}
		c := &naiveCount{Name: name}
		if c.size, err = kc.Field("size").Uint(); err != nil {
			return nil, err
		}
		if c.offset, err = kc.Field("offset").Uint(); err != nil {
			return nil, err
		}
		if c.hardened = kc.HasField("random"); c.hardened { // CONFIG_SLAB_FREELIST_HARDENED
			if c.random, err = kc.Field("random").Uint(); err != nil {
				return nil, err
			}
		}
		if kc.HasField("red_left_pad") {
			if c.redLP, err = kc.Field("red_left_pad").Uint(); err != nil {
				return nil, err
			}
		}
		if c.size == 0 {
			return nil, fmt.Errorf("cache %s: size 0", name)
		}
		caches[kc.Addr()] = c
	}

	// Each CPU's freelist, by the slab it belongs to.
	offs, err := k.PerCPUOffsets()
	if err != nil {
		return nil, err
	}
	cpuHeads := map[uint64][]uint64{} // struct slab address -> freelist heads
	cpuSlab := "slab"
	if !k.Object(0, "struct kmem_cache_cpu").HasField(cpuSlab) {
		cpuSlab = "page"
	}
	for va, c := range caches {
		pcp, err := k.Object(va, "struct kmem_cache").Field("cpu_slab").Ptr()
		if err != nil {
			return nil, err
		}
		for cpu, off := range offs {
			kcc := k.Object(pcp+off, "struct kmem_cache_cpu")
			slab, err := kcc.Field(cpuSlab).Ptr()
			if err != nil {
				return nil, fmt.Errorf("cache %s CPU %d: %w", c.Name, cpu, err)
			}
			fl, err := kcc.Field("freelist").Ptr()
			if err != nil {
				return nil, fmt.Errorf("cache %s CPU %d: %w", c.Name, cpu, err)
			}
			if slab != 0 && fl != 0 {
				cpuHeads[slab] = append(cpuHeads[slab], fl)
			}
		}
	}

	// How a slab page is told, from the kernel's own enums.
	flagsOf := func(enum, name string) (int64, bool) {
		t, err := k.TypeOf(enum)
		if err != nil {
			return 0, false
		}
		for _, e := range t.Strip().Enumerators {
			if e.Name == name {
				return e.Value, true
			}
		}
		return 0, false
	}
	pgtySlab, byType := flagsOf("enum pagetype", "PGTY_slab")
	pgSlab, byFlag := flagsOf("enum pageflags", "PG_slab")
	if !byType && (!byFlag || pgSlab >= 64) {
		return nil, fmt.Errorf("naive reader: neither PGTY_slab nor a PG_slab page flag (v6.10/v6.11 page types are not implemented)")
	}

	// struct page member offsets, by name.
	page := k.Object(0, "struct page")
	pageSize := uint64(page.Size())
	offFlags := page.Field("flags").Addr()
	offHead := page.Field("compound_head").Addr()
	offType := page.Field("page_type").Addr()
	for _, v := range []kernel.Value{page.Field("flags"), page.Field("compound_head"), page.Field("page_type")} {
		if v.Err() != nil {
			return nil, v.Err()
		}
	}
	if pageSize == 0 || pageSize > 256 {
		return nil, fmt.Errorf("sizeof(struct page) %d", pageSize)
	}
	isSlab := func(p []byte) bool {
		if binary.LittleEndian.Uint64(p[offHead:])&1 != 0 {
			return false // a compound tail: its head says
		}
		if byType {
			return uint64(binary.LittleEndian.Uint32(p[offType:])>>24) == uint64(pgtySlab)
		}
		return binary.LittleEndian.Uint64(p[offFlags:])&(1<<uint(pgSlab)) != 0
	}

	pageOffset, err := k.Var("page_offset_base", "unsigned long").Uint()
	if err != nil {
		return nil, err
	}
	vmemmap, err := k.Var("vmemmap_base", "unsigned long").Uint()
	if err != nil {
		return nil, err
	}
	var rcuFree uint64
	if a, err := k.Symbol("rcu_free_slab"); err == nil {
		rcuFree = a
	}
	slabType := "struct slab"
	if _, err := k.TypeOf(slabType); err != nil {
		slabType = "struct page"
	}

	// Every present section's struct pages.
	highest, err := k.Var("__highest_present_section_nr", "unsigned long").Uint()
	if err != nil {
		return nil, err
	}
	if highest > 1<<20 {
		return nil, fmt.Errorf("__highest_present_section_nr %d", highest)
	}
	roots := k.Var("mem_section", "struct mem_section **")
	msSize := uint64(k.Object(0, "struct mem_section").Size())
	if msSize == 0 || msSize > naivePageSize {
		return nil, fmt.Errorf("sizeof(struct mem_section) %d", msSize)
	}
	perRoot := naivePageSize / msSize // SECTIONS_PER_ROOT
	const chunkPages = 1024
	buf := make([]byte, chunkPages*pageSize)
	for nr := uint64(0); nr <= highest; nr++ {
		root, err := roots.Index(int64(nr / perRoot)).Ptr()
		if err != nil {
			return nil, fmt.Errorf("mem_section root of section %d: %w", nr, err)
		}
		if root == 0 {
			continue
		}
		ms := k.Object(root+(nr%perRoot)*msSize, "struct mem_section")
		smm, err := ms.Field("section_mem_map").Uint()
		if err != nil {
			return nil, fmt.Errorf("section %d: %w", nr, err)
		}
		if smm&naiveSectionHasMap == 0 {
			continue
		}
		// section_mem_map holds mem_map - first pfn, with flags in its low
		// bits (fewer than 8); the map is 2 MiB aligned on x86_64.
		memmap := smm &^ 0xff
		if memmap != vmemmap {
			return nil, fmt.Errorf("section %d: mem_map %#x, vmemmap_base %#x", nr, memmap, vmemmap)
		}
		first := nr * naivePagesPerSection
		for pfn0 := first; pfn0 < first+naivePagesPerSection; pfn0 += chunkPages {
			if err := k.ReadVirt(buf, memmap+pfn0*pageSize); err != nil {
				return nil, fmt.Errorf("struct pages of pfn %#x: %w", pfn0, err)
			}
			for i := uint64(0); i < chunkPages; i++ {
				if !isSlab(buf[i*pageSize : (i+1)*pageSize]) {
					continue
				}
				pfn := pfn0 + i
				slabVA := memmap + pfn*pageSize
				if err := naiveSlab(k, caches, cpuHeads, slabType, slabVA, pageOffset+pfn*naivePageSize, rcuFree); err != nil {
					return nil, err
				}
			}
		}
	}
	return caches, nil
}

// naiveSlab counts one slab if it belongs to one of the caches.
func naiveSlab(k *kernel.Kernel, caches map[uint64]*naiveCount, cpuHeads map[uint64][]uint64, slabType string, slabVA, base, rcuFree uint64) error {
	s := k.Object(slabVA, slabType)
	cva, err := s.Field("slab_cache").Ptr()
	if err != nil {
		return err
	}
	c := caches[cva]
	if c == nil {
		return nil
	}
	for _, f := range []string{"callback_head.func", "rcu_head.func"} {
		if rcuFree == 0 || !s.HasField(f) {
			continue
		}
		fn, err := s.Field(f).Ptr()
		if err != nil {
			return err
		}
		if fn == rcuFree {
			c.RCUPending++
			return nil
		}
		break
	}
	objects, err := s.Field("objects").Uint()
	if err != nil {
		return err
	}
	if objects == 0 {
		return fmt.Errorf("slab %#x of %s: 0 objects", slabVA, c.Name)
	}
	fl, err := s.Field("freelist").Ptr()
	if err != nil {
		return err
	}
	seen := map[uint64]bool{}
	walk := func(p uint64) (int64, error) {
		var n int64
		for p != 0 {
			d := p - base - c.redLP
			if p < base+c.redLP || d%c.size != 0 || d/c.size >= objects {
				return n, fmt.Errorf("slab %#x of %s: free pointer %#x is no object of it", slabVA, c.Name, p)
			}
			if seen[p] {
				return n, fmt.Errorf("slab %#x of %s: object %#x free twice", slabVA, c.Name, p)
			}
			seen[p] = true
			n++
			link := p + c.offset
			stored, err := k.ReadPtr(link)
			if err != nil {
				return n, err
			}
			if c.hardened {
				p = stored ^ c.random ^ bits.ReverseBytes64(link)
			} else {
				p = stored
			}
		}
		return n, nil
	}
	free, err := walk(fl)
	if err != nil {
		return err
	}
	var cpuFree int64
	for _, h := range cpuHeads[slabVA] {
		n, err := walk(h)
		if err != nil {
			return fmt.Errorf("CPU freelist: %w", err)
		}
		cpuFree += n
	}
	c.Slabs++
	c.Total += int64(objects)
	c.SlabFree += free
	c.CPUFree += cpuFree
	c.Allocated += int64(objects) - free - cpuFree
	return nil
}
