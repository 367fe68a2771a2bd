package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vmleak/vmleak/forensics"
	"github.com/vmleak/vmleak/walk"
)

// errHighFinding is returned by check after its output when a finding of
// high severity is present.
var errHighFinding = errors.New("a high-severity finding is present")

func newCheckCmd(g *globalOptions) *cobra.Command {
	var only []string
	var minSeverity string
	var noMemory bool
	cmd := &cobra.Command{
		Use:   "check DUMP [PART...]",
		Short: "Look for hidden modules, hooks and patched kernel text (forensics)",
		Long: `check looks for the marks a rootkit leaves in the dumped kernel. Each check
compares what the kernel holds with an independent view of what it should:

  modules   the modules list against sysfs (module_kset), the module address
            tree (mod_tree) and struct modules carved from module memory:
            a module outside the list is hidden
  syscalls  every entry of sys_call_table, ia32_sys_call_table and
            x32_sys_call_table against the vmlinux's (they are read-only)
  idt       every IDT gate's handler: outside kernel text is a hook
  ftrace    every ftrace_ops and the functions it filters
  kprobes   every registered kprobe, its address and handlers
  seq_ops   the kernel's seq_operations tables against the vmlinux's, and the
            seq_ops of the network /proc files
  text      the kernel's text against the vmlinux's: differences the kernel's
            own run-time patching made (alternatives, paravirt, jump labels,
            static calls, ftrace, retpolines, return thunks, kprobes) are
            explained from its patch-site tables; any other is decoded and
            reported
  taint     the kernel's and each module's taint

Each finding has a severity: high (tampering, or code no module owns),
medium (a module where rootkits hook, which legitimate tracers do too), low
and info (context). For every module named by a finding of medium or more,
the slab memory it holds is listed (from allocation tracks where the dump
has them, else cache ownership), unless --no-memory.

What a check could not read is reported as not checked, never as clean, and
makes the exit code 5; a high finding makes it 7.

` + exitCodesHelp,
		Example: `  vmleak check vmcore
  vmleak check vmcore --checks syscalls,text
  vmleak check vmcore --json | jq '.findings[] | select(.severity == "high")'`,
		Args: dumpArgs,
		RunE: func(c *cobra.Command, args []string) error {
			min, err := parseSeverity(minSeverity)
			if err != nil {
				return err
			}
			for _, n := range only {
				if !slices.Contains(forensics.CheckNames(), n) {
					return &usageError{msg: fmt.Sprintf("unknown check %q (known: %s)", n, strings.Join(forensics.CheckNames(), ", "))}
				}
			}
			k, err := g.openKernel(dumpArg(args), false)
			if err != nil {
				return err
			}
			defer k.Close()
			done := progress(c.ErrOrStderr(), "checking")
			rep, err := checkDump(k, forensics.Options{Checks: only, ModuleDirs: g.debugDirs}, !noMemory,
				func() (*walk.Walker, *walk.Census, error) {
					w, err := walk.New(k)
					if err != nil {
						return nil, nil, err
					}
					cen, err := w.Census()
					if err != nil {
						return nil, nil, err
					}
					w.SetAliases(cen)
					return w, cen, nil
				})
			done()
			if err != nil {
				return classify(err)
			}
			out := bufio.NewWriter(c.OutOrStdout())
			defer out.Flush()
			if g.json {
				if err := writeJSON(out, rep); err != nil {
					return err
				}
			} else {
				writeCheck(out, rep, min)
			}
			if err := out.Flush(); err != nil {
				return err
			}
			printWarnings(c.ErrOrStderr(), append(k.Warnings(), rep.Warnings...))
			if h, ok := rep.Highest(); ok && h == forensics.High {
				return errHighFinding
			}
			if rep.Partial() && k.FromDump() && k.ZeroFilled() == 0 {
				return errPartialNoVmlinux{}
			}
			if rep.Partial() || k.ZeroFilled() > 0 {
				return errPartial
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&only, "checks", nil, "run only these checks (comma-separated: "+strings.Join(forensics.CheckNames(), ",")+"); modules always runs")
	cmd.Flags().StringVar(&minSeverity, "min-severity", "low", "print findings of this severity or more: info, low, medium, high (--json prints all)")
	cmd.Flags().BoolVar(&noMemory, "no-memory", false, "do not count the slab memory of suspect modules (skips the slab walk)")
	return cmd
}

func parseSeverity(s string) (forensics.Severity, error) {
	var v forensics.Severity
	if err := v.UnmarshalJSON([]byte(`"` + s + `"`)); err != nil {
		return 0, &usageError{msg: fmt.Sprintf("--min-severity %q: want info, low, medium or high", s)}
	}
	return v, nil
}

// writeCheck prints the checks' statuses, then the findings, most severe
// first, then the suspects' memory.
func writeCheck(w io.Writer, r *forensics.Report, min forensics.Severity) {
	fmt.Fprintf(w, "%-9s %-12s %8s  %s\n", "CHECK", "STATUS", "CHECKED", "NOTE")
	for _, c := range r.Checks {
		fmt.Fprintf(w, "%-9s %-12s %8d  %s\n", c.Check, c.Status, c.Checked, c.Note)
	}
	counts := map[forensics.Severity]int{}
	shown := 0
	for _, f := range r.Findings {
		counts[f.Severity]++
		if f.Severity < min {
			continue
		}
		if shown == 0 {
			fmt.Fprintln(w)
		}
		shown++
		fmt.Fprintf(w, "%-6s %-8s %-20s %s\n", strings.ToUpper(f.Severity.String()), f.Check, f.Kind, f.Summary)
		var at []string
		if f.Addr != 0 {
			s := fmt.Sprintf("at %#x", f.Addr)
			if f.Symbol != "" {
				s += " (" + f.Symbol + ")"
			}
			if f.Size != 0 {
				s += fmt.Sprintf(" size %#x", f.Size)
			}
			at = append(at, s)
		}
		if f.Target != 0 {
			name := f.TargetName
			if strings.HasPrefix(name, forensics.InUnknown) {
				name = "(" + forensics.InUnknown + ")"
			}
			at = append(at, fmt.Sprintf("-> %#x %s", f.Target, name))
		}
		if len(at) > 0 {
			fmt.Fprintf(w, "       %s\n", strings.Join(at, " "))
		}
		for _, e := range f.Evidence {
			fmt.Fprintf(w, "       - %s\n", e)
		}
	}
	fmt.Fprintf(w, "\nfindings: %d high, %d medium, %d low, %d info", counts[forensics.High], counts[forensics.Medium], counts[forensics.Low], counts[forensics.Info])
	if hidden := len(r.Findings) - shown; hidden > 0 {
		fmt.Fprintf(w, " (%d below %s not shown)", hidden, min)
	}
	fmt.Fprintln(w)
	if len(r.Memory) > 0 {
		fmt.Fprintf(w, "\nslab memory of suspect modules:\n")
		for _, m := range r.Memory {
			fmt.Fprintf(w, "  %-24s %8d objects %12d bytes\n", m.Module, m.Objects, m.Bytes)
			for _, cs := range m.Caches {
				ev := cs.Evidence
				if ev == "" {
					ev = "-"
				}
				fmt.Fprintf(w, "    %-22s %8d objects %12d bytes  (%s)\n", cs.Cache, cs.Objects, cs.Bytes, ev)
			}
		}
	}
}

// errPartialNoVmlinux is errPartial in dump-only mode, where what compares
// the kernel with the vmlinux was not checked.
type errPartialNoVmlinux struct{}

func (errPartialNoVmlinux) Error() string {
	return "results are partial: what needs the vmlinux was not checked, or memory was missing from the dump (see the notes and warnings)"
}

func (errPartialNoVmlinux) Is(target error) bool { return target == errPartial }
