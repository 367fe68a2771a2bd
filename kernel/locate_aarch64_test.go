package kernel

import (
	"errors"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/vmcoreinfo"
	"github.com/vmleak/vmleak/xlat"
)

// arm64Info is the arm64 part of a Debian 6.1 cloud kernel's VMCOREINFO
// (4 KiB pages, 48-bit VA, PAC, KASLR), which the cases below edit.
const arm64Info = `OSRELEASE=6.1.0-50-cloud-arm64
PAGESIZE=4096
SYMBOL(swapper_pg_dir)=ffffd21e9457b000
NUMBER(VA_BITS)=48
NUMBER(MODULES_VADDR)=0xffff800000000000
NUMBER(MODULES_END)=0xffff800008000000
NUMBER(VMALLOC_START)=0xffff800008000000
NUMBER(VMALLOC_END)=0xfffffbfff0000000
NUMBER(VMEMMAP_START)=0xfffffc0000000000
NUMBER(VMEMMAP_END)=0xfffffe0000000000
NUMBER(kimage_voffset)=0xffffd21e53000000
NUMBER(PHYS_OFFSET)=0x40000000
NUMBER(TCR_EL1_T1SZ)=0x10
KERNELOFFSET=521e8b200000
NUMBER(KERNELPACMASK)=0xffff000000000000
`

