// SPDX-License-Identifier: MIT
/*
 * The migration engine on the `sim` backend over an arm64-format map: randomized batches
 * with simulated agents accessing memory during them (also from inside the copy, i.e.
 * while the batch is write-protected), pool exhaustion, zero checker reports, and the
 * invalidation count with and without deferral. Plus the generation and deferred-free
 * logic.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mm/backend_sim.h"
#include "mm/copy_pool.h"
#include "mm/dma.h"
#include "mm/migrate.h"
#include "tests/unit/unit.h"

#define MIB (1ull << 20)
#define POOL_FRAMES (64 * MIB / 4096) /* every pool capped at 64 MiB in these tests */
#define AGENTS 4

struct env {
	struct s2_sim sim;
	struct mm mm;
	uint64_t rng;
	unsigned write_pct; /* agent accesses that are writes, % */
	unsigned vcpus; /* agents [0, vcpus) act as vCPUs (the rest are devices) */
	uint64_t writes_in_copy_blocked, writes_in_copy_leaked;
	const struct mig_range *copying; /* pages being copied right now */
	size_t ncopying;
	bool quiet_copy; /* the copy hook makes no agent accesses (contents stay put) */
};

static uint64_t rnd(struct env *e)
{
	e->rng ^= e->rng << 13;
	e->rng ^= e->rng >> 7;
	e->rng ^= e->rng << 17;
	return e->rng;
}

static uint64_t frame_index(void *ctx, hpa_t pa)
{
	uint64_t pool = pa >> MM_POOL_SHIFT, f = (pa & ((1ull << MM_POOL_SHIFT) - 1)) >> 12;

	(void)ctx;
	return pool < 4 && f < POOL_FRAMES ? pool * POOL_FRAMES + f : UINT64_MAX;
}

/* An agent access; a write that the map refuses takes the vCPU's fault path. */
static void access_page(struct env *e, unsigned agent, gpa_t gpa, bool write)
{
	int r = s2_sim_access(&e->sim, agent, gpa, write);

	if (r == -EACCES && write) {
		CU_ASSERT_EQUAL(mm_handle_write_fault_locked(&e->mm, gpa), 0);
		CU_ASSERT_EQUAL(s2_sim_access(&e->sim, agent, gpa, true), 0);
	} else {
		CU_ASSERT_EQUAL(r, 0);
	}
}

static void random_accesses(struct env *e, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		access_page(e, (unsigned)(rnd(e) % e->vcpus), (rnd(e) % (e->mm.cfg.mem_size / 4096)) * 4096,
			    rnd(e) % 100 < e->write_pct);
}

/* The copy hook: the batch is write-protected now. Agents keep going; writes to pages
 * of the batch must be refused (they would be lost), reads must work. */
static int sim_copy(void *ctx, struct mm *mm, unsigned sp, uint64_t sf, unsigned dp, uint64_t df,
		    uint64_t n)
{
	struct env *e = ctx;

	for (unsigned i = 0; i < 8 && !e->quiet_copy; i++) {
		struct s2_leaf l;
		unsigned lvl;
		gpa_t g = (rnd(e) % (mm->cfg.mem_size / 4096)) * 4096;
		int r;

		if (s2_walk(&mm->map, g, &l, &lvl))
			continue;
		r = s2_sim_access(&e->sim, (unsigned)(rnd(e) % e->vcpus), g, true);
		if (!(l.perm & S2_PERM_W)) {
			CU_ASSERT_EQUAL(r, -EACCES); /* protected: the vCPU would wait */
			e->writes_in_copy_blocked += r == -EACCES;
			e->writes_in_copy_leaked += r == 0;
		}
		CU_ASSERT_EQUAL(s2_sim_access(&e->sim, (unsigned)(rnd(e) % e->vcpus), g, false), 0);
	}
	/* the destination was just allocated: no longer freed, then same contents */
	s2_sim_frame_alloc(&e->sim, mm_pa(dp, df), n * 4096);
	s2_sim_frame_copy(&e->sim, mm_pa(dp, df), mm_pa(sp, sf), n * 4096);
	return 0;
}

static void sim_free(void *ctx, struct mm *mm, unsigned pool, uint64_t first, uint64_t n)
{
	struct env *e = ctx;

	s2_sim_frame_free(&e->sim, mm_pa(pool, first), n * 4096);
}

static void env_init_tl(struct env *e, bool defer, bool lazy, uint64_t cap_frames,
			uint32_t timeline_cap)
{
	struct mm_config c = { .mem_size = 32 * MIB, .nr_nodes = 1, .fmt = &s2_format_arm64,
			       .be = &s2_sim_ops, .copy = sim_copy, .on_free = sim_free,
			       .mig = { .lazy_writable = lazy, .defer_invalidation = defer,
					.cap_frames = cap_frames, .batch_frames = 1024 },
			       .timeline_cap = timeline_cap };

	memset(e, 0, sizeof(*e));
	e->rng = unit_seed(0x1234567);
	e->write_pct = 10;
	e->vcpus = AGENTS;
	c.nodes[0] = (struct mm_guest_node){ .id = 0, .size = 32 * MIB, .host = 0 };
	c.nr_caps = 3;
	for (unsigned i = 0; i < 3; i++)
		c.caps[i] = (struct mm_pool_cap){ .node = i, .bytes = i == 2 ? 8 * MIB : 64 * MIB };
	c.be_ctx = &e->sim;
	c.copy_ctx = e;
	CU_ASSERT_EQUAL_FATAL(s2_sim_init(&e->sim, AGENTS, 4 * POOL_FRAMES, 0), 0);
	e->sim.frame_index = frame_index;
	CU_ASSERT_EQUAL_FATAL(mm_create(&e->mm, &c), 0);
	s2_sim_attach(&e->sim, &e->mm.map);
	for (unsigned p = 0; p < 4; p++)
		s2_sim_frame_alloc(&e->sim, mm_pa(p, 0), POOL_FRAMES * 4096);
}

