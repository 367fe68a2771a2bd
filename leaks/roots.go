package leaks

import (
	"fmt"

	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/kernel/mm"
	"github.com/vmleak/vmleak/symbolize"
)

// maxRootBytes bounds one root region: a corrupt size must not make the
// scan read for ever.
const maxRootBytes = 1 << 30

// vmlinuxRoots are the kernel image's writable data, by the linker symbols
// that bound them (include/asm-generic/vmlinux.lds.h): .data, .bss and
// .data..ro_after_init (inside .rodata on x86_64, written once at boot, so
// it holds pointers to boot-time allocations), and .data_nosave. Init data
// is freed after boot and is not scanned; .data..percpu is only the
// template the per-CPU areas were copied from (roots: the areas).
var vmlinuxRoots = []struct{ kind, start, end string }{
	{"data", "_sdata", "_edata"},
	{"ro_after_init", "__start_ro_after_init", "__end_ro_after_init"},
	{"data", "__nosave_begin", "__nosave_end"},
	{"bss", "__bss_start", "__bss_stop"},
}

// moduleRoot tells whether a module region is scanned: 6.4+'s data (with
// .bss) and ro_after_init (ac3b43283923, "module: replace module_layout
// with module_memory"), or 6.1's whole core layout, where text, rodata and
// data are one range. Init memory is freed once the module is loaded.
func moduleRoot(kind string) bool {
	return kind == "data" || kind == "ro_after_init" || kind == "core"
}

