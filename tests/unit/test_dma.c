// SPDX-License-Identifier: MIT
/*
 * DMA pins and device translation (mm/dma.h) on the real `kvm` backend (memfd pools,
 * no /dev/kvm needed):
 *  - the pin counter: short and long-term parts, the bias, overflow refused, marking and
 *    pinning exclude each other;
 *  - the IOTLB: hits, a stale entry after a migration is never used, invalidation by
 *    generation, and frames are not freed while a busy holder has not published;
 *  - drain before skip: a transient reference that the holder's drain drops is not
 *    reported pinned; a real pin is skipped, counted, and its data stays;
 *  - long-term pins: moved to the home node first, never migrated by churn, counted;
 *  - a randomized race: a device thread writes sequence numbers through mm_dma_map while
 *    the main thread migrates the same pages back and forth; no write is lost (the
 *    engine itself aborts if it ever copies a pinned frame).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mm/dma.h"
#include "mm/migrate.h"
#include "mm/mm.h"
#include "tests/unit/mm_unit.h"
#include "tests/unit/unit.h"

#define MIB (1ull << 20)
#define PAGE 4096ull

static int node_of(struct mm *mm, gpa_t g)
{
	return mm_gpa_node(mm, g);
}

/* ---- the pin counter ---- */

static void test_pin_counter(void)
{
	struct frame f = { .pfn = 7 };
	const uint64_t base = 3u | (FRAME_PRESENT << 8);

	__atomic_store_n(&f.state, base, __ATOMIC_RELAXED);
	CU_ASSERT_EQUAL_FATAL(frame_pin(&f, 1), 0);
	CU_ASSERT_EQUAL(frame_pins(&f), 1);
	CU_ASSERT_FALSE(frame_try_mark(&f)); /* pinned: migration may not mark it */
	frame_unpin(&f, 1);
	/* thousands of requests in flight on one record (a huge frame's head) are fine */
	for (unsigned i = 0; i < 100000; i++)
		CU_ASSERT_EQUAL_FATAL(frame_pin(&f, 1), 0);
	CU_ASSERT_EQUAL(frame_pins(&f), 100000);
	for (unsigned i = 0; i < 100000; i++)
		frame_unpin(&f, 1);
	/* the short-term part at its maximum: one more is refused, the count unchanged */
	__atomic_store_n(&f.state, base | (FRAME_PIN_SHORT_MAX - 1) << 16, __ATOMIC_RELAXED);
	CU_ASSERT_EQUAL(frame_pin(&f, 1), 0);
	CU_ASSERT_EQUAL(frame_pins(&f), FRAME_PIN_SHORT_MAX);
	CU_ASSERT_EQUAL(frame_pin(&f, 1), -EOVERFLOW);
	CU_ASSERT_EQUAL(frame_pins(&f), FRAME_PIN_SHORT_MAX);
	/* ... never carrying into the long-term part: long pins still work beside it */
	CU_ASSERT_EQUAL(frame_pin(&f, FRAME_PIN_LONGTERM), 0);
	CU_ASSERT(frame_pins(&f) >= FRAME_PIN_LONGTERM); /* "long-term pinned" */
	CU_ASSERT_EQUAL(frame_pins(&f) % FRAME_PIN_LONGTERM, FRAME_PIN_SHORT_MAX);
	frame_unpin(&f, FRAME_PIN_LONGTERM);
	/* the long-term part at its maximum */
	__atomic_store_n(&f.state, base | ((FRAME_PIN_LONG_MAX - 1) * FRAME_PIN_LONGTERM) << 16,
			 __ATOMIC_RELAXED);
	CU_ASSERT_EQUAL(frame_pin(&f, FRAME_PIN_LONGTERM), 0);
	CU_ASSERT_EQUAL(frame_pin(&f, FRAME_PIN_LONGTERM), -EOVERFLOW);
	CU_ASSERT_FALSE(frame_try_mark(&f)); /* long-term pins alone block it too */
	CU_ASSERT_EQUAL(frame_pin(&f, 1), 0); /* short pins still fit beside them */
	CU_ASSERT_EQUAL(frame_pins(&f), FRAME_PIN_LONG_MAX * FRAME_PIN_LONGTERM + 1);
	frame_unpin(&f, 1);
	for (uint64_t i = 0; i < FRAME_PIN_LONG_MAX; i++)
		frame_unpin(&f, FRAME_PIN_LONGTERM);
	CU_ASSERT_EQUAL(frame_pins(&f), 0);
	/* pool and flags untouched by all that */
	CU_ASSERT_EQUAL(frame_pool(&f), 3);
	CU_ASSERT_EQUAL(frame_flags(&f), FRAME_PRESENT);
	/* marked: pins refused until unmarked */
	CU_ASSERT_TRUE(frame_try_mark(&f));
	CU_ASSERT_EQUAL(frame_pin(&f, 1), -EBUSY);
	CU_ASSERT_EQUAL(frame_pin(&f, FRAME_PIN_LONGTERM), -EBUSY);
	frame_clear_flags(&f, FRAME_MIGRATING);
	CU_ASSERT_EQUAL(frame_pin(&f, 1), 0);
	frame_unpin(&f, 1);
	/* absent records cannot be pinned */
	__atomic_store_n(&f.state, 0u, __ATOMIC_RELAXED);
	CU_ASSERT_EQUAL(frame_pin(&f, 1), -ENOENT);
}

