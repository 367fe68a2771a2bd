package allocinfo_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vmleak/vmleak/allocinfo"
	"github.com/vmleak/vmleak/internal/goldenfile"
	"github.com/vmleak/vmleak/internal/synth"
	"github.com/vmleak/vmleak/internal/testkernel"
	"github.com/vmleak/vmleak/kernel"
)

// neg is a CPU's counter gone below zero: freed on another CPU than it
// was allocated on, which the per-CPU sum makes whole again.
func neg(x uint64) uint64 { return -x }

// The two places module tags live, on synthetic kernels with three CPUs.
var layouts = []struct {
	name string
	cfg  synth.Config
}{
	// 6.10-6.12: each module's tags in its own memory.
	{"6.10", synth.Config{Version: synth.V6_10, AllocProfiling: true, CPUs: 3}},
	// 6.13+: copied into the module_tags area (0db6f8d7820a); the
	// types read here did not change, so 6.11's stand for them.
	{"6.13-area", synth.Config{Version: synth.V6_11, AllocProfiling: true, ModuleTagsArea: true, CPUs: 3}},
}

// world is a synthetic kernel with allocation tags: three of the
// kernel's, two of a module's at mod_idr id 1 and one of a module at id
// 70 (so the IDR is a two-level xarray).
type world struct {
	sk   *synth.Kernel
	spec *synth.AllocTags
	obj  uint64 // an allocated slab object: 1024 bytes, none of them 0
}

func newWorld(cfg synth.Config) *world {
	w := &world{sk: synth.New(cfg)}
	c := w.sk.AddCache(synth.CacheSpec{Name: "kmalloc-1k", ObjectSize: 1024, Size: 1024, Order: 0,
		Slabs: []synth.SlabSpec{{Place: synth.Full}}})
	w.obj = c.Slabs[0].Object(1)
	w.spec = &synth.AllocTags{
		Kernel: []*synth.AllocTag{
			{File: "mm/slub.c", Line: 2259, Function: "alloc_slab_page", Bytes: []uint64{4096, 8192, 0}, Calls: []uint64{1, 2}},
			{File: "mm/percpu.c", Line: 1721, Function: "pcpu_alloc", Bytes: []uint64{512, neg(256)}, Calls: []uint64{2, neg(1)}},
			{File: "init/main.c", Line: 1314, Function: "do_initcalls"},
			{File: "lib/rhashtable.c", Line: 191, Function: "bucket_table_alloc", Bytes: []uint64{64, 64, 64}, Calls: []uint64{1, 1, 1}, VmallocCounters: true},
		},
		Modules: []*synth.AllocModule{
			{Name: "vmleak_alloc", Tags: []*synth.AllocTag{
				{File: "vmleak_alloc.c", Line: 42, Function: "grow", Bytes: []uint64{116000, 0, 116000}, Calls: []uint64{500, 0, 500}},
				{File: "vmleak_alloc.c", Line: 57, Function: "leak", Bytes: []uint64{0, 4096}, Calls: []uint64{0, 1}},
			}},
			{Name: "isofs", ID: 70, Tags: []*synth.AllocTag{
				{File: "fs/isofs/inode.c", Line: 68, Function: "isofs_alloc_inode", Bytes: []uint64{640, 0, 640}, Calls: []uint64{1, 0, 1}},
			}},
		},
	}
	w.sk.AddAllocTags(w.spec)
	return w
}

// open writes the world's files and opens them.
func (w *world) open(t *testing.T) *kernel.Kernel {
	t.Helper()
	return testkernel.Synth(t, w.sk)
}

// wantTags are the world's tags as /proc/allocinfo would show them.
func wantTags(w *world) []allocinfo.Tag {
	sum := func(xs []uint64) (s uint64) {
		for _, x := range xs {
			s += x
		}
		return s
	}
	var out []allocinfo.Tag
	add := func(module string, tags []*synth.AllocTag) {
		for _, t := range tags {
			out = append(out, allocinfo.Tag{Addr: kernel.Hex(t.VA), Bytes: int64(sum(t.Bytes)), Calls: sum(t.Calls),
				File: t.File, Line: t.Line, Function: t.Function, Module: module, Flags: t.Flags})
		}
	}
	add("", w.spec.Kernel)
	for _, m := range w.spec.Modules {
		add(m.Name, m.Tags)
	}
	return out
}

