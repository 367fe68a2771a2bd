package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmleak/vmleak/kernel"
)

// dumpInfo is what `vmleak info` reports; its JSON form is stable.
type dumpInfo struct {
	File          string      `json:"file"`
	Format        string      `json:"format"`
	Compression   []string    `json:"compression"`
	Incomplete    bool        `json:"incomplete"`
	DumpLevel     *int32      `json:"dump_level,omitempty"`
	Arch          string      `json:"arch"`
	Release       string      `json:"release,omitempty"`
	PageSize      uint64      `json:"page_size"`
	CPUs          int         `json:"cpus"`
	PhysRanges    []physRange `json:"phys_ranges"`
	PagesPresent  uint64      `json:"pages_present"`
	PagesExcluded uint64      `json:"pages_excluded"`
	PagesZero     uint64      `json:"pages_zero"`
	VMCOREINFO    bool        `json:"vmcoreinfo"`
	CrashTime     *time.Time  `json:"crash_time,omitempty"`
	Panic         string      `json:"panic,omitempty"`
	// Known only with the vmlinux (or, for the first two, from VMCOREINFO).
	KASLROffset *hexU64  `json:"kaslr_offset,omitempty"`
	PhysBase    *hexU64  `json:"phys_base,omitempty"`
	PageOffset  *hexU64  `json:"direct_map_base,omitempty"`
	VmallocBase *hexU64  `json:"vmalloc_base,omitempty"`
	VmemmapBase *hexU64  `json:"vmemmap_base,omitempty"`
	PagingLevel int      `json:"paging_levels,omitempty"`
	LocatedBy   string   `json:"located_by,omitempty"`
	Vmlinux     string   `json:"vmlinux,omitempty"`
	Warnings    []string `json:"warnings,omitempty"`
}

type physRange struct {
	Start hexU64 `json:"start"`
	End   hexU64 `json:"end"`
}

// hexU64 prints as a 0x string in JSON: kernel addresses overflow JSON numbers.
type hexU64 uint64

func (h hexU64) MarshalJSON() ([]byte, error) { return json.Marshal(fmt.Sprintf("%#x", uint64(h))) }

func (h *hexU64) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
	*h = hexU64(v)
	return err
}

func ptrHex(v uint64) *hexU64 { h := hexU64(v); return &h }

func newInfoCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "info DUMP",
		Short: "Describe a dump: format, kernel, memory, KASLR",
		Example: `  vmleak info vmcore
  vmleak info vmcore --vmlinux vmlinux-6.1.0-56-cloud-amd64 --json`,
		Args: exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			k, err := g.openKernel(args[0], false)
			withTypes := true
			if err != nil && g.vmlinux == "" {
				// Without debuginfo, still describe the dump itself.
				k, err = g.openKernel(args[0], true)
				withTypes = false
			}
			if err != nil {
				return err
			}
			defer k.Close()
			info := collectInfo(k, args[0], withTypes)
			if !withTypes {
				info.Warnings = append(info.Warnings, "no vmlinux found: KASLR and memory layout come from VMCOREINFO only (use --vmlinux)")
			}
			if g.json {
				return writeJSON(c.OutOrStdout(), info)
			}
			writeInfo(c.OutOrStdout(), info)
			printWarnings(c.ErrOrStderr(), info.Warnings)
			return nil
		},
	}
}

func collectInfo(k *kernel.Kernel, file string, withTypes bool) *dumpInfo {
	d := k.Dump
	present, excluded, zero := d.PageCounts()
	in := &dumpInfo{
		File: file, Format: d.Format().String(), Compression: d.Compression(), Incomplete: d.Incomplete(),
		Arch: d.Arch(), Release: k.Release, PageSize: d.PageSize(),
		PagesPresent: present, PagesExcluded: excluded, PagesZero: zero, VMCOREINFO: k.Info != nil,
	}
	for _, r := range d.PhysRanges() {
		in.PhysRanges = append(in.PhysRanges, physRange{hexU64(r.Start), hexU64(r.End)})
	}
	switch h := d.Kdump(); {
	case h != nil && h.NrCPUs > 0:
		in.CPUs = int(h.NrCPUs)
		lvl := h.DumpLevel
		in.DumpLevel = &lvl
	case len(d.PRStatus()) > 0:
		in.CPUs = len(d.PRStatus())
	default:
		in.CPUs = len(d.QEMUCPUStates())
	}
	if k.Info != nil {
		if k.Info.CrashTime > 0 {
			t := time.Unix(k.Info.CrashTime, 0).UTC()
			in.CrashTime = &t
		}
		if k.Info.HasKernelOffset {
			in.KASLROffset = ptrHex(k.Info.KernelOffset)
		}
		if pb, ok := k.Info.Number("phys_base"); ok {
			in.PhysBase = ptrHex(uint64(pb))
		}
	}
	if withTypes {
		in.KASLROffset, in.PhysBase = ptrHex(k.KASLROffset), ptrHex(k.PhysBase)
		in.PageOffset, in.VmallocBase, in.VmemmapBase = ptrHex(k.PageOffset), ptrHex(k.VmallocBase), ptrHex(k.VmemmapBase)
		in.PagingLevel, in.LocatedBy, in.Vmlinux = k.Levels, k.LocatedBy, k.Types.Path()
		if log, err := k.Log(); err == nil {
			in.Panic = kernel.PanicMessage(log)
		} else {
			in.Warnings = append(in.Warnings, err.Error())
		}
	}
	in.Warnings = append(in.Warnings, k.Warnings()...)
	return in
}

func writeInfo(w io.Writer, in *dumpInfo) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s:\t%s\n", k, fmt.Sprintf(format, a...)) }
	row("file", "%s", in.File)
	status := "complete"
	if in.Incomplete {
		status = "INCOMPLETE (the dump tool did not finish writing it)"
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
	hexRow := func(k string, v *hexU64) {
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
	if in.Vmlinux != "" {
		row("vmlinux", "%s", in.Vmlinux)
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
