package elfcore

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/vmleak/vmleak/internal/regular"
)

// RawLayout says where the bytes of a headerless physical memory image lie
// (see lime.go). Such an image cannot say it itself, so the user does:
//
//   - Ranges: the physical ranges the image holds back to back, in file
//     order, as LiME's "raw" format writes the machine's top-level
//     "System RAM" resources of /proc/iomem (ParseIomem, ParseRanges).
//   - otherwise Base: the image is one contiguous range starting at that
//     physical address (0 for LiME's "padded" format, whose zeros stand in
//     for the gaps below each range).
type RawLayout struct {
	Base   uint64
	Ranges []Range
}

// OpenRaw opens a headerless memory image laid out as l.
func OpenRaw(path string, l RawLayout) (*Dump, error) {
	f, size, err := regular.Open(path)
	if err != nil {
		return nil, err
	}
	d, err := NewRawDump(f, size, path, l)
	if err != nil {
		f.Close()
		return nil, err
	}
	d.closer = f
	return d, nil
}

// NewRawDump is OpenRaw for any io.ReaderAt. The ranges must be sorted and
// disjoint; a file shorter than they are is an incomplete image (the rest
// reads as truncated), a longer one is an error: the ranges are wrong.
func NewRawDump(r io.ReaderAt, size int64, name string, l RawLayout) (*Dump, error) {
	if size < 0 {
		return nil, &FormatError{name, 0, "negative file size"}
	}
	ranges := l.Ranges
	if len(ranges) == 0 {
		if l.Base+uint64(size) < l.Base {
			return nil, fmt.Errorf("elfcore: %s: base %#x plus %d bytes overflows", name, l.Base, size)
		}
		ranges = []Range{{l.Base, l.Base + uint64(size)}}
	}
	e := &elfCore{}
	d := &Dump{name: name, r: r, size: size, stored: size, format: FormatRaw, elf: e, img: &memImage{compression: "none"}, pageSize: imagePageSize}
	var off uint64
	for i, rg := range ranges {
		if rg.End <= rg.Start {
			return nil, fmt.Errorf("elfcore: %s: raw range %d (%#x-%#x) is empty", name, i, rg.Start, rg.End)
		}
		if i > 0 && rg.Start < ranges[i-1].End {
			return nil, fmt.Errorf("elfcore: %s: raw range %#x-%#x overlaps or precedes %#x-%#x: list them in file order", name, rg.Start, rg.End, ranges[i-1].Start, ranges[i-1].End)
		}
		e.pieces = append(e.pieces, piece{start: rg.Start, fileEnd: rg.End, end: rg.End, off: off})
		off += rg.End - rg.Start
	}
	switch {
	case off > uint64(size):
		d.incomplete = true
	case off < uint64(size):
		return nil, fmt.Errorf("elfcore: %s: the image is %d bytes but its ranges hold %d: wrong ranges (or a padded image, which needs only a base)?", name, size, off)
	}
	e.finishImage(uint64(size), d.pageSize)
	return d, nil
}

// ParseRanges reads physical ranges as /proc/iomem prints them, inclusive
// and hex: "START-END[,START-END...]" (an optional 0x each).
func ParseRanges(s string) ([]Range, error) {
	var rs []Range
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		a, b, ok := strings.Cut(f, "-")
		if !ok {
			return nil, fmt.Errorf("range %q: want START-END (hex, END inclusive)", f)
		}
		start, err1 := parseHex(a)
		last, err2 := parseHex(b)
		if err1 != nil || err2 != nil || last < start || last == ^uint64(0) {
			return nil, fmt.Errorf("range %q: want START-END (hex, END inclusive, END >= START)", f)
		}
		rs = append(rs, Range{start, last + 1})
	}
	return rs, nil
}

func parseHex(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	return strconv.ParseUint(s, 16, 64)
}

// ParseIomem reads the top-level "System RAM" ranges of a saved
// /proc/iomem (read as root: otherwise the kernel prints zeros): the
// ranges LiME's raw format holds, in order.
func ParseIomem(r io.Reader) ([]Range, error) {
	var rs []Range
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == ' ' {
			continue // nested resources (Kernel code, ...) are inside a range
		}
		span, name, ok := strings.Cut(line, " : ")
		if !ok || strings.TrimSpace(name) != "System RAM" {
			continue
		}
		r, err := ParseRanges(span)
		if err != nil {
			return nil, fmt.Errorf("iomem: %w", err)
		}
		rs = append(rs, r...)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("iomem: no top-level \"System RAM\" line")
	}
	if len(rs) > 0 && rs[len(rs)-1].End == 1 {
		return nil, fmt.Errorf("iomem: the ranges are all zero: save /proc/iomem as root")
	}
	return rs, nil
}
