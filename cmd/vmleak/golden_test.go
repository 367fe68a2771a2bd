package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmleak/vmleak/internal/goldenfile"
	"github.com/vmleak/vmleak/internal/summarytest"
	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/meminfo"
	"github.com/vmleak/vmleak/modules"
	"github.com/vmleak/vmleak/owners"
	"github.com/vmleak/vmleak/summary"
	"github.com/vmleak/vmleak/symbolize"
	"github.com/vmleak/vmleak/walk"
)

func golden(t *testing.T, name string, have []byte) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", "golden", name), have)
}

// sampleCensus is a small census with the shapes rendering must handle:
// a merged cache with aliases, a disagreement, a partial cache, sheaves.
func sampleCensus() *walk.Census {
	return &walk.Census{Schema: walk.CensusSchema,
		Release: "6.1.0-56-cloud-amd64", Dump: "vmcore", Method: "census", FreelistEncoding: "swab", PagesScanned: 262144,
		Caches: []*walk.CacheStats{
			{Addr: 0xffff8cfdc24d3900, Name: "vmleak_test_obj", ObjectSize: 232, Size: 240, ObjPerSlab: 17, SlabBytes: 4096,
				Allocated: 1000, Total: 1003, Slabs: 59, Free: walk.FreeCounts{CPUFreelists: 3},
				Counters: walk.CounterStats{Allocated: 1000, Total: 1003, Slabs: 59, CPUFreelist: 3}},
			{Addr: 0xffff8cfdc1042b00, Name: "kmalloc-1k", ObjectSize: 1024, Size: 1024, ObjPerSlab: 16, Order: 2, SlabBytes: 16384,
				Allocated: 555, Total: 576, Slabs: 36, Aliases: []string{"UNIX", "UNIX-STREAM"},
				Free: walk.FreeCounts{SlabFreelists: 21}, Counters: walk.CounterStats{Allocated: 555, Total: 576, Slabs: 36, NodePartial: 21}},
			{Addr: 0xffff8cfdc1042d00, Name: "dentry", ObjectSize: 192, Size: 192, ObjPerSlab: 21, SlabBytes: 4096,
				Allocated: 10796, Total: 10815, Slabs: 515, Free: walk.FreeCounts{SlabFreelists: 19},
				Counters: walk.CounterStats{Allocated: 10800, Total: 10815, Slabs: 515}, Disagree: true,
				Why: "census 10796/10815/515 (allocated/total/slabs), counters 10800/10815/515: the kernel's counters are racy or stale"},
			{Addr: 0xffff8cfdc1045400, Name: "kmalloc-4k", ObjectSize: 4096, Size: 4096, ObjPerSlab: 8, Order: 3, SlabBytes: 32768,
				Allocated: 70, Total: 80, Slabs: 10, UnreadableSlabs: 2, Free: walk.FreeCounts{SlabFreelists: 4, Sheaves: 6},
				Counters: walk.CounterStats{Allocated: 76, Total: 80, Slabs: 10}},
		},
		Warnings: []string{"struct pages of pfn 0x1000-0x1040: elfcore: physical address 0x1234000 not in dump (excluded)"},
		Partial:  true,
	}
}

func TestGoldenSlabs(t *testing.T) {
	for _, tc := range []struct {
		name, cols string
		csv        bool
	}{
		{"slabs.txt", defaultColumns, false},
		{"slabs-wide.txt", wideColumns, false},
		{"slabs-free.txt", "name,allocated,free,counter", false},
		{"slabs.csv", wideColumns, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			cols := strings.Split(tc.cols, ",")
			if tc.csv {
				if err := writeSlabsCSV(&b, sampleCensus(), cols, nil); err != nil {
					t.Fatal(err)
				}
			} else {
				writeSlabsText(&b, sampleCensus(), cols, nil)
			}
			golden(t, tc.name, b.Bytes())
		})
	}
	t.Run("slabs.json", func(t *testing.T) {
		b, err := json.MarshalIndent(sampleCensus(), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "slabs.json", append(b, '\n'))
		var back walk.Census
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		again, _ := json.MarshalIndent(&back, "", "  ")
		if !bytes.Equal(again, b) {
			t.Error("census JSON does not round-trip")
		}
	})
	t.Run("slabinfo.txt", func(t *testing.T) {
		var b bytes.Buffer
		writeSlabinfo(&b, sampleCensus())
		golden(t, "slabinfo.txt", b.Bytes())
	})
	t.Run("warnings.txt", func(t *testing.T) {
		var b bytes.Buffer
		warnCensus(&b, sampleCensus())
		golden(t, "warnings.txt", b.Bytes())
	})
}

