package forensics

import (
	"bytes"
	"cmp"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/vmleak/vmleak/kernel"
)

// textImage reads the vmlinux file at link-time addresses: the patch-site
// tables live in init data the kernel frees after boot, so they are read
// from the file, never the dump.
type textImage struct {
	secs []*elf.Section // allocated sections with contents, by address
}

func newTextImage(ef *elf.File) *textImage {
	im := &textImage{}
	for _, s := range ef.Sections {
		if s.Type == elf.SHT_PROGBITS && s.Flags&elf.SHF_ALLOC != 0 && s.Size > 0 {
			im.secs = append(im.secs, s)
		}
	}
	sort.Slice(im.secs, func(i, j int) bool { return im.secs[i].Addr < im.secs[j].Addr })
	return im
}

// read reads n bytes at a link-time address held by one section.
func (im *textImage) read(link uint64, n uint64) ([]byte, error) {
	i := sort.Search(len(im.secs), func(i int) bool { return im.secs[i].Addr+im.secs[i].Size > link })
	if i == len(im.secs) || im.secs[i].Addr > link || link+n > im.secs[i].Addr+im.secs[i].Size {
		return nil, fmt.Errorf("forensics: no vmlinux section holds %#x..%#x", link, link+n)
	}
	b := make([]byte, n)
	if _, err := im.secs[i].ReadAt(b, int64(link-im.secs[i].Addr)); err != nil {
		return nil, err
	}
	return b, nil
}

// textTables reads the kernel's patch-site tables from its vmlinux and
// turns them into sites at run-time addresses. What a kernel lacks (a
// table its version or configuration has not) is skipped; a table that is
// there but cannot be read is a warning.
type textTables struct {
	k     *kernel.Kernel
	im    *textImage
	kaslr uint64
	sites []textSite
	warn  []string
	found []string // the tables read, for the note
}

func (t *textTables) warnf(format string, args ...any) {
	t.warn = append(t.warn, fmt.Sprintf(format, args...))
}

// bounds returns the link-time [start, end) between two symbols; ok is
// false when the kernel has neither.
func (t *textTables) bounds(start, end string) (uint64, uint64, bool) {
	f := t.k.Types()
	s, err1 := f.Symbol(start)
	e, err2 := f.Symbol(end)
	if err1 != nil || err2 != nil {
		if err1 == nil || err2 == nil {
			t.warnf("text: %s/%s: only one of the bounds exists", start, end)
		}
		return 0, 0, false
	}
	if e.Value < s.Value || e.Value-s.Value > 64<<20 {
		t.warnf("text: %s..%s: implausible bounds %#x..%#x", start, end, s.Value, e.Value)
		return 0, 0, false
	}
	return s.Value, e.Value, true
}

// table reads a table between two bound symbols.
func (t *textTables) table(what, start, end string) (uint64, []byte, bool) {
	s, e, ok := t.bounds(start, end)
	if !ok {
		return 0, nil, false
	}
	if s == e {
		t.found = append(t.found, what)
		return s, nil, true
	}
	b, err := t.im.read(s, e-s)
	if err != nil {
		t.warnf("text: %s: %v", what, err)
		return 0, nil, false
	}
	t.found = append(t.found, what)
	return s, b, true
}

func s32(b []byte, off uint64) uint64 {
	return uint64(int64(int32(binary.LittleEndian.Uint32(b[off:]))))
}

// relTable reads a table of s32 offsets, each relative to its own place
// (retpoline, return, endbr seal, call depth sites, smp locks): one site
// of n bytes (0: the instruction's) per entry.
func (t *textTables) relTable(kind, start, end string, n int) {
	base, b, ok := t.table(kind, start, end)
	if !ok {
		return
	}
	t.sites = slices.Grow(t.sites, len(b)/4)
	for off := uint64(0); off+4 <= uint64(len(b)); off += 4 {
		if binary.LittleEndian.Uint32(b[off:]) == 0 {
			continue
		}
		t.sites = append(t.sites, textSite{addr: base + off + s32(b, off) + t.kaslr, n: n, kind: kind})
	}
}

// member is the offset and size of a member of a table's struct, from the
// kernel's own types.
func (t *textTables) member(typ, path string) (kernel.Member, bool) {
	m, err := t.k.Member(typ, path)
	if err != nil {
		t.warnf("text: %v", err)
		return m, false
	}
	return m, true
}