/* ---- the IOTLB ---- */

static void test_iotlb(void)
{
	struct mm_config c = two_nodes(8 * MIB);
	struct mm mm;
	struct mm_dma_holder h;
	struct iovec iov[4];
	const gpa_t g = 3 * MIB + 5 * PAGE;
	struct mig_range rg = { g, PAGE };
	struct mig_result res;
	uint64_t v = 0x1122334455667788ull, got = 0;
	void *before;
	int n;

	CU_ASSERT_EQUAL_FATAL(create(&mm, &c), 0);
	CU_ASSERT_EQUAL_FATAL(mm_dma_holder_init(&mm, &h, "test-queue", NULL, NULL), 0);
	mm_dma_busy(&h);
	CU_ASSERT_EQUAL(mm_guest_write(&mm, g, &v, sizeof(v)), 0);

	n = mm_dma_map(&mm, &h, g, sizeof(v), MM_DMA_TO_DEVICE, iov, 4);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT_EQUAL(h.st.iotlb_misses, 1);
	CU_ASSERT_EQUAL(memcmp(iov[0].iov_base, &v, sizeof(v)), 0);
	CU_ASSERT_EQUAL(mm.pins.short_now, 1);
	before = iov[0].iov_base;
	mm_dma_unmap(&mm, &h, g, sizeof(v));
	CU_ASSERT_EQUAL(mm.pins.short_now, 0);
	n = mm_dma_map(&mm, &h, g, sizeof(v), MM_DMA_TO_DEVICE, iov, 4);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_EQUAL(h.st.iotlb_hits, 1);
	mm_dma_unmap(&mm, &h, g, sizeof(v));

	/* the page moves; the holder has not reached a quiescent point, so its entry is
	 * stale: the map call must notice and use the new frame */
	CU_ASSERT_EQUAL_FATAL(node_of(&mm, g), 0);
	CU_ASSERT_EQUAL_FATAL(mm_migrate(&mm, &rg, 1, 1, &res), 0);
	CU_ASSERT_EQUAL(res.pages, 1);
	CU_ASSERT_EQUAL(node_of(&mm, g), 1);
	/* the old frame is not freed: this holder has not published the batch's gen */
	pthread_mutex_lock(&mm.lock);
	mm_flush_and_free(&mm);
	CU_ASSERT(mm.deferred.frames >= 1);
	pthread_mutex_unlock(&mm.lock);

	n = mm_dma_map(&mm, &h, g, sizeof(v), MM_DMA_FROM_DEVICE, iov, 4);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT_PTR_NOT_EQUAL(iov[0].iov_base, before);
	v = 0xabcdef;
	memcpy(iov[0].iov_base, &v, sizeof(v)); /* the device writes */
	mm_dma_unmap(&mm, &h, g, sizeof(v));
	CU_ASSERT_EQUAL(mm_guest_read(&mm, g, &got, sizeof(got)), 0);
	CU_ASSERT_EQUAL(got, v); /* landed in the frame the guest sees */
	CU_ASSERT_EQUAL(memcmp(mm_alias_at(&mm, g), &v, sizeof(v)), 0);

	/* quiescent point: the generation moved, so the IOTLB is dropped and published */
	{
		uint64_t fl = h.st.iotlb_flushes;

		mm_dma_quiesce(&h);
		CU_ASSERT_EQUAL(h.st.iotlb_flushes, fl + 1);
		mm_dma_quiesce(&h); /* nothing moved since: no flush */
		CU_ASSERT_EQUAL(h.st.iotlb_flushes, fl + 1);
	}
	pthread_mutex_lock(&mm.lock);
	mm_flush_and_free(&mm);
	CU_ASSERT_EQUAL(mm.deferred.frames, 0);
	pthread_mutex_unlock(&mm.lock);

	/* errors pin nothing */
	CU_ASSERT_EQUAL(mm_dma_map(&mm, &h, c.mem_size - 8, 16, MM_DMA_TO_DEVICE, iov, 4), -EFAULT);
	CU_ASSERT_EQUAL(mm_dma_map(&mm, &h, ~0ull - 3, 16, MM_DMA_TO_DEVICE, iov, 4), -EFAULT);
	/* 3 pages on two pools cannot fit one iovec */
	CU_ASSERT_EQUAL(mm_dma_map(&mm, &h, g - PAGE, 3 * PAGE, MM_DMA_TO_DEVICE, iov, 1), -E2BIG);
	CU_ASSERT_EQUAL(mm.pins.short_now, 0);

	/* an idle holder holds back nothing */
	mm_dma_idle(&h);
	CU_ASSERT_EQUAL(mm_migrate(&mm, &(struct mig_range){ 0, 2 * MIB }, 1, 1, &res), 0);
	pthread_mutex_lock(&mm.lock);
	mm_flush_and_free(&mm);
	CU_ASSERT_EQUAL(mm.deferred.frames, 0);
	pthread_mutex_unlock(&mm.lock);
	mm_dma_holder_destroy(&h);
	mm_destroy(&mm);
}

