// SPDX-License-Identifier: MIT
/* The stage-2 map in both formats: encodings, block choice, errors that leave the map
 * intact, and 100k seeded random operations per format against a flat reference. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "mm/backend_sim.h"
#include "mm/s2.h"
#include "tests/unit/unit.h"

#define MIB2 (2ull << 20)
#define GIB (1ull << 30)

static const struct s2_format *const fmts[] = { &s2_format_ept, &s2_format_arm64 };

static void test_format_roundtrip(void)
{
	for (unsigned f = 0; f < 2; f++) {
		const struct s2_format *fmt = fmts[f];

		for (unsigned level = 1; level <= 3; level++) {
			for (unsigned perm = 1; perm <= 7; perm += 2) { /* R, RW.. with R set */
				struct s2_leaf l = { .oa = 0x123ull << 30, .perm = (uint8_t)perm,
						     .memtype = (uint8_t)(perm & 2 ? 0 : 1),
						     .accessed = true }, d;
				uint64_t e = fmt->mk_leaf(level, &l);

				CU_ASSERT_EQUAL(fmt->kind(e, level), S2_PTE_LEAF);
				fmt->leaf(e, level, &d);
				CU_ASSERT_EQUAL(d.oa, l.oa);
				CU_ASSERT_EQUAL(d.perm, l.perm);
				CU_ASSERT_EQUAL(d.memtype, l.memtype);
				CU_ASSERT(d.accessed);
			}
			uint64_t t = fmt->mk_table(S2_TABLE_BASE + 0x5000);
			if (level < 3) {
				CU_ASSERT_EQUAL(fmt->kind(t, level), S2_PTE_TABLE);
				CU_ASSERT_EQUAL(fmt->table_pa(t), S2_TABLE_BASE + 0x5000);
			}
		}
		CU_ASSERT_EQUAL(fmt->kind(0, 2), S2_PTE_INVALID);
	}
	/* arm64 specifics: start level from the IPA size, level-3 0b01 is invalid, XN */
	CU_ASSERT_EQUAL(s2_format_arm64.start_level(48), 0);
	CU_ASSERT_EQUAL(s2_format_arm64.start_level(39), 1);
	CU_ASSERT_EQUAL(s2_format_arm64.start_level(40), 0);
	CU_ASSERT_EQUAL(s2_format_arm64.kind(0x1, 3), S2_PTE_INVALID);
	struct s2_leaf rx = { .oa = 0x1000, .perm = S2_PERM_R | S2_PERM_X };
	CU_ASSERT_EQUAL(s2_format_arm64.mk_leaf(3, &rx) & (3ull << 53), 0);
	struct s2_leaf rw = { .oa = 0x1000, .perm = S2_PERM_RW };
	CU_ASSERT_EQUAL(s2_format_arm64.mk_leaf(3, &rw) & (3ull << 53), 2ull << 53);
	/* EPT: block bit 7, WB memory type 6, and R/W/X in bits 0-2 */
	struct s2_leaf b = { .oa = MIB2, .perm = S2_PERM_RWX };
	CU_ASSERT_EQUAL(s2_format_ept.mk_leaf(2, &b), MIB2 | 7 | (6 << 3) | (1 << 6) | (1 << 7));
}

static void init_map(struct s2_map *m, const struct s2_format *f, size_t max_tables)
{
	struct s2_map_config c = { .fmt = f, .ipa_bits = 40, .max_tables = max_tables };

	CU_ASSERT_EQUAL_FATAL(s2_map_init(m, &c), 0);
}