// alternatives: struct alt_instr is {s32 instr_offset; s32 repl_offset;
// feature; u8 instrlen; u8 replacementlen} with the feature a u16 cpuid
// up to v6.2 and a u32 ft_flags (feature and ALT_FLAG_* flags) since
// "x86/alternative: Add alt_instr.flags" (v6.3); older kernels also had a
// u8 padlen, which Debian's 5.10 no longer has. Only instr_offset and
// instrlen are read, at the offsets the kernel's types give.
func (t *textTables) alternatives() {
	base, b, ok := t.table(siteAlternative, "__alt_instructions", "__alt_instructions_end")
	if !ok || len(b) == 0 {
		return
	}
	size, err := t.k.SizeOf("struct alt_instr")
	mi, ok1 := t.member("struct alt_instr", "instr_offset")
	ml, ok2 := t.member("struct alt_instr", "instrlen")
	if err != nil || size <= 0 || !ok1 || !ok2 {
		t.warnf("text: struct alt_instr: %v", err)
		return
	}
	for off := uint64(0); off+uint64(size) <= uint64(len(b)); off += uint64(size) {
		e := b[off : off+uint64(size)]
		n, _ := ml.Uint(e)
		if n == 0 {
			continue
		}
		t.sites = append(t.sites, textSite{addr: base + off + mi.Offset() + s32(e, mi.Offset()) + t.kaslr, n: int(n), kind: siteAlternative})
	}
}

// paravirt: struct paravirt_patch_site {u8 *instr; u8 type; u8 len} (the
// type member was instrtype before v5.10's cleanup). v6.8 folded paravirt
// patching into alternatives ("x86/paravirt: switch mixed
// paravirt/alternative calls to alternatives" and "x86/paravirt: remove no
// longer needed paravirt patching code"): later kernels have no
// .parainstructions, and their pv calls are ALT_FLAG_DIRECT_CALL
// alternatives.
func (t *textTables) paravirt() {
	if !t.k.HasType("struct paravirt_patch_site") {
		return
	}
	base, b, ok := t.table(siteParavirt, "__parainstructions", "__parainstructions_end")
	if !ok || len(b) == 0 {
		return
	}
	_ = base
	size, err := t.k.SizeOf("struct paravirt_patch_site")
	mi, ok1 := t.member("struct paravirt_patch_site", "instr")
	ml, ok2 := t.member("struct paravirt_patch_site", "len")
	if err != nil || size <= 0 || !ok1 || !ok2 {
		return
	}
	// The assembler emits each entry as .quad, .byte, .byte after an
	// .align 8: the last one ends before the struct's padding does.
	need := max(mi.Offset()+8, ml.Offset()+1)
	for off := uint64(0); off+need <= uint64(len(b)); off += uint64(size) {
		e := b[off:min(off+uint64(size), uint64(len(b)))]
		instr, _ := mi.Uint(e)
		n, _ := ml.Uint(e)
		if instr == 0 || n == 0 {
			continue
		}
		t.sites = append(t.sites, textSite{addr: instr + t.kaslr, n: int(n), kind: siteParavirt})
	}
}

// jumpLabels: struct jump_entry {s32 code; s32 target; long key} with
// relative offsets (CONFIG_HAVE_ARCH_JUMP_LABEL_RELATIVE, x86 since v5.0).
// The site is the vmlinux's instruction at code: a 5-byte jmp or nop, or,
// in later kernels, a 2-byte one where the target is near.
func (t *textTables) jumpLabels() {
	base, b, ok := t.table(siteJumpLabel, "__start___jump_table", "__stop___jump_table")
	if !ok || len(b) == 0 {
		return
	}
	size, err := t.k.SizeOf("struct jump_entry")
	mc, ok1 := t.member("struct jump_entry", "code")
	mt, ok2 := t.member("struct jump_entry", "target")
	if err != nil || size <= 0 || !ok1 || !ok2 {
		return
	}
	for off := uint64(0); off+uint64(size) <= uint64(len(b)); off += uint64(size) {
		e := b[off : off+uint64(size)]
		code := base + off + mc.Offset() + s32(e, mc.Offset())
		target := base + off + mt.Offset() + s32(e, mt.Offset())
		t.sites = append(t.sites, textSite{addr: code + t.kaslr, kind: siteJumpLabel, target: target + t.kaslr})
	}
}

