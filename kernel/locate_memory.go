package kernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"

	"github.com/vmleak/vmleak/elfcore"
	"github.com/vmleak/vmleak/xlat"
)

// Locating the kernel from memory alone ("memory scan"), for memory images
// (LiME, AVML, raw: see elfcore/lime.go), which carry neither VMCOREINFO nor
// CPU state. Every step rests on an x86_64 fact and is checked before the
// next:
//
//  1. linux_banner (init/version.c: "Linux version <release> (...)\n") is
//     found in physical memory by its bytes in the vmlinux. The kernel image
//     is physically contiguous and loaded at a CONFIG_PHYSICAL_ALIGN (2 MiB)
//     boundary (arch/x86/boot/compressed/kaslr.c), so the banner can only sit
//     at pa ≡ linux_banner - __START_KERNEL_map (mod 2 MiB): one probe per
//     2 MiB; a byte-wise scan is the fallback.
//  2. load = pa - (linux_banner - __START_KERNEL_map): for every symbol of
//     the image, PA(sym) = sym - __START_KERNEL_map + load at its link
//     address sym (the image is physically contiguous). The kernel's own
//     phys_base is load - KASLR offset, since __pa_symbol(x) is x -
//     __START_KERNEL_map + phys_base for a run-time x (asm/page_64.h).
//  3. The paging depth is __pgtable_l5_enabled (arch/x86/kernel/head64.c),
//     read at its physical address; 4 levels when the symbol is absent.
//  4. The page-table root is init_top_pgt (swapper_pg_dir), at its physical
//     address; it maps the kernel (arch/x86/kernel/head_64.S).
//  5. The virtual KASLR offset is where those page tables map _text's
//     physical address within the kernel-text region [__START_KERNEL_map,
//     +KERNEL_IMAGE_SIZE), probed at 2 MiB steps (the image moves in
//     CONFIG_PHYSICAL_ALIGN steps); linux_banner and init_top_pgt must then
//     translate to where they were found.
//  6. page_offset_base, vmalloc_base and vmemmap_base (RANDOMIZE_MEMORY,
//     arch/x86/mm/kaslr.c) are read through that translation, must be
//     canonical kernel addresses, and the page tables must map
//     page_offset_base + pa to the banner's pa.
//
// The same method is Volatility 3's for Linux images without metadata (its
// LinuxIntelStacker: banner, then the page-table root at its offset from
// it); the 2 MiB probe makes it cost under a millisecond per GiB.

const (
	physAlign    = 2 << 20 // CONFIG_PHYSICAL_ALIGN on x86_64 (and the KASLR step)
	scanChunk    = 4 << 20 // bytes read at once by the byte-wise scans
	maxBannerLen = 512
)

// bannerRelease reads the release from a banner.
var bannerRelease = regexp.MustCompile(`^Linux version (\S+) \(`)

// locateByMemoryScan is steps 1-6 above.
func (k *Kernel) locateByMemoryScan() error {
	k.lay.LocatedBy = "memory scan"
	fail := func(format string, args ...any) error {
		return fmt.Errorf("kernel: %s: memory scan: %s", k.path, fmt.Sprintf(format, args...))
	}
	bs, err := k.types.Symbol("linux_banner")
	if err != nil {
		return fail("the vmlinux has no linux_banner symbol to search for: %v", err)
	}
	size := bs.Size
	if size == 0 || size > maxBannerLen {
		size = 256
	}
	raw, err := k.vmlinuxBytes(bs.Value, size)
	if err != nil {
		return fail("reading linux_banner from the vmlinux: %v", err)
	}
	want := append(cstr(raw), 0) // the NUL too: a banner quoted inside longer text is not it
	if len(want) < 16 || !bytes.HasPrefix(want, []byte("Linux version ")) {
		return fail("the vmlinux's linux_banner %q is not a Linux banner", want)
	}
	rel := bs.Value - startKernelMap
	cands, err := k.findBanner(want, rel)
	if err != nil {
		return fail("%v", err)
	}
	if len(cands) == 0 {
		return fail("the vmlinux's linux_banner %q is nowhere in physical memory (at any page offset ≡ %#x): another kernel, or the image lacks the kernel", bytes.TrimSpace(cstr(want)), rel%0x1000)
	}
	var errs []error
	for _, pa := range cands {
		err := k.locateFromBanner(pa, rel, want)
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("banner at PA %#x: %w", pa, err))
	}
	return fmt.Errorf("kernel: %s: memory scan: %w", k.path, errors.Join(errs...))
}

// findBanner returns the physical addresses holding want at a possible
// kernel load address: the 2 MiB probe, then a byte-wise scan.
func (k *Kernel) findBanner(want []byte, rel uint64) ([]uint64, error) {
	var hits []uint64
	buf := make([]byte, len(want))
	for _, r := range k.dump.PhysRanges() {
		first := r.Start - r.Start%physAlign + rel%physAlign
		if first < r.Start {
			first += physAlign
		}
		for pa := first; pa+uint64(len(want)) <= r.End && pa >= first; pa += physAlign {
			if _, err := k.dump.ReadPhys(buf, pa); err != nil {
				continue // a hole inside a range cannot hold the banner
			}
			if bytes.Equal(buf, want) && pa >= rel {
				hits = append(hits, pa)
			}
		}
	}
	if len(hits) > 0 {
		return hits, nil
	}
	// Not 2 MiB aligned (an unusual CONFIG_PHYSICAL_ALIGN): any page-aligned phys_base.
	err := k.scanPhys(want, func(pa uint64) bool {
		if pa >= rel && (pa-rel)%0x1000 == 0 {
			hits = append(hits, pa)
		}
		return len(hits) < 16
	})
	return hits, err
}

