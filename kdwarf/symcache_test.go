package kdwarf

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/vmleak/vmleak/internal/fixture"
)

// openStartup opens path with the start-up cache in dir.
func openStartup(t testing.TB, path, dir string) *File {
	t.Helper()
	f, err := Open(path, WithCacheDir(""), WithStartupCache(dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// sameSymbols checks that b (from the cache) answers every question a
// (from .symtab) does, identically.
func sameSymbols(t *testing.T, a, b *File) {
	t.Helper()
	sa, err := a.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	if !b.SymbolsFromCache() {
		if _, err := b.Symbol(sa[0].Name); err != nil {
			t.Fatal(err)
		}
	}
	if !b.SymbolsFromCache() {
		t.Fatalf("symbols not read from the start-up cache: %v", b.StartupCacheError())
	}
	sb, err := b.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sa, sb) {
		t.Fatalf("Symbols differ: %d from .symtab, %d from the cache", len(sa), len(sb))
	}
	st, _ := a.symbols()
	for _, s := range st.all {
		x, errA := a.Symbol(s.Name)
		y, errB := b.Symbol(s.Name)
		if x != y || (errA == nil) != (errB == nil) {
			t.Fatalf("Symbol(%s): %+v from .symtab, %+v from the cache", s.Name, x, y)
		}
		for _, addr := range []uint64{s.Value, s.Value + 1, s.Value + s.Size} {
			x, xo, xok := a.SymbolAt(addr)
			y, yo, yok := b.SymbolAt(addr)
			if x != y || xo != yo || xok != yok {
				t.Fatalf("SymbolAt(%#x): %+v from .symtab, %+v from the cache", addr, x, y)
			}
			x, xo, xok = a.PerCPUSymbolAt(addr)
			y, yo, yok = b.PerCPUSymbolAt(addr)
			if x != y || xo != yo || xok != yok {
				t.Fatalf("PerCPUSymbolAt(%#x): %+v from .symtab, %+v from the cache", addr, x, y)
			}
		}
	}
	for _, name := range []string{"", "nope", "no such symbol at all"} {
		if _, err := b.Symbol(name); !errors.Is(err, ErrNotFound) {
			t.Errorf("Symbol(%q) from the cache: %v", name, err)
		}
	}
}

// The cache answers exactly what .symtab does, on the synthetic shared
// object and on the lab's vmlinux.
func TestSymCacheRoundTrip(t *testing.T) {
	paths := []string{object(t, "so")}
	if k := fixture.KernelOf(t, "bookworm"); k != nil {
		paths = append(paths, k.Vmlinux())
	}
	for _, p := range paths {
		dir := t.TempDir()
		a := openStartup(t, p, dir)
		if _, err := a.Symbol("nope"); !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
		if a.SymbolsFromCache() {
			t.Fatal("an empty cache answered")
		}
		sameSymbols(t, a, openStartup(t, p, dir))
	}
}

// copyFile copies the synthetic object, so its identity can change.
func copyFile(t *testing.T, src string) string {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	dst := filepath.Join(t.TempDir(), "so")
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	out.Close()
	return dst
}

// A corrupt, truncated or crafted cache file is never believed: it is
// ignored (StartupCacheError says why), the symbols come from .symtab and
// the file is rewritten.
func TestSymCacheCorrupt(t *testing.T) {
	so := copyFile(t, object(t, "so"))
	dir := t.TempDir()
	fresh := openStartup(t, so, dir)
	if _, err := fresh.Symbol("g_bits"); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.sym"))
	if len(files) != 1 {
		t.Fatalf("cache files %v", files)
	}
	path := files[0]
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	reseal := func(b []byte) []byte {
		binary.LittleEndian.PutUint32(b[48:], crc32.Checksum(b[symHeaderSize:], castagnoli))
		return b
	}
	keyLen := int(binary.LittleEndian.Uint32(good[12:]))
	nsym := int(binary.LittleEndian.Uint32(good[16:]))
	recs := symHeaderSize + keyLen
	slots := recs + nsym*symRecSize + 4*int(binary.LittleEndian.Uint32(good[20:])+binary.LittleEndian.Uint32(good[24:]))
	nslot := int(binary.LittleEndian.Uint32(good[28:]))
	for _, tc := range []struct {
		name string
		edit func(b []byte) []byte
	}{
		{"empty", func(b []byte) []byte { return nil }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }},
		{"header only", func(b []byte) []byte { return b[:symHeaderSize] }},
		{"magic", func(b []byte) []byte { b[0] ^= 1; return b }},
		{"version", func(b []byte) []byte { b[8]++; return b }},
		{"flipped byte", func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b }},
		{"other key", func(b []byte) []byte { b[symHeaderSize] ^= 1; return reseal(b) }},
		{"name out of bounds", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[recs+16:], 1<<30)
			return reseal(b)
		}},
		{"bad section", func(b []byte) []byte {
			binary.LittleEndian.PutUint16(b[recs+24:], 0x7fff)
			return reseal(b)
		}},
		{"slot out of bounds", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[slots:], uint32(nsym+1))
			return reseal(b)
		}},
		{"full name table", func(b []byte) []byte {
			for k := range nslot {
				binary.LittleEndian.PutUint32(b[slots+4*k:], 1)
			}
			return reseal(b)
		}},
		{"counts", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[28:], uint32(nsym))
			return reseal(b)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(path, tc.edit(slices.Clone(good)), 0o600); err != nil {
				t.Fatal(err)
			}
			f := openStartup(t, so, dir)
			s, err := f.Symbol("g_bits")
			if err != nil || s.Name != "g_bits" {
				t.Fatalf("Symbol(g_bits) = %+v, %v", s, err)
			}
			var ce *CacheError
			if f.SymbolsFromCache() || !errors.As(f.StartupCacheError(), &ce) {
				t.Fatalf("corrupt cache used (from cache %v, error %v)", f.SymbolsFromCache(), f.StartupCacheError())
			}
			again := openStartup(t, so, dir)
			sameSymbols(t, f, again) // rewritten, and read back
		})
	}
	// A changed file (mtime) has another key: the old cache is not used.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(so, later, later); err != nil {
		t.Fatal(err)
	}
	f := openStartup(t, so, dir)
	if _, err := f.Symbol("g_bits"); err != nil {
		t.Fatal(err)
	}
	if f.SymbolsFromCache() {
		t.Fatal("the cache of the file before its change was used")
	}
	// Disabled: nothing is read or written.
	off := t.TempDir()
	g, err := Open(so, WithStartupCache(""), WithCacheDir(""))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := g.Symbol("g_bits"); err != nil || g.SymbolsFromCache() {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(off); len(ents) != 0 {
		t.Fatalf("disabled cache wrote %v", ents)
	}
}

// Whatever the bytes, decoding neither panics nor returns a table whose
// look-ups do.
func FuzzDecodeSymCache(f *testing.F) {
	st := newSymtab([]Symbol{
		{Name: "a", Value: 0x1000, Size: 8, Kind: SymObject, Section: ".data", Global: true},
		{Name: "b", Value: 0x2000, Size: 16, Kind: SymFunc, Section: ".text"},
		{Name: "pc", Value: 0x10, Size: 8, Kind: SymObject, Section: PerCPUSection},
		{Name: "abs", Value: 0x5},
	})
	f.Add(encodeSymCache("k", st))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeSymCache("fuzz", b, "k")
		if err != nil {
			return
		}
		for _, n := range []string{"a", "b", "pc", "abs", "zz"} {
			c.lookup(n)
		}
		c.addrLists()
	})
}
