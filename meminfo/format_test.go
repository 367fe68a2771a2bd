package meminfo

import (
	"strings"
	"testing"
)

// kernel* render a value the way the kernel's own code does, from the
// literal prefixes in its source, so that the table below checks FormatLine
// against the kernel rather than against itself.

// showValKB is fs/proc/meminfo.c show_val_kb(m, s, num) with num already in
// kB: seq_put_decimal_ull_width(m, s, kb, 8) then " kB\n". Also the
// seq_printf(m, "<name>:%8lu kB\n") lines (KernelStack, VmallocTotal,
// ShadowCallStack, Zswapped, Hugepagesize, Hugetlb, DirectMap*).
func showValKB(prefix string, kb uint64) string {
	return prefix + numToStr(kb, 8) + " kB"
}

// width5 is seq_printf's "%5lu" after a literal prefix.
func width5(prefix string, v uint64, unit string) string {
	s := prefix + numToStr(v, 5)
	if unit != "" {
		s += " " + unit
	}
	return s
}

// numToStr is lib/vsprintf.c num_to_str: decimal, left-padded with spaces to
// width, never truncated.
func numToStr(v uint64, width int) string {
	d := []byte{}
	for {
		d = append([]byte{byte('0' + v%10)}, d...)
		v /= 10
		if v == 0 {
			break
		}
	}
	if len(d) < width {
		return strings.Repeat(" ", width-len(d)) + string(d)
	}
	return string(d)
}

func TestFormatLine(t *testing.T) {
	type tc struct {
		line Line
		want string
	}
	var cases []tc
	// Every show_val_kb / "%8lu kB" prefix of meminfo_proc_show (6.1, 6.12,
	// 7.2), hugetlb_report_meminfo and arch_report_meminfo, copied verbatim.
	kb8 := []string{
		"MemTotal:       ", "MemFree:        ", "MemAvailable:   ", "Buffers:        ",
		"Cached:         ", "SwapCached:     ", "Active:         ", "Inactive:       ",
		"Active(anon):   ", "Inactive(anon): ", "Active(file):   ", "Inactive(file): ",
		"Unevictable:    ", "Mlocked:        ", "SwapTotal:      ", "SwapFree:       ",
		"Zswap:          ", "Zswapped:       ", "Dirty:          ", "Writeback:      ",
		"AnonPages:      ", "Mapped:         ", "Shmem:          ", "KReclaimable:   ",
		"Slab:           ", "SReclaimable:   ", "SUnreclaim:     ", "KernelStack:    ",
		"ShadowCallStack:", "PageTables:     ", "SecPageTables:  ", "NFS_Unstable:   ",
		"Bounce:         ", "WritebackTmp:   ", "CommitLimit:    ", "Committed_AS:   ",
		"VmallocTotal:   ", "VmallocUsed:    ", "VmallocChunk:   ", "Percpu:         ",
		"AnonHugePages:  ", "ShmemHugePages: ", "ShmemPmdMapped: ", "FileHugePages:  ",
		"FilePmdMapped:  ", "CmaTotal:       ", "CmaFree:        ", "Unaccepted:     ",
		"Balloon:        ", "GPUActive:      ", "GPUReclaim:     ", "Hugepagesize:   ",
		"Hugetlb:        ", "DirectMap4k:    ", "DirectMap2M:    ", "DirectMap1G:    ",
	}
	for _, p := range kb8 {
		name := strings.TrimRight(strings.TrimSpace(p), ":")
		for _, v := range []uint64{0, 7, 481052, 12345678, 123456789, 34359738367, 13743895347199} {
			cases = append(cases, tc{Line{Name: name, Value: int64(v), Unit: "kB"}, showValKB(p, v)})
		}
	}
	// The "%5lu" lines.
	for _, c := range []struct{ prefix, unit string }{
		{"HugePages_Total:   ", ""}, {"HugePages_Free:    ", ""},
		{"HugePages_Rsvd:    ", ""}, {"HugePages_Surp:    ", ""},
		{"HardwareCorrupted: ", "kB"}, {"EarlyMemtestBad:   ", "kB"},
	} {
		name := strings.TrimRight(strings.TrimSpace(c.prefix), ":")
		for _, v := range []uint64{0, 42, 99999, 100000, 123456789} {
			cases = append(cases, tc{Line{Name: name, Value: int64(v), Unit: c.unit}, width5(c.prefix, v, c.unit)})
		}
	}
	// A few spelled out, from a real guest, so the helpers above are checked too.
	cases = append(cases,
		tc{Line{Name: "MemTotal", Value: 481052, Unit: "kB"}, "MemTotal:         481052 kB"},
		tc{Line{Name: "Inactive(anon)", Value: 26860, Unit: "kB"}, "Inactive(anon):    26860 kB"},
		tc{Line{Name: "VmallocTotal", Value: 34359738367, Unit: "kB"}, "VmallocTotal:   34359738367 kB"},
		tc{Line{Name: "VmallocTotal", Value: 13743895347199, Unit: "kB"}, "VmallocTotal:   13743895347199 kB"},
		tc{Line{Name: "HardwareCorrupted", Value: 0, Unit: "kB"}, "HardwareCorrupted:     0 kB"},
		tc{Line{Name: "HugePages_Total", Value: 0}, "HugePages_Total:       0"},
		tc{Line{Name: "HugePages_Total", Value: 123456}, "HugePages_Total:   123456"},
		tc{Line{Name: "Hugepagesize", Value: 2048, Unit: "kB"}, "Hugepagesize:       2048 kB"},
		tc{Line{Name: "ShadowCallStack", Value: 16, Unit: "kB"}, "ShadowCallStack:      16 kB"},
	)
	for _, c := range cases {
		if got := FormatLine(c.line); got != c.want {
			t.Errorf("FormatLine(%+v)\n have %q\n want %q", c.line, got, c.want)
		}
	}
}

