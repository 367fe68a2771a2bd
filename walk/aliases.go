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
	kn := &prober{k: k, st: "struct kernfs_node"}
	fName := kn.req("name")
	fRB := kn.req("rb")
	fChildren := kn.req("dir.children")
	fTarget := kn.req("symlink.target_kn")
	fPriv := kn.req("priv")
	fFlags := kn.req("flags")
	kc := &prober{k: k, st: "struct kmem_cache"}
	kcKobj := kc.req("kobj")
	rb := &prober{k: k, st: "struct rb_node"}
	fRight, fLeft := rb.req("rb_right"), rb.req("rb_left")
	for _, p := range []*prober{kn, kc, rb} {
		if p.err != nil {
			return nil, fmt.Errorf("walk: aliases: %w", p.err)
		}
	}
	knSize, err := k.SizeOf("struct kernfs_node")
	if err != nil {
		return nil, fmt.Errorf("walk: aliases: %w", err)
	}

	root, err := k.ReadPtr(dir + fChildren.Offset())
	if err != nil {
		return nil, fmt.Errorf("walk: aliases: %w", err)
	}
	// In-order walk of the rb-tree of children with an explicit stack, bounded.
	out := make(map[uint64][]string)
	names := make(map[uint64]string) // cache -> the name of its own directory
	buf := make([]byte, knSize)
	var stack []uint64
	seen := make(map[uint64]bool)
	for n := root; n != 0 || len(stack) > 0; {
		for n != 0 {
			if seen[n] || len(seen) > maxKernfsNodes {
				return nil, fmt.Errorf("walk: aliases: kernfs tree of /sys/kernel/slab loops at %#x", n)
			}
			seen[n] = true
			stack = append(stack, n)
			if n, err = k.ReadPtr(n + fLeft.Offset()); err != nil {
				return nil, fmt.Errorf("walk: aliases: %w", err)
			}
		}
		n = stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		node := n - fRB.Offset()
		if err := k.ReadVirt(buf, node); err != nil {
			return nil, fmt.Errorf("walk: aliases: kernfs_node %#x: %w", node, err)
		}
		d := kernel.Decode(buf)
		namePtr, flags, targetKN := d.Uint(fName), d.Uint(fFlags), d.Uint(fTarget)
		if err := d.Err(); err != nil {
			return nil, fmt.Errorf("walk: aliases: kernfs_node %#x: %w", node, err)
		}
		name, err := k.ReadCString(namePtr, 256)
		if err != nil {
			return nil, fmt.Errorf("walk: aliases: kernfs_node %#x name: %w", node, err)
		}
		name = kernel.PrintableName(name)
		target := node
		if flags&kernfsTypeMask == kernfsLink {
			target = targetKN
		}
		priv, err := k.ReadPtr(target + fPriv.Offset())
		if err == nil && priv != 0 {
			cache := priv - kcKobj.Offset()
			if _, ok := w.byAddr[cache]; ok {
				if flags&kernfsTypeMask == kernfsLink {
					out[cache] = append(out[cache], name)
				} else {
					names[cache] = name
				}
			}
		}
		if n, err = k.ReadPtr(n + fRight.Offset()); err != nil {
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