func TestParseARM64(t *testing.T) {
	edit := func(drop []string, add ...string) string {
		var out []string
		for _, l := range strings.Split(strings.TrimSpace(arm64Info), "\n") {
			keep := true
			for _, d := range drop {
				keep = keep && !strings.HasPrefix(l, d)
			}
			if keep {
				out = append(out, l)
			}
		}
		return strings.Join(append(out, add...), "\n") + "\n"
	}
	cases := []struct {
		name       string
		info       string
		release    string
		pageSize   uint64
		cfg        xlat.ARM64Config
		pageOffset uint64
		vmalloc    uint64
		err        string
	}{
		{name: "6.1", info: arm64Info, release: "6.1.0-50-cloud-arm64",
			cfg:        xlat.ARM64Config{Granule: 4 << 10, VABits: 48, PACMask: 0xffff000000000000},
			pageOffset: 0xffff000000000000, vmalloc: 0xffff800008000000},
		// 5.10: no ranges, no PAC on the CPU (mask 0): the linear map is still at the bottom.
		{name: "5.10", info: edit([]string{"NUMBER(MODULES", "NUMBER(VMALLOC", "NUMBER(VMEMMAP", "NUMBER(KERNELPACMASK"}), release: "5.10.0-32-arm64",
			cfg: xlat.ARM64Config{Granule: 4 << 10, VABits: 48}, pageOffset: 0xffff000000000000},
		// 4.19: before the flip the linear map is the top half; no T1SZ yet.
		{name: "4.19", info: edit([]string{"NUMBER(TCR", "NUMBER(KERNELPACMASK", "NUMBER(MODULES", "NUMBER(VMALLOC", "NUMBER(VMEMMAP"}), release: "4.19.0-27-arm64",
			cfg: xlat.ARM64Config{Granule: 4 << 10, VABits: 48}, pageOffset: 0xffff800000000000},
		// 64 KiB pages, 52-bit VA on a CPU with LVA.
		{name: "64k-52", info: edit([]string{"PAGESIZE", "NUMBER(VA_BITS)", "NUMBER(TCR", "NUMBER(KERNELPACMASK"}, "PAGESIZE=65536", "NUMBER(VA_BITS)=52", "NUMBER(TCR_EL1_T1SZ)=12", "NUMBER(KERNELPACMASK)=0xfff0000000000000"),
			release: "6.1.0-50-arm64", cfg: xlat.ARM64Config{Granule: 64 << 10, VABits: 52, PACMask: 0xfff0000000000000},
			pageOffset: 0xfff0000000000000, vmalloc: 0xffff800008000000},
		// The same kernel on a CPU without LVA: the tables cover 48 bits.
		{name: "64k-52-on-48", info: edit([]string{"PAGESIZE", "NUMBER(VA_BITS)"}, "PAGESIZE=65536", "NUMBER(VA_BITS)=52"),
			release: "6.1.0-50-arm64", cfg: xlat.ARM64Config{Granule: 64 << 10, VABits: 48, PACMask: 0xffff000000000000},
			pageOffset: 0xfff0000000000000, vmalloc: 0xffff800008000000},
		// 4 KiB pages and 52 bits: LPA2 tables.
		{name: "4k-52", info: edit([]string{"NUMBER(VA_BITS)", "NUMBER(TCR", "NUMBER(KERNELPACMASK"}, "NUMBER(VA_BITS)=52", "NUMBER(TCR_EL1_T1SZ)=12", "NUMBER(KERNELPACMASK)=0xfff0000000000000"),
			release: "6.12.0-1-arm64", cfg: xlat.ARM64Config{Granule: 4 << 10, VABits: 52, LPA2: true, PACMask: 0xfff0000000000000},
			pageOffset: 0xfff0000000000000, vmalloc: 0xffff800008000000},
		// No PAGESIZE: the dump's page size.
		{name: "no-pagesize", info: edit([]string{"PAGESIZE"}), release: "6.1.0", pageSize: 16 << 10,
			cfg: xlat.ARM64Config{Granule: 16 << 10, VABits: 48, PACMask: 0xffff000000000000}, pageOffset: 0xffff000000000000, vmalloc: 0xffff800008000000},
		{name: "no-kimage_voffset", info: edit([]string{"NUMBER(kimage_voffset)"}), err: "NUMBER(kimage_voffset)"},
		{name: "no-PHYS_OFFSET", info: edit([]string{"NUMBER(PHYS_OFFSET)"}), err: "NUMBER(PHYS_OFFSET)"},
		{name: "no-kaslr", info: edit([]string{"KERNELOFFSET"}), err: "unsupported"},
		{name: "bad-T1SZ", info: edit([]string{"NUMBER(TCR"}, "NUMBER(TCR_EL1_T1SZ)=8"), err: "implausible"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			info, err := vmcoreinfo.Parse([]byte(c.info))
			if err != nil {
				t.Fatal(err)
			}
			l, err := parseARM64(info, c.release, c.pageSize)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				if c.err == "unsupported" && !errors.Is(err, ErrUnsupported) {
					t.Fatalf("err = %v, not ErrUnsupported", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.cfg != c.cfg || l.pageOffset != c.pageOffset || l.vmallocStart != c.vmalloc {
				t.Errorf("got cfg %+v page offset %#x vmalloc %#x; want %+v %#x %#x", l.cfg, l.pageOffset, l.vmallocStart, c.cfg, c.pageOffset, c.vmalloc)
			}
			if l.voff != 0xffffd21e53000000 || l.physOffset != 0x40000000 {
				t.Errorf("kimage_voffset %#x PHYS_OFFSET %#x", l.voff, l.physOffset)
			}
			if _, err := xlat.NewARM64(nopReader{}, 0x10000, l.cfg); err != nil {
				t.Errorf("the translator refuses the configuration: %v", err)
			}
		})
	}
}

type nopReader struct{}

func (nopReader) ReadPhys(p []byte, pa uint64) (int, error) { return 0, errors.New("no memory") }

func TestReleaseAtLeast(t *testing.T) {
	for _, c := range []struct {
		rel  string
		want bool
	}{{"5.4.0", true}, {"5.3.18-lp152", false}, {"4.19.0-27-arm64", false}, {"6.1.0-50-cloud-arm64", true}, {"5.10", true}, {"5.4-rc1", true}, {"junk", true}, {"", true}} {
		if got := releaseAtLeast(c.rel, 5, 4); got != c.want {
			t.Errorf("releaseAtLeast(%q, 5, 4) = %v", c.rel, got)
		}
	}
}

func TestIsMappingSymbol(t *testing.T) {
	for name, want := range map[string]bool{"$x": true, "$d": true, "$x.12": true, "$a": true, "$t": true,
		"$xyz": false, "$": false, "x": false, "$y": false, "fw_cfg_probe": false, "": false} {
		if got := isMappingSymbol(name); got != want {
			t.Errorf("isMappingSymbol(%q) = %v", name, got)
		}
	}
}
