package modules

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/vmleak/vmleak/kernel"
)

// paramKinds are the kernel's own struct kernel_param_ops
// (kernel/params.c, STANDARD_PARAM_DEF and friends), by symbol. The value
// of each is decoded as its get() prints it.
var paramKinds = []string{
	"param_ops_byte", "param_ops_short", "param_ops_ushort", "param_ops_int", "param_ops_uint",
	"param_ops_long", "param_ops_ulong", "param_ops_ullong", "param_ops_hexint",
	"param_ops_charp", "param_ops_bool", "param_ops_bool_enable_only", "param_ops_invbool",
	"param_ops_bint", "param_ops_string", "param_array_ops",
}

// paramOps finds the address of each of the kernel's own param ops.
func (r *reader) paramOps() map[uint64]string {
	out := map[uint64]string{}
	for _, name := range paramKinds {
		if va, err := r.k.Symbol(name); err == nil {
			out[va] = name
		}
	}
	return out
}

// params reads mod->kp[0..num_kp).
func (r *reader) params(mv kernel.Value, mo *Module, fail func(string, error)) {
	n, err := mv.Field("num_kp").Uint()
	if err != nil {
		fail("num_kp", err)
		return
	}
	if n == 0 {
		return
	}
	if n > maxParams {
		fail("kp", fmt.Errorf("num_kp is %d, more than %d", n, maxParams))
		return
	}
	kp := mv.Field("kp")
	if p, err := kp.Ptr(); err != nil || p == 0 {
		if err == nil {
			err = fmt.Errorf("kp is NULL with num_kp %d", n)
		}
		fail("kp", err)
		return
	}
	for i := int64(0); i < int64(n); i++ {
		pv := kp.Index(i).Load()
		name, err := pv.Field("name").String()
		if err != nil {
			fail(fmt.Sprintf("kp[%d]", i), err)
			continue
		}
		p := Param{Name: kernel.Printable(name)}
		ops, err1 := pv.Field("ops").Ptr()
		perm, err2 := pv.Field("perm").Uint()
		if err := firstErr(err1, err2); err != nil {
			fail("parameter "+p.Name, err)
			p.Error = err.Error()
			mo.Params = append(mo.Params, p)
			continue
		}
		p.Perm = fmt.Sprintf("%04o", perm)
		p.Ops = r.opsName(ops)
		if kind, ok := r.opsSyms[ops]; ok {
			v, err := r.paramValue(kind, pv)
			if err != nil {
				p.Error = err.Error()
				if kernel.IsMissing(err) {
					fail("parameter "+p.Name, err)
				}
			} else {
				p.Value = &v
			}
		}
		mo.Params = append(mo.Params, p)
	}
}

// paramValue decodes a parameter whose ops is the kernel's own.
func (r *reader) paramValue(kind string, pv kernel.Value) (string, error) {
	arg, err := pv.Field("arg").Ptr()
	if err != nil {
		return "", err
	}
	if arg == 0 {
		return "", fmt.Errorf("arg is NULL")
	}
	switch kind {
	case "param_ops_string":
		s, err := r.k.Object(arg, "struct kparam_string").Field("string").String()
		return kernel.Printable(s), err
	case "param_array_ops":
		return r.arrayValue(arg)
	}
	return r.scalar(kind, arg)
}

