package kdwarf

import (
	"bytes"
	"compress/gzip"
	"debug/dwarf"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// objects compiled from testdata/layout.c, once per test binary.
var (
	objOnce sync.Once
	objDir  string
	objErr  error
)

// object returns the path of testdata/layout.c compiled by gcc with the
// given flavor: "dwarf4" and "dwarf5" are relocatable objects (-c), "so" a
// linked shared object with a build-id (ET_DYN: the mapped, per-unit
// path), "lto" the same built with -flto, whose DWARF refers across units
// (DW_FORM_ref_addr: the whole-file path).
func object(t testing.TB, flavor string) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found: cannot compile testdata/layout.c")
	}
	// testdata/vmcores/build.sh installs clang; CI must not skip it.
	clang, err := exec.LookPath("clang")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("clang not found (make test installs it)")
		}
		t.Skip("clang not found: cannot compile testdata/layout.c with it")
	}
	objOnce.Do(func() {
		objDir, objErr = os.MkdirTemp("", "kdwarf-test-")
		if objErr != nil {
			return
		}
		src, _ := filepath.Abs("testdata/layout.c")
		for _, args := range [][]string{
			{"-c", "-g", "-gdwarf-4", "-O0", "-fno-eliminate-unused-debug-types", "-o", "dwarf4", src},
			{"-c", "-g", "-gdwarf-5", "-O0", "-fno-eliminate-unused-debug-types", "-o", "dwarf5", src},
			{"-shared", "-fPIC", "-g", "-gdwarf-5", "-O0", "-fno-eliminate-unused-debug-types", "-Wl,--build-id=sha1", "-o", "so", src},
			{"-shared", "-fPIC", "-g", "-gdwarf-5", "-O2", "-flto", "-fno-eliminate-unused-debug-types", "-Wl,--build-id=sha1", "-o", "lto", src},
			// clang, as some distributions build kernels with it.
			{"-c", "-g", "-gdwarf-4", "-O0", "-fstandalone-debug", "-o", "clang4", src},
			{"-c", "-g", "-gdwarf-5", "-O0", "-fstandalone-debug", "-o", "clang5", src},
		} {
			cc := gcc
			if out := args[len(args)-2]; out == "clang4" || out == "clang5" {
				cc = clang
			}
			cmd := exec.Command(cc, args...)
			cmd.Dir = objDir
			if out, err := cmd.CombinedOutput(); err != nil {
				objErr = fmt.Errorf("gcc %s: %v\n%s", strings.Join(args, " "), err, out)
				return
			}
		}
	})
	if objErr != nil {
		t.Fatal(objErr)
	}
	return filepath.Join(objDir, flavor)
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range []string{objDir, linesDir} {
		if d != "" {
			os.RemoveAll(d)
		}
	}
	os.Exit(code)
}

// typeName spells base types the way gcc does ("long unsigned int"), so
// clang's objects ("unsigned long") compare with the same expectations.
func typeName(t *Type) string {
	if t.Kind == Base {
		if c := canonicalBase(t.Name); c != "" {
			return c
		}
	}
	return t.String()
}

// layout formats a struct or union on one line:
//
//	struct name(size){member type@offset; bitfield type@bitN:W; ...}
//
// with "_" for anonymous members.
func layout(t *Type) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s(%d){", t, t.Size)
	for i, m := range t.Members {
		if i > 0 {
			b.WriteString("; ")
		}
		name := m.Name
		if name == "" {
			name = "_"
		}
		if m.BitSize != 0 {
			fmt.Fprintf(&b, "%s %s@bit%d:%d", name, typeName(m.Type), m.BitOffset, m.BitSize)
		} else {
			fmt.Fprintf(&b, "%s %s@%d", name, typeName(m.Type), m.Offset)
		}
	}
	b.WriteString("}")
	return b.String()
}