static void test_largest_blocks(void)
{
	for (unsigned f = 0; f < 2; f++) {
		struct s2_map m;
		struct s2_batch b;
		struct s2_leaf l;
		unsigned lvl;

		init_map(&m, fmts[f], 0);
		s2_batch_init(&b);
		/* 1 GiB + 2 MiB + 4 KiB, all aligned: one 1G block, one 2M block, one page */
		CU_ASSERT_EQUAL(s2_map_range(&m, GIB, 4 * GIB, GIB + MIB2 + 4096, S2_PERM_RW,
					     S2_MT_NORMAL, &b), 0);
		CU_ASSERT_EQUAL(s2_walk(&m, GIB + 12345, &l, &lvl), 0);
		CU_ASSERT_EQUAL(lvl, 1);
		CU_ASSERT_EQUAL(l.oa, 4 * GIB);
		CU_ASSERT_EQUAL(s2_walk(&m, 2 * GIB + 4096, &l, &lvl), 0);
		CU_ASSERT_EQUAL(lvl, 2);
		CU_ASSERT_EQUAL(s2_walk(&m, 2 * GIB + MIB2, &l, &lvl), 0);
		CU_ASSERT_EQUAL(lvl, 3);
		CU_ASSERT_EQUAL(l.oa, 5 * GIB + MIB2);
		CU_ASSERT_EQUAL(s2_walk(&m, 2 * GIB + MIB2 + 4096, &l, &lvl), -ENOENT);
		/* misaligned pa forces 4 KiB pages */
		CU_ASSERT_EQUAL(s2_map_range(&m, 8 * GIB, 0x1000, MIB2, S2_PERM_R, S2_MT_NORMAL,
					     &b), 0);
		CU_ASSERT_EQUAL(s2_walk(&m, 8 * GIB, &l, &lvl), 0);
		CU_ASSERT_EQUAL(lvl, 3);
		/* new mappings need no invalidation */
		for (size_t i = 0; i < b.n; i++)
			CU_ASSERT_EQUAL(b.v[i].inv, S2_INV_NONE);
		CU_ASSERT_EQUAL(s2_batch_commit(&m, &b), 0);
		/* unmap everything: back to the root table alone */
		CU_ASSERT_EQUAL(s2_unmap(&m, 0, 16 * GIB, &b), 0);
		CU_ASSERT(s2_batch_commit(&m, &b) >= 1);
		CU_ASSERT_EQUAL(m.stats.tables, 1);
		s2_batch_free(&b);
		s2_map_destroy(&m);
	}
}

static void test_errors_leave_map_intact(void)
{
	for (unsigned f = 0; f < 2; f++) {
		struct s2_map m;
		struct s2_batch b;
		struct s2_leaf l;
		unsigned lvl;

		init_map(&m, fmts[f], 0);
		s2_batch_init(&b);
		CU_ASSERT_EQUAL(s2_map_range(&m, 0, 0, GIB, S2_PERM_RW, 0, &b), 0);
		CU_ASSERT_EQUAL(s2_map_range(&m, GIB - 4096, 0, 8192, S2_PERM_RW, 0, &b), -EEXIST);
		CU_ASSERT_EQUAL(s2_map_range(&m, 123, 0, 4096, S2_PERM_RW, 0, &b), -EINVAL);
		CU_ASSERT_EQUAL(s2_map_range(&m, 2 * GIB, 0, 4096, S2_PERM_W, 0, &b), -EINVAL);
		CU_ASSERT_EQUAL(s2_map_range(&m, 1ull << 40, 0, 4096, S2_PERM_R, 0, &b), -EINVAL);
		CU_ASSERT_EQUAL(s2_remap(&m, GIB - 4096, 8192, 0, 0, &b), -ENOENT);
		s2_batch_commit(&m, &b);
		uint64_t tables = m.stats.tables;

		/* table cap: unmapping one page from the 1G block needs 2 new tables */
		m.max_tables = m.stats.tables + 1;
		CU_ASSERT_EQUAL(s2_unmap(&m, 4096, 4096, &b), -ENOMEM);
		CU_ASSERT_EQUAL(s2_protect(&m, 4096, 4096, S2_PERM_R, &b), -ENOMEM);
		CU_ASSERT_EQUAL(s2_map_range(&m, 4 * GIB, 0, 4096, S2_PERM_R, 0, &b), -ENOMEM);
		CU_ASSERT_EQUAL(b.n, 0); /* nothing recorded */
		CU_ASSERT_EQUAL(m.stats.tables, tables);
		CU_ASSERT_EQUAL(s2_walk(&m, 4096, &l, &lvl), 0);
		CU_ASSERT_EQUAL(lvl, 1);
		CU_ASSERT_EQUAL(l.perm, S2_PERM_RW);
		m.max_tables = 0;
		CU_ASSERT_EQUAL(s2_unmap(&m, 4096, 4096, &b), 0);
		CU_ASSERT_EQUAL(s2_walk(&m, 4096, &l, &lvl), -ENOENT);
		CU_ASSERT_EQUAL(s2_walk(&m, 8192, &l, &lvl), 0);
		CU_ASSERT_EQUAL(lvl, 3);
		CU_ASSERT_EQUAL(s2_walk(&m, MIB2, &l, &lvl), 0);
		CU_ASSERT_EQUAL(lvl, 2);
		s2_batch_commit(&m, &b);
		s2_batch_free(&b);
		s2_map_destroy(&m);
	}
}

