// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm/discard.h"
#include "mm/mark.h"

#define HUGE POOL_HUGE_FRAMES
#define PAGE S2_PAGE_SIZE
#define MIB2 (2ull << 20)

#define DISCARD_NO_DRAIN (1u << 31) /* internal: retries do not drain the holders */

#define MM_ERR(mm, code, ...) (snprintf((mm)->err, sizeof((mm)->err), __VA_ARGS__), (code))

/* Room for @extra more queued ranges. Returns 0 or -ENOMEM. Caller holds mm->lock. */
static int queue_reserve(struct mm *mm, size_t extra)
{
	size_t cap = mm->discard_qcap ? mm->discard_qcap : 16;
	struct mig_range *q;

	if (mm->discard_qn + extra <= mm->discard_qcap)
		return 0;
	while (cap < mm->discard_qn + extra)
		cap *= 2;
	q = realloc(mm->discard_q, cap * sizeof(*q));
	if (!q)
		return -ENOMEM;
	mm->discard_q = q;
	mm->discard_qcap = cap;
	return 0;
}

/* Remove [gpa, end) from the sorted, disjoint queue; returns pages removed. A queued range
 * that contains [gpa, end) strictly splits in two; without room for that, all of it is
 * dropped (its pages stay resident, never wrongly discarded). Caller holds mm->lock. */
static uint64_t queue_remove(struct mm *mm, gpa_t gpa, gpa_t end)
{
	uint64_t removed = 0;
	size_t n = mm->discard_qn;

	for (size_t i = 0; i < n; i++) {
		struct mig_range *q = mm->discard_q;
		gpa_t s = q[i].gpa, e = q[i].gpa + q[i].len;

		if (e <= gpa || s >= end)
			continue;
		if (s < gpa && e > end) { /* split: the tail goes in a new slot after it */
			if (queue_reserve(mm, 1)) {
				removed += q[i].len / PAGE;
				q[i].len = 0;
				break;
			}
			q = mm->discard_q;
			memmove(&q[i + 2], &q[i + 1], (n - i - 1) * sizeof(*q));
			q[i] = (struct mig_range){ s, gpa - s };
			q[i + 1] = (struct mig_range){ end, e - end };
			mm->discard_qn = ++n;
			removed += (end - gpa) / PAGE;
			break;
		}
		removed += ((e < end ? e : end) - (s > gpa ? s : gpa)) / PAGE;
		if (s < gpa)
			q[i] = (struct mig_range){ s, gpa - s };
		else if (e > end)
			q[i] = (struct mig_range){ end, e - end };
		else
			q[i].len = 0; /* all of it: dropped below */
	}
	mm->discard_qn = 0;
	for (size_t i = 0; i < n; i++)
		if (mm->discard_q[i].len)
			mm->discard_q[mm->discard_qn++] = mm->discard_q[i];
	return removed;
}

/* Queue [gpa, gpa + n pages) for mm_discard_retry(), unsorted: queue_tidy() sorts and
 * merges once per call. Returns 0 or -ENOMEM. Caller holds mm->lock. */
static int queue_add(struct mm *mm, gpa_t gpa, uint64_t n)
{
	if (queue_reserve(mm, 1))
		return -ENOMEM;
	mm->discard_q[mm->discard_qn++] = (struct mig_range){ gpa, n * PAGE };
	return 0;
}

/* Sort and merge the queue, and count its pages. Caller holds mm->lock. */
static void queue_recount(struct mm *mm)
{
	uint64_t pages = 0;

	mm->discard_qn = mm_ranges_merge(mm->discard_q, mm->discard_qn);

	for (size_t i = 0; i < mm->discard_qn; i++)
		pages += mm->discard_q[i].len / PAGE;
	mm->discard.pending_pages = pages;
}

/* ---- policy ---- */

/*
 * The pool that @gpa's guest node policy names for new frames (*@home) and whether pool
 * @pool is one the policy allows (the home, or for `preferred` one of its fallbacks).
 * Caller holds mm->lock. Returns 0 or -errno (the home pool could not be made).
 */
