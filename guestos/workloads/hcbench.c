// SPDX-License-Identifier: MIT
/*
 * hcbench.elf [n=N]
 *
 * The round-trip cost of one hypercall: times N (default 20000) S2_HC_NOP hypercalls in
 * batches of 100, each batch with the TSC, which is calibrated against the VMM's clock
 * over the whole timed run (so the clock hypercalls themselves stay out of the batches).
 * Reports the median and the minimum of the per-batch mean cost per call, in ns. Exits 1
 * if a NOP returns anything but 0, 2 on bad arguments.
 */
#include "guest.h"

#define BATCH  100u
#define WARMUP 1000u

static int nop(void)
{
	int64_t r = g_hypercall(S2_HC_NOP, 0, 0, 0, 0, 0);

	if (r != 0)
		g_printf("hcbench: S2_HC_NOP returned %ld, expected 0\n", (long)r);
	return r != 0;
}

/* Sort @n doubles ascending (shell sort: no recursion, no allocation). */
static void sort_doubles(double *v, uint64_t n)
{
	for (uint64_t gap = n / 2; gap; gap = gap == 2 ? 1 : gap * 5 / 11) {
		for (uint64_t i = gap; i < n; i++) {
			double x = v[i];
			uint64_t j = i;

			for (; j >= gap && v[j - gap] > x; j -= gap)
				v[j] = v[j - gap];
			v[j] = x;
		}
	}
}

int main(int argc, char **argv)
{
	uint64_t n = 20000, nr_batches, left, ns0, ns1, tsc0, tsc1;
	uint64_t avail = g_boot->mem_size - g_boot->heap_start;
	/* per-batch TSC ticks per call, then ns per call: scratch space on the heap */
	double *cost = (double *)(uintptr_t)g_boot->heap_start;
	double ns_per_tick, median;
	const char *a;

	if ((a = g_arg(argc, argv, "n")) && (g_parse_u64(a, &n) || !n)) {
		g_printf("hcbench: n=%s is not a positive number\n", a);
		return 2;
	}
	nr_batches = (n + BATCH - 1) / BATCH;
	if (nr_batches > avail / sizeof(*cost)) {
		g_printf("hcbench: n=%lu needs %lu bytes of heap, %lu free\n", (unsigned long)n,
			 (unsigned long)(nr_batches * sizeof(*cost)), (unsigned long)avail);
		return 2;
	}

	/* setup, untimed: fault in the code, the stack and the scratch array */
	for (unsigned i = 0; i < WARMUP; i++)
		if (nop())
			return 1;
	memset(cost, 0, nr_batches * sizeof(*cost));

	ns0 = g_clock_ns();
	tsc0 = g_rdtsc();
	left = n;
	for (uint64_t b = 0; b < nr_batches; b++) {
		unsigned count = left < BATCH ? (unsigned)left : BATCH;
		uint64_t t = g_rdtsc();

		for (unsigned i = 0; i < count; i++)
			if (nop())
				return 1;
		cost[b] = (double)(g_rdtsc() - t) / count;
		left -= count;
	}
	tsc1 = g_rdtsc();
	ns1 = g_clock_ns();
	if (tsc1 <= tsc0 || ns1 <= ns0) {
		g_printf("hcbench: cannot calibrate the TSC (%lu ticks in %lu ns)\n",
			 (unsigned long)(tsc1 - tsc0), (unsigned long)(ns1 - ns0));
		return 1;
	}
	ns_per_tick = (double)(ns1 - ns0) / (double)(tsc1 - tsc0);
	for (uint64_t b = 0; b < nr_batches; b++)
		cost[b] *= ns_per_tick;

	sort_doubles(cost, nr_batches);
	median = nr_batches % 2 ? cost[nr_batches / 2]
				: (cost[nr_batches / 2 - 1] + cost[nr_batches / 2]) / 2;
	g_report("hypercall_ns_median", median, "ns");
	g_report("hypercall_ns_min", cost[0], "ns");
	g_printf("hcbench: %lu hypercalls, median %lu ns, min %lu ns\n", (unsigned long)n,
		 (unsigned long)(median + 0.5), (unsigned long)(cost[0] + 0.5));
	return 0;
}