static void test_split_collapse_records(void)
{
	for (unsigned f = 0; f < 2; f++) {
		struct s2_map m;
		struct s2_batch b;
		struct s2_leaf l;
		unsigned lvl;

		init_map(&m, fmts[f], 0);
		s2_batch_init(&b);
		CU_ASSERT_EQUAL(s2_map_range(&m, MIB2, 4 * MIB2, MIB2, S2_PERM_RW, 0, &b), 0);
		s2_batch_commit(&m, &b);
		CU_ASSERT_EQUAL(s2_split(&m, MIB2, 2, &b), 0);
		CU_ASSERT_EQUAL(s2_walk(&m, MIB2 + 5 * 4096, &l, &lvl), 0);
		CU_ASSERT_EQUAL(lvl, 3);
		CU_ASSERT_EQUAL(l.oa, 4 * MIB2 + 5 * 4096);
		CU_ASSERT_EQUAL(b.n, 1);
		CU_ASSERT_EQUAL(b.v[0].op, S2_OP_SPLIT);
		/* arm64 at FEAT_BBM level 0: split by break-before-make, already invalidated */
		CU_ASSERT_EQUAL(b.v[0].bbm, fmts[f]->needs_bbm);
		s2_batch_commit(&m, &b);
		/* a protect of one page tightens: required invalidation of exactly that page */
		CU_ASSERT_EQUAL(s2_protect(&m, MIB2 + 4096, 4096, S2_PERM_R, &b), 0);
		CU_ASSERT_EQUAL(b.n, 1);
		CU_ASSERT_EQUAL(b.v[0].inv, S2_INV_REQUIRED);
		CU_ASSERT_EQUAL(b.v[0].gpa, MIB2 + 4096);
		CU_ASSERT_EQUAL(b.v[0].size, 4096);
		s2_batch_commit(&m, &b);
		CU_ASSERT_EQUAL(s2_collapse(&m, MIB2, 2, &b), -EBUSY); /* perms differ */
		CU_ASSERT_EQUAL(s2_protect(&m, MIB2 + 4096, 4096, S2_PERM_RW, &b), 0);
		CU_ASSERT_EQUAL(b.v[0].inv, S2_INV_NONE); /* relaxing */
		CU_ASSERT_EQUAL(s2_collapse(&m, MIB2, 2, &b), 0);
		CU_ASSERT_EQUAL(s2_walk(&m, MIB2 + 4096, &l, &lvl), 0);
		CU_ASSERT_EQUAL(lvl, 2);
		CU_ASSERT_EQUAL(b.nfree, 1); /* the page table waits for the commit */
		uint64_t t = m.stats.tables;
		s2_batch_commit(&m, &b);
		CU_ASSERT_EQUAL(m.stats.tables, t - 1);
		CU_ASSERT_EQUAL(s2_collapse(&m, MIB2, 2, &b), -ENOENT);
		CU_ASSERT_EQUAL(s2_split(&m, 64 * MIB2, 2, &b), -ENOENT);
		s2_batch_free(&b);
		s2_map_destroy(&m);
	}
}

/* ---- randomized against a flat reference ---- */

#define R_PAGES (4ull << 18) /* 4 GiB of GPA space */

struct ref {
	uint64_t *pa; /* per page: pa | perm, 0 = unmapped */
};

static uint64_t rng;
static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void check_pages(struct s2_map *m, struct ref *r, uint64_t first, uint64_t n, uint64_t op)
{
	for (uint64_t p = first; p < first + n && p < R_PAGES; p++) {
		struct s2_leaf l;
		unsigned lvl;
		int got = s2_walk(m, p << 12, &l, &lvl);
		uint64_t want = r->pa[p];

		if (!want) {
			if (got != -ENOENT) {
				fprintf(stderr, "\n op %" PRIu64 ": page %#" PRIx64 " mapped, want hole\n",
					op, p << 12);
				CU_FAIL("mapped where the reference has a hole");
				return;
			}
			continue;
		}
		uint64_t pa = l.oa + ((p << 12) & (s2_level_size(lvl) - 1));
		if (got || pa != (want & ~0xfffull) || l.perm != (want & 7)) {
			fprintf(stderr, "\n op %" PRIu64 ": page %#" PRIx64 ": got %d pa %#" PRIx64
					" perm %u, want pa %#" PRIx64 " perm %u\n",
				op, p << 12, got, pa, l.perm, (uint64_t)(want & ~0xfffull), (unsigned)(want & 7));
			CU_FAIL("map differs from the reference");
			return;
		}
	}
}

