package forensics

import (
	"errors"
	"fmt"

	"github.com/vmleak/vmleak/kernel"
)

// The views of the loaded modules besides the modules list.
const (
	viewList = iota
	viewSysfs
	viewTree
	viewCarve
	numViews
)

var viewNames = [numViews]string{"modules list", "sysfs", "mod_tree", "carving"}

// viewSet is a set of views.
type viewSet uint8

func (s viewSet) has(v int) bool { return s&(1<<v) != 0 }

func (s viewSet) names() []string {
	var out []string
	for v := range numViews {
		if s.has(v) {
			out = append(out, viewNames[v])
		}
	}
	return out
}

// view is what one view read: the struct modules it names, in the order
// seen, and whether it was read wholly.
type view struct {
	mods     []uint64
	seen     map[uint64]bool
	dropped  int    // problems past maxProblems
	status   string // "" (read wholly), StatusPartial, StatusNotChecked or StatusAbsent
	problems []string
	skipped  int
	summary  string            // what it read, for the note
	evidence map[uint64]string // per module, a fact this view saw (sysfs name, tree node place)
}

// complete tells whether a module missing from the view is missing.
func (v *view) complete() bool { return v.status == "" }

func (v *view) fail(status, format string, args ...any) {
	if v.status == "" || v.status == StatusPartial {
		v.status = status
	}
	if len(v.problems) < maxProblems {
		v.problems = append(v.problems, fmt.Sprintf(format, args...))
	} else {
		v.dropped++
	}
}

// allProblems are the problems, the count of those left out last.
func (v *view) allProblems() []string {
	if v.dropped == 0 {
		return v.problems
	}
	return append(v.problems[:len(v.problems):len(v.problems)], fmt.Sprintf("%d more problems", v.dropped))
}

func (v *view) add(mod uint64) {
	if v.seen == nil {
		v.seen = map[uint64]bool{}
	}
	if !v.seen[mod] {
		v.seen[mod] = true
		v.mods = append(v.mods, mod)
	}
}

// Bounds on the views' walks.
const (
	maxKsetEntries = 1 << 16
	maxTreeNodes   = 1 << 16
	maxCarveArea   = 64 << 20  // one vmap area; module areas are well below
	maxCarveBytes  = 1<<30 + 1 // all of module space
	maxProblems    = 8
)

// listView is the modules list as Run read it.
func listView(c *Context) *view {
	v := &view{}
	for _, m := range c.Modules {
		v.add(m.Addr)
	}
	if c.ModulesErr != nil {
		v.fail(StatusPartial, "%v", c.ModulesErr)
	}
	v.summary = fmt.Sprintf("%d", len(v.mods))
	return v
}

// sysfsView reads /sys/module: module_kset's list of kobjects, each the
// kobj of a struct module_kobject whose mod is the module (NULL for the
// parameter directories of built-in modules, which are counted only).
func sysfsView(k *kernel.Kernel, l *modLayout) *view {
	v := &view{evidence: map[uint64]string{}}
	kset, err := k.Var("module_kset", "struct kset *").Ptr()
	if err != nil {
		v.fail(StatusNotChecked, "module_kset: %v", err)
		return v
	}
	if kset == 0 {
		v.fail(StatusNotChecked, "module_kset is NULL")
		return v
	}
	listOff, err1 := k.Member("struct kset", "list")
	entryOff, err2 := k.Member("struct kobject", "entry")
	nameOff, err3 := k.Member("struct kobject", "name")
	kobjOff, err4 := k.Member("struct module_kobject", "kobj")
	modOff, err5 := k.Member("struct module_kobject", "mod")
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		v.fail(StatusNotChecked, "%v", err)
		return v
	}
	head := kset + listOff.Offset()
	entries, err := k.ListEntries(head, maxKsetEntries)
	if err != nil {
		v.fail(StatusPartial, "module_kset list at %#x: %v", head, err)
	}
	builtin := 0
	for _, e := range entries {
		kobj := e - entryOff.Offset()
		mk := kobj - kobjOff.Offset()
		mod, err := k.ReadPtr(mk + modOff.Offset())
		if err != nil {
			v.skipped++
			v.fail(StatusPartial, "module_kobject %#x: %v", mk, err)
			continue
		}
		if mod == 0 {
			builtin++
			continue
		}
		v.add(mod)
		var notes []string
		if np, err := k.ReadPtr(kobj + nameOff.Offset()); err == nil && np != 0 {
			if s, err := k.ReadCString(np, 64); err == nil {
				notes = append(notes, fmt.Sprintf("sysfs /sys/module/%s", kernel.Printable(s)))
			}
		}
		if mk != mod+l.mkobj {
			notes = append(notes, fmt.Sprintf("sysfs kobject %#x is not the module's own mkobj (%#x)", kobj, mod+l.mkobj))
		}
		if len(notes) > 0 {
			v.evidence[mod] = joinNotes(notes)
		}
	}
	v.summary = fmt.Sprintf("%d (+%d built-in)", len(v.mods), builtin)
	return v
}

