package kernel

import (
	"encoding/binary"
	"fmt"

	"github.com/vmleak/vmleak/xlat"
)

// x86_64 facts (arch/x86/include/asm/page_64_types.h, pgtable_64_types.h).
const (
	startKernelMap  = xlat.StartKernelMap // __START_KERNEL_map
	kernelImageSize = 1 << 30             // KERNEL_IMAGE_SIZE with KASLR
	cr4LA57         = 1 << 12             // CR4.LA57: 5-level paging
	cr3AddrMask     = 0x000ffffffffff000  // CR3 bits 12..51 (PCID and flags cleared)
)

// locate finds the kernel in physical memory: KASLR offset, phys_base, the
// page-table root and the direct-map, vmalloc and vmemmap bases. Three
// locators, by what the dump holds: VMCOREINFO, else QEMU's CPU state, else
// memory alone (the memory scan of locate_memory.go).
func (k *Kernel) locate() error {
	if k.dump.Arch() == "aarch64" {
		return k.locateARM64()
	}
	k.lay.Arch = "x86_64"
	if k.info != nil && k.info.HasKernelOffset {
		return k.locateByVMCOREINFO()
	}
	if len(k.dump.QEMUCPUStates()) == 0 {
		// Nothing but memory (memory images): locate_memory.go.
		return k.locateByMemoryScan()
	}
	return k.locateByCPUState()
}

func (k *Kernel) locateByVMCOREINFO() error {
	info := k.info
	k.lay.LocatedBy = "vmcoreinfo"
	k.lay.KASLROffset = info.KernelOffset
	pb, ok := info.Number("phys_base")
	if !ok {
		return fmt.Errorf("kernel: %s: VMCOREINFO has no NUMBER(phys_base)", k.path)
	}
	// QEMU's kdump sub-header phys_base is wrong on KASLR kernels; the kernel's own
	// VMCOREINFO value is what the kernel used.
	k.lay.PhysBase = uint64(pb)
	k.lay.Levels = 4
	if l5, ok := info.Number("pgtable_l5_enabled"); ok && l5 != 0 {
		k.lay.Levels = 5
	}
	root, ok := info.Symbol("init_top_pgt")
	if !ok {
		var err error
		if root, err = k.Symbol("init_top_pgt"); err != nil {
			return fmt.Errorf("kernel: no init_top_pgt: %w", err)
		}
	}
	return k.setupTranslation(root-startKernelMap+k.lay.PhysBase, true)
}

// locateByCPUState finds the kernel without VMCOREINFO, from the CPU state
// QEMU saves with its dumps: CR3 gives the page tables, CR4 the paging
// depth; the IDT's first gate points at asm_exc_divide_error, whose run-time
// address against its link address is the KASLR offset. linux_banner is
// checked afterwards (checkBanner), so a wrong guess cannot go unnoticed.
func (k *Kernel) locateByCPUState() error {
	k.lay.LocatedBy = "cpu-state"
	states := k.dump.QEMUCPUStates()
	if len(states) == 0 {
		return fmt.Errorf("%w: %s has neither VMCOREINFO nor CPU state to locate the kernel", ErrUnsupported, k.path)
	}
	var lastErr error
	for i, st := range states {
		k.lay.Levels = 4
		if st.CR[4]&cr4LA57 != 0 {
			k.lay.Levels = 5
		}
		root := st.CR[3] & cr3AddrMask
		if err := k.setupTranslation(root, false); err != nil {
			lastErr = err
			continue
		}
		if err := k.kaslrFromIDT(st.IDT.Base); err != nil {
			lastErr = fmt.Errorf("CPU %d: %w", i, err)
			continue
		}
		// phys_base: where the page tables put the kernel image.
		stext, err := k.types.Symbol("_stext")
		if err != nil {
			return err
		}
		va := stext.Value + k.lay.KASLROffset
		pa, _, err := k.tr.Translate(va)
		if err != nil {
			lastErr = fmt.Errorf("CPU %d: translating _stext: %w", i, err)
			continue
		}
		k.lay.PhysBase = pa - (va - startKernelMap)
		return k.setupTranslation(root, true)
	}
	return fmt.Errorf("kernel: %s: cannot locate the kernel from CPU state: %w", k.path, lastErr)
}

func (k *Kernel) kaslrFromIDT(idtBase uint64) error {
	var gate [16]byte
	if _, err := k.tr.ReadVirt(gate[:], idtBase); err != nil {
		return fmt.Errorf("reading IDT at %#x: %w", idtBase, err)
	}
	// A 64-bit interrupt gate: offset 15..0 in bytes 0-1, 31..16 in 6-7, 63..32 in 8-11.
	handler := uint64(binary.LittleEndian.Uint16(gate[0:])) |
		uint64(binary.LittleEndian.Uint16(gate[6:]))<<16 |
		uint64(binary.LittleEndian.Uint32(gate[8:]))<<32
	for _, name := range []string{"asm_exc_divide_error", "divide_error"} {
		s, err := k.types.Symbol(name)
		if err != nil {
			continue
		}
		off := handler - s.Value
		if off%0x200000 != 0 || off >= kernelImageSize {
			// KASLR moves the image in 2 MiB steps within the 1 GiB image area.
			return fmt.Errorf("IDT gate 0 points at %#x, not a KASLR shift of %s (%#x)", handler, name, s.Value)
		}
		k.lay.KASLROffset = off
		return nil
	}
	return fmt.Errorf("vmlinux has no divide-error handler symbol")
}

// setupTranslation builds the page-table walker; with full set, it also adds
// the kernel-image and direct-map fast paths and reads the randomized bases.
func (k *Kernel) setupTranslation(rootPA uint64, full bool) error {
	t, err := xlat.NewX86_64(k.dump, rootPA, k.lay.Levels)
	if err != nil {
		return fmt.Errorf("kernel: %s: %w", k.path, err)
	}
	k.tr = t
	if !full {
		return nil
	}
	if err := t.SetKernelImage(startKernelMap, startKernelMap+kernelImageSize, k.lay.PhysBase); err != nil {
		return fmt.Errorf("kernel: %w", err)
	}
	// RANDOMIZE_MEMORY moves these three regions per boot; the kernel keeps the bases in variables.
	bases := []struct {
		sym string
		dst *uint64
	}{{"page_offset_base", &k.lay.PageOffset}, {"vmemmap_base", &k.lay.VmemmapBase}, {"vmalloc_base", &k.lay.VmallocBase}}
	for _, b := range bases {
		va, err := k.Symbol(b.sym)
		if err != nil {
			return fmt.Errorf("kernel: %s: %w", b.sym, err)
		}
		var buf [8]byte
		if err := k.ReadVirt(buf[:], va); err != nil {
			return fmt.Errorf("kernel: reading %s: %w", b.sym, err)
		}
		*b.dst = binary.LittleEndian.Uint64(buf[:])
	}
	var maxPA uint64
	for _, r := range k.dump.PhysRanges() {
		maxPA = max(maxPA, r.End)
	}
	// Translating direct-map addresses arithmetically is exact: the kernel maps
	// all of RAM there at page_offset_base + pa.
	t.SetDirectMap(k.lay.PageOffset, maxPA)
	return nil
}
