package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// KSym is one kallsyms symbol: what /proc/kallsyms shows.
type KSym struct {
	Name string
	Addr uint64 // run-time address (KASLR applied); per-CPU symbols: their offset
	Type byte   // 't', 'T', 'd', 'D', 'b', 'r', ... as in nm(1)
}

// Bounds on what the dump may claim, against corrupt or misread memory.
const (
	maxKallsyms     = 2 << 20 // symbols in vmlinux's kallsyms (a big distro kernel has ~200k)
	maxModuleSyms   = 1 << 20 // symbols in one module's kallsyms
	ksymNameLen     = 512     // KSYM_NAME_LEN since 6.1 (128 before)
	maxCompressed   = 1 << 14 // a name's compressed length (14 bits in the 2-byte form)
	maxTokenLen     = 1024    // one entry of kallsyms_token_table
	kallsymsChunk   = 64 << 10
	elf64SymSize    = 24
	tokenTableLimit = 1 << 20
)

// ErrNoKallsyms means the dump's kernel has no kallsyms tables we can find.
var ErrNoKallsyms = errors.New("kernel: no kallsyms")

// kallsymsSym returns the run-time address of one of the kallsyms tables:
// from VMCOREINFO (which exports them since v6.0, "crash_core: export
// kallsyms symbols to vmcoreinfo"), else from the vmlinux plus the KASLR
// offset, else where dump-only mode found the tables in the kernel image
// (scanKallsyms).
func (k *Kernel) kallsymsSym(name string) (uint64, bool) {
	if v, ok := k.info.Symbol(name); ok {
		return v, true
	}
	if v, ok := k.kallsymsFound[name]; ok {
		return v, true
	}
	if k.types == nil {
		return 0, false
	}
	v, err := k.Symbol(name)
	return v, err == nil
}

// Kallsyms decodes the vmlinux's kallsyms from dump memory, in kallsyms
// order (sorted by address). The result is not cached: a caller that needs
// it repeatedly keeps it.
//
// Layout (scripts/kallsyms.c, kernel/kallsyms.c): kallsyms_num_syms
// entries; kallsyms_names holds, per symbol, a length (one byte, or two when
// the first has bit 7 set: len = b0&0x7f | b1<<7) and that many token
// indexes into kallsyms_token_index/kallsyms_token_table; the first
// expanded character is the nm type. Addresses, by version:
//   - kallsyms_addresses[] (no CONFIG_KALLSYMS_BASE_RELATIVE): absolute;
//   - kallsyms_offsets[] + kallsyms_relative_base (6.1, 6.12): with
//     CONFIG_KALLSYMS_ABSOLUTE_PERCPU (x86_64 SMP) non-negative offsets are
//     absolute (per-CPU symbols) and a negative one is relative_base-1-off;
//     without it, relative_base+(u32)off. The mode is told from the data:
//     only the absolute-percpu encoding stores negative offsets;
//   - kallsyms_offsets[] alone (7.x, no kallsyms_relative_base): each
//     offset is relative to its own address (offset_to_ptr).
func (k *Kernel) Kallsyms() ([]KSym, error) {
	numVA, ok1 := k.kallsymsSym("kallsyms_num_syms")
	namesVA, ok2 := k.kallsymsSym("kallsyms_names")
	tokTabVA, ok3 := k.kallsymsSym("kallsyms_token_table")
	tokIdxVA, ok4 := k.kallsymsSym("kallsyms_token_index")
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return nil, fmt.Errorf("%w: kallsyms_num_syms, kallsyms_names, kallsyms_token_table or kallsyms_token_index unknown (neither VMCOREINFO nor vmlinux has them)", ErrNoKallsyms)
	}
	var b4 [4]byte
	if err := k.ReadVirt(b4[:], numVA); err != nil {
		return nil, fmt.Errorf("kernel: kallsyms_num_syms: %w", err)
	}
	n := binary.LittleEndian.Uint32(b4[:])
	if n == 0 || n > maxKallsyms {
		return nil, fmt.Errorf("kernel: kallsyms_num_syms at %#x is %d, out of range (0,%d]", numVA, n, maxKallsyms)
	}
	tokens, err := k.kallsymsTokens(tokTabVA, tokIdxVA)
	if err != nil {
		return nil, err
	}
	addrs, err := k.kallsymsAddrs(int(n))
	if err != nil {
		return nil, err
	}

	names := &vbuf{k: k, va: namesVA, what: "kallsyms_names"}
	out := make([]KSym, 0, n)
	name := make([]byte, 0, ksymNameLen)
	off := 0
	for i := 0; i < int(n); i++ {
		if err := names.ensure(off + 2); err != nil {
			return nil, fmt.Errorf("kernel: kallsyms symbol %d: %w", i, err)
		}
		start := off
		l := int(names.b[off])
		off++
		if l&0x80 != 0 {
			l = l&0x7f | int(names.b[off])<<7
			off++
		}
		if l == 0 || l >= maxCompressed {
			return nil, fmt.Errorf("kernel: kallsyms symbol %d at %#x: compressed length %d", i, namesVA+uint64(start), l)
		}
		if err := names.ensure(off + l); err != nil {
			return nil, fmt.Errorf("kernel: kallsyms symbol %d: %w", i, err)
		}
		name = name[:0]
		for _, t := range names.b[off : off+l] {
			name = append(name, tokens[t]...)
			if len(name) > ksymNameLen+1 {
				return nil, fmt.Errorf("kernel: kallsyms symbol %d at %#x: name longer than %d", i, namesVA+uint64(start), ksymNameLen)
			}
		}
		off += l
		if len(name) < 2 {
			return nil, fmt.Errorf("kernel: kallsyms symbol %d at %#x: empty name", i, namesVA+uint64(start))
		}
		out = append(out, KSym{Name: string(name[1:]), Addr: addrs[i], Type: name[0]})
	}
	return out, nil
}

