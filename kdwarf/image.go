package kdwarf

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"slices"

	"github.com/cilium/ebpf/btf"
)

// ErrNoELF is wrapped by the errors of what needs the vmlinux file itself
// (DWARF, line tables, section contents) when a File was built from memory
// by FromBTF.
var ErrNoELF = errors.New("needs the vmlinux")

// Section is an allocated section of a kernel image: from the ELF section
// headers, or, for a File built by FromBTF, what the caller could tell of
// the layout (kernel: from kallsyms' section markers).
type Section struct {
	Name string
	Addr uint64 // link-time address; 0 for a per-CPU section linked at 0
	Size uint64
	Exec bool // holds code (SHF_EXECINSTR)
}

// Image is a kernel's types and symbols as read from its memory rather
// than from a vmlinux: the allocated .BTF section (__start_BTF ..
// __stop_BTF) and kallsyms.
type Image struct {
	// Name stands for the file in messages and is what Path returns
	// ("vmcore's BTF").
	Name string
	// BTF is the raw .BTF section (a base BTF, not split).
	BTF []byte
	// Symbols are link-time symbols, as .symtab would have them (Value
	// without KASLR; per-CPU variables in PerCPUSection with their offset,
	// where the kernel links that section at 0). FromBTF takes ownership.
	Symbols []Symbol
	// Sections are the image's sections, as far as known; a symbol's
	// Section need not be among them.
	Sections []Section
	// BuildID is the kernel's GNU build-id, or nil.
	BuildID []byte
	// PtrSize is the size of a pointer; 8 when 0.
	PtrSize int64
}

// FromBTF builds a File from a kernel's BTF and symbols, with no ELF file:
// types come from BTF only (Source is "btf"), symbols from img.Symbols.
// What needs the vmlinux file (DWARF, line tables, section contents, ELF)
// reports an error wrapping ErrNoELF; ELF returns nil. The BTF is parsed
// here, so a corrupt one is an error of FromBTF.
func FromBTF(img Image) (*File, error) {
	name := img.Name
	if name == "" {
		name = "BTF from memory"
	}
	ptr := img.PtrSize
	if ptr == 0 {
		ptr = 8
	}
	if len(img.BTF) == 0 {
		return nil, fmt.Errorf("kdwarf: %s: empty BTF: %w", name, ErrNoTypes)
	}
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(img.BTF))
	if err != nil {
		return nil, fmt.Errorf("kdwarf: %s: %w", name, err)
	}
	f := &File{
		path:     name,
		cfg:      config{source: SourceBTF},
		buildID:  bytes.Clone(img.BuildID),
		btfDone:  true,
		btf:      newBTFTypes(spec, img.BTF, ptr),
		source:   "btf",
		ptr:      ptr,
		sections: slices.Clone(img.Sections),
		fromMem:  true,
	}
	f.syms = newSymtab(img.Symbols)
	return f, nil
}

// FromMemory tells whether the File was built by FromBTF, with no ELF file.
func (f *File) FromMemory() bool { return f.fromMem }

// noELF is the error of a feature that needs the ELF file.
func (f *File) noELF(what string) error {
	return fmt.Errorf("kdwarf: %s: %s %w (types and symbols were read from memory)", f.path, what, ErrNoELF)
}

// Sections returns the allocated sections with an address (SHF_ALLOC, not
// empty), in header order for an ELF file; for a File from FromBTF, those
// it was given. The slice is the caller's.
func (f *File) Sections() []Section {
	if f.ef == nil {
		return slices.Clone(f.sections)
	}
	var out []Section
	for _, s := range f.ef.Sections {
		if s.Flags&elf.SHF_ALLOC == 0 || s.Size == 0 {
			continue
		}
		out = append(out, Section{Name: s.Name, Addr: s.Addr, Size: s.Size, Exec: s.Flags&elf.SHF_EXECINSTR != 0})
	}
	return out
}

// Section returns the allocated section name (the first of that name).
func (f *File) Section(name string) (Section, bool) {
	if f.ef == nil {
		for _, s := range f.sections {
			if s.Name == name {
				return s, true
			}
		}
		return Section{}, false
	}
	s := f.ef.Section(name)
	if s == nil || s.Flags&elf.SHF_ALLOC == 0 {
		return Section{}, false
	}
	return Section{Name: s.Name, Addr: s.Addr, Size: s.Size, Exec: s.Flags&elf.SHF_EXECINSTR != 0}, true
}

// ReadImage reads size bytes at link-time address addr from the file's
// allocated sections with contents (for comparing read-only data with what
// a dump holds). A File from FromBTF has no contents: the error wraps
// ErrNoELF.
func (f *File) ReadImage(addr, size uint64) ([]byte, error) {
	if f.ef == nil {
		return nil, f.noELF(fmt.Sprintf("reading the image at %#x", addr))
	}
	for _, s := range f.ef.Sections {
		if s.Type != elf.SHT_PROGBITS || s.Flags&elf.SHF_ALLOC == 0 {
			continue
		}
		if addr >= s.Addr && addr+size <= s.Addr+s.Size {
			if b := f.rawSection(s); b != nil {
				return bytes.Clone(b[addr-s.Addr : addr-s.Addr+size]), nil
			}
			b := make([]byte, size)
			if _, err := s.ReadAt(b, int64(addr-s.Addr)); err != nil {
				return nil, err
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("kdwarf: %s: no section holds %#x", f.path, addr)
}
