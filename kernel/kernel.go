// Package kernel joins a dump (elfcore), address translation (xlat), kernel
// types and symbols (kdwarf) and VMCOREINFO into one view of the crashed
// kernel: typed values at kernel virtual addresses.
//
// It owns locating the kernel in the dump (KASLR offset, phys_base, page-table
// root, direct-map base), checking that the vmlinux belongs to the dump, and
// bounded, cycle-detecting list iteration. It knows no allocator: the slab
// walkers above it (package walk) read kernel structures only through it.
package kernel

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/vmleak/vmleak/elfcore"
	"github.com/vmleak/vmleak/kdwarf"
	"github.com/vmleak/vmleak/vmcoreinfo"
)

// Errors a caller can test for with errors.Is / errors.As.
var (
	// ErrNoVmlinux: no --vmlinux was given and none was found for the release.
	ErrNoVmlinux = errors.New("kernel: no vmlinux found")
	// ErrUnsupported: the dump's architecture or layout is not supported.
	ErrUnsupported = errors.New("kernel: unsupported")
	// ErrInconsistentDump: the dump contradicts itself (an architecture
	// whose VMCOREINFO lacks what that architecture's kernels export).
	ErrInconsistentDump = errors.New("inconsistent dump")
)

// UnsupportedArchError reports a dump, read correctly, of a machine whose
// kernel vmleak cannot analyze (x86_64 only for now). It matches
// ErrUnsupported.
type UnsupportedArchError struct {
	Dump   string
	Arch   string // utsname.machine or the ELF e_machine's name; "" if unknown
	Target elfcore.Target
}

func (e *UnsupportedArchError) Error() string {
	arch := e.Arch
	if arch == "" {
		arch = "unknown"
	}
	return fmt.Sprintf("kernel: %s: unsupported architecture %s (%s): only x86_64 and arm64 kernels are analyzed", e.Dump, arch, e.Target)
}

// Is makes errors.Is(err, ErrUnsupported) true.
func (e *UnsupportedArchError) Is(target error) bool { return target == ErrUnsupported }

// MismatchError reports a vmlinux that does not belong to the dump.
type MismatchError struct {
	Dump, Vmlinux string
	What          string // "build-id", "linux_banner"
	DumpValue     string
	VmlinuxValue  string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("kernel: %s does not match %s: %s %s in the dump, %s in the vmlinux",
		e.Vmlinux, e.Dump, e.What, e.DumpValue, e.VmlinuxValue)
}

// Options controls Open.
type Options struct {
	Vmlinux     string   // path of the vmlinux; found from the release when empty
	DebugDirs   []string // extra roots searched for vmlinux and module debuginfo
	Force       bool     // proceed (with a warning) when the vmlinux does not match
	ZeroFill    bool     // read pages missing from the dump as zeros (reported)
	TypeSource  kdwarf.TypeSource
	IndexDir    string // kdwarf index cache directory; default when empty
	SkipVmlinux bool   // open the dump only (info without debuginfo)
	// Raw, when set, opens the dump as a headerless physical memory image
	// laid out so (LiME raw or padded, a raw image at a base address).
	Raw *elfcore.RawLayout
	// NoVmlinux neither looks for nor uses a vmlinux: types and symbols are
	// read from the dump (dump-only mode, as when no vmlinux is found).
	NoVmlinux bool
	// Types, when set, is an open vmlinux to use instead of opening one:
	// two dumps of one kernel share its decoded types. It must stay open
	// until the Kernel is closed, which leaves it open. Its build-id is
	// checked against the dump like an opened one's.
	Types *kdwarf.File
	// LiveBTF and LiveKallsyms are the running kernel's BTF and symbol
	// files, read when the dump is /proc/kcore and no vmlinux is used;
	// DefaultLiveBTF and DefaultLiveKallsyms when empty.
	LiveBTF, LiveKallsyms string
	// TypeCache is the directory of the start-up cache (kdwarf's symbols
	// and type layouts per vmlinux build-id): "" for the default
	// (kdwarf.DefaultStartupCacheDir), NoTypeCache to use none.
	TypeCache string
	// CacheLimit bounds, in bytes, how far ReserveCache may grow the
	// decompressed-page cache of a compressed dump; DefaultCacheLimit when 0.
	CacheLimit uint64
}

