package kdwarf

import (
	"cmp"
	"debug/elf"
	"fmt"
	"hash/maphash"
	"slices"
	"sort"
	"strings"
	"sync"
)

// SymKind is the kind of a symbol.
type SymKind int

// Symbol kinds.
const (
	SymOther  SymKind = iota // STT_NOTYPE and the rest (asm labels, ...)
	SymFunc                  // STT_FUNC
	SymObject                // STT_OBJECT, STT_TLS
)

func (k SymKind) String() string {
	switch k {
	case SymFunc:
		return "func"
	case SymObject:
		return "object"
	}
	return "other"
}

// Symbol is a .symtab entry.
type Symbol struct {
	Name string
	// Value is the link-time address. For a per-CPU variable (Section
	// ".data..percpu") it is the offset within a CPU's per-CPU area; in a
	// relocatable module it is relative to Section.
	Value   uint64
	Size    uint64
	Kind    SymKind
	Section string // "" for absolute symbols
	Global  bool   // STB_GLOBAL or STB_WEAK
	// SizeBound means Size is only an upper bound: the distance to the
	// next symbol, padding included (symbols read from kallsyms, which
	// has no sizes; see FromBTF).
	SizeBound bool
}

// PerCPUSection is the section of per-CPU variables.
const PerCPUSection = ".data..percpu"

// symtab is a symbol table indexed by name and by address. Built from
// .symtab (or kallsyms) it holds every index in memory; read from the
// start-up cache (symcache.go) it answers names from the cache's own hash
// table and decodes the address-sorted lists on first use.
type symtab struct {
	all     []Symbol // .symtab's named symbols, in table order
	byName  nameTable
	addrIdx []int32 // indexes into all of byAddr, in its order
	pcpuIdx []int32 // indexes into all of perCPU, in its order

	cached   *symCache // set when read from the start-up cache
	addrOnce sync.Once
	byAddr   []Symbol // sorted by Value; no per-CPU, absolute or section symbols
	perCPU   []Symbol // the per-CPU ones (.data..percpu), sorted by Value
}

// lookup finds a symbol by name: a global one wins over locals, else the
// first in the table.
func (st *symtab) lookup(name string) (Symbol, bool) {
	if st.cached != nil {
		return st.cached.lookup(name)
	}
	return st.byName.lookup(st.all, name)
}

// addrs returns byAddr and perCPU, decoding them from the cache on first use.
func (st *symtab) addrs() (byAddr, perCPU []Symbol) {
	st.addrOnce.Do(func() {
		if st.cached != nil {
			st.byAddr, st.perCPU = st.cached.addrLists()
		}
	})
	return st.byAddr, st.perCPU
}

// symbols loads .symtab on first use.
func (f *File) symbols() (*symtab, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.syms != nil || f.symErr != nil {
		return f.syms, f.symErr
	}
	if f.closed {
		return nil, ErrClosed
	}
	key := f.cacheKey()
	if key != "" {
		if st := f.cachedSymbols(key); st != nil {
			f.syms = st
			return st, nil
		}
	}
	f.syms, f.symErr = loadSymbols(f.ef, f.sectionData)
	if f.symErr != nil {
		f.symErr = fmt.Errorf("kdwarf: %s: %w", f.path, f.symErr)
		return nil, f.symErr
	}
	if key != "" {
		// Best effort: a read-only cache directory only costs speed.
		_ = writeCacheFile(f.cachePath(key, ".sym"), encodeSymCache(key, f.syms))
	}
	return f.syms, nil
}

// StartupCacheError says why the start-up cache was not used for the
// symbols loaded (a corrupt or foreign file, ignored and rewritten), or nil.
func (f *File) StartupCacheError() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.symCacheErr
}

// SymbolsFromCache tells whether the symbols were read from the start-up
// cache (after a first lookup).
func (f *File) SymbolsFromCache() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.syms != nil && f.syms.cached != nil
}

func loadSymbols(ef *elf.File, data func(*elf.Section) ([]byte, error)) (*symtab, error) {
	if ef == nil {
		return nil, ErrNoELF // a File from FromBTF has its symtab from the start
	}
	raw, err := readSymtab(ef, data)
	if err != nil {
		return nil, err
	}
	return newSymtab(raw), nil
}

