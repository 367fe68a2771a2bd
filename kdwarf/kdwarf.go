package kdwarf

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/cilium/ebpf/btf"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"github.com/vmleak/vmleak/internal/elfnote"
	"github.com/vmleak/vmleak/internal/regular"
)

// Errors.
var (
	// ErrNotFound is wrapped by every error about a type, member,
	// enumerator or symbol that does not exist.
	ErrNotFound = errors.New("kdwarf: not found")
	// ErrNoTypes means the file has neither usable DWARF nor BTF.
	ErrNoTypes = errors.New("kdwarf: no type information (neither DWARF nor BTF)")
	// ErrClosed is returned by methods of a closed File.
	ErrClosed = errors.New("kdwarf: file closed")
)

// maxDecompressed bounds a decompressed module, against decompression bombs.
const maxDecompressed = 1 << 30

// TypeSource selects where types come from.
type TypeSource string

// Type sources.
const (
	// SourceAuto uses BTF when a vmlinux has it and DWARF otherwise. A name
	// missing from BTF is looked up in DWARF too, when present.
	SourceAuto TypeSource = "auto"
	// SourceBTF uses only .BTF.
	SourceBTF TypeSource = "btf"
	// SourceDWARF uses only .debug_info.
	SourceDWARF TypeSource = "dwarf"
)

type config struct {
	source     TypeSource
	cacheDir   string // "" disables the on-disk index
	startupDir string // "" disables the start-up cache (symcache.go)
}

// An Option configures Open.
type Option func(*config)

// WithSource selects the type source. The default is SourceAuto.
func WithSource(s TypeSource) Option { return func(c *config) { c.source = s } }

// WithCacheDir sets the directory of on-disk DWARF name indexes. The default
// is $XDG_CACHE_HOME/vmleak/index, or ~/.cache/vmleak/index. An empty dir
// disables the on-disk index: it is built in memory on every Open.
func WithCacheDir(dir string) Option { return func(c *config) { c.cacheDir = dir } }

// DefaultCacheDir returns the default index directory, or "" if no home
// directory is known.
func DefaultCacheDir() string { return userCacheDir("index") }

// userCacheDir is $XDG_CACHE_HOME/vmleak/sub or ~/.cache/vmleak/sub, or ""
// if no home directory is known.
func userCacheDir(sub string) string {
	c := os.Getenv("XDG_CACHE_HOME")
	if c == "" {
		home, err := os.UserHomeDir()
		if err != nil || home == "" {
			return ""
		}
		c = filepath.Join(home, ".cache")
	}
	return filepath.Join(c, "vmleak", sub)
}

// File is an open vmlinux or module debuginfo file. Its methods are safe
// for concurrent use.
type File struct {
	path string
	cfg  config

	osf   *os.File
	raw   []byte // whole file: mmap or decompressed buffer; nil if read via osf
	unmap func() error
	ef    *elf.File // nil for a File from FromBTF

	buildID []byte

	// For a File from FromBTF (no ELF): the pointer size and the sections.
	ptr      int64
	sections []Section
	fromMem  bool

	mu     sync.Mutex
	closed bool

	// BTF, loaded on first use.
	btfDone bool
	btfErr  error
	btf     *btfTypes

	// DWARF, loaded on first use.
	dwDone bool
	dwErr  error
	dw     *dwarfTypes

	source  string // "btf" or "dwarf", once decided
	byName  map[string]*Type
	enumVal map[string]int64

	syms        *symtab
	symErr      error
	symCacheErr error // why the start-up cache was not used, if it was not

	// The start-up cache (symcache.go, typecache.go).
	key            string
	keyDone        bool
	tcLoaded       bool
	tc             typeAnswers
	typeCacheErr   error
	typesFromCache bool

	// Line tables, indexed on first use.
	lines    *lineIndex
	linesErr error
}

