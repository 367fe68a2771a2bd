package kernel

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/vmleak/vmleak/internal/elfnote"
	"github.com/vmleak/vmleak/kdwarf"
)

// Errors of module debuginfo look-ups, for errors.Is.
var (
	// ErrNoDebuginfo: no file with DWARF for the module was found.
	ErrNoDebuginfo = errors.New("kernel: no module debuginfo found")
	// ErrNoBuildID: the dump does not tell the module's build-id.
	ErrNoBuildID = errors.New("kernel: module build-id not available")
)

// moduleSuffixes are the file name endings of modules and their debuginfo.
var moduleSuffixes = []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz", ".ko.debug"}

// maxTreeEntries bounds the walk of one plain directory tree.
const maxTreeEntries = 200000

// moduleKey is a module or file name as the kernel compares them: '-'
// and '_' are the same (kernel/module: modname normalisation).
func moduleKey(s string) string { return strings.ReplaceAll(s, "-", "_") }

// trimModuleSuffix returns the module-name part of a file name, or false if
// the name has none of the module suffixes.
func trimModuleSuffix(base string) (string, bool) {
	for _, suf := range moduleSuffixes {
		if s, ok := strings.CutSuffix(base, suf); ok && s != "" {
			return s, true
		}
	}
	return "", false
}

// treeIndex maps moduleKey(file stem) to the module files under a root.
type treeIndex struct {
	files     map[string][]string
	truncated bool
}

var (
	treeMu    sync.Mutex
	treeCache = map[string]*treeIndex{}
)

// indexTree lists the module files under root (cached for the process:
// debuginfo trees do not change under a running analysis).
func indexTree(root string) *treeIndex {
	treeMu.Lock()
	defer treeMu.Unlock()
	if ti, ok := treeCache[root]; ok {
		return ti
	}
	ti := &treeIndex{files: map[string][]string{}}
	n := 0
	walkRoot := root
	if r, err := filepath.EvalSymlinks(root); err == nil {
		walkRoot = r // WalkDir does not follow a symlink, even as the root
	}
	filepath.WalkDir(walkRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if d != nil && d.IsDir() && p != walkRoot {
				return fs.SkipDir
			}
			return nil
		}
		if n++; n > maxTreeEntries {
			ti.truncated = true
			return fs.SkipAll
		}
		if d.IsDir() {
			return nil
		}
		if stem, ok := trimModuleSuffix(d.Name()); ok {
			key := moduleKey(stem)
			ti.files[key] = append(ti.files[key], p)
		}
		return nil
	})
	treeCache[root] = ti
	return ti
}

// candidates returns the module files under root named for the module:
// exact names first, then names that start with it and a separator
// ("vmleak_test-dfaf6c713593.ko": out-of-tree builds), which must prove
// their module name from .modinfo.
func (ti *treeIndex) candidates(name string) (exact, prefixed []string) {
	key := moduleKey(name)
	exact = ti.files[key]
	for k, ps := range ti.files {
		if len(k) > len(key)+1 && strings.HasPrefix(k, key) && (k[len(key)] == '_' || k[len(key)] == '.') {
			prefixed = append(prefixed, ps...)
		}
	}
	slices.Sort(prefixed)
	return exact, prefixed
}

// debugRejection is a file that was found but could not serve.
type debugRejection struct{ path, why string }

