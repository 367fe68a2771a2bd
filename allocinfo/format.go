package allocinfo

import (
	"bufio"
	"fmt"
	"io"

	"github.com/vmleak/vmleak/kernel"
)

// WriteText writes the tags as /proc/allocinfo does (lib/alloc_tag.c): the
// header "lib: add version into /proc/allocinfo output" added in v6.10,
// then per tag alloc_tag_to_text()'s "%12lli %8llu " and
// codetag_to_text()'s "%s:%u [%s] func:%s" (the module only for a
// module's tags), and the space the kernel ends each line with.
//
// Tags the kernel marked inaccurate get allocinfo 2.0's " accurate:no"
// and the header says 2.0 ("alloc_tag: mark inaccurate allocation
// counters in /proc/allocinfo output").
//
// BUG(allocinfo): a 2.0 kernel with no inaccurate tag prints "version:
// 2.0"; nothing in the dump tells it from a 1.0 kernel, so WriteText says
// 1.0. Strings from the dump are escaped (kernel.Printable).
func (r *Report) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	version := "1.0"
	for _, t := range r.Tags {
		if t.Inaccurate() {
			version = "2.0"
			break
		}
	}
	fmt.Fprintf(bw, "allocinfo - version: %s\n", version)
	fmt.Fprintf(bw, "#     <size>  <calls> <tag info>\n")
	for _, t := range r.Tags {
		bw.WriteString(FormatTag(t))
		bw.WriteString(" \n")
	}
	return bw.Flush()
}

// FormatTag is one tag's /proc/allocinfo line, without the trailing
// space and newline.
func FormatTag(t Tag) string {
	s := fmt.Sprintf("%12d %8d %s:%d ", t.Bytes, t.Calls, kernel.Printable(t.File), t.Line)
	if t.Module != "" {
		s += "[" + kernel.Printable(t.Module) + "] "
	}
	s += "func:" + kernel.Printable(t.Function)
	if t.Inaccurate() {
		s += " accurate:no"
	}
	return s
}