// staticCalls: struct static_call_site {s32 addr; s32 key} with the key's
// low bits flags (STATIC_CALL_SITE_TAIL 1, STATIC_CALL_SITE_INIT 2). The
// key's current function is read from the dump.
func (t *textTables) staticCalls() {
	base, b, ok := t.table(siteStaticCall, "__start_static_call_sites", "__stop_static_call_sites")
	if !ok || len(b) == 0 {
		return
	}
	size, err := t.k.SizeOf("struct static_call_site")
	ma, ok1 := t.member("struct static_call_site", "addr")
	mk, ok2 := t.member("struct static_call_site", "key")
	mf, ok3 := t.member("struct static_call_key", "func")
	if err != nil || size <= 0 || !ok1 || !ok2 || !ok3 {
		return
	}
	funcs := map[uint64]uint64{}
	for off := uint64(0); off+uint64(size) <= uint64(len(b)); off += uint64(size) {
		e := b[off : off+uint64(size)]
		addr := base + off + ma.Offset() + s32(e, ma.Offset())
		key := base + off + mk.Offset() + s32(e, mk.Offset())
		flags := key & 3
		key = key&^3 + t.kaslr
		fn, seen := funcs[key]
		if !seen {
			fn, _ = t.k.ReadPtr(key + mf.Offset())
			funcs[key] = fn
		}
		t.sites = append(t.sites, textSite{addr: addr + t.kaslr, n: 5, kind: siteStaticCall, target: fn, tail: flags&1 != 0})
	}
}

// mcount: __mcount_loc is an array of the __fentry__ call sites' absolute
// (link-time) addresses.
func (t *textTables) mcount() {
	_, b, ok := t.table(siteFtrace, "__start_mcount_loc", "__stop_mcount_loc")
	if !ok {
		return
	}
	t.sites = slices.Grow(t.sites, len(b)/8)
	for off := 0; off+8 <= len(b); off += 8 {
		if a := binary.LittleEndian.Uint64(b[off:]); a != 0 {
			t.sites = append(t.sites, textSite{addr: a + t.kaslr, n: 5, kind: siteFtrace})
		}
	}
}

// ftraceCallers are the instructions ftrace itself patches in its
// callers: ftrace_update_ftrace_func rewrites the calls at ftrace_call and
// ftrace_regs_call, ftrace_enable/disable_ftrace_graph_caller the jmp at
// ftrace_graph_call (arch/x86/kernel/ftrace.c).
func (t *textTables) ftraceCallers() {
	for _, name := range []string{"ftrace_call", "ftrace_regs_call", "ftrace_graph_call"} {
		if s, err := t.k.Types().Symbol(name); err == nil {
			t.sites = append(t.sites, textSite{addr: s.Value + t.kaslr, kind: siteFtraceCaller, name: name})
		}
	}
}

// runtimeConsts: runtime_const_ptr/runtime_const_shift_right_32 (v6.11+)
// leave, in sections runtime_ptr_NAME and runtime_shift_NAME, s32 offsets
// to the 8-byte immediate of a movabs and the 1-byte count of a shr, which
// runtime_const_init fills with NAME's value (arch/x86/include/asm/
// runtime-const.h); later kernels add runtime_mask_NAME (the imm32 of an
// and). The names are found in the string table; a variable the compiler
// dropped (its value only read by runtime_const_init) has no symbol, and
// its sites are checked against each other.
func (t *textTables) runtimeConsts() {
	ef := t.k.Types().ELF()
	if ef == nil {
		return
	}
	strtab := ef.Section(".strtab")
	if strtab == nil {
		return
	}
	raw, err := strtab.Data()
	if err != nil {
		return
	}
	names := map[string]bool{}
	for _, prefix := range []string{"__start_runtime_ptr_", "__start_runtime_shift_", "__start_runtime_mask_"} {
		p := []byte(prefix)
		for off := 0; ; {
			i := bytes.Index(raw[off:], p)
			if i < 0 {
				break
			}
			s := off + i
			e := s + bytes.IndexByte(raw[s:], 0)
			if e < s {
				break
			}
			if s == 0 || raw[s-1] == 0 {
				names[string(raw[s:e])] = true
			}
			off = e
		}
	}
	var sorted []string
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, start := range sorted {
		kind, width := "ptr", 8
		name := strings.TrimPrefix(start, "__start_runtime_ptr_")
		switch {
		case strings.HasPrefix(start, "__start_runtime_shift_"):
			kind, width = "shift", 1
			name = strings.TrimPrefix(start, "__start_runtime_shift_")
		case strings.HasPrefix(start, "__start_runtime_mask_"):
			// runtime_const_mask_32: the imm32 of an and.
			kind, width = "mask", 4
			name = strings.TrimPrefix(start, "__start_runtime_mask_")
		}
		base, b, ok := t.table(siteRuntimeConst, start, "__stop_runtime_"+kind+"_"+name)
		if !ok {
			continue
		}
		var value uint64
		known := false
		if va, err := t.k.Symbol(name); err == nil {
			var v [8]byte
			if t.k.ReadVirt(v[:width], va) == nil {
				value, known = binary.LittleEndian.Uint64(v[:]), true
			}
		}
		for off := uint64(0); off+4 <= uint64(len(b)); off += 4 {
			t.sites = append(t.sites, textSite{addr: base + off + s32(b, off) + t.kaslr, n: width, kind: siteRuntimeConst,
				value: value, valueKnown: known, width: width, name: name})
		}
	}
}

