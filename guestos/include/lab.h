/* SPDX-License-Identifier: MIT */
/*
 * The lab's guest instruments: a TSC calibrated against the VMM's clock, operations per
 * 10 ms window, named latency histograms (labhist.h) and named scalars, sent to the VMM
 * in one S2_HC_LAB_RESULT blob (include/s2vm/lab.h) at the end of a run.
 *
 * A workload calls lab_start() once (parses lab=0|1 from its arguments: instruments on,
 * the default, or off), lab_begin() where its measured loop starts, lab_tick() after
 * every chunk of operations (a no-op with lab=0), lab_end() where the loop ends, then
 * adds histograms and scalars and calls lab_send(). One struct lab per guest, on vCPU 0.
 */
#ifndef GUESTOS_LAB_H
#define GUESTOS_LAB_H

#include <stdint.h>

#include "labhist.h"

#define LAB_WINDOW_NS 10000000ull /* 10 ms */
#define LAB_MAX_WINDOWS 65536u /* 655 s of windows; later operations are counted in none */
#define LAB_MAX_HISTS 6u
#define LAB_MAX_SCALARS 32u

struct lab {
	char workload[S2_LAB_NAME_LEN];
	int on; /* instruments on (lab=1, default) */
	uint64_t tsc0, ns0; /* calibration at lab_start(): TSC, host CLOCK_MONOTONIC ns */
	uint64_t tsc1, ns1; /* at lab_end() */
	uint64_t window_tsc; /* LAB_WINDOW_NS in cycles, estimated at lab_start() */
	uint64_t begin_tsc, end_tsc; /* the measured loop: lab_begin() .. lab_end() */
	uint32_t nr_windows; /* windows touched so far */
	uint32_t unit; /* 0: operations, 1: bytes */
	uint64_t *windows; /* LAB_MAX_WINDOWS counts */
	unsigned nr_hists;
	const char *hist_name[LAB_MAX_HISTS];
	const struct lab_hist *hists[LAB_MAX_HISTS];
	unsigned nr_scalars;
	struct s2_lab_scalar scalars[LAB_MAX_SCALARS];
};

/* Set up @l for @workload (at most 15 characters): parse lab=0|1 from argv, calibrate
 * the TSC over about 20 ms. Returns 0, or -1 (after printing why) for a bad lab= value. */
int lab_start(struct lab *l, const char *workload, int argc, char **argv);

/* The sample=N argument (time every N-th operation alone): a power of two from 1 to
 * @max, or *@sample unchanged when absent. Returns 0, or -1 after saying why. */
int lab_arg_sample(const char *workload, int argc, char **argv, uint64_t max,
		   uint64_t *sample);

/* A (TSC, host ns) pair: rdtsc on both sides of an S2_HC_CLOCK_NS call, TSC midpoint;
 * the tightest bracket of 5 tries. */
void lab_cal_point(uint64_t *tsc, uint64_t *ns);

/* TSC cycles in @ns nanoseconds, by the lab_start() estimate. */
uint64_t lab_ns_to_tsc(const struct lab *l, uint64_t ns);

/* The measured loop starts at TSC @tsc: window 0 begins there. */
void lab_begin(struct lab *l, uint64_t tsc);

/* The measured loop ended at TSC @tsc: takes the second calibration point. */
void lab_end(struct lab *l, uint64_t tsc);

/* Nanoseconds per TSC cycle over [lab_start, lab_end] (after lab_end()). */
double lab_ns_per_cycle(const struct lab *l);

/* Seconds of the measured loop (after lab_end()). */
double lab_seconds(const struct lab *l);

/* Count @n operations (or bytes) done by TSC @tsc in its 10 ms window. */
static inline void lab_tick(struct lab *l, uint64_t tsc, uint64_t n)
{
	uint64_t i;

	if (!l->on || tsc < l->begin_tsc)
		return;
	i = (tsc - l->begin_tsc) / l->window_tsc;
	if (i >= LAB_MAX_WINDOWS)
		return;
	l->windows[i] += n;
	if (i >= l->nr_windows)
		l->nr_windows = (uint32_t)i + 1;
}

/* Add histogram @h (kept by the caller until lab_send()) as @name (<= 15 characters). */
void lab_add_hist(struct lab *l, const char *name, const struct lab_hist *h);

/* Add scalar @name (<= 23 characters) = @v; also printed as a "report:" line. */
void lab_scalar(struct lab *l, const char *name, double v, const char *unit);

/*
 * Encode everything into one blob and hand it to the VMM (S2_HC_LAB_RESULT). Returns the
 * hypercall's result: the blob's length, or -errno; -ENODEV (no --lab-out) is not an
 * error for the workload, anything else is printed.
 */
int64_t lab_send(struct lab *l);

#endif