func TestGoldenInfo(t *testing.T) {
	lvl := int32(31)
	ct := time.Date(2026, 11, 26, 7, 6, 35, 0, time.UTC)
	in := &kernel.Summary{
		File: "kdump.lzo", Format: "kdump", Compression: []string{"lzo"}, DumpLevel: &lvl, Arch: "x86_64",
		Release: "6.1.0-56-cloud-amd64", PageSize: 4096, CPUs: 2,
		PhysRanges:   []kernel.PhysRange{{Start: 0x1000, End: 0x9f000}, {Start: 0x100000, End: 0x2e000000}},
		PagesPresent: 22730, PagesExcluded: 173739, PagesZero: 3384, VMCOREINFO: true, CrashTime: &ct,
		KASLROffset: hexPtr(0x1e000000), PhysBase: hexPtr(0xfffffffff3000000), PageOffset: hexPtr(0xffff8b3400000000),
		VmallocBase: hexPtr(0xffffd1fec0000000), VmemmapBase: hexPtr(0xfffffa6d40000000), PagingLevel: 4,
		LocatedBy: "vmcoreinfo", Vmlinux: "/usr/lib/debug/boot/vmlinux-6.1.0-56-cloud-amd64",
	}
	var b bytes.Buffer
	writeInfo(&b, in, nil)
	golden(t, "info.txt", b.Bytes())
	j, err := json.MarshalIndent(in, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "info.json", append(j, '\n'))
}

func TestGoldenWhatis(t *testing.T) {
	var b bytes.Buffer
	for _, r := range []symbolize.Result{
		{Addr: 0xffff8ca5c246b050, Kind: "slab", What: "vmleak_test_obj object 0 at 0xffff8ca5c246b000+0x50 (232 bytes), allocated; slab 0xfffffbef00091ac0, cache 0xffff8ca5c244bf00"},
		{Addr: 0xffffffffc0000000, Kind: "unknown", What: "not a slab object, symbol, module, vmalloc or vmemmap address"},
		{Addr: 0xffff8ca5c0000000, Kind: "direct-map", Error: "walk: struct page of 0xffff8ca5c0000000: missing"},
		{Addr: 0xffffffffbc7e3d50, Kind: "symbol", Symbol: "kmem_cache_free+0x10", File: "mm/slub.c", Line: 3803,
			What: "kmem_cache_free+0x10 (func, .text) at mm/slub.c:3803"},
	} {
		writeWhatis(&b, r)
	}
	golden(t, "whatis.txt", b.Bytes())
}

func TestGoldenWhatisJSON(t *testing.T) {
	o := &walk.Object{Cache: "vmleak_test_obj", CacheAddr: 0xffff8ca5c244bf00, Slab: 0xfffffbef00091ac0, Index: 0,
		Addr: 0xffff8ca5c246b000, Offset: 0x50, Size: 232, Allocated: true}
	b, err := json.MarshalIndent([]symbolize.Result{{Addr: 0xffff8ca5c246b050, Kind: "slab", What: "...", Object: o},
		{Addr: 0xffffffffbc7e3d50, Kind: "symbol", Symbol: "kmem_cache_free+0x10", File: "mm/slub.c", Line: 3803, What: "..."}}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "whatis.json", append(b, '\n'))
}

