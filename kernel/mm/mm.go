// Package mm is the kernel's memory model as the layers above see it: page
// frame numbers, struct pages, the direct map, the memory sections that
// hold struct pages, page types and compound heads, NUMA nodes, and the
// node and CPU masks. It is the one place that arithmetic lives; the slab
// walkers (walk), meminfo, address identification (symbolize) and
// everything after them use it instead of repeating it.
//
// Everything is probed once from the kernel's types and VMCOREINFO, never
// from a kernel version number. It reads memory only through package
// kernel and knows no allocator.
//
// Sources: include/linux/mmzone.h (mem_section, SECTION_SIZE_BITS,
// pglist_data), include/linux/page-flags.h (page flags and types),
// include/linux/nodemask.h, include/linux/cpumask.h.
package mm

import (
	"errors"
	"fmt"
	"sync"

	"github.com/vmleak/vmleak/kernel"
)

// x86_64's sparsemem constants (arch/x86/include/asm/sparsemem.h), used
// only when VMCOREINFO does not say (it does since 4f5aecdff25f, v5.13).
const (
	x86SectionSizeBits = 27
	sectionHasMemMap   = 1 << 1 // SECTION_HAS_MEM_MAP before it became an enum bit
	maxSections        = 1 << 25
	maxNodes           = 1 << 12
	maxCPUs            = 1 << 13
)

// PFNRange is a run of page frames [Start, End).
type PFNRange struct{ Start, End uint64 }

// MM answers memory-model questions about one kernel. It is safe for
// concurrent use.
type MM struct {
	k          *kernel.Kernel
	pageSize   uint64
	pageShift  uint
	structPage uint64 // sizeof(struct page)
	lay        kernel.Layout
	maxPFN     uint64 // end of the dump's physical memory, in page frames

	sectionBits uint // SECTION_SIZE_BITS
	pages       pageLayout

	rangesOnce sync.Once
	ranges     Ranges

	nodesOnce sync.Once
	nodes     []Node
	nodesErr  error
}

// New probes the memory model of a kernel opened with types.
func New(k *kernel.Kernel) (*MM, error) {
	if !k.HasTypes() {
		return nil, errors.New("mm: kernel types (vmlinux) are needed")
	}
	m := &MM{k: k, pageSize: k.PageSize(), lay: k.Layout()}
	if m.pageSize == 0 || m.pageSize&(m.pageSize-1) != 0 {
		return nil, fmt.Errorf("mm: page size %d is not a power of two", m.pageSize)
	}
	for m.pageShift = 0; 1<<m.pageShift < m.pageSize; m.pageShift++ {
	}
	sp, err := k.SizeOf("struct page")
	if err != nil {
		return nil, fmt.Errorf("mm: %w", err)
	}
	if sp < 8 || sp > 1024 {
		return nil, fmt.Errorf("mm: struct page of %d bytes", sp)
	}
	m.structPage = uint64(sp)
	m.sectionBits = x86SectionSizeBits
	if info := k.Info(); info != nil {
		if v, ok := info.Number("SECTION_SIZE_BITS"); ok {
			if v <= int64(m.pageShift) || v > 40 {
				return nil, fmt.Errorf("mm: VMCOREINFO SECTION_SIZE_BITS %d is implausible", v)
			}
			m.sectionBits = uint(v)
		}
	}
	// The direct map and the memory map cover all of RAM, whatever part of
	// it the dump holds (a truncated or filtered dump still has the kernel's
	// max_pfn); the dump's own ranges stand in when that cannot be read.
	if v, err := k.GlobalInt("max_pfn", "unsigned long"); err == nil && v > 0 && v < 1<<(52-12) {
		m.maxPFN = uint64(v)
	}
	for _, r := range k.Dump().PhysRanges() {
		m.maxPFN = max(m.maxPFN, (r.End+m.pageSize-1)/m.pageSize)
	}
	if err := m.pages.probe(k); err != nil {
		return nil, err
	}
	return m, nil
}

// Kernel is the kernel the model describes.
func (m *MM) Kernel() *kernel.Kernel { return m.k }

// PageSize is PAGE_SIZE.
func (m *MM) PageSize() uint64 { return m.pageSize }

// StructPageSize is sizeof(struct page).
func (m *MM) StructPageSize() uint64 { return m.structPage }

// PFNsPerSection is PAGES_PER_SECTION.
func (m *MM) PFNsPerSection() uint64 { return 1 << (m.sectionBits - m.pageShift) }

// MaxPFN is one past the highest page frame of RAM: the kernel's max_pfn,
// or the end of the dump's memory if that is higher or unreadable.
func (m *MM) MaxPFN() uint64 { return m.maxPFN }

// Page is the address of the struct page of a page frame (SPARSEMEM_VMEMMAP:
// vmemmap_base + pfn * sizeof(struct page)).
func (m *MM) Page(pfn uint64) uint64 { return m.lay.VmemmapBase + pfn*m.structPage }