var layoutTests = []struct{ name, want string }{
	{"struct bits", "struct bits(16){a unsigned int@bit0:3; b unsigned int@bit3:7; c unsigned int@bit10:22; d long unsigned int@bit64:40; e int@bit104:5; f unsigned char@14}"},
	{"struct arrbits", "struct arrbits(8){tag char [1]@0; flag unsigned int@bit8:1; rest unsigned int@bit32:31}"},
	{"struct nest", "struct nest(96){head int@0; _ union {...}@8; inc struct incomplete *@24; name const char *@32; vol volatile int@40; grid int [3][4]@44; tail ulong2_t [0]@96}"},
	{"struct self", "struct self(16){next struct self *@0; prev struct self *@8}"},
	{"union u", "union u(8){i int@0; f float@0; c char [5]@0}"},
	{"struct withfp", "struct withfp(40){fn func *@0; col enum color@8; cv cv_ulong_t@16; np struct nest *@24; named_anon struct {...}@32}"},
}

var fieldTests = []struct {
	typ, path string
	off, bit  int64
	bits      int64
	typName   string
}{
	{"struct nest", "x", 8, 64, 0, "short unsigned int"},
	{"struct nest", "y", 10, 80, 0, "short unsigned int"},
	{"struct nest", "xy", 8, 64, 0, "unsigned int"},
	{"struct nest", "p", 8, 64, 0, "char"},
	{"struct nest", "q", 16, 128, 0, "long int"},
	{"struct nest", "r", 16, 128, 0, "void *"},
	{"struct nest", "tail", 96, 768, 0, "ulong2_t [0]"},
	{"struct withfp", "named_anon.inner", 32, 256, 0, "int"},
	{"struct bits", "b", 0, 3, 7, "unsigned int"},
	{"struct bits", "e", 13, 104, 5, "int"},
	{"struct arrbits", "rest", 4, 32, 31, "unsigned int"},
}

