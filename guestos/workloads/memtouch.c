// SPDX-License-Identifier: MIT
/*
 * memtouch.elf size=SIZE [passes=N] [seed=N]
 *
 * Writes a position-dependent pattern over SIZE bytes of the heap, reads it back and
 * verifies every word, PASSES times with a different pattern each pass. Reports the
 * write and verify bandwidth in MiB/s. Exits 1 on the first mismatch, 2 on bad arguments.
 */
#include "guest.h"

static inline uint64_t pattern(uint64_t i, uint64_t seed)
{
	uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull ^ seed;

	return x ^ (x >> 29);
}

int main(int argc, char **argv)
{
	uint64_t size = 64ull << 20, passes = 1, seed = 0x5eed;
	uint64_t avail = g_boot->mem_size - g_boot->heap_start;
	volatile uint64_t *p = (volatile uint64_t *)(uintptr_t)g_boot->heap_start;
	uint64_t wns = 0, vns = 0, words;
	const char *a;

	if ((a = g_arg(argc, argv, "size")) && g_parse_size(a, &size)) {
		g_printf("memtouch: size=%s is not a size\n", a);
		return 2;
	}
	if ((a = g_arg(argc, argv, "passes")) && (g_parse_u64(a, &passes) || !passes)) {
		g_printf("memtouch: passes=%s is not a positive number\n", a);
		return 2;
	}
	if ((a = g_arg(argc, argv, "seed")) && g_parse_u64(a, &seed)) {
		g_printf("memtouch: seed=%s is not a number\n", a);
		return 2;
	}
	if (size > avail || size < 8) {
		g_printf("memtouch: size %lu bytes does not fit the %lu bytes of free guest RAM\n",
			 (unsigned long)size, (unsigned long)avail);
		return 2;
	}
	words = size / 8;
	for (uint64_t pass = 0; pass < passes; pass++) {
		uint64_t s = seed + pass * 0x1000193ull, t0, t1, t2;

		t0 = g_clock_ns();
		for (uint64_t i = 0; i < words; i++)
			p[i] = pattern(i, s);
		t1 = g_clock_ns();
		for (uint64_t i = 0; i < words; i++) {
			if (p[i] != pattern(i, s)) {
				g_printf("memtouch: MISMATCH at GPA %#lx: read %#lx, wrote %#lx\n",
					 (unsigned long)(g_boot->heap_start + i * 8),
					 (unsigned long)p[i], (unsigned long)pattern(i, s));
				return 1;
			}
		}
		t2 = g_clock_ns();
		wns += t1 - t0;
		vns += t2 - t1;
	}
	g_printf("memtouch: wrote and verified %lu MiB x %lu pass(es): OK\n",
		 (unsigned long)(size >> 20), (unsigned long)passes);
	g_report("memtouch_bytes", (double)(size * passes), "B");
	g_report("memtouch_write_mibps", (double)(size * passes) / (1 << 20) / ((double)wns / 1e9),
		 "MiB/s");
	g_report("memtouch_verify_mibps",
		 (double)(size * passes) / (1 << 20) / ((double)vns / 1e9), "MiB/s");
	return 0;
}
