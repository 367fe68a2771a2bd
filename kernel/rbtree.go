package kernel

import (
	"errors"
	"fmt"
)

// RBNodes lists the nodes of the red-black tree whose root pointer (struct
// rb_root's rb_node) is at rootPtr, in order (left, node, right). The walk
// is bounded by limit nodes and checks for cycles: a node reached twice,
// a node whose links cannot be read (it is left out) and the limit are
// each reported as an error naming the node and the node it was linked
// from, and the walk goes on with the rest of the tree. Every node read is
// returned.
func (k *Kernel) RBNodes(rootPtr uint64, limit int) ([]uint64, []error) {
	left, err1 := k.Member("struct rb_node", "rb_left")
	right, err2 := k.Member("struct rb_node", "rb_right")
	if err := errors.Join(err1, err2); err != nil {
		return nil, []error{err}
	}
	cur, err := k.ReadPtr(rootPtr)
	if err != nil {
		return nil, []error{fmt.Errorf("root at %#x: %w", rootPtr, err)}
	}
	type item struct{ node, parent uint64 }
	var (
		out   []uint64
		errs  []error
		stack []item
	)
	seen := map[uint64]bool{}
	parent := rootPtr
	for {
		for cur != 0 {
			if seen[cur] {
				errs = append(errs, fmt.Errorf("cycle: node %#x reached again from %#x", cur, parent))
				break
			}
			if len(seen) >= limit {
				return out, append(errs, fmt.Errorf("more than %d nodes", limit))
			}
			seen[cur] = true
			l, err := k.ReadPtr(cur + left.Offset())
			if err != nil {
				errs = append(errs, fmt.Errorf("node %#x (linked from %#x): %w", cur, parent, err))
				break
			}
			stack = append(stack, item{cur, parent})
			cur, parent = l, cur
		}
		if len(stack) == 0 {
			return out, errs
		}
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		r, err := k.ReadPtr(it.node + right.Offset())
		if err != nil {
			errs = append(errs, fmt.Errorf("node %#x (linked from %#x): %w", it.node, it.parent, err))
			cur = 0
			continue
		}
		out = append(out, it.node)
		cur, parent = r, it.node
	}
}
