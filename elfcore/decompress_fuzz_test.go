package elfcore

import (
	"bytes"
	stdzlib "compress/zlib"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/vmleak/vmleak/internal/fuzzseed"
)

// Each decompressor path of a kdump page, fuzzed on its own: a page's
// encoded bytes come straight from the file, and a crafted page must give
// an error or exactly one block of output, never more, never a panic. The
// block size (512 bytes to 64 KiB, as kdump headers allow) is the second
// argument: 1 << (9 + shift%8).

func blockOf(shift uint8) int { return 1 << (9 + shift%8) }

// decodeTwice decodes src into two buffers prefilled differently: a success
// must write every byte of the block, the same bytes both times.
func decodeTwice(t *testing.T, src []byte, flags uint32, n int) ([]byte, error) {
	t.Helper()
	a, b := bytes.Repeat([]byte{0xa5}, n), bytes.Repeat([]byte{0x5a}, n)
	errA := decompressPage(a, src, flags)
	errB := decompressPage(b, src, flags)
	if (errA == nil) != (errB == nil) {
		t.Fatalf("decoding twice: %v, then %v", errA, errB)
	}
	if errA != nil {
		return nil, errA
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("a successful decode left bytes of the buffer unwritten")
	}
	return a, nil
}

// seedPages are the fixture pages' encodings for one codec, and a
// truncated copy of each.
func seedPages(t testing.TB, ext string) [][]any {
	var out [][]any
	for i := 0; i < 4; i++ {
		b, err := os.ReadFile(filepath.Join("testdata", "pages", "page"+string(rune('0'+i))+"."+ext))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, []any{b, uint8(3)}, []any{b[:len(b)/2], uint8(3)})
	}
	return out
}

func addSeeds(f *testing.F, ext string) {
	for _, s := range seedPages(f, ext) {
		f.Add(s[0].([]byte), s[1].(uint8))
	}
}

// FuzzZlibPage checks inflate against the standard library's zlib reader
// as the reference: both must agree on whether src is exactly one block
// with a valid checksum, and on its bytes.
func FuzzZlibPage(f *testing.F) {
	addSeeds(f, "zlib")
	f.Fuzz(func(t *testing.T, src []byte, shift uint8) {
		n := blockOf(shift)
		got, err := decodeTwice(t, src, dumpDHCompressedZlib, n)
		want, refErr := refInflate(src, n)
		if (err == nil) != (refErr == nil) {
			t.Fatalf("decompressPage: %v; reference: %v", err, refErr)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("decompressPage and the reference disagree on the bytes")
		}
	})
}

// refInflate is the reference: the whole stream must decode to exactly n
// bytes and end there (which checks the Adler-32).
func refInflate(src []byte, n int) ([]byte, error) {
	zr, err := stdzlib.NewReader(bytes.NewReader(src))
	if err != nil {
		return nil, err
	}
	out, err := io.ReadAll(io.LimitReader(zr, int64(n)+1))
	if err != nil {
		return nil, err
	}
	if len(out) != n {
		return nil, errSizeMismatch
	}
	return out, nil
}

func FuzzLZOPage(f *testing.F) {
	addSeeds(f, "lzo")
	f.Fuzz(func(t *testing.T, src []byte, shift uint8) {
		decodeTwice(t, src, dumpDHCompressedLZO, blockOf(shift))
	})
}

func FuzzSnappyPage(f *testing.F) {
	addSeeds(f, "snappy")
	f.Fuzz(func(t *testing.T, src []byte, shift uint8) {
		decodeTwice(t, src, dumpDHCompressedSnappy, blockOf(shift))
	})
}

func FuzzZstdPage(f *testing.F) {
	addSeeds(f, "zst")
	f.Fuzz(func(t *testing.T, src []byte, shift uint8) {
		decodeTwice(t, src, dumpDHCompressedZstd, blockOf(shift))
	})
}

// The fixture pages decode to their raw bytes through every path: the
// targets' seeds are real pages, not noise.
func TestSeedPagesDecode(t *testing.T) {
	for _, c := range codecs {
		for i := 0; i < 4; i++ {
			got := make([]byte, 4096)
			if err := decompressPage(got, fixturePage(t, i, c.ext), c.flags); err != nil {
				t.Fatalf("%s page %d: %v", c.name, i, err)
			}
			if !bytes.Equal(got, fixturePage(t, i, "raw")) {
				t.Errorf("%s page %d decodes to other bytes", c.name, i)
			}
		}
	}
}

func TestWriteDecompressSeeds(t *testing.T) {
	fuzzseed.Enabled(t)
	for target, ext := range map[string]string{"FuzzZlibPage": "zlib", "FuzzLZOPage": "lzo", "FuzzSnappyPage": "snappy", "FuzzZstdPage": "zst"} {
		fuzzseed.Write(t, target, seedPages(t, ext))
	}
}
