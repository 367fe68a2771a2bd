package main

import (
	"encoding/csv"
	"fmt"
	"github.com/vmleak/vmleak/internal/human"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/walk"
)

// takeCensus opens a dump and counts its slab caches, printing progress on
// stderr when that is a terminal and the work takes more than a second.
func (g *globalOptions) takeCensus(c *cobra.Command, dump string) (*kernel.Kernel, *walk.Census, error) {
	k, _, cen, err := g.takeCensusWalker(c, dump)
	return k, cen, err
}

// takeCensusWalker is takeCensus that also hands back the walker, for
// commands that go on from the census (owners).
func (g *globalOptions) takeCensusWalker(c *cobra.Command, dump string) (*kernel.Kernel, *walk.Walker, *walk.Census, error) {
	done := progress(c.ErrOrStderr(), "counting slab objects")
	defer done()
	k, w, err := g.openWalker(dump)
	if err != nil {
		return nil, nil, nil, err
	}
	cen, err := w.Census()
	if err != nil {
		k.Close()
		return nil, nil, nil, classify(err)
	}
	w.SetAliases(cen)
	return k, w, cen, nil
}

// progress prints a note after a second if out is a terminal; the returned
// function ends it.
func progress(out io.Writer, what string) func() {
	f, ok := out.(*os.File)
	if !ok {
		return func() {}
	}
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return func() {}
	}
	stop := make(chan struct{})
	shown := make(chan bool, 1)
	go func() {
		select {
		case <-stop:
			shown <- false
		case <-time.After(time.Second):
			fmt.Fprintf(f, "vmleak: %s...", what)
			<-stop
			shown <- true
		}
	}()
	return func() {
		close(stop)
		if <-shown {
			fmt.Fprint(f, "\r\033[K")
		}
	}
}

type slabsOptions struct {
	sort    string
	top     int
	csv     bool
	columns string
	wide    bool
	owners  bool
}

// Columns of `vmleak slabs`; the first seven are crash's `kmem -s`.
var slabColumns = map[string]struct {
	header string
	width  int // 0: left-aligned, last
	value  func(c *walk.CacheStats, t *slabTable) string
}{
	"cache":     {"CACHE", -16, func(c *walk.CacheStats, _ *slabTable) string { return fmt.Sprintf("%x", c.Addr) }},
	"objsize":   {"OBJSIZE", 8, func(c *walk.CacheStats, _ *slabTable) string { return strconv.FormatUint(c.ObjectSize, 10) }},
	"allocated": {"ALLOCATED", 9, func(c *walk.CacheStats, _ *slabTable) string { return strconv.FormatInt(c.Allocated, 10) }},
	"total":     {"TOTAL", 8, func(c *walk.CacheStats, _ *slabTable) string { return strconv.FormatInt(c.Total, 10) }},
	"slabs":     {"SLABS", 5, func(c *walk.CacheStats, _ *slabTable) string { return strconv.FormatInt(c.Slabs, 10) }},
	"ssize":     {"SSIZE", 5, func(c *walk.CacheStats, _ *slabTable) string { return fmt.Sprintf("%dk", c.SlabBytes/1024) }},
	"memory":    {"MEMORY", 9, func(c *walk.CacheStats, _ *slabTable) string { return humanBytes(c.MemoryBytes()) }},
	"inuse":     {"INUSE", 9, func(c *walk.CacheStats, _ *slabTable) string { return humanBytes(uint64(c.Allocated) * c.Size) }},
	"share": {"SHARE", 6, func(c *walk.CacheStats, t *slabTable) string {
		if t.total == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f%%", 100*float64(c.MemoryBytes())/float64(t.total))
	}},
	"owner": {"OWNER", 0, func(c *walk.CacheStats, t *slabTable) string {
		if o := t.owners[c.Name]; o != "" {
			return o
		}
		return "-"
	}},
	"free": {"FREE(slab/cpu/sheaf)", 20, func(c *walk.CacheStats, _ *slabTable) string {
		return fmt.Sprintf("%d/%d/%d", c.Free.SlabFreelists, c.Free.CPUFreelists, c.Free.Sheaves)
	}},
	"counter": {"COUNTER", 9, func(c *walk.CacheStats, _ *slabTable) string { return strconv.FormatInt(c.Counters.Allocated, 10) }},
	"name": {"NAME", 0, func(c *walk.CacheStats, _ *slabTable) string {
		n := c.Name
		if c.Disagree || c.UnreadableSlabs > 0 {
			n += " *"
		}
		return n
	}},
	"aliases": {"ALIASES", 0, func(c *walk.CacheStats, _ *slabTable) string { return strings.Join(c.Aliases, ",") }},
}

