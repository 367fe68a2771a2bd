package elfcore

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const testVMCOREINFO = "OSRELEASE=6.8.0-test\nPAGESIZE=4096\nSYMBOL(init_uts_ns)=ffffffff82a12340\n"

func kdumpELF(xnum bool, flags uint32) (elfSpec, []byte, []byte) {
	seg0 := pattern(0, 0x3000)
	seg1 := pattern(0x100000, 0x2000)
	var regs [27]uint64
	for i := range regs {
		regs[i] = uint64(1000 + i)
	}
	return elfSpec{
		flags: flags,
		xnum:  xnum,
		loads: []elfLoad{
			// kernel text mapping and direct map, as kdump writes them
			{paddr: 0x0, vaddr: 0xffff888000000000, data: seg0},
			{paddr: 0x100000, vaddr: 0xffffffff81000000, data: seg1, memsz: 0x4000},
		},
		notes: []Note{
			{Name: "CORE", Type: 1, Desc: prstatusDesc(11, regs)},
			{Name: "CORE", Type: 1, Desc: prstatusDesc(22, regs)},
			{Name: "VMCOREINFO", Type: 0, Desc: []byte(testVMCOREINFO)},
		},
		noteSegs: 2,
	}, seg0, seg1
}

func TestELF(t *testing.T) {
	for _, tc := range []struct {
		name       string
		xnum       bool
		flags      uint32
		incomplete bool
	}{
		{"plain", false, 0, false},
		{"extended-phnum", true, 0, false},
		{"incomplete", false, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec, seg0, seg1 := kdumpELF(tc.xnum, tc.flags)
			d := mustOpen(t, buildELF(spec))
			if have, want := d.Format(), FormatELF; have != want {
				t.Errorf("Format: have %v, want %v", have, want)
			}
			if have, want := d.Arch(), "x86_64"; have != want {
				t.Errorf("Arch: have %q, want %q", have, want)
			}
			if have, want := d.Incomplete(), tc.incomplete; have != want {
				t.Errorf("Incomplete: have %v, want %v", have, want)
			}
			if have, want := d.PageSize(), uint64(4096); have != want {
				t.Errorf("PageSize: have %d, want %d", have, want)
			}
			if have, want := string(d.VMCOREINFO()), testVMCOREINFO; have != want {
				t.Errorf("VMCOREINFO: have %q, want %q", have, want)
			}
			if have, want := len(d.Notes()), 3; have != want {
				t.Errorf("len(Notes): have %d, want %d", have, want)
			}
			segs := d.Segments()
			if len(segs) != 2 || segs[1].VAddr != 0xffffffff81000000 || segs[1].MemSize != 0x4000 || segs[1].FileSize != 0x2000 {
				t.Errorf("Segments: have %+v", segs)
			}
			pr := d.PRStatus()
			if len(pr) != 2 {
				t.Fatalf("PRStatus: have %d, want 2", len(pr))
			}
			if pr[1].PID != 22 || pr[0].RIP() != 1000+RegRIP || pr[0].RSP() != 1000+RegRSP || pr[0].PC() != pr[0].RIP() {
				t.Errorf("PRStatus[0]: have pid %d rip %d rsp %d", pr[1].PID, pr[0].RIP(), pr[0].RSP())
			}
			if v, ok := pr[0].Reg("gs_base"); !ok || v != 1000+RegGSBase {
				t.Errorf("Reg(gs_base): have %d,%v", v, ok)
			}
			want := []Range{{0, 0x3000}, {0x100000, 0x102000}}
			if diff := cmp.Diff(want, d.PhysRanges()); diff != "" {
				t.Errorf("PhysRanges (-want +have):\n%s", diff)
			}
			present, excluded, zero := d.PageCounts()
			if present != 5 || excluded != 2 || zero != 0 {
				t.Errorf("PageCounts: have %d,%d,%d, want 5,2,0", present, excluded, zero)
			}
			// A read spanning a page boundary inside a segment.
			buf := make([]byte, 100)
			if n, err := d.ReadPhys(buf, 0x1fd0); err != nil || n != 100 || !bytes.Equal(buf, seg0[0x1fd0:0x2034]) {
				t.Errorf("ReadPhys(0x1fd0): have n=%d err=%v", n, err)
			}
			if n, err := d.ReadPhys(buf[:8], 0x101ff8); err != nil || n != 8 || !bytes.Equal(buf[:8], seg1[0x1ff8:]) {
				t.Errorf("ReadPhys(0x101ff8): have n=%d err=%v", n, err)
			}
		})
	}
}

