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

static CU_TestInfo tests[] = {
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
