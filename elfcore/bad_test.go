package elfcore

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestBadInputs(t *testing.T) {
	spec, _, _ := kdumpELF(false, 0)
	el := buildELF(spec)
	xspec, _, _ := kdumpELF(true, 0)
	xel := buildELF(xspec)
	kd := buildKdump(kdSpec{version: 6, maxMapnr: 64, pages: rawPages(1, 2), notes: []Note{{Name: "CORE", Type: 1, Desc: make([]byte, 336)}}})
	put64 := func(b []byte, off int, v uint64) []byte { le.PutUint64(b[off:], v); return b }
	put32 := func(b []byte, off int, v uint32) []byte { le.PutUint32(b[off:], v); return b }
	put16 := func(b []byte, off int, v uint16) []byte { le.PutUint16(b[off:], v); return b }
	for _, tc := range []struct {
		name string
		in   []byte
		edit func([]byte) []byte
		want string // substring of the error; "" = ErrUnrecognizedFormat
	}{
		{"empty", nil, nil, "empty file"},
		{"garbage", []byte("hello, world, this is not a dump"), nil, ""},
		{"elf-short", el, func(b []byte) []byte { return b[:40] }, "ELF header extends beyond end"},
		{"elf-class-3", el, func(b []byte) []byte { b[4] = 3; return b }, "only ELF64"},
		{"elf-not-core", el, func(b []byte) []byte { return put16(b, 16, 2) }, "not ET_CORE"},
		{"elf-phnum-huge", el, func(b []byte) []byte { return put16(b, 56, 0xfff0) }, "program headers extends beyond end"},
		{"elf-phoff-beyond", el, func(b []byte) []byte { return put64(b, 32, 1<<60) }, "e_phoff beyond end"},
		{"elf-phentsize", el, func(b []byte) []byte { return put16(b, 54, 32) }, "e_phentsize"},
		{"elf-xnum-huge", xel, func(b []byte) []byte { return put32(b, 64+44, 1<<30) }, "implausible program header count"},
		{"elf-xnum-zero", xel, func(b []byte) []byte { return put32(b, 64+44, 0) }, "implausible program header count"},
		{"elf-xnum-shoff-beyond", xel, func(b []byte) []byte { return put64(b, 40, 1<<50) }, "e_shoff beyond end"},
		{"elf-note-size-lies", el, func(b []byte) []byte {
			// First note's descsz (PT_NOTE 0 data at its p_offset).
			off := le.Uint64(b[64+8:])
			return put32(b, int(off)+4, 1<<20)
		}, "run past"},
		{"elf-note-segment-beyond", el, func(b []byte) []byte { return put64(b, 64+32, 1<<40) }, "implausibly large"},
		{"elf-load-overflow", el, func(b []byte) []byte {
			// Third phdr is the first PT_LOAD (two PT_NOTEs first).
			return put64(b, 64+2*56+24, ^uint64(0)-10)
		}, "overflows"},
		{"kdump-short", kd, func(b []byte) []byte { return b[:300] }, "kdump header extends"},
		{"kdump-version-0", kd, func(b []byte) []byte { return put32(b, 8, 0) }, "header version"},
		{"kdump-block-size", kd, func(b []byte) []byte { return put32(b, 428, 1000) }, "block size"},
		{"kdump-bitmap-huge", kd, func(b []byte) []byte { return put32(b, 436, 0xfffffff0) }, "exceed"},
		{"kdump-subhdr-huge", kd, func(b []byte) []byte { return put32(b, 432, 0x7ffffff0) }, "exceed"},
		{"kdump-subhdr-negative", kd, func(b []byte) []byte { return put32(b, 432, 0xffffffff) }, "negative"},
		{"kdump-bitmap-one", kd, func(b []byte) []byte { return put32(b, 436, 1) }, "two bitmaps"},
		{"kdump-maxmapnr-zero", kd, func(b []byte) []byte { return put64(b, 4096+96, 0) }, "max_mapnr is 0"},
		{"kdump-note-size-lies", kd, func(b []byte) []byte { return put64(b, 4096+56, 1<<40) }, "implausibly large"},
		{"kdump-note-offset-beyond", kd, func(b []byte) []byte { return put64(b, 4096+48, 1<<40) }, "beyond end"},
		{"kdump-split-inverted", kd, func(b []byte) []byte {
			put32(b, 4096+12, 1)
			put64(b, 4096+80, 10)
			return put64(b, 4096+88, 5)
		}, "split range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Clone(tc.in)
			if tc.edit != nil {
				b = tc.edit(b)
			}
			_, err := NewDump(bytes.NewReader(b), int64(len(b)), "bad.core")
			if err == nil {
				t.Fatalf("have nil error, want one containing %q", tc.want)
			}
			if tc.want == "" {
				if !errors.Is(err, ErrUnrecognizedFormat) {
					t.Errorf("have %v, want ErrUnrecognizedFormat", err)
				}
				return
			}
			var fe *FormatError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "elfcore: bad.core: offset 0x") {
				t.Errorf("have %v, want *FormatError containing %q", err, tc.want)
			}
		})
	}
}

func TestKdumpLyingDescriptors(t *testing.T) {
	b := buildKdump(kdSpec{version: 6, maxMapnr: 64, pages: rawPages(1, 2, 3)})
	desc := 4 * 4096
	for _, tc := range []struct {
		name   string
		edit   func([]byte)
		wantPE bool // *PageError rather than *MissingPageError
	}{
		{"offset-beyond-eof", func(b []byte) { le.PutUint64(b[desc:], 1<<40) }, false},
		{"negative-offset", func(b []byte) { le.PutUint64(b[desc:], 1<<63) }, true},
		{"size-too-big", func(b []byte) { le.PutUint32(b[desc+8:], 1<<20) }, true},
		{"size-past-eof", func(b []byte) { le.PutUint64(b[desc:], uint64(len(b)-10)) }, false},
		{"unknown-flags-short", func(b []byte) { le.PutUint32(b[desc+8:], 100); le.PutUint32(b[desc+12:], 0x40) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bb := bytes.Clone(b)
			tc.edit(bb)
			d := mustOpen(t, bb)
			_, err := d.ReadPhys(make([]byte, 8), 4096)
			var pe *PageError
			var mp *MissingPageError
			switch {
			case tc.wantPE && !errors.As(err, &pe):
				t.Errorf("have %v, want *PageError", err)
			case !tc.wantPE && (!errors.As(err, &mp) || mp.Reason != ReasonTruncated || mp.PA != 4096):
				t.Errorf("have %v, want truncated at 0x1000", err)
			}
			if _, err := d.ReadPhys(make([]byte, 8), 2*4096); err != nil {
				t.Errorf("pfn 2 unaffected: have %v", err)
			}
		})
	}
}

func TestOpenFile(t *testing.T) {
	spec, seg0, _ := kdumpELF(false, 0)
	path := t.TempDir() + "/vmcore"
	if err := writeFile(path, buildELF(spec)); err != nil {
		t.Fatal(err)
	}
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if _, err := d.ReadPhys(buf, 0x10); err != nil || !bytes.Equal(buf, seg0[0x10:0x18]) {
		t.Errorf("ReadPhys: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := Open(path + ".missing"); err == nil {
		t.Errorf("Open of missing file: have nil error")
	}
	if FormatFlattenedKdump.String() != "flattened-kdump" || ReasonBeyondEnd.String() != "beyond end" {
		t.Errorf("String methods")
	}
}
