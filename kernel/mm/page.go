package mm

import (
	"fmt"

	"github.com/vmleak/vmleak/kernel"
)

// How a kernel marks a page's type.
const (
	// PG_slab is a bit of page->flags (up to v6.9).
	typeByFlag = iota
	// 46df8e73a4a3 (v6.10): page types are bits of page_type, set by
	// clearing them under PAGE_TYPE_BASE.
	typeByInvertedBit
	// 4ffca5a96678 (v6.12): page_type holds PGTY_<type> in its top byte.
	typeByTopByte
)

// pageLayout is what classifying a struct page needs, probed once.
type pageLayout struct {
	flags, pageType, compound kernel.Member
	mode                      int
	slabFlagBit               uint   // PG_slab (typeByFlag)
	typeBase, slabBit         uint32 // PAGE_TYPE_BASE, PG_slab (typeByInvertedBit)
	slabType, buddyType       uint32 // PGTY_slab, PGTY_buddy (typeByTopByte)
	// Before v6.12 a free buddy block's head has PG_buddy cleared under
	// PAGE_TYPE_BASE in page_type (6.1: #defines, known from VMCOREINFO's
	// PAGE_BUDDY_MAPCOUNT_VALUE = ~PG_buddy). buddyBit 0: unknown.
	buddyBase, buddyBit uint32
}

func (p *pageLayout) probe(k *kernel.Kernel) error {
	var err error
	if p.flags, err = k.Member("struct page", "flags"); err != nil {
		return fmt.Errorf("mm: %w", err)
	}
	if p.pageType, err = k.Probe("struct page", "page_type"); err != nil {
		return fmt.Errorf("mm: %w", err)
	}
	// compound_head holds head|1 in tail pages; d50569612c29 (v7.1) renamed
	// it compound_info.
	if p.compound, err = k.Probe("struct page", "compound_head"); err != nil {
		return fmt.Errorf("mm: %w", err)
	}
	if !p.compound.Present() {
		if p.compound, err = k.Probe("struct page", "compound_info"); err != nil {
			return fmt.Errorf("mm: %w", err)
		}
	}
	enum := func(name string) (int64, bool) {
		v, ok, err := k.ProbeEnumerator(name)
		return v, ok && err == nil
	}
	if v, ok := enum("PGTY_slab"); ok && p.pageType.Present() {
		p.mode, p.slabType = typeByTopByte, uint32(v)
		if b, ok := enum("PGTY_buddy"); ok {
			p.buddyType = uint32(b)
		}
		return nil
	}
	if base, ok := enum("PAGE_TYPE_BASE"); ok && p.pageType.Present() {
		if bit, ok := enum("PG_slab"); ok && bit >= 0x80 {
			p.mode, p.typeBase, p.slabBit = typeByInvertedBit, uint32(base), uint32(bit)
			if b, ok := enum("PG_buddy"); ok {
				p.buddyBase, p.buddyBit = uint32(base), uint32(b)
			}
			return nil
		}
	}
	bit, err := k.Types().Enumerator("PG_slab")
	if err != nil {
		return fmt.Errorf("mm: cannot tell slab pages: %w", err)
	}
	if bit < 0 || bit >= 64 {
		return fmt.Errorf("mm: PG_slab = %d", bit)
	}
	p.mode, p.slabFlagBit = typeByFlag, uint(bit)
	if p.pageType.Present() {
		// Before v6.10 PAGE_TYPE_BASE and PG_buddy are #defines, so the
		// types do not have them; VMCOREINFO does (PAGE_BUDDY_MAPCOUNT_VALUE
		// = ~PG_buddy), and without it the values every kernel from v4.18
		// (page_type split out of _mapcount) to v6.9 uses stand in.
		p.buddyBase, p.buddyBit = 0xf0000000, 0x80
		if info := k.Info(); info != nil {
			if v, ok := info.Number("PAGE_BUDDY_MAPCOUNT_VALUE"); ok {
				p.buddyBase, p.buddyBit = uint32(v)&0xf0000000, ^uint32(v)
			}
		}
	}
	return nil
}

// IsSlab tells whether a struct page (its bytes) heads a slab.
func (m *MM) IsSlab(page []byte) (bool, error) {
	p := &m.pages
	switch p.mode {
	case typeByTopByte:
		t, err := p.pageType.Uint(page)
		return uint32(t)>>24 == p.slabType, err
	case typeByInvertedBit:
		t, err := p.pageType.Uint(page)
		return uint32(t)&(p.typeBase|p.slabBit) == p.typeBase, err
	}
	f, err := p.flags.Uint(page)
	return f&(1<<p.slabFlagBit) != 0, err
}

// IsBuddy tells whether a struct page heads a free block of the buddy
// allocator; known is false when this kernel's marking is unknown.
func (m *MM) IsBuddy(page []byte) (buddy, known bool, err error) {
	p := &m.pages
	switch {
	case p.mode == typeByTopByte && p.buddyType != 0:
		t, err := p.pageType.Uint(page)
		return uint32(t)>>24 == p.buddyType, true, err
	case p.buddyBit != 0:
		t, err := p.pageType.Uint(page)
		return uint32(t)&(p.buddyBase|p.buddyBit) == p.buddyBase, true, err
	}
	return false, false, nil
}

// Flags is page->flags.
func (m *MM) Flags(page []byte) (uint64, error) { return m.pages.flags.Uint(page) }

// CompoundHead returns the struct page address of the compound head of the
// page whose struct page is at pageVA (its bytes in page); a page that is
// no tail page is its own head.
func (m *MM) CompoundHead(pageVA uint64, page []byte) (uint64, error) {
	f := m.pages.compound
	if !f.Present() {
		return pageVA, nil
	}
	info, err := f.Uint(page)
	if err != nil {
		return 0, err
	}
	if info&1 == 0 {
		return pageVA, nil
	}
	// compound_info (v7.1) holds either head|1 or, with the HugeTLB vmemmap
	// optimization, a mask|1 applied to the tail's own address.
	if info-1 <= pageVA {
		return info - 1, nil
	}
	return pageVA & info, nil
}
