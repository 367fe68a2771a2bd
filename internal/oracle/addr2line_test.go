package oracle

import (
	"reflect"
	"testing"
)

func TestParseAddr2line(t *testing.T) {
	out, err := ParseAddr2line("debian/build/x/fs/dcache.c:1776\n??:0\nmm/slub.c:? \nlib/a.c:12 (discriminator 3)\n??:?\n")
	if err == nil {
		t.Fatalf("a line number %q parsed: %v", "? ", out)
	}
	out, err = ParseAddr2line("debian/build/x/fs/dcache.c:1776\n??:0\nmm/slub.c:?\nlib/a.c:12 (discriminator 3)\n??:?\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []SourceLine{{"debian/build/x/fs/dcache.c", 1776}, {}, {}, {"lib/a.c", 12}, {}}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("have %v, want %v", out, want)
	}
	if _, err := ParseAddr2line("no colon\n"); err == nil {
		t.Error("a line without file:line parsed")
	}
}

func TestAgrees(t *testing.T) {
	for _, tc := range []struct {
		oracle SourceLine
		file   string
		line   int
		want   bool
	}{
		{SourceLine{"debian/build/x/fs/dcache.c", 1776}, "fs/dcache.c", 1776, true},
		{SourceLine{"/abs/arch/x86/include/asm/trace//fpu.h", 10}, "arch/x86/include/asm/trace/fpu.h", 10, true},
		{SourceLine{"debian/build/x/fs/dcache.c", 1776}, "fs/dcache.c", 1777, false},
		{SourceLine{"debian/build/x/fs/dcache.c", 1776}, "s/dcache.c", 1776, false}, // not at a path element
		{SourceLine{"debian/build/x/fs/dcache.c", 1776}, "cache.c", 1776, false},
		{SourceLine{"kernel/sched/core.c", 185}, "include/trace/events/sched.h", 185, false},
		{SourceLine{}, "", 0, true},
		{SourceLine{}, "fs/dcache.c", 1776, false},
		{SourceLine{"fs/dcache.c", 1776}, "", 0, false},
	} {
		if have := tc.oracle.Agrees(tc.file, tc.line); have != tc.want {
			t.Errorf("%v agrees with %s:%d: %v, want %v", tc.oracle, tc.file, tc.line, have, tc.want)
		}
	}
}
