package leaks

import (
	"fmt"

	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/kernel/mm"
)

// kernelPages lists, as roots, the pages of present memory the kernel uses
// outside slab: page-allocator allocations (kmalloc_large, alloc_pages
// tables, vmalloc's backing pages, per-CPU chunks) and memblock
// allocations made at boot (PG_reserved: the large system hashes, the
// kernel image). A page is scanned when its compound head is
//   - PG_reserved, or
//   - in use (_refcount > 0), not slab, not a free buddy block, and with no
//     mapping: anonymous and page cache pages (user data, file contents)
//     are skipped.
//
// Reserved pages are a kind of their own: firmware areas and holes are
// PG_reserved too, and never in a dump, so their missing pages are counted
// but do not make the result partial.
//
// Free pages have _refcount 0 (also those on per-CPU free lists, which are
// not PageBuddy), so their stale words are not roots. Contiguous pages are
// merged into one region.
// Kinds of page roots.
const (
	KindPages    = "kernel pages"
	KindReserved = "reserved pages"
)

func kernelPages(k *kernel.Kernel, m *mm.MM) ([]Region, []string) {
	refcount, err1 := k.Member("struct page", "_refcount")
	mapping, err2 := k.Member("struct page", "mapping")
	reserved, err3 := k.Types().Enumerator("PG_reserved")
	if err := firstErr(err1, err2, err3); err != nil {
		return nil, []string{fmt.Sprintf("leaks: kernel pages not scanned: %v", err)}
	}
	if reserved < 0 || reserved >= 64 {
		return nil, []string{fmt.Sprintf("leaks: kernel pages not scanned: PG_reserved = %d", reserved)}
	}
	rs, err := m.MemoryRanges()
	if err != nil {
		return nil, []string{fmt.Sprintf("leaks: kernel pages not scanned: %v", err)}
	}
	// The crash kernel's reservation (crashk_res, kernel/crash_core.c) is
	// PG_reserved but holds the capture kernel, not this one's data, and
	// a kdump of /proc/vmcore leaves it out.
	var crashLo, crashHi uint64 // pfns, [lo, hi)
	if res := k.Var("crashk_res", "struct resource"); res.Err() == nil {
		start, err1 := res.Field("start").Uint()
		end, err2 := res.Field("end").Uint()
		if err1 == nil && err2 == nil && end > start {
			crashLo, crashHi = start/m.PageSize(), end/m.PageSize()+1
		}
	}
	ps := m.StructPageSize()
	const batch = 64
	buf := make([]byte, batch*ps)
	head := make([]byte, ps)
	var out []Region
	var warnings []string
	var bad int
	add := func(pfn uint64, kind string) {
		va := m.Virt(pfn)
		if n := len(out); n > 0 && out[n-1].Kind == kind && out[n-1].VA+out[n-1].Size == va && out[n-1].Size < maxRootBytes/2 {
			out[n-1].Size += m.PageSize()
			return
		}
		out = append(out, Region{Kind: kind, Name: fmt.Sprintf("pfn %#x", pfn), VA: va, Size: m.PageSize()})
	}
	for _, r := range rs.PFNs {
		for pfn := r.Start; pfn < r.End; pfn += batch {
			n := min(batch, r.End-pfn)
			if err := m.ReadStructPages(buf[:n*ps], pfn, n); err != nil {
				bad++
				continue
			}
			for i := uint64(0); i < n; i++ {
				if pfn+i >= crashLo && pfn+i < crashHi {
					continue
				}
				raw := buf[i*ps : (i+1)*ps]
				pageVA := m.Page(pfn + i)
				h, err := m.CompoundHead(pageVA, raw)
				if err != nil {
					continue
				}
				if h != pageVA {
					hpfn, off, ok := m.PagePFN(h)
					if !ok || off != 0 {
						continue
					}
					switch {
					case hpfn >= pfn && hpfn < pfn+n:
						raw = buf[(hpfn-pfn)*ps : (hpfn-pfn+1)*ps]
					case m.ReadStructPages(head, hpfn, 1) == nil:
						raw = head
					default:
						continue
					}
				}
				if slab, err := m.IsSlab(raw); err != nil || slab {
					continue
				}
				flags, err := m.Flags(raw)
				if err != nil {
					continue
				}
				kind := KindReserved
				if flags&(1<<uint(reserved)) == 0 {
					kind = KindPages
					if buddy, _, err := m.IsBuddy(raw); err != nil || buddy {
						continue
					}
					rc, err1 := refcount.Uint(raw)
					mp, err2 := mapping.Uint(raw)
					if err1 != nil || err2 != nil || int32(rc) <= 0 || mp != 0 {
						continue
					}
				}
				add(pfn+i, kind)
			}
		}
	}
	if bad > 0 {
		warnings = append(warnings, fmt.Sprintf("leaks: %d runs of struct pages could not be read: their pages not scanned", bad))
	}
	return out, warnings
}
