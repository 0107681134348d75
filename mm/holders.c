// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mm/holders.h"

void gen_init(struct gen_tracker *g, uint64_t start)
{
	memset(g, 0, sizeof(*g));
	__atomic_store_n(&g->gen, start, __ATOMIC_RELEASE);
}

int gen_holder_add(struct gen_tracker *g, const char *name)
{
	for (int i = 0; i < GEN_MAX_HOLDERS; i++) {
		if (!__atomic_load_n(&g->holders[i].active, __ATOMIC_ACQUIRE)) {
			g->holders[i].name = name;
			__atomic_store_n(&g->holders[i].idle, false, __ATOMIC_RELAXED);
			__atomic_store_n(&g->holders[i].done, gen_current(g), __ATOMIC_RELEASE);
			/* active last: a reader that sees it sees done too */
			__atomic_store_n(&g->holders[i].active, true, __ATOMIC_RELEASE);
			return i;
		}
	}
	return -ENOSPC;
}

void gen_holder_remove(struct gen_tracker *g, int h)
{
	__atomic_store_n(&g->holders[h].active, false, __ATOMIC_RELEASE);
}

uint64_t gen_advance(struct gen_tracker *g)
{
	return __atomic_add_fetch(&g->gen, 1, __ATOMIC_ACQ_REL);
}

uint64_t gen_current(const struct gen_tracker *g)
{
	return __atomic_load_n(&g->gen, __ATOMIC_ACQUIRE);
}

void gen_publish(struct gen_tracker *g, int h, uint64_t gen)
{
	uint64_t cur = __atomic_load_n(&g->holders[h].done, __ATOMIC_RELAXED);

	/* sequentially consistent: the flush before this call is ordered before the
	 * new value is visible to anyone deciding to free frames */
	while (!gen_reached(cur, gen) &&
	       !__atomic_compare_exchange_n(&g->holders[h].done, &cur, gen, false,
					    __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
		;
}

void gen_holder_set_idle(struct gen_tracker *g, int h, bool idle)
{
	if (!idle) /* it is clean of everything up to now: it cached nothing while idle */
		gen_publish(g, h, gen_current(g));
	__atomic_store_n(&g->holders[h].idle, idle, __ATOMIC_SEQ_CST);
}

uint64_t gen_min_done(const struct gen_tracker *g)
{
	uint64_t m = gen_current(g);

	for (int i = 0; i < GEN_MAX_HOLDERS; i++) {
		uint64_t d;

		if (!__atomic_load_n(&g->holders[i].active, __ATOMIC_ACQUIRE) ||
		    __atomic_load_n(&g->holders[i].idle, __ATOMIC_SEQ_CST))
			continue;
		d = __atomic_load_n(&g->holders[i].done, __ATOMIC_ACQUIRE);
		if (!gen_reached(d, m))
			m = d;
	}
	return m;
}

void defer_init(struct defer_queue *q, uint64_t cap_frames)
{
	memset(q, 0, sizeof(*q));
	q->cap_frames = cap_frames;
}

void defer_destroy(struct defer_queue *q)
{
	free(q->v);
	memset(q, 0, sizeof(*q));
}

int defer_push(struct defer_queue *q, unsigned pool, uint64_t first, uint64_t n, uint64_t gen)
{
	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 64;
		struct defer_entry *v = realloc(q->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		q->v = v;
		q->cap = cap;
	}
	q->v[q->n++] = (struct defer_entry){ .pool = pool, .first = first, .n = n, .gen = gen };
	q->frames += n;
	if (q->frames > q->frames_max)
		q->frames_max = q->frames;
	return 0;
}

uint64_t defer_reap(struct defer_queue *q, uint64_t min_done,
		    void (*free_fn)(void *ctx, unsigned pool, uint64_t first, uint64_t n), void *ctx)
{
	uint64_t freed = 0;
	size_t k = 0;

	for (size_t i = 0; i < q->n; i++) {
		struct defer_entry *e = &q->v[i];

		if (gen_reached(min_done, e->gen)) {
			free_fn(ctx, e->pool, e->first, e->n);
			freed += e->n;
		} else {
			q->v[k++] = *e;
		}
	}
	q->n = k;
	q->frames -= freed;
	return freed;
}
