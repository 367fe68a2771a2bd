package forensics

import (
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/vmleak/vmleak/kernel"
)

// checkModules compares four views of the loaded modules, as Volatility's
// hidden_modules and check_modules do between them: the modules list,
// sysfs (module_kset), the module address tree (mod_tree) and carving of
// module memory for struct modules. A module any other view sees but the
// list lacks is hidden (what list_del(&THIS_MODULE->list) rootkits do); it
// goes to c.Hidden, so the later checks name addresses in it. A listed
// module another view lacks is a mismatch, except where its state
// explains it (a module is in sysfs, and points back to itself from its
// mkobj, only from mod_sysfs_setup, after COMING; sysfs goes before the
// list on unload).
func checkModules(c *Context) ([]Finding, CheckResult) {
	k := c.K
	l, err := newModLayout(k)
	if err != nil {
		return nil, CheckResult{Status: StatusNotChecked, Note: fmt.Sprintf("struct module: %v", err)}
	}
	ms := moduleSpace(k)
	views, carvedAt := readViews(c, l, ms)

	// Every struct module any view names, the list's first in its order.
	byAddr := map[uint64]*modInfo{}
	var mods []*modInfo
	for vi, v := range views {
		for _, a := range v.mods {
			mi := byAddr[a]
			if mi == nil {
				mi = &modInfo{addr: a}
				byAddr[a] = mi
				mods = append(mods, mi)
			}
			mi.views |= 1 << vi
			if e, ok := v.evidence[a]; ok {
				mi.evidence = append(mi.evidence, e)
			}
		}
	}
	listed := map[uint64]kernel.Module{}
	for _, m := range c.Modules {
		listed[m.Addr] = m
	}
	for _, mi := range mods {
		if m, ok := listed[mi.addr]; ok {
			mi.mod, mi.name = m, m.Name
		}
		cv := carvedAt[mi.addr]
		var cand *candidate
		if cv != nil && cv.err == nil {
			cand = cv.cand
		} else {
			b := make([]byte, l.size)
			if err := k.ReadVirt(b, mi.addr); err != nil {
				mi.invalid = fmt.Errorf("struct module at %#x: %w", mi.addr, err)
				continue
			}
			if cand, err = l.decode(mi.addr, b); err != nil {
				mi.invalid = err
				continue
			}
		}
		mi.state, mi.stateOK = cand.state, true
		if mi.views.has(viewList) {
			continue
		}
		if cand.listNext == listPoison1 || cand.listPrev == listPoison2 {
			mi.evidence = append(mi.evidence, fmt.Sprintf("list pointers poisoned (%#x, %#x): unlinked with list_del", cand.listNext, cand.listPrev))
		} else if self := mi.addr + l.list; cand.listNext == self && cand.listPrev == self {
			mi.evidence = append(mi.evidence, "list points to itself: unlinked with list_del_init")
		}
		if err := cand.validate(ms, l.maxState, false); err != nil {
			mi.invalid, mi.name = err, cand.nameString()
			continue
		}
		m, err := k.ModuleAt(mi.addr)
		if err != nil {
			mi.invalid = err
			continue
		}
		mi.mod, mi.name = m, m.Name
	}
	// Carved candidates with a module's identity whose memory layout does
	// not hold together (stray words that point back are left out).
	var rejected []uint64
	for a, cv := range carvedAt {
		if cv.err != nil && shaped(cv.err) && byAddr[a] == nil {
			rejected = append(rejected, a)
		}
	}
	sort.Slice(rejected, func(i, j int) bool { return rejected[i] < rejected[j] })
	for _, a := range rejected {
		mi := &modInfo{addr: a, views: 1 << viewCarve, invalid: carvedAt[a].err, name: carvedAt[a].cand.nameString()}
		mi.stateOK, mi.state = true, carvedAt[a].cand.state
		mods = append(mods, mi)
	}

	var complete [numViews]bool
	for vi, v := range views {
		complete[vi] = v.complete()
	}
	findings, hidden := judge(mods, complete)
	for i := range findings {
		f := &findings[i]
		if f.Kind == "invalid-module" {
			continue
		}
		mi := byAddr[f.Addr]
		if mi == nil || mi.mod.Name == "" {
			continue
		}
		if id, err := k.ModuleBuildID(mi.mod); err == nil {
			f.Evidence = append(f.Evidence, "build-id "+hex.EncodeToString(id))
		} else {
			f.Evidence = append(f.Evidence, fmt.Sprintf("build-id unreadable: %v", err))
		}
	}
	c.Hidden = hidden

	res := CheckResult{Checked: len(mods)}
	var notes, problems []string
	for vi, v := range views {
		res.Skipped += v.skipped
		s := viewNames[vi]
		switch v.status {
		case StatusAbsent:
			s += " absent"
		case StatusNotChecked:
			s += " not read"
		default:
			s += " " + v.summary
		}
		notes = append(notes, s)
		for _, p := range v.allProblems() {
			problems = append(problems, viewNames[vi]+": "+p)
		}
		if v.status == StatusPartial || v.status == StatusNotChecked {
			res.Status = StatusPartial
		}
	}
	if res.Status == StatusPartial && len(mods) == 0 {
		res.Status = StatusNotChecked
	}
	res.Note = strings.Join(notes, "; ")
	if len(problems) > 0 {
		res.Note += ". " + strings.Join(problems, "; ")
	}
	return findings, res
}

