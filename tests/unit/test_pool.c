// SPDX-License-Identifier: MIT
/* Host node pools: the frame allocator against a reference, fragmentation, exhaustion,
 * real placement checked with move_pages(2); and the frame table. */
#include <errno.h>
#include <numa.h>
#include <numaif.h>
#include <stdlib.h>
#include <string.h>

#include "mm/frame.h"
#include "mm/mm.h"
#include "mm/pool.h"
#include "tests/unit/unit.h"

#define FRAMES (64 * 512) /* 128 MiB pool */

static struct pool mkpool(unsigned node, uint64_t bytes)
{
	struct pool p;
	char err[200];

	CU_ASSERT_EQUAL_FATAL(pool_create(&p, node, bytes, 0, err, sizeof(err)), 0);
	return p;
}

/* The pool's bitmap, counts and per-chunk counts agree with the reference. */
static void check_consistent(const struct pool *p, const uint8_t *ref)
{
	uint64_t free_ = 0;

	for (uint64_t c = 0; c < p->nr_frames / 512; c++) {
		unsigned cf = 0;

		for (uint64_t f = c * 512; f < (c + 1) * 512; f++) {
			CU_ASSERT_EQUAL(pool_frame_used(p, f), ref[f]);
			cf += !ref[f];
		}
		CU_ASSERT_EQUAL(p->chunk_free[c], cf);
		free_ += cf;
	}
	CU_ASSERT_EQUAL(p->nr_free, free_);
}

static void test_random_alloc_free(void)
{
	struct pool p = mkpool(0, (uint64_t)FRAMES << 12);
	uint8_t *ref = calloc(FRAMES, 1);
	struct { uint64_t first, n; } live[4096];
	unsigned nlive = 0, fails = 0;
	uint64_t rng = 42;

	for (int op = 0; op < 30000; op++) {
		rng = rng * 6364136223846793005ull + 1442695040888963407ull;
		if ((rng >> 33) % 3 && nlive < 4096) {
			uint64_t n = 1 + (rng >> 40) % ((rng >> 20) % 4 ? 8 : 1100), first;
			uint64_t align = (rng >> 50) % 4 == 0 ? 512 : 1;
			int r = pool_alloc(&p, n, align, &first);

			if (r) {
				CU_ASSERT_EQUAL(r, -ENOMEM);
				fails++;
				continue;
			}
			CU_ASSERT_EQUAL(first % align, 0);
			for (uint64_t f = first; f < first + n; f++) {
				CU_ASSERT_EQUAL(ref[f], 0); /* never handed out twice */
				ref[f] = 1;
			}
			live[nlive].first = first;
			live[nlive++].n = n;
		} else if (nlive) {
			unsigned k = (unsigned)((rng >> 35) % nlive);

			pool_free(&p, live[k].first, live[k].n);
			memset(ref + live[k].first, 0, live[k].n);
			live[k] = live[--nlive];
		}
		if (op % 3000 == 0)
			check_consistent(&p, ref);
	}
	check_consistent(&p, ref);
	CU_ASSERT(fails > 0); /* fragmentation / exhaustion happened */
	free(ref);
	pool_destroy(&p);
}