// kallsymsTokens reads the 256 tokens of the name compression.
func (k *Kernel) kallsymsTokens(tabVA, idxVA uint64) ([256][]byte, error) {
	var tokens [256][]byte
	var idx [512]byte
	if err := k.ReadVirt(idx[:], idxVA); err != nil {
		return tokens, fmt.Errorf("kernel: kallsyms_token_index: %w", err)
	}
	tab := &vbuf{k: k, va: tabVA, what: "kallsyms_token_table"}
	for i := range tokens {
		o := int(binary.LittleEndian.Uint16(idx[2*i:]))
		if o >= tokenTableLimit {
			return tokens, fmt.Errorf("kernel: kallsyms_token_index[%d] at %#x is %d", i, idxVA+uint64(2*i), o)
		}
		for j := o; ; j++ {
			if j-o > maxTokenLen {
				return tokens, fmt.Errorf("kernel: kallsyms token %d at %#x longer than %d", i, tabVA+uint64(o), maxTokenLen)
			}
			if err := tab.ensure(j + 1); err != nil {
				return tokens, fmt.Errorf("kernel: kallsyms token %d: %w", i, err)
			}
			if tab.b[j] == 0 {
				tokens[i] = tab.b[o:j:j]
				break
			}
		}
	}
	return tokens, nil
}

// kallsymsAddrs reads the n symbol addresses.
func (k *Kernel) kallsymsAddrs(n int) ([]uint64, error) {
	addrs := make([]uint64, n)
	offVA, ok := k.kallsymsSym("kallsyms_offsets")
	if !ok {
		absVA, ok := k.kallsymsSym("kallsyms_addresses")
		if !ok {
			return nil, fmt.Errorf("%w: neither kallsyms_offsets nor kallsyms_addresses is known", ErrNoKallsyms)
		}
		b := make([]byte, 8*n)
		if err := k.ReadVirt(b, absVA); err != nil {
			return nil, fmt.Errorf("kernel: kallsyms_addresses: %w", err)
		}
		for i := range addrs {
			addrs[i] = binary.LittleEndian.Uint64(b[8*i:])
		}
		return addrs, nil
	}
	b := make([]byte, 4*n)
	if err := k.ReadVirt(b, offVA); err != nil {
		return nil, fmt.Errorf("kernel: kallsyms_offsets: %w", err)
	}
	off := func(i int) int32 { return int32(binary.LittleEndian.Uint32(b[4*i:])) }
	baseVA, ok := k.kallsymsSym("kallsyms_relative_base")
	if !ok {
		// Place-relative (offset_to_ptr), the 7.x encoding.
		for i := range addrs {
			addrs[i] = offVA + uint64(4*i) + uint64(int64(off(i)))
		}
		return addrs, nil
	}
	base, err := k.readPtr(baseVA)
	if err != nil {
		return nil, fmt.Errorf("kernel: kallsyms_relative_base: %w", err)
	}
	absPercpu := false
	for i := 0; i < n && !absPercpu; i++ {
		absPercpu = off(i) < 0
	}
	for i := range addrs {
		o := off(i)
		switch {
		case !absPercpu:
			addrs[i] = base + uint64(uint32(o))
		case o >= 0:
			addrs[i] = uint64(o)
		default:
			addrs[i] = base - 1 - uint64(int64(o))
		}
	}
	return addrs, nil
}

// vbuf is a growing window on kernel memory of unknown length, read in
// chunks; the last chunk is cut back to whole pages when a page beyond what
// is needed cannot be read.
type vbuf struct {
	k    *Kernel
	va   uint64
	b    []byte
	what string
}

