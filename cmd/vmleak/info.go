package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmleak/vmleak/elfcore"
	"github.com/vmleak/vmleak/kernel"
)

func newInfoCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "info DUMP [PART...]",
		Short: "Describe a dump: format, kernel, memory, KASLR",
		Example: `  vmleak info vmcore
  vmleak info vmcore --vmlinux vmlinux-6.1.0-56-cloud-amd64 --json`,
		Args: dumpArgs,
		RunE: func(c *cobra.Command, args []string) error {
			// A part of a split dump read alone is described in the output
			// (and its warnings), not warned about on opening.
			g.quietSplit = true
			k, err := g.openKernel(dumpArg(args), false)
			withTypes := true
			var locateErr error
			switch {
			case errors.Is(err, kernel.ErrNoVmlinux):
				// No debuginfo anywhere: still describe the dump itself. A
				// vmlinux that was found but does not match is an error.
				k, err = g.openKernel(dumpArg(args), true)
				withTypes = false
			case isOtherPart(err):
				// One part of a split dump whose kernel data another part
				// holds: describe the part.
				locateErr = err
				k, err = g.openKernel(dumpArg(args), true)
				withTypes = false
			}
			if err != nil {
				return err
			}
			defer k.Close()
			info := k.Summary()
			si := k.Dump().Split()
			if si != nil && !si.Complete() {
				info.Warnings = append(info.Warnings, lonePartMsg(k.Path(), si))
			}
			if locateErr != nil {
				info.Warnings = append(info.Warnings, "the kernel cannot be located in this part alone: "+locateErr.Error())
			}
			if present, _, _ := k.Dump().PageCounts(); present == 0 {
				info.Warnings = append(info.Warnings, "the dump holds no memory (0 pages): a valid dump of nothing")
			}
			if !withTypes && locateErr == nil {
				info.Warnings = append(info.Warnings, "no vmlinux found, and the dump's own types cannot be read: KASLR and memory layout come from VMCOREINFO only (use --vmlinux)")
			}
			if g.json {
				return writeJSON(c.OutOrStdout(), infoJSON{info, newSplitJSON(si)})
			}
			writeInfo(c.OutOrStdout(), info, si)
			printWarnings(c.ErrOrStderr(), info.Warnings)
			return nil
		},
	}
}

// infoJSON is vmleak info --json: the summary, and the split dump it was
// read from, if any.
type infoJSON struct {
	*kernel.Summary
	Split *splitJSON `json:"split,omitempty"`
}

func writeInfo(w io.Writer, in *kernel.Summary, si *elfcore.SplitInfo) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s:\t%s\n", k, fmt.Sprintf(format, a...)) }
	row("file", "%s", in.File)
	status := "complete"
	switch {
	case in.Live:
		status = "LIVE: the running kernel's memory, changing while it is read"
	case in.Incomplete:
		status = "INCOMPLETE (the dump tool did not finish writing it)"
	case si != nil && !si.Complete():
		status = "PARTIAL: " + si.String()
	case si != nil:
		status = "complete, " + si.String()
	}
	format := in.Format
	if in.DumpLevel != nil {
		format += fmt.Sprintf(", dump level %d", *in.DumpLevel)
	}
	row("format", "%s (%s)", format, status)
	row("compression", "%s", strings.Join(in.Compression, ", "))
	row("arch", "%s", in.Arch)
	row("release", "%s", orUnknown(in.Release))
	row("page size", "%d", in.PageSize)
	row("cpus", "%d", in.CPUs)
	// A filtered dump has thousands of ranges: list a few, summarize the rest.
	const maxRanges = 8
	for i, r := range in.PhysRanges {
		if i == maxRanges {
			last := in.PhysRanges[len(in.PhysRanges)-1]
			row("phys range", "... %d more up to %#014x (--json lists all)", len(in.PhysRanges)-maxRanges, uint64(last.End))
			break
		}
		row("phys range", "%#014x-%#014x (%s)", uint64(r.Start), uint64(r.End), mib(uint64(r.End-r.Start)))
	}
	row("pages", "%d present (%s), %d excluded, %d zero", in.PagesPresent, mib(in.PagesPresent*in.PageSize), in.PagesExcluded, in.PagesZero)
	row("vmcoreinfo", "%v", yesNo(in.VMCOREINFO))
	if in.CrashTime != nil {
		row("crash time", "%s", in.CrashTime.Format(time.RFC3339))
	}
	if in.Panic != "" {
		row("panic", "%s", in.Panic)
	}
	hexRow := func(k string, v *kernel.Hex) {
		if v != nil {
			row(k, "%#x", uint64(*v))
		}
	}
	hexRow("kaslr offset", in.KASLROffset)
	hexRow("phys_base", in.PhysBase)
	hexRow("direct map", in.PageOffset)
	hexRow("vmalloc base", in.VmallocBase)
	hexRow("vmemmap base", in.VmemmapBase)
	if in.PagingLevel != 0 {
		row("paging", "%d-level (kernel located by %s)", in.PagingLevel, in.LocatedBy)
	}
	if in.Located != "" {
		row("located", "%s: %s", in.LocatedBy, in.Located)
	}
	if in.Vmlinux != "" {
		row("vmlinux", "%s", in.Vmlinux)
	}
	if in.TypesFrom != "" {
		row("types", "%s", in.TypesFrom)
	}
	if in.SymbolsFrom != "" {
		row("symbols", "%s", in.SymbolsFrom)
	}
	tw.Flush()
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
