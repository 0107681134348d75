// SPDX-License-Identifier: MIT
/*
 * Discarding guest memory (mm/discard.h), on the real `kvm` backend (memfd pools and a
 * real alias, no /dev/kvm needed) and on the `sim` backend:
 *  - mm_pfns_to_ranges / mm_ranges_merge against a bitmap oracle (shuffled, duplicated,
 *    adjacent, overlapping input; PFNs across 2^32 and far beyond);
 *  - in place: discarded pages read zero (pool mapping and alias), the others keep their
 *    data, the pool gives the memory back, one punch per piece, no alias call, the map
 *    untouched, and a page written again is backed again;
 *  - re-homed (pages a migration left on a pool their node's policy does not name): fresh
 *    frames from the policy's pool, old frames freed and punched behind the generation;
 *    punched in place (misplaced) when that pool is full; never stale data from a warm
 *    freed frame;
 *  - sim: no invalidation for in-place, one per piece for re-homed, block leaves replaced
 *    whole, no checker report, a device's stale IOTLB never reaches a freed frame;
 *  - pins: skipped or deferred (a huge frame's pin covers its 2 MiB), retried, cancelled,
 *    long-term pins, drain before judging;
 *  - a migrator, a discarder and a monitor writer racing: nothing lost, nothing stale;
 *  - bad input refused whole with -EINVAL.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mm/backend_sim.h"
#include "mm/discard.h"
#include "mm/dma.h"
#include "mm/migrate.h"
#include "mm/mm.h"
#include "tests/unit/mm_unit.h"
#include "tests/unit/unit.h"

#define MIB   (1ull << 20)
#define KIB   (1ull << 10)
#define PAGE  4096ull
#define WORDS (PAGE / 8)
#define ZERO  UINT64_MAX /* expected contents: all zero */
#define MAXP  8192	 /* pages in the largest guest here (32 MiB) */

/* ---- page contents ---- */

static uint64_t tag(gpa_t g, uint64_t seq)
{
	return ((g >> 12) + 1) * 0x9e3779b97f4a7c15ull ^ (seq + 1) * 0xd1b54a32d192ed03ull;
}

static void page_fill(uint64_t *w, gpa_t g, uint64_t seq)
{
	uint64_t t = tag(g, seq);

	for (unsigned i = 0; i < WORDS; i++)
		w[i] = t + i;
}

/* Does @w hold what page @g should hold with @seq (ZERO: zeros)? */
static bool page_is(const uint64_t *w, gpa_t g, uint64_t seq)
{
	uint64_t t = tag(g, seq);

	for (unsigned i = 0; i < WORDS; i++)
		if (w[i] != (seq == ZERO ? 0 : t + i))
			return false;
	return true;
}

/* Write page @g with @seq through the monitor's path. */
static int put_page(struct mm *mm, gpa_t g, uint64_t seq)
{
	uint64_t w[WORDS];

	page_fill(w, g, seq);
	return mm_guest_write(mm, g, w, PAGE);
}

/* Fill [gpa, gpa + len) with @seq, 1 MiB per call. */
static void fill(struct mm *mm, gpa_t gpa, uint64_t len, uint64_t seq)
{
	static uint64_t buf[MIB / 8];

	for (gpa_t g = gpa; g < gpa + len; g += MIB) {
		uint64_t n = gpa + len - g < MIB ? gpa + len - g : MIB;

		for (uint64_t o = 0; o < n; o += PAGE)
			page_fill(buf + o / 8, g + o, seq);
		CU_ASSERT_EQUAL_FATAL(mm_guest_write(mm, g, buf, n), 0);
	}
}

/* Check every page against @expect (per page: a seq or ZERO), through mm_guest_read and,
 * with the kvm backend, the alias (what vCPUs see). Returns the pages that differ. */
static uint64_t verify(struct mm *mm, const uint64_t *expect, const char *what)
{
	uint64_t w[WORDS], bad = 0, pages = mm->cfg.mem_size / PAGE;

	for (uint64_t p = 0; p < pages; p++) {
		gpa_t g = p * PAGE;
		bool ok;

		CU_ASSERT_EQUAL_FATAL(mm_guest_read(mm, g, w, PAGE), 0);
		ok = page_is(w, g, expect[p]);
		if (ok && !mm->cfg.be)
			ok = memcmp(mm_alias_at(mm, g), w, PAGE) == 0;
		if (!ok && bad++ < 4) {
			char want[40] = "zeros";

			if (expect[p] != ZERO)
				snprintf(want, sizeof(want), "seq %llu",
					 (unsigned long long)expect[p]);
			fprintf(stderr, "\n  %s: page %#llx: %s, want %s (word 0 %#llx)", what,
				(unsigned long long)g,
				page_is(w, g, expect[p]) ? "alias differs" : "wrong", want,
				(unsigned long long)w[0]);
		}
	}
	if (bad)
		fprintf(stderr, "\n  %s: %llu pages wrong ", what, (unsigned long long)bad);
	CU_ASSERT_EQUAL(bad, 0);
	return bad;
}

/* ---- what the map says ---- */

struct backing {
	uint8_t pool[MAXP];
	uint64_t off[MAXP]; /* byte offset in the pool */
	uint64_t oa[MAXP];  /* leaf output address, level and permissions */
	uint8_t level[MAXP], perm[MAXP];
};

static void snapshot(struct mm *mm, struct backing *b)
{
	pthread_mutex_lock(&mm->lock);
	for (uint64_t p = 0; p < mm->cfg.mem_size / PAGE; p++) {
		struct s2_leaf l;
		unsigned pool, lvl;

		CU_ASSERT_EQUAL_FATAL(mm_gpa_backing(mm, p * PAGE, &pool, &b->off[p]), 0);
		CU_ASSERT_EQUAL_FATAL(s2_walk(&mm->map, p * PAGE, &l, &lvl), 0);
		b->pool[p] = (uint8_t)pool;
		b->oa[p] = l.oa;
		b->level[p] = (uint8_t)lvl;
		b->perm[p] = l.perm;
	}
	pthread_mutex_unlock(&mm->lock);
}

static uint64_t leaf_size_at(struct mm *mm, gpa_t g)
{
	struct s2_leaf l;
	unsigned lvl;

	if (s2_walk(&mm->map, g, &l, &lvl))
		return 0;
	return s2_level_size(lvl);
}

/* The pool index each page's guest node binds to (the nodes here all use bind). */
static void policy_pools(struct mm *mm, uint8_t *pp)
{
	for (unsigned i = 0; i < mm->cfg.nr_nodes; i++) {
		const struct mm_guest_node *n = &mm->cfg.nodes[i];
		int pi = mm_pool_get(mm, n->host);

		CU_ASSERT_FATAL(pi >= 0);
		for (gpa_t g = n->gpa; g < n->gpa + n->size; g += PAGE)
			pp[g / PAGE] = (uint8_t)pi;
	}
}

/*
 * Every page is backed by a used frame, no frame backs two pages, and (after a flush and
 * free with every holder published) each pool uses exactly the frames the map reaches.
 */
static void check_backing(struct mm *mm)
{
	uint64_t used[MM_MAX_POOLS] = {0};
	uint8_t *seen[MM_MAX_POOLS] = {0};
	uint64_t dup = 0;

	pthread_mutex_lock(&mm->lock);
	mm_flush_and_free(mm);
	for (unsigned p = 0; p < mm->nr_pools; p++)
		seen[p] = calloc(mm->pools[p].nr_frames, 1);
	for (gpa_t g = 0; g < mm->cfg.mem_size; g += PAGE) {
		unsigned pool;
		uint64_t off;

		CU_ASSERT_EQUAL_FATAL(mm_gpa_backing(mm, g, &pool, &off), 0);
		CU_ASSERT_FATAL(pool < mm->nr_pools && off / PAGE < mm->pools[pool].nr_frames);
		CU_ASSERT(pool_frame_used(&mm->pools[pool], off / PAGE));
		dup += seen[pool][off / PAGE]++ != 0;
		used[pool]++;
	}
	CU_ASSERT_EQUAL(dup, 0);
	CU_ASSERT_EQUAL(mm->deferred.frames, 0);
	for (unsigned p = 0; p < mm->nr_pools; p++) {
		CU_ASSERT_EQUAL(mm->pools[p].nr_frames - mm->pools[p].nr_free, used[p]);
		free(seen[p]);
	}
	pthread_mutex_unlock(&mm->lock);
}

/* ---- the expected outcome of a request ---- */

struct plan {
	uint8_t want[MAXP]; /* 1: requested */
	uint64_t pages, runs, pieces;
	uint64_t inplace_pieces, rehome_pieces, rehome_pages;
	uint64_t pages_on[MM_MAX_POOLS];  /* requested pages backed by each pool */
	uint64_t pieces_on[MM_MAX_POOLS]; /* pieces on each pool */
};

static void plan_add(struct plan *pl, gpa_t gpa, uint64_t len)
{
	for (gpa_t g = gpa; g < gpa + len; g += PAGE)
		pl->want[g / PAGE] = 1;
}

/* Runs are the maximal stretches of requested pages; a run splits into pieces where its
 * backing changes pool or stops being contiguous; a piece is re-homed when its pool is not
 * the one its node's policy names (and @rehome_ok: that pool has room). */
static void plan_count(struct plan *pl, uint64_t npages, const struct backing *b, const uint8_t *pp,
		       bool rehome_ok)
{
	pl->pages = pl->runs = pl->pieces = 0;
	pl->inplace_pieces = pl->rehome_pieces = pl->rehome_pages = 0;
	memset(pl->pages_on, 0, sizeof(pl->pages_on));
	memset(pl->pieces_on, 0, sizeof(pl->pieces_on));
	for (uint64_t p = 0; p < npages; p++) {
		bool rehome;

		if (!pl->want[p])
			continue;
		pl->pages++;
		pl->pages_on[b->pool[p]]++;
		rehome = rehome_ok && b->pool[p] != pp[p];
		pl->rehome_pages += rehome;
		if (!p || !pl->want[p - 1]) {
			pl->runs++;
		} else if (b->pool[p] == b->pool[p - 1] && b->off[p] == b->off[p - 1] + PAGE) {
			continue; /* same piece */
		}
		pl->pieces++;
		pl->pieces_on[b->pool[p]]++;
		pl->inplace_pieces += !rehome;
		pl->rehome_pieces += rehome;
	}
}

/* The request as ranges, shuffled, with every range also sent again overlapping. */
static size_t plan_ranges(const struct plan *pl, uint64_t npages, struct mig_range *r, size_t cap,
			  uint64_t *s)
{
	size_t n = 0;

	for (uint64_t p = 0; p < npages && n + 2 <= cap;) {
		uint64_t e = p;

		if (!pl->want[p]) {
			p++;
			continue;
		}
		while (e < npages && pl->want[e])
			e++;
		/* cut the run in two ranges that overlap by a page where possible */
		if (e - p >= 3 && rnd(s) % 2) {
			uint64_t m = p + 1 + rnd(s) % (e - p - 2);

			r[n++] = (struct mig_range){p * PAGE, (m + 1 - p) * PAGE};
			r[n++] = (struct mig_range){m * PAGE, (e - m) * PAGE};
		} else {
			r[n++] = (struct mig_range){p * PAGE, (e - p) * PAGE};
		}
		p = e;
	}
	for (size_t i = n; i > 1; i--) {
		size_t j = rnd(s) % i;
		struct mig_range t = r[i - 1];

		r[i - 1] = r[j];
		r[j] = t;
	}
	return n;
}

