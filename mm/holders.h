/* SPDX-License-Identifier: MIT */
/*
 * Translation holders and the deferred-free queue (DESIGN.md, "Invalidation and
 * deferral"; the migrc/LUF generation protocol). A global generation advances at each
 * batch commit. Every holder of cached translations (the vCPU set, a device queue)
 * publishes the newest generation its caches are known to be clean of, at a quiescent
 * point. Frames that a batch unmapped are freed only when every holder has published
 * that batch's generation — in one batched free. All comparisons are 64-bit.
 *
 * Locking: holders publish with atomics from any thread; the queue is owned by the
 * caller's lock (mm->lock).
 */
#ifndef S2VM_MM_HOLDERS_H
#define S2VM_MM_HOLDERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GEN_MAX_HOLDERS 72 /* the vCPU set, 8 disks x 8 queues, spares */

struct gen_holder {
	uint64_t done; /* atomic: every translation cached from before this gen is gone */
	bool active;
	bool idle; /* atomic: caches nothing now (a device queue waiting for work) */
	const char *name;
};

struct gen_tracker {
	uint64_t gen; /* atomic: current global generation, starts at 1 */
	struct gen_holder holders[GEN_MAX_HOLDERS];
};

/* Wrap-safe: is generation @a at or after @b? (Valid while fewer than 2^63 apart.) */
static inline bool gen_reached(uint64_t a, uint64_t b)
{
	return (int64_t)(a - b) >= 0;
}

void gen_init(struct gen_tracker *g, uint64_t start);
/* Register a holder; returns its index or -ENOSPC. It starts as having seen everything. */
int gen_holder_add(struct gen_tracker *g, const char *name);
void gen_holder_remove(struct gen_tracker *g, int h);
/* Advance the global generation (a batch commit). Returns the new generation. */
uint64_t gen_advance(struct gen_tracker *g);
uint64_t gen_current(const struct gen_tracker *g);
/*
 * Holder @h publishes @gen after a full invalidation: the caller read @gen BEFORE
 * flushing. done = max(done, gen) with release ordering.
 */
void gen_publish(struct gen_tracker *g, int h, uint64_t gen);
/* Holder @h caches nothing until it calls gen_holder_set_idle(false), which publishes the
 * current generation first: while idle it holds back no frees. */
void gen_holder_set_idle(struct gen_tracker *g, int h, bool idle);
/* The smallest generation every active, non-idle holder has passed. */
uint64_t gen_min_done(const struct gen_tracker *g);

/* Frames [first, first + n) of pool @pool, freeable once every holder passed @gen. */
struct defer_entry {
	unsigned pool;
	uint64_t first, n;
	uint64_t gen;
};

struct defer_queue {
	struct defer_entry *v;
	size_t n, cap;
	uint64_t frames; /* frames now pending */
	uint64_t frames_max; /* most ever pending */
	uint64_t cap_frames; /* flush when more are pending than this */
};

void defer_init(struct defer_queue *q, uint64_t cap_frames);
void defer_destroy(struct defer_queue *q);
/* Queue frames behind @gen. Returns 0 or -ENOMEM (then the caller must flush first). */
int defer_push(struct defer_queue *q, unsigned pool, uint64_t first, uint64_t n, uint64_t gen)
	__attribute__((warn_unused_result));
/* True if more than the cap is pending. */
static inline bool defer_over_cap(const struct defer_queue *q)
{
	return q->frames > q->cap_frames;
}
/*
 * Free, via @free_fn, every entry whose generation all holders passed (@min_done).
 * Returns the number of frames freed.
 */
uint64_t defer_reap(struct defer_queue *q, uint64_t min_done,
		    void (*free_fn)(void *ctx, unsigned pool, uint64_t first, uint64_t n), void *ctx);

#endif
