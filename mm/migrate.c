// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mm/copy_pool.h"
#include "mm/migrate.h"
#include "mm/mark.h"
#include "mm/discard.h"
#include "s2vm/clock.h"

#define HUGE POOL_HUGE_FRAMES
#define PAGE S2_PAGE_SIZE


/* One piece of a batch: [gpa, gpa + n pages) moves from (sp, sf) to (target, df). */
struct piece {
	gpa_t gpa;
	uint64_t n;
	unsigned sp;
	uint64_t sf, df;
	unsigned perm;
	/* of n, pages not requested (a window the cost model moves whole): counted as
	 * promoted, not in mig_result.pages; charged to the moved part of the piece first,
	 * so neither pages nor aborted ever counts more than was requested */
	uint64_t extra;
	bool huge; /* a whole 2 MiB frame of a huge pool: extra counted as huge_extra_pages */
};

/* Of @n pages of piece @p, @moved moved: the requested pages among those moved. */
static uint64_t req_moved(const struct piece *p, uint64_t moved)
{
	return moved > p->extra ? moved - p->extra : 0;
}

/* ... and the requested pages among the @failed ones not moved. */
static uint64_t req_failed(const struct piece *p, uint64_t failed)
{
	uint64_t moved = p->n - failed, left = p->extra > moved ? p->extra - moved : 0;

	return failed > left ? failed - left : 0;
}

void mm_free_frames(void *ctx, unsigned pool, uint64_t first, uint64_t n)
{
	struct mm *mm = ctx;

	pool_free(&mm->pools[pool], first, n);
	/* a failed punch only leaves the memory with the pool, to be reused */
	if (!mm->cfg.mig.keep_freed && !mm->cfg.be && !mm_inject_fail(mm, MM_CALL_FALLOCATE))
		(void)pool_punch(&mm->pools[pool], first, n);
	if (mm->cfg.on_free)
		mm->cfg.on_free(mm->cfg.copy_ctx, mm, pool, first, n);
}

/* After a commit: the vCPU set's caches are clean of everything committed, unless
 * invalidations were deferred. */
static void publish_if_clean(struct mm *mm)
{
	if (!mm->map.flush_pending)
		gen_publish(&mm->gens, mm->vcpu_holder, gen_current(&mm->gens));
}

uint64_t mm_reap_deferred(struct mm *mm)
{
	uint64_t n;

	pthread_mutex_lock(&mm->lock);
	n = defer_reap(&mm->deferred, gen_min_done(&mm->gens), mm_free_frames, mm);
	pthread_mutex_unlock(&mm->lock);
	return n;
}

uint64_t mm_flush_and_free(struct mm *mm)
{
	uint64_t gen = gen_current(&mm->gens); /* read before the flush */

	s2_flush_deferred(&mm->map);
	gen_publish(&mm->gens, mm->vcpu_holder, gen);
	return defer_reap(&mm->deferred, gen_min_done(&mm->gens), mm_free_frames, mm);
}

/* Frames [f, f + n) of @dst must read zero: punch them if they hold anything (frames
 * reused warm). Runs without mm->lock: no pool counters are touched. */
static void zero_frames(struct pool *dst, uint64_t f, uint64_t n)
{
	if (!n || !pool_has_data(dst, f, n))
		return;
	if (pool_punch_uncounted(dst, f, n))
		memset(dst->base + (f << POOL_FRAME_SHIFT), 0, n << POOL_FRAME_SHIFT);
}

#define COPY_WINDOW 8192u /* pages whose residency one mincore() reads */

/*
 * Populate the frames of [df, df + n) the pool does not hold yet, in one call per run
 * of them, rather than one fault per 4 KiB page in the copy. Frames it holds are skipped:
 * populating those costs as much as a third of the copy (a page-table walk per page)
 * and buys nothing, because a free frame the pool holds was last reached through the
 * pool's own mapping (a copy read or wrote it there), so it is mapped there already;
 * where not, the copy only takes minor faults.
 */
static void populate_absent(struct pool *dst, uint64_t df, uint64_t n)
{
	unsigned char vec[COPY_WINDOW];

	for (uint64_t w = 0; w < n; w += COPY_WINDOW) {
		uint64_t wn = n - w < COPY_WINDOW ? n - w : COPY_WINDOW;

		if (mincore(dst->base + ((df + w) << POOL_FRAME_SHIFT), wn << POOL_FRAME_SHIFT,
			    vec)) {
			(void)pool_populate(dst, df + w, wn);
			continue;
		}
		for (uint64_t i = 0, j; i < wn; i = j) {
			for (j = i; j < wn && (vec[j] & 1) == (vec[i] & 1); j++)
				;
			if (!(vec[i] & 1))
				(void)pool_populate(dst, df + w + i, j - i);
		}
	}
}

static void copy_run(struct pool *dst, uint64_t df, const struct pool *src, uint64_t sf,
		     uint64_t n)
{
	if (!n)
		return;
	populate_absent(dst, df, n);
	memcpy(dst->base + (df << POOL_FRAME_SHIFT), src->base + (sf << POOL_FRAME_SHIFT),
	       n << POOL_FRAME_SHIFT);
}

/*
 * Copy only what the source holds: holes (never-touched or discarded pages) stay holes
 * in the destination, so migrating a sparse guest does not make it resident. mincore()
 * tells resident pages in a bounded window; a page it calls absent may still be data
 * (swapped out), which SEEK_DATA tells (shmem counts swap entries as data), so nothing
 * is ever skipped that holds data. Every frame is marked and write-protected: the
 * source cannot change under the scan.
 */
static int default_copy(void *ctx, struct mm *mm, unsigned sp, uint64_t sf, unsigned dp,
			uint64_t df, uint64_t n)
{
	const struct pool *src = &mm->pools[sp];
	struct pool *dst = &mm->pools[dp];
	unsigned char vec[COPY_WINDOW];

	(void)ctx;
	for (uint64_t w = 0; w < n; w += COPY_WINDOW) {
		uint64_t wn = n - w < COPY_WINDOW ? n - w : COPY_WINDOW, i = 0;

		if (mincore(src->base + ((sf + w) << POOL_FRAME_SHIFT), wn << POOL_FRAME_SHIFT,
			    vec)) {
			copy_run(dst, df + w, src, sf + w, wn); /* cannot tell: copy it all */
			continue;
		}
		while (i < wn) {
			uint64_t j = i;

			if (vec[i] & 1) { /* resident: copy the run */
				while (j < wn && (vec[j] & 1))
					j++;
				copy_run(dst, df + w + i, src, sf + w + i, j - i);
				i = j;
				continue;
			}
			while (j < wn && !(vec[j] & 1))
				j++;
			/* absent in [i, j): holes, unless SEEK_DATA finds data (swapped) */
			while (i < j) {
				uint64_t k = j - i, o, hole_end;
				int fd = pool_file_span(src, sf + w + i, &k, &o);
				off_t off = (off_t)o, d = lseek(fd, off, SEEK_DATA);

				if (d < 0 && errno != ENXIO)
					d = off; /* cannot tell: data */
				/* k: the frames of [i, j) in this file (a huge pool's small part
				 * is its own file) */
				hole_end = d < 0 ? i + k
						 : i + ((uint64_t)(d - off) >> POOL_FRAME_SHIFT);
				if (hole_end > j)
					hole_end = j;
				if (hole_end > i) {
					zero_frames(dst, df + w + i, hole_end - i);
					i = hole_end;
				} else { /* data at i (swapped out): copy that page */
					copy_run(dst, df + w + i, src, sf + w + i, 1);
					i++;
				}
			}
		}
	}
	return 0;
}

static int copy_frames(struct mm *mm, unsigned sp, uint64_t sf, unsigned dp, uint64_t df,
		       uint64_t n)
{
	if (mm->cfg.copy)
		return mm->cfg.copy(mm->cfg.copy_ctx, mm, sp, sf, dp, df, n);
	return default_copy(NULL, mm, sp, sf, dp, df, n);
}

/* ---- the copy on more than one thread ---- */

