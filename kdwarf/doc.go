// Package kdwarf reads kernel types and symbols from a vmlinux or a kernel
// module's debuginfo (.ko, .ko.xz, .ko.zst, .ko.gz).
//
// This layer owns the static knowledge about a kernel build: C type layouts
// (struct sizes, member offsets, bitfields, enumerator values) from DWARF or
// BTF, the link-time symbol table, and the build-id. It never reads dump
// memory. The layers above it combine these layouts with a dump reader
// (elfcore) to translate addresses and walk kernel data structures; they ask
// this package "where is slab.inuse" and "what is the address of
// slab_caches", never the other way round.
//
// # Sources
//
// Types come from one of two sources; [File.Source] tells which.
//
//   - BTF (.BTF, read with github.com/cilium/ebpf/btf) is compact and loads in
//     tens of milliseconds. It is the default when present in a vmlinux.
//     Module BTF is split BTF against vmlinux and is not used.
//   - DWARF (.debug_info, read with the standard library's debug/dwarf) is
//     complete but large (hundreds of megabytes for a distribution kernel).
//     kdwarf never decodes all of it: it builds a name index of the
//     top-level named structs, unions, enums, typedefs and base types, plus
//     every enumerator name, by scanning compile units in parallel and
//     skipping the children of every DIE. Types are decoded lazily, one at a
//     time, with (*dwarf.Data).Type and cached. The index of a file with a
//     build-id is kept on disk (see [WithCacheDir]) so the next Open only
//     reads it back.
//
// When one name has several definitions (struct foo defined differently in
// two compile units, or kept twice by BTF deduplication), kdwarf returns the
// first complete one: the lowest DIE offset (or BTF type ID) that is not a
// declaration. Declarations (DW_AT_declaration, BTF Fwd) are never indexed.
//
// # Type model
//
// Both sources convert into [Type]. Member offsets are in bytes from the
// start of the struct; bitfields carry BitOffset and BitSize counted in bits
// from the start of the struct (DWARF 4 DW_AT_bit_offset, which counts from
// the most significant bit of the storage unit, is converted). A named
// struct or union reached through a pointer is an opaque stub, so a lookup
// costs what the type itself needs and not the closure of the kernel's type
// graph; [File.Resolve] loads the full definition.
//
// # Symbols
//
// [File.Symbol] and [File.SymbolAt] use .symtab. Values are link-time
// addresses; the caller applies any KASLR offset. Per-CPU variables live in
// section ".data..percpu" and their value is the offset within the per-CPU
// area. For a relocatable module, values are relative to their Section.
//
// # Start-up cache
//
// A linked file with a build-id keeps what opening it derives in a
// start-up cache (see [WithStartupCache], default
// [DefaultStartupCacheDir]): its symbol table, and every type, enumerator
// and Has answer asked of it with the layouts, so the next Open of the same
// file (path, size, mtime, build-id; and type source) answers without
// decoding .symtab or parsing BTF or DWARF. The files are validated before
// use and ignored when anything is off ([CacheError]).
//
// # Source lines
//
// [File.LineAt] (a vmlinux, by link-time address) and [File.SectionLineAt]
// (a module's .ko, by section and offset) read the line table of the one
// compile unit holding the address, found through .debug_aranges, and keep
// it, bounded, for the next look-up; see LineAt for what is read and why.
package kdwarf