/* ---- 1. mm_pfns_to_ranges and mm_ranges_merge against a bitmap ---- */

#define SPAN 4096 /* oracle bitmap: pages (or bytes) from the base */

/* The runs of set bits of @bm as ranges of @unit bytes from @base. */
static size_t oracle_runs(const uint8_t *bm, size_t span, uint64_t base, uint64_t unit,
			  struct mig_range *out)
{
	size_t n = 0;

	for (size_t i = 0; i < span;) {
		size_t e = i;

		if (!bm[i]) {
			i++;
			continue;
		}
		while (e < span && bm[e])
			e++;
		out[n++] = (struct mig_range){base + i * unit, (e - i) * unit};
		i = e;
	}
	return n;
}

static bool same_ranges(const struct mig_range *a, size_t na, const struct mig_range *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (a[i].gpa != b[i].gpa || a[i].len != b[i].len)
			return false;
	return true;
}

static void test_pfns_to_ranges(void)
{
	static const uint64_t bases[] = {0,
					 1,
					 (1ull << 32) - 1000,
					 (1ull << 32) - 1,
					 (1ull << 32) + 3,
					 1ull << 40,
					 (1ull << 52) - 2 * SPAN};
	static uint64_t pfn[3 * SPAN];
	static struct mig_range out[3 * SPAN], want[SPAN];
	static uint8_t bm[SPAN];
	uint64_t s = unit_seed(0xd15ca7d), bad = 0;

	/* empty and single */
	CU_ASSERT_EQUAL(mm_pfns_to_ranges(pfn, 0, out), 0);
	pfn[0] = (1ull << 32) + 5;
	CU_ASSERT_EQUAL(mm_pfns_to_ranges(pfn, 1, out), 1);
	CU_ASSERT_EQUAL(out[0].gpa, ((1ull << 32) + 5) << 12);
	CU_ASSERT_EQUAL(out[0].len, PAGE);
	/* across the 32-bit boundary: one run, not two (no 32-bit arithmetic) */
	pfn[0] = 1ull << 32;
	pfn[1] = (1ull << 32) - 1;
	pfn[2] = (1ull << 32) + 1;
	CU_ASSERT_EQUAL(mm_pfns_to_ranges(pfn, 3, out), 1);
	CU_ASSERT_EQUAL(out[0].gpa, ((1ull << 32) - 1) << 12);
	CU_ASSERT_EQUAL(out[0].len, 3 * PAGE);
	/* far apart in the high bits, equal in the low 32: two runs */
	pfn[0] = 7 + (1ull << 33);
	pfn[1] = 7;
	CU_ASSERT_EQUAL(mm_pfns_to_ranges(pfn, 2, out), 2);
	CU_ASSERT_EQUAL(out[0].gpa, 7 * PAGE);
	CU_ASSERT_EQUAL(out[1].gpa, (7 + (1ull << 33)) * PAGE);

	for (int round = 0; round < 2000 && bad < 5; round++) {
		uint64_t base = bases[rnd(&s) % (sizeof(bases) / sizeof(bases[0]))];
		size_t span = (size_t)(rnd(&s) % 4 == 0 ? 16 : rnd(&s) % 2 ? 300 : SPAN);
		size_t n = 0, target = (size_t)(rnd(&s) % (rnd(&s) % 8 ? 200 : 3 * SPAN - 64));
		size_t k, nw;

		memset(bm, 0, span);
		while (n < target) {
			uint64_t kind = rnd(&s) % 4, off = rnd(&s) % span;

			if (kind == 0 && n) { /* a duplicate */
				pfn[n] = pfn[rnd(&s) % n];
			} else if (kind == 1) { /* an adjacent stretch (shuffled below) */
				uint64_t len = 1 + rnd(&s) % 40;

				for (uint64_t i = 0; i < len && n < target && off + i < span; i++)
					pfn[n++] = base + off + i;
				continue;
			} else {
				pfn[n] = base + off;
			}
			n++;
		}
		for (size_t i = n; i > 1; i--) {
			size_t j = rnd(&s) % i;
			uint64_t t = pfn[i - 1];

			pfn[i - 1] = pfn[j];
			pfn[j] = t;
		}
		for (size_t i = 0; i < n; i++)
			bm[pfn[i] - base] = 1;
		nw = oracle_runs(bm, span, base * PAGE, PAGE, want);
		k = mm_pfns_to_ranges(pfn, n, out);
		if (!same_ranges(out, k, want, nw) && !bad++)
			fprintf(
			    stderr,
			    "\n  round %d: %zu pfns from %#llx: %zu runs, want %zu (seed %#llx)",
			    round, n, (unsigned long long)base, k, nw, (unsigned long long)s);
		/* @pfn is scratch afterwards: nothing to check there */
	}
	CU_ASSERT_EQUAL(bad, 0);
}

static void test_ranges_merge(void)
{
	static const uint64_t bases[] = {0, (1ull << 32) - 8 * PAGE, (1ull << 44) + PAGE,
					 (1ull << 63) - SPAN * PAGE};
	static struct mig_range r[2 * SPAN], want[SPAN];
	static uint8_t bm[SPAN];
	uint64_t s = unit_seed(0x3e26e), bad = 0;
	size_t k;

	CU_ASSERT_EQUAL(mm_ranges_merge(r, 0), 0);
	r[0] = (struct mig_range){5 * PAGE, PAGE};
	CU_ASSERT_EQUAL(mm_ranges_merge(r, 1), 1);
	CU_ASSERT(r[0].gpa == 5 * PAGE && r[0].len == PAGE);
	/* adjacent, given backwards: one */
	r[0] = (struct mig_range){2 * PAGE, PAGE};
	r[1] = (struct mig_range){PAGE, PAGE};
	CU_ASSERT_EQUAL(mm_ranges_merge(r, 2), 1);
	CU_ASSERT(r[0].gpa == PAGE && r[0].len == 2 * PAGE);
	/* one inside another */
	r[0] = (struct mig_range){4 * PAGE, PAGE};
	r[1] = (struct mig_range){0, 10 * PAGE};
	r[2] = (struct mig_range){9 * PAGE, PAGE};
	CU_ASSERT_EQUAL(mm_ranges_merge(r, 3), 1);
	CU_ASSERT(r[0].gpa == 0 && r[0].len == 10 * PAGE);
	/* a gap of one page stays a gap */
	r[0] = (struct mig_range){2 * PAGE, PAGE};
	r[1] = (struct mig_range){0, PAGE};
	k = mm_ranges_merge(r, 2);
	CU_ASSERT_EQUAL(k, 2);

	for (int round = 0; round < 2000 && bad < 5; round++) {
		/* page units near the bases, or byte units (unaligned ranges merge the same) */
		bool bytes = rnd(&s) % 4 == 0;
		uint64_t unit = bytes ? 1 : PAGE;
		uint64_t base = bases[rnd(&s) % (sizeof(bases) / sizeof(bases[0]))];
		size_t span = (size_t)(rnd(&s) % 3 == 0 ? 64 : SPAN);
		size_t n = (size_t)(rnd(&s) % (rnd(&s) % 4 ? 40 : 2 * SPAN)), nw;

		memset(bm, 0, span);
		for (size_t i = 0; i < n; i++) {
			uint64_t kind = rnd(&s) % 4, off, len;

			if (kind == 0 && i) { /* a duplicate */
				r[i] = r[rnd(&s) % i];
				continue;
			}
			if (kind == 1 && i) { /* right after another */
				const struct mig_range *o = &r[rnd(&s) % i];

				off = (o->gpa + o->len - base) / unit;
			} else {
				off = rnd(&s) % span;
			}
			if (off >= span)
				off = span - 1;
			len = 1 + rnd(&s) % (rnd(&s) % 4 ? 8 : 200);
			if (off + len > span)
				len = span - off;
			r[i] = (struct mig_range){base + off * unit, len * unit};
		}
		for (size_t i = 0; i < n; i++)
			for (uint64_t u = 0; u < r[i].len / unit; u++)
				bm[(r[i].gpa - base) / unit + u] = 1;
		nw = oracle_runs(bm, span, base, unit, want);
		k = mm_ranges_merge(r, n);
		if (!same_ranges(r, k, want, nw) && !bad++)
			fprintf(
			    stderr,
			    "\n  round %d: %zu ranges (%s) from %#llx: %zu, want %zu (seed %#llx)",
			    round, n, bytes ? "bytes" : "pages", (unsigned long long)base, k, nw,
			    (unsigned long long)s);
	}
	CU_ASSERT_EQUAL(bad, 0);
}

/* ---- 2. in place, kvm backend ---- */

static bool shmem_thp_off(void)
{
	char buf[256] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "r");

	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = 0;
		fclose(f);
	}
	return !f || strstr(buf, "[never]") || strstr(buf, "[deny]");
}