// Open opens a vmlinux or a module (.ko, optionally compressed with xz,
// zstd or gzip). Type information and symbols are loaded lazily, on the
// first lookup.
//
// An uncompressed file is memory-mapped until Close; it must not be
// truncated meanwhile. A compressed one is decompressed into memory.
func Open(path string, opts ...Option) (*File, error) {
	f := &File{path: path, cfg: config{source: SourceAuto, cacheDir: DefaultCacheDir(), startupDir: DefaultStartupCacheDir()}}
	for _, o := range opts {
		o(&f.cfg)
	}
	switch f.cfg.source {
	case SourceAuto, SourceBTF, SourceDWARF:
	default:
		return nil, fmt.Errorf("kdwarf: unknown type source %q", f.cfg.source)
	}
	osf, _, err := regular.Open(path)
	if err != nil {
		return nil, fmt.Errorf("kdwarf: %w", err)
	}
	var magic [6]byte
	n, _ := osf.ReadAt(magic[:], 0)
	var dec io.Reader
	switch {
	case n >= 6 && bytes.Equal(magic[:6], []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		r, err := xz.NewReader(io.NewSectionReader(osf, 0, 1<<62))
		if err != nil {
			osf.Close()
			return nil, fmt.Errorf("kdwarf: %s: xz: %w", path, err)
		}
		dec = r
	case n >= 4 && bytes.Equal(magic[:4], []byte{0x28, 0xb5, 0x2f, 0xfd}):
		r, err := zstd.NewReader(io.NewSectionReader(osf, 0, 1<<62), zstd.WithDecoderConcurrency(1))
		if err != nil {
			osf.Close()
			return nil, fmt.Errorf("kdwarf: %s: zstd: %w", path, err)
		}
		defer r.Close()
		dec = r
	case n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		r, err := gzip.NewReader(io.NewSectionReader(osf, 0, 1<<62))
		if err != nil {
			osf.Close()
			return nil, fmt.Errorf("kdwarf: %s: gzip: %w", path, err)
		}
		dec = r
	}
	var ra io.ReaderAt = osf
	if dec != nil {
		b, err := io.ReadAll(io.LimitReader(dec, maxDecompressed+1))
		osf.Close()
		if err != nil {
			return nil, fmt.Errorf("kdwarf: %s: decompress: %w", path, err)
		}
		if len(b) > maxDecompressed {
			return nil, fmt.Errorf("kdwarf: %s: decompressed size exceeds %d bytes", path, maxDecompressed)
		}
		f.raw = b
		ra = bytes.NewReader(b)
	} else {
		f.osf = osf
		if b, unmap, err := mmapFile(osf); err == nil {
			f.raw, f.unmap = b, unmap
			ra = bytes.NewReader(b)
		}
	}
	ef, err := elf.NewFile(ra)
	if err != nil {
		f.release()
		return nil, fmt.Errorf("kdwarf: %s: %w", path, err)
	}
	f.ef = ef
	f.buildID = readBuildID(ef)
	return f, nil
}

func (f *File) release() {
	if f.unmap != nil {
		f.unmap()
		f.unmap = nil
	}
	f.raw = nil
	if f.osf != nil {
		f.osf.Close()
		f.osf = nil
	}
}

// Close releases the file. Types and symbols returned earlier stay valid.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.saveTypeCache()
	f.closed = true
	f.dw = nil
	f.btf = nil
	f.lines = nil
	f.release()
	return nil
}

// Path returns the path given to Open.
func (f *File) Path() string { return f.path }

// ELF returns the underlying ELF file. It must not be used after Close. It
// is nil for a File built from memory by FromBTF, which has none.
func (f *File) ELF() *elf.File { return f.ef }

// BuildID returns the GNU build-id (NT_GNU_BUILD_ID note), or nil.
func (f *File) BuildID() []byte { return bytes.Clone(f.buildID) }

