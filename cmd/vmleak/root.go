package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/vmleak/vmleak/elfcore"
	"github.com/vmleak/vmleak/internal/regular"
	"github.com/vmleak/vmleak/kdwarf"
	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/vmcoreinfo"
	"github.com/vmleak/vmleak/walk"
	"github.com/vmleak/vmleak/xlat"
)

// globalOptions are the flags every command shares.
type globalOptions struct {
	vmlinux   string
	noVmlinux bool
	debugDirs []string
	force     bool
	zeroFill  bool
	json      bool
	rawBase   string // headerless memory images (rawLayout)
	rawRanges string
	types     string
	maxMemory string
	// cacheLimit bounds the decompressed-page cache: a quarter of --max-memory.
	cacheLimit uint64
	// typeCache is the start-up cache directory (--type-cache); noTypeCache
	// disables it.
	typeCache   string
	noTypeCache bool
	// stopLimit ends the memory watch started before the command ran.
	stopLimit func()
	// sharedTypes, when set, is the open vmlinux every kernel opened uses
	// (diff of two dumps of one kernel).
	sharedTypes *kdwarf.File
	// splits notes the parts of split dumps opened alone (shared by copies).
	splits *splitNotes
	// quietSplit: a part opened alone is reported by the command (info),
	// not as a warning on opening.
	quietSplit bool
}

// newRootCmd builds the command tree; done ends what a command started
// around its run (the memory watch) and is called after Execute.
func newRootCmd() (root *cobra.Command, done func()) {
	g := &globalOptions{splits: &splitNotes{}}
	done = func() {
		if g.stopLimit != nil {
			g.stopLimit()
		}
	}
	root = &cobra.Command{
		Use:   "vmleak",
		Short: "Find where a crashed kernel's memory went",
		Long: `vmleak analyzes Linux kernel crash dumps (vmcores) offline: kdump ELF
(/proc/vmcore), makedumpfile's compressed and flattened formats, and QEMU
dump-guest-memory output, with the matching vmlinux debuginfo.

` + splitDumpHelp + `
` + exitCodesHelp,
		Example: `  vmleak info /var/crash/vmcore
  vmleak info vmcore --vmlinux /usr/lib/debug/boot/vmlinux-6.1.0-56-cloud-amd64 --json`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{msg: err.Error() + seeHelp(c)}
	})
	pf := root.PersistentFlags()
	pf.StringVar(&g.vmlinux, "vmlinux", "", "vmlinux with debuginfo (default: found from the dump's kernel release; with none found, types and symbols come from the dump's own BTF and kallsyms)")
	pf.BoolVar(&g.noVmlinux, "no-vmlinux", false, "use no vmlinux even if one is found: read types and symbols from the dump (its BTF and kallsyms; Linux 6.0 and later)")
	pf.StringArrayVar(&g.debugDirs, "debuginfo-dir", nil, "extra root to search for vmlinux and module debuginfo (repeatable)")
	pf.BoolVar(&g.force, "force", false, "use the vmlinux even if it does not match the dump (with a warning)")
	pf.BoolVar(&g.zeroFill, "zero-fill", false, "read memory missing from the dump as zeros (reported in the output)")
	pf.BoolVar(&g.json, "json", false, "print JSON instead of text")
	pf.StringVar(&g.types, "types", "auto", "type information source: auto, btf or dwarf")
	pf.StringVar(&g.typeCache, "type-cache", os.Getenv("VMLEAK_TYPE_CACHE"), "directory of the start-up cache: each vmlinux's symbols and the type layouts looked up, by build-id, so the next run reads them back instead of parsing the vmlinux (default $VMLEAK_TYPE_CACHE, else $XDG_CACHE_HOME/vmleak/types or ~/.cache/vmleak/types)")
	pf.BoolVar(&g.noTypeCache, "no-type-cache", false, "neither read nor write the start-up cache")
	pf.StringVar(&g.maxMemory, "max-memory", "4G", "stop with exit code 8 when vmleak's memory use exceeds this (K, M, G suffixes; 0: no limit); the default is far above any command's need on the lab's dumps (a few hundred MB for 1 GiB) and far below what a crafted dump could make a careless reader take")
	root.PersistentPreRunE = func(c *cobra.Command, args []string) error {
		limit, err := parseBytes(g.maxMemory)
		if err != nil {
			return &usageError{msg: "--max-memory: " + err.Error()}
		}
		g.stopLimit = memoryLimit(limit, args, c.ErrOrStderr())
		// The decompressed-page cache takes at most a quarter of the limit.
		if limit > 0 {
			g.cacheLimit = uint64(limit) / 4
		}
		g.splits.stderr = c.ErrOrStderr()
		return nil
	}
	// A part of a split dump read alone: whatever the command found, the
	// other parts' memory was missing.
	root.PersistentPostRunE = func(c *cobra.Command, args []string) error {
		if g.splits.partial() {
			return errPartial
		}
		return nil
	}
	pf.StringVar(&g.rawBase, "raw-base", "", "read the dump as a raw physical memory image starting at this physical address (LiME padded: 0)")
	pf.StringVar(&g.rawRanges, "raw-ranges", "", "read the dump as a LiME raw image of these physical ranges: START-END,... (hex, END inclusive, as /proc/iomem prints them) or a saved /proc/iomem, whose top-level \"System RAM\" ranges are used")
	root.AddCommand(newInfoCmd(g), newAllocinfoCmd(g), newOwnersCmd(g), newLeaksCmd(g), newSlabsCmd(g), newSlabinfoCmd(g), newWhatisCmd(g), newObjectsCmd(g), newMeminfoCmd(g), newDmesgCmd(g), newModulesCmd(g), newSummaryCmd(g), newDiffCmd(g), newCheckCmd(g), newReportCmd(g))
	return root, done
}