func (r *vbuf) ensure(n int) error {
	if n <= len(r.b) {
		return nil
	}
	want := max(n, len(r.b)+kallsymsChunk)
	buf := make([]byte, want-len(r.b))
	if err := r.k.ReadVirt(buf, r.va+uint64(len(r.b))); err == nil {
		r.b = append(r.b, buf...)
		return nil
	}
	// Page by page, keeping what could be read.
	for len(r.b) < n {
		at := r.va + uint64(len(r.b))
		step := 4096 - int(at%4096)
		if err := r.k.ReadVirt(buf[:step], at); err != nil {
			return fmt.Errorf("%s at %#x: %w", r.what, r.va, err)
		}
		r.b = append(r.b, buf[:step]...)
	}
	return nil
}

// ModuleKallsyms returns a module's own symbols, from mod->kallsyms (an RCU
// pointer to struct mod_kallsyms {symtab, num_symtab, strtab, typetab},
// pointing at mod->core_kallsyms once the module is live): Elf64_Sym
// entries whose st_value is the run-time address. Before init completes it
// also covers init symbols. The null symbol and unnamed entries are left out.
func (k *Kernel) ModuleKallsyms(m Module) ([]KSym, error) {
	mv := k.Object(m.Addr, "struct module")
	kv := mv.Field("kallsyms")
	p, err := kv.Ptr()
	if err != nil {
		return nil, fmt.Errorf("kernel: module %s: %w", m.Name, err)
	}
	if p == 0 {
		kv = mv.Field("core_kallsyms")
	} else {
		kv = kv.Deref()
	}
	symtab, err1 := kv.Field("symtab").Ptr()
	num, err2 := kv.Field("num_symtab").Uint()
	strtab, err3 := kv.Field("strtab").Ptr()
	typetab, err4 := kv.Field("typetab").Ptr()
	if err := firstErr(err1, err2, err3, err4); err != nil {
		return nil, fmt.Errorf("kernel: module %s kallsyms: %w", m.Name, err)
	}
	if num > maxModuleSyms {
		return nil, fmt.Errorf("kernel: module %s: num_symtab %d at %#x exceeds %d", m.Name, num, kv.Addr(), maxModuleSyms)
	}
	if num == 0 {
		return nil, nil
	}
	if symtab == 0 || strtab == 0 || typetab == 0 {
		return nil, fmt.Errorf("kernel: module %s: mod_kallsyms at %#x has a NULL table (symtab %#x, strtab %#x, typetab %#x)", m.Name, kv.Addr(), symtab, strtab, typetab)
	}
	syms := make([]byte, num*elf64SymSize)
	if err := k.ReadVirt(syms, symtab); err != nil {
		return nil, fmt.Errorf("kernel: module %s symtab: %w", m.Name, err)
	}
	types := make([]byte, num)
	if err := k.ReadVirt(types, typetab); err != nil {
		return nil, fmt.Errorf("kernel: module %s typetab: %w", m.Name, err)
	}
	// The string table's size is not kept: read up to the last name plus
	// KSYM_NAME_LEN, cut at the first unreadable page.
	maxName := uint64(0)
	for i := uint64(0); i < num; i++ {
		maxName = max(maxName, uint64(binary.LittleEndian.Uint32(syms[i*elf64SymSize:])))
	}
	if maxName > 64<<20 {
		return nil, fmt.Errorf("kernel: module %s: symbol name offset %d at %#x out of range", m.Name, maxName, symtab)
	}
	str := &vbuf{k: k, va: strtab, what: "module " + m.Name + " strtab"}
	_ = str.ensure(int(maxName) + ksymNameLen) // may fall short at the end: checked per name
	out := make([]KSym, 0, num)
	for i := uint64(1); i < num; i++ {
		e := syms[i*elf64SymSize:]
		nameOff := int(binary.LittleEndian.Uint32(e))
		value := binary.LittleEndian.Uint64(e[8:])
		var name string
		if j := indexNUL(str.b, nameOff, ksymNameLen); j >= 0 {
			name = string(str.b[nameOff:j])
		} else {
			s, err := k.ReadCString(strtab+uint64(nameOff), ksymNameLen)
			if err != nil {
				return nil, fmt.Errorf("kernel: module %s symbol %d name: %w", m.Name, i, err)
			}
			name = s
		}
		if name == "" || isMappingSymbol(name) {
			continue
		}
		out = append(out, KSym{Name: name, Addr: value, Type: types[i]})
	}
	return out, nil
}

// isMappingSymbol tells the ELF mapping symbols of arm64 and arm ($x code,
// $d data, $a, $t; optionally with a ".suffix"), which mark what follows
// rather than name it: the kernel's own lookups skip them too.
func isMappingSymbol(name string) bool {
	return len(name) >= 2 && name[0] == '$' && strings.IndexByte("adtx", name[1]) >= 0 && (len(name) == 2 || name[2] == '.')
}

// indexNUL returns the index of the NUL ending the string at off in b, or
// -1 if b does not hold it within limit bytes.
func indexNUL(b []byte, off, limit int) int {
	if off >= len(b) {
		return -1
	}
	end := min(len(b), off+limit)
	for j := off; j < end; j++ {
		if b[j] == 0 {
			return j
		}
	}
	return -1
}
