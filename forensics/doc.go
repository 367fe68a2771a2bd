// Package forensics checks a dump for the marks rootkits leave: modules
// hidden from the modules list, hooked system call tables, IDT gates,
// ftrace and kprobe handlers and seq_ops, kernel text patched beyond the
// kernel's own run-time patching, and taint. Each check yields Findings
// (kind, severity, evidence, addresses, module) and a CheckResult saying
// what was examined and what could not be; a check that cannot read what
// it needs says "not checked", never "clean".
//
// The references are Volatility 3's linux plugins (hidden_modules,
// check_modules, check_syscall, check_idt, tracing/ftrace, check_afinfo);
// text integrity, which none of them does, compares the dump's text with
// the vmlinux's and explains every difference from the kernel's own
// patch-site tables.
package forensics
