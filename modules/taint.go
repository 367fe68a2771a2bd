package modules

import (
	"fmt"
	"math/bits"
	"strings"

	"github.com/vmleak/vmleak/kernel"
)

// Taint is the kernel's taint.
type Taint struct {
	// Mask is tainted_mask, the number /proc/sys/kernel/tainted prints.
	Mask uint64 `json:"mask"`
	// String is what print_tainted() returns: "Tainted: " and one
	// character per flag, or "Not tainted".
	String string `json:"string"`
	// Flags are the set bits, lowest first.
	Flags []TaintFlag `json:"flags"`
	// Table tells where the characters came from: "taint_flags" (the
	// dump's own table) or "built-in" (it could not be read).
	Table string `json:"table"`
	Error string `json:"error,omitempty"`
}

// TaintFlag is one set taint bit.
type TaintFlag struct {
	Bit  int    `json:"bit"`
	Char string `json:"char"`           // taint_flags[bit].c_true; "" past the table
	Name string `json:"name,omitempty"` // TAINT_<Name>: OOT_MODULE, UNSIGNED_MODULE, ...
	// Modules are the loaded modules whose mod->taints has the bit.
	Modules []string `json:"modules,omitempty"`
}

// taintFlag is one entry of taint_flags[].
type taintFlag struct {
	c, cFalse byte
	module    bool // shown per module (taint_flags[].module; every flag where the member is gone)
	name      string
}

type taintTable struct {
	flags  []taintFlag
	source string
}

// builtinTaints is kernel/panic.c's taint_flags[] as of TAINT_FWCTL
// (v6.15), by bit (include/linux/panic.h TAINT_*: the bits are never
// renumbered, only appended). It names the bits of kernels whose table
// has no desc (before 6.12) and stands in for a table the dump lacks.
var builtinTaints = []taintFlag{
	{'P', 'G', true, "PROPRIETARY_MODULE"},
	{'F', ' ', true, "FORCED_MODULE"},
	{'S', ' ', false, "CPU_OUT_OF_SPEC"},
	{'R', ' ', false, "FORCED_RMMOD"},
	{'M', ' ', false, "MACHINE_CHECK"},
	{'B', ' ', false, "BAD_PAGE"},
	{'U', ' ', false, "USER"},
	{'D', ' ', false, "DIE"},
	{'A', ' ', false, "OVERRIDDEN_ACPI_TABLE"},
	{'W', ' ', false, "WARN"},
	{'C', ' ', true, "CRAP"},
	{'I', ' ', false, "FIRMWARE_WORKAROUND"},
	{'O', ' ', true, "OOT_MODULE"},
	{'E', ' ', true, "UNSIGNED_MODULE"},
	{'L', ' ', false, "SOFTLOCKUP"},
	{'K', ' ', true, "LIVEPATCH"},
	{'X', ' ', true, "AUX"},
	{'T', ' ', true, "RANDSTRUCT"},
	{'N', ' ', true, "TEST"},
	{'J', ' ', true, "FWCTL"},
}

// maxTaintFlags bounds the table: tainted_mask is an unsigned long.
const maxTaintFlags = 64