/* 16 MiB: smaller batches (churn-sized ones) are copied by the caller alone: while vCPUs
 * keep the cores busy a second copier only takes CPU from them (migstress under --churn
 * 1,8M moved ~25% fewer pages with 8 MiB batches split on 2 cores) */
#define PAR_MIN_FRAMES 4096u

/* A piece cut to the task it belongs to: [sf, sf + n) of pool sp to [df, ...). */
struct copy_cut {
	unsigned sp;
	uint64_t sf, df, n;
};

struct copy_job {
	struct mm *mm;
	unsigned dp;
	const struct copy_cut *cut;
	const size_t *first; /* task i copies cut[first[i] .. first[i + 1]) */
};

static int copy_task(void *ctx, unsigned i)
{
	const struct copy_job *j = ctx;
	int r = 0;

	for (size_t k = j->first[i]; k < j->first[i + 1] && !r; k++)
		r = default_copy(NULL, j->mm, j->cut[k].sp, j->cut[k].sf, j->dp, j->cut[k].df,
				 j->cut[k].n);
	return r;
}

/* Copiers a batch of @frames gets: 1 for small batches, the hook, or copy_threads 1. */
static unsigned copy_threads_for(const struct mm *mm, uint64_t frames)
{
	unsigned want = mm->cfg.mig.copy_threads;

	if (mm->cfg.copy || frames < PAR_MIN_FRAMES || want == 1)
		return 1;
	if (!want)
		want = copy_pool_cpus();
	return want < COPY_POOL_MAX_THREADS ? want : COPY_POOL_MAX_THREADS;
}

/*
 * Copy the batch's pieces on @threads copiers: the frames are cut into about 4 tasks
 * per copier, each a list of whole pieces or 2 MiB-aligned slices of one (every task
 * does the default copy's hole-preserving copy of its part). Caller holds mm->mig_lock,
 * not mm->lock. Returns 0 or -errno; -EAGAIN if the pool could not be used (nothing was
 * copied: copy on the caller).
 */
static int copy_parallel(struct mm *mm, struct copy_pool *cp, unsigned dp, const struct piece *v,
			 size_t np, uint64_t frames)
{
	unsigned threads = copy_pool_threads(cp), ntasks = 0;
	uint64_t chunk = frames / (threads * 4ull), acc = 0;
	struct copy_cut *cut;
	size_t *first, nc = 0, cap;
	struct copy_job job = { .mm = mm, .dp = dp };
	int r;

	chunk = (chunk + HUGE - 1) / HUGE * HUGE;
	if (chunk < HUGE)
		chunk = HUGE;
	cap = np + frames / chunk + 2;
	cut = malloc(cap * sizeof(*cut));
	first = malloc((cap + 1) * sizeof(*first));
	if (!cut || !first) {
		free(cut);
		free(first);
		return -EAGAIN;
	}
	first[0] = 0;
	for (size_t i = 0; i < np; i++) {
		for (uint64_t off = 0; off < v[i].n;) {
			/* slice at the next chunk boundary of the batch's running count */
			uint64_t n = v[i].n - off, room = chunk - acc % chunk;

			if (n > room)
				n = room;
			cut[nc++] = (struct copy_cut){ v[i].sp, v[i].sf + off, v[i].df + off, n };
			off += n;
			acc += n;
			if (acc % chunk == 0)
				first[++ntasks] = nc;
		}
	}
	if (first[ntasks] != nc)
		first[++ntasks] = nc;
	job.cut = cut;
	job.first = first;
	r = copy_pool_run(cp, ntasks, copy_task, &job);
	free(cut);
	free(first);
	return r;
}

/* The pool for a batch of @frames, made on first use; NULL: copy on the caller. Caller
 * holds mm->lock and mig_lock. */
static struct copy_pool *copy_pool_for(struct mm *mm, uint64_t frames)
{
	unsigned t = copy_threads_for(mm, frames);

	if (t < 2)
		return NULL;
	if (!mm->copy_pool && copy_pool_create(&mm->copy_pool, t))
		mm->copy_pool = NULL; /* cannot make threads: copy alone */
	return mm->copy_pool;
}

/* A position in the sorted, merged request list. */
struct cursor {
	const struct mig_range *r;
	size_t n, k; /* range k of n */
	gpa_t g; /* next GPA in range k */
	uint64_t left; /* requested pages from g on */
};

static bool cursor_done(const struct cursor *c)
{
	return c->k >= c->n;
}

static void cursor_advance(struct cursor *c, uint64_t bytes)
{
	c->g += bytes;
	c->left -= bytes / PAGE;
	if (c->g >= c->r[c->k].gpa + c->r[c->k].len && ++c->k < c->n)
		c->g = c->r[c->k].gpa;
}

/* Move the cursor to the first requested GPA at or after @to. */
static void cursor_skip_to(struct cursor *c, gpa_t to)
{
	while (!cursor_done(c) && c->g < to) {
		gpa_t end = c->r[c->k].gpa + c->r[c->k].len;

		cursor_advance(c, (end < to ? end : to) - c->g);
	}
}

/* ---- the cost model for scattered 4 KiB requests ---- */

/* Initial estimates until the engine has timed its own batches (kvm backend, the 2-core
 * development machine): one run's alias changes (write-protect + remap) ~7 us, one
 * 2 MiB copy ~130 us. */
#define EST_RUN_NS 7000ull
#define EST_COPY2M_NS 130000ull
#define WINDOW (HUGE * PAGE)

static uint64_t est_run_ns(const struct mm *mm)
{
	return mm->mig.est_run_ns ? mm->mig.est_run_ns : EST_RUN_NS;
}

static uint64_t est_copy2m_ns(const struct mm *mm)
{
	return mm->mig.est_copy2m_ns ? mm->mig.est_copy2m_ns : EST_COPY2M_NS;
}

/* A running average with weight 1/8 for the new sample, clamped to [100 ns, 100 ms]. */
static void est_update(uint64_t *est, uint64_t init, uint64_t sample)
{
	uint64_t cur = *est ? *est : init;

	sample = sample < 100 ? 100 : sample > 100000000 ? 100000000 : sample;
	*est = cur - cur / 8 + sample / 8;
}

/*
 * Feed one batch's phase times to the estimates: a batch of long pieces (512 frames or
 * more on average) times the copy bandwidth; every batch times the per-run cost, which
 * is protect + remap plus whatever of the copy the bandwidth does not explain (the
 * per-piece system calls of the default copy). Caller holds mm->lock.
 */
static void est_learn(struct mm *mm, const uint64_t ph[MIG_PHASE_NR], uint64_t pages, uint64_t runs)
{
	uint64_t copy = ph[MIG_PHASE_COPY], bw;

	if (!pages || !runs)
		return;
	if (pages >= runs * HUGE && pages >= HUGE)
		est_update(&mm->mig.est_copy2m_ns, EST_COPY2M_NS, copy * HUGE / pages);
	bw = pages * est_copy2m_ns(mm) / HUGE;
	est_update(&mm->mig.est_run_ns, EST_RUN_NS,
		   (ph[MIG_PHASE_PROTECT] + ph[MIG_PHASE_REMAP] + (copy > bw ? copy - bw : 0)) /
			   runs);
}

static int any_pinned(void *ctx, struct frame *f, gpa_t gpa, uint64_t npages)
{
	(void)ctx;
	(void)gpa;
	(void)npages;
	return frame_pins(f) ? 1 : 0;
}

/* The requested pages from the cursor on inside the 2 MiB window at @w, and in how many
 * runs (*@runs). */
static uint64_t window_requested(const struct cursor *cur, gpa_t w, uint64_t *runs)
{
	uint64_t pages = 0;

	*runs = 0;
	for (size_t j = cur->k; j < cur->n && cur->r[j].gpa < w + WINDOW; j++) {
		gpa_t s = j == cur->k ? cur->g : cur->r[j].gpa;
		gpa_t e = cur->r[j].gpa + cur->r[j].len;

		s = s < w ? w : s;
		e = e > w + WINDOW ? w + WINDOW : e;
		if (s < e) {
			(*runs)++;
			pages += (e - s) / PAGE;
		}
	}
	return pages;
}

