// SPDX-License-Identifier: MIT
/* The lab's guest histogram (guestos/lib/labhist.c, built for the host) and the results
 * blob checker the VMM runs on every S2_HC_LAB_RESULT (include/s2vm/lab.h). */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "labhist.h"
#include "s2vm/lab.h"
#include "tests/unit/unit.h"

static uint64_t rnd_state;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

/* Every bucket's bounds map back to it, buckets tile [0, 2^64) without gaps, and each is
 * at most 1/16 of its lower bound wide. */
static void test_bucket_bounds(void)
{
	for (uint64_t v = 0; v < 16; v++)
		CU_ASSERT_EQUAL(s2_lab_hist_bucket(v), v);
	CU_ASSERT_EQUAL(s2_lab_hist_bucket(16), 16);
	CU_ASSERT_EQUAL(s2_lab_hist_bucket(31), 31);
	CU_ASSERT_EQUAL(s2_lab_hist_bucket(32), 32);
	CU_ASSERT_EQUAL(s2_lab_hist_bucket(33), 32); /* width 2 from 32 */
	CU_ASSERT_EQUAL(s2_lab_hist_bucket(UINT64_MAX), S2_LAB_HIST_BUCKETS - 1);
	CU_ASSERT_EQUAL(s2_lab_hist_bucket_lo(0), 0);
	CU_ASSERT_EQUAL(s2_lab_hist_bucket_hi(S2_LAB_HIST_BUCKETS - 1), UINT64_MAX);
	for (unsigned b = 0; b < S2_LAB_HIST_BUCKETS; b++) {
		uint64_t lo = s2_lab_hist_bucket_lo(b), hi = s2_lab_hist_bucket_hi(b);

		CU_ASSERT_TRUE_FATAL(lo <= hi);
		CU_ASSERT_EQUAL_FATAL(s2_lab_hist_bucket(lo), b);
		CU_ASSERT_EQUAL_FATAL(s2_lab_hist_bucket(hi), b);
		if (lo > 0)
			CU_ASSERT_EQUAL_FATAL(s2_lab_hist_bucket(lo - 1), b - 1);
		if (b + 1 < S2_LAB_HIST_BUCKETS)
			CU_ASSERT_EQUAL_FATAL(hi + 1, s2_lab_hist_bucket_lo(b + 1));
		if (b >= S2_LAB_HIST_SUB)
			CU_ASSERT_TRUE_FATAL(hi - lo + 1 <= lo / 16);
	}
	rnd_state = unit_seed(0x1ab5eedull);
	for (int i = 0; i < 100000; i++) {
		uint64_t v = rnd() >> (rnd() % 64);
		unsigned b = s2_lab_hist_bucket(v);

		CU_ASSERT_TRUE_FATAL(b < S2_LAB_HIST_BUCKETS);
		CU_ASSERT_TRUE_FATAL(s2_lab_hist_bucket_lo(b) <= v && v <= s2_lab_hist_bucket_hi(b));
	}
}

static struct lab_hist ha, hb, hall;

/* Quantiles: never below the true value, at most one bucket (1/16) above; the extremes
 * are the min and max; an empty histogram says 0. */
static void test_quantiles(void)
{
	lab_hist_reset(&ha);
	CU_ASSERT_EQUAL(lab_hist_quantile(&ha, 0.5), 0);
	CU_ASSERT_EQUAL(ha.min, UINT64_MAX);
	for (uint64_t v = 1; v <= 1000; v++)
		lab_hist_record(&ha, v * 100);
	CU_ASSERT_EQUAL(ha.count, 1000);
	CU_ASSERT_EQUAL(ha.sum, 100ull * 1000 * 1001 / 2);
	CU_ASSERT_EQUAL(ha.min, 100);
	CU_ASSERT_EQUAL(ha.max, 100000);
	CU_ASSERT_EQUAL(lab_hist_quantile(&ha, 0), 100);
	CU_ASSERT_EQUAL(lab_hist_quantile(&ha, 1), 100000);
	for (unsigned p = 1; p < 100; p++) {
		uint64_t truth = (uint64_t)p * 10 * 100; /* rank p*10 of 1000 */
		uint64_t q = lab_hist_quantile(&ha, p / 100.0);

		CU_ASSERT_TRUE(q >= truth);
		CU_ASSERT_TRUE(q <= truth + truth / 16);
	}
	/* one huge stall among many fast values: p99 ignores it, the max does not */
	lab_hist_reset(&ha);
	for (int i = 0; i < 999; i++)
		lab_hist_record(&ha, 30);
	lab_hist_record(&ha, 5000000);
	CU_ASSERT_EQUAL(lab_hist_quantile(&ha, 0.99), 30);
	CU_ASSERT_EQUAL(lab_hist_quantile(&ha, 0.9999), 5000000);
}

