/* SPDX-License-Identifier: MIT */
/*
 * The lab results blob: what a guest workload's instruments hand to the VMM in one
 * S2_HC_LAB_RESULT hypercall, and what `s2vm run --lab-out FILE` writes to FILE byte for
 * byte after checking it with s2_lab_check(). Shared by the guest (guestos/lib/lab.c,
 * the encoder), the VMM (vmm/hypercall.c) and the lab's decoder (tools/lab/labblob.py,
 * which repeats these checks). Little-endian, every field naturally aligned, every length
 * a multiple of 8.
 *
 *	struct s2_lab_header                 header_len bytes
 *	nr_sections x { struct s2_lab_section, len bytes of payload }
 *
 * Payloads by kind:
 *	HIST     struct s2_lab_hist, then nr_buckets uint64_t counts (log-linear buckets
 *	         of TSC cycles, see s2_lab_hist_bucket())
 *	WINDOWS  struct s2_lab_windows, then nr uint64_t operation counts, window i
 *	         covering TSC [start_tsc + i * window_tsc, + window_tsc)
 *	SCALARS  len / 32 struct s2_lab_scalar
 *	PHASES   len / 32 struct s2_lab_phase: a phased run's alternating off and on
 *	         phases (S2_HC_LAB_PHASE), in order, none overlapping
 *
 * TSC to host time: the header's two calibration points (tsc0, ns0) and (tsc1, ns1), each
 * an rdtsc bracketing an S2_HC_CLOCK_NS hypercall, which returns the VMM's
 * CLOCK_MONOTONIC: the clock of the VMM's migration timeline (--timeline), so guest
 * windows and migration batches share one time axis.
 */
#ifndef S2VM_LAB_H
#define S2VM_LAB_H

#include <stdint.h>

#define S2_LAB_MAGIC 0x424c3253u /* "S2LB" */
#define S2_LAB_VERSION 1u
#define S2_LAB_MAX_LEN (4u << 20) /* bytes; longer blobs are refused (-E2BIG) */
#define S2_LAB_MAX_SECTIONS 64u
#define S2_LAB_NAME_LEN 16u
#define S2_LAB_SCALAR_NAME_LEN 24u

/* Histogram geometry: values below 2^SUB_BITS have one bucket each; above, each power of
 * two [2^e, 2^(e+1)) is split into 2^SUB_BITS equal buckets (relative width <= 1/16). */
#define S2_LAB_HIST_SUB_BITS 4u
#define S2_LAB_HIST_SUB (1u << S2_LAB_HIST_SUB_BITS)
#define S2_LAB_HIST_BUCKETS ((64u - S2_LAB_HIST_SUB_BITS + 1u) * S2_LAB_HIST_SUB) /* 976 */

#define S2_LAB_F_INSTRUMENTS 1ull /* latency histograms and windows were recorded */

enum s2_lab_kind {
	S2_LAB_SEC_HIST = 1,
	S2_LAB_SEC_WINDOWS = 2,
	S2_LAB_SEC_SCALARS = 3,
	S2_LAB_SEC_PHASES = 4,
};

struct s2_lab_header {
	uint32_t magic; /* S2_LAB_MAGIC */
	uint16_t version; /* S2_LAB_VERSION */
	uint16_t header_len; /* sizeof(struct s2_lab_header) */
	uint32_t total_len; /* whole blob, bytes, == the hypercall's len */
	uint32_t nr_sections; /* <= S2_LAB_MAX_SECTIONS */
	char workload[S2_LAB_NAME_LEN]; /* printable, NUL-padded, not empty */
	uint64_t tsc0, ns0; /* first calibration point: TSC, host CLOCK_MONOTONIC ns */
	uint64_t tsc1, ns1; /* last one; tsc1 > tsc0, ns1 > ns0 */
	uint64_t flags; /* S2_LAB_F_* */
};

struct s2_lab_section {
	uint32_t kind; /* enum s2_lab_kind */
	uint32_t len; /* payload bytes after this header, a multiple of 8 */
	char name[S2_LAB_NAME_LEN]; /* printable, NUL-padded, not empty */
};

struct s2_lab_hist {
	uint32_t sub_bits; /* S2_LAB_HIST_SUB_BITS */
	uint32_t nr_buckets; /* S2_LAB_HIST_BUCKETS */
	uint64_t count; /* values recorded == sum of the buckets */
	uint64_t sum; /* of the values, TSC cycles (wraps only past 2^64) */
	uint64_t min, max; /* TSC cycles; min <= max when count > 0 */
};

struct s2_lab_windows {
	uint64_t start_tsc; /* start of window 0 */
	uint64_t window_tsc; /* width of each window, > 0 */
	uint32_t nr; /* windows that follow */
	uint32_t unit; /* 0: operations, 1: bytes */
};

struct s2_lab_scalar {
	char name[S2_LAB_SCALAR_NAME_LEN]; /* printable, NUL-padded, not empty */
	double value;
};

struct s2_lab_phase {
	uint64_t start_tsc, end_tsc; /* start_tsc < end_tsc <= the next phase's start_tsc */
	uint64_t ops; /* operations (or bytes, as the windows' unit) done in the phase */
	uint64_t on; /* 0: off (the baseline arm), 1: on (the measured arm) */
};

