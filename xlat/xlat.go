// Package xlat translates kernel virtual addresses to physical addresses
// by walking the page tables found in a memory image.
//
// It owns translation only: the page-table formats of each architecture,
// address canonicality, a cache of page-table pages and recent
// translations, and enumeration of what the tables map. It knows nothing
// of kernel data structures or dump file formats; physical memory is
// reached through the PhysReader interface, which the dump layer (ELF
// vmcore, compressed kdump, ...) implements. The layer above — the one that
// has read VMCOREINFO and kernel symbols — chooses the root table (from
// CR3 or init_top_pgt), the paging depth (NUMBER(pgtable_l5_enabled)), and
// may install fast paths for the kernel's linear mappings
// (SetDirectMap, SetKernelImage) once it has found their randomized bases.
//
// x86_64 (X86_64) and arm64 (ARM64) are implemented. Architectures are
// distinct types with the same method set rather than a compile-time
// choice, because the dump being analysed decides the architecture at run time, not the analysing host.
package xlat

import (
	"errors"
	"fmt"
)

// PhysReader reads physical memory. It has the semantics of
// io.ReaderAt.ReadAt with the offset being a physical address: when it
// returns n < len(p) it must return a non-nil error explaining why (for
// example, the page was filtered out of the dump). Implementations must be
// safe for concurrent use if the translator is used concurrently.
type PhysReader interface {
	ReadPhys(p []byte, pa uint64) (int, error)
}

// Mapping is a virtually and physically contiguous range of pages of one
// size, as yielded by Mappings.
type Mapping struct {
	VA       uint64 // first virtual address
	PA       uint64 // physical address of VA
	Size     uint64 // length in bytes
	PageSize uint64 // size of the pages making up the range
}

// Sentinel errors carried in TranslateError.Err, for errors.Is.
var (
	// ErrNotMapped: a page-table entry on the walk was not present.
	ErrNotMapped = errors.New("not mapped")
	// ErrNonCanonical: the address is not canonical for the paging depth,
	// so no page table can map it.
	ErrNonCanonical = errors.New("non-canonical address")
	// ErrTableLoop: Mappings found an entry that points back at a table
	// enclosing it; the subtree is skipped rather than walked again.
	ErrTableLoop = errors.New("page-table loop")
	// ErrWalkLimit: Mappings visited its maximum number of page-table
	// pages and stopped.
	ErrWalkLimit = errors.New("page-table walk limit reached")
)

// TranslateError describes a failed translation or page-table walk.
//
// Err is ErrNotMapped, ErrNonCanonical, ErrTableLoop, ErrWalkLimit, or the
// error returned by the PhysReader when a page-table page could not be read
// (as happens when a filtered dump omitted it); Unwrap exposes it to
// errors.Is and errors.As.
type TranslateError struct {
	VA      uint64 // the virtual address being translated
	Level   int    // 5..1 = PML5, PML4, PDPT, PD, PT (arm64: levels left, 1 = L3); 0 if not tied to a level
	Entry   uint64 // value of the offending entry, when one was read
	EntryPA uint64 // physical address of that entry (or of the table, for table reads)
	Msg     string // what happened, without the VA
	Err     error
}

func (e *TranslateError) Error() string {
	s := fmt.Sprintf("xlat: virtual address %#x %s", e.VA, e.Msg)
	switch e.Err {
	case nil, ErrNotMapped, ErrNonCanonical, ErrTableLoop, ErrWalkLimit:
		// Msg already says it.
	default:
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *TranslateError) Unwrap() error { return e.Err }

// LevelName returns the x86 name of a paging level: 5 PML5, 4 PML4,
// 3 PDPT, 2 PD, 1 PT.
func LevelName(level int) string {
	switch level {
	case 5:
		return "PML5"
	case 4:
		return "PML4"
	case 3:
		return "PDPT"
	case 2:
		return "PD"
	case 1:
		return "PT"
	}
	return fmt.Sprintf("level-%d", level)
}