// readBuildID scans the note sections (vmlinux keeps its build-id in
// ".notes", modules in ".note.gnu.build-id").
func readBuildID(ef *elf.File) []byte {
	for _, s := range ef.Sections {
		if s.Type != elf.SHT_NOTE || s.Size > 1<<20 {
			continue
		}
		b, err := s.Data()
		if err != nil {
			continue
		}
		if id := elfnote.BuildID(b, ef.ByteOrder); id != nil {
			return id
		}
	}
	return nil
}

// section returns the contents of an uncompressed, allocated-in-file
// section without copying when the file is mapped, or nil.
func (f *File) rawSection(s *elf.Section) []byte {
	if f.raw == nil || s.Type == elf.SHT_NOBITS || s.Flags&elf.SHF_COMPRESSED != 0 {
		return nil
	}
	if s.Offset > uint64(len(f.raw)) || s.Size > uint64(len(f.raw))-s.Offset {
		return nil
	}
	return f.raw[s.Offset : s.Offset+s.Size : s.Offset+s.Size]
}

func (f *File) sectionData(s *elf.Section) ([]byte, error) {
	if b := f.rawSection(s); b != nil {
		return b, nil
	}
	return s.Data()
}

// hasDWARF reports whether the file has a .debug_info section.
func (f *File) hasDWARF() bool {
	if f.ef == nil {
		return false
	}
	return f.ef.Section(".debug_info") != nil || f.ef.Section(".zdebug_info") != nil
}

// Source returns "btf" or "dwarf": where types come from. It loads the type
// information if no lookup did yet, and returns "" if there is none.
func (f *File) Source() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return f.source
	}
	f.loadTypeCache()
	if f.source != "" {
		return f.source // decided, or read from the cache: nothing to load
	}
	f.decide()
	return f.source
}

// decide picks the primary source and loads it. f.mu is held.
func (f *File) decide() {
	f.loadTypeCache()
	if f.source != "" {
		// Decided, or read from the cache: load it if that is not done.
		var err error
		switch f.source {
		case "btf":
			err = f.loadBTF()
		case "dwarf":
			err = f.loadDWARF()
		}
		if err != nil {
			f.source = ""
		}
		return
	}
	wantBTF := f.cfg.source == SourceBTF ||
		(f.cfg.source == SourceAuto && f.ef.Type != elf.ET_REL && f.ef.Section(".BTF") != nil)
	if wantBTF {
		if f.loadBTF() == nil {
			f.source = "btf"
			return
		}
		if f.cfg.source == SourceBTF {
			return
		}
	}
	if f.loadDWARF() == nil {
		f.source = "dwarf"
	}
}

// lookupErr returns the error explaining why no source is available.
func (f *File) noSourceErr() error {
	switch {
	case f.cfg.source == SourceBTF:
		return f.btfErr
	case f.dwErr != nil:
		if f.btfErr != nil {
			return fmt.Errorf("%w; btf: %w", f.dwErr, f.btfErr)
		}
		return f.dwErr
	}
	return ErrNoTypes
}

// Type returns the type with the given C name: "struct kmem_cache",
// "union foo", "enum zone_type", a typedef ("gfp_t"), a base type
// ("unsigned long" or its DWARF spelling "long unsigned int"), "void", or
// any of these followed by "*"s ("struct page *"), optionally prefixed by
// "const " or "volatile ".
func (f *File) Type(name string) (*Type, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, ErrClosed
	}
	return f.typeLocked(normalizeSpaces(name))
}

func (f *File) typeLocked(name string) (*Type, error) {
	f.loadTypeCache()
	if t, ok := f.byName[name]; ok {
		return t, nil
	}
	if err, ok := f.tc.typeMiss[name]; ok {
		return nil, err
	}
	t, err := f.parseAndLookup(name)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			f.tc.typeMiss[name] = err
			f.tc.dirty = true
		}
		return nil, err
	}
	if f.byName == nil {
		f.byName = make(map[string]*Type)
	}
	f.byName[name] = t
	f.tc.dirty = true
	return t, nil
}

