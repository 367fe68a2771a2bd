package symbolize

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"

	"github.com/vmleak/vmleak/kernel"
)

// Kinds of code address (Frame.Kind).
const (
	FrameKernel = "kernel" // in the kernel image: a vmlinux symbol
	FrameModule = "module" // in a loaded module, named by its kallsyms where it has them
	// FrameFreedInit is module space that no loaded module holds, reached
	// from do_one_initcall: a module's __init code, which do_init_module
	// frees once init returns (6.1 clears mod->init_layout; later releases
	// mod->mem[MOD_INIT_*]). Which module it was is not recorded.
	FrameFreedInit = "freed-init-text"
	// FrameModuleSpace is module space that no loaded module holds, with no
	// stack to say more: freed init text, or a module since unloaded.
	FrameModuleSpace = "module-space"
	FrameUnknown     = "unknown"
)

// Frame names one code address: a track's caller or a stack frame.
type Frame struct {
	Addr    kernel.Hex `json:"addr"`
	Kind    string     `json:"kind"`
	Symbol  string     `json:"symbol,omitempty"` // name+0xoff
	Module  string     `json:"module,omitempty"`
	Section string     `json:"section,omitempty"` // the vmlinux section (kernel frames)
	// Text tells that the address is code: a text section of vmlinux, or a
	// module function (kallsyms type t or T).
	Text bool   `json:"text"`
	What string `json:"what"`
	// File and Line are the source line of the call, where the vmlinux or
	// the module's debuginfo has line tables, once Symbolizer.Line has
	// looked them up: the line of the instruction before Addr, which is a
	// return address (a track's caller, a stack frame), so that a call
	// ending a function is not taken for the function after it (the
	// kernel's %pB does the same). In inlined code it is the innermost
	// inlined function's line.
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
}

// String is the frame as crash's sym prints it, name+0xoff [module], and
// its source line where known.
func (f Frame) String() string {
	var s string
	switch {
	case f.Symbol != "" && f.Module != "":
		s = f.Symbol + " [" + f.Module + "]"
	case f.Symbol != "":
		s = f.Symbol
	default:
		return fmt.Sprintf("%#x (%s)", uint64(f.Addr), f.Kind)
	}
	if f.Line > 0 {
		s += fmt.Sprintf(" %s:%d", f.File, f.Line)
	}
	return s
}

// Code names a code address by itself. Module space that no module holds
// is FrameModuleSpace: only a stack can tell freed init text (Stack).
func (s *Symbolizer) Code(va uint64) Frame {
	if f, ok := s.codeCache[va]; ok {
		return f
	}
	f := s.code(va)
	if s.codeCache == nil {
		s.codeCache = map[uint64]Frame{}
	}
	if len(s.codeCache) < maxCodeCache {
		s.codeCache[va] = f
	}
	return f
}

// maxCodeCache bounds the addresses Code remembers.
const maxCodeCache = 1 << 20

func (s *Symbolizer) code(va uint64) Frame {
	f := Frame{Addr: kernel.Hex(va), Kind: FrameUnknown}
	if off := s.k.Layout().KASLROffset; va >= off {
		types := s.k.Types()
		sym, d, ok := types.SymbolAt(va - off)
		if !ok || sym.Section == "" {
			// Code after an assembler label of size 0 is in no symbol's
			// extent: name it by the label before it in its code section,
			// as kallsyms does.
			if sec := s.codeSection(va - off); sec != "" {
				sym, d, ok = types.SymbolBefore(va-off, sec)
			}
		}
		if ok && sym.Section != "" {
			f.Kind, f.Symbol, f.Section = FrameKernel, fmt.Sprintf("%s+%#x", sym.Name, d), sym.Section
			f.Text = isTextSection(sym.Section)
			f.What = fmt.Sprintf("%s (%s)", f.Symbol, sym.Section)
			return f
		}
	}
	if m, rg, ok := s.moduleAt(va); ok {
		f.Kind, f.Module = FrameModule, m.Name
		f.What = fmt.Sprintf("module %s, %s+%#x", m.Name, rg.Kind, va-rg.Base)
		if ks, ok := s.moduleKSym(m, va); ok {
			f.Symbol = fmt.Sprintf("%s+%#x", kernel.Printable(ks.Name), va-ks.Addr)
			f.Text = ks.Type == 't' || ks.Type == 'T'
			f.What = f.Symbol + " [" + m.Name + "]"
		}
		return f
	}
	if s.mm.Modules().Contains(va) {
		f.Kind = FrameModuleSpace
		f.What = "module space, in no loaded module (freed init text, or a module since unloaded)"
		return f
	}
	f.What = "neither kernel nor module code"
	return f
}

// codeSection is the executable vmlinux section holding link-time address
// a, or "". In dump-only mode the sections are those kallsyms' markers
// delimit (.text, .init.text).
func (s *Symbolizer) codeSection(a uint64) string {
	for _, sec := range s.k.Types().Sections() {
		if sec.Exec && a >= sec.Addr && a-sec.Addr < sec.Size {
			return sec.Name
		}
	}
	return ""
}

// isTextSection tells a vmlinux code section: .text and the sections
// linked beside it (.init.text, .noinstr.text, .entry.text, ...), and the
// alternatives' replacement code.
func isTextSection(sec string) bool {
	return strings.Contains(sec, "text") || sec == ".altinstr_replacement"
}