/* A random page range: mostly small, some 2 MiB-sized, rarely 1 GiB. */
static void rnd_range(uint64_t *first, uint64_t *n)
{
	uint64_t k = rnd() % 100;

	if (k < 60) {
		*n = 1 + rnd() % 16;
		*first = rnd() % (R_PAGES - *n);
	} else if (k < 97) {
		*n = 512 * (1 + rnd() % 4);
		*first = (rnd() % (R_PAGES / 512 - 4)) * 512;
		if (rnd() % 4 == 0)
			*first += rnd() % 512; /* unaligned */
	} else {
		*n = 1ull << 18;
		*first = (rnd() % 3) << 18;
	}
}

static void random_ops(const struct s2_format *f, unsigned bbm_level, uint64_t seed, unsigned ops)
{
	struct s2_map m;
	struct s2_sim sim;
	struct s2_batch b;
	struct ref r = { calloc(R_PAGES, sizeof(uint64_t)) };
	struct s2_map_config c = { .fmt = f, .ipa_bits = 40, .bbm_level = bbm_level,
				   .be = &s2_sim_ops, .be_ctx = &sim };
	const unsigned perms[] = { S2_PERM_R, S2_PERM_RW, S2_PERM_R | S2_PERM_X, S2_PERM_RWX };
	uint64_t counts[8] = { 0 }, enomem = 0;

	rng = seed;
	CU_ASSERT_EQUAL_FATAL(s2_sim_init(&sim, 4, 0, bbm_level), 0);
	CU_ASSERT_EQUAL_FATAL(s2_map_init(&m, &c), 0);
	s2_sim_attach(&sim, &m);
	s2_batch_init(&b);

	for (unsigned op = 0; op < ops; op++) {
		uint64_t first, n, kind = rnd() % 7, pa;
		unsigned perm = perms[rnd() % 4];
		int ret, want = 0;
		bool limited = rnd() % 50 == 0;

		if (limited) /* force table exhaustion now and then */
			m.max_tables = m.stats.tables + rnd() % 2;
		rnd_range(&first, &n);
		switch (kind) {
		case 0:
		case 1: { /* map */
			bool busy = false;

			pa = (first << 12) + ((rnd() % 64) << 30) + (rnd() % 2 ? 0 : (rnd() % 512) << 12);
			for (uint64_t p = first; p < first + n; p++)
				busy |= r.pa[p] != 0;
			ret = s2_map_range(&m, first << 12, pa, n << 12, perm, S2_MT_NORMAL, &b);
			want = busy ? -EEXIST : 0;
			if (ret == 0)
				for (uint64_t p = 0; p < n; p++)
					r.pa[first + p] = (pa + (p << 12)) | perm;
			break;
		}
		case 2: /* unmap */
			ret = s2_unmap(&m, first << 12, n << 12, &b);
			if (ret == 0)
				memset(&r.pa[first], 0, n * sizeof(uint64_t));
			break;
		case 3: /* protect */
			ret = s2_protect(&m, first << 12, n << 12, perm, &b);
			if (ret == 0)
				for (uint64_t p = first; p < first + n; p++)
					if (r.pa[p])
						r.pa[p] = (r.pa[p] & ~7ull) | perm;
			break;
		case 4: { /* remap */
			bool hole = false;

			pa = ((rnd() % 64) << 30) + (rnd() % 4 ? (first << 12) : (rnd() % 4096) << 12);
			for (uint64_t p = first; p < first + n; p++)
				hole |= r.pa[p] == 0;
			/* no S2_REMAP_SAME_CONTENTS: nothing is copied here, and the arm64 checker
			 * would rightly flag the claim */
			ret = s2_remap(&m, first << 12, n << 12, pa, 0, &b);
			want = hole ? -ENOENT : 0;
			if (ret == 0)
				for (uint64_t p = 0; p < n; p++)
					r.pa[first + p] = (pa + (p << 12)) | (r.pa[first + p] & 7);
			break;
		}
		case 5: { /* split */
			struct s2_leaf l;
			unsigned lvl, level = 1 + rnd() % 2;

			want = s2_walk(&m, first << 12, &l, &lvl) == 0 && lvl == level ? 0 : -ENOENT;
			ret = s2_split(&m, first << 12, level, &b);
			break;
		}
		default: { /* collapse: any of 0, -EBUSY, -ENOENT; translations never change */
			ret = s2_collapse(&m, first << 12, 1 + rnd() % 2, &b);
			if (ret == -EBUSY || ret == -ENOENT)
				ret = 0;
			break;
		}
		}
		if (ret == -ENOMEM && limited) {
			enomem++;
		} else if (ret != want) {
			fprintf(stderr, "\n %s op %u kind %" PRIu64 " [%#" PRIx64 ", +%#" PRIx64
					"): got %d want %d\n",
				f->name, op, kind, first << 12, n << 12, ret, want);
			CU_FAIL("unexpected result");
			break;
		}
		counts[kind]++;
		m.max_tables = 0;
		if (n <= 4096) {
			check_pages(&m, &r, first > 1 ? first - 1 : 0, n + 2, op);
		} else { /* 1 GiB ranges: both ends and a sample inside */
			check_pages(&m, &r, first > 1 ? first - 1 : 0, 1024, op);
			check_pages(&m, &r, first + n - 1023, 1024, op);
			for (int k = 0; k < 256; k++)
				check_pages(&m, &r, first + rnd() % n, 1, op);
		}
		for (int k = 0; k < 8; k++) /* random samples elsewhere */
			check_pages(&m, &r, rnd() % R_PAGES, 1, op);
		for (int k = 0; k < 4; k++) { /* simulated agents keep accessing */
			uint64_t p = first + rnd() % n;
			int a = s2_sim_access(&sim, (unsigned)(rnd() % 4), p << 12, rnd() % 2);

			(void)a;
		}
		if (rnd() % 4 == 0)
			s2_batch_commit(&m, &b);
		if (op % 50000 == 49999)
			check_pages(&m, &r, 0, R_PAGES, op);
	}
	s2_batch_commit(&m, &b);
	check_pages(&m, &r, 0, R_PAGES, ops);
	CU_ASSERT(enomem > 0); /* exhaustion was exercised */
	CU_ASSERT(counts[0] + counts[1] > ops / 5);
	if (s2_sim_violations(&sim))
		fprintf(stderr, "\n %s: %s\n", f->name, sim.last);
	CU_ASSERT_EQUAL(s2_sim_violations(&sim), 0);
	/* unmapping everything frees every table but the root */
	CU_ASSERT_EQUAL(s2_unmap(&m, 0, 1ull << 40, &b), 0);
	s2_batch_commit(&m, &b);
	CU_ASSERT_EQUAL(m.stats.tables, 1);
	printf(" [%s bbm%u: %u ops, %" PRIu64 " -ENOMEM injected, peak %" PRIu64 " tables] ",
	       f->name, bbm_level, ops, enomem, m.stats.tables_peak);
	s2_batch_free(&b);
	s2_map_destroy(&m);
	s2_sim_destroy(&sim);
	free(r.pa);
}

