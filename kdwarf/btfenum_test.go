package kdwarf

import (
	"bytes"
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/vmleak/vmleak/internal/fixture"
)

// The raw enumerator scan gives what decoding every type gives, on every
// lab kernel's BTF (5.10's ENUM only; 6.1+ with signed ENUM and ENUM64).
func TestScanBTFEnumsMatchesSpec(t *testing.T) {
	for _, k := range fixture.Kernels() {
		t.Run(k.Release, func(t *testing.T) {
			f, err := Open(k.Vmlinux(), WithStartupCache(""))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			b, err := f.sectionData(f.ef.Section(".BTF"))
			if err != nil {
				t.Fatal(err)
			}
			fast, err := scanBTFEnums(b)
			if err != nil {
				t.Fatal(err)
			}
			spec, err := btf.LoadSpecFromReader(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			slow := map[string]int64{}
			for ty, err := range spec.All() {
				if err != nil {
					t.Fatal(err)
				}
				if e, ok := ty.(*btf.Enum); ok {
					for _, v := range e.Values {
						if _, dup := slow[v.Name]; !dup {
							slow[v.Name] = int64(v.Value)
						}
					}
				}
			}
			if len(fast) != len(slow) || len(fast) < 1000 {
				t.Errorf("%d enumerators scanned, %d decoded", len(fast), len(slow))
			}
			for n, v := range slow {
				if fast[n] != v {
					t.Errorf("%s: scanned %d, decoded %d", n, fast[n], v)
				}
			}
		})
	}
}

func TestScanBTFEnumsBadInput(t *testing.T) {
	for _, b := range [][]byte{nil, {0x9f, 0xeb}, bytes.Repeat([]byte{0xff}, 64),
		{0x9f, 0xeb, 1, 0, 24, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}} {
		if _, err := scanBTFEnums(b); err == nil {
			t.Errorf("%x: no error", b)
		}
	}
}

// The raw .symtab reader gives what debug/elf's Symbols gives, entry for
// entry, on every lab kernel.
func TestReadSymtabMatchesDebugELF(t *testing.T) {
	for _, k := range fixture.Kernels() {
		t.Run(k.Release, func(t *testing.T) {
			f, err := Open(k.Vmlinux(), WithStartupCache(""))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fast, err := readSymtab(f.ef, f.sectionData)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := f.ef.Symbols()
			if err != nil {
				t.Fatal(err)
			}
			var slow []Symbol
			for _, s := range raw {
				if sym, ok := symbolOf(f.ef, s.Name, s.Info, s.Section, s.Value, s.Size); ok {
					slow = append(slow, sym)
				}
			}
			if len(fast) != len(slow) || len(fast) < 10000 {
				t.Fatalf("%d symbols read, debug/elf gives %d", len(fast), len(slow))
			}
			for i := range slow {
				if fast[i] != slow[i] {
					t.Fatalf("symbol %d: %+v, debug/elf %+v", i, fast[i], slow[i])
				}
			}
		})
	}
}