static void env_init(struct env *e, bool defer, bool lazy, uint64_t cap_frames)
{
	env_init_tl(e, defer, lazy, cap_frames, 0);
}

static void env_fini(struct env *e)
{
	mm_destroy(&e->mm);
	s2_sim_destroy(&e->sim);
}

/* Every page still on a tracked frame, none freed, and each pool's used count matches. */
static void check_backing(struct env *e)
{
	uint64_t used[4] = { 0 };

	for (gpa_t g = 0; g < e->mm.cfg.mem_size; g += 4096) {
		unsigned pool;
		uint64_t off;

		CU_ASSERT_EQUAL_FATAL(mm_gpa_backing(&e->mm, g, &pool, &off), 0);
		CU_ASSERT_FALSE(e->sim.freed[pool * POOL_FRAMES + off / 4096]);
		CU_ASSERT(pool_frame_used(&e->mm.pools[pool], off / 4096));
		used[pool]++;
	}
	pthread_mutex_lock(&e->mm.lock);
	mm_flush_and_free(&e->mm);
	pthread_mutex_unlock(&e->mm.lock);
	for (unsigned p = 0; p < e->mm.nr_pools; p++)
		CU_ASSERT_EQUAL(e->mm.pools[p].nr_frames - e->mm.pools[p].nr_free, used[p]);
}

static void run_random(bool defer, bool lazy)
{
	struct env e;
	uint64_t moved = 0, aborted = 0;

	env_init(&e, defer, lazy, 2048);
	for (int round = 0; round < 150; round++) {
		struct mig_range r[8];
		struct mig_result res;
		size_t n = 1 + rnd(&e) % 8;
		unsigned node = (unsigned)(rnd(&e) % 3);

		for (size_t i = 0; i < n; i++) {
			uint64_t pages = rnd(&e) % 4 ? 1 + rnd(&e) % 64 : 512 + rnd(&e) % 2048;

			r[i].gpa = (rnd(&e) % (e.mm.cfg.mem_size / 4096)) * 4096;
			if (r[i].gpa + pages * 4096 > e.mm.cfg.mem_size)
				pages = (e.mm.cfg.mem_size - r[i].gpa) / 4096;
			r[i].len = pages * 4096;
		}
		pthread_mutex_lock(&e.mm.lock);
		random_accesses(&e, 64);
		pthread_mutex_unlock(&e.mm.lock);
		CU_ASSERT_EQUAL(mm_migrate(&e.mm, r, n, node, &res), 0);
		moved += res.pages;
		aborted += res.aborted;
		/* every page of the request is on the target, or counted as aborted */
		for (size_t i = 0; i < n && !res.aborted; i++)
			for (gpa_t g = r[i].gpa; g < r[i].gpa + r[i].len; g += 4096) {
				unsigned pool;
				uint64_t off;

				CU_ASSERT_EQUAL(mm_gpa_backing(&e.mm, g, &pool, &off), 0);
				CU_ASSERT_EQUAL(e.mm.pools[pool].node, node);
			}
	}
	check_backing(&e);
	CU_ASSERT(moved > 10000);
	CU_ASSERT(aborted > 0); /* node 2's 8 MiB pool ran out now and then */
	CU_ASSERT(e.writes_in_copy_blocked > 0);
	CU_ASSERT_EQUAL(e.writes_in_copy_leaked, 0);
	if (s2_sim_violations(&e.sim))
		fprintf(stderr, "\n  %s\n", e.sim.last);
	CU_ASSERT_EQUAL(s2_sim_violations(&e.sim), 0);
	env_fini(&e);
}

static void test_random_immediate_eager(void)
{
	run_random(false, false);
}

static void test_random_deferred_lazy(void)
{
	run_random(true, true);
}

static void test_random_deferred_eager(void)
{
	run_random(true, false);
}

/*
 * A read-mostly guest whose memory is churned between two nodes: count invalidations in
 * the steady state, after a warm-up that visited every area once (the first visit must
 * write-protect writable pages in both modes; that invalidation is never deferrable).
 */
static uint64_t churn_invalidations(bool defer, uint64_t *violations, uint64_t *total)
{
	struct env e;
	uint64_t t, warm = 0;

	env_init(&e, defer, true, 4096);
	e.write_pct = 0;
	for (int round = 0; round < 48; round++) {
		if (round == 8)
			warm = e.sim.tlbi_calls;
		struct mig_range r = { .gpa = (uint64_t)(round % 8) * 4 * MIB, .len = 4 * MIB };
		struct mig_result res;

		/* scattered 64 KiB pieces so each batch has many runs */
		for (unsigned k = 0; k < 16; k++) {
			struct mig_range piece = { r.gpa + k * 256 * 1024, 64 * 1024 };

			CU_ASSERT_EQUAL(mm_migrate(&e.mm, &piece, 1, (unsigned)(round / 8 + 1) % 2, &res), 0);
		}
		pthread_mutex_lock(&e.mm.lock);
		random_accesses(&e, 256);
		pthread_mutex_unlock(&e.mm.lock);
	}
	pthread_mutex_lock(&e.mm.lock);
	mm_flush_and_free(&e.mm); /* the deferred flush is counted too */
	pthread_mutex_unlock(&e.mm.lock);
	t = e.sim.tlbi_calls - warm;
	*total = e.sim.tlbi_calls;
	*violations = s2_sim_violations(&e.sim);
	if (*violations)
		fprintf(stderr, "\n  %s\n", e.sim.last);
	env_fini(&e);
	return t;
}

