package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/vmleak/vmleak/elfcore"
	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/summary"
)

// Split dumps (makedumpfile --split): wherever a command takes a DUMP, it
// may be the parts of one dump as a comma-separated list, in the order
// makedumpfile wrote them (DUMP.1,DUMP.2,DUMP.3). Commands whose only
// argument is the dump also take the parts as separate arguments.
const splitDumpHelp = `A dump written in parts by makedumpfile --split is read whole from all its
parts, in the order makedumpfile was given them: DUMP is then the parts
separated by commas (vmcore.1,vmcore.2,vmcore.3); commands whose only
argument is the dump also take them as separate arguments. One part alone is
read as a partial dump: the pages of the other parts are missing (exit 5).
`

// splitNotes collects what the commands of one run opened of split dumps:
// a part read alone makes the results partial. It is shared by copies of
// the globalOptions.
type splitNotes struct {
	mu     sync.Mutex
	stderr io.Writer
	lone   []string // one line per part opened alone
}

func (s *splitNotes) noteLone(msg string, quiet bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lone = append(s.lone, msg)
	if !quiet && s.stderr != nil {
		printWarnings(s.stderr, []string{msg})
	}
}

func (s *splitNotes) partial() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lone) > 0
}

// dumpParts is the files a DUMP argument names: the file of that name if
// there is one, else the comma-separated parts of a split dump.
func dumpParts(arg string) ([]string, error) {
	if !strings.Contains(arg, ",") {
		return []string{arg}, nil
	}
	if _, err := os.Stat(arg); err == nil {
		return []string{arg}, nil // a file whose name has a comma
	}
	parts := strings.Split(arg, ",")
	for _, p := range parts {
		if p == "" {
			return nil, &usageError{msg: fmt.Sprintf("%q: an empty part in the comma-separated parts of a split dump", arg)}
		}
	}
	return parts, nil
}

// isSummaryArg tells whether a diff argument is a saved summary rather
// than a dump: the parts of a split dump never are.
func isSummaryArg(arg string) (bool, error) {
	if parts, err := dumpParts(arg); err == nil && len(parts) > 1 {
		return false, nil
	}
	_, isSum, err := summary.IsSummary(arg)
	return isSum, err
}

// dumpArgs accepts the parts of one dump as one or more arguments.
func dumpArgs(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return &usageError{msg: fmt.Sprintf("%s takes 1 argument (a dump, or the parts of a split dump), got 0%s", c.Name(), seeHelp(c))}
	}
	return nil
}

// dumpArg joins the arguments of a command that takes only a dump into one
// DUMP: the parts of a split dump when there are several.
func dumpArg(args []string) string { return strings.Join(args, ",") }

// openDump opens a DUMP argument as a kernel: one file through kernel.Open,
// the parts of a split dump joined by elfcore.OpenSplit. A part opened
// alone is noted (a warning unless quiet; the run then exits partial).
func (g *globalOptions) openDump(dump string, opts kernel.Options, quiet bool) (*kernel.Kernel, error) {
	parts, err := dumpParts(dump)
	if err != nil {
		return nil, err
	}
	var k *kernel.Kernel
	if len(parts) == 1 {
		k, err = kernel.Open(parts[0], opts)
		if err != nil {
			return nil, explainLonePart(err, parts[0])
		}
	} else {
		d, err := elfcore.OpenSplit(parts...)
		if err != nil {
			return nil, err
		}
		if k, err = kernel.OpenDump(d, dump, opts); err != nil {
			return nil, err
		}
	}
	if k.Dump().Incomplete() {
		k.Warnf("%s: the dump is marked incomplete (its writer did not finish): a page it lacks is reported where it is read", dump)
	}
	if si := k.Dump().Split(); si != nil && !si.Complete() {
		g.splits.noteLone(lonePartMsg(parts[0], si), quiet)
	}
	return k, nil
}

func lonePartMsg(file string, si *elfcore.SplitInfo) string {
	return fmt.Sprintf("%s is %s: give every part, comma-separated, to read it whole", file, si)
}

// explainLonePart adds to a failure to read memory that another part of a
// split dump holds which part the file is.
func explainLonePart(err error, file string) error {
	var mp *elfcore.MissingPageError
	if !errors.As(err, &mp) || mp.Reason != elfcore.ReasonOtherPart {
		return err
	}
	d, derr := elfcore.Open(file)
	if derr != nil {
		return err
	}
	defer d.Close()
	if si := d.Split(); si != nil {
		return fmt.Errorf("%w (%s)", err, lonePartMsg(file, si))
	}
	return err
}

// isOtherPart tells whether err is a read of a page another part of a split
// dump holds.
func isOtherPart(err error) bool {
	var mp *elfcore.MissingPageError
	return errors.As(err, &mp) && mp.Reason == elfcore.ReasonOtherPart
}

// splitJSON is the split dump in vmleak info --json.
type splitJSON struct {
	Parts    []splitPartJSON `json:"parts"`
	MaxPFN   kernel.Hex      `json:"max_pfn"`
	Complete bool            `json:"complete"`
	Missing  []pfnRangeJSON  `json:"missing_pfns,omitempty"`
	Says     string          `json:"description"`
}

type splitPartJSON struct {
	File     string     `json:"file"`
	StartPFN kernel.Hex `json:"start_pfn"`
	EndPFN   kernel.Hex `json:"end_pfn"`
}

type pfnRangeJSON struct {
	Start kernel.Hex `json:"start"`
	End   kernel.Hex `json:"end"`
}

func newSplitJSON(si *elfcore.SplitInfo) *splitJSON {
	if si == nil {
		return nil
	}
	s := &splitJSON{MaxPFN: kernel.Hex(si.MaxPFN), Complete: si.Complete(), Says: si.String()}
	for _, p := range si.Parts {
		s.Parts = append(s.Parts, splitPartJSON{p.File, kernel.Hex(p.PFNs.Start), kernel.Hex(p.PFNs.End)})
	}
	for _, m := range si.Missing {
		s.Missing = append(s.Missing, pfnRangeJSON{kernel.Hex(m.Start), kernel.Hex(m.End)})
	}
	return s
}
