// SPDX-License-Identifier: MIT
/* Range lists and PFN arrays (mm/discard.h): pure, so the fuzz targets compile them alone. */
#include <stdlib.h>

#include "mm/discard.h"

#define PAGE 4096ull
#define PFN_MAX (UINT64_MAX >> 12) /* PFNs past this have no GPA */

static int range_cmp(const void *a, const void *b)
{
	const struct mig_range *x = a, *y = b;

	return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

size_t mm_ranges_merge(struct mig_range *r, size_t n)
{
	size_t k = 0;

	size_t sorted = 1;

	if (!n)
		return 0; /* r may be NULL */
	/* requests usually come in GPA order (page lists walked upwards): sort only if not */
	while (sorted < n && r[sorted - 1].gpa <= r[sorted].gpa)
		sorted++;
	if (sorted < n)
		qsort(r, n, sizeof(*r), range_cmp);
	for (size_t i = 0; i < n; i++) {
		if (k && r[i].gpa <= r[k - 1].gpa + r[k - 1].len) {
			gpa_t e = r[i].gpa + r[i].len;

			if (e > r[k - 1].gpa + r[k - 1].len)
				r[k - 1].len = e - r[k - 1].gpa;
		} else {
			r[k++] = r[i];
		}
	}
	return k;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

size_t mm_pfns_to_ranges(uint64_t *pfn, size_t n, struct mig_range *out)
{
	uint64_t lo = UINT64_MAX, hi = 0;
	size_t k = 0, m = 0;

	/* PFNs without a GPA are dropped; the rest is sorted and deduplicated */
	for (size_t i = 0; i < n; i++) {
		if (pfn[i] > PFN_MAX)
			continue;
		pfn[m++] = pfn[i];
		lo = pfn[i] < lo ? pfn[i] : lo;
		hi = pfn[i] > hi ? pfn[i] : hi;
	}
	if (!m)
		return 0;
	/* Dense reports (a balloon's pages, adjacent in any order) sort in O(n) through a
	 * bitmap over their span; sparse ones with qsort. */
	if ((hi - lo) / 64 <= 4 * (uint64_t)m + 1024) {
		size_t words = (size_t)((hi - lo) / 64 + 1);
		uint64_t *bm = calloc(words, sizeof(*bm));

		if (bm) {
			for (size_t i = 0; i < m; i++)
				bm[(pfn[i] - lo) / 64] |= 1ull << ((pfn[i] - lo) % 64);
			m = 0;
			for (size_t w = 0; w < words; w++)
				for (uint64_t x = bm[w]; x; x &= x - 1)
					pfn[m++] = lo + w * 64 + (uint64_t)__builtin_ctzll(x);
			free(bm);
			goto merge;
		}
	}
	qsort(pfn, m, sizeof(*pfn), u64_cmp);
merge:
	for (size_t i = 0; i < m; i++) {
		gpa_t g = pfn[i] << 12;

		if (k && out[k - 1].gpa + out[k - 1].len >= g) {
			if (out[k - 1].gpa + out[k - 1].len == g)
				out[k - 1].len += PAGE;
			continue; /* a duplicate */
		}
		out[k++] = (struct mig_range){ g, PAGE };
	}
	return k;
}
