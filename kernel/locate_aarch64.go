package kernel

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/vmleak/vmleak/vmcoreinfo"
	"github.com/vmleak/vmleak/xlat"
)

// arm64 dumps are located from VMCOREINFO alone: the arch hook
// (arch/arm64/kernel/crash_core.c) has exported NUMBER(VA_BITS),
// NUMBER(kimage_voffset) and NUMBER(PHYS_OFFSET) since v4.12 ("arm64:
// kdump: add VMCOREINFO's for user-space tools"), NUMBER(KERNELPACMASK)
// since v5.7 ("arm64: kdump: add KERNELPACMASK in vmcoreinfo"),
// NUMBER(TCR_EL1_T1SZ) since v5.9 ("arm64/crash_core: Export TCR_EL1.T1SZ
// in vmcoreinfo"), and the MODULES, VMALLOC and VMEMMAP ranges since v6.4
// ("arm64: crash_core: Export MODULES, VMALLOC, and VMEMMAP ranges", also
// in later 6.1 stable kernels). KERNELOFFSET is the KASLR shift.

// arm64Layout is what VMCOREINFO says of an arm64 kernel's address space.
type arm64Layout struct {
	cfg        xlat.ARM64Config
	vaBits     uint64 // NUMBER(VA_BITS), the build's
	voff       uint64 // kimage_voffset
	physOffset uint64 // PHYS_OFFSET
	pageOffset uint64 // PAGE_OFFSET: the linear map's start
	lmSize     uint64 // the linear map's size
	// The ranges VMCOREINFO gives (zero where it does not).
	vmallocStart, vmallocEnd, modulesStart, modulesEnd, vmemmapStart, vmemmapEnd uint64
}

// parseARM64 reads the arm64 layout from VMCOREINFO; release is the
// kernel's (OSRELEASE), pageSize the dump's, used without PAGESIZE.
func parseARM64(info *vmcoreinfo.Info, release string, pageSize uint64) (arm64Layout, error) {
	var l arm64Layout
	if info == nil || !info.HasKernelOffset {
		return l, fmt.Errorf("%w: arm64 dumps are located from VMCOREINFO, which this one lacks (QEMU: -device vmcoreinfo with the guest's qemu_fw_cfg module)", ErrUnsupported)
	}
	need := func(name string, dst *uint64) error {
		v, ok := info.Number(name)
		if !ok {
			return fmt.Errorf("VMCOREINFO has no NUMBER(%s)", name)
		}
		*dst = uint64(v)
		return nil
	}
	for _, n := range []struct {
		name string
		dst  *uint64
	}{{"VA_BITS", &l.vaBits}, {"kimage_voffset", &l.voff}, {"PHYS_OFFSET", &l.physOffset}} {
		if err := need(n.name, n.dst); err != nil {
			return l, err
		}
	}
	// The kernel half's size is what TCR_EL1 says; VA_BITS is the build's
	// maximum (52-bit kernels fall back to 48 bits on CPUs without LVA).
	regime := l.vaBits
	if t1sz, ok := info.Number("TCR_EL1_T1SZ"); ok {
		regime = 64 - uint64(t1sz)
	}
	if l.vaBits < 36 || l.vaBits > 52 || regime < 36 || regime > l.vaBits {
		return l, fmt.Errorf("VMCOREINFO VA_BITS %d and TCR_EL1.T1SZ %d are implausible", l.vaBits, 64-regime)
	}
	var pac uint64
	if v, ok := info.Number("KERNELPACMASK"); ok {
		pac = uint64(v)
	}
	granule := pageSize
	if info.PageSize != 0 {
		granule = info.PageSize
	}
	l.cfg = xlat.ARM64Config{Granule: granule, VABits: uint(regime), PACMask: pac,
		// 52-bit VA with 4 or 16 KiB pages exists only with FEAT_LPA2 (v6.9).
		LPA2: regime == 52 && granule != 64<<10}

	// The linear map: at the bottom of the kernel half since v5.4
	// (14c127c957c1, "arm64: mm: Flip kernel VA space"), the top half of it
	// before; __phys_to_virt(pa) = pa - PHYS_OFFSET + PAGE_OFFSET either way.
	// With 52-bit VA on a 48-bit CPU the kernel moves memstart_addr down
	// instead (arm64_memblock_init), which PHYS_OFFSET already says.
	l.pageOffset = -(uint64(1) << l.vaBits)
	if !releaseAtLeast(release, 5, 4) {
		l.pageOffset = -(uint64(1) << (l.vaBits - 1))
	}
	l.lmSize = uint64(1) << (l.vaBits - 1)

	get := func(name string) uint64 {
		v, _ := info.Number(name)
		return uint64(v)
	}
	l.vmallocStart, l.vmallocEnd = get("VMALLOC_START"), get("VMALLOC_END")
	l.modulesStart, l.modulesEnd = get("MODULES_VADDR"), get("MODULES_END")
	l.vmemmapStart, l.vmemmapEnd = get("VMEMMAP_START"), get("VMEMMAP_END")
	return l, nil
}

