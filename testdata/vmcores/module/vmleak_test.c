// SPDX-License-Identifier: GPL-2.0
/*
 * vmleak_test: creates slab state with known counts for vmleak's fixtures.
 *
 * Built against the fixture kernel's headers by testdata/vmcores/build.sh:
 *   make -C /usr/src/linux-headers-<release> M=$PWD modules
 *
 * - nobj objects of its own cache "vmleak_test_obj" (a constructor keeps
 *   SLUB from merging it into a generic cache), kept on a list;
 * - leak kmalloc(leak_size) objects whose pointers are dropped at once
 *   (truly unreferenced: a leak), each starting with LEAK_MAGIC, allocated
 *   in vmleak_test_leak();
 * - bss kmalloc(bss_size) objects referenced only from bss_objs[] in .bss,
 *   allocated in vmleak_test_fill_bss();
 * - writing N to the "grow" parameter allocates N more cache objects, so one
 *   boot can be dumped before and after growth.
 * The "allocated" parameter reads back how many cache objects are held.
 */
#include <linux/init.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/string.h>

#define LEAK_MAGIC "VMLEAK-LEAK"
#define BSS_MAGIC "VMLEAK-BSS"
#define OBJ_MAGIC 0x564d4c45414b4f42ULL /* "VMLEAKOB" */
#define MAX_BSS 4096

/*
 * The allocating functions are named call sites a test can assert: not
 * __init (init text is freed after load, so a track pointing there names
 * nothing), not inlined, and not cloned (a .constprop/.isra copy would
 * carry another symbol name).
 */
#define VMLEAK_SITE noinline __attribute__((__noclone__))

struct vmleak_obj {
	u64 magic;
	u64 seq;
	struct list_head node;
	char payload[200];
};

static unsigned int nobj = 1000;
module_param(nobj, uint, 0444);
MODULE_PARM_DESC(nobj, "objects allocated from vmleak_test_obj at load");
static unsigned int leak = 300;
module_param(leak, uint, 0444);
MODULE_PARM_DESC(leak, "kmalloc objects leaked at load");
static unsigned int leak_size = 1000;
module_param(leak_size, uint, 0444);
MODULE_PARM_DESC(leak_size, "size of each leaked object");
static unsigned int bss = 50;
module_param(bss, uint, 0444);
MODULE_PARM_DESC(bss, "kmalloc objects referenced only from .bss");
static unsigned int bss_size = 3000;
module_param(bss_size, uint, 0444);
MODULE_PARM_DESC(bss_size, "size of each .bss-referenced object");

static struct kmem_cache *obj_cache;
static LIST_HEAD(objs);
static DEFINE_MUTEX(objs_lock);
static unsigned int allocated;
static void *bss_objs[MAX_BSS];
static u64 next_seq;

static void obj_ctor(void *p)
{
	struct vmleak_obj *o = p;

	memset(o, 0, sizeof(*o));
	o->magic = OBJ_MAGIC;
}

static int grow_by(unsigned int n)
{
	unsigned int i;

	mutex_lock(&objs_lock);
	for (i = 0; i < n; i++) {
		struct vmleak_obj *o = kmem_cache_alloc(obj_cache, GFP_KERNEL);

		if (!o) {
			mutex_unlock(&objs_lock);
			return -ENOMEM;
		}
		o->seq = next_seq++;
		list_add_tail(&o->node, &objs);
		allocated++;
	}
	mutex_unlock(&objs_lock);
	return 0;
}

static int grow_set(const char *val, const struct kernel_param *kp)
{
	unsigned int n;
	int err = kstrtouint(val, 0, &n);

	if (err)
		return err;
	return grow_by(n);
}

static int allocated_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%u\n", allocated);
}

static const struct kernel_param_ops grow_ops = { .set = grow_set };
static const struct kernel_param_ops allocated_ops = { .get = allocated_get };
module_param_cb(grow, &grow_ops, NULL, 0200);
MODULE_PARM_DESC(grow, "write N: allocate N more vmleak_test_obj objects");
module_param_cb(allocated, &allocated_ops, NULL, 0444);
MODULE_PARM_DESC(allocated, "vmleak_test_obj objects currently held");

static VMLEAK_SITE int vmleak_test_leak(unsigned int n, unsigned int size)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		char *p = kmalloc(size, GFP_KERNEL);

		if (!p)
			return -ENOMEM;
		snprintf(p, size, "%s %u", LEAK_MAGIC, i);
		/* The pointer is dropped here: nothing references the object. */
	}
	return 0;
}

static VMLEAK_SITE int vmleak_test_fill_bss(unsigned int n, unsigned int size)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		bss_objs[i] = kmalloc(size, GFP_KERNEL);
		if (!bss_objs[i])
			return -ENOMEM;
		snprintf(bss_objs[i], size, "%s %u", BSS_MAGIC, i);
	}
	return 0;
}

static int __init vmleak_test_init(void)
{
	unsigned int i;
	int err;

	if (bss > MAX_BSS)
		return -EINVAL;
	obj_cache = kmem_cache_create("vmleak_test_obj", sizeof(struct vmleak_obj), 0, 0, obj_ctor);
	if (!obj_cache)
		return -ENOMEM;
	err = grow_by(nobj);
	if (err)
		goto fail;
	err = vmleak_test_leak(leak, leak_size);
	if (err)
		goto fail;
	err = vmleak_test_fill_bss(bss, bss_size);
	if (err)
		goto fail;
	pr_info("vmleak_test: %u objects, %u leaked x %u, %u in .bss x %u\n",
		allocated, leak, leak_size, bss, bss_size);
	return 0;
fail:
	/* Leave the fixture unusable rather than half-built: free what we hold. */
	{
		struct vmleak_obj *o, *tmp;

		list_for_each_entry_safe(o, tmp, &objs, node)
			kmem_cache_free(obj_cache, o);
		for (i = 0; i < MAX_BSS; i++)
			kfree(bss_objs[i]);
		kmem_cache_destroy(obj_cache);
	}
	return err;
}

static void __exit vmleak_test_exit(void)
{
	struct vmleak_obj *o, *tmp;
	unsigned int i;

	list_for_each_entry_safe(o, tmp, &objs, node)
		kmem_cache_free(obj_cache, o);
	for (i = 0; i < MAX_BSS; i++)
		kfree(bss_objs[i]);
	kmem_cache_destroy(obj_cache);
}

module_init(vmleak_test_init);
module_exit(vmleak_test_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Known slab state for vmleak's vmcore fixtures");
