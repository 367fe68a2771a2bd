package elfcore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// kdump-compressed files written for other targets: the 32-bit
// disk_dump_header (timeval of 8 bytes at 404, block_size at 416), the
// 32-bit kdump_sub_header in its i386 (packed) and 8-aligned variants, and
// big-endian fields. Each is decoded for its target.
func TestKdumpOtherTargets(t *testing.T) {
	for _, tc := range []struct {
		machine string
		bits    int
		be      bool
		pack    bool
		version int32
		split   bool
	}{
		{"s390x", 64, true, false, 6, false},
		{"ppc64", 64, true, false, 4, false},
		{"i686", 32, false, true, 6, false},
		{"i686", 32, false, true, 5, true},
		{"armv7l", 32, false, false, 6, false},
		{"armv7l", 32, false, false, 1, false},
		{"ppc", 32, true, false, 6, true},
		// Machines the table does not know: the layout is found from the
		// header's plausibility, then the sub-header's.
		{"mystery64be", 64, true, false, 6, false},
		{"mystery32", 32, false, true, 6, false},
		{"mystery32", 32, false, false, 5, false},
	} {
		name := fmt.Sprintf("%s-v%d-split=%v-pack=%v", tc.machine, tc.version, tc.split, tc.pack)
		t.Run(name, func(t *testing.T) {
			spec := kdSpec{
				version: tc.version, maxMapnr: 100, machine: tc.machine,
				bits: tc.bits, be: tc.be, pack: tc.pack,
				pages:      rawPages(0, 1, 7, 64, 99),
				zero:       []uint64{8},
				ram:        []uint64{3, 4},
				vmcoreinfo: []byte(testVMCOREINFO),
				notes:      []Note{{Name: "CORE", Type: 1, Desc: make([]byte, 336)}, {Name: "VMCOREINFO", Desc: []byte("X=1\n")}},
			}
			if tc.split {
				spec.split, spec.start, spec.end = true, 1, 65
			}
			d := mustOpen(t, buildKdump(spec))
			if have, want := d.Target(), (Target{Bits: tc.bits, BigEndian: tc.be}); have != want {
				t.Errorf("Target: have %v, want %v", have, want)
			}
			h := d.Kdump()
			if h.HeaderVersion != tc.version || h.Machine != tc.machine || d.Arch() != tc.machine || h.BlockSize != 4096 || h.MaxMapnr != 100 || h.DumpLevel != 31 || h.NrCPUs != 2 || h.PhysBase != 0x1000000 {
				t.Errorf("header: have %+v", h)
			}
			if h.Timestamp.Unix() != 1700000000 || h.Timestamp.Nanosecond() != 123456000 {
				t.Errorf("Timestamp: have %v", h.Timestamp)
			}
			if tc.split && (h.Split != 1 || h.StartPFN != 1 || h.EndPFN != 65) {
				t.Errorf("split range: have %d %d-%d", h.Split, h.StartPFN, h.EndPFN)
			}
			wantVI := ""
			if tc.version >= 3 {
				wantVI = testVMCOREINFO
			}
			if have := string(d.VMCOREINFO()); have != wantVI {
				t.Errorf("VMCOREINFO: have %q, want %q", have, wantVI)
			}
			wantNotes := 0
			if tc.version >= 4 {
				wantNotes = 2
			}
			if have := len(d.Notes()); have != wantNotes {
				t.Errorf("Notes: have %d, want %d", have, wantNotes)
			}
			for _, pfn := range []uint64{1, 7, 64} {
				buf := make([]byte, 4096)
				if n, err := d.ReadPhys(buf, pfn*4096); err != nil || n != 4096 || !bytes.Equal(buf, pattern(pfn*4096, 4096)) {
					t.Errorf("pfn %d: have n=%d err=%v", pfn, n, err)
				}
			}
			buf := bytes.Repeat([]byte{1}, 16)
			if _, err := d.ReadPhys(buf, 8*4096); err != nil || !bytes.Equal(buf, make([]byte, 16)) {
				t.Errorf("zero page: have %v err=%v", buf, err)
			}
			var mp *MissingPageError
			if _, err := d.ReadPhys(buf, 3*4096); !errors.As(err, &mp) || mp.Reason != ReasonExcluded {
				t.Errorf("pfn 3: have %v, want excluded", err)
			}
			if present, excluded, zero := d.PageCounts(); zero != 1 || excluded < 2 || present == 0 {
				t.Errorf("PageCounts: have %d %d %d", present, excluded, zero)
			}
		})
	}
	// x86_64 still is read with the 64-bit little-endian layout.
	d := mustOpen(t, buildKdump(kdSpec{version: 6, maxMapnr: 8, pages: rawPages(1)}))
	if have := d.Target(); have != (Target{64, false}) || have.String() != "64-bit little-endian" {
		t.Errorf("x86_64 Target: have %v", have)
	}
}