static void test_fragmentation_and_exhaustion(void)
{
	struct pool p = mkpool(0, 4 * 512 * 4096ull); /* 4 chunks */
	uint64_t f, first;

	/* fill, then free every odd frame: plenty free, no run of 2, nothing aligned */
	CU_ASSERT_EQUAL(pool_alloc(&p, 4 * 512, 1, &f), 0);
	for (uint64_t i = 1; i < 4 * 512; i += 2)
		pool_free(&p, i, 1);
	CU_ASSERT_EQUAL(p.nr_free, 1024);
	CU_ASSERT_EQUAL(pool_alloc(&p, 2, 1, &first), -ENOMEM);
	CU_ASSERT_EQUAL(pool_alloc(&p, 1, 512, &first), -ENOMEM);
	CU_ASSERT_EQUAL(p.nr_free, 1024); /* failure changed nothing */
	CU_ASSERT_EQUAL(pool_alloc_upto(&p, 100, 1, &first), 1);
	/* free a whole chunk: a huge frame fits again */
	for (uint64_t i = 0; i < 512; i += 2)
		pool_free(&p, 512 + i, 1);
	CU_ASSERT_EQUAL(pool_alloc(&p, 512, 512, &first), 0);
	CU_ASSERT_EQUAL(first, 512);
	/* upto takes the longest run available */
	pool_free(&p, 512, 512);
	CU_ASSERT_EQUAL(pool_alloc_upto(&p, 4096, 512, &first), 512);
	CU_ASSERT_EQUAL(first, 512);
	/* exhaustion */
	while (pool_alloc_upto(&p, 4096, 1, &first))
		;
	CU_ASSERT_EQUAL(p.nr_free, 0);
	CU_ASSERT_EQUAL(pool_alloc(&p, 1, 1, &first), -ENOMEM);
	CU_ASSERT_EQUAL(pool_alloc_upto(&p, 1, 1, &first), 0);
	pool_destroy(&p);
}

static void test_placement_move_pages(void)
{
	struct pool p = mkpool(0, 8 << 20);
	void *pages[16];
	int status[16];

	if (numa_available() < 0) {
		fprintf(stderr, "\n  (no NUMA support: move_pages check skipped)\n");
		pool_destroy(&p);
		return;
	}
	CU_ASSERT_FALSE(p.emulated);
	CU_ASSERT_EQUAL(p.bound_node, 0);
	for (int i = 0; i < 16; i++) {
		pages[i] = p.base + (uint64_t)i * (512 << 10);
		*(volatile char *)pages[i] = 1; /* first touch */
	}
	CU_ASSERT_EQUAL(move_pages(0, 16, pages, NULL, status, 0), 0);
	for (int i = 0; i < 16; i++)
		CU_ASSERT_EQUAL(status[i], 0); /* on node 0 */
	CU_ASSERT(pool_resident_bytes(&p) >= 16 * 4096);
	/* punching gives the memory back */
	CU_ASSERT_EQUAL(pool_punch(&p, 0, 2048), 0);
	CU_ASSERT_EQUAL(pool_resident_bytes(&p), 0);
	pool_destroy(&p);

	/* a node this host lacks is emulated on a real node, also verifiably */
	unsigned fake = (unsigned)numa_max_node() + 1;
	struct pool q = mkpool(fake, 4 << 20);

	CU_ASSERT(q.emulated);
	CU_ASSERT(q.bound_node >= 0);
	*(volatile char *)q.base = 1;
	pages[0] = q.base;
	CU_ASSERT_EQUAL(move_pages(0, 1, pages, NULL, status, 0), 0);
	CU_ASSERT_EQUAL(status[0], q.bound_node);
	pool_destroy(&q);
}

static void test_pool_create_errors(void)
{
	struct pool p;
	char err[200] = "";

	CU_ASSERT_EQUAL(pool_create(&p, 0, 1 << 20, 0, err, sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "below 2 MiB"));
	CU_ASSERT_EQUAL(p.fd, -1); /* nothing left behind */
	CU_ASSERT_EQUAL(pool_create(&p, 0, 4 << 20, POOL_FAIL_MEMFD, err, sizeof(err)), -ENOMEM);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot create a 4 MiB memfd: Cannot allocate memory"));
	CU_ASSERT_EQUAL(p.fd, -1);
	CU_ASSERT_PTR_NULL(p.bitmap);
	if (pool_node_is_real(0)) { /* mbind is made only for a node that exists */
		CU_ASSERT_EQUAL(pool_create(&p, 0, 4 << 20, POOL_FAIL_MBIND, err, sizeof(err)),
				-ENOMEM);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "mbind(MPOL_BIND, node 0): Cannot allocate"));
		CU_ASSERT_EQUAL(p.fd, -1);
		CU_ASSERT_PTR_NULL(p.base);
	}
}