// treeView walks the module address tree: mod_tree (struct mod_tree_root)
// holds a latch tree, two copies of one rb tree, of the struct
// mod_tree_node {mod; node} embedded in each module's layouts (up to 6.3)
// or memories (6.4+). The first copy is walked, bounded and with cycle
// detection. Without CONFIG_MODULES_TREE_LOOKUP the root has no tree.
func treeView(k *kernel.Kernel, l *modLayout) *view {
	v := &view{evidence: map[uint64]string{}}
	root, err := k.Symbol("mod_tree")
	if err != nil {
		v.fail(StatusAbsent, "no mod_tree: %v", err)
		return v
	}
	treeOff, err := k.Probe("struct mod_tree_root", "root")
	if err != nil || !treeOff.Present() {
		v.fail(StatusAbsent, "struct mod_tree_root has no latch tree (no CONFIG_MODULES_TREE_LOOKUP)")
		return v
	}
	trees, err1 := k.Member("struct latch_tree_root", "tree")
	nodeOff, err2 := k.Member("struct mod_tree_node", "node")
	modOff, err3 := k.Member("struct mod_tree_node", "mod")
	if err := errors.Join(err1, err2, err3); err != nil {
		v.fail(StatusNotChecked, "%v", err)
		return v
	}
	// tree[0].rb_node; the node of tree 0 is latch_tree_node.node[0], at 0.
	rootPtr := root + treeOff.Offset() + trees.Offset()
	if _, err := k.ReadPtr(rootPtr); err != nil {
		v.fail(StatusNotChecked, "mod_tree root at %#x: %v", rootPtr, err)
		return v
	}
	nodes, errs := k.RBNodes(rootPtr, maxTreeNodes)
	for _, err := range errs {
		var re *kernel.ReadError
		if errors.As(err, &re) {
			v.skipped++
		}
		v.fail(StatusPartial, "%v", err)
	}
	places := map[uint64][]string{}
	for _, n := range nodes {
		mtn := n - nodeOff.Offset()
		mod, err := k.ReadPtr(mtn + modOff.Offset())
		if err != nil {
			v.skipped++
			v.fail(StatusPartial, "node %#x: %v", n, err)
			continue
		}
		if mod == 0 {
			v.fail(StatusPartial, "node %#x names no module", n)
			continue
		}
		v.add(mod)
		places[mod] = append(places[mod], l.nodePlace(mod, mtn))
	}
	for mod, p := range places {
		v.evidence[mod] = "mod_tree nodes " + joinNotes(p)
	}
	v.summary = fmt.Sprintf("%d (%d nodes)", len(v.mods), len(nodes))
	return v
}

// nodePlace names where a tree node lies: in which of the module's
// layouts or memories, or outside its struct module.
func (l *modLayout) nodePlace(mod, mtn uint64) string {
	if mtn < mod || mtn-mod >= l.size {
		return fmt.Sprintf("%#x (outside its struct module)", mtn)
	}
	off := mtn - mod
	name := fmt.Sprintf("struct module+%#x", off)
	for _, r := range l.regions { // in offset order
		if off >= r.off {
			name = r.kind
		}
	}
	return name
}

