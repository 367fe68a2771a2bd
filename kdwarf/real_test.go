package kdwarf

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
)

// realTypes are compared between DWARF and BTF on every real kernel; a
// type a kernel lacks in both is skipped. Typedefs are compared after
// Strip.
var realTypes = []string{
	"struct kmem_cache", "struct kmem_cache_cpu", "struct kmem_cache_node",
	"struct slab", "struct page", "struct list_head", "struct module",
	"struct module_layout", "struct module_memory", "struct kobject",
	"struct mem_section", "struct pglist_data", "struct zone",
	"struct per_cpu_pages", "struct vm_struct", "struct vmap_area",
	"struct new_utsname", "struct uts_namespace", "struct page_ext",
	"struct track", "struct kmem_cache_order_objects", "struct folio",
	"struct percpu_counter", "atomic_t", "atomic_long_t",
	"struct hlist_node", "struct rb_node",
}

var suites = []string{"bookworm", "trixie", "sid"}

// openReal opens a real vmlinux with the given source; the DWARF index
// goes to the default cache directory, as in production.
func openReal(t testing.TB, path string, src TypeSource) *File {
	t.Helper()
	f, err := Open(path, WithSource(src))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestRealDWARFMatchesBTF(t *testing.T) {
	if testing.Short() {
		t.Skip("reads real kernels")
	}
	for _, suite := range suites {
		t.Run(suite, func(t *testing.T) {
			k := fixture.KernelOf(t, suite)
			dw := openReal(t, k.Vmlinux(), SourceDWARF)
			bt := openReal(t, k.Vmlinux(), SourceBTF)
			if dw.Source() != "dwarf" || bt.Source() != "btf" {
				t.Fatalf("sources %q %q", dw.Source(), bt.Source())
			}
			compared := 0
			for _, name := range realTypes {
				d, derr := dw.Type(name)
				b, berr := bt.Type(name)
				if errors.Is(derr, ErrNotFound) && errors.Is(berr, ErrNotFound) {
					t.Logf("%s: not in this kernel", name)
					continue
				}
				if derr != nil || berr != nil {
					t.Errorf("%s: dwarf err %v, btf err %v", name, derr, berr)
					continue
				}
				compareLayouts(t, name, d.Strip(), b.Strip())
				compared++
			}
			if compared < 20 {
				t.Errorf("compared only %d types", compared)
			}
		})
	}
}

// compareLayouts checks size and every member's name, offset, bit offset
// and bit size, descending into anonymous members.
func compareLayouts(t *testing.T, path string, d, b *Type) {
	t.Helper()
	if d.Kind != b.Kind || d.Size != b.Size || d.Name != b.Name {
		t.Errorf("%s: dwarf %s size %d, btf %s size %d", path, d, d.Size, b, b.Size)
		return
	}
	if len(d.Members) != len(b.Members) {
		t.Errorf("%s: dwarf has %d members, btf %d", path, len(d.Members), len(b.Members))
		return
	}
	for i := range d.Members {
		dm, bm := d.Members[i], b.Members[i]
		if dm.Name != bm.Name || dm.Offset != bm.Offset || dm.BitOffset != bm.BitOffset || dm.BitSize != bm.BitSize {
			t.Errorf("%s: member %d: dwarf %q@%d bit %d:%d, btf %q@%d bit %d:%d", path, i,
				dm.Name, dm.Offset, dm.BitOffset, dm.BitSize, bm.Name, bm.Offset, bm.BitOffset, bm.BitSize)
			continue
		}
		dt, btt := dm.Type.Strip(), bm.Type.Strip()
		if dm.Name == "" && (dt.Kind == Struct || dt.Kind == Union) {
			compareLayouts(t, fmt.Sprintf("%s.<anon@%d>", path, dm.Offset), dt, btt)
		}
	}
}

func TestRealSlabBitfields(t *testing.T) {
	if testing.Short() {
		t.Skip("reads real kernels")
	}
	k := fixture.KernelOf(t, "bookworm")
	for _, src := range []TypeSource{SourceDWARF, SourceBTF} {
		f := openReal(t, k.Vmlinux(), src)
		slab, err := f.Struct("slab")
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			name      string
			bit, bits int64
		}{{"inuse", 320, 16}, {"objects", 336, 15}, {"frozen", 351, 1}} {
			m, err := slab.Field(tt.name)
			if err != nil {
				t.Errorf("%s: %v", src, err)
				continue
			}
			if m.BitOffset != tt.bit || m.BitSize != tt.bits || m.Offset != tt.bit/8 {
				t.Errorf("%s: slab.%s = @%d bit %d:%d, want bit %d:%d", src, tt.name, m.Offset, m.BitOffset, m.BitSize, tt.bit, tt.bits)
			}
		}
	}
}

