package forensics

import (
	"fmt"
	"sort"
	"strings"

	"github.com/vmleak/vmleak/modules"
)

// taintSeverity rates the taint flags a rootkit's loading leaves (names as
// in TAINT_<name>, include/linux/panic.h): a forced load or unload is what
// someone does to get past the kernel's checks; unsigned, out-of-tree and
// proprietary modules are common and only context. The rest describe the
// crash (warnings, oopses, machine checks) and are Info.
var taintSeverity = map[string]Severity{
	"FORCED_MODULE":      Medium,
	"FORCED_RMMOD":       Medium,
	"UNSIGNED_MODULE":    Low,
	"OOT_MODULE":         Low,
	"PROPRIETARY_MODULE": Low,
	"LIVEPATCH":          Info,
}

// checkTaint reports the kernel's taint, one finding per flag, naming the
// modules (hidden ones too) that carry it.
func checkTaint(c *Context) ([]Finding, CheckResult) {
	rep, err := modules.Read(c.K, modules.Options{SkipDebuginfo: true})
	if err != nil {
		return nil, CheckResult{Status: StatusNotChecked, Note: err.Error()}
	}
	t := rep.Taint
	if t.Error != "" {
		return nil, CheckResult{Status: StatusNotChecked, Note: "tainted_mask: " + t.Error}
	}
	hiddenTaints := map[string]uint64{}
	for _, h := range c.Hidden {
		v, err := c.K.Object(h.Addr, "struct module").Field("taints").Uint()
		if err != nil {
			c.Warnf("taint: hidden module %s: %v", h.Name, err)
			continue
		}
		hiddenTaints[h.Name] = v
	}
	fs := taintFindings(t, hiddenTaints)
	res := CheckResult{Checked: len(rep.Modules) + len(c.Hidden), Note: strings.TrimSpace(t.String)}
	if rep.Partial {
		res.Status = StatusPartial
		res.Note += "; " + strings.Join(rep.Warnings, "; ")
	}
	return fs, res
}

// taintFindings turns the kernel's taint into one finding per flag, naming
// the modules that carry it, hidden ones (hiddenTaints: name -> mod->taints)
// marked as such.
func taintFindings(t modules.Taint, hiddenTaints map[string]uint64) []Finding {
	var fs []Finding
	names := make([]string, 0, len(hiddenTaints))
	for n := range hiddenTaints {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, fl := range t.Flags {
		mods := append([]string(nil), fl.Modules...)
		for _, name := range names {
			mask := hiddenTaints[name]
			if fl.Bit < 64 && mask&(1<<uint(fl.Bit)) != 0 {
				mods = append(mods, name+" (hidden)")
			}
		}
		sev, ok := taintSeverity[fl.Name]
		if !ok {
			sev = Info
		}
		label := fl.Name
		if label == "" {
			label = fmt.Sprintf("bit %d", fl.Bit)
		}
		f := Finding{
			Kind:     "taint",
			Severity: sev,
			Summary:  fmt.Sprintf("kernel tainted %s (%s)", fl.Char, label),
			Evidence: []string{fmt.Sprintf("tainted_mask %#x: %s", t.Mask, t.String)},
		}
		if len(mods) > 0 {
			f.Summary += " by " + strings.Join(mods, ", ")
			if len(mods) == 1 {
				f.Module = strings.TrimSuffix(mods[0], " (hidden)")
			}
		}
		fs = append(fs, f)
	}
	return fs
}
