// SPDX-License-Identifier: MIT
/*
 * Huge-page pools (POOL_HUGETLB): whole 2 MiB frames only, backed as they are handed
 * out, capacity limited to the huge pages free, and running out of huge pages is a clean
 * allocation failure (nothing half-allocated), not a SIGBUS in the guest later. Needs
 * free 2 MiB huge pages on the local node: tools/dev reserves them (root); without them
 * the suite skips (exit 77) and says which file to raise.
 */
#include <errno.h>
#include <string.h>

#include <stdbool.h>

#include "mm/discard.h"
#include "mm/migrate.h"
#include "mm/pool.h"
#include "tests/unit/unit.h"

#define HUGE POOL_HUGE_FRAMES
#define NEED 8 /* free huge pages the suite needs */

static int node(void)
{
	int n = pool_local_node();

	return n < 0 ? 0 : n;
}

/* Whole 2 MiB frames only; backed on allocation; resident bytes follow. */
static void test_huge_alloc(void)
{
	struct pool p;
	char err[256];
	uint64_t first = 0, n;

	CU_ASSERT_EQUAL_FATAL(pool_create(&p, (unsigned)node(), 8 * (2ull << 20), POOL_HUGETLB,
					  err, sizeof(err)), 0);
	CU_ASSERT_TRUE(p.huge);
	CU_ASSERT_EQUAL(p.nr_frames, 8 * HUGE);
	CU_ASSERT_EQUAL(pool_resident_bytes(&p), 0);
	CU_ASSERT_EQUAL(pool_alloc(&p, 1, 1, &first), -EINVAL); /* not a whole frame */
	CU_ASSERT_EQUAL(pool_alloc_upto(&p, HUGE - 1, 1, &first), 0); /* rounds to nothing */
	CU_ASSERT_EQUAL(p.nr_free, p.nr_frames);
	n = pool_alloc_upto(&p, HUGE + 100, 1, &first); /* rounded down, aligned up */
	CU_ASSERT_EQUAL(n, HUGE);
	CU_ASSERT_EQUAL(first % HUGE, 0);
	CU_ASSERT_EQUAL(pool_resident_bytes(&p), 2ull << 20); /* backed now */
	memset(p.base + (first << POOL_FRAME_SHIFT), 0xab, 2u << 20);
	CU_ASSERT_EQUAL(p.base[(first << POOL_FRAME_SHIFT) + 12345], (unsigned char)0xab);
	CU_ASSERT_EQUAL(pool_alloc_at(&p, first + HUGE + 1, HUGE), 0); /* not on a boundary */
	CU_ASSERT_EQUAL(pool_alloc_at(&p, first + HUGE, HUGE + 7), HUGE);
	CU_ASSERT_EQUAL(pool_alloc(&p, 2 * HUGE, 4, &first), 0);
	CU_ASSERT_EQUAL(first % HUGE, 0);
	CU_ASSERT_EQUAL(pool_resident_bytes(&p), 4 * (2ull << 20));
	CU_ASSERT_EQUAL(p.nr_free, p.nr_frames - 4 * HUGE);
	pool_free(&p, first, 2 * HUGE);
	CU_ASSERT_EQUAL(pool_punch(&p, first, 2 * HUGE), 0);
	CU_ASSERT_EQUAL(pool_resident_bytes(&p), 2 * (2ull << 20));
	pool_destroy(&p);
}

/*
 * Two pools on one node share its huge pages: when one takes them all, the other's
 * allocations fail cleanly (its counts unchanged, nothing left backed), a new pool is
 * refused naming the sysfs file, and freeing (punching) gives the pages back.
 */