// DefaultCacheLimit is Options.CacheLimit's default. Measured with leaks on
// the lab's big dumps: 64 MiB saves 15–20 % of the time against the
// default cache; 256 MiB saved a few per cent more on the 4 GiB kdump-lzo
// for 90 MB more peak RSS, and nothing on the 1 GiB one for 250 MB more.
const DefaultCacheLimit = 64 << 20

// NoTypeCache as Options.TypeCache disables the start-up cache.
const NoTypeCache = "-"

// KdwarfOptions are the kdwarf options that opts asks for.
func KdwarfOptions(opts Options) []kdwarf.Option {
	var kopts []kdwarf.Option
	if opts.TypeSource != "" {
		kopts = append(kopts, kdwarf.WithSource(opts.TypeSource))
	}
	if opts.IndexDir != "" {
		kopts = append(kopts, kdwarf.WithCacheDir(opts.IndexDir))
	}
	switch opts.TypeCache {
	case "":
	case NoTypeCache:
		kopts = append(kopts, kdwarf.WithStartupCache(""))
	default:
		kopts = append(kopts, kdwarf.WithStartupCache(opts.TypeCache))
	}
	return kopts
}

// Kernel is one crashed kernel: its dump, page tables, types and symbols.
// Its state is fixed by Open; callers read it through methods.
type Kernel struct {
	dump      *elfcore.Dump
	path      string
	info      *vmcoreinfo.Info // nil when the dump has no VMCOREINFO
	types     *kdwarf.File     // nil with Options.SkipVmlinux
	ownTypes  bool             // types was opened here, and is closed with the Kernel
	origin    Origin           // where types came from, in dump-only mode
	tr        translator
	release   string
	lay       Layout
	debugDirs []string // roots searched for module debuginfo (Options.DebugDirs)
	cacheMax  uint64   // Options.CacheLimit, defaulted

	mu       sync.Mutex
	warnings []string
	// liveBTF, liveKallsyms: Options.LiveBTF and LiveKallsyms, defaulted.
	liveBTF, liveKallsyms string
	typeCache             sync.Map // string -> *kdwarf.Type
	perCPU                []uint64 // __per_cpu_offset, loaded once
	perCPUErr             error
	perCPUOnce            sync.Once

	// kallsymsFound are the kallsyms tables' addresses found by searching
	// the kernel image (dump-only mode, kernels before 6.0).
	kallsymsFound map[string]uint64
}

// translator is the architecture's page-table walker (xlat.X86_64, xlat.ARM64).
type translator interface {
	Translate(va uint64) (pa, pageSize uint64, err error)
	ReadVirt(p []byte, va uint64) (int, error)
}

// Layout is where the kernel sits in memory, found by Open.
type Layout struct {
	Arch        string // "x86_64" or "arm64"
	KASLROffset uint64 // virtual KASLR shift of the kernel image
	PhysBase    uint64 // x86_64: phys_base; arm64: PHYS_OFFSET (memstart_addr)
	// PageOffset is the direct-map address of physical address 0:
	// page_offset_base on x86_64, PAGE_OFFSET - PHYS_OFFSET on arm64.
	PageOffset uint64
	// VmemmapBase is the struct page of page frame 0 (vmemmap_base on
	// x86_64; arm64's vmemmap, below VMEMMAP_START when RAM starts high).
	VmemmapBase uint64
	VmallocBase uint64
	Levels      int // page-table levels walked (x86_64: 4 or 5)
	// arm64 only (zero elsewhere, and where VMCOREINFO does not say).
	VABits                   int    // NUMBER(VA_BITS)
	KimageVoffset            uint64 // NUMBER(kimage_voffset): image va - pa
	VmallocEnd               uint64
	ModulesStart, ModulesEnd uint64
	VmemmapStart, VmemmapEnd uint64
	LocatedBy                string // "vmcoreinfo", "cpu-state" or "memory scan"
	// Located says where the locator found the kernel, where it says more
	// than its name ("banner at PA …, init_top_pgt at PA …" for the memory scan).
	Located string
}

// Dump is the dump file the kernel was read from.
func (k *Kernel) Dump() *elfcore.Dump { return k.dump }

// ReserveCache sizes a compressed dump's decompressed-page cache for a
// command that is about to re-read n bytes of memory, up to
// Options.CacheLimit: the work decides the cache, so a census, which reads
// each page once, keeps the small default.
func (k *Kernel) ReserveCache(n uint64) { k.dump.ReserveCache(min(n, k.cacheMax)) }

// Path is the dump's file name, for messages.
func (k *Kernel) Path() string { return k.path }

