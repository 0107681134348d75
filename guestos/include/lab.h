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
 *
 * Phased runs (phases=churn|lab, phase_ms=N): the measured loop alternates off and on
 * phases of N ms, off first and last (an odd count, so a linear drift hits both arms
 * alike), telling the VMM at each switch (S2_HC_LAB_PHASE: `--churn` migrates only in
 * on phases) and recording each phase's operations (lab_phase_add()), so one run on one
 * piece of memory measures both arms of a comparison. phases=churn: instruments on in
 * both, the comparison is churn against none; phases=lab: the workload runs its
 * uninstrumented loop in the off phases, the comparison is the instruments' cost.
 */
#ifndef GUESTOS_LAB_H
#define GUESTOS_LAB_H

#include <stdint.h>

#include "labhist.h"

#define LAB_WINDOW_NS 10000000ull /* 10 ms */
#define LAB_MAX_WINDOWS 65536u /* 655 s of windows; later operations are counted in none */
#define LAB_MAX_HISTS 6u
#define LAB_MAX_SCALARS 32u
#define LAB_MAX_PHASES 4095u /* odd */

enum lab_phases {
	LAB_PHASES_NONE, /* one arm per run */
	LAB_PHASES_CHURN, /* off: no churn; on: the VMM's --churn runs */
	LAB_PHASES_LAB, /* off: no instruments; on: instruments (lab=1) */
};

struct lab {
	char workload[S2_LAB_NAME_LEN];
	int on; /* instruments on (lab=1, default) */
	uint64_t tsc0, ns0; /* calibration at lab_start(): TSC, host CLOCK_MONOTONIC ns */
	uint64_t tsc1, ns1; /* at lab_end() */
	uint64_t window_tsc; /* LAB_WINDOW_NS in cycles, estimated at lab_start() */
	uint64_t begin_tsc, end_tsc; /* the measured loop: lab_begin() .. lab_end() */
	uint32_t nr_windows; /* windows touched so far */
	uint64_t win_lo; /* lab_tick()'s current window: TSC [win_lo, + window_tsc) ... */
	uint64_t *win_ops; /* ... and its count (a sink past the last window) */
	uint64_t win_sink;
	uint32_t unit; /* 0: operations, 1: bytes */
	uint64_t *windows; /* LAB_MAX_WINDOWS counts */
	unsigned nr_hists;
	const char *hist_name[LAB_MAX_HISTS];
	const struct lab_hist *hists[LAB_MAX_HISTS];
	unsigned nr_scalars;
	struct s2_lab_scalar scalars[LAB_MAX_SCALARS];
	enum lab_phases phase_mode; /* phases= */
	uint64_t phase_ns; /* phase_ms= (default 500) in ns */
	uint32_t nr_phases; /* recorded so far */
	struct s2_lab_phase *phases; /* LAB_MAX_PHASES */
};

/* Set up @l for @workload (at most 15 characters): parse lab=0|1, phases=churn|lab and
 * phase_ms=N from argv, calibrate the TSC over about 20 ms. Returns 0, or -1 (after
 * printing why) for a bad value. */
int lab_start(struct lab *l, const char *workload, int argc, char **argv);

/* The argument @key=N (sample=: time every N-th operation alone; chunk=: time every chunk
 * of N): a power of two from @lo to @hi, or *@v unchanged when absent. Returns 0, or -1
 * after saying why. */
int lab_arg_pow2(const char *workload, int argc, char **argv, const char *key, uint64_t lo,
		 uint64_t hi, uint64_t *v);

/* A (TSC, host ns) pair: rdtsc on both sides of an S2_HC_CLOCK_NS call, TSC midpoint;
 * the tightest bracket of 5 tries. */
void lab_cal_point(uint64_t *tsc, uint64_t *ns);

/* TSC cycles in @ns nanoseconds, by the lab_start() estimate. */
uint64_t lab_ns_to_tsc(const struct lab *l, uint64_t ns);

/* The measured loop starts at TSC @tsc: window 0 begins there (windows counted before,
 * say by a warm-up, are dropped). */
void lab_begin(struct lab *l, uint64_t tsc);

/* The measured loop ended at TSC @tsc: takes the second calibration point. */
void lab_end(struct lab *l, uint64_t tsc);

/* Nanoseconds per TSC cycle over [lab_start, lab_end] (after lab_end()). */
double lab_ns_per_cycle(const struct lab *l);

/* Seconds of the measured loop (after lab_end()). */
double lab_seconds(const struct lab *l);

/* lab_tick() outside the current window: find @tsc's window (one division). */
void lab_tick_slow(struct lab *l, uint64_t tsc, uint64_t n);

/* Count @n operations (or bytes) done by TSC @tsc in its 10 ms window: two compares and
 * an add while @tsc stays in the window of the previous call. */
static inline void lab_tick(struct lab *l, uint64_t tsc, uint64_t n)
{
	if (!l->on)
		return;
	if (tsc - l->win_lo < l->window_tsc)
		l->win_ops[0] += n;
	else
		lab_tick_slow(l, tsc, n);
}

/* Phases of a phased run lasting about @ns: odd, at least 3, at most LAB_MAX_PHASES. */
uint32_t lab_phase_count(const struct lab *l, uint64_t ns);

/* Phase @k (0-based) starts: tell the VMM whether it is on (odd @k). Returns that. */
int lab_phase_enter(uint32_t k);

/* Record a phase: TSC [@start, @end), @ops operations, @on. Ignored past the last slot
 * or for an empty span. */
void lab_phase_add(struct lab *l, uint64_t start, uint64_t end, uint64_t ops, int on);

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
