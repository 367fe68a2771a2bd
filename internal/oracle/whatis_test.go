package oracle

import (
	"strings"
	"testing"
)

// From a real oracle/crash/qemu1.zlib.whatis (bookworm-qemu), two entries.
const whatisSample = `# vmleak whatis oracle: crash 8.0.2 on qemu1.zlib (bookworm-qemu), written by testdata/vmcores/lab.py whatis
# == KIND ADDR, then key=value facts, then each crash command as "$ CMD" and its output as "> LINE".
# Addresses are bare hex; offset and pfn are 0x-prefixed hex; cpu, pid, order, size decimal.

== slab-allocated ffff8c8d9a208010
cache=vmleak_test_obj
state=allocated
object=ffff8c8d9a208000
offset=0x10
slab=fffff95c80688200
source=kmem -S vmleak_test_obj
$ kmem ffff8c8d9a208010
> CACHE             OBJSIZE  ALLOCATED     TOTAL  SLABS  SSIZE  NAME
> ffff8c8d8244f800      232       1000      1003     59     4k  vmleak_test_obj
>   SLAB              MEMORY            NODE  TOTAL  ALLOCATED  FREE
>   fffff95c80688200  ffff8c8d9a208000     0     17         14     3
>   FREE / [ALLOCATED]
>   [ffff8c8d9a208000]
>
>       PAGE       PHYSICAL      MAPPING       INDEX CNT FLAGS
> fffff95c80688200 1a208000 ffff8c8d8244f800        0  1 fffffc0000200 slab

== stack ffffcff740010200
pid=1
comm=init
task=ffff8c8d811f9800
stack=ffffcff740010000
offset=0x200
source=init_task.tasks.next
crash_names_task=no
$ kmem ffffcff740010200
>    VMAP_AREA         VM_STRUCT                 ADDRESS RANGE                SIZE
> ffff8c8d8104dd40  ffff8c8d99ead040  ffffcff740010000 - ffffcff740015000    20480
>
>       PAGE       PHYSICAL      MAPPING       INDEX CNT FLAGS
> fffff95c80046f40  11bd000                0        0  1 fffffc0000000
$ struct task_struct.pid,comm,stack ffff8c8d811f9800
>   pid = 1,
>   comm = "init\000\000\000\000\000\000\000\000\000\000\000",
>   stack = 0xffffcff740010000,
`

func TestParseWhatis(t *testing.T) {
	es, err := ParseWhatis(whatisSample)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 {
		t.Fatalf("have %d entries, want 2", len(es))
	}
	a, s := es[0], es[1]
	if a.Kind != "slab-allocated" || a.Addr != 0xffff8c8d9a208010 || s.Kind != "stack" || s.Addr != 0xffffcff740010200 {
		t.Errorf("headers: %s %x, %s %x", a.Kind, a.Addr, s.Kind, s.Addr)
	}
	if v, _ := a.Fact("cache"); v != "vmleak_test_obj" {
		t.Errorf("cache %q", v)
	}
	if v, _ := a.Fact("source"); v != "kmem -S vmleak_test_obj" {
		t.Errorf("source %q (values run to the end of the line)", v)
	}
	if strings.Join(a.Keys, ",") != "cache,state,object,offset,slab,source" {
		t.Errorf("keys %v", a.Keys)
	}
	tests := []struct {
		e    *WhatisEntry
		key  string
		want uint64
	}{
		{&a, "object", 0xffff8c8d9a208000},
		{&a, "offset", 0x10},
		{&s, "stack", 0xffffcff740010000},
		{&s, "offset", 0x200},
	}
	for _, tt := range tests {
		if v, err := tt.e.Hex(tt.key); err != nil || v != tt.want {
			t.Errorf("%s %s: have %#x, %v; want %#x", tt.e.Kind, tt.key, v, err, tt.want)
		}
	}
	if pid, err := s.Int("pid"); err != nil || pid != 1 {
		t.Errorf("pid %d, %v", pid, err)
	}
	if _, err := s.Int("comm"); err == nil {
		t.Error("comm parsed as a number")
	}
	if _, err := s.Hex("cpu"); err == nil {
		t.Error("no error for a missing fact")
	}
	if len(a.Commands) != 1 || a.Commands[0].Command != "kmem ffff8c8d9a208010" || len(a.Commands[0].Output) != 9 {
		t.Errorf("commands %+v", a.Commands)
	}
	if out := a.Commands[0].Output; out[5] != "  [ffff8c8d9a208000]" || out[6] != "" {
		t.Errorf("output kept verbatim: %q", out)
	}
	if len(s.Commands) != 2 || s.Commands[1].Output[0] != "  pid = 1," {
		t.Errorf("commands %+v", s.Commands)
	}
}

