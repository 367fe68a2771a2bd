package synth

import "sort"

// AllocTag is one allocation call site's struct alloc_tag.
type AllocTag struct {
	File, Function string
	Line           uint32
	Flags          uint32 // codetag.flags
	// Bytes and Calls are each CPU's alloc_tag_counters, CPU 0 first (CPUs
	// left out hold 0); /proc/allocinfo shows their sums over the possible
	// CPUs.
	Bytes, Calls []uint64
	// VmallocCounters places the counters in a per-CPU chunk past the
	// first, which the percpu allocator maps in the vmalloc area
	// (mm/percpu-vm.c), instead of the first chunk.
	VmallocCounters bool

	// Set by AddAllocTags.
	VA       uint64 // the struct alloc_tag
	Counters uint64 // its __percpu counters pointer
}

// AllocModule is a loaded module with allocation tags.
type AllocModule struct {
	Name string
	Tags []*AllocTag
	// ID is its mod_idr id; 0 takes the lowest free one, as idr_alloc does
	// (the kernel's own tags have id 0, registered first).
	ID uint64

	// Set by AddAllocTags.
	VA            uint64 // struct module
	CodetagModule uint64 // its struct codetag_module on mod_idr
	Start, Stop   uint64 // its tags: codetag_module.range
}

// AllocTags says what AddAllocTags lays out.
type AllocTags struct {
	Kernel  []*AllocTag // between __start_alloc_tags and __stop_alloc_tags
	Modules []*AllocModule
	// Disabled leaves mem_alloc_profiling_key off: profiling switched off
	// at run time (sysctl vm.mem_profiling=0), the counters frozen.
	Disabled bool

	// Set by AddAllocTags.
	CodetagType   uint64 // alloc_tag_cttype's struct codetag_type
	KernelCodetag uint64 // the kernel's struct codetag_module (id 0)
	Area          uint64 // module_tags.start_addr (Config.ModuleTagsArea)
}

const (
	vmallocCounters = VmallocBase + 0x100000 // where VmallocCounters chunks go
	moduleTagsArea  = ModulesVA + 0x200000   // module_tags.start_addr
)

