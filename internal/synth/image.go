package synth

import (
	"bufio"
	"encoding/binary"
	"os"
)

// Memory images of the synthetic machine, for the memory-scan locator
// (kernel/locate_memory.go): what LiME would write of it.

// MapKernelImage maps the kernel image in init_top_pgt at its link address
// plus shift (a KASLR offset, a multiple of 2 MiB) with 2 MiB pages, as
// head_64.S's level2_kernel_pgt does, and the direct map's first GiB. The synthetic dump's own readers
// translate the image by arithmetic from VMCOREINFO; a memory image has
// only the page tables. Call it after Write and before WriteLiME: the page
// tables it adds are in the image only.
func (k *Kernel) MapKernelImage(shift uint64) {
	const tablePTE, largePTE = 0x63, 0x1e3 // _KERNPG_TABLE; __PAGE_KERNEL_LARGE_EXEC
	for off := uint64(0); off < imageEnd-textVA; off += 2 << 20 {
		va := textVA + shift + off
		table := k.initTopPgt
		for _, s := range []uint{39, 30} {
			slot := table + 8*((va>>s)&511)
			next := k.get64(slot)
			if next == 0 {
				next = k.allocPages(1, 1)<<12 | tablePTE
				k.put64(slot, next)
			}
			table = PageOffset + next&0x000ffffffffff000
		}
		k.put64(table+8*((va>>21)&511), (imagePA+off)|largePTE)
	}
	// And the direct map's first GiB with one 1 GiB page, as the kernel maps
	// all RAM there (the memory scan checks page_offset_base by it).
	slot := k.initTopPgt + 8*((PageOffset>>39)&511)
	if k.get64(slot) == 0 {
		k.put64(slot, k.allocPages(1, 1)<<12|tablePTE)
	}
	pud := PageOffset + k.get64(slot)&0x000ffffffffff000
	k.put64(pud+8*((PageOffset>>30)&511), 0|largePTE)
}

// WriteLiME writes the machine's memory (less dropped pages) as LiME's
// lime format: a 32-byte header per range (magic 0x4C694D45, version 1,
// first and last address), then the range's bytes.
func (k *Kernel) WriteLiME(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	var zero [PageSize]byte
	for _, r := range k.physRanges() {
		for pfn := r[0]; pfn < r[1]; {
			if k.drop[pfn] {
				pfn++
				continue
			}
			end := pfn
			for end < r[1] && !k.drop[end] {
				end++
			}
			var h [32]byte
			binary.LittleEndian.PutUint32(h[0:], 0x4C694D45)
			binary.LittleEndian.PutUint32(h[4:], 1)
			binary.LittleEndian.PutUint64(h[8:], pfn*PageSize)
			binary.LittleEndian.PutUint64(h[16:], end*PageSize-1)
			w.Write(h[:])
			for ; pfn < end; pfn++ {
				if p := k.mem[pfn]; p != nil {
					w.Write(p[:])
				} else {
					w.Write(zero[:])
				}
			}
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
