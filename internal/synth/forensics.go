package synth

import (
	"github.com/cilium/ebpf/btf"
)

// forensicsTypes declares what the forensics checks read, as 6.1 lays it
// out where a member is read, with the members before it (types of
// arch/x86/include/asm/desc_defs.h, include/linux/ftrace.h, kprobes.h,
// seq_file.h, fs/proc/internal.h, rbtree_types.h, net_namespace.h).
func forensicsTypes(c *ctypes) {
	void := &btf.Void{}
	voidp := ptr(void)
	fn := ptr(&btf.FuncProto{Return: void})
	u8, u16, u32 := c.lookup("u8"), c.lookup("u16"), c.lookup("u32")
	ulong, uint := c.lookup("long unsigned int"), c.lookup("unsigned int")
	char := c.lookup("char")
	idx := c.lookup("__ARRAY_SIZE_TYPE__")
	listHead := c.lookup("struct list_head")

	bits := c.structOf("idt_bits", bitfield("ist", u16, 3), bitfield("zero", u16, 5), bitfield("type", u16, 5),
		bitfield("dpl", u16, 2), bitfield("p", u16, 1))
	gate := c.structOf("gate_struct", f("offset_low", u16), f("segment", u16), f("bits", bits),
		f("offset_middle", u16), f("offset_high", u32), f("reserved", u32))
	c.typedef("gate_desc", gate)

	hnode := c.declare("hlist_node")
	c.define(hnode, 0, f("next", ptr(hnode)), f("pprev", ptr(ptr(hnode))))
	hhead := c.structOf("hlist_head", f("first", ptr(hnode)))
	entry := c.structOf("ftrace_func_entry", f("hlist", hnode), f("ip", ulong), f("direct", ulong))
	_ = entry
	hash := c.structOf("ftrace_hash", f("size_bits", ulong), f("buckets", ptr(hhead)), f("count", ulong), f("flags", ulong))
	opsHash := c.structOf("ftrace_ops_hash", f("notrace_hash", ptr(hash)), f("filter_hash", ptr(hash)))
	ops := c.declare("ftrace_ops")
	c.define(ops, 0, f("func", fn), f("next", ptr(ops)), f("flags", ulong), f("private", voidp),
		f("saved_func", fn), f("local_hash", opsHash), f("func_hash", ptr(opsHash)), f("old_hash", opsHash),
		f("trampoline", ulong), f("trampoline_size", ulong), f("list", listHead))

	kp := c.declare("kprobe")
	c.define(kp, 0, f("hlist", hnode), f("list", listHead), f("nmissed", ulong), f("addr", ptr(u8)),
		f("symbol_name", ptr(&btf.Const{Type: char})), f("offset", uint), f("pre_handler", fn), f("post_handler", fn),
		f("opcode", u8), f("flags", u32))
	c.structOf("kretprobe", f("kp", kp), f("handler", fn), f("entry_handler", fn))

	seqOps := c.structOf("seq_operations", f("start", fn), f("stop", fn), f("next", fn), f("show", fn))
	rb := c.declare("rb_node")
	c.define(rb, 8, f("__rb_parent_color", ulong), f("rb_right", ptr(rb)), f("rb_left", ptr(rb)))
	rbRoot := c.structOf("rb_root", f("rb_node", ptr(rb)))
	pde := c.declare("proc_dir_entry")
	c.define(pde, 0, f("in_use", c.lookup("atomic_t")), f("subdir", rbRoot), f("subdir_node", rb),
		f("name", ptr(char)), f("seq_ops", ptr(seqOps)), f("inline_name", array(char, 16, idx)))
	c.structOf("net", f("passive", c.lookup("refcount_t")), f("proc_net", ptr(pde)))
}

// Func lays out a function of size bytes in .text (filled with int3, as
// the linker pads) and returns its address.
func (k *Kernel) Func(name string, size uint64) uint64 {
	va := k.symbol(secText, name, size, 16, sttFunc, false)
	b := make([]byte, size)
	for i := range b {
		b[i] = 0xcc
	}
	k.put(va, b)
	return va
}

// TextBounds defines _etext, _sinittext, _einittext and _end after what
// .text holds so far, and an init text function in .text past _etext: the
// image bounds the forensics checks classify addresses by. Call it once,
// after the last Func.
func (k *Kernel) TextBounds() (initFunc uint64) {
	k.symbol(secText, "_etext", 0, 16, sttNotype, false)
	k.symbol(secText, "_sinittext", 0, 16, sttNotype, false)
	initFunc = k.Func("early_idt_handler_array", 32*9)
	k.symbol(secText, "_einittext", 0, 16, sttNotype, false)
	k.symbol(secBss, "_end", 0, PageSize, sttNotype, false)
	return initFunc
}

// Table lays out a read-only table of 8-byte words in .rodata (a system
// call table, a seq_operations) and returns its address.
func (k *Kernel) Table(name string, words []uint64) uint64 {
	va := k.symbol(secRodata, name, 8*uint64(len(words)), 32, sttObject, false)
	for i, w := range words {
		k.put64(va+8*uint64(i), w)
	}
	return va
}

// Tamper writes b at va in the dump only: the vmlinux keeps what memory
// held before, as a rootkit's writes to read-only memory leave it.
func (k *Kernel) Tamper(va uint64, b []byte) {
	k.tamper = append(k.tamper, tamperWrite{va, append([]byte(nil), b...)})
}

