// Package elfcore presents a Linux kernel crash dump (vmcore) as physical
// memory.
//
// It owns the container formats: ELF64 cores (kdump's /proc/vmcore as
// copied by cp or makedumpfile -E, QEMU dump-guest-memory), makedumpfile's
// kdump-compressed format (header versions 1-6; zlib, lzo, snappy and zstd
// pages; also written by QEMU) and makedumpfile's flattened stream (-F),
// which is indexed and read in place rather than rearranged. A dump that
// makedumpfile --split wrote as several kdump files is read whole from its
// parts (OpenSplit, which checks they make one dump); one part opened alone
// lacks the others' pages (ReasonOtherPart; Dump.Split). kdump headers
// are decoded in their target's layout (32- or 64-bit, either byte order;
// Target). sadump, LKCD, Xen xc_core and ELF32 cores are recognized by
// their magic numbers and refused with *UnsupportedFormatError. From them it
// exposes: physical reads (ReadPhys, which stops at the first byte the dump
// lacks with a *MissingPageError saying why), the present physical ranges,
// ELF segments with their recorded virtual addresses, the notes
// (VMCOREINFO, NT_PRSTATUS, QEMU CPU state) and the kdump header.
//
// It never resolves virtual addresses, never interprets kernel data
// structures and never reads a whole file into memory: everything is read
// through an io.ReaderAt on demand, and every size or count taken from the
// file is checked against the file size before it is used. Decompressed
// kdump pages are kept in a small bounded LRU; reads are safe for
// concurrent use.
//
// Layers above it translate virtual addresses (using VMCOREINFO, CPU
// registers and page tables read through ReadPhys) and decode kernel types
// from debug information.
package elfcore