/* Bucket of @v (any value: never out of range). */
static inline unsigned s2_lab_hist_bucket(uint64_t v)
{
	unsigned e;

	if (v < S2_LAB_HIST_SUB)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v);
	return (e - S2_LAB_HIST_SUB_BITS + 1u) * S2_LAB_HIST_SUB +
	       (unsigned)((v >> (e - S2_LAB_HIST_SUB_BITS)) - S2_LAB_HIST_SUB);
}

/* Smallest value in bucket @b (< S2_LAB_HIST_BUCKETS). */
static inline uint64_t s2_lab_hist_bucket_lo(unsigned b)
{
	if (b < S2_LAB_HIST_SUB)
		return b;
	return (uint64_t)(S2_LAB_HIST_SUB + b % S2_LAB_HIST_SUB) << (b / S2_LAB_HIST_SUB - 1u);
}

/* Largest value in bucket @b (inclusive: the last bucket ends at UINT64_MAX). */
static inline uint64_t s2_lab_hist_bucket_hi(unsigned b)
{
	if (b < S2_LAB_HIST_SUB)
		return b;
	return s2_lab_hist_bucket_lo(b) + ((1ull << (b / S2_LAB_HIST_SUB - 1u)) - 1u);
}

/* A printable (0x21..0x7e), non-empty, NUL-padded name of @n bytes. */
static inline int s2_lab_name_ok(const char *s, unsigned n)
{
	unsigned i = 0;

	while (i < n && s[i] > ' ' && s[i] <= '~')
		i++;
	if (i == 0 || (i < n && s[i] != '\0'))
		return 0;
	for (; i < n; i++)
		if (s[i] != '\0')
			return 0;
	return 1;
}

/*
 * Check a whole blob of @len bytes at @buf (8-byte aligned) against the format above:
 * lengths, bounds, names, histogram geometry and counts, window counts. Reads only
 * [buf, buf + len). Returns 0, -E2BIG (-7) when @len exceeds S2_LAB_MAX_LEN, or -EINVAL
 * (-22) for anything malformed.
 */
static inline int s2_lab_check(const void *buf, uint64_t len)
{
	const unsigned char *p = (const unsigned char *)buf;
	const struct s2_lab_header *h = (const struct s2_lab_header *)buf;
	uint64_t off;

	if (len > S2_LAB_MAX_LEN)
		return -7;
	if (len < sizeof(*h) || len % 8)
		return -22;
	if (h->magic != S2_LAB_MAGIC || h->version != S2_LAB_VERSION ||
	    h->header_len != sizeof(*h) || h->total_len != len ||
	    h->nr_sections > S2_LAB_MAX_SECTIONS || h->flags & ~S2_LAB_F_INSTRUMENTS ||
	    !s2_lab_name_ok(h->workload, S2_LAB_NAME_LEN) || h->tsc1 <= h->tsc0 ||
	    h->ns1 <= h->ns0)
		return -22;
	off = sizeof(*h);
	for (uint32_t i = 0; i < h->nr_sections; i++) {
		const struct s2_lab_section *s;
		const unsigned char *pl;
		uint64_t n;

		if (len - off < sizeof(*s))
			return -22;
		s = (const struct s2_lab_section *)(p + off);
		off += sizeof(*s);
		n = s->len;
		if (n % 8 || n > len - off || !s2_lab_name_ok(s->name, S2_LAB_NAME_LEN))
			return -22;
		pl = p + off;
		switch (s->kind) {
		case S2_LAB_SEC_HIST: {
			const struct s2_lab_hist *hh = (const struct s2_lab_hist *)pl;
			const uint64_t *b = (const uint64_t *)(pl + sizeof(*hh));
			uint64_t total = 0;

			if (n != sizeof(*hh) + 8ull * S2_LAB_HIST_BUCKETS ||
			    hh->sub_bits != S2_LAB_HIST_SUB_BITS ||
			    hh->nr_buckets != S2_LAB_HIST_BUCKETS ||
			    (hh->count && hh->min > hh->max))
				return -22;
			for (unsigned k = 0; k < S2_LAB_HIST_BUCKETS; k++) {
				if (b[k] > UINT64_MAX - total)
					return -22;
				total += b[k];
			}
			if (total != hh->count)
				return -22;
			break;
		}
		case S2_LAB_SEC_WINDOWS: {
			const struct s2_lab_windows *w = (const struct s2_lab_windows *)pl;

			if (n < sizeof(*w) || w->window_tsc == 0 || w->unit > 1 ||
			    (n - sizeof(*w)) / 8 != w->nr || (n - sizeof(*w)) % 8)
				return -22;
			break;
		}
		case S2_LAB_SEC_SCALARS: {
			const struct s2_lab_scalar *sc = (const struct s2_lab_scalar *)pl;

			if (n % sizeof(*sc))
				return -22;
			for (uint64_t k = 0; k < n / sizeof(*sc); k++)
				if (!s2_lab_name_ok(sc[k].name, S2_LAB_SCALAR_NAME_LEN))
					return -22;
			break;
		}
		case S2_LAB_SEC_PHASES: {
			const struct s2_lab_phase *ph = (const struct s2_lab_phase *)pl;

			if (n % sizeof(*ph))
				return -22;
			for (uint64_t k = 0; k < n / sizeof(*ph); k++)
				if (ph[k].start_tsc >= ph[k].end_tsc || ph[k].on > 1 ||
				    (k && ph[k].start_tsc < ph[k - 1].end_tsc))
					return -22;
			break;
		}
		default:
			return -22;
		}
		off += n;
	}
	return off == len ? 0 : -22;
}

#endif
