package vmcoreinfo

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func readSample(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/x86_64-6.1.txt")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestParseSample checks a hand-written but realistic Debian 6.1 x86_64
// note field by field, in each of the shapes a dump may hand it to us.
func TestParseSample(t *testing.T) {
	sample := readSample(t)
	variants := []struct {
		name string
		raw  []byte
	}{
		{"plain", sample},
		{"crlf", bytes.ReplaceAll(sample, []byte("\n"), []byte("\r\n"))},
		// The ELF note descriptor is padded to 4 bytes and the kernel's
		// buffer is a zeroed page: NULs after the text are normal.
		{"nul-padded", append(slices.Clone(sample), make([]byte, 4096-len(sample)%4096)...)},
		// Anything after the terminating NUL is stale buffer content.
		{"garbage-after-nul", append(append(slices.Clone(sample), 0), "SYMBOL(bogus=zz\n\xff\xfe"...)},
		{"no-final-newline", bytes.TrimSuffix(sample, []byte("\n"))},
		{"blank-lines", bytes.ReplaceAll(sample, []byte("PAGESIZE"), []byte("\n\n  \nPAGESIZE"))},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			info, err := Parse(v.raw)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(info.Raw, v.raw) {
				t.Error("Raw is not a copy of the input")
			}
			checkSample(t, info)
		})
	}
}

func checkSample(t *testing.T, info *Info) {
	t.Helper()
	if info.OSRelease != "6.1.0-18-amd64" {
		t.Errorf("OSRelease = %q", info.OSRelease)
	}
	if info.BuildID != "5b9fd4bb1aa71bc35dbd12f32c3d6a1e3b2f8d0e" {
		t.Errorf("BuildID = %q", info.BuildID)
	}
	if info.PageSize != 4096 {
		t.Errorf("PageSize = %d", info.PageSize)
	}
	if !info.HasKernelOffset || info.KernelOffset != 0x17e00000 {
		t.Errorf("KernelOffset = %#x, %v", info.KernelOffset, info.HasKernelOffset)
	}
	if info.CrashTime != 1708012345 {
		t.Errorf("CrashTime = %d", info.CrashTime)
	}
	syms := []struct {
		name string
		want uint64
	}{
		{"init_uts_ns", 0xffffffff9a613a60},
		{"node_online_map", 0xffffffff9a6ac2c8},
		{"swapper_pg_dir", 0xffffffff9a40a000},
		{"_stext", 0xffffffff98e00000},
		{"vmap_area_list", 0xffffffff9a5a9d10},
		{"mem_section", 0xffff9e1dbffd1000},
		{"page_offset_base", 0xffffffff9a218b98},
		{"init_top_pgt", 0xffffffff9a40a000},
	}
	for _, s := range syms {
		if got, ok := info.Symbol(s.name); !ok || got != s.want {
			t.Errorf("Symbol(%q) = %#x, %v; want %#x", s.name, got, ok, s.want)
		}
	}
	ints := []struct {
		get  func(string) (int64, bool)
		kind string
		name string
		want int64
	}{
		{info.Number, "NUMBER", "SECTION_SIZE_BITS", 27},
		{info.Number, "NUMBER", "MAX_PHYSMEM_BITS", 46},
		{info.Number, "NUMBER", "pgtable_l5_enabled", 0},
		{info.Number, "NUMBER", "phys_base", 0x41200000},
		{info.Number, "NUMBER", "KERNEL_IMAGE_SIZE", 1 << 30},
		{info.Number, "NUMBER", "PAGE_BUDDY_MAPCOUNT_VALUE", -129},
		{info.Number, "NUMBER", "PG_head_mask", 1 << 16},
		{info.Size, "SIZE", "page", 64},
		{info.Size, "SIZE", "mem_section", 16},
		{info.Size, "SIZE", "pglist_data", 174016},
		{info.Offset, "OFFSET", "page.flags", 0},
		{info.Offset, "OFFSET", "page._refcount", 52},
		{info.Offset, "OFFSET", "mem_section.section_mem_map", 0},
		{info.Offset, "OFFSET", "pglist_data.node_id", 173088},
		{info.Length, "LENGTH", "mem_section", 2048},
		{info.Length, "LENGTH", "node_data", 1024},
	}
	for _, c := range ints {
		if got, ok := c.get(c.name); !ok || got != c.want {
			t.Errorf("%s(%s) = %d, %v; want %d", c.kind, c.name, got, ok, c.want)
		}
	}
	if len(info.Other) != 0 {
		t.Errorf("Other = %v, want empty", info.Other)
	}
	if _, ok := info.Symbol("no_such_symbol"); ok {
		t.Error("Symbol(no_such_symbol) reported present")
	}
	// Counts from grep -c '^KIND(' on the sample: nothing dropped or merged.
	counts := []struct {
		kind      string
		got, want int
	}{
		{"SYMBOL", len(info.Symbols), 14},
		{"SIZE", len(info.Sizes), 16},
		{"OFFSET", len(info.Offsets), 49},
		{"LENGTH", len(info.Lengths), 6},
		{"NUMBER", len(info.Numbers), 17},
	}
	for _, c := range counts {
		if c.got != c.want {
			t.Errorf("%d %s entries, want %d", c.got, c.kind, c.want)
		}
	}
}