func TestGoldenObjects(t *testing.T) {
	objs := []walk.Object{
		{Cache: "kmalloc-1k", CacheAddr: 0xffff8cfdc1042b00, Slab: 0xfffffbef00091ac0, Index: 3, Addr: 0xffff8ca5c246bc00, Size: 1024, Allocated: true},
		{Cache: "kmalloc-1k", CacheAddr: 0xffff8cfdc1042b00, Slab: 0xfffffbef00091ac0, Index: 4, Addr: 0xffff8ca5c246c000, Size: 1024, FreeOn: "cpu freelist"},
	}
	for _, asJSON := range []bool{false, true} {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		for _, o := range objs {
			if err := writeObject(&b, enc, o, asJSON); err != nil {
				t.Fatal(err)
			}
		}
		name := "objects.txt"
		if asJSON {
			name = "objects.json"
		}
		golden(t, name, b.Bytes())
	}
}

func TestGoldenMeminfo(t *testing.T) {
	mi := &meminfo.Meminfo{Lines: []meminfo.Line{
		{Name: "MemTotal", Value: 734200, Unit: "kB", Source: "_totalram_pages"},
		{Name: "Slab", Value: 19612, Unit: "kB", Source: "vm_node_stat[NR_SLAB_RECLAIMABLE_B] + vm_node_stat[NR_SLAB_UNRECLAIMABLE_B]"},
		{Name: "HugePages_Total", Value: 0, Source: "hstates[default_hstate_idx].nr_huge_pages"},
	}}
	var b bytes.Buffer
	if err := mi.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	golden(t, "meminfo.txt", b.Bytes())
	b.Reset()
	writeMeminfoExplain(&b, mi)
	golden(t, "meminfo-explain.txt", b.Bytes())
	j, err := json.MarshalIndent(mi, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "meminfo.json", append(j, '\n'))
}

func TestGoldenDmesg(t *testing.T) {
	var b bytes.Buffer
	writeLog(&b, []kernel.LogRecord{
		{Seq: 0, TimeNS: 0, Text: "Linux version 6.1.0-56-cloud-amd64 (debian-kernel@lists.debian.org)"},
		{Seq: 1, TimeNS: 6940305123, Text: "Kernel panic - not syncing: sysrq triggered crash"},
		{Seq: 2, TimeNS: 6942576000, Text: "CPU: 1 PID: 1 Comm: init\nCall Trace:"},
	})
	golden(t, "dmesg.txt", b.Bytes())
}

func hexPtr(v uint64) *kernel.Hex { h := kernel.Hex(v); return &h }