func TestParseWhatisErrors(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"empty", "# nothing\n", "no entries"},
		{"fact first", "cache=x\n", "before the first"},
		{"bad header", "== slab-free\n", "header"},
		{"bad address", "== slab-free zz\n", "line 1"},
		{"output first", "== slab-free 10\n> x\n", "output before any command"},
		{"fact after commands", "== slab-free 10\n$ kmem 10\nstate=free\n", "after the commands"},
		{"repeated fact", "== slab-free 10\nstate=free\nstate=free\n", "repeated"},
		{"junk", "== slab-free 10\nstate free\n", "line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseWhatis(tt.text)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("have error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// Lines from a real bookworm-kdump pre1.vmallocinfo (6.1, kptr_restrict=1).
func TestParseVmallocinfo(t *testing.T) {
	text := `0xffffcd2e00000000-0xffffcd2e00005000   20480 irq_init_percpu_irqstack+0xf0/0x120 vmap
0xffffcd2e00005000-0xffffcd2e00007000    8192 acpi_os_map_iomem+0x1b6/0x1d0 phys=0x000000003ffe1000 ioremap
0xffffcd2e00010000-0xffffcd2e00015000   20480 kernel_clone+0xbf/0x430 pages=4 vmalloc N0=4
0xffffcd2e00045000-0xffffcd2e00047000    8192 vp_modern_map_capability+0x148/0x1d0 [virtio_pci_modern_dev] phys=0x00000000febf0000 ioremap
0xffffffffc029f000-0xffffffffc02ac000   53248 load_module+0xbb7/0x21a0 pages=12 vmalloc N0=12
`
	as, err := ParseVmallocinfo(text)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 5 {
		t.Fatalf("have %d areas", len(as))
	}
	tests := []struct {
		i                  int
		start, end         uint64
		size, pages        int64
		caller, fn, module string
		phys               uint64
		flags              string
	}{
		{0, 0xffffcd2e00000000, 0xffffcd2e00005000, 20480, 0, "irq_init_percpu_irqstack+0xf0/0x120", "irq_init_percpu_irqstack", "", 0, "vmap"},
		{1, 0xffffcd2e00005000, 0xffffcd2e00007000, 8192, 0, "acpi_os_map_iomem+0x1b6/0x1d0", "acpi_os_map_iomem", "", 0x3ffe1000, "ioremap"},
		{2, 0xffffcd2e00010000, 0xffffcd2e00015000, 20480, 4, "kernel_clone+0xbf/0x430", "kernel_clone", "", 0, "vmalloc"},
		{3, 0xffffcd2e00045000, 0xffffcd2e00047000, 8192, 0, "vp_modern_map_capability+0x148/0x1d0", "vp_modern_map_capability", "virtio_pci_modern_dev", 0xfebf0000, "ioremap"},
		{4, 0xffffffffc029f000, 0xffffffffc02ac000, 53248, 12, "load_module+0xbb7/0x21a0", "load_module", "", 0, "vmalloc"},
	}
	for _, tt := range tests {
		a := as[tt.i]
		if a.Start != tt.start || a.End != tt.end || a.Size != tt.size || a.Pages != tt.pages || a.Caller != tt.caller ||
			a.Func() != tt.fn || a.Module != tt.module || a.Phys != tt.phys || strings.Join(a.Flags, " ") != tt.flags {
			t.Errorf("line %d: have %+v", tt.i+1, a)
		}
	}
	if !as[2].Has("vmalloc") || as[2].Has("vmap") || as[2].Nodes["N0"] != 4 {
		t.Errorf("flags or nodes of line 3: %+v", as[2])
	}
	for _, bad := range []string{"", "0xffff-0x1 x\n", "ffff-0x1 10\n", "0x1 10\n", "0x1-0x2 10 f+0x1/0x2 pages=x\n"} {
		if _, err := ParseVmallocinfo(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// Lines from a real bookworm-kdump pre1.kallsyms: per-CPU symbols are
// offsets into the per-CPU area (type A), data symbols kernel addresses.
func TestParseKallsyms(t *testing.T) {
	ss, err := ParseKallsyms(`0000000000031980 A runqueues
ffffffffa4c1aa40 D init_task
`)
	if err != nil {
		t.Fatal(err)
	}
	want := []Symbol{{0x31980, "A", "runqueues", ""}, {0xffffffffa4c1aa40, "D", "init_task", ""}}
	if len(ss) != len(want) {
		t.Fatalf("have %+v", ss)
	}
	for i := range want {
		if ss[i] != want[i] {
			t.Errorf("have %+v, want %+v", ss[i], want[i])
		}
	}
	for _, bad := range []string{"x A y\n", "1 A\n"} {
		if _, err := ParseKallsyms(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
