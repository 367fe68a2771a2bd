package forensics

import (
	"fmt"
	"strings"
)

// numExceptionVectors is NUM_EXCEPTION_VECTORS (arch/x86/include/asm/segment.h).
const numExceptionVectors = 32

// checkIDT resolves the handler of every present gate of idt_table: on
// x86_64 all are entry code in kernel text (asm_exc_*, the irq and
// spurious entry stubs); a handler elsewhere is a hook. The table is the
// one the kernel loads (load_idt(&idt_descr)); a rootkit that loads
// another IDT with lidt leaves no trace here, and the dump holds no IDTR.
func checkIDT(c *Context) ([]Finding, CheckResult) {
	k := c.K
	res := CheckResult{}
	size, err := k.SizeOf("gate_desc")
	if err != nil {
		return nil, CheckResult{Status: StatusNotChecked, Note: "gate_desc: " + err.Error()}
	}
	sym, err := k.Types().Symbol("idt_table")
	if err != nil {
		return nil, CheckResult{Status: StatusNotChecked, Note: "idt_table: " + err.Error()}
	}
	n := int64(sym.Size) / size
	if n <= 0 || n > 256 {
		return nil, CheckResult{Status: StatusNotChecked, Note: fmt.Sprintf("idt_table: %d bytes is not a table of %d-byte gates", sym.Size, size)}
	}
	base := sym.Value + k.Layout().KASLROffset
	// idt_setup_early_handler points all 32 exception vectors at
	// early_idt_handler_array (init text); idt_setup_traps then replaces
	// only the vectors the kernel handles, so reserved ones keep pointing
	// there after init text is freed. The kernel's own leftover: explained.
	var earlyStart, earlyEnd uint64
	var early []string
	if e, err := k.Types().Symbol("early_idt_handler_array"); err == nil {
		earlyStart = e.Value + k.Layout().KASLROffset
		earlyEnd = earlyStart + e.Size
	}
	var fs []Finding
	for i := range n {
		g := k.Object(base+uint64(i*size), "gate_desc").Load()
		p, err1 := g.Field("bits.p").Uint()
		lo, err2 := g.Field("offset_low").Uint()
		mid, err3 := g.Field("offset_middle").Uint()
		hi, err4 := g.Field("offset_high").Uint()
		if err := firstError(err1, err2, err3, err4); err != nil {
			res.Skipped++
			c.Warnf("idt: vector %d at %#x: %v", i, g.Addr(), err)
			continue
		}
		res.Checked++
		if p == 0 {
			continue
		}
		h := lo | mid<<16 | hi<<32
		if c.Resolver.KernelText(h) {
			continue
		}
		if i < numExceptionVectors && h >= earlyStart && h < earlyEnd {
			early = append(early, fmt.Sprint(i))
			continue
		}
		place := c.Resolver.Resolve(h)
		fs = append(fs, Finding{
			Kind:       "idt-hook",
			Severity:   High,
			Addr:       g.Addr(),
			Symbol:     fmt.Sprintf("idt_table[%d]", i),
			Target:     h,
			TargetName: place.Name,
			Module:     place.Module,
			Summary:    fmt.Sprintf("interrupt vector %d (%#x) handled by %s, outside kernel text", i, i, place.Name),
			Evidence:   []string{"x86_64 IDT handlers are entry stubs in kernel text; this gate points at " + place.Where},
		})
	}
	if len(early) > 0 {
		fs = append(fs, Finding{
			Kind:     "idt-early-handler",
			Severity: Info,
			Addr:     base,
			Symbol:   "idt_table",
			Target:   earlyStart,
			Summary:  fmt.Sprintf("%d reserved exception vectors (%s) still point at early_idt_handler_array in freed init text", len(early), strings.Join(early, " ")),
			Evidence: []string{"idt_setup_early_handler sets every exception vector at boot; idt_setup_traps replaces only those the kernel handles, so the others keep the boot handler: the kernel's own state, not a hook"},
		})
	}
	switch {
	case res.Checked == 0:
		res.Status = StatusNotChecked
		res.Note = "no gate of idt_table could be read"
	case res.Skipped > 0:
		res.Status = StatusPartial
		res.Note = fmt.Sprintf("%d gates unreadable", res.Skipped)
	}
	return fs, res
}
