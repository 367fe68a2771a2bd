package forensics

import (
	"debug/elf"
	"fmt"
	"sort"
	"strings"

	"github.com/vmleak/vmleak/kernel"
)

// checkText compares the kernel's text in the dump (_stext.._etext; init
// text is freed after boot and not compared) with the vmlinux's, at the
// same KASLR offset. Every difference must be the kernel's own run-time
// patching, found from its patch-site tables in the vmlinux and checked by
// decoding the new bytes (see validate), or a KASLR relocation of an
// absolute address; anything else is reported. Explained patching is one
// info finding per kind, with counts.
func checkText(c *Context) ([]Finding, CheckResult) {
	k := c.K
	if k.FromDump() {
		return nil, CheckResult{Status: StatusNotChecked, Note: needsVmlinuxNote("the text is compared with the vmlinux's")}
	}
	in, warns, err := textInputOf(c)
	for _, w := range warns {
		c.Warnf("%s", w)
	}
	if err != nil {
		return nil, CheckResult{Status: StatusNotChecked, Note: err.Error()}
	}
	out := compareText(in)
	fs := textSummaries(out)
	fs = append(fs, out.findings...)

	res := CheckResult{Checked: out.checked}
	var notes []string
	// The listed modules' text, each against its .ko.
	mfs, mchecked, mnotes, mpartial, munexpl, mbad := modTextReport(checkModuleTexts(c, in))
	fs = append(fs, mfs...)
	res.Checked += mchecked
	if mpartial {
		res.Status = StatusPartial
	}
	if len(out.missing)+len(out.unreadable) > 0 {
		res.Status = StatusPartial
		for _, x := range []struct {
			what string
			rs   []textRange
		}{{"missing from the dump", out.missing}, {"unreadable", out.unreadable}} {
			if len(x.rs) == 0 {
				continue
			}
			var total uint64
			var names []string
			for i, r := range x.rs {
				total += r.size()
				if i < 8 {
					names = append(names, fmt.Sprintf("%#x-%#x (%s)", r.start, r.end, c.Resolver.Resolve(r.start).Name))
				}
			}
			if len(x.rs) > 8 {
				names = append(names, fmt.Sprintf("and %d more", len(x.rs)-8))
			}
			notes = append(notes, fmt.Sprintf("%d bytes of text in %d ranges not checked, %s: %s", total, len(x.rs), x.what, strings.Join(names, ", ")))
			res.Skipped += int(total)
		}
	}
	if out.unexplained+out.badSites > 0 {
		notes = append(notes, fmt.Sprintf("%d unexplained differences, %d patch sites with bytes their patching does not write", out.unexplained, out.badSites))
	}
	if munexpl+mbad > 0 {
		notes = append(notes, fmt.Sprintf("modules: %d unexplained differences, %d patch sites with bytes their patching does not write", munexpl, mbad))
	}
	notes = append(notes, mnotes...)
	if out.undecodable > 0 {
		notes = append(notes, fmt.Sprintf("%d undecodable instructions", out.undecodable))
	}
	if !in.relocsKnown && in.kaslr != 0 {
		notes = append(notes, "no relocations in the vmlinux: KASLR shifts recognized by value")
	}
	res.Note = strings.Join(notes, "; ")
	_ = k
	return fs, res
}

