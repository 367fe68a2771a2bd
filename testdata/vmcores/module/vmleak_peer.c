// SPDX-License-Identifier: GPL-2.0
/*
 * vmleak_peer: a second module with other names and other counts, so a
 * fixture shows that attribution separates modules that share a cache.
 *
 * - nobj objects of its own cache "vmleak_peer_obj" (a constructor keeps
 *   SLUB from merging it);
 * - leak kmalloc(leak_size) objects dropped at once, each starting with
 *   PEER_MAGIC, allocated in vmleak_peer_leak() — with the same leak_size
 *   as vmleak_test, both modules' leaks share one kmalloc cache.
 */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/slab.h>
#include <linux/string.h>

#define PEER_MAGIC "VMLEAK-PEER"
#define MAX_OBJ 100000

/* A named call site: see vmleak_test.c. */
#define VMLEAK_SITE noinline __attribute__((__noclone__))

struct vmleak_peer_obj {
	u64 seq;
	char payload[88];
};

static unsigned int nobj = 200;
module_param(nobj, uint, 0444);
MODULE_PARM_DESC(nobj, "objects allocated from vmleak_peer_obj at load");
static unsigned int leak = 120;
module_param(leak, uint, 0444);
MODULE_PARM_DESC(leak, "kmalloc objects leaked at load");
static unsigned int leak_size = 1000;
module_param(leak_size, uint, 0444);
MODULE_PARM_DESC(leak_size, "size of each leaked object");

static struct kmem_cache *peer_cache;
static struct vmleak_peer_obj **held;

static void peer_ctor(void *p)
{
	memset(p, 0, sizeof(struct vmleak_peer_obj));
}

static VMLEAK_SITE int vmleak_peer_leak(unsigned int n, unsigned int size)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		char *p = kmalloc(size, GFP_KERNEL);

		if (!p)
			return -ENOMEM;
		snprintf(p, size, "%s %u", PEER_MAGIC, i);
	}
	return 0;
}

static void release(void)
{
	unsigned int i;

	for (i = 0; i < nobj; i++)
		if (held[i])
			kmem_cache_free(peer_cache, held[i]);
	kvfree(held);
	kmem_cache_destroy(peer_cache);
}

static int __init vmleak_peer_init(void)
{
	unsigned int i;
	int err;

	if (nobj > MAX_OBJ)
		return -EINVAL;
	held = kvcalloc(nobj ? nobj : 1, sizeof(*held), GFP_KERNEL);
	if (!held)
		return -ENOMEM;
	peer_cache = kmem_cache_create("vmleak_peer_obj", sizeof(struct vmleak_peer_obj), 0, 0, peer_ctor);
	if (!peer_cache) {
		kvfree(held);
		return -ENOMEM;
	}
	for (i = 0; i < nobj; i++) {
		held[i] = kmem_cache_alloc(peer_cache, GFP_KERNEL);
		if (!held[i]) {
			release();
			return -ENOMEM;
		}
		held[i]->seq = i;
	}
	err = vmleak_peer_leak(leak, leak_size);
	if (err) {
		release();
		return err;
	}
	pr_info("vmleak_peer: %u objects, %u leaked x %u\n", nobj, leak, leak_size);
	return 0;
}

static void __exit vmleak_peer_exit(void)
{
	release();
}

module_init(vmleak_peer_init);
module_exit(vmleak_peer_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("A second module with known slab state for vmleak's fixtures");