/* ---- drain before skip ---- */

struct transient {
	struct mm *mm;
	struct mm_dma_holder *h;
	gpa_t gpa;
	uint64_t len;
	bool held;
	bool release; /* the drain drops it (a completed request not yet reaped) */
	unsigned drains;
};

static void drain_cb(void *ctx)
{
	struct transient *t = ctx;

	t->drains++;
	if (t->held && t->release) {
		mm_dma_unmap(t->mm, t->h, t->gpa, t->len);
		t->held = false;
	}
	mm_dma_quiesce(t->h);
}

static void drain_case(bool release)
{
	struct mm_config c = two_nodes(8 * MIB);
	struct mm mm;
	struct mm_dma_holder h;
	struct transient t = { .gpa = 1 * MIB, .len = 16 * PAGE, .release = release };
	struct iovec iov[4];
	struct mig_range rg = { 0, 2 * MIB };
	struct mig_result res;
	unsigned char pat[16 * PAGE], back[16 * PAGE];

	CU_ASSERT_EQUAL_FATAL(create(&mm, &c), 0);
	CU_ASSERT_EQUAL_FATAL(mm_dma_holder_init(&mm, &h, "q", drain_cb, &t), 0);
	t.mm = &mm;
	t.h = &h;
	mm_dma_busy(&h);
	for (size_t i = 0; i < sizeof(pat); i++)
		pat[i] = (unsigned char)(i * 7 + 1);
	CU_ASSERT_EQUAL(mm_guest_write(&mm, t.gpa, pat, sizeof(pat)), 0);
	CU_ASSERT(mm_dma_map(&mm, &h, t.gpa, t.len, MM_DMA_BIDIR, iov, 4) > 0);
	t.held = true;

	CU_ASSERT_EQUAL(mm_migrate(&mm, &rg, 1, 1, &res), 0);
	CU_ASSERT_EQUAL(t.drains, 1); /* asked once, before judging */
	CU_ASSERT_EQUAL(mm.pins.drains, 1);
	if (release) {
		/* the reference was transient: nothing skipped, all moved */
		CU_ASSERT_EQUAL(res.pinned, 0);
		CU_ASSERT_EQUAL(res.pages, 512);
		CU_ASSERT_EQUAL(mm.pins.drain_avoided, 512); /* the head pinned the 2 MiB */
		CU_ASSERT_EQUAL(node_of(&mm, t.gpa), 1);
	} else {
		/* a real pin: the pinned pages stay, the rest of the range moves */
		CU_ASSERT(res.pinned >= 16);
		CU_ASSERT_EQUAL(res.pages + res.pinned, 512);
		CU_ASSERT_EQUAL(mm.pins.skipped_pages, res.pinned);
		CU_ASSERT_EQUAL(node_of(&mm, t.gpa), 0);
		CU_ASSERT_EQUAL(mm.pins.drain_avoided, 0);
		/* the device still reaches the frame the guest sees */
		((unsigned char *)iov[0].iov_base)[0] = 0xee;
		pat[0] = 0xee;
		mm_dma_unmap(&mm, &h, t.gpa, t.len);
		t.held = false;
		CU_ASSERT_EQUAL(mm_migrate(&mm, &rg, 1, 1, &res), 0);
		CU_ASSERT_EQUAL(res.pinned, 0); /* unpinned: it moves now */
		CU_ASSERT_EQUAL(node_of(&mm, t.gpa), 1);
	}
	CU_ASSERT_EQUAL(mm_guest_read(&mm, t.gpa, back, sizeof(back)), 0);
	CU_ASSERT_EQUAL(memcmp(back, pat, sizeof(pat)), 0);
	mm_dma_holder_destroy(&h);
	mm_destroy(&mm);
}