static void test_deferral_saves_invalidations(void)
{
	uint64_t v1, v2, t1, t2;
	uint64_t immediate = churn_invalidations(false, &v1, &t1);
	uint64_t deferred = churn_invalidations(true, &v2, &t2);

	printf(" [steady-state invalidations: immediate %lu, deferred %lu, %.1f%% fewer; "
	       "with warm-up %lu vs %lu] ",
	       (unsigned long)immediate, (unsigned long)deferred,
	       100.0 * (1.0 - (double)deferred / (double)immediate), (unsigned long)t1,
	       (unsigned long)t2);
	CU_ASSERT_EQUAL(v1, 0);
	CU_ASSERT_EQUAL(v2, 0);
	CU_ASSERT(deferred * 10 <= immediate); /* at least 90% fewer */
}

/* ---- generations and the deferred-free queue ---- */

static uint64_t freed_frames;
static void count_free(void *ctx, unsigned pool, uint64_t first, uint64_t n)
{
	(void)ctx;
	(void)pool;
	(void)first;
	freed_frames += n;
}

static void test_generations_wrap(void)
{
	struct gen_tracker g;
	struct defer_queue q;
	int vc, dev;

	/* start just below 2^64: every comparison must survive the wrap */
	gen_init(&g, UINT64_MAX - 2);
	vc = gen_holder_add(&g, "vcpus");
	dev = gen_holder_add(&g, "dev0");
	CU_ASSERT(vc >= 0 && dev >= 0);
	defer_init(&q, 100);
	freed_frames = 0;
	for (int i = 0; i < 6; i++) {
		uint64_t gen = gen_advance(&g);

		CU_ASSERT_EQUAL(defer_push(&q, 0, (uint64_t)i * 10, 10, gen), 0);
	}
	CU_ASSERT_EQUAL(gen_current(&g), 3); /* wrapped */
	CU_ASSERT_EQUAL(q.frames, 60);
	/* the vCPUs flushed everything, the device nothing: nothing may be freed */
	gen_publish(&g, vc, gen_current(&g));
	CU_ASSERT_EQUAL(defer_reap(&q, gen_min_done(&g), count_free, NULL), 0);
	/* the device passes the third batch (generation 0 after the wrap) */
	gen_publish(&g, dev, 0);
	CU_ASSERT_EQUAL(defer_reap(&q, gen_min_done(&g), count_free, NULL), 30);
	CU_ASSERT_EQUAL(q.frames, 30);
	/* publishing an older generation never moves a holder back */
	gen_publish(&g, dev, UINT64_MAX - 1);
	CU_ASSERT_EQUAL(gen_min_done(&g), 0);
	gen_publish(&g, dev, 3);
	CU_ASSERT_EQUAL(defer_reap(&q, gen_min_done(&g), count_free, NULL), 30);
	CU_ASSERT_EQUAL(freed_frames, 60);
	CU_ASSERT_EQUAL(q.frames, 0);
	CU_ASSERT_EQUAL(q.frames_max, 60);
	/* a removed holder no longer holds frames back */
	CU_ASSERT_EQUAL(defer_push(&q, 0, 0, 5, gen_advance(&g)), 0);
	gen_holder_remove(&g, dev);
	gen_publish(&g, vc, gen_current(&g));
	CU_ASSERT_EQUAL(defer_reap(&q, gen_min_done(&g), count_free, NULL), 5);
	defer_destroy(&q);
}

static void test_defer_cap(void)
{
	struct defer_queue q;

	defer_init(&q, 100);
	CU_ASSERT_EQUAL(defer_push(&q, 0, 0, 100, 1), 0);
	CU_ASSERT_FALSE(defer_over_cap(&q));
	CU_ASSERT_EQUAL(defer_push(&q, 0, 100, 1, 2), 0);
	CU_ASSERT(defer_over_cap(&q));
	defer_destroy(&q);
}

/* With a tiny cap the engine must flush and free while migrating (forced flushes). */
static void test_engine_cap_forces_flush(void)
{
	struct env e;
	struct mig_range r = { 0, 16 * MIB };
	struct mig_result res;

	env_init(&e, true, true, 256);
	CU_ASSERT_EQUAL(mm_migrate(&e.mm, &r, 1, 1, &res), 0);
	CU_ASSERT_EQUAL(res.pages, 4096);
	CU_ASSERT(e.mm.mig.forced_flushes > 0);
	CU_ASSERT(e.mm.deferred.frames_max <= 256 + 1024);
	CU_ASSERT_EQUAL(s2_sim_violations(&e.sim), 0);
	check_backing(&e);
	env_fini(&e);
}

/*
 * A device agent (its own IOTLB, not shot down by the map's invalidations) reads pages
 * that then move. The engine must not free the old frames before the device's holder
 * publishes the batch's generation: the device reading through its stale entries meets
 * no freed frame. A device that claims to be idle while it still holds entries (a bug the
 * checker must catch) does reach a freed frame, and the model reports it.
 */