/* No requested page of the window at @w lies before the cursor: none of it is in a piece
 * already (a piece walks on past a window's end to the end of its range, and may be
 * extended by the next range), so moving the window whole cannot move a page twice. */
static bool window_untouched(const struct cursor *cur, gpa_t w)
{
	if (cur->g > w && cur->r[cur->k].gpa < cur->g)
		return false; /* range k began in the window before the cursor */
	return !cur->k || cur->r[cur->k - 1].gpa + cur->r[cur->k - 1].len <= w;
}

/*
 * The cost model: move the whole 2 MiB window at @w (the cursor is in it) in one copy
 * and one run, rather than one run per requested run in it, when
 *   runs * run_ns + requested / 512 * copy2m_ns  >  run_ns + copy2m_ns
 * (the engine's own estimates). Only a window none of whose requested pages is in a piece
 * yet (window_untouched), that is one run of the source (mapped whole, contiguous,
 * one permission, not on @target), with no pinned frame, whose 512 destination frames
 * the pool has (2 MiB aligned) beyond what the rest of the request needs. Returns true
 * with the window's piece in @pc (destination allocated; its extra counts the pages not
 * requested). Caller holds mm->lock and mig_lock.
 */
static bool window_promote(struct mm *mm, const struct cursor *cur, unsigned target, gpa_t w,
			   struct piece *pc)
{
	struct pool *tp = &mm->pools[target];
	uint64_t runs, pages, span, first;
	struct s2_leaf l;
	hpa_t oa;

	if (mm->cfg.mig.exact || w + WINDOW > mm->cfg.mem_size || !window_untouched(cur, w))
		return false;
	pages = window_requested(cur, w, &runs);
	if (runs < 2 || runs * est_run_ns(mm) + pages * est_copy2m_ns(mm) / HUGE <=
				est_run_ns(mm) + est_copy2m_ns(mm))
		return false;
	if (s2_walk_span(&mm->map, w, w + WINDOW, &l, &oa, &span) || span != WINDOW ||
	    (oa >> MM_POOL_SHIFT) == target)
		return false;
	if (frame_for_each(&mm->ft, w, WINDOW, any_pinned, NULL))
		return false;
	if (tp->nr_free < HUGE + (cur->left - pages))
		return false; /* the requested pages come first */
	if (mm_gpa_small(mm, w) ? pool_alloc_small(tp, HUGE, HUGE, &first)
				: pool_alloc(tp, HUGE, HUGE, &first))
		return false; /* no free 2 MiB-aligned run: exact placement here */
	*pc = (struct piece){ .gpa = w, .n = HUGE, .sp = (unsigned)(oa >> MM_POOL_SHIFT),
			      .sf = (oa & ((1ull << MM_POOL_SHIFT) - 1)) >> POOL_FRAME_SHIFT,
			      .df = first, .perm = l.perm, .extra = HUGE - pages };
	return true;
}

enum { HUGE_WIN_NO, HUGE_WIN_TAKEN, HUGE_WIN_SKIPPED, HUGE_WIN_FULL };

/*
 * Huge pools: when the 2 MiB window at @w (the cursor is in it) is on a huge pool or
 * @target is one, the window moves whole or not at all. HUGE_WIN_TAKEN: its piece is in
 * @pc (destination allocated; the pages it moves beyond the request are counted as
 * huge_extra). HUGE_WIN_SKIPPED: already on @target (counted skipped), or not one run
 * of a source (only a window placed in 4 KiB pieces on several pools): left where it is,
 * counted aborted (mig.huge_refused_pages). HUGE_WIN_FULL: no free 2 MiB frame on
 * @target. HUGE_WIN_NO: neither side huge, the normal path. Caller holds mm->lock.
 */
static int huge_window(struct mm *mm, const struct cursor *cur, unsigned target, gpa_t w,
		       struct piece *pc, struct mig_result *res)
{
	struct pool *tp = &mm->pools[target];
	uint64_t pages, runs, span, first;
	gpa_t g = cur->g > w ? cur->g : w;
	struct s2_leaf l;
	unsigned sp;
	hpa_t oa;

	/* the pool of the first requested page decides whether huge rules apply; the window
	 * a huge page cannot back is small everywhere (a huge pool's small part) */
	if (w + WINDOW > mm->cfg.mem_size || mm_gpa_small(mm, w) ||
	    s2_walk_span(&mm->map, g, w + WINDOW, &l, &oa, &span))
		return HUGE_WIN_NO; /* a hole: the normal path walks past it */
	sp = (unsigned)(oa >> MM_POOL_SHIFT);
	if (!tp->huge && !mm->pools[sp].huge)
		return HUGE_WIN_NO;
	if (g != w) { /* the whole window moves: walk it from its start */
		if (s2_walk_span(&mm->map, w, w + WINDOW, &l, &oa, &span))
			span = 0; /* not mapped from its start (the floor under proc) */
		else
			sp = (unsigned)(oa >> MM_POOL_SHIFT);
	}
	pages = window_requested(cur, w, &runs);
	if (sp == target && span == WINDOW) {
		res->skipped += pages;
		return HUGE_WIN_SKIPPED;
	}
	if (span != WINDOW) {
		mm->mig.huge_refused_pages += pages;
		mm->mig.aborted_pages += pages;
		res->aborted += pages;
		return HUGE_WIN_SKIPPED;
	}
	if (pool_alloc(tp, HUGE, HUGE, &first))
		return HUGE_WIN_FULL;
	*pc = (struct piece){ .gpa = w, .n = HUGE, .sp = sp,
			      .sf = (oa & ((1ull << MM_POOL_SHIFT) - 1)) >> POOL_FRAME_SHIFT,
			      .df = first, .perm = l.perm, .extra = HUGE - pages, .huge = true };
	return HUGE_WIN_TAKEN;
}

/*
 * Collect the next batch from the cursor: pieces contiguous in GPA and in their source
 * frames, not already on @target, each with destination frames (contiguous where the
 * pool allows). Batches span requests. Returns the number of pieces; sets *exhausted if
 * the target pool ran out.
 */
static size_t collect(struct mm *mm, struct cursor *cur, unsigned target, struct piece *v,
		      size_t max_pieces, uint64_t max_frames, struct mig_result *res,
		      bool *exhausted)
{
	struct pool *tp = &mm->pools[target];
	size_t np = 0;
	uint64_t frames = 0;

	while (!cursor_done(cur) && np < max_pieces && frames < max_frames && !*exhausted) {
		struct s2_leaf l;
		gpa_t g = cur->g, end = cur->r[cur->k].gpa + cur->r[cur->k].len;
		gpa_t w = g & ~(gpa_t)(WINDOW - 1);
		hpa_t oa;
		uint64_t span, sp, sf, n;

		/* huge pools move whole 2 MiB frames: hugetlbfs maps and frees nothing smaller */
		if (mm->has_huge) {
			int h;

			if (np && frames + HUGE > max_frames)
				break; /* a whole frame would pass the batch size: next batch */
			h = huge_window(mm, cur, target, w, v + np, res);
			if (h == HUGE_WIN_FULL) {
				*exhausted = true;
				break;
			}
			if (h == HUGE_WIN_TAKEN) {
				frames += HUGE;
				np++;
			}
			if (h != HUGE_WIN_NO) {
				cursor_skip_to(cur, w + WINDOW);
				continue;
			}
		}
		/* a request that does not cover its 2 MiB window: maybe move the window (once
		 * the cursor has passed one of its pages, its other requests go one by one) */
		if (!(g == w && end >= w + WINDOW) && frames + HUGE <= max_frames &&
		    window_promote(mm, cur, target, w, &v[np])) {
			mm->mig.windows_promoted++;
			frames += HUGE;
			np++;
			cursor_skip_to(cur, w + WINDOW);
			continue;
		}
		if (mm_gpa_small(mm, w) && end > w + WINDOW)
			end = w + WINDOW; /* its frames are small, the next window's may not be */
		if (s2_walk_span(&mm->map, g, end, &l, &oa, &span)) {
			cursor_advance(cur, span); /* a hole: nothing to move */
			continue;
		}
		sp = oa >> MM_POOL_SHIFT;
		sf = (oa & ((1ull << MM_POOL_SHIFT) - 1)) >> POOL_FRAME_SHIFT;
		n = span / PAGE;
		if (frames + n > max_frames)
			n = max_frames - frames;
		if (sp == target) {
			res->skipped += n;
			cursor_advance(cur, n * PAGE);
			continue;
		}
		/* extend the previous piece if contiguous in GPA and source frames, and the
		 * destination frames right after it are free */
		if (np && !v[np - 1].huge && v[np - 1].gpa + v[np - 1].n * PAGE == g &&
		    v[np - 1].sp == sp && v[np - 1].sf + v[np - 1].n == sf &&
		    v[np - 1].perm == l.perm) {
			uint64_t got = pool_alloc_at(tp, v[np - 1].df + v[np - 1].n, n);

			if (got) {
				v[np - 1].n += got;
				frames += got;
				cursor_advance(cur, got * PAGE);
				continue;
			}
		}
		{
			uint64_t first, align = (g % (HUGE * PAGE) == 0 && n >= HUGE) ? HUGE : 1;
			uint64_t got = mm_pool_alloc_upto(mm, tp, g, n, align, &first);

			if (!got && align > 1)
				got = mm_pool_alloc_upto(mm, tp, g, n, 1, &first);
			if (!got) {
				*exhausted = true;
				break;
			}
			v[np++] = (struct piece){ .gpa = g, .n = got, .sp = (unsigned)sp, .sf = sf,
						  .df = first, .perm = l.perm };
			frames += got;
			cursor_advance(cur, got * PAGE);
		}
	}
	return np;
}

