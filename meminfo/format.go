package meminfo

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Line is one line of /proc/meminfo.
type Line struct {
	Name   string // without the colon: "MemTotal", "HugePages_Total"
	Value  int64  // the printed number, in Unit
	Unit   string // "kB" or "" (the HugePages_* counts)
	Source string // the kernel counter(s) the value comes from, for --explain
}

// Meminfo is /proc/meminfo as the crashed kernel would have printed it.
type Meminfo struct {
	Lines    []Line
	Warnings []string // lines left out and why; nothing here means every line was computed
	// Partial is set when a line was left out because memory it needs is
	// missing from the dump (not because this kernel lacks its source).
	Partial bool `json:",omitempty"`
}

// Get returns the value of the line name (without the colon).
func (m *Meminfo) Get(name string) (int64, bool) {
	for _, l := range m.Lines {
		if l.Name == name {
			return l.Value, true
		}
	}
	return 0, false
}

// narrow lists the lines the kernel prints with "%5lu" after a prefix of 19
// characters (seq_printf in hugetlb_report_meminfo, meminfo_proc_show and
// memtest_report_meminfo). Every other line is show_val_kb's or
// "%8lu kB": the name and colon padded to 16 characters, the value
// right-aligned in 8 (seq_put_decimal_ull_width never truncates).
var narrow = map[string]bool{
	"HugePages_Total":   true, // "HugePages_Total:   %5lu\n"
	"HugePages_Free":    true, // "HugePages_Free:    %5lu\n"
	"HugePages_Rsvd":    true, // "HugePages_Rsvd:    %5lu\n"
	"HugePages_Surp":    true, // "HugePages_Surp:    %5lu\n"
	"HardwareCorrupted": true, // "HardwareCorrupted: %5lu kB\n"
	"EarlyMemtestBad":   true, // "EarlyMemtestBad:   %5lu kB\n"
}

// FormatLine renders one line exactly as the kernel does, without the newline.
func FormatLine(l Line) string {
	prefix, width := 16, 8
	if narrow[l.Name] {
		prefix, width = 19, 5
	}
	s := fmt.Sprintf("%-*s%*d", prefix, l.Name+":", width, l.Value)
	if l.Unit != "" {
		s += " " + l.Unit
	}
	return s
}

// WriteText writes the lines in /proc/meminfo's exact format.
func (m *Meminfo) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for _, l := range m.Lines {
		bw.WriteString(FormatLine(l))
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// String is WriteText into a string.
func (m *Meminfo) String() string {
	var sb strings.Builder
	m.WriteText(&sb)
	return sb.String()
}
