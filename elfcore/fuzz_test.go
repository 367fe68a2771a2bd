package elfcore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// exercise drives every read path of an opened dump with addresses derived
// from the input, so the fuzzers reach page descriptors and decoders.
func exercise(d *Dump, data []byte) {
	_ = d.Format().String()
	_ = d.Target().String()
	_, _, _ = d.Arch(), d.PageSize(), d.Incomplete()
	_, _, _ = d.Notes(), d.VMCOREINFO(), d.Segments()
	for _, s := range d.PRStatus() {
		_, _ = s.PC(), s.SP()
	}
	_ = d.QEMUCPUStates()
	_ = d.Kdump()
	_ = d.Compression()
	buf := make([]byte, 64)
	for i, r := range d.PhysRanges() {
		if i == 32 {
			break
		}
		d.ReadPhys(buf, r.Start)
		d.ReadPhys(buf, r.End-8)
	}
	for i := 0; i+8 <= len(data) && i < 256; i += 8 {
		d.ReadPhys(buf, binary.LittleEndian.Uint64(data[i:])%(1<<24))
	}
	d.SetZeroFill(true)
	d.ReadPhys(make([]byte, 3*d.PageSize()), 0)
	d.PageCounts()
}

func fuzzOpen(t *testing.T, data []byte) {
	d, err := NewDump(bytes.NewReader(data), int64(len(data)), "fuzz")
	if err != nil {
		if d != nil {
			t.Fatalf("non-nil Dump with error %v", err)
		}
		return
	}
	exercise(d, data)
}

func FuzzELF(f *testing.F) {
	for _, s := range elfSeeds() {
		f.Add(s)
	}
	f.Fuzz(fuzzOpen)
}

func FuzzKdump(f *testing.F) {
	for _, s := range kdumpSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(fuzzOpen)
}

func FuzzFlat(f *testing.F) {
	for _, s := range flatSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(fuzzOpen)
}

func elfSeeds() [][]byte {
	a, _, _ := kdumpELF(false, 0)
	b, _, _ := kdumpELF(true, 1)
	small := elfSpec{
		loads: []elfLoad{{paddr: 0x1000, data: pattern(0, 64), memsz: 0x2000}, {paddr: 0, data: pattern(1, 32)}},
		notes: []Note{{Name: "QEMU", Desc: qemuDesc(1, 2, 3, 4, 5, 6, true)}, {Name: "VMCOREINFO", Desc: []byte("PAGESIZE=4096\n")}},
	}
	trim := func(s elfSpec) elfSpec {
		// Keep seeds small: shrink segment data.
		for i := range s.loads {
			if len(s.loads[i].data) > 256 {
				s.loads[i].data = s.loads[i].data[:256]
				s.loads[i].memsz = 0x1000
			}
		}
		return s
	}
	// A segment inside an earlier one's memsz tail, one starting inside a
	// page.
	overlap := elfSpec{loads: []elfLoad{
		{paddr: 0, data: pattern(0, 64), memsz: 0x4000},
		{paddr: 0x2000, data: pattern(0x2000, 64)},
		{paddr: 0x5200, data: pattern(0x5200, 64)},
	}}
	return [][]byte{buildELF(trim(a)), buildELF(trim(b)), buildELF(small), buildELF(overlap), buildXenELFCore()[:1024], buildELF32Core()[:128]}
}

func kdumpSeeds(t testing.TB) [][]byte {
	small := kdSpec{version: 6, blockSize: 512, maxMapnr: 40, pages: map[uint64]kdPage{
		1: {raw: pattern(1, 512)}, 3: {raw: pattern(3, 512)}, 33: {raw: pattern(33, 512)},
	}, zero: []uint64{2}, ram: []uint64{4}, vmcoreinfo: []byte("PAGESIZE=512\n"),
		notes: []Note{{Name: "CORE", Type: 1, Desc: prstatusDesc(1, [27]uint64{})}}}
	v1 := small
	v1.version = 1
	split := small
	split.version, split.split, split.start, split.end = 5, true, 2, 34
	out := [][]byte{buildKdump(small), buildKdump(v1), buildKdump(split)}
	for _, c := range codecs {
		out = append(out, buildKdump(kdSpec{version: 6, maxMapnr: 8, pages: map[uint64]kdPage{
			1: {raw: fixturePage(t, 3, "raw"), flags: c.flags, enc: fixturePage(t, 3, c.ext)},
		}, status: c.flags | dumpDHCompressedIncomplete}))
	}
	// Other targets' layouts, an empty dump, formats refused by magic.
	for _, tg := range []struct {
		machine  string
		bits     int
		be, pack bool
	}{{"s390x", 64, true, false}, {"i686", 32, false, true}, {"armv7l", 32, false, false}, {"mystery", 32, true, false}} {
		s := small
		s.machine, s.bits, s.be, s.pack = tg.machine, tg.bits, tg.be, tg.pack
		out = append(out, buildKdump(s))
	}
	out = append(out, buildKdump(kdSpec{version: 6, blockSize: 512, empty: true}))
	for _, u := range unsupportedSamples()[:6] {
		out = append(out, u.data[:min(len(u.data), 4200)])
	}
	return out
}

func flatSeeds(t testing.TB) [][]byte {
	k := kdumpSeeds(t)
	e := elfSeeds()
	return [][]byte{
		flatten(k[0], 300, true, true, 1),
		flatten(e[2], 100, false, false, 2),
		buildFlat([]flatRecord{{5, []byte("xy")}, {0, []byte("KDUMP")}, {3, []byte("abc")}}, false),
	}
}

// TestWriteFuzzSeeds regenerates testdata/fuzz/Fuzz*/seed-* from the
// builders when VMLEAK_WRITE_SEEDS=1; go test replays them otherwise.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("VMLEAK_WRITE_SEEDS") != "1" {
		t.Skip("set VMLEAK_WRITE_SEEDS=1 to regenerate the seed corpus")
	}
	for name, seeds := range map[string][][]byte{
		"FuzzELF":   elfSeeds(),
		"FuzzKdump": kdumpSeeds(t),
		"FuzzFlat":  flatSeeds(t),
	} {
		dir := filepath.Join("testdata", "fuzz", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range seeds {
			body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(s)) + ")\n"
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%d", i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