static int policy_of(struct mm *mm, gpa_t gpa, unsigned pool, unsigned *home, bool *allowed)
{
	const struct mm_guest_node *n = NULL;
	unsigned node;
	int pi;

	for (unsigned i = 0; i < mm->cfg.nr_nodes; i++)
		if (gpa >= mm->cfg.nodes[i].gpa && gpa < mm->cfg.nodes[i].gpa + mm->cfg.nodes[i].size)
			n = &mm->cfg.nodes[i];
	if (!n) { /* cannot happen: nodes cover RAM */
		*home = pool;
		*allowed = true;
		return 0;
	}
	if (n->policy == MM_POLICY_INTERLEAVE)
		node = n->hosts[((gpa - n->gpa) / MIB2) % n->nr_hosts];
	else
		node = n->host;
	pi = mm_pool_get(mm, node);
	if (pi < 0)
		return pi;
	*home = (unsigned)pi;
	*allowed = (unsigned)pi == pool;
	if (!*allowed && n->policy == MM_POLICY_PREFERRED)
		for (unsigned h = 0; h < n->nr_hosts; h++)
			if (mm->pools[pool].node == n->hosts[h])
				*allowed = true;
	return 0;
}

/* ---- the discard itself ---- */

/* One piece: [gpa, gpa + n pages) on pool @pool from frame @pfn, one action. */
struct dpiece {
	gpa_t gpa;
	uint64_t n;
	unsigned pool;
	uint64_t pfn;
	unsigned home; /* pool the policy names */
	bool rehome;
	bool failed; /* in place: the punch was refused (or injected to fail) */
	unsigned wp; /* FRAME_WP of its records */
	/* set when re-homed: */
	uint64_t nfirst; /* new frames on @home */
};

struct dwork {
	struct dpiece *v;
	size_t n, cap;
	uint64_t huge_partial; /* pages left: parts of huge frames */
};

static int push_piece(struct dwork *w, const struct dpiece *p)
{
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		struct dpiece *nv = realloc(w->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		w->v = nv;
		w->cap = cap;
	}
	w->v[w->n++] = *p;
	return 0;
}

/* Split [gpa, end) into pieces contiguous in one pool with one action. Caller holds
 * mm->lock. Returns 0 or -ENOMEM. */
static int collect(struct mm *mm, gpa_t gpa, gpa_t end, struct dwork *w)
{
	for (gpa_t g = gpa, next; g < end; g = next) {
		uint64_t pfn;
		struct frame *f = frame_get(&mm->ft, g, &pfn);
		struct dpiece p;
		bool allowed;
		int r;

		next = g + PAGE;
		if (f && (frame_flags(f) & FRAME_HUGE_HEAD))
			next = (g | (MIB2 - 1)) + 1;
		if (next > end)
			next = end;
		if (!f)
			continue; /* cannot happen: RAM is always backed */
		if (pool_frame_huge(&mm->pools[frame_pool(f)], pfn) &&
		    (g % MIB2 || next - g != MIB2)) {
			/* part of a 2 MiB huge page: hugetlbfs frees whole pages only, so it
			 * stays (as with Firecracker's huge pages), counted */
			mm->discard.huge_partial_pages += (next - g) / PAGE;
			w->huge_partial += (next - g) / PAGE;
			continue;
		}
		p = (struct dpiece){ .gpa = g, .n = (next - g) / PAGE, .pool = frame_pool(f),
				     .pfn = pfn, .wp = frame_flags(f) & FRAME_WP };
		r = policy_of(mm, g, p.pool, &p.home, &allowed);
		if (r)
			return r;
		p.rehome = !allowed;
		if (w->n) {
			struct dpiece *l = &w->v[w->n - 1];

			/* the window a huge page cannot back is a piece of its own: re-homed,
			 * it takes small frames (mm_gpa_small()), its neighbours maybe not */
			if (l->gpa + l->n * PAGE == g && l->pool == p.pool && l->pfn + l->n == pfn &&
			    l->rehome == p.rehome && l->home == p.home && l->wp == p.wp &&
			    mm_gpa_small(mm, l->gpa) == mm_gpa_small(mm, g)) {
				l->n += p.n;
				continue;
			}
		}
		r = push_piece(w, &p);
		if (r)
			return r;
	}
	return 0;
}

