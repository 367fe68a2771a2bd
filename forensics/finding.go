package forensics

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/vmleak/vmleak/kernel"
)

// Severity orders findings: High is tampering or code nobody can name,
// Medium is a module in a place rootkits use (legitimate modules do it too),
// Low and Info are context (taint, explained run-time patching).
type Severity int

const (
	Info Severity = iota
	Low
	Medium
	High
)

var severityNames = []string{"info", "low", "medium", "high"}

func (s Severity) String() string {
	if s >= 0 && int(s) < len(severityNames) {
		return severityNames[s]
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// MarshalJSON writes the name, so scripts compare strings, not numbers.
func (s Severity) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON reads a name written by MarshalJSON.
func (s *Severity) UnmarshalJSON(b []byte) error {
	var name string
	if err := json.Unmarshal(b, &name); err != nil {
		return err
	}
	for i, n := range severityNames {
		if n == name {
			*s = Severity(i)
			return nil
		}
	}
	return fmt.Errorf("forensics: unknown severity %q", name)
}

// Finding is one thing a check found. Addr is where the evidence sits (the
// table slot, the patched instruction, the struct module); Target is where
// it leads (the handler, the jump target), with TargetName as resolved
// (kernel function+off, module:function+off, "hidden module NAME", or
// "unknown memory").
type Finding struct {
	Check      string   `json:"check"`
	Kind       string   `json:"kind"`
	Severity   Severity `json:"severity"`
	Summary    string   `json:"summary"`
	Module     string   `json:"module,omitempty"` // the suspect module, when one is named
	Addr       uint64   `json:"addr,omitempty"`
	Symbol     string   `json:"symbol,omitempty"` // what sits at Addr (e.g. sys_call_table[217], proc_version_show+0)
	Target     uint64   `json:"target,omitempty"`
	TargetName string   `json:"target_name,omitempty"`
	Size       uint64   `json:"size,omitempty"` // the extent at Addr (a module's memory, a patched range)
	Evidence   []string `json:"evidence,omitempty"`
}

// Check statuses.
const (
	StatusClean      = "clean"       // examined wholly, nothing above info
	StatusFindings   = "findings"    // examined, something above info found
	StatusPartial    = "partial"     // examined in part; what was not is in Note
	StatusNotChecked = "not checked" // could not be examined at all (Note says why)
	StatusAbsent     = "absent"      // the kernel has no such thing (e.g. no ia32 table)
	// StatusUnsupported: the check is written for another architecture
	// (Note says which); nothing was missed that it could have read.
	StatusUnsupported = "unsupported"
)

// CheckResult is what one check examined.
type CheckResult struct {
	Check   string `json:"check"`
	Status  string `json:"status"`
	Checked int    `json:"checked"`           // entries, handlers or bytes examined
	Skipped int    `json:"skipped,omitempty"` // entries that could not be read
	Note    string `json:"note,omitempty"`
}

// ModuleMemory is the slab memory a suspect module holds, from the
// attribution of allocations (owners).
type ModuleMemory struct {
	Module  string        `json:"module"`
	Objects int64         `json:"objects"`
	Bytes   int64         `json:"bytes"`
	Caches  []CacheMemory `json:"caches,omitempty"`
}

// CacheMemory is a suspect module's objects in one cache.
type CacheMemory struct {
	Cache    string `json:"cache"`
	Objects  int64  `json:"objects"`
	Bytes    int64  `json:"bytes"`
	Evidence string `json:"evidence,omitempty"`
}

// Report is every check's result on one dump.
type Report struct {
	Schema   int            `json:"schema"`
	Release  string         `json:"release"`
	Checks   []CheckResult  `json:"checks"`
	Findings []Finding      `json:"findings"`
	Memory   []ModuleMemory `json:"suspect_memory,omitempty"`
	// HiddenModules are the modules found outside the modules list, with
	// their memory, as the modules check read them.
	HiddenModules []kernel.Module `json:"hidden_modules,omitempty"`
	Warnings      []string        `json:"warnings,omitempty"`
}

// SchemaVersion is Report.Schema.
const SchemaVersion = 1

// Highest is the highest severity found, and whether anything was found.
func (r *Report) Highest() (Severity, bool) {
	if len(r.Findings) == 0 {
		return Info, false
	}
	h := Info
	for _, f := range r.Findings {
		h = max(h, f.Severity)
	}
	return h, true
}

// Partial tells whether some check could not examine all it should have.
func (r *Report) Partial() bool {
	for _, c := range r.Checks {
		if c.Status == StatusPartial || c.Status == StatusNotChecked {
			return true
		}
	}
	return false
}

// SuspectModules are the modules named by findings of medium severity or
// more, in order of first appearance.
func (r *Report) SuspectModules() []string {
	var out []string
	seen := map[string]bool{}
	for _, f := range r.Findings {
		if f.Severity >= Medium && f.Module != "" && !seen[f.Module] {
			seen[f.Module] = true
			out = append(out, f.Module)
		}
	}
	return out
}

// sortFindings orders findings by severity (highest first), then check
// order, then address: the report reads from what matters most.
func sortFindings(fs []Finding, order map[string]int) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.Severity != b.Severity {
			return a.Severity > b.Severity
		}
		if order[a.Check] != order[b.Check] {
			return order[a.Check] < order[b.Check]
		}
		return a.Addr < b.Addr
	})
}
