package kernel

import (
	"cmp"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/vmleak/vmleak/kdwarf"
	"github.com/vmleak/vmleak/vmcoreinfo"
)

// Dump-only mode: with no vmlinux, the kernel's types and symbols come
// from its own memory. kallsyms is found through VMCOREINFO's
// SYMBOL(kallsyms_*) entries (exported since v6.0); the .BTF section is
// allocated, so it lies in the dump between __start_BTF and __stop_BTF,
// whose addresses kallsyms gives.

// ErrNeedsVmlinux is wrapped by the errors of what cannot be done with
// types and symbols read from the dump: what reads the vmlinux file itself
// (its text and read-only data as built, DWARF, source lines).
var ErrNeedsVmlinux = kdwarf.ErrNoELF

// defaultPhysicalStart is x86_64's CONFIG_PHYSICAL_START: _text is
// __START_KERNEL_map + this + the KASLR offset.
const defaultPhysicalStart = 0x1000000

// maxBTF bounds the .BTF section read from a dump (a distribution kernel's
// is 4-6 MB).
const maxBTF = 64 << 20

// Origin says where a Kernel's types and symbols came from.
type Origin struct {
	// Vmlinux is the vmlinux's path; "" when types and symbols were read
	// from the dump.
	Vmlinux string
	// BTFAddr and BTFSize locate the .BTF section in the dump (run-time
	// address), in dump-only mode.
	BTFAddr, BTFSize uint64
	// Kallsyms is the number of kallsyms symbols read, in dump-only mode.
	Kallsyms int
	// LiveBTF and LiveKallsyms name the running kernel's files types and
	// symbols were read from (/sys/kernel/btf/vmlinux, /proc/kallsyms)
	// when the dump is /proc/kcore.
	LiveBTF, LiveKallsyms string
}

// FromDump tells whether the types and symbols were read from the dump.
func (o Origin) FromDump() bool { return o.Vmlinux == "" && (o.BTFSize > 0 || o.LiveBTF != "") }

// TypesFrom describes where types come from, for `vmleak info`.
func (o Origin) TypesFrom(source string) string {
	if o.LiveBTF != "" {
		return fmt.Sprintf("BTF of the running kernel (%s, %.1f MB)", o.LiveBTF, float64(o.BTFSize)/1e6)
	}
	if o.FromDump() {
		return fmt.Sprintf("BTF from the dump (%.1f MB at %#x)", float64(o.BTFSize)/1e6, o.BTFAddr)
	}
	if source == "" {
		source = "none"
	}
	return fmt.Sprintf("%s from %s", strings.ToUpper(source), o.Vmlinux)
}

// SymbolsFrom describes where symbols come from, for `vmleak info`.
func (o Origin) SymbolsFrom() string {
	if o.LiveKallsyms != "" {
		return fmt.Sprintf("%s (%d)", o.LiveKallsyms, o.Kallsyms)
	}
	if o.FromDump() {
		return fmt.Sprintf("kallsyms from the dump (%d)", o.Kallsyms)
	}
	return ".symtab of " + o.Vmlinux
}

// Origin says where types and symbols came from; zero without types.
func (k *Kernel) Origin() Origin {
	if k.types != nil && !k.types.FromMemory() {
		return Origin{Vmlinux: k.types.Path()}
	}
	return k.origin
}

// Live tells whether the kernel is the running one (/proc/kcore), whose
// memory changes while it is read.
func (k *Kernel) Live() bool { return k.dump.Live() }

// FromDump tells whether types and symbols were read from the dump
// (dump-only mode) rather than from a vmlinux.
func (k *Kernel) FromDump() bool { return k.types != nil && k.types.FromMemory() }