static void test_inplace(void)
{
	struct mm_config c = two_nodes(8 * MIB);
	struct mm mm;
	static struct backing b0, b1;
	static struct plan pl;
	static uint64_t expect[MAXP];
	static uint8_t pp[MAXP];
	struct mig_range r[256];
	struct discard_result res = {0};
	uint64_t s = unit_seed(0x1a9ace), npages = 16 * MIB / PAGE, res0[2], res1[2], mm0, mp0, tl0;
	uint64_t punch0[2];
	unsigned pi[2];
	size_t n;
	gpa_t again = 10 * MIB; /* written again after the discard, before any read */

	CU_ASSERT_EQUAL_FATAL(create(&mm, &c), 0);
	fill(&mm, 0, c.mem_size, 1);
	for (uint64_t p = 0; p < npages; p++)
		expect[p] = 1;
	snapshot(&mm, &b0);
	policy_pools(&mm, pp);
	for (unsigned i = 0; i < 2; i++)
		pi[i] = (unsigned)mm_pool_get(&mm, i);

	memset(&pl, 0, sizeof(pl));
	for (int i = 0; i < 24; i++) /* scattered pages */
		plan_add(&pl, (rnd(&s) % npages) * PAGE, PAGE);
	plan_add(&pl, 10 * MIB, 2 * MIB);		      /* one 2 MiB block */
	plan_add(&pl, 3 * MIB + 8 * KIB, 2 * MIB + 12 * KIB); /* straddles the 4 MiB edge */
	plan_add(&pl, 8 * MIB - 8 * KIB, 16 * KIB);	      /* across the node (pool) boundary */
	plan_count(&pl, npages, &b0, pp, true);
	CU_ASSERT_EQUAL_FATAL(pl.rehome_pieces, 0);
	n = plan_ranges(&pl, npages, r, 240, &s);
	/* and some overlapping and duplicate ranges on top */
	r[n++] = (struct mig_range){10 * MIB + 1 * MIB, 1 * MIB};
	r[n++] = (struct mig_range){10 * MIB, 2 * MIB};
	r[n++] = (struct mig_range){3 * MIB + 8 * KIB, 4 * KIB};
	r[n++] = (struct mig_range){8 * MIB - 8 * KIB, 16 * KIB};

	for (unsigned i = 0; i < 2; i++) {
		res0[i] = pool_resident_bytes(&mm.pools[pi[i]]);
		punch0[i] = mm.pools[pi[i]].punch_calls;
	}
	mm0 = mm.alias_stats.mmap_calls;
	mp0 = mm.alias_stats.mprotect_calls;
	tl0 = mm.map.stats.tlbi;
	CU_ASSERT_EQUAL_FATAL(mm_discard(&mm, r, n, 0, &res), 0);
	for (unsigned i = 0; i < 2; i++)
		res1[i] = pool_resident_bytes(&mm.pools[pi[i]]);

	CU_ASSERT_EQUAL(res.pages, pl.pages);
	CU_ASSERT_EQUAL(res.runs, pl.runs);
	CU_ASSERT_EQUAL(res.punch_calls, pl.pieces); /* one per piece: runs + 1 (node edge) */
	CU_ASSERT_EQUAL(pl.pieces, pl.runs + 1);
	CU_ASSERT_EQUAL(res.alias_calls, 0);
	CU_ASSERT_EQUAL(res.rehomed, 0);
	CU_ASSERT_EQUAL(res.misplaced, 0);
	CU_ASSERT_EQUAL(res.pinned, 0);
	CU_ASSERT_EQUAL(res.deferred, 0);
	if (res.pages != pl.pages || res.runs != pl.runs || res.punch_calls != pl.pieces)
		fprintf(stderr, "\n  pages %llu/%llu runs %llu/%llu punches %llu/%llu ",
			(unsigned long long)res.pages, (unsigned long long)pl.pages,
			(unsigned long long)res.runs, (unsigned long long)pl.runs,
			(unsigned long long)res.punch_calls, (unsigned long long)pl.pieces);
	/* the counters in struct mm */
	CU_ASSERT_EQUAL(mm.discard.calls, 1);
	CU_ASSERT_EQUAL(mm.discard.pages, pl.pages);
	CU_ASSERT_EQUAL(mm.discard.runs, pl.runs);
	CU_ASSERT_EQUAL(mm.discard.punch_calls, pl.pieces);
	CU_ASSERT_EQUAL(mm.discard.alias_calls, 0);
	CU_ASSERT_EQUAL(mm.discard.failed_pages, 0);
	CU_ASSERT_EQUAL(mm.discard.pending_pages, 0);
	CU_ASSERT_EQUAL(mm_discard_pending(&mm), 0);
	for (unsigned i = 0; i < 2; i++) {
		CU_ASSERT_EQUAL(mm.discard.returned_bytes[pi[i]], pl.pages_on[pi[i]] * PAGE);
		CU_ASSERT_EQUAL(mm.pools[pi[i]].punch_calls - punch0[i], pl.pieces_on[pi[i]]);
	}
	/* the memory went back to the host: every discarded page was resident */
	for (unsigned i = 0; i < 2; i++) {
		uint64_t drop = res0[i] - res1[i], want = pl.pages_on[pi[i]] * PAGE;

		if (shmem_thp_off()) {
			CU_ASSERT_EQUAL(drop, want);
		} else {
			CU_ASSERT(drop <= want);
		}
		if (drop != want)
			fprintf(stderr,
				"\n  pool %u: resident dropped by %llu KiB, discarded %llu KiB ", i,
				(unsigned long long)(drop >> 10), (unsigned long long)(want >> 10));
	}
	/* nothing to invalidate: no alias call, no invalidation, the map unchanged */
	CU_ASSERT_EQUAL(mm.alias_stats.mmap_calls, mm0);
	CU_ASSERT_EQUAL(mm.alias_stats.mprotect_calls, mp0);
	CU_ASSERT_EQUAL(mm.map.stats.tlbi, tl0);
	snapshot(&mm, &b1);
	CU_ASSERT_EQUAL(memcmp(b0.oa, b1.oa, npages * sizeof(b0.oa[0])), 0);
	CU_ASSERT_EQUAL(memcmp(b0.level, b1.level, npages), 0);
	CU_ASSERT_EQUAL(memcmp(b0.perm, b1.perm, npages), 0);
	CU_ASSERT_EQUAL(memcmp(b0.off, b1.off, npages * sizeof(b0.off[0])), 0);

	/* a discarded page written again: backed again (one page), on the same frame */
	CU_ASSERT_FATAL(pl.want[again / PAGE]);
	res0[1] = pool_resident_bytes(&mm.pools[pi[1]]);
	CU_ASSERT_EQUAL(put_page(&mm, again, 2), 0);
	if (shmem_thp_off())
		CU_ASSERT_EQUAL(pool_resident_bytes(&mm.pools[pi[1]]) - res0[1], PAGE);
	CU_ASSERT_EQUAL(mm_gpa_node(&mm, again), 1);

	for (uint64_t p = 0; p < npages; p++)
		expect[p] = pl.want[p] ? ZERO : 1;
	expect[again / PAGE] = 2;
	verify(&mm, expect, "in place");
	check_backing(&mm);
	mm_destroy(&mm);
}

/* ---- 3. re-homed, kvm backend ---- */

enum rehome_case { REHOME, REHOME_WARM, REHOME_LAZY, POOL_FULL };

static void rehome(enum rehome_case kind)
{
	struct mm_config c = two_nodes(8 * MIB);
	struct mm mm;
	static struct backing b0, b1;
	static struct plan pl;
	static uint64_t expect[MAXP];
	static uint8_t pp[MAXP];
	struct mig_range r[128], moved = {2 * MIB, 4 * MIB};
	struct mig_result mres = {0};
	struct discard_result res = {0};
	uint64_t s = unit_seed(0x4e403e), npages = 16 * MIB / PAGE, mm0, mp0, punched1, res1;
	unsigned p0, p1;
	size_t n;

	c.mig.keep_freed = kind == REHOME_WARM;
	c.mig.lazy_writable = kind == REHOME_LAZY; /* moved pages stay read-only (FRAME_WP) */
	if (kind == POOL_FULL)
		c.caps[0].bytes = 8 * MIB; /* exactly guest node 0 */
	CU_ASSERT_EQUAL_FATAL(create(&mm, &c), 0);
	p0 = (unsigned)mm_pool_get(&mm, 0);
	p1 = (unsigned)mm_pool_get(&mm, 1);
	fill(&mm, 0, c.mem_size, 1);
	for (uint64_t p = 0; p < npages; p++)
		expect[p] = 1;
	CU_ASSERT_EQUAL_FATAL(mm_migrate(&mm, &moved, 1, 1, &mres), 0);
	CU_ASSERT_EQUAL_FATAL(mres.pages, moved.len / PAGE);
	pthread_mutex_lock(&mm.lock);
	mm_flush_and_free(&mm); /* node 0's old frames are free now (warm or punched) */
	pthread_mutex_unlock(&mm.lock);
	if (kind == POOL_FULL) {
		/* fill pool 0 with part of guest node 1 */
		struct mig_range g1 = {8 * MIB, 4 * MIB};

		CU_ASSERT_EQUAL_FATAL(mm_migrate(&mm, &g1, 1, 0, &mres), 0);
		CU_ASSERT_EQUAL_FATAL(mres.pages, g1.len / PAGE);
		CU_ASSERT_EQUAL_FATAL(mm.pools[p0].nr_free, 0);
		pthread_mutex_lock(&mm.lock);
		mm_flush_and_free(&mm); /* pool 1's old frames: freed before the count below */
		pthread_mutex_unlock(&mm.lock);
	}
	CU_ASSERT_EQUAL(leaf_size_at(&mm, 2 * MIB), 2 * MIB); /* moved as blocks */
	snapshot(&mm, &b0);
	policy_pools(&mm, pp);

	memset(&pl, 0, sizeof(pl));
	plan_add(&pl, 2 * MIB, 2 * MIB); /* one whole block on the wrong pool */
	plan_add(&pl, 4 * MIB, PAGE);	 /* and one page more: a 513-page piece, one mmap */
	for (int i = 0; i < 12; i++)	 /* scattered in the other moved block */
		plan_add(&pl, 4 * MIB + (rnd(&s) % 512) * PAGE, PAGE);
	plan_add(&pl, 6 * MIB - 16 * KIB, 32 * KIB); /* half moved, half in place */
	plan_add(&pl, 1 * MIB, 64 * KIB);	     /* in place */
	plan_count(&pl, npages, &b0, pp, kind != POOL_FULL);
	n = plan_ranges(&pl, npages, r, 120, &s);
	r[n++] = (struct mig_range){2 * MIB + 1 * MIB, 1 * MIB}; /* a duplicate part */

	mm0 = mm.alias_stats.mmap_calls;
	mp0 = mm.alias_stats.mprotect_calls;
	punched1 = mm.pools[p1].punched_frames;
	res1 = pool_resident_bytes(&mm.pools[p1]);
	CU_ASSERT_EQUAL_FATAL(mm_discard(&mm, r, n, 0, &res), 0);
	CU_ASSERT_EQUAL(res.pages, pl.pages);
	CU_ASSERT_EQUAL(res.runs, pl.runs);
	CU_ASSERT_EQUAL(res.pinned, 0);
	if (kind == POOL_FULL) {
		/* nowhere to go: punched where they are, on pool 1 */
		uint64_t moved_pages = 0;

		for (uint64_t p = 0; p < npages; p++)
			moved_pages += pl.want[p] && b0.pool[p] != pp[p];
		CU_ASSERT_EQUAL(res.rehomed, 0);
		CU_ASSERT_EQUAL(res.misplaced, moved_pages);
		CU_ASSERT_EQUAL(mm.discard.misplaced, moved_pages);
		CU_ASSERT_EQUAL(res.alias_calls, 0);
		CU_ASSERT_EQUAL(res.punch_calls, pl.pieces);
		CU_ASSERT_EQUAL(mm.pools[p1].punched_frames - punched1, moved_pages);
		if (shmem_thp_off())
			CU_ASSERT_EQUAL(res1 - pool_resident_bytes(&mm.pools[p1]),
					moved_pages * PAGE);
		snapshot(&mm, &b1);
		CU_ASSERT_EQUAL(memcmp(b0.oa, b1.oa, npages * sizeof(b0.oa[0])), 0);
	} else {
		CU_ASSERT(pl.rehome_pages > 512 && pl.rehome_pieces >= 3);
		CU_ASSERT_EQUAL(res.rehomed, pl.rehome_pages);
		CU_ASSERT_EQUAL(mm.discard.rehomed, pl.rehome_pages);
		CU_ASSERT_EQUAL(res.misplaced, 0);
		/* one alias mmap per re-homed piece, at most; nothing write-protected */
		CU_ASSERT(res.alias_calls >= 1 && res.alias_calls <= pl.rehome_pieces);
		CU_ASSERT(res.alias_calls <= res.runs);
		CU_ASSERT_EQUAL(mm.alias_stats.mmap_calls - mm0, res.alias_calls);
		CU_ASSERT_EQUAL(mm.alias_stats.mprotect_calls, mp0);
		/* one punch per in-place piece; at most two host calls per piece */
		CU_ASSERT(res.punch_calls >= pl.inplace_pieces);
		CU_ASSERT(res.punch_calls + res.alias_calls <= 2 * pl.pieces);
		if (res.alias_calls > pl.rehome_pieces || res.punch_calls < pl.inplace_pieces)
			fprintf(stderr, "\n  alias %llu (pieces %llu), punch %llu (in place %llu) ",
				(unsigned long long)res.alias_calls,
				(unsigned long long)pl.rehome_pieces,
				(unsigned long long)res.punch_calls,
				(unsigned long long)pl.inplace_pieces);
		/* on the policy's pool now; the whole block stays one 2 MiB leaf */
		for (uint64_t p = 0; p < npages; p++) {
			unsigned pool;
			uint64_t off;

			if (!pl.want[p] || b0.pool[p] == pp[p])
				continue;
			CU_ASSERT_EQUAL(mm_gpa_backing(&mm, p * PAGE, &pool, &off), 0);
			CU_ASSERT_EQUAL(pool, pp[p]);
			if (mm_gpa_node(&mm, p * PAGE) != 0) {
				CU_FAIL("a re-homed page is not on its policy's node");
				break;
			}
		}
		CU_ASSERT_EQUAL(leaf_size_at(&mm, 2 * MIB), 2 * MIB);
		/* the old frames: held behind the generation, then freed and punched */
		pthread_mutex_lock(&mm.lock);
		mm_flush_and_free(&mm);
		for (uint64_t p = 0; p < npages; p++)
			if (pl.want[p] && b0.pool[p] != pp[p] &&
			    pool_frame_used(&mm.pools[p1], b0.off[p] / PAGE)) {
				CU_FAIL("an old frame of a re-homed page was not freed");
				break;
			}
		if (kind != REHOME_WARM)
			CU_ASSERT(mm.pools[p1].punched_frames - punched1 >= pl.rehome_pages);
		pthread_mutex_unlock(&mm.lock);
		/* discarded pages migrated onto pool 1 (warm freed frames there if kept):
		 * holes stay holes, and read zero */
		res1 = pool_resident_bytes(&mm.pools[p1]);
		CU_ASSERT_EQUAL(
		    mm_migrate(&mm, &(struct mig_range){1 * MIB, 64 * KIB}, 1, 1, &mres), 0);
		CU_ASSERT_EQUAL(mres.pages, 16);
		CU_ASSERT(pool_resident_bytes(&mm.pools[p1]) <= res1);
	}
	/* the pages not discarded keep their data, moved ones too */
	for (uint64_t p = 0; p < npages; p++)
		expect[p] = pl.want[p] ? ZERO : 1;
	verify(&mm, expect,
	       kind == REHOME_WARM   ? "re-homed (warm)"
	       : kind == REHOME_LAZY ? "re-homed (lazy)"
				     : "re-homed");
	/* a re-homed page takes writes where the guest sees them */
	CU_ASSERT_EQUAL(put_page(&mm, 2 * MIB + 5 * PAGE, 3), 0);
	expect[(2 * MIB) / PAGE + 5] = 3;
	verify(&mm, expect, "written after");
	check_backing(&mm);
	mm_destroy(&mm);
}

