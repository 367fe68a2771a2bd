package main

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeKdumpHeader writes a small kdump-compressed file for a target:
// header version 1, 4096-byte blocks, one sub-header block, and, unless
// empty, bitmaps for 8 pfns with pfn 1 dumped raw. bits 32 puts the
// fields after struct new_utsname where the 32-bit struct disk_dump_header
// has them (an 8-byte timeval at 404, status at 412); be writes them
// big-endian.
func writeKdumpHeader(t *testing.T, path, machine string, bits int, be, empty bool) {
	t.Helper()
	const bs = 4096
	var bo binary.ByteOrder = binary.LittleEndian
	if be {
		bo = binary.BigEndian
	}
	bitmapBlocks, maxMapnr := 2, 8
	if empty {
		bitmapBlocks, maxMapnr = 0, 0
	}
	out := make([]byte, (2+bitmapBlocks)*bs)
	copy(out, "KDUMP   ")
	bo.PutUint32(out[8:], 1)
	for i, u := range []string{"Linux", "host", "6.8.0-nothere", "#1", machine, ""} {
		copy(out[12+65*i:], u)
	}
	fld := 424
	if bits == 32 {
		fld = 412
	}
	bo.PutUint32(out[fld+4:], bs)
	bo.PutUint32(out[fld+8:], 1) // sub_hdr_size
	bo.PutUint32(out[fld+12:], uint32(bitmapBlocks))
	bo.PutUint32(out[fld+16:], uint32(maxMapnr))
	bo.PutUint32(out[fld+36:], 1) // nr_cpus
	if !empty {
		out[2*bs] = 1 << 1 // RAM bitmap: pfn 1
		out[3*bs] = 1 << 1 // dumped bitmap: pfn 1
		desc := make([]byte, 24)
		bo.PutUint64(desc, uint64(len(out)+24))
		bo.PutUint32(desc[8:], bs)
		out = append(out, desc...)
		out = append(out, make([]byte, bs)...)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// vmleak info on dumps it reads but cannot analyze, and on formats it does
// not read: exit code 3 and one line naming the file and what it is; on an
// empty kdump file: the dump described, with 0 pages.
func TestInfoOtherFormats(t *testing.T) {
	dir := t.TempDir()
	pad := func(b []byte, n int) []byte { return append(b, make([]byte, max(0, n-len(b)))...) }
	raw := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	elf32 := make([]byte, 4096)
	copy(elf32, "\x7fELF\x01\x01\x01")
	binary.LittleEndian.PutUint16(elf32[16:], 4)
	binary.LittleEndian.PutUint16(elf32[18:], 3)
	for _, tc := range []struct {
		name string
		path func() string
		want string // the message after "vmleak: "
	}{
		{"s390x", func() string {
			p := filepath.Join(dir, "s390x.kdump")
			writeKdumpHeader(t, p, "s390x", 64, true, false)
			return p
		}, "kernel: %s: unsupported architecture s390x (64-bit big-endian)"},
		{"ppc64", func() string {
			p := filepath.Join(dir, "ppc64.kdump")
			writeKdumpHeader(t, p, "ppc64", 64, true, false)
			return p
		}, "kernel: %s: unsupported architecture ppc64 (64-bit big-endian)"},
		{"i686", func() string {
			p := filepath.Join(dir, "i686.kdump")
			writeKdumpHeader(t, p, "i686", 32, false, false)
			return p
		}, "kernel: %s: unsupported architecture i686 (32-bit little-endian)"},
		{"sadump", func() string { return raw("sadump.img", pad([]byte("sadump\x00\x00"), 8192)) }, "elfcore: %s: unsupported format sadump"},
		{"lkcd", func() string {
			return raw("lkcd.dump", pad(binary.LittleEndian.AppendUint64(nil, 0xa8190173618f23ed), 8192))
		}, "elfcore: %s: unsupported format LKCD"},
		{"xc_core", func() string {
			return raw("xen.core", pad(binary.LittleEndian.AppendUint32(nil, 0xF00FEBED), 8192))
		}, "elfcore: %s: unsupported format Xen xc_core"},
		{"elf32", func() string { return raw("elf32.core", elf32) }, "elfcore: %s: unsupported format ELF32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path()
			code, out, errs := vmleak(t, "info", path)
			if code != ExitInput {
				t.Errorf("exit %d, want %d; stderr %q", code, ExitInput, errs)
			}
			lines := strings.Split(strings.TrimSuffix(errs, "\n"), "\n")
			want := "vmleak: " + strings.Replace(tc.want, "%s", path, 1)
			if len(lines) != 1 || !strings.HasPrefix(lines[0], want) {
				t.Errorf("stderr %q, want one line starting %q", errs, want)
			}
			if strings.Contains(errs, "corrupt") || strings.Contains(errs, "implausible") || out != "" {
				t.Errorf("stdout %q stderr %q", out, errs)
			}
		})
	}
	t.Run("empty-kdump", func(t *testing.T) {
		path := filepath.Join(dir, "empty.kdump")
		writeKdumpHeader(t, path, "x86_64", 64, false, true)
		code, out, errs := vmleak(t, "info", path)
		if code != ExitOK {
			t.Fatalf("exit %d, want 0; stderr %q", code, errs)
		}
		if !strings.Contains(out, "pages:") || !strings.Contains(out, "0 present (0.0 MiB), 0 excluded, 0 zero") || strings.Contains(out, "phys range") {
			t.Errorf("stdout:\n%s", out)
		}
		if !strings.Contains(errs, "no memory (0 pages)") {
			t.Errorf("stderr %q, want it to say the dump holds no memory", errs)
		}
	})
}