// openFromDump reads the kernel's types and symbols from the dump: kallsyms
// through the page tables VMCOREINFO points at, then the .BTF section
// between __start_BTF and __stop_BTF.
func (k *Kernel) openFromDump() error {
	info := k.info
	if info == nil {
		return errors.New("the dump has no VMCOREINFO to find kallsyms with")
	}
	if !info.HasKernelOffset {
		return errors.New("VMCOREINFO has no KERNELOFFSET")
	}
	root, ok := info.Symbol("init_top_pgt")
	if !ok {
		return errors.New("VMCOREINFO has no SYMBOL(init_top_pgt)")
	}
	pb, ok := info.Number("phys_base")
	if !ok {
		return errors.New("VMCOREINFO has no NUMBER(phys_base)")
	}
	// The page tables alone reach the kernel image: locate() sets up the
	// full translation once symbols are known.
	k.lay.Levels = 4
	if l5, ok := info.Number("pgtable_l5_enabled"); ok && l5 != 0 {
		k.lay.Levels = 5
	}
	if err := k.setupTranslation(root-startKernelMap+uint64(pb), false); err != nil {
		return err
	}
	if k.dump.Live() {
		done, err := k.openLiveSources(info)
		if done || err != nil {
			return err
		}
	}
	if _, ok := info.Symbol("kallsyms_names"); !ok {
		// Before 6.0 VMCOREINFO does not say where kallsyms is: search
		// the image, from _text (the default CONFIG_PHYSICAL_START).
		found, err := k.scanKallsyms(startKernelMap + defaultPhysicalStart + info.KernelOffset)
		if err != nil {
			return fmt.Errorf("VMCOREINFO has no SYMBOL(kallsyms_names) (exported since Linux 6.0; this kernel is %s), and %w", orUnknownRelease(k.release), err)
		}
		k.kallsymsFound = found
	}
	ks, err := k.Kallsyms()
	if err != nil {
		return err
	}
	start, stop, err := btfBounds(ks)
	if err != nil {
		return err
	}
	raw, err := k.readBTF(start, stop)
	if err != nil {
		return err
	}
	if err := k.useBTF(raw, ks, info); err != nil {
		return err
	}
	k.origin = Origin{BTFAddr: start, BTFSize: stop - start, Kallsyms: len(ks)}
	return nil
}

// useBTF serves types from raw BTF and symbols from kallsyms.
func (k *Kernel) useBTF(raw []byte, ks []KSym, info *vmcoreinfo.Info) error {
	syms, secs := symbolsFromKallsyms(ks, info.KernelOffset)
	var buildID []byte
	if info.BuildID != "" {
		buildID, _ = hex.DecodeString(info.BuildID)
	}
	f, err := kdwarf.FromBTF(kdwarf.Image{
		Name:     k.path + " (BTF and kallsyms from the dump)",
		BTF:      raw,
		Symbols:  syms,
		Sections: secs,
		BuildID:  buildID,
	})
	if err != nil {
		return err
	}
	k.types, k.ownTypes = f, true
	return nil
}

func orUnknownRelease(r string) string {
	if r == "" {
		return "of unknown release"
	}
	return r
}

// btfBounds finds __start_BTF and __stop_BTF among the kallsyms symbols.
func btfBounds(ks []KSym) (start, stop uint64, err error) {
	var haveStart, haveStop bool
	for _, s := range ks {
		switch s.Name {
		case "__start_BTF":
			start, haveStart = s.Addr, true
		case "__stop_BTF":
			stop, haveStop = s.Addr, true
		}
	}
	if !haveStart || !haveStop {
		return 0, 0, fmt.Errorf("kernel: kallsyms has no __start_BTF/__stop_BTF: the kernel was built without BTF (CONFIG_DEBUG_INFO_BTF)")
	}
	return start, stop, nil
}

// readBTF reads the .BTF section, [start, stop), from the dump.
func (k *Kernel) readBTF(start, stop uint64) ([]byte, error) {
	switch {
	case stop <= start:
		return nil, fmt.Errorf("kernel: __stop_BTF %#x is not after __start_BTF %#x", stop, start)
	case stop-start > maxBTF:
		return nil, fmt.Errorf("kernel: BTF of %d bytes at %#x (__start_BTF to __stop_BTF) exceeds %d MiB", stop-start, start, maxBTF>>20)
	}
	b := make([]byte, stop-start)
	if err := k.ReadVirt(b, start); err != nil {
		return nil, fmt.Errorf("kernel: reading the kernel's BTF (%d bytes at %#x): %w", len(b), start, err)
	}
	return b, nil
}

