package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/owners"
	"github.com/vmleak/vmleak/stackdepot"
	"github.com/vmleak/vmleak/symbolize"
	"github.com/vmleak/vmleak/walk"
)

func newOwnersCmd(g *globalOptions) *cobra.Command {
	var module, cache string
	var sites, stacks, freed, csvOut bool
	cmd := &cobra.Command{
		Use:   "owners DUMP [PART...]",
		Short: "Say whose the slab memory is: which module, call site or nobody known",
		Long: `owners attributes every allocated slab object of the dump, strongest evidence
first: the object's SLUB allocation track where its cache keeps them
(slub_debug=U or SLAB_STORE_USER: the call site and its module), else the
module that owns the cache (its data holds the kmem_cache pointer, its text
the constructor). Objects with no evidence are "unattributed", counted and
never guessed. --sites lists the call sites of tracked allocations, and
--stacks each site's full stacks; --freed lists instead where the free
objects were last freed (their free tracks), for use-after-free forensics.
--module and --cache keep one owner or one cache; --csv prints the owners'
shares (or with --sites, the call sites) as CSV. Call sites show their
source file:line where the vmlinux or the module's debuginfo
(--debuginfo-dir) has line tables.

` + exitCodesHelp,
		Example: `  vmleak owners vmcore
  vmleak owners vmcore --module vmleak_test --sites
  vmleak owners vmcore --cache kmalloc-1k --stacks
  vmleak owners vmcore --csv
  vmleak owners vmcore --json`,
		Args: dumpArgs,
		RunE: func(c *cobra.Command, args []string) error {
			k, w, cen, err := g.takeCensusWalker(c, dumpArg(args))
			if err != nil {
				return err
			}
			defer k.Close()
			if freed {
				return writeFreed(c, g, k, w, cen, module, cache, stacks)
			}
			sym := symbolize.New(w)
			defer sym.Close()
			rep, err := buildOwners(k, w, cen, sym)
			if err != nil {
				return err
			}
			if module != "" {
				rep.Owners = owners.Filter(rep.Owners, module)
			}
			if cache != "" {
				rep.Owners = owners.FilterCache(rep.Owners, cache)
			}
			keepSites := rep.Sites[:0]
			for _, s := range rep.Sites {
				if (module == "" || s.Owner == module) && (cache == "" || s.Cache == cache) {
					keepSites = append(keepSites, s)
				}
			}
			rep.Sites = keepSites
			keepRefs := rep.References[:0]
			for _, r := range rep.References {
				if (module == "" || r.Module == module) && (cache == "" || r.Cache == cache) {
					keepRefs = append(keepRefs, r)
				}
			}
			rep.References = keepRefs
			// Source lines only for the frames printed: they cost more
			// than names.
			switch {
			case g.json:
				siteLines(sym, rep.Sites, true)
			case sites || stacks:
				siteLines(sym, rep.Sites, stacks)
			}
			out := c.OutOrStdout()
			switch {
			case g.json:
				if err := writeJSON(out, rep); err != nil {
					return err
				}
			case csvOut:
				if err := writeOwnersCSV(out, rep, sites || stacks); err != nil {
					return err
				}
			default:
				writeOwners(out, rep, sites || stacks, stacks)
			}
			printWarnings(c.ErrOrStderr(), append(cen.Warnings, rep.Warnings...))
			if rep.Partial {
				return errPartial
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&module, "module", "", "show only this owner (a module name, kernel or unattributed)")
	cmd.Flags().StringVar(&cache, "cache", "", "show only this cache")
	cmd.Flags().BoolVar(&sites, "sites", false, "list the call sites of tracked allocations")
	cmd.Flags().BoolVar(&stacks, "stacks", false, "list the call sites with their full stacks (implies --sites)")
	cmd.Flags().BoolVar(&csvOut, "csv", false, "print CSV: the owners' shares, or with --sites the call sites")
	cmd.Flags().BoolVar(&freed, "freed", false, "list where the free objects were freed (free tracks)")
	return cmd
}

// writeFreed is owners --freed: the free objects by the site that freed them.
func writeFreed(c *cobra.Command, g *globalOptions, k *kernel.Kernel, w *walk.Walker, cen *walk.Census, module, cache string, stacks bool) error {
	tracked := false
	for _, cs := range cen.Caches {
		ok, _ := w.StoresUser(cs.Name)
		tracked = tracked || ok
	}
	if !tracked {
		return &inputError{fmt.Errorf("%s: no cache keeps free tracks (SLAB_STORE_USER: boot with slub_debug=U)", k.Path())}
	}
	d, err := stackdepot.New(k)
	if err != nil {
		d = nil
	}
	sym := symbolize.New(w)
	defer sym.Close()
	sites, warnings, err := owners.Freed(w, sym, d)
	if err != nil {
		return classify(err)
	}
	var keep []owners.Site
	for _, s := range sites {
		if (module == "" || s.Module == module) && (cache == "" || s.Cache == cache) {
			keep = append(keep, s)
		}
	}
	siteLines(sym, keep, g.json || stacks)
	out := c.OutOrStdout()
	if g.json {
		if err := writeJSON(out, keep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(out, "%10s %9s  %-24s %s\n", "FREED", "BYTES", "CACHE", "FREED BY")
		for _, s := range keep {
			fmt.Fprintf(out, "%10d %9s  %-24s %s\n", s.Objects, humanBytes(uint64(s.Bytes)), kernel.Printable(s.Cache), siteName(s))
			if stacks {
				writeStacks(out, s)
			}
		}
	}
	printWarnings(c.ErrOrStderr(), append(cen.Warnings, warnings...))
	if cen.Partial || len(warnings) > 0 {
		return errPartial
	}
	return nil
}

// siteName is a call site as crash's sym prints it, or why there is none.
func siteName(s owners.Site) string {
	if s.Caller.Addr == 0 {
		return "- (" + s.Caller.What + ")"
	}
	return kernel.Printable(s.Caller.String())
}

// siteLines looks up the source lines of the frames that will be printed:
// the sites' callers, and with stacks their stacks' frames.
func siteLines(sym *symbolize.Symbolizer, sites []owners.Site, stacks bool) {
	for i := range sites {
		sites[i].Caller = sym.Line(sites[i].Caller)
		if stacks {
			sym.Lines(sites[i].Stack)
			for _, st := range sites[i].Stacks {
				sym.Lines(st.Frames)
			}
		}
	}
}

// buildOwners attributes a census: modules, stack depot (where the kernel
// has one) and sym wired to owners.Build.
func buildOwners(k *kernel.Kernel, w *walk.Walker, cen *walk.Census, sym *symbolize.Symbolizer) (*owners.Report, error) {
	rep, err := owners.Attribute(k, w, cen, sym)
	if err != nil {
		return nil, classify(err)
	}
	return rep, nil
}

// cacheOwners is slabs --owners' column: each cache's owning modules.
func (g *globalOptions) cacheOwners(k *kernel.Kernel, w *walk.Walker, cen *walk.Census) (map[string]string, error) {
	sym := symbolize.New(w)
	defer sym.Close()
	rep, err := buildOwners(k, w, cen, sym)
	if err != nil {
		return nil, err
	}
	cen.Warnings = append(cen.Warnings, rep.Warnings...)
	cen.Partial = cen.Partial || rep.Partial
	return rep.ModulesByCache(), nil
}

// writeOwners prints each owner's total, then its caches, then (sites) the
// call sites of tracked allocations, with (stacks) their full stacks.
func writeOwners(w io.Writer, r *owners.Report, sites, stacks bool) {
	fmt.Fprintf(w, "%-20s %10s %9s  %-24s %s\n", "OWNER", "OBJECTS", "BYTES", "CACHE", "EVIDENCE")
	for _, o := range r.Owners {
		fmt.Fprintf(w, "%-20s %10d %9s\n", kernel.Printable(o.Owner), o.Objects, humanBytes(uint64(o.Bytes)))
		for _, cs := range o.Caches {
			ev := cs.Evidence
			if ev == "" {
				ev = "-"
			}
			fmt.Fprintf(w, "%-20s %10d %9s  %-24s %s\n", "", cs.Objects, humanBytes(uint64(cs.Bytes)), kernel.Printable(cs.Cache), ev)
		}
	}
	if !r.Tracked {
		fmt.Fprintln(w, "no cache keeps allocation tracks: generic caches stay unattributed (slub_debug=U records them)")
	}
	if len(r.References) > 0 {
		fmt.Fprintln(w, "\nreferenced from module data (heuristic: the module uses these objects; it may not have allocated them)")
		fmt.Fprintf(w, "%-20s %10s %9s  %s\n", "MODULE", "OBJECTS", "BYTES", "CACHE")
		for _, ref := range r.References {
			fmt.Fprintf(w, "%-20s %10d %9s  %s\n", kernel.Printable(ref.Module), ref.Objects, humanBytes(uint64(ref.Bytes)), kernel.Printable(ref.Cache))
		}
	}
	if !sites || len(r.Sites) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%10s %9s  %-24s %s\n", "OBJECTS", "BYTES", "CACHE", "CALL SITE")
	for _, s := range r.Sites {
		fmt.Fprintf(w, "%10d %9s  %-24s %s\n", s.Objects, humanBytes(uint64(s.Bytes)), kernel.Printable(s.Cache), siteName(s))
		if stacks {
			writeStacks(w, s)
		}
	}
}

// writeStacks prints a site's distinct stacks, most objects first.
func writeStacks(w io.Writer, s owners.Site) {
	for _, st := range s.Stacks {
		fmt.Fprintf(w, "%10d %9s    stack %#08x:\n", st.Objects, humanBytes(uint64(st.Bytes)), st.Handle)
		for _, f := range st.Frames {
			fmt.Fprintf(w, "%22s      %s\n", "", kernel.Printable(f.String()))
		}
	}
}

// writeOwnersCSV prints the owners' shares, one row per owner, cache and
// evidence, or with sites one row per call site.
func writeOwnersCSV(w io.Writer, r *owners.Report, sites bool) error {
	cw := csv.NewWriter(w)
	if sites {
		cw.Write([]string{"cache", "owner", "caller", "kind", "objects", "bytes", "stacks"})
		for _, s := range r.Sites {
			caller := ""
			if s.Caller.Addr != 0 {
				caller = s.Caller.String()
			}
			cw.Write([]string{s.Cache, s.Owner, caller, s.Caller.Kind, strconv.FormatInt(s.Objects, 10), strconv.FormatInt(s.Bytes, 10), strconv.Itoa(len(s.Stacks))})
		}
	} else {
		cw.Write([]string{"owner", "cache", "evidence", "objects", "bytes"})
		for _, o := range r.Owners {
			for _, cs := range o.Caches {
				cw.Write([]string{o.Owner, cs.Cache, cs.Evidence, strconv.FormatInt(cs.Objects, 10), strconv.FormatInt(cs.Bytes, 10)})
			}
		}
	}
	cw.Flush()
	return cw.Error()
}
