package elfcore

import "testing"

func TestMachineFromPRStatus(t *testing.T) {
	core := func(n int) Note { return Note{Name: "CORE", Type: ntPRStatus, Desc: make([]byte, n)} }
	for _, c := range []struct {
		name  string
		notes []Note
		want  string
	}{
		{"x86_64", []Note{core(336), core(336)}, "x86_64"},
		{"aarch64", []Note{core(392), {Name: "VMCOREINFO", Type: ntVMCOREINFO, Desc: make([]byte, 392)}, core(392)}, "aarch64"},
		{"mixed", []Note{core(336), core(392)}, ""},
		{"odd size", []Note{core(392), core(400)}, ""},
		{"none", []Note{{Name: "QEMU", Type: ntQEMU, Desc: make([]byte, 392)}}, ""},
	} {
		if got := machineFromPRStatus(c.notes); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