static void test_device_stale_iotlb(void)
{
	struct env e;
	struct mm_dma_holder h;
	const unsigned dev = AGENTS - 1;
	struct mig_range rg = { 0, 1 * MIB };
	struct mig_result res;

	env_init(&e, false, false, 0);
	e.vcpus = AGENTS - 1; /* the copy hook's vCPU accesses leave the device alone */
	s2_sim_agent_set_device(&e.sim, dev, true);
	CU_ASSERT_EQUAL_FATAL(mm_dma_holder_init(&e.mm, &h, "sim-device", NULL, NULL), 0);
	mm_dma_busy(&h);
	for (gpa_t g = 0; g < rg.len; g += 4096)
		CU_ASSERT_EQUAL(s2_sim_access(&e.sim, dev, g, false), 0);
	CU_ASSERT_EQUAL_FATAL(mm_migrate(&e.mm, &rg, 1, 1, &res), 0);
	CU_ASSERT_EQUAL(res.pages, rg.len / 4096);
	pthread_mutex_lock(&e.mm.lock);
	mm_flush_and_free(&e.mm);
	pthread_mutex_unlock(&e.mm.lock);
	CU_ASSERT(e.mm.deferred.frames > 0); /* held for the device */
	for (gpa_t g = 0; g < rg.len; g += 4096) /* stale entries: old frames, still live */
		CU_ASSERT_EQUAL(s2_sim_access(&e.sim, dev, g, false), 0);
	CU_ASSERT_EQUAL(e.sim.violations[SIM_UAF], 0);

	/* the device's quiescent point: drop the IOTLB, publish; now the frames go */
	s2_sim_agent_flush(&e.sim, dev);
	mm_dma_quiesce(&h);
	pthread_mutex_lock(&e.mm.lock);
	mm_flush_and_free(&e.mm);
	pthread_mutex_unlock(&e.mm.lock);
	CU_ASSERT_EQUAL(e.mm.deferred.frames, 0);
	for (gpa_t g = 0; g < rg.len; g += 4096)
		CU_ASSERT_EQUAL(s2_sim_access(&e.sim, dev, g, false), 0);
	CU_ASSERT_EQUAL(s2_sim_violations(&e.sim), 0);

	/* a buggy device: says idle, keeps its entries; the checker reports the access */
	CU_ASSERT_EQUAL_FATAL(mm_migrate(&e.mm, &rg, 1, 0, &res), 0);
	gen_holder_set_idle(&e.mm.gens, h.holder, true);
	pthread_mutex_lock(&e.mm.lock);
	mm_flush_and_free(&e.mm);
	pthread_mutex_unlock(&e.mm.lock);
	/* (the IOTLB holds the last 64 pages read) */
	CU_ASSERT_EQUAL(s2_sim_access(&e.sim, dev, rg.len - 4096, false), 0);
	CU_ASSERT(e.sim.violations[SIM_UAF] > 0);
	mm_dma_holder_destroy(&h);
	env_fini(&e);
}

/* The ring itself: order, wrap-around, lost counts, partial reads. */
static void test_timeline_ring(void)
{
	struct mm_timeline t;
	struct mm_tl_event out[8];
	uint64_t cur = 0, lost = 99;

	CU_ASSERT_EQUAL_FATAL(mm_timeline_init(&t, 0), 0);
	mm_timeline_push(&t, &(struct mm_tl_event){ .kind = MM_TL_BATCH });
	CU_ASSERT_EQUAL(mm_timeline_read(&t, &cur, out, 8, &lost), 0); /* off: nothing */
	mm_timeline_destroy(&t);

	CU_ASSERT_EQUAL_FATAL(mm_timeline_init(&t, 4), 0);
	CU_ASSERT_EQUAL(mm_timeline_read(&t, &cur, out, 8, &lost), 0);
	CU_ASSERT_EQUAL(lost, 0);
	for (uint64_t i = 0; i < 3; i++)
		mm_timeline_push(&t, &(struct mm_tl_event){ .kind = MM_TL_BATCH, .pages = i });
	CU_ASSERT_EQUAL(mm_timeline_read(&t, &cur, out, 2, &lost), 2); /* partial */
	CU_ASSERT_EQUAL(out[0].seq, 1);
	CU_ASSERT_EQUAL(out[1].seq, 2);
	CU_ASSERT_EQUAL(out[1].pages, 1);
	CU_ASSERT_EQUAL(cur, 2);
	for (uint64_t i = 3; i < 10; i++) /* seq 4..10: the ring keeps 7..10 */
		mm_timeline_push(&t, &(struct mm_tl_event){ .kind = MM_TL_FAULT, .pages = i });
	CU_ASSERT_EQUAL(mm_timeline_read(&t, &cur, out, 8, &lost), 4);
	CU_ASSERT_EQUAL(lost, 4); /* 3, 4, 5, 6 were overwritten before this read */
	for (unsigned i = 0; i < 4; i++) {
		CU_ASSERT_EQUAL(out[i].seq, 7 + i);
		CU_ASSERT_EQUAL(out[i].pages, 6 + i);
	}
	CU_ASSERT_EQUAL(cur, 10);
	CU_ASSERT_EQUAL(mm_timeline_read(&t, &cur, out, 8, &lost), 0);
	CU_ASSERT_EQUAL(lost, 0);
	mm_timeline_destroy(&t);
}