// locateARM64 sets up translation for an arm64 kernel.
func (k *Kernel) locateARM64() error {
	l, err := parseARM64(k.info, k.release, k.dump.PageSize())
	if err != nil {
		if errors.Is(err, ErrUnsupported) {
			return fmt.Errorf("%s: %w", k.path, err)
		}
		// The dump says aarch64, yet lacks what every arm64 kernel
		// exports: its machine field or its VMCOREINFO is wrong.
		return fmt.Errorf("kernel: %s: %w: an aarch64 dump, but %v", k.path, ErrInconsistentDump, err)
	}
	k.lay.Arch = "arm64"
	k.lay.LocatedBy = "vmcoreinfo"
	k.lay.KASLROffset = k.info.KernelOffset
	k.lay.KimageVoffset = l.voff
	k.lay.PhysBase = l.physOffset
	k.lay.VABits = int(l.vaBits)

	pgd, ok := k.info.Symbol("swapper_pg_dir")
	if !ok {
		if pgd, err = k.Symbol("swapper_pg_dir"); err != nil {
			return fmt.Errorf("kernel: no swapper_pg_dir: %w", err)
		}
	}
	t, err := xlat.NewARM64(k.dump, pgd-l.voff, l.cfg)
	if err != nil {
		return fmt.Errorf("kernel: %s: %w", k.path, err)
	}
	k.tr = t
	k.lay.Levels = t.Levels()

	// The image from _text to _end is linear at kimage_voffset.
	if text, err := k.Symbol("_text"); err == nil {
		if end, err := k.Symbol("_end"); err == nil && end > text {
			if err := t.SetKernelImage(text, end, l.voff); err != nil {
				return fmt.Errorf("kernel: %w", err)
			}
		}
	}
	var maxPA uint64
	for _, r := range k.dump.PhysRanges() {
		maxPA = max(maxPA, r.End)
	}
	if maxPA > l.physOffset {
		t.SetDirectMap(l.pageOffset, l.physOffset, min(maxPA-l.physOffset, l.lmSize))
	}
	// Layout.PageOffset is where physical address 0 would be in the
	// linear map, so that va = PageOffset + pa holds as on x86_64.
	k.lay.PageOffset = l.pageOffset - l.physOffset
	k.lay.VmallocBase, k.lay.VmallocEnd = l.vmallocStart, l.vmallocEnd
	k.lay.ModulesStart, k.lay.ModulesEnd = l.modulesStart, l.modulesEnd
	k.lay.VmemmapStart, k.lay.VmemmapEnd = l.vmemmapStart, l.vmemmapEnd
	vmemmap, err := k.vmemmapFromSections()
	if err != nil {
		return fmt.Errorf("kernel: %s: finding the memory map: %w", k.path, err)
	}
	k.lay.VmemmapBase = vmemmap
	return nil
}

// maxSectionScan bounds the mem_section entries vmemmapFromSections reads
// before it gives up: RAM starting at 2 TiB with 128 MiB sections.
const maxSectionScan = 1 << 14

