package synth

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// The layout engine against real kernels: offsets and sizes as pahole and
// gdb ("ptype /o") print them for Debian's 6.1.0-56-cloud-amd64 and
// 6.12.117+deb13-cloud-amd64 vmlinux (SLUB_DEBUG, hardened, NUMA with
// NODES_SHIFT 10). One line per member: "type.member off[:bit/width]".
func TestLayoutsMatchRealKernels(t *testing.T) {
	for _, tc := range []struct {
		v    Version
		want string
	}{
		{V6_1, `
struct kmem_cache size 8408
struct kmem_cache.cpu_slab 0
struct kmem_cache.flags 8
struct kmem_cache.min_partial 16
struct kmem_cache.size 24
struct kmem_cache.object_size 28
struct kmem_cache.reciprocal_size 32
struct kmem_cache.offset 40
struct kmem_cache.cpu_partial 44
struct kmem_cache.cpu_partial_slabs 48
struct kmem_cache.oo 52
struct kmem_cache.min 56
struct kmem_cache.allocflags 60
struct kmem_cache.refcount 64
struct kmem_cache.ctor 72
struct kmem_cache.inuse 80
struct kmem_cache.align 84
struct kmem_cache.red_left_pad 88
struct kmem_cache.name 96
struct kmem_cache.list 104
struct kmem_cache.kobj 120
struct kmem_cache.random 184
struct kmem_cache.remote_node_defrag_ratio 192
struct kmem_cache.random_seq 200
struct kmem_cache.useroffset 208
struct kmem_cache.usersize 212
struct kmem_cache.node 216
struct kmem_cache_cpu size 32
struct kmem_cache_cpu.freelist 0
struct kmem_cache_cpu.tid 8
struct kmem_cache_cpu.slab 16
struct kmem_cache_cpu.partial 24
struct kmem_cache_node size 64
struct kmem_cache_node.nr_partial 8
struct kmem_cache_node.partial 16
struct kmem_cache_node.nr_slabs 32
struct kmem_cache_node.total_objects 40
struct kmem_cache_node.full 48
struct slab size 64
struct slab.slab_list 8
struct slab.callback_head.func 16
struct slab.next 8
struct slab.slabs 16
struct slab.slab_cache 24
struct slab.freelist 32
struct slab.counters 40
struct slab.inuse 40:0/16
struct slab.objects 42:0/15
struct slab.frozen 43:7/1
struct slab.__unused 48
struct slab.memcg_data 56
struct page size 64
struct page.flags 0
struct page.lru 8
struct page.mapping 24
struct page.index 32
struct page.private 40
struct page.compound_head 8
struct page.compound_dtor 16
struct page.compound_order 17
struct page.compound_mapcount 20
struct page.compound_nr 28
struct page.deferred_list 24
struct page.callback_head 8
struct page._mapcount 48
struct page.page_type 48
struct page._refcount 52
struct page.memcg_data 56
struct kobject size 64
struct kobject.kref 56
struct mem_section size 16
struct pglist_data.nr_zones 171552
struct pglist_data.node_start_pfn 171560
struct pglist_data.node_spanned_pages 171576
struct pglist_data.node_id 171584
nodemask_t size 128`},
		// 6.12's struct slab and kmem_cache_cpu, which 6.10 and 6.11 share.
		{V6_10, `
struct kmem_cache size 8408
struct kmem_cache.node 216
struct kmem_cache_cpu size 32
struct kmem_cache_cpu.freelist 0
struct kmem_cache_cpu.tid 8
struct kmem_cache_cpu.freelist_tid 0
struct kmem_cache_cpu.slab 16
struct kmem_cache_cpu.partial 24
struct slab size 64
struct slab.slab_cache 8
struct slab.slab_list 16
struct slab.next 16
struct slab.slabs 24
struct slab.freelist 32
struct slab.counters 40
struct slab.inuse 40:0/16
struct slab.objects 42:0/15
struct slab.frozen 43:7/1
struct slab.freelist_counter 32
struct slab.callback_head 16
struct slab.__page_type 48
struct slab.obj_exts 56
struct page size 64
struct page.compound_head 8
struct page.page_type 48`},
	} {
		t.Run(tc.v.String(), func(t *testing.T) {
			c := kernelTypes(Config{Version: tc.v, SlubDebug: true, Hardened: true, NUMA: true})
			if got, want := layoutOf(c, tc.want), strings.TrimSpace(tc.want); got != want {
				t.Errorf("layout differs from the real kernel's:\nhave:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// The types allocation profiling adds, or reads around it. Those every
// kernel has (xarray, IDR, struct module's name, static keys, rwsem) as
// pahole prints them for Debian's 6.12.117+deb13-cloud-amd64 vmlinux; the
// code tag types, which no Debian kernel has, as the x86_64 ABI lays out
// include/linux/codetag.h and alloc_tag.h (struct codetag: two u32 and
// three pointers, 32 bytes; struct alloc_tag: that and a pointer, 40 bytes;
// alloc_tag_module_section: three unsigned longs).
func TestAllocLayouts(t *testing.T) {
	const want = `
struct xa_node size 576
struct xa_node.shift 0
struct xa_node.offset 1
struct xa_node.count 2
struct xa_node.nr_values 3
struct xa_node.parent 8
struct xa_node.array 16
struct xa_node.slots 40
struct xa_node.marks 552
struct xarray size 16
struct xarray.xa_flags 4
struct xarray.xa_head 8
struct idr size 24
struct idr.idr_base 16
struct idr.idr_next 20
struct module.state 0
struct module.list 8
struct module.name 24
struct static_key size 16
struct static_key_true.key 0
struct rw_semaphore size 40
struct rw_semaphore.osq 16
struct rw_semaphore.wait_lock 20
struct rw_semaphore.wait_list 24
struct codetag size 32
struct codetag.lineno 4
struct codetag.modname 8
struct codetag.function 16
struct codetag.filename 24
struct alloc_tag size 40
struct alloc_tag.counters 32
struct alloc_tag_counters size 16
struct alloc_tag_counters.calls 8
struct codetag_module size 24
struct codetag_module.range.stop 16
struct alloc_tag_module_section size 24`
	c := kernelTypes(Config{Version: V6_11, AllocProfiling: true, ModuleTagsArea: true})
	if got, want := layoutOf(c, want), strings.TrimSpace(want); got != want {
		t.Errorf("layout differs:\nhave:\n%s\nwant:\n%s", got, want)
	}
}

// layoutOf prints, for each "type.member off" or "type size n" line of
// want, what c has there.
func layoutOf(c *ctypes, want string) string {
	var have []string
	for line := range strings.Lines(strings.TrimSpace(want)) {
		line = strings.TrimSpace(line)
		typ, rest, _ := strings.Cut(line, ".")
		if f := strings.Fields(line); len(f) > 0 && f[len(f)-2] == "size" {
			name := strings.TrimSuffix(line, " size "+f[len(f)-1])
			s, _ := c.sizeAlign(c.lookup(name))
			have = append(have, fmt.Sprintf("%s size %d", name, s))
			continue
		}
		path := strings.Fields(rest)[0]
		m, err := c.memberOf(c.lookup(typ), path)
		if err != nil {
			have = append(have, err.Error())
			continue
		}
		if m.bits != 0 {
			have = append(have, fmt.Sprintf("%s.%s %d:%d/%d", typ, path, m.off, m.bitOff, m.bits))
		} else {
			have = append(have, fmt.Sprintf("%s.%s %d", typ, path, m.off))
		}
	}
	return strings.Join(have, "\n")
}

// Layouts without the options move members: 4.18 without hardening, NUMA
// or SLUB_DEBUG, worked out from v4.18's include/linux/slub_def.h.
func TestLayoutOptions(t *testing.T) {
	for _, tc := range []struct {
		cfg      Config
		typ      string
		path     string
		off      uint32
		sizeOnly bool
	}{
		{Config{Version: V4_18, Hardened: true, NUMA: true}, "struct kmem_cache", "random", 312, false},
		{Config{Version: V4_18, Hardened: true, NUMA: true}, "struct kmem_cache", "node", 344, false},
		{Config{Version: V4_18, NUMA: true}, "struct kmem_cache", "node", 336, false},
		{Config{Version: V4_18, NUMA: true}, "struct page", "slab_cache", 24, false},
		{Config{Version: V4_18, NUMA: true}, "struct page", "objects", 42, false},
		{Config{Version: V4_18, NUMA: true}, "struct page", "next", 8, false},
		{Config{Version: V4_18, NUMA: true}, "struct page", "pobjects", 20, false},
		{Config{Version: V4_18, NUMA: true}, "struct page", "callback_head.func", 16, false},
		{Config{Version: V4_18, NUMA: true}, "struct kmem_cache_cpu", "page", 16, false},
		{Config{Version: V6_1}, "struct kmem_cache", "node", 200, false},
		{Config{Version: V6_1}, "struct kmem_cache_node", "", 32, true},
		{Config{Version: V4_18}, "struct mem_section", "", 32, true},
	} {
		t.Run(fmt.Sprintf("%s/%+v/%s.%s", tc.cfg.Version, tc.cfg, tc.typ, tc.path), func(t *testing.T) {
			c := kernelTypes(tc.cfg)
			var have uint32
			if tc.sizeOnly {
				have, _ = c.sizeAlign(c.lookup(tc.typ))
			} else {
				m, err := c.memberOf(c.lookup(tc.typ), tc.path)
				if err != nil {
					t.Fatal(err)
				}
				have = m.off
			}
			if have != tc.off {
				t.Errorf("have %d, want %d", have, tc.off)
			}
		})
	}
}

// The files parse as what they claim to be: the vmlinux with debug/elf and
// cilium/ebpf's BTF loader, the dump with debug/elf (program headers only).
func TestFilesParse(t *testing.T) {
	for _, v := range []Version{V4_18, V6_1, V6_10, V6_11} {
		t.Run(v.String(), func(t *testing.T) {
			k := New(Config{Version: v, SlubDebug: true, Hardened: true, NUMA: true})
			k.AddCache(CacheSpec{Name: "kmalloc-64", ObjectSize: 64, Size: 64, Offset: 32,
				Slabs: []SlabSpec{{Place: NodePartial, Free: []int{1, 2}}}})
			fs, err := k.Write(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			ef, err := elf.Open(fs.Vmlinux)
			if err != nil {
				t.Fatal(err)
			}
			defer ef.Close()
			syms, err := ef.Symbols()
			if err != nil {
				t.Fatal(err)
			}
			have := map[string]bool{}
			for _, s := range syms {
				have[s.Name] = true
			}
			for _, n := range []string{"linux_banner", "init_top_pgt", "slab_caches", "__per_cpu_offset", "mem_section", "node_data", "rcu_free_slab"} {
				if !have[n] {
					t.Errorf("no symbol %s", n)
				}
			}
			raw, err := ef.Section(".BTF").Data()
			if err != nil {
				t.Fatal(err)
			}
			spec, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			var kc *btf.Struct
			if err := spec.TypeByName("kmem_cache", &kc); err != nil {
				t.Fatal(err)
			}
			core, err := elf.Open(fs.Vmcore)
			if err != nil {
				t.Fatal(err)
			}
			defer core.Close()
			if core.Type != elf.ET_CORE || len(core.Progs) < 3 {
				t.Errorf("core: type %v, %d program headers", core.Type, len(core.Progs))
			}
			st, _ := os.Stat(fs.Vmcore)
			if end := core.Progs[len(core.Progs)-1].Off + core.Progs[len(core.Progs)-1].Filesz; uint64(st.Size()) != end {
				t.Errorf("core is %d bytes, its last segment ends at %d", st.Size(), end)
			}
		})
	}
}

func TestAllocTagsRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		spec func(k *Kernel)
	}{
		{"without AllocProfiling", Config{Version: V6_10}, func(k *Kernel) { k.AddAllocTags(&AllocTags{}) }},
		{"twice", Config{Version: V6_10, AllocProfiling: true}, func(k *Kernel) { k.AddAllocTags(&AllocTags{}); k.AddAllocTags(&AllocTags{}) }},
		{"counters for a CPU too many", Config{Version: V6_10, AllocProfiling: true, CPUs: 2}, func(k *Kernel) {
			k.AddAllocTags(&AllocTags{Kernel: []*AllocTag{{File: "a.c", Function: "f", Bytes: []uint64{1, 2, 3}}}})
		}},
		{"an id used twice", Config{Version: V6_10, AllocProfiling: true}, func(k *Kernel) {
			k.AddAllocTags(&AllocTags{Modules: []*AllocModule{{Name: "a", ID: 3}, {Name: "b", ID: 3}}})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := New(tc.cfg)
			tc.spec(k)
			if _, err := k.Write(t.TempDir()); err == nil {
				t.Error("no error")
			}
		})
	}
}

func TestBuilderRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec CacheSpec
	}{
		{"object listed twice", CacheSpec{Name: "a", ObjectSize: 64, Size: 64, Slabs: []SlabSpec{{Place: NodePartial, Free: []int{1, 1}}}}},
		{"object out of range", CacheSpec{Name: "a", ObjectSize: 64, Size: 64, Slabs: []SlabSpec{{Place: NodePartial, Free: []int{64}}}}},
		{"RCU slab without SLAB_TYPESAFE_BY_RCU", CacheSpec{Name: "a", ObjectSize: 64, Size: 64, Slabs: []SlabSpec{{Place: RCUPending}}}},
		{"two CPU slabs", CacheSpec{Name: "a", ObjectSize: 64, Size: 64, Slabs: []SlabSpec{{Place: CPUSlab}, {Place: CPUSlab}}}},
		{"free pointer past the object", CacheSpec{Name: "a", ObjectSize: 64, Size: 64, Offset: 60}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := New(Config{Version: V6_1})
			k.AddCache(tc.spec)
			if _, err := k.Write(t.TempDir()); err == nil {
				t.Error("no error")
			}
		})
	}
}