struct tl_reader {
	struct mm *mm;
	volatile bool stop;
	uint64_t events, lost, out_of_order, pages;
	uint64_t phase_sum[MIG_PHASE_NR];
};

/* Drains the timeline under mm->lock while migrations run, checking order. */
static void *tl_reader_main(void *arg)
{
	struct tl_reader *rd = arg;
	uint64_t cur = 0, last_seq = 0, last_start = 0;
	bool done = false;

	while (!done) {
		struct mm_tl_event ev[16];
		uint64_t lost;
		size_t n;

		done = __atomic_load_n(&rd->stop, __ATOMIC_ACQUIRE); /* one more pass after */
		do {
			pthread_mutex_lock(&rd->mm->lock);
			n = mm_timeline_read(&rd->mm->tl, &cur, ev, 16, &lost);
			pthread_mutex_unlock(&rd->mm->lock);
			rd->lost += lost;
			for (size_t i = 0; i < n; i++) {
				rd->events++;
				rd->out_of_order += ev[i].seq != last_seq + 1 ||
						    ev[i].end_ns < ev[i].start_ns;
				if (ev[i].kind == MM_TL_BATCH) {
					uint64_t sum = 0;

					rd->out_of_order += ev[i].start_ns < last_start;
					last_start = ev[i].start_ns;
					rd->pages += ev[i].pages;
					for (unsigned p = 0; p < MIG_PHASE_NR; p++) {
						rd->phase_sum[p] += ev[i].phase_ns[p];
						sum += ev[i].phase_ns[p];
					}
					/* phases are parts of the batch's time */
					rd->out_of_order += sum > ev[i].end_ns - ev[i].start_ns;
				}
				last_seq = ev[i].seq;
			}
		} while (n);
	}
	return NULL;
}

/*
 * The timeline under churn: a reader thread drains it while batches run; with a ring that
 * holds more than the reader can fall behind, no event is lost, sequence numbers are
 * consecutive, batches come in start order with phases inside their time, and the batches'
 * pages and phase times add up to the engine's totals.
 */
static void test_timeline_churn(void)
{
	struct env e;
	struct tl_reader rd = { 0 };
	pthread_t th;
	uint64_t moved = 0, batches = 0;

	env_init_tl(&e, true, false, 2048, 4096);
	rd.mm = &e.mm;
	CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, tl_reader_main, &rd), 0);
	for (int round = 0; round < 200; round++) {
		struct mig_range r = { .gpa = (rnd(&e) % 2048) * 4096, .len = 4096 * (1 + rnd(&e) % 4096) };
		struct mig_result res;

		if (r.gpa + r.len > e.mm.cfg.mem_size)
			r.len = e.mm.cfg.mem_size - r.gpa;
		CU_ASSERT_EQUAL(mm_migrate(&e.mm, &r, 1, (unsigned)round % 2, &res), 0);
		moved += res.pages;
		batches += res.batches;
	}
	__atomic_store_n(&rd.stop, true, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	CU_ASSERT(batches > 100);
	CU_ASSERT_EQUAL(rd.lost, 0);
	CU_ASSERT_EQUAL(rd.out_of_order, 0);
	CU_ASSERT_EQUAL(rd.events, batches); /* no vCPU faults in this test: batches only */
	CU_ASSERT_EQUAL(rd.pages, moved);
	CU_ASSERT_EQUAL(rd.pages, e.mm.mig.pages);
	for (unsigned p = 0; p < MIG_PHASE_NR; p++)
		CU_ASSERT_EQUAL(rd.phase_sum[p], e.mm.mig.phase_ns[p]);
	CU_ASSERT(e.mm.mig.phase_ns[MIG_PHASE_COPY] > 0);
	CU_ASSERT(e.mm.mig.phase_ns[MIG_PHASE_PROTECT] > 0);
	CU_ASSERT(e.mm.mig.phase_ns[MIG_PHASE_REMAP] > 0);
	env_fini(&e);
}

/* ---- the cost model for scattered requests ---- */

/* Contents token of the frame backing @g (the sim model's version of its data). */
static uint32_t token_of(struct env *e, gpa_t g)
{
	unsigned pool;
	uint64_t off;

	if (mm_gpa_backing(&e->mm, g, &pool, &off))
		return 0;
	return e->sim.token[pool * POOL_FRAMES + off / 4096];
}

/*
 * Random scattered requests (a few pages in each of some 2 MiB windows, some pinned
 * pages, a small third pool) with the cost model on or off (exact placement). After
 * every call: every page holds its data (the token of its frame is the one it had),
 * pinned pages did not move, requested pages are on the target unless aborted, and
 * the pages moved beyond the request are exactly res.promoted — none in exact mode.
 */