// An empty kdump file (max_mapnr 0, no bitmap blocks) is a dump of nothing.
func TestKdumpEmpty(t *testing.T) {
	for _, v := range []int32{1, 6} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			d := mustOpen(t, buildKdump(kdSpec{version: v, maxMapnr: 0, empty: true, vmcoreinfo: []byte(testVMCOREINFO)}))
			if present, excluded, zero := d.PageCounts(); present != 0 || excluded != 0 || zero != 0 {
				t.Errorf("PageCounts: have %d %d %d, want 0 0 0", present, excluded, zero)
			}
			if rs := d.PhysRanges(); len(rs) != 0 {
				t.Errorf("PhysRanges: have %v, want none", rs)
			}
			var mp *MissingPageError
			if _, err := d.ReadPhys(make([]byte, 8), 0); !errors.As(err, &mp) || mp.Reason != ReasonBeyondEnd {
				t.Errorf("ReadPhys(0): have %v, want beyond end", err)
			}
			d.SetZeroFill(true)
			if _, err := d.ReadPhys(make([]byte, 8), 0); !errors.As(err, &mp) || mp.Reason != ReasonBeyondEnd {
				t.Errorf("ReadPhys(0) with zero fill: have %v, want beyond end", err)
			}
		})
	}
}

// unsupportedSamples are the first bytes of dump formats vmleak does not
// read, each with the name it reports.
func unsupportedSamples() []struct {
	format string
	data   []byte
} {
	pad := func(b []byte, n int) []byte { return append(b, make([]byte, max(0, n-len(b)))...) }
	be := binary.BigEndian
	lkcdLE := pad(le.AppendUint64(nil, 0xa8190173618f23ed), 8192)
	le.PutUint32(lkcdLE[8:], 8) // dh_version
	lkcdBE := pad(be.AppendUint64(nil, 0xa8190173618f23ed), 8192)
	be.PutUint32(lkcdBE[8:], 8)
	media := make([]byte, 8192) // media backup: EFI GUIDs, then the partition header at 4096
	copy(media, "\x01\x02\x03\x04")
	copy(media[4096:], "sadump\x00\x00")
	xc := pad(le.AppendUint32(nil, 0xF00FEBED), 4096)
	xchvm := pad(le.AppendUint32(nil, 0xF00FEBEE), 4096)
	return []struct {
		format string
		data   []byte
	}{
		{"sadump", pad([]byte("sadump\x00\x00\x01\x00\x00\x00"), 8192)},
		{"sadump", media},
		{"LKCD", lkcdLE},
		{"LKCD", lkcdBE},
		{"Xen xc_core", xc},
		{"Xen xc_core", xchvm},
		{"Xen xc_core", buildXenELFCore()},
		{"ELF32", buildELF32Core()},
	}
}