// sampleModules is a small modules report with the shapes rendering must
// handle: taint flags, users, a module being loaded, [permanent], 6.4+
// regions, decoded and undecoded parameters, a module read in part.
func sampleModules() *modules.Report {
	ref := func(n int64) *int64 { return &n }
	str := func(s string) *string { return &s }
	return &modules.Report{Schema: modules.Schema, Release: "6.12.117+deb13-cloud-amd64", Dump: "vmcore",
		Taint: modules.Taint{Mask: 0x3200, String: "Tainted: G        W  OE     ", Table: "taint_flags", Flags: []modules.TaintFlag{
			{Bit: 9, Char: "W", Name: "WARN"},
			{Bit: 12, Char: "O", Name: "OOT_MODULE", Modules: []string{"vmleak_test"}},
			{Bit: 13, Char: "E", Name: "UNSIGNED_MODULE", Modules: []string{"vmleak_test"}},
		}},
		Modules: []modules.Module{
			{Name: "vmleak_test", Addr: 0xffffffffc04cb080, Base: 0xffffffffc04c9000, Size: 49152,
				Regions:  []modules.Region{{Kind: "text", Base: 0xffffffffc04c9000, Size: 8192}, {Kind: "data", Base: 0xffffffffc04cb000, Size: 40960}},
				Refcount: ref(0), UsedBy: []string{}, State: "Loading", Taints: 0x3000, TaintFlags: "(OE+)",
				BuildID: "d17dc468043130ea7fa854c4eb0566e4e07fb2f1", Debuginfo: "/usr/lib/debug/lib/modules/6.12.117+deb13-cloud-amd64/updates/vmleak_test.ko",
				Params: []modules.Param{
					{Name: "allocated", Ops: "allocated_ops", Perm: "0444"},
					{Name: "nobj", Ops: "param_ops_uint", Value: str("1000"), Perm: "0444"},
					{Name: "names", Ops: "param_array_ops", Perm: "0444", Error: "array of 0xffffffffc04ca000: not decoded"},
				}},
			{Name: "cdrom", Addr: 0xffffffffc04ae880, Base: 0xffffffffc04a0000, Size: 81920,
				Regions:  []modules.Region{{Kind: "text", Base: 0xffffffffc04a0000, Size: 81920}},
				Refcount: ref(1), UsedBy: []string{"isofs", "sr_mod"}, State: "Live",
				BuildIDError:   "kernel: module build-id not available: module cdrom has no NT_GNU_BUILD_ID note",
				DebuginfoError: "kernel: no module debuginfo found for module cdrom", Params: []modules.Param{
					{Name: "lockdoor", Ops: "param_ops_bool", Value: str("Y"), Perm: "0000"},
				}},
			{Name: "firmware_class", Addr: 0xffffffffc0401040, Base: 0xffffffffc0400000, Size: 16384,
				Regions:  []modules.Region{{Kind: "text", Base: 0xffffffffc0400000, Size: 16384}},
				Refcount: ref(0), UsedBy: []string{}, Permanent: true, State: "Live", Params: []modules.Param{}},
			{Name: "broken", Addr: 0xffffffffc0300000, State: "?", UsedBy: []string{}, Params: []modules.Param{},
				Errors: []string{"state: kernel: reading (struct module *)0xffffffffc0300000.state at 0xffffffffc0300000: elfcore: physical address 0x1234000 not in dump (excluded)"}},
		},
		Warnings: []string{"module broken at 0xffffffffc0300000: state: ..."},
		Partial:  true,
	}
}

func TestGoldenModules(t *testing.T) {
	for _, tc := range []struct {
		name    string
		regions bool
	}{{"modules.txt", false}, {"modules-regions.txt", true}} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			writeModules(&b, sampleModules(), tc.regions)
			golden(t, tc.name, b.Bytes())
		})
	}
	t.Run("not tainted", func(t *testing.T) {
		var b bytes.Buffer
		rep := &modules.Report{Taint: modules.Taint{String: "Not tainted", Table: "built-in"}}
		writeModules(&b, rep, false)
		golden(t, "modules-untainted.txt", b.Bytes())
	})
	t.Run("modules.json", func(t *testing.T) {
		b, err := json.MarshalIndent(sampleModules(), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "modules.json", append(b, '\n'))
		var back modules.Report
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if again, _ := json.MarshalIndent(&back, "", "  "); !bytes.Equal(again, b) {
			t.Error("modules JSON does not round-trip")
		}
	})
}