static void test_frame_table(void)
{
	struct frame_table t;
	const struct frame *f;
	uint64_t pfn;

	CU_ASSERT_EQUAL_FATAL(frame_table_init(&t, 64 << 20), 0);
	CU_ASSERT_EQUAL(frame_table_bytes(&t), (64 << 20) / 4096 * 16);
	CU_ASSERT_PTR_NULL(frame_lookup(&t, 0, &pfn)); /* absent */
	/* 4 MiB from pool 2 frame 1024: two huge frames */
	CU_ASSERT_EQUAL(frame_table_set(&t, 2 << 20, 4 << 20, 2, 1024), 0);
	f = frame_lookup(&t, (2 << 20) + 5 * 4096, &pfn);
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_EQUAL(frame_pool(f), 2);
	CU_ASSERT_EQUAL(pfn, 1024 + 5);
	CU_ASSERT(frame_flags(f) & FRAME_HUGE_HEAD);
	/* tail records are identical, whichever huge frame they belong to */
	CU_ASSERT_EQUAL(memcmp(&t.f[(2 << 20) / 4096 + 7], &t.f[(4 << 20) / 4096 + 300],
			       sizeof(struct frame)), 0);
	f = frame_lookup(&t, (4 << 20) + 300 * 4096, &pfn);
	CU_ASSERT_EQUAL(pfn, 1024 + 512 + 300);
	/* unaligned backing: plain 4 KiB records */
	CU_ASSERT_EQUAL(frame_table_set(&t, 8 << 20, 3 * 4096, 1, 77), 0);
	f = frame_lookup(&t, (8 << 20) + 2 * 4096, &pfn);
	CU_ASSERT_EQUAL(pfn, 79);
	CU_ASSERT_FALSE(frame_flags(f) & FRAME_HUGE_HEAD);
	/* re-backing a huge frame with 4 KiB frames and back again keeps lookups right */
	CU_ASSERT_EQUAL(frame_table_set(&t, 2 << 20, 4096, 3, 9), 0);
	f = frame_lookup(&t, 2 << 20, &pfn);
	CU_ASSERT_EQUAL(frame_pool(f), 3);
	CU_ASSERT_EQUAL(pfn, 9);
	/* ... and the rest of that huge frame still names its own frames */
	for (uint64_t k = 1; k < 512; k++) {
		f = frame_lookup(&t, (2 << 20) + k * 4096, &pfn);
		CU_ASSERT_PTR_NOT_NULL_FATAL(f);
		CU_ASSERT_EQUAL(frame_pool(f), 2);
		CU_ASSERT_EQUAL(pfn, 1024 + k);
	}
	/* the last page of the second huge frame, then a run straddling both */
	CU_ASSERT_EQUAL(frame_table_set(&t, (6 << 20) - 4096, 4096, 4, 5), 0);
	f = frame_lookup(&t, (6 << 20) - 8192, &pfn);
	CU_ASSERT_EQUAL(frame_pool(f), 2);
	CU_ASSERT_EQUAL(pfn, 1024 + 1022);
	CU_ASSERT_EQUAL(frame_table_set(&t, (4 << 20) - 8192, 4 * 4096, 5, 100), 0);
	f = frame_lookup(&t, (4 << 20) - 12288, &pfn);
	CU_ASSERT_EQUAL(frame_pool(f), 2);
	CU_ASSERT_EQUAL(pfn, 1024 + 509);
	f = frame_lookup(&t, (4 << 20) + 4096, &pfn);
	CU_ASSERT_EQUAL(frame_pool(f), 5);
	CU_ASSERT_EQUAL(pfn, 103);
	f = frame_lookup(&t, (4 << 20) + 2 * 4096, &pfn);
	CU_ASSERT_EQUAL(frame_pool(f), 2);
	CU_ASSERT_EQUAL(pfn, 1024 + 512 + 2);
	CU_ASSERT_EQUAL(frame_table_set(&t, 2 << 20, 2 << 20, 2, 1024), 0);
	f = frame_lookup(&t, (2 << 20) + 4096, &pfn);
	CU_ASSERT_EQUAL(frame_pool(f), 2);
	CU_ASSERT_EQUAL(pfn, 1025);
	CU_ASSERT_PTR_NULL(frame_lookup(&t, 64 << 20, &pfn)); /* past the end */
	frame_table_destroy(&t);
}