// PagePFN is the page frame a struct page address describes, and the
// offset of the address within that struct page; ok is false outside the
// memory map of the dump's memory.
func (m *MM) PagePFN(va uint64) (pfn, off uint64, ok bool) {
	if va < m.lay.VmemmapBase {
		return 0, 0, false
	}
	d := va - m.lay.VmemmapBase
	pfn = d / m.structPage
	if pfn >= m.maxPFN {
		return 0, 0, false
	}
	return pfn, d % m.structPage, true
}

// Virt is the direct-map address of a page frame.
func (m *MM) Virt(pfn uint64) uint64 { return m.lay.PageOffset + pfn<<m.pageShift }

// PhysToVirt is the direct-map address of a physical address.
func (m *MM) PhysToVirt(pa uint64) uint64 { return m.lay.PageOffset + pa }

// VirtPFN is the page frame of a direct-map address; ok is false outside
// the direct map of the dump's memory.
func (m *MM) VirtPFN(va uint64) (pfn uint64, ok bool) {
	if va < m.lay.PageOffset {
		return 0, false
	}
	pfn = (va - m.lay.PageOffset) >> m.pageShift
	return pfn, pfn < m.maxPFN
}

// ReadStructPages reads the struct pages of n page frames from pfn into
// buf, which must hold n*StructPageSize bytes.
func (m *MM) ReadStructPages(buf []byte, pfn, n uint64) error {
	need := n * m.structPage
	if uint64(len(buf)) < need {
		return fmt.Errorf("mm: buffer of %d bytes for %d struct pages", len(buf), n)
	}
	return m.k.ReadVirt(buf[:need], m.Page(pfn))
}

// NotDumped is true when the dump provably holds none of page frames
// [pfn, pfn+n): makedumpfile left them all out as free, page cache or user
// pages (elfcore.Dump.NoneDumped), so their struct pages describe no slab
// and a scan for slabs need not read them. Off a live system only.
func (m *MM) NotDumped(pfn, n uint64) bool {
	return !m.k.Dump().Live() && m.k.Dump().NoneDumped(pfn*m.pageSize, n*m.pageSize)
}

// Ranges is the memory whose struct pages exist.
type Ranges struct {
	PFNs []PFNRange
	// FromSections is true when they come from mem_section; false when it
	// could not be read and the sections holding the dump's physical
	// ranges stand in (SectionsErr says why).
	FromSections bool
	SectionsErr  error
}

// MemoryRanges returns the page frames of present memory sections, from
// mem_section (SPARSEMEM_EXTREME: root pointers to arrays of struct
// mem_section). If those cannot be read (pages missing from the dump), the
// sections holding the dump's physical ranges stand in.
func (m *MM) MemoryRanges() (Ranges, error) {
	m.rangesOnce.Do(func() {
		rs, err := m.sectionRanges()
		if err == nil {
			m.ranges = Ranges{PFNs: rs, FromSections: true}
			return
		}
		m.ranges = Ranges{SectionsErr: err}
		per := m.PFNsPerSection()
		for _, r := range m.k.Dump().PhysRanges() {
			start := r.Start / m.pageSize / per * per
			end := (r.End/m.pageSize + per - 1) / per * per
			if n := len(m.ranges.PFNs); n > 0 && m.ranges.PFNs[n-1].End >= start {
				m.ranges.PFNs[n-1].End = max(m.ranges.PFNs[n-1].End, end)
			} else {
				m.ranges.PFNs = append(m.ranges.PFNs, PFNRange{start, end})
			}
		}
	})
	if len(m.ranges.PFNs) == 0 {
		return m.ranges, fmt.Errorf("mm: no memory: %v", m.ranges.SectionsErr)
	}
	return m.ranges, nil
}

func (m *MM) sectionRanges() ([]PFNRange, error) {
	k := m.k
	ms, err := k.StructType("struct mem_section")
	if err != nil {
		return nil, fmt.Errorf("mm: %w", err)
	}
	if ms.Size <= 0 || uint64(ms.Size) > m.pageSize {
		return nil, fmt.Errorf("mm: struct mem_section of %d bytes", ms.Size)
	}
	mapField, err := k.MemberOf(ms, "section_mem_map")
	if err != nil {
		return nil, fmt.Errorf("mm: %w", err)
	}
	hasMap := uint64(sectionHasMemMap)
	if bit, ok, err := k.ProbeEnumerator("SECTION_HAS_MEM_MAP_BIT"); ok || err != nil {
		if err != nil || bit < 0 || bit > 8 {
			return nil, fmt.Errorf("mm: SECTION_HAS_MEM_MAP_BIT %d: %v", bit, err)
		}
		hasMap = 1 << uint(bit)
	}
	perRoot := m.pageSize / uint64(ms.Size) // SECTIONS_PER_ROOT
	highest, err := k.Var("__highest_present_section_nr", "unsigned long").Uint()
	if err != nil {
		return nil, fmt.Errorf("mm: %w", err)
	}
	if highest >= maxSections {
		return nil, fmt.Errorf("mm: __highest_present_section_nr %d is implausible", highest)
	}
	rootsVA, err := k.Var("mem_section", "unsigned long").Uint()
	if err != nil {
		return nil, fmt.Errorf("mm: %w", err)
	}
	per := m.PFNsPerSection()
	var out []PFNRange
	var root uint64
	buf := make([]byte, m.pageSize)
	for nr := uint64(0); nr <= highest; nr++ {
		if nr%perRoot == 0 {
			root, err = k.ReadPtr(rootsVA + nr/perRoot*8)
			if err != nil {
				return nil, fmt.Errorf("mm: mem_section root %d: %w", nr/perRoot, err)
			}
			if root != 0 {
				if err := k.ReadVirt(buf, root); err != nil {
					return nil, fmt.Errorf("mm: mem_section root %d at %#x: %w", nr/perRoot, root, err)
				}
			}
		}
		if root == 0 {
			continue
		}
		smm, err := mapField.Uint(buf[(nr%perRoot)*uint64(ms.Size):])
		if err != nil {
			return nil, fmt.Errorf("mm: %w", err)
		}
		if smm&hasMap == 0 {
			continue
		}
		start := nr * per
		if n := len(out); n > 0 && out[n-1].End == start {
			out[n-1].End += per
		} else {
			out = append(out, PFNRange{start, start + per})
		}
	}
	return out, nil
}