// Stack names the frames of a stack trace, innermost first, as Code does,
// and one thing more: a run of frames in module space that no module holds,
// called from do_one_initcall, is FrameFreedInit — a module's init function
// (and the __init code it called), run by do_init_module and freed after.
func (s *Symbolizer) Stack(frames []uint64) []Frame {
	out := make([]Frame, len(frames))
	for i, va := range frames {
		out[i] = s.Code(va)
	}
	for i := len(out) - 1; i >= 0; i-- {
		if out[i].Kind != FrameKernel || !strings.HasPrefix(out[i].Symbol, "do_one_initcall+") {
			continue
		}
		by := "do_one_initcall"
		if i+1 < len(out) && strings.HasPrefix(out[i+1].Symbol, "do_init_module+") {
			by += " from do_init_module"
		}
		// The frame do_one_initcall called is a module's init function. Its
		// text is freed after init returns, and a module loaded later may
		// get those pages: then the address names that module's code,
		// wrongly. A frame there that is neither a module's init entry nor
		// a call site is such reused text.
		if j := i - 1; j >= 0 && out[j].Kind == FrameModule && !s.initFrame(frames, j) {
			out[j].Kind = FrameFreedInit
			out[j].What = fmt.Sprintf("freed init text of a module (its init function, run by %s, and freed after it returned); "+
				"%s [%s] was loaded there since: the address is neither its init function nor a call site in it",
				by, out[j].Symbol, out[j].Module)
			out[j].Symbol, out[j].Module, out[j].Text = "", "", false
		}
		for j := i - 1; j >= 0 && out[j].Kind == FrameModuleSpace; j-- {
			out[j].Kind = FrameFreedInit
			out[j].What = "freed init text of a module (its init function, run by " + by + ", and freed after it returned)"
		}
	}
	return out
}

// initFrame tells that frames[j], a return address in a loaded module
// called by do_one_initcall, is that module's code: it lies in a module's
// init function (mod->init), or right after a call instruction — a direct
// call to the function of the frame below it, or an indirect call. Freed
// init text that a later module reuses is almost never either.
func (s *Symbolizer) initFrame(frames []uint64, j int) bool {
	ret := frames[j]
	if m, _, ok := s.moduleAt(ret); ok {
		if ks, ok := s.moduleKSym(m, ret); ok && s.moduleInits()[ks.Addr] {
			return true
		}
	}
	var b [6]byte
	if ret < uint64(len(b)) || s.k.ReadVirt(b[:], ret-uint64(len(b))) != nil {
		return false // unreadable text: not shown to be a call site
	}
	switch {
	case b[1] == 0xe8: // call rel32
		if j == 0 {
			return true
		}
		target := ret + uint64(int64(int32(binary.LittleEndian.Uint32(b[2:]))))
		callee := s.Code(frames[j-1])
		return callee.Symbol != "" && strings.SplitN(callee.Symbol, "+", 2)[0] == strings.TrimSuffix(s.Code(target).Symbol, "+0x0")
	case b[4] == 0xff && b[5]&0xf8 == 0xd0, // call *%reg
		b[3] == 0x41 && b[4] == 0xff && b[5]&0xf8 == 0xd0, // call *%r8..%r15
		b[0] == 0xff && b[1] == 0x15:                      // call *disp32(%rip)
		return true
	}
	return false
}

// moduleInits is the set of the loaded modules' init function addresses.
func (s *Symbolizer) moduleInits() map[uint64]bool {
	s.initsOnce.Do(func() {
		s.inits = map[uint64]bool{}
		s.modsOnce.Do(s.readModules)
		for _, m := range s.mods {
			if va, err := s.k.Object(m.Addr, "struct module").Field("init").Ptr(); err == nil && va != 0 {
				s.inits[va] = true
			}
		}
	})
	return s.inits
}

// Caller names a track's caller address with the stack saved with it: the
// frame of the stack at that address when there is one (so freed init text
// is told), else Code.
func (s *Symbolizer) Caller(va uint64, stack []uint64) Frame {
	for i, fr := range stack {
		if fr == va {
			return s.Stack(stack)[i]
		}
	}
	return s.Code(va)
}

func (s *Symbolizer) readModules() {
	s.mods, s.modsErr = s.k.Modules()
	if s.modsErr != nil {
		s.modsErr = fmt.Errorf("symbolize: modules: %w", s.modsErr)
	}
	s.mods = append(s.mods, s.extraMods...)
}

// AddModules makes modules the modules list lacks (hidden ones found by
// forensics) known to the symbolizer. Call it before the first lookup.
func (s *Symbolizer) AddModules(mods ...kernel.Module) {
	s.extraMods = append(s.extraMods, mods...)
}

// moduleKSym is the module's kallsyms symbol at or below va.
func (s *Symbolizer) moduleKSym(m *kernel.Module, va uint64) (kernel.KSym, bool) {
	syms, ok := s.modSyms[m.Addr]
	if !ok {
		var err error
		syms, err = s.k.ModuleKallsyms(*m)
		if err != nil {
			syms = nil
		}
		sort.Slice(syms, func(i, j int) bool { return syms[i].Addr < syms[j].Addr })
		s.modSyms[m.Addr] = syms
	}
	i := sort.Search(len(syms), func(i int) bool { return syms[i].Addr > va }) - 1
	if i < 0 {
		return kernel.KSym{}, false
	}
	return syms[i], true
}
