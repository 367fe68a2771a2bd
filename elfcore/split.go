package elfcore

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// makedumpfile --split writes one dump as N kdump-compressed files. Every
// file carries the whole dump's disk_dump_header (the same utsname,
// timestamp, block size and max_mapnr), the same RAM bitmap, VMCOREINFO and
// notes, and in its kdump_sub_header (header version >= 2) split = 1 and the
// half-open pfn range [start_pfn, end_pfn) whose pages it holds: its page
// descriptors are those of the dumped pfns of that range only (for header
// version >= 6, start_pfn_64 and end_pfn_64 hold the range). The ranges of
// the N files, in the order makedumpfile was given them, follow each other
// from pfn 0 to max_mapnr; a range may be empty (makedumpfile splits on
// --splitblock-size boundaries, 1 GiB by default, so a small machine's dump
// can land entirely in the first file).

// PFNRange is a half-open range of page frame numbers [Start, End).
type PFNRange struct {
	Start, End uint64
}

func (r PFNRange) String() string { return fmt.Sprintf("[%#x, %#x)", r.Start, r.End) }

// SplitPart is one file of a split dump and the pfns it holds.
type SplitPart struct {
	File string
	PFNs PFNRange
}

// SplitInfo describes a dump written by makedumpfile --split.
type SplitInfo struct {
	// Parts are the files read, in pfn order.
	Parts []SplitPart
	// MaxPFN is the end of the whole dump's pfn range (max_mapnr, bounded
	// by the bitmaps).
	MaxPFN uint64
	// Missing are the pfn ranges that belong to parts not read; empty when
	// every part was given (or the parts not given hold no pfns).
	Missing []PFNRange
}

// Complete tells whether every pfn of the dump is in a part that was read.
func (s *SplitInfo) Complete() bool { return len(s.Missing) == 0 }

// String says what was read, e.g. "part 1 of a split dump: pfns [0x1000,
// 0x3ffd7) are in other parts" or "split dump read whole from 3 parts".
func (s *SplitInfo) String() string {
	if len(s.Parts) > 1 {
		return fmt.Sprintf("split dump read whole from %d parts", len(s.Parts))
	}
	r := s.Parts[0].PFNs
	which := "a part"
	switch {
	case r.Start == r.End:
		which = "an empty part"
	case r.Start == 0:
		which = "part 1"
	case r.End == s.MaxPFN:
		which = "the last part"
	}
	if s.Complete() {
		return fmt.Sprintf("%s of a split dump, holding all of pfns [0, %#x): the other parts are empty", which, s.MaxPFN)
	}
	ms := make([]string, len(s.Missing))
	for i, m := range s.Missing {
		ms[i] = m.String()
	}
	return fmt.Sprintf("%s of a split dump: pfns %s are in other parts", which, strings.Join(ms, " and "))
}

// Split describes the split dump d was read from, or is nil when d is not
// part of one. A dump opened from one part of a split dump (Open) has
// Missing ranges, and reads there fail with ReasonOtherPart; one opened
// from all its parts (OpenSplit) has none.
func (d *Dump) Split() *SplitInfo {
	if d.split == nil {
		return nil
	}
	s := *d.split
	s.Parts = slices.Clone(s.Parts)
	s.Missing = slices.Clone(s.Missing)
	return &s
}

// loneSplit is the SplitInfo of a kdump file opened on its own: the pfns
// outside its range are in other parts.
func loneSplit(name string, k *kdump) *SplitInfo {
	s := &SplitInfo{Parts: []SplitPart{{name, PFNRange{k.startPFN, k.endPFN}}}, MaxPFN: k.maxPFN}
	if k.startPFN == k.endPFN {
		if k.maxPFN > 0 {
			s.Missing = []PFNRange{{0, k.maxPFN}}
		}
		return s
	}
	if k.startPFN > 0 {
		s.Missing = append(s.Missing, PFNRange{0, k.startPFN})
	}
	if k.endPFN < k.maxPFN {
		s.Missing = append(s.Missing, PFNRange{k.endPFN, k.maxPFN})
	}
	return s
}

// SplitError reports parts of a split dump that do not make one dump: a
// file that is not a part, parts of different dumps, parts out of order,
// duplicated, overlapping or missing. File is the part it is about.
type SplitError struct {
	File string
	Msg  string
}