static void test_rehome(void)
{
	rehome(REHOME);
}

/* Migration's freed frames kept warm (old data in them): fresh frames still read zero. */
static void test_rehome_warm(void)
{
	rehome(REHOME_WARM);
}

/* Lazily migrated pages (read-only, FRAME_WP) re-homed: still readable, then writable. */
static void test_rehome_lazy(void)
{
	rehome(REHOME_LAZY);
}

static void test_rehome_pool_full(void)
{
	rehome(POOL_FULL);
}

/*
 * Which pool a policy names: `preferred` allows its fallbacks (in place there);
 * `interleave` names a pool per 2 MiB (re-homed to that one).
 */
static void test_policies(void)
{
	struct mm_config c = {.mem_size = 8 * MIB, .nr_nodes = 2, .nr_caps = 2};
	struct mm mm;
	struct mig_result mres;
	struct discard_result res = {0};
	static uint64_t expect[MAXP];
	struct mig_range r[] = {{0, 1 * MIB}, {4 * MIB, 4 * MIB}};

	c.nodes[0] = (struct mm_guest_node){.id = 0,
					    .size = 4 * MIB,
					    .host = 0,
					    .policy = MM_POLICY_PREFERRED,
					    .nr_hosts = 1,
					    .hosts = {1}};
	c.nodes[1] = (struct mm_guest_node){.id = 1,
					    .size = 4 * MIB,
					    .policy = MM_POLICY_INTERLEAVE,
					    .nr_hosts = 2,
					    .hosts = {0, 1}};
	for (unsigned i = 0; i < 2; i++)
		c.caps[i] = (struct mm_pool_cap){.node = i, .bytes = 64 * MIB};
	CU_ASSERT_EQUAL_FATAL(create(&mm, &c), 0);
	fill(&mm, 0, c.mem_size, 1);
	for (uint64_t p = 0; p < c.mem_size / PAGE; p++)
		expect[p] = 1;
	CU_ASSERT_EQUAL(mm_gpa_node(&mm, 4 * MIB), 0);
	CU_ASSERT_EQUAL(mm_gpa_node(&mm, 6 * MIB), 1);
	CU_ASSERT_EQUAL_FATAL(mm_migrate(&mm, &(struct mig_range){0, 2 * MIB}, 1, 1, &mres), 0);
	CU_ASSERT_EQUAL_FATAL(mm_migrate(&mm, &(struct mig_range){4 * MIB, 4 * MIB}, 1, 1, &mres),
			      0);
	CU_ASSERT_EQUAL(mm_gpa_node(&mm, 4 * MIB), 1);
	CU_ASSERT_EQUAL_FATAL(mm_discard(&mm, r, 2, 0, &res), 0);
	CU_ASSERT_EQUAL(res.pages, 256 + 1024);
	CU_ASSERT_EQUAL(res.rehomed, 512);	       /* [4, 6) MiB only */
	CU_ASSERT_EQUAL(mm_gpa_node(&mm, 0), 1);       /* preferred's fallback: in place */
	CU_ASSERT_EQUAL(mm_gpa_node(&mm, 4 * MIB), 0); /* interleave: back to its pool */
	CU_ASSERT_EQUAL(mm_gpa_node(&mm, 6 * MIB - PAGE), 0);
	CU_ASSERT_EQUAL(mm_gpa_node(&mm, 6 * MIB), 1);
	for (uint64_t p = 0; p < 1 * MIB / PAGE; p++)
		expect[p] = ZERO;
	for (uint64_t p = 4 * MIB / PAGE; p < 8 * MIB / PAGE; p++)
		expect[p] = ZERO;
	verify(&mm, expect, "policies");
	check_backing(&mm);
	mm_destroy(&mm);
}

/* The host refuses the punch: counted as failed, the pages stay resident. */
static void test_punch_refused(void)
{
	struct mm_config c = two_nodes(4 * MIB);
	struct mm mm;
	struct discard_result res = {0};
	uint64_t res0, ret0;
	unsigned p0;

	CU_ASSERT_EQUAL_FATAL(create(&mm, &c), 0);
	p0 = (unsigned)mm_pool_get(&mm, 0);
	fill(&mm, 0, 4 * MIB, 1);
	res0 = pool_resident_bytes(&mm.pools[p0]);
	ret0 = mm.discard.returned_bytes[p0];
	mm.cfg.inject.per_million[MM_CALL_FALLOCATE] = 1000000;
	CU_ASSERT_EQUAL(mm_discard(&mm, &(struct mig_range){1 * MIB, 64 * KIB}, 1, 0, &res), 0);
	mm.cfg.inject.per_million[MM_CALL_FALLOCATE] = 0;
	CU_ASSERT(mm.injected[MM_CALL_FALLOCATE] >= 1);
	CU_ASSERT_EQUAL(mm.discard.failed_pages, 16);
	CU_ASSERT_EQUAL(res.punch_calls, 0);
	CU_ASSERT_EQUAL(mm.discard.returned_bytes[p0], ret0);
	CU_ASSERT_EQUAL(pool_resident_bytes(&mm.pools[p0]), res0);
	CU_ASSERT_EQUAL(mm_gpa_node(&mm, 1 * MIB), 0);
	if (res.pages)
		fprintf(stderr, "\n  (res.pages counts the %llu refused pages as discarded) ",
			(unsigned long long)res.pages);
	mm_destroy(&mm);
}

/* ---- 4. sim backend ---- */

#define SIM_POOL_FRAMES (64 * MIB / PAGE)
#define SIM_AGENTS	4 /* three vCPUs and a device */
#define SIM_DEV		(SIM_AGENTS - 1)

struct senv {
	struct s2_sim sim;
	struct mm mm;
	uint64_t rng;
};

static uint64_t sim_frame_index(void *ctx, hpa_t pa)
{
	uint64_t pool = pa >> MM_POOL_SHIFT, f = (pa & ((1ull << MM_POOL_SHIFT) - 1)) >> 12;

	(void)ctx;
	return pool < 4 && f < SIM_POOL_FRAMES ? pool * SIM_POOL_FRAMES + f : UINT64_MAX;
}

/* Copy for real (so data can be checked) and tell the model. */
static int sim_copy(void *ctx, struct mm *mm, unsigned sp, uint64_t sf, unsigned dp, uint64_t df,
		    uint64_t n)
{
	struct senv *e = ctx;

	memcpy(mm->pools[dp].base + df * PAGE, mm->pools[sp].base + sf * PAGE, n * PAGE);
	s2_sim_frame_alloc(&e->sim, mm_pa(dp, df), n * PAGE);
	s2_sim_frame_copy(&e->sim, mm_pa(dp, df), mm_pa(sp, sf), n * PAGE);
	return 0;
}

static void sim_free(void *ctx, struct mm *mm, unsigned pool, uint64_t first, uint64_t n)
{
	struct senv *e = ctx;

	(void)mm;
	s2_sim_frame_free(&e->sim, mm_pa(pool, first), n * PAGE);
}

