/*
 * Line table fixtures for kdwarf's unit tests (lines_test.go), compiled at
 * test time, each with -O2 -g:
 *
 *   gcc -c -gdwarf-5 -o rel5 lines.c                      relocatable, like a module
 *   gcc -c -gdwarf-4 -o rel4 lines.c
 *   gcc -shared -fPIC -gdwarf-5 -Wl,--build-id=sha1 -o so5 lines.c   linked, like a vmlinux
 *   gcc -shared -fPIC -gdwarf-4 -Wl,--build-id=sha1 -o so4 lines.c
 *   objcopy --remove-section .debug_aranges so5 so5-noaranges
 *   clang -c -gdwarf-5 -o clang-rel5 lines.c
 *   clang -shared -fPIC -gdwarf-5 -o clang-so5 lines.c
 *   gcc -c -g0 -o nodebug lines.c
 *
 * In the relocatable objects hot, cold and setup each start at offset 0
 * of a section of their own (.text, .text.unlikely, .init.text), as a
 * module's functions do: only the relocations of .debug_line tell their
 * lines apart. helper, from lines.h, is inlined into two of them.
 */
#include "lines.h"

int counter;

__attribute__((noinline)) int hot(int x)
{
	counter += x;
	if (counter > 1000)
		counter = helper(counter);
	return counter * 3;
}

__attribute__((noinline, section(".text.unlikely"))) int cold(int x)
{
	counter -= x;
	if (counter < 0)
		counter = helper(x);
	return counter;
}

__attribute__((noinline, section(".init.text"))) int setup(int x)
{
	counter = x;
	return hot(x) + cold(x + 1);
}
