// SPDX-License-Identifier: MIT
/*
 * churnload.elf [seconds=N] [size=SIZE] [lab=0|1] [chunk=N] [sample=N]
 *               [phases=churn|lab] [phase_ms=N]
 *
 * The lab's guest workload: for N seconds, read-modify-write one random 64-bit word per
 * access across SIZE bytes of the heap (default: all of it). Reports accesses per second
 * and, with the instruments on (lab=1, the default), the 50th/99th percentile latency of
 * every N-th access (sample=, default: one per chunk; TSC, calibrated against the VMM
 * clock), a histogram "chunk" of the time of every chunk of accesses (chunk=, default
 * 1024, about 15 us: no stall escapes it) and the accesses per 10 ms window, sent as one
 * lab results blob (--lab-out). lab=0 runs the same accesses without any of that: the
 * lab's overhead is the difference (about 1% with the defaults, 2.7% with chunk=256).
 *
 * phases=churn|lab (lab.h): alternate off and on phases of phase_ms (default 500) in one
 * run. churn: the VMM's --churn runs only in on phases; the latency histograms of the off
 * phases are "op.off" and "chunk.off". lab: the off phases run the lab=0 loop (its
 * accesses still counted per 10 ms window, one compare and add per 4096 accesses).
 */
#include "guest.h"
#include "lab.h"

#define OFF_STEP 4096u /* accesses between two clock reads of the lab=0 loop */

static struct lab lab;
static struct lab_hist op_hist[2], chunk_hist[2]; /* [1]: on phases (or no phases) */

struct loop {
	volatile uint64_t *w;
	uint64_t words, x, mask; /* mask: sample - 1 */
	uint64_t chunk; /* accesses per timed chunk */
};

