// SPDX-License-Identifier: MIT
/*
 * churnload.elf [seconds=N] [size=SIZE] [lab=0|1] [sample=N]
 *
 * The lab's guest workload: for N seconds, read-modify-write one random 64-bit word per
 * access across SIZE bytes of the heap (default: all of it). Reports accesses per second
 * and, with the instruments on (lab=1, the default), the 50th/99th percentile latency of
 * every N-th access (sample=, default 256; TSC, calibrated against the VMM clock), a
 * histogram of the time of every chunk of 256 accesses (no stall escapes it) and the
 * accesses per 10 ms window, sent as one lab results blob (--lab-out). lab=0 runs the
 * same accesses without any of that: the lab's overhead is the difference.
 */
#include "guest.h"
#include "lab.h"

#define CHUNK 256u

static struct lab lab;
static struct lab_hist op_hist, chunk_hist;

static inline uint64_t next_rand(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

int main(int argc, char **argv)
{
	uint64_t seconds = 3, size = (g_boot->mem_size - g_boot->heap_start) & ~4095ull;
	volatile uint64_t *w = (volatile uint64_t *)(uintptr_t)g_boot->heap_start;
	uint64_t x = 88172645463325252ull, ops = 0, sample = 256, words, t, end, prev;
	const char *a;

	if ((a = g_arg(argc, argv, "seconds")) && (g_parse_u64(a, &seconds) || !seconds)) {
		g_printf("churnload: seconds=%s is not a positive number\n", a);
		return 2;
	}
	if ((a = g_arg(argc, argv, "size")) &&
	    (g_parse_size(a, &size) || size < 4096 ||
	     size > g_boot->mem_size - g_boot->heap_start)) {
		g_printf("churnload: size=%s does not fit guest RAM\n", a);
		return 2;
	}
	if (lab_arg_sample("churnload", argc, argv, CHUNK, &sample))
		return 2;
	if (lab_start(&lab, "churnload", argc, argv))
		return 2;
	lab_hist_reset(&op_hist);
	lab_hist_reset(&chunk_hist);
	words = size / 8;
	for (uint64_t i = 0; i < words; i += 512)
		w[i] = i; /* touch every page once */
	t = g_rdtsc();
	end = t + lab_ns_to_tsc(&lab, seconds * 1000000000ull);
	lab_begin(&lab, t);
	if (lab.on) {
		const uint64_t mask = sample - 1;

		prev = t;
		while (t < end) {
			for (unsigned k = 0; k < CHUNK; k++) {
				uint64_t i = next_rand(&x) % words;

				if ((k & mask) == 0) {
					uint64_t s = g_rdtsc();

					w[i] += 1;
					lab_hist_record(&op_hist, g_rdtsc() - s);
				} else {
					w[i] += 1;
				}
			}
			ops += CHUNK;
			t = g_rdtsc();
			lab_hist_record(&chunk_hist, t - prev);
			lab_tick(&lab, t, CHUNK);
			prev = t;
		}
	} else {
		while (t < end) {
			for (unsigned k = 0; k < 16 * CHUNK; k++)
				w[next_rand(&x) % words] += 1;
			ops += 16 * CHUNK;
			t = g_rdtsc();
		}
	}
	lab_end(&lab, t);
	{
		double secs = lab_seconds(&lab), npc = lab_ns_per_cycle(&lab);

		g_printf("churnload: %lu accesses over %lu MiB in %lu ms\n", (unsigned long)ops,
			 (unsigned long)(size >> 20), (unsigned long)(secs * 1000));
		lab_scalar(&lab, "churnload_ops_per_s", (double)ops / secs, "op/s");
		if (lab.on) {
			lab_scalar(&lab, "churnload_p50_ns",
				   (double)lab_hist_quantile(&op_hist, 0.50) * npc, "ns");
			lab_scalar(&lab, "churnload_p99_ns",
				   (double)lab_hist_quantile(&op_hist, 0.99) * npc, "ns");
			lab_add_hist(&lab, "op", &op_hist);
			lab_add_hist(&lab, "chunk256", &chunk_hist);
		}
		lab_send(&lab);
	}
	return 0;
}
