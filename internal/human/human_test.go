package human

import "testing"

func TestBytes(t *testing.T) {
	for _, tc := range []struct {
		in   uint64
		want string
	}{{0, "0B"}, {1023, "1023B"}, {1024, "1.0K"}, {1536, "1.5K"}, {5 << 20, "5.0M"}, {3 << 30, "3.0G"}} {
		if got := Bytes(tc.in); got != tc.want {
			t.Errorf("Bytes(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestHexLine(t *testing.T) {
	hx, txt := HexLine([]byte("AB\x00\x1b~\x7f"))
	if hx != "41 42 00 1b 7e 7f" || txt != "AB..~." {
		t.Errorf("HexLine = %q %q", hx, txt)
	}
}