func sampleOwners() *owners.Report {
	mod := func(addr uint64, sym, module string, line int) symbolize.Frame {
		return symbolize.Frame{Addr: kernel.Hex(addr), Kind: symbolize.FrameModule, Symbol: sym, Module: module, Text: true,
			File: "/build/" + module + ".c", Line: line}
	}
	kern := func(addr uint64, sym, file string, line int) symbolize.Frame {
		return symbolize.Frame{Addr: kernel.Hex(addr), Kind: symbolize.FrameKernel, Symbol: sym, Section: ".text", Text: true, File: file, Line: line}
	}
	freedInit := symbolize.Frame{Addr: 0xffffffffc04c7010, Kind: symbolize.FrameFreedInit}
	initcall := []symbolize.Frame{freedInit, kern(0xffffffff81002a59, "do_one_initcall+0x59", "init/main.c", 1296),
		kern(0xffffffff8114f54a, "do_init_module+0x4a", "kernel/module/main.c", 2455)}
	leak := append([]symbolize.Frame{kern(0xffffffff812c3a49, "__kmalloc+0x49", "mm/slab_common.c", 967),
		mod(0xffffffffc025e02a, "vmleak_test_leak+0x2a", "vmleak_test", 125)}, initcall...)
	peer := append([]symbolize.Frame{mod(0xffffffffc034a02a, "vmleak_peer_leak+0x2a", "vmleak_peer", 53)}, initcall...)
	grow := append([]symbolize.Frame{mod(0xffffffffc025e235, "grow_by+0x35", "vmleak_test", 82)}, initcall...)
	growParam := []symbolize.Frame{mod(0xffffffffc025e235, "grow_by+0x35", "vmleak_test", 82), mod(0xffffffffc025e2b0, "grow_set+0x30", "vmleak_test", 104),
		kern(0xffffffff810c1d20, "param_attr_store+0x90", "kernel/params.c", 596)}
	return &owners.Report{
		Schema: owners.ReportSchema, Tracked: true,
		Owners: []owners.OwnerShare{
			{Owner: "vmleak_test", Objects: 1300, Bytes: 539200, Caches: []owners.CacheShare{
				{Cache: "kmalloc-1k", Objects: 300, Bytes: 307200, Evidence: owners.EvidenceTrack},
				{Cache: "vmleak_test_obj", Objects: 1000, Bytes: 232000, Evidence: owners.EvidenceTrack}}},
			{Owner: "vmleak_peer", Objects: 320, Bytes: 141680, Caches: []owners.CacheShare{
				{Cache: "kmalloc-1k", Objects: 120, Bytes: 122880, Evidence: owners.EvidenceTrack},
				{Cache: "vmleak_peer_obj", Objects: 200, Bytes: 18800, Evidence: "data-pointer+constructor"}}},
			{Owner: "isofs", Caches: []owners.CacheShare{{Cache: "isofs_inode_cache", Evidence: "data-pointer+constructor"}}},
			{Owner: owners.OwnerKernel, Objects: 13519, Bytes: 2595648, Caches: []owners.CacheShare{
				{Cache: "dentry", Objects: 13519, Bytes: 2595648, Evidence: owners.EvidenceTrack}}},
			{Owner: owners.OwnerUnattributed, Objects: 1, Bytes: 2048, Caches: []owners.CacheShare{
				{Cache: "kmalloc-2k", Objects: 1, Bytes: 2048, Evidence: owners.EvidenceTrack}}},
		},
		Caches: []owners.CacheOwner{{Cache: "vmleak_test_obj", CacheAddr: 0xffff8af5bff7fb00, Module: "vmleak_test", Evidence: []owners.Evidence{
			{Kind: owners.EvidenceDataPointer, Addr: 0xffffffffc0260400, What: "module vmleak_test's core at 0xffffffffc0260400 holds the pointer to kmem_cache vmleak_test_obj"},
			{Kind: owners.EvidenceConstructor, Addr: 0xffffffffc025e1a0, What: "constructor 0xffffffffc025e1a0 is in module vmleak_test's core"}}}},
		References: []owners.Reference{{Module: "vmleak_test", Cache: "kmalloc-4k", Objects: 50, Bytes: 204800}},
		Sites: []owners.Site{
			{Cache: "kmalloc-1k", Caller: leak[1], Module: "vmleak_test", Owner: "vmleak_test", Objects: 300, Bytes: 307200, Stack: leak,
				Stacks: []owners.SiteStack{{Handle: 0x04cb0031, Objects: 300, Bytes: 307200, Frames: leak}}},
			{Cache: "vmleak_test_obj", Caller: grow[0], Module: "vmleak_test", Owner: "vmleak_test", Objects: 1000, Bytes: 232000, Stack: grow,
				Stacks: []owners.SiteStack{{Handle: 0x04c90031, Objects: 988, Bytes: 229216, Frames: grow}, {Handle: 0x04ca0031, Objects: 12, Bytes: 2784, Frames: growParam}}},
			{Cache: "kmalloc-1k", Caller: peer[0], Module: "vmleak_peer", Owner: "vmleak_peer", Objects: 120, Bytes: 122880, Stack: peer,
				Stacks: []owners.SiteStack{{Handle: 0x04cc0031, Objects: 120, Bytes: 122880, Frames: peer}}},
			{Cache: "vmleak_peer_obj", Caller: freedInit, Owner: "vmleak_peer", Objects: 200, Bytes: 18800, Stack: initcall,
				Stacks: []owners.SiteStack{{Handle: 0x04cd0031, Objects: 200, Bytes: 18800, Frames: initcall}}},
		},
	}
}