static void test_drain_transient(void)
{
	drain_case(true);
}

static void test_drain_real_pin(void)
{
	drain_case(false);
}

/* ---- long-term pins ---- */

static void test_longterm(void)
{
	struct mm_config c = two_nodes(8 * MIB);
	struct mm mm;
	struct mig_range rg = { 0, 16 * MIB };
	struct mig_result res;
	const gpa_t g = 2 * MIB;

	CU_ASSERT_EQUAL_FATAL(create(&mm, &c), 0);
	CU_ASSERT_EQUAL(node_of(&mm, g), 0);
	CU_ASSERT_EQUAL(mm_dma_pin_longterm(&mm, g, 2 * MIB, 1), 0);
	CU_ASSERT_EQUAL(node_of(&mm, g), 1); /* moved to the home node first */
	CU_ASSERT_EQUAL(mm.pins.longterm_bytes[mm_pool_get(&mm, 1)], 2 * MIB);
	/* churn to node 0: the registered chunk stays */
	CU_ASSERT_EQUAL(mm_migrate(&mm, &rg, 1, 0, &res), 0);
	CU_ASSERT_EQUAL(res.pinned, 512);
	CU_ASSERT_EQUAL(node_of(&mm, g), 1);
	CU_ASSERT_EQUAL(node_of(&mm, g + 2 * MIB), 0);
	mm_dma_unpin_longterm(&mm, g, 2 * MIB);
	CU_ASSERT_EQUAL(mm.pins.longterm_bytes[mm_pool_get(&mm, 1)], 0);
	CU_ASSERT_EQUAL(mm_migrate(&mm, &rg, 1, 0, &res), 0);
	CU_ASSERT_EQUAL(res.pinned, 0);
	CU_ASSERT_EQUAL(node_of(&mm, g), 0);
	/* bad ranges */
	CU_ASSERT_EQUAL(mm_dma_pin_longterm(&mm, 5, PAGE, -1), -EINVAL);
	CU_ASSERT_EQUAL(mm_dma_pin_longterm(&mm, 16 * MIB, PAGE, -1), -EINVAL);
	mm_destroy(&mm);
}

/* ---- a device writing while pages move ---- */

#define RACE_PAGES 256 /* 1 MiB, in a 16 MiB guest */

struct race {
	struct mm *mm;
	struct mm_dma_holder h;
	uint64_t seed;
	uint64_t expect[RACE_PAGES]; /* last value the device wrote to each page */
	volatile bool stop;
	uint64_t writes, errors;
};

static void *device_thread(void *arg)
{
	struct race *r = arg;
	uint64_t s = r->seed, seq = 1;

	mm_dma_busy(&r->h);
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		unsigned p = (unsigned)(rnd(&s) % RACE_PAGES), np = 1 + (unsigned)(rnd(&s) % 8);
		struct iovec iov[16];
		int n;

		if (p + np > RACE_PAGES)
			np = RACE_PAGES - p;
		n = mm_dma_map(r->mm, &r->h, (gpa_t)p * PAGE, (uint64_t)np * PAGE,
			       MM_DMA_FROM_DEVICE, iov, 16);
		if (n < 0) {
			r->errors++;
			continue;
		}
		/* write the sequence into every page, through the iovecs, slowly */
		for (int k = 0; k < n; k++)
			for (size_t off = 0; off < iov[k].iov_len; off += PAGE)
				for (size_t w = 0; w < PAGE; w += 512)
					memcpy((char *)iov[k].iov_base + off + w, &seq, 8);
		for (unsigned i = 0; i < np; i++)
			r->expect[p + i] = seq;
		mm_dma_unmap(r->mm, &r->h, (gpa_t)p * PAGE, (uint64_t)np * PAGE);
		mm_dma_quiesce(&r->h);
		seq++;
		r->writes++;
	}
	mm_dma_idle(&r->h);
	return NULL;
}