// vmemmapFromSections finds the struct page of page frame 0 from the first
// present memory section, arch-neutrally: with SPARSEMEM_VMEMMAP,
// section_mem_map holds the section's memory map minus its first page
// frame (sparse_encode_mem_map), i.e. the virtual memory map's base, with
// flags in the bits below SECTION_MAP_LAST_BIT.
func (k *Kernel) vmemmapFromSections() (uint64, error) {
	ms, err := k.StructType("struct mem_section")
	if err != nil {
		return 0, err
	}
	if ms.Size <= 0 || uint64(ms.Size) > k.PageSize() {
		return 0, fmt.Errorf("struct mem_section of %d bytes", ms.Size)
	}
	field, err := k.MemberOf(ms, "section_mem_map")
	if err != nil {
		return 0, err
	}
	// SECTION_MAP_LAST_BIT is an enumerator since v5.19 and 1<<4..1<<5 in
	// macros before; struct page alignment keeps the map 64-byte aligned.
	mask := ^uint64(63)
	if bit, ok, err := k.ProbeEnumerator("SECTION_MAP_LAST_BIT"); err == nil && ok && bit > 0 && bit < 12 {
		mask = ^(uint64(1)<<uint(bit) - 1)
	}
	const present = 1 << 0 // SECTION_MARKED_PRESENT
	roots, err := k.Var("mem_section", "unsigned long").Uint()
	if err != nil {
		return 0, err
	}
	perRoot := k.PageSize() / uint64(ms.Size)
	buf := make([]byte, k.PageSize())
	for r := uint64(0); r*perRoot < maxSectionScan; r++ {
		root, err := k.ReadPtr(roots + r*8)
		if err != nil {
			return 0, fmt.Errorf("mem_section root %d: %w", r, err)
		}
		if root == 0 {
			continue
		}
		if err := k.ReadVirt(buf, root); err != nil {
			return 0, fmt.Errorf("mem_section root %d at %#x: %w", r, root, err)
		}
		for i := uint64(0); i < perRoot; i++ {
			smm, err := field.Uint(buf[i*uint64(ms.Size):])
			if err != nil {
				return 0, err
			}
			if smm&present != 0 && smm&mask != 0 {
				return smm & mask, nil
			}
		}
	}
	return 0, fmt.Errorf("no present memory section in the first %d", maxSectionScan)
}

// releaseAtLeast compares a kernel release's version with major.minor;
// an unparsable release counts as new.
func releaseAtLeast(release string, major, minor int) bool {
	f := strings.SplitN(release, ".", 3)
	if len(f) < 2 {
		return true
	}
	ma, err1 := strconv.Atoi(f[0])
	digits := strings.IndexFunc(f[1], func(r rune) bool { return r < '0' || r > '9' })
	if digits < 0 {
		digits = len(f[1])
	}
	mi, err2 := strconv.Atoi(f[1][:digits])
	if err1 != nil || err2 != nil {
		return true
	}
	return ma > major || ma == major && mi >= minor
}

// ARM64ModuleSpace is where an arm64 kernel puts modules, [start, end);
// ok is false on other architectures or when it cannot be told. Up to
// v6.5 module_alloc (arch/arm64/kernel/module.c) allocates from
// module_alloc_base, which KASLR moves near the kernel image, first in its
// 128 MiB and then, with module PLTs, up to 2 GiB from it; kernels without
// the variable use VMCOREINFO's MODULES range.
func (k *Kernel) ARM64ModuleSpace() (start, end uint64, ok bool) {
	if k.lay.Arch != "arm64" {
		return 0, 0, false
	}
	if base, err := k.GlobalInt("module_alloc_base", "u64"); err == nil && base != 0 {
		return uint64(base), uint64(base) + 2<<30, true
	}
	if k.lay.ModulesEnd > k.lay.ModulesStart {
		return k.lay.ModulesStart, k.lay.ModulesEnd, true
	}
	return 0, 0, false
}
