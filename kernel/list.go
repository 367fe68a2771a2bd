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
	From  uint64 // the entry (or the head) whose link led to Entry; 0 for the head itself
	Count int    // entries yielded before the error
	Msg   string
	Err   error
}

func (e *ListError) Error() string {
	s := fmt.Sprintf("kernel: list at %#x: %s at entry %#x after %d entries", e.Head, e.Msg, e.Entry, e.Count)
	if e.From != 0 && e.From != e.Head {
		s += fmt.Sprintf(" (linked from entry %#x)", e.From)
	}
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
	return walkList(k.readPtr, head, stop, limit, linkOff)
}

// walkList is the walk behind ListHead, ListHeadReverse and Chain, reading
// links with read.
func walkList(read func(va uint64) (uint64, error), head, stop uint64, limit int, linkOff uint64) iter.Seq2[uint64, error] {
	if limit <= 0 {
		limit = DefaultListLimit
	}
	return func(yield func(uint64, error) bool) {
		count := 0
		cur, from := head, uint64(0)
		if stop != 0 {
			next, err := read(head + linkOff)
			if err != nil {
				yield(0, &ListError{Head: head, Entry: head, Msg: "unreadable head", Err: err})
				return
			}
			cur, from = next, head
		}
		// Brent: remember a "tortoise" and move it to the hare at powers of two.
		tortoise, power, lam := cur, 1, 0
		for cur != stop {
			if cur == 0 {
				yield(0, &ListError{Head: head, Entry: cur, From: from, Count: count, Msg: "NULL link"})
				return
			}
			if count >= limit {
				yield(0, &ListError{Head: head, Entry: cur, From: from, Count: count, Msg: fmt.Sprintf("more than %d entries", limit), Err: ErrListTooLong})
				return
			}
			next, err := read(cur + linkOff)
			if err != nil {
				yield(0, &ListError{Head: head, Entry: cur, From: from, Count: count, Msg: "unreadable link", Err: err})
				return
			}
			if !yield(cur, nil) {
				return
			}
			count++
			cur, from = next, cur
			if cur == stop {
				return
			}
			lam++
			if cur == tortoise {
				yield(0, &ListError{Head: head, Entry: cur, From: from, Count: count, Msg: "cycle not through the head", Err: ErrListCycle})
				return
			}
			if lam == power {
				tortoise, power, lam = cur, power*2, 0
			}
		}
	}
}

// ListEntries returns the entries of the circular list at head in order,
// reading past a broken link: when the walk forward (ListHead) stops at an
// unreadable or NULL link or a cycle, the rest of the list is read backwards
// from the head through prev links until the two walks meet, so one bad
// entry or missing page loses what lies between the breaks, not the whole
// tail of the list. Entries the forward walk reached beyond the meeting
// point are not on the list as its prev links tell it (a corrupt next
// pointer into memory that still reads) and are left out.
//
// On a broken list it returns what it read and an error wrapping the
// forward walk's *ListError (whose From is the entry with the broken link)
// and, if the backward walk broke too, its *ListError. Each walk is bounded
// by limit (<= 0: DefaultListLimit) and no entry is returned twice.
func (k *Kernel) ListEntries(head uint64, limit int) ([]uint64, error) {
	return listEntries(k.readPtr, head, limit)
}

func listEntries(read func(va uint64) (uint64, error), head uint64, limit int) ([]uint64, error) {
	fwd, pos, _, ferr := collectWalk(walkList(read, head, head, limit, 0), head, nil, "")
	if ferr == nil {
		return fwd, nil
	}
	back, _, meet, berr := collectWalk(walkList(read, head, head, limit, 8), head, pos, " (backwards)")
	dropped := 0
	if meet >= 0 {
		dropped = len(fwd) - 1 - meet
		fwd = fwd[:meet+1]
	}
	out := fwd
	for i := len(back) - 1; i >= 0; i-- {
		out = append(out, back[i])
	}
	switch {
	case berr != nil:
		return out, fmt.Errorf("%w; read %d entries backwards, then %w", ferr, len(back), berr)
	case dropped > 0:
		return out, fmt.Errorf("%w; read %d entries backwards, dropped %d reached forward but not on the list backwards", ferr, len(back), dropped)
	}
	return out, fmt.Errorf("%w; read the other %d entries backwards", ferr, len(back))
}

// collectWalk gathers the entries of one list walk, with each one's index,
// until the walk ends, breaks, repeats an entry (a cycle: caught at its first
// repeat, not after Brent's detour), or arrives at an entry of other (the
// walk the other way): meet is then that entry's index in other, else -1.
// dir is added to the message of a cycle.
func collectWalk(walk iter.Seq2[uint64, error], head uint64, other map[uint64]int, dir string) (entries []uint64, pos map[uint64]int, meet int, err error) {
	pos = make(map[uint64]int)
	for e, err := range walk {
		if err != nil {
			return entries, pos, -1, err
		}
		if i, ok := other[e]; ok {
			return entries, pos, i, nil
		}
		if _, dup := pos[e]; dup {
			from := head
			if len(entries) > 0 {
				from = entries[len(entries)-1]
			}
			return entries, pos, -1, &ListError{Head: head, Entry: e, From: from, Count: len(entries), Msg: "cycle not through the head" + dir, Err: ErrListCycle}
		}
		pos[e] = len(entries)
		entries = append(entries, e)
	}
	return entries, pos, -1, nil
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
