package symbolize

import (
	"errors"
	"fmt"
	"sort"

	"github.com/vmleak/vmleak/kernel"
)

// Bounds on lists read from the dump.
const (
	maxTasks    = 1 << 22
	maxUnitSize = 1 << 30
)

// cpuArea is one CPU's per-CPU area.
type cpuArea struct {
	cpu        int
	base, size uint64
}

// perCPU is an address in some CPU's per-CPU area: the first chunk, which
// holds the static per-CPU variables (.data..percpu, linked at 0 on x86_64
// SMP, at its load address on 7.x) and the reserved and dynamic parts, one
// unit per CPU at __per_cpu_start + __per_cpu_offset[cpu]. Of each unit of
// pcpu_unit_size bytes only the first chunk's part is per-CPU memory: an
// embedded first chunk gives the rest of every unit back to the page
// allocator at boot (pcpu_embed_first_chunk), and slabs live there.
func (s *Symbolizer) perCPU(r *Result, va uint64) bool {
	s.cpuOnce.Do(func() { s.cpus, s.cpuErr = s.readCPUAreas() })
	for _, a := range s.cpus {
		if va < a.base || va-a.base >= a.size {
			continue
		}
		cpu, off := a.cpu, va-a.base
		r.Kind, r.CPU = KindPerCPU, &cpu
		r.What = fmt.Sprintf("CPU %d's per-CPU area +%#x", cpu, off)
		if name, d, ok := s.perCPUSymbol(off); ok {
			r.Symbol = fmt.Sprintf("%s+%#x", name, d)
			r.What += fmt.Sprintf(": per_cpu(%s, %d)+%#x", name, cpu, d)
		} else {
			r.What += " (dynamic per-CPU allocation)"
		}
		return true
	}
	return false
}

func (s *Symbolizer) readCPUAreas() ([]cpuArea, error) {
	k := s.k
	offs, err := k.PerCPUOffsets()
	if err != nil {
		return nil, fmt.Errorf("symbolize: per-CPU areas: %w", err)
	}
	start, err := k.Symbol("__per_cpu_start")
	if err != nil {
		return nil, fmt.Errorf("symbolize: per-CPU areas: %w", err)
	}
	unit, err := k.Var("pcpu_unit_size", "int").Int()
	if err != nil {
		return nil, fmt.Errorf("symbolize: per-CPU areas: %w", err)
	}
	if unit <= 0 || unit > maxUnitSize {
		return nil, fmt.Errorf("symbolize: pcpu_unit_size %d is implausible", unit)
	}
	size := uint64(unit)
	if used, ok := s.firstChunkEnd(); ok && used <= size {
		size = used
	}
	var out []cpuArea
	for cpu, off := range offs {
		out = append(out, cpuArea{cpu: cpu, base: start + off, size: size})
	}
	return out, nil
}

// firstChunkEnd is where the first chunk's dynamic region ends, as an
// offset into a unit: pcpu_first_chunk (the chunk serving it, whether or
// not a reserved chunk precedes it) maps nr_pages pages from its page-aligned
// base_addr, less end_offset bytes (start_offset and end_offset since
// 40064aeca35c, v4.14), and units start at pcpu_base_addr. Not ok where the
// kernel lacks any of these.
func (s *Symbolizer) firstChunkEnd() (uint64, bool) {
	k := s.k
	base, err := k.Var("pcpu_base_addr", "unsigned long").Uint()
	if err != nil {
		return 0, false
	}
	cp, err := k.Var("pcpu_first_chunk", "unsigned long").Uint()
	if err != nil || cp == 0 {
		return 0, false
	}
	c := k.Object(cp, "struct pcpu_chunk")
	addr, err1 := c.Field("base_addr").Uint()
	pages, err2 := c.Field("nr_pages").Int()
	endOff, err3 := c.Field("end_offset").Int()
	if err := errors.Join(err1, err2, err3); err != nil || pages <= 0 || endOff < 0 {
		return 0, false
	}
	end := addr + uint64(pages)*s.mm.PageSize() - uint64(endOff)
	if addr < base || end <= base {
		return 0, false
	}
	return end - base, true
}