// FindModuleDebuginfo returns the path of a file with DWARF for module name
// of kernel release. It searches, in order:
//   - each dir of dirs as a root of Debian's -dbg layout
//     (dir/usr/lib/debug/lib/modules/<release>/**/<name>.ko[.xz|.zst|.gz|.debug]),
//     its build-id tree (dir/usr/lib/debug/.build-id/xx/yyyy.debug) and as
//     a plain directory tree holding module files;
//   - /usr/lib/debug/lib/modules/<release>/ and /usr/lib/debug/.build-id/;
//   - the shipped modules: dir/lib/modules/<release>/ and
//     dir/usr/lib/modules/<release>/ for each dir, then /lib/modules/<release>/
//     and /usr/lib/modules/<release>/ (usually stripped: reported as such).
//
// Module names match file names with '-' and '_' taken as equal; a file
// whose name only starts with the module name (name-<hash>.ko) is taken
// when its .modinfo says name=<name>. With a buildID, a file with another
// build-id is refused. The error wraps ErrNoDebuginfo and lists what was
// found and why it was refused.
func FindModuleDebuginfo(release, name string, buildID []byte, dirs []string) (string, error) {
	if !SafePathElement(name) {
		return "", fmt.Errorf("%w: module name %q cannot name a file", ErrNoDebuginfo, name)
	}
	if release != "" && !SafePathElement(release) {
		// Crafted to reach outside the trees: search by build-id and the
		// given directories only.
		release = ""
	}
	var searched []string
	var rejected []debugRejection
	seen := map[string]bool{}
	try := func(p string, needName bool) bool {
		abs, err := filepath.Abs(p)
		if err != nil {
			abs = p
		}
		if seen[abs] {
			return false
		}
		seen[abs] = true
		why := checkDebugFile(p, name, buildID, needName)
		if why == "" {
			return true
		}
		rejected = append(rejected, debugRejection{p, why})
		return false
	}
	tree := func(root string) string {
		if st, err := os.Stat(root); err != nil || !st.IsDir() {
			return ""
		}
		searched = append(searched, root)
		ti := indexTree(root)
		exact, prefixed := ti.candidates(name)
		for _, p := range exact {
			if try(p, false) {
				return p
			}
		}
		for _, p := range prefixed {
			if try(p, true) {
				return p
			}
		}
		return ""
	}
	byBuildID := func(root string) string {
		if len(buildID) < 2 {
			return ""
		}
		h := hex.EncodeToString(buildID)
		p := filepath.Join(root, "usr/lib/debug/.build-id", h[:2], h[2:]+".debug")
		searched = append(searched, p)
		if _, err := os.Stat(p); err == nil && try(p, false) {
			return p
		}
		return ""
	}
	dbgRel := filepath.Join("usr/lib/debug/lib/modules", release)
	for _, d := range dirs {
		if release != "" {
			if p := tree(filepath.Join(d, dbgRel)); p != "" {
				return p, nil
			}
		}
		if p := byBuildID(d); p != "" {
			return p, nil
		}
		if filepath.Clean(d) == "/" {
			continue // not walked as a plain tree
		}
		if p := tree(d); p != "" {
			return p, nil
		}
	}
	if release != "" {
		if p := tree(filepath.Join("/", dbgRel)); p != "" {
			return p, nil
		}
	}
	if p := byBuildID("/"); p != "" {
		return p, nil
	}
	if release != "" {
		for _, d := range append(append([]string(nil), dirs...), "/") {
			for _, rel := range []string{"lib/modules", "usr/lib/modules"} {
				if p := tree(filepath.Join(d, rel, release)); p != "" {
					return p, nil
				}
			}
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%v for module %s (release %q", ErrNoDebuginfo, name, release)
	if len(buildID) > 0 {
		fmt.Fprintf(&sb, ", build-id %x", buildID)
	}
	sb.WriteString(")")
	for _, r := range rejected {
		fmt.Fprintf(&sb, "; %s: %s", r.path, r.why)
	}
	if len(searched) > 0 {
		fmt.Fprintf(&sb, "; searched %s", strings.Join(searched, ", "))
	}
	sb.WriteString("; install the kernel's -dbg package (Debian: linux-image-<release>-dbg) or pass the directory of the module's unstripped .ko")
	return "", &debuginfoError{msg: sb.String()}
}

type debuginfoError struct{ msg string }

func (e *debuginfoError) Error() string { return e.msg }
func (e *debuginfoError) Unwrap() error { return ErrNoDebuginfo }

// checkDebugFile tells why a module file cannot serve as debuginfo for
// module name, or "" if it can.
func checkDebugFile(path, name string, buildID []byte, needName bool) string {
	f, err := kdwarf.Open(path, kdwarf.WithCacheDir(""))
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	ef := f.ELF()
	if ef.Type != elf.ET_REL {
		return fmt.Sprintf("not a relocatable module (ELF type %v)", ef.Type)
	}
	if needName {
		if got := Modinfo(ef, "name"); moduleKey(got) != moduleKey(name) {
			if got == "" {
				return "its .modinfo has no name= to prove it is " + name
			}
			return "its .modinfo says it is module " + got
		}
	}
	if len(buildID) > 0 {
		if have := f.BuildID(); len(have) > 0 && !bytes.Equal(have, buildID) {
			return fmt.Sprintf("build-id %x, the loaded module's is %x", have, buildID)
		}
	}
	if ef.Section(".debug_info") == nil && ef.Section(".zdebug_info") == nil {
		return "no DWARF (.debug_info): a stripped, shipped module"
	}
	return ""
}

// Modinfo returns the key= entry of a module's .modinfo (name, srcversion,
// vermagic, ...), or "".
func Modinfo(ef *elf.File, key string) string {
	s := ef.Section(".modinfo")
	if s == nil || s.Type == elf.SHT_NOBITS || s.Size > 1<<20 {
		return ""
	}
	b, err := s.Data()
	if err != nil {
		return ""
	}
	for _, e := range bytes.Split(b, []byte{0}) {
		if v, ok := bytes.CutPrefix(e, []byte(key+"=")); ok {
			return string(v)
		}
	}
	return ""
}

// ModuleBuildID returns the GNU build-id of a loaded module. Kernels built
// with CONFIG_STACKTRACE_BUILD_ID keep it in struct module (build_id[20]);
// Debian's do not (6.1, 6.12, 7.2), but every kernel with sysfs and
// kallsyms keeps mod->notes_attrs, whose bin_attributes point (private,
// size) at the module's SHF_ALLOC note sections in module memory, where
// .note.gnu.build-id lies. The error wraps ErrNoBuildID when neither is
// there.
func (k *Kernel) ModuleBuildID(m Module) ([]byte, error) {
	mv := k.Object(m.Addr, "struct module")
	if err := mv.Err(); err != nil {
		return nil, err
	}
	if mv.HasField("build_id") {
		if b, err := mv.Field("build_id").Bytes(); err == nil && !allZero(b) {
			return b, nil
		}
	}
	if !mv.HasField("notes_attrs") {
		return nil, fmt.Errorf("%w: module %s: struct module has neither build_id nor notes_attrs", ErrNoBuildID, m.Name)
	}
	na := mv.Field("notes_attrs")
	p, err := na.Ptr()
	if err != nil {
		return nil, fmt.Errorf("%w: module %s: %w", ErrNoBuildID, m.Name, err)
	}
	if p == 0 {
		return nil, fmt.Errorf("%w: module %s: notes_attrs is NULL (no notes in sysfs)", ErrNoBuildID, m.Name)
	}
	attrs, err := k.noteAttrs(na.Deref())
	if err != nil {
		return nil, fmt.Errorf("%w: module %s: %w", ErrNoBuildID, m.Name, err)
	}
	for _, a := range attrs {
		bv := k.Object(a, "struct bin_attribute")
		data, err1 := bv.Field("private").Ptr()
		size, err2 := bv.Field("size").Uint()
		if err := firstErr(err1, err2); err != nil {
			return nil, fmt.Errorf("%w: module %s: %w", ErrNoBuildID, m.Name, err)
		}
		if data == 0 || size == 0 || size > 1<<16 {
			continue
		}
		b := make([]byte, size)
		if err := k.ReadVirt(b, data); err != nil {
			return nil, fmt.Errorf("%w: module %s notes: %w", ErrNoBuildID, m.Name, err)
		}
		// The notes are in the kernel's byte order: little-endian on x86_64,
		// the only architecture OpenDump accepts.
		if id := elfnote.BuildID(b, binary.LittleEndian); id != nil {
			return id, nil
		}
	}
	return nil, fmt.Errorf("%w: module %s has no NT_GNU_BUILD_ID note", ErrNoBuildID, m.Name)
}

// noteAttrs returns the addresses of the struct bin_attribute of a
// struct module_notes_attrs: attrs[0..notes) up to 6.x; from 7.x
// (attribute_group grp, no count) the NULL-terminated grp.bin_attrs.
func (k *Kernel) noteAttrs(na Value) ([]uint64, error) {
	if na.HasField("notes") {
		n, err := na.Field("notes").Uint()
		if err != nil {
			return nil, err
		}
		if n > 4096 {
			return nil, fmt.Errorf("notes_attrs at %#x claims %d notes", na.Addr(), n)
		}
		var out []uint64
		for i := int64(0); i < int64(n); i++ {
			a := na.Field("attrs").Index(i)
			if err := a.Err(); err != nil {
				return nil, err
			}
			out = append(out, a.Addr())
		}
		return out, nil
	}
	return k.nullTerminated(na.Field("grp.bin_attrs"), 4096)
}

// nullTerminated reads the NULL-terminated pointer array that v points to.
func (k *Kernel) nullTerminated(v Value, limit int) ([]uint64, error) {
	arr, err := v.Ptr()
	if err != nil {
		return nil, err
	}
	if arr == 0 {
		return nil, fmt.Errorf("%s is NULL", v.Path())
	}
	var out []uint64
	for i := 0; ; i++ {
		if i > limit {
			return nil, fmt.Errorf("%s at %#x: more than %d entries", v.Path(), arr, limit)
		}
		p, err := k.readPtr(arr + uint64(8*i))
		if err != nil {
			return nil, err
		}
		if p == 0 {
			return out, nil
		}
		out = append(out, p)
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// ModuleSections returns the run-time address of each of a loaded module's
// sections, as /sys/module/<name>/sections/ shows them, from
// mod->sect_attrs: grp.bin_attrs names each section's bin_attribute; the
// address is the member after it in struct module_sect_attr {battr;
// address} (kernel/module/sysfs.c up to v6.13, so 6.1 and 6.12) or its
// private pointer from v6.14, which dropped struct module_sect_attr
// (attrs[] became struct bin_attribute) and nsections (d8959b947a8d): which
// one, the type of attrs[] in the kernel's own debuginfo tells. Init
// sections keep their address after init memory is freed.
func (k *Kernel) ModuleSections(m Module) (map[string]uint64, error) {
	mv := k.Object(m.Addr, "struct module")
	sa := mv.Field("sect_attrs")
	p, err := sa.Ptr()
	if err != nil {
		return nil, err
	}
	if p == 0 {
		return nil, fmt.Errorf("kernel: module %s: sect_attrs is NULL", m.Name)
	}
	sv := sa.Deref()
	attrs, err := k.nullTerminated(sv.Field("grp.bin_attrs"), 1<<16)
	if err != nil {
		return nil, fmt.Errorf("kernel: module %s sections: %w", m.Name, err)
	}
	// attrs[] is of struct module_sect_attr up to v6.13, of struct
	// bin_attribute from v6.14.
	av := sv.Field("attrs")
	if err := av.Err(); err != nil {
		return nil, err
	}
	elem := av.Type().Strip().Elem
	sectAttr := elem != nil && elem.Strip().Name == "module_sect_attr"
	out := make(map[string]uint64, len(attrs))
	for _, a := range attrs {
		bv := k.Object(a, "struct bin_attribute")
		name, err := bv.Field("attr.name").String()
		if err != nil {
			return nil, fmt.Errorf("kernel: module %s sections: %w", m.Name, err)
		}
		var addr uint64
		if sectAttr {
			addr, err = bv.ContainerOf("struct module_sect_attr", "battr").Field("address").Uint()
		} else {
			addr, err = bv.Field("private").Ptr()
		}
		if err != nil {
			return nil, fmt.Errorf("kernel: module %s section %s: %w", m.Name, name, err)
		}
		out[name] = addr
	}
	return out, nil
}

// ModuleDebug is a loaded module with its debuginfo.
type ModuleDebug struct {
	Module  Module
	Path    string
	File    *kdwarf.File
	BuildID []byte // from the dump, or nil (BuildIDErr tells why)

	BuildIDErr error
	// Sections holds the run-time address of each section, from
	// ModuleSections (SectionsFrom "sect_attrs") or, where the dump does not
	// have them, inferred from the module's kallsyms: a section's base is a
	// kallsyms address minus the .symtab value of the same symbol
	// (SectionsFrom "kallsyms"; sections without a kallsyms symbol are then
	// unknown).
	Sections     map[string]uint64
	SectionsFrom string

	k        *Kernel
	percpu   uint64
	ksymsErr error
	ksyms    map[string]uint64
	once     sync.Once
}

// OpenModuleDebuginfo finds and opens the debuginfo of a loaded module
// (FindModuleDebuginfo with the build-id read from the dump, so a file of
// another build is refused) and learns where its sections were loaded.
// The roots searched are dirs, then the Kernel's Options.DebugDirs.
// SectionsFrom tells where section addresses came from; the fallback to
// kallsyms is also recorded as a warning (Warnings).
func (k *Kernel) OpenModuleDebuginfo(m Module, dirs []string) (*ModuleDebug, error) {
	md := &ModuleDebug{Module: m, k: k}
	md.BuildID, md.BuildIDErr = k.ModuleBuildID(m)
	roots := append(append([]string(nil), dirs...), k.debugDirs...)
	path, err := FindModuleDebuginfo(k.release, m.Name, md.BuildID, roots)
	if err != nil {
		return nil, err
	}
	f, err := kdwarf.Open(path, kdwarf.WithSource(kdwarf.SourceDWARF))
	if err != nil {
		return nil, err
	}
	md.Path, md.File = path, f
	md.percpu, _ = k.Object(m.Addr, "struct module").Field("percpu").Ptr()
	if secs, err := k.ModuleSections(m); err == nil && len(secs) > 0 {
		md.Sections, md.SectionsFrom = secs, "sect_attrs"
	} else {
		secs, kerr := md.KallsymsSections()
		if kerr != nil {
			f.Close()
			return nil, fmt.Errorf("kernel: module %s: no section addresses: sect_attrs: %v; kallsyms: %w", m.Name, err, kerr)
		}
		md.Sections, md.SectionsFrom = secs, "kallsyms"
		k.Warnf("module %s: section addresses inferred from its kallsyms (sect_attrs: %v)", m.Name, err)
	}
	return md, nil
}

// Close closes the debuginfo file.
func (md *ModuleDebug) Close() error { return md.File.Close() }

func (md *ModuleDebug) kallsyms() (map[string]uint64, error) {
	md.once.Do(func() {
		syms, err := md.k.ModuleKallsyms(md.Module)
		if err != nil {
			md.ksymsErr = err
			return
		}
		md.ksyms = make(map[string]uint64, len(syms))
		for _, s := range syms {
			if _, dup := md.ksyms[s.Name]; !dup {
				md.ksyms[s.Name] = s.Addr
			}
		}
	})
	return md.ksyms, md.ksymsErr
}

// KallsymsSections infers section run-time addresses from the symbols the
// module's kallsyms and its .symtab share (kallsyms address minus
// section-relative value): the fallback where sect_attrs is not in the
// dump, and a cross-check of it. Sections without a kallsyms symbol are
// missing.
func (md *ModuleDebug) KallsymsSections() (map[string]uint64, error) {
	ks, err := md.kallsyms()
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for name, addr := range ks {
		s, err := md.File.Symbol(name)
		if err != nil || s.Section == "" || s.Section == kdwarf.PerCPUSection {
			continue
		}
		if _, ok := out[s.Section]; !ok {
			out[s.Section] = addr - s.Value
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no kallsyms symbol of module %s is in %s", md.Module.Name, md.Path)
	}
	return out, nil
}

// SymbolAddr returns the run-time address of a symbol of the module: its
// section-relative .symtab value plus the run-time address of its section
// (Sections). A per-CPU variable (.data..percpu) gives mod->percpu plus its
// offset: a per-CPU pointer, for PerCPU. When the section's address is not
// known, the module's own kallsyms is asked for the name. An address
// outside the module's memory (an init section freed after init) is an
// error.
func (md *ModuleDebug) SymbolAddr(name string) (uint64, error) {
	s, err := md.File.Symbol(name)
	if err != nil {
		return 0, fmt.Errorf("kernel: module %s: %w", md.Module.Name, err)
	}
	if s.Section == "" {
		return 0, fmt.Errorf("kernel: module %s: %s is an absolute symbol", md.Module.Name, name)
	}
	if s.Section == kdwarf.PerCPUSection {
		if md.percpu == 0 {
			return 0, fmt.Errorf("kernel: module %s: per-CPU symbol %s but mod->percpu is NULL", md.Module.Name, name)
		}
		return md.percpu + s.Value, nil
	}
	base, ok := md.Sections[s.Section]
	if !ok {
		ks, kerr := md.kallsyms()
		if kerr == nil {
			if a, ok := ks[name]; ok {
				return a, nil
			}
		}
		return 0, fmt.Errorf("kernel: module %s: %s is in section %s, whose run-time address is unknown (sections from %s; kallsyms: %v)",
			md.Module.Name, name, s.Section, md.SectionsFrom, kerr)
	}
	addr := base + s.Value
	if len(md.Module.Ranges) > 0 {
		if _, ok := md.Module.Contains(addr); !ok {
			return 0, fmt.Errorf("kernel: module %s: %s at %#x (section %s) is outside the module's memory (init memory freed after load?)",
				md.Module.Name, name, addr, s.Section)
		}
	}
	return addr, nil
}

// SectionOf returns the section of the module's debuginfo whose run-time
// extent (its address in Sections, its size in the file) holds va, and
// va's offset in it: what kdwarf.File.SectionLineAt takes. Code sections
// win over others, should extents overlap.
func (md *ModuleDebug) SectionOf(va uint64) (string, uint64, bool) {
	name, off, found, code := "", uint64(0), false, false
	for _, s := range md.File.ELF().Sections {
		if s.Flags&elf.SHF_ALLOC == 0 || s.Size == 0 {
			continue
		}
		base, ok := md.Sections[s.Name]
		if !ok || va < base || va-base >= s.Size {
			continue
		}
		isCode := s.Flags&elf.SHF_EXECINSTR != 0
		if !found || (isCode && !code) {
			name, off, found, code = s.Name, va-base, true, isCode
		}
	}
	return name, off, found
}