// Every tag's counters summed over the possible CPUs, in /proc/allocinfo's
// order (the kernel's, then by mod_idr id), and the per-module totals.
func TestSynthTags(t *testing.T) {
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			w := newWorld(l.cfg)
			rep, err := allocinfo.Read(w.open(t))
			if err != nil {
				t.Fatal(err)
			}
			if rep.Partial || len(rep.Warnings) > 0 || len(rep.Unreadable) > 0 {
				t.Errorf("partial %v, warnings %q, unreadable %v", rep.Partial, rep.Warnings, rep.Unreadable)
			}
			if rep.Enabled == nil || !*rep.Enabled {
				t.Errorf("enabled %v, want true", rep.Enabled)
			}
			if diff := cmp.Diff(wantTags(w), rep.Tags); diff != "" {
				t.Errorf("tags (-want +have):\n%s", diff)
			}
			// Sums by hand: 12288+256+0+192, 3+1+0+3; 232000+4096, 1000+1; 1280, 2.
			wantMods := []allocinfo.ModuleTotal{
				{Module: "vmleak_alloc", Tags: 2, Bytes: 236096, Calls: 1001},
				{Module: "", Tags: 4, Bytes: 12736, Calls: 7},
				{Module: "isofs", Tags: 1, Bytes: 1280, Calls: 2},
			}
			if diff := cmp.Diff(wantMods, rep.Modules); diff != "" {
				t.Errorf("module totals (-want +have):\n%s", diff)
			}
		})
	}
}