static void senv_init(struct senv *e, const struct s2_format *fmt)
{
	struct mm_config c = {.mem_size = 32 * MIB,
			      .nr_nodes = 1,
			      .fmt = fmt,
			      .be = &s2_sim_ops,
			      .copy = sim_copy,
			      .on_free = sim_free,
			      .nr_caps = 2};

	memset(e, 0, sizeof(*e));
	e->rng = unit_seed(0x5171d15c);
	c.nodes[0] = (struct mm_guest_node){.id = 0, .size = 32 * MIB, .host = 0};
	for (unsigned i = 0; i < 2; i++)
		c.caps[i] = (struct mm_pool_cap){.node = i, .bytes = 64 * MIB};
	c.be_ctx = &e->sim;
	c.copy_ctx = e;
	CU_ASSERT_EQUAL_FATAL(s2_sim_init(&e->sim, SIM_AGENTS, 4 * SIM_POOL_FRAMES, 0), 0);
	e->sim.frame_index = sim_frame_index;
	s2_sim_agent_set_device(&e->sim, SIM_DEV, true);
	CU_ASSERT_EQUAL_FATAL(create(&e->mm, &c), 0);
	s2_sim_attach(&e->sim, &e->mm.map);
	for (unsigned p = 0; p < 4; p++)
		s2_sim_frame_alloc(&e->sim, mm_pa(p, 0), SIM_POOL_FRAMES * PAGE);
}

/* A vCPU access; a write the map refuses takes the write-fault path. */
static void vcpu_access(struct senv *e, gpa_t g, bool write)
{
	unsigned agent = (unsigned)(rnd(&e->rng) % (SIM_AGENTS - 1));
	int r;

	pthread_mutex_lock(&e->mm.lock);
	r = s2_sim_access(&e->sim, agent, g, write);
	if (r == -EACCES && write) {
		CU_ASSERT_EQUAL(mm_handle_write_fault_locked(&e->mm, g), 0);
		r = s2_sim_access(&e->sim, agent, g, true);
	}
	pthread_mutex_unlock(&e->mm.lock);
	CU_ASSERT_EQUAL(r, 0);
}

static void vcpus_everywhere(struct senv *e, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		vcpu_access(e, (rnd(&e->rng) % (e->mm.cfg.mem_size / PAGE)) * PAGE,
			    rnd(&e->rng) % 4 == 0);
}

static unsigned valid_entries(const struct s2_sim *s, gpa_t gpa, uint64_t len)
{
	unsigned n = 0;

	for (unsigned a = 0; a < s->nr_agents; a++)
		for (unsigned j = 0; j < SIM_TLB_ENTRIES; j++) {
			const struct sim_tlbe *t = &s->agents[a].e[j];

			n += t->valid && t->base < gpa + len && gpa < t->base + t->size;
		}
	return n;
}

/* The discard took fresh frames (holes): the model learns of them here, as the copy hook
 * tells it of a migration's destinations. Each must be a used frame nothing else maps. */
static void sim_fresh(struct senv *e, const struct backing *before, gpa_t gpa, uint64_t len)
{
	for (gpa_t g = gpa; g < gpa + len; g += PAGE) {
		unsigned pool;
		uint64_t off;

		CU_ASSERT_EQUAL_FATAL(mm_gpa_backing(&e->mm, g, &pool, &off), 0);
		if (pool == before->pool[g / PAGE] && off == before->off[g / PAGE])
			continue;
		CU_ASSERT(pool_frame_used(&e->mm.pools[pool], off / PAGE));
		s2_sim_frame_alloc(&e->sim, mm_pa(pool, off / PAGE), PAGE);
	}
}

static void sim_case(const struct s2_format *fmt)
{
	static struct senv e;
	static struct backing b0, b1;
	static struct plan pl;
	static uint64_t expect[MAXP];
	static uint8_t pp[MAXP];
	struct mm_dma_holder h;
	struct mig_result mres;
	struct discard_result res;
	const uint64_t npages = 32 * MIB / PAGE;
	uint64_t t0, cached, pieces;
	unsigned p0, p1;

	senv_init(&e, fmt);
	p0 = (unsigned)mm_pool_get(&e.mm, 0);
	fill(&e.mm, 0, e.mm.cfg.mem_size, 1);
	for (uint64_t p = 0; p < npages; p++)
		expect[p] = 1;
	/* [8, 16) MiB to pool 1 as blocks; [16, 18) MiB to pool 1, then its first page back
	 * (split: 4 KiB leaves); [24, 26) MiB split on pool 0 (one page out and back) */
	CU_ASSERT_EQUAL_FATAL(mm_migrate(&e.mm, &(struct mig_range){8 * MIB, 8 * MIB}, 1, 1, &mres),
			      0);
	CU_ASSERT_EQUAL_FATAL(
	    mm_migrate(&e.mm, &(struct mig_range){16 * MIB, 2 * MIB}, 1, 1, &mres), 0);
	CU_ASSERT_EQUAL_FATAL(mm_migrate(&e.mm, &(struct mig_range){16 * MIB, PAGE}, 1, 0, &mres),
			      0);
	CU_ASSERT_EQUAL_FATAL(
	    mm_migrate(&e.mm, &(struct mig_range){24 * MIB + PAGE, PAGE}, 1, 1, &mres), 0);
	CU_ASSERT_EQUAL_FATAL(
	    mm_migrate(&e.mm, &(struct mig_range){24 * MIB + PAGE, PAGE}, 1, 0, &mres), 0);
	p1 = (unsigned)mm_pool_get(&e.mm, 1);
	pthread_mutex_lock(&e.mm.lock);
	mm_flush_and_free(&e.mm);
	pthread_mutex_unlock(&e.mm.lock);
	CU_ASSERT_EQUAL(leaf_size_at(&e.mm, 8 * MIB), 2 * MIB);
	CU_ASSERT_EQUAL(leaf_size_at(&e.mm, 16 * MIB + 8 * PAGE), PAGE);
	CU_ASSERT_EQUAL(leaf_size_at(&e.mm, 24 * MIB + 8 * PAGE), PAGE);
	CU_ASSERT_EQUAL(leaf_size_at(&e.mm, 0), 2 * MIB);
	policy_pools(&e.mm, pp);

	/* a device caches [8, 16) MiB in its IOTLB (four 2 MiB entries) */
	CU_ASSERT_EQUAL_FATAL(mm_dma_holder_init(&e.mm, &h, "sim-device", NULL, NULL), 0);
	mm_dma_busy(&h);
	mm_dma_quiesce(&h);
	for (gpa_t g = 8 * MIB; g < 16 * MIB; g += 64 * KIB)
		CU_ASSERT_EQUAL(s2_sim_access(&e.sim, SIM_DEV, g, false), 0);
	vcpus_everywhere(&e, 400);

	/* A: in place, a block, part of a block, and a split run in three pieces */
	snapshot(&e.mm, &b0);
	memset(&pl, 0, sizeof(pl));
	plan_add(&pl, 0, 2 * MIB);
	plan_add(&pl, 20 * MIB + 8 * KIB, 32 * KIB);
	plan_add(&pl, 24 * MIB, 64 * KIB);
	plan_count(&pl, npages, &b0, pp, true);
	CU_ASSERT_EQUAL(pl.runs, 3);
	CU_ASSERT_EQUAL(pl.pieces, 5);
	CU_ASSERT_EQUAL(pl.rehome_pieces, 0);
	for (gpa_t g = 0; g < 2 * MIB; g += 256 * KIB) /* cached by every vCPU */
		for (unsigned a = 0; a < SIM_AGENTS - 1; a++)
			CU_ASSERT_EQUAL(s2_sim_access(&e.sim, a, g, false), 0);
	for (unsigned a = 0; a < SIM_AGENTS - 1; a++)
		CU_ASSERT_EQUAL(s2_sim_access(&e.sim, a, 24 * MIB + 2 * PAGE, false), 0);
	cached = valid_entries(&e.sim, 0, 32 * MIB);
	t0 = e.sim.tlbi_calls;
	memset(&res, 0, sizeof(res));
	{
		struct mig_range r[] = {{24 * MIB, 64 * KIB},
					{20 * MIB + 8 * KIB, 32 * KIB},
					{0, 2 * MIB},
					{1 * MIB, 4 * KIB}};

		CU_ASSERT_EQUAL_FATAL(mm_discard(&e.mm, r, 4, 0, &res), 0);
	}
	CU_ASSERT_EQUAL(res.pages, pl.pages);
	CU_ASSERT_EQUAL(res.runs, 3);
	CU_ASSERT_EQUAL(res.rehomed, 0);
	CU_ASSERT_EQUAL(e.sim.tlbi_calls, t0);			     /* nothing to invalidate */
	CU_ASSERT_EQUAL(valid_entries(&e.sim, 0, 32 * MIB), cached); /* all still valid */
	snapshot(&e.mm, &b1);
	CU_ASSERT_EQUAL(memcmp(b0.oa, b1.oa, npages * sizeof(b0.oa[0])), 0);
	CU_ASSERT_EQUAL(memcmp(b0.level, b1.level, npages), 0);
	for (uint64_t p = 0; p < npages; p++)
		if (pl.want[p])
			expect[p] = ZERO;
	vcpus_everywhere(&e, 400);

	/* B: re-homed, 8 MiB of 2 MiB blocks on pool 1 in one contiguous piece */
	snapshot(&e.mm, &b0);
	memset(&pl, 0, sizeof(pl));
	plan_add(&pl, 8 * MIB, 8 * MIB);
	plan_count(&pl, npages, &b0, pp, true);
	pieces = pl.rehome_pieces;
	CU_ASSERT_EQUAL(pl.runs, 1);
	for (gpa_t g = 8 * MIB; g < 16 * MIB; g += 2 * MIB) /* vCPUs cache it too */
		for (unsigned a = 0; a < SIM_AGENTS - 1; a++)
			CU_ASSERT_EQUAL(s2_sim_access(&e.sim, a, g + a * PAGE, a == 0), 0);
	t0 = e.sim.tlbi_calls;
	memset(&res, 0, sizeof(res));
	CU_ASSERT_EQUAL_FATAL(mm_discard(&e.mm, &(struct mig_range){8 * MIB, 8 * MIB}, 1, 0, &res),
			      0);
	CU_ASSERT_EQUAL(res.pages, 2048);
	CU_ASSERT_EQUAL(res.runs, 1);
	CU_ASSERT_EQUAL(res.rehomed, 2048);
	CU_ASSERT_EQUAL(pieces, 1);
	CU_ASSERT_EQUAL(e.sim.tlbi_calls - t0, pieces); /* one per piece, not per block/page */
	if (e.sim.tlbi_calls - t0 != pieces)
		fprintf(stderr,
			"\n  %s: re-homing 8 MiB of blocks (%llu piece): %llu invalidations ",
			fmt->name, (unsigned long long)pieces,
			(unsigned long long)(e.sim.tlbi_calls - t0));
	CU_ASSERT_EQUAL(valid_entries(&e.sim, 8 * MIB, 8 * MIB), 4); /* the device's, stale */
	for (gpa_t g = 8 * MIB; g < 16 * MIB; g += 2 * MIB) {
		unsigned pool;
		uint64_t off;

		CU_ASSERT_EQUAL(leaf_size_at(&e.mm, g), 2 * MIB); /* replaced whole */
		CU_ASSERT_EQUAL(mm_gpa_backing(&e.mm, g, &pool, &off), 0);
		CU_ASSERT_EQUAL(pool, p0);
	}
	sim_fresh(&e, &b0, 8 * MIB, 8 * MIB);
	/* the old frames wait for the device: its stale IOTLB reaches live frames */
	pthread_mutex_lock(&e.mm.lock);
	mm_flush_and_free(&e.mm);
	pthread_mutex_unlock(&e.mm.lock);
	CU_ASSERT(e.mm.deferred.frames >= 2048);
	for (gpa_t g = 8 * MIB; g < 16 * MIB; g += 64 * KIB)
		CU_ASSERT_EQUAL(s2_sim_access(&e.sim, SIM_DEV, g, false), 0);
	CU_ASSERT_EQUAL(e.sim.violations[SIM_UAF], 0);
	CU_ASSERT(pool_frame_used(&e.mm.pools[p1], b0.off[8 * MIB / PAGE] / PAGE));
	/* its quiescent point: now they go */
	s2_sim_agent_flush(&e.sim, SIM_DEV);
	mm_dma_quiesce(&h);
	pthread_mutex_lock(&e.mm.lock);
	mm_flush_and_free(&e.mm);
	pthread_mutex_unlock(&e.mm.lock);
	CU_ASSERT_EQUAL(e.mm.deferred.frames, 0);
	CU_ASSERT(e.sim.freed[sim_frame_index(NULL, mm_pa(p1, b0.off[8 * MIB / PAGE] / PAGE))]);
	CU_ASSERT_FALSE(pool_frame_used(&e.mm.pools[p1], b0.off[8 * MIB / PAGE] / PAGE));
	for (gpa_t g = 8 * MIB; g < 16 * MIB; g += 64 * KIB)
		CU_ASSERT_EQUAL(s2_sim_access(&e.sim, SIM_DEV, g, false), 0);
	for (uint64_t p = 8 * MIB / PAGE; p < 16 * MIB / PAGE; p++)
		expect[p] = ZERO;
	vcpus_everywhere(&e, 400);

	/* C: re-homed, a split run (511 4 KiB leaves on pool 1, contiguous frames) */
	snapshot(&e.mm, &b0);
	memset(&pl, 0, sizeof(pl));
	plan_add(&pl, 16 * MIB + PAGE, 2 * MIB - PAGE);
	plan_count(&pl, npages, &b0, pp, true);
	pieces = pl.rehome_pieces;
	CU_ASSERT_EQUAL(pl.runs, 1);
	for (gpa_t g = 16 * MIB; g < 18 * MIB; g += 64 * KIB)
		vcpu_access(&e, g, true);
	t0 = e.sim.tlbi_calls;
	memset(&res, 0, sizeof(res));
	CU_ASSERT_EQUAL_FATAL(
	    mm_discard(&e.mm, &(struct mig_range){16 * MIB + PAGE, 2 * MIB - PAGE}, 1, 0, &res), 0);
	CU_ASSERT_EQUAL(res.pages, 511);
	CU_ASSERT_EQUAL(res.rehomed, 511);
	CU_ASSERT_EQUAL(e.sim.tlbi_calls - t0, pieces);
	if (e.sim.tlbi_calls - t0 != pieces)
		fprintf(stderr,
			"\n  %s: re-homing 511 split pages (%llu piece): %llu invalidations ",
			fmt->name, (unsigned long long)pieces,
			(unsigned long long)(e.sim.tlbi_calls - t0));
	CU_ASSERT_EQUAL(mm_gpa_node(&e.mm, 16 * MIB + 9 * PAGE), 0);
	sim_fresh(&e, &b0, 16 * MIB + PAGE, 2 * MIB - PAGE);
	for (uint64_t p = 16 * MIB / PAGE + 1; p < 18 * MIB / PAGE; p++)
		expect[p] = ZERO;
	vcpus_everywhere(&e, 800);
	for (gpa_t g = 15 * MIB; g < 19 * MIB; g += 16 * KIB) /* around the discarded runs */
		vcpu_access(&e, g, rnd(&e.rng) & 1);

	if (s2_sim_violations(&e.sim))
		fprintf(stderr, "\n  %s: %s ", fmt->name, e.sim.last);
	CU_ASSERT_EQUAL(s2_sim_violations(&e.sim), 0);
	/* data: the pages not discarded kept theirs (discarded ones: not checked in the sim,
	 * whose writes are tokens only) */
	{
		uint64_t w[WORDS], bad = 0;

		for (uint64_t p = 0; p < npages; p++) {
			if (expect[p] == ZERO)
				continue;
			CU_ASSERT_EQUAL_FATAL(mm_guest_read(&e.mm, p * PAGE, w, PAGE), 0);
			bad += !page_is(w, p * PAGE, expect[p]);
		}
		CU_ASSERT_EQUAL(bad, 0);
	}
	mm_dma_idle(&h);
	check_backing(&e.mm);
	mm_dma_holder_destroy(&h);
	mm_destroy(&e.mm);
	s2_sim_destroy(&e.sim);
}