// Region is a range of kernel virtual addresses [Start, Start+Size).
type Region struct{ Start, Size uint64 }

// Contains tells whether va lies in the region.
func (r Region) Contains(va uint64) bool { return va >= r.Start && va-r.Start < r.Size }

// Vmalloc is the vmalloc space: VMALLOC_START (vmalloc_base) and
// VMALLOC_SIZE_TB of arch/x86/include/asm/pgtable_64_types.h, 32 TiB with
// 4-level paging and 12800 TiB with 5-level, a quarter of it under KMSAN.
func (m *MM) Vmalloc() (Region, error) {
	if m.lay.Arch == "arm64" {
		// VMCOREINFO's NUMBER(VMALLOC_START) and NUMBER(VMALLOC_END).
		if m.lay.VmallocEnd <= m.lay.VmallocBase {
			return Region{}, errors.New("mm: the arm64 kernel's VMCOREINFO gives no vmalloc range (before v6.4 and its stable backports)")
		}
		return Region{m.lay.VmallocBase, m.lay.VmallocEnd - m.lay.VmallocBase}, nil
	}
	var tb uint64
	switch m.lay.Levels {
	case 4:
		tb = 32
	case 5:
		tb = 12800
	default:
		return Region{}, fmt.Errorf("mm: %d-level paging", m.lay.Levels)
	}
	size := tb << 40
	if _, err := m.k.Symbol("kmsan_enabled"); err == nil {
		size >>= 2
	}
	return Region{m.lay.VmallocBase, size}, nil
}

// Vmemmap is the memory map's region (Documentation/arch/x86/x86_64/mm.rst:
// 1 TiB with 4-level paging, 0.5 PiB with 5-level); struct pages exist in it
// only for page frames below MaxPFN.
func (m *MM) Vmemmap() Region {
	if m.lay.Arch == "arm64" {
		if m.lay.VmemmapEnd > m.lay.VmemmapStart {
			return Region{m.lay.VmemmapStart, m.lay.VmemmapEnd - m.lay.VmemmapStart}
		}
		return Region{m.lay.VmemmapBase, m.maxPFN * m.structPage}
	}
	if m.lay.Levels == 5 {
		return Region{m.lay.VmemmapBase, 1 << 49}
	}
	return Region{m.lay.VmemmapBase, 1 << 40}
}

// Modules is the module mapping space (arch/x86/include/asm/pgtable_64_types.h):
// from MODULES_VADDR = __START_KERNEL_map + KERNEL_IMAGE_SIZE up to
// MODULES_END, 0xffffffffff000000 (0xfffffffffe000000 under
// CONFIG_DEBUG_KMAP_LOCAL_FORCE_MAP, which is the region's last 16 MiB left
// in). KERNEL_IMAGE_SIZE is 1 GiB with CONFIG_RANDOMIZE_BASE and 512 MiB
// without (page_64_types.h): a kernel found at a KASLR offset has the
// former; otherwise the wider region is taken, the kernel image below it
// being named by its symbols first.
func (m *MM) Modules() Region {
	if m.lay.Arch == "arm64" {
		return m.arm64Modules()
	}
	const startKernelMap, modulesEnd = 0xffffffff80000000, 0xffffffffff000000
	image := uint64(512 << 20)
	if m.lay.KASLROffset != 0 {
		image = 1 << 30
	}
	return Region{startKernelMap + image, modulesEnd - (startKernelMap + image)}
}

// arm64Modules is kernel.ARM64ModuleSpace as a Region (empty when unknown).
func (m *MM) arm64Modules() Region {
	if start, end, ok := m.k.ARM64ModuleSpace(); ok {
		return Region{start, end - start}
	}
	return Region{}
}
