// Package modules reports the loaded modules of a crashed kernel and its
// taint: what /proc/modules and the "Tainted:" line of an oops would have
// shown at the instant of the dump, plus what a post-mortem needs beside
// them (struct module addresses, memory regions, build-ids, where the
// module debuginfo is, module parameters).
//
// It reads the kernel only through package kernel and returns data
// (Report); rendering it is the caller's business. It never calls into
// the dump's code, so a parameter whose value only a get() callback knows
// is named by its ops, not evaluated.
//
// # What each field is, per kernel version
//
// Read follows kernel/module/procfs.c m_show() line by line (read in the
// 6.1-era and in today's mainline source; where layouts differ the
// debuginfo is probed, and the 6.1, 6.12 and 7.2 fixtures agree with
// their guests' /proc/modules):
//
//   - Modules come newest first, as the modules list holds them
//     (kernel.Modules). m_show skips MODULE_STATE_UNFORMED modules (still
//     being laid out, or being freed); Read keeps them, with State
//     "Unformed", since a module caught there is worth seeing in a crash.
//   - Size is what m_show prints: up to 6.3 init_layout.size +
//     core_layout.size; from ac3b43283923 (v6.4, "module: replace
//     module_layout with module_memory") module_total_size(), the sum of
//     mem[type].size over every type (for_each_mod_mem_type). Both include
//     the init memory, which do_init_module zeroes once init has run, so
//     a Live module's size is its core memory and a Loading one's is not.
//   - Base is the address m_show prints: core_layout.base up to 6.3,
//     mem[MOD_TEXT].base from 6.4.
//   - Refcount is module_refcount(): atomic_read(&mod->refcnt) -
//     MODULE_REF_BASE, where MODULE_REF_BASE is 1 (kernel/module/main.c,
//     since 2f35c41f58a9 "module: Replace module_ref with atomic_t refcnt",
//     v4.0); -1 while the module is being unloaded. A kernel without
//     CONFIG_MODULE_UNLOAD has no refcnt and prints "- -"
//     (print_unload_info); Refcount is then nil.
//   - UsedBy lists use->source->name over mod->source_list (struct
//     module_use), in list order, as print_unload_info does; Permanent is
//     its "[permanent]," (mod->init set and mod->exit NULL).
//   - State maps enum module_state, read by enumerator name from the
//     debuginfo, to m_show's words: GOING "Unloading", COMING "Loading",
//     anything else "Live".
//   - TaintFlags is module_flags() as m_show prints it (6.1's two-argument
//     form acts as the later show_state true), only when mod->taints is
//     non-zero: "(" + module_flags_taint(mod->taints) +
//     "-" if GOING + "+" if COMING + ")". module_flags_taint prints
//     taint_flags[i].c_true for every set bit i whose taint_flags[i].module
//     is true; "taint/module: Remove unnecessary taint_flag.module field"
//     (2025) dropped the member and prints every set bit (7.2 has no
//     member; Read probes for it).
//
// # The kernel's taint
//
// Taint is tainted_mask (the number /proc/sys/kernel/tainted prints) and
// print_tainted()'s string, "Tainted: " followed by one character per
// flag, c_true where the bit is set and c_false where it is not, or "Not
// tainted" (kernel/panic.c; unchanged in that form since 7fd8329ba502
// "taint/module: Clean up global and module taint flags handling", v4.10).
// The characters, their order and their number (TAINT_FLAGS_COUNT: 19 on
// 6.1 and 6.12, 20 on 7.2) come from the dump's own taint_flags[] (struct
// taint_flag {c_true, c_false, module, desc}; desc from 6.12), sized by its
// symbol. Only if that table cannot be read does Read fall back to the
// table kernel/panic.c has held since TAINT_FWCTL (v6.15) cut to the
// symbol's length, and says so in Taint.Table.
//
// # Parameters
//
// mod->kp[0..num_kp) are struct kernel_param. A parameter whose ops is one
// of the kernel's own param_ops_* (compared by address with their
// symbols) is decoded as its param_get_*() would print it in
// /sys/module/<name>/parameters: integers in decimal (hexint as %#08x),
// bool and invbool as Y/N, charp and string as the string ("(null)" for a
// NULL charp), arrays (param_array_ops) as their elements joined by ','.
// Any other ops is named by its symbol (from vmlinux, or the kallsyms of
// the module holding it) and left undecoded.
//
// Every list walk is bounded (modules, source_list, num_kp, array
// lengths); every string read from the dump is passed through
// kernel.Printable.
package modules
