package forensics

import (
	"bytes"
	"cmp"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/vmleak/vmleak/kdwarf"
	"github.com/vmleak/vmleak/kernel"
)

// The text of loaded modules is compared like the kernel's: each listed
// module whose .ko is found (kernel.OpenModuleDebuginfo: the roots of
// Options.ModuleDirs and the kernel's debug dirs, a file of another
// build-id refused) is an image of its own. Its core text sections are
// laid out where the kernel loaded them: at the addresses the kernel
// itself records in mod->sect_attrs (/sys/module/NAME/sections/*;
// kernel.ModuleSections). add_sect_attrs (kernel/module.c up to v5.19,
// kernel/module/sysfs.c since) stores each allocated section's sh_addr,
// which move_module set to the section's place in the module's memory
// (core_layout.base, or mem[type].base from v6.4, plus the offset
// layout_sections computed: SHF_EXECINSTR sections first, each aligned
// to its sh_addralign). So the loader's layout is read, not re-derived,
// and a kernel that changes it (module_memory, v6.4) needs nothing new.
// The image is then relocated as
// apply_relocate_add (arch/x86/kernel/module.c) does, against the
// module's own symbols at their section's load address and the kernel's
// and other modules' exported symbols (simplify_symbols,
// kernel/module/main.c). Then the module's own patch-site tables in the
// .ko (module_finalize's .altinstructions, .parainstructions,
// .retpoline_sites, .return_sites, .call_sites, .ibt_endbr_seal,
// .smp_locks; jump_label_add_module's __jump_table,
// static_call_add_module's .static_call_sites, ftrace_module_init's
// __mcount_loc) explain what the kernel patched after loading. Init text
// (.init.*) is freed once the module's init has run and is not compared.

// modText is the outcome of one module's comparison.
type modText struct {
	name  string
	path  string
	out   *textOutput
	bytes int // compared
	// skip is set when the module was not compared: why (a class, for the
	// grouped finding) and detail.
	skip, detail string
	// partial notes what of the module's text was left out.
	partial []string
}

// Reasons a module's text is not compared.
const (
	modSkipNoKo     = "no .ko"
	modSkipMismatch = ".ko does not match"
	modSkipUnusable = "unusable .ko"
	modSkipNoLayout = "no section addresses"
)

// modSkipError is a module left out, with its reason class.
type modSkipError struct{ why, detail string }

func (e *modSkipError) Error() string { return e.why + ": " + e.detail }

func modSkip(why, format string, args ...any) error {
	return &modSkipError{why: why, detail: fmt.Sprintf(format, args...)}
}