// Roots lists the root regions of a kernel: vmlinux data, each possible
// CPU's first-chunk per-CPU unit, every module's data, every task's stack,
// the registers each CPU saved at the crash (the dump's NT_PRSTATUS notes:
// a pointer held only in a register of the crashing code), the vmalloc'd
// areas, vmap_nodes and the struct page array of present memory. What could not be found is
// returned as warnings (the scan then has fewer roots: a source of false
// reports, so the result is partial).
func Roots(k *kernel.Kernel, m *mm.MM, s *symbolize.Symbolizer, mods []kernel.Module) ([]Region, []string) {
	var out []Region
	var warnings []string
	add := func(r Region) {
		if r.Size == 0 {
			return
		}
		if r.Size > maxRootBytes {
			warnings = append(warnings, fmt.Sprintf("leaks: %s root %s at %#x: %d bytes is implausible: not scanned", r.Kind, r.Name, r.VA, r.Size))
			return
		}
		out = append(out, r)
	}
	for _, v := range vmlinuxRoots {
		a, err1 := k.Symbol(v.start)
		b, err2 := k.Symbol(v.end)
		if err1 != nil || err2 != nil {
			if v.start != "__nosave_begin" {
				warnings = append(warnings, fmt.Sprintf("leaks: vmlinux %s (%s..%s) not scanned: %v", v.kind, v.start, v.end, firstErr(err1, err2)))
			}
			continue
		}
		if b > a {
			add(Region{Kind: v.kind, Name: "vmlinux", VA: a, Size: b - a})
		}
	}
	cpus, err := s.CPUAreas()
	if err != nil {
		warnings = append(warnings, fmt.Sprintf("leaks: per-CPU areas not scanned: %v", err))
	}
	for _, c := range cpus {
		add(Region{Kind: "percpu", Name: fmt.Sprintf("CPU %d", c.CPU), VA: c.Base, Size: c.Size})
	}
	for _, md := range mods {
		for _, r := range md.Ranges {
			if moduleRoot(r.Kind) {
				add(Region{Kind: "module", Name: md.Name + " " + r.Kind, VA: r.Base, Size: r.Size})
			}
		}
	}
	tasks, err := s.Tasks()
	if err != nil {
		warnings = append(warnings, fmt.Sprintf("leaks: some task stacks not scanned: %v", err))
	}
	size := s.ThreadSize()
	seen := map[uint64]bool{}
	for _, t := range tasks {
		if t.Stack == 0 || seen[uint64(t.Stack)] {
			continue
		}
		seen[uint64(t.Stack)] = true
		add(Region{Kind: "stack", Name: fmt.Sprintf("pid %d (%s)", t.PID, t.Comm), VA: uint64(t.Stack), Size: size})
	}
	for i, st := range k.Dump().PRStatus() {
		if len(st.Regs) > 0 {
			out = append(out, Region{Kind: "registers", Name: fmt.Sprintf("CPU note %d (pid %d)", i, st.PID),
				Size: 8 * uint64(len(st.Regs)), Words: st.Regs})
		}
	}
	out, warnings = vmallocRoots(k, s, seen, out, warnings)
	pages, ws := kernelPages(k, m)
	out, warnings = append(out, pages...), append(warnings, ws...)
	rs, err := m.MemoryRanges()
	if err != nil {
		warnings = append(warnings, fmt.Sprintf("leaks: struct pages not scanned: %v", err))
	} else {
		// In pieces of at most 1 GiB of struct pages (64 GiB of memory), so a
		// big machine's array passes the per-region bound.
		const most = maxRootBytes / 64
		for _, r := range rs.PFNs {
			for p := r.Start; p < r.End; p += most {
				e := min(r.End, p+most)
				add(Region{Kind: "struct pages", Name: fmt.Sprintf("pfn %#x-%#x", p, e), VA: m.Page(p), Size: (e - p) * m.StructPageSize()})
			}
		}
	}
	return out, warnings
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// VM_ALLOC marks a vm_struct whose pages vmalloc allocated
// (include/linux/vmalloc.h, the same value since v2.6).
const vmAlloc = 0x2

// maxVmallocPages bounds one area's nr_pages (64 GiB).
const maxVmallocPages = 1 << 24

// vmallocRoots adds the vmalloc'd areas (VM_ALLOC: BPF programs,
// vmalloc'd tables, module memory; not ioremap or vmap of others' pages)
// as roots, each its nr_pages mapped pages from vm_struct.addr — the guard
// page after them is unmapped. Stacks already listed are skipped. And the
// vmap_nodes array of v6.9+ (d093602919ad): the roots of vmalloc's busy
// trees, one struct vmap_node per node, allocated with kmalloc_array but
// larger than the largest kmalloc cache, so it is page-allocator memory
// the scan does not otherwise cover.
//
// BUG: vmalloc areas are roots, not objects: a leaked vmalloc area is not
// reported, and what only it points to is hidden.
func vmallocRoots(k *kernel.Kernel, s *symbolize.Symbolizer, stacks map[uint64]bool, out []Region, warnings []string) ([]Region, []string) {
	areas, err := s.Areas()
	if err != nil {
		warnings = append(warnings, fmt.Sprintf("leaks: some vmalloc areas not scanned: %v", err))
	}
	for _, a := range areas {
		if a.VM == 0 || stacks[uint64(a.Start)] {
			continue
		}
		vm := k.Object(uint64(a.VM), "struct vm_struct").Load()
		flags, err1 := vm.Field("flags").Uint()
		addr, err2 := vm.Field("addr").Ptr()
		n, err3 := vm.Field("nr_pages").Uint()
		if err := firstErr(err1, err2, err3); err != nil {
			warnings = append(warnings, fmt.Sprintf("leaks: vmalloc area %#x not scanned: %v", uint64(a.Start), err))
			continue
		}
		if flags&vmAlloc == 0 || n == 0 || stacks[addr] {
			continue
		}
		if n > maxVmallocPages || addr < uint64(a.Start) || addr+n*pageSize > uint64(a.End) {
			warnings = append(warnings, fmt.Sprintf("leaks: vmalloc area %#x-%#x: %d pages at %#x do not fit: not scanned", uint64(a.Start), uint64(a.End), n, addr))
			continue
		}
		out = append(out, Region{Kind: "vmalloc", Name: a.Caller, VA: addr, Size: n * pageSize})
	}
	if _, err := k.Symbol("vmap_nodes"); err == nil {
		nodes, err1 := k.Var("vmap_nodes", "struct vmap_node *").Ptr()
		n, err2 := k.Var("nr_vmap_nodes", "unsigned int").Uint()
		size, err3 := k.SizeOf("struct vmap_node")
		switch err := firstErr(err1, err2, err3); {
		case err != nil:
			warnings = append(warnings, fmt.Sprintf("leaks: vmap_nodes not scanned: %v", err))
		case n == 0 || size <= 0 || n*uint64(size) > maxRootBytes:
			warnings = append(warnings, fmt.Sprintf("leaks: vmap_nodes: %d nodes of %d bytes is implausible: not scanned", n, size))
		default:
			out = append(out, Region{Kind: "vmap_nodes", Name: "vmap_nodes", VA: nodes, Size: n * uint64(size)})
		}
	}
	return out, warnings
}