static void test_huge_exhaustion(void)
{
	struct pool a, b, c;
	char err[256], nr_file[128];
	uint64_t free0 = pool_huge_free(node(), nr_file, sizeof(nr_file)), first, got;

	CU_ASSERT_EQUAL_FATAL(pool_create(&a, 0, 1ull << 40, POOL_HUGETLB, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(a.nr_frames, free0 * HUGE); /* capacity: what is free now */
	CU_ASSERT_EQUAL_FATAL(pool_create(&b, 0, 1ull << 40, POOL_HUGETLB, err, sizeof(err)), 0);
	got = pool_alloc_upto(&a, a.nr_frames, HUGE, &first);
	CU_ASSERT_EQUAL_FATAL(got, free0 * HUGE);
	CU_ASSERT_EQUAL(pool_huge_free(node(), NULL, 0), 0);

	CU_ASSERT_EQUAL(pool_alloc_upto(&b, HUGE, HUGE, &first), 0);
	CU_ASSERT_EQUAL(pool_alloc(&b, HUGE, HUGE, &first), -ENOMEM);
	CU_ASSERT_EQUAL(pool_alloc_at(&b, 0, HUGE), 0);
	CU_ASSERT_EQUAL(b.nr_free, b.nr_frames);
	CU_ASSERT_EQUAL(pool_resident_bytes(&b), 0);

	CU_ASSERT_EQUAL(pool_create(&c, 0, 4ull << 20, POOL_HUGETLB, err, sizeof(err)), -ENOMEM);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "no free 2 MiB huge pages"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, nr_file));
	CU_ASSERT_EQUAL(c.fd, -1); /* nothing left behind */

	pool_free(&a, 0, got);
	CU_ASSERT_EQUAL(pool_punch(&a, 0, got), 0);
	CU_ASSERT_EQUAL(pool_huge_free(node(), NULL, 0), free0);
	CU_ASSERT_EQUAL(pool_alloc_upto(&b, HUGE, HUGE, &first), HUGE); /* b gets them now */
	pool_destroy(&a);
	pool_destroy(&b);
	CU_ASSERT_EQUAL(pool_huge_free(node(), NULL, 0), free0); /* destroy returns them */
}

/* Does every byte of [g, g + len) of the guest hold @v? */
static bool holds(const struct mm *mm, gpa_t g, uint64_t len, unsigned char v)
{
	for (uint64_t i = 0; i < len; i++)
		if (mm->alias[g + i] != v)
			return false;
	return true;
}

static unsigned pool_of(struct mm *mm, gpa_t g)
{
	unsigned pool = ~0u;
	uint64_t off;

	CU_ASSERT_EQUAL(mm_gpa_backing(mm, g, &pool, &off), 0);
	return pool;
}

/*
 * A guest on huge pools (--hugepages): a 4 KiB migration request moves its whole 2 MiB
 * frame (counted as huge_extra), data intact; a 4 KiB discard inside a huge frame is not
 * returned and is counted, data intact; a whole-frame discard is returned and reads zero;
 * a target without free huge pages aborts cleanly.
 */
static void test_huge_guest(void)
{
	struct mm_config c = { .mem_size = 8ull << 20, .nr_nodes = 2, .hugepages = true,
			       .mig.keep_freed = false };
	struct mig_range one = { .gpa = (2ull << 20) + 3 * 4096, .len = 4096 };
	struct mig_result res;
	struct discard_result dr;
	struct mm mm;
	uint64_t res0;

	c.nodes[0] = (struct mm_guest_node){ .id = 0, .size = 4ull << 20, .host = 0 };
	c.nodes[1] = (struct mm_guest_node){ .id = 1, .size = 4ull << 20, .host = 1 };
	CU_ASSERT_EQUAL_FATAL(mm_create(&mm, &c), 0);
	CU_ASSERT_TRUE(mm.pools[0].huge && mm.pools[1].huge && mm.has_huge);
	memset(mm.alias, 0x5a, c.mem_size);
	CU_ASSERT_EQUAL(pool_of(&mm, 2ull << 20), 0);

	CU_ASSERT_EQUAL(mm_migrate(&mm, &one, 1, 1, &res), 0);
	CU_ASSERT_EQUAL(res.pages, 1);
	CU_ASSERT_EQUAL(res.huge_extra, HUGE - 1);
	CU_ASSERT_EQUAL(res.promoted, 0);
	CU_ASSERT_EQUAL(mm.mig.huge_frames, 1);
	for (gpa_t g = 2ull << 20; g < 4ull << 20; g += 4096) /* the whole frame moved */
		CU_ASSERT_EQUAL(pool_of(&mm, g), 1);
	CU_ASSERT_EQUAL(pool_of(&mm, 0), 0); /* its neighbour did not */
	CU_ASSERT_TRUE(holds(&mm, 0, c.mem_size, 0x5a));

	/* 4 KiB inside a huge frame: stays, counted, untouched */
	res0 = pool_resident_bytes(&mm.pools[1]);
	memset(&dr, 0, sizeof(dr)); /* mm_discard() adds to it */
	CU_ASSERT_EQUAL(mm_discard(&mm, &one, 1, 0, &dr), 0);
	CU_ASSERT_EQUAL(dr.pages, 0);
	CU_ASSERT_EQUAL(dr.huge_partial, 1);
	CU_ASSERT_EQUAL(mm.discard.huge_partial_pages, 1);
	CU_ASSERT_TRUE(holds(&mm, one.gpa, 4096, 0x5a));
	/* the whole frame: returned, reads zero */
	one = (struct mig_range){ .gpa = 2ull << 20, .len = 2ull << 20 };
	memset(&dr, 0, sizeof(dr));
	CU_ASSERT_EQUAL(mm_discard(&mm, &one, 1, 0, &dr), 0);
	CU_ASSERT_EQUAL(dr.pages, HUGE);
	CU_ASSERT_EQUAL(dr.huge_partial, 0);
	CU_ASSERT_TRUE(holds(&mm, one.gpa, one.len, 0));
	CU_ASSERT_TRUE(pool_resident_bytes(&mm.pools[1]) < res0 ||
		       pool_resident_bytes(&mm.pools[0]) < 4ull << 20);
	CU_ASSERT_TRUE(holds(&mm, 0, 2ull << 20, 0x5a));
	CU_ASSERT_TRUE(holds(&mm, 4ull << 20, 4ull << 20, 0x5a));
	mm_destroy(&mm);
}