// AddAllocTags lays out allocation profiling as lib/alloc_tag.c and
// lib/codetag.c leave it: the kernel's tags in .data between
// __start_alloc_tags and __stop_alloc_tags (the "alloc_tags" section of
// include/asm-generic/codetag.lds.h), each module's tags in its own memory
// or (Config.ModuleTagsArea) copied into the module_tags area, every tag's
// per-CPU counters (DEFINE_PER_CPU, or alloc_percpu for module tags since
// 12ca42c23775), and alloc_tag_cttype: the codetag type whose mod_idr holds
// a struct codetag_module per registered range, the kernel's at id 0. It
// fills in the addresses of what it built. Call it once, before Write.
func (k *Kernel) AddAllocTags(spec *AllocTags) {
	if !k.cfg.AllocProfiling {
		k.fail("AddAllocTags without Config.AllocProfiling")
		return
	}
	if k.allocDone {
		k.fail("AddAllocTags called twice")
		return
	}
	k.allocDone = true
	tagSize, _ := k.ts.sizeAlign(k.ts.lookup("struct alloc_tag"))

	// The kernel's tags and their strings.
	start := k.symbol(secData, "__start_alloc_tags", 0, 8, sttNotype, false)
	for _, t := range spec.Kernel {
		t.VA = k.symbol(secData, "_alloc_tag", uint64(tagSize), 8, sttObject, true) // static, one per call site
	}
	stop := k.symbol(secData, "__stop_alloc_tags", 0, 8, sttNotype, false)
	rodata := func(s string) uint64 {
		va := k.reserve(secRodata, uint64(len(s)+1), 1)
		k.put(va, append([]byte(s), 0))
		return va
	}
	for _, t := range spec.Kernel {
		k.writeTag(t, 0, rodata(t.Function), rodata(t.File))
	}

	// Modules: struct module and strings in module memory, the tags there
	// or in the module_tags area.
	var area uint64
	if k.cfg.ModuleTagsArea {
		area = moduleTagsArea
		spec.Area = area
	}
	modAlloc := func(size, align uint64) uint64 {
		va := roundUp(k.modNext, align)
		k.modNext = va + size
		k.mapRange(va, size)
		return va
	}
	if k.modNext == 0 {
		k.modNext = ModulesVA
	}
	modSize, _ := k.ts.sizeAlign(k.ts.lookup("struct module"))
	for _, m := range spec.Modules {
		m.VA = modAlloc(uint64(modSize), 64)
		k.put(m.VA+k.Offset("struct module", "name"), []byte(m.Name))
		str := func(s string) uint64 {
			va := modAlloc(uint64(len(s)+1), 1)
			k.put(va, append([]byte(s), 0))
			return va
		}
		modname := str(m.Name)
		size := uint64(len(m.Tags)) * uint64(tagSize)
		if area != 0 {
			m.Start = area
			area += size
			k.mapRange(m.Start, size)
		} else {
			m.Start = modAlloc(size, 8)
		}
		m.Stop = m.Start + size
		for i, t := range m.Tags {
			t.VA = m.Start + uint64(i)*uint64(tagSize)
			k.writeTag(t, modname, str(t.Function), str(t.File))
		}
	}
	if k.cfg.ModuleTagsArea {
		mt := k.symbol(secBss, "module_tags", 24, 8, sttObject, false)
		set := func(path string, v uint64) { k.set(mt, "struct alloc_tag_module_section", path, v) }
		set("start_addr", moduleTagsArea)
		set("end_addr", moduleTagsArea+100000*uint64(tagSize)) // MODULE_ALLOC_TAG_VMAP_SIZE
		set("size", area-moduleTagsArea)
	}

	// The codetag type and its IDR: id 0 the kernel, then the modules.
	cmodSize, _ := k.ts.sizeAlign(k.ts.lookup("struct codetag_module"))
	cmod := func(mod, start, stop uint64) uint64 {
		va := k.kzalloc(uint64(cmodSize))
		k.set(va, "struct codetag_module", "mod", mod)
		k.set(va, "struct codetag_module", "range.start", start)
		k.set(va, "struct codetag_module", "range.stop", stop)
		return va
	}
	ids := map[uint64]uint64{}
	count := uint64(len(spec.Kernel))
	if start != stop {
		spec.KernelCodetag = cmod(0, start, stop)
		ids[0] = spec.KernelCodetag
	}
	for _, m := range spec.Modules {
		if m.ID == 0 {
			for m.ID = 0; ids[m.ID] != 0; m.ID++ {
			}
		}
		if ids[m.ID] != 0 {
			k.fail("mod_idr id %d used twice", m.ID)
		}
		m.CodetagModule = cmod(m.VA, m.Start, m.Stop)
		ids[m.ID] = m.CodetagModule
		count += uint64(len(m.Tags))
	}
	ctSize, _ := k.ts.sizeAlign(k.ts.lookup("struct codetag_type"))
	ct := k.kzalloc(uint64(ctSize))
	spec.CodetagType = ct
	k.listInit(ct + k.Offset("struct codetag_type", "link"))
	k.set(ct, "struct codetag_type", "count", count)
	xa := ct + k.Offset("struct codetag_type", "mod_idr.idr_rt")
	k.set(ct, "struct codetag_type", "mod_idr.idr_rt.xa_head", k.xarray(xa, ids))
	var next uint64
	for id := range ids {
		next = max(next, id+1)
	}
	k.set(ct, "struct codetag_type", "mod_idr.idr_next", next)
	k.listInit(ct + k.Offset("struct codetag_type", "mod_lock.wait_list"))
	k.set(ct, "struct codetag_type", "desc.section", rodata("alloc_tags"))
	k.set(ct, "struct codetag_type", "desc.tag_size", uint64(tagSize))
	k.put64(k.symbol(secBss, "alloc_tag_cttype", 8, 8, sttObject, true), ct) // static in lib/alloc_tag.c

	keySize, _ := k.ts.sizeAlign(k.ts.lookup("struct static_key_true"))
	key := k.symbol(secData, "mem_alloc_profiling_key", uint64(keySize), 8, sttObject, false)
	if !spec.Disabled {
		k.set(key, "struct static_key_true", "key.enabled.counter", 1)
	}
}