static void test_sim_ept(void)
{
	sim_case(&s2_format_ept);
}

static void test_sim_arm64(void)
{
	sim_case(&s2_format_arm64);
}

/* ---- 5. pins ---- */

struct transient {
	struct mm *mm;
	struct mm_dma_holder *h;
	gpa_t gpa;
	bool held;
	unsigned drains;
};

static void drain_cb(void *ctx)
{
	struct transient *t = ctx;

	t->drains++;
	if (t->held) {
		mm_dma_unmap(t->mm, t->h, t->gpa, PAGE);
		t->held = false;
	}
	mm_dma_quiesce(t->h);
}

static uint64_t *pin_expect;

static void expect_range(gpa_t gpa, uint64_t len, uint64_t seq)
{
	for (gpa_t g = gpa; g < gpa + len; g += PAGE)
		pin_expect[g / PAGE] = seq;
}

static void test_pins(void)
{
	struct mm_config c = two_nodes(8 * MIB);
	struct mm mm;
	struct mm_dma_holder h, h2;
	struct iovec iov[4];
	struct discard_result res;
	struct mig_result mres;
	struct transient t = {0};
	static uint64_t expect[MAXP];
	struct frame *f;
	uint64_t npages = 16 * MIB / PAGE;

	pin_expect = expect;
	CU_ASSERT_EQUAL_FATAL(create(&mm, &c), 0);
	fill(&mm, 0, c.mem_size, 1);
	expect_range(0, c.mem_size, 1);
	CU_ASSERT_EQUAL_FATAL(mm_dma_holder_init(&mm, &h, "pin-queue", NULL, NULL), 0);
	mm_dma_busy(&h);

	/* a. one pinned page holds its whole huge frame; the next chunk goes */
	CU_ASSERT_EQUAL(leaf_size_at(&mm, 0), 2 * MIB);
	CU_ASSERT_EQUAL_FATAL(
	    mm_dma_map(&mm, &h, 1 * MIB + 5 * PAGE, PAGE, MM_DMA_TO_DEVICE, iov, 4), 1);
	memset(&res, 0, sizeof(res));
	{
		struct mig_range r[] = {{1536 * KIB, 256 * KIB}, {2 * MIB, 64 * KIB}};

		CU_ASSERT_EQUAL(mm_discard(&mm, r, 2, 0, &res), 0);
	}
	CU_ASSERT_EQUAL(res.pinned, 64);
	CU_ASSERT_EQUAL(res.deferred, 0);
	CU_ASSERT_EQUAL(res.pages, 16);
	CU_ASSERT_EQUAL(mm.discard.pinned_skipped, 64);
	CU_ASSERT_EQUAL(mm_discard_pending(&mm), 0);
	expect_range(2 * MIB, 64 * KIB, ZERO);

	/* b. deferred: queued while pinned, discarded by the retry after the unpin */
	memset(&res, 0, sizeof(res));
	CU_ASSERT_EQUAL(mm_discard(&mm, &(struct mig_range){1536 * KIB, 256 * KIB}, 1,
				   MM_DISCARD_DEFER_PINNED, &res),
			0);
	CU_ASSERT_EQUAL(res.pinned, 64);
	CU_ASSERT_EQUAL(res.deferred, 64);
	CU_ASSERT_EQUAL(res.pages, 0);
	CU_ASSERT_EQUAL(mm_discard_pending(&mm), 64);
	CU_ASSERT_EQUAL(mm.discard.pending_pages, 64);
	CU_ASSERT_EQUAL(mm.discard.pinned_deferred, 64);
	verify(&mm, expect, "deferred, still pinned");
	memset(&res, 0, sizeof(res));
	CU_ASSERT_EQUAL(mm_discard_retry(&mm, &res), 0); /* still pinned: stays queued */
	CU_ASSERT_EQUAL(res.pages, 0);
	CU_ASSERT_EQUAL(mm_discard_pending(&mm), 64);
	mm_dma_unmap(&mm, &h, 1 * MIB + 5 * PAGE, PAGE);
	memset(&res, 0, sizeof(res));
	CU_ASSERT_EQUAL(mm_discard_retry(&mm, &res), 0);
	CU_ASSERT_EQUAL(res.pages, 64);
	CU_ASSERT_EQUAL(res.pinned, 0);
	CU_ASSERT_EQUAL(mm_discard_pending(&mm), 0);
	CU_ASSERT_EQUAL(mm.discard.pending_pages, 0);
	expect_range(1536 * KIB, 256 * KIB, ZERO);
	verify(&mm, expect, "retried");

	/* c. cancelled: the guest took half of them back; the retry leaves that half alone */
	CU_ASSERT_EQUAL_FATAL(mm_dma_map(&mm, &h, 4 * MIB + PAGE, PAGE, MM_DMA_FROM_DEVICE, iov, 4),
			      1);
	memset(&res, 0, sizeof(res));
	CU_ASSERT_EQUAL(mm_discard(&mm, &(struct mig_range){5 * MIB, 256 * KIB}, 1,
				   MM_DISCARD_DEFER_PINNED, &res),
			0);
	CU_ASSERT_EQUAL(res.deferred, 64);
	{
		struct mig_range back[] = {{5 * MIB, 128 * KIB}, {7 * MIB, 64 * KIB}};

		CU_ASSERT_EQUAL(mm_discard_cancel(&mm, back, 2), 32);
	}
	CU_ASSERT_EQUAL(mm_discard_pending(&mm), 32);
	CU_ASSERT_EQUAL(mm.discard.cancelled_pages, 32);
	CU_ASSERT_EQUAL(put_page(&mm, 5 * MIB, 4), 0); /* the guest uses a page it took back */
	expect[5 * MIB / PAGE] = 4;
	mm_dma_unmap(&mm, &h, 4 * MIB + PAGE, PAGE);
	memset(&res, 0, sizeof(res));
	CU_ASSERT_EQUAL(mm_discard_retry(&mm, &res), 0);
	CU_ASSERT_EQUAL(res.pages, 32);
	CU_ASSERT_EQUAL(mm_discard_pending(&mm), 0);
	expect_range(5 * MIB + 128 * KIB, 128 * KIB, ZERO);
	verify(&mm, expect, "cancelled");

	/* d. a split frame: pins count per page (frame_pin on the record itself) */
	CU_ASSERT_EQUAL_FATAL(mm_migrate(&mm, &(struct mig_range){6 * MIB, PAGE}, 1, 1, &mres), 0);
	CU_ASSERT_EQUAL_FATAL(mm_migrate(&mm, &(struct mig_range){6 * MIB, PAGE}, 1, 0, &mres), 0);
	CU_ASSERT_EQUAL(leaf_size_at(&mm, 6 * MIB + 64 * KIB), PAGE);
	f = frame_get(&mm.ft, 6 * MIB + 64 * KIB, NULL);
	CU_ASSERT_FATAL(f != NULL);
	CU_ASSERT_FALSE(frame_flags(f) & FRAME_HUGE_HEAD);
	CU_ASSERT_EQUAL_FATAL(frame_pin(f, 1), 0);
	memset(&res, 0, sizeof(res));
	CU_ASSERT_EQUAL(
	    mm_discard(&mm, &(struct mig_range){6 * MIB + 32 * KIB, 96 * KIB}, 1, 0, &res), 0);
	CU_ASSERT_EQUAL(res.pinned, 1);
	CU_ASSERT_EQUAL(res.pages, 23);
	frame_unpin(f, 1);
	expect_range(6 * MIB + 32 * KIB, 96 * KIB, ZERO);
	expect[(6 * MIB + 64 * KIB) / PAGE] = 1;
	verify(&mm, expect, "split, one page pinned");

	/* e. a long-term pin (a registered buffer, where it is) */
	CU_ASSERT_EQUAL_FATAL(mm_dma_pin_longterm(&mm, 12 * MIB, 2 * MIB, -1), 0);
	memset(&res, 0, sizeof(res));
	CU_ASSERT_EQUAL(mm_discard(&mm, &(struct mig_range){13 * MIB, 64 * KIB}, 1, 0, &res), 0);
	CU_ASSERT_EQUAL(res.pinned, 16);
	CU_ASSERT_EQUAL(res.pages, 0);
	memset(&res, 0, sizeof(res));
	CU_ASSERT_EQUAL(mm_discard(&mm, &(struct mig_range){13 * MIB, 64 * KIB}, 1,
				   MM_DISCARD_DEFER_PINNED, &res),
			0);
	CU_ASSERT_EQUAL(res.deferred, 16);
	verify(&mm, expect, "long-term pinned");
	mm_dma_unpin_longterm(&mm, 12 * MIB, 2 * MIB);
	memset(&res, 0, sizeof(res));
	CU_ASSERT_EQUAL(mm_discard_retry(&mm, &res), 0);
	CU_ASSERT_EQUAL(res.pages, 16);
	CU_ASSERT_EQUAL(mm_discard_pending(&mm), 0);
	expect_range(13 * MIB, 64 * KIB, ZERO);

	/* f. a reference the holder's drain drops is not a pin: asked once, then discarded */
	CU_ASSERT_EQUAL_FATAL(mm_dma_holder_init(&mm, &h2, "drain-queue", drain_cb, &t), 0);
	t = (struct transient){.mm = &mm, .h = &h2, .gpa = 9 * MIB};
	mm_dma_busy(&h2);
	CU_ASSERT_EQUAL_FATAL(mm_dma_map(&mm, &h2, t.gpa, PAGE, MM_DMA_TO_DEVICE, iov, 4), 1);
	t.held = true;
	memset(&res, 0, sizeof(res));
	CU_ASSERT_EQUAL(
	    mm_discard(&mm, &(struct mig_range){8 * MIB + 512 * KIB, 1 * MIB}, 1, 0, &res), 0);
	CU_ASSERT_EQUAL(t.drains, 1);
	CU_ASSERT_FALSE(t.held);
	CU_ASSERT_EQUAL(res.pinned, 0);
	CU_ASSERT_EQUAL(res.pages, 256);
	expect_range(8 * MIB + 512 * KIB, 1 * MIB, ZERO);

	CU_ASSERT_EQUAL(mm.pins.short_now, 0);
	verify(&mm, expect, "pins, end");
	(void)npages;
	mm_dma_idle(&h2);
	mm_dma_holder_destroy(&h2);
	mm_dma_idle(&h);
	mm_dma_holder_destroy(&h);
	check_backing(&mm);
	mm_destroy(&mm);
}

