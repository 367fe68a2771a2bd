package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vmleak/vmleak/modules"
)

func newModulesCmd(g *globalOptions) *cobra.Command {
	var regions, noDebuginfo bool
	cmd := &cobra.Command{
		Use:   "modules DUMP [PART...]",
		Short: "List the loaded modules and the kernel's taint (like /proc/modules)",
		Long: `modules lists every loaded module as the crashed kernel's /proc/modules would
have, newest first: name, size, refcount, the modules using it, state, base
address and taint flags, computed as kernel/module/procfs.c does on the
dumped kernel. Beyond /proc/modules: the struct module address, the build-id,
where the module's debuginfo was found (--debuginfo-dir roots first), and
the module parameters with their values where the kernel's own param ops
hold them. --regions adds each module's memory regions.

The first line is the kernel's taint as an oops prints it (print_tainted(),
with the dump's own taint_flags table) and tainted_mask, then which module
carries which taint.

` + exitCodesHelp,
		Example: `  vmleak modules vmcore
  vmleak modules vmcore --debuginfo-dir /srv/debug --regions
  vmleak modules vmcore --json | jq '.modules[] | select(.taints != 0) | .name'`,
		Args: dumpArgs,
		RunE: func(c *cobra.Command, args []string) error {
			k, err := g.openKernel(dumpArg(args), false)
			if err != nil {
				return err
			}
			defer k.Close()
			rep, err := modules.Read(k, modules.Options{DebugDirs: g.debugDirs, SkipDebuginfo: noDebuginfo})
			if err != nil {
				return classify(err)
			}
			out := c.OutOrStdout()
			if g.json {
				if err := writeJSON(out, rep); err != nil {
					return err
				}
			} else {
				writeModules(out, rep, regions)
			}
			printWarnings(c.ErrOrStderr(), append(k.Warnings(), rep.Warnings...))
			if rep.Partial || k.ZeroFilled() > 0 {
				return errPartial
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&regions, "regions", false, "list each module's memory regions")
	cmd.Flags().BoolVar(&noDebuginfo, "no-debuginfo", false, "do not look for module debuginfo")
	return cmd
}

// procUsedBy is the "used by" column as /proc/modules prints it.
func procUsedBy(m *modules.Module) string {
	if m.Refcount == nil && len(m.UsedBy) == 0 && !m.Permanent {
		return "-"
	}
	var sb strings.Builder
	for _, u := range m.UsedBy {
		sb.WriteString(u + ",")
	}
	if m.Permanent {
		sb.WriteString("[permanent],")
	}
	if sb.Len() == 0 {
		return "-"
	}
	return sb.String()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// writeModules prints the taint, one /proc/modules-like row per module
// with vmleak's columns after it, then the parameters (and regions).
func writeModules(w io.Writer, rep *modules.Report, regions bool) {
	t := rep.Taint
	switch {
	case t.Error != "":
		fmt.Fprintf(w, "Taint unknown: %s\n", t.Error)
	case t.Mask == 0:
		fmt.Fprintf(w, "%s  (tainted_mask 0)\n", t.String)
	default:
		// print_tainted() ends in spaces: the bar keeps them visible.
		fmt.Fprintf(w, "%s|  tainted_mask %d (%#x)\n", t.String, t.Mask, t.Mask)
	}
	for _, f := range t.Flags {
		fmt.Fprintf(w, "  %-1s  bit %-2d  %-20s  %s\n", dash(f.Char), f.Bit, dash(f.Name), dash(strings.Join(f.Modules, ",")))
	}
	if t.Table == "built-in" {
		fmt.Fprintln(w, "  (taint letters from vmleak's table: the dump's taint_flags could not be read)")
	}
	fmt.Fprintln(w)

	type col struct {
		head  string
		right bool
		cell  func(m *modules.Module) string
	}
	cols := []col{
		{"NAME", false, func(m *modules.Module) string {
			if len(m.Errors) > 0 {
				return m.Name + " *"
			}
			return m.Name
		}},
		{"SIZE", true, func(m *modules.Module) string { return strconv.FormatUint(m.Size, 10) }},
		{"REFS", true, func(m *modules.Module) string {
			if m.Refcount == nil {
				return "-"
			}
			return strconv.FormatInt(*m.Refcount, 10)
		}},
		{"USED BY", false, procUsedBy},
		{"STATE", false, func(m *modules.Module) string { return m.State }},
		{"ADDRESS", false, func(m *modules.Module) string { return fmt.Sprintf("0x%016x", uint64(m.Base)) }},
		{"TAINTS", false, func(m *modules.Module) string { return dash(m.TaintFlags) }},
		{"MODULE", false, func(m *modules.Module) string { return fmt.Sprintf("%x", uint64(m.Addr)) }},
		{"BUILD-ID", false, func(m *modules.Module) string { return dash(m.BuildID) }},
		{"DEBUGINFO", false, func(m *modules.Module) string { return dash(m.Debuginfo) }},
	}
	widths := make([]int, len(cols))
	for i, c := range cols {
		widths[i] = len(c.head)
		for j := range rep.Modules {
			widths[i] = max(widths[i], len(c.cell(&rep.Modules[j])))
		}
	}
	line := func(cell func(i int) string) {
		var sb strings.Builder
		for i, c := range cols {
			if i > 0 {
				sb.WriteString("  ")
			}
			switch {
			case c.right:
				fmt.Fprintf(&sb, "%*s", widths[i], cell(i))
			case i == len(cols)-1:
				sb.WriteString(cell(i))
			default:
				fmt.Fprintf(&sb, "%-*s", widths[i], cell(i))
			}
		}
		fmt.Fprintln(w, strings.TrimRight(sb.String(), " "))
	}
	line(func(i int) string { return cols[i].head })
	partial := false
	for j := range rep.Modules {
		m := &rep.Modules[j]
		line(func(i int) string { return cols[i].cell(m) })
		partial = partial || len(m.Errors) > 0
	}
	if partial {
		fmt.Fprintln(w, "* read in part: what could not be read is in the warnings and the JSON output")
	}

	var params [][4]string
	for _, m := range rep.Modules {
		for _, p := range m.Params {
			v := "<" + p.Ops + ">"
			switch {
			case p.Value != nil:
				v = *p.Value
			case p.Error != "" && strings.HasPrefix(p.Ops, "param_"):
				v = "? (" + p.Error + ")"
			}
			params = append(params, [4]string{m.Name, p.Name, dash(p.Perm), v})
		}
	}
	if len(params) > 0 {
		fmt.Fprintln(w)
		writeRows(w, [4]string{"MODULE", "PARAMETER", "PERM", "VALUE"}, params)
	}
	if regions {
		var rows [][4]string
		for _, m := range rep.Modules {
			for _, r := range m.Regions {
				rows = append(rows, [4]string{m.Name, r.Kind, fmt.Sprintf("0x%016x", uint64(r.Base)), strconv.FormatUint(r.Size, 10)})
			}
		}
		fmt.Fprintln(w)
		writeRows(w, [4]string{"MODULE", "REGION", "BASE", "SIZE"}, rows)
	}
}

// writeRows prints left-aligned columns two spaces apart.
func writeRows(w io.Writer, head [4]string, rows [][4]string) {
	var widths [4]int
	for _, r := range append([][4]string{head}, rows...) {
		for i, c := range r {
			widths[i] = max(widths[i], len(c))
		}
	}
	for _, r := range append([][4]string{head}, rows...) {
		fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf("%-*s  %-*s  %-*s  %s", widths[0], r[0], widths[1], r[1], widths[2], r[2], r[3]), " "))
	}
}