// Info is the dump's VMCOREINFO, or nil when it has none.
func (k *Kernel) Info() *vmcoreinfo.Info { return k.info }

// Types are the kernel's types and symbols: the vmlinux's, or in dump-only
// mode (see FromDump) those read from the dump, which has no ELF file
// (kdwarf.File.FromMemory); nil when the kernel was opened with
// Options.SkipVmlinux.
func (k *Kernel) Types() *kdwarf.File { return k.types }

// HasTypes tells whether types and symbols are available.
func (k *Kernel) HasTypes() bool { return k.types != nil }

// Release is the kernel release (uname -r).
func (k *Kernel) Release() string { return k.release }

// Layout is where the kernel sits in memory; zero without types
// (Options.SkipVmlinux), since locating the kernel needs its symbols.
func (k *Kernel) Layout() Layout { return k.lay }

// PageSize is the kernel's page size: VMCOREINFO's PAGESIZE, else the
// dump's. They differ in QEMU's kdump files of arm64 guests, written in
// 64 KiB blocks whatever the guest's granule.
func (k *Kernel) PageSize() uint64 {
	if k.info != nil && k.info.PageSize != 0 {
		return k.info.PageSize
	}
	return k.dump.PageSize()
}

// DebugDirs are the extra roots searched for debuginfo (Options.DebugDirs).
func (k *Kernel) DebugDirs() []string { return append([]string(nil), k.debugDirs...) }

// Warnings returns what went wrong without stopping the analysis.
func (k *Kernel) Warnings() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.warnings...)
}

// Warnf records a warning.
func (k *Kernel) Warnf(format string, args ...any) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.warnings = append(k.warnings, fmt.Sprintf(format, args...))
}

// Close releases the dump and the debuginfo.
func (k *Kernel) Close() error {
	var errs []error
	if k.types != nil && k.ownTypes {
		errs = append(errs, k.types.Close())
	}
	if k.dump != nil {
		errs = append(errs, k.dump.Close())
	}
	return errors.Join(errs...)
}

// Open opens a dump and, unless opts.SkipVmlinux, its vmlinux, and locates
// the kernel in it. With no vmlinux given or found (or opts.NoVmlinux), the
// kernel's types and symbols are read from the dump itself: its BTF and
// kallsyms (dump-only mode, see FromDump); when that fails too, the error
// wraps ErrNoVmlinux.
func Open(dumpPath string, opts Options) (*Kernel, error) {
	var d *elfcore.Dump
	var err error
	if opts.Raw != nil {
		d, err = elfcore.OpenRaw(dumpPath, *opts.Raw)
	} else {
		d, err = elfcore.Open(dumpPath)
	}
	if err != nil {
		return nil, err
	}
	return OpenDump(d, dumpPath, opts)
}

// OpenDump is Open for a dump already open (any io.ReaderAt through
// elfcore.NewDump); the Kernel takes ownership of d.
func OpenDump(d *elfcore.Dump, dumpPath string, opts Options) (*Kernel, error) {
	var err error
	k := &Kernel{dump: d, path: dumpPath, debugDirs: opts.DebugDirs, cacheMax: cmp.Or(opts.CacheLimit, DefaultCacheLimit),
		liveBTF: cmp.Or(opts.LiveBTF, DefaultLiveBTF), liveKallsyms: cmp.Or(opts.LiveKallsyms, DefaultLiveKallsyms)}
	ok := false
	defer func() {
		if !ok {
			k.Close()
		}
	}()
	d.SetZeroFill(opts.ZeroFill)
	if raw := d.VMCOREINFO(); len(raw) > 0 {
		info, err := vmcoreinfo.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("kernel: %s: VMCOREINFO: %w", dumpPath, err)
		}
		k.info = info
		k.release = info.OSRelease
	}
	if k.release == "" && d.Kdump() != nil {
		k.release = d.Kdump().Release
	}
	if d.IsMemoryImage() {
		// A memory image names neither its machine nor its kernel: x86_64 is
		// assumed (the memory scan's page-table walk proves it), and the
		// release, for finding the vmlinux, is read from the banner.
		if k.release == "" && opts.Vmlinux == "" && opts.Types == nil {
			k.release = imageRelease(d)
		}
	} else if d.Arch() != "x86_64" && d.Arch() != "aarch64" {
		return nil, &UnsupportedArchError{Dump: dumpPath, Arch: d.Arch(), Target: d.Target()}
	}
	if opts.SkipVmlinux {
		ok = true
		return k, nil
	}
	vmlinux := opts.Vmlinux
	if opts.Types != nil && !opts.NoVmlinux {
		vmlinux = opts.Types.Path()
	}
	if vmlinux == "" && !opts.NoVmlinux {
		vmlinux = FindVmlinux(k.release, opts.DebugDirs)
	}
	if opts.NoVmlinux || vmlinux == "" {
		if err := k.openFromDump(); err != nil {
			return nil, fmt.Errorf("%w for release %q of %s, and the dump's own types and symbols cannot be read (%v): pass --vmlinux (Debian: the linux-image-<release>-dbg package)",
				ErrNoVmlinux, k.release, dumpPath, err)
		}
		if err := k.locate(); err != nil {
			return nil, err
		}
		ok = true
		return k, nil
	}
	kopts := KdwarfOptions(opts)
	if opts.Types != nil {
		k.types = opts.Types
	} else if k.types, err = kdwarf.Open(vmlinux, kopts...); err != nil {
		return nil, err
	} else {
		k.ownTypes = true
	}
	if err := k.checkBuildID(opts.Force); err != nil {
		return nil, err
	}
	if err := k.locate(); err != nil {
		return nil, err
	}
	if err := k.checkBanner(opts.Force); err != nil {
		return nil, err
	}
	ok = true
	return k, nil
}