/* Huge-backed memory: every chunk optimised (HVO), only heads are resident. */
static void test_frame_table_zero_tails(void)
{
	struct frame_table t;

	CU_ASSERT_EQUAL_FATAL(frame_table_init(&t, 1ull << 30), 0);
	CU_ASSERT_EQUAL(frame_table_set(&t, 0, 1ull << 30, 0, 0), 0);
	CU_ASSERT_EQUAL(frame_table_bytes(&t), 4 << 20);
	CU_ASSERT(frame_table_resident_bytes(&t) <= 512 << 10);
	frame_table_destroy(&t);
}

/* mm_create checks its own configuration, sizes at the edges of 64-bit arithmetic
 * included: nothing is placed, nothing written outside the frame table. */
static void test_mm_config_edges(void)
{
	static const struct {
		uint64_t mem, a, b, cap;
		const char *msg;
	} cases[] = {
		{ 0, 0, 0, 0, "non-zero multiple of 2 MiB" },
		{ UINT64_MAX, 0, 0, 0, "non-zero multiple of 2 MiB" },
		{ 1ull << 63, 0, 0, 0, "more than the" },
		{ 2 << 20, 1ull << 63, (1ull << 63) + (2 << 20), 0, "add up to more than --mem" },
		{ 4 << 20, 2 << 20, UINT64_MAX - (1 << 20) + 1, 0, "multiple of 2 MiB" },
		{ 4 << 20, UINT64_MAX - (2 << 20) + 1, 4 << 20, 0, "add up to more than --mem" },
		{ 4 << 20, 2 << 20, 4 << 20, 0, "add up to more than --mem" },
		{ 4 << 20, 2 << 20, 2 << 20, 32ull << 40, "a pool holds at most 1 TiB" },
		{ 4 << 20, 2 << 20, 0, 0, "size must be a non-zero multiple" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mm_config c = { .mem_size = cases[i].mem };
		struct mm mm;
		int r;

		if (cases[i].a) {
			c.nr_nodes = 2;
			c.nodes[0] = (struct mm_guest_node){ .id = 0, .size = cases[i].a, .host = 0 };
			c.nodes[1] = (struct mm_guest_node){ .id = 1, .size = cases[i].b, .host = 0 };
		}
		if (cases[i].cap) {
			c.nr_caps = 1;
			c.caps[0] = (struct mm_pool_cap){ .node = 0, .bytes = cases[i].cap };
		}
		r = mm_create(&mm, &c);
		CU_ASSERT_EQUAL(r, -EINVAL);
		CU_ASSERT_PTR_NOT_NULL(strstr(mm.err, cases[i].msg));
		CU_ASSERT_EQUAL(mm.nr_pools, 0);
		if (r != -EINVAL || !strstr(mm.err, cases[i].msg))
			fprintf(stderr, "\n  case %zu: %d \"%s\"\n", i, r, mm.err);
		mm_destroy(&mm);
	}
}

static CU_TestInfo tests[] = {
	{ "mm_create refuses configurations at the edges", test_mm_config_edges },
	{ "random alloc/free against a reference", test_random_alloc_free },
	{ "fragmentation and exhaustion", test_fragmentation_and_exhaustion },
	{ "real placement via move_pages", test_placement_move_pages },
	{ "create errors leave nothing", test_pool_create_errors },
	{ "frame table", test_frame_table },
	{ "frame table: tails stay on the zero page", test_frame_table_zero_tails },
	CU_TEST_INFO_NULL,
};

UNIT_MAIN("pool", tests)