// sectionMarkers are the linker-script symbols around the sections of an
// x86_64 vmlinux (arch/x86/kernel/vmlinux.lds.S, include/asm-generic/
// vmlinux.lds.h), all of them in kallsyms: from them the sections of
// symbols read from kallsyms are named as the vmlinux's section headers
// name them. A symbol is in the smallest range holding it.
var sectionMarkers = []struct {
	name, start, end string
	exec             bool
}{
	{".text", "_text", "_etext", true},
	{".rodata", "__start_rodata", "__end_rodata", false},
	{".pci_fixup", "__start_pci_fixups_early", "__end_pci_fixups_suspend_late", false},
	{"__ksymtab", "__start___ksymtab", "__stop___ksymtab", false},
	{"__ksymtab_gpl", "__start___ksymtab_gpl", "__stop___ksymtab_gpl", false},
	{"__kcrctab", "__start___kcrctab", "__stop___kcrctab", false},
	{"__kcrctab_gpl", "__start___kcrctab_gpl", "__stop___kcrctab_gpl", false},
	{"__kflagstab", "__start___kflagstab", "__stop___kflagstab", false},
	{"__param", "__start___param", "__stop___param", false},
	{"__modver", "__start___modver", "__stop___modver", false},
	{"__ex_table", "__start___ex_table", "__stop___ex_table", false},
	{".notes", "__start_notes", "__stop_notes", false},
	{".BTF", "__start_BTF", "__stop_BTF", false},
	{".data", "_sdata", "_edata", false},
	{"__bug_table", "__start___bug_table", "__stop___bug_table", false},
	{".orc_header", "__start_orc_header", "__stop_orc_header", false},
	{".orc_unwind_ip", "__start_orc_unwind_ip", "__stop_orc_unwind_ip", false},
	{".orc_unwind", "__start_orc_unwind", "__stop_orc_unwind", false},
	{".orc_lookup", "orc_lookup", "orc_lookup_end", false},
	{".init.data", "__init_begin", "__init_end", false}, // the init area, less what follows
	{".init.text", "_sinittext", "_einittext", true},
	{".x86_cpu_dev.init", "__x86_cpu_dev_start", "__x86_cpu_dev_end", false},
	{".parainstructions", "__parainstructions", "__parainstructions_end", false},
	{".retpoline_sites", "__retpoline_sites", "__retpoline_sites_end", false},
	{".return_sites", "__return_sites", "__return_sites_end", false},
	{".call_sites", "__call_sites", "__call_sites_end", false},
	{".ibt_endbr_seal", "__ibt_endbr_seal", "__ibt_endbr_seal_end", false},
	{".altinstructions", "__alt_instructions", "__alt_instructions_end", false},
	{".apicdrivers", "__apicdrivers", "__apicdrivers_end", false},
	{".smp_locks", "__smp_locks", "__smp_locks_end", false},
	{".data_nosave", "__nosave_begin", "__nosave_end", false},
	{".bss", "__bss_start", "__bss_stop", false},
	{".brk", "__brk_base", "__brk_limit", false},
	{".init.scratch", "__init_scratch_begin", "__init_scratch_end", false},
}