// readViews reads the four views.
func readViews(c *Context, l *modLayout, ms space) ([numViews]*view, map[uint64]*carved) {
	var views [numViews]*view
	views[viewList] = listView(c)
	views[viewSysfs] = sysfsView(c.K, l)
	views[viewTree] = treeView(c.K, l)
	var carvedAt map[uint64]*carved
	views[viewCarve], carvedAt = carveView(c.K, l, ms)
	return views, carvedAt
}

// moduleSpace is MODULES_VADDR..MODULES_END, as mm.MM.Modules has it
// (arch/x86/include/asm/pgtable_64_types.h): __START_KERNEL_map +
// KERNEL_IMAGE_SIZE (1 GiB with KASLR, taken when the kernel was found
// shifted; else 512 MiB, the wider space) up to 0xffffffffff000000. It is
// not asked of package mm: mm.New probes struct page, which on a BTF-only
// vmlinux costs a scan of every type, for two constants.
func moduleSpace(k *kernel.Kernel) space {
	if start, end, ok := k.ARM64ModuleSpace(); ok {
		return space{start, end}
	}
	const startKernelMap, modulesEnd = 0xffffffff80000000, 0xffffffffff000000
	image := uint64(512 << 20)
	if k.Layout().KASLROffset != 0 {
		image = 1 << 30
	}
	return space{startKernelMap + image, modulesEnd}
}

// modInfo is one struct module as the views saw it.
type modInfo struct {
	addr     uint64
	name     string
	state    uint64
	stateOK  bool
	views    viewSet
	mod      kernel.Module // read, for modules that validate or are listed
	invalid  error         // why a module off the list is not believed
	evidence []string      // what the views saw of it
}

// legitMissing tells whether a module in state may lack view v: sysfs
// and mkobj.mod (what carving finds modules by) come with mod_sysfs_setup,
// after the module turns COMING; on unload sysfs goes while it is GOING.
func legitMissing(state uint64, v int) bool {
	switch state {
	case stateUnformed, stateComing:
		return v == viewSysfs || v == viewCarve
	case stateGoing:
		return v == viewSysfs
	}
	return false
}