// perCPUSymbol is the static per-CPU variable at an offset into a unit.
func (s *Symbolizer) perCPUSymbol(off uint64) (string, uint64, bool) {
	types := s.k.Types()
	start, err := types.Symbol("__per_cpu_start")
	if err != nil {
		return "", 0, false
	}
	sym, d, ok := types.PerCPUSymbolAt(start.Value + off)
	if !ok {
		return "", 0, false
	}
	return sym.Name, d, true
}

// stack is an address in a task's kernel stack.
func (s *Symbolizer) stack(r *Result, va uint64) bool {
	s.tasksOnce.Do(func() { s.tasks, s.tasksErr = s.readTasks() })
	size := s.threadSize()
	for i := range s.tasks {
		t := &s.tasks[i]
		base := uint64(t.Stack)
		if va < base || va-base >= size {
			continue
		}
		r.Kind, r.Task = KindStack, t
		r.What = fmt.Sprintf("kernel stack of pid %d (%s), task_struct %#x, stack %#x+%#x", t.PID, t.Comm, uint64(t.Addr), base, va-base)
		return true
	}
	return false
}

// threadSize is THREAD_SIZE: the size of union thread_union where the
// kernel's types have it, else x86_64's PAGE_SIZE << THREAD_SIZE_ORDER
// (2, plus 1 under KASAN: arch/x86/include/asm/page_64_types.h).
func (s *Symbolizer) threadSize() uint64 {
	if n, err := s.k.SizeOf("union thread_union"); err == nil && n > 0 {
		return uint64(n)
	}
	order := uint(2)
	if _, err := s.k.Symbol("__asan_load8"); err == nil {
		order++
	}
	return s.mm.PageSize() << order
}

// readTasks lists every task: each process on init_task.tasks with its
// threads (signal->thread_head), and the idle task of every CPU.
func (s *Symbolizer) readTasks() ([]Task, error) {
	k := s.k
	init := k.Var("init_task", "struct task_struct")
	if init.Err() != nil {
		return nil, fmt.Errorf("symbolize: tasks: %w", init.Err())
	}
	tasksOff, err := k.Member("struct task_struct", "tasks")
	if err != nil {
		return nil, fmt.Errorf("symbolize: tasks: %w", err)
	}
	threadOff, err := k.Member("struct task_struct", "thread_node")
	if err != nil {
		return nil, fmt.Errorf("symbolize: tasks: %w", err)
	}
	seen := map[uint64]bool{}
	var out []Task
	var errs []error
	add := func(task uint64) {
		if task == 0 || seen[task] || len(out) >= maxTasks {
			return
		}
		seen[task] = true
		t, err := s.readTask(task)
		if err != nil {
			errs = append(errs, err)
			return
		}
		out = append(out, t)
	}
	procs := []uint64{init.Addr()}
	for e, err := range k.ListHead(init.Addr()+tasksOff.Offset(), maxTasks) {
		if err != nil {
			errs = append(errs, fmt.Errorf("symbolize: init_task.tasks: %w", err))
			break
		}
		procs = append(procs, e-tasksOff.Offset())
	}
	for _, p := range procs {
		add(p)
		sig, err := k.Object(p, "struct task_struct").Field("signal").Ptr()
		if err != nil || sig == 0 {
			continue
		}
		head := k.Object(sig, "struct signal_struct").Field("thread_head")
		if head.Err() != nil {
			errs = append(errs, head.Err())
			continue
		}
		for e, err := range k.ListHead(head.Addr(), maxTasks) {
			if err != nil {
				errs = append(errs, fmt.Errorf("symbolize: threads of task %#x: %w", p, err))
				break
			}
			add(e - threadOff.Offset())
		}
	}
	// Idle tasks of CPUs other than the boot CPU are on no list.
	if rq, err := k.Symbol("runqueues"); err == nil {
		offs, _ := k.PerCPUOffsets()
		for cpu := range offs {
			a, err := k.PerCPU(rq, cpu)
			if err != nil {
				continue
			}
			idle, err := k.Object(a, "struct rq").Field("idle").Ptr()
			if err != nil {
				errs = append(errs, fmt.Errorf("symbolize: CPU %d idle task: %w", cpu, err))
				continue
			}
			add(idle)
		}
	}
	return out, errors.Join(errs...)
}

