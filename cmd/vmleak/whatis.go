package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vmleak/vmleak/symbolize"
)

func newWhatisCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "whatis DUMP ADDR...",
		Short: "Say what holds a kernel address: slab object, page, stack, per-CPU, module, symbol, vmalloc",
		Long: `whatis tells, for each kernel virtual address: which slab cache, slab and object
hold it and whether the object is allocated or free (and on which freelist);
or which struct page (and what its page frame is), which CPU's per-CPU
variable, which task's kernel stack, which module or kernel symbol, which
vmalloc area (and its caller) or which direct-map page frame it is in.

` + exitCodesHelp,
		Example: `  vmleak whatis vmcore ffff8cfdc24d3950
  vmleak whatis vmcore 0xffffffffb1000000 ffff8cfdc24d3900 --json`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) < 2 {
				return &usageError{msg: "whatis takes a dump and at least one address" + seeHelp(c)}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			var addrs []uint64
			for _, a := range args[1:] {
				v, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(a), "0x"), 16, 64)
				if err != nil {
					return &usageError{msg: fmt.Sprintf("%q is not a hexadecimal address", a)}
				}
				addrs = append(addrs, v)
			}
			k, w, err := g.openWalker(args[0])
			if err != nil {
				return err
			}
			defer k.Close()
			sym := symbolize.New(w)
			defer sym.Close()
			var res []symbolize.Result
			partial := false
			for _, a := range addrs {
				r := sym.Identify(a)
				partial = partial || r.Missing
				res = append(res, r)
			}
			if g.json {
				if err := writeJSON(c.OutOrStdout(), res); err != nil {
					return err
				}
			} else {
				for _, r := range res {
					writeWhatis(c.OutOrStdout(), r)
				}
			}
			printWarnings(c.ErrOrStderr(), append(k.Warnings(), sym.Warnings()...))
			if partial || sym.Partial() || k.ZeroFilled() > 0 {
				return errPartial
			}
			return nil
		},
	}
}

func writeWhatis(w io.Writer, r symbolize.Result) {
	fmt.Fprintf(w, "%#x: %s: %s", uint64(r.Addr), r.Kind, r.What)
	if r.Error != "" {
		fmt.Fprintf(w, " (%s)", r.Error)
	}
	fmt.Fprintln(w)
}