/* Count pages mapped and not on @target in [from, end): what an abort leaves behind. */
static uint64_t count_left(struct mm *mm, gpa_t from, gpa_t end, unsigned target)
{
	uint64_t n = 0;

	for (gpa_t g = from; g < end;) {
		struct s2_leaf l;
		hpa_t oa;
		uint64_t step;

		if (s2_walk_span(&mm->map, g, end, &l, &oa, &step) == 0 &&
		    (oa >> MM_POOL_SHIFT) != target)
			n += step / PAGE;
		g += step;
	}
	return n;
}

/* Pieces still on their old frames: release their destinations and give the write
 * permission back (recorded in @b; the caller commits). */
static void undo_pieces(struct mm *mm, unsigned target, const struct piece *v, size_t n,
			struct s2_batch *b)
{
	for (size_t i = 0; i < n; i++) {
		pool_free(&mm->pools[target], v[i].df, v[i].n);
		/* the same leaves were protected in step 1: no table page is needed, so
		 * this cannot fail */
		if (s2_protect(&mm->map, v[i].gpa, v[i].n * PAGE, v[i].perm, b))
			continue;
	}
}

/*
 * From @g, the end of the longest stretch before @end that the last commit's alias
 * failures (mm->afail) either all cover or all miss; *@failed says which.
 */
static gpa_t fail_segment(const struct mm_alias_fail *f, gpa_t g, gpa_t end, bool *failed)
{
	gpa_t next = end;

	*failed = f->all;
	if (f->all)
		return end;
	for (size_t k = 0; k < f->n; k++) {
		const struct mm_span *sp = &f->v[k];

		if (sp->gpa <= g && g < sp->end) {
			*failed = true;
			return sp->end < end ? sp->end : end;
		}
		if (sp->gpa > g && sp->gpa < next)
			next = sp->gpa;
	}
	return next;
}

/*
 * The remap commit failed for the ranges in mm->afail: the alias still shows the old
 * frames (read-only) or nothing there, and no guest write reached the new frames. Point
 * the map back at the old frames for exactly those ranges, with their permissions, and
 * commit. Returns the requested pages put back (struct piece, extra), or -errno if the
 * alias refused that too (fatal).
 */
static int64_t restore_failed(struct mm *mm, const struct mm_alias_fail *f, const struct piece *v,
			      size_t np)
{
	struct s2_batch *b = &mm->batch;
	int64_t back = 0;

	for (size_t i = 0; i < np; i++) {
		gpa_t end = v[i].gpa + v[i].n * PAGE;
		uint64_t fp = 0; /* pages of this piece put back */

		for (gpa_t g = v[i].gpa, e; g < end; g = e) {
			bool failed;
			uint64_t off;

			e = fail_segment(f, g, end, &failed);
			if (!failed)
				continue;
			off = (g - v[i].gpa) / PAGE;
			/* read-only, back at the old frame (identical contents), then the
			 * permission it had: the same leaves, so no table page is needed */
			if (s2_protect(&mm->map, g, e - g, v[i].perm & ~S2_PERM_W, b) ||
			    s2_remap(&mm->map, g, e - g, mm_pa(v[i].sp, v[i].sf + off),
				     S2_REMAP_SAME_CONTENTS, b) ||
			    s2_protect(&mm->map, g, e - g, v[i].perm, b))
				return -ENOMEM;
			fp += (e - g) / PAGE;
		}
		back += (int64_t)req_failed(&v[i], fp);
	}
	return back;
}

/*
 * Finish piece @p after the remap: its stretches the alias took are on the new frames
 * (record them, queue the old frames behind @gen); the ones in @f it did not take were
 * put back (free their destination frames). Returns pages moved.
 */
static uint64_t settle_piece(struct mm *mm, unsigned target, const struct piece *p, uint64_t gen,
			     const struct mm_alias_fail *f)
{
	gpa_t end = p->gpa + p->n * PAGE;
	uint64_t moved = 0;

	for (gpa_t g = p->gpa, e; g < end; g = e) {
		uint64_t off = (g - p->gpa) / PAGE, n;
		bool failed;

		e = fail_segment(f, g, end, &failed);
		n = (e - g) / PAGE;
		if (failed) { /* put back: counted as aborted by put_back_failed() */
			pool_free(&mm->pools[target], p->df + off, n);
			continue;
		}
		/* cannot fail: the range is inside RAM, the frame numbers came from a pool and
		 * migrate_marked()/put_back_failed() reserved the record pages; if it ever
		 * did, the map and the table would disagree: stop the guest */
		if (frame_table_set_flags(&mm->ft, g, e - g, target, p->df + off,
					  FRAME_MIGRATING |
						  (mm->cfg.mig.lazy_writable ? FRAME_WP : 0))) {
			mm_fatal(mm, "migration: the frame table cannot record a moved range");
			continue;
		}
		if (defer_push(&mm->deferred, p->sp, p->sf + off, n, gen)) {
			mm_flush_and_free(mm); /* make room: everything before is freeable */
			mm->mig.forced_flushes++;
			if (defer_push(&mm->deferred, p->sp, p->sf + off, n, gen)) {
				/* the queue cannot grow: free now only if every holder has
				 * passed @gen, else keep the frames (never reused) */
				if (gen_reached(gen_min_done(&mm->gens), gen))
					mm_free_frames(mm, p->sp, p->sf + off, n);
				else
					mm->mig.held_frames += n;
			}
		}
		moved += n;
	}
	return moved;
}

/*
 * The remap commit failed for the ranges in mm->afail: they still show the old frames
 * (or nothing) and no guest write reached their new frames. Move that list to @failed
 * (for settle_piece()), put exactly those ranges back on their old frames, and re-apply
 * every refused run whole (a run can reach past the batch's pieces). Returns 0, or -EIO
 * after mm_fatal() if the alias refuses the roll-back too.
 */
static int put_back_failed(struct mm *mm, unsigned target, const struct piece *v, size_t np,
			   struct mm_alias_fail *failed, struct mig_result *res)
{
	int64_t back;
	int e;