func joinNotes(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out
}

// carved is what carving made of one candidate struct module.
type carved struct {
	cand *candidate
	err  error // why it is not a plausible struct module; nil if it is
}

// carveView scans the busy vmap areas of module space for struct modules:
// every 8-byte word that holds its own address less the offset of
// mkobj.mod (mod->mkobj.mod == mod for every module past mod_sysfs_init)
// makes a candidate, decoded from the bytes around it and validated. Pages
// that cannot be read are counted; a candidate across one is skipped, not
// judged.
func carveView(k *kernel.Kernel, l *modLayout, ms space) (*view, map[uint64]*carved) {
	v := &view{}
	found := map[uint64]*carved{}
	areas, err := k.VmapAreas(ms.start, ms.end)
	if err != nil {
		if len(areas) == 0 {
			v.fail(StatusNotChecked, "vmap areas: %v", err)
			return v, found
		}
		v.fail(StatusPartial, "vmap areas: %v", err)
	}
	ps := k.PageSize()
	if ps == 0 {
		ps = 4096
	}
	selfOff := l.mkobjMod.Offset()
	var buf []byte
	var bad []bool
	var total, unmapped, missing uint64
	scanned, stray := 0, 0
	for _, a := range areas {
		start, end := max(a.Start, ms.start), min(a.End, ms.end)
		if start >= end {
			continue
		}
		n := end - start
		if n > maxCarveArea {
			v.fail(StatusPartial, "vmap area %#x-%#x (%d MiB) not carved: larger than %d MiB", start, end, n>>20, maxCarveArea>>20)
			continue
		}
		if total+n > maxCarveBytes {
			v.fail(StatusPartial, "carving stopped at %#x: more than %d MiB of vmap areas in module space", start, maxCarveBytes>>20)
			break
		}
		total += n
		scanned++
		if uint64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		pages := int((n + ps - 1) / ps)
		bad = append(bad[:0], make([]bool, pages)...)
		for p := range pages {
			off := uint64(p) * ps
			chunk := buf[off:min(off+ps, n)]
			if err := k.ReadVirt(chunk, start+off); err != nil {
				clear(chunk)
				bad[p] = true
				switch {
				case kernel.IsMissing(err):
					missing++
				case p < pages-1:
					unmapped++ // the last is the guard page
				}
			}
		}
		for o := selfOff; o+8 <= n; o += 8 {
			cand := start + o - selfOff
			if le64(buf[o:]) != cand {
				continue
			}
			lo := o - selfOff
			if lo+l.size > n {
				stray++ // a struct module is in its data region, inside its area
				continue
			}
			across := false
			for p := lo / ps; p <= (lo+l.size-1)/ps; p++ {
				across = across || bad[p]
			}
			if across {
				v.skipped++
				v.fail(StatusPartial, "candidate struct module at %#x lies across a page that cannot be read", cand)
				continue
			}
			c, err := l.decode(cand, buf[lo:lo+l.size])
			if err != nil {
				v.skipped++
				v.fail(StatusPartial, "%v", err)
				continue
			}
			found[cand] = &carved{cand: c, err: c.validate(ms, l.maxState, true)}
			switch err := found[cand].err; {
			case err == nil:
				v.add(cand)
			case !shaped(err):
				stray++
			}
		}
	}
	v.summary = fmt.Sprintf("%d in %d vmap areas (%d KiB, %d stray self-pointers", len(v.mods), scanned, total>>10, stray)
	if unmapped > 0 {
		v.summary += fmt.Sprintf("; %d pages not mapped", unmapped)
	}
	v.summary += ")"
	if missing > 0 {
		v.fail(StatusPartial, "%d pages of module memory are missing from the dump: a struct module there is not seen", missing)
	}
	return v, found
}
