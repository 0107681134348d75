// SPDX-License-Identifier: MIT
/*
 * Huge-page pools (POOL_HUGETLB): whole 2 MiB frames only, backed as they are handed
 * out, capacity limited to the huge pages free, and running out of huge pages is a clean
 * allocation failure (nothing half-allocated), not a SIGBUS in the guest later. Needs
 * free 2 MiB huge pages on the local node: tools/dev reserves them (root); without them
 * the suite skips (exit 77) and says which file to raise.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include <stdbool.h>

#include "mm/discard.h"
#include "mm/migrate.h"
#include "mm/pool.h"
#include "tests/unit/mm_unit.h"
#include "tests/unit/unit.h"

#define HUGE POOL_HUGE_FRAMES
#define NEED 8 /* free huge pages the suite needs */
#define MIB2 (2ull << 20)
#define PG 4096ull

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
/* Discard @r for guest node 0 (which must succeed); the result counts this call only. */
static struct discard_result discard_one(struct mm *mm, struct mig_range r)
{
	struct discard_result dr = { 0 }; /* mm_discard() adds to it */

	CU_ASSERT_EQUAL(mm_discard(mm, &r, 1, 0, &dr), 0);
	return dr;
}

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
	dr = discard_one(&mm, one);
	CU_ASSERT_EQUAL(dr.pages, 0);
	CU_ASSERT_EQUAL(dr.huge_partial, 1);
	CU_ASSERT_EQUAL(mm.discard.huge_partial_pages, 1);
	CU_ASSERT_TRUE(holds(&mm, one.gpa, 4096, 0x5a));
	/* the whole frame: returned, reads zero */
	one = (struct mig_range){ .gpa = 2ull << 20, .len = 2ull << 20 };
	dr = discard_one(&mm, one);
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

/*
 * A huge pool's small part (POOL_SMALL_PART): 4 KiB frames after the huge ones, on their
 * own memfd. The plain calls never hand them out, the _small calls hand out nothing
 * else; runs stop at the boundary; punches, data probes and the pool's own mapping reach
 * the right file at the right offset; a touched small frame costs 4 KiB, not 2 MiB.
 */