// buildXenELFCore writes the start of Xen's ELF dump-core (xl dump-core):
// an ELF64 ET_CORE with no program headers, only sections found by name.
func buildXenELFCore() []byte {
	names := []byte("\x00.shstrtab\x00.note.Xen\x00.xen_prstatus\x00.xen_pages\x00.xen_pfn\x00")
	const nsec = 6
	shoff := 64
	strOff := shoff + nsec*64
	out := make([]byte, strOff+len(names)+4096)
	copy(out, "\x7fELF")
	out[4], out[5], out[6] = 2, 1, 1
	le.PutUint16(out[16:], 4) // ET_CORE
	le.PutUint16(out[18:], 62)
	le.PutUint32(out[20:], 1)
	le.PutUint64(out[40:], uint64(shoff))
	le.PutUint16(out[52:], 64)
	le.PutUint16(out[54:], 56)
	le.PutUint16(out[58:], 64)
	le.PutUint16(out[60:], nsec)
	le.PutUint16(out[62:], 1) // e_shstrndx
	nameAt := map[string]int{}
	for i, n := range bytes.Split(names, []byte{0}) {
		_ = i
		nameAt[string(n)] = bytes.Index(names, append(append([]byte{0}, n...), 0)) + 1
	}
	sec := func(i int, name string, typ uint32, off, size uint64) {
		h := out[shoff+64*i:]
		le.PutUint32(h, uint32(nameAt[name]))
		le.PutUint32(h[4:], typ)
		le.PutUint64(h[24:], off)
		le.PutUint64(h[32:], size)
	}
	sec(1, ".shstrtab", 3, uint64(strOff), uint64(len(names)))
	sec(2, ".note.Xen", 7, 0, 0)
	sec(3, ".xen_prstatus", 1, 0, 0)
	sec(4, ".xen_pages", 1, uint64(strOff+len(names)), 4096)
	sec(5, ".xen_pfn", 1, 0, 0)
	copy(out[strOff:], names)
	return out
}

// buildELF32Core writes an ELF32 ET_CORE header (i386) with one PT_LOAD.
func buildELF32Core() []byte {
	out := make([]byte, 52+32+4096)
	copy(out, "\x7fELF")
	out[4], out[5], out[6] = 1, 1, 1
	le.PutUint16(out[16:], 4)
	le.PutUint16(out[18:], 3)
	le.PutUint32(out[20:], 1)
	le.PutUint32(out[28:], 52) // e_phoff
	le.PutUint16(out[40:], 52)
	le.PutUint16(out[42:], 32)
	le.PutUint16(out[44:], 1)
	ph := out[52:]
	le.PutUint32(ph, 1)
	le.PutUint32(ph[4:], 84)
	le.PutUint32(ph[16:], 4096)
	le.PutUint32(ph[20:], 4096)
	return out
}

// sadump, LKCD, Xen xc_core and ELF32 cores are recognized by their magic
// numbers and refused as unsupported, not as corrupt or unrecognized.
func TestUnsupportedFormats(t *testing.T) {
	for i, tc := range unsupportedSamples() {
		t.Run(fmt.Sprintf("%d-%s", i, tc.format), func(t *testing.T) {
			d, err := NewDump(bytes.NewReader(tc.data), int64(len(tc.data)), "other.core")
			var ue *UnsupportedFormatError
			if d != nil || !errors.As(err, &ue) || ue.Format != tc.format || ue.File != "other.core" {
				t.Fatalf("have %v (%T), want *UnsupportedFormatError for %s", err, err, tc.format)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "elfcore: other.core: unsupported format "+tc.format) || strings.Contains(msg, "\n") {
				t.Errorf("message %q", msg)
			}
			if errors.Is(err, ErrUnrecognizedFormat) {
				t.Errorf("%v is also ErrUnrecognizedFormat", err)
			}
			// Cut short, still recognized by the magic.
			short := tc.data[:min(len(tc.data), 8)]
			if tc.format == "sadump" && len(tc.data) > 4096 && !bytes.HasPrefix(tc.data, []byte("sadump")) {
				short = tc.data[:4104]
			}
			if tc.format == "Xen xc_core" && bytes.HasPrefix(tc.data, []byte("\x7fELF")) {
				return // found from its sections, which a short file lacks
			}
			if _, err := NewDump(bytes.NewReader(short), int64(len(short)), "other.core"); !errors.As(err, &ue) || ue.Format != tc.format {
				t.Errorf("short: have %v, want unsupported format %s", err, tc.format)
			}
		})
	}
}