func TestELFMissing(t *testing.T) {
	spec, seg0, _ := kdumpELF(false, 0)
	raw := buildELF(spec)
	for _, tc := range []struct {
		name   string
		pa     uint64
		size   int
		wantN  int
		reason MissingReason
		errPA  uint64
	}{
		{"hole-between-segments", 0x2ff0, 0x20, 0x10, ReasonHole, 0x3000},
		{"memsz-tail", 0x101ff0, 0x20, 0x10, ReasonExcluded, 0x102000},
		{"beyond-end", 0x104000, 8, 0, ReasonBeyondEnd, 0x104000},
		{"top-of-address-space", ^uint64(0) - 3, 8, 0, ReasonBeyondEnd, ^uint64(0) - 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := mustOpen(t, raw)
			buf := make([]byte, tc.size)
			n, err := d.ReadPhys(buf, tc.pa)
			var mp *MissingPageError
			if !errors.As(err, &mp) {
				t.Fatalf("have err %v, want *MissingPageError", err)
			}
			if n != tc.wantN || mp.Reason != tc.reason || mp.PA != tc.errPA {
				t.Errorf("have n=%d %v, want n=%d at %#x (%v)", n, err, tc.wantN, tc.errPA, tc.reason)
			}
			if tc.wantN > 0 && !bytes.Equal(buf[:n], seg0[0x2ff0:0x3000]) && tc.reason == ReasonHole {
				t.Errorf("partial bytes wrong")
			}
			if !strings.Contains(err.Error(), tc.reason.String()) {
				t.Errorf("message %q lacks reason %q", err, tc.reason)
			}
		})
	}
	t.Run("zero-fill", func(t *testing.T) {
		d := mustOpen(t, raw)
		d.SetZeroFill(true)
		buf := bytes.Repeat([]byte{0xAA}, 0x2000)
		n, err := d.ReadPhys(buf, 0x2000)
		if err != nil || n != 0x2000 {
			t.Fatalf("have n=%d err=%v", n, err)
		}
		if !bytes.Equal(buf[:0x1000], seg0[0x2000:]) || slices.ContainsFunc(buf[0x1000:], func(c byte) bool { return c != 0 }) {
			t.Errorf("zero-filled read has wrong content")
		}
		if have := d.ZeroFilled(); have != 1 {
			t.Errorf("ZeroFilled: have %d, want 1", have)
		}
		if _, err := d.ReadPhys(buf[:8], 0x200000); err == nil {
			t.Errorf("beyond end with zero fill: have nil error, want one")
		}
	})
	t.Run("truncated-file", func(t *testing.T) {
		d := mustOpen(t, raw[:len(raw)-0x1800]) // cuts into the second PT_LOAD
		buf := make([]byte, 0x1000)
		n, err := d.ReadPhys(buf, 0x100000)
		var mp *MissingPageError
		if !errors.As(err, &mp) || mp.Reason != ReasonTruncated || n != 0x800 || mp.PA != 0x100800 {
			t.Errorf("have n=%#x err=%v, want n=0x800 truncated at 0x100800", n, err)
		}
		if want := []Range{{0, 0x3000}, {0x100000, 0x100800}}; !slices.Equal(want, d.PhysRanges()) {
			t.Errorf("PhysRanges: have %v, want %v", d.PhysRanges(), want)
		}
	})
}

func TestELFQEMU(t *testing.T) {
	mem := pattern(0, 0x4000)
	hi := pattern(0x100000000, 0x1000)
	spec := elfSpec{
		loads: []elfLoad{
			{paddr: 0, data: mem},
			{paddr: 0x100000000, data: hi},
		},
		notes: []Note{
			{Name: "CORE", Type: 1, Desc: prstatusDesc(1, [27]uint64{})},
			{Name: "QEMU", Type: 0, Desc: qemuDesc(0xffffffff81000010, 0x1234000, 0xfffffe0000001000, 0xfffffe0000000000, 0xffff88807dc00000, 0xabc, true)},
			{Name: "CORE", Type: 1, Desc: prstatusDesc(2, [27]uint64{})},
			{Name: "QEMU", Type: 0, Desc: qemuDesc(0xffffffff81000020, 0x1234000, 0, 0, 0, 0, false)},
		},
	}
	d := mustOpen(t, buildELF(spec))
	for _, s := range d.Segments() {
		if s.VAddr != 0 {
			t.Errorf("segment %+v: have vaddr %#x, want 0", s, s.VAddr)
		}
	}
	qs := d.QEMUCPUStates()
	if len(qs) != 2 {
		t.Fatalf("QEMUCPUStates: have %d, want 2", len(qs))
	}
	want := QEMUCPUState{
		Version: 1, Size: 440, RIP: 0xffffffff81000010, RFlags: 0x246,
		CS:  QEMUSegment{Selector: 0x10, Limit: 0xffff, Flags: 0xa09b00},
		GS:  QEMUSegment{Limit: 0xffff, Flags: 0xa09b00, Base: 0xffff88807dc00000},
		GDT: QEMUSegment{Limit: 0xffff, Flags: 0xa09b00, Base: 0xfffffe0000001000},
		IDT: QEMUSegment{Limit: 0xffff, Flags: 0xa09b00, Base: 0xfffffe0000000000},
		CR:  [5]uint64{3: 0x1234000}, KernelGSBase: 0xabc, HasKernelGSBase: true,
	}
	for i := range want.GPR {
		want.GPR[i] = uint64(0x100 + i)
	}
	if diff := cmp.Diff(want, qs[0]); diff != "" {
		t.Errorf("QEMUCPUState[0] (-want +have):\n%s", diff)
	}
	if qs[1].HasKernelGSBase || qs[1].Size != 432 || qs[1].RSP() != 0x106 || qs[1].CR3() != 0x1234000 {
		t.Errorf("QEMUCPUState[1]: have %+v", qs[1])
	}
	buf := make([]byte, 16)
	if _, err := d.ReadPhys(buf, 0x100000000); err != nil || !bytes.Equal(buf, hi[:16]) {
		t.Errorf("ReadPhys above 4G: err %v", err)
	}
	if d.PageSize() != 4096 || d.VMCOREINFO() != nil {
		t.Errorf("have pagesize %d vmcoreinfo %q", d.PageSize(), d.VMCOREINFO())
	}
}
