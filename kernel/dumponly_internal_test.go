package kernel

import (
	"strings"
	"testing"

	"github.com/vmleak/vmleak/kdwarf"
)

const testKASLR = 0x1000000

// runtime is a link-time address of the test kernel, at run time.
func runtime(link uint64) uint64 { return link + testKASLR }

func symIndex(t *testing.T, syms []kdwarf.Symbol) map[string]kdwarf.Symbol {
	t.Helper()
	m := map[string]kdwarf.Symbol{}
	for _, s := range syms {
		m[s.Name] = s
	}
	return m
}

func wantSym(t *testing.T, m map[string]kdwarf.Symbol, want kdwarf.Symbol) {
	t.Helper()
	if have, ok := m[want.Name]; !ok || have != want {
		t.Errorf("%s:\nhave %+v\nwant %+v", want.Name, have, want)
	}
}

// The kallsyms of a 6.1 kernel: absolute per-CPU symbols ('A', offsets).
func TestSymbolsFromKallsymsAbsolutePerCPU(t *testing.T) {
	const text, ro, data, bss = 0xffffffff81000000, 0xffffffff82000000, 0xffffffff82400000, 0xffffffff83000000
	ks := []KSym{
		{"__per_cpu_start", 0, 'A'}, {"cpu_number", 0x20, 'A'}, {"runqueues", 0x100, 'A'}, {"__per_cpu_end", 0x200, 'A'},
		{"_text", runtime(text), 'T'}, {"_stext", runtime(text), 'T'},
		{"f1", runtime(text + 0x100), 't'}, {"f2", runtime(text + 0x180), 'T'}, {"_etext", runtime(text + 0x1000), 'T'},
		{"__start_rodata", runtime(ro), 'R'}, {"ro1", runtime(ro + 0x10), 'r'},
		{"__per_cpu_offset", runtime(ro + 0x40), 'D'}, // ro_after_init: in .rodata, typed D
		{"__start_BTF", runtime(ro + 0x100), 'R'}, {"__stop_BTF", runtime(ro + 0x900), 'R'},
		{"__end_rodata", runtime(ro + 0x1000), 'R'},
		{"_sdata", runtime(data), 'D'}, {"init_task", runtime(data + 0x40), 'D'}, {"_edata", runtime(data + 0x1000), 'D'},
		{"__bss_start", runtime(bss), 'B'}, {"bv", runtime(bss + 8), 'b'}, {"__bss_stop", runtime(bss + 0x100), 'B'},
		{"stray", runtime(bss + 0x10000), 'd'}, // in no marker range
		{"abs", 0x1234, 'a'},
	}
	syms, secs := symbolsFromKallsyms(ks, testKASLR)
	m := symIndex(t, syms)
	wantSym(t, m, kdwarf.Symbol{Name: "f1", Value: text + 0x100, Size: 0x80, Kind: kdwarf.SymFunc, Section: ".text", SizeBound: true})
	wantSym(t, m, kdwarf.Symbol{Name: "f2", Value: text + 0x180, Size: 0xe80, Kind: kdwarf.SymFunc, Section: ".text", Global: true, SizeBound: true})
	wantSym(t, m, kdwarf.Symbol{Name: "_stext", Value: text, Size: 0x100, Kind: kdwarf.SymFunc, Section: ".text", Global: true, SizeBound: true})
	wantSym(t, m, kdwarf.Symbol{Name: "__per_cpu_offset", Value: ro + 0x40, Size: 0xc0, Kind: kdwarf.SymObject, Section: ".rodata", Global: true, SizeBound: true})
	// The most specific range names the section.
	wantSym(t, m, kdwarf.Symbol{Name: "__start_BTF", Value: ro + 0x100, Size: 0x800, Kind: kdwarf.SymOther, Section: ".BTF", Global: true, SizeBound: true})
	wantSym(t, m, kdwarf.Symbol{Name: "init_task", Value: data + 0x40, Size: 0xfc0, Kind: kdwarf.SymObject, Section: ".data", Global: true, SizeBound: true})
	wantSym(t, m, kdwarf.Symbol{Name: "bv", Value: bss + 8, Size: 0xf8, Kind: kdwarf.SymObject, Section: ".bss", SizeBound: true})
	// Outside every range: the letter names the section; the size runs to
	// the next symbol, here none.
	wantSym(t, m, kdwarf.Symbol{Name: "stray", Value: bss + 0x10000, Kind: kdwarf.SymObject, Section: ".data"})
	wantSym(t, m, kdwarf.Symbol{Name: "abs", Value: 0x1234, Kind: kdwarf.SymOther})
	// Per-CPU: offsets, sized to the next variable or the end of the area.
	wantSym(t, m, kdwarf.Symbol{Name: "cpu_number", Value: 0x20, Size: 0xe0, Kind: kdwarf.SymObject, Section: kdwarf.PerCPUSection, Global: true, SizeBound: true})
	wantSym(t, m, kdwarf.Symbol{Name: "runqueues", Value: 0x100, Size: 0x100, Kind: kdwarf.SymObject, Section: kdwarf.PerCPUSection, Global: true, SizeBound: true})
	wantSym(t, m, kdwarf.Symbol{Name: "__per_cpu_end", Value: 0x200, Kind: kdwarf.SymOther, Section: kdwarf.PerCPUSection, Global: true})

	want := map[string]kdwarf.Section{
		".text":              {Name: ".text", Addr: text, Size: 0x1000, Exec: true},
		".rodata":            {Name: ".rodata", Addr: ro, Size: 0x1000},
		".BTF":               {Name: ".BTF", Addr: ro + 0x100, Size: 0x800},
		".data":              {Name: ".data", Addr: data, Size: 0x1000},
		".bss":               {Name: ".bss", Addr: bss, Size: 0x100},
		kdwarf.PerCPUSection: {Name: kdwarf.PerCPUSection, Addr: 0, Size: 0x200},
	}
	if len(secs) != len(want) {
		t.Errorf("sections %+v", secs)
	}
	for _, s := range secs {
		if want[s.Name] != s {
			t.Errorf("section %+v, want %+v", s, want[s.Name])
		}
	}
}

