package main

import (
	"errors"
)

// Exit codes, documented in `vmleak --help` and the README.
const (
	ExitOK       = 0 // success
	ExitInternal = 1 // a bug in vmleak
	ExitUsage    = 2 // bad command line
	ExitInput    = 3 // the dump or debuginfo cannot be used (unreadable, corrupt, unsupported)
	ExitMismatch = 4 // the vmlinux does not belong to the dump
	ExitPartial  = 5 // completed, but part of the data was unreadable (e.g. pages filtered out)
	ExitGrowth   = 6 // diff: a --fail-if-growth limit was exceeded (the output is complete)
	ExitFindings = 7 // check: a finding of high severity is present (the output is complete)
	ExitResource = 8 // a resource limit (--max-memory) was hit; the output is cut short
)

const exitCodesHelp = `Exit codes:
  0  success
  1  internal error (a bug in vmleak)
  2  usage error
  3  unusable input: the dump or debuginfo is unreadable, corrupt or unsupported
  4  the vmlinux does not match the dump (see --force)
  5  completed with partial results: some memory was missing from the dump
  6  diff: growth exceeded a --fail-if-growth limit (checked before 5: a
     limit exceeded on complete caches is exceeded whatever else is partial)
  7  check: a finding of high severity is present (checked before 5)
  8  a resource limit was hit (--max-memory): the output is cut short
`

// usageError marks command-line mistakes.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// inputError marks input that cannot be used.
type inputError struct{ err error }

func (e *inputError) Error() string { return e.err.Error() }
func (e *inputError) Unwrap() error { return e.err }

// mismatchError marks a vmlinux that does not belong to the dump.
type mismatchError struct{ err error }

func (e *mismatchError) Error() string { return e.err.Error() }
func (e *mismatchError) Unwrap() error { return e.err }

// errPartial is returned after output was written when part of the result
// could not be read; the output itself says what is missing.
var errPartial = errors.New("results are partial: some memory was missing from the dump (see warnings)")

// errGrowth is returned by diff after its output when a growth limit was
// exceeded; which ones is on stderr and in the JSON.
var errGrowth = errors.New("growth limit exceeded")

func exitCode(err error) int {
	var (
		ue *usageError
		ie *inputError
		me *mismatchError
	)
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, errPartial):
		return ExitPartial
	case errors.Is(err, errGrowth):
		return ExitGrowth
	case errors.Is(err, errHighFinding):
		return ExitFindings
	case errors.As(err, &ue):
		return ExitUsage
	case errors.As(err, &me):
		return ExitMismatch
	case errors.As(err, &ie):
		return ExitInput
	}
	return ExitInternal
}