static void test_race(void)
{
	struct mm_config c = two_nodes(8 * MIB);
	struct mm mm;
	struct race *r = calloc(1, sizeof(*r));
	pthread_t t;
	uint64_t s = unit_seed(0x5eedd3a);
	uint64_t moved = 0, pinned = 0, bad = 0;

	CU_ASSERT_FATAL(r != NULL);
	c.mig.batch_frames = 64; /* many small batches */
	CU_ASSERT_EQUAL_FATAL(create(&mm, &c), 0);
	r->mm = &mm;
	r->seed = s;
	CU_ASSERT_EQUAL_FATAL(mm_dma_holder_init(&mm, &r->h, "race", NULL, NULL), 0);
	/* split the 2 MiB frame first (every other page elsewhere): while it is one huge
	 * record, a single pin anywhere in it holds all of it, and a slow device thread
	 * (a loaded machine) would keep every migration off it */
	for (unsigned p = 0; p < RACE_PAGES; p += 2) {
		struct mig_range one = { (gpa_t)p * PAGE, PAGE };
		struct mig_result res;

		CU_ASSERT_EQUAL_FATAL(mm_migrate(&mm, &one, 1, 1, &res), 0);
	}
	CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, device_thread, r), 0);
	for (int i = 0; i < 400; i++) {
		uint64_t p = rnd(&s) % RACE_PAGES, n = 1 + rnd(&s) % 64;
		struct mig_range rg = { p * PAGE, (p + n > RACE_PAGES ? RACE_PAGES - p : n) * PAGE };
		struct mig_result res;

		CU_ASSERT_EQUAL(mm_migrate(&mm, &rg, 1, (unsigned)(i & 1), &res), 0);
		moved += res.pages;
		pinned += res.pinned;
	}
	__atomic_store_n(&r->stop, true, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	for (unsigned p = 0; p < RACE_PAGES; p++) {
		uint64_t got[PAGE / 8];

		CU_ASSERT_EQUAL(mm_guest_read(&mm, (gpa_t)p * PAGE, got, PAGE), 0);
		for (size_t w = 0; w < PAGE / 8; w += 64)
			if (got[w] != r->expect[p] && !bad++)
				fprintf(stderr, "\n  page %u word %zu: %#llx, want %#llx (seed %#llx)\n", p,
					w, (unsigned long long)got[w],
					(unsigned long long)r->expect[p], (unsigned long long)r->seed);
		/* the alias (what vCPUs see) agrees */
		CU_ASSERT_EQUAL(memcmp(mm_alias_at(&mm, (gpa_t)p * PAGE), got, PAGE), 0);
	}
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT_EQUAL(r->errors, 0);
	CU_ASSERT(r->writes > 0);
	CU_ASSERT(moved > 0);
	CU_ASSERT_EQUAL(mm.pins.short_now, 0);
	fprintf(stderr, "\n    %llu device writes, %llu pages moved, %llu skipped pinned, "
		"%llu waits for a batch ",
		(unsigned long long)r->writes, (unsigned long long)moved,
		(unsigned long long)pinned, (unsigned long long)r->h.st.migration_waits);
	mm_dma_holder_destroy(&r->h);
	mm_destroy(&mm);
	free(r);
}

/* Hostile ranges from a driver: whatever mm_dma_map answers, it leaves no pin behind on
 * failure, covers exactly the range on success, and never points outside the pools. */
