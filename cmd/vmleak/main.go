// Command vmleak analyzes Linux kernel crash dumps offline: where the kernel's
// memory went, which slab cache holds it, which module owns it.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"runtime/trace"
	"strings"
)

func main() {
	os.Exit(recorded(func() int { return run(os.Args[1:], os.Stdout, os.Stderr) }))
}

// recorders are what a run can record into a file the environment names:
// VMLEAK_CPUPROFILE a CPU profile (go tool pprof), how the README's "where
// the time goes" is measured; VMLEAK_TRACE an execution trace (go tool
// trace), for the wall time a CPU profile does not show (waits, idle cores).
var recorders = []struct {
	env   string
	start func(io.Writer) error
	stop  func()
}{
	{"VMLEAK_CPUPROFILE", pprof.StartCPUProfile, pprof.StopCPUProfile},
	{"VMLEAK_TRACE", trace.Start, trace.Stop},
}

// recorded runs f under the recorders asked for and returns its exit code.
func recorded(f func() int) int {
	for _, r := range recorders {
		p := os.Getenv(r.env)
		if p == "" {
			continue
		}
		out, err := os.Create(p)
		if err != nil {
			continue
		}
		defer out.Close()
		if r.start(out) == nil {
			defer r.stop()
		}
	}
	return f()
}

// run executes one command line and returns the process exit code. A panic is
// a bug in vmleak: it is turned into a one-line report and ExitInternal, never
// a stack dump in the user's face (VMLEAK_DEBUG=1 shows the stack).
func run(args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "vmleak: internal error (a bug, please report)%s: %v\n", inputsOf(args), r)
			if os.Getenv("VMLEAK_DEBUG") != "" {
				stderr.Write(debug.Stack())
			}
			code = ExitInternal
		}
	}()
	cmd, done := newRootCmd()
	defer done()
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	err := cmd.Execute()
	if err != nil {
		fmt.Fprintf(stderr, "vmleak: %s%v\n", unnamedInput(err, args), err)
	}
	return exitCode(err)
}

// inputFiles are the files among a command line's arguments, the parts of
// a comma-separated split dump each on its own.
func inputFiles(args []string) []string {
	var files []string
	for _, a := range args {
		parts := []string{a}
		if _, err := os.Stat(a); err != nil {
			parts = strings.Split(a, ",")
		}
		for _, p := range parts {
			if st, err := os.Stat(p); err == nil && !st.IsDir() {
				files = append(files, p)
			}
		}
	}
	return files
}

// inputsOf names the files among a command line's arguments, for the one
// line a panic leaves: which input made vmleak fail.
// unnamedInput is "FILE: " when err is about unusable or mismatched input
// but names none of the input files (a read deep in the kernel's memory
// names only the address), so that the one error line says which file.
func unnamedInput(err error, args []string) string {
	if c := exitCode(err); c != ExitInput && c != ExitMismatch {
		return ""
	}
	files := inputFiles(args)
	msg := err.Error()
	for _, f := range files {
		if strings.Contains(msg, f) {
			return ""
		}
	}
	if len(files) == 0 {
		return ""
	}
	return files[0] + ": "
}

func inputsOf(args []string) string {
	files := inputFiles(args)
	if len(files) == 0 {
		return ""
	}
	return " reading " + strings.Join(files, ", ")
}