// taintTable reads taint_flags[] from the dump: TAINT_FLAGS_COUNT entries,
// counted from the symbol's size. When it cannot, it returns the built-in
// table (cut to the symbol's count if that is known) and the error.
func (r *reader) taintTable() (taintTable, error) {
	k := r.k
	fallback := func(n int, err error) (taintTable, error) {
		if n <= 0 || n > len(builtinTaints) {
			n = len(builtinTaints)
		}
		return taintTable{flags: builtinTaints[:n], source: "built-in"}, err
	}
	sym, err := k.Types().Symbol("taint_flags")
	if err != nil {
		return fallback(0, err)
	}
	elem, err := k.SizeOf("struct taint_flag")
	if err != nil {
		return fallback(0, err)
	}
	bounded := sym.SizeBound && sym.Size/uint64(elem) > 0
	if bounded {
		// Symbols from kallsyms have no sizes: the distance to the next
		// symbol bounds the array, whose padding is zeros; the table ends
		// at the first entry without a letter.
		sym.Size -= sym.Size % uint64(elem)
		sym.Size = min(sym.Size, maxTaintFlags*uint64(elem))
	}
	if sym.Size == 0 || sym.Size%uint64(elem) != 0 || sym.Size/uint64(elem) > maxTaintFlags {
		return fallback(0, fmt.Errorf("taint_flags is %d bytes, not a whole number (at most %d) of %d-byte struct taint_flag", sym.Size, maxTaintFlags, elem))
	}
	n := int(sym.Size / uint64(elem))
	va, err := k.Symbol("taint_flags")
	if err != nil {
		return fallback(n, err)
	}
	t := taintTable{source: "taint_flags"}
	for i := 0; i < n; i++ {
		v := k.Object(va+uint64(i)*uint64(elem), "struct taint_flag").Load()
		c, err1 := v.Field("c_true").Uint()
		cf, err2 := v.Field("c_false").Uint()
		if err := firstErr(err1, err2); err != nil {
			return fallback(n, err)
		}
		if bounded && c == 0 {
			break
		}
		f := taintFlag{c: byte(c), cFalse: byte(cf), module: true}
		if v.HasField("module") {
			m, err := v.Field("module").Uint()
			if err != nil {
				return fallback(n, err)
			}
			f.module = m != 0
		}
		if v.HasField("desc") {
			if d, err := v.Field("desc").String(); err == nil {
				f.name = kernel.Printable(d)
			}
		}
		if f.name == "" && i < len(builtinTaints) {
			f.name = builtinTaints[i].name
		}
		t.flags = append(t.flags, f)
	}
	return t, nil
}

// moduleLetters is module_flags_taint(): c_true of every set bit that is
// a per-module flag, in bit order.
func (t taintTable) moduleLetters(taints uint64) string {
	var sb strings.Builder
	for i, f := range t.flags {
		if f.module && taints&(1<<uint(i)) != 0 {
			sb.WriteByte(f.c)
		}
	}
	return kernel.Printable(sb.String())
}

// String is print_tainted() for a mask.
func (t taintTable) String(mask uint64) string {
	if mask == 0 {
		return "Not tainted"
	}
	var sb strings.Builder
	sb.WriteString("Tainted: ")
	for i, f := range t.flags {
		if mask&(1<<uint(i)) != 0 {
			sb.WriteByte(f.c)
		} else {
			sb.WriteByte(f.cFalse)
		}
	}
	return kernel.Printable(sb.String())
}

// taint reads tainted_mask and says which loaded module carries which bit.
func (r *reader) taint() Taint {
	t := Taint{Table: r.table.source, Flags: []TaintFlag{}}
	mask, err := r.k.GlobalInt("tainted_mask", "unsigned long")
	if err != nil {
		t.Error = err.Error()
		r.warnf("tainted_mask: %v", err)
		r.out.Partial = true
		return t
	}
	t.Mask = uint64(mask)
	t.String = r.table.String(t.Mask)
	var carried uint64
	for _, m := range r.out.Modules {
		carried |= m.Taints
	}
	if extra := carried &^ t.Mask; extra != 0 {
		r.warnf("modules carry taint bits %#x that tainted_mask %#x lacks", extra, t.Mask)
	}
	for all := t.Mask | carried; all != 0; all &= all - 1 {
		bit := bits.TrailingZeros64(all)
		f := TaintFlag{Bit: bit}
		if bit < len(r.table.flags) {
			f.Char = kernel.Printable(string(r.table.flags[bit].c))
			f.Name = r.table.flags[bit].name
		}
		for _, m := range r.out.Modules {
			if m.Taints&(1<<uint(bit)) != 0 {
				f.Modules = append(f.Modules, m.Name)
			}
		}
		t.Flags = append(t.Flags, f)
	}
	return t
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
