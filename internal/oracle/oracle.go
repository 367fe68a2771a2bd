// Package oracle parses what independent tools said about a dump: the guest's
// own /proc files captured over the serial console, and crash's output. Tests
// compare vmleak against these; vmleak itself never reads them.
package oracle

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
)

// SlabinfoRow is one line of /proc/slabinfo version 2.1.
type SlabinfoRow struct {
	Name                  string
	ActiveObjs, NumObjs   int64
	ObjSize, ObjPerSlab   int64
	PagesPerSlab          int64
	ActiveSlabs, NumSlabs int64
}

// ParseSlabinfo parses /proc/slabinfo (version 2.1) into rows keyed by cache name.
func ParseSlabinfo(text string) (map[string]SlabinfoRow, error) {
	rows := make(map[string]SlabinfoRow)
	sc := bufio.NewScanner(strings.NewReader(text))
	line := 0
	for sc.Scan() {
		line++
		l := sc.Text()
		if line == 1 {
			if !strings.HasPrefix(l, "slabinfo - version: 2.1") {
				return nil, fmt.Errorf("oracle: slabinfo: unexpected header %q", l)
			}
			continue
		}
		if strings.HasPrefix(l, "#") || strings.TrimSpace(l) == "" {
			continue
		}
		f := strings.Fields(l)
		// name active num objsize perslab pages : tunables a b c : slabdata active num shared
		if len(f) != 16 || f[6] != ":" || f[11] != ":" {
			return nil, fmt.Errorf("oracle: slabinfo line %d: %q", line, l)
		}
		n, err := ints(f, 1, 2, 3, 4, 5, 13, 14)
		if err != nil {
			return nil, fmt.Errorf("oracle: slabinfo line %d: %v", line, err)
		}
		rows[f[0]] = SlabinfoRow{Name: f[0], ActiveObjs: n[0], NumObjs: n[1], ObjSize: n[2],
			ObjPerSlab: n[3], PagesPerSlab: n[4], ActiveSlabs: n[5], NumSlabs: n[6]}
	}
	if line == 0 {
		return nil, fmt.Errorf("oracle: slabinfo: empty")
	}
	return rows, sc.Err()
}

// KmemSRow is one line of crash's `kmem -s`.
type KmemSRow struct {
	Cache     uint64 // address of struct kmem_cache
	ObjSize   int64
	Allocated int64
	Total     int64
	Slabs     int64
	SSize     string // e.g. "4k", "32k"
	Name      string
}

// ParseKmemS parses crash's `kmem -s` output in order.
func ParseKmemS(text string) ([]KmemSRow, error) {
	var rows []KmemSRow
	sc := bufio.NewScanner(strings.NewReader(text))
	line := 0
	for sc.Scan() {
		line++
		l := sc.Text()
		if strings.HasPrefix(l, "CACHE") || strings.TrimSpace(l) == "" {
			continue
		}
		f := strings.Fields(l)
		if len(f) != 7 {
			return nil, fmt.Errorf("oracle: kmem -s line %d: %q", line, l)
		}
		addr, err := strconv.ParseUint(f[0], 16, 64)
		if err != nil {
			return nil, fmt.Errorf("oracle: kmem -s line %d: %v", line, err)
		}
		n, err := ints(f, 1, 2, 3, 4)
		if err != nil {
			return nil, fmt.Errorf("oracle: kmem -s line %d: %v", line, err)
		}
		rows = append(rows, KmemSRow{Cache: addr, ObjSize: n[0], Allocated: n[1], Total: n[2], Slabs: n[3], SSize: f[5], Name: f[6]})
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("oracle: kmem -s: no rows")
	}
	return rows, sc.Err()
}

// ParseMeminfo parses /proc/meminfo into values in the file's units (kB for most).
func ParseMeminfo(text string) (map[string]int64, error) {
	m := make(map[string]int64)
	for i, l := range strings.Split(strings.TrimSpace(text), "\n") {
		k, v, ok := strings.Cut(l, ":")
		f := strings.Fields(v)
		if !ok || len(f) == 0 {
			return nil, fmt.Errorf("oracle: meminfo line %d: %q", i+1, l)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("oracle: meminfo line %d: %v", i+1, err)
		}
		m[k] = n
	}
	return m, nil
}

// Module is one line of /proc/modules.
type Module struct {
	Name  string
	Size  int64
	State string // Live, Loading, Unloading
	Addr  uint64 // base of the module's core (text); 0 when the kernel hides it
}

// ParseModules parses /proc/modules:
// "name size refcount deps state address [taints]".
func ParseModules(text string) ([]Module, error) {
	var ms []Module
	for i, l := range strings.Split(strings.TrimSpace(text), "\n") {
		if l == "" {
			continue
		}
		f := strings.Fields(l)
		if len(f) < 2 {
			return nil, fmt.Errorf("oracle: modules line %d: %q", i+1, l)
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("oracle: modules line %d: %v", i+1, err)
		}
		mo := Module{Name: f[0], Size: n}
		if len(f) >= 6 {
			mo.State = f[4]
			if mo.Addr, err = parseHex0x(f[5]); err != nil {
				return nil, fmt.Errorf("oracle: modules line %d: %v", i+1, err)
			}
		}
		ms = append(ms, mo)
	}
	return ms, nil
}

// ParseKeyValues parses "key value" lines (the test module's parameters).
func ParseKeyValues(text string) (map[string]int64, error) {
	m := make(map[string]int64)
	for i, l := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			return nil, fmt.Errorf("oracle: line %d: %q", i+1, l)
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("oracle: line %d: %v", i+1, err)
		}
		m[f[0]] = n
	}
	return m, nil
}

func ints(f []string, idx ...int) ([]int64, error) {
	out := make([]int64, len(idx))
	for i, j := range idx {
		n, err := strconv.ParseInt(f[j], 10, 64)
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}