static void run_model(bool exact)
{
	struct env e;
	const uint64_t pages = 32 * MIB / 4096;
	uint32_t *tok = malloc(pages * sizeof(*tok));
	uint64_t *back = malloc(pages * sizeof(*back));
	uint8_t *want = malloc(pages);
	uint64_t promoted = 0, moved = 0, aborted = 0;

	env_init(&e, false, false, 2048);
	e.quiet_copy = true;
	e.mm.cfg.mig.exact = exact;
	e.mm.cfg.mig.batch_frames = 4096;
	for (int round = 0; round < 60; round++) {
		struct mig_range r[256];
		struct frame *pinned[4];
		gpa_t pg[4];
		struct mig_result res;
		unsigned node = (unsigned)(rnd(&e) % 3);
		size_t n = 0;
		uint64_t extra = 0;

		memset(want, 0, pages);
		for (unsigned w = 0; w < 1 + rnd(&e) % 4; w++) { /* a few windows, 1 page in k */
			uint64_t base = (rnd(&e) % (pages / 512)) * 512, k = 2 + rnd(&e) % 15;

			for (uint64_t p = base + rnd(&e) % k; p < base + 512 && n < 256; p += k) {
				r[n++] = (struct mig_range){ p * 4096, 4096 * (1 + rnd(&e) % 2) };
				want[p] = 1;
				if (r[n - 1].len > 4096 && p + 1 < pages)
					want[p + 1] = 1;
				else
					r[n - 1].len = 4096;
			}
		}
		if (rnd(&e) % 4 == 0 && n < 256) { /* now and then a long run as well */
			uint64_t p = rnd(&e) % (pages - 700);

			r[n++] = (struct mig_range){ p * 4096, 600 * 4096 };
			memset(want + p, 1, 600);
		}
		for (int i = 0; i < 4; i++) { /* pins: never moved */
			pg[i] = (rnd(&e) % pages) * 4096;
			pinned[i] = frame_get(&e.mm.ft, pg[i], NULL);
			if (pinned[i] && frame_pin(pinned[i], 1))
				pinned[i] = NULL;
		}
		pthread_mutex_lock(&e.mm.lock);
		random_accesses(&e, 64);
		pthread_mutex_unlock(&e.mm.lock);
		for (uint64_t p = 0; p < pages; p++) {
			unsigned pool;
			uint64_t off;

			CU_ASSERT_EQUAL_FATAL(mm_gpa_backing(&e.mm, p * 4096, &pool, &off), 0);
			back[p] = mm_pa(pool, off / 4096);
			tok[p] = token_of(&e, p * 4096);
		}
		CU_ASSERT_EQUAL(mm_migrate(&e.mm, r, n, node, &res), 0);
		for (int i = 0; i < 4; i++)
			if (pinned[i])
				frame_unpin(pinned[i], 1);
		moved += res.pages;
		aborted += res.aborted;
		promoted += res.promoted;
		for (uint64_t p = 0; p < pages; p++) {
			unsigned pool;
			uint64_t off;
			bool pinned_here = false;

			CU_ASSERT_EQUAL_FATAL(mm_gpa_backing(&e.mm, p * 4096, &pool, &off), 0);
			CU_ASSERT_EQUAL(token_of(&e, p * 4096), tok[p]); /* its data, wherever */
			for (int i = 0; i < 4; i++)
				pinned_here |= pinned[i] && pg[i] / 4096 == p;
			if (pinned_here) {
				CU_ASSERT_EQUAL(mm_pa(pool, off / 4096), back[p]);
				continue;
			}
			if (want[p]) {
				if (!res.aborted && !res.pinned)
					CU_ASSERT_EQUAL(e.mm.pools[pool].node, node);
			} else if (mm_pa(pool, off / 4096) != back[p]) {
				CU_ASSERT_EQUAL(e.mm.pools[pool].node, node); /* moved: with a window */
				extra++;
			}
		}
		CU_ASSERT_EQUAL(extra, res.promoted);
		if (exact)
			CU_ASSERT_EQUAL(extra, 0);
	}
	check_backing(&e);
	CU_ASSERT(moved > 2000);
	if (exact) {
		CU_ASSERT_EQUAL(promoted, 0);
		CU_ASSERT_EQUAL(e.mm.mig.windows_promoted, 0);
	} else {
		CU_ASSERT(e.mm.mig.windows_promoted > 0);
		CU_ASSERT_EQUAL(e.mm.mig.promoted_pages, promoted);
	}
	if (s2_sim_violations(&e.sim))
		fprintf(stderr, "\n  %s\n", e.sim.last);
	CU_ASSERT_EQUAL(s2_sim_violations(&e.sim), 0);
	printf(" [%s: %lu pages moved, %lu promoted, %lu windows, %lu aborted] ",
	       exact ? "exact" : "model", (unsigned long)moved, (unsigned long)promoted,
	       (unsigned long)e.mm.mig.windows_promoted, (unsigned long)aborted);
	env_fini(&e);
	free(tok);
	free(back);
	free(want);
}

static void test_model_on(void)
{
	run_model(false);
}

static void test_model_exact(void)
{
	run_model(true);
}

/* The model's decision: one page in 8 of a window moves the window whole, one page in
 * 256 does not (two runs of 7 us never outweigh a 130 us copy). */
static void test_model_decision(void)
{
	struct env e;
	struct mig_range r[64];
	struct mig_result res;

	env_init(&e, false, false, 2048);
	e.quiet_copy = true;
	for (int i = 0; i < 64; i++)
		r[i] = (struct mig_range){ 4 * MIB + (uint64_t)i * 8 * 4096, 4096 };
	CU_ASSERT_EQUAL(mm_migrate(&e.mm, r, 64, 1, &res), 0);
	CU_ASSERT_EQUAL(res.pages, 64); /* requested */
	CU_ASSERT_EQUAL(res.promoted, 448);
	CU_ASSERT_EQUAL(res.runs, 1); /* one run: one alias call each way */
	r[0] = (struct mig_range){ 8 * MIB, 4096 };
	r[1] = (struct mig_range){ 8 * MIB + 256 * 4096, 4096 };
	CU_ASSERT_EQUAL(mm_migrate(&e.mm, r, 2, 1, &res), 0);
	CU_ASSERT_EQUAL(res.pages, 2);
	CU_ASSERT_EQUAL(res.promoted, 0);
	CU_ASSERT_EQUAL(e.mm.mig.windows_promoted, 1);
	CU_ASSERT(e.mm.mig.est_run_ns > 0 && e.mm.mig.est_copy2m_ns > 0);
	check_backing(&e);
	env_fini(&e);
}