// FindVmlinux looks for a release's vmlinux where distributions install it,
// under each of extra and then /. A file named for the release is taken
// from any root before a bare "vmlinux" in one of the extra roots: with the
// roots of several kernels given, the first root's bare vmlinux is another
// kernel's.
func FindVmlinux(release string, extra []string) string {
	if !SafePathElement(release) {
		return "" // empty, or crafted to reach outside the debuginfo trees
	}
	roots := append(append([]string(nil), extra...), "/")
	named := []string{
		"usr/lib/debug/boot/vmlinux-" + release,
		"usr/lib/debug/lib/modules/" + release + "/vmlinux",
		"boot/vmlinux-" + release,
		"lib/modules/" + release + "/build/vmlinux",
		"vmlinux-" + release,
	}
	isFile := func(f string) bool {
		st, err := os.Stat(f)
		return err == nil && st.Mode().IsRegular()
	}
	for _, r := range roots {
		for _, p := range named {
			if f := filepath.Join(r, p); isFile(f) {
				return f
			}
		}
	}
	for _, r := range extra {
		if f := filepath.Join(r, "vmlinux"); isFile(f) {
			return f
		}
	}
	return ""
}

func (k *Kernel) checkBuildID(force bool) error {
	if k.info == nil || k.info.BuildID == "" {
		return nil
	}
	have := hex.EncodeToString(k.types.BuildID())
	if have == "" {
		k.Warnf("%s has no build-id; matched by linux_banner only", k.types.Path())
		return nil
	}
	// VMCOREINFO's BUILD-ID is the full note; some kernels print it zero-padded.
	if strings.TrimRight(k.info.BuildID, "0") == strings.TrimRight(have, "0") {
		return nil
	}
	e := &MismatchError{Dump: k.path, Vmlinux: k.types.Path(), What: "build-id", DumpValue: k.info.BuildID, VmlinuxValue: have}
	if force {
		k.Warnf("%v (--force)", e)
		return nil
	}
	return e
}

// Symbol returns the run-time address of a kernel symbol: its link address
// shifted by KASLR. Per-CPU symbols keep their offset (see PerCPU).
func (k *Kernel) Symbol(name string) (uint64, error) {
	s, err := k.types.Symbol(name)
	if err != nil {
		return 0, err
	}
	if s.Section == "" || k.isPerCPUOffset(s) {
		return s.Value, nil
	}
	return s.Value + k.lay.KASLROffset, nil
}

// isPerCPUOffset tells whether a symbol's value is an offset into each CPU's
// per-CPU area rather than an address. x86_64 SMP kernels link .data..percpu
// at 0 (values are offsets); 7.2's vmlinux links it at its load address, so
// its values move with KASLR like any other. Markers named in the section but
// outside it (__per_cpu_load, __init_begin) are image addresses.
func (k *Kernel) isPerCPUOffset(s kdwarf.Symbol) bool {
	if s.Section != kdwarf.PerCPUSection {
		return false
	}
	sec, ok := k.types.Section(kdwarf.PerCPUSection)
	return ok && sec.Addr == 0 && s.Value <= sec.Size
}

