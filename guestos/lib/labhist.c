// SPDX-License-Identifier: MIT
/* The lab's log-linear histogram (labhist.h). No library calls: built for the guest and,
 * for the unit tests, for the host. */
#include "labhist.h"

void lab_hist_reset(struct lab_hist *h)
{
	h->count = 0;
	h->sum = 0;
	h->min = UINT64_MAX;
	h->max = 0;
	for (unsigned i = 0; i < S2_LAB_HIST_BUCKETS; i++)
		h->b[i] = 0;
}

void lab_hist_merge(struct lab_hist *dst, const struct lab_hist *src)
{
	for (unsigned i = 0; i < S2_LAB_HIST_BUCKETS; i++)
		dst->b[i] += src->b[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t lab_hist_quantile(const struct lab_hist *h, double q)
{
	uint64_t rank, seen = 0, v;

	if (!h->count)
		return 0;
	if (q <= 0)
		return h->min;
	if (q >= 1)
		return h->max;
	{
		double r = q * (double)h->count;

		rank = (uint64_t)r;
		if ((double)rank < r)
			rank++;
		if (rank < 1)
			rank = 1;
	}
	for (unsigned i = 0; i < S2_LAB_HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen < rank)
			continue;
		v = s2_lab_hist_bucket_hi(i);
		if (v > h->max)
			v = h->max;
		if (v < h->min)
			v = h->min;
		return v;
	}
	return h->max;
}