func openTest(t *testing.T, path string, opts ...Option) *File {
	t.Helper()
	opts = append([]Option{WithCacheDir(t.TempDir()), WithStartupCache(t.TempDir())}, opts...)
	f, err := Open(path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestLayout(t *testing.T) {
	for _, flavor := range []string{"dwarf4", "dwarf5", "so", "lto", "clang4", "clang5"} {
		t.Run(flavor, func(t *testing.T) {
			f := openTest(t, object(t, flavor))
			if got := f.Source(); got != "dwarf" {
				t.Errorf("Source() = %q, want dwarf", got)
			}
			if whole, want := f.dw.whole != nil, flavor != "so"; whole != want {
				t.Errorf("whole-file dwarf.Data = %v, want %v", whole, want)
			}
			for _, tt := range layoutTests {
				typ, err := f.Type(tt.name)
				if err != nil {
					t.Errorf("Type(%q): %v", tt.name, err)
					continue
				}
				if got := layout(typ); got != tt.want {
					t.Errorf("Type(%q):\n got %s\nwant %s", tt.name, got, tt.want)
				}
			}
			for _, tt := range fieldTests {
				typ, err := f.Type(tt.typ)
				if err != nil {
					t.Fatal(err)
				}
				m, err := typ.Field(tt.path)
				if err != nil {
					t.Errorf("%s.Field(%q): %v", tt.typ, tt.path, err)
					continue
				}
				if m.Offset != tt.off || m.BitOffset != tt.bit || m.BitSize != tt.bits || typeName(m.Type) != tt.typName {
					t.Errorf("%s.Field(%q) = %s@%d bit %d:%d, want %s@%d bit %d:%d", tt.typ, tt.path,
						m.Type, m.Offset, m.BitOffset, m.BitSize, tt.typName, tt.off, tt.bit, tt.bits)
				}
			}
		})
	}
}

func TestTypes(t *testing.T) {
	f := openTest(t, object(t, "dwarf5"))

	// Typedef chain with qualifiers.
	cv, err := f.Type("cv_ulong_t")
	if err != nil {
		t.Fatal(err)
	}
	var chain []string
	for e := cv; e != nil; e = e.Elem {
		chain = append(chain, e.Kind.String()+":"+e.Name)
	}
	if got, want := strings.Join(chain, " "), "typedef:cv_ulong_t const: volatile: typedef:ulong2_t typedef:ulong_t base:long unsigned int"; got != want &&
		got != "typedef:cv_ulong_t volatile: const: typedef:ulong2_t typedef:ulong_t base:long unsigned int" {
		t.Errorf("cv_ulong_t chain = %s, want %s", got, want)
	}
	if s := cv.Strip(); s.Kind != Base || s.Name != "long unsigned int" || s.Size != 8 || s.Signed {
		t.Errorf("cv_ulong_t.Strip() = %+v", s)
	}
	if cv.Size != 8 {
		t.Errorf("cv_ulong_t size = %d", cv.Size)
	}

	// C spellings of base types.
	for _, name := range []string{"unsigned long", "long unsigned int", "unsigned  long   int", "unsigned int", "unsigned", "char", "int", "short unsigned int", "unsigned short"} {
		b, err := f.Type(name)
		if err != nil {
			t.Errorf("Type(%q): %v", name, err)
			continue
		}
		if b.Kind != Base {
			t.Errorf("Type(%q).Kind = %v", name, b.Kind)
		}
	}

	// Pointers.
	p, err := f.Type("struct nest *")
	if err != nil {
		t.Fatal(err)
	}
	if p.Kind != Pointer || p.Size != 8 || p.Elem.Kind != Struct || p.Elem.Opaque || p.Elem.Size != 96 {
		t.Errorf("struct nest * = %+v", p)
	}
	if pp, err := f.Type("struct nest**"); err != nil || pp.String() != "struct nest **" {
		t.Errorf("struct nest** = %v, %v", pp, err)
	}
	if cp, err := f.Type("const char *"); err != nil || cp.String() != "const char *" {
		t.Errorf("const char * = %v, %v", cp, err)
	}

	// Pointers to incomplete and to named structs are opaque; Resolve.
	nest, _ := f.Struct("nest")
	inc, _ := nest.Field("inc")
	if e := inc.Type.Elem; e.Kind != Struct || !e.Opaque || e.Name != "incomplete" {
		t.Errorf("nest.inc elem = %+v", e)
	}
	if _, err := f.Resolve(inc.Type.Elem); !errors.Is(err, ErrNotFound) {
		t.Errorf("Resolve(struct incomplete) err = %v, want ErrNotFound", err)
	}
	if _, err := f.Struct("incomplete"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Struct(incomplete) err = %v, want ErrNotFound", err)
	}
	wfp, _ := f.Struct("withfp")
	np, _ := wfp.Field("np")
	if !np.Type.Elem.Opaque {
		t.Errorf("withfp.np elem not opaque: %+v", np.Type.Elem)
	}
	full, err := f.Resolve(np.Type.Elem)
	if err != nil || full.Size != 96 || full.Opaque || full != nest {
		t.Errorf("Resolve(withfp.np) = %v, %v", full, err)
	}
	if _, err := wfp.Field("np.head"); err == nil {
		t.Errorf("Field through a pointer succeeded")
	}

	// Arrays.
	grid, _ := nest.Field("grid")
	g := grid.Type
	if g.Kind != Array || g.Len != 3 || g.Size != 48 || g.Elem.Kind != Array || g.Elem.Len != 4 || g.Elem.Elem.Name != "int" {
		t.Errorf("grid = %+v", g)
	}
	tail, _ := nest.Field("tail")
	if tail.Type.Len != 0 || tail.Type.Size != 0 || tail.Type.Elem.Name != "ulong2_t" {
		t.Errorf("tail = %+v", tail.Type)
	}

	// Enums.
	color, err := f.Type("enum color")
	if err != nil {
		t.Fatal(err)
	}
	if color.Size != 4 || !color.Signed || len(color.Enumerators) != 3 || color.Enumerators[0] != (Enumerator{"RED", -2}) {
		t.Errorf("enum color = %+v", color)
	}
	for name, want := range map[string]int64{"RED": -2, "GREEN": 0, "BLUE": 7, "ANON_A": 100, "ANON_B": 101, "BIG": 0x100000000} {
		if v, err := f.Enumerator(name); err != nil || v != want {
			t.Errorf("Enumerator(%s) = %d, %v; want %d", name, v, err, want)
		}
	}
	if _, err := f.Enumerator("NOPE"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Enumerator(NOPE) err = %v", err)
	}
	if big, err := f.Type("enum big"); err != nil || big.Size != 8 {
		t.Errorf("enum big = %+v, %v", big, err)
	}

	// Errors.
	if _, err := f.Type("struct nope"); !errors.Is(err, ErrNotFound) || !strings.HasPrefix(err.Error(), "kdwarf: ") {
		t.Errorf("Type(struct nope) err = %v", err)
	}
	_, err = nest.Field("head.x")
	var fe *FieldError
	if !errors.As(err, &fe) || errors.Is(err, ErrNotFound) {
		t.Errorf("Field(head.x) err = %v", err)
	}
	_, err = nest.Field("nope")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "struct nest") || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("Field(nope) err = %v", err)
	}
	if nest.HasField("x") != true || nest.HasField("z") {
		t.Errorf("HasField")
	}
	if _, err := f.Type(""); err == nil {
		t.Errorf("Type(\"\") succeeded")
	}
	f2, err := Open(object(t, "dwarf5"), WithSource(SourceBTF))
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	if _, err := f2.Struct("nest"); !errors.Is(err, ErrNoTypes) {
		t.Errorf("BTF-only lookup without .BTF: err = %v, want ErrNoTypes", err)
	}
	if src := f2.Source(); src != "" {
		t.Errorf("Source() = %q without types", src)
	}
}