// newSymtab indexes symbols (in table order) by name and by address.
func newSymtab(raw []Symbol) *symtab {
	st := &symtab{all: raw, byName: newNameTable(len(raw))}
	for i, sym := range raw {
		// Several local symbols can share a name (static functions in
		// different files): keep the first, but let a global win.
		st.byName.insert(raw, int32(i), func(old int32) bool { return !raw[old].Global && sym.Global })
		switch sym.Section {
		case "":
		case PerCPUSection:
			st.pcpuIdx = append(st.pcpuIdx, int32(i))
		default:
			st.addrIdx = append(st.addrIdx, int32(i))
		}
	}
	// At one address, prefer sized symbols, then functions and objects,
	// then globals: the preferred one sorts last, as SymbolAt takes the
	// last symbol at or below an address.
	rank := func(s Symbol) int {
		r := 0
		if s.Size > 0 {
			r += 4
		}
		if s.Kind != SymOther {
			r += 2
		}
		if s.Global {
			r++
		}
		return r
	}
	order := func(i, j int32) int {
		a, b := &raw[i], &raw[j]
		if c := cmp.Compare(a.Value, b.Value); c != 0 {
			return c
		}
		if c := cmp.Compare(rank(*a), rank(*b)); c != 0 {
			return c
		}
		if c := strings.Compare(b.Name, a.Name); c != 0 {
			return c // deterministic: lowest name last wins
		}
		return cmp.Compare(i, j) // a stable order for identical entries
	}
	slices.SortFunc(st.addrIdx, order)
	slices.SortFunc(st.pcpuIdx, order)
	st.byAddr = gather(raw, st.addrIdx)
	st.perCPU = gather(raw, st.pcpuIdx)
	st.addrOnce.Do(func() {}) // both lists are in place
	return st
}

func gather(all []Symbol, idx []int32) []Symbol {
	out := make([]Symbol, len(idx))
	for k, i := range idx {
		out[k] = all[i]
	}
	return out
}

// Symbol returns the .symtab symbol name. When several share the name, a
// global one wins over locals, else the first in the table.
func (f *File) Symbol(name string) (Symbol, error) {
	st, err := f.symbols()
	if err != nil {
		return Symbol{}, err
	}
	s, ok := st.lookup(name)
	if !ok {
		return Symbol{}, fmt.Errorf("kdwarf: symbol %s: %w", name, ErrNotFound)
	}
	return s, nil
}

// Symbols returns the .symtab symbols with addresses (no per-CPU, absolute
// or section symbols), sorted by value. The slice is shared: do not modify.
func (f *File) Symbols() ([]Symbol, error) {
	st, err := f.symbols()
	if err != nil {
		return nil, err
	}
	byAddr, _ := st.addrs()
	return byAddr, nil
}

// SymbolAt returns the symbol containing the link-time address addr and
// addr's offset in it: the nearest symbol at or below addr, if addr is
// within its size. A symbol of size 0 (an assembler label) matches only its
// own address. Per-CPU and absolute symbols are not considered, and the
// result means little for a relocatable module, whose values are
// section-relative.
func (f *File) SymbolAt(addr uint64) (Symbol, uint64, bool) {
	st, err := f.symbols()
	if err != nil {
		return Symbol{}, 0, false
	}
	byAddr, _ := st.addrs()
	return symbolAt(byAddr, addr)
}

// SymbolBefore returns the nearest symbol at or below the link-time address
// addr in the same section, sized or not, and addr's offset from it: how
// kallsyms (%pS) names code between assembler labels of size 0, such as a
// return address inside secondary_startup_64_no_verify. Use SymbolAt where
// containment matters.
func (f *File) SymbolBefore(addr uint64, section string) (Symbol, uint64, bool) {
	st, err := f.symbols()
	if err != nil {
		return Symbol{}, 0, false
	}
	byAddr, _ := st.addrs()
	i := sort.Search(len(byAddr), func(i int) bool { return byAddr[i].Value > addr }) - 1
	for ; i >= 0; i-- {
		if s := byAddr[i]; s.Section == section {
			return s, addr - s.Value, true
		}
		if addr-byAddr[i].Value > 1<<20 {
			break // labels are not that sparse: give up rather than name far away
		}
	}
	return Symbol{}, 0, false
}

// PerCPUSymbolAt is SymbolAt among the per-CPU symbols: the static per-CPU
// variable holding link-time address addr of .data..percpu.
func (f *File) PerCPUSymbolAt(addr uint64) (Symbol, uint64, bool) {
	st, err := f.symbols()
	if err != nil {
		return Symbol{}, 0, false
	}
	_, perCPU := st.addrs()
	return symbolAt(perCPU, addr)
}

func symbolAt(byAddr []Symbol, addr uint64) (Symbol, uint64, bool) {
	i := sort.Search(len(byAddr), func(i int) bool { return byAddr[i].Value > addr }) - 1
	if i < 0 {
		return Symbol{}, 0, false
	}
	s := byAddr[i]
	off := addr - s.Value
	if off >= s.Size && !(s.Size == 0 && off == 0) {
		// A sized symbol starting lower may still contain addr (aliases,
		// nested labels); look back a little.
		for j := i - 1; j >= 0 && j >= i-16; j-- {
			p := byAddr[j]
			if p.Size > 0 && addr-p.Value < p.Size {
				return p, addr - p.Value, true
			}
		}
		return Symbol{}, 0, false
	}
	return s, off, true
}