static void test_small_part(void)
{
	struct pool p;
	char err[256];
	unsigned char page[PG];
	uint64_t first = 0, k, off, h;
	int fd;

	CU_ASSERT_EQUAL_FATAL(pool_create(&p, (unsigned)node(), 2 * MIB2,
					  POOL_HUGETLB | POOL_SMALL_PART, err, sizeof(err)), 0);
	h = p.huge_frames;
	CU_ASSERT_EQUAL(h, 2 * HUGE);
	CU_ASSERT_EQUAL(p.nr_frames, 2 * HUGE + POOL_SMALL_FRAMES);
	CU_ASSERT(p.small_fd >= 0 && p.small_fd != p.fd);
	CU_ASSERT_EQUAL((uintptr_t)p.base % MIB2, 0); /* hugetlbfs maps 2 MiB-aligned only */
	CU_ASSERT_TRUE(pool_frame_huge(&p, h - 1));
	CU_ASSERT_FALSE(pool_frame_huge(&p, h));

	/* huge calls: the huge part only, even with the small part free */
	CU_ASSERT_EQUAL(pool_alloc_upto(&p, p.nr_frames, HUGE, &first), 2 * HUGE);
	CU_ASSERT_EQUAL(first, 0);
	CU_ASSERT_EQUAL(pool_alloc(&p, HUGE, HUGE, &first), -ENOMEM);
	CU_ASSERT_EQUAL(pool_alloc_upto(&p, HUGE, 1, &first), 0);
	CU_ASSERT_EQUAL(p.nr_free, POOL_SMALL_FRAMES);
	CU_ASSERT_EQUAL(pool_resident_bytes(&p), 2 * MIB2);
	CU_ASSERT_EQUAL(pool_small_resident_bytes(&p), 0);

	/* small calls: 4 KiB granularity, the small part only */
	CU_ASSERT_EQUAL(pool_alloc_small(&p, HUGE, HUGE, &first), 0);
	CU_ASSERT_EQUAL(first, h);
	CU_ASSERT_EQUAL(pool_alloc_small_upto(&p, 3, 1, &first), 3);
	CU_ASSERT_EQUAL(first, h + HUGE);
	CU_ASSERT_EQUAL(pool_alloc_at(&p, h + HUGE + 3, 5), 5); /* 4 KiB frames: no rounding */
	CU_ASSERT_EQUAL(pool_alloc_at(&p, p.nr_frames - 2, 10), 2); /* to the end only */
	CU_ASSERT_EQUAL(pool_small_used_frames(&p), HUGE + 10);
	CU_ASSERT_EQUAL(pool_resident_bytes(&p), 2 * MIB2); /* nothing touched yet */
	/* a free huge frame is never a small call's */
	pool_free(&p, HUGE, HUGE);
	pool_free(&p, h, HUGE);
	CU_ASSERT_EQUAL(pool_alloc_small_upto(&p, 2 * HUGE, 1, &first), HUGE);
	CU_ASSERT_EQUAL(first, h);
	pool_free(&p, h, HUGE);
	/* and a huge-part run stops at the boundary, the small part free behind it */
	CU_ASSERT_EQUAL(pool_alloc_at(&p, HUGE, 3 * HUGE), HUGE);
	CU_ASSERT_EQUAL(pool_small_used_frames(&p), 10);

	/* the pool's mapping of a small frame is the small memfd at its offset */
	k = 10;
	fd = pool_file_span(&p, h + HUGE, &k, &off);
	CU_ASSERT_EQUAL(fd, p.small_fd);
	CU_ASSERT_EQUAL(off, HUGE * PG);
	CU_ASSERT_EQUAL(k, 10);
	k = 10;
	fd = pool_file_span(&p, h - 4, &k, &off);
	CU_ASSERT_EQUAL(fd, p.fd);
	CU_ASSERT_EQUAL(off, (h - 4) * PG);
	CU_ASSERT_EQUAL(k, 4); /* a run does not cross into the other file */
	memset(p.base + (h + HUGE) * PG, 0xab, PG);
	CU_ASSERT_EQUAL(pread(p.small_fd, page, PG, (off_t)(HUGE * PG)), (ssize_t)PG);
	CU_ASSERT_EQUAL(page[100], 0xab);
	CU_ASSERT_EQUAL(pool_small_resident_bytes(&p), PG); /* 4 KiB, not 2 MiB */
	CU_ASSERT_EQUAL(pool_resident_bytes(&p), 2 * MIB2 + PG);
	CU_ASSERT_TRUE(pool_has_data(&p, h + HUGE, 1));
	CU_ASSERT_FALSE(pool_has_data(&p, h + HUGE + 1, 7));
	CU_ASSERT_FALSE(pool_has_data(&p, h, HUGE)); /* small, untouched: holes */
	CU_ASSERT_TRUE(pool_has_data(&p, h - 1, 2)); /* a backed huge frame, then a hole */

	/* one punch across both parts: each file punched at its own offset */
	memset(p.base + h * PG, 0xcd, PG);
	CU_ASSERT_EQUAL(pool_small_resident_bytes(&p), 2 * PG);
	CU_ASSERT_EQUAL(pool_punch(&p, HUGE, HUGE + HUGE), 0); /* [512, 1536) */
	CU_ASSERT_EQUAL(pool_resident_bytes(&p), MIB2 + PG);
	CU_ASSERT_EQUAL(pread(p.small_fd, page, PG, 0), (ssize_t)PG); /* reads zero */
	CU_ASSERT_EQUAL(page[0], 0);
	CU_ASSERT_EQUAL(p.base[(h + HUGE) * PG + 100], 0xab); /* past the run: kept */
	CU_ASSERT_EQUAL(pool_punch(&p, h + HUGE, 1), 0);
	CU_ASSERT_EQUAL(pool_small_resident_bytes(&p), 0);
	CU_ASSERT_EQUAL(p.base[(h + HUGE) * PG + 100], 0); /* reads zero */
	pool_destroy(&p);
	CU_ASSERT_EQUAL(p.small_fd, -1);
}