/* A window whose first pages a piece already holds is never moved whole as well: a
 * range that ends inside a window (its piece walks past the window's start), followed by
 * 1 page in 8 of the same window. Moving such a window whole copied its first pages
 * twice and leaked one set of frames. */
static void test_model_window_taken(void)
{
	struct env e;
	struct mig_range r[160];
	struct mig_result res;
	size_t n = 0;
	uint64_t w0;

	env_init(&e, false, false, 2048);
	e.quiet_copy = true;
	/* a long range from 3.5 MiB to 4 MiB + 100 pages, then 1 in 8 of the rest of the
	 * 4 MiB window: the window starts inside the long range's piece */
	r[n++] = (struct mig_range){ 3 * MIB + MIB / 2, MIB / 2 + 100 * 4096 };
	for (uint64_t p = 104; p < 512; p += 8)
		r[n++] = (struct mig_range){ 4 * MIB + p * 4096, 4096 };
	CU_ASSERT_EQUAL(mm_migrate(&e.mm, r, n, 1, &res), 0);
	CU_ASSERT_EQUAL(res.pages, 128 + 100 + 51);
	CU_ASSERT_EQUAL(res.promoted, 0);
	check_backing(&e);
	/* the 8 MiB window promoted whole, its last request one page past its end, and
	 * 1 in 8 of the 10 MiB window: that one is promoted too (before its first page
	 * could extend the 8 MiB piece), each page moved once */
	n = 0;
	for (uint64_t p = 0; p < 512; p += 8)
		r[n++] = (struct mig_range){ 8 * MIB + p * 4096, 4096 };
	r[n - 1].len = 9 * 4096;
	w0 = e.mm.mig.windows_promoted;
	/* the initial estimates, not what the first call's timers taught the engine (under
	 * ASan and load a sim-backend run can look nearly free next to a copy) */
	e.mm.mig.est_run_ns = e.mm.mig.est_copy2m_ns = 0;
	for (uint64_t p = 8; p < 512; p += 8)
		r[n++] = (struct mig_range){ 10 * MIB + p * 4096, 4096 };
	CU_ASSERT_EQUAL(mm_migrate(&e.mm, r, n, 1, &res), 0);
	CU_ASSERT_EQUAL(res.pages, 64 + 8 + 63);
	CU_ASSERT_EQUAL(res.promoted, (512 - 71) + (512 - 64));
	CU_ASSERT_EQUAL(e.mm.mig.windows_promoted - w0, 2);
	check_backing(&e);
	CU_ASSERT_EQUAL(s2_sim_violations(&e.sim), 0);
	env_fini(&e);
}

/* ---- the copy threads ---- */

struct cp_ctx {
	unsigned *hits;
	int fail_at;
};

static int cp_task(void *ctx, unsigned i)
{
	struct cp_ctx *c = ctx;

	__atomic_fetch_add(&c->hits[i], 1, __ATOMIC_RELAXED);
	return (int)i == c->fail_at ? -EIO : 0;
}

static void *cp_user(void *arg)
{
	struct copy_pool *p = NULL;
	unsigned hits[300];
	struct cp_ctx c = { hits, -1 };
	int bad = 0;

	if (copy_pool_create(&p, 3))
		return (void *)1;
	for (int job = 0; job < 300; job++) {
		unsigned n = 1 + (unsigned)job % 300;

		memset(hits, 0, sizeof(hits));
		c.fail_at = job % 7 == 0 ? (int)(n / 2) : -1;
		bad |= copy_pool_run(p, n, cp_task, &c) != (c.fail_at >= 0 ? -EIO : 0);
		for (unsigned i = 0; i < n; i++)
			bad |= hits[i] != 1; /* every task once, all done on return */
	}
	copy_pool_destroy(p);
	return (void *)(intptr_t)bad;
}

/* Jobs of 1..300 tasks, each run exactly once and finished on return, errors passed
 * back; two pools (two VMs) used from two threads at once. */