// vmlinuxBytes reads size bytes at a link-time address from the vmlinux file
// itself (for comparing constant data such as linux_banner).
// In dump-only mode there is no file: the error wraps ErrNeedsVmlinux.
func (k *Kernel) vmlinuxBytes(addr, size uint64) ([]byte, error) {
	return k.types.ReadImage(addr, size)
}

// SafePathElement tells whether s, read from a dump (a kernel release, a
// module name), may become one element of a file path: not empty, not "."
// or "..", no '/', NUL or other control byte, no byte outside ASCII, at most
// 255 bytes. A crafted release such as "../../etc" must never make a
// debuginfo lookup read outside the trees it searches.
func SafePathElement(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c >= 0x7f || c == '/' || c == '\\' {
			return false
		}
	}
	return true
}

// ImageBytes reads size bytes at a run-time address of the kernel image from
// the vmlinux file (KASLR undone): what the dump held there at boot, for
// read-only data such as sys_call_table that nothing may change. With no
// vmlinux (dump-only mode, or no types) the error wraps ErrNeedsVmlinux.
func (k *Kernel) ImageBytes(va, size uint64) ([]byte, error) {
	if k.types == nil {
		return nil, fmt.Errorf("kernel: reading %#x from the vmlinux: %w", va, ErrNeedsVmlinux)
	}
	return k.vmlinuxBytes(va-k.lay.KASLROffset, size)
}

// checkBanner compares linux_banner in the dump with the vmlinux's: it proves
// both the translation and the match (and is the only check without VMCOREINFO).
func (k *Kernel) checkBanner(force bool) error {
	s, err := k.types.Symbol("linux_banner")
	if err != nil {
		return err
	}
	size := s.Size
	if size == 0 || size > 512 {
		size = 256
	}
	want, err := k.vmlinuxBytes(s.Value, size)
	if err != nil {
		return err
	}
	have := make([]byte, size)
	if err := k.ReadVirt(have, s.Value+k.lay.KASLROffset); err != nil {
		return fmt.Errorf("kernel: reading linux_banner: %w", err)
	}
	want, have = cstr(want), cstr(have)
	if bytes.Equal(want, have) {
		if k.release == "" {
			// "Linux version <release> (...": the release for dumps without VMCOREINFO.
			if f := strings.Fields(string(have)); len(f) > 2 {
				k.release = f[2]
			}
		}
		return nil
	}
	e := &MismatchError{Dump: k.path, Vmlinux: k.types.Path(), What: "linux_banner",
		DumpValue: fmt.Sprintf("%q", strings.TrimSpace(string(have))), VmlinuxValue: fmt.Sprintf("%q", strings.TrimSpace(string(want)))}
	if force {
		k.Warnf("%v (--force)", e)
		return nil
	}
	return e
}

func cstr(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}

// ReadVirt reads len(p) bytes at a kernel virtual address.
func (k *Kernel) ReadVirt(p []byte, va uint64) error {
	n, err := k.tr.ReadVirt(p, va)
	if err != nil {
		return &ReadError{VA: va + uint64(n), Err: err}
	}
	return nil
}

// ReadError is a failed read of kernel memory.
type ReadError struct {
	VA   uint64
	Path string // the typed-value path being read, if any
	Err  error
}

func (e *ReadError) Error() string {
	if e.Path != "" {
		return fmt.Sprintf("kernel: reading %s at %#x: %v", e.Path, e.VA, e.Err)
	}
	return fmt.Sprintf("kernel: reading %#x: %v", e.VA, e.Err)
}

func (e *ReadError) Unwrap() error { return e.Err }

// IsMissing reports whether err comes from memory absent from the dump
// (filtered, truncated or a hole), as opposed to corrupt data.
func IsMissing(err error) bool {
	var mp *elfcore.MissingPageError
	return errors.As(err, &mp)
}

// ZeroFilled counts reads of memory missing from the dump that returned
// zeros because Options.ZeroFill asked for it: results that stand on them
// are partial.
func (k *Kernel) ZeroFilled() uint64 { return k.dump.ZeroFilled() }

// Translate is the physical address of a kernel virtual address.
func (k *Kernel) Translate(va uint64) (uint64, error) {
	pa, _, err := k.tr.Translate(va)
	if err != nil {
		return 0, &ReadError{VA: va, Err: err}
	}
	return pa, nil
}
