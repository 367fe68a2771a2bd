package diff

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Scopes of a rule.
const (
	ScopeOverall = "overall" // all slab memory
	ScopeCache   = "cache"   // one cache (by name, any object size), or "*" every cache
	ScopeModule  = "module"  // what one owner holds, or "*" every owner
)

// Rule is a growth limit: exceeded when the growth in bytes is more than
// Bytes, or more than Percent of the size before (a cache that appeared has
// grown by an infinite percentage).
type Rule struct {
	Scope   string  `json:"scope"`
	Name    string  `json:"name"` // cache or owner name, "*"; "" for overall
	Limit   string  `json:"limit"`
	Bytes   int64   `json:"-"`
	Percent float64 `json:"-"`
	IsPct   bool    `json:"-"`
}

func (r Rule) String() string {
	if r.Scope == ScopeOverall {
		return "overall growth > " + r.Limit
	}
	return fmt.Sprintf("%s %s growth > %s", r.Scope, r.Name, r.Limit)
}

// ParseLimit reads a limit: a byte count with an optional unit (K, M, G,
// T or KiB, MiB, GiB, TiB: powers of 1024; B), or a percentage ("5%").
// Decimal units (MB) are refused rather than guessed at.
func ParseLimit(s string) (bytes int64, pct float64, isPct bool, err error) {
	t := strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(t, "%"); ok {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, 0, false, fmt.Errorf("diff: limit %q: not a percentage", s)
		}
		return 0, v, true, nil
	}
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.TrimSpace(t[i:])
	}
	mult := map[string]float64{"": 1, "B": 1, "K": 1 << 10, "KIB": 1 << 10, "M": 1 << 20, "MIB": 1 << 20,
		"G": 1 << 30, "GIB": 1 << 30, "T": 1 << 40, "TIB": 1 << 40}[strings.ToUpper(unit)]
	v, perr := strconv.ParseFloat(num, 64)
	if mult == 0 || perr != nil || v < 0 || v*mult > math.MaxInt64 {
		return 0, 0, false, fmt.Errorf("diff: limit %q: want bytes (4096, 512K, 10MiB, 1G: powers of 1024) or a percentage (5%%)", s)
	}
	return int64(v * mult), 0, false, nil
}

// NewRule makes a rule from a scope, a name and a limit as ParseLimit reads it.
func NewRule(scope, name, limit string) (Rule, error) {
	b, p, isPct, err := ParseLimit(limit)
	if err != nil {
		return Rule{}, err
	}
	return Rule{Scope: scope, Name: name, Limit: limit, Bytes: b, Percent: p, IsPct: isPct}, nil
}

// CheckResult is one rule applied to one thing.
type CheckResult struct {
	Rule     string   `json:"rule"`
	What     string   `json:"what"` // "slab memory", "cache dentry", "module vmleak_test"
	Growth   int64    `json:"growth"`
	Percent  *float64 `json:"percent"` // nil when there was nothing before
	Exceeded bool     `json:"exceeded"`
	// Skipped says why the rule could not be applied (a partial cache).
	Skipped string `json:"skipped"`
}

// Check applies rules, records the results in d.Checks and returns the
// ones exceeded. A rule naming a cache or owner on neither side is an
// error: a misspelt name must not pass a CI job silently.
func (d *Diff) Check(rules []Rule) ([]CheckResult, error) {
	var fired []CheckResult
	apply := func(r Rule, what string, growth, base int64, skipped string) {
		res := CheckResult{Rule: r.String(), What: what, Growth: growth, Skipped: skipped}
		pct := math.Inf(1)
		if base > 0 {
			pct = 100 * float64(growth) / float64(base)
			res.Percent = &pct
		}
		if skipped == "" && growth > 0 {
			res.Exceeded = r.IsPct && pct > r.Percent || !r.IsPct && growth > r.Bytes
		}
		d.Checks = append(d.Checks, res)
		if res.Exceeded {
			fired = append(fired, res)
		}
	}
	for _, r := range rules {
		switch r.Scope {
		case ScopeOverall:
			apply(r, "slab memory", d.Total.Delta, d.Total.Before, "")
		case ScopeCache:
			if r.Name != "*" && !d.cacheNames[r.Name] {
				return nil, fmt.Errorf("diff: --cache %s: no such cache in either summary", r.Name)
			}
			found := false
			for _, c := range d.Caches {
				if r.Name != "*" && c.Name != r.Name {
					continue
				}
				found = true
				what := "cache " + c.Name
				var base int64
				if c.Before != nil {
					base = c.Before.Bytes
				}
				switch {
				case c.Partial != "":
					apply(r, what, 0, base, "partial "+c.Partial)
				case c.Delta == nil:
					apply(r, what, 0, base, c.Status+": no delta")
				default:
					apply(r, what, c.Delta.Bytes, base, "")
				}
			}
			if !found && r.Name != "*" {
				apply(r, "cache "+r.Name, 0, 0, "") // the same on both sides
			}
		case ScopeModule:
			found := r.Name == "*"
			for _, o := range d.Owners {
				if r.Name != "*" && o.Owner != r.Name {
					continue
				}
				found = true
				apply(r, "module "+o.Owner, o.DeltaBytes, o.BytesBefore, "")
			}
			if !found {
				if !d.ownerNames[r.Name] {
					return nil, fmt.Errorf("diff: --module %s: no such owner in either summary", r.Name)
				}
				apply(r, "module "+r.Name, 0, 0, "") // holds the same on both sides
			}
		default:
			return nil, fmt.Errorf("diff: unknown rule scope %q", r.Scope)
		}
	}
	return fired, nil
}