// writeTag fills in a struct alloc_tag and its per-CPU counters.
func (k *Kernel) writeTag(t *AllocTag, modname, function, file uint64) {
	set := func(path string, v uint64) { k.set(t.VA, "struct alloc_tag", path, v) }
	set("ct.flags", uint64(t.Flags))
	set("ct.lineno", uint64(t.Line))
	set("ct.modname", modname)
	set("ct.function", function)
	set("ct.filename", file)
	if len(t.Bytes) > k.cfg.CPUs || len(t.Calls) > k.cfg.CPUs {
		k.fail("tag %s:%d: counters for more CPUs than %d", t.File, t.Line, k.cfg.CPUs)
		return
	}
	size, _ := k.ts.sizeAlign(k.ts.lookup("struct alloc_tag_counters"))
	var cpuVA func(cpu int) uint64
	if t.VmallocCounters {
		// A chunk's units lie as far apart as the first chunk's: the
		// pointer is base - __per_cpu_offset[0], each CPU's instance at
		// the pointer plus its offset (per_cpu_ptr).
		base := vmallocCounters + k.vmallocNext
		k.vmallocNext += uint64(size)
		t.Counters = base - k.percpu[0]
		cpuVA = func(cpu int) uint64 { return t.Counters + k.percpu[cpu] }
		for cpu := range k.cfg.CPUs {
			k.mapRange(cpuVA(cpu), uint64(size))
		}
	} else {
		t.Counters = k.percpuAlloc(uint64(size), 8)
		cpuVA = func(cpu int) uint64 { return k.percpu[cpu] + t.Counters }
	}
	set("counters", t.Counters)
	for cpu := range k.cfg.CPUs {
		if cpu < len(t.Bytes) {
			k.set(cpuVA(cpu), "struct alloc_tag_counters", "bytes", t.Bytes[cpu])
		}
		if cpu < len(t.Calls) {
			k.set(cpuVA(cpu), "struct alloc_tag_counters", "calls", t.Calls[cpu])
		}
	}
}

// xarray builds the nodes of an xarray at xa holding entries by index and
// returns its xa_head: a lone entry at index 0 is the head itself;
// otherwise a tree of struct xa_node just tall enough for the highest
// index, each node's shift, offset, count, parent and array set as
// lib/xarray.c leaves them.
func (k *Kernel) xarray(xa uint64, entries map[uint64]uint64) uint64 {
	if len(entries) == 0 {
		return 0
	}
	var top uint64
	idx := make([]uint64, 0, len(entries))
	for i := range entries {
		idx = append(idx, i)
		top = max(top, i)
	}
	sort.Slice(idx, func(a, b int) bool { return idx[a] < idx[b] })
	if top == 0 {
		return entries[0]
	}
	shift := uint(0)
	for top>>shift >= 64 {
		shift += 6
	}
	nodeSize, _ := k.ts.sizeAlign(k.ts.lookup("struct xa_node"))
	var build func(parent uint64, offset, shift uint, base uint64) uint64
	build = func(parent uint64, offset, shift uint, base uint64) uint64 {
		node := k.kzalloc(uint64(nodeSize))
		set := func(path string, v uint64) { k.set(node, "struct xa_node", path, v) }
		set("shift", uint64(shift))
		set("offset", uint64(offset))
		set("parent", parent)
		set("array", xa)
		slots := node + k.Offset("struct xa_node", "slots")
		count := uint64(0)
		for i := range uint64(64) {
			lo := base + i<<shift
			hi := lo + 1<<shift // [lo, hi)
			var e uint64
			if shift == 0 {
				e = entries[lo]
			} else {
				for _, j := range idx {
					if j >= lo && j < hi {
						e = build(node, uint(i), shift-6, lo) | 2 // xa_mk_node
						break
					}
				}
			}
			if e != 0 {
				k.put64(slots+8*i, e)
				count++
			}
		}
		set("count", count)
		return node
	}
	return build(0, 0, shift, 0) | 2
}
