package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmleak/vmleak/diff"
	"github.com/vmleak/vmleak/kdwarf"
	"github.com/vmleak/vmleak/summary"
)

type diffOptions struct {
	vmlinuxBefore, vmlinuxAfter string
	limits, caches, modules     []string
	markdown, all               bool
}

func newDiffCmd(g *globalOptions) *cobra.Command {
	o := &diffOptions{}
	cmd := &cobra.Command{
		Use:   "diff BEFORE AFTER",
		Short: "Say what grew between two dumps (or summaries): caches, owners, meminfo",
		Long: `diff compares two dumps, or two summaries written by vmleak summary, or one
of each: every slab cache's allocated and total objects, slabs and bytes
(slab memory) before and after, the change and the ratio, largest growth
first; caches that appeared or vanished; what each owner (module, kernel,
unattributed) and, where allocations are tracked, each call site holds more
or less; and the meminfo lines that moved. Caches are matched by name and
object size, never by address; one merged into another on one side only is
matched through its aliases and said so. A cache with slabs missing from
either dump is marked partial and never counted as growth.

A dump is summarized in memory first, with --vmlinux-before/--vmlinux-after
(or --vmlinux for both, or the vmlinux found for each dump's release).

--fail-if-growth LIMIT (repeatable) makes growth an error, exit code 6: a
byte count (4096, 512K, 10MiB, 1G; powers of 1024) or a percentage of the
size before (5%). It applies to all slab memory, or with --cache NAME to each
named cache and with --module NAME to what each named owner holds (both
repeatable; "*" is every cache or owner). The rules that fired are printed
on stderr and are in the JSON's "checks".

` + exitCodesHelp,
		Example: `  vmleak diff before.vmcore after.vmcore
  vmleak diff monday.parquet friday.vmcore --vmlinux-after /usr/lib/debug/boot/vmlinux-6.12.57+deb13-amd64
  vmleak diff a.json b.json --fail-if-growth 10MiB
  vmleak diff a.json b.json --fail-if-growth 5% --cache dentry --module mydriver
  vmleak diff a.json b.json --markdown >> report.md`,
		Args: exactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			if o.markdown && g.json {
				return &usageError{msg: "--markdown and --json exclude each other"}
			}
			rules, err := o.rules()
			if err != nil {
				return err
			}
			sides, err := g.loadSides(c, args, [2]string{o.vmlinuxBefore, o.vmlinuxAfter})
			if err != nil {
				return err
			}
			d, err := diff.Compare(sides[0], sides[1], diff.Options{All: o.all})
			if err != nil {
				return &inputError{err}
			}
			fired, err := d.Check(rules)
			if err != nil {
				return &usageError{msg: err.Error()}
			}
			out := c.OutOrStdout()
			switch {
			case g.json:
				if err := writeJSON(out, d); err != nil {
					return err
				}
			case o.markdown:
				writeDiffMarkdown(out, d)
			default:
				writeDiffText(out, d)
			}
			for i, s := range sides {
				// Each side's own warnings (an incomplete dump, a corrupt
				// freelist's address), named by the file they are about.
				ws := make([]string, 0, len(s.Warnings)+1)
				for _, w := range dedupe(append([]string{}, s.Warnings...)) {
					ws = append(ws, args[i]+": "+w)
				}
				if s.Partial {
					ws = append(ws, s.Dump.File+" is partial: its partial caches are never counted as growth")
				}
				printWarnings(c.ErrOrStderr(), ws)
			}
			if len(fired) > 0 {
				for _, f := range fired {
					fmt.Fprintf(c.ErrOrStderr(), "vmleak: growth limit exceeded: %s grew %s%s (rule: %s)\n", f.What, signedBytes(f.Growth), pctNote(f.Percent), f.Rule)
				}
				return errGrowth
			}
			if sides[0].Partial || sides[1].Partial {
				return errPartial
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.vmlinuxBefore, "vmlinux-before", "", "vmlinux of the BEFORE dump (default --vmlinux, or found)")
	f.StringVar(&o.vmlinuxAfter, "vmlinux-after", "", "vmlinux of the AFTER dump (default --vmlinux, or found)")
	f.StringArrayVar(&o.limits, "fail-if-growth", nil, "exit 6 if growth exceeds LIMIT: bytes (10MiB) or percent (5%) (repeatable)")
	f.StringArrayVar(&o.caches, "cache", nil, "apply --fail-if-growth to this cache, \"*\" every cache (repeatable)")
	f.StringArrayVar(&o.modules, "module", nil, "apply --fail-if-growth to what this owner holds, \"*\" every owner (repeatable)")
	f.BoolVar(&o.markdown, "markdown", false, "print Markdown tables (for a report or a pull request)")
	f.BoolVar(&o.all, "all", false, "list unchanged caches, owners and meminfo lines too")
	return cmd
}

// rules turns the flags into growth rules: each limit overall, or for each
// named cache and owner.
func (o *diffOptions) rules() ([]diff.Rule, error) {
	if len(o.limits) == 0 && (len(o.caches) > 0 || len(o.modules) > 0) {
		return nil, &usageError{msg: "--cache and --module name what --fail-if-growth applies to: give a limit"}
	}
	var rules []diff.Rule
	for _, l := range o.limits {
		add := func(scope, name string) error {
			r, err := diff.NewRule(scope, name, l)
			if err != nil {
				return &usageError{msg: "--fail-if-growth: " + err.Error()}
			}
			rules = append(rules, r)
			return nil
		}
		if len(o.caches) == 0 && len(o.modules) == 0 {
			if err := add(diff.ScopeOverall, ""); err != nil {
				return nil, err
			}
		}
		for _, n := range o.caches {
			if err := add(diff.ScopeCache, n); err != nil {
				return nil, err
			}
		}
		for _, n := range o.modules {
			if err := add(diff.ScopeModule, n); err != nil {
				return nil, err
			}
		}
	}
	return rules, nil
}

// loadSides reads each argument as a summary or, if it is not one,
// summarizes it as a dump; two dumps are read at once.
func (g *globalOptions) loadSides(c *cobra.Command, args []string, vmlinux [2]string) ([2]*summary.Summary, error) {
	var sides [2]*summary.Summary
	var errs [2]error
	var wg sync.WaitGroup
	gs := *g
	if shared := g.sharedVmlinux(args, vmlinux); shared != "" {
		// Two dumps of one vmlinux: its types are decoded once, not per side.
		f, err := kdwarf.Open(shared, g.kdwarfOptions()...)
		if err != nil {
			return sides, classify(err)
		}
		defer f.Close()
		gs.sharedTypes = f
	}
	for i, path := range args {
		isSum, err := isSummaryArg(path)
		if err != nil {
			return sides, &inputError{err}
		}
		if isSum {
			s, err := summary.ReadFile(path)
			if err != nil {
				return sides, &inputError{err}
			}
			sides[i] = s
			continue
		}
		v := vmlinux[i]
		if v == "" {
			v = g.vmlinux
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sides[i], errs[i] = gs.summarize(c, path, v, summary.Options{})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs[0], errs[1]); err != nil {
		// One side's error keeps its class (and exit code); the first wins.
		for _, e := range errs {
			if e != nil {
				return sides, e
			}
		}
	}
	return sides, nil
}

// sharedVmlinux is the vmlinux both sides name, when both are dumps given
// the same one, else "".
func (g *globalOptions) sharedVmlinux(args []string, vmlinux [2]string) string {
	if g.noVmlinux {
		return "" // each dump's own types
	}
	var v [2]string
	for i, path := range args {
		if isSum, err := isSummaryArg(path); err != nil || isSum {
			return ""
		}
		v[i] = vmlinux[i]
		if v[i] == "" {
			v[i] = g.vmlinux
		}
	}
	if v[0] == "" || v[0] != v[1] {
		return ""
	}
	return v[0]
}

func signedBytes(b int64) string {
	if b < 0 {
		return "-" + humanBytes(uint64(-b))
	}
	return "+" + humanBytes(uint64(b))
}

func pctNote(p *float64) string {
	if p == nil {
		return " (from nothing)"
	}
	return fmt.Sprintf(" (%+.1f%%)", *p)
}

func sideLine(s diff.Side) string {
	t := "time unknown"
	if s.CrashTime != nil {
		t = s.CrashTime.Format(time.RFC3339)
	}
	p := ""
	if s.Partial {
		p = "  PARTIAL"
	}
	return fmt.Sprintf("%s  host %s  %s  %s%s", s.File, s.Hostname, s.Release, t, p)
}

// arrow is "before -> after", a missing side as "-".
func arrow(b, a *diff.Counts, f func(diff.Counts) string) string {
	s := func(c *diff.Counts) string {
		if c == nil {
			return "-"
		}
		return f(*c)
	}
	return s(b) + " -> " + s(a)
}

// cacheCells are one cache row's cells, for text and Markdown alike.
func cacheCells(c diff.Cache) []string {
	alloc := func(x diff.Counts) string { return fmt.Sprint(x.Allocated) }
	slabs := func(x diff.Counts) string { return fmt.Sprint(x.Slabs) }
	mem := func(x diff.Counts) string { return humanBytes(uint64(x.Bytes)) }
	da, ds, db, ratio := "", "", "", "-"
	if c.Delta != nil {
		da, ds, db = fmt.Sprintf("%+d", c.Delta.Allocated), fmt.Sprintf("%+d", c.Delta.Slabs), signedBytes(c.Delta.Bytes)
	}
	if c.Ratio != nil {
		ratio = fmt.Sprintf("%.2f", *c.Ratio)
	}
	status := c.Status
	if c.Partial != "" {
		status += ", partial " + c.Partial
	}
	if c.Note != "" {
		status += ": " + c.Note
	}
	return []string{c.Name, fmt.Sprint(c.ObjectSize), arrow(c.Before, c.After, alloc), da, arrow(c.Before, c.After, slabs), ds,
		arrow(c.Before, c.After, mem), db, ratio, status}
}

const cacheAlign = "lrrrrrrrrl"

var cacheHeader = []string{"CACHE", "OBJSIZE", "ALLOCATED", "ΔALLOC", "SLABS", "ΔSLABS", "BYTES", "ΔBYTES", "RATIO", "STATUS"}

func totalLine(d *diff.Diff) string {
	s := fmt.Sprintf("slab memory %s -> %s (%s", humanBytes(uint64(d.Total.Before)), humanBytes(uint64(d.Total.After)), signedBytes(d.Total.Delta))
	if d.Total.Ratio != nil {
		s += fmt.Sprintf(", %+.1f%%", 100*(*d.Total.Ratio-1))
	}
	s += ")"
	if len(d.Total.Excluded) > 0 {
		s += ", partial caches left out: " + strings.Join(d.Total.Excluded, ", ")
	}
	return s
}

func writeDiffText(w io.Writer, d *diff.Diff) {
	fmt.Fprintf(w, "before  %s\nafter   %s\n", sideLine(d.Before), sideLine(d.After))
	for _, n := range d.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	fmt.Fprintln(w, totalLine(d))
	if d.Empty() && len(d.Caches) == 0 {
		fmt.Fprintln(w, "no change")
		return
	}
	if len(d.Caches) > 0 {
		fmt.Fprintln(w)
		rows := [][]string{cacheHeader}
		for _, c := range d.Caches {
			rows = append(rows, cacheCells(c))
		}
		writeColumns(w, rows, cacheAlign)
	}
	if len(d.Owners) > 0 {
		fmt.Fprintln(w)
		rows := [][]string{{"OWNER", "CACHE", "OBJECTS", "ΔOBJECTS", "BYTES", "ΔBYTES"}}
		for _, o := range d.Owners {
			p := ""
			if o.Partial {
				p = " (partial)"
			}
			rows = append(rows, []string{o.Owner + p, "", fmt.Sprintf("%d -> %d", o.ObjectsBefore, o.ObjectsAfter), fmt.Sprintf("%+d", o.DeltaObjects),
				humanBytes(uint64(o.BytesBefore)) + " -> " + humanBytes(uint64(o.BytesAfter)), signedBytes(o.DeltaBytes)})
			for _, oc := range o.Caches {
				rows = append(rows, []string{"", oc.Cache, fmt.Sprintf("%d -> %d", oc.ObjectsBefore, oc.ObjectsAfter), fmt.Sprintf("%+d", oc.DeltaObjects),
					humanBytes(uint64(oc.BytesBefore)) + " -> " + humanBytes(uint64(oc.BytesAfter)), signedBytes(oc.DeltaBytes)})
			}
		}
		writeColumns(w, rows, "llrrrr")
	}
	if len(d.Sites) > 0 {
		fmt.Fprintln(w)
		rows := [][]string{{"CACHE", "OBJECTS", "ΔOBJECTS", "ΔBYTES", "CALL SITE"}}
		for _, s := range d.Sites {
			rows = append(rows, []string{s.Cache, fmt.Sprintf("%d -> %d", s.ObjectsBefore, s.ObjectsAfter), fmt.Sprintf("%+d", s.DeltaObjects), signedBytes(s.DeltaBytes), s.Site})
		}
		writeColumns(w, rows, "lrrrl")
	}
	if len(d.Meminfo) > 0 {
		fmt.Fprintln(w)
		rows := [][]string{{"MEMINFO", "BEFORE", "AFTER", "DELTA"}}
		for _, m := range d.Meminfo {
			rows = append(rows, meminfoCells(m))
		}
		writeColumns(w, rows, "lrrr")
	}
}

func meminfoCells(m diff.Meminfo) []string {
	v := func(p *int64) string {
		if p == nil {
			return "-"
		}
		return strings.TrimSpace(fmt.Sprintf("%d %s", *p, m.Unit))
	}
	return []string{m.Name, v(m.Before), v(m.After), strings.TrimSpace(fmt.Sprintf("%+d %s", m.Delta, m.Unit))}
}

// writeColumns prints rows as aligned columns, align saying per column
// 'l' (left) or 'r' (right); a last left-aligned column is not padded.
func writeColumns(w io.Writer, rows [][]string, align string) {
	width := map[int]int{}
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	for _, r := range rows {
		var sb strings.Builder
		for i, c := range r {
			if i > 0 {
				sb.WriteString("  ")
			}
			pad := strings.Repeat(" ", width[i]-len([]rune(c)))
			if align[i] == 'r' {
				sb.WriteString(pad + c)
			} else {
				sb.WriteString(c + pad)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(sb.String(), " "))
	}
}

func writeDiffMarkdown(w io.Writer, d *diff.Diff) {
	esc := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	table := func(head []string, rows [][]string, align string) {
		fmt.Fprintf(w, "| %s |\n|", strings.Join(head, " | "))
		for i := range head {
			if align[i] == 'r' {
				fmt.Fprint(w, "---:|")
			} else {
				fmt.Fprint(w, "---|")
			}
		}
		fmt.Fprintln(w)
		for _, r := range rows {
			for i := range r {
				r[i] = esc(r[i])
			}
			fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
		}
	}
	fmt.Fprintf(w, "### vmleak diff\n\n- before: `%s`\n- after: `%s`\n", sideLine(d.Before), sideLine(d.After))
	for _, n := range d.Notes {
		fmt.Fprintf(w, "- note: %s\n", n)
	}
	fmt.Fprintf(w, "- %s\n", totalLine(d))
	for _, ch := range d.Checks {
		if ch.Exceeded {
			fmt.Fprintf(w, "- **growth limit exceeded**: %s grew %s%s (rule: %s)\n", ch.What, signedBytes(ch.Growth), pctNote(ch.Percent), ch.Rule)
		}
	}
	if len(d.Caches) == 0 {
		fmt.Fprintln(w, "\nNo cache changed.")
	} else {
		fmt.Fprint(w, "\n#### Caches\n\n")
		var rows [][]string
		for _, c := range d.Caches {
			rows = append(rows, cacheCells(c))
		}
		table(cacheHeader, rows, cacheAlign)
	}
	if len(d.Owners) > 0 {
		fmt.Fprint(w, "\n#### Owners\n\n")
		var rows [][]string
		for _, o := range d.Owners {
			for _, oc := range o.Caches {
				rows = append(rows, []string{o.Owner, oc.Cache, fmt.Sprintf("%d -> %d", oc.ObjectsBefore, oc.ObjectsAfter), fmt.Sprintf("%+d", oc.DeltaObjects), signedBytes(oc.DeltaBytes)})
			}
		}
		table([]string{"OWNER", "CACHE", "OBJECTS", "ΔOBJECTS", "ΔBYTES"}, rows, "llrrr")
	}
	if len(d.Sites) > 0 {
		fmt.Fprint(w, "\n#### Call sites\n\n")
		var rows [][]string
		for _, s := range d.Sites {
			rows = append(rows, []string{s.Cache, "`" + s.Site + "`", fmt.Sprintf("%+d", s.DeltaObjects), signedBytes(s.DeltaBytes)})
		}
		table([]string{"CACHE", "CALL SITE", "ΔOBJECTS", "ΔBYTES"}, rows, "llrr")
	}
	if len(d.Meminfo) > 0 {
		fmt.Fprint(w, "\n#### meminfo\n\n")
		var rows [][]string
		for _, m := range d.Meminfo {
			rows = append(rows, meminfoCells(m))
		}
		table([]string{"LINE", "BEFORE", "AFTER", "DELTA"}, rows, "lrrr")
	}
}