	mm->mig.alias_failures++;
	*failed = mm->afail; /* the next commit starts a new list */
	mm->afail = (struct mm_alias_fail){ 0 };
	back = restore_failed(mm, failed, v, np);
	/* settle_piece() records only the stretches the alias took: a 2 MiB chunk reserved
	 * whole (one huge frame) may now be cut, so its record pages are needed too */
	for (size_t k = 0; back >= 0 && !failed->all && k < failed->n; k++)
		if (frame_table_reserve_chunks(&mm->ft, failed->v[k].gpa,
					       failed->v[k].end - failed->v[k].gpa))
			back = -ENOMEM;
	s2_flush_deferred(&mm->map);
	e = back < 0 ? -ENOMEM : mm_commit_retry(mm, &mm->batch, 0);
	if (!e)
		e = mm_alias_resync(mm, failed);
	if (e) {
		mm_fatal(mm, "migration to host node %u: putting back a failed remap",
			 mm->pools[target].node);
		return -EIO;
	}
	/* counted here, not when the pieces settle: a later failure may skip that */
	res->aborted += (uint64_t)back;
	mm->mig.aborted_pages += (uint64_t)back;
	return 0;
}

/* A permission-only commit failed for the runs in mm->afail: the alias kept them
 * read-only, so make the map say so too (a write fault fixes them later). Returns 0 or
 * -errno if the alias refused that as well. */
static int keep_readonly(struct mm *mm)
{
	struct mm_alias_fail f = mm->afail;
	int bad = 0, e;

	mm->afail = (struct mm_alias_fail){ 0 };
	mm->mig.alias_failures++;
	for (size_t k = 0; k < f.n && !f.all && !bad; k++)
		bad = s2_protect(&mm->map, f.v[k].gpa, f.v[k].end - f.v[k].gpa, S2_PERM_R | S2_PERM_X,
				 &mm->batch);
	if (f.all)
		bad = -ENOMEM; /* cannot tell which: give up */
	e = bad ? bad : mm_commit_retry(mm, &mm->batch, 0);
	if (e && !mm->afail.err) {
		mm->afail.err = f.err;
		mm->afail.call = f.call;
	}
	free(f.v);
	return e;
}

static int check_one(void *ctx, struct frame *f, gpa_t gpa, uint64_t npages)
{
	const char *when = ctx;
	uint64_t st = frame_state(f);

	(void)npages;
	if (st >> 16 || !((st >> 8) & FRAME_MIGRATING)) {
		/* a device could write this frame while it is copied: data would be lost */
		fprintf(stderr,
			"s2vm: BUG: migration %s: frame of GPA %#llx has %llu pins, %smarked\n", when,
			(unsigned long long)gpa, (unsigned long long)(st >> 16),
			(st >> 8) & FRAME_MIGRATING ? "" : "not ");
		abort();
	}
	return 0;
}

/* The engine's assertion: no frame of the batch is pinned, or unmarked, around the copy. */
static void check_unpinned(struct mm *mm, const struct piece *v, size_t np, const char *when)
{
	for (size_t i = 0; i < np; i++)
		frame_for_each(&mm->ft, v[i].gpa, v[i].n * PAGE, check_one, (void *)when);
}

/*
 * Move one collected batch whose frames are all marked FRAME_MIGRATING; adds what
 * happened to @res. Caller holds mm->lock (released while the default copy runs).
 * On a copy error or a failed write-protect the whole batch is put back on its old
 * frames (still mapped there) and made writable again, and the error is returned.
 * When the alias refuses part of the remap, exactly that part is put back, the rest
 * stays moved, and the error is returned. If a roll-back itself fails, mm_fatal().
 */
static int migrate_marked(struct mm *mm, unsigned target, struct piece *v, size_t np,
			  struct mig_result *res, uint64_t ph[MIG_PHASE_NR])
{
	const struct mig_policy *pol = &mm->cfg.mig;
	struct s2_batch *b = &mm->batch;
	uint64_t mp0 = mm->alias_stats.mprotect_calls, mm0 = mm->alias_stats.mmap_calls;
	unsigned cflags = pol->defer_invalidation ? S2_COMMIT_DEFER : 0;
	struct mm_alias_fail failed = { 0 }; /* what the alias did not take of the remap */
	uint64_t t0, gen, moved = 0, extra = 0, frames;
	struct copy_pool *cp;
	bool parallel = false;
	int r = 0, e;
	size_t i;

	if (mm->fatal) { /* nothing may change any more: give the destinations back */
		for (i = 0; i < np; i++)
			pool_free(&mm->pools[target], v[i].df, v[i].n);
		return -EIO;
	}
	/* 0. allocate before remap: the frame table's record pages for every chunk this
	 * batch writes in part (frame.h), so settle_piece() cannot meet -ENOMEM after the
	 * point of no return. Nothing has changed yet: give the destinations back. */
	for (i = 0; i < np; i++)
		if (frame_table_reserve(&mm->ft, v[i].gpa, v[i].n * PAGE, v[i].df))
			break;
	if (i < np) {
		for (i = 0; i < np; i++) {
			pool_free(&mm->pools[target], v[i].df, v[i].n);
			mm->mig.aborted_pages += v[i].n - v[i].extra;
			res->aborted += v[i].n - v[i].extra;
		}
		return -ENOMEM;
	}
	__atomic_add_fetch(&mm->seq, 1, __ATOMIC_RELEASE);
	/* 1. write-protect every run at its current frames; this invalidation is required */
	t0 = s2_now_ns();
	for (i = 0; i < np && !r; i++)
		r = s2_protect(&mm->map, v[i].gpa, v[i].n * PAGE, v[i].perm & ~S2_PERM_W, b);
	e = mm_commit(mm, b, cflags);
	publish_if_clean(mm);
	ph[MIG_PHASE_PROTECT] += s2_now_ns() - t0;
	if (e) {
		/* some runs may still be writable in the alias: copying now could lose
		 * writes, so nothing of this batch moves */
		mm->mig.alias_failures++;
		r = e;
	}
	if (r)
		goto undo;

	/* 2. copy. Every frame is marked and unpinned, and stays so: nothing can write
	 * it now (vCPUs fault on the read-only alias, devices cannot pin it). The default
	 * copy runs without mm->lock, so guest access and IOTLB walks of other frames go
	 * on; a hook (tests, the sim model) keeps it. */
	check_unpinned(mm, v, np, "before the copy");
	for (i = 0, frames = 0; i < np; i++)
		frames += v[i].n;
	cp = copy_pool_for(mm, frames);
	t0 = s2_now_ns();
	if (!mm->cfg.copy)
		pthread_mutex_unlock(&mm->lock);
	r = cp ? copy_parallel(mm, cp, target, v, np, frames) : -EAGAIN;
	if (r == -EAGAIN) /* one copier */
		for (i = 0, r = 0; i < np && !r; i++)
			r = copy_frames(mm, v[i].sp, v[i].sf, target, v[i].df, v[i].n);
	else if (!r)
		parallel = true;
	if (!mm->cfg.copy)
		pthread_mutex_lock(&mm->lock);
	mm->mig.parallel_copies += parallel;
	ph[MIG_PHASE_COPY] += s2_now_ns() - t0;
	check_unpinned(mm, v, np, "after the copy");
	if (!r && mm->fatal)
		r = -EIO;
	if (r)
		goto undo;
	t0 = s2_now_ns(); /* remap: until no turning back, less the wait for a deferred flush */