/* ---- 6. a migrator, a discarder and a monitor writer at once ---- */

#define RACE_PAGES (16 * MIB / PAGE)
#define RACE_BLOCK 16 /* pages: even blocks may be discarded, odd ones are the writer's */

static bool race_discardable(uint64_t p)
{
	return (p / RACE_BLOCK) % 2 == 0;
}

struct race {
	struct mm *mm;
	volatile bool stop;
	uint64_t seed;
	uint64_t expect[RACE_PAGES]; /* writer's pages: last seq written */
	uint64_t migrations, moved, mig_errors;
	uint64_t writes, reads, io_errors, mismatches;
};

static void *race_migrator(void *arg)
{
	struct race *r = arg;
	uint64_t s = r->seed ^ 0x6d6967;

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		uint64_t p = rnd(&s) % RACE_PAGES, n = 1 + rnd(&s) % (rnd(&s) % 4 ? 64 : 1024);
		struct mig_range rg = {p * PAGE, (p + n > RACE_PAGES ? RACE_PAGES - p : n) * PAGE};
		struct mig_result res = {0};

		if (mm_migrate(r->mm, &rg, 1, (unsigned)(rnd(&s) & 1), &res))
			r->mig_errors++;
		r->migrations++;
		r->moved += res.pages;
	}
	return NULL;
}

/* The writer's pages: through the monitor's path (pinned per copy), or as a device
 * request (mm_dma_map: pinned while the device fills the page, which holds a huge
 * frame's whole 2 MiB, so discards around it are deferred). */
static void *race_writer(void *arg)
{
	struct race *r = arg;
	struct mm_dma_holder h;
	uint64_t s = r->seed ^ 0x777269, seq = 10, w[WORDS];

	if (mm_dma_holder_init(r->mm, &h, "race-writer", NULL, NULL)) {
		r->io_errors++;
		return NULL;
	}
	mm_dma_busy(&h);
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		uint64_t p = rnd(&s) % RACE_PAGES, kind = rnd(&s) % 16;

		if (race_discardable(p))
			p = (p + RACE_BLOCK) % RACE_PAGES;
		if (kind == 0) {
			struct iovec iov[2];
			int n = mm_dma_map(r->mm, &h, p * PAGE, PAGE, MM_DMA_FROM_DEVICE, iov, 2);

			if (n != 1) {
				r->io_errors++;
				continue;
			}
			page_fill(w, p * PAGE, seq);
			for (unsigned k = 0; k < WORDS; k += WORDS / 2) { /* slowly */
				memcpy((uint64_t *)iov[0].iov_base + k, w + k, PAGE / 2);
				sched_yield();
			}
			mm_dma_unmap(r->mm, &h, p * PAGE, PAGE);
			mm_dma_quiesce(&h);
			r->expect[p] = seq++;
			r->writes++;
		} else if (kind % 2) {
			if (put_page(r->mm, p * PAGE, seq)) {
				r->io_errors++;
				continue;
			}
			r->expect[p] = seq++;
			r->writes++;
		} else {
			if (mm_guest_read(r->mm, p * PAGE, w, PAGE)) {
				r->io_errors++;
				continue;
			}
			if (!page_is(w, p * PAGE, r->expect[p]) && !r->mismatches++)
				fprintf(stderr,
					"\n  writer: page %#llx lost seq %llu (word 0 %#llx)",
					(unsigned long long)(p * PAGE),
					(unsigned long long)r->expect[p], (unsigned long long)w[0]);
			r->reads++;
		}
	}
	mm_dma_idle(&h);
	mm_dma_holder_destroy(&h);
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_race(void)
{
	struct mm_config c = two_nodes(8 * MIB);
	struct mm mm;
	struct race *r = calloc(1, sizeof(*r));
	static uint64_t expect[RACE_PAGES];
	static uint8_t
	    state[RACE_PAGES]; /* discardable pages: 0 initial, 1 discarded, 2 rewritten */
	pthread_t tm, tw;
	uint64_t s = unit_seed(0xd15c4ced), discards = 0, pages = 0, pinned = 0, rehomed = 0;
	uint64_t rewrites = 0, zero_bad = 0;
	double t0 = now_s();

	CU_ASSERT_FATAL(r != NULL);
	c.mig.batch_frames = 256; /* many small batches */
	CU_ASSERT_EQUAL_FATAL(create(&mm, &c), 0);
	fill(&mm, 0, c.mem_size, 0);
	r->mm = &mm;
	r->seed = s;
	CU_ASSERT_EQUAL_FATAL(pthread_create(&tm, NULL, race_migrator, r), 0);
	CU_ASSERT_EQUAL_FATAL(pthread_create(&tw, NULL, race_writer, r), 0);
	for (int i = 0; i < 3000 && now_s() - t0 < 3.0; i++) {
		struct mig_range rg[3];
		struct discard_result res = {0};
		size_t n = 1 + rnd(&s) % 3;

		if (rnd(&s) % 8 == 0) { /* the guest takes a page back and uses it */
			uint64_t p = (rnd(&s) % (RACE_PAGES / RACE_BLOCK / 2)) * 2 * RACE_BLOCK +
				     rnd(&s) % RACE_BLOCK;

			mm_discard_cancel(&mm, &(struct mig_range){p * PAGE, PAGE}, 1);
			CU_ASSERT_EQUAL(put_page(&mm, p * PAGE, 7), 0);
			state[p] = 2;
			rewrites++;
			continue;
		}
		for (size_t k = 0; k < n; k++) {
			uint64_t blk = (rnd(&s) % (RACE_PAGES / RACE_BLOCK / 2)) * 2, a, b;

			/* sometimes several even blocks, leaving the odd ones between alone */
			a = rnd(&s) % RACE_BLOCK;
			b = a + 1 + rnd(&s) % (RACE_BLOCK - a);
			rg[k] = (struct mig_range){(blk * RACE_BLOCK + a) * PAGE, (b - a) * PAGE};
			for (uint64_t p = blk * RACE_BLOCK + a; p < blk * RACE_BLOCK + b; p++)
				state[p] = 1;
		}
		CU_ASSERT_EQUAL(mm_discard(&mm, rg, n, MM_DISCARD_DEFER_PINNED, &res), 0);
		discards++;
		pages += res.pages;
		pinned += res.pinned;
		rehomed += res.rehomed;
		CU_ASSERT_EQUAL(res.pinned, res.deferred);
		if (!res.pinned) /* everything asked is gone now */
			for (size_t k = 0; k < n; k++)
				for (gpa_t g = rg[k].gpa; g < rg[k].gpa + rg[k].len; g += PAGE) {
					uint64_t w[WORDS];

					CU_ASSERT_EQUAL(mm_guest_read(&mm, g, w, PAGE), 0);
					zero_bad += !page_is(w, g, ZERO);
				}
		if (rnd(&s) % 16 == 0) {
			struct discard_result rr = {0};

			CU_ASSERT_EQUAL(mm_discard_retry(&mm, &rr), 0);
			pages += rr.pages;
		}
	}
	__atomic_store_n(&r->stop, true, __ATOMIC_RELEASE);
	pthread_join(tm, NULL);
	pthread_join(tw, NULL);
	/* nothing pins now: whatever was queued goes */
	{
		struct discard_result rr = {0};

		CU_ASSERT_EQUAL(mm_discard_retry(&mm, &rr), 0);
		CU_ASSERT_EQUAL(rr.pinned, 0);
		CU_ASSERT_EQUAL(mm_discard_pending(&mm), 0);
	}
	for (uint64_t p = 0; p < RACE_PAGES; p++)
		if (!race_discardable(p))
			expect[p] = r->expect[p]; /* the writer's */
		else
			expect[p] = state[p] == 1 ? ZERO : state[p] == 2 ? 7 : 0;
	verify(&mm, expect, "race");
	CU_ASSERT_EQUAL(zero_bad, 0);
	CU_ASSERT_EQUAL(r->mismatches, 0);
	CU_ASSERT_EQUAL(r->io_errors, 0);
	CU_ASSERT_EQUAL(r->mig_errors, 0);
	CU_ASSERT(r->moved > 0 && r->writes > 0 && discards > 0 && pages > 0);
	check_backing(&mm);
	fprintf(stderr,
		"\n    %.1f s: %llu discards (%llu pages, %llu re-homed, %llu deferred), %llu "
		"take-backs, %llu migrations (%llu pages), %llu writes, %llu reads ",
		now_s() - t0, (unsigned long long)discards, (unsigned long long)pages,
		(unsigned long long)rehomed, (unsigned long long)pinned,
		(unsigned long long)rewrites, (unsigned long long)r->migrations,
		(unsigned long long)r->moved, (unsigned long long)r->writes,
		(unsigned long long)r->reads);
	mm_destroy(&mm);
	free(r);
}

