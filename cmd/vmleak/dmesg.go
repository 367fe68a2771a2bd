package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vmleak/vmleak/kernel"
)

func newDmesgCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "dmesg DUMP [PART...]",
		Short: "Print the kernel log from the dump's printk ring buffer",
		Long: `dmesg prints the crashed kernel's log, oldest first, with timestamps as the
kernel's own dmesg shows them (seconds since boot).

` + exitCodesHelp,
		Example: `  vmleak dmesg vmcore | tail -40`,
		Args:    dumpArgs,
		RunE: func(c *cobra.Command, args []string) error {
			k, err := g.openKernel(dumpArg(args), false)
			if err != nil {
				return err
			}
			defer k.Close()
			log, err := k.Log()
			if err != nil && len(log) == 0 {
				return classify(err)
			}
			if g.json {
				if err := writeJSON(c.OutOrStdout(), log); err != nil {
					return err
				}
			} else {
				writeLog(c.OutOrStdout(), log)
			}
			printWarnings(c.ErrOrStderr(), k.Warnings())
			if err != nil {
				fmt.Fprintf(c.ErrOrStderr(), "vmleak: warning: %v\n", err)
				return errPartial
			}
			return nil
		},
	}
}

func writeLog(w io.Writer, log []kernel.LogRecord) {
	for _, r := range log {
		for _, line := range strings.Split(strings.TrimRight(r.Text, "\n"), "\n") {
			fmt.Fprintf(w, "[%5d.%06d] %s\n", r.TimeNS/1e9, r.TimeNS%1e9/1e3, line)
		}
	}
}
