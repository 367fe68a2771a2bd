package elfcore

import (
	"errors"
	"fmt"
)

// ErrUnrecognizedFormat is returned (wrapped) by NewDump when the input is
// neither an ELF64 core, a kdump-compressed dump nor a flattened
// makedumpfile stream.
var ErrUnrecognizedFormat = errors.New("elfcore: unrecognized dump format")

// FormatError reports a structural problem in a dump file: a field that
// points outside the file, a count that cannot be right, a short read of
// metadata. Off is the offset of the offending structure in the (logical)
// file.
type FormatError struct {
	File string
	Off  int64
	Msg  string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("elfcore: %s: offset %#x: %s", e.File, e.Off, e.Msg)
}

// MissingReason says why a physical address cannot be read.
type MissingReason int

const (
	// ReasonExcluded: the page is RAM but was filtered out by the dump tool
	// (kdump bitmap 1 set, bitmap 2 clear) or lies in the p_memsz > p_filesz
	// tail of an ELF PT_LOAD.
	ReasonExcluded MissingReason = iota
	// ReasonBeyondEnd: the address is above the highest page the dump
	// describes (kdump max_mapnr, or past every ELF segment).
	ReasonBeyondEnd
	// ReasonTruncated: the dump claims the page but the file ends (or the
	// incomplete dump never wrote it).
	ReasonTruncated
	// ReasonHole: the address is inside the dump's range but not RAM
	// according to the dump (kdump bitmap 1 clear, or a gap between ELF
	// segments).
	ReasonHole
	// ReasonOtherPart: the page is in another file of a split dump
	// (makedumpfile --split), one that was not read with this one.
	ReasonOtherPart
)

func (r MissingReason) String() string {
	switch r {
	case ReasonExcluded:
		return "excluded"
	case ReasonBeyondEnd:
		return "beyond end"
	case ReasonTruncated:
		return "truncated"
	case ReasonHole:
		return "hole"
	case ReasonOtherPart:
		return "in another part of a split dump"
	}
	return fmt.Sprintf("MissingReason(%d)", int(r))
}

// MissingPageError is returned by ReadPhys at the first byte that the dump
// does not contain.
type MissingPageError struct {
	PA     uint64
	Reason MissingReason
}

func (e *MissingPageError) Error() string {
	return fmt.Sprintf("elfcore: physical address %#x not in dump (%s)", e.PA, e.Reason)
}

// PageError wraps a failure to read or decompress one kdump page.
type PageError struct {
	File string
	PFN  uint64
	Off  int64 // file offset of the page data
	Err  error
}

func (e *PageError) Error() string {
	return fmt.Sprintf("elfcore: %s: pfn %#x at offset %#x: %v", e.File, e.PFN, e.Off, e.Err)
}

func (e *PageError) Unwrap() error { return e.Err }

// UnsupportedFormatError reports a crash dump in a format vmleak recognizes
// (by its magic number) but does not read: sadump, LKCD, Xen xc_core, ELF32
// cores.
type UnsupportedFormatError struct {
	File   string
	Format string // "sadump", "LKCD", "Xen xc_core", "ELF32"
	Detail string // optional: what was seen
}

func (e *UnsupportedFormatError) Error() string {
	s := fmt.Sprintf("elfcore: %s: unsupported format %s", e.File, e.Format)
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s
}
