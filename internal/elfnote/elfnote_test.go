package elfnote

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var le = binary.LittleEndian

// hdr is a raw note header, sizes as given (they may lie).
func hdr(bo binary.ByteOrder, namesz, descsz, typ uint32) []byte {
	b := make([]byte, 12)
	bo.PutUint32(b, namesz)
	bo.PutUint32(b[4:], descsz)
	bo.PutUint32(b[8:], typ)
	return b
}

// note is a well-formed note: name NUL-terminated, name and desc padded to 4
// unless unpadded is set (then the desc is left as is).
func note(bo binary.ByteOrder, name string, typ uint32, desc []byte, unpadded bool) []byte {
	nm := append([]byte(name), 0)
	b := hdr(bo, uint32(len(nm)), uint32(len(desc)), typ)
	b = append(b, nm...)
	b = pad4(b)
	b = append(b, desc...)
	if !unpadded {
		b = pad4(b)
	}
	return b
}

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// summary renders what All yields, one line a note, for comparison.
func summary(b []byte, bo binary.ByteOrder) (string, error) {
	var lines []string
	for n, err := range All(b, bo) {
		if err != nil {
			return strings.Join(lines, "\n"), err
		}
		lines = append(lines, fmt.Sprintf("+%#x %q %d %x", n.Off, n.Name, n.Type, n.Desc))
	}
	return strings.Join(lines, "\n"), nil
}

func TestAll(t *testing.T) {
	id := []byte{0xde, 0xad, 0xbe, 0xef, 0x01}
	gnu := note(le, "GNU", NT_GNU_BUILD_ID, id, false) // 12 + 4 + 8 = 24 bytes
	core := note(le, "CORE", 1, []byte{1, 2, 3, 4, 5, 6, 7, 8}, false)
	for _, tc := range []struct {
		name    string
		b       []byte
		bo      binary.ByteOrder
		want    string // the notes yielded, before any error
		wantErr string // "" for none; else a substring of the *FormatError
		errOff  int
	}{
		{name: "empty", b: nil},
		{name: "one", b: gnu, want: `+0x0 "GNU" 3 deadbeef01`},
		{name: "big-endian", b: note(binary.BigEndian, "GNU", 3, id, false), bo: binary.BigEndian, want: `+0x0 "GNU" 3 deadbeef01`},
		{name: "several, desc padding respected", b: cat(gnu, core, gnu),
			want: `+0x0 "GNU" 3 deadbeef01` + "\n" + `+0x18 "CORE" 1 0102030405060708` + "\n" + `+0x34 "GNU" 3 deadbeef01`},
		{name: "name of 5 padded to 8", b: note(le, "CORE", 1, []byte{9}, false), want: `+0x0 "CORE" 1 09`},
		{name: "zero-length name and desc", b: cat(hdr(le, 0, 0, 7), gnu),
			want: `+0x0 "" 7 ` + "\n" + `+0xc "GNU" 3 deadbeef01`},
		{name: "zero note is yielded", b: cat(hdr(le, 0, 0, 0), gnu), want: `+0x0 "" 0 ` + "\n" + `+0xc "GNU" 3 deadbeef01`},
		{name: "last desc unpadded", b: cat(core, note(le, "GNU", 3, id, true)),
			want: `+0x0 "CORE" 1 0102030405060708` + "\n" + `+0x1c "GNU" 3 deadbeef01`},
		{name: "zero tail", b: cat(gnu, make([]byte, 8)), want: `+0x0 "GNU" 3 deadbeef01`},
		{name: "truncated header", b: cat(gnu, []byte{4, 0, 0, 0, 1, 0, 0, 0}), want: `+0x0 "GNU" 3 deadbeef01`,
			wantErr: "truncated header: 8 of 12", errOff: 24},
		{name: "header only, short", b: []byte{1}, wantErr: "truncated header: 1 of 12"},
		{name: "name past the end", b: cat(hdr(le, 9, 0, 1), []byte("CORE")), wantErr: "name size 9 and desc size 0 run past the 16-byte buffer"},
		{name: "name padding past the end", b: cat(hdr(le, 5, 0, 1), []byte("CORE\x00")), wantErr: "name size 5 and desc size 0 run past"},
		{name: "desc past the end", b: cat(gnu, hdr(le, 4, 9, 3), []byte("GNU\x00abcd")), want: `+0x0 "GNU" 3 deadbeef01`,
			wantErr: "name size 4 and desc size 9 run past the 44-byte buffer", errOff: 24},
		{name: "huge name size", b: cat(hdr(le, 0xffffffff, 0, 1), make([]byte, 16)), wantErr: "name size 4294967295"},
		{name: "huge desc size", b: cat(hdr(le, 4, 0xffffffff, 1), []byte("GNU\x00")), wantErr: "desc size 4294967295"},
		{name: "huge both", b: hdr(le, 0xffffffff, 0xffffffff, 1), wantErr: "run past"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bo := tc.bo
			if bo == nil {
				bo = le
			}
			have, err := summary(tc.b, bo)
			if have != tc.want {
				t.Errorf("notes:\n%s\nwant:\n%s", have, tc.want)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("error %v, want none", err)
				}
				return
			}
			var fe *FormatError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.wantErr) || fe.Off != tc.errOff {
				t.Fatalf("error %v, want a *FormatError at +%#x with %q", err, tc.errOff, tc.wantErr)
			}
		})
	}
}

