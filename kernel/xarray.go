package kernel

import (
	"encoding/binary"
	"fmt"
	"iter"
	"math/bits"
)

// XArrayEntry is one present entry of an xarray: its index and the word
// stored there (a pointer, or a value entry with bit 0 set).
type XArrayEntry struct {
	Index uint64
	Entry uint64
}

// XArrayError reports an xarray whose nodes are corrupt or unreadable.
type XArrayError struct {
	Array uint64 // the struct xarray
	Node  uint64 // the node where the walk stopped; 0 for the head
	Index uint64 // the first index the node covers
	Msg   string
	Err   error
}

func (e *XArrayError) Error() string {
	s := fmt.Sprintf("kernel: xarray at %#x: %s", e.Array, e.Msg)
	if e.Node != 0 {
		s += fmt.Sprintf(" (node %#x, index %#x)", e.Node, e.Index)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *XArrayError) Unwrap() error { return e.Err }

// xaLayout is where struct xa_node keeps what a walk reads, from the types.
type xaLayout struct {
	size             int64 // sizeof(struct xa_node)
	shift, offset    Member
	parent           Member
	slots            uint64 // offset of slots[]
	chunk, chunkBits uint   // XA_CHUNK_SIZE and XA_CHUNK_SHIFT
}

func (k *Kernel) xaLayout() (xaLayout, error) {
	var l xaLayout
	var err error
	for _, m := range []struct {
		dst  *Member
		name string
	}{{&l.shift, "shift"}, {&l.offset, "offset"}, {&l.parent, "parent"}} {
		if *m.dst, err = k.Member("struct xa_node", m.name); err != nil {
			return l, err
		}
	}
	if l.size, err = k.SizeOf("struct xa_node"); err != nil {
		return l, err
	}
	slots := k.Object(0, "struct xa_node").Field("slots")
	if slots.Err() != nil {
		return l, slots.Err()
	}
	n := slots.Type().Strip().Len
	if n < 2 || n > 1<<10 || n&(n-1) != 0 {
		return l, fmt.Errorf("kernel: struct xa_node.slots has %d entries, not a power of two", n)
	}
	l.slots, l.chunk, l.chunkBits = slots.Addr(), uint(n), uint(bits.TrailingZeros64(uint64(n)))
	if l.slots+uint64(n)*8 > uint64(l.size) {
		return l, fmt.Errorf("kernel: struct xa_node.slots ends past the struct")
	}
	return l, nil
}

// XArray yields the present entries of the struct xarray at va (an IDR's
// idr_rt, a page cache's i_pages) in index order. Internal entries other
// than nodes (retry, zero and sibling entries) hold no value and are
// skipped. A node that cannot be read, or whose shift, offset or parent
// disagree with the slot that led to it, ends the walk with an
// *XArrayError, as do more than limit entries and nodes (limit <= 0:
// DefaultListLimit).
//
// The encoding is include/linux/xarray.h's since the XArray replaced the
// radix tree (f8d5d0cc145c, "xarray: Add definition of struct xarray",
// v4.20): an entry with low bits 10 above 4096 points (minus 2) at a
// struct xa_node, whose slots each cover 1 << shift indices.
func (k *Kernel) XArray(va uint64, limit int) iter.Seq2[XArrayEntry, error] {
	return func(yield func(XArrayEntry, error) bool) {
		l, err := k.xaLayout()
		if err != nil {
			yield(XArrayEntry{}, &XArrayError{Array: va, Msg: "layout", Err: err})
			return
		}
		head, err := k.Object(va, "struct xarray").Field("xa_head").Ptr()
		if err != nil {
			yield(XArrayEntry{}, &XArrayError{Array: va, Msg: "unreadable head", Err: err})
			return
		}
		read := func(node uint64) ([]byte, error) {
			b := make([]byte, l.size)
			if err := k.ReadVirt(b, node); err != nil {
				return nil, err
			}
			return b, nil
		}
		walkXArray(read, l, va, head, limit)(yield)
	}
}

// xaInternal tells an internal entry: low bits 10 (xa_is_internal).
func xaInternal(e uint64) bool { return e&3 == 2 }

// xaNode tells a node pointer: an internal entry above 4096 (xa_is_node).
func xaNode(e uint64) bool { return xaInternal(e) && e > 4096 }

// walkXArray walks from the head entry, reading nodes with read.
func walkXArray(read func(node uint64) ([]byte, error), l xaLayout, array, head uint64, limit int) iter.Seq2[XArrayEntry, error] {
	if limit <= 0 {
		limit = DefaultListLimit
	}
	return func(yield func(XArrayEntry, error) bool) {
		switch {
		case head == 0:
			return
		case !xaInternal(head):
			yield(XArrayEntry{0, head}, nil) // a lone entry at index 0
			return
		case !xaNode(head):
			return // the head is a retry or zero entry: nothing stored
		}
		seen := map[uint64]bool{}
		count := 0
		// visit walks one node: its slots in order, depth first.
		var visit func(node, parent uint64, slot uint, shift int, base uint64) bool
		visit = func(node, parent uint64, slot uint, shift int, base uint64) bool {
			fail := func(msg string, err error) bool {
				yield(XArrayEntry{}, &XArrayError{Array: array, Node: node, Index: base, Msg: msg, Err: err})
				return false
			}
			if seen[node] {
				return fail("node reached twice", ErrListCycle)
			}
			seen[node] = true
			if count++; count > limit {
				return fail(fmt.Sprintf("more than %d nodes and entries", limit), ErrListTooLong)
			}
			b, err := read(node)
			if err != nil {
				return fail("unreadable node", err)
			}
			d := Decode(b)
			nshift, noff, npar := d.Uint(l.shift), d.Uint(l.offset), d.Uint(l.parent)
			if d.Err() != nil {
				return fail("undecodable node", d.Err())
			}
			switch {
			case nshift%uint64(l.chunkBits) != 0 || nshift >= 64:
				return fail(fmt.Sprintf("shift %d is not a multiple of %d below 64", nshift, l.chunkBits), nil)
			case shift >= 0 && int(nshift) != shift:
				return fail(fmt.Sprintf("shift %d under a node of shift %d", nshift, shift+int(l.chunkBits)), nil)
			case noff != uint64(slot) || npar != parent:
				return fail(fmt.Sprintf("offset %d and parent %#x, reached through slot %d of %#x", noff, npar, slot, parent), nil)
			}
			for i := uint(0); i < l.chunk; i++ {
				e := binary.LittleEndian.Uint64(b[l.slots+uint64(i)*8:])
				idx := base + uint64(i)<<nshift
				switch {
				case e == 0:
				case nshift+uint64(l.chunkBits) > 64 && uint64(i) >= 1<<(64-nshift):
					return fail(fmt.Sprintf("slot %d of a node of shift %d is past the 64-bit index space", i, nshift), nil)
				case xaNode(e):
					if nshift == 0 {
						return fail(fmt.Sprintf("slot %d of a leaf node points at node %#x", i, e-2), nil)
					}
					if !visit(e-2, node, i, int(nshift)-int(l.chunkBits), idx) {
						return false
					}
				case xaInternal(e):
					// sibling, retry or zero entry: no value of its own
				default:
					if count++; count > limit {
						return fail(fmt.Sprintf("more than %d nodes and entries", limit), ErrListTooLong)
					}
					if !yield(XArrayEntry{idx, e}, nil) {
						return false
					}
				}
			}
			return true
		}
		visit(head-2, 0, 0, -1, 0)
	}
}