static void test_copy_pool(void)
{
	pthread_t a, b;
	void *ra, *rb;
	struct copy_pool *p;

	CU_ASSERT(copy_pool_cpus() >= 1);
	CU_ASSERT_EQUAL(copy_pool_create(&p, 1), -EINVAL);
	CU_ASSERT_EQUAL_FATAL(pthread_create(&a, NULL, cp_user, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(pthread_create(&b, NULL, cp_user, NULL), 0);
	pthread_join(a, &ra);
	pthread_join(b, &rb);
	CU_ASSERT_PTR_NULL(ra);
	CU_ASSERT_PTR_NULL(rb);
}

struct real_vm {
	struct mm mm;
	int err;
	uint64_t bad_pages, hole_data;
};

static uint64_t pattern(gpa_t g, unsigned w)
{
	return (g * 0x9e3779b97f4a7c15ull) ^ w;
}

/*
 * One VM on the kvm backend's alias (no vCPU) with the default copy on 3 copy threads:
 * 48 MiB written, except every fourth 2 MiB (never touched: a hole) and a discarded
 * page in others; migrated 0 -> 1 -> 0 -> 1 in batches large enough for the threads.
 * Every written byte must arrive, holes must stay holes in the destination pool.
 */
static void *real_vm_run(void *arg)
{
	struct real_vm *v = arg;
	const uint64_t size = 48 * MIB;
	struct mm_config c = { .mem_size = size, .nr_nodes = 2, .mig.copy_threads = 3 };
	struct mig_range all = { 0, size - 2 * MIB };
	struct mig_result res;

	c.nodes[0] = (struct mm_guest_node){ .id = 0, .size = size - 2 * MIB, .host = 0 };
	c.nodes[1] = (struct mm_guest_node){ .id = 1, .size = 2 * MIB, .host = 1 };
	if (mm_create(&v->mm, &c)) {
		v->err = -1;
		return NULL;
	}
	for (gpa_t g = 0; g < all.len; g += 4096) {
		uint64_t *p = mm_alias_at(&v->mm, g);

		if ((g / (2 * MIB)) % 4 == 3)
			continue; /* a hole */
		for (unsigned w = 0; w < 512; w += 64)
			p[w] = pattern(g, w);
	}
	for (int trip = 0; trip < 3 && !v->err; trip++) {
		if (mm_migrate(&v->mm, &all, 1, (unsigned)(trip + 1) % 2, &res) ||
		    res.pages != all.len / 4096)
			v->err = -2;
		for (gpa_t g = 0; g < all.len; g += 4096) {
			const uint64_t *p = mm_alias_at(&v->mm, g);
			unsigned pool;
			uint64_t off;

			if ((g / (2 * MIB)) % 4 == 3) {
				if (mm_gpa_backing(&v->mm, g, &pool, &off) ||
				    pool_has_data(&v->mm.pools[pool], off / 4096, 1))
					v->hole_data++;
				continue;
			}
			for (unsigned w = 0; w < 512; w += 64)
				if (p[w] != pattern(g, w)) {
					v->bad_pages++;
					break;
				}
		}
	}
	return NULL;
}

static void test_parallel_copy_two_vms(void)
{
	struct real_vm v[2];
	pthread_t th[2];

	memset(v, 0, sizeof(v));
	for (int i = 0; i < 2; i++)
		CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, real_vm_run, &v[i]), 0);
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		CU_ASSERT_EQUAL(v[i].err, 0);
		CU_ASSERT_EQUAL(v[i].bad_pages, 0);
		CU_ASSERT_EQUAL(v[i].hole_data, 0);
		CU_ASSERT(v[i].mm.mig.parallel_copies > 0);
		CU_ASSERT_PTR_NOT_NULL(v[i].mm.copy_pool);
		if (!v[i].err || v[i].err == -2)
			mm_destroy(&v[i].mm);
	}
}

/* copy_threads = 1: never a pool; small batches never use one either. */
static void test_single_thread_policy(void)
{
	struct mm mm;
	struct mm_config c = { .mem_size = 16 * MIB, .nr_nodes = 2, .mig.copy_threads = 1 };
	struct mig_range all = { 0, 14 * MIB };
	struct mig_result res;

	c.nodes[0] = (struct mm_guest_node){ .id = 0, .size = 14 * MIB, .host = 0 };
	c.nodes[1] = (struct mm_guest_node){ .id = 1, .size = 2 * MIB, .host = 1 };
	CU_ASSERT_EQUAL_FATAL(mm_create(&mm, &c), 0);
	memset(mm_alias_at(&mm, 0), 0x77, 14 * MIB);
	CU_ASSERT_EQUAL(mm_migrate(&mm, &all, 1, 1, &res), 0);
	CU_ASSERT_EQUAL(res.pages, 14 * MIB / 4096);
	CU_ASSERT_PTR_NULL(mm.copy_pool);
	CU_ASSERT_EQUAL(mm.mig.parallel_copies, 0);
	CU_ASSERT_EQUAL(*(unsigned char *)mm_alias_at(&mm, 14 * MIB - 1), 0x77);
	mm_destroy(&mm);
}

static CU_TestInfo tests[] = {
	{ "timeline ring: order, wrap, lost events", test_timeline_ring },
	{ "timeline under churn: nothing lost, phases add up", test_timeline_churn },
	{ "device IOTLB: stale entries never reach freed frames", test_device_stale_iotlb },
	{ "random batches, immediate, eager", test_random_immediate_eager },
	{ "random batches, deferred, lazy", test_random_deferred_lazy },
	{ "random batches, deferred, eager", test_random_deferred_eager },
	{ "deferral: >= 90% fewer invalidations", test_deferral_saves_invalidations },
	{ "generations across the 64-bit wrap", test_generations_wrap },
	{ "deferred-free cap", test_defer_cap },
	{ "engine flushes at the cap", test_engine_cap_forces_flush },
	{ "cost model: data, pins, promoted pages counted", test_model_on },
	{ "cost model off: exact mode moves only requested pages", test_model_exact },
	{ "cost model decision: 1 in 8 promoted, 1 in 256 not", test_model_decision },
	{ "cost model: a window a piece already holds stays exact", test_model_window_taken },
	{ "copy pool: every task once, errors, two pools", test_copy_pool },
	{ "parallel default copy: data and holes, two VMs", test_parallel_copy_two_vms },
	{ "copy_threads 1: no pool", test_single_thread_policy },
	CU_TEST_INFO_NULL,
};

UNIT_MAIN("migrate", tests)
