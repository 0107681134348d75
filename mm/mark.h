/* SPDX-License-Identifier: MIT */
/*
 * Inside the memory manager: the marking that migration and discard share. Marking sets
 * FRAME_MIGRATING on every record of a range with one compare-and-swap each, refused
 * for pinned records (mm/frame.h): while marked, no device can pin the frame, so its
 * pool frame can be copied, replaced or punched. Not for use outside mm/.
 */
#ifndef S2VM_MM_MARK_H
#define S2VM_MM_MARK_H

#include "mm/migrate.h"

/* Pages whose records were pinned: [gpa, gpa + n pages). */
struct pinned_seg {
	gpa_t gpa;
	uint64_t n;
};

/* What a marking pass found. Zero it before the first use; free v and huge after. */
struct mark_ctx {
	struct pinned_seg *v; /* pinned pages, in GPA order */
	size_t n, cap;
	uint64_t pages; /* pinned pages in v */
	gpa_t *huge; /* 2 MiB chunks marked through their huge head */
	size_t nh, caph;
	int err; /* -ENOMEM: the pass stopped, marks so far stand */
};

/* frame_for_each() callback: mark @f, or record its pages in the struct mark_ctx @ctx as
 * pinned. Caller holds mm->lock and mm->mig_lock. */
int mm_mark_one(void *ctx, struct frame *f, gpa_t gpa, uint64_t npages);

/* Clear FRAME_MIGRATING over @r and the huge chunks @c marked through their heads, end
 * the batch and wake waiters on mm->batch_cond. Caller holds mm->lock and mig_lock. */
void mm_unmark_ranges(struct mm *mm, const struct mig_range *r, size_t n, struct mark_ctx *c);

/* Ask every DMA holder to drain (submit, reap, unpin, publish). Called with mig_lock,
 * without mm->lock. Returns how many were asked. */
unsigned mm_drain_holders(struct mm *mm);

/* Return frames to their pool and punch them (unless mig.keep_freed); a defer_reap()
 * callback, @ctx the struct mm. Caller holds mm->lock. */
void mm_free_frames(void *ctx, unsigned pool, uint64_t first, uint64_t n);

#endif