// scanPhys calls hit for each physical address where pat starts (in address
// order) until hit returns false.
func (k *Kernel) scanPhys(pat []byte, hit func(pa uint64) bool) error {
	return scanPhys(k.dump, pat, hit)
}

func scanPhys(d *elfcore.Dump, pat []byte, hit func(pa uint64) bool) error {
	buf := make([]byte, scanChunk+len(pat))
	for _, r := range d.PhysRanges() {
		for pa := r.Start; pa < r.End; pa += scanChunk {
			n := min(uint64(len(buf)), r.End-pa)
			m, err := d.ReadPhys(buf[:n], pa)
			var mp *elfcore.MissingPageError
			if err != nil && !errors.As(err, &mp) {
				return err
			}
			b := buf[:m]
			for off := 0; ; {
				i := bytes.Index(b[off:], pat)
				if i < 0 {
					break
				}
				if !hit(pa + uint64(off+i)) {
					return nil
				}
				off += i + 1
			}
		}
	}
	return nil
}

// locateFromBanner is steps 2-6 for one banner found at pa.
func (k *Kernel) locateFromBanner(pa, rel uint64, want []byte) error {
	load := pa - rel
	phys := func(name string) (uint64, error) {
		s, err := k.types.Symbol(name)
		if err != nil {
			return 0, fmt.Errorf("the vmlinux has no %s: %w", name, err)
		}
		if s.Value < startKernelMap || s.Value >= startKernelMap+kernelImageSize {
			return 0, fmt.Errorf("%s (%#x) is not in the kernel image", name, s.Value)
		}
		return s.Value - startKernelMap + load, nil
	}
	k.lay.Levels = 4
	if l5, err := phys("__pgtable_l5_enabled"); err == nil {
		var b [4]byte
		if _, err := k.dump.ReadPhys(b[:], l5); err != nil {
			return fmt.Errorf("reading __pgtable_l5_enabled at PA %#x: %w", l5, err)
		}
		switch binary.LittleEndian.Uint32(b[:]) {
		case 0:
		case 1:
			k.lay.Levels = 5
		default:
			return fmt.Errorf("__pgtable_l5_enabled at PA %#x is %d, not 0 or 1: not this kernel's data", l5, binary.LittleEndian.Uint32(b[:]))
		}
	}
	root, err := phys("init_top_pgt")
	if err != nil {
		return err
	}
	if err := k.setupTranslation(root, false); err != nil {
		return fmt.Errorf("init_top_pgt at PA %#x: %w", root, err)
	}
	text, err := k.types.Symbol("_text")
	if err != nil {
		return fmt.Errorf("the vmlinux has no _text: %w", err)
	}
	textPA := text.Value - startKernelMap + load
	found := false
	for off := uint64(0); text.Value+off < startKernelMap+kernelImageSize; off += physAlign {
		if got, _, err := k.tr.Translate(text.Value + off); err == nil && got == textPA {
			k.lay.KASLROffset, found = off, true
			break
		}
	}
	if !found {
		return fmt.Errorf("the page tables at init_top_pgt (PA %#x, %d-level) map _text's PA %#x nowhere in the kernel-text region: not the page-table root", root, k.lay.Levels, textPA)
	}
	// Known symbols must translate to where step 2 put them.
	for _, name := range []string{"linux_banner", "init_top_pgt", "_etext"} {
		s, err := k.types.Symbol(name)
		if err != nil {
			continue
		}
		want := s.Value - startKernelMap + load
		if got, _, err := k.tr.Translate(s.Value + k.lay.KASLROffset); err != nil || got != want {
			return fmt.Errorf("with KASLR offset %#x, %s translates to PA %#x (%v), not %#x", k.lay.KASLROffset, name, got, err, want)
		}
	}
	k.lay.PhysBase = load - k.lay.KASLROffset // modulo 2^64, as the kernel's own
	if err := k.setupTranslation(root, true); err != nil {
		return err
	}
	for _, b := range []struct {
		name string
		v    uint64
	}{{"page_offset_base", k.lay.PageOffset}, {"vmalloc_base", k.lay.VmallocBase}, {"vmemmap_base", k.lay.VmemmapBase}} {
		if b.v < 0xff00000000000000 || b.v%0x1000 != 0 {
			return fmt.Errorf("%s is %#x: not a kernel address", b.name, b.v)
		}
	}
	// Through the page tables, not the direct-map arithmetic that trusts the base.
	walker, err := xlat.NewX86_64(k.dump, root, k.lay.Levels)
	if err != nil {
		return err
	}
	if got, _, err := walker.Translate(k.lay.PageOffset + pa); err != nil || got != pa {
		return fmt.Errorf("the page tables map page_offset_base %#x + the banner's PA %#x to PA %#x (%v): the direct map is not there", k.lay.PageOffset, pa, got, err)
	}
	k.lay.Located = fmt.Sprintf("banner at PA %#x, init_top_pgt at PA %#x", pa, root)
	return nil
}

// imageRelease reads the release from the first linux_banner-like text in
// a memory image ("Linux version R (...)\n" and a NUL: the string, not a
// log record quoting it), for finding the vmlinux; "" if there is none.
func imageRelease(d *elfcore.Dump) string {
	var rel string
	pat := []byte("Linux version ")
	buf := make([]byte, maxBannerLen)
	scanPhys(d, pat, func(pa uint64) bool {
		n, _ := d.ReadPhys(buf, pa)
		b := buf[:n]
		end := bytes.IndexByte(b, 0)
		if end < 1 || b[end-1] != '\n' {
			return true
		}
		if m := bannerRelease.FindSubmatch(b[:end]); m != nil {
			rel = string(m[1])
			return false
		}
		return true
	})
	return rel
}
