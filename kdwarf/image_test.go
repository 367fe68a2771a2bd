package kdwarf

import (
	"errors"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// testBTF marshals a small BTF: struct foo { unsigned long a; int b; }
// and enum e { E_ONE = 1 }.
func testBTF(t *testing.T) []byte {
	t.Helper()
	ul := &btf.Int{Name: "long unsigned int", Size: 8}
	i := &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}
	foo := &btf.Struct{Name: "foo", Size: 16, Members: []btf.Member{
		{Name: "a", Type: ul}, {Name: "b", Type: i, Offset: 64},
	}}
	e := &btf.Enum{Name: "e", Size: 4, Values: []btf.EnumValue{{Name: "E_ONE", Value: 1}}}
	b, err := btf.NewBuilder([]btf.Type{foo, e}, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestFromBTF(t *testing.T) {
	syms := []Symbol{
		{Name: "_stext", Value: 0x1000, Size: 0x10, Kind: SymFunc, Section: ".text", Global: true, SizeBound: true},
		{Name: "f", Value: 0x1010, Size: 0x20, Kind: SymFunc, Section: ".text", Global: true, SizeBound: true},
		{Name: "v", Value: 0x2000, Size: 0x8, Kind: SymObject, Section: ".data", SizeBound: true},
		{Name: "pcv", Value: 0x40, Size: 0x8, Kind: SymObject, Section: PerCPUSection},
	}
	f, err := FromBTF(Image{
		Name: "test dump", BTF: testBTF(t), Symbols: syms, BuildID: []byte{1, 2, 3},
		Sections: []Section{{Name: ".text", Addr: 0x1000, Size: 0x1000, Exec: true}, {Name: PerCPUSection, Size: 0x100}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Source() != "btf" || !f.FromMemory() || f.ELF() != nil || f.Path() != "test dump" || string(f.BuildID()) != "\x01\x02\x03" {
		t.Errorf("source %q, from memory %v, ELF %v, path %q, build-id %x", f.Source(), f.FromMemory(), f.ELF(), f.Path(), f.BuildID())
	}
	st, err := f.Struct("foo")
	if err != nil || st.Size != 16 || len(st.Members) != 2 || st.Members[1].Offset != 8 {
		t.Errorf("struct foo: %+v, %v", st, err)
	}
	if p, err := f.Type("struct foo *"); err != nil || p.Size != 8 {
		t.Errorf("struct foo *: %+v, %v", p, err)
	}
	if v, err := f.Enumerator("E_ONE"); err != nil || v != 1 {
		t.Errorf("E_ONE = %d, %v", v, err)
	}
	if !f.Has("struct foo") || f.Has("struct bar") {
		t.Error("Has")
	}
	if _, err := f.Struct("bar"); !errors.Is(err, ErrNotFound) {
		t.Errorf("struct bar: %v", err)
	}
	if s, err := f.Symbol("v"); err != nil || s.Value != 0x2000 || !s.SizeBound {
		t.Errorf("symbol v: %+v, %v", s, err)
	}
	if s, off, ok := f.SymbolAt(0x1018); !ok || s.Name != "f" || off != 8 {
		t.Errorf("SymbolAt(0x1018) = %s+%#x, %v", s.Name, off, ok)
	}
	if s, off, ok := f.PerCPUSymbolAt(0x44); !ok || s.Name != "pcv" || off != 4 {
		t.Errorf("PerCPUSymbolAt(0x44) = %s+%#x, %v", s.Name, off, ok)
	}
	if sec, ok := f.Section(PerCPUSection); !ok || sec.Addr != 0 || sec.Size != 0x100 {
		t.Errorf("per-CPU section %+v, %v", sec, ok)
	}
	if len(f.Sections()) != 2 {
		t.Errorf("sections %+v", f.Sections())
	}
	// What needs the ELF file says so, and does not panic.
	if _, err := f.LineAt(0x1010); !errors.Is(err, ErrNoELF) || !errors.Is(err, ErrNoLines) {
		t.Errorf("LineAt: %v", err)
	}
	if _, err := f.SectionLineAt(".text", 0); !errors.Is(err, ErrNoELF) {
		t.Errorf("SectionLineAt: %v", err)
	}
	if _, err := f.ReadImage(0x1000, 8); !errors.Is(err, ErrNoELF) {
		t.Errorf("ReadImage: %v", err)
	}
}

func TestFromBTFBadInput(t *testing.T) {
	if _, err := FromBTF(Image{Name: "x"}); !errors.Is(err, ErrNoTypes) {
		t.Errorf("no BTF: %v", err)
	}
	raw := testBTF(t)
	for name, b := range map[string][]byte{
		"garbage":   []byte("not BTF at all, not even close"),
		"truncated": raw[:len(raw)/2],
	} {
		if _, err := FromBTF(Image{Name: "x", BTF: b}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