/*
 * Punch the pieces that stay where they are, with mm->lock dropped: a GiB takes 150 ms
 * or more, and nothing needs the lock for it (every record is marked, so no device can
 * pin these frames; mig_lock keeps other batches out). Fault injection is decided and
 * counters are updated under the lock. Caller holds mig_lock and mm->lock.
 */
static void punch_in_place(struct mm *mm, struct dwork *w, struct discard_result *res)
{
	for (size_t i = 0; i < w->n; i++) /* injected failures: decided under the lock */
		w->v[i].failed = !w->v[i].rehome && mm_inject_fail(mm, MM_CALL_FALLOCATE);
	pthread_mutex_unlock(&mm->lock);
	for (size_t i = 0; i < w->n; i++) {
		struct dpiece *p = &w->v[i];

		if (!p->rehome && !p->failed)
			p->failed = pool_punch_uncounted(&mm->pools[p->pool], p->pfn, p->n) != 0;
	}
	pthread_mutex_lock(&mm->lock);
	for (size_t i = 0; i < w->n; i++) {
		struct dpiece *p = &w->v[i];

		if (p->rehome)
			continue;
		if (p->failed) {
			mm->discard.failed_pages += p->n;
			continue;
		}
		pool_count_punch(&mm->pools[p->pool], p->n);
		res->punch_calls++;
		res->returned += p->n * PAGE;
		mm->discard.returned_bytes[p->pool] += p->n * PAGE;
	}
}

/*
 * Give the re-homed pieces fresh frames on their home pools: map, records and one
 * commit. Pieces that get no frames (home pool full) are punched where they are. On a
 * refused alias call everything is put back and punched in place. Caller holds
 * mm->lock; every record is marked. Returns 0 or -EIO (mm_fatal()).
 */