// The kallsyms of a 7.x kernel: per-CPU symbols at their addresses, and
// data typed 't'.
func TestSymbolsFromKallsymsPerCPUAddresses(t *testing.T) {
	const text, data, pcpu = 0xffffffff81000000, 0xffffffff83200000, 0xffffffff83da5000
	ks := []KSym{
		{"_text", runtime(text), 'T'}, {"f", runtime(text + 0x10), 'T'}, {"_etext", runtime(text + 0x1000), 'T'},
		{"_sdata", runtime(data), 'D'}, {"init_task", runtime(data + 0x40), 'T'}, {"_edata", runtime(data + 0x1000), 'D'},
		{"__per_cpu_start", runtime(pcpu), 'D'}, {"runqueues", runtime(pcpu + 0x100), 'd'}, {"__per_cpu_end", runtime(pcpu + 0x200), 'D'},
	}
	syms, secs := symbolsFromKallsyms(ks, testKASLR)
	m := symIndex(t, syms)
	wantSym(t, m, kdwarf.Symbol{Name: "init_task", Value: data + 0x40, Size: 0xfc0, Kind: kdwarf.SymObject, Section: ".data", Global: true, SizeBound: true})
	wantSym(t, m, kdwarf.Symbol{Name: "f", Value: text + 0x10, Size: 0xff0, Kind: kdwarf.SymFunc, Section: ".text", Global: true, SizeBound: true})
	wantSym(t, m, kdwarf.Symbol{Name: "runqueues", Value: pcpu + 0x100, Size: 0x100, Kind: kdwarf.SymObject, Section: kdwarf.PerCPUSection, SizeBound: true})
	found := false
	for _, s := range secs {
		if s.Name == kdwarf.PerCPUSection {
			found = s == kdwarf.Section{Name: kdwarf.PerCPUSection, Addr: pcpu, Size: 0x200}
		}
	}
	if !found {
		t.Errorf("no per-CPU section at its link address in %+v", secs)
	}
	// Linked at its address, the section's symbols move with KASLR.
	k := &Kernel{lay: Layout{KASLROffset: testKASLR}}
	f, err := kdwarf.FromBTF(kdwarf.Image{BTF: minimalBTF, Symbols: syms, Sections: secs})
	if err != nil {
		t.Fatal(err)
	}
	k.types = f
	if va, err := k.Symbol("runqueues"); err != nil || va != runtime(pcpu+0x100) {
		t.Errorf("runqueues at %#x, %v", va, err)
	}
}

// minimalBTF is a BTF header with no types and an empty string table.
var minimalBTF = []byte{
	0x9f, 0xeb, 1, 0, 24, 0, 0, 0, // magic, version, flags, hdr_len
	0, 0, 0, 0, 0, 0, 0, 0, // type_off, type_len
	0, 0, 0, 0, 1, 0, 0, 0, // str_off, str_len
	0,
}

func TestBTFBounds(t *testing.T) {
	if _, _, err := btfBounds([]KSym{{"__start_BTF", 0x1000, 'R'}}); err == nil || !strings.Contains(err.Error(), "without BTF") {
		t.Errorf("no __stop_BTF: %v", err)
	}
	k := &Kernel{}
	for _, c := range []struct {
		start, stop uint64
		want        string
	}{
		{0xffffffff82001000, 0xffffffff82000000, "is not after __start_BTF"},
		{0xffffffff82000000, 0xffffffff82000000, "is not after __start_BTF"},
		{0xffffffff82000000, 0xffffffff82000000 + 1<<30, "exceeds 64 MiB"},
	} {
		if _, err := k.readBTF(c.start, c.stop); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("readBTF(%#x, %#x): %v, want %q", c.start, c.stop, err, c.want)
		}
	}
}
