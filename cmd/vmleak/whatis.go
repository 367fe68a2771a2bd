package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vmleak/vmleak/kernel"
	"github.com/vmleak/vmleak/walk"
)

// whatisResult describes one address.
type whatisResult struct {
	Addr   hexU64       `json:"addr"`
	Kind   string       `json:"kind"` // slab, symbol, module, vmalloc, vmemmap, direct-map, unknown
	What   string       `json:"what"`
	Object *walk.Object `json:"object,omitempty"`
	Error  string       `json:"error,omitempty"`
}

func newWhatisCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "whatis DUMP ADDR...",
		Short: "Say what holds a kernel address: slab object, symbol, module, vmalloc",
		Long: `whatis tells, for each kernel virtual address: which slab cache, slab and object
hold it and whether the object is allocated or free (and on which freelist);
or which kernel symbol, module region, vmalloc or vmemmap area it is in.

` + exitCodesHelp,
		Example: `  vmleak whatis vmcore ffff8cfdc24d3950
  vmleak whatis vmcore 0xffffffffb1000000 ffff8cfdc24d3900 --json`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) < 2 {
				return &usageError{msg: "whatis takes a dump and at least one address" + seeHelp(c)}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			var addrs []uint64
			for _, a := range args[1:] {
				v, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(a), "0x"), 16, 64)
				if err != nil {
					return &usageError{msg: fmt.Sprintf("%q is not a hexadecimal address", a)}
				}
				addrs = append(addrs, v)
			}
			k, w, err := g.openWalker(args[0])
			if err != nil {
				return err
			}
			defer k.Close()
			mods, err := k.Modules()
			if err != nil {
				k.Warnf("modules: %v", err)
			}
			var res []whatisResult
			for _, a := range addrs {
				res = append(res, whatis(k, w, mods, a))
			}
			if g.json {
				if err := writeJSON(c.OutOrStdout(), res); err != nil {
					return err
				}
			} else {
				for _, r := range res {
					writeWhatis(c.OutOrStdout(), r)
				}
			}
			printWarnings(c.ErrOrStderr(), k.Warnings())
			return nil
		},
	}
}

func whatis(k *kernel.Kernel, w *walk.Walker, mods []kernel.Module, va uint64) whatisResult {
	r := whatisResult{Addr: hexU64(va)}
	if va >= k.PageOffset && va < k.VmallocBase {
		o, err := w.FindObject(va)
		switch {
		case o != nil:
			r.Kind, r.Object = "slab", o
			state := "allocated"
			if !o.Allocated {
				state = "free (on the " + o.FreeOn + ")"
			}
			r.What = fmt.Sprintf("%s object %d at %#x+%#x (%d bytes), %s; slab %#x, cache %#x",
				o.Cache, o.Index, o.Addr, o.Offset, o.Size, state, o.Slab, o.CacheAddr)
			if err != nil {
				r.Error = err.Error()
			}
			return r
		case errors.Is(err, walk.ErrNotSlab):
			r.Kind = "direct-map"
			r.What = fmt.Sprintf("page frame %#x (physical %#x), not slab memory", (va-k.PageOffset)/k.Dump.PageSize(), va-k.PageOffset)
			return r
		default:
			r.Kind, r.Error = "direct-map", err.Error()
			return r
		}
	}
	for _, m := range mods {
		if rg, ok := m.Contains(va); ok {
			r.Kind = "module"
			r.What = fmt.Sprintf("module %s, %s+%#x", m.Name, rg.Kind, va-rg.Base)
			return r
		}
	}
	if va >= k.KASLROffset {
		if s, off, ok := k.Types.SymbolAt(va - k.KASLROffset); ok && s.Section != "" {
			r.Kind = "symbol"
			r.What = fmt.Sprintf("%s+%#x (%s, %s)", s.Name, off, s.Kind, s.Section)
			return r
		}
	}
	switch {
	case va >= k.VmemmapBase && va < k.VmemmapBase+(1<<46):
		r.Kind = "vmemmap"
		r.What = fmt.Sprintf("struct page of page frame %#x", (va-k.VmemmapBase)/64)
	case va >= k.VmallocBase && va < k.VmallocBase+(1<<45):
		r.Kind = "vmalloc"
		r.What = "vmalloc/vmap area"
	default:
		r.Kind, r.What = "unknown", "not a slab object, symbol, module, vmalloc or vmemmap address"
	}
	return r
}

func writeWhatis(w io.Writer, r whatisResult) {
	fmt.Fprintf(w, "%#x: %s: %s", uint64(r.Addr), r.Kind, r.What)
	if r.Error != "" {
		fmt.Fprintf(w, " (%s)", r.Error)
	}
	fmt.Fprintln(w)
}