static int rehome(struct mm *mm, struct dwork *w, struct discard_result *res)
{
	struct s2_batch *b = &mm->batch;
	uint64_t mm0 = mm->alias_stats.mmap_calls, gen;
	size_t moved = 0;
	int e;

	/* pieces split further wherever the home pool gives shorter runs */
	for (size_t i = 0; i < w->n; i++) {
		struct dpiece *p = &w->v[i];
		uint64_t align = !(p->gpa % MIB2) && p->n >= HUGE ? HUGE : 1, first, got;
		struct pool *hp = &mm->pools[p->home];

		if (!p->rehome)
			continue;
		got = mm_pool_alloc_upto(mm, hp, p->gpa,
					 align == HUGE ? p->n & ~(uint64_t)(HUGE - 1) : p->n, align,
					 &first);
		if (!got && align == HUGE)
			got = mm_pool_alloc_upto(mm, hp, p->gpa, p->n, 1, &first);
		else if (align == HUGE && got < p->n) /* the tail past whole 2 MiB frames */
			got += pool_alloc_at(hp, first + got, p->n - got);
		if (!got) {
			p->rehome = false; /* no room on the home node: punched where it is */
			mm->discard.misplaced += p->n;
			res->misplaced += p->n;
			continue;
		}
		if (got < p->n) { /* the rest becomes its own piece, handled next */
			struct dpiece rest = *p;

			rest.gpa += got * PAGE;
			rest.pfn += got;
			rest.n -= got;
			if (push_piece(w, &rest)) { /* no memory: punch the rest in place */
				pool_free(&mm->pools[p->home], first, got);
				p->rehome = false;
				continue;
			}
			p = &w->v[i]; /* push_piece may have moved the array */
			p->n = got;
		}
		/* The new frames must read zero: frames kept warm (mig.keep_freed) or whose
		 * punch failed still hold old data. One more punch then, or stay put. */
		if (pool_has_data(&mm->pools[p->home], first, p->n)) {
			if (mm_inject_fail(mm, MM_CALL_FALLOCATE) ||
			    pool_punch(&mm->pools[p->home], first, p->n)) {
				pool_free(&mm->pools[p->home], first, p->n);
				p->rehome = false;
				continue;
			}
			res->punch_calls++;
		}
		p->nfirst = first;
		/* Not SAME_CONTENTS: on arm64 a writable entry changes by break-before-make.
		 * Fails only for table pages (a block split when the new frames are not
		 * 2 MiB aligned), and then changed nothing: punch this piece in place. */
		if (s2_remap(&mm->map, p->gpa, p->n * PAGE, mm_pa(p->home, first), 0, b)) {
			pool_free(&mm->pools[p->home], first, p->n);
			p->rehome = false;
			continue;
		}
		/* inside RAM, frame numbers from a pool: fails only with -ENOMEM (record
		 * pages of a split chunk could not be allocated; nothing changed), then the
		 * map is put back and the piece punched in place */
		if (frame_table_set_flags(&mm->ft, p->gpa, p->n * PAGE, p->home, first,
					  FRAME_MIGRATING | p->wp)) {
			if (s2_remap(&mm->map, p->gpa, p->n * PAGE, mm_pa(p->pool, p->pfn), 0, b)) {
				mm_fatal(mm, "discard: map and frame table disagree");
				return -EIO;
			}
			pool_free(&mm->pools[p->home], first, p->n);
			p->rehome = false;
			continue;
		}
		moved++;
	}
	if (!moved)
		return 0;
	e = mm_commit(mm, b, 0);
	if (e) {
		/* put every re-homed piece back on its old frames, then punch those (the
		 * frame table cannot say -ENOMEM here: the set above left every chunk it
		 * split, or re-formed within the grace period, with private record pages) */
		for (size_t i = 0; i < w->n; i++) {
			struct dpiece *p = &w->v[i];

			if (!p->rehome)
				continue;
			if (s2_remap(&mm->map, p->gpa, p->n * PAGE, mm_pa(p->pool, p->pfn), 0, b) ||
			    frame_table_set_flags(&mm->ft, p->gpa, p->n * PAGE, p->pool, p->pfn,
						  FRAME_MIGRATING | p->wp)) {
				mm_fatal(mm, "discard: putting back a refused remap");
				return -EIO;
			}
		}
		{
			struct mm_alias_fail f = mm->afail;

			mm->afail = (struct mm_alias_fail){ 0 };
			e = mm_commit_retry(mm, b, 0);
			if (!e)
				e = mm_alias_resync(mm, &f);
			free(f.v);
		}
		if (e) {
			mm_fatal(mm, "discard: putting back a refused remap");
			return -EIO;
		}
		for (size_t i = 0; i < w->n; i++)
			if (w->v[i].rehome) {
				pool_free(&mm->pools[w->v[i].home], w->v[i].nfirst, w->v[i].n);
				w->v[i].rehome = false;
			}
		mm->discard.alias_calls += mm->alias_stats.mmap_calls - mm0;
		res->alias_calls += mm->alias_stats.mmap_calls - mm0;
		return 0;
	}
	/* no turning back: the guest's pages are on the new (empty) frames */
	gen = gen_advance(&mm->gens);
	if (!mm->map.flush_pending)
		gen_publish(&mm->gens, mm->vcpu_holder, gen_current(&mm->gens));
	for (size_t i = 0; i < w->n; i++) {
		struct dpiece *p = &w->v[i];

		if (!p->rehome)
			continue;
		if (defer_push(&mm->deferred, p->pool, p->pfn, p->n, gen)) {
			mm_flush_and_free(mm);
			if (defer_push(&mm->deferred, p->pool, p->pfn, p->n, gen)) {
				if (gen_reached(gen_min_done(&mm->gens), gen))
					mm_free_frames(mm, p->pool, p->pfn, p->n);
				else
					mm->mig.held_frames += p->n;
			}
		}
		mm->discard.rehomed += p->n;
		res->rehomed += p->n;
		if (!mm->cfg.mig.keep_freed) { /* punched when freed, behind the generation */
			mm->discard.returned_bytes[p->pool] += p->n * PAGE;
			res->returned += p->n * PAGE;
			res->punch_calls++;
		}
	}
	mm->discard.alias_calls += mm->alias_stats.mmap_calls - mm0;
	res->alias_calls += mm->alias_stats.mmap_calls - mm0;
	defer_reap(&mm->deferred, gen_min_done(&mm->gens), mm_free_frames, mm);
	return 0;
}