static uint64_t seed(void)
{
	return unit_seed(0x5eed5eed12345ull);
}

static void test_random_ept(void)
{
	random_ops(&s2_format_ept, 0, seed(), 100000);
}

static void test_random_arm64_bbm0(void)
{
	random_ops(&s2_format_arm64, 0, seed() ^ 0xa5, 100000);
}

static void test_random_arm64_bbm2(void)
{
	random_ops(&s2_format_arm64, 2, seed() ^ 0x5a, 50000);
}

/* ---- table-at-a-time range operations against the per-entry path ---- */

/* A backend that folds every entry write and invalidation into a hash, then hands them
 * to the TLB model: two maps given the same operations must make the same calls. */
struct rec_be {
	struct s2_sim sim;
	uint64_t hash, writes, tlbis;
};

static void rec_mix(struct rec_be *r, uint64_t v)
{
	r->hash = (r->hash ^ v) * 0x100000001b3ull;
}

static void rec_pte_write(void *ctx, gpa_t gpa, unsigned level, uint64_t old, uint64_t new_pte)
{
	struct rec_be *r = ctx;

	rec_mix(r, gpa);
	rec_mix(r, level);
	rec_mix(r, old);
	rec_mix(r, new_pte);
	r->writes++;
	s2_sim_ops.pte_write(&r->sim, gpa, level, old, new_pte);
}

