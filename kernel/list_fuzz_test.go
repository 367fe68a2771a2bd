package kernel

import (
	"errors"
	"testing"
)

// FuzzListWalk checks the bounded, cycle-detecting list walk against a
// plain reference: the fuzz input lays out up to 64 list nodes whose next
// links point to another node, the head, NULL or unreadable memory. The
// walk must follow exactly the links the reference follows, end on a
// proper list with no error, end on a NULL or unreadable link with that
// error at that place, and end on a cycle that misses the head within a
// bound of its length (Brent's algorithm), never loop, and never yield more
// than its limit.
func FuzzListWalk(f *testing.F) {
	f.Add([]byte{1, 2, 0}, uint8(16))         // head -> 1 -> 2 -> head
	f.Add([]byte{1, 2, 1}, uint8(16))         // a cycle 1 -> 2 -> 1
	f.Add([]byte{1, 255}, uint8(16))          // NULL
	f.Add([]byte{1, 254}, uint8(16))          // unreadable
	f.Add([]byte{1, 2, 3, 4, 5, 0}, uint8(3)) // longer than the limit
	f.Add([]byte{0}, uint8(1))                // empty list
	f.Add([]byte{3, 3, 3, 3}, uint8(0))       // self-loop, default limit
	f.Fuzz(func(t *testing.T, links []byte, limit uint8) {
		if len(links) == 0 || len(links) > 64 {
			return
		}
		const base, stride, bad = 0x10000, 0x40, 0xdead0000
		addr := func(i int) uint64 { return base + uint64(i)*stride }
		next := map[uint64]uint64{}
		for i, b := range links {
			switch {
			case b == 255:
				next[addr(i)] = 0
			case b == 254:
				next[addr(i)] = bad
			default:
				next[addr(i)] = addr(int(b) % len(links))
			}
		}
		errUnread := errors.New("unreadable")
		read := func(va uint64) (uint64, error) {
			v, ok := next[va]
			if !ok {
				return 0, errUnread
			}
			return v, nil
		}
		head := addr(0)
		lim := int(limit)
		if lim == 0 {
			lim = DefaultListLimit
		}

		// The reference: follow links from the head until the head, NULL,
		// an unreadable link, a repeat or the limit.
		var ref []uint64
		refEnd := "head"
		seen := map[uint64]int{}
		cur, _ := read(head)
		for cur != head {
			if cur == 0 {
				refEnd = "null"
				break
			}
			if len(ref) >= lim {
				refEnd = "limit"
				break
			}
			if _, err := read(cur); err != nil {
				refEnd = "unreadable"
				break
			}
			if _, ok := seen[cur]; ok {
				refEnd = "cycle"
				break
			}
			seen[cur] = len(ref)
			ref = append(ref, cur)
			cur, _ = read(cur)
		}

		var got []uint64
		var werr error
		for e, err := range walkList(read, head, head, int(limit), 0) {
			if err != nil {
				werr = err
				break
			}
			got = append(got, e)
			if len(got) > lim {
				t.Fatalf("walk yielded %d entries, limit %d", len(got), lim)
			}
		}
		// Every entry yielded is the next one the links lead to.
		p, _ := read(head)
		for i, e := range got {
			if e != p {
				t.Fatalf("entry %d is %#x, the links lead to %#x", i, e, p)
			}
			p, _ = read(e)
		}
		var le *ListError
		switch refEnd {
		case "head":
			if werr != nil || len(got) != len(ref) {
				t.Fatalf("proper list of %d: walk gave %d entries, %v", len(ref), len(got), werr)
			}
		case "null", "unreadable":
			if !errors.As(werr, &le) || len(got) != len(ref) {
				t.Fatalf("%s link after %d entries: walk gave %d, %v", refEnd, len(ref), len(got), werr)
			}
		case "limit":
			// A list that also loops may be caught either way first.
			if !errors.Is(werr, ErrListTooLong) && !(errors.Is(werr, ErrListCycle) && loops(read, head, len(links))) {
				t.Fatalf("list past the limit %d: %v after %d", lim, werr, len(got))
			}
		case "cycle":
			mu := seen[cur]
			lambda := len(ref) - mu
			if !errors.Is(werr, ErrListCycle) && !errors.Is(werr, ErrListTooLong) {
				t.Fatalf("cycle (tail %d, length %d): walk ended with %v after %d", mu, lambda, werr, len(got))
			}
			// Brent meets the cycle by the first power of two past both
			// its tail and its length, plus one lap: under 3(mu+lambda).
			if errors.Is(werr, ErrListCycle) && len(got) > 3*(mu+lambda)+2 {
				t.Fatalf("cycle (tail %d, length %d) found after %d entries", mu, lambda, len(got))
			}
		}
	})
}

// loops tells whether following links from head repeats an entry other
// than the head within n+1 steps (n nodes).
func loops(read func(uint64) (uint64, error), head uint64, n int) bool {
	seen := map[uint64]bool{}
	cur, err := read(head)
	for i := 0; i <= n+1 && err == nil && cur != head && cur != 0; i++ {
		if seen[cur] {
			return true
		}
		seen[cur] = true
		cur, err = read(cur)
	}
	return false
}
