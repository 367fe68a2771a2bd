package kdwarf

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
)

var (
	cacheEnums = []string{"PG_slab", "NR_SLAB_RECLAIMABLE_B", "ZONE_NORMAL", "NO_SUCH_ENUMERATOR"}
	cacheHas   = []string{"struct kmem_cache_cpu", "struct slab", "struct no_such_struct", "union no_such_union"}
)

// typeAnswers asks a File what the commands ask: types (some absent),
// enumerators, Has and HasEnumerator probes, the source.
type typeAnswer struct {
	t    *Type
	err  string
	v    int64
	has  bool
	name string
}

func askTypes(t *testing.T, f *File, names []string) []typeAnswer {
	t.Helper()
	var out []typeAnswer
	for _, n := range names {
		ty, err := f.Type(n)
		a := typeAnswer{t: ty, name: n}
		if err != nil {
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("Type(%s): %v", n, err)
			}
			a.err = err.Error()
		}
		out = append(out, a)
	}
	for _, n := range cacheEnums {
		v, err := f.Enumerator(n)
		a := typeAnswer{v: v, name: n}
		if err != nil {
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("Enumerator(%s): %v", n, err)
			}
			a.err = err.Error()
		}
		out = append(out, a, typeAnswer{has: f.HasEnumerator(n), name: "hasEnum " + n})
	}
	for _, n := range cacheHas {
		out = append(out, typeAnswer{has: f.Has(n), name: "has " + n})
	}
	return append(out, typeAnswer{name: "source " + f.Source()})
}

