/*
 * Layout fixtures for kdwarf's unit tests, compiled at test time:
 *
 *   gcc -c -g -gdwarf-4 -O0 -fno-eliminate-unused-debug-types -o layout4.o layout.c
 *   gcc -c -g -gdwarf-5 -O0 -fno-eliminate-unused-debug-types -o layout5.o layout.c
 *
 * The objects are relocatable (ET_REL), like kernel modules, so the same
 * tests cover debug/elf applying .rela.debug_* relocations.
 */

typedef unsigned long ulong_t;
typedef ulong_t ulong2_t;                   /* typedef chain */
typedef const volatile ulong2_t cv_ulong_t; /* qualifiers on a typedef */

struct incomplete; /* never defined */

enum color { RED = -2, GREEN = 0, BLUE = 7 };
enum { ANON_A = 100, ANON_B };
enum big { BIG = 0x100000000 };

struct bits {
	unsigned int a : 3;
	unsigned int b : 7;  /* bits 3..9: crosses a byte boundary */
	unsigned int c : 22; /* bits 10..31 */
	unsigned long d : 40; /* next storage unit */
	signed int e : 5;
	unsigned char f;
};

/* Like the kernel's struct slab: an array first, then a bitfield. */
struct arrbits {
	char tag[1];
	unsigned int flag : 1;
	unsigned int rest : 31;
};

struct nest {
	int head;
	union {
		struct {
			unsigned short x;
			unsigned short y;
		};
		unsigned int xy;
		struct {
			char p;
			union {
				long q;
				void *r;
			};
		};
	};
	struct incomplete *inc;
	const char *name;
	volatile int vol;
	int grid[3][4];
	ulong2_t tail[];
};

struct self {
	struct self *next, *prev;
};

union u {
	int i;
	float f;
	char c[5];
};

struct withfp {
	int (*fn)(int, char *);
	enum color col;
	cv_ulong_t cv;
	struct nest *np;
	struct {
		int inner;
	} named_anon;
};

struct bits g_bits;
struct arrbits g_arrbits;
struct nest *g_nest;
struct self g_self;
union u g_u;
struct withfp g_fp;
enum big g_big;
int g_anon = ANON_A;
unsigned long g_counter;

int layout_fn(struct nest *n)
{
	return n->head + g_anon;
}
