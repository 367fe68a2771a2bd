package kernel

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// fakeMem is kernel memory as 8-byte words; an absent word cannot be read.
type fakeMem map[uint64]uint64

func (m fakeMem) read(va uint64) (uint64, error) {
	if w, ok := m[va]; ok {
		return w, nil
	}
	return 0, fmt.Errorf("no word at %#x", va)
}

// list links head and entries into a circular list (next at +0, prev at +8).
func (m fakeMem) list(head uint64, entries ...uint64) {
	all := append([]uint64{head}, entries...)
	for i, e := range all {
		m[e] = all[(i+1)%len(all)]
		m[e+8] = all[(i+len(all)-1)%len(all)]
	}
}

const (
	lHead   = 0xffffffff82000000
	poison1 = 0xdead000000000100 // LIST_POISON1: what list_del leaves in next
	garbage = 0xffff888005000000 // readable memory that is no entry
)

func entry(i int) uint64 { return 0xffff888001000000 + uint64(i)*0x1000 }

func entries(idx ...int) []uint64 {
	var out []uint64
	for _, i := range idx {
		out = append(out, entry(i))
	}
	return out
}

func TestListEntries(t *testing.T) {
	five := entries(1, 2, 3, 4, 5)
	for _, tc := range []struct {
		name    string
		mem     func(m fakeMem)
		limit   int
		want    []uint64
		errMsg  []string // substrings of the error; nil: no error
		entry   uint64   // the forward *ListError's Entry and From
		from    uint64
		isCycle bool
	}{
		{name: "empty", mem: func(m fakeMem) { m.list(lHead) }},
		{name: "intact", mem: func(m fakeMem) { m.list(lHead, five...) }, want: five},
		{name: "next poisoned", mem: func(m fakeMem) { m.list(lHead, five...); m[entry(2)] = poison1 },
			want: five, entry: poison1, from: entry(2), errMsg: []string{"unreadable link", "read the other 3 entries backwards"}},
		{name: "NULL next", mem: func(m fakeMem) { m.list(lHead, five...); m[entry(2)] = 0 },
			want: five, entry: 0, from: entry(2), errMsg: []string{"NULL link"}},
		{name: "entry missing", mem: func(m fakeMem) { m.list(lHead, five...); delete(m, entry(3)); delete(m, entry(3)+8) },
			want: entries(1, 2, 4, 5), entry: entry(3), from: entry(2),
			errMsg: []string{"read 2 entries backwards, then", fmt.Sprintf("unreadable link at entry %#x after 2 entries (linked from entry %#x)", entry(3), entry(4))}},
		{name: "cycle back to an earlier entry", mem: func(m fakeMem) { m.list(lHead, five...); m[entry(3)] = entry(1) },
			want: five, entry: entry(1), from: entry(3), isCycle: true},
		{name: "next into readable garbage", mem: func(m fakeMem) { m.list(lHead, five...); m[entry(2)] = garbage; m[garbage] = poison1 },
			want: five, entry: poison1, from: garbage, errMsg: []string{"dropped 1 reached forward"}},
		{name: "next into a garbage loop", mem: func(m fakeMem) { m.list(lHead, five...); m[entry(2)] = garbage; m[garbage] = garbage },
			want: five, entry: garbage, from: garbage, isCycle: true, errMsg: []string{"dropped 1"}},
		{name: "broken both ways", mem: func(m fakeMem) { m.list(lHead, five...); m[entry(2)] = poison1; m[entry(4)+8] = poison1 },
			want: entries(1, 2, 4, 5), entry: poison1, from: entry(2), errMsg: []string{"read 2 entries backwards, then"}},
		{name: "backward cycle", mem: func(m fakeMem) { m.list(lHead, five...); m[entry(2)] = poison1; m[entry(4)+8] = entry(5) },
			want: entries(1, 2, 4, 5), entry: poison1, from: entry(2), isCycle: true, errMsg: []string{"(backwards)"}},
		{name: "head unreadable", mem: func(m fakeMem) {}, entry: lHead, errMsg: []string{"unreadable head"}},
		{name: "longer than the limit", mem: func(m fakeMem) {
			var es []uint64
			for i := range 100 {
				es = append(es, entry(i))
			}
			m.list(lHead, es...)
		}, limit: 10, want: append(entries(0, 1, 2, 3, 4, 5, 6, 7, 8, 9), entries(90, 91, 92, 93, 94, 95, 96, 97, 98, 99)...),
			entry: entry(10), from: entry(9), errMsg: []string{"more than 10 entries", "then"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := fakeMem{}
			tc.mem(m)
			have, err := listEntries(m.read, lHead, tc.limit)
			if !slices.Equal(have, tc.want) {
				t.Errorf("entries %#x, want %#x", have, tc.want)
			}
			if tc.errMsg == nil && !tc.isCycle && tc.entry == 0 && tc.from == 0 {
				if err != nil {
					t.Fatalf("error %v, want none", err)
				}
				return
			}
			var le *ListError
			if !errors.As(err, &le) || le.Entry != tc.entry || le.From != tc.from {
				t.Fatalf("error %v, want a *ListError at entry %#x from %#x", err, tc.entry, tc.from)
			}
			if errors.Is(err, ErrListCycle) != tc.isCycle {
				t.Errorf("error %v: cycle %v, want %v", err, !tc.isCycle, tc.isCycle)
			}
			for _, s := range tc.errMsg {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
}