func TestGoldenOwners(t *testing.T) {
	var b bytes.Buffer
	cols := strings.Split("cache,objsize,allocated,total,slabs,ssize,owner,name", ",")
	owned := map[string]string{"vmleak_test_obj": "vmleak_test", "kmalloc-1k": "cdrom,vmleak_test"}
	writeSlabsText(&b, sampleCensus(), cols, owned)
	golden(t, "slabs-owners.txt", b.Bytes())
	b.Reset()
	if err := writeSlabsCSV(&b, sampleCensus(), cols, owned); err != nil {
		t.Fatal(err)
	}
	golden(t, "slabs-owners.csv", b.Bytes())
	b.Reset()
	writeOwners(&b, sampleOwners(), true, false)
	golden(t, "owners.txt", b.Bytes())
	b.Reset()
	writeOwners(&b, sampleOwners(), true, true)
	golden(t, "owners-stacks.txt", b.Bytes())
	b.Reset()
	untracked := sampleOwners()
	untracked.Tracked, untracked.Sites = false, nil
	writeOwners(&b, untracked, true, false)
	golden(t, "owners-untracked.txt", b.Bytes())
	for _, tc := range []struct {
		name  string
		sites bool
	}{{"owners.csv", false}, {"owners-sites.csv", true}} {
		b.Reset()
		if err := writeOwnersCSV(&b, sampleOwners(), tc.sites); err != nil {
			t.Fatal(err)
		}
		golden(t, tc.name, b.Bytes())
	}
	j, err := json.MarshalIndent(sampleOwners(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "owners.json", append(j, '\n'))
}

// sampleSummaryFiles writes the hand-made before/after summaries as JSON.
func sampleSummaryFiles(t *testing.T, dir string) (before, after string) {
	t.Helper()
	before, after = filepath.Join(dir, "before.json"), filepath.Join(dir, "after.json")
	if err := summary.WriteFile(before, summarytest.Before(), summary.JSON); err != nil {
		t.Fatal(err)
	}
	if err := summary.WriteFile(after, summarytest.After(), summary.JSON); err != nil {
		t.Fatal(err)
	}
	return before, after
}

// diff's three renderings of the hand-made pair (growth, one-sided,
// partial, owners, sites, meminfo), with a limit that fires.
func TestGoldenDiff(t *testing.T) {
	before, after := sampleSummaryFiles(t, t.TempDir())
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"diff.txt", nil},
		{"diff.md", []string{"--markdown"}},
		{"diff.json", []string{"--json"}},
		{"diff-same.txt", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"diff", before, after, "--fail-if-growth", "10%", "--cache", "vmleak_test_obj"}, tc.args...)
			if tc.name == "diff-same.txt" {
				args = []string{"diff", before, before}
			}
			code, out, errs := vmleak(t, args...)
			if want := map[bool]int{true: ExitOK, false: ExitGrowth}[tc.name == "diff-same.txt"]; code != want {
				t.Fatalf("exit %d (want %d): %s", code, want, errs)
			}
			golden(t, tc.name, []byte(out))
		})
	}
}