	/* 3. point every run at its new frames while read-only (identical contents) */
	for (i = 0; i < np; i++) {
		r = s2_remap(&mm->map, v[i].gpa, v[i].n * PAGE, mm_pa(target, v[i].df),
			     S2_REMAP_SAME_CONTENTS, b);
		if (r)
			break;
	}
	if (r) {
		/* pieces [0, i) moved; [i, np) are still on their old frames */
		size_t done = i;

		undo_pieces(mm, target, v + done, np - done, b);
		if (!done)
			goto out_undone;
		for (i = done; i < np; i++) {
			mm->mig.aborted_pages += v[i].n - v[i].extra;
			res->aborted += v[i].n - v[i].extra;
		}
		np = done;
		r = 0;
	}
	/* 4. writable again now (eager), never in the same write as the address change;
	 * a deferred invalidation must be complete before anything becomes writable */
	if (!pol->lazy_writable) {
		/* With deferral the address change's invalidation is pending: commit and
		 * flush it first. Without, both map writes go in one batch, and the kvm
		 * backend applies them as one mmap per run with the final permissions. */
		if (pol->defer_invalidation) {
			uint64_t tw;

			e = mm_commit(mm, b, cflags);
			tw = s2_now_ns();
			s2_flush_deferred(&mm->map);
			tw = s2_now_ns() - tw;
			ph[MIG_PHASE_WAIT] += tw;
			t0 += tw;
			if (e && put_back_failed(mm, target, v, np, &failed, res)) {
				r = -EIO;
				goto out; /* fatal: frames stay allocated */
			}
		}
		for (i = 0; i < np; i++)
			if (s2_protect(&mm->map, v[i].gpa, v[i].n * PAGE, v[i].perm, b))
				r = -ENOMEM; /* cannot happen: same leaves as step 1 */
		e = mm_commit(mm, b, cflags);
		if (e && pol->defer_invalidation) {
			/* only permissions failed: the refused runs stay read-only, in the map
			 * too, and are made writable on their first write fault */
			r = e; /* the batch moved; say the alias refused part of it */
			if (keep_readonly(mm)) {
				mm_fatal(mm, "migration to host node %u: making pages writable",
					 mm->pools[target].node);
				r = -EIO;
				goto out;
			}
			e = 0;
		}
	} else {
		e = mm_commit(mm, b, cflags);
	}
	if (e && put_back_failed(mm, target, v, np, &failed, res)) {
		r = -EIO;
		goto out; /* fatal: frames stay allocated, nothing a view reaches is freed */
	}
	if (failed.err)
		r = failed.err;
	/* no turning back: the guest runs on the new frames where the map says so */
	ph[MIG_PHASE_REMAP] += s2_now_ns() - t0;
	t0 = s2_now_ns();
	gen = gen_advance(&mm->gens);
	publish_if_clean(mm);
	for (i = 0; i < np; i++) {
		uint64_t m = settle_piece(mm, target, &v[i], gen, &failed);

		moved += req_moved(&v[i], m);
		if (mm->has_huge && mm_gpa_small(mm, v[i].gpa))
			mm->mig.small_window_pages += m;
		if (v[i].huge) {
			mm->mig.huge_frames += m / HUGE;
			mm->mig.huge_extra_pages += m - req_moved(&v[i], m);
			res->huge_extra += m - req_moved(&v[i], m);
		} else {
			extra += m - req_moved(&v[i], m);
		}
	}
	mm->mig.promoted_pages += extra;
	res->promoted += extra;
	mm->mig.pages += moved;
	mm->mig.bytes += moved * PAGE;
	mm->mig.runs += np;
	mm->mig.batches++;
	res->pages += moved;
	res->runs += np;
	res->batches++;
	/* 5. old frames wait for every holder to pass this generation */
	defer_reap(&mm->deferred, gen_min_done(&mm->gens), mm_free_frames, mm);
	if (defer_over_cap(&mm->deferred) ||
	    mm->pools[target].nr_free < mm->cfg.mig.batch_frames) {
		mm_flush_and_free(mm);
		mm->mig.forced_flushes++;
	}
	ph[MIG_PHASE_FREE] += s2_now_ns() - t0;
	goto out;
undo:
	undo_pieces(mm, target, v, np, b);
	for (i = 0; i < np; i++) {
		mm->mig.aborted_pages += v[i].n - v[i].extra;
		res->aborted += v[i].n - v[i].extra;
	}
out_undone:
	s2_flush_deferred(&mm->map);
	if (mm_commit_retry(mm, b, 0))
		mm_fatal(mm, "migration to host node %u: making pages writable again",
			 mm->pools[target].node);
	publish_if_clean(mm);
out:
	free(failed.v);
	mm->mig.alias_mprotect += mm->alias_stats.mprotect_calls - mp0;
	mm->mig.alias_mmap += mm->alias_stats.mmap_calls - mm0;
	__atomic_add_fetch(&mm->seq, 1, __ATOMIC_RELEASE);
	return r;
}

