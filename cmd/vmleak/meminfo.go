package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/vmleak/vmleak/meminfo"
)

func newMeminfoCmd(g *globalOptions) *cobra.Command {
	var explain bool
	cmd := &cobra.Command{
		Use:   "meminfo DUMP [PART...]",
		Short: "Print the dump's /proc/meminfo, rebuilt from the kernel's counters",
		Long: `meminfo prints /proc/meminfo as the crashed kernel would have printed it at the
instant of the dump, in the kernel's own format and line order, computed from
the same counters (vm_zone_stat, vm_node_stat, totalram_pages, ...).
--explain adds the kernel counter behind each line.

` + exitCodesHelp,
		Example: `  vmleak meminfo vmcore
  vmleak meminfo vmcore --explain`,
		Args: dumpArgs,
		RunE: func(c *cobra.Command, args []string) error {
			k, err := g.openKernel(dumpArg(args), false)
			if err != nil {
				return err
			}
			defer k.Close()
			mi, err := meminfo.Read(k)
			if err != nil {
				return classify(err)
			}
			out := c.OutOrStdout()
			switch {
			case g.json:
				if err := writeJSON(out, mi); err != nil {
					return err
				}
			case explain:
				writeMeminfoExplain(out, mi)
			default:
				if err := mi.WriteText(out); err != nil {
					return err
				}
			}
			printWarnings(c.ErrOrStderr(), append(k.Warnings(), mi.Warnings...))
			if mi.Partial || k.ZeroFilled() > 0 {
				return errPartial
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&explain, "explain", false, "show the kernel counter behind each line")
	return cmd
}

// writeMeminfoExplain prints each line beside the kernel counter behind it.
func writeMeminfoExplain(w io.Writer, mi *meminfo.Meminfo) {
	for _, l := range mi.Lines {
		fmt.Fprintf(w, "%-40s  %s\n", meminfo.FormatLine(l), l.Source)
	}
}