static inline uint64_t next_rand(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* The instrumented loop from TSC @t until @end; returns the accesses, *@t where it ended. */
static uint64_t loop_on(struct loop *s, uint64_t *t, uint64_t end, struct lab_hist *op,
			struct lab_hist *chunk_h)
{
	/* locals: a volatile store could alias the struct's fields, which the compiler
	 * would then reload after every access */
	volatile uint64_t *w = s->w;
	uint64_t words = s->words, x = s->x, mask = s->mask, chunk = s->chunk, ops = 0;
	uint64_t prev = *t, now = *t;

	while (now < end) {
		for (uint64_t k = 0; k < chunk; k++) {
			uint64_t i = next_rand(&x) % words;

			if ((k & mask) == 0) {
				uint64_t t0 = g_rdtsc();

				w[i] += 1;
				lab_hist_record(op, g_rdtsc() - t0);
			} else {
				w[i] += 1;
			}
		}
		ops += chunk;
		now = g_rdtsc();
		lab_hist_record(chunk_h, now - prev);
		lab_tick(&lab, now, chunk);
		prev = now;
	}
	s->x = x;
	*t = now;
	return ops;
}

/* The uninstrumented loop (lab=0), the same way. */
static uint64_t loop_off(struct loop *s, uint64_t *t, uint64_t end)
{
	volatile uint64_t *w = s->w;
	uint64_t words = s->words, x = s->x, ops = 0, now = *t;

	while (now < end) {
		for (unsigned k = 0; k < OFF_STEP; k++)
			w[next_rand(&x) % words] += 1;
		ops += OFF_STEP;
		now = g_rdtsc();
		lab_tick(&lab, now, OFF_STEP);
	}
	s->x = x;
	*t = now;
	return ops;
}

int main(int argc, char **argv)
{
	uint64_t seconds = 3, size = (g_boot->mem_size - g_boot->heap_start) & ~4095ull;
	uint64_t ops = 0, sample = 0, t, end, phase_ops[2] = { 0 }, phase_tsc[2] = { 0 };
	struct loop s = { .w = (volatile uint64_t *)(uintptr_t)g_boot->heap_start,
			  .x = 88172645463325252ull, .chunk = 1024 };
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
	if (lab_arg_pow2("churnload", argc, argv, "chunk", 64, 65536, &s.chunk))
		return 2;
	sample = s.chunk;
	if (lab_arg_pow2("churnload", argc, argv, "sample", 1, s.chunk, &sample))
		return 2;
	if (lab_start(&lab, "churnload", argc, argv))
		return 2;
	for (int i = 0; i < 2; i++) {
		lab_hist_reset(&op_hist[i]);
		lab_hist_reset(&chunk_hist[i]);
	}
	s.words = size / 8;
	s.mask = sample - 1;
	for (uint64_t i = 0; i < s.words; i += 512)
		s.w[i] = i; /* touch every page once */
	/* warm up (caches, TLB, the host's own faults) for 50 ms, unmeasured: the first
	 * 10-20 ms after the touch loop ran at a fraction of the steady rate */
	t = g_rdtsc();
	loop_off(&s, &t, t + lab_ns_to_tsc(&lab, 50000000ull));
	t = g_rdtsc();
	lab_begin(&lab, t);
	if (lab.phase_mode == LAB_PHASES_NONE) {
		end = t + lab_ns_to_tsc(&lab, seconds * 1000000000ull);
		ops = lab.on ? loop_on(&s, &t, end, &op_hist[1], &chunk_hist[1])
			     : loop_off(&s, &t, end);
	} else {
		uint32_t n = lab_phase_count(&lab, seconds * 1000000000ull);
		uint64_t len = lab_ns_to_tsc(&lab, lab.phase_ns), start = t;

		for (uint32_t k = 0; k < n; k++) {
			uint64_t t0 = t, done;
			int on = lab_phase_enter(k);

			end = start + (k + 1) * len;
			if (lab.phase_mode == LAB_PHASES_LAB && !on)
				done = loop_off(&s, &t, end);
			else if (lab.on)
				done = loop_on(&s, &t, end, &op_hist[on], &chunk_hist[on]);
			else
				done = loop_off(&s, &t, end);
			lab_phase_add(&lab, t0, t, done, on);
			phase_ops[on] += done;
			phase_tsc[on] += t - t0;
			ops += done;
		}
		lab_phase_enter(0); /* the VMM's churn stops with the loop */
	}
	lab_end(&lab, t);
	{
		double secs = lab_seconds(&lab), npc = lab_ns_per_cycle(&lab);

		g_printf("churnload: %lu accesses over %lu MiB in %lu ms\n", (unsigned long)ops,
			 (unsigned long)(size >> 20), (unsigned long)(secs * 1000));
		lab_scalar(&lab, "churnload_ops_per_s", (double)ops / secs, "op/s");
		if (lab.on)
			lab_scalar(&lab, "churnload_chunk_ops", (double)s.chunk, "op");
		if (lab.phase_mode != LAB_PHASES_NONE) {
			for (int on = 0; on < 2; on++)
				lab_scalar(&lab, on ? "churnload_on_ops_per_s" : "churnload_off_ops_per_s",
					   (double)phase_ops[on] / ((double)phase_tsc[on] * npc / 1e9),
					   "op/s");
		}
		if (lab.on) {
			lab_scalar(&lab, "churnload_p50_ns",
				   (double)lab_hist_quantile(&op_hist[1], 0.50) * npc, "ns");
			lab_scalar(&lab, "churnload_p99_ns",
				   (double)lab_hist_quantile(&op_hist[1], 0.99) * npc, "ns");
			lab_add_hist(&lab, "op", &op_hist[1]);
			lab_add_hist(&lab, "chunk", &chunk_hist[1]);
			if (lab.phase_mode == LAB_PHASES_CHURN) {
				lab_add_hist(&lab, "op.off", &op_hist[0]);
				lab_add_hist(&lab, "chunk.off", &chunk_hist[0]);
			}
		}
		lab_send(&lab);
	}
	return 0;
}