func (f *File) parseAndLookup(name string) (*Type, error) {
	if s, ok := strings.CutSuffix(name, "*"); ok {
		elem, err := f.typeLocked(strings.TrimSpace(s))
		if err != nil {
			return nil, err
		}
		return &Type{Kind: Pointer, Size: f.ptrSize(), Elem: elem}, nil
	}
	for _, q := range [...]struct {
		prefix string
		kind   Kind
	}{{"const ", Const}, {"volatile ", Volatile}} {
		if s, ok := strings.CutPrefix(name, q.prefix); ok {
			elem, err := f.typeLocked(s)
			if err != nil {
				return nil, err
			}
			return &Type{Kind: q.kind, Size: elem.Size, Elem: elem}, nil
		}
	}
	if name == "void" {
		return &Type{Kind: Void}, nil
	}
	var k Kind
	bare := name
	switch {
	case strings.HasPrefix(name, "struct "):
		k, bare = Struct, name[len("struct "):]
	case strings.HasPrefix(name, "union "):
		k, bare = Union, name[len("union "):]
	case strings.HasPrefix(name, "enum "):
		k, bare = Enum, name[len("enum "):]
	}
	if bare == "" {
		return nil, fmt.Errorf("kdwarf: bad type name %q", name)
	}
	src, err := f.primary()
	if err != nil {
		return nil, err
	}
	t, err := lookupName(src, k, bare)
	if err != nil && errors.Is(err, ErrNotFound) {
		if fb := f.fallback(); fb != nil {
			return lookupName(fb, k, bare)
		}
	}
	return t, err
}

// typeSource is BTF or DWARF.
type typeSource interface {
	// lookup returns the named type of kind k (Struct, Union, Enum,
	// Typedef or Base), or an error wrapping ErrNotFound.
	lookup(k Kind, name string) (*Type, error)
	enumerator(name string) (int64, error)
}

// lookupName looks a bare name up; kind Invalid means a typedef or base
// type name.
func lookupName(src typeSource, k Kind, bare string) (*Type, error) {
	if k != Invalid {
		return src.lookup(k, bare)
	}
	t, err := src.lookup(Typedef, bare)
	if err == nil || !errors.Is(err, ErrNotFound) {
		return t, err
	}
	t, err = src.lookup(Base, bare)
	if err == nil || !errors.Is(err, ErrNotFound) {
		return t, err
	}
	if c := canonicalBase(bare); c != "" && c != bare {
		return src.lookup(Base, c)
	}
	return nil, err
}

// primary returns the primary type source. f.mu is held.
func (f *File) primary() (typeSource, error) {
	f.decide()
	switch f.source {
	case "btf":
		return f.btf, nil
	case "dwarf":
		return f.dw, nil
	}
	return nil, f.noSourceErr()
}

// fallback returns DWARF when BTF is primary under SourceAuto and DWARF is
// present, or nil. f.mu is held.
func (f *File) fallback() typeSource {
	if f.source != "btf" || f.cfg.source != SourceAuto || !f.hasDWARF() || f.loadDWARF() != nil {
		return nil
	}
	return f.dw
}

// Struct is shorthand for Type("struct " + name).
func (f *File) Struct(name string) (*Type, error) { return f.Type("struct " + name) }

// Resolve returns the full definition of an opaque struct or union (see
// [Type]); any other type is returned as is.
func (f *File) Resolve(t *Type) (*Type, error) {
	if t == nil || !t.Opaque {
		return t, nil
	}
	if t.Name == "" {
		return nil, fmt.Errorf("kdwarf: cannot resolve anonymous %s: %w", t.Kind, ErrNotFound)
	}
	return f.Type(t.String())
}