// Counters are summed over the possible CPUs (alloc_tag_read's
// for_each_possible_cpu), not every CPU below nr_cpu_ids.
func TestSynthPossibleCPUs(t *testing.T) {
	w := newWorld(layouts[0].cfg)
	w.sk.Poke(w.sk.Symbol("__cpu_possible_mask"), []byte{0b101})
	rep, err := allocinfo.Read(w.open(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := rep.Tags[0]; got.Bytes != 4096 || got.Calls != 1 {
		t.Errorf("alloc_slab_page over CPUs 0 and 2: %d bytes in %d calls, want 4096 in 1", got.Bytes, got.Calls)
	}
}

// The text is /proc/allocinfo's, line for line (testdata/allocinfo.txt,
// rewritten by go test -update); --nonzero and --module views select
// from it; the JSON round-trips.
func TestSynthTextAndJSON(t *testing.T) {
	w := newWorld(layouts[0].cfg)
	rep, err := allocinfo.Read(w.open(t))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	golden(t, "allocinfo.txt", b.Bytes())

	sel := rep.Select("vmleak_alloc", true)
	if len(sel.Tags) != 2 || len(sel.Modules) != 1 || sel.Modules[0].Bytes != 236096 {
		t.Errorf("module vmleak_alloc selected: %+v", sel)
	}
	if sel := rep.Select(allocinfo.KernelName, true); len(sel.Tags) != 3 {
		t.Errorf("the kernel's nonzero tags: %d, want 3 (do_initcalls holds nothing)", len(sel.Tags))
	}
	if err := sel.Sort(allocinfo.SortBytes); err != nil || sel.Tags[0].Function != "grow" {
		t.Errorf("sorted by bytes: %v, first %+v", err, sel.Tags[0])
	}

	j, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	var back allocinfo.Report
	if err := json.Unmarshal(j, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rep, &back); diff != "" {
		t.Errorf("JSON does not round-trip (-read +decoded):\n%s", diff)
	}
	if back.Schema != allocinfo.Schema {
		t.Errorf("schema %d", back.Schema)
	}
}

func golden(t *testing.T, name string, have []byte) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", name), have)
}

// A kernel built without allocation profiling is ErrNotEnabled, whether
// its linker script left the empty tag section's markers (6.12) or not.
func TestSynthNotEnabled(t *testing.T) {
	for _, cfg := range []synth.Config{{Version: synth.V6_10}, {Version: synth.V6_11, AllocTagsSection: true}} {
		t.Run(fmt.Sprintf("section markers %v", cfg.AllocTagsSection), func(t *testing.T) {
			w := &world{sk: synth.New(cfg)}
			if _, err := allocinfo.Read(w.open(t)); !errors.Is(err, allocinfo.ErrNotEnabled) {
				t.Errorf("error %v, want ErrNotEnabled", err)
			}
		})
	}
}

// Profiling switched off at run time: the counters are read, and the
// report says they were frozen.
func TestSynthDisabled(t *testing.T) {
	w := &world{sk: synth.New(layouts[0].cfg)}
	w.spec = &synth.AllocTags{Disabled: true, Kernel: []*synth.AllocTag{{File: "a.c", Line: 1, Function: "f", Bytes: []uint64{8}, Calls: []uint64{1}}}}
	w.sk.AddAllocTags(w.spec)
	rep, err := allocinfo.Read(w.open(t))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Enabled == nil || *rep.Enabled || len(rep.Warnings) != 1 || rep.Partial || len(rep.Tags) != 1 || rep.Tags[0].Bytes != 8 {
		t.Errorf("enabled %v, warnings %q, partial %v, tags %+v", rep.Enabled, rep.Warnings, rep.Partial, rep.Tags)
	}
}

// Bad input, one case each: the error is typed and names the address, the
// tags around it are still read, and the report is partial.
func TestSynthBadInput(t *testing.T) {
	off := func(w *world, typ, path string) uint64 { return w.sk.Offset(typ, path) }
	mod := func(w *world) *synth.AllocModule { return w.spec.Modules[0] }
	ktag := func(w *world, i int) *synth.AllocTag { return w.spec.Kernel[i] }
	const unmapped = synth.VmallocBase + 0x40000000
	tagSize := synth.New(layouts[0].cfg).SizeOf("struct alloc_tag") // 40 on x86_64
	type check int
	const (
		rangeErr  check = iota // a *RangeError
		tagErr                 // a *TagError
		layoutErr              // wraps ErrLayout
		otherErr               // any other error, read on
		warnOnly               // a warning, not partial
	)
	for _, tc := range []struct {
		name   string
		layout int // index into layouts
		mutate func(w *world)
		kind   check
		is     error    // errors.Is target, if any
		field  string   // TagError.Field
		msg    []string // substrings of the error (or warning)
		lost   int      // tags not read: left out of Tags
	}{
		{name: "kernel range not whole tags", mutate: func(w *world) {
			w.sk.MoveSymbol("__stop_alloc_tags", ktag(w, 3).VA+8)
		}, kind: rangeErr, msg: []string{"the kernel's tags [", "128 bytes are not a whole number of 40-byte struct alloc_tag"}, lost: 4},
		{name: "kernel range reversed", mutate: func(w *world) {
			w.sk.MoveSymbol("__stop_alloc_tags", ktag(w, 0).VA-tagSize)
		}, kind: rangeErr, msg: []string{"ends before it starts"}, lost: 4},
		{name: "module range absurd", mutate: func(w *world) {
			w.sk.Poke64(mod(w).CodetagModule+off(w, "struct codetag_module", "range.stop"), mod(w).Start+tagSize*(allocinfo.MaxTags+1))
		}, kind: rangeErr, msg: []string{"module vmleak_alloc's tags [", "1048577 tags, more than 1048576"}, lost: 2},
		{name: "module range outside the module_tags area", layout: 1, mutate: func(w *world) {
			w.sk.Poke64(mod(w).CodetagModule+off(w, "struct codetag_module", "range.start"), mod(w).Start-tagSize)
		}, kind: rangeErr, msg: []string{"module vmleak_alloc's tags [", "outside the module_tags area"}, lost: 2},
		{name: "counters NULL", mutate: func(w *world) {
			w.sk.Poke64(ktag(w, 1).VA+off(w, "struct alloc_tag", "counters"), 0)
		}, kind: tagErr, is: allocinfo.ErrCounters, field: "counters", msg: []string{"allocinfo: tag at 0x", ": counters: counters pointer outside per-CPU space: NULL"}, lost: 1},
		{name: "counters wild", mutate: func(w *world) {
			w.sk.Poke64(mod(w).Tags[1].VA+off(w, "struct alloc_tag", "counters"), 0x4141414141414141)
		}, kind: tagErr, is: allocinfo.ErrCounters, field: "counters", msg: []string{"of module vmleak_alloc: counters:", "0x4141414141414141 is neither in the first chunk"}, lost: 1},
		{name: "counters missing on one CPU", mutate: func(w *world) {
			w.sk.DropPage(ktag(w, 0).Counters + w.sk.PerCPU(1))
		}, kind: tagErr, field: "counters", msg: []string{"CPU 1's counters at 0x", "not in dump"}, lost: 6}, // every first-chunk counter shares the page
		{name: "function unmapped", mutate: func(w *world) {
			w.sk.Poke64(ktag(w, 2).VA+off(w, "struct alloc_tag", "ct.function"), unmapped)
		}, kind: tagErr, field: "function", msg: []string{"function: string at 0xffffc90040000000"}, lost: 1},
		{name: "filename NULL", mutate: func(w *world) {
			w.sk.Poke64(ktag(w, 2).VA+off(w, "struct alloc_tag", "ct.filename"), 0)
		}, kind: tagErr, field: "filename", msg: []string{"filename: NULL string pointer"}, lost: 1},
		{name: "function without NUL", mutate: func(w *world) {
			w.sk.Poke(w.obj, bytes.Repeat([]byte("x"), 600))
			w.sk.Poke64(ktag(w, 2).VA+off(w, "struct alloc_tag", "ct.function"), w.obj)
		}, kind: tagErr, field: "function", msg: []string{"no NUL within 512 bytes"}, lost: 1},
		{name: "modname unmapped", mutate: func(w *world) {
			w.sk.Poke64(mod(w).Tags[0].VA+off(w, "struct alloc_tag", "ct.modname"), unmapped)
		}, kind: tagErr, field: "modname", msg: []string{"of module vmleak_alloc: modname: string at"}, lost: 1},
		{name: "module tags missing from the dump", layout: 1, mutate: func(w *world) {
			w.sk.DropPage(mod(w).Start)
		}, kind: tagErr, field: "", msg: []string{"of module vmleak_alloc: kernel: reading 0x", "not in dump"}, lost: 3}, // isofs's share the area's page
		{name: "module name unreadable", mutate: func(w *world) {
			w.sk.Poke64(mod(w).CodetagModule+off(w, "struct codetag_module", "mod"), unmapped)
		}, kind: rangeErr, msg: []string{"the tags registered by codetag_module 0x", "struct module at 0xffffc90040000000"}, lost: 2},
		{name: "mod_idr corrupt", mutate: func(w *world) {
			w.sk.Poke64(w.spec.CodetagType+off(w, "struct codetag_type", "mod_idr.idr_rt.xa_head"), unmapped|2)
		}, kind: otherErr, msg: []string{"mod_idr of codetag_type 0x", "unreadable node (node 0xffffc90040000000"}, lost: 3},
		{name: "tag_size not sizeof(struct alloc_tag)", mutate: func(w *world) {
			w.sk.Poke64(w.spec.CodetagType+off(w, "struct codetag_type", "desc.tag_size"), 48)
		}, kind: layoutErr, msg: []string{"has tag_size 48, struct alloc_tag is 40 bytes"}, lost: 3},
		{name: "modname not the module's", mutate: func(w *world) {
			w.sk.Poke64(mod(w).Tags[0].VA+off(w, "struct alloc_tag", "ct.modname"), mod(w).VA+off(w, "struct module", "name")+1)
		}, kind: warnOnly, msg: []string{`modname "mleak_alloc" in the tag, registered by module vmleak_alloc`}},
		{name: "modname in a kernel tag", mutate: func(w *world) {
			w.sk.Poke64(ktag(w, 0).VA+off(w, "struct alloc_tag", "ct.modname"), mod(w).VA+off(w, "struct module", "name"))
		}, kind: warnOnly, msg: []string{`modname "vmleak_alloc" in one of the kernel's own tags`}},
		{name: "kernel registered elsewhere", mutate: func(w *world) {
			w.sk.Poke64(w.spec.KernelCodetag+off(w, "struct codetag_module", "range.stop"), ktag(w, 2).VA)
		}, kind: warnOnly, msg: []string{"the kernel's tags are registered as ["}},
		{name: "alloc_tag_cttype NULL", mutate: func(w *world) {
			w.sk.Poke64(w.sk.Symbol("alloc_tag_cttype"), 0)
		}, kind: warnOnly, msg: []string{"alloc_tag_cttype is NULL"}, lost: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(layouts[tc.layout].cfg)
			tc.mutate(w)
			k := w.open(t)
			r, err := allocinfo.New(k)
			if err != nil {
				t.Fatal(err)
			}
			var errs []error
			n := 0
			for tag, err := range r.Tags() {
				if err != nil {
					errs = append(errs, err)
					continue
				}
				if tag.Addr == 0 {
					t.Errorf("a tag without an address: %+v", tag)
				}
				n++
			}
			if want := len(wantTags(w)) - tc.lost; n != want {
				t.Errorf("%d tags read, want %d", n, want)
			}
			if tc.kind == warnOnly {
				if len(errs) > 0 {
					t.Errorf("errors %v, want none", errs)
				}
				ws := strings.Join(r.Warnings(), "\n")
				for _, m := range tc.msg {
					if !strings.Contains(ws, m) {
						t.Errorf("warnings %q lack %q", ws, m)
					}
				}
				return
			}
			if len(errs) == 0 {
				t.Fatal("no error")
			}
			err = errs[0]
			var (
				re *allocinfo.RangeError
				te *allocinfo.TagError
			)
			switch tc.kind {
			case rangeErr:
				if !errors.As(err, &re) {
					t.Errorf("%v is no *RangeError", err)
				}
			case tagErr:
				if !errors.As(err, &te) {
					t.Fatalf("%v is no *TagError", err)
				}
				if te.Field != tc.field || te.Addr == 0 {
					t.Errorf("field %q at %#x, want %q", te.Field, te.Addr, tc.field)
				}
			case layoutErr:
				if !errors.Is(err, allocinfo.ErrLayout) {
					t.Errorf("%v does not wrap ErrLayout", err)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("%v does not wrap %v", err, tc.is)
			}
			for _, m := range tc.msg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q lacks %q", err, m)
				}
			}
			// Read reports the same as partial, and counts what it lost.
			rep, err := allocinfo.Read(k)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Partial {
				t.Error("report not partial")
			}
			if tc.kind == tagErr && len(rep.Unreadable) != tc.lost {
				t.Errorf("%d unreadable tags, want %d", len(rep.Unreadable), tc.lost)
			}
		})
	}
}