// textRelocs reads the relocations of the text from .rela.text, which
// vmlinuxes linked with --emit-relocs for KASLR keep (Debian's 5.10 and
// 6.1; later builds strip them from the vmlinux they ship). These are what
// arch/x86/tools/relocs turns into the list the decompressor applies
// (handle_relocations): R_X86_64_64, R_X86_64_32 and R_X86_64_32S get the
// offset added, and R_X86_64_PC32 against a per-CPU symbol (zero-based
// .data..percpu, which does not move) subtracted: the %gs:sym(%rip)
// accesses. Which PC32s are per-CPU is not resolved here: any PC32 may
// account for a difference of exactly minus the offset.
func textRelocs(ef *elf.File, kaslr uint64) ([]textReloc, bool, error) {
	var rs []textReloc
	found := false
	for _, s := range ef.Sections {
		if s.Type != elf.SHT_RELA || int(s.Info) >= len(ef.Sections) {
			continue
		}
		target := ef.Sections[s.Info]
		if target.Flags&elf.SHF_EXECINSTR == 0 || target.Flags&elf.SHF_ALLOC == 0 {
			continue
		}
		found = true
		const ent = 24
		rs = slices.Grow(rs, int(s.Size/ent/2))
		buf := make([]byte, 2730*ent)
		for off := uint64(0); off+ent <= s.Size; {
			n := min(uint64(len(buf)), (s.Size-off)/ent*ent)
			if _, err := s.ReadAt(buf[:n], int64(off)); err != nil {
				return nil, true, fmt.Errorf("forensics: %s: %w", s.Name, err)
			}
			for i := uint64(0); i+ent <= n; i += ent {
				w, inverse := 0, false
				switch elf.R_X86_64(binary.LittleEndian.Uint64(buf[i+8:]) & 0xffffffff) {
				case elf.R_X86_64_64:
					w = 8
				case elf.R_X86_64_32, elf.R_X86_64_32S:
					w = 4
				case elf.R_X86_64_PC32:
					w, inverse = 4, true
				default:
					continue
				}
				rs = append(rs, textReloc{addr: binary.LittleEndian.Uint64(buf[i:]) + kaslr, width: uint8(w), inverse: inverse})
			}
			off += n
		}
	}
	slices.SortFunc(rs, func(a, b textReloc) int { return cmp.Compare(a.addr, b.addr) })
	return rs, found, nil
}

// textFtrace reads ftrace's callers and registered ops.
func textFtrace(k *kernel.Kernel) (map[uint64]string, []textFtraceOps, error) {
	callers := map[uint64]string{}
	for _, name := range []string{"ftrace_caller", "ftrace_regs_caller"} {
		if va, err := k.Symbol(name); err == nil {
			callers[va] = name
		}
	}
	head, err := k.Symbol("ftrace_ops_list")
	if err != nil {
		return callers, nil, nil // no ftrace
	}
	end, _ := k.Symbol("ftrace_list_end")
	var ops []textFtraceOps
	p, err := k.ReadPtr(head)
	if err != nil {
		return callers, nil, err
	}
	seen := map[uint64]bool{}
	for p != 0 && p != end && !seen[p] && len(ops) < 1024 {
		seen[p] = true
		v := k.Object(p, "struct ftrace_ops").Load()
		o := textFtraceOps{addr: p}
		if o.fn, err = v.Field("func").Uint(); err != nil {
			return callers, ops, err
		}
		if v.HasField("trampoline") {
			o.tramp, _ = v.Field("trampoline").Uint()
			o.trampSize, _ = v.Field("trampoline_size").Uint()
		}
		if v.HasField("direct_call") {
			o.direct, _ = v.Field("direct_call").Uint()
		}
		if v.HasField("func_hash") {
			if h, err := v.Field("func_hash").Uint(); err == nil && h != 0 {
				hv := k.Object(h, "struct ftrace_ops_hash")
				o.filter = textFtraceHash(k, hv.Field("filter_hash"), true)
				o.notrace = textFtraceHash(k, hv.Field("notrace_hash"), false)
			}
		}
		ops = append(ops, o)
		if p, err = v.Field("next").Uint(); err != nil {
			return callers, ops, err
		}
	}
	return callers, ops, nil
}