// A descriptor aliases the buffer and cannot be appended into the next note.
func TestDescCapacity(t *testing.T) {
	b := cat(note(le, "A", 1, []byte{1, 2}, false), note(le, "B", 2, []byte{3}, false))
	for n, err := range All(b, le) {
		if err != nil {
			t.Fatal(err)
		}
		if cap(n.Desc) != len(n.Desc) {
			t.Errorf("note %q: desc len %d cap %d", n.Name, len(n.Desc), cap(n.Desc))
		}
	}
}

// Breaking out of the loop stops the iteration (no yield after false).
func TestAllStops(t *testing.T) {
	b := cat(note(le, "A", 1, nil, false), note(le, "B", 2, nil, false))
	count := 0
	for range All(b, le) {
		count++
		break
	}
	if count != 1 {
		t.Fatalf("%d notes after break, want 1", count)
	}
}

func TestBuildID(t *testing.T) {
	id := []byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88}
	for _, tc := range []struct {
		name string
		b    []byte
		want []byte
	}{
		{"none", nil, nil},
		{"found", note(le, "GNU", NT_GNU_BUILD_ID, id, false), id},
		{"after other notes", cat(note(le, "Xen", 6, []byte("xen-3.0"), false), note(le, "GNU", 4, []byte{1}, false), note(le, "GNU", NT_GNU_BUILD_ID, id, false)), id},
		{"other name", note(le, "GNUX", NT_GNU_BUILD_ID, id, false), nil},
		{"other type", note(le, "GNU", 4, id, false), nil},
		{"empty desc skipped", cat(note(le, "GNU", NT_GNU_BUILD_ID, nil, false), note(le, "GNU", NT_GNU_BUILD_ID, id, false)), id},
		{"malformed first", cat(hdr(le, 4, 100, 3), note(le, "GNU", NT_GNU_BUILD_ID, id, false)), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			have := BuildID(tc.b, le)
			if !bytes.Equal(have, tc.want) || (have == nil) != (tc.want == nil) {
				t.Fatalf("build-id %x, want %x", have, tc.want)
			}
			if len(have) > 0 {
				have[0] ^= 0xff // a copy: the buffer must not change
				if again := BuildID(tc.b, le); !bytes.Equal(again, tc.want) {
					t.Fatalf("BuildID returned the buffer itself")
				}
			}
		})
	}
}

// FuzzAll checks that no input panics, every note lies inside the input in
// order, and the iteration ends within len/12 notes.
func FuzzAll(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, bo := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
			count, prev := 0, -1
			for n, err := range All(b, bo) {
				if err != nil {
					var fe *FormatError
					if !errors.As(err, &fe) || fe.Off < 0 || fe.Off > len(b) {
						t.Fatalf("error %v", err)
					}
					break
				}
				count++
				if count > len(b)/headerSize {
					t.Fatalf("%d notes from %d bytes", count, len(b))
				}
				if n.Off <= prev || n.Off%4 != 0 || n.Off+headerSize > len(b) || len(n.Name) > len(b) {
					t.Fatalf("note at +%#x (previous +%#x) in %d bytes", n.Off, prev, len(b))
				}
				prev = n.Off
			}
			_ = BuildID(b, bo)
		}
	})
}

func fuzzSeeds() [][]byte {
	id := []byte{0xde, 0xad, 0xbe, 0xef}
	return [][]byte{
		note(le, "GNU", NT_GNU_BUILD_ID, id, false),
		cat(note(le, "CORE", 1, make([]byte, 16), false), note(le, "VMCOREINFO", 0, []byte("PAGESIZE=4096\n"), true)),
		cat(hdr(le, 0, 0, 0), make([]byte, 12)),
		cat(note(le, "GNU", 3, id, false), []byte{1, 2, 3}),
		hdr(le, 0xffffffff, 0xffffffff, 3),
		note(binary.BigEndian, "GNU", 3, id, false),
	}
}

// TestWriteFuzzSeeds regenerates testdata/fuzz/FuzzAll/seed-* when
// VMLEAK_WRITE_SEEDS=1; go test replays them otherwise.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("VMLEAK_WRITE_SEEDS") != "1" {
		t.Skip("set VMLEAK_WRITE_SEEDS=1 to regenerate the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzAll")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range fuzzSeeds() {
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(s)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
