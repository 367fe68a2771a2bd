package forensics

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/vmleak/vmleak/kernel"
)

// The list_del poison values (include/linux/poison.h, POISON_POINTER_DELTA
// 0xdead000000000000 on x86_64): what list_del leaves in an unlinked entry.
const (
	listPoison1 = 0xdead000000000100
	listPoison2 = 0xdead000000000122
)

// maxRegionSize bounds one module memory region: module space is 1 GiB and
// no module comes near a tenth of it.
const maxRegionSize = 256 << 20

// Module states (enum module_state, unchanged since 3.8's UNFORMED).
const (
	stateLive     = 0
	stateComing   = 1
	stateGoing    = 2
	stateUnformed = 3
)

var stateNames = map[uint64]string{
	stateLive:     "MODULE_STATE_LIVE",
	stateComing:   "MODULE_STATE_COMING",
	stateGoing:    "MODULE_STATE_GOING",
	stateUnformed: "MODULE_STATE_UNFORMED",
}

func stateName(s uint64) string {
	if n, ok := stateNames[s]; ok {
		return n
	}
	return fmt.Sprintf("state %d", s)
}

// space is a range of kernel virtual addresses [start, end).
type space struct{ start, end uint64 }

func (s space) contains(va, size uint64) bool {
	return va >= s.start && va < s.end && size <= s.end-va
}

// candidate is a struct module as decoded from memory, before it is
// believed: the fields validation looks at.
type candidate struct {
	addr     uint64
	size     uint64 // sizeof(struct module)
	state    uint64
	name     []byte // the whole name[MODULE_NAME_LEN] array
	mkobjMod uint64
	listNext uint64
	listPrev uint64
	regions  []candRegion
}

// candRegion is one memory region of a candidate: a module_layout (up to
// 6.3: core and init) or a module_memory (6.4+).
type candRegion struct {
	kind string
	base uint64
	size uint64
	// sub are the layout's nested sizes (text_size <= ro_size <=
	// ro_after_init_size <= size), up to 6.3; the writable data, where
	// struct module lies, starts at the last of them.
	sub []uint64
	// data marks the region that must hold struct module: core up to 6.3,
	// data (MOD_DATA) since.
	data bool
}

// candidateName is the name of a candidate up to its NUL (escaped).
func (c *candidate) nameString() string {
	if i := bytes.IndexByte(c.name, 0); i >= 0 {
		return kernel.Printable(string(c.name[:i]))
	}
	return kernel.Printable(string(c.name))
}

// invalidModule is why a candidate is not a plausible struct module.
// shaped tells that it has a module's identity (a state in range, a
// printable name, mkobj.mod pointing back, list pointers that are kernel
// addresses) and fails only in its memory layout: a struct module with
// lying sizes, not a stray word that happened to point back.
type invalidModule struct {
	msg    string
	shaped bool
}

func (e *invalidModule) Error() string { return e.msg }

func rejectf(shaped bool, format string, args ...any) error {
	return &invalidModule{msg: fmt.Sprintf(format, args...), shaped: shaped}
}

// shaped tells whether err is a layout failure of a candidate with a
// module's identity.
func shaped(err error) bool {
	var e *invalidModule
	return errors.As(err, &e) && e.shaped
}

// validate tells why a candidate is not a plausible struct module, or
// nil. ms is module space; needSelf asks for mkobj.mod pointing back
// (carving finds candidates by it; a module reached through sysfs or the
// tree may lack it before mod_sysfs_setup, while UNFORMED or COMING).
func (c *candidate) validate(ms space, maxState uint64, needSelf bool) error {
	if c.state > maxState {
		return rejectf(false, "state %d out of range [0,%d]", c.state, maxState)
	}
	i := bytes.IndexByte(c.name, 0)
	switch {
	case i < 0:
		return rejectf(false, "name not NUL-terminated within %d bytes", len(c.name))
	case i == 0:
		return rejectf(false, "empty name")
	}
	for _, b := range c.name[:i] {
		if b <= 0x20 || b >= 0x7f {
			return rejectf(false, "name %q has byte %#x", kernel.Printable(string(c.name[:i])), b)
		}
	}
	if c.mkobjMod != c.addr {
		early := c.mkobjMod == 0 && (c.state == stateUnformed || c.state == stateComing)
		if needSelf || !early {
			return rejectf(false, "mkobj.mod %#x does not point back to %#x", c.mkobjMod, c.addr)
		}
	}
	for _, p := range []struct {
		what string
		v    uint64
	}{{"list.next", c.listNext}, {"list.prev", c.listPrev}} {
		if !kernelAddr(p.v) && p.v != listPoison1 && p.v != listPoison2 {
			return rejectf(false, "%s %#x is not a kernel address", p.what, p.v)
		}
	}
	inData, any := false, false
	for _, r := range c.regions {
		if r.size == 0 {
			continue
		}
		any = true
		if r.size > maxRegionSize {
			return rejectf(true, "%s size %#x exceeds %#x", r.kind, r.size, maxRegionSize)
		}
		if !ms.contains(r.base, r.size) {
			return rejectf(true, "%s %#x+%#x is outside module space %#x-%#x", r.kind, r.base, r.size, ms.start, ms.end)
		}
		prev := uint64(0)
		for _, s := range r.sub {
			if s < prev || s > r.size {
				return rejectf(true, "%s sizes %#x do not nest within its size %#x", r.kind, r.sub, r.size)
			}
			prev = s
		}
		if r.data && c.addr >= r.base+prev && c.addr-r.base <= r.size && r.size-(c.addr-r.base) >= c.size {
			inData = true
		}
	}
	if !any {
		return rejectf(true, "no memory region")
	}
	if !inData {
		return rejectf(true, "struct module %#x lies outside its own data region", c.addr)
	}
	return nil
}