// Enumerator returns the value of the enum constant name, from any enum
// (named or anonymous), e.g. "PG_slab" or "NR_SLAB_RECLAIMABLE_B".
func (f *File) Enumerator(name string) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, ErrClosed
	}
	f.loadTypeCache()
	if v, ok := f.enumVal[name]; ok {
		return v, nil
	}
	if err, ok := f.tc.enumMiss[name]; ok {
		return 0, err
	}
	src, err := f.primary()
	if err != nil {
		return 0, err
	}
	v, err := src.enumerator(name)
	if err != nil && errors.Is(err, ErrNotFound) {
		if fb := f.fallback(); fb != nil {
			v, err = fb.enumerator(name)
		}
	}
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			f.tc.enumMiss[name] = err
			f.tc.dirty = true
		}
		return 0, err
	}
	if f.enumVal == nil {
		f.enumVal = make(map[string]int64)
	}
	f.enumVal[name] = v
	f.tc.dirty = true
	return v, nil
}

func (f *File) ptrSize() int64 {
	if f.ef == nil {
		return f.ptr
	}
	if f.ef.Class == elf.ELFCLASS32 {
		return 4
	}
	return 8
}

// loadBTF loads .BTF once. f.mu is held.
func (f *File) loadBTF() error {
	if f.btfDone {
		return f.btfErr
	}
	f.btfDone = true
	s := f.ef.Section(".BTF")
	if s == nil {
		f.btfErr = fmt.Errorf("kdwarf: %s: no .BTF section: %w", f.path, ErrNoTypes)
		return f.btfErr
	}
	b, err := f.sectionData(s)
	if err != nil {
		f.btfErr = fmt.Errorf("kdwarf: %s: .BTF: %w", f.path, err)
		return f.btfErr
	}
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(b))
	if err != nil {
		f.btfErr = fmt.Errorf("kdwarf: %s: .BTF: %w", f.path, err)
		return f.btfErr
	}
	f.btf = newBTFTypes(spec, b, f.ptrSize())
	return nil
}

// loadDWARF opens .debug_info and its name index once. f.mu is held.
func (f *File) loadDWARF() error {
	if f.dwDone {
		return f.dwErr
	}
	f.dwDone = true
	if f.ef == nil {
		f.dwErr = f.noELF("DWARF")
		return f.dwErr
	}
	if !f.hasDWARF() {
		f.dwErr = fmt.Errorf("kdwarf: %s: no .debug_info section: %w", f.path, ErrNoTypes)
		return f.dwErr
	}
	dw, err := f.openDWARF()
	if err != nil {
		f.dwErr = fmt.Errorf("kdwarf: %s: dwarf: %w", f.path, err)
		return f.dwErr
	}
	f.dw = dw
	return nil
}

// openDWARF prepares DWARF decoding. For a linked, mapped file the debug
// sections are sliced out of the mapping rather than copied (as
// elf.File.DWARF would), and each compile unit gets its own dwarf.Data when
// first needed, so opening costs neither reading .debug_info nor parsing
// every unit's abbreviation table. Relocatable objects, compressed sections
// and DWARF with cross-unit references go through one whole-file
// dwarf.Data (elf.File.DWARF applies relocations).
func (f *File) openDWARF() (*dwarfTypes, error) {
	if secs := f.mappedDebugSections(); secs != nil {
		if !crossUnitForms(secs.abbrev) {
			return newDWARFTypes(f, secs, nil)
		}
		d, err := secs.data(secs.info)
		if err != nil {
			return nil, err
		}
		return newDWARFTypes(f, secs, d)
	}
	d, err := f.ef.DWARF()
	if err != nil {
		return nil, err
	}
	// The unit walk needs the unit headers, which relocations do not touch.
	secs := &debugSections{}
	if s := f.ef.Section(".debug_info"); s != nil {
		if secs.info, err = s.Data(); err != nil {
			return nil, err
		}
	}
	if s := f.ef.Section(".debug_abbrev"); s != nil {
		if secs.abbrev, err = s.Data(); err != nil {
			return nil, err
		}
	}
	return newDWARFTypes(f, secs, d)
}

