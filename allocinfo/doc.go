// Package allocinfo is the crashed kernel's /proc/allocinfo, read offline:
// the allocation profiling counters (CONFIG_MEM_ALLOC_PROFILING, v6.10+)
// of every allocation call site, the kernel's and each module's, with
// per-module totals.
//
// The layout comes from the kernel's own types and symbols, never from
// offsets written here. A call site is a struct alloc_tag (its struct
// codetag: flags, lineno, modname, function, filename; and a __percpu
// pointer to struct alloc_tag_counters {bytes, calls}), summed over the
// possible CPUs as alloc_tag_read() does. The kernel's tags are the array
// between __start_alloc_tags and __stop_alloc_tags. Modules' tags are
// found the way /proc/allocinfo finds them: lib/codetag.c registers one
// struct codetag_module {mod, range} per tag range on the mod_idr of the
// codetag type alloc_tag_cttype points at. That is one layout from 6.10
// on, whether a module's tags stay in its own memory (6.10-6.12) or are
// copied into the module_tags area (0db6f8d7820a, v6.13), where each
// range is also checked to lie inside the area.
//
// Sources: include/linux/codetag.h and alloc_tag.h, lib/codetag.c and
// lib/alloc_tag.c, from 916cc5167cc6 ("lib: code tagging framework"),
// a473573964e5 ("lib: code tagging module support") and 22d407b164ff
// ("lib: add allocation tagging support for memory allocation
// profiling"), all v6.10.
//
// No Debian kernel enables CONFIG_MEM_ALLOC_PROFILING: the package is
// tested on synthetic kernels (internal/synth) laid out from those
// sources, and on every real fixture only for ErrNotEnabled.
//
// Errors: a kernel without allocation profiling is ErrNotEnabled; a tag
// range that is not an array of struct alloc_tag is a *RangeError; a tag
// that cannot be read (its struct, strings or counters, or a counters
// pointer outside per-CPU space, ErrCounters) is a *TagError. Tags and
// ranges fail one at a time: the walk goes on and Read reports the rest
// as partial. It reads memory only through package kernel (and kernel/mm
// for the CPU mask and the vmalloc area); rendering is the caller's, from
// the Report, except for the /proc/allocinfo text (WriteText).
package allocinfo
