package main

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vmleak/vmleak/internal/human"
	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/leaks"
	"github.com/vmleak/vmleak/symbolize"
)

func newLeaksCmd(g *globalOptions) *cobra.Command {
	var cache, module string
	var addresses bool
	cmd := &cobra.Command{
		Use:   "leaks DUMP [PART...]",
		Short: "Find allocated slab objects nothing points to (offline kmemleak)",
		Long: `leaks scans the dump for pointers, as the kernel's kmemleak does on a live
system, on any kernel: from the roots (the kernel's .data, .bss and
ro_after_init, every module's data, each CPU's per-CPU area, every task's
stack, vmalloc'd areas, the kernel's pages outside slab that are in use or
reserved, the struct page array), every allocated slab object a word points
into (anywhere inside it) is referenced, and its own words are scanned in
turn. What is left is unreferenced: leak suspects, grouped by cache, then by
owner — the allocating call site where the cache keeps allocation tracks
(slub_debug=U), else the module owning the cache, else unattributed — with
the first bytes of a few samples. Large kmalloc and vmalloc areas are
scanned as roots, not reported as objects; user and page cache pages are
not scanned.

--cache and --module keep one cache or one owner; --addresses prints one
hex address per line of each unreferenced object, for other tools. Pages
missing from the dump (makedumpfile -d 31 drops user, cache and free pages)
are counted; a missing page that held a reference makes its target look
unreferenced, so the result is then partial (exit code 5).

` + exitCodesHelp,
		Example: `  vmleak leaks vmcore
  vmleak leaks vmcore --module vmleak_test
  vmleak leaks vmcore --cache kmalloc-1k --addresses | head
  vmleak leaks vmcore --json`,
		Args: dumpArgs,
		RunE: func(c *cobra.Command, args []string) error {
			k, w, cen, err := g.takeCensusWalker(c, dumpArg(args))
			if err != nil {
				return err
			}
			defer k.Close()
			if cache != "" && cen.Cache(cache) == nil {
				return &usageError{msg: fmt.Sprintf("no cache %q in the dump (aliases name the cache they merged into: see slabs --wide)", cache)}
			}
			done := progress(c.ErrOrStderr(), "scanning for pointers")
			r, err := leaks.Find(k, w, cen, symbolize.New(w))
			done()
			if err != nil {
				return classify(err)
			}
			if cache != "" || module != "" {
				r.Filter(k, cache, module)
			}
			out := bufio.NewWriter(c.OutOrStdout())
			defer out.Flush()
			switch {
			case addresses:
				writeLeakAddresses(out, r)
			case g.json:
				if err := writeJSON(out, r); err != nil {
					return err
				}
			default:
				writeLeaks(out, r)
			}
			if err := out.Flush(); err != nil {
				return err
			}
			printWarnings(c.ErrOrStderr(), append(cen.Warnings, r.Warnings...))
			if r.Partial {
				return errPartial
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cache, "cache", "", "show only this cache")
	cmd.Flags().StringVar(&module, "module", "", "show only this owner (a module name, kernel or unattributed)")
	cmd.Flags().BoolVar(&addresses, "addresses", false, "print the address of each unreferenced object, one per line")
	return cmd
}

// writeLeakAddresses prints each unreferenced object's address, as
// objects does.
func writeLeakAddresses(w io.Writer, r *leaks.Result) {
	for _, l := range r.Leaks {
		fmt.Fprintf(w, "%x\n", l.Addr)
	}
}

// writeLeaks prints the summary line, then each cache and its owners, each
// owner with its samples as kmemleak prints them (address, size, hex dump
// of the first bytes).
func writeLeaks(w io.Writer, r *leaks.Result) {
	fmt.Fprintf(w, "%d unreferenced objects (%s) of %d allocated; %s scanned", r.Unreferenced, humanBytes(r.UnreferencedBytes), r.Objects, humanBytes(r.ScannedBytes))
	if r.UnreadablePages > 0 {
		fmt.Fprintf(w, "; %d pages unreadable", r.UnreadablePages)
	}
	if r.Partial {
		fmt.Fprint(w, " (partial: objects referenced only from memory that could not be read are reported)")
	}
	fmt.Fprintln(w)
	var roots []string
	for _, rs := range r.Roots {
		s := fmt.Sprintf("%s %s in %d", rs.Kind, humanBytes(rs.Bytes), rs.Regions)
		if rs.UnreadablePages > 0 {
			s += fmt.Sprintf(" (%d pages unreadable)", rs.UnreadablePages)
		}
		roots = append(roots, s)
	}
	fmt.Fprintf(w, "roots: %s\n", strings.Join(roots, ", "))
	if len(r.Caches) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%-24s %9s %9s  %-20s %s\n", "CACHE", "OBJECTS", "BYTES", "OWNER", "SITE (EVIDENCE)")
	for _, c := range r.Caches {
		fmt.Fprintf(w, "%-24s %9d %9s\n", kernel.Printable(c.Cache), c.Objects, humanBytes(c.Bytes))
		for _, g := range c.Groups {
			site := g.Site
			if site == "" {
				site = "-"
			}
			fmt.Fprintf(w, "%-24s %9d %9s  %-20s %s (%s)\n", "", g.Objects, humanBytes(g.Bytes), kernel.Printable(g.Owner), kernel.Printable(site), g.Evidence)
			for _, s := range g.Samples {
				writeSample(w, s, c.ObjectSize)
			}
		}
	}
}

// writeSample is one object as kmemleak's report shows it: 16 bytes a
// line, in hex and as text.
func writeSample(w io.Writer, s leaks.Sample, size uint64) {
	fmt.Fprintf(w, "    unreferenced object %#x (size %d):\n", uint64(s.Addr), size)
	b, err := hex.DecodeString(s.Bytes)
	if err != nil || len(b) == 0 {
		fmt.Fprintln(w, "      (unreadable)")
		return
	}
	fmt.Fprintf(w, "      hex dump (first %d bytes):\n", len(b))
	for off := 0; off < len(b); off += 16 {
		hx, txt := human.HexLine(b[off:min(off+16, len(b))])
		fmt.Fprintf(w, "        %-47s  %s\n", hx, txt)
	}
}
