// Command vmleak analyzes Linux kernel crash dumps offline: where the kernel's
// memory went, which slab cache holds it, which module owns it.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the process exit code. A panic is
// a bug in vmleak: it is turned into a one-line report and ExitInternal, never
// a stack dump in the user's face (VMLEAK_DEBUG=1 shows the stack).
func run(args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "vmleak: internal error (a bug, please report): %v\n", r)
			if os.Getenv("VMLEAK_DEBUG") != "" {
				stderr.Write(debug.Stack())
			}
			code = ExitInternal
		}
	}()
	cmd := newRootCmd()
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	err := cmd.Execute()
	if err != nil {
		fmt.Fprintf(stderr, "vmleak: %v\n", err)
	}
	return exitCode(err)
}