// symbolsFromKallsyms turns kallsyms into link-time symbols, as the
// vmlinux's .symtab would give them, and the sections kallsyms' markers
// delimit (link-time addresses).
//
//   - Value is the run-time address less the KASLR offset. Per-CPU
//     variables (between __per_cpu_start and __per_cpu_end) are in
//     .data..percpu: where kallsyms holds their offsets (absolute per-CPU
//     symbols, x86_64 before 6.15) the value is that offset and the section
//     is linked at 0, as in the vmlinux; where it holds addresses (7.x), the
//     section is linked at its link-time address.
//   - Size: kallsyms has none. A symbol extends to the next symbol's
//     address, or to the end of its section: padding between symbols is
//     counted in, and markers get the size of what follows them.
//   - Kind: per-CPU variables and symbols of a data section are objects,
//     those of a code section functions (7.x's kallsyms types data 't'
//     too), those of other sections (tables such as __ksymtab) other;
//     outside the known sections the nm type letter tells: t/T/w/W are functions,
//     d/D/b/B/r/R/v/V objects, the rest other. Global: upper case.
//   - Section: the smallest marker range holding the symbol, else from the
//     letter (t→.text, r→.rodata, d→.data, b→.bss); absolute symbols (a/A,
//     not per-CPU) have none, and keep their value.
func symbolsFromKallsyms(ks []KSym, kaslr uint64) ([]kdwarf.Symbol, []kdwarf.Section) {
	// The markers' addresses (the first symbol of each name).
	addrOf := make(map[string]uint64, 2*len(sectionMarkers)+2)
	wanted := make(map[string]bool, 2*len(sectionMarkers)+2)
	for _, m := range sectionMarkers {
		wanted[m.start], wanted[m.end] = true, true
	}
	wanted["__per_cpu_start"], wanted["__per_cpu_end"] = true, true
	for _, s := range ks {
		if _, dup := addrOf[s.Name]; !dup && wanted[s.Name] {
			addrOf[s.Name] = s.Addr
		}
	}
	link := func(a uint64) uint64 { return a - kaslr }

	var secs []kdwarf.Section
	for _, m := range sectionMarkers {
		s, ok1 := addrOf[m.start]
		e, ok2 := addrOf[m.end]
		if !ok1 || !ok2 || e <= s || s < kernelSpaceStart {
			continue
		}
		secs = append(secs, kdwarf.Section{Name: m.name, Addr: link(s), Size: e - s, Exec: m.exec})
	}
	// Per-CPU: offsets (absolute per-CPU kallsyms) or addresses.
	pcStart, ok1 := addrOf["__per_cpu_start"]
	pcEnd, ok2 := addrOf["__per_cpu_end"]
	havePerCPU := ok1 && ok2 && pcEnd > pcStart
	pcOffsets := havePerCPU && pcStart < kernelSpaceStart
	if havePerCPU {
		pc := kdwarf.Section{Name: kdwarf.PerCPUSection, Size: pcEnd - pcStart}
		if !pcOffsets {
			pc.Addr = link(pcStart)
		}
		secs = append(secs, pc)
	}
	// Smallest section first, so the first range holding a symbol is its;
	// an end marker is in the section it ends, as the linker has it.
	bySize := slices.Clone(secs)
	slices.SortStableFunc(bySize, func(a, b kdwarf.Section) int { return cmp.Compare(a.Size, b.Size) })
	ends := map[string]kdwarf.Section{}
	markers := map[string]bool{}
	for _, m := range sectionMarkers {
		markers[m.start], markers[m.end] = true, true
		for _, s := range secs {
			if s.Name == m.name {
				ends[m.end] = s
			}
		}
	}
	sectionOf := func(name string, v uint64) (kdwarf.Section, bool) {
		if s, ok := ends[name]; ok && v == s.Addr+s.Size {
			return s, true
		}
		for _, s := range bySize {
			if s.Name != kdwarf.PerCPUSection && v >= s.Addr && v-s.Addr < s.Size {
				return s, true
			}
		}
		return kdwarf.Section{}, false
	}

	out := make([]kdwarf.Symbol, len(ks))
	end := make([]uint64, len(ks)) // the end of each symbol's section, 0 if unknown
	for i, s := range ks {
		sym := kdwarf.Symbol{Name: s.Name, Global: s.Type >= 'A' && s.Type <= 'Z'}
		letter := s.Type | 0x20 // lower case
		switch letter {
		case 't', 'w':
			sym.Kind = kdwarf.SymFunc
		case 'd', 'b', 'r', 'v':
			sym.Kind = kdwarf.SymObject
		}
		perCPU := false
		switch {
		case !havePerCPU:
		case pcOffsets:
			perCPU = s.Addr <= pcEnd-pcStart && (letter == 'a' || s.Addr < kernelSpaceStart)
		default:
			perCPU = s.Addr >= pcStart && s.Addr <= pcEnd
		}
		switch {
		case perCPU:
			sym.Section, sym.Kind = kdwarf.PerCPUSection, kdwarf.SymObject
			if pcOffsets {
				sym.Value = s.Addr
				end[i] = pcEnd - pcStart
			} else {
				sym.Value = link(s.Addr)
				end[i] = link(pcEnd)
			}
			if s.Name == "__per_cpu_start" || s.Name == "__per_cpu_end" {
				sym.Kind = kdwarf.SymOther
			}
		case letter == 'a' || s.Addr < kernelSpaceStart:
			sym.Value = s.Addr // absolute
			sym.Kind = kdwarf.SymOther
		default:
			sym.Value = link(s.Addr)
			if sec, ok := sectionOf(s.Name, sym.Value); ok {
				sym.Section, end[i] = sec.Name, sec.Addr+sec.Size
				// 7.x kallsyms types data 't' as well: the section tells.
				// Tables (__ksymtab, __ex_table, ...) hold no C objects.
				switch {
				case sec.Exec:
					sym.Kind = kdwarf.SymFunc
				case tableSections[sec.Name]:
					sym.Kind = kdwarf.SymOther
				default:
					sym.Kind = kdwarf.SymObject
				}
				if sec.Name == ".init.data" && letter == 't' {
					// Code in the init area outside .init.text: the
					// vmlinux's .exit.text (and .altinstr_aux).
					sym.Section, sym.Kind = ".exit.text", kdwarf.SymFunc
				}
			} else {
				sym.Section = letterSection(letter)
			}
			switch {
			case markers[s.Name] || strings.HasPrefix(s.Name, "__start_") || strings.HasPrefix(s.Name, "__stop_") || strings.HasPrefix(s.Name, "."):
				// Linker-script markers and assembler labels (.LC0).
				sym.Kind = kdwarf.SymOther
			case strings.HasPrefix(s.Name, "__BTF_ID__"):
				// resolve_btfids' tables follow .BTF, with no markers.
				sym.Section, sym.Kind = ".BTF_ids", kdwarf.SymObject
			case strings.HasPrefix(s.Name, "__kstrtab_"), strings.HasPrefix(s.Name, "__kstrtabns_"):
				// Exported symbols' names (before 5.13), no markers either.
				sym.Section, sym.Kind = "__ksymtab_strings", kdwarf.SymOther
			}
		}
		out[i] = sym
	}
	setSizes(out, end)
	return out, secs
}