/* Merging two histograms equals recording every value into one. */
static void test_merge(void)
{
	rnd_state = unit_seed(0x3e49eull);
	lab_hist_reset(&ha);
	lab_hist_reset(&hb);
	lab_hist_reset(&hall);
	for (int i = 0; i < 50000; i++) {
		uint64_t v = rnd() >> (rnd() % 64);

		lab_hist_record(i % 3 ? &ha : &hb, v);
		lab_hist_record(&hall, v);
	}
	lab_hist_merge(&ha, &hb);
	CU_ASSERT_EQUAL(ha.count, hall.count);
	CU_ASSERT_EQUAL(ha.sum, hall.sum);
	CU_ASSERT_EQUAL(ha.min, hall.min);
	CU_ASSERT_EQUAL(ha.max, hall.max);
	CU_ASSERT_EQUAL(memcmp(ha.b, hall.b, sizeof(ha.b)), 0);
	/* an empty source changes nothing; an empty destination becomes the source */
	lab_hist_reset(&hb);
	lab_hist_merge(&ha, &hb);
	CU_ASSERT_EQUAL(ha.min, hall.min);
	CU_ASSERT_EQUAL(ha.max, hall.max);
	lab_hist_merge(&hb, &hall);
	CU_ASSERT_EQUAL(hb.count, hall.count);
	CU_ASSERT_EQUAL(hb.min, hall.min);
	CU_ASSERT_EQUAL(memcmp(hb.b, hall.b, sizeof(hb.b)), 0);
}

/* A valid blob: header, one histogram, 4 windows, 2 scalars, 3 phases. */
#define BLOB_LEN (sizeof(struct s2_lab_header) + 4 * sizeof(struct s2_lab_section) +            \
		  sizeof(struct s2_lab_hist) + 8 * S2_LAB_HIST_BUCKETS +                         \
		  sizeof(struct s2_lab_windows) + 4 * 8 + 2 * sizeof(struct s2_lab_scalar) +     \
		  3 * sizeof(struct s2_lab_phase))

static uint64_t blob[BLOB_LEN / 8 + 64];
static size_t off_hist, off_win, off_sc, off_ph; /* payload offsets */

static size_t put_sec(unsigned char *p, size_t off, uint32_t kind, const char *name, uint32_t len)
{
	struct s2_lab_section s = { .kind = kind, .len = len };

	strncpy(s.name, name, sizeof(s.name));
	memcpy(p + off, &s, sizeof(s));
	return off + sizeof(s);
}