func TestParseLines(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		check func(*Info) bool // nil: only require success
		err   string           // non-empty: expected ParseError.Msg substring
		line  int
	}{
		{name: "empty input", in: "", check: func(i *Info) bool { return i.OSRelease == "" && !i.HasKernelOffset }},
		{name: "only NULs", in: "\x00\x00\x00", check: func(i *Info) bool { return len(i.Symbols) == 0 }},
		{name: "symbol with 0x", in: "SYMBOL(x)=0xffffffff81000000\n", check: func(i *Info) bool { return i.Symbols["x"] == 0xffffffff81000000 }},
		{name: "symbol upper-case hex", in: "SYMBOL(x)=FFFFFFFF81000000\n", check: func(i *Info) bool { return i.Symbols["x"] == 0xffffffff81000000 }},
		// arm64 prints these with %llx and a 0x prefix; the upper half wraps.
		{name: "hex number", in: "NUMBER(VA_BITS)=48\nNUMBER(kimage_voffset)=0xffffffdf90000000\nNUMBER(KERNELPACMASK)=0xff80000000000000\n", check: func(i *Info) bool {
			return i.Numbers["VA_BITS"] == 48 && uint64(i.Numbers["kimage_voffset"]) == 0xffffffdf90000000 && uint64(i.Numbers["KERNELPACMASK"]) == 0xff80000000000000
		}},
		{name: "negative number", in: "NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)=-257", check: func(i *Info) bool { return i.Numbers["PAGE_OFFLINE_MAPCOUNT_VALUE"] == -257 }},
		{name: "min int64", in: "NUMBER(m)=-9223372036854775808", check: func(i *Info) bool { return i.Numbers["m"] == -1<<63 }},
		// %lu of (unsigned long)-1 is ULONG_MAX; keep the bit pattern.
		{name: "ulong max", in: "NUMBER(m)=18446744073709551615", check: func(i *Info) bool { return i.Numbers["m"] == -1 }},
		{name: "unknown keys kept", in: "OSRELEASE=6.1.0\nFOO=bar=baz\nADDRESS(x)=1\nSYMBOL)=2\n", check: func(i *Info) bool {
			return i.Other["FOO"] == "bar=baz" && i.Other["ADDRESS(x)"] == "1" && i.Other["SYMBOL)"] == "2" && len(i.Other) == 3
		}},
		{name: "empty unknown value", in: "FOO=\n", check: func(i *Info) bool { v, ok := i.Other["FOO"]; return ok && v == "" }},
		{name: "last duplicate wins", in: "SYMBOL(a)=1\nSYMBOL(a)=2\nCRASHTIME=1\nCRASHTIME=2\n", check: func(i *Info) bool { return i.Symbols["a"] == 2 && i.CrashTime == 2 }},
		{name: "kerneloffset zero", in: "KERNELOFFSET=0\n", check: func(i *Info) bool { return i.HasKernelOffset && i.KernelOffset == 0 }},
		{name: "5-level", in: "NUMBER(pgtable_l5_enabled)=1\nNUMBER(MAX_PHYSMEM_BITS)=52\n", check: func(i *Info) bool {
			return i.Numbers["pgtable_l5_enabled"] == 1 && i.Numbers["MAX_PHYSMEM_BITS"] == 52
		}},
		{name: "member with nested dots", in: "OFFSET(a.b.c)=8\n", check: func(i *Info) bool { return i.Offsets["a.b.c"] == 8 }},

		{name: "no equals", in: "OSRELEASE=6.1\nGARBAGE\n", err: "missing '='", line: 2},
		{name: "empty key", in: "=1\n", err: "empty key", line: 1},
		{name: "bad symbol", in: "\nSYMBOL(x)=ffffg\n", err: "bad SYMBOL address", line: 2},
		{name: "symbol overflow", in: "SYMBOL(x)=1ffffffffffffffff\n", err: "out of range", line: 1},
		{name: "empty symbol", in: "SYMBOL(x)=\n", err: "bad SYMBOL", line: 1},
		{name: "empty name", in: "SIZE()=4\n", err: "empty name", line: 1},
		{name: "unterminated", in: "OFFSET(page.flags=0\n", err: "unterminated OFFSET(", line: 1},
		{name: "trailing junk after paren", in: "LENGTH(x)y=3\n", err: "unterminated LENGTH(", line: 1},
		{name: "bad size", in: "SIZE(page)=64k\n", err: "bad SIZE value", line: 1},
		{name: "double sign", in: "NUMBER(x)=--1\n", err: "bad NUMBER value", line: 1},
		{name: "plus sign", in: "NUMBER(x)=+1\n", err: "bad NUMBER value", line: 1},
		{name: "negative out of range", in: "NUMBER(x)=-9223372036854775809\n", err: "out of range", line: 1},
		{name: "decimal out of range", in: "OFFSET(x.y)=18446744073709551616\n", err: "out of range", line: 1},
		{name: "bad pagesize", in: "PAGESIZE=4095\n", err: "power of two", line: 1},
		{name: "zero pagesize", in: "PAGESIZE=0\n", err: "power of two", line: 1},
		{name: "hex pagesize", in: "PAGESIZE=0x1000\n", err: "bad PAGESIZE", line: 1},
		{name: "bad build id", in: "BUILD-ID=xyz\n", err: "BUILD-ID", line: 1},
		{name: "empty osrelease", in: "OSRELEASE=\n", err: "empty OSRELEASE", line: 1},
		{name: "bad crashtime", in: "CRASHTIME=now\n", err: "bad CRASHTIME", line: 1},
		{name: "bad kerneloffset", in: "KERNELOFFSET=-1\n", err: "bad KERNELOFFSET", line: 1},
		{name: "line numbers count blank lines and CRLF", in: "\r\n\r\nOSRELEASE=6.1\r\nSYMBOL(x)=q\r\n", err: "bad SYMBOL", line: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := Parse([]byte(tt.in))
			if tt.err != "" {
				var pe *ParseError
				if !errors.As(err, &pe) {
					t.Fatalf("err = %v, want *ParseError", err)
				}
				if !strings.Contains(pe.Msg, tt.err) || pe.Line != tt.line {
					t.Fatalf("err = line %d %q, want line %d containing %q", pe.Line, pe.Msg, tt.line, tt.err)
				}
				if info != nil {
					t.Error("non-nil Info with error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil && !tt.check(info) {
				t.Errorf("unexpected result: %+v", info)
			}
		})
	}
}