// scalar decodes the value at arg as ops kind's get() prints it
// (kernel/params.c: param_get_<type>, %hhu for byte, %#08x for hexint,
// Y/N for bool, ...).
func (r *reader) scalar(kind string, arg uint64) (string, error) {
	k := r.k
	signed := func(c string) (string, error) {
		v, err := k.Object(arg, c).Int()
		return strconv.FormatInt(v, 10), err
	}
	unsigned := func(c string) (string, error) {
		v, err := k.Object(arg, c).Uint()
		return strconv.FormatUint(v, 10), err
	}
	yn := func(invert bool) (string, error) {
		v, err := k.Object(arg, "bool").Uint()
		if (v != 0) != invert {
			return "Y", err
		}
		return "N", err
	}
	switch kind {
	case "param_ops_byte":
		return unsigned("unsigned char")
	case "param_ops_short":
		return signed("short")
	case "param_ops_ushort":
		return unsigned("unsigned short")
	case "param_ops_int", "param_ops_bint":
		return signed("int")
	case "param_ops_uint":
		return unsigned("unsigned int")
	case "param_ops_long":
		return signed("long")
	case "param_ops_ulong":
		return unsigned("unsigned long")
	case "param_ops_ullong":
		return unsigned("unsigned long long")
	case "param_ops_hexint":
		v, err := k.Object(arg, "unsigned int").Uint()
		return fmt.Sprintf("%#08x", v), err
	case "param_ops_bool", "param_ops_bool_enable_only":
		return yn(false)
	case "param_ops_invbool":
		return yn(true)
	case "param_ops_charp":
		cv := k.Object(arg, "char *")
		p, err := cv.Ptr()
		if err != nil {
			return "", err
		}
		if p == 0 {
			return "(null)", nil
		}
		s, err := cv.String()
		return kernel.Printable(s), err
	}
	return "", fmt.Errorf("no decoder for %s", kind)
}

// arrayValue is param_array_get(): the elements joined by ',', as many as
// *num says (arr->max where num is NULL).
func (r *reader) arrayValue(arg uint64) (string, error) {
	av := r.k.Object(arg, "struct kparam_array").Load()
	max, err1 := av.Field("max").Uint()
	size, err2 := av.Field("elemsize").Uint()
	numP, err3 := av.Field("num").Ptr()
	ops, err4 := av.Field("ops").Ptr()
	elem, err5 := av.Field("elem").Ptr()
	if err := firstErr(err1, err2, err3, err4, err5); err != nil {
		return "", err
	}
	n := max
	if numP != 0 {
		v, err := av.Field("num").Deref().Uint()
		if err != nil {
			return "", err
		}
		n = v
	}
	kind, ok := r.opsSyms[ops]
	switch {
	case !ok || kind == "param_array_ops" || kind == "param_ops_string":
		return "", fmt.Errorf("array of %s: not decoded", r.opsName(ops))
	case n > max || n > maxArray:
		return "", fmt.Errorf("array claims %d elements (max %d)", n, max)
	case size == 0 || size > 64 || elem == 0:
		return "", fmt.Errorf("array of %d-byte elements at %#x", size, elem)
	}
	vals := make([]string, 0, n)
	for i := uint64(0); i < n; i++ {
		v, err := r.scalar(kind, elem+i*size)
		if err != nil {
			return "", err
		}
		vals = append(vals, v)
	}
	return strings.Join(vals, ","), nil
}

// opsName names the struct kernel_param_ops at va: a vmlinux symbol, else
// a symbol of the module whose memory holds it, else the address.
func (r *reader) opsName(va uint64) string {
	if name, ok := r.opsSyms[va]; ok {
		return name
	}
	if off := r.k.Layout().KASLROffset; va >= off {
		if sym, d, ok := r.k.Types().SymbolAt(va - off); ok && d == 0 && sym.Section != "" {
			return kernel.Printable(sym.Name)
		}
	}
	for _, m := range r.mods {
		if _, ok := m.Contains(va); !ok {
			continue
		}
		if r.modSyms == nil {
			r.modSyms = map[uint64]map[uint64]string{}
		}
		syms, ok := r.modSyms[m.Addr]
		if !ok {
			syms = map[uint64]string{}
			ks, _ := r.k.ModuleKallsyms(m)
			sort.SliceStable(ks, func(i, j int) bool { return ks[i].Name < ks[j].Name })
			for _, s := range ks {
				if _, dup := syms[s.Addr]; !dup {
					syms[s.Addr] = kernel.Printable(s.Name)
				}
			}
			r.modSyms[m.Addr] = syms
		}
		if name, ok := syms[va]; ok {
			return name
		}
		break
	}
	return fmt.Sprintf("%#x", va)
}
