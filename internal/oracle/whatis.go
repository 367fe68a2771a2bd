package oracle

import (
	"bufio"
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// WhatisKinds are the kinds of address every whatis oracle holds, in file order
// (testdata/vmcores/lab.py whatis writes them; WHATIS_KINDS there).
var WhatisKinds = []string{
	"slab-allocated",   // inside an allocated slab object: cache=, state=allocated, object=, offset=
	"slab-free",        // a free slab object: cache=, state=free, object=
	"slab-page",        // the struct page (vmemmap) of a slab: cache=, page=, pfn=
	"vmalloc",          // inside a vmalloc area: start=, end=, size=, caller=
	"module-text",      // inside a module's text: module=, symbol=, offset=
	"module-data",      // inside a module's .bss: module=, symbol=, offset=
	"percpu",           // a static per-CPU variable of one CPU: cpu=, symbol=, offset=
	"stack",            // inside a task's kernel stack: pid=, comm=, task=, stack=, offset=
	"direct-free",      // a free buddy page in the direct map: page=, pfn=, order=, state=free
	"direct-pagecache", // a page-cache page in the direct map: page=, pfn=, mapping=, state=pagecache
}

// WhatisEntry is one address of a whatis oracle: what crash was asked, the
// facts recorded from its answers, and its answers verbatim.
type WhatisEntry struct {
	Kind     string
	Addr     uint64
	Keys     []string // fact keys in file order
	Facts    map[string]string
	Commands []WhatisCommand
}

// WhatisCommand is one crash command run on the address and its output lines.
type WhatisCommand struct {
	Command string
	Output  []string
}

// Fact returns a fact's value and whether it is recorded.
func (e *WhatisEntry) Fact(key string) (string, bool) {
	v, ok := e.Facts[key]
	return v, ok
}

// Hex returns a fact holding a hexadecimal number, with or without 0x.
func (e *WhatisEntry) Hex(key string) (uint64, error) {
	v, ok := e.Facts[key]
	if !ok {
		return 0, fmt.Errorf("oracle: whatis %s %x: no %s", e.Kind, e.Addr, key)
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(v, "0x"), 16, 64)
	if err != nil {
		return 0, fmt.Errorf("oracle: whatis %s %x: %s=%q: %v", e.Kind, e.Addr, key, v, err)
	}
	return n, nil
}

// Int returns a fact holding a decimal number.
func (e *WhatisEntry) Int(key string) (int64, error) {
	v, ok := e.Facts[key]
	if !ok {
		return 0, fmt.Errorf("oracle: whatis %s %x: no %s", e.Kind, e.Addr, key)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("oracle: whatis %s %x: %s=%q: %v", e.Kind, e.Addr, key, v, err)
	}
	return n, nil
}

// ParseWhatis parses an oracle/crash/<dump>.whatis file:
//
//	# comment
//	== KIND ADDR        (ADDR bare hex) starts an entry
//	key=value           a fact of the entry
//	$ COMMAND           a crash command run on the address
//	> LINE              a line of that command's output
//
// Blank lines are ignored.
func ParseWhatis(text string) ([]WhatisEntry, error) {
	var es []WhatisEntry
	var cur *WhatisEntry
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		l := sc.Text()
		switch {
		case strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#"):
			continue
		case strings.HasPrefix(l, "== "):
			f := strings.Fields(l[3:])
			if len(f) != 2 {
				return nil, fmt.Errorf("oracle: whatis line %d: header %q", line, l)
			}
			a, err := strconv.ParseUint(f[1], 16, 64)
			if err != nil {
				return nil, fmt.Errorf("oracle: whatis line %d: %v", line, err)
			}
			es = append(es, WhatisEntry{Kind: f[0], Addr: a, Facts: make(map[string]string)})
			cur = &es[len(es)-1]
		case cur == nil:
			return nil, fmt.Errorf("oracle: whatis line %d: %q before the first \"== KIND ADDR\"", line, l)
		case strings.HasPrefix(l, "$ "):
			cur.Commands = append(cur.Commands, WhatisCommand{Command: l[2:]})
		case strings.HasPrefix(l, ">"):
			if len(cur.Commands) == 0 {
				return nil, fmt.Errorf("oracle: whatis line %d: output before any command", line)
			}
			c := &cur.Commands[len(cur.Commands)-1]
			c.Output = append(c.Output, strings.TrimPrefix(strings.TrimPrefix(l, ">"), " "))
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || k == "" || strings.ContainsAny(k, " \t") {
				return nil, fmt.Errorf("oracle: whatis line %d: %q", line, l)
			}
			if len(cur.Commands) > 0 {
				return nil, fmt.Errorf("oracle: whatis line %d: fact %s after the commands", line, k)
			}
			if _, dup := cur.Facts[k]; dup {
				return nil, fmt.Errorf("oracle: whatis line %d: fact %s repeated", line, k)
			}
			cur.Keys = append(cur.Keys, k)
			cur.Facts[k] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(es) == 0 {
		return nil, fmt.Errorf("oracle: whatis: no entries")
	}
	return es, nil
}

// VmallocArea is one line of /proc/vmallocinfo.
type VmallocArea struct {
	Start, End uint64
	Size       int64
	Caller     string // as the kernel printed it (%pS), e.g. "load_module+0x1e4/0x2a0"; "" if none
	Module     string // the caller's module ("[isofs]" printed after it), "" for the kernel
	Pages      int64
	Phys       uint64
	Flags      []string         // ioremap, vmalloc, vmap, user, dma-coherent, vpages, vm_map_ram, ...
	Nodes      map[string]int64 // N0=, N1=: pages per NUMA node
}

// Func is the caller's function name without its offset.
func (a VmallocArea) Func() string {
	f, _, _ := strings.Cut(a.Caller, "+")
	return f
}

// Has tells whether the area carries a flag word.
func (a VmallocArea) Has(flag string) bool {
	for _, f := range a.Flags {
		if f == flag {
			return true
		}
	}
	return false
}

// ParseVmallocinfo parses /proc/vmallocinfo.
func ParseVmallocinfo(text string) ([]VmallocArea, error) {
	var as []VmallocArea
	for i, l := range strings.Split(strings.TrimSpace(text), "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		f := strings.Fields(l)
		lo, hi, ok := strings.Cut(f[0], "-")
		if len(f) < 2 || !ok {
			return nil, fmt.Errorf("oracle: vmallocinfo line %d: %q", i+1, l)
		}
		var a VmallocArea
		var err error
		if a.Start, err = parseHex0x(lo); err == nil {
			a.End, err = parseHex0x(hi)
		}
		if err == nil {
			a.Size, err = strconv.ParseInt(f[1], 10, 64)
		}
		if err != nil {
			return nil, fmt.Errorf("oracle: vmallocinfo line %d: %v", i+1, err)
		}
		for j, w := range f[2:] {
			k, v, kv := strings.Cut(w, "=")
			switch {
			case j == 0 && (strings.Contains(w, "+0x") || strings.HasPrefix(w, "0x")):
				a.Caller = w
			case j == 1 && a.Caller != "" && strings.HasPrefix(w, "[") && strings.HasSuffix(w, "]"):
				a.Module = strings.Trim(w, "[]")
			case kv && k == "pages":
				a.Pages, err = strconv.ParseInt(v, 10, 64)
			case kv && k == "phys":
				a.Phys, err = parseHex0x(v)
			case kv && len(k) > 1 && k[0] == 'N':
				if a.Nodes == nil {
					a.Nodes = make(map[string]int64)
				}
				a.Nodes[k], err = strconv.ParseInt(v, 10, 64)
			default:
				a.Flags = append(a.Flags, w)
			}
			if err != nil {
				return nil, fmt.Errorf("oracle: vmallocinfo line %d: %v", i+1, err)
			}
		}
		as = append(as, a)
	}
	if len(as) == 0 {
		return nil, fmt.Errorf("oracle: vmallocinfo: empty")
	}
	return as, nil
}

// Symbol is one line of /proc/kallsyms.
type Symbol struct {
	Addr   uint64
	Type   string
	Name   string
	Module string // "" for the kernel
}

// ParseKallsyms parses /proc/kallsyms lines.
func ParseKallsyms(text string) ([]Symbol, error) {
	var ss []Symbol
	for i, l := range strings.Split(strings.TrimSpace(text), "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		f := strings.Fields(l)
		if len(f) < 3 || len(f) > 4 {
			return nil, fmt.Errorf("oracle: kallsyms line %d: %q", i+1, l)
		}
		a, err := strconv.ParseUint(f[0], 16, 64)
		if err != nil {
			return nil, fmt.Errorf("oracle: kallsyms line %d: %v", i+1, err)
		}
		s := Symbol{Addr: a, Type: f[1], Name: f[2]}
		if len(f) == 4 {
			s.Module = strings.Trim(f[3], "[]")
		}
		ss = append(ss, s)
	}
	return ss, nil
}

func parseHex0x(s string) (uint64, error) {
	if !strings.HasPrefix(s, "0x") {
		return 0, fmt.Errorf("%q: not 0x-prefixed hex", s)
	}
	return strconv.ParseUint(s[2:], 16, 64)
}

// VmallocinfoEnd is the start of the last area of an address-ordered
// capture that ended early, and whether it did: a module the same guest
// listed lies above every area. Before v6.9 /proc/vmallocinfo resumes each
// read() by list position (seq_list_start on vmap_area_list), so areas
// purged between two of cat's reads end the file early: seen once on
// bookworm-novmci, 88 of about 340 lines, the module area of vmleak_test
// among the lost. Such a capture is right up to its end, and says nothing
// past it.
func VmallocinfoEnd(areas []VmallocArea, mods []Module) (last uint64, cut bool) {
	if len(areas) == 0 || !slices.IsSortedFunc(areas, func(a, b VmallocArea) int { return cmp.Compare(a.Start, b.Start) }) {
		return 0, false // 6.9+ prints each vmap node's areas in turn
	}
	end := areas[len(areas)-1]
	return end.Start, slices.ContainsFunc(mods, func(m Module) bool { return m.Addr >= end.End })
}