static void make_blob(void)
{
	unsigned char *p = (unsigned char *)blob;
	struct s2_lab_header h = { .magic = S2_LAB_MAGIC, .version = S2_LAB_VERSION,
				   .header_len = sizeof(h), .total_len = BLOB_LEN,
				   .nr_sections = 4, .tsc0 = 1000, .ns0 = 500, .tsc1 = 3000,
				   .ns1 = 1500, .flags = S2_LAB_F_INSTRUMENTS };
	struct s2_lab_hist hh = { .sub_bits = S2_LAB_HIST_SUB_BITS,
				  .nr_buckets = S2_LAB_HIST_BUCKETS };
	struct s2_lab_windows w = { .start_tsc = 1000, .window_tsc = 20, .nr = 4 };
	struct s2_lab_scalar sc[2] = { { "ops_per_s", 1.5e6 }, { "p99_ns", 210 } };
	uint64_t counts[4] = { 5, 6, 7, 8 };
	struct s2_lab_phase ph[3] = { { 1000, 1030, 9, 0 }, { 1030, 1060, 8, 1 },
				      { 1060, 1080, 9, 0 } };
	size_t off = sizeof(h);

	memset(blob, 0, sizeof(blob));
	strcpy(h.workload, "churnload");
	memcpy(p, &h, sizeof(h));
	lab_hist_reset(&ha);
	lab_hist_record(&ha, 7);
	lab_hist_record(&ha, 70000);
	hh.count = ha.count;
	hh.sum = ha.sum;
	hh.min = ha.min;
	hh.max = ha.max;
	off = put_sec(p, off, S2_LAB_SEC_HIST, "op", sizeof(hh) + sizeof(ha.b));
	off_hist = off;
	memcpy(p + off, &hh, sizeof(hh));
	memcpy(p + off + sizeof(hh), ha.b, sizeof(ha.b));
	off += sizeof(hh) + sizeof(ha.b);
	off = put_sec(p, off, S2_LAB_SEC_WINDOWS, "throughput", sizeof(w) + sizeof(counts));
	off_win = off;
	memcpy(p + off, &w, sizeof(w));
	memcpy(p + off + sizeof(w), counts, sizeof(counts));
	off += sizeof(w) + sizeof(counts);
	off = put_sec(p, off, S2_LAB_SEC_SCALARS, "scalars", sizeof(sc));
	off_sc = off;
	memcpy(p + off, sc, sizeof(sc));
	off += sizeof(sc);
	off = put_sec(p, off, S2_LAB_SEC_PHASES, "phases", sizeof(ph));
	off_ph = off;
	memcpy(p + off, ph, sizeof(ph));
	off += sizeof(ph);
	CU_ASSERT_EQUAL_FATAL(off, BLOB_LEN);
}

#define HDR ((struct s2_lab_header *)blob)
#define SEC(payload_off) ((struct s2_lab_section *)((unsigned char *)blob + (payload_off) - \
						    sizeof(struct s2_lab_section)))
#define HIST ((struct s2_lab_hist *)((unsigned char *)blob + off_hist))
#define HBUCKET(i) (((uint64_t *)((unsigned char *)blob + off_hist + sizeof(struct s2_lab_hist)))[i])
#define WIN ((struct s2_lab_windows *)((unsigned char *)blob + off_win))
#define SCAL ((struct s2_lab_scalar *)((unsigned char *)blob + off_sc))
#define PH ((struct s2_lab_phase *)((unsigned char *)blob + off_ph))

