package kdwarf

import (
	"debug/elf"
	"errors"
	"path/filepath"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/oracle"
)

// sampleFuncs are about n sized functions of sections secs, evenly
// spaced in address order: a spread over the file's compile units.
func sampleFuncs(t testing.TB, f *File, secs map[string]bool, n int) []Symbol {
	t.Helper()
	st, err := f.symbols()
	if err != nil {
		t.Fatal(err)
	}
	var all []Symbol
	byAddr, _ := st.addrs()
	for _, s := range byAddr {
		if s.Kind == SymFunc && s.Size > 0 && secs[s.Section] {
			all = append(all, s)
		}
	}
	step := max(1, len(all)/n)
	var out []Symbol
	for i := step / 2; i < len(all); i += step {
		out = append(out, all[i])
	}
	return out
}

// On every real vmlinux, the first, a middle and the last byte of a
// spread of functions in .text and .init.text have the line binutils'
// addr2line gives; finding units through .debug_aranges and through their
// own ranges agrees.
func TestRealLineAtAgainstAddr2line(t *testing.T) {
	if testing.Short() {
		t.Skip("reads real kernels")
	}
	for _, suite := range suites {
		t.Run(suite, func(t *testing.T) {
			k := fixture.KernelOf(t, suite)
			f := openReal(t, k.Vmlinux(), SourceBTF) // lines need no types
			var addrs []uint64
			for _, s := range sampleFuncs(t, f, map[string]bool{".text": true, ".init.text": true}, 250) {
				addrs = append(addrs, s.Value, s.Value+s.Size/2, s.Value+s.Size-1)
			}
			have := make([]Pos, len(addrs))
			known := 0
			for i, a := range addrs {
				p, err := f.LineAt(a)
				if err != nil && !errors.Is(err, ErrNotFound) {
					t.Fatalf("%#x: %v", a, err)
				}
				if p.Line > 0 {
					known++
				}
				have[i] = p
			}
			bad, decided := oracle.CompareLines(t, k.Vmlinux(), "", addrs, sourceLines(have))
			for _, b := range bad {
				t.Error(b)
			}
			if known < len(addrs)*3/4 {
				t.Errorf("%d of %d addresses have a line", known, len(addrs))
			}
			f.mu.Lock()
			li := f.lines
			f.mu.Unlock()
			t.Logf("%s: %d addresses agree with addr2line (%d with a line; llvm-addr2line decided %d); %d units, %d read",
				k.Release, len(addrs), known, decided, len(li.units), len(li.tables))

			// The same look-ups with every unit found by its DW_AT_ranges.
			byRanges := &lineIndex{secs: li.secs, order: li.order, units: li.units, tables: map[int]*lineTable{}}
			byRanges.unitRanges(nil)
			for i, a := range addrs {
				p, err := byRanges.at(a)
				if err != nil && !errors.Is(err, ErrNotFound) {
					t.Fatalf("%#x by unit ranges: %v", a, err)
				}
				if p != have[i] {
					t.Errorf("%#x: %s through .debug_aranges, %s through unit ranges", a, have[i], p)
				}
			}
		})
	}
}

// On every real kernel, the module debuginfo of isofs and qemu_fw_cfg
// (Debian's -dbg) agrees with addr2line -j for a spread of functions of
// every code section.
func TestRealSectionLineAtAgainstAddr2line(t *testing.T) {
	if testing.Short() {
		t.Skip("reads real kernels")
	}
	for _, suite := range suites {
		for _, mod := range []string{"fs/isofs/isofs.ko", "drivers/firmware/qemu_fw_cfg.ko"} {
			t.Run(suite+"/"+filepath.Base(mod), func(t *testing.T) {
				k := fixture.KernelOf(t, suite)
				path := filepath.Join(k.DebugDir(), "kernel", mod)
				f := openReal(t, path, SourceDWARF)
				code := map[string]bool{}
				for _, s := range f.ELF().Sections {
					if s.Flags&elf.SHF_EXECINSTR != 0 {
						code[s.Name] = true
					}
				}
				bySec := map[string][]uint64{}
				for _, s := range sampleFuncs(t, f, code, 40) {
					bySec[s.Section] = append(bySec[s.Section], s.Value, s.Value+s.Size/2, s.Value+s.Size-1)
				}
				compared, known := 0, 0
				for sec, offs := range bySec {
					have := make([]Pos, len(offs))
					for i, off := range offs {
						p, err := f.SectionLineAt(sec, off)
						if err != nil && !errors.Is(err, ErrNotFound) {
							t.Fatalf("%s+%#x: %v", sec, off, err)
						}
						if p.Line > 0 {
							known++
						}
						have[i] = p
						compared++
					}
					bad, _ := oracle.CompareLines(t, path, sec, offs, sourceLines(have))
					for _, b := range bad {
						t.Error(b)
					}
				}
				if len(bySec) < 2 || known < compared*3/4 {
					t.Errorf("%d sections, %d of %d offsets with a line", len(bySec), known, compared)
				}
				t.Logf("%d offsets in %d code sections agree with addr2line (%d with a line)", compared, len(bySec), known)
			})
		}
	}
}

func sourceLines(ps []Pos) []oracle.SourceLine {
	out := make([]oracle.SourceLine, len(ps))
	for i, p := range ps {
		out[i] = oracle.SourceLine{File: p.File, Line: p.Line}
	}
	return out
}