/* Discard the merged ranges @r (mig_lock and mm->lock held; marks, drains, acts,
 * unmarks). */
static int discard_locked(struct mm *mm, const struct mig_range *r, size_t n, unsigned flags,
			  struct discard_result *res)
{
	struct mark_ctx c = { 0 };
	struct dwork w = { 0 };
	uint64_t pc0 = res->punch_calls;
	size_t s = 0;
	int err = 0;

	for (size_t i = 0; i < n && !c.err; i++)
		frame_for_each(&mm->ft, r[i].gpa, r[i].len, mm_mark_one, &c);
	if (!c.err && c.pages && !(flags & DISCARD_NO_DRAIN)) {
		/* a request in flight is not a pin: let the holders finish theirs */
		uint64_t before = c.pages;

		mm_unmark_ranges(mm, r, n, &c);
		pthread_mutex_unlock(&mm->lock);
		if (mm_drain_holders(mm))
			mm->pins.drains++;
		pthread_mutex_lock(&mm->lock);
		c.n = 0;
		c.pages = 0;
		for (size_t i = 0; i < n && !c.err; i++)
			frame_for_each(&mm->ft, r[i].gpa, r[i].len, mm_mark_one, &c);
		if (!c.err && c.pages < before)
			mm->pins.drain_avoided += before - c.pages;
	}
	mm->batch_active = true;
	if (c.err) {
		err = c.err;
		goto out;
	}
	/* the pieces to work on: the ranges minus the pinned segments (both sorted) */
	for (size_t i = 0; i < n && !err; i++) {
		gpa_t g = r[i].gpa, end = r[i].gpa + r[i].len;

		res->runs++;
		mm->discard.runs++;
		while (g < end && !err) {
			gpa_t stop = end;

			while (s < c.n && c.v[s].gpa + c.v[s].n * PAGE <= g)
				s++;
			if (s < c.n && c.v[s].gpa <= g) { /* pinned from g */
				gpa_t pe = c.v[s].gpa + c.v[s].n * PAGE;
				uint64_t np;

				stop = pe < end ? pe : end;
				np = (stop - g) / PAGE;
				res->pinned += np;
				if ((flags & MM_DISCARD_DEFER_PINNED) && !queue_add(mm, g, np)) {
					res->deferred += np;
					mm->discard.pinned_deferred += np;
				} else {
					mm->discard.pinned_skipped += np;
				}
			} else {
				if (s < c.n && c.v[s].gpa < end)
					stop = c.v[s].gpa;
				err = collect(mm, g, stop, &w);
			}
			g = stop;
		}
	}
	if (err)
		goto out;
	err = rehome(mm, &w, res);
	if (err)
		goto out;
	punch_in_place(mm, &w, res);
	res->huge_partial += w.huge_partial;
	for (size_t i = 0; i < w.n; i++) {
		if (!w.v[i].rehome && w.v[i].failed)
			continue; /* still resident: not discarded */
		res->pages += w.v[i].n;
		mm->discard.pages += w.v[i].n;
	}
out:
	mm->discard.punch_calls += res->punch_calls - pc0;
	mm_unmark_ranges(mm, r, n, &c);
	__atomic_add_fetch(&mm->seq, 1, __ATOMIC_RELEASE);
	queue_recount(mm);
	free(c.v);
	free(c.huge);
	free(w.v);
	return err;
}

static int check_ranges(struct mm *mm, const struct mig_range *r, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		if (!r[k].len)
			return MM_ERR(mm, -EINVAL, "discard: range %zu is empty", k);
		if ((r[k].gpa | r[k].len) % PAGE)
			return MM_ERR(mm, -EINVAL,
				      "discard: range %zu [%#llx, +%#llx) is not 4 KiB aligned", k,
				      (unsigned long long)r[k].gpa, (unsigned long long)r[k].len);
		if (r[k].gpa + r[k].len < r[k].gpa || r[k].gpa + r[k].len > mm->cfg.mem_size)
			return MM_ERR(mm, -EINVAL,
				      "discard: range %zu [%#llx, +%#llx) is outside guest RAM "
				      "(%llu MiB)",
				      k, (unsigned long long)r[k].gpa, (unsigned long long)r[k].len,
				      (unsigned long long)(mm->cfg.mem_size >> 20));
	}
	return 0;
}

