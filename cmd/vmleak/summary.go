package main

import (
	"github.com/spf13/cobra"

	"github.com/vmleak/vmleak/summary"
)

func newSummaryCmd(g *globalOptions) *cobra.Command {
	var out, format string
	var hash bool
	cmd := &cobra.Command{
		Use:   "summary DUMP [PART...]",
		Short: "Write what a fleet keeps of a dump: identity, census, owners, meminfo",
		Long: `summary writes one small file per dump: the dump's identity (host name,
release, build-id, crash and boot time, panic message, file size and, with
--sha256, its hash), its slab census, who owns the slab memory, and its
/proc/meminfo. JSON for people and scripts, Parquet for engines (DuckDB,
Spark, Trino), chosen by the extension of -o (.json, .parquet) or --format;
without -o, JSON on stdout. The schema is versioned and documented in the
README; vmleak diff reads summaries as it reads dumps.

--sha256 reads the whole dump file (the census reads only slab pages), so
it is not done by default; the size always is.

` + exitCodesHelp,
		Example: `  vmleak summary /var/crash/vmcore -o host1-20261201.parquet
  vmleak summary vmcore --sha256 | jq '.caches[] | select(.name=="dentry")'`,
		Args: dumpArgs,
		RunE: func(c *cobra.Command, args []string) error {
			f := summary.JSON
			var err error
			switch {
			case format != "":
				if f, err = summary.ParseFormat(format); err != nil {
					return &usageError{msg: err.Error()}
				}
			case out != "" && out != "-":
				if f, err = summary.FormatOf(out); err != nil {
					return &usageError{msg: err.Error() + "; or give --format"}
				}
			}
			if f == summary.Parquet && (out == "" || out == "-") {
				return &usageError{msg: "Parquet is written to a file: give -o FILE.parquet"}
			}
			s, err := g.summarize(c, dumpArg(args), g.vmlinux, summary.Options{SHA256: hash})
			if err != nil {
				return err
			}
			if out == "" || out == "-" {
				if err := summary.Encode(c.OutOrStdout(), s, f); err != nil {
					return err
				}
			} else if err := summary.WriteFile(out, s, f); err != nil {
				return err
			}
			printWarnings(c.ErrOrStderr(), s.Warnings)
			if s.Partial {
				return errPartial
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&out, "output", "o", "", "write the summary to FILE (.json or .parquet); default JSON on stdout")
	fl.StringVar(&format, "format", "", "json or parquet (default: from the extension of -o)")
	fl.BoolVar(&hash, "sha256", false, "hash the dump file (reads all of it)")
	return cmd
}

// summarize takes a dump's census and summarizes it, with vmlinux (or the
// one found for the dump when empty).
func (g *globalOptions) summarize(c *cobra.Command, dump, vmlinux string, o summary.Options) (*summary.Summary, error) {
	gg := *g
	gg.vmlinux = vmlinux
	k, w, cen, err := gg.takeCensusWalker(c, dump)
	if err != nil {
		return nil, err
	}
	defer k.Close()
	s, err := summary.Take(k, w, cen, o)
	if err != nil {
		return nil, classify(err)
	}
	s.Warnings = append(s.Warnings, k.Warnings()...)
	return s, nil
}