// textFtraceHash reads a struct ftrace_hash * into a set of ips. An empty
// filter hash means every function: nil when all is true.
func textFtraceHash(k *kernel.Kernel, ptr kernel.Value, all bool) map[uint64]bool {
	hp, err := ptr.Uint()
	if err != nil || hp == 0 {
		if all {
			return nil
		}
		return map[uint64]bool{}
	}
	h := k.Object(hp, "struct ftrace_hash").Load()
	count, _ := h.Field("count").Uint()
	bits, _ := h.Field("size_bits").Uint()
	buckets, _ := h.Field("buckets").Uint()
	out := map[uint64]bool{}
	if count == 0 || buckets == 0 || bits > 16 {
		if all {
			return nil
		}
		return out
	}
	ipOff, err := k.Member("struct ftrace_func_entry", "ip")
	if err != nil {
		return out
	}
	for i := uint64(0); i < 1<<bits; i++ {
		first, err := k.ReadPtr(buckets + 8*i)
		if err != nil {
			continue
		}
		for node, err := range k.Chain(first, 1<<16) {
			if err != nil {
				break
			}
			if ip, err := k.ReadPtr(node + ipOff.Offset()); err == nil {
				out[ip] = true
			}
		}
	}
	return out
}

// KPROBE_FLAG_* (include/linux/kprobes.h, unchanged since v4.x).
const (
	kprobeFlagGone      = 1
	kprobeFlagDisabled  = 2
	kprobeFlagOptimized = 4
	kprobeFlagFtrace    = 8
)

// textKprobes reads kprobe_table: every registered kprobe by address, an
// aggregate probe with its members' handlers.
func textKprobes(k *kernel.Kernel) (map[uint64]*textKprobe, error) {
	table, err := k.Types().Symbol("kprobe_table")
	if err != nil {
		return nil, nil // no kprobes
	}
	base := table.Value + k.Layout().KASLROffset
	n := table.Size / 8
	if n == 0 || n > 1<<12 {
		n = 64 // KPROBE_TABLE_SIZE
	}
	aggr, _ := k.Symbol("aggr_pre_handler")
	listOff, err := k.Member("struct kprobe", "list")
	if err != nil {
		return nil, err
	}
	hlistOff, err := k.Member("struct kprobe", "hlist")
	if err != nil {
		return nil, err
	}
	out := map[uint64]*textKprobe{}
	handlers := func(v kernel.Value) []uint64 {
		var hs []uint64
		for _, f := range []string{"pre_handler", "post_handler"} {
			if h, err := v.Field(f).Uint(); err == nil && h != 0 {
				hs = append(hs, h)
			}
		}
		return hs
	}
	var firstErr error
	for i := uint64(0); i < n; i++ {
		first, err := k.ReadPtr(base + 8*i)
		if err != nil {
			firstErr = cmpErr(firstErr, err)
			continue
		}
		for node, err := range k.Chain(first, 4096) {
			if err != nil {
				firstErr = cmpErr(firstErr, err)
				break
			}
			kpa := node - hlistOff.Offset()
			v := k.Object(kpa, "struct kprobe").Load()
			addr, err := v.Field("addr").Uint()
			if err != nil {
				firstErr = cmpErr(firstErr, err)
				continue
			}
			flags, _ := v.Field("flags").Uint()
			kp := &textKprobe{addr: addr, kp: kpa, ftrace: flags&kprobeFlagFtrace != 0}
			pre, _ := v.Field("pre_handler").Uint()
			if aggr != 0 && pre == aggr {
				for child, err := range k.ListHead(kpa+listOff.Offset(), 1024) {
					if err != nil {
						break
					}
					kp.handlers = append(kp.handlers, handlers(k.Object(child-listOff.Offset(), "struct kprobe").Load())...)
				}
			} else {
				kp.handlers = handlers(v)
			}
			if flags&kprobeFlagOptimized != 0 && k.HasType("struct optimized_kprobe") {
				if t, err := k.Object(kpa, "struct optimized_kprobe").Field("optinsn.insn").Uint(); err == nil {
					kp.optimized, kp.optTarget = true, t
				}
			}
			if flags&(kprobeFlagGone|kprobeFlagDisabled) != 0 && !kp.ftrace {
				continue // disarmed: no int3 in the text
			}
			out[addr] = kp
		}
	}
	return out, firstErr
}

func cmpErr(first, err error) error {
	if first == nil {
		return err
	}
	return first
}