// kernelAddr tells a canonical kernel-half address.
func kernelAddr(v uint64) bool { return v >= 0xffff800000000000 }

// modLayout is where validation's fields lie in this kernel's struct
// module, read once per check.
type modLayout struct {
	size     uint64
	state    kernel.Member
	name     kernel.Member
	mkobjMod kernel.Member
	list     uint64
	regions  []regionLayout
	maxState uint64
	mkobj    uint64 // offset of mkobj (struct module_kobject)
}

// regionLayout is one region's struct (module_layout or module_memory) at
// off in struct module, and its members.
type regionLayout struct {
	kind       string
	off        uint64
	base, size kernel.Member
	sub        []kernel.Member
	data       bool
}

// newModLayout reads the offsets of struct module's members.
func newModLayout(k *kernel.Kernel) (*modLayout, error) {
	l := &modLayout{}
	n, err := k.SizeOf("struct module")
	if err != nil {
		return nil, err
	}
	l.size = uint64(n)
	member := func(path string) kernel.Member {
		if err != nil {
			return kernel.Member{}
		}
		var m kernel.Member
		m, err = k.Member("struct module", path)
		return m
	}
	l.state, l.name, l.mkobjMod = member("state"), member("name"), member("mkobj.mod")
	list := member("list")
	mkobj := member("mkobj")
	if err != nil {
		return nil, err
	}
	l.list, l.mkobj = list.Offset(), mkobj.Offset()
	// The states' values, from the enum itself (a lookup by enumerator
	// name would scan every type of a BTF-only vmlinux).
	et, err := k.TypeOf("enum module_state")
	if err != nil {
		return nil, err
	}
	have := map[string]int64{}
	for _, e := range et.Strip().Enumerators {
		have[e.Name] = e.Value
	}
	for s, n := range stateNames {
		if v, ok := have[n]; !ok || v != int64(s) {
			return nil, fmt.Errorf("forensics: enum module_state has %s = %d (present %v), want %d", n, v, ok, s)
		}
	}
	l.maxState = stateUnformed
	for _, v := range have {
		if v >= 0 && uint64(v) > l.maxState {
			l.maxState = uint64(v)
		}
	}
	if mem, perr := k.Probe("struct module", "mem"); perr == nil && mem.Present() {
		// 6.4+: mem[MOD_MEM_NUM_TYPES] of struct module_memory {base; size; ...}.
		es, err := k.SizeOf("struct module_memory")
		if err != nil {
			return nil, err
		}
		base, err1 := k.Member("struct module_memory", "base")
		size, err2 := k.Member("struct module_memory", "size")
		if err := firstError(err1, err2); err != nil {
			return nil, err
		}
		kinds := []string{"text", "data", "rodata", "ro_after_init", "init_text", "init_data", "init_rodata"}
		cnt := int(mem.Size() / es)
		for i := 0; i < cnt && i < len(kinds); i++ {
			off := mem.Offset() + uint64(i)*uint64(es)
			l.regions = append(l.regions, regionLayout{kind: kinds[i], off: off, base: base, size: size, data: kinds[i] == "data"})
		}
	} else {
		for _, kind := range []string{"core", "init"} {
			lay := member(kind + "_layout")
			if err != nil {
				return nil, err
			}
			r := regionLayout{kind: kind, off: lay.Offset(), data: kind == "core"}
			var err1, err2 error
			r.base, err1 = k.Member("struct module_layout", "base")
			r.size, err2 = k.Member("struct module_layout", "size")
			if err := firstError(err1, err2); err != nil {
				return nil, err
			}
			for _, f := range []string{"text_size", "ro_size", "ro_after_init_size"} {
				if m, err := k.Probe("struct module_layout", f); err == nil && m.Present() {
					r.sub = append(r.sub, m)
				}
			}
			l.regions = append(l.regions, r)
		}
	}
	return l, nil
}

func firstError(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// decode reads a candidate from the bytes of a struct module at addr.
func (l *modLayout) decode(addr uint64, b []byte) (*candidate, error) {
	if uint64(len(b)) < l.size {
		return nil, fmt.Errorf("struct module at %#x: %d bytes, want %d", addr, len(b), l.size)
	}
	d := kernel.Decode(b)
	c := &candidate{addr: addr, size: l.size}
	c.state = d.Uint(l.state)
	c.mkobjMod = d.Uint(l.mkobjMod)
	c.name = bytes.Clone(b[l.name.Offset() : l.name.Offset()+uint64(l.name.Size())]) // b is reused
	c.listNext = le64(b[l.list:])
	c.listPrev = le64(b[l.list+8:])
	for _, r := range l.regions {
		rd := kernel.Decode(b[r.off:])
		cr := candRegion{kind: r.kind, base: rd.Uint(r.base), size: rd.Uint(r.size), data: r.data}
		for _, s := range r.sub {
			cr.sub = append(cr.sub, rd.Uint(s))
		}
		if err := rd.Err(); err != nil {
			return nil, fmt.Errorf("struct module at %#x: %s: %w", addr, r.kind, err)
		}
		c.regions = append(c.regions, cr)
	}
	if err := d.Err(); err != nil {
		return nil, fmt.Errorf("struct module at %#x: %w", addr, err)
	}
	return c, nil
}

func le64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}
