package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
)

// DefaultListLimit bounds list walks when the caller gives no limit: far
// more entries than any kernel list in a dump of today's machines, far fewer
// than a corrupt list could make us spin through.
const DefaultListLimit = 1 << 24

// ListError reports a list that is corrupt: a cycle not through the head,
// too many entries, or an unreadable link.
type ListError struct {
	Head  uint64
	Entry uint64 // the entry where the walk stopped
	Count int    // entries yielded before the error
	Msg   string
	Err   error
}

func (e *ListError) Error() string {
	s := fmt.Sprintf("kernel: list at %#x: %s at entry %#x after %d entries", e.Head, e.Msg, e.Entry, e.Count)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *ListError) Unwrap() error { return e.Err }

// ErrListCycle and ErrListTooLong classify ListErrors.
var (
	ErrListCycle   = errors.New("cycle")
	ErrListTooLong = errors.New("too long")
)

func (k *Kernel) readPtr(va uint64) (uint64, error) {
	var b [8]byte
	if err := k.ReadVirt(b[:], va); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

// ReadPtr reads a pointer-sized word.
func (k *Kernel) ReadPtr(va uint64) (uint64, error) { return k.readPtr(va) }

// ListHead yields the address of every entry (struct list_head) of the
// circular list whose head is at head, following next pointers (offset 0 of
// struct list_head, unchanged since 2.6). It stops with a *ListError on a
// cycle that does not pass through the head, an unreadable entry, a NULL
// link, or more than limit entries (limit <= 0: DefaultListLimit). Cycle
// detection is Brent's algorithm: constant memory on lists of any length.
func (k *Kernel) ListHead(head uint64, limit int) iter.Seq2[uint64, error] {
	return k.walk(head, head, limit, 0)
}

// ListHeadReverse is ListHead following prev pointers (offset 8): the way
// back to entries beyond a broken next link.
func (k *Kernel) ListHeadReverse(head uint64, limit int) iter.Seq2[uint64, error] {
	return k.walk(head, head, limit, 8)
}

// Chain yields the entries of a NULL-terminated singly linked chain (hlist,
// llist) starting from the first node, following next at offset 0.
func (k *Kernel) Chain(first uint64, limit int) iter.Seq2[uint64, error] {
	return k.walk(first, 0, limit, 0)
}

func (k *Kernel) walk(head, stop uint64, limit int, linkOff uint64) iter.Seq2[uint64, error] {
	if limit <= 0 {
		limit = DefaultListLimit
	}
	return func(yield func(uint64, error) bool) {
		count := 0
		cur := head
		if stop != 0 {
			next, err := k.readPtr(head + linkOff)
			if err != nil {
				yield(0, &ListError{Head: head, Entry: head, Msg: "unreadable head", Err: err})
				return
			}
			cur = next
		}
		// Brent: remember a "tortoise" and move it to the hare at powers of two.
		tortoise, power, lam := cur, 1, 0
		for cur != stop {
			if cur == 0 {
				yield(0, &ListError{Head: head, Entry: cur, Count: count, Msg: "NULL link"})
				return
			}
			if count >= limit {
				yield(0, &ListError{Head: head, Entry: cur, Count: count, Msg: fmt.Sprintf("more than %d entries", limit), Err: ErrListTooLong})
				return
			}
			next, err := k.readPtr(cur + linkOff)
			if err != nil {
				yield(0, &ListError{Head: head, Entry: cur, Count: count, Msg: "unreadable link", Err: err})
				return
			}
			if !yield(cur, nil) {
				return
			}
			count++
			cur = next
			if cur == stop {
				return
			}
			lam++
			if cur == tortoise {
				yield(0, &ListError{Head: head, Entry: cur, Count: count, Msg: "cycle not through the head", Err: ErrListCycle})
				return
			}
			if lam == power {
				tortoise, power, lam = cur, power*2, 0
			}
		}
	}
}

// PerCPUOffsets returns __per_cpu_offset[] for every possible CPU
// (nr_cpu_ids entries).
func (k *Kernel) PerCPUOffsets() ([]uint64, error) {
	k.perCPUOnce.Do(func() {
		n, err := k.Var("nr_cpu_ids", "unsigned int").Uint()
		if err != nil {
			k.perCPUErr = err
			return
		}
		arr := k.Var("__per_cpu_offset", "unsigned long")
		if n == 0 || n > 8192 {
			k.perCPUErr = fmt.Errorf("kernel: nr_cpu_ids %d out of range", n)
			return
		}
		offs := make([]uint64, n)
		for i := range offs {
			offs[i], err = k.readPtr(arr.Addr() + uint64(i)*8)
			if err != nil {
				k.perCPUErr = fmt.Errorf("kernel: __per_cpu_offset[%d]: %w", i, err)
				return
			}
		}
		k.perCPU = offs
	})
	return k.perCPU, k.perCPUErr
}

// PerCPU returns the address of CPU cpu's instance of a per-CPU pointer or
// per-CPU symbol offset (what the kernel's per_cpu_ptr computes).
func (k *Kernel) PerCPU(ptr uint64, cpu int) (uint64, error) {
	offs, err := k.PerCPUOffsets()
	if err != nil {
		return 0, err
	}
	if cpu < 0 || cpu >= len(offs) {
		return 0, fmt.Errorf("kernel: CPU %d out of range [0,%d)", cpu, len(offs))
	}
	return ptr + offs[cpu], nil
}