// exactArgs is cobra.ExactArgs with a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return &usageError{msg: fmt.Sprintf("%s takes %d argument(s), got %d%s", c.Name(), n, len(args), seeHelp(c))}
		}
		return nil
	}
}

func seeHelp(c *cobra.Command) string {
	return fmt.Sprintf(" (see '%s --help')", c.CommandPath())
}

// openKernel opens a dump with the global options, classifying errors for exit codes.
func (g *globalOptions) openKernel(dump string, skipVmlinux bool) (*kernel.Kernel, error) {
	switch g.types {
	case "auto", "btf", "dwarf":
	default:
		return nil, &usageError{msg: fmt.Sprintf("--types must be auto, btf or dwarf, not %q", g.types)}
	}
	if g.noVmlinux && g.vmlinux != "" {
		return nil, &usageError{msg: "--no-vmlinux and --vmlinux exclude each other"}
	}
	if g.noVmlinux && g.types == "dwarf" {
		return nil, &usageError{msg: "--no-vmlinux reads BTF from the dump: --types dwarf needs the vmlinux"}
	}
	raw, err := g.rawLayout()
	if err != nil {
		return nil, err
	}
	k, err := g.openDump(dump, kernel.Options{
		Raw:         raw,
		Vmlinux:     g.vmlinux,
		DebugDirs:   g.debugDirs,
		Force:       g.force,
		ZeroFill:    g.zeroFill,
		TypeSource:  kdwarf.TypeSource(g.types),
		SkipVmlinux: skipVmlinux,
		NoVmlinux:   g.noVmlinux,
		Types:       g.sharedTypes,
		TypeCache:   g.typeCacheDir(),
		CacheLimit:  min(g.cacheLimit, kernel.DefaultCacheLimit),
	}, g.quietSplit)
	if err != nil {
		return nil, classify(err)
	}
	return k, nil
}

// typeCacheDir is the start-up cache directory for kernel.Options:
// kernel.NoTypeCache when disabled, "" for the default.
func (g *globalOptions) typeCacheDir() string {
	if g.noTypeCache {
		return kernel.NoTypeCache
	}
	return g.typeCache
}