/* Which pool backs @g, and is it on that pool's small part? */
static unsigned pool_small(struct mm *mm, gpa_t g, bool *small)
{
	unsigned pool = ~0u;
	uint64_t off = 0;

	CU_ASSERT_EQUAL(mm_gpa_backing(mm, g, &pool, &off), 0);
	*small = pool < mm->nr_pools && !pool_frame_huge(&mm->pools[pool], off / PG);
	return pool;
}

/* Guest RAM reads @data everywhere (mm_guest_read) and, from the floor up, in the alias. */
static bool intact(struct mm *mm, const unsigned char *data, unsigned char *back)
{
	uint64_t fl = mm->cfg.alias_floor, size = mm->cfg.mem_size;

	return mm_guest_read(mm, 0, back, size) == 0 && !memcmp(back, data, size) &&
	       !memcmp(mm_alias_at(mm, fl), data + fl, size - fl);
}

/* Pages of the small window on each pool's small part, and all frames in use. */
static void small_count(struct mm *mm, uint64_t *small, uint64_t *used)
{
	pthread_mutex_lock(&mm->lock);
	mm_flush_and_free(mm);
	pthread_mutex_unlock(&mm->lock);
	*small = *used = 0;
	for (unsigned p = 0; p < mm->nr_pools; p++) {
		*small += pool_small_used_frames(&mm->pools[p]);
		*used += mm->pools[p].nr_frames - mm->pools[p].nr_free;
	}
}

/*
 * The proc layout (alias at host address == GPA, nothing below vm.mmap_min_addr) with
 * every pool huge (--hugepages): the first 2 MiB comes from the small part of its node's
 * huge pool, every other 2 MiB from a huge frame. Migrations move that window in 4 KiB
 * pages to the target's small part (nothing refused), the others in whole frames;
 * discards there are returned per 4 KiB (punched in place, or re-homed onto the home
 * pool's small part); a churn of 2 MiB chunks round-robin keeps every byte, through the
 * alias and the pools, and leaves exactly one window on small frames.
 */