// tableSections hold assembler-made tables, whose symbols are STT_NOTYPE.
var tableSections = map[string]bool{"__ksymtab": true, "__ksymtab_gpl": true, "__kcrctab": true, "__kcrctab_gpl": true, "__kflagstab": true, ".BTF": true}

// kernelSpaceStart is where x86_64 kernel addresses begin: per-CPU offsets
// are below it.
const kernelSpaceStart = 0xffff800000000000

func letterSection(letter byte) string {
	switch letter {
	case 't', 'w':
		return ".text"
	case 'r':
		return ".rodata"
	case 'b':
		return ".bss"
	}
	return ".data"
}

// setSizes gives each symbol with a section the distance to the next
// higher address among the symbols of its space (per-CPU or not), capped
// at its section's end (end[i], 0 when unknown).
func setSizes(syms []kdwarf.Symbol, end []uint64) {
	for _, perCPU := range []bool{false, true} {
		var idx []int
		for i, s := range syms {
			if s.Section != "" && (s.Section == kdwarf.PerCPUSection) == perCPU {
				idx = append(idx, i)
			}
		}
		slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(syms[a].Value, syms[b].Value) })
		for j := 0; j < len(idx); {
			v := syms[idx[j]].Value
			k := j
			for k < len(idx) && syms[idx[k]].Value == v {
				k++
			}
			var next uint64
			if k < len(idx) {
				next = syms[idx[k]].Value
			}
			for _, i := range idx[j:k] {
				size := next - v
				if next == 0 {
					size = 0
				}
				if e := end[i]; e > v && (size == 0 || e-v < size) {
					size = e - v
				}
				syms[i].Size, syms[i].SizeBound = size, size > 0
			}
			j = k
		}
	}
}