func TestRelocatable(t *testing.T) {
	// gcc -c output is ET_REL: every name read through DW_FORM_strp needs
	// .rela.debug_info applied. TestLayout proves the names; check the type.
	f := openTest(t, object(t, "dwarf5"))
	if f.ELF().Type != elf.ET_REL {
		t.Fatalf("ELF type %v, want ET_REL", f.ELF().Type)
	}
	if f.ELF().Section(".rela.debug_info") == nil {
		t.Fatalf("no .rela.debug_info: the test does not exercise relocations")
	}
	s, err := f.Struct("bits")
	if err != nil || s.Name != "bits" {
		t.Fatalf("Struct(bits) = %v, %v", s, err)
	}
}

func TestSymbols(t *testing.T) {
	for _, flavor := range []string{"dwarf5", "so"} {
		f := openTest(t, object(t, flavor))
		for _, tt := range []struct {
			name string
			kind SymKind
			size uint64
			sec  string
		}{
			{"g_bits", SymObject, 16, ".bss"},
			{"g_anon", SymObject, 4, ".data"},
			{"layout_fn", SymFunc, 0, ".text"},
		} {
			s, err := f.Symbol(tt.name)
			if err != nil {
				t.Errorf("%s: Symbol(%s): %v", flavor, tt.name, err)
				continue
			}
			if s.Kind != tt.kind || (tt.size != 0 && s.Size != tt.size) || s.Section != tt.sec || !s.Global {
				t.Errorf("%s: Symbol(%s) = %+v", flavor, tt.name, s)
			}
			if flavor == "so" {
				got, off, ok := f.SymbolAt(s.Value + s.Size/2)
				if !ok || got.Name != tt.name || off != s.Size/2 {
					t.Errorf("SymbolAt(%s+%d) = %v+%d %v", tt.name, s.Size/2, got.Name, off, ok)
				}
			}
		}
		if _, err := f.Symbol("nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Symbol(nope) err = %v", err)
		}
	}
	f := openTest(t, object(t, "so"))
	if _, _, ok := f.SymbolAt(0); ok {
		t.Errorf("SymbolAt(0) found a symbol")
	}
	s, _ := f.Symbol("g_bits")
	if got, _, ok := f.SymbolAt(s.Value + s.Size); ok && got.Name == "g_bits" {
		t.Errorf("SymbolAt past the end of g_bits matched it")
	}
}