// The type cache answers what BTF does, without loading it, on the lab's
// 6.1 vmlinux; a question it cannot answer still goes to BTF.
func TestTypeCacheRoundTrip(t *testing.T) {
	k := fixture.KernelOf(t, "bookworm")
	if k == nil {
		return
	}
	names := append(slices.Clone(realTypes), "struct page *", "unsigned long", "struct no_such_thing", "no_such_typedef")
	dir := t.TempDir()
	a, err := Open(k.Vmlinux(), WithCacheDir(""), WithStartupCache(dir))
	if err != nil {
		t.Fatal(err)
	}
	want := askTypes(t, a, names)
	a.Close() // writes the cache
	b := openStartup(t, k.Vmlinux(), dir)
	got := askTypes(t, b, names)
	if !b.TypesFromCache() {
		t.Fatalf("types not read from the cache: %v", b.TypeCacheError())
	}
	if b.btfDone {
		t.Error("BTF was loaded though the cache answered everything")
	}
	for i := range want {
		if !reflect.DeepEqual(want[i], got[i]) {
			t.Errorf("%s: %+v from BTF, %+v from the cache", want[i].name, want[i], got[i])
		}
	}
	// A new question loads BTF, and the answer joins the cache on Close.
	if _, err := b.Type("struct kset"); err != nil {
		t.Fatal(err)
	}
	if !b.btfDone {
		t.Error("a question the cache cannot answer did not load BTF")
	}
	b.Close()
	// Another source asked for: the cache of the first is not used.
	dw, err := Open(k.Vmlinux(), WithSource(SourceDWARF), WithStartupCache(dir), WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if dw.Source() != "dwarf" || dw.TypesFromCache() {
		t.Errorf("SourceDWARF answered from the cache of SourceAuto: source %q", dw.Source())
	}
	dw.Close()
	c := openStartup(t, k.Vmlinux(), dir)
	if _, err := c.Type("struct kset"); err != nil || c.btfDone {
		t.Errorf("struct kset not cached (err %v, BTF loaded %v)", err, c.btfDone)
	}
}

// A corrupt or crafted type cache is ignored and rewritten; the answers
// come from the file.
func TestTypeCacheCorrupt(t *testing.T) {
	so := copyFile(t, object(t, "so"))
	dir := t.TempDir()
	names := []string{"struct bits", "struct nest", "struct self", "union u", "struct nope"}
	a, err := Open(so, WithCacheDir(t.TempDir()), WithStartupCache(dir))
	if err != nil {
		t.Fatal(err)
	}
	want := askTypes(t, a, names)
	a.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "*.types"))
	if len(files) != 1 {
		t.Fatalf("cache files %v", files)
	}
	path := files[0]
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	reseal := func(b []byte) []byte {
		binary.LittleEndian.PutUint32(b[20:], crc32.Checksum(b[typeHeaderSize:], castagnoli))
		return b
	}
	for _, tc := range []struct {
		name string
		edit func(b []byte) []byte
	}{
		{"empty", func(b []byte) []byte { return nil }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }},
		{"magic", func(b []byte) []byte { b[1] ^= 1; return b }},
		{"version", func(b []byte) []byte { b[8]++; return b }},
		{"flipped byte", func(b []byte) []byte { b[len(b)/2] ^= 0x20; return b }},
		{"truncated, resealed", func(b []byte) []byte {
			b = b[:len(b)-3]
			binary.LittleEndian.PutUint64(b[12:], uint64(len(b)))
			return reseal(b)
		}},
		{"trailing, resealed", func(b []byte) []byte {
			b = append(b, 0)
			binary.LittleEndian.PutUint64(b[12:], uint64(len(b)))
			return reseal(b)
		}},
		{"huge count, resealed", func(b []byte) []byte {
			// the type count follows the key and the source
			off := typeHeaderSize + 4 + int(binary.LittleEndian.Uint32(b[typeHeaderSize:]))
			off += 4 + int(binary.LittleEndian.Uint32(b[off:]))
			binary.LittleEndian.PutUint32(b[off:], 1<<31)
			return reseal(b)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(path, tc.edit(slices.Clone(good)), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := Open(so, WithCacheDir(t.TempDir()), WithStartupCache(dir))
			if err != nil {
				t.Fatal(err)
			}
			got := askTypes(t, f, names)
			var ce *CacheError
			if f.TypesFromCache() || !errors.As(f.TypeCacheError(), &ce) {
				t.Fatalf("corrupt cache used (from cache %v, error %v)", f.TypesFromCache(), f.TypeCacheError())
			}
			for i := range want {
				if !reflect.DeepEqual(want[i], got[i]) {
					t.Errorf("%s: %+v, want %+v", want[i].name, got[i], want[i])
				}
			}
			f.Close() // rewrites it
			g := openStartup(t, so, dir)
			askTypes(t, g, names)
			if !g.TypesFromCache() {
				t.Errorf("not rewritten: %v", g.TypeCacheError())
			}
		})
	}
}

// Whatever the bytes, decoding neither panics nor yields a type without
// the type its kind needs.
func FuzzDecodeTypeCache(f *testing.F) {
	src := &File{}
	src.tc = typeAnswers{typeMiss: map[string]error{"struct x": notFound(Struct, "x")}, enumMiss: map[string]error{}, has: map[string]bool{"struct y": true}, hasEnum: map[string]bool{}}
	self := &Type{Kind: Struct, Name: "self", Size: 16}
	self.Members = []Member{{Name: "next", Type: &Type{Kind: Pointer, Size: 8, Elem: self}}}
	src.byName = map[string]*Type{"struct self": self, "int": {Kind: Base, Name: "int", Size: 4, Signed: true}}
	src.enumVal = map[string]int64{"A": 1}
	src.source = "btf"
	f.Add(src.encodeTypeCache("k"))
	f.Fuzz(func(t *testing.T, b []byte) {
		g := &File{}
		g.tc = typeAnswers{typeMiss: map[string]error{}, enumMiss: map[string]error{}, has: map[string]bool{}, hasEnum: map[string]bool{}}
		if g.decodeTypeCache("fuzz", b, "k") != nil {
			return
		}
		for _, ty := range g.byName {
			switch ty.Kind {
			case Pointer, Array, Typedef, Const, Volatile, Restrict:
				if ty.Elem == nil {
					t.Fatalf("%s without its type", ty.Kind)
				}
			}
		}
	})
}