func TestWriteTextAndGet(t *testing.T) {
	m := &Meminfo{Lines: []Line{
		{Name: "MemTotal", Value: 481052, Unit: "kB", Source: "_totalram_pages"},
		{Name: "HugePages_Free", Value: 3, Source: "x"},
		{Name: "DirectMap2M", Value: 493568, Unit: "kB", Source: "y"},
	}}
	want := "MemTotal:         481052 kB\nHugePages_Free:        3\nDirectMap2M:      493568 kB\n"
	var sb strings.Builder
	if err := m.WriteText(&sb); err != nil {
		t.Fatal(err)
	}
	if sb.String() != want {
		t.Errorf("WriteText\n have %q\n want %q", sb.String(), want)
	}
	if m.String() != want {
		t.Errorf("String() differs from WriteText")
	}
	if v, ok := m.Get("HugePages_Free"); !ok || v != 3 {
		t.Errorf("Get(HugePages_Free) = %d, %v", v, ok)
	}
	if _, ok := m.Get("MemFree"); ok {
		t.Error("Get(MemFree) found a missing line")
	}
	var empty Meminfo
	sb.Reset()
	if err := empty.WriteText(&sb); err != nil || sb.Len() != 0 {
		t.Errorf("empty WriteText: %q, %v", sb.String(), err)
	}
}

func TestSIMemAvailable(t *testing.T) {
	for _, c := range []struct {
		free, reserve, wl, pc, rec, want int64
	}{
		{100, 10, 5, 0, 0, 90},
		// page cache: keep min(half, low watermark)
		{100, 10, 5, 40, 0, 90 + 35},
		{100, 10, 50, 40, 0, 90 + 20},
		// reclaimable kernel memory likewise
		{100, 10, 5, 0, 40, 90 + 35},
		{100, 10, 50, 40, 40, 90 + 20 + 20},
		// clamped at 0
		{10, 100, 5, 0, 0, 0},
	} {
		if got := siMemAvailable(c.free, c.reserve, c.wl, c.pc, c.rec); got != c.want {
			t.Errorf("siMemAvailable(%d, %d, %d, %d, %d) = %d, want %d", c.free, c.reserve, c.wl, c.pc, c.rec, got, c.want)
		}
	}
}

func TestSumsDying(t *testing.T) {
	for rel, want := range map[string]int{
		"6.1.0-56-cloud-amd64":       -1,
		"6.4.16":                     -1,
		"6.5.0":                      1,
		"6.12.117+deb13-cloud-amd64": 1,
		"7.2.13+deb14-cloud-amd64":   1,
		"5.10.0-30-amd64":            -1,
		"":                           0,
		"garbage":                    0,
	} {
		if got := sumsDying(rel); got != want {
			t.Errorf("sumsDying(%q) = %d, want %d", rel, got, want)
		}
	}
}
