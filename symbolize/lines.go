package symbolize

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vmleak/vmleak/kdwarf"
	"github.com/vmleak/vmleak/kernel"
)

// Line returns f with its source line (File, Line) where one is known:
// for code named by a symbol, at an offset past the symbol's start (a
// return address at +0x0 follows a call that ended the function before,
// whose line would be shown beside the wrong name). Answers are kept per
// address.
//
// Code does not look lines up: that costs much more than naming (the line
// program of the compile unit is decoded through, on first use of each
// unit), and most frames named are never shown (owners names every frame
// of every stack it aggregates). Callers ask for the frames they show.
func (s *Symbolizer) Line(f Frame) Frame {
	if f.Line > 0 || !f.Text || f.Symbol == "" || strings.HasSuffix(f.Symbol, "+0x0") {
		return f
	}
	va := uint64(f.Addr)
	if l, ok := s.lineCache[va]; ok {
		f.File, f.Line = l.file, l.line
		return f
	}
	var l srcLine
	switch f.Kind {
	case FrameKernel:
		l.file, l.line = s.kernelLine(va - 1)
	case FrameModule:
		if m, _, ok := s.moduleAt(va); ok {
			l.file, l.line = s.moduleLine(m, va-1)
		}
	}
	if s.lineCache == nil {
		s.lineCache = map[uint64]srcLine{}
	}
	if len(s.lineCache) < maxCodeCache {
		s.lineCache[va] = l
	}
	f.File, f.Line = l.file, l.line
	return f
}

// Lines is Line for each frame, in place.
func (s *Symbolizer) Lines(frames []Frame) {
	for i := range frames {
		frames[i] = s.Line(frames[i])
	}
}

type srcLine struct {
	file string
	line int
}

// kernelLine is the source line of kernel address va, from the vmlinux's
// line tables, or "", 0. va is a run-time address: the vmlinux's is va
// less the KASLR offset, as for its symbols.
func (s *Symbolizer) kernelLine(va uint64) (string, int) {
	off := s.k.Layout().KASLROffset
	if va < off {
		return "", 0
	}
	p, err := s.k.Types().LineAt(va - off)
	if err != nil {
		s.lineError("vmlinux", err)
		return "", 0
	}
	return p.File, p.Line
}

// moduleLine is the source line of va in module m, from the line tables of
// its debuginfo (found as `vmleak modules` finds it), or "", 0. The module's
// section holding va is found from where the dump says its sections were
// loaded (mod->sect_attrs, or its kallsyms: kernel.OpenModuleDebuginfo).
func (s *Symbolizer) moduleLine(m *kernel.Module, va uint64) (string, int) {
	md, ok := s.modDebug[m.Addr]
	if !ok {
		var err error
		md, err = s.k.OpenModuleDebuginfo(*m, nil)
		if err != nil {
			md = nil
			s.lineError("module "+m.Name, err)
		}
		s.modDebug[m.Addr] = md
	}
	if md == nil {
		return "", 0
	}
	sec, off, ok := md.SectionOf(va)
	if !ok {
		return "", 0
	}
	p, err := md.File.SectionLineAt(sec, off)
	if err != nil {
		s.lineError("module "+m.Name, err)
		return "", 0
	}
	return p.File, p.Line
}

// maxLineErrors bounds the line look-up failures Warnings names.
const maxLineErrors = 8

// lineError records why a file has no lines, once per file: an address
// without a row (kdwarf.ErrNotFound) is no error, nor a file without line
// tables.
func (s *Symbolizer) lineError(file string, err error) {
	if errors.Is(err, kdwarf.ErrNoELF) && !s.lineErrFiles[file] {
		// Dump-only mode: said once, as what is left out.
		if s.lineErrFiles == nil {
			s.lineErrFiles = map[string]bool{}
		}
		s.lineErrFiles[file] = true
		s.lineErrs = append(s.lineErrs, fmt.Errorf("symbolize: kernel source lines not given: they need the vmlinux (types and symbols were read from the dump)"))
		return
	}
	if errors.Is(err, kdwarf.ErrNotFound) || errors.Is(err, kdwarf.ErrNoLines) || s.lineErrFiles[file] || len(s.lineErrs) >= maxLineErrors {
		return
	}
	if s.lineErrFiles == nil {
		s.lineErrFiles = map[string]bool{}
	}
	s.lineErrFiles[file] = true
	s.lineErrs = append(s.lineErrs, fmt.Errorf("symbolize: no source lines from %s: %w", file, err))
}

// Close closes the module debuginfo files opened for source lines.
func (s *Symbolizer) Close() error {
	var errs []error
	for a, md := range s.modDebug {
		if md != nil {
			errs = append(errs, md.Close())
		}
		delete(s.modDebug, a)
	}
	return errors.Join(errs...)
}