/* Discard @r, already checked, sorted and merged; takes the locks. */
static int discard_ranges(struct mm *mm, const struct mig_range *r, size_t n, unsigned flags,
			  struct discard_result *res)
{
	struct discard_result before = *res;
	int e;

	pthread_mutex_lock(&mm->mig_lock);
	pthread_mutex_lock(&mm->lock);
	if (mm->fatal) {
		e = -EIO;
	} else {
		e = discard_locked(mm, r, n, flags, res);
		if (res->pages != before.pages || res->pinned != before.pinned)
			mm->discard.calls++;
	}
	pthread_mutex_unlock(&mm->lock);
	pthread_mutex_unlock(&mm->mig_lock);
	return e;
}

int mm_discard(struct mm *mm, const struct mig_range *r, size_t n, unsigned flags,
	       struct discard_result *res)
{
	struct mig_range *v;
	int e;

	if (!n)
		return 0;
	if (n > SIZE_MAX / sizeof(*v))
		return MM_ERR(mm, -EINVAL, "discard: %zu ranges is too many", n);
	e = check_ranges(mm, r, n);
	if (e)
		return e;
	v = malloc(n * sizeof(*v));
	if (!v)
		return MM_ERR(mm, -ENOMEM, "discard: no memory for %zu ranges", n);
	memcpy(v, r, n * sizeof(*v));
	n = mm_ranges_merge(v, n);
	e = discard_ranges(mm, v, n, flags, res);
	free(v);
	return e;
}

int mm_discard_retry(struct mm *mm, struct discard_result *res)
{
	struct mig_range *v;
	size_t n;
	int e;

	pthread_mutex_lock(&mm->mig_lock);
	pthread_mutex_lock(&mm->lock);
	n = mm->discard_qn;
	if (!n || mm->fatal) {
		pthread_mutex_unlock(&mm->lock);
		pthread_mutex_unlock(&mm->mig_lock);
		return n ? -EIO : 0;
	}
	/* take the queue: what is still pinned goes back into it */
	v = mm->discard_q;
	mm->discard_q = NULL;
	mm->discard_qn = mm->discard_qcap = 0;
	{
		uint64_t before = res->pages;

		/* long-term pins are what keeps pages queued: draining holders for them
		 * again every retry would only cost */
		e = discard_locked(mm, v, n, MM_DISCARD_DEFER_PINNED | DISCARD_NO_DRAIN, res);
		if (res->pages != before)
			mm->discard.calls++;
	}
	if (e) { /* nothing lost: queue them again */
		for (size_t i = 0; i < n; i++)
			(void)queue_add(mm, v[i].gpa, v[i].len / PAGE);
		queue_recount(mm);
	}
	pthread_mutex_unlock(&mm->lock);
	pthread_mutex_unlock(&mm->mig_lock);
	free(v);
	return e;
}

uint64_t mm_discard_cancel(struct mm *mm, const struct mig_range *r, size_t n)
{
	uint64_t removed = 0;

	/* mig_lock: a retry in progress holds queued ranges outside the queue */
	pthread_mutex_lock(&mm->mig_lock);
	pthread_mutex_lock(&mm->lock);
	for (size_t i = 0; i < n && mm->discard_qn; i++)
		if (r[i].len && r[i].gpa + r[i].len > r[i].gpa)
			removed += queue_remove(mm, r[i].gpa, r[i].gpa + r[i].len);
	mm->discard.cancelled_pages += removed;
	queue_recount(mm);
	pthread_mutex_unlock(&mm->lock);
	pthread_mutex_unlock(&mm->mig_lock);
	return removed;
}

uint64_t mm_discard_pending(struct mm *mm)
{
	uint64_t n;

	pthread_mutex_lock(&mm->lock);
	n = mm->discard.pending_pages;
	pthread_mutex_unlock(&mm->lock);
	return n;
}