func TestCompressed(t *testing.T) {
	obj := object(t, "dwarf5")
	raw, err := os.ReadFile(obj)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var files []string

	if xzBin, err := exec.LookPath("xz"); err == nil {
		out, err := exec.Command(xzBin, "-c", "--check=crc32", obj).Output()
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, filepath.Join(dir, "m.ko.xz"))
		os.WriteFile(files[len(files)-1], out, 0o644)
	} else {
		t.Log("xz not found: .ko.xz not tested")
	}
	enc, _ := zstd.NewWriter(nil)
	files = append(files, filepath.Join(dir, "m.ko.zst"))
	os.WriteFile(files[len(files)-1], enc.EncodeAll(raw, nil), 0o644)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw)
	zw.Close()
	files = append(files, filepath.Join(dir, "m.ko.gz"))
	os.WriteFile(files[len(files)-1], gz.Bytes(), 0o644)

	for _, p := range files {
		f := openTest(t, p)
		s, err := f.Struct("bits")
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(p), err)
			continue
		}
		if got := layout(s); got != layoutTests[0].want {
			t.Errorf("%s: %s", filepath.Base(p), got)
		}
	}
}

func TestIndexCache(t *testing.T) {
	so := object(t, "so")
	dir := t.TempDir()
	f, err := Open(so, WithCacheDir(dir), WithStartupCache(""))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.BuildID()) != 20 {
		t.Fatalf("BuildID() = %x, want 20 bytes", f.BuildID())
	}
	if _, err := f.Struct("nest"); err != nil {
		t.Fatal(err)
	}
	path := indexPath(dir, f.BuildID())
	if f.dw.fromDisk {
		t.Errorf("first open read an index from disk")
	}
	f.Close()
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("index not written: %v", err)
	}

	check := func(name string, wantDisk bool) {
		t.Helper()
		f, err := Open(so, WithCacheDir(dir), WithStartupCache(""))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		s, err := f.Struct("nest")
		if err != nil || s.Size != 96 {
			t.Errorf("%s: Struct(nest) = %v, %v", name, s, err)
			return
		}
		if v, err := f.Enumerator("ANON_B"); err != nil || v != 101 {
			t.Errorf("%s: Enumerator(ANON_B) = %d, %v", name, v, err)
		}
		if f.dw.fromDisk != wantDisk {
			t.Errorf("%s: fromDisk = %v, want %v", name, f.dw.fromDisk, wantDisk)
		}
	}
	check("warm", true)

	// Corruptions are detected and the index rebuilt (and rewritten).
	for i, mutate := range []func([]byte) []byte{
		func(b []byte) []byte { return b[:len(b)/2] },                            // truncated
		func(b []byte) []byte { b = bytes.Clone(b); b[len(b)-3] ^= 1; return b }, // payload bit flip
		func(b []byte) []byte { b = bytes.Clone(b); b[9] ^= 1; return b },        // version
		func(b []byte) []byte { return nil },                                     // empty
	} {
		os.WriteFile(path, mutate(good), 0o644)
		check(fmt.Sprintf("corrupt%d", i), false)
		if b, _ := os.ReadFile(path); !bytes.Equal(b, good) {
			t.Errorf("corrupt%d: index not rewritten", i)
		}
	}

	// A well-formed index that lies (valid checksum, wrong offsets) is
	// caught by the DIE check at lookup and rebuilt.
	f, _ = Open(so, WithCacheDir(dir), WithStartupCache(""))
	f.mu.Lock()
	f.loadDWARF()
	fp := f.dw.fingerprint()
	lie := &index{m: map[string]dwarf.Offset{}}
	for k, off := range f.dw.idx.m {
		lie.m[k] = off
	}
	lie.m["snest"] = lie.m["sself"]
	f.mu.Unlock()
	f.Close()
	if err := writeIndexFile(path, fp, lie); err != nil {
		t.Fatal(err)
	}
	check("lying", false)
}

func TestConcurrent(t *testing.T) {
	f := openTest(t, object(t, "so"))
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, tt := range layoutTests[i%2:] {
				if _, err := f.Type(tt.name); err != nil {
					t.Error(err)
				}
			}
			if _, err := f.Enumerator("BLUE"); err != nil {
				t.Error(err)
			}
			if _, err := f.Symbol("g_bits"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	f.Close()
	if _, err := f.Struct("nest"); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

func TestDefaultCacheDir(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", "/x/cache")
	if got := DefaultCacheDir(); got != "/x/cache/vmleak/index" {
		t.Errorf("DefaultCacheDir() = %q", got)
	}
}
