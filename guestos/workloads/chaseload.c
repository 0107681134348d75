// SPDX-License-Identifier: MIT
/*
 * chaseload.elf [seconds=N] [size=SIZE] [write=0|1] [lab=0|1] [sample=N]
 *
 * Pointer-chasing latency for the lab: one random cycle through every 64-byte line of
 * SIZE bytes of the heap (default: all of it; Sattolo's shuffle, so the walk visits every
 * line before repeating and each load depends on the previous one), walked for N
 * seconds. write=1 also increments a counter in each line visited, so migration's write
 * protection stalls the walk. Reports loads per second and ns per load; with lab=1
 * (default) also every N-th load timed alone (sample=, default 16; histogram "op"),
 * every chunk of 256 loads timed ("chunk256") and loads per 10 ms window.
 */
#include "guest.h"
#include "lab.h"

#define LINE 64u
#define CHUNK 256u

struct line {
	struct line *next;
	uint64_t hits;
	uint64_t pad[6];
};

static struct lab lab;
static struct lab_hist op_hist, chunk_hist;

int main(int argc, char **argv)
{
	uint64_t seconds = 3, size = (g_boot->mem_size - g_boot->heap_start) & ~4095ull;
	uint64_t write = 0, sample = 16, nl, x = 0x9e3779b97f4a7c15ull, loads = 0, t, end, prev;
	struct line *L = (struct line *)(uintptr_t)g_boot->heap_start, *p;
	const char *a;

	if ((a = g_arg(argc, argv, "seconds")) && (g_parse_u64(a, &seconds) || !seconds)) {
		g_printf("chaseload: seconds=%s is not a positive number\n", a);
		return 2;
	}
	if ((a = g_arg(argc, argv, "size")) &&
	    (g_parse_size(a, &size) || size < 4096 ||
	     size > g_boot->mem_size - g_boot->heap_start)) {
		g_printf("chaseload: size=%s does not fit guest RAM\n", a);
		return 2;
	}
	if ((a = g_arg(argc, argv, "write")) && (g_parse_u64(a, &write) || write > 1)) {
		g_printf("chaseload: write=%s: expected 0 or 1\n", a);
		return 2;
	}
	if (lab_arg_pow2("chaseload", argc, argv, "sample", 1, CHUNK, &sample))
		return 2;
	if (lab_start(&lab, "chaseload", argc, argv))
		return 2;
	lab_hist_reset(&op_hist);
	lab_hist_reset(&chunk_hist);
	nl = size / LINE;
	/* Sattolo: a single cycle; line i's successor index lives in its hits word first */
	for (uint64_t i = 0; i < nl; i++)
		L[i].hits = i;
	for (uint64_t i = nl - 1; i > 0; i--) {
		uint64_t j, tmp;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		j = x % i;
		tmp = L[i].hits;
		L[i].hits = L[j].hits;
		L[j].hits = tmp;
	}
	for (uint64_t i = 0; i < nl; i++) {
		L[i].next = &L[L[i].hits];
		L[i].hits = 0;
	}
	p = L;
	t = g_rdtsc();
	end = t + lab_ns_to_tsc(&lab, seconds * 1000000000ull);
	lab_begin(&lab, t);
	prev = t;
	while (t < end) {
		const uint64_t mask = sample - 1;

		for (unsigned k = 0; k < CHUNK; k++) {
			if (lab.on && (k & mask) == 0) {
				uint64_t s = g_rdtsc();

				p = *(struct line *volatile *)&p->next;
				if (write)
					p->hits++;
				lab_hist_record(&op_hist, g_rdtsc() - s);
			} else {
				p = *(struct line *volatile *)&p->next;
				if (write)
					p->hits++;
			}
		}
		loads += CHUNK;
		t = g_rdtsc();
		if (lab.on) {
			lab_hist_record(&chunk_hist, t - prev);
			lab_tick(&lab, t, CHUNK);
		}
		prev = t;
	}
	lab_end(&lab, t);
	{
		double secs = lab_seconds(&lab), npc = lab_ns_per_cycle(&lab);

		g_printf("chaseload: %lu loads over %lu MiB (%lu lines) in %lu ms\n",
			 (unsigned long)loads, (unsigned long)(size >> 20), (unsigned long)nl,
			 (unsigned long)(secs * 1000));
		lab_scalar(&lab, "chaseload_ops_per_s", (double)loads / secs, "load/s");
		lab_scalar(&lab, "chaseload_ns_per_load", secs * 1e9 / (double)loads, "ns");
		if (lab.on) {
			lab_scalar(&lab, "chaseload_p50_ns",
				   (double)lab_hist_quantile(&op_hist, 0.50) * npc, "ns");
			lab_scalar(&lab, "chaseload_p99_ns",
				   (double)lab_hist_quantile(&op_hist, 0.99) * npc, "ns");
			lab_add_hist(&lab, "op", &op_hist);
			lab_add_hist(&lab, "chunk256", &chunk_hist);
		}
		lab_send(&lab);
	}
	return 0;
}