// textSummaries are the info findings, one per kind of explained patching.
func textSummaries(out *textOutput) []Finding {
	kinds := make([]string, 0, len(out.counts))
	for k := range out.counts {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var fs []Finding
	for _, k := range kinds {
		n := out.counts[k]
		what := "sites"
		if k == kindKASLRReloc {
			what = "relocated addresses"
		}
		fs = append(fs, Finding{
			Kind: "runtime-patch", Severity: Info, Symbol: k, Size: uint64(n.Bytes),
			Summary: fmt.Sprintf("%s: %d %s patched at run time (%d bytes), explained and checked", k, n.Sites, what, n.Bytes),
		})
	}
	return fs
}

// textKernel is the textWorld of a real kernel.
type textKernel struct {
	c *Context
}

func (w textKernel) Resolve(va uint64) Place { return w.c.Resolver.Resolve(va) }

func (w textKernel) FuncStart(va uint64) (uint64, uint64, bool) {
	k := w.c.K
	off := k.Layout().KASLROffset
	t := k.Types()
	if s, _, ok := t.SymbolAt(va - off); ok {
		return s.Value + off, s.Size, true
	}
	if s, _, ok := t.SymbolBefore(va-off, ".text"); ok {
		return s.Value + off, s.Size, true
	}
	return 0, 0, false
}

// textInputOf gathers the comparison's input from the kernel: the
// vmlinux's text, the patch-site tables, ftrace's ops and the kprobes.
func textInputOf(c *Context) (*textInput, []string, error) {
	k := c.K
	ef := k.Types().ELF()
	if ef == nil {
		return nil, nil, fmt.Errorf("kernel text: %w", kernel.ErrNeedsVmlinux)
	}
	kaslr := k.Layout().KASLROffset
	start, end := c.Resolver.TextBounds()
	if end <= start || end-start > 1<<30 {
		return nil, nil, fmt.Errorf("implausible kernel text bounds %#x-%#x", start, end)
	}
	in := &textInput{
		start: start, want: make([]byte, end-start), kaslr: kaslr,
		read: k.ReadVirt, missing: kernel.IsMissing, world: textKernel{c},
	}
	// The vmlinux's executable sections in the range; holes are excluded.
	covered := []textRange{}
	for _, s := range ef.Sections {
		if s.Type != elf.SHT_PROGBITS || s.Flags&elf.SHF_ALLOC == 0 || s.Flags&elf.SHF_EXECINSTR == 0 {
			continue
		}
		lo, hi := max(s.Addr+kaslr, start), min(s.Addr+s.Size+kaslr, end)
		if lo >= hi {
			continue
		}
		if _, err := s.ReadAt(in.want[lo-start:hi-start], int64(lo-kaslr-s.Addr)); err != nil {
			return nil, nil, fmt.Errorf("vmlinux %s: %w", s.Name, err)
		}
		covered = append(covered, textRange{lo, hi})
	}
	sort.Slice(covered, func(i, j int) bool { return covered[i].start < covered[j].start })
	at := start
	for _, r := range covered {
		if r.start > at {
			in.exclude = append(in.exclude, textRange{at, r.start})
		}
		at = max(at, r.end)
	}
	if at < end {
		in.exclude = append(in.exclude, textRange{at, end})
	}
	// Init text inside the range (not on x86_64 today) is freed.
	if is, err1 := k.Symbol("_sinittext"); err1 == nil {
		if ie, err2 := k.Symbol("_einittext"); err2 == nil && is < end && ie > start {
			in.exclude = append(in.exclude, textRange{max(is, start), min(ie, end)})
		}
	}

	t := &textTables{k: k, im: newTextImage(ef), kaslr: kaslr}
	t.alternatives()
	t.paravirt()
	t.jumpLabels()
	t.staticCalls()
	t.mcount()
	t.ftraceCallers()
	t.relTable(siteRetpoline, "__retpoline_sites", "__retpoline_sites_end", 0)
	t.relTable(siteReturn, "__return_sites", "__return_sites_end", 0)
	t.relTable(siteEndbrSeal, "__ibt_endbr_seal", "__ibt_endbr_seal_end", 4)
	t.relTable(siteCallDepth, "__call_sites", "__call_sites_end", 0)
	t.relTable(siteSMPLock, "__smp_locks", "__smp_locks_end", 1)
	t.runtimeConsts()
	in.sites = t.sites
	warns := t.warn

	if s, e, ok := t.bounds("__static_call_text_start", "__static_call_text_end"); ok {
		in.staticCallText = textRange{s + kaslr, e + kaslr}
	}
	var err error
	in.ftraceCallers, in.ops, err = textFtrace(k)
	if err != nil {
		warns = append(warns, fmt.Sprintf("text: ftrace ops: %v", err))
	}
	in.kprobes, err = textKprobes(k)
	if err != nil {
		warns = append(warns, fmt.Sprintf("text: kprobes: %v", err))
	}
	in.relocs, in.relocsKnown, err = textRelocs(ef, kaslr)
	if err != nil {
		warns = append(warns, fmt.Sprintf("text: relocations: %v", err))
		in.relocs, in.relocsKnown = nil, false
	}
	return in, warns, nil
}