static void test_proc_hugepages(void)
{
	struct mm_config c = { .mem_size = 8ull << 20, .nr_nodes = 2, .hugepages = true,
			       .alias_at_gpa = true, .alias_floor = unit_alias_floor() };
	uint64_t x = 0x736d616c6c, small, used, size;
	struct mig_range all, r;
	struct discard_result dr;
	struct mig_result res;
	unsigned char *data, *back;
	struct mm mm;
	bool sm;

	size = c.mem_size;
	c.nodes[0] = (struct mm_guest_node){ .id = 0, .size = size / 2, .host = 0 };
	c.nodes[1] = (struct mm_guest_node){ .id = 1, .size = size / 2, .host = 1 };
	data = malloc(size);
	back = malloc(size);
	CU_ASSERT_FATAL(data && back);
	if (mm_create(&mm, &c)) {
		fprintf(stderr, "\n  mm_create: %s\n", mm.err);
		CU_FAIL_FATAL("mm_create (alias at GPA, huge pools)");
	}
	CU_ASSERT_TRUE(mm.has_huge && mm.pools[0].huge && mm.pools[1].huge);
	CU_ASSERT(mm.pools[0].small_fd >= 0 && mm.pools[1].small_fd >= 0);
	CU_ASSERT_TRUE(mm_gpa_small(&mm, 0) && mm_gpa_small(&mm, MIB2 - 1));
	CU_ASSERT_FALSE(mm_gpa_small(&mm, MIB2));
	CU_ASSERT_EQUAL(pool_small(&mm, c.alias_floor, &sm), 0);
	CU_ASSERT_TRUE(sm);
	CU_ASSERT_EQUAL(pool_small(&mm, MIB2, &sm), 0);
	CU_ASSERT_FALSE(sm);
	CU_ASSERT_EQUAL(pool_small(&mm, 3 * MIB2, &sm), 1);
	CU_ASSERT_FALSE(sm);
	for (uint64_t i = 0; i < size; i += 8) {
		uint64_t v = rnd(&x);

		memcpy(data + i, &v, 8);
	}
	CU_ASSERT_EQUAL_FATAL(mm_guest_write(&mm, 0, data, size), 0);
	CU_ASSERT_TRUE(intact(&mm, data, back));
	/* a vCPU's write through the alias lands in the small part's file */
	((unsigned char *)mm_alias_at(&mm, 0x80000))[5] ^= 0xff;
	data[0x80000 + 5] ^= 0xff;
	CU_ASSERT_TRUE(intact(&mm, data, back));

	/* everything to node 1: nothing refused, the window onto pool 1's small part */
	all = (struct mig_range){ .gpa = 0, .len = size };
	CU_ASSERT_EQUAL(mm_migrate(&mm, &all, 1, 1, &res), 0);
	CU_ASSERT_EQUAL(res.pages + res.skipped, size / PG);
	CU_ASSERT_EQUAL(res.aborted, 0);
	CU_ASSERT_EQUAL(mm.mig.huge_refused_pages, 0);
	CU_ASSERT_EQUAL(mm.mig.small_window_pages, HUGE);
	CU_ASSERT_EQUAL(pool_small(&mm, 0, &sm), 1);
	CU_ASSERT_TRUE(sm);
	CU_ASSERT_EQUAL(pool_small(&mm, MIB2, &sm), 1);
	CU_ASSERT_FALSE(sm);
	CU_ASSERT_TRUE(intact(&mm, data, back));

	/* 4 KiB of the window: exactly that page moves (no huge rule there) */
	r = (struct mig_range){ .gpa = 0x80000, .len = PG };
	CU_ASSERT_EQUAL(mm_migrate(&mm, &r, 1, 0, &res), 0);
	CU_ASSERT_EQUAL(res.pages, 1);
	CU_ASSERT_EQUAL(res.huge_extra, 0);
	CU_ASSERT_EQUAL(res.promoted, 0);
	CU_ASSERT_EQUAL(pool_small(&mm, 0x80000, &sm), 0);
	CU_ASSERT_TRUE(sm);
	CU_ASSERT_EQUAL(pool_small(&mm, 0x81000, &sm), 1);
	((unsigned char *)mm_alias_at(&mm, 0x80000))[9] ^= 0x3c; /* writable, right file */
	data[0x80000 + 9] ^= 0x3c;
	CU_ASSERT_TRUE(intact(&mm, data, back));
	/* 4 KiB of the next window: its whole huge frame moves */
	r = (struct mig_range){ .gpa = MIB2 + 0x3000, .len = PG };
	CU_ASSERT_EQUAL(mm_migrate(&mm, &r, 1, 0, &res), 0);
	CU_ASSERT_EQUAL(res.huge_extra, HUGE - 1);
	CU_ASSERT_EQUAL(pool_small(&mm, MIB2, &sm), 0);
	CU_ASSERT_FALSE(sm);

	/* discards in the window: returned per 4 KiB. On pool 1 (not node 0's): re-homed to
	 * pool 0's small part; on pool 0: punched in place. Both read zero. */
	dr = discard_one(&mm, (struct mig_range){ .gpa = 0x81000, .len = PG });
	CU_ASSERT_EQUAL(dr.pages, 1);
	CU_ASSERT_EQUAL(dr.rehomed, 1);
	CU_ASSERT_EQUAL(dr.huge_partial, 0);
	CU_ASSERT_EQUAL(pool_small(&mm, 0x81000, &sm), 0);
	CU_ASSERT_TRUE(sm);
	dr = discard_one(&mm, (struct mig_range){ .gpa = 0x80000, .len = PG });
	CU_ASSERT_EQUAL(dr.pages, 1);
	CU_ASSERT_EQUAL(dr.rehomed, 0);
	CU_ASSERT_EQUAL(dr.huge_partial, 0);
	memset(data + 0x80000, 0, 2 * PG);
	CU_ASSERT_TRUE(intact(&mm, data, back));

	/* churn: 2 MiB chunks round-robin between the nodes, 6 rounds over RAM */
	for (unsigned k = 0; k < 6 * size / MIB2; k++) {
		gpa_t g = k % (size / MIB2) * MIB2;
		int cur = mm_gpa_node(&mm, g);

		r = (struct mig_range){ .gpa = g, .len = MIB2 };
		CU_ASSERT_EQUAL(mm_migrate(&mm, &r, 1, (unsigned)(cur ^ 1), &res), 0);
		CU_ASSERT_EQUAL(res.aborted, 0);
		((unsigned char *)mm_alias_at(&mm, g + c.alias_floor))[k] ^= (unsigned char)k;
		data[g + c.alias_floor + k] ^= (unsigned char)k;
	}
	CU_ASSERT_TRUE(intact(&mm, data, back));
	CU_ASSERT_EQUAL(mm.mig.huge_refused_pages, 0);
	CU_ASSERT_EQUAL(mm.mig.aborted_pages, 0);
	small_count(&mm, &small, &used);
	CU_ASSERT_EQUAL(small, HUGE); /* the window, nothing else on small frames */
	CU_ASSERT_EQUAL(used, size / PG);
	mm_destroy(&mm);
	free(data);
	free(back);
}

