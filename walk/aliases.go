package walk

import (
	"fmt"
	"sort"

	"github.com/vmleak/vmleak/kernel"
)

// kernfs node types (include/linux/kernfs.h, KERNFS_TYPE_MASK 0xf).
const (
	kernfsTypeMask = 0xf
	kernfsLink     = 0x4
	maxKernfsNodes = 1 << 20
)

// Aliases returns, per cache address, the other names the cache is known by:
// when SLUB merges a new cache into an existing one it creates no kmem_cache,
// only a symlink in /sys/kernel/slab. So the names live in kernfs: every link
// under slab_kset's directory names its target cache's kobject. crash shows
// none of this; a module's cache that merged into a generic one is found here.
func (w *Walker) Aliases() (map[uint64][]string, error) {
	k := w.k
	kset, err := k.Symbol("slab_kset")
	if err != nil {
		return nil, fmt.Errorf("walk: aliases: %w", err)
	}
	ksetPtr, err := k.ReadPtr(kset)
	if err != nil || ksetPtr == 0 {
		return nil, fmt.Errorf("walk: aliases: slab_kset: %v", err)
	}
	dir, err := k.Object(ksetPtr, "struct kset").Field("kobj.sd").Ptr()
	if err != nil {
		return nil, fmt.Errorf("walk: aliases: %w", err)
	}
	kn := structType(k, "kernfs_node")
	if kn == nil {
		return nil, fmt.Errorf("walk: aliases: no struct kernfs_node")
	}
	fName := probe(k, kn, "name")
	fRB := probe(k, kn, "rb")
	fChildren := probe(k, kn, "dir.children")
	fTarget := probe(k, kn, "symlink.target_kn")
	fPriv := probe(k, kn, "priv")
	fFlags := probe(k, kn, "flags")
	kcKobj := probe(k, structType(k, "kmem_cache"), "kobj")
	if !fName.ok || !fRB.ok || !fChildren.ok || !fTarget.ok || !fPriv.ok || !fFlags.ok || !kcKobj.ok {
		return nil, fmt.Errorf("walk: aliases: unexpected kernfs_node layout")
	}
	rbNode := structType(k, "rb_node")
	fRight, fLeft := probe(k, rbNode, "rb_right"), probe(k, rbNode, "rb_left")

	root, err := k.ReadPtr(dir + uint64(fChildren.off))
	if err != nil {
		return nil, fmt.Errorf("walk: aliases: %w", err)
	}
	// In-order walk of the rb-tree of children with an explicit stack, bounded.
	out := make(map[uint64][]string)
	names := make(map[uint64]string) // cache -> the name of its own directory
	buf := make([]byte, kn.Size)
	var stack []uint64
	seen := make(map[uint64]bool)
	for n := root; n != 0 || len(stack) > 0; {
		for n != 0 {
			if seen[n] || len(seen) > maxKernfsNodes {
				return nil, fmt.Errorf("walk: aliases: kernfs tree of /sys/kernel/slab loops at %#x", n)
			}
			seen[n] = true
			stack = append(stack, n)
			if n, err = k.ReadPtr(n + uint64(fLeft.off)); err != nil {
				return nil, fmt.Errorf("walk: aliases: %w", err)
			}
		}
		n = stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		node := n - uint64(fRB.off)
		if err := k.ReadVirt(buf, node); err != nil {
			return nil, fmt.Errorf("walk: aliases: kernfs_node %#x: %w", node, err)
		}
		name, err := k.ReadCString(fName.u64(buf), 256)
		if err != nil {
			return nil, fmt.Errorf("walk: aliases: kernfs_node %#x name: %w", node, err)
		}
		name = kernel.Printable(name)
		flags := fFlags.val(buf)
		target := node
		if flags&kernfsTypeMask == kernfsLink {
			target = fTarget.u64(buf)
		}
		priv, err := k.ReadPtr(target + uint64(fPriv.off))
		if err == nil && priv != 0 {
			cache := priv - uint64(kcKobj.off)
			if _, ok := w.byAddr[cache]; ok {
				if flags&kernfsTypeMask == kernfsLink {
					out[cache] = append(out[cache], name)
				} else {
					names[cache] = name
				}
			}
		}
		if n, err = k.ReadPtr(n + uint64(fRight.off)); err != nil {
			return nil, fmt.Errorf("walk: aliases: %w", err)
		}
	}
	// A mergeable cache's directory is a unique ":<flags>-<size>" name and its
	// own name is one of the links: that one is not an alias.
	for cache, links := range out {
		own := w.byAddr[cache].stats.Name
		var keep []string
		for _, l := range links {
			if l != own {
				keep = append(keep, l)
			}
		}
		sort.Strings(keep)
		out[cache] = keep
	}
	return out, nil
}

// SetAliases fills the census's Aliases from Aliases(); a failure is a warning.
func (w *Walker) SetAliases(c *Census) {
	al, err := w.Aliases()
	if err != nil {
		c.Warnings = append(c.Warnings, err.Error())
		return
	}
	for _, cs := range c.Caches {
		cs.Aliases = al[cs.Addr]
	}
}