/* Each hostile change alone makes the checker refuse the blob. */
static void test_blob_hostile(void)
{
	make_blob();
	CU_ASSERT_EQUAL(s2_lab_check(blob, BLOB_LEN), 0);
	memset(HDR->workload, 'a', sizeof(HDR->workload)); /* 16 characters need no NUL */
	CU_ASSERT_EQUAL(s2_lab_check(blob, BLOB_LEN), 0);
	make_blob();
	/* lengths */
	CU_ASSERT_EQUAL(s2_lab_check(blob, 0), -EINVAL);
	CU_ASSERT_EQUAL(s2_lab_check(blob, 8), -EINVAL);
	CU_ASSERT_EQUAL(s2_lab_check(blob, BLOB_LEN - 4), -EINVAL);
	CU_ASSERT_EQUAL(s2_lab_check(blob, BLOB_LEN - 8), -EINVAL); /* total_len differs */
	CU_ASSERT_EQUAL(s2_lab_check(blob, S2_LAB_MAX_LEN + 8ull), -E2BIG);
	CU_ASSERT_EQUAL(s2_lab_check(blob, UINT64_MAX), -E2BIG);

#define REFUSED(change)                                                                    \
	do {                                                                               \
		make_blob();                                                               \
		change;                                                                    \
		CU_ASSERT_EQUAL(s2_lab_check(blob, BLOB_LEN), -EINVAL);                    \
	} while (0)
	REFUSED(HDR->magic ^= 1);
	REFUSED(HDR->version = 2);
	REFUSED(HDR->header_len = 80);
	REFUSED(HDR->total_len = BLOB_LEN + 8);
	REFUSED(HDR->nr_sections = S2_LAB_MAX_SECTIONS + 1);
	REFUSED(HDR->nr_sections = 5); /* a section header past the end */
	REFUSED(HDR->nr_sections = 3); /* bytes after the last section */
	REFUSED(HDR->flags = 2);
	REFUSED(HDR->tsc1 = HDR->tsc0);
	REFUSED(HDR->ns1 = 0);
	REFUSED(memset(HDR->workload, 0, sizeof(HDR->workload))); /* empty name */
	REFUSED(HDR->workload[2] = '\n');
	REFUSED(HDR->workload[12] = 'x'); /* not NUL-padded after the NUL */
	/* sections */
	REFUSED(SEC(off_hist)->len = 0xfffffff8u); /* past the end, would wrap a 32-bit sum */
	REFUSED(SEC(off_hist)->len += 4);
	REFUSED(SEC(off_hist)->kind = 9);
	REFUSED(SEC(off_win)->name[0] = ' ');
	REFUSED(HIST->nr_buckets = 10);
	REFUSED(HIST->sub_bits = 5);
	REFUSED(HIST->count++);
	REFUSED(HBUCKET(0) = UINT64_MAX; HBUCKET(1) = 2); /* counts wrap to the right total */
	REFUSED(HIST->min = HIST->max + 1);
	REFUSED(WIN->nr = 5);
	REFUSED(WIN->nr = 0xffffffffu);
	REFUSED(WIN->window_tsc = 0);
	REFUSED(WIN->unit = 7);
	REFUSED(SCAL[1].name[0] = '\0');
	REFUSED(SEC(off_sc)->len = 40);
	REFUSED(PH[1].end_tsc = PH[1].start_tsc); /* an empty phase */
	REFUSED(PH[2].start_tsc = 1059); /* overlaps the one before */
	REFUSED(PH[0].on = 2);
	REFUSED(SEC(off_ph)->len = 40);
#undef REFUSED
	make_blob(); /* phases may leave gaps between them */
	PH[2].start_tsc = 1065;
	CU_ASSERT_EQUAL(s2_lab_check(blob, BLOB_LEN), 0);
}

/* Random corruption and truncation of a valid blob: the checker reads only the blob and
 * answers 0 or a negative errno (ASan builds check the bounds). */
static void test_blob_fuzz(void)
{
	static uint64_t copy[BLOB_LEN / 8];
	unsigned ok = 0;

	rnd_state = unit_seed(0xf022ull);
	for (int i = 0; i < 20000; i++) {
		unsigned char *p = (unsigned char *)copy;
		uint64_t len = BLOB_LEN;
		int r;

		make_blob();
		memcpy(copy, blob, BLOB_LEN);
		for (int k = 0, n = 1 + (int)(rnd() % 4); k < n; k++)
			p[rnd() % BLOB_LEN] ^= (unsigned char)(1u << (rnd() % 8));
		if (rnd() % 4 == 0)
			len = (rnd() % (BLOB_LEN / 8)) * 8;
		r = s2_lab_check(copy, len);
		CU_ASSERT_TRUE_FATAL(r == 0 || r == -EINVAL || r == -E2BIG);
		ok += r == 0;
	}
	/* flips inside bucket counts or scalar values can leave it valid; most do not */
	CU_ASSERT_TRUE(ok < 20000);
}

static CU_TestInfo tests[] = {
	{ "histogram bucket boundaries", test_bucket_bounds },
	{ "histogram quantiles", test_quantiles },
	{ "histogram merge", test_merge },
	{ "results blob: hostile lengths and contents refused", test_blob_hostile },
	{ "results blob: random corruption", test_blob_fuzz },
	CU_TEST_INFO_NULL,
};

UNIT_MAIN("lab", tests)