func TestParseErrorMessage(t *testing.T) {
	_, err := Parse([]byte("SIZE(page)=sixty-four\n"))
	want := `vmcoreinfo: line 1: bad SIZE value: invalid syntax: "SIZE(page)=sixty-four"`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant  %s", err, want)
	}
	long := "SIZE(page)=" + strings.Repeat("9", 200)
	_, err = Parse([]byte(long))
	if err == nil || len(err.Error()) > 160 {
		t.Fatalf("long line not truncated in message: %v", err)
	}
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Text != long {
		t.Fatal("ParseError.Text must hold the whole line")
	}
}

func TestParseTooLarge(t *testing.T) {
	if _, err := Parse(make([]byte, MaxSize)); err != nil {
		t.Fatalf("MaxSize bytes of NULs: %v", err)
	}
	_, err := Parse(make([]byte, MaxSize+1))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

func TestNilInfo(t *testing.T) {
	var i *Info
	if _, ok := i.Symbol("x"); ok {
		t.Error("Symbol on nil")
	}
	for _, f := range []func(string) (int64, bool){i.Number, i.Offset, i.Size, i.Length} {
		if _, ok := f("x"); ok {
			t.Error("lookup on nil Info reported present")
		}
	}
}

// format writes info back as VMCOREINFO text, so fuzzing can check that
// whatever Parse accepts it decodes consistently.
func format(info *Info) []byte {
	var b bytes.Buffer
	if info.OSRelease != "" {
		fmt.Fprintf(&b, "OSRELEASE=%s\n", info.OSRelease)
	}
	if info.BuildID != "" {
		fmt.Fprintf(&b, "BUILD-ID=%s\n", info.BuildID)
	}
	if info.PageSize != 0 {
		fmt.Fprintf(&b, "PAGESIZE=%d\n", info.PageSize)
	}
	if info.HasKernelOffset {
		fmt.Fprintf(&b, "KERNELOFFSET=%x\n", info.KernelOffset)
	}
	if info.CrashTime != 0 {
		fmt.Fprintf(&b, "CRASHTIME=%d\n", info.CrashTime)
	}
	for _, k := range slices.Sorted(maps.Keys(info.Symbols)) {
		fmt.Fprintf(&b, "SYMBOL(%s)=%x\n", k, info.Symbols[k])
	}
	for _, m := range []struct {
		p string
		m map[string]int64
	}{{"SIZE", info.Sizes}, {"OFFSET", info.Offsets}, {"LENGTH", info.Lengths}, {"NUMBER", info.Numbers}} {
		for _, k := range slices.Sorted(maps.Keys(m.m)) {
			fmt.Fprintf(&b, "%s(%s)=%d\n", m.p, k, m.m[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(info.Other)) {
		fmt.Fprintf(&b, "%s=%s\n", k, info.Other[k])
	}
	return b.Bytes()
}

func FuzzParse(f *testing.F) {
	f.Add(readSample(f))
	f.Add([]byte("SYMBOL(x)=0x10\r\nNUMBER(y)=-0x10\x00junk"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		info, err := Parse(raw)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			if pe != nil && pe.Line < 1 {
				t.Fatalf("bad line number %d", pe.Line)
			}
			return
		}
		again, err := Parse(format(info))
		if err != nil {
			t.Fatalf("reparse of formatted Info failed: %v\n%s", err, format(info))
		}
		info.Raw, again.Raw = nil, nil
		if !reflect.DeepEqual(info, again) {
			t.Fatalf("round trip mismatch:\n%+v\n%+v", info, again)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	sample := readSample(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(sample)))
	for b.Loop() {
		if _, err := Parse(sample); err != nil {
			b.Fatal(err)
		}
	}
}
