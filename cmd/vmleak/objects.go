package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/vmleak/vmleak/walk"
)

func newObjectsCmd(g *globalOptions) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "objects DUMP CACHE",
		Short: "List the allocated objects of one slab cache",
		Long: `objects streams the addresses of every allocated object of a cache, one per
line in physical address order (or JSON objects, one per line, with --json).
With --all, free objects are listed too, with where they are free.

` + exitCodesHelp,
		Example: `  vmleak objects vmcore kmalloc-1k | head
  vmleak objects vmcore dentry --all --json`,
		Args: exactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			k, wk, err := g.openWalker(args[0])
			if err != nil {
				return err
			}
			defer k.Close()
			out := bufio.NewWriter(c.OutOrStdout())
			defer out.Flush()
			enc := json.NewEncoder(out)
			partial := false
			var werr error
			err = wk.Objects(args[1], all, func(o walk.Object, err error) bool {
				if err != nil {
					partial = true
					fmt.Fprintf(c.ErrOrStderr(), "vmleak: warning: %v\n", err)
					return true
				}
				werr = writeObject(out, enc, o, g.json)
				return werr == nil
			})
			switch {
			case errors.Is(err, walk.ErrNoCache):
				return &usageError{msg: err.Error()}
			case errors.Is(err, walk.ErrCachesLost):
				printWarnings(c.ErrOrStderr(), wk.Warnings())
				printWarnings(c.ErrOrStderr(), k.Warnings())
				return fmt.Errorf("%w: %v", errPartial, err)
			case err != nil:
				return classify(err)
			}
			if werr != nil {
				return werr
			}
			printWarnings(c.ErrOrStderr(), k.Warnings())
			if partial {
				return errPartial
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "list free objects too")
	return cmd
}

// writeObject prints one object: its address (and where it is free), or a
// JSON object per line.
func writeObject(w io.Writer, enc *json.Encoder, o walk.Object, asJSON bool) error {
	var err error
	switch {
	case asJSON:
		err = enc.Encode(o)
	case !o.Allocated:
		_, err = fmt.Fprintf(w, "%x free (%s)\n", o.Addr, o.FreeOn)
	default:
		_, err = fmt.Fprintf(w, "%x\n", o.Addr)
	}
	return err
}