static void rec_tlbi(void *ctx, gpa_t gpa, uint64_t size)
{
	struct rec_be *r = ctx;

	rec_mix(r, gpa ^ (size << 1));
	r->tlbis++;
	s2_sim_ops.tlbi(&r->sim, gpa, size);
}

static int rec_commit(void *ctx, const struct s2_batch *b)
{
	struct rec_be *r = ctx;

	return s2_sim_ops.commit ? s2_sim_ops.commit(&r->sim, b) : 0;
}

static const struct s2_backend_ops rec_ops = {
	.pte_write = rec_pte_write,
	.tlbi = rec_tlbi,
	.commit = rec_commit,
};

#define P_SPACE (64ull << 20) /* GPA space the property test works in */

static bool batches_equal(const struct s2_batch *x, const struct s2_batch *y)
{
	if (x->n != y->n || x->nfree != y->nfree || x->overflow != y->overflow)
		return false;
	for (size_t i = 0; i < x->n; i++)
		if (x->v[i].gpa != y->v[i].gpa || x->v[i].size != y->v[i].size ||
		    x->v[i].op != y->v[i].op || x->v[i].inv != y->v[i].inv ||
		    x->v[i].level != y->v[i].level || x->v[i].bbm != y->v[i].bbm)
			return false;
	return true;
}

static bool tables_equal(const struct s2_map *x, const struct s2_map *y)
{
	if (x->tables.nr != y->tables.nr || x->tables.used != y->tables.used ||
	    x->stats.bbm != y->stats.bbm || x->stats.tlbi != y->stats.tlbi)
		return false;
	for (size_t i = 0; i < x->tables.nr; i++)
		if (memcmp(x->tables.pages[i], y->tables.pages[i], S2_PAGE_SIZE))
			return false;
	return true;
}

/* Every page of [first, first + n) translates alike in both maps. */
static bool walks_equal(const struct s2_map *x, const struct s2_map *y, uint64_t first, uint64_t n)
{
	for (uint64_t p = first; p < first + n && p < P_SPACE / 4096; p++) {
		struct s2_leaf a, b;
		unsigned la, lb;
		int ra = s2_walk(x, p << 12, &a, &la), rb = s2_walk(y, p << 12, &b, &lb);

		if (ra != rb)
			return false;
		if (!ra && (a.oa + ((p << 12) & (s2_level_size(la) - 1)) !=
				    b.oa + ((p << 12) & (s2_level_size(lb) - 1)) ||
			    a.perm != b.perm))
			return false;
	}
	return true;
}

/*
 * Random maps, protects, unmaps, remaps and splits of ranges mostly inside level-3
 * tables, applied to three maps: the table-at-a-time path, the general per-entry path
 * (m->per_entry), and one call per page. The first two must agree on every return, table
 * word, batch record, backend call and checker report; the per-page map on every
 * translation; and no arm64 rule may be broken.
 */