const (
	defaultColumns = "cache,objsize,allocated,total,slabs,ssize,name"
	wideColumns    = "cache,objsize,allocated,total,slabs,ssize,memory,share,name,aliases"
)

func newSlabsCmd(g *globalOptions) *cobra.Command {
	o := &slabsOptions{}
	cmd := &cobra.Command{
		Use:   "slabs DUMP [PART...]",
		Short: "Count every slab cache's objects (like crash's kmem -s, but exact)",
		Long: `slabs counts the objects of every SLUB cache in the dump by visiting every
slab page (a census), and prints the same rows, columns and order as crash's
"kmem -s": the kmem_cache address, object size, allocated and total objects,
slabs and slab size, newest cache first.

The census is checked against the kernel's own counters (crash's method); a
cache where the two disagree is marked "*" and explained in a warning and in
the JSON output. Columns beyond crash's: memory (slab memory), inuse
(allocated objects x size), share (of all slab memory), free (where the free
objects are: slab freelists / CPU freelists / sheaves), counter (the counter
method's allocated count), aliases (names merged into the cache).

` + exitCodesHelp,
		Example: `  vmleak slabs /var/crash/vmcore
  vmleak slabs vmcore --sort memory --top 10 --wide
  vmleak slabs vmcore --columns name,allocated,memory,aliases --csv
  vmleak slabs vmcore --json | jq '.caches[] | select(.name=="dentry")'`,
		Args: dumpArgs,
		RunE: func(c *cobra.Command, args []string) error {
			cols := o.columns
			if cols == "" {
				cols = defaultColumns
				if o.wide {
					cols = wideColumns
				}
			}
			colList := strings.Split(cols, ",")
			for _, name := range colList {
				if _, ok := slabColumns[name]; !ok {
					return &usageError{msg: fmt.Sprintf("unknown column %q (have: cache, objsize, allocated, total, slabs, ssize, memory, inuse, share, free, counter, owner, name, aliases)", name)}
				}
			}
			if o.top < 0 {
				return &usageError{msg: "--top must not be negative"}
			}
			k, w, cen, err := g.takeCensusWalker(c, dumpArg(args))
			if err != nil {
				return err
			}
			defer k.Close()
			var owned map[string]string
			if o.owners {
				if owned, err = g.cacheOwners(k, w, cen); err != nil {
					return err
				}
				if i := slices.Index(colList, "name"); i >= 0 {
					colList = slices.Insert(colList, i, "owner")
				} else {
					colList = append(colList, "owner")
				}
			}
			if err := cen.SortBy(o.sort); err != nil {
				return &usageError{msg: err.Error()}
			}
			if o.top > 0 && o.top < len(cen.Caches) {
				cen.Caches = cen.Caches[:o.top]
			}
			out := c.OutOrStdout()
			switch {
			case g.json:
				if err := writeJSON(out, cen); err != nil {
					return err
				}
			case o.csv:
				if err := writeSlabsCSV(out, cen, colList, owned); err != nil {
					return err
				}
			default:
				writeSlabsText(out, cen, colList, owned)
			}
			warnCensus(c.ErrOrStderr(), cen)
			if cen.Partial {
				return errPartial
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.sort, "sort", "", "sort by name, allocated, total, slabs, memory or objsize (default: kernel order, like crash)")
	f.IntVar(&o.top, "top", 0, "show only the first N caches (after sorting)")
	f.BoolVar(&o.csv, "csv", false, "print CSV")
	f.StringVar(&o.columns, "columns", "", "comma-separated columns (default "+defaultColumns+")")
	f.BoolVar(&o.wide, "wide", false, "add memory, share and aliases columns")
	f.BoolVar(&o.owners, "owners", false, "add an OWNER column: the modules holding each cache's objects (see vmleak owners)")
	return cmd
}

// slabTable is what a column needs beyond its own cache: the memory of
// all caches (SHARE) and each cache's owning modules (OWNER, --owners).
type slabTable struct {
	total  uint64
	owners map[string]string // cache name -> "mod1,mod2"
}

func newSlabTable(cen *walk.Census, owners map[string]string) *slabTable {
	t := &slabTable{owners: owners}
	for _, c := range cen.Caches {
		t.total += c.MemoryBytes()
	}
	return t
}

// writeSlabsText prints crash's kmem -s layout: each column right-aligned to
// its width, two spaces apart, the address left-aligned, names last.
func writeSlabsText(w io.Writer, cen *walk.Census, cols []string, owners map[string]string) {
	total := newSlabTable(cen, owners)
	// Variable-width columns (names) are padded to their longest value unless last.
	widths := make(map[string]int)
	for i, name := range cols {
		if slabColumns[name].width == 0 && i < len(cols)-1 {
			wd := len(slabColumns[name].header)
			for _, c := range cen.Caches {
				wd = max(wd, len(slabColumns[name].value(c, total)))
			}
			widths[name] = wd
		}
	}
	line := func(cell func(name string) string) {
		var sb strings.Builder
		for i, name := range cols {
			col := slabColumns[name]
			v := cell(name)
			if i > 0 {
				if name == "objsize" && cols[i-1] == "cache" {
					sb.WriteString(" ") // crash: "%-16lx %8ld"
				} else {
					sb.WriteString("  ")
				}
			}
			switch {
			case col.width < 0:
				fmt.Fprintf(&sb, "%-*s", -col.width, v)
			case col.width > 0:
				fmt.Fprintf(&sb, "%*s", col.width, v)
			case widths[name] > 0:
				fmt.Fprintf(&sb, "%-*s", widths[name], v)
			default:
				sb.WriteString(v)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(sb.String(), " "))
	}
	line(func(name string) string { return slabColumns[name].header })
	for _, c := range cen.Caches {
		line(func(name string) string { return slabColumns[name].value(c, total) })
	}
}

func writeSlabsCSV(w io.Writer, cen *walk.Census, cols []string, owners map[string]string) error {
	cw := csv.NewWriter(w)
	total := newSlabTable(cen, owners)
	head := make([]string, len(cols))
	for i, name := range cols {
		head[i] = strings.ToLower(name)
	}
	if err := cw.Write(head); err != nil {
		return err
	}
	for _, c := range cen.Caches {
		row := make([]string, len(cols))
		for i, name := range cols {
			switch name {
			case "memory":
				row[i] = strconv.FormatUint(c.MemoryBytes(), 10)
			case "inuse":
				row[i] = strconv.FormatUint(uint64(c.Allocated)*c.Size, 10)
			case "name":
				row[i] = c.Name
			case "aliases":
				row[i] = strings.Join(c.Aliases, " ")
			default:
				row[i] = slabColumns[name].value(c, total)
			}
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// warnCensus reports disagreements and partial caches on stderr, briefly:
// the JSON output has every detail.
func warnCensus(w io.Writer, cen *walk.Census) {
	const most = 10
	var partial, moved []string
	for _, c := range cen.Caches {
		if c.Moved {
			moved = append(moved, c.Name)
		}
		if c.Disagree && len(c.Corrupt) == 0 { // a corrupt cache is in cen.Warnings
			fmt.Fprintf(w, "vmleak: warning: %s: census and counters disagree: %s\n", c.Name, c.Why)
		}
		if c.UnreadableSlabs > 0 {
			partial = append(partial, fmt.Sprintf("%s (%d slabs)", c.Name, c.UnreadableSlabs))
		}
	}
	if cen.Live && len(moved) > 0 {
		// All of them: which counts are of one instant is the point.
		fmt.Fprintf(w, "vmleak: live kernel: %d of %d caches changed while they were read (%s): their counts are of a moment during the scan\n",
			len(moved), len(cen.Caches), strings.Join(moved, ", "))
	}
	if len(partial) > 0 {
		more := ""
		if len(partial) > most {
			more = fmt.Sprintf(" and %d more (see --json)", len(partial)-most)
			partial = partial[:most]
		}
		fmt.Fprintf(w, "vmleak: warning: partial: slabs missing from the dump in %s%s\n", strings.Join(partial, ", "), more)
	}
	ws := cen.Warnings
	if len(ws) > 2*most {
		ws = append(ws[:most:most], fmt.Sprintf("... %d more warnings (see --json)", len(cen.Warnings)-most))
	}
	printWarnings(w, ws)
}

func humanBytes(b uint64) string { return human.Bytes(b) }
