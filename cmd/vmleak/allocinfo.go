package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vmleak/vmleak/allocinfo"
	"github.com/vmleak/vmleak/kernel"
)

func newAllocinfoCmd(g *globalOptions) *cobra.Command {
	var module, sortBy string
	var nonzero, byModule bool
	cmd := &cobra.Command{
		Use:   "allocinfo DUMP [PART...]",
		Short: "Print the dump's /proc/allocinfo: bytes and calls per allocation call site",
		Long: `allocinfo prints what the crashed kernel's /proc/allocinfo would have: for
every allocation call site the memory allocation profiler tags
(CONFIG_MEM_ALLOC_PROFILING, v6.10+), the bytes it holds and the calls not
yet freed, summed over the possible CPUs, with its file:line, [module] and
function, in the kernel's own line format. The kernel's tags come first in
the kernel's order, then each module's; --sort orders them (bytes, the
default; calls; location; kernel for the kernel's own order). Like
/proc/allocinfo, every tag is listed; --nonzero leaves out those holding
nothing. --module keeps one module's (kernel: the kernel's own code).
--by-module prints each module's totals instead.

A kernel built without allocation profiling (no Debian kernel enables it)
is reported in one line with exit code 3.

` + exitCodesHelp,
		Example: `  vmleak allocinfo vmcore --nonzero | head -20
  vmleak allocinfo vmcore --module vmleak_test --sort calls
  vmleak allocinfo vmcore --by-module
  vmleak allocinfo vmcore --json | jq '.modules[0]'`,
		Args: dumpArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if !slices.Contains(allocinfo.SortOrders, sortBy) {
				return &usageError{msg: fmt.Sprintf("--sort must be one of %s, not %q%s", strings.Join(allocinfo.SortOrders, ", "), sortBy, seeHelp(c))}
			}
			k, err := g.openKernel(dumpArg(args), false)
			if err != nil {
				return err
			}
			defer k.Close()
			rep, err := allocinfo.Read(k)
			if err != nil {
				if errors.Is(err, allocinfo.ErrNotEnabled) || errors.Is(err, allocinfo.ErrLayout) {
					return &inputError{err}
				}
				return classify(err)
			}
			rep = rep.Select(module, nonzero)
			if err := rep.Sort(sortBy); err != nil {
				return &usageError{msg: err.Error()}
			}
			out := c.OutOrStdout()
			switch {
			case g.json:
				if err := writeJSON(out, rep); err != nil {
					return err
				}
			case byModule:
				writeAllocModules(out, rep)
			default:
				if err := rep.WriteText(out); err != nil {
					return err
				}
			}
			var warnings []string
			for _, b := range rep.Unreadable {
				warnings = append(warnings, b.Error)
			}
			printWarnings(c.ErrOrStderr(), append(append(k.Warnings(), rep.Warnings...), warnings...))
			if rep.Partial || k.ZeroFilled() > 0 {
				return errPartial
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&module, "module", "", "show only this module's call sites (kernel: the kernel's own)")
	cmd.Flags().BoolVar(&nonzero, "nonzero", false, "leave out call sites holding no bytes and no calls")
	cmd.Flags().StringVar(&sortBy, "sort", allocinfo.SortBytes, "order: "+strings.Join(allocinfo.SortOrders, ", "))
	cmd.Flags().BoolVar(&byModule, "by-module", false, "print each module's totals instead of the call sites")
	return cmd
}

// writeAllocModules prints each module's totals, largest first; the
// kernel's own code is "kernel".
func writeAllocModules(w io.Writer, r *allocinfo.Report) {
	fmt.Fprintf(w, "%-24s %8s %14s %9s %10s %10s\n", "MODULE", "TAGS", "BYTES", "SIZE", "CALLS", "UNREADABLE")
	for _, m := range r.Modules {
		name := m.Module
		if name == "" {
			name = allocinfo.KernelName
		}
		size := "-"
		if m.Bytes >= 0 {
			size = humanBytes(uint64(m.Bytes))
		}
		fmt.Fprintf(w, "%-24s %8d %14d %9s %10d %10d\n", kernel.Printable(name), m.Tags, m.Bytes, size, m.Calls, m.Unreadable)
	}
}