static void range_ops_vs_per_entry(const struct s2_format *f, unsigned bbm_level, uint64_t seed,
				   unsigned ops)
{
	struct rec_be be[3];
	struct s2_map m[3];
	struct s2_batch b[3];
	const unsigned perms[] = { S2_PERM_R, S2_PERM_RW, S2_PERM_R | S2_PERM_X, S2_PERM_RWX };
	const uint64_t space = P_SPACE / 4096;
	uint64_t mismatches = 0, changed = 0;

	rng = seed;
	for (int k = 0; k < 3; k++) {
		struct s2_map_config c = { .fmt = f, .ipa_bits = 40, .bbm_level = bbm_level,
					   .be = &rec_ops, .be_ctx = &be[k] };

		memset(&be[k], 0, sizeof(be[k]));
		CU_ASSERT_EQUAL_FATAL(s2_sim_init(&be[k].sim, 2, 0, bbm_level), 0);
		CU_ASSERT_EQUAL_FATAL(s2_map_init(&m[k], &c), 0);
		s2_sim_attach(&be[k].sim, &m[k]);
		s2_batch_init(&b[k]);
	}
	CU_ASSERT_FATAL(m[0].fast3); /* both formats keep the output address verbatim */
	m[1].per_entry = true;
	for (unsigned op = 0; op < ops && !mismatches; op++) {
		uint64_t kind = rnd() % 6, first, n, pa;
		unsigned perm = perms[rnd() % 4], flags = 0;
		int ret[3] = { 0, 0, 0 };

		if (rnd() % 3 == 0) { /* whole tables, sometimes several */
			n = 512 * (1 + rnd() % 3);
			first = (rnd() % (space / 512 - 3)) * 512;
		} else { /* pieces of one or two tables */
			n = 1 + rnd() % 700;
			first = rnd() % (space - n);
		}
		pa = (1ull << 32) + ((rnd() % 4096) << 12) + (rnd() % 2 ? 0 : (first << 12));
		if (kind == 3 && rnd() % 2)
			flags = S2_REMAP_SAME_CONTENTS; /* may be flagged; must be flagged alike */
		for (int k = 0; k < 2; k++) {
			switch (kind) {
			case 0:
				ret[k] = s2_map_range(&m[k], first << 12, pa, n << 12, perm, S2_MT_NORMAL,
						      &b[k]);
				break;
			case 1:
				ret[k] = s2_unmap(&m[k], first << 12, n << 12, &b[k]);
				break;
			case 2:
			case 5:
				ret[k] = s2_protect(&m[k], first << 12, n << 12, perm, &b[k]);
				break;
			case 3:
				ret[k] = s2_remap(&m[k], first << 12, n << 12, pa, flags, &b[k]);
				break;
			default:
				ret[k] = s2_split(&m[k], first << 12, 2, &b[k]);
				break;
			}
		}
		/* the per-page reference: the same change one page per call */
		if (kind == 0) {
			ret[2] = s2_map_range(&m[2], first << 12, pa, n << 12, perm, S2_MT_NORMAL, &b[2]);
		} else if (kind == 4) {
			ret[2] = s2_split(&m[2], first << 12, 2, &b[2]);
		} else if (ret[0] == 0) {
			for (uint64_t p = first; p < first + n && !ret[2]; p++) {
				if (kind == 1)
					ret[2] = s2_unmap(&m[2], p << 12, 4096, &b[2]);
				else if (kind == 3)
					ret[2] = s2_remap(&m[2], p << 12, 4096, pa + ((p - first) << 12),
							  flags, &b[2]);
				else
					ret[2] = s2_protect(&m[2], p << 12, 4096, perm, &b[2]);
			}
		}
		changed += ret[0] == 0;
		if (ret[0] != ret[1] || !batches_equal(&b[0], &b[1]) ||
		    be[0].hash != be[1].hash || !tables_equal(&m[0], &m[1])) {
			fprintf(stderr, "\n %s op %u kind %" PRIu64 " [%#" PRIx64 ", +%#" PRIx64
					"): table-at-a-time and per-entry differ (ret %d / %d)\n",
				f->name, op, kind, first << 12, n << 12, ret[0], ret[1]);
			mismatches++;
		}
		if ((ret[0] == 0 && kind != 4 && ret[2] != 0) ||
		    !walks_equal(&m[0], &m[2], first > 0 ? first - 1 : 0, n + 2)) {
			fprintf(stderr, "\n %s op %u kind %" PRIu64 " [%#" PRIx64 ", +%#" PRIx64
					"): range and per-page calls differ (ret %d / %d)\n",
				f->name, op, kind, first << 12, n << 12, ret[0], ret[2]);
			mismatches++;
		}
		for (int a = 0; a < 4; a++) { /* agents fill their TLBs through both maps */
			uint64_t p = rnd() % space;
			bool w = rnd() % 2;

			for (int k = 0; k < 3; k++)
				(void)s2_sim_access(&be[k].sim, (unsigned)a % 2, p << 12, w);
		}
		if (rnd() % 3 == 0)
			for (int k = 0; k < 3; k++)
				s2_batch_commit(&m[k], &b[k]);
	}
	for (int k = 0; k < 3; k++)
		s2_batch_commit(&m[k], &b[k]);
	CU_ASSERT(walks_equal(&m[0], &m[2], 0, space));
	CU_ASSERT(tables_equal(&m[0], &m[1]));
	CU_ASSERT_EQUAL(mismatches, 0);
	CU_ASSERT(changed > ops / 3);
	CU_ASSERT_EQUAL(be[0].writes, be[1].writes);
	CU_ASSERT_EQUAL(be[0].tlbis, be[1].tlbis);
	for (int r = 0; r < SIM_NR_RULES; r++)
		CU_ASSERT_EQUAL(be[0].sim.violations[r], be[1].sim.violations[r]);
	printf(" [%s bbm%u: %u ops, %" PRIu64 " applied, %" PRIu64 " entry writes] ", f->name,
	       bbm_level, ops, changed, be[0].writes);
	for (int k = 0; k < 3; k++) {
		s2_batch_free(&b[k]);
		s2_map_destroy(&m[k]);
		s2_sim_destroy(&be[k].sim);
	}
}