func (e *SplitError) Error() string { return fmt.Sprintf("elfcore: %s: %s", e.File, e.Msg) }

// OpenSplit opens the files of a dump written by makedumpfile --split, in
// the order makedumpfile was given them, as one dump. It checks that they
// belong together (the same utsname, timestamp, block size, max_mapnr,
// header version, VMCOREINFO, all flagged split) and that their pfn ranges
// follow each other from 0 to the end of the dump with no gap or overlap;
// anything else is a *SplitError naming the file and its pfn range. One
// path is Open.
func OpenSplit(paths ...string) (*Dump, error) {
	if len(paths) == 0 {
		return nil, errors.New("elfcore: OpenSplit: no files")
	}
	if len(paths) == 1 {
		return Open(paths[0])
	}
	var parts []*Dump
	for _, p := range paths {
		d, err := Open(p)
		if err != nil {
			for _, q := range parts {
				q.Close()
			}
			return nil, err
		}
		parts = append(parts, d)
	}
	d, err := NewSplitDump(parts)
	if err != nil {
		for _, q := range parts {
			q.Close()
		}
		return nil, err
	}
	return d, nil
}

// NewSplitDump joins the parts of a split dump, opened by NewDump or Open
// and given in order, into one dump (see OpenSplit for what is checked). On
// success the returned Dump owns the parts: its Close closes them.
func NewSplitDump(parts []*Dump) (*Dump, error) {
	if len(parts) == 0 {
		return nil, errors.New("elfcore: NewSplitDump: no parts")
	}
	for _, p := range parts {
		if p.kd == nil {
			return nil, &SplitError{p.name, fmt.Sprintf("is not part of a split dump: a %s file, not kdump-compressed", p.format)}
		}
		if p.split == nil {
			return nil, &SplitError{p.name, fmt.Sprintf("is not part of a split dump: its kdump header (version %d) has no split flag", p.kd.hdr.HeaderVersion)}
		}
		if len(p.split.Parts) != 1 {
			return nil, &SplitError{p.name, "is already a whole split dump"}
		}
	}
	first := parts[0]
	for i, p := range parts[1:] {
		if what := splitMismatch(first, p); what != "" {
			return nil, &SplitError{p.name, fmt.Sprintf("pfns %s: not part of the same dump as %s: %s", rangeOf(p), first.name, what)}
		}
		for _, q := range parts[:i+1] {
			if sameFile(p, q) {
				return nil, &SplitError{p.name, fmt.Sprintf("pfns %s: given twice (also as %s)", rangeOf(p), q.name)}
			}
		}
	}
	if err := checkCoverage(parts); err != nil {
		return nil, err
	}

	maxPFN := first.kd.maxPFN
	names := make([]string, len(parts))
	info := &SplitInfo{MaxPFN: maxPFN}
	for i, p := range parts {
		names[i] = p.name
		info.Parts = append(info.Parts, p.split.Parts[0])
	}
	d := &Dump{
		name: strings.Join(names, ","), format: first.format, arch: first.arch, target: first.target,
		pageSize: first.pageSize, notes: first.notes, vmcoreinfo: first.vmcoreinfo,
		prstatus: first.prstatus, qemu: first.qemu,
		split: info, parts: parts,
	}
	for _, p := range parts {
		d.incomplete = d.incomplete || p.incomplete
	}
	return d, nil
}

func rangeOf(p *Dump) PFNRange { return p.split.Parts[0].PFNs }

// sameFile tells whether two parts are one part given twice: the same
// file name, or the same non-empty pfn range (a copy). Several parts may
// hold the same empty range.
func sameFile(a, b *Dump) bool {
	return a.name == b.name || rangeOf(a) == rangeOf(b) && rangeOf(a).Start != rangeOf(a).End
}

