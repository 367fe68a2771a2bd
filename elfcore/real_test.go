package elfcore_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/vmleak/vmleak/elfcore"
	"github.com/vmleak/vmleak/internal/fixture"
)

// One crash, four files: the kdump ELF (/proc/vmcore as the capture kernel
// saw it), makedumpfile's lzo and zlib files (-d 31) and the flattened lzo
// stream they came from. Every page present in the filtered files must read
// the same in all of them; QEMU's flattened and rearranged kdump-zlib and its
// ELF dump likewise.
func TestFormatsAgree(t *testing.T) {
	for _, tc := range []struct {
		fixture string
		files   []string // the first is the reference (ELF, unfiltered)
	}{
		{"bookworm-kdump", []string{"kdump.elf", "kdump.lzo", "kdump.zlib", "kdump.flat-lzo", "kdump.flat-zlib"}},
		{"bookworm-qemu", []string{"qemu1.elf", "qemu1.zlib", "qemu1.flat-zlib"}},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			m := fixture.Load(t, tc.fixture)
			var dumps []*elfcore.Dump
			for _, f := range tc.files {
				d, err := elfcore.Open(m.Dir + "/" + f)
				if err != nil {
					t.Fatal(err)
				}
				defer d.Close()
				dumps = append(dumps, d)
			}
			ref := dumps[0]
			ps := ref.PageSize()
			a, b := make([]byte, ps), make([]byte, ps)
			for i, d := range dumps[1:] {
				var same, absentInRef int
				for _, r := range d.PhysRanges() {
					for pa := r.Start &^ (ps - 1); pa < r.End; pa += ps {
						if _, err := d.ReadPhys(a, pa); err != nil {
							t.Fatalf("%s: page %#x listed present: %v", tc.files[i+1], pa, err)
						}
						_, err := ref.ReadPhys(b, pa)
						var mp *elfcore.MissingPageError
						if errors.As(err, &mp) {
							absentInRef++
							continue
						}
						if err != nil {
							t.Fatal(err)
						}
						if !bytes.Equal(a, b) {
							t.Fatalf("%s and %s differ at physical %#x", tc.files[i+1], tc.files[0], pa)
						}
						same++
					}
				}
				t.Logf("%s: %d pages identical to %s (%d not in it)", tc.files[i+1], same, tc.files[0], absentInRef)
				if same == 0 || absentInRef > same/100 {
					t.Errorf("%s: %d pages compared, %d absent from %s", tc.files[i+1], same, absentInRef, tc.files[0])
				}
			}
		})
	}
}