static int push_huge(struct mark_ctx *c, gpa_t chunk)
{
	if (c->nh && c->huge[c->nh - 1] == chunk)
		return 0;
	if (c->nh == c->caph) {
		size_t cap = c->caph ? c->caph * 2 : 16;
		gpa_t *nv = realloc(c->huge, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		c->huge = nv;
		c->caph = cap;
	}
	c->huge[c->nh++] = chunk;
	return 0;
}

int mm_mark_one(void *ctx, struct frame *f, gpa_t gpa, uint64_t npages)
{
	struct mark_ctx *c = ctx;

	if (frame_try_mark(f)) {
		/* a split of this head during the batch passes the mark to all its tails:
		 * remember to clear the whole chunk */
		if ((frame_flags(f) & FRAME_HUGE_HEAD) &&
		    push_huge(c, gpa & ~(HUGE * PAGE - 1))) {
			c->err = -ENOMEM;
			return -ENOMEM;
		}
		return 0;
	}
	c->pages += npages;
	if (c->n && c->v[c->n - 1].gpa + c->v[c->n - 1].n * PAGE == gpa) {
		c->v[c->n - 1].n += npages;
		return 0;
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		struct pinned_seg *nv = realloc(c->v, cap * sizeof(*nv));

		if (!nv) {
			c->err = -ENOMEM;
			return -ENOMEM;
		}
		c->v = nv;
		c->cap = cap;
	}
	c->v[c->n++] = (struct pinned_seg){ gpa, npages };
	return 0;
}

static int unmark_one(void *ctx, struct frame *f, gpa_t gpa, uint64_t npages)
{
	(void)ctx;
	(void)gpa;
	(void)npages;
	frame_clear_flags(f, FRAME_MIGRATING);
	return 0;
}

/* Clear FRAME_MIGRATING over the pieces @r and every record of the huge chunks marked
 * through their head (a split passed the mark to all tails), and wake whoever waits.
 * Caller holds mm->lock and mig_lock, so every mark is this batch's. */
void mm_unmark_ranges(struct mm *mm, const struct mig_range *r, size_t n, struct mark_ctx *c)
{
	for (size_t i = 0; i < n; i++)
		frame_for_each(&mm->ft, r[i].gpa, r[i].len, unmark_one, NULL);
	for (size_t k = 0; k < c->nh; k++) /* head and private records; never a shared page */
		frame_table_clear_flags(&mm->ft, c->huge[k], HUGE * PAGE, FRAME_MIGRATING);
	c->nh = 0;
	mm->batch_active = false;
	pthread_cond_broadcast(&mm->batch_cond);
}

/* Mark every record of the pieces; collect the pinned pages in @c. Caller holds
 * mm->lock. */
static void mark_pieces(struct mm *mm, const struct piece *v, size_t np, struct mark_ctx *c)
{
	c->n = 0;
	c->nh = 0;
	c->pages = 0;
	c->err = 0;
	for (size_t i = 0; i < np && !c->err; i++)
		frame_for_each(&mm->ft, v[i].gpa, v[i].n * PAGE, mm_mark_one, c);
}

/* Ask every DMA holder to drain (submit, reap, unpin, publish): called without mm->lock,
 * with mig_lock. Returns how many were asked. */
unsigned mm_drain_holders(struct mm *mm)
{
	struct mm_dma_holder *hs[GEN_MAX_HOLDERS];
	unsigned n = 0;

	pthread_mutex_lock(&mm->lock);
	for (unsigned i = 0; i < GEN_MAX_HOLDERS; i++)
		if (mm->dma_holders[i] && mm->dma_holders[i]->drain)
			hs[n++] = mm->dma_holders[i];
	pthread_mutex_unlock(&mm->lock);
	for (unsigned i = 0; i < n; i++)
		hs[i]->drain(hs[i]->drain_ctx);
	return n;
}

/*
 * Remove the pinned pages @c from the pieces (their destination frames go back to the
 * pool): pieces split around them. Returns the new piece array (@v or a new one) and
 * count in *@np, or NULL (-ENOMEM: @v untouched).
 */
static struct piece *exclude_pinned(struct mm *mm, unsigned target, struct piece *v, size_t *np,
				    const struct mark_ctx *c)
{
	struct piece *out = malloc((*np + c->n) * sizeof(*out));
	size_t k = 0, s = 0;

	if (!out)
		return NULL;
	for (size_t i = 0; i < *np; i++) {
		gpa_t g = v[i].gpa, end = v[i].gpa + v[i].n * PAGE;
		uint64_t extra = v[i].extra; /* handed to the parts left, first come */

		while (g < end) {
			gpa_t stop = end;

			while (s < c->n && c->v[s].gpa + c->v[s].n * PAGE <= g)
				s++;
			if (s < c->n && c->v[s].gpa <= g) { /* pinned from g */
				gpa_t pe = c->v[s].gpa + c->v[s].n * PAGE;

				stop = pe < end ? pe : end;
				pool_free(&mm->pools[target], v[i].df + (g - v[i].gpa) / PAGE,
					  (stop - g) / PAGE);
			} else {
				uint64_t off = (g - v[i].gpa) / PAGE;

				if (s < c->n && c->v[s].gpa < end)
					stop = c->v[s].gpa;
				out[k++] = (struct piece){ .gpa = g, .n = (stop - g) / PAGE,
							   .sp = v[i].sp, .sf = v[i].sf + off,
							   .df = v[i].df + off, .perm = v[i].perm };
				out[k - 1].extra = extra < out[k - 1].n ? extra : out[k - 1].n;
				extra -= out[k - 1].extra;
			}
			g = stop;
		}
	}
	*np = k;
	return out;
}

/*
 * Mark, move and unmark one collected batch. Pinned frames are first drained for (once
 * per batch: a transient reference of a device queue is not a pin), then skipped: left
 * where they are, counted, for a later batch. Caller holds mig_lock and mm->lock.
 */
static int migrate_batch(struct mm *mm, unsigned target, struct piece *v, size_t np,
			 struct mig_result *res)
{
	struct mark_ctx c = { 0 };
	struct mig_range *ranges;
	struct piece *w = v;
	int r;
	struct mm_tl_event ev = { .kind = MM_TL_BATCH, .start_ns = s2_now_ns(),
				  .node = (uint8_t)mm->pools[target].node, .gpa = v[0].gpa };
	struct mig_result before_res = *res;
	uint64_t calls0 = mm->alias_stats.mprotect_calls + mm->alias_stats.mmap_calls;

	mark_pieces(mm, v, np, &c);
	if (!c.err && c.pages) {
		uint64_t before = c.pages;
		struct mig_range *all = malloc(np * sizeof(*all));

		/* a drain may complete requests, which touch guest memory: unmark first */
		if (all) {
			for (size_t i = 0; i < np; i++)
				all[i] = (struct mig_range){ v[i].gpa, v[i].n * PAGE };
			mm_unmark_ranges(mm, all, np, &c);
			free(all);
			uint64_t tw = s2_now_ns();

			pthread_mutex_unlock(&mm->lock);
			if (mm_drain_holders(mm))
				mm->pins.drains++;
			pthread_mutex_lock(&mm->lock);
			ev.phase_ns[MIG_PHASE_WAIT] += s2_now_ns() - tw;
			mark_pieces(mm, v, np, &c);
			if (!c.err && c.pages < before)
				mm->pins.drain_avoided += before - c.pages;
		}
	}
	mm->batch_active = true;
	if (!c.err && c.pages) {
		w = exclude_pinned(mm, target, v, &np, &c);
		if (!w)
			c.err = -ENOMEM;
		else {
			mm->pins.skipped_pages += c.pages;
			res->pinned += c.pages;
		}
	}
	ranges = malloc((np ? np : 1) * sizeof(*ranges));
	if (c.err || !ranges) {
		/* cannot tell pinned from unpinned: move nothing */
		struct mig_range *all = ranges ? ranges : malloc(np * sizeof(*all));

		for (size_t i = 0; i < np; i++)
			pool_free(&mm->pools[target], v[i].df, v[i].n);
		if (all) {
			for (size_t i = 0; i < np; i++)
				all[i] = (struct mig_range){ v[i].gpa, v[i].n * PAGE };
			mm_unmark_ranges(mm, all, np, &c);
		} else {
			mm_unmark_ranges(mm, &(struct mig_range){ 0, mm->cfg.mem_size }, 1, &c);
		}
		free(all);
		free(c.v);
		free(c.huge);
		if (w != v)
			free(w);
		return -ENOMEM;
	}
	for (size_t i = 0; i < np; i++)
		ranges[i] = (struct mig_range){ w[i].gpa, w[i].n * PAGE };
	r = np ? migrate_marked(mm, target, w, np, res, ev.phase_ns) : 0;
	mm_unmark_ranges(mm, ranges, np, &c);
	free(ranges);
	free(c.v);
	free(c.huge);
	if (w != v)
		free(w);
	for (unsigned i = 0; i < MIG_PHASE_NR; i++)
		mm->mig.phase_ns[i] += ev.phase_ns[i];
	ev.end_ns = s2_now_ns();
	ev.err = r;
	ev.pages = res->pages - before_res.pages;
	ev.runs = res->runs - before_res.runs;
	if (!r)
		est_learn(mm, ev.phase_ns, ev.pages + res->promoted - before_res.promoted, ev.runs);
	ev.aborted = res->aborted - before_res.aborted;
	ev.invalidations = (uint32_t)(mm->alias_stats.mprotect_calls +
				      mm->alias_stats.mmap_calls - calls0);
	mm_timeline_push(&mm->tl, &ev);
	return r;
}

static int migrate_ranges(struct mm *mm, const struct mig_range *ranges, size_t n, unsigned node,
			  struct mig_result *res, bool nowait);

int mm_migrate(struct mm *mm, const struct mig_range *ranges, size_t n, unsigned node,
	       struct mig_result *res)
{
	return migrate_ranges(mm, ranges, n, node, res, false);
}

int mm_migrate_nowait(struct mm *mm, const struct mig_range *ranges, size_t n, unsigned node,
		      struct mig_result *res)
{
	return migrate_ranges(mm, ranges, n, node, res, true);
}

static int migrate_ranges(struct mm *mm, const struct mig_range *ranges, size_t n, unsigned node,
			  struct mig_result *res, bool nowait)
{
	size_t max_pieces = 1024;
	struct piece *v;
	struct mig_range *req;
	struct cursor cur;
	bool exhausted = false;
	int target, r = 0;

	memset(res, 0, sizeof(*res));
	for (size_t k = 0; k < n; k++)
		if (ranges[k].len == 0 || (ranges[k].gpa | ranges[k].len) % PAGE ||
		    ranges[k].gpa + ranges[k].len < ranges[k].gpa ||
		    ranges[k].gpa + ranges[k].len > mm->cfg.mem_size)
			return -EINVAL;
	if (!n)
		return 0;
	v = malloc(max_pieces * sizeof(*v));
	req = malloc(n * sizeof(*req));
	if (!v || !req) {
		free(v);
		free(req);
		return -ENOMEM;
	}
	memcpy(req, ranges, n * sizeof(*req));
	cur = (struct cursor){ .r = req, .n = mm_ranges_merge(req, n), .k = 0, .g = 0 };
	cur.g = req[0].gpa;
	for (size_t k = 0; k < cur.n; k++)
		cur.left += req[k].len / PAGE;

	pthread_mutex_lock(&mm->lock);
	target = mm->fatal ? -EIO : mm_pool_get(mm, node); /* after mm_fatal(): no changes */
	pthread_mutex_unlock(&mm->lock);
	if (target < 0) {
		r = target;
		goto out;
	}
	/* Every piece can split an alias mapping in three: keep the process's mappings
	 * under the budget, counting them again only when the estimate gets close. */
	while (!cursor_done(&cur) && !r) {
		size_t np;

		if (!nowait) {
			pthread_mutex_lock(&mm->mig_lock);
		} else if (pthread_mutex_trylock(&mm->mig_lock)) {
			r = -EBUSY; /* another migration is copying: do not wait for it */
			break;
		}
		pthread_mutex_lock(&mm->lock);
		if (mm->fatal) {
			pthread_mutex_unlock(&mm->lock);
			pthread_mutex_unlock(&mm->mig_lock);
			r = -EIO;
			break;
		}
		if (mm->maps_est && mm->maps_est + 2 * max_pieces > mm->map_budget) {
			uint64_t maps = mm_process_mappings();

			mm->maps_est = maps ? maps : mm->maps_est;
			if (maps && maps + 2 * max_pieces > mm->map_budget) {
				snprintf(mm->err, sizeof(mm->err),
					 "migration stopped: the process holds %llu mappings and a "
					 "batch may add %llu, past the budget of %llu (3/4 of "
					 "vm.max_map_count); move larger runs, or raise "
					 "vm.max_map_count",
					 (unsigned long long)maps, 2ull * max_pieces,
					 (unsigned long long)mm->map_budget);
				mm->mig.map_budget_stops++;
				for (size_t j = cur.k; j < cur.n; j++) {
					gpa_t from = j == cur.k ? cur.g : req[j].gpa;
					uint64_t left = count_left(mm, from, req[j].gpa + req[j].len,
								   (unsigned)target);

					res->aborted += left;
					mm->mig.aborted_pages += left;
				}
				pthread_mutex_unlock(&mm->lock);
				pthread_mutex_unlock(&mm->mig_lock);
				r = -ENOSPC;
				break;
			}
		}
		np = collect(mm, &cur, (unsigned)target, v, max_pieces, mm->cfg.mig.batch_frames,
			     res, &exhausted);
		if (exhausted && !np) {
			/* free what is pending and try once more */
			mm_flush_and_free(mm);
			exhausted = false;
			np = collect(mm, &cur, (unsigned)target, v, max_pieces,
				     mm->cfg.mig.batch_frames, res, &exhausted);
		}
		if (np) {
			r = migrate_batch(mm, (unsigned)target, v, np, res);
			if (mm->maps_est)
				mm->maps_est += 2 * np;
		}
		if (exhausted) {
			uint64_t left = 0;

			for (size_t j = cur.k; j < cur.n; j++) {
				gpa_t from = j == cur.k ? cur.g : req[j].gpa;

				left += count_left(mm, from, req[j].gpa + req[j].len,
						   (unsigned)target);
			}
			res->aborted += left;
			mm->mig.aborted_pages += left;
			pthread_mutex_unlock(&mm->lock);
			pthread_mutex_unlock(&mm->mig_lock);
			break;
		}
		pthread_mutex_unlock(&mm->lock);
		pthread_mutex_unlock(&mm->mig_lock);
	}
	pthread_mutex_lock(&mm->lock);
	mm->mig.skipped_pages += res->skipped;
	pthread_mutex_unlock(&mm->lock);
out:
	free(v);
	free(req);
	return r;
}

static int clear_wp(void *ctx, struct frame *f, gpa_t gpa, uint64_t npages)
{
	(void)ctx;
	(void)gpa;
	(void)npages;
	if (frame_flags(f) & FRAME_WP)
		frame_clear_flags(f, FRAME_WP);
	return 0;
}

/*
 * Give [gpa, gpa + len) permission @perm where the lazy policy left it read-only: finish
 * any deferred invalidation first (nothing may become writable before it), then one
 * batch. Caller holds mm->lock. Returns 0, or -EFAULT if no page needed it.
 */
static int make_writable(struct mm *mm, gpa_t gpa, uint64_t len, unsigned perm)
{
	uint64_t pages = 0;

	if (mm->fatal) /* nothing may change any more */
		return -EIO;
	s2_flush_deferred(&mm->map);
	if (s2_protect(&mm->map, gpa, len, perm, &mm->batch) == 0)
		for (size_t i = 0; i < mm->batch.n; i++)
			pages += mm->batch.v[i].size / PAGE;
	if (mm_commit(mm, &mm->batch, 0)) {
		/* the alias kept some of it read-only: say so in the map too, and let the
		 * vCPU retry (its write has not happened); give up after 8 in a row */
		struct mm_alias_fail f = mm->afail;
		int bad = 0, err = f.err;
		enum mm_host_call call = f.call;

		mm->afail = (struct mm_alias_fail){ 0 };
		mm->mig.alias_failures++;
		if (f.all)
			bad = s2_protect(&mm->map, gpa, len, perm & ~S2_PERM_W, &mm->batch);
		for (size_t k = 0; k < f.n && !f.all; k++)
			bad |= s2_protect(&mm->map, f.v[k].gpa, f.v[k].end - f.v[k].gpa,
					  perm & ~S2_PERM_W, &mm->batch);
		free(f.v);
		if (bad || mm_commit_retry(mm, &mm->batch, 0) || ++mm->wfix_failures > 8) {
			if (!mm->afail.err) { /* name the first failure in the message */
				mm->afail.err = err;
				mm->afail.call = call;
			}
			mm_fatal(mm, "making a write-protected guest page writable");
			return -EIO;
		}
		__atomic_add_fetch(&mm->seq, 1, __ATOMIC_RELEASE); /* the faulting vCPU retries */
		return -EAGAIN;
	}
	mm->wfix_failures = 0;
	frame_for_each(&mm->ft, gpa, len, clear_wp, NULL);
	if (mm->maps_est)
		mm->maps_est += 2;
	if (!pages)
		return -EFAULT;
	publish_if_clean(mm);
	mm->mig.lazy_fixups += pages;
	__atomic_add_fetch(&mm->seq, 1, __ATOMIC_RELEASE);
	return 0;
}

/* Make the leaf holding @gpa writable (lazy policy). Caller holds mm->lock. */
int mm_handle_write_fault_locked(struct mm *mm, gpa_t gpa)
{
	struct s2_leaf l;
	unsigned lvl;
	uint64_t lsz;

	/* read-only outside a batch: the lazy policy, or a run whose permission change the
	 * alias refused (eager) */
	if (s2_walk(&mm->map, gpa, &l, &lvl) || (l.perm & S2_PERM_W))
		return -EFAULT;
	lsz = s2_level_size(lvl);
	{
		/* never make a page of a batch writable while it is copied */
		const struct frame *f = frame_lookup(&mm->ft, gpa, NULL);

		if (f && (frame_flags(f) & FRAME_MIGRATING))
			return -EAGAIN;
	}
	return make_writable(mm, gpa & ~(lsz - 1), lsz, l.perm | S2_PERM_W);
}

int mm_handle_write_fault(struct mm *mm, gpa_t gpa, uint64_t seen_seq)
{
	uint64_t t0 = s2_now_ns();
	int r = 0;

	pthread_mutex_lock(&mm->lock);
	/* wait for a batch that has this page (or, not knowing the page, any batch) */
	for (;;) {
		const struct frame *f = gpa < mm->cfg.mem_size ? frame_lookup(&mm->ft, gpa, NULL)
							       : NULL;

		if (!mm->batch_active || mm->fatal ||
		    (gpa < mm->cfg.mem_size && !(f && (frame_flags(f) & FRAME_MIGRATING))))
			break;
		pthread_cond_wait(&mm->batch_cond, &mm->lock);
	}
	if (gpa != ~0ull)
		mm->mig.fault_gpa_known++;
	if (gpa != ~0ull && gpa < mm->cfg.mem_size) {
		r = mm_handle_write_fault_locked(mm, gpa);
	} else if (mm_seq(mm) == seen_seq &&
		   (mm->cfg.mig.lazy_writable || mm->mig.alias_failures)) {
		/* The host did not say which page (no KVM_EXIT_MEMORY_FAULT, as on PVM):
		 * make every lazily write-protected page writable, in one batch. */
		r = make_writable(mm, 0, mm->cfg.mem_size, S2_PERM_RWX);
	} else {
		r = -EFAULT;
	}
	if (r && mm_seq(mm) != seen_seq)
		r = 0; /* a batch ended since the vCPU entered: retry */
	{
		struct mm_tl_event ev = { .kind = MM_TL_FAULT, .start_ns = t0,
					  .end_ns = s2_now_ns(), .gpa = gpa, .err = r };

		mm->mig.fault_waits++;
		mm->mig.stall_ns += ev.end_ns - t0;
		mm_timeline_push(&mm->tl, &ev);
	}
	pthread_mutex_unlock(&mm->lock);
	return r;
}