/* Migrating to a huge pool with no huge page free: nothing moves, data intact. */
static void test_huge_target_full(void)
{
	struct mm_config c = { .mem_size = 4ull << 20, .nr_nodes = 1, .hugepages = true };
	struct mig_range all = { .gpa = 0, .len = 4ull << 20 };
	struct pool hog;
	char err[256];
	uint64_t first, got;
	struct mig_result res;
	struct mm mm;

	c.nodes[0] = (struct mm_guest_node){ .id = 0, .size = 4ull << 20, .host = 0 };
	CU_ASSERT_EQUAL_FATAL(mm_create(&mm, &c), 0);
	memset(mm.alias, 0x33, c.mem_size);
	CU_ASSERT_EQUAL_FATAL(mm_pool_get(&mm, 1), 1); /* host 1's pool, while pages are free */
	/* take every free huge page */
	CU_ASSERT_EQUAL_FATAL(pool_create(&hog, 0, 1ull << 40, POOL_HUGETLB, err, sizeof(err)), 0);
	got = pool_alloc_upto(&hog, hog.nr_frames, HUGE, &first);
	CU_ASSERT_EQUAL(pool_huge_free(node(), NULL, 0), 0);
	CU_ASSERT_EQUAL(mm_migrate(&mm, &all, 1, 1, &res), 0);
	CU_ASSERT_EQUAL(res.pages, 0);
	CU_ASSERT_EQUAL(res.aborted, 2 * HUGE);
	CU_ASSERT_EQUAL(pool_of(&mm, 0), 0);
	CU_ASSERT_TRUE(holds(&mm, 0, c.mem_size, 0x33));
	pool_free(&hog, first, got);
	pool_destroy(&hog);
	CU_ASSERT_EQUAL(mm_migrate(&mm, &all, 1, 1, &res), 0); /* now it can */
	CU_ASSERT_EQUAL(res.pages, 2 * HUGE);
	CU_ASSERT_EQUAL(pool_of(&mm, 0), 1);
	CU_ASSERT_TRUE(holds(&mm, 0, c.mem_size, 0x33));
	mm_destroy(&mm);
}

static CU_TestInfo tests[] = {
	{ "a huge guest: whole-frame migration and discard rules", test_huge_guest },
	{ "a huge target without free pages: clean abort", test_huge_target_full },
	{ "whole 2 MiB frames, backed on allocation", test_huge_alloc },
	{ "exhaustion: clean failures, error names the sysfs file", test_huge_exhaustion },
	CU_TEST_INFO_NULL,
};

int main(void)
{
	char nr_file[128];
	uint64_t n = pool_huge_free(node(), nr_file, sizeof(nr_file));

	if (n < NEED) {
		printf("SKIP: needs %d free 2 MiB huge pages on host node %d, %llu free "
		       "(tools/dev test reserves them as root: echo 64 > %s)\n",
		       NEED, node(), (unsigned long long)n, nr_file);
		return 77;
	}
	return unit_run("hugepool", tests);
}