// splitMismatch names the first header field in which part p differs from
// the first part, or "".
func splitMismatch(first, p *Dump) string {
	a, b := &first.kd.hdr, &p.kd.hdr
	type field struct {
		name string
		x, y any
	}
	for _, f := range []field{
		{"utsname sysname", a.Sysname, b.Sysname},
		{"utsname nodename", a.Nodename, b.Nodename},
		{"utsname release", a.Release, b.Release},
		{"utsname version", a.Version, b.Version},
		{"utsname machine", a.Machine, b.Machine},
		{"utsname domainname", a.Domainname, b.Domainname},
		{"timestamp", a.Timestamp, b.Timestamp},
		{"block size", a.BlockSize, b.BlockSize},
		{"max_mapnr", a.MaxMapnr, b.MaxMapnr},
		{"header version", a.HeaderVersion, b.HeaderVersion},
		{"split flag", a.Split, b.Split},
		{"bitmap blocks", a.BitmapBlocks, b.BitmapBlocks},
		{"byte order", first.target, p.target},
	} {
		if f.x != f.y {
			return fmt.Sprintf("%s %v, not %v", f.name, f.y, f.x)
		}
	}
	if !bytes.Equal(first.vmcoreinfo, p.vmcoreinfo) {
		return "VMCOREINFO differs"
	}
	return ""
}

// checkCoverage checks that the parts' ranges, in the order given, run from
// pfn 0 to the end of the dump with no gap or overlap.
func checkCoverage(parts []*Dump) error {
	maxPFN := parts[0].kd.maxPFN
	// Out of order: the ranges would tile if sorted.
	sorted := slices.Clone(parts)
	slices.SortStableFunc(sorted, func(a, b *Dump) int {
		ra, rb := rangeOf(a), rangeOf(b)
		switch {
		case ra.Start != rb.Start:
			return cmpU(ra.Start, rb.Start)
		default:
			return cmpU(ra.End, rb.End)
		}
	})
	tiles := func(ps []*Dump) bool {
		next := uint64(0)
		for _, p := range ps {
			if rangeOf(p).Start != next {
				return false
			}
			next = rangeOf(p).End
		}
		return next == maxPFN
	}
	next := uint64(0)
	for i, p := range parts {
		r := rangeOf(p)
		switch {
		case r.Start != next && tiles(sorted):
			return &SplitError{p.name, fmt.Sprintf("pfns %s: parts out of order: part %d must hold pfns from %#x (give the parts in the order makedumpfile wrote them)", r, i+1, next)}
		case r.Start > next:
			return &SplitError{p.name, fmt.Sprintf("pfns %s: pfns [%#x, %#x) before it are in no part given (a part is missing)", r, next, r.Start)}
		case r.Start < next:
			return &SplitError{p.name, fmt.Sprintf("pfns %s: overlaps pfns [%#x, %#x) of the parts before it", r, r.Start, min(next, r.End))}
		}
		next = r.End
	}
	if next < maxPFN {
		last := parts[len(parts)-1]
		return &SplitError{last.name, fmt.Sprintf("pfns %s: pfns [%#x, %#x) after it are in no part given (a part is missing)", rangeOf(last), next, maxPFN)}
	}
	return nil
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// partOf returns the part holding pfn, or nil.
func (d *Dump) partOf(pfn uint64) *Dump {
	for _, p := range d.parts {
		if r := rangeOf(p); pfn >= r.Start && pfn < r.End {
			return p
		}
	}
	return nil
}

// splitRead reads from the part holding pa (at most to its page's end).
func (d *Dump) splitRead(p []byte, pa uint64) (int, error) {
	pfn := pa / d.pageSize
	if pfn >= d.split.MaxPFN {
		return 0, &MissingPageError{PA: pa, Reason: ReasonBeyondEnd}
	}
	part := d.partOf(pfn)
	if part == nil {
		// Cannot happen once checkCoverage passed; say so rather than panic.
		return 0, &MissingPageError{PA: pa, Reason: ReasonOtherPart}
	}
	return part.kd.read(part, p, pa)
}

func (d *Dump) splitHeader() *KdumpHeader {
	h := d.parts[0].kd.hdr
	h.StartPFN, h.EndPFN = 0, d.split.MaxPFN
	for _, p := range d.parts[1:] {
		h.Status |= p.kd.hdr.Status
	}
	return &h
}

func (d *Dump) splitCompression() []string {
	var m uint32
	for _, p := range d.parts {
		m |= p.kd.encodings()
	}
	return encodingNames(m)
}

func (d *Dump) splitRanges() []Range {
	var rs []Range
	for _, p := range d.parts {
		rs = append(rs, p.kd.physRanges()...)
	}
	return mergeRanges(rs)
}

func (d *Dump) splitCounts() (present, excluded, zero uint64) {
	for _, p := range d.parts {
		a, b, c := p.kd.pageCounts(p)
		present, excluded, zero = present+a, excluded+b, zero+c
	}
	return present, excluded, zero
}
