// SPDX-License-Identifier: MIT
/*
 * churnload.elf [seconds=N] [size=SIZE]
 *
 * The lab's guest workload: for N seconds, read-modify-write one random 64-bit word per
 * access across SIZE bytes of the heap (default: all of it), timing every 16th access
 * with the TSC. Reports accesses per second and the 50th/99th percentile access latency
 * in ns (TSC calibrated against the VMM clock over the run).
 */
#include "guest.h"

#define MAX_SAMPLES (1u << 20)

static uint64_t samples[MAX_SAMPLES];

/* k-th smallest of v[0..n) (quickselect; reorders v). */
static uint64_t kth(uint64_t *v, uint64_t n, uint64_t k)
{
	uint64_t lo = 0, hi = n - 1;

	while (lo < hi) {
		uint64_t pivot = v[(lo + hi) / 2], i = lo, j = hi;

		while (i <= j) {
			while (v[i] < pivot)
				i++;
			while (v[j] > pivot)
				j--;
			if (i <= j) {
				uint64_t t = v[i];

				v[i] = v[j];
				v[j] = t;
				i++;
				if (j == 0)
					break;
				j--;
			}
		}
		if (k <= j)
			hi = j;
		else if (k >= i)
			lo = i;
		else
			return v[k];
	}
	return v[k];
}

int main(int argc, char **argv)
{
	uint64_t seconds = 3, size = (g_boot->mem_size - g_boot->heap_start) & ~4095ull;
	volatile uint64_t *w = (volatile uint64_t *)(uintptr_t)g_boot->heap_start;
	uint64_t x = 88172645463325252ull, ops = 0, ns = 0, nsamp = 0, words, t0, c0, t1, c1;
	const char *a;

	if ((a = g_arg(argc, argv, "seconds")) && (g_parse_u64(a, &seconds) || !seconds)) {
		g_printf("churnload: seconds=%s is not a positive number\n", a);
		return 2;
	}
	if ((a = g_arg(argc, argv, "size")) &&
	    (g_parse_size(a, &size) || !size || size > g_boot->mem_size - g_boot->heap_start)) {
		g_printf("churnload: size=%s does not fit guest RAM\n", a);
		return 2;
	}
	words = size / 8;
	for (uint64_t i = 0; i < words; i += 512)
		w[i] = i; /* touch every page once */
	t0 = g_clock_ns();
	c0 = g_rdtsc();
	while (ns < seconds * 1000000000ull) {
		for (unsigned k = 0; k < 4096; k++) {
			uint64_t i, s, e;

			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			i = x % words;
			if ((k & 15) == 0) {
				s = g_rdtsc();
				w[i] += 1;
				e = g_rdtsc();
				samples[nsamp++ % MAX_SAMPLES] = e - s;
			} else {
				w[i] += 1;
			}
		}
		ops += 4096;
		ns = g_clock_ns() - t0;
	}
	t1 = g_clock_ns();
	c1 = g_rdtsc();
	{
		double ns_per_cycle = (double)(t1 - t0) / (double)(c1 - c0);
		uint64_t n = nsamp < MAX_SAMPLES ? nsamp : MAX_SAMPLES;
		double p50 = (double)kth(samples, n, n / 2) * ns_per_cycle;
		double p99 = (double)kth(samples, n, n * 99 / 100) * ns_per_cycle;

		g_printf("churnload: %lu accesses over %lu MiB in %lu ms\n", (unsigned long)ops,
			 (unsigned long)(size >> 20), (unsigned long)((t1 - t0) / 1000000));
		g_report("churnload_ops_per_s", (double)ops / ((double)(t1 - t0) / 1e9), "op/s");
		g_report("churnload_p50_ns", p50, "ns");
		g_report("churnload_p99_ns", p99, "ns");
	}
	return 0;
}