/* ---- 7. bad input ---- */

/* Does mm->err name the bad range: its index @k ("range 1") or its address in hex? */
static bool err_names(const struct mm *mm, size_t k, gpa_t gpa)
{
	char idx[40], hex[40];

	snprintf(idx, sizeof(idx), "range %zu", k);
	snprintf(hex, sizeof(hex), "%#llx", (unsigned long long)gpa);
	return strstr(mm->err, idx) || (gpa && strstr(mm->err, hex));
}

static void test_bad_input(void)
{
	struct mm_config c = two_nodes(4 * MIB);
	struct mm mm;
	struct mm_discard_stats st0;
	static uint64_t expect[MAXP];
	const uint64_t size = 8 * MIB;
	const struct {
		struct mig_range bad;
		const char *what;
	} cases[] = {
	    {{4097, PAGE}, "unaligned start"},
	    {{2 * MIB, 100}, "unaligned length"},
	    {{3 * MIB, 2 * PAGE + 1}, "unaligned length"},
	    {{size - PAGE, 2 * PAGE}, "past the end"},
	    {{size, PAGE}, "starts at the end"},
	    {{1ull << 40, PAGE}, "far past the end"},
	    {{~0ull & ~(PAGE - 1), 2 * PAGE}, "wraps"},
	    {{2 * MIB, ~0ull & ~(PAGE - 1)}, "huge length, wraps"},
	    {{1 * MIB, 0}, "zero length"},
	};
	uint64_t res0[2], punch0[2];

	CU_ASSERT_EQUAL_FATAL(create(&mm, &c), 0);
	fill(&mm, 0, size, 1);
	for (uint64_t p = 0; p < size / PAGE; p++)
		expect[p] = 1;
	for (unsigned i = 0; i < 2; i++) {
		res0[i] = pool_resident_bytes(&mm.pools[i]);
		punch0[i] = mm.pools[i].punch_calls;
	}
	st0 = mm.discard;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* good ranges before and after it: none of them may be discarded either */
		struct mig_range r[3] = {{0, 64 * KIB}, cases[i].bad, {6 * MIB, 2 * MIB}};
		struct discard_result res = {0};
		int ret;

		mm.err[0] = 0;
		ret = mm_discard(&mm, r, 3, MM_DISCARD_DEFER_PINNED, &res);
		CU_ASSERT_EQUAL(ret, -EINVAL);
		CU_ASSERT(mm.err[0] != 0);
		if (ret != -EINVAL || !err_names(&mm, 1, cases[i].bad.gpa))
			fprintf(stderr, "\n  %s [%#llx, +%#llx): %d, \"%s\"", cases[i].what,
				(unsigned long long)cases[i].bad.gpa,
				(unsigned long long)cases[i].bad.len, ret, mm.err);
		CU_ASSERT(err_names(&mm, 1, cases[i].bad.gpa));
		CU_ASSERT_EQUAL(res.pages, 0);
		CU_ASSERT_EQUAL(res.runs, 0);
	}
	/* a count no caller can mean (its byte size wraps): refused before r is read past
	 * its two entries. In a child, so that reading past them fails this test only. */
	{
		static const size_t huge[] = {SIZE_MAX, SIZE_MAX / sizeof(struct mig_range) + 1,
					      (size_t)1 << 60};

		for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
			struct mig_range r[2] = {{0, 64 * KIB}, {6 * MIB, 2 * MIB}};
			pid_t pid = fork();
			int status = 0;

			CU_ASSERT_FATAL(pid >= 0);
			if (pid == 0) {
				struct discard_result res = {0};
				int ret = mm_discard(&mm, r, huge[i], 0, &res);

				_exit(ret == -EINVAL && res.pages == 0 && mm.err[0] ? 0 : 1);
			}
			CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
			if (!WIFEXITED(status) || WEXITSTATUS(status))
				fprintf(stderr, "\n  n = %#zx: %s %d", huge[i],
					WIFEXITED(status) ? "exit" : "signal",
					WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
			CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		}
	}
	/* nothing changed */
	CU_ASSERT_EQUAL(memcmp(&mm.discard, &st0, sizeof(st0)), 0);
	CU_ASSERT_EQUAL(mm_discard_pending(&mm), 0);
	for (unsigned i = 0; i < 2; i++) {
		CU_ASSERT_EQUAL(pool_resident_bytes(&mm.pools[i]), res0[i]);
		CU_ASSERT_EQUAL(mm.pools[i].punch_calls, punch0[i]);
	}
	verify(&mm, expect, "bad input");
	/* and the same good ranges alone are fine */
	{
		struct mig_range r[2] = {{0, 64 * KIB}, {6 * MIB, 2 * MIB}};
		struct discard_result res = {0};

		CU_ASSERT_EQUAL(mm_discard(&mm, r, 2, 0, &res), 0);
		CU_ASSERT_EQUAL(res.pages, 16 + 512);
		for (uint64_t p = 0; p < 16; p++)
			expect[p] = ZERO;
		for (uint64_t p = 6 * MIB / PAGE; p < size / PAGE; p++)
			expect[p] = ZERO;
		verify(&mm, expect, "good after bad");
	}
	mm_destroy(&mm);
}

/*
 * Deflating every other page of a deferred 2 MiB range splits the queued range 256 times
 * (the queue grows for each split: a fixed spare slot overflowed the heap here); the
 * pages left queued are exactly the others, and after the pin goes they are discarded
 * while the cancelled ones keep their data.
 */
static void test_cancel_many_splits(void)
{
	struct mm_config c = two_nodes(8 * MIB);
	struct discard_result res = {0};
	struct mig_range r[256];
	struct mm_dma_holder h;
	struct iovec iov[4];
	struct mm mm;
	uint64_t v;

	CU_ASSERT_EQUAL_FATAL(create(&mm, &c), 0);
	fill(&mm, 0, c.mem_size, 7);
	CU_ASSERT_EQUAL_FATAL(mm_dma_holder_init(&mm, &h, "split-queue", NULL, NULL), 0);
	mm_dma_busy(&h);
	/* one pinned page of a 2 MiB huge frame pins all of it */
	CU_ASSERT_EQUAL_FATAL(mm_dma_map(&mm, &h, 2 * MIB, PAGE, MM_DMA_TO_DEVICE, iov, 4), 1);
	CU_ASSERT_EQUAL(mm_discard(&mm, &(struct mig_range){2 * MIB, 2 * MIB}, 1,
				   MM_DISCARD_DEFER_PINNED, &res), 0);
	CU_ASSERT_EQUAL(res.deferred, 512);
	CU_ASSERT_EQUAL(mm_discard_pending(&mm), 512);
	for (unsigned i = 0; i < 256; i++)
		r[i] = (struct mig_range){2 * MIB + (2 * i + 1) * PAGE, PAGE};
	CU_ASSERT_EQUAL(mm_discard_cancel(&mm, r, 256), 256);
	CU_ASSERT_EQUAL(mm_discard_pending(&mm), 256);
	CU_ASSERT_EQUAL(mm.discard_qn, 256);
	mm_dma_unmap(&mm, &h, 2 * MIB, PAGE);
	memset(&res, 0, sizeof(res));
	CU_ASSERT_EQUAL(mm_discard_retry(&mm, &res), 0);
	CU_ASSERT_EQUAL(res.pages, 256);
	CU_ASSERT_EQUAL(mm_discard_pending(&mm), 0);
	for (unsigned i = 0; i < 512; i++) {
		CU_ASSERT_EQUAL_FATAL(mm_guest_read(&mm, 2 * MIB + i * PAGE + 8, &v, sizeof(v)), 0);
		if (i % 2) {
			CU_ASSERT_NOT_EQUAL(v, 0); /* cancelled: kept */
		} else {
			CU_ASSERT_EQUAL(v, 0); /* discarded after the pin went */
		}
	}
	mm_dma_idle(&h);
	mm_dma_holder_destroy(&h);
	mm_destroy(&mm);
}

static CU_TestInfo tests[] = {
    {"pfns to ranges vs a bitmap", test_pfns_to_ranges},
    {"ranges merge vs a bitmap", test_ranges_merge},
    {"in place: zero, data kept, memory returned, map untouched", test_inplace},
    {"re-homed to the policy's pool, old frames freed", test_rehome},
    {"re-homed onto warm freed frames still reads zero", test_rehome_warm},
    {"re-homed lazily write-protected pages", test_rehome_lazy},
    {"policy's pool full: punched in place, misplaced", test_rehome_pool_full},
    {"preferred fallback in place, interleave re-homed per 2 MiB", test_policies},
    {"a refused punch: counted failed, still resident", test_punch_refused},
    {"sim, EPT: invalidations per piece, stale device IOTLB", test_sim_ept},
    {"sim, arm64: invalidations per piece, stale device IOTLB", test_sim_arm64},
    {"pins: skipped, deferred, retried, cancelled, long-term, drained", test_pins},
    {"cancel splitting a deferred range 256 times", test_cancel_many_splits},
    {"race: migrator, discarder, writer", test_race},
    {"bad input: -EINVAL, nothing done", test_bad_input},
    CU_TEST_INFO_NULL,
};

UNIT_MAIN("discard", tests)
