package symbolize_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/vmleak/vmleak/internal/fixture"
	"github.com/vmleak/vmleak/internal/testkernel"
	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/symbolize"
	"github.com/vmleak/vmleak/walk"
)

// open opens one dump file of a fixture with its slab walker.
func open(t *testing.T, m *fixture.Manifest, d fixture.DumpFile) (*kernel.Kernel, *symbolize.Symbolizer) {
	t.Helper()
	k, err := kernel.Open(m.DumpPath(d), kernel.Options{Vmlinux: m.Vmlinux()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	w, err := walk.New(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, symbolize.New(w)
}

// firstDumps is one dump file of every fixture: a fixture's files hold the
// same memory (checked page by page in elfcore), so one is enough here.
func firstDumps(t *testing.T, fn func(t *testing.T, m *fixture.Manifest, d fixture.DumpFile)) {
	for _, m := range fixture.All(t) {
		d := m.Dumps[0]
		t.Run(m.Name+"/"+d.File, func(t *testing.T) { fn(t, m, d) })
	}
}

// Addresses of every kind, each taken from a source other than the code
// under test: the guest's own /proc/modules, VMCOREINFO, kernel variables
// read by name (page_offset_base, vmemmap_base, init_task.stack,
// slab_caches), and the vmlinux's symbols. crash's and the guest's own
// answers for more addresses are compared in TestWhatisOracles.
func TestIdentifyEveryKind(t *testing.T) {
	firstDumps(t, func(t *testing.T, m *fixture.Manifest, d fixture.DumpFile) {
		k, s := open(t, m, d)
		pageOffset := testkernel.Uint(t, k.Var("page_offset_base", "unsigned long"))
		vmemmap := testkernel.Uint(t, k.Var("vmemmap_base", "unsigned long"))
		pageSize, err := k.SizeOf("struct page")
		if err != nil {
			t.Fatal(err)
		}
		type check struct {
			name string
			va   uint64
			kind string
			ok   func(r symbolize.Result) bool
		}
		var checks []check

		// Modules, from the guest's /proc/modules (name, size, ..., address).
		mods := m.Oracle(t, d.Oracle+".modules")
		n := 0
		for _, l := range strings.Split(strings.TrimSpace(mods), "\n") {
			f := strings.Fields(l)
			var base uint64
			for _, x := range f {
				if strings.HasPrefix(x, "0x") {
					base, err = strconv.ParseUint(x[2:], 16, 64)
				}
			}
			if err != nil || base == 0 {
				t.Fatalf("/proc/modules line without an address: %q", l)
			}
			name := f[0]
			checks = append(checks, check{"module " + name, base + 0x10, symbolize.KindModule,
				func(r symbolize.Result) bool { return r.Module == name }})
			n++
		}
		if n == 0 {
			t.Fatal("the guest listed no module")
		}

		// The boot page tables' page: in the direct map, its struct page in
		// the memory map (VMCOREINFO's init_top_pgt is a kernel-image address).
		info := k.Info()
		if info == nil {
			t.Skip("no VMCOREINFO: the boot page tables' physical address comes from it")
		}
		pgt, ok := info.Symbol("init_top_pgt")
		physBase, ok2 := info.Number("phys_base")
		if !ok || !ok2 {
			t.Fatal("VMCOREINFO lacks init_top_pgt or phys_base")
		}
		pa := pgt - 0xffffffff80000000 + uint64(physBase)
		pfn := pa / 4096
		checks = append(checks,
			check{"direct map of init_top_pgt", pageOffset + pa + 0x18, symbolize.KindDirectMap,
				func(r symbolize.Result) bool { return r.Page != nil && uint64(r.Page.PFN) == pfn && r.Object == nil }},
			check{"struct page of init_top_pgt", vmemmap + pfn*uint64(pageSize) + 8, symbolize.KindPage,
				func(r symbolize.Result) bool { return r.Page != nil && uint64(r.Page.PFN) == pfn }},
			check{"memory map past the dump's memory", vmemmap + (1<<28)*uint64(pageSize), symbolize.KindVmemmap, nil},
		)

		// A kernel symbol, and per-CPU variables of every CPU.
		banner, err := k.Symbol("linux_banner")
		if err != nil {
			t.Fatal(err)
		}
		checks = append(checks, check{"linux_banner+3", banner + 3, symbolize.KindSymbol,
			func(r symbolize.Result) bool { return r.Symbol == "linux_banner+0x3" }})
		rq, err := k.Symbol("runqueues")
		if err != nil {
			t.Fatal(err)
		}
		offs, err := k.PerCPUOffsets()
		if err != nil {
			t.Fatal(err)
		}
		for cpu := range offs {
			a, err := k.PerCPU(rq, cpu)
			if err != nil {
				t.Fatal(err)
			}
			checks = append(checks, check{fmt.Sprintf("per_cpu(runqueues, %d)+0x40", cpu), a + 0x40, symbolize.KindPerCPU,
				func(r symbolize.Result) bool { return r.CPU != nil && *r.CPU == cpu && r.Symbol == "runqueues+0x40" }})
		}

		// Each CPU's hard-IRQ stack is vmap'ed by irq_init_percpu_irqstack
		// (VMAP_STACK); hardirq_stack_ptr points near its top. It sits in
		// struct pcpu_hot on 6.12 and is its own per-CPU variable on 6.1 and
		// 7.x: the symbols say which.
		for cpu := range offs {
			var top uint64
			if a, err := k.Symbol("hardirq_stack_ptr"); err == nil {
				pa, err := k.PerCPU(a, cpu)
				if err != nil {
					t.Fatal(err)
				}
				top = testkernel.Uint(t, k.Object(pa, "struct irq_stack *"))
			} else {
				a, err := k.Symbol("pcpu_hot")
				if err != nil {
					t.Fatal(err)
				}
				pa, err := k.PerCPU(a, cpu)
				if err != nil {
					t.Fatal(err)
				}
				top = testkernel.Uint(t, k.Object(pa, "struct pcpu_hot").Field("hardirq_stack_ptr"))
			}
			checks = append(checks, check{fmt.Sprintf("CPU %d's IRQ stack", cpu), top - 0x100, symbolize.KindVmalloc,
				func(r symbolize.Result) bool {
					return r.Area != nil && strings.HasPrefix(r.Area.Caller, "irq_init_percpu_irqstack+")
				}})
		}

		// The boot CPU's idle task's stack.
		stack := testkernel.Uint(t, k.Var("init_task", "struct task_struct").Field("stack"))
		checks = append(checks, check{"init_task's stack", stack + 0x100, symbolize.KindStack,
			func(r symbolize.Result) bool {
				return r.Task != nil && r.Task.PID == 0 && uint64(r.Task.Stack) == stack
			}})

		// A struct kmem_cache is itself an object of the kmem_cache cache.
		head, err := k.Symbol("slab_caches")
		if err != nil {
			t.Fatal(err)
		}
		first, err := k.ReadPtr(head)
		if err != nil {
			t.Fatal(err)
		}
		list, err := k.Member("struct kmem_cache", "list")
		if err != nil {
			t.Fatal(err)
		}
		cache := first - list.Offset()
		checks = append(checks, check{"the newest struct kmem_cache", cache + list.Offset(), symbolize.KindSlab,
			func(r symbolize.Result) bool {
				return r.Object != nil && r.Object.Cache == "kmem_cache" && r.Object.Allocated && r.Object.Addr == cache
			}})

		for _, c := range checks {
			r := s.Identify(c.va)
			if r.Kind != c.kind || r.Error != "" || (c.ok != nil && !c.ok(r)) {
				t.Errorf("%s: whatis %#x = %s: %s (error %q), want %s", c.name, c.va, r.Kind, r.What, r.Error, c.kind)
			}
		}
		t.Logf("%d addresses identified", len(checks))
	})
}