/*
 * The proc layout with only guest node 0 huge (--numa ...,hugepages=on): its window moves
 * to node 1's small pool and back onto node 0's small part, data intact; node 1 stays
 * small, a migration target made later is small (not every node is huge).
 */
static void test_proc_node0_huge(void)
{
	struct mm_config c = { .mem_size = 8ull << 20, .nr_nodes = 2, .alias_at_gpa = true,
			       .alias_floor = unit_alias_floor() };
	struct mig_range w0 = { .gpa = 0, .len = MIB2 };
	unsigned char *data = malloc(c.mem_size), *back = malloc(c.mem_size);
	struct mig_result res;
	struct mm mm;
	bool sm;

	CU_ASSERT_FATAL(data && back);
	c.nodes[0] = (struct mm_guest_node){ .id = 0, .size = 4ull << 20, .host = 0, .huge = true };
	c.nodes[1] = (struct mm_guest_node){ .id = 1, .size = 4ull << 20, .host = 1 };
	if (mm_create(&mm, &c)) {
		fprintf(stderr, "\n  mm_create: %s\n", mm.err);
		CU_FAIL_FATAL("mm_create (alias at GPA, guest node 0 huge)");
	}
	CU_ASSERT_TRUE(mm.pools[0].huge && !mm.pools[1].huge);
	memset(data, 0x6d, c.mem_size);
	CU_ASSERT_EQUAL_FATAL(mm_guest_write(&mm, 0, data, c.mem_size), 0);
	CU_ASSERT_EQUAL(pool_small(&mm, 0, &sm), 0);
	CU_ASSERT_TRUE(sm);
	CU_ASSERT_EQUAL(mm_migrate(&mm, &w0, 1, 1, &res), 0);
	CU_ASSERT_EQUAL(res.pages, HUGE);
	CU_ASSERT_EQUAL(pool_small(&mm, 0, &sm), 1);
	CU_ASSERT_EQUAL(mm_migrate(&mm, &w0, 1, 0, &res), 0);
	CU_ASSERT_EQUAL(res.pages, HUGE);
	CU_ASSERT_EQUAL(pool_small(&mm, 0, &sm), 0);
	CU_ASSERT_TRUE(sm);
	CU_ASSERT_TRUE(intact(&mm, data, back));
	CU_ASSERT_EQUAL(mm_pool_get(&mm, 2), 2);
	CU_ASSERT_FALSE(mm.pools[2].huge);
	mm_destroy(&mm);
	free(data);
	free(back);
}

static CU_TestInfo tests[] = {
	{ "a huge pool's small part: 4 KiB frames on their own file", test_small_part },
	{ "proc layout, --hugepages: the first 2 MiB on small frames", test_proc_hugepages },
	{ "proc layout, guest node 0 huge only", test_proc_node0_huge },
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