type tamperWrite struct {
	va uint64
	b  []byte
}

// IDT lays out idt_table with a present interrupt gate per non-zero
// handler (vector order).
func (k *Kernel) IDT(handlers []uint64) uint64 {
	size := k.SizeOf("gate_desc")
	va := k.symbol(secBss, "idt_table", 256*size, PageSize, sttObject, true)
	for i, h := range handlers {
		if h == 0 {
			continue
		}
		g := va + uint64(i)*size
		k.set(g, "gate_desc", "offset_low", h&0xffff)
		k.set(g, "gate_desc", "offset_middle", h>>16&0xffff)
		k.set(g, "gate_desc", "offset_high", h>>32)
		k.set(g, "gate_desc", "segment", 0x10)
		k.set(g, "gate_desc", "bits.type", 0xe)
		k.set(g, "gate_desc", "bits.p", 1)
	}
	return va
}

// FtraceOps registers ops on ftrace_ops_list (created on first use, ending
// at ftrace_list_end) calling fn, with a filter hash of ips (none: every
// function). It returns the struct ftrace_ops.
func (k *Kernel) FtraceOps(fn uint64, ips []uint64) uint64 {
	if k.ftraceEnd == 0 {
		k.ftraceEnd = k.symbol(secData, "ftrace_list_end", k.SizeOf("struct ftrace_ops"), 32, sttObject, false)
		k.ftraceHead = k.symbol(secData, "ftrace_ops_list", 8, 8, sttObject, false)
		k.put64(k.ftraceHead, k.ftraceEnd)
	}
	ops := k.kzalloc(k.SizeOf("struct ftrace_ops"))
	k.set(ops, "struct ftrace_ops", "func", fn)
	k.set(ops, "struct ftrace_ops", "next", k.get64(k.ftraceHead))
	if len(ips) > 0 {
		const sizeBits = 2
		buckets := k.kzalloc(8 << sizeBits)
		hash := k.kzalloc(k.SizeOf("struct ftrace_hash"))
		k.set(hash, "struct ftrace_hash", "size_bits", sizeBits)
		k.set(hash, "struct ftrace_hash", "buckets", buckets)
		k.set(hash, "struct ftrace_hash", "count", uint64(len(ips)))
		for i, ip := range ips {
			e := k.kzalloc(k.SizeOf("struct ftrace_func_entry"))
			k.set(e, "struct ftrace_func_entry", "ip", ip)
			b := buckets + 8*uint64(i%(1<<sizeBits))
			k.put64(e, k.get64(b)) // hlist_add_head: next
			k.put64(b, e)
		}
		opsHash := ops + k.Offset("struct ftrace_ops", "local_hash")
		k.set(opsHash, "struct ftrace_ops_hash", "filter_hash", hash)
		k.set(ops, "struct ftrace_ops", "func_hash", opsHash)
	}
	k.put64(k.ftraceHead, ops)
	return ops
}

// Kprobe registers a kprobe at addr in kprobe_table (64 buckets, created
// on first use) and returns its struct kprobe.
func (k *Kernel) Kprobe(addr, pre, post uint64) uint64 {
	if k.kprobeTable == 0 {
		k.kprobeTable = k.symbol(secData, "kprobe_table", 64*8, 32, sttObject, true)
	}
	kp := k.kzalloc(k.SizeOf("struct kprobe"))
	k.set(kp, "struct kprobe", "addr", addr)
	k.set(kp, "struct kprobe", "pre_handler", pre)
	k.set(kp, "struct kprobe", "post_handler", post)
	k.listInit(kp + k.Offset("struct kprobe", "list"))
	b := k.kprobeTable + 8*((addr>>4)%64)
	k.put64(kp, k.get64(b))
	k.put64(b, kp)
	return kp
}

// ProcNet creates init_net with a /proc/net directory holding one entry
// per name, each showing through the seq_operations at the matching
// address, and returns the entries.
func (k *Kernel) ProcNet(names []string, seqOps []uint64) []uint64 {
	net := k.symbol(secData, "init_net", k.SizeOf("struct net"), 64, sttObject, false)
	dir := k.kzalloc(k.SizeOf("struct proc_dir_entry"))
	k.set(net, "struct net", "proc_net", dir)
	var out []uint64
	parent := uint64(0)
	for i, n := range names {
		e := k.kzalloc(k.SizeOf("struct proc_dir_entry"))
		name := e + k.Offset("struct proc_dir_entry", "inline_name")
		k.put(name, append([]byte(n), 0))
		k.set(e, "struct proc_dir_entry", "name", name)
		k.set(e, "struct proc_dir_entry", "seq_ops", seqOps[i])
		// A right-leaning chain: a valid rb-tree shape for the walker,
		// which does not rebalance.
		node := e + k.Offset("struct proc_dir_entry", "subdir_node")
		if parent == 0 {
			k.set(dir, "struct proc_dir_entry", "subdir", node)
		} else {
			k.set(parent, "struct rb_node", "rb_right", node)
		}
		parent = node
		out = append(out, e)
	}
	return out
}

// ModuleText maps size bytes of module space, as module_alloc would, and
// returns their address.
func (k *Kernel) ModuleText(size uint64) uint64 {
	if k.modNext == 0 {
		k.modNext = ModulesVA
	}
	va := roundUp(k.modNext, PageSize)
	k.modNext = va + size
	k.mapRange(va, size)
	return va
}
