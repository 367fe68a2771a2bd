package forensics

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/vmleak/vmleak/kdwarf"
)

// syscallTables are the system call tables x86_64 kernels build, with the
// prefix of their entry points (arch/x86/entry/syscall_*.c): a table that
// is not built (no IA32_EMULATION, no X86_X32_ABI) has no symbol.
var syscallTables = []struct{ sym, abi, prefix string }{
	{"sys_call_table", "x86_64", "__x64_sys_"},
	{"ia32_sys_call_table", "ia32", "__ia32_sys_"},
	{"x32_sys_call_table", "x32", "__x64_sys_"},
}

// maxSyscalls bounds a table read from the vmlinux's symbol size.
const maxSyscalls = 4096

// checkSyscalls compares every entry of every system call table with the
// vmlinux's: the tables are const, linked with their targets' addresses and
// relocated by KASLR, so any other value was written by someone who made
// read-only memory writable.
func checkSyscalls(c *Context) ([]Finding, CheckResult) {
	if c.K.FromDump() {
		return nil, CheckResult{Status: StatusNotChecked, Note: needsVmlinuxNote("the tables are compared with the vmlinux's")}
	}
	var fs []Finding
	res := CheckResult{}
	var notes []string
	switchDispatch := c.switchDispatch()
	for _, t := range syscallTables {
		got, n, err := c.checkSyscallTable(t.sym, t.abi, t.prefix, switchDispatch)
		res.Checked += n
		fs = append(fs, got...)
		switch {
		case errors.Is(err, kdwarf.ErrNotFound):
			continue // not built in this kernel
		case err != nil:
			notes = append(notes, err.Error())
			res.Skipped++
		}
	}
	if len(notes) > 0 {
		res.Status = StatusPartial
		if res.Checked == 0 {
			res.Status = StatusNotChecked
		}
		res.Note = strings.Join(notes, "; ")
	}
	return fs, res
}

// switchDispatch tells whether the kernel calls system calls through
// x64_sys_call() (a switch; "x86/syscall: Don't force use of indirect calls
// for system calls", 1e3ad78334a6, v6.9, and the stable kernels that took
// the branch-history-injection fix, Debian's 6.1 among them): there a table
// hook is never called.
func (c *Context) switchDispatch() bool {
	_, err := c.K.Symbol("x64_sys_call")
	return err == nil
}

func (c *Context) checkSyscallTable(sym, abi, prefix string, switchDispatch bool) ([]Finding, int, error) {
	k := c.K
	s, err := k.Types().Symbol(sym)
	if err != nil {
		return nil, 0, err
	}
	n := s.Size / 8
	if n == 0 || n > maxSyscalls {
		return nil, 0, fmt.Errorf("%s: size %d in the vmlinux is implausible", sym, s.Size)
	}
	va := s.Value + k.Layout().KASLROffset
	want, err := k.ImageBytes(va, n*8)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", sym, err)
	}
	have := make([]byte, n*8)
	if err := k.ReadVirt(have, va); err != nil {
		return nil, 0, fmt.Errorf("%s at %#x: %w", sym, va, err)
	}
	var fs []Finding
	for i := range n {
		orig := binary.LittleEndian.Uint64(want[i*8:]) + k.Layout().KASLROffset
		cur := binary.LittleEndian.Uint64(have[i*8:])
		if cur == orig {
			continue
		}
		name := syscallName(c.Resolver, orig, prefix)
		place := c.Resolver.Resolve(cur)
		f := Finding{
			Kind:       "syscall-hook",
			Severity:   High,
			Addr:       va + i*8,
			Symbol:     fmt.Sprintf("%s[%d]", sym, i),
			Target:     cur,
			TargetName: place.Name,
			Module:     place.Module,
			Summary:    fmt.Sprintf("%s system call %d (%s) redirected to %s", abi, i, name, place.Name),
			Evidence: []string{
				fmt.Sprintf("the vmlinux links %s[%d] to %s (%#x after KASLR); the dump holds %#x", sym, i, c.Resolver.Resolve(orig).Name, orig, cur),
				"the table is read-only: changing it takes a write around page protection",
			},
		}
		if switchDispatch && abi == "x86_64" {
			f.Evidence = append(f.Evidence, "this kernel dispatches x86_64 system calls through x64_sys_call() (a switch, the 2024 branch-history-injection fix), not the table: the hook is inert, but it is evidence of tampering")
		}
		if switchDispatch && abi == "ia32" {
			if _, err := k.Symbol("ia32_sys_call"); err == nil {
				f.Evidence = append(f.Evidence, "this kernel dispatches ia32 system calls through ia32_sys_call() (a switch): the hook is inert, but it is evidence of tampering")
			}
		}
		fs = append(fs, f)
	}
	return fs, int(n), nil
}

// syscallName is the system call a table entry's original target serves:
// its entry point's name without the ABI prefix.
func syscallName(r *Resolver, orig uint64, prefix string) string {
	name := r.Resolve(orig).Name
	name, _, _ = strings.Cut(name, "+")
	if strings.HasSuffix(name, "ni_syscall") {
		return "not implemented"
	}
	for _, p := range []string{prefix, "__x64_sys_", "__ia32_sys_", "__ia32_compat_sys_", "__x64_compat_sys_", "__x32_compat_sys_", "__se_sys_", "sys_"} {
		if strings.HasPrefix(name, p) {
			return strings.TrimPrefix(name, p)
		}
	}
	return name
}