static void test_hostile_ranges(void)
{
	struct mm_config c = two_nodes(4 * MIB);
	struct mm mm;
	struct mm_dma_holder h;
	uint64_t s = unit_seed(0xbadd0a11), size = 8 * MIB;
	unsigned ok = 0, efault = 0, e2big = 0;

	CU_ASSERT_EQUAL_FATAL(create(&mm, &c), 0);
	CU_ASSERT_EQUAL_FATAL(mm_dma_holder_init(&mm, &h, "hostile", NULL, NULL), 0);
	mm_dma_busy(&h);
	for (int i = 0; i < 20000; i++) {
		static const uint64_t edges[] = { 0, 1, 4095, 4096, 2 * MIB - 1, 2 * MIB };
		struct iovec iov[8];
		uint64_t kind = rnd(&s) % 6, gpa, len, sum = 0;
		unsigned max = 1 + (unsigned)(rnd(&s) % 8);
		int n;

		switch (kind) {
		case 0: /* near the end of RAM */
			gpa = size - rnd(&s) % 9000;
			len = rnd(&s) % 20000;
			break;
		case 1: /* wrapping */
			gpa = ~0ull - rnd(&s) % 10000;
			len = 1 + rnd(&s) % 100000;
			break;
		case 2: /* huge length */
			gpa = rnd(&s) % size;
			len = (rnd(&s) | 1ull << 40) >> (rnd(&s) % 24);
			break;
		case 3: /* around a 2 MiB / node boundary */
			gpa = (1 + rnd(&s) % 3) * 2 * MIB - edges[rnd(&s) % 6];
			len = edges[rnd(&s) % 6] + rnd(&s) % 3;
			break;
		default: /* anything inside */
			gpa = rnd(&s) % size;
			len = rnd(&s) % (64 * 1024);
			break;
		}
		n = mm_dma_map(&mm, &h, gpa, len, rnd(&s) & 1 ? MM_DMA_TO_DEVICE : MM_DMA_FROM_DEVICE,
			       iov, max);
		if (n < 0) {
			CU_ASSERT(n == -EFAULT || n == -E2BIG);
			efault += n == -EFAULT;
			e2big += n == -E2BIG;
			if (n == -EFAULT)
				CU_ASSERT(gpa > size || len > size - gpa);
		} else {
			CU_ASSERT(gpa <= size && len <= size - gpa);
			CU_ASSERT((unsigned)n <= max);
			for (int k = 0; k < n; k++) {
				const unsigned char *b = iov[k].iov_base;
				bool inside = false;

				for (unsigned p = 0; p < mm.nr_pools; p++)
					inside |= b >= mm.pools[p].base &&
						  b + iov[k].iov_len <= mm.pools[p].base +
									   (mm.pools[p].nr_frames << 12);
				CU_ASSERT(inside);
				sum += iov[k].iov_len;
			}
			CU_ASSERT_EQUAL(sum, len);
			mm_dma_unmap(&mm, &h, gpa, len);
			ok++;
		}
		if (mm.pins.short_now) {
			CU_FAIL("a pin stayed behind");
			fprintf(stderr, "\n  gpa %#llx len %#llx -> %d (seed %#llx)\n",
				(unsigned long long)gpa, (unsigned long long)len, n,
				(unsigned long long)s);
			break;
		}
	}
	CU_ASSERT(ok > 0 && efault > 0 && e2big > 0);
	mm_dma_holder_destroy(&h);
	mm_destroy(&mm);
}

/* Migration returns its source to the host (one punch per freed run), unless kept warm. */
static void returns_source(bool keep)
{
	struct mm_config c = two_nodes(8 * MIB);
	struct mm mm;
	struct mig_range rg = { 0, 8 * MIB };
	struct mig_result res;
	static unsigned char buf[8 * MIB];
	struct pool *p0;

	c.mig.keep_freed = keep;
	CU_ASSERT_EQUAL_FATAL(create(&mm, &c), 0);
	memset(buf, 0x5a, sizeof(buf));
	CU_ASSERT_EQUAL(mm_guest_write(&mm, 0, buf, sizeof(buf)), 0); /* all of node 0 */
	p0 = &mm.pools[mm_pool_get(&mm, 0)];
	CU_ASSERT(pool_resident_bytes(p0) >= 8 * MIB);
	CU_ASSERT_EQUAL(mm_migrate(&mm, &rg, 1, 1, &res), 0);
	CU_ASSERT_EQUAL(res.pages, 2048);
	pthread_mutex_lock(&mm.lock);
	mm_flush_and_free(&mm);
	pthread_mutex_unlock(&mm.lock);
	if (keep) {
		CU_ASSERT(pool_resident_bytes(p0) >= 8 * MIB);
		CU_ASSERT_EQUAL(p0->punch_calls, 0);
	} else {
		CU_ASSERT(pool_resident_bytes(p0) < 1 * MIB);
		CU_ASSERT_EQUAL(p0->punched_frames, 2048);
		CU_ASSERT(p0->punch_calls >= 1 && p0->punch_calls <= res.runs);
	}
	memset(buf, 0, sizeof(buf));
	CU_ASSERT_EQUAL(mm_guest_read(&mm, 0, buf, sizeof(buf)), 0);
	CU_ASSERT(buf[0] == 0x5a && buf[sizeof(buf) - 1] == 0x5a);
	mm_destroy(&mm);
}

