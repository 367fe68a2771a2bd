package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/owners"
	"github.com/vmleak/vmleak/stackdepot"
	"github.com/vmleak/vmleak/symbolize"
	"github.com/vmleak/vmleak/walk"
)

func newOwnersCmd(g *globalOptions) *cobra.Command {
	var module string
	var sites, freed bool
	cmd := &cobra.Command{
		Use:   "owners DUMP",
		Short: "Say whose the slab memory is: which module, call site or nobody known",
		Long: `owners attributes every allocated slab object of the dump, strongest evidence
first: the object's SLUB allocation track where its cache keeps them
(slub_debug=U or SLAB_STORE_USER: the call site and its module), else the
module that owns the cache (its data holds the kmem_cache pointer, its text
the constructor). Objects with no evidence are "unattributed", counted and
never guessed. --sites lists the call sites of tracked allocations; --freed
lists instead where the free objects were last freed (their free tracks),
for use-after-free forensics. Call sites show their source file:line where
the vmlinux or the module's debuginfo (--debuginfo-dir) has line tables.

` + exitCodesHelp,
		Example: `  vmleak owners vmcore
  vmleak owners vmcore --module vmleak_test --sites
  vmleak owners vmcore --json`,
		Args: exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			k, w, cen, err := g.takeCensusWalker(c, args[0])
			if err != nil {
				return err
			}
			defer k.Close()
			if freed {
				return writeFreed(c, g, k, w, cen, module)
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
			switch {
			case g.json:
				siteLines(sym, rep.Sites, true, "")
			case sites:
				siteLines(sym, rep.Sites, false, module)
			}
			out := c.OutOrStdout()
			if g.json {
				if err := writeJSON(out, rep); err != nil {
					return err
				}
			} else {
				writeOwners(out, rep, sites, module)
			}
			printWarnings(c.ErrOrStderr(), append(cen.Warnings, rep.Warnings...))
			if rep.Partial {
				return errPartial
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&module, "module", "", "show only this owner (a module name, kernel or unattributed)")
	cmd.Flags().BoolVar(&sites, "sites", false, "list the call sites of tracked allocations")
	cmd.Flags().BoolVar(&freed, "freed", false, "list where the free objects were freed (free tracks)")
	return cmd
}

// writeFreed is owners --freed: the free objects by the site that freed them.
func writeFreed(c *cobra.Command, g *globalOptions, k *kernel.Kernel, w *walk.Walker, cen *walk.Census, module string) error {
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
	siteLines(sym, sites, g.json, module)
	var keep []owners.Site
	for _, s := range sites {
		if module == "" || s.Module == module {
			keep = append(keep, s)
		}
	}
	out := c.OutOrStdout()
	if g.json {
		if err := writeJSON(out, keep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(out, "%10s %9s  %-24s %s\n", "FREED", "BYTES", "CACHE", "FREED BY")
		for _, s := range keep {
			fmt.Fprintf(out, "%10d %9s  %-24s %s\n", s.Objects, humanBytes(uint64(s.Bytes)), kernel.Printable(s.Cache), siteName(s))
		}
	}
	printWarnings(c.ErrOrStderr(), append(cen.Warnings, warnings...))
	if cen.Partial {
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
// the callers of the sites of module (all sites if ""), and with stacks
// their stacks' frames. Only those: lines cost more than names.
func siteLines(sym *symbolize.Symbolizer, sites []owners.Site, stacks bool, module string) {
	for i := range sites {
		if module != "" && sites[i].Module != module {
			continue
		}
		sites[i].Caller = sym.Line(sites[i].Caller)
		if stacks {
			sym.Lines(sites[i].Stack)
		}
	}
}

// buildOwners attributes a census: modules, stack depot (where the kernel
// has one) and sym wired to owners.Build.
func buildOwners(k *kernel.Kernel, w *walk.Walker, cen *walk.Census, sym *symbolize.Symbolizer) (*owners.Report, error) {
	mods, merr := k.Modules()
	d, err := stackdepot.New(k)
	if err != nil {
		if !errors.Is(err, kernel.ErrAbsent) {
			k.Warnf("stack depot: %v", err)
		}
		d = nil
	}
	rep, err := owners.Build(w, cen, mods, sym, d)
	if err != nil {
		return nil, classify(err)
	}
	if merr != nil {
		rep.Warnings = append(rep.Warnings, merr.Error())
		rep.Partial = true
	}
	return rep, nil
}

// cacheOwners is slabs --owners' column: each cache's owning modules.
func (g *globalOptions) cacheOwners(k *kernel.Kernel, w *walk.Walker, cen *walk.Census) (map[string]string, error) {
	rep, err := buildOwners(k, w, cen, symbolize.New(w))
	if err != nil {
		return nil, err
	}
	cen.Warnings = append(cen.Warnings, rep.Warnings...)
	cen.Partial = cen.Partial || rep.Partial
	return rep.ModulesByCache(), nil
}

// writeOwners prints each owner's total, then its caches, then (--sites)
// the call sites of tracked allocations.
func writeOwners(w io.Writer, r *owners.Report, sites bool, module string) {
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
	var refs []owners.Reference
	for _, ref := range r.References {
		if module == "" || ref.Module == module {
			refs = append(refs, ref)
		}
	}
	if len(refs) > 0 {
		fmt.Fprintln(w, "\nreferenced from module data (heuristic: the module uses these objects; it may not have allocated them)")
		fmt.Fprintf(w, "%-20s %10s %9s  %s\n", "MODULE", "OBJECTS", "BYTES", "CACHE")
		for _, ref := range refs {
			fmt.Fprintf(w, "%-20s %10d %9s  %s\n", kernel.Printable(ref.Module), ref.Objects, humanBytes(uint64(ref.Bytes)), kernel.Printable(ref.Cache))
		}
	}
	if !sites || len(r.Sites) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%10s %9s  %-24s %s\n", "OBJECTS", "BYTES", "CACHE", "CALL SITE")
	for _, s := range r.Sites {
		if module != "" && s.Module != module {
			continue
		}
		fmt.Fprintf(w, "%10d %9s  %-24s %s\n", s.Objects, humanBytes(uint64(s.Bytes)), kernel.Printable(s.Cache), siteName(s))
	}
}
