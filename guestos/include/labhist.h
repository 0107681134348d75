/* SPDX-License-Identifier: MIT */
/*
 * Log-linear latency histogram of the lab's guest instruments. Freestanding (stdint only)
 * so the same file builds for the guest and, in tests/unit, for the host. Values are TSC
 * cycles; the geometry is the results blob's (include/s2vm/lab.h): exact below 16, then
 * 16 buckets per power of two, so a bucket's width is at most 1/16 of its lower bound.
 */
#ifndef GUESTOS_LABHIST_H
#define GUESTOS_LABHIST_H

#include <stdint.h>

#include "s2vm/lab.h"

struct lab_hist {
	uint64_t count; /* values recorded */
	uint64_t sum; /* of the values, cycles (wraps past 2^64) */
	uint64_t min, max; /* UINT64_MAX and 0 while empty */
	uint64_t b[S2_LAB_HIST_BUCKETS]; /* counts per bucket */
};

/* Empty @h. */
void lab_hist_reset(struct lab_hist *h);

/* Add every value of @src to @dst (counts, sum, min, max). @src is unchanged. */
void lab_hist_merge(struct lab_hist *dst, const struct lab_hist *src);

/*
 * The value at quantile @q (0 <= q <= 1) of @h: the upper bound of the bucket holding
 * the value of rank ceil(q * count), clamped to [min, max]; exactly the min for q <= 0
 * and the max for q >= 1; 0 when @h is empty. Never below the true quantile, at most
 * 1/16 above it.
 */
uint64_t lab_hist_quantile(const struct lab_hist *h, double q);

/* Record @v. */
static inline void lab_hist_record(struct lab_hist *h, uint64_t v)
{
	h->b[s2_lab_hist_bucket(v)]++;
	h->count++;
	h->sum += v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

#endif