func TestRealLookups(t *testing.T) {
	if testing.Short() {
		t.Skip("reads real kernels")
	}
	k := fixture.KernelOf(t, "bookworm")
	dw := openReal(t, k.Vmlinux(), SourceDWARF)
	auto := openReal(t, k.Vmlinux(), SourceAuto)
	if auto.Source() != "btf" {
		t.Errorf("auto source = %q, want btf", auto.Source())
	}
	if id := dw.BuildID(); len(id) != 20 {
		t.Errorf("BuildID = %x", id)
	}
	for _, name := range []string{"PG_slab", "NR_SLAB_RECLAIMABLE_B", "NR_SLAB_UNRECLAIMABLE_B", "ZONE_NORMAL"} {
		dv, derr := dw.Enumerator(name)
		bv, berr := auto.Enumerator(name)
		if derr != nil || berr != nil || dv != bv {
			t.Errorf("Enumerator(%s): dwarf %d %v, btf %d %v", name, dv, derr, bv, berr)
		}
	}
	// Paths through the anonymous unions of struct page.
	page, err := dw.Struct("page")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"flags", "lru", "lru.next", "mapping", "compound_head", "_refcount", "_mapcount"} {
		if !page.HasField(p) {
			t.Errorf("struct page has no %s", p)
		}
	}
	if m, _ := page.Field("_refcount.counter"); m.Type == nil || m.Type.Strip().Size != 4 {
		t.Errorf("page._refcount.counter = %+v", m)
	}
	for _, name := range []string{"unsigned long", "gfp_t", "struct page *", "pg_data_t"} {
		for _, f := range []*File{dw, auto} {
			if _, err := f.Type(name); err != nil {
				t.Errorf("%s: Type(%q): %v", f.Source(), name, err)
			}
		}
	}
	// Resolve an opaque pointee.
	kc, _ := dw.Struct("kmem_cache")
	node, err := kc.Field("node")
	if err != nil {
		t.Fatal(err)
	}
	kcn, err := dw.Resolve(node.Type.Elem.Elem)
	if err != nil || kcn.Name != "kmem_cache_node" || kcn.Opaque || len(kcn.Members) == 0 {
		t.Errorf("Resolve(kmem_cache.node[0]) = %v, %v", kcn, err)
	}

	// Symbols.
	for _, tt := range []struct {
		name string
		kind SymKind
		sec  string
	}{
		{"slab_caches", SymObject, ".data"},
		{"kmem_cache_alloc", SymFunc, ".text"},
		{"runqueues", SymObject, PerCPUSection},
		{"init_uts_ns", SymObject, ".data"},
	} {
		s, err := dw.Symbol(tt.name)
		if err != nil {
			t.Errorf("Symbol(%s): %v", tt.name, err)
			continue
		}
		if s.Kind != tt.kind || s.Section != tt.sec {
			t.Errorf("Symbol(%s) = %+v", tt.name, s)
		}
		if s.Section != PerCPUSection && s.Size > 4 {
			got, off, ok := dw.SymbolAt(s.Value + 3)
			if !ok || got.Name != tt.name || off != 3 {
				t.Errorf("SymbolAt(%s+3) = %s+%d %v", tt.name, got.Name, off, ok)
			}
		}
	}
	if s, _ := dw.Symbol("runqueues"); s.Value > 1<<30 {
		t.Errorf("per-CPU runqueues value %#x is not an offset", s.Value)
	}
	// An assembler label has size 0: SymbolAt names only its own address,
	// SymbolBefore the code after it too (the secondary CPUs' bottom frame).
	if s, err := dw.Symbol("secondary_startup_64_no_verify"); err == nil && s.Size == 0 {
		if got, off, ok := dw.SymbolAt(s.Value + 0xe4); ok {
			t.Errorf("SymbolAt(%s+0xe4) = %s+%#x: a label of size 0 matched", s.Name, got.Name, off)
		}
		got, off, ok := dw.SymbolBefore(s.Value+0xe4, ".text")
		if !ok || got.Name != s.Name || off != 0xe4 {
			t.Errorf("SymbolBefore(%s+0xe4) = %s+%#x %v", s.Name, got.Name, off, ok)
		}
		if _, _, ok := dw.SymbolBefore(s.Value+0xe4, ".data"); ok {
			t.Errorf("SymbolBefore(%s+0xe4, .data) found a symbol", s.Name)
		}
	}
}

func TestRealModule(t *testing.T) {
	if testing.Short() {
		t.Skip("reads real kernels")
	}
	k := fixture.KernelOf(t, "bookworm")
	ko := filepath.Join(k.DebugDir(), "kernel", "net", "key", "af_key.ko")
	if _, err := os.Stat(ko); err != nil {
		t.Skipf("no module debuginfo: %v", err)
	}
	f, err := Open(ko, WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.ELF().Type != elf.ET_REL {
		t.Errorf("type %v", f.ELF().Type)
	}
	if f.Source() != "dwarf" {
		t.Errorf("module source %q, want dwarf (module BTF is split)", f.Source())
	}
	if len(f.BuildID()) == 0 {
		t.Errorf("no build-id")
	}
	ps, err := f.Struct("pfkey_sock")
	if err != nil {
		t.Fatal(err)
	}
	if m, err := ps.Field("sk"); err != nil || m.Offset != 0 || ps.Size <= m.Type.Size {
		t.Errorf("pfkey_sock.sk = %+v, %v (size %d)", m, err, ps.Size)
	}
	if lh, err := f.Struct("list_head"); err != nil || lh.Size != 16 {
		t.Errorf("list_head = %v, %v", lh, err)
	}
	if s, err := f.Symbol("pfkey_create"); err != nil || s.Kind != SymFunc || s.Section != ".text" {
		t.Errorf("Symbol(pfkey_create) = %+v, %v", s, err)
	}
}