// modTextRoots are the directories searched for .ko files: the options'
// then the kernel's own debug dirs, once each.
func modTextRoots(c *Context) []string {
	var out []string
	for _, d := range append(append([]string(nil), c.Opts.ModuleDirs...), c.K.DebugDirs()...) {
		if d != "" && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

// checkModuleTexts compares every listed module's text with its .ko.
// kin is the kernel's image: what it knows of ftrace and kprobes is the
// whole kernel's, and module code may branch into its text.
func checkModuleTexts(c *Context, kin *textInput) []modText {
	syms := &modSymbols{c: c}
	var out []modText
	// The hidden modules too: a .ko given for one is compared like a
	// listed module's; without one, it is not checked like any other.
	all := append(append([]kernel.Module(nil), c.Modules...), c.Hidden...)
	for i, m := range all {
		mt := modText{name: m.Name}
		if i >= len(c.Modules) {
			mt.name += " (hidden)"
		}
		in, path, partial, err := moduleTextInput(c, kin, m, syms)
		mt.path, mt.partial = path, partial
		if err != nil {
			var se *modSkipError
			if errors.As(err, &se) {
				mt.skip, mt.detail = se.why, se.detail
			} else {
				mt.skip, mt.detail = modSkipUnusable, err.Error()
			}
			out = append(out, mt)
			continue
		}
		mt.out = compareText(in)
		mt.bytes = mt.out.checked
		out = append(out, mt)
	}
	return out
}

// moduleTextInput builds one module's image from its .ko.
func moduleTextInput(c *Context, kin *textInput, m kernel.Module, syms *modSymbols) (*textInput, string, []string, error) {
	k := c.K
	roots := c.Opts.ModuleDirs
	md, err := k.OpenModuleDebuginfo(m, roots)
	if err != nil {
		if !errors.Is(err, kernel.ErrNoDebuginfo) {
			return nil, "", nil, modSkip(modSkipUnusable, "%v", err)
		}
		// A file of the module's name refused for its build-id is a .ko of
		// another build: found again without the build-id, it is named.
		if id, ierr := k.ModuleBuildID(m); ierr == nil && len(id) > 0 {
			if p, perr := kernel.FindModuleDebuginfo(k.Release(), m.Name, nil, modTextRoots(c)); perr == nil {
				return nil, p, nil, modSkip(modSkipMismatch, "%s is not the loaded module's build (build-id %x)", p, id)
			}
		}
		return nil, "", nil, modSkip(modSkipNoKo, "%v", err)
	}
	defer md.Close()
	ef := md.File.ELF()
	if ef.Type != elf.ET_REL || ef.Machine != elf.EM_X86_64 {
		return nil, md.Path, nil, modSkip(modSkipUnusable, "%s is not an x86-64 relocatable module", md.Path)
	}
	if why := modMatches(k, m, md); why != "" {
		return nil, md.Path, nil, modSkip(modSkipMismatch, "%s: %s", md.Path, why)
	}
	if len(md.Sections) == 0 {
		return nil, md.Path, nil, modSkip(modSkipNoLayout, "the dump records no section addresses of %s", m.Name)
	}
	b := &modBuilder{c: c, k: k, m: m, md: md, ef: ef, syms: syms}
	in, err := b.build(kin)
	return in, md.Path, b.partial, err
}

// modMatches tells why the .ko is not the loaded module ("" when it is):
// its .gnu.linkonce.this_module must name the module, and its build-id
// equal the one the dump records or, where the dump records none, its
// srcversion the loaded module's.
func modMatches(k *kernel.Kernel, m kernel.Module, md *kernel.ModuleDebug) string {
	ef := md.File.ELF()
	if s := ef.Section(".gnu.linkonce.this_module"); s != nil {
		if mn, err := k.Member("struct module", "name"); err == nil {
			if b, err := s.Data(); err == nil && mn.Offset() < uint64(len(b)) {
				name := b[mn.Offset():min(uint64(len(b)), mn.Offset()+uint64(max(mn.Size(), 1)))]
				if i := bytes.IndexByte(name, 0); i >= 0 {
					name = name[:i]
				}
				if n := string(name); strings.ReplaceAll(n, "-", "_") != strings.ReplaceAll(m.Name, "-", "_") {
					return fmt.Sprintf("its .gnu.linkonce.this_module is module %q", n)
				}
			}
		}
	}
	have := md.File.BuildID()
	if len(md.BuildID) > 0 {
		if len(have) == 0 {
			return "the .ko has no build-id to compare"
		}
		if !bytes.Equal(have, md.BuildID) {
			return fmt.Sprintf("build-id %x, the loaded module's is %x", have, md.BuildID)
		}
		return ""
	}
	want, err := k.Object(m.Addr, "struct module").Field("srcversion").String()
	if err != nil || want == "" {
		return fmt.Sprintf("the dump records neither the module's build-id (%v) nor its srcversion", md.BuildIDErr)
	}
	if got := kernel.Modinfo(ef, "srcversion"); got != want {
		return fmt.Sprintf("srcversion %q, the loaded module's is %q", got, want)
	}
	return ""
}

// modBuilder lays out and relocates one module's text.
type modBuilder struct {
	c    *Context
	k    *kernel.Kernel
	m    kernel.Module
	md   *kernel.ModuleDebug
	ef   *elf.File
	syms *modSymbols

	elfSyms []elf.Symbol
	secAddr []uint64 // by section index; 0: unknown
	secOK   []bool
	pcpu    int // index of .data..percpu, or -1
	percpu  uint64
	relas   map[int]*elf.Section // SHT_RELA by the index of the section they relocate
	partial []string
	unres   map[string]int // unresolved symbols, by name
}

func (b *modBuilder) note(format string, args ...any) {
	b.partial = append(b.partial, fmt.Sprintf(format, args...))
}

func (b *modBuilder) build(kin *textInput) (*textInput, error) {
	ef := b.ef
	var err error
	if b.elfSyms, err = ef.Symbols(); err != nil {
		return nil, modSkip(modSkipUnusable, "%s: symbols: %v", b.md.Path, err)
	}
	// Section addresses by index; a name two sections share cannot be
	// told apart in sect_attrs.
	names := map[string]int{}
	for _, s := range ef.Sections {
		if s.Flags&elf.SHF_ALLOC != 0 && s.Size > 0 {
			names[s.Name]++
		}
	}
	b.secAddr = make([]uint64, len(ef.Sections))
	b.secOK = make([]bool, len(ef.Sections))
	b.pcpu = -1
	b.relas = map[int]*elf.Section{}
	for i, s := range ef.Sections {
		if s.Name == kdwarf.PerCPUSection && s.Flags&elf.SHF_ALLOC != 0 {
			b.pcpu = i
		}
		if s.Type == elf.SHT_RELA && int(s.Info) < len(ef.Sections) {
			b.relas[int(s.Info)] = s
		}
		if a, ok := b.md.Sections[s.Name]; ok && names[s.Name] == 1 {
			b.secAddr[i], b.secOK[i] = a, true
		}
	}
	if b.pcpu >= 0 {
		b.percpu, _ = b.k.Object(b.m.Addr, "struct module").Field("percpu").Ptr()
	}

	// The core text sections: executable, loaded in a region of the
	// module's that is not init memory.
	type textSec struct {
		idx  int
		addr uint64
		s    *elf.Section
	}
	var secs []textSec
	for i, s := range ef.Sections {
		if s.Type != elf.SHT_PROGBITS || s.Flags&elf.SHF_ALLOC == 0 || s.Flags&elf.SHF_EXECINSTR == 0 || s.Size == 0 {
			continue
		}
		if strings.HasPrefix(s.Name, ".init") {
			continue // freed after the module's init (module_init_section)
		}
		if !b.secOK[i] {
			if names[s.Name] > 1 {
				b.note("%s: %d sections share the name, their addresses cannot be told apart", s.Name, names[s.Name])
			} else {
				b.note("%s: no load address in the dump", s.Name)
			}
			continue
		}
		a := b.secAddr[i]
		r, ok := b.m.Contains(a)
		if !ok || strings.HasPrefix(r.Kind, "init") || a+s.Size > r.Base+r.Size {
			b.note("%s at %#x: not in the module's core memory", s.Name, a)
			continue
		}
		secs = append(secs, textSec{i, a, s})
	}
	if len(secs) == 0 {
		return nil, modSkip(modSkipNoLayout, "no core text section of %s has a load address in the dump", b.m.Name)
	}
	sort.Slice(secs, func(i, j int) bool { return secs[i].addr < secs[j].addr })
	lo, hi := secs[0].addr, uint64(0)
	for _, s := range secs {
		hi = max(hi, s.addr+s.s.Size)
	}
	if hi-lo > 256<<20 {
		return nil, modSkip(modSkipNoLayout, "text sections of %s span %#x-%#x", b.m.Name, lo, hi)
	}
	in := &textInput{
		start: lo, want: make([]byte, hi-lo),
		label: "module " + b.m.Name + "'s text", file: filepath.Base(b.md.Path), module: b.m.Name,
		read: b.k.ReadVirt, missing: kernel.IsMissing, base: kin,
		ftraceCallers: kin.ftraceCallers, ops: kin.ops, kprobes: kin.kprobes,
		relocsKnown: true,
	}
	if kin != nil {
		in.alsoText = append(in.alsoText, textRange{kin.start, kin.start + uint64(len(kin.want))})
	}
	world := &textModuleWorld{r: b.c.Resolver}
	at := lo
	for _, s := range secs {
		if s.addr < at {
			return nil, modSkip(modSkipNoLayout, "%s at %#x overlaps the section before it", s.s.Name, s.addr)
		}
		if s.addr > at {
			in.exclude = append(in.exclude, textRange{at, s.addr}) // alignment padding
		}
		off := s.addr - lo
		if _, err := s.s.ReadAt(in.want[off:off+s.s.Size], 0); err != nil {
			return nil, modSkip(modSkipUnusable, "%s %s: %v", b.md.Path, s.s.Name, err)
		}
		world.secs = append(world.secs, textFunc{s.addr, s.s.Size})
		at = s.addr + s.s.Size
		if s.s.Name == ".static_call.text" {
			in.staticCallText = textRange{s.addr, at}
		}
	}
	// Relocate, as apply_relocate_add does before module_finalize
	// patches anything.
	b.unres = map[string]int{}
	for _, s := range secs {
		if err := b.relocate(in, s.idx, s.addr); err != nil {
			return nil, err
		}
	}
	if len(b.unres) > 0 {
		var ns []string
		for n := range b.unres {
			ns = append(ns, n)
		}
		sort.Strings(ns)
		b.note("relocations against %d symbols not found in the dump left out: %s", len(ns), strings.Join(ns[:min(len(ns), 8)], ", "))
	}
	// The module's functions, for the comparison's instruction
	// boundaries.
	for _, s := range b.elfSyms {
		if elf.ST_TYPE(s.Info) != elf.STT_FUNC || int(s.Section) >= len(ef.Sections) || !b.secOK[s.Section] {
			continue
		}
		if a := b.secAddr[s.Section] + s.Value; a >= lo && a < hi {
			world.funcs = append(world.funcs, textFunc{a, s.Size})
		}
	}
	slices.SortFunc(world.funcs, func(x, y textFunc) int { return cmp.Compare(x.start, y.start) })
	in.world = world
	in.sites = b.sites()
	return in, nil
}

// textRela is one decoded Elf64_Rela.
type textRela struct {
	off    uint64
	sym    uint32
	typ    elf.R_X86_64
	addend int64
}

// relas decodes the relocations of section idx.
func (b *modBuilder) relasOf(idx int) ([]textRela, error) {
	rs := b.relas[idx]
	if rs == nil {
		return nil, nil
	}
	raw, err := rs.Data()
	if err != nil {
		return nil, modSkip(modSkipUnusable, "%s %s: %v", b.md.Path, rs.Name, err)
	}
	out := make([]textRela, 0, len(raw)/24)
	for i := 0; i+24 <= len(raw); i += 24 {
		info := binary.LittleEndian.Uint64(raw[i+8:])
		out = append(out, textRela{
			off: binary.LittleEndian.Uint64(raw[i:]), sym: uint32(info >> 32), typ: elf.R_X86_64(uint32(info)),
			addend: int64(binary.LittleEndian.Uint64(raw[i+16:])),
		})
	}
	return out, nil
}

// symValue is the run-time value of symbol i of .symtab, as
// simplify_symbols makes it: a defined symbol is its section's load
// address plus its value (a per-CPU one, mod->percpu plus it); an
// undefined one the exported symbol of the kernel or another module.
func (b *modBuilder) symValue(i uint32) (uint64, bool) {
	if i == 0 || int(i) > len(b.elfSyms) {
		return 0, i == 0
	}
	s := b.elfSyms[i-1]
	switch s.Section {
	case elf.SHN_UNDEF:
		v, ok := b.syms.lookup(s.Name)
		if !ok && elf.ST_BIND(s.Info) == elf.STB_WEAK {
			return 0, true // an unresolved weak symbol is 0
		}
		if !ok {
			b.unres[s.Name]++
		}
		return v, ok
	case elf.SHN_ABS:
		return s.Value, true
	case elf.SHN_COMMON:
		return 0, false // the loader refuses these
	}
	idx := int(s.Section)
	if idx == b.pcpu {
		return b.percpu + s.Value, b.percpu != 0
	}
	if idx >= len(b.secOK) || !b.secOK[idx] {
		return 0, false
	}
	return b.secAddr[idx] + s.Value, true
}

// relocate applies the relocations of section idx (at addr) to the image.
// Those of a symbol whose value is not known leave their bytes out of the
// comparison.
func (b *modBuilder) relocate(in *textInput, idx int, addr uint64) error {
	rs, err := b.relasOf(idx)
	if err != nil {
		return err
	}
	size := b.ef.Sections[idx].Size
	for _, r := range rs {
		w := 0
		switch r.typ {
		case elf.R_X86_64_NONE:
			continue
		case elf.R_X86_64_64, elf.R_X86_64_PC64:
			w = 8
		case elf.R_X86_64_32, elf.R_X86_64_32S, elf.R_X86_64_PC32, elf.R_X86_64_PLT32:
			w = 4
		default:
			// apply_relocate_add refuses the module ("Unknown rela
			// relocation"): a loaded module has none.
			return modSkip(modSkipMismatch, "%s: relocation type %v at %s+%#x, which the kernel's loader does not apply",
				b.md.Path, r.typ, b.ef.Sections[idx].Name, r.off)
		}
		if r.off+uint64(w) > size {
			return modSkip(modSkipUnusable, "%s: relocation at %s+%#x past the section's end", b.md.Path, b.ef.Sections[idx].Name, r.off)
		}
		p := addr + r.off
		o := p - in.start
		s, ok := b.symValue(r.sym)
		if !ok {
			in.exclude = append(in.exclude, textRange{p, p + uint64(w)})
			continue
		}
		v := s + uint64(r.addend)
		switch r.typ {
		case elf.R_X86_64_PC32, elf.R_X86_64_PLT32, elf.R_X86_64_PC64:
			v -= p
		}
		if w == 8 {
			binary.LittleEndian.PutUint64(in.want[o:], v)
		} else {
			binary.LittleEndian.PutUint32(in.want[o:], uint32(v))
		}
	}
	return nil
}

// tableSection is the contents of a patch-site table of the .ko and the
// run-time value (S+A) each of its relocations resolves to, by offset:
// the address an entry's relative or absolute field points to.
func (b *modBuilder) tableSection(name string) ([]byte, map[uint64]uint64, bool) {
	for i, s := range b.ef.Sections {
		if s.Name != name || s.Type != elf.SHT_PROGBITS || s.Size == 0 {
			continue
		}
		data, err := s.Data()
		if err != nil {
			b.note("%s: %v", name, err)
			return nil, nil, false
		}
		rs, err := b.relasOf(i)
		if err != nil {
			b.note("%s: %v", name, err)
			return nil, nil, false
		}
		at := make(map[uint64]uint64, len(rs))
		for _, r := range rs {
			if v, ok := b.symValue(r.sym); ok {
				at[r.off] = v + uint64(r.addend)
			}
		}
		return data, at, true
	}
	return nil, nil, false
}

// sites are the module's patch sites, from its own tables.
func (b *modBuilder) sites() []textSite {
	var out []textSite
	rel := func(kind, sec string, n int) {
		data, at, ok := b.tableSection(sec)
		if !ok {
			return
		}
		for off := uint64(0); off+4 <= uint64(len(data)); off += 4 {
			if a, ok := at[off]; ok {
				out = append(out, textSite{addr: a, n: n, kind: kind})
			}
		}
	}
	rel(siteRetpoline, ".retpoline_sites", 0)
	rel(siteReturn, ".return_sites", 0)
	rel(siteEndbrSeal, ".ibt_endbr_seal", 4)
	rel(siteCallDepth, ".call_sites", 0)
	rel(siteSMPLock, ".smp_locks", 1)

	k := b.k
	type layout struct {
		size int64
		mems []kernel.Member
	}
	shape := func(typ string, members ...string) (layout, bool) {
		if !k.HasType(typ) {
			return layout{}, false
		}
		size, err := k.SizeOf(typ)
		if err != nil || size <= 0 {
			b.note("%s: %v", typ, err)
			return layout{}, false
		}
		l := layout{size: size}
		for _, m := range members {
			mm, err := k.Member(typ, m)
			if err != nil {
				b.note("%v", err)
				return layout{}, false
			}
			l.mems = append(l.mems, mm)
		}
		return l, true
	}
	// The entries of a table; the last may stop short of the struct's
	// padding (.parainstructions: .quad, .byte, .byte after an .align 8),
	// but must hold the members read.
	entries := func(sec string, l layout, f func(off uint64, e []byte, at map[uint64]uint64)) {
		data, at, ok := b.tableSection(sec)
		if !ok {
			return
		}
		need := uint64(0)
		for _, m := range l.mems {
			need = max(need, m.Offset()+uint64(max(m.Size(), 1)))
		}
		for off := uint64(0); off+need <= uint64(len(data)); off += uint64(l.size) {
			f(off, data[off:min(off+uint64(l.size), uint64(len(data)))], at)
		}
	}
	if l, ok := shape("struct alt_instr", "instr_offset", "instrlen"); ok {
		entries(".altinstructions", l, func(off uint64, e []byte, at map[uint64]uint64) {
			n, _ := l.mems[1].Uint(e)
			if a, ok := at[off+l.mems[0].Offset()]; ok && n > 0 {
				out = append(out, textSite{addr: a, n: int(n), kind: siteAlternative})
			}
		})
	}
	if l, ok := shape("struct paravirt_patch_site", "instr", "len"); ok {
		entries(".parainstructions", l, func(off uint64, e []byte, at map[uint64]uint64) {
			n, _ := l.mems[1].Uint(e)
			if a, ok := at[off+l.mems[0].Offset()]; ok && n > 0 {
				out = append(out, textSite{addr: a, n: int(n), kind: siteParavirt})
			}
		})
	}
	if l, ok := shape("struct jump_entry", "code", "target"); ok {
		entries("__jump_table", l, func(off uint64, e []byte, at map[uint64]uint64) {
			code, ok1 := at[off+l.mems[0].Offset()]
			target, ok2 := at[off+l.mems[1].Offset()]
			if ok1 && ok2 {
				out = append(out, textSite{addr: code, kind: siteJumpLabel, target: target})
			}
		})
	}
	if l, ok := shape("struct static_call_site", "addr", "key"); ok {
		mf, ferr := k.Member("struct static_call_key", "func")
		funcs := map[uint64]uint64{}
		entries(".static_call_sites", l, func(off uint64, e []byte, at map[uint64]uint64) {
			addr, ok1 := at[off+l.mems[0].Offset()]
			key, ok2 := at[off+l.mems[1].Offset()]
			if !ok1 || !ok2 {
				return
			}
			flags := key & 3
			key &^= 3
			fn, seen := funcs[key]
			if !seen {
				fn = b.staticCallFunc(key, mf, ferr)
				funcs[key] = fn
			}
			out = append(out, textSite{addr: addr, n: 5, kind: siteStaticCall, target: fn, tail: flags&1 != 0})
		})
	}
	if data, at, ok := b.tableSection("__mcount_loc"); ok {
		for off := uint64(0); off+8 <= uint64(len(data)); off += 8 {
			if a, ok := at[off]; ok {
				out = append(out, textSite{addr: a, n: 5, kind: siteFtrace})
			}
		}
	}
	return out
}

// staticCallFunc is the current function of a static call key: a key the
// module may not update (not exported) is named by its trampoline in the
// kernel text (objtool's create_static_call_sections), whose jmp the
// dump holds; an exported key's func is read from the dump.
func (b *modBuilder) staticCallFunc(key uint64, mf kernel.Member, ferr error) uint64 {
	if b.c.Resolver.KernelText(key) {
		var t [5]byte
		if b.k.ReadVirt(t[:], key) == nil && t[0] == 0xe9 {
			return key + 5 + uint64(int64(int32(binary.LittleEndian.Uint32(t[1:]))))
		}
		return 0
	}
	if ferr != nil {
		return 0
	}
	fn, _ := b.k.ReadPtr(key + mf.Offset())
	return fn
}

// modSymbols resolves the undefined symbols of modules as the loader does
// (resolve_symbol, kernel/module/main.c: the kernel's exports, then the
// other modules'). A module's export is its __ksymtab_NAME entry, a
// struct kernel_symbol whose first member, value_offset, is the s32
// offset of NAME from itself (CONFIG_HAVE_ARCH_PREL32_RELOCATIONS, x86_64
// since v4.19): read from the dump, as find_symbol reads it.
type modSymbols struct {
	c       *Context
	loaded  bool
	ksymtab map[string]uint64 // NAME → its __ksymtab_NAME in a listed module
	byName  map[string]uint64 // NAME → its address in that module's kallsyms
}

func (s *modSymbols) lookup(name string) (uint64, bool) {
	k := s.c.K
	if _, err := k.Types().Symbol("__ksymtab_" + name); err == nil {
		if v, err := k.Symbol(name); err == nil {
			return v, true
		}
	}
	if !s.loaded {
		s.loaded = true
		s.ksymtab, s.byName = map[string]uint64{}, map[string]uint64{}
		for _, m := range s.c.Modules {
			syms, err := k.ModuleKallsyms(m)
			if err != nil {
				continue
			}
			own := map[string]uint64{}
			for _, y := range syms {
				own[y.Name] = y.Addr
			}
			for n, a := range own {
				if e, ok := strings.CutPrefix(n, "__ksymtab_"); ok {
					if _, dup := s.ksymtab[e]; !dup {
						s.ksymtab[e] = a
						if v, ok := own[e]; ok {
							s.byName[e] = v
						}
					}
				}
			}
		}
	}
	if a, ok := s.ksymtab[name]; ok {
		var b [4]byte
		if k.ReadVirt(b[:], a) == nil {
			return a + uint64(int64(int32(binary.LittleEndian.Uint32(b[:])))), true
		}
		if v, ok := s.byName[name]; ok {
			return v, true
		}
	}
	if v, err := k.Symbol(name); err == nil {
		return v, true
	}
	return 0, false
}

// textFunc is a function's (or a section's) run-time extent.
type textFunc struct{ start, size uint64 }

// textModuleWorld is the textWorld of a module's image: names from the
// resolver (the module's kallsyms), functions from the .ko's .symtab.
type textModuleWorld struct {
	r     *Resolver
	funcs []textFunc // by start
	secs  []textFunc
}

func (w *textModuleWorld) Resolve(va uint64) Place { return w.r.Resolve(va) }

func (w *textModuleWorld) FuncStart(va uint64) (uint64, uint64, bool) {
	if i := sort.Search(len(w.funcs), func(i int) bool { return w.funcs[i].start > va }) - 1; i >= 0 {
		if f := w.funcs[i]; va < f.start+max(f.size, 1) {
			return f.start, f.size, true
		}
	}
	// Code no symbol covers (.altinstr_replacement): from its section's
	// start.
	for _, s := range w.secs {
		if va >= s.start && va < s.start+s.size {
			return s.start, s.size, true
		}
	}
	return 0, 0, false
}

// modTextReport turns the modules' outcomes into findings, counts and
// notes for the text check.
func modTextReport(mts []modText) (fs []Finding, checked int, notes []string, partial bool, unexplained, badSites int) {
	counts := map[string]*textCount{}
	var compared []string
	var evidence []string
	skipped := map[string][]string{}
	skipDetail := map[string][]string{}
	for _, mt := range mts {
		if mt.skip != "" {
			skipped[mt.skip] = append(skipped[mt.skip], mt.name)
			skipDetail[mt.skip] = append(skipDetail[mt.skip], mt.name+": "+mt.detail)
			continue
		}
		out := mt.out
		compared = append(compared, mt.name)
		checked += out.checked
		sites := 0
		for kd, n := range out.counts {
			t := counts[kd]
			if t == nil {
				t = &textCount{}
				counts[kd] = t
			}
			t.Sites += n.Sites
			t.Bytes += n.Bytes
			sites += n.Sites
		}
		ev := fmt.Sprintf("%s: %d bytes compared with %s, %d patch sites explained", mt.name, out.checked, mt.path, sites)
		if len(mt.partial) > 0 {
			partial = true
			ev += "; not compared: " + strings.Join(mt.partial, "; ")
			notes = append(notes, fmt.Sprintf("module %s: not compared: %s", mt.name, strings.Join(mt.partial, "; ")))
		}
		if len(out.missing)+len(out.unreadable) > 0 {
			partial = true
			var n uint64
			for _, r := range append(append([]textRange(nil), out.missing...), out.unreadable...) {
				n += r.size()
			}
			ev += fmt.Sprintf("; %d bytes missing from the dump or unreadable", n)
			notes = append(notes, fmt.Sprintf("module %s: %d bytes of text not in the dump", mt.name, n))
		}
		evidence = append(evidence, ev)
		unexplained += out.unexplained
		badSites += out.badSites
		fs = append(fs, out.findings...)
	}
	kinds := make([]string, 0, len(counts))
	for kd := range counts {
		kinds = append(kinds, kd)
	}
	sort.Strings(kinds)
	for _, kd := range kinds {
		n := counts[kd]
		fs = append(fs, Finding{
			Kind: "runtime-patch", Severity: Info, Symbol: "modules: " + kd, Size: uint64(n.Bytes),
			Summary: fmt.Sprintf("modules: %s: %d sites patched at run time (%d bytes), explained and checked", kd, n.Sites, n.Bytes),
		})
	}
	if len(compared) > 0 {
		fs = append(fs, Finding{
			Kind: "module-text", Severity: Info, Size: uint64(checked),
			Summary:  fmt.Sprintf("text of %d modules compared with their .ko (%d bytes): %s", len(compared), checked, strings.Join(compared, ", ")),
			Evidence: evidence,
		})
		notes = append(notes, fmt.Sprintf("%d modules' text compared with their .ko (%d bytes)", len(compared), checked))
	}
	for _, why := range []string{modSkipMismatch, modSkipNoKo, modSkipNoLayout, modSkipUnusable} {
		names := skipped[why]
		if len(names) == 0 {
			continue
		}
		ev := skipDetail[why]
		if why == modSkipNoKo {
			ev = nil // the search's long story, the same for each
		}
		fs = append(fs, Finding{
			Kind: "module-text", Severity: Info,
			Summary:  fmt.Sprintf("%d modules not checked: %s: %s", len(names), why, strings.Join(names, ", ")),
			Evidence: ev,
		})
		notes = append(notes, fmt.Sprintf("%d modules not checked: %s", len(names), why))
	}
	return fs, checked, notes, partial, unexplained, badSites
}