// kdwarfOptions are the options of a vmlinux opened by the command itself.
func (g *globalOptions) kdwarfOptions() []kdwarf.Option {
	return kernel.KdwarfOptions(kernel.Options{TypeSource: kdwarf.TypeSource(g.types), TypeCache: g.typeCacheDir()})
}

// rawLayout is the layout --raw-base or --raw-ranges give a headerless image;
// nil when neither is set. LiME's raw format has no headers, so its ranges
// must come from the machine it was taken on: its /proc/iomem (as root).
func (g *globalOptions) rawLayout() (*elfcore.RawLayout, error) {
	switch {
	case g.rawBase != "" && g.rawRanges != "":
		return nil, &usageError{msg: "--raw-base and --raw-ranges exclude each other: an image holds either one range from a base or the listed ranges"}
	case g.rawBase != "":
		b, err := strconv.ParseUint(g.rawBase, 0, 64)
		if err != nil {
			return nil, &usageError{msg: fmt.Sprintf("--raw-base %q: want a physical address (0x-prefixed hex or decimal)", g.rawBase)}
		}
		return &elfcore.RawLayout{Base: b}, nil
	case g.rawRanges != "":
		var rs []elfcore.Range
		var err error
		if f, _, oerr := regular.Open(g.rawRanges); oerr == nil {
			rs, err = elfcore.ParseIomem(f)
			f.Close()
		} else {
			rs, err = elfcore.ParseRanges(g.rawRanges)
		}
		if err != nil {
			return nil, &usageError{msg: fmt.Sprintf("--raw-ranges %q: %v", g.rawRanges, err)}
		}
		return &elfcore.RawLayout{Ranges: rs}, nil
	}
	return nil, nil
}

// classify wraps an error from the library in the type that picks its exit code.
func classify(err error) error {
	var (
		me  *kernel.MismatchError
		fe  *elfcore.FormatError
		mp  *elfcore.MissingPageError
		pe  *elfcore.PageError
		te  *xlat.TranslateError
		re  *kernel.ReadError
		vpe *vmcoreinfo.ParseError
		pth *os.PathError
		ufe *elfcore.UnsupportedFormatError
		uae *kernel.UnsupportedArchError
		se  *elfcore.SplitError
		ue  *usageError
		nre *regular.NotRegularError
	)
	switch {
	case errors.As(err, &ue):
		return err
	case errors.As(err, &me):
		return &mismatchError{err}
	case errors.Is(err, elfcore.ErrUnrecognizedFormat), errors.Is(err, kernel.ErrNoVmlinux), errors.Is(err, kernel.ErrUnsupported),
		errors.Is(err, kernel.ErrInconsistentDump), errors.As(err, &fe), errors.As(err, &mp), errors.As(err, &pe), errors.As(err, &te), errors.As(err, &re),
		errors.As(err, &vpe), errors.As(err, &pth), errors.Is(err, kdwarf.ErrNotFound), errors.Is(err, kdwarf.ErrNoTypes),
		errors.As(err, &ufe), errors.As(err, &uae), errors.As(err, &se), errors.As(err, &nre),
		errors.Is(err, io.ErrUnexpectedEOF):
		return &inputError{err}
	}
	return err
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// openWalker opens a dump and reads its slab caches.
func (g *globalOptions) openWalker(dump string) (*kernel.Kernel, *walk.Walker, error) {
	k, err := g.openKernel(dump, false)
	if err != nil {
		return nil, nil, err
	}
	w, err := walk.New(k)
	if err != nil {
		k.Close()
		return nil, nil, classify(err)
	}
	return k, w, nil
}

// printWarnings writes the library's warnings to stderr.
func printWarnings(w io.Writer, ws []string) {
	for _, s := range ws {
		fmt.Fprintf(w, "vmleak: warning: %s\n", s)
	}
}