// readSymtab decodes .symtab's named symbols (no section, file or undefined
// ones) straight from the section bytes: debug/elf's Symbols allocates a
// string per name and a copy per entry, which for a vmlinux's 200k symbols
// was the largest cost of opening it. Names are substrings of one copy of
// .strtab.
func readSymtab(ef *elf.File, data func(*elf.Section) ([]byte, error)) ([]Symbol, error) {
	if ef.Class != elf.ELFCLASS64 {
		syms, err := ef.Symbols()
		if err != nil {
			return nil, err
		}
		out := make([]Symbol, 0, len(syms))
		for _, s := range syms {
			if sym, ok := symbolOf(ef, s.Name, s.Info, s.Section, s.Value, s.Size); ok {
				out = append(out, sym)
			}
		}
		return out, nil
	}
	symSec := ef.SectionByType(elf.SHT_SYMTAB)
	if symSec == nil {
		return nil, elf.ErrNoSymbols
	}
	if symSec.Link == 0 || int(symSec.Link) >= len(ef.Sections) {
		return nil, fmt.Errorf("symtab: bad string table index %d", symSec.Link)
	}
	tab, err := data(symSec)
	if err != nil {
		return nil, err
	}
	strb, err := data(ef.Sections[symSec.Link])
	if err != nil {
		return nil, err
	}
	const entSize = 24 // Elf64_Sym
	if len(tab)%entSize != 0 {
		return nil, fmt.Errorf("symtab: %d bytes is not a whole number of entries", len(tab))
	}
	strs := string(strb)
	bo := ef.ByteOrder
	n := len(tab) / entSize
	out := make([]Symbol, 0, n)
	for i := 1; i < n; i++ { // entry 0 is the null symbol
		e := tab[i*entSize : (i+1)*entSize]
		nameOff := int(bo.Uint32(e))
		if nameOff == 0 || nameOff >= len(strs) {
			continue
		}
		end := strings.IndexByte(strs[nameOff:], 0)
		if end < 0 {
			return nil, fmt.Errorf("symtab: symbol %d: unterminated name", i)
		}
		if sym, ok := symbolOf(ef, strs[nameOff:nameOff+end], e[4], elf.SectionIndex(bo.Uint16(e[6:])), bo.Uint64(e[8:]), bo.Uint64(e[16:])); ok {
			out = append(out, sym)
		}
	}
	return out, nil
}

// symbolOf is one .symtab entry as a Symbol; false for the entries kept
// out (unnamed, section, file and undefined symbols).
func symbolOf(ef *elf.File, name string, info byte, shndx elf.SectionIndex, value, size uint64) (Symbol, bool) {
	typ := elf.ST_TYPE(info)
	if name == "" || typ == elf.STT_SECTION || typ == elf.STT_FILE || shndx == elf.SHN_UNDEF {
		return Symbol{}, false
	}
	sym := Symbol{Name: name, Value: value, Size: size}
	switch typ {
	case elf.STT_FUNC:
		sym.Kind = SymFunc
	case elf.STT_OBJECT, elf.STT_TLS:
		sym.Kind = SymObject
	}
	bind := elf.ST_BIND(info)
	sym.Global = bind == elf.STB_GLOBAL || bind == elf.STB_WEAK
	if shndx < elf.SHN_LORESERVE && int(shndx) < len(ef.Sections) {
		sym.Section = ef.Sections[shndx].Name
	}
	return sym, true
}

// nameTable finds symbols by name: open addressing over indexes into
// symtab.all. A map[string]Symbol of a vmlinux's 200k symbols cost more to
// build than reading them.
type nameTable struct {
	slots []int32 // index+1 into symtab.all; 0 is empty
	seed  maphash.Seed
}

func newNameTable(n int) nameTable {
	size := 16
	for size < 2*n {
		size <<= 1
	}
	return nameTable{slots: make([]int32, size), seed: maphash.MakeSeed()}
}

// insert adds all[i] unless a symbol of its name is there; replace says
// whether it takes the place of that one.
func (t *nameTable) insert(all []Symbol, i int32, replace func(old int32) bool) {
	mask := uint64(len(t.slots) - 1)
	for h := maphash.String(t.seed, all[i].Name) & mask; ; h = (h + 1) & mask {
		switch old := t.slots[h] - 1; {
		case old < 0:
			t.slots[h] = i + 1
			return
		case all[old].Name == all[i].Name:
			if replace(old) {
				t.slots[h] = i + 1
			}
			return
		}
	}
}

func (t *nameTable) lookup(all []Symbol, name string) (Symbol, bool) {
	if len(t.slots) == 0 {
		return Symbol{}, false
	}
	mask := uint64(len(t.slots) - 1)
	for h := maphash.String(t.seed, name) & mask; ; h = (h + 1) & mask {
		i := t.slots[h] - 1
		if i < 0 {
			return Symbol{}, false
		}
		if all[i].Name == name {
			return all[i], true
		}
	}
}
