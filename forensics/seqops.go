package forensics

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/vmleak/vmleak/kdwarf"
	"github.com/vmleak/vmleak/kernel"
)

// Bounds on the /proc/net walk.
const (
	maxProcEntries = 1 << 14
	maxSeqTables   = 1 << 14
)

// seqOpsMembers are struct seq_operations' function pointers, in order.
var seqOpsMembers = []string{"start", "stop", "next", "show"}

// checkSeqOps looks where rootkits hide sockets and files from /proc: the
// kernel's seq_operations tables (tcp4_seq_ops and the like, const in
// .rodata) are compared with the vmlinux's, word for word; and every entry
// of init_net's /proc/net must show through seq_ops whose functions are
// kernel or listed-module code (Volatility's check_afinfo looks at the same
// pointers through the older tcp_seq_afinfo).
func checkSeqOps(c *Context) ([]Finding, CheckResult) {
	var fs []Finding
	res := CheckResult{}
	var notes []string
	f1, n1, err := c.seqTables()
	fs, res.Checked = append(fs, f1...), res.Checked+n1
	if err != nil {
		notes = append(notes, err.Error())
	}
	f2, n2, err := c.procNetEntries()
	fs, res.Checked = append(fs, f2...), res.Checked+n2
	if err != nil {
		notes = append(notes, err.Error())
	}
	res.Note = fmt.Sprintf("%d seq_operations tables, %d /proc/net entries", n1, n2)
	if len(notes) > 0 {
		res.Status = StatusPartial
		if res.Checked == 0 {
			res.Status = StatusNotChecked
		}
		res.Note += "; " + strings.Join(notes, "; ")
	}
	return fs, res
}

// seqTables compares every seq_operations object of the image's .rodata
// with the vmlinux's; it returns the tables compared.
func (c *Context) seqTables() ([]Finding, int, error) {
	k := c.K
	if k.FromDump() {
		return nil, 0, errors.New("seq_operations tables " + needsVmlinuxNote("they are compared with the vmlinux's .rodata"))
	}
	size, err := k.SizeOf("struct seq_operations")
	if err != nil {
		return nil, 0, err
	}
	offs := make([]uint64, len(seqOpsMembers))
	for i, m := range seqOpsMembers {
		mb, err := k.Member("struct seq_operations", m)
		if err != nil {
			return nil, 0, err
		}
		offs[i] = mb.Offset()
	}
	syms, err := k.Types().Symbols()
	if err != nil {
		return nil, 0, err
	}
	var fs []Finding
	n, unread := 0, 0
	kaslr := k.Layout().KASLROffset
	for _, s := range syms {
		if s.Kind != kdwarf.SymObject || s.Size != uint64(size) || s.Section != ".rodata" || !strings.HasSuffix(s.Name, "seq_ops") {
			continue
		}
		if n >= maxSeqTables {
			break
		}
		va := s.Value + kaslr
		want, err := k.ImageBytes(va, s.Size)
		if err != nil {
			unread++
			continue
		}
		have := make([]byte, s.Size)
		if err := k.ReadVirt(have, va); err != nil {
			unread++
			continue
		}
		n++
		for i, off := range offs {
			w := binary.LittleEndian.Uint64(want[off:])
			if w != 0 {
				w += kaslr
			}
			h := binary.LittleEndian.Uint64(have[off:])
			if w == h {
				continue
			}
			p := c.Resolver.Resolve(h)
			fs = append(fs, Finding{
				Kind: "seq-ops-hook", Severity: High,
				Addr: va + off, Symbol: s.Name + "." + seqOpsMembers[i],
				Target: h, TargetName: p.Name, Module: p.Module,
				Summary: fmt.Sprintf("%s.%s redirected to %s", s.Name, seqOpsMembers[i], p.Name),
				Evidence: []string{
					fmt.Sprintf("the vmlinux has %s (%#x); the table is read-only", c.Resolver.Resolve(w).Name, w),
				},
			})
		}
	}
	if unread > 0 {
		return fs, n, fmt.Errorf("%d seq_operations tables unreadable", unread)
	}
	return fs, n, nil
}

// procNetEntries resolves the seq_ops of every entry under init_net's
// /proc/net (one level: tcp, udp, raw, unix, ...).
func (c *Context) procNetEntries() ([]Finding, int, error) {
	k := c.K
	dir, err := k.Var("init_net", "struct net").Field("proc_net").Ptr()
	if errors.Is(err, kdwarf.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("init_net.proc_net: %w", err)
	}
	if dir == 0 {
		return nil, 0, nil
	}
	root := k.Object(dir, "struct proc_dir_entry").Field("subdir")
	if root.Err() != nil {
		return nil, 0, root.Err()
	}
	nodeOff, err := k.Member("struct proc_dir_entry", "subdir_node")
	if err != nil {
		return nil, 0, err
	}
	nodes, errs := k.RBNodes(root.Addr(), maxProcEntries)
	werr := errors.Join(errs...)
	var fs []Finding
	n := 0
	for _, node := range nodes {
		pde := k.Object(node-nodeOff.Offset(), "struct proc_dir_entry").Load()
		name := "?"
		if np, err := pde.Field("name").Ptr(); err == nil {
			if s, err := k.ReadCString(np, 256); err == nil {
				name = kernel.Printable(s)
			}
		}
		ops, err := pde.Field("seq_ops").Ptr()
		if err != nil || ops == 0 {
			continue
		}
		// seq_ops shares a union with single_show: an entry made by
		// proc_create_single holds a function there, not a table.
		if c.Resolver.KernelText(ops) {
			continue
		}
		n++
		// A table in the image is also compared word for word by
		// seqTables; its functions are resolved here wherever it lies.
		tp := c.Resolver.Resolve(ops)
		b := make([]byte, 8*len(seqOpsMembers))
		if err := k.ReadVirt(b, ops); err != nil {
			werr = errors.Join(werr, fmt.Errorf("/proc/net/%s seq_ops %#x: %w", name, ops, err))
			continue
		}
		for i := range seqOpsMembers {
			fn := binary.LittleEndian.Uint64(b[8*i:])
			if fn == 0 {
				continue
			}
			p := c.Resolver.Resolve(fn)
			if p.Where == InKernelText || (p.Where == InModule && tp.Where == InModule && tp.Module == p.Module) {
				continue
			}
			sev := High
			if p.Where == InModule {
				sev = Medium
			}
			fs = append(fs, Finding{
				Kind: "proc-seq-hook", Severity: sev,
				Addr: ops + 8*uint64(i), Symbol: fmt.Sprintf("/proc/net/%s seq_ops.%s", name, seqOpsMembers[i]),
				Target: fn, TargetName: p.Name, Module: p.Module,
				Summary:  fmt.Sprintf("/proc/net/%s shows through %s", name, p.Name),
				Evidence: []string{fmt.Sprintf("its seq_ops table %#x is %s", ops, tp.Name)},
			})
		}
	}
	return fs, n, werr
}