func (s *Symbolizer) readTask(task uint64) (Task, error) {
	tv := s.k.Object(task, "struct task_struct")
	pid, err := tv.Field("pid").Int()
	if err != nil {
		return Task{}, fmt.Errorf("symbolize: task %#x: %w", task, err)
	}
	comm, err := tv.Field("comm").String()
	if err != nil {
		return Task{}, fmt.Errorf("symbolize: task %#x: %w", task, err)
	}
	stack, err := tv.Field("stack").Ptr()
	if err != nil {
		return Task{}, fmt.Errorf("symbolize: task %#x: %w", task, err)
	}
	return Task{PID: pid, Comm: kernel.Printable(comm), Addr: kernel.Hex(task), Stack: kernel.Hex(stack)}, nil
}

// vmalloc is an address in vmalloc space: in which vmap area, allocated by
// whom (vm_struct.caller). The module mapping space holds vmap areas too
// that belong to no module (BPF program packs, kprobe insn pages): those are
// asked after the modules.
func (s *Symbolizer) vmalloc(r *Result, va uint64) bool {
	v, err := s.mm.Vmalloc()
	inModules := s.mm.Modules().Contains(va)
	if (err != nil || !v.Contains(va)) && !inModules {
		return false
	}
	s.areasOnce.Do(func() { s.areas, s.areasErr = s.readAreas() })
	r.Kind = KindVmalloc
	i := sort.Search(len(s.areas), func(i int) bool { return uint64(s.areas[i].End) > va })
	if i < len(s.areas) && uint64(s.areas[i].Start) <= va {
		a := s.areas[i]
		r.Area = &a
		r.What = fmt.Sprintf("vmap area %#x-%#x +%#x", uint64(a.Start), uint64(a.End), va-uint64(a.Start))
		if a.Caller != "" {
			r.What += ", allocated by " + a.Caller
		}
		return true
	}
	if inModules {
		r.Kind = ""
		return false
	}
	r.What = "vmalloc space, in no vmap area"
	if s.areasErr != nil {
		r.Error = s.areasErr.Error()
		r.Missing = kernel.IsMissing(s.areasErr)
	}
	return true
}

// readAreas lists the busy vmap areas, sorted (kernel.VmapAreas), each
// with its vm_struct's caller named.
func (s *Symbolizer) readAreas() ([]Area, error) {
	vas, err := s.k.VmapAreas(0, ^uint64(0))
	if err != nil {
		err = fmt.Errorf("symbolize: %w", err)
	}
	out := make([]Area, 0, len(vas))
	for _, va := range vas {
		a := Area{Start: kernel.Hex(va.Start), End: kernel.Hex(va.End), VM: kernel.Hex(va.VM)}
		if va.VM != 0 {
			caller, err := s.k.Object(va.VM, "struct vm_struct").Field("caller").Ptr()
			if err == nil && caller != 0 {
				if f := s.Code(caller); f.Symbol != "" {
					a.Caller = s.Line(f).String()
				} else {
					a.Caller = fmt.Sprintf("%#x", caller)
				}
			}
		}
		out = append(out, a)
	}
	return out, err
}

// Tasks lists every task the symbolizer knows of (processes, their threads
// and each CPU's idle task), read once; the error joins the tasks that
// could not be read.
func (s *Symbolizer) Tasks() ([]Task, error) {
	s.tasksOnce.Do(func() { s.tasks, s.tasksErr = s.readTasks() })
	return s.tasks, s.tasksErr
}

// ThreadSize is the size of one task's kernel stack (THREAD_SIZE).
func (s *Symbolizer) ThreadSize() uint64 { return s.threadSize() }

// CPUArea is one possible CPU's unit of the first per-CPU chunk.
type CPUArea struct {
	CPU  int
	Base uint64
	Size uint64 // pcpu_unit_size: static, reserved and the first chunk's dynamic part
}

// CPUAreas lists each possible CPU's per-CPU unit, read once.
func (s *Symbolizer) CPUAreas() ([]CPUArea, error) {
	s.cpuOnce.Do(func() { s.cpus, s.cpuErr = s.readCPUAreas() })
	out := make([]CPUArea, len(s.cpus))
	for i, a := range s.cpus {
		out[i] = CPUArea{CPU: a.cpu, Base: a.base, Size: a.size}
	}
	return out, s.cpuErr
}

// Areas lists the busy vmap areas, sorted by address, read once.
func (s *Symbolizer) Areas() ([]Area, error) {
	s.areasOnce.Do(func() { s.areas, s.areasErr = s.readAreas() })
	return s.areas, s.areasErr
}