// mappedDebugSections slices the debug sections of a linked, mapped file
// out of the mapping, or returns nil: for a relocatable object, an
// unmapped file, compressed sections or no .debug_info.
func (f *File) mappedDebugSections() *debugSections {
	if f.ef.Type == elf.ET_REL || f.raw == nil {
		return nil
	}
	sec := map[string][]byte{}
	for _, s := range f.ef.Sections {
		if strings.HasPrefix(s.Name, ".zdebug_") {
			return nil
		}
		suffix, isDebug := strings.CutPrefix(s.Name, ".debug_")
		if !isDebug {
			continue
		}
		b := f.rawSection(s)
		if b == nil && s.Size > 0 {
			return nil
		}
		sec[suffix] = b
	}
	if len(sec["info"]) == 0 {
		return nil
	}
	return sectionsOf(sec)
}

func normalizeSpaces(s string) string {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "  ") && !strings.ContainsAny(s, "\t\n") && !strings.Contains(s, " *") {
		return s
	}
	s = strings.Join(strings.Fields(s), " ")
	// "struct page *" and "struct page*" are the same name.
	for strings.Contains(s, " *") {
		s = strings.ReplaceAll(s, " *", "*")
	}
	return s
}

// canonicalBase returns gcc's DWARF spelling of a C integer type name
// ("unsigned long" → "long unsigned int"), or "" if name is not one.
func canonicalBase(name string) string {
	var unsigned, signed, short, char, bool_ bool
	longs := 0
	for _, w := range strings.Fields(name) {
		switch w {
		case "unsigned":
			unsigned = true
		case "signed":
			signed = true
		case "short":
			short = true
		case "long":
			longs++
		case "char":
			char = true
		case "int":
		case "bool", "_Bool":
			bool_ = true
		default:
			return ""
		}
	}
	switch {
	case bool_:
		return "_Bool"
	case char:
		if unsigned {
			return "unsigned char"
		}
		if signed {
			return "signed char"
		}
		return "char"
	}
	core := ""
	switch {
	case short:
		core = "short "
	case longs == 1:
		core = "long "
	case longs >= 2:
		core = "long long "
	}
	if unsigned {
		return core + "unsigned int"
	}
	return core + "int"
}

// Has tells whether the primary type source knows a type, without falling
// back from BTF to DWARF: for probing kernel versions ("does this kernel have
// struct kmem_cache_cpu?") where absence is an answer. A vmlinux's BTF is
// generated from its own DWARF, so a name BTF lacks, DWARF lacks too; the
// fallback would only build a DWARF index to say no.
func (f *File) Has(name string) bool {
	return f.cachedHas(name, false, f.has)
}

// cachedHas answers Has (enum false) or HasEnumerator from the start-up
// cache, or by ask, recording the answer.
func (f *File) cachedHas(name string, enum bool, ask func(string) bool) bool {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return false
	}
	f.loadTypeCache()
	m := f.tc.has
	if enum {
		m = f.tc.hasEnum
	}
	v, ok := m[name]
	f.mu.Unlock()
	if ok {
		return v
	}
	v = ask(name)
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		m[name] = v
		f.tc.dirty = true
	}
	return v
}

func (f *File) has(name string) bool {
	if f.primarySource() != "btf" {
		_, err := f.Type(name)
		return err == nil
	}
	k, bare := Invalid, normalizeSpaces(name)
	for _, p := range []struct {
		prefix string
		kind   Kind
	}{{"struct ", Struct}, {"union ", Union}, {"enum ", Enum}} {
		if strings.HasPrefix(bare, p.prefix) {
			k, bare = p.kind, bare[len(p.prefix):]
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	_, err := lookupName(f.btf, k, bare)
	return err == nil
}

// HasEnumerator is Has for enum constants.
func (f *File) HasEnumerator(name string) bool {
	return f.cachedHas(name, true, f.hasEnumerator)
}

func (f *File) hasEnumerator(name string) bool {
	if f.primarySource() != "btf" {
		_, err := f.Enumerator(name)
		return err == nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	_, err := f.btf.enumerator(name)
	return err == nil
}

// primarySource decides and returns the primary source ("btf", "dwarf", "").
func (f *File) primarySource() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ""
	}
	f.decide()
	return f.source
}