static void test_range_ops_ept(void)
{
	range_ops_vs_per_entry(&s2_format_ept, 0, seed() ^ 0x77, 20000);
}

static void test_range_ops_arm64(void)
{
	range_ops_vs_per_entry(&s2_format_arm64, 0, seed() ^ 0x99, 20000);
	range_ops_vs_per_entry(&s2_format_arm64, 2, seed() ^ 0x9a, 10000);
}

/* s2_walk_span() reads a run of contiguous leaves a table at a time: it stops exactly
 * where the output address, the permission or the mapping changes. */
static void test_walk_span_runs(void)
{
	for (unsigned f = 0; f < 2; f++) {
		struct s2_map m;
		struct s2_batch b;
		struct s2_leaf l;
		hpa_t oa;
		uint64_t span;

		init_map(&m, fmts[f], 0);
		s2_batch_init(&b);
		/* 8 MiB of 4 KiB leaves (unaligned output), contiguous across 4 tables */
		CU_ASSERT_EQUAL(s2_map_range(&m, 0, 0x1000, 4 * MIB2, S2_PERM_RW, 0, &b), 0);
		CU_ASSERT_EQUAL(s2_map_range(&m, 4 * MIB2, 0x1000 + 4 * MIB2, 4096, S2_PERM_RW, 0, &b), 0);
		CU_ASSERT_EQUAL(s2_walk_span(&m, 4096, 8 * MIB2, &l, &oa, &span), 0);
		CU_ASSERT_EQUAL(oa, 0x2000);
		CU_ASSERT_EQUAL(span, 4 * MIB2 + 4096 - 4096);
		CU_ASSERT_EQUAL(s2_walk_span(&m, 4096, 3 * MIB2, &l, &oa, &span), 0);
		CU_ASSERT_EQUAL(span, 3 * MIB2 - 4096); /* capped at end */
		/* a permission change splits the run */
		CU_ASSERT_EQUAL(s2_protect(&m, MIB2 + 8192, 4096, S2_PERM_R, &b), 0);
		CU_ASSERT_EQUAL(s2_walk_span(&m, 0, 8 * MIB2, &l, &oa, &span), 0);
		CU_ASSERT_EQUAL(span, MIB2 + 8192);
		CU_ASSERT_EQUAL(s2_walk_span(&m, MIB2 + 8192, 8 * MIB2, &l, &oa, &span), 0);
		CU_ASSERT_EQUAL(span, 4096);
		CU_ASSERT_EQUAL(l.perm, S2_PERM_R);
		/* an output-address jump splits it */
		CU_ASSERT_EQUAL(s2_remap(&m, 2 * MIB2, 4096, 0x40000000, 0, &b), 0);
		CU_ASSERT_EQUAL(s2_walk_span(&m, MIB2 + 12288, 8 * MIB2, &l, &oa, &span), 0);
		CU_ASSERT_EQUAL(span, MIB2 - 12288);
		/* a hole: one page */
		CU_ASSERT_EQUAL(s2_walk_span(&m, 16 * MIB2, 17 * MIB2, &l, &oa, &span), -ENOENT);
		CU_ASSERT_EQUAL(span, 4096);
		s2_batch_commit(&m, &b);
		s2_batch_free(&b);
		s2_map_destroy(&m);
	}
}

static CU_TestInfo tests[] = {
	{ "format encode/decode", test_format_roundtrip },
	{ "largest blocks that fit", test_largest_blocks },
	{ "errors leave the map intact", test_errors_leave_map_intact },
	{ "split, collapse and their records", test_split_collapse_records },
	{ "100k random ops, EPT", test_random_ept },
	{ "100k random ops, arm64 FEAT_BBM 0", test_random_arm64_bbm0 },
	{ "50k random ops, arm64 FEAT_BBM 2", test_random_arm64_bbm2 },
	{ "range ops vs per-entry and per-page, EPT", test_range_ops_ept },
	{ "range ops vs per-entry and per-page, arm64 BBM 0 and 2", test_range_ops_arm64 },
	{ "walk_span: runs of contiguous leaves", test_walk_span_runs },
	CU_TEST_INFO_NULL,
};

UNIT_MAIN("s2", tests)