static void test_returns_source(void)
{
	returns_source(false);
}

static void test_keep_warm(void)
{
	returns_source(true);
}

/* Readers (monitor and device paths) of a 2 MiB frame that migration keeps splitting (one
 * page moves) and re-forming (the whole 2 MiB moves): never a false "bad address". */
struct splitter {
	struct mm *mm;
	volatile bool stop;
	uint64_t reads, errors;
	int last_err;
	gpa_t last_gpa;
};

static void *split_reader(void *arg)
{
	struct splitter *sp = arg;
	struct mm_dma_holder h;
	uint64_t s = 0x9e3779b97f4a7c15ull, v;

	if (mm_dma_holder_init(sp->mm, &h, "reader", NULL, NULL))
		return NULL;
	mm_dma_busy(&h);
	while (!__atomic_load_n(&sp->stop, __ATOMIC_ACQUIRE)) {
		gpa_t g = (rnd(&s) % 512) * PAGE;
		int r = (rnd(&s) & 1) ? mm_guest_read(sp->mm, g, &v, 8)
				      : mm_dma_read(sp->mm, &h, g, &v, 8);

		if (r) {
			__atomic_add_fetch(&sp->errors, 1, __ATOMIC_RELAXED);
			__atomic_store_n(&sp->last_err, r, __ATOMIC_RELAXED);
			__atomic_store_n(&sp->last_gpa, g, __ATOMIC_RELAXED);
		}
		__atomic_add_fetch(&sp->reads, 1, __ATOMIC_RELAXED);
		mm_dma_quiesce(&h);
	}
	mm_dma_idle(&h);
	mm_dma_holder_destroy(&h);
	return NULL;
}

static void test_split_collapse_readers(void)
{
	struct mm_config c = two_nodes(4 * MIB);
	struct mm mm;
	struct splitter sp = { .mm = &mm };
	pthread_t t[2];
	uint64_t s = unit_seed(0x5b117);

	CU_ASSERT_EQUAL_FATAL(create(&mm, &c), 0);
	for (int i = 0; i < 2; i++)
		CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, split_reader, &sp), 0);
	for (int i = 0; i < 3000; i++) {
		struct mig_range one = { (rnd(&s) % 512) * PAGE, PAGE }, all = { 0, 2 * MIB };
		struct mig_result res;

		/* split (one page leaves), then re-form (the rest follows) */
		CU_ASSERT_EQUAL(mm_migrate(&mm, &one, 1, (unsigned)(i & 1) ^ 1, &res), 0);
		CU_ASSERT_EQUAL(mm_migrate(&mm, &all, 1, (unsigned)(i & 1) ^ 1, &res), 0);
	}
	__atomic_store_n(&sp.stop, true, __ATOMIC_RELEASE);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	if (sp.errors)
		fprintf(stderr, "\n  %llu of %llu reads failed, last %d at %#llx\n",
			(unsigned long long)sp.errors, (unsigned long long)sp.reads, sp.last_err,
			(unsigned long long)sp.last_gpa);
	CU_ASSERT_EQUAL(sp.errors, 0);
	CU_ASSERT(sp.reads > 0);
	mm_destroy(&mm);
}

static CU_TestInfo tests[] = {
	{ "split and re-formed huge frames: readers never fail", test_split_collapse_readers },
	{ "migration returns its source, one punch per run", test_returns_source },
	{ "--keep-warm keeps it", test_keep_warm },
	{ "hostile ranges: right answers, no pin left behind", test_hostile_ranges },
	{ "pin counter: bias, overflow, mark vs pin", test_pin_counter },
	{ "IOTLB: hits, stale entries, generations, frees", test_iotlb },
	{ "drain before skip: a transient reference", test_drain_transient },
	{ "drain before skip: a real pin is skipped", test_drain_real_pin },
	{ "long-term pins: home node, never churned", test_longterm },
	{ "device writes while pages move: nothing lost", test_race },
	CU_TEST_INFO_NULL,
};

UNIT_MAIN("dma", tests)
