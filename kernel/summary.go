package kernel

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Summary is what `vmleak info` reports; its JSON form is stable.
type Summary struct {
	File          string      `json:"file"`
	Format        string      `json:"format"`
	Compression   []string    `json:"compression"`
	Incomplete    bool        `json:"incomplete"`
	Live          bool        `json:"live,omitempty"` // /proc/kcore: the running kernel, changing under the reader
	DumpLevel     *int32      `json:"dump_level,omitempty"`
	Arch          string      `json:"arch"`
	Release       string      `json:"release,omitempty"`
	PageSize      uint64      `json:"page_size"`
	CPUs          int         `json:"cpus"`
	PhysRanges    []PhysRange `json:"phys_ranges"`
	PagesPresent  uint64      `json:"pages_present"`
	PagesExcluded uint64      `json:"pages_excluded"`
	PagesZero     uint64      `json:"pages_zero"`
	VMCOREINFO    bool        `json:"vmcoreinfo"`
	CrashTime     *time.Time  `json:"crash_time,omitempty"`
	Panic         string      `json:"panic,omitempty"`
	// Known only with the vmlinux (or, for the first two, from VMCOREINFO).
	KASLROffset *Hex   `json:"kaslr_offset,omitempty"`
	PhysBase    *Hex   `json:"phys_base,omitempty"`
	PageOffset  *Hex   `json:"direct_map_base,omitempty"`
	VmallocBase *Hex   `json:"vmalloc_base,omitempty"`
	VmemmapBase *Hex   `json:"vmemmap_base,omitempty"`
	PagingLevel int    `json:"paging_levels,omitempty"`
	LocatedBy   string `json:"located_by,omitempty"`
	Located     string `json:"located,omitempty"`
	Vmlinux     string `json:"vmlinux,omitempty"`
	// Where types and symbols came from: "BTF from /path/vmlinux", or in
	// dump-only mode "BTF from the dump (4.1 MB at 0x...)" and "kallsyms
	// from the dump (N)".
	TypesFrom   string   `json:"types_from,omitempty"`
	SymbolsFrom string   `json:"symbols_from,omitempty"`
	Warnings    []string `json:"warnings,omitempty"`
}

// PhysRange is a range of physical memory.
type PhysRange struct {
	Start Hex `json:"start"`
	End   Hex `json:"end"`
}

// Hex prints as a 0x string in JSON: kernel addresses overflow JSON numbers.
type Hex uint64

// MarshalJSON writes "0x..." .
func (h Hex) MarshalJSON() ([]byte, error) { return json.Marshal(fmt.Sprintf("%#x", uint64(h))) }

// UnmarshalJSON reads "0x...".
func (h *Hex) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
	*h = Hex(v)
	return err
}

func hexPtr(v uint64) *Hex { h := Hex(v); return &h }

// Summary describes the dump and where the kernel sits in it. Without
// types (Options.SkipVmlinux) only what the dump itself says is filled in;
// a vmlinux that could not be used is the caller's to report.
func (k *Kernel) Summary() *Summary {
	d := k.dump
	present, excluded, zero := d.PageCounts()
	in := &Summary{
		File: k.path, Format: d.Format().String(), Compression: d.Compression(), Incomplete: d.Incomplete(), Live: d.Live(),
		Arch: d.Arch(), Release: k.release, PageSize: d.PageSize(),
		PagesPresent: present, PagesExcluded: excluded, PagesZero: zero, VMCOREINFO: k.info != nil,
	}
	if in.Arch == "" && d.IsMemoryImage() && k.tr != nil {
		in.Arch = "x86_64" // a memory image names none: the memory scan's page-table walk proved it
	}
	for _, r := range d.PhysRanges() {
		in.PhysRanges = append(in.PhysRanges, PhysRange{Hex(r.Start), Hex(r.End)})
	}
	switch h := d.Kdump(); {
	case d.Live() && k.types != nil:
		// /proc/kcore has one NT_PRSTATUS (its reader's, zeroed): the
		// kernel's own count of possible CPUs.
		if offs, err := k.PerCPUOffsets(); err == nil {
			in.CPUs = len(offs)
		}
	case h != nil && h.NrCPUs > 0:
		in.CPUs = int(h.NrCPUs)
		lvl := h.DumpLevel
		in.DumpLevel = &lvl
	case len(d.PRStatus()) > 0:
		in.CPUs = len(d.PRStatus())
	default:
		in.CPUs = len(d.QEMUCPUStates())
	}
	if k.info != nil {
		if k.info.CrashTime > 0 {
			t := time.Unix(k.info.CrashTime, 0).UTC()
			in.CrashTime = &t
		}
		if k.info.HasKernelOffset {
			in.KASLROffset = hexPtr(k.info.KernelOffset)
		}
		if pb, ok := k.info.Number("phys_base"); ok {
			in.PhysBase = hexPtr(uint64(pb))
		}
	}
	if k.types != nil {
		l := k.lay
		in.KASLROffset, in.PhysBase = hexPtr(l.KASLROffset), hexPtr(l.PhysBase)
		in.PageOffset, in.VmallocBase, in.VmemmapBase = hexPtr(l.PageOffset), hexPtr(l.VmallocBase), hexPtr(l.VmemmapBase)
		in.PagingLevel, in.LocatedBy, in.Located = l.Levels, l.LocatedBy, l.Located
		o := k.Origin()
		in.Vmlinux = o.Vmlinux
		in.TypesFrom, in.SymbolsFrom = o.TypesFrom(k.types.Source()), o.SymbolsFrom()
		if log, err := k.Log(); err == nil {
			in.Panic = PanicMessage(log)
		} else {
			in.Warnings = append(in.Warnings, err.Error())
		}
	}
	in.Warnings = append(in.Warnings, k.Warnings()...)
	return in
}
