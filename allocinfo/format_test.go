package allocinfo

import (
	"bytes"
	"testing"
)

// Lines as the kernel prints them, from the commit messages that show
// /proc/allocinfo output: "lib: add version into /proc/allocinfo output"
// (1.0) and "alloc_tag: mark inaccurate allocation counters in
// /proc/allocinfo output" (2.0), and a module's line as codetag_to_text()
// formats it.
func TestFormatTag(t *testing.T) {
	for _, tc := range []struct {
		tag  Tag
		want string
	}{
		{Tag{Bytes: 512, Calls: 1, File: "arch/x86/events/rapl.c", Line: 681, Function: "init_rapl_pmus"},
			"         512        1 arch/x86/events/rapl.c:681 func:init_rapl_pmus"},
		{Tag{Bytes: 49152, Calls: 48, File: "arch/x86/kernel/cpu/mce/core.c", Line: 2709, Function: "mce_device_create", Flags: FlagInaccurate},
			"       49152       48 arch/x86/kernel/cpu/mce/core.c:2709 func:mce_device_create accurate:no"},
		{Tag{Bytes: -4096, Calls: 0, File: "fs/isofs/inode.c", Line: 68, Function: "isofs_alloc_inode", Module: "isofs"},
			"       -4096        0 fs/isofs/inode.c:68 [isofs] func:isofs_alloc_inode"},
		{Tag{Bytes: 1, Calls: 1, File: "a\x1b[2J.c", Line: 1, Function: "f"},
			"           1        1 a\\x1b[2J.c:1 func:f"},
	} {
		if have := FormatTag(tc.tag); have != tc.want {
			t.Errorf("have %q\nwant %q", have, tc.want)
		}
	}
}

// The header says 2.0 when a tag is marked inaccurate, and every line ends
// with the space the kernel writes.
func TestWriteTextVersion(t *testing.T) {
	for _, tc := range []struct {
		flags uint32
		want  string
	}{
		{0, "allocinfo - version: 1.0\n#     <size>  <calls> <tag info>\n           8        1 a.c:1 func:f \n"},
		{FlagInaccurate, "allocinfo - version: 2.0\n#     <size>  <calls> <tag info>\n           8        1 a.c:1 func:f accurate:no \n"},
	} {
		var b bytes.Buffer
		r := &Report{Tags: []Tag{{Bytes: 8, Calls: 1, File: "a.c", Line: 1, Function: "f", Flags: tc.flags}}}
		if err := r.WriteText(&b); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want {
			t.Errorf("have %q\nwant %q", b.String(), tc.want)
		}
	}
}
