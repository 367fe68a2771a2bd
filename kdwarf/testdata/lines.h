/* Inlined into lines.c: rows of lines.c's table that name this file. */
static inline int helper(int x)
{
	int y = x * 7;

	return y ^ (x >> 2);
}