// judge turns what the views saw into findings; complete tells the views
// read wholly (a module missing from a view read in part may be in the
// part not read). It returns the hidden modules too.
func judge(mods []*modInfo, complete [numViews]bool) ([]Finding, []kernel.Module) {
	var out []Finding
	var hidden []kernel.Module
	for _, mi := range mods {
		state := "state unknown"
		if mi.stateOK {
			state = stateName(mi.state)
		}
		name := mi.name
		if name == "" {
			name = "?"
		}
		if mi.views.has(viewList) {
			var missing []string
			legit := true
			for v := viewSysfs; v < numViews; v++ {
				if complete[v] && !mi.views.has(v) {
					missing = append(missing, viewNames[v])
					legit = legit && mi.stateOK && legitMissing(mi.state, v)
				}
			}
			if len(missing) == 0 {
				continue
			}
			f := Finding{
				Kind: "module-view-mismatch", Severity: Medium, Module: mi.name, Addr: mi.addr, Size: totalSize(mi.mod),
				Summary:  fmt.Sprintf("listed module %s (%s) is missing from %s", name, state, strings.Join(missing, " and ")),
				Evidence: append([]string{fmt.Sprintf("struct module %#x, %s", mi.addr, state), "seen by " + strings.Join(mi.views.names(), ", ")}, rangeEvidence(mi.mod)...),
			}
			if legit {
				f.Severity = Info
				f.Evidence = append(f.Evidence, state+" legitimately lacks "+strings.Join(missing, " and "))
			}
			out = append(out, append1(f, mi.evidence...))
			continue
		}
		seen := strings.Join(mi.views.names(), ", ")
		if mi.invalid != nil && (mi.views.has(viewSysfs) || mi.views.has(viewTree)) {
			// The kernel's own structures lead to it: hidden, whatever its
			// struct module says of its memory (not believed, so not
			// resolvable by the other checks).
			out = append(out, append1(Finding{
				Kind: "hidden-module", Severity: High, Module: mi.name, Addr: mi.addr,
				Summary:  fmt.Sprintf("%s name a struct module at %#x that is not on the modules list and does not hold together: %v", seen, mi.addr, mi.invalid),
				Evidence: []string{fmt.Sprintf("struct module %#x (name %q, %s)", mi.addr, name, state), "seen by " + seen + "; not on the modules list", "not a valid struct module: " + mi.invalid.Error()},
			}, mi.evidence...))
			continue
		}
		if mi.invalid != nil {
			out = append(out, append1(Finding{
				Kind: "invalid-module", Severity: Medium, Module: mi.name, Addr: mi.addr,
				Summary:  fmt.Sprintf("%s names a struct module at %#x that does not hold together: %v", seen, mi.addr, mi.invalid),
				Evidence: []string{fmt.Sprintf("struct module %#x (name %q, %s)", mi.addr, name, state), "seen by " + seen + "; not on the modules list", mi.invalid.Error()},
			}, mi.evidence...))
			continue
		}
		f := Finding{
			Kind: "hidden-module", Severity: High, Module: mi.name, Addr: mi.addr, Size: totalSize(mi.mod),
			Summary:  fmt.Sprintf("module %s at %#x is hidden from the modules list (seen by %s)", name, mi.addr, seen),
			Evidence: append([]string{fmt.Sprintf("struct module %#x, %s", mi.addr, state), "seen by " + seen + "; not on the modules list"}, rangeEvidence(mi.mod)...),
		}
		if mi.views == 1<<viewCarve && mi.state == stateUnformed {
			// Off every list but mapped: being loaded or freed.
			f.Severity = Medium
			f.Evidence = append(f.Evidence, "MODULE_STATE_UNFORMED and found by carving only: a module being loaded or unloaded looks so too")
		}
		if !complete[viewList] {
			// Off the part of the list that could be read is not off the
			// list: a truncated or filtered dump breaks it as surely as an
			// unlink. Still reported (a crafted break is a way to hide),
			// but not as a proven hiding; the check is partial.
			f.Severity = Medium
			f.Summary = fmt.Sprintf("module %s at %#x is not on the part of the modules list that could be read (seen by %s)", name, mi.addr, seen)
			f.Evidence = append(f.Evidence, "the modules list could not be read wholly: the module may be lost to its break")
		}
		out = append(out, append1(f, mi.evidence...))
		hidden = append(hidden, mi.mod)
	}
	return out, hidden
}

func append1(f Finding, ev ...string) Finding {
	f.Evidence = append(f.Evidence, ev...)
	return f
}

func totalSize(m kernel.Module) uint64 {
	var n uint64
	for _, r := range m.Ranges {
		n += r.Size
	}
	return n
}

func rangeEvidence(m kernel.Module) []string {
	var out []string
	for _, r := range m.Ranges {
		if r.Base+r.Size < r.Base {
			out = append(out, fmt.Sprintf("%s %#x+%#x (%d bytes, past the end of the address space)", r.Kind, r.Base, r.Size, r.Size))
			continue
		}
		out = append(out, fmt.Sprintf("%s %#x-%#x (%d bytes)", r.Kind, r.Base, r.Base+r.Size, r.Size))
	}
	return out
}
