package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vmleak/vmleak/diff"
	"github.com/vmleak/vmleak/forensics"
	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/leaks"
	"github.com/vmleak/vmleak/meminfo"
	"github.com/vmleak/vmleak/report"
	"github.com/vmleak/vmleak/summary"
	"github.com/vmleak/vmleak/symbolize"
	"github.com/vmleak/vmleak/walk"
)

type reportOptions struct {
	out                         string
	noLeaks, noCheck            bool
	vmlinuxBefore, vmlinuxAfter string
}

func newReportCmd(g *globalOptions) *cobra.Command {
	o := &reportOptions{}
	cmd := &cobra.Command{
		Use:   "report DUMP -o FILE.html | report BEFORE AFTER -o FILE.html",
		Short: "Write one offline HTML page: where the memory went, owners, leaks, findings; or what grew",
		Long: `report writes one self-contained HTML file that opens offline (no server, no
network: everything is inlined, and a strict Content-Security-Policy lets
nothing load).

For one dump it shows the dump's identity and headline numbers, a treemap of
slab memory by owner and cache, the meminfo breakdown, the census table of
"slabs --wide" (sortable and filterable in the page), the owners with their
call sites, the leak suspects of "leaks", the findings of "check", and which
caches are partial and why. --no-leaks and --no-check leave out the two
slowest parts.

For two dumps (or summaries written by "vmleak summary", as diff reads them)
it shows what diff shows: growth by cache and by owner as diverging bars,
the caches that appeared or vanished, the owners, call sites and meminfo
lines that moved, and the after dump's treemap.

` + exitCodesHelp,
		Example: `  vmleak report vmcore -o report.html
  vmleak report before.vmcore after.vmcore -o cmp.html
  vmleak report monday.json friday.vmcore --vmlinux-after vmlinux-6.1 -o cmp.html`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return &usageError{msg: fmt.Sprintf("report takes 1 or 2 arguments, got %d%s", len(args), seeHelp(c))}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if o.out == "" {
				return &usageError{msg: "give the page's file: -o FILE.html (- for stdout)"}
			}
			if g.json {
				return &usageError{msg: "report writes HTML; the JSON of each part is the other commands' --json"}
			}
			var data *report.Data
			var warnings []string
			var partial bool
			var err error
			if len(args) == 1 {
				if o.vmlinuxBefore != "" || o.vmlinuxAfter != "" {
					return &usageError{msg: "--vmlinux-before and --vmlinux-after are for two dumps: give --vmlinux"}
				}
				var d *report.Dump
				if d, partial, err = g.reportDump(c, args[0], o); err != nil {
					return err
				}
				data = &report.Data{Dump: d}
				// The census's warnings as slabs prints them (briefly), then the rest.
				warnCensus(c.ErrOrStderr(), d.Census)
				census := map[string]bool{}
				for _, w := range d.Census.Warnings {
					census[w] = true
				}
				for _, w := range d.Warnings {
					if !census[w] {
						warnings = append(warnings, w)
					}
				}
			} else {
				if o.noLeaks || o.noCheck {
					return &usageError{msg: "--no-leaks and --no-check are for one dump: a comparison has neither"}
				}
				sides, err := g.loadSides(c, args, [2]string{o.vmlinuxBefore, o.vmlinuxAfter})
				if err != nil {
					return err
				}
				d, err := diff.Compare(sides[0], sides[1], diff.Options{})
				if err != nil {
					return &inputError{err}
				}
				data = &report.Data{Pair: &report.Pair{Before: sides[0], After: sides[1], Diff: d}}
				for _, s := range sides {
					if s.Partial {
						partial = true
						warnings = append(warnings, s.Dump.File+" is partial: its partial caches are never counted as growth")
					}
				}
			}
			if o.out == "-" {
				err = report.Render(c.OutOrStdout(), data)
			} else {
				err = report.WriteFile(o.out, data)
			}
			if err != nil {
				return err
			}
			printWarnings(c.ErrOrStderr(), warnings)
			if partial {
				return errPartial
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.out, "output", "o", "", "write the page to FILE (- for stdout)")
	f.BoolVar(&o.noLeaks, "no-leaks", false, "do not scan for leak suspects")
	f.BoolVar(&o.noCheck, "no-check", false, "do not run the forensic checks")
	f.StringVar(&o.vmlinuxBefore, "vmlinux-before", "", "vmlinux of the BEFORE dump (default --vmlinux, or found)")
	f.StringVar(&o.vmlinuxAfter, "vmlinux-after", "", "vmlinux of the AFTER dump (default --vmlinux, or found)")
	return cmd
}

// reportDump reads everything a one-dump page shows, with the wiring of
// the commands that show each part alone (slabs, owners, meminfo, leaks,
// check, summary), and says whether any of it is partial.
func (g *globalOptions) reportDump(c *cobra.Command, dump string, o *reportOptions) (*report.Dump, bool, error) {
	k, w, cen, err := g.takeCensusWalker(c, dump)
	if err != nil {
		return nil, false, err
	}
	defer k.Close()
	sym := symbolize.New(w)
	defer sym.Close()
	d := &report.Dump{Info: k.Summary(), Census: cen, Skipped: map[string]string{}}
	if d.Owners, err = buildOwners(k, w, cen, sym); err != nil {
		return nil, false, err
	}
	siteLines(sym, d.Owners.Sites, false)
	var warnings []string
	if d.Meminfo, err = meminfo.Read(k); err != nil {
		warnings = append(warnings, err.Error())
		d.Meminfo = nil
	}
	if o.noLeaks {
		d.Skipped["leaks"] = "--no-leaks"
	} else {
		done := progress(c.ErrOrStderr(), "scanning for pointers")
		d.Leaks, err = leaks.Find(k, w, cen, sym)
		done()
		if err != nil {
			return nil, false, classify(err)
		}
		warnings = append(warnings, d.Leaks.Warnings...)
	}
	if o.noCheck {
		d.Skipped["check"] = "--no-check"
	} else {
		done := progress(c.ErrOrStderr(), "checking")
		d.Check, err = checkDump(k, forensics.Options{ModuleDirs: g.debugDirs}, true,
			func() (*walk.Walker, *walk.Census, error) { return w, cen, nil })
		done()
		if err != nil {
			return nil, false, classify(err)
		}
		warnings = append(warnings, d.Check.Warnings...)
	}
	if d.Summary, err = summary.Take(k, w, cen, summary.Options{Owners: d.Owners, Meminfo: d.Meminfo}); err != nil {
		return nil, false, classify(err)
	}
	d.Warnings = dedupe(append(append(append([]string{}, d.Summary.Warnings...), k.Warnings()...), warnings...))
	partial := d.Summary.Partial || k.ZeroFilled() > 0 || (d.Leaks != nil && d.Leaks.Partial) || (d.Check != nil && d.Check.Partial())
	return d, partial, nil
}

// checkDump runs the forensic checks and, with memory, counts the slab
// memory of the suspect modules from the census that census gives (asked
// for only when there is a suspect). A census that fails is a warning.
func checkDump(k *kernel.Kernel, o forensics.Options, memory bool, census func() (*walk.Walker, *walk.Census, error)) (*forensics.Report, error) {
	rep, err := forensics.Run(k, o)
	if err != nil {
		return nil, err
	}
	if memory && len(rep.SuspectModules()) > 0 {
		w, cen, err := census()
		if err == nil {
			err = forensics.AttachMemory(rep, k, w, cen)
		}
		if err != nil {
			rep.Warnings = append(rep.Warnings, "suspect memory: "+err.Error())
		}
	}
	return rep, nil
}

func dedupe(ss []string) []string {
	seen := map[string]bool{}
	out := ss[:0]
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
