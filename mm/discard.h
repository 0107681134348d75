/* SPDX-License-Identifier: MIT */
/*
 * Discarding guest memory: giving pages the guest no longer needs back to the host
 * (DESIGN.md, "Discard"). One path for every source (balloon inflate, free page
 * reporting). Reported ranges are sorted and merged into maximal runs; each run is
 * split only where its backing changes pool or stops being contiguous, and each such
 * piece costs at most two host calls:
 *
 *  - in place (the usual case: the frames sit on a pool their guest node's policy
 *    allows): one fallocate(PUNCH_HOLE) over the piece's frames. The map, the alias
 *    and every cached translation stay as they are (nothing to invalidate): the frames
 *    are still the guest's, now holes that read as zero and are filled again, on the
 *    same pool (its memfd's mbind policy), when the guest writes them.
 *  - re-homed (the frames sit on a pool the policy does not name, e.g. after a
 *    migration): fresh frames from the policy's pool replace them in the map, one pass
 *    per 2 MiB block (block leaves are replaced whole, never split), one alias mmap per
 *    piece, one invalidation per piece; the old frames wait behind the batch's
 *    generation like a migration's and are punched when freed. No data is copied: the
 *    new frames are holes. If the policy's pool is full the piece is punched in place
 *    instead (counted as misplaced).
 *
 * Pinned frames are never discarded. Records are marked (FRAME_MIGRATING) first, as a
 * migration marks them: a pinned record refuses the mark, every DMA holder is asked to
 * drain once, and what is still pinned is left alone: skipped, or with
 * MM_DISCARD_DEFER_PINNED queued and retried by mm_discard_retry() (a balloon's pages
 * stay the device's until deflated; mm_discard_cancel() drops them from the queue).
 * A 2 MiB run backed by one huge frame counts the pins of all its pages in its head: a
 * pin anywhere in it defers a discard anywhere in it.
 *
 * Locking: every call takes mm->mig_lock (so a discard and a migration batch never
 * overlap) then mm->lock; neither may be held by the caller. Holders are drained
 * without mm->lock.
 */
#ifndef S2VM_MM_DISCARD_H
#define S2VM_MM_DISCARD_H

#include "mm/migrate.h"

#define MM_DISCARD_DEFER_PINNED 1u /* queue pinned pages for mm_discard_retry() */

/* What one call did (added to, not reset: callers zero it). */
struct discard_result {
	uint64_t pages; /* discarded: read as zero; not those whose punch failed */
	uint64_t returned; /* bytes of them given back to the host: punched in place, or
			    * (re-homed) punched once every holder passed the batch; not with
			    * mig.keep_freed, which keeps the old frames of re-homed pages */
	uint64_t runs; /* maximal runs after sorting and merging */
	uint64_t punch_calls; /* fallocate(PUNCH_HOLE) calls made */
	uint64_t alias_calls; /* alias mmap calls made (re-homed pieces) */
	uint64_t rehomed; /* of pages: given fresh frames on their policy's pool */
	uint64_t misplaced; /* of pages: punched where they were, the policy's pool full */
	uint64_t pinned; /* not discarded now: pinned by a device */
	uint64_t deferred; /* of pinned: queued for mm_discard_retry() */
	uint64_t huge_partial; /* not discarded: part of a 2 MiB huge frame (huge pools
				* free whole frames only) */
};

/* The counters live in struct mm (mm->discard, struct mm_discard_stats in mm/mm.h). */

/*
 * Discard the guest pages of @r (@n ranges, 4 KiB aligned, inside guest RAM, sorted or
 * not, may overlap). Returns 0 (@res says what happened; pinned pages are not an
 * error), -EINVAL (a range is unaligned or outside RAM: nothing done, mm->err says
 * which), -ENOMEM (nothing done), or -EIO after mm_fatal(). A failed punch leaves the
 * pages resident and is counted in mm->discard.failed_pages (their contents are then
 * unspecified: the guest gave them up).
 */
int mm_discard(struct mm *mm, const struct mig_range *r, size_t n, unsigned flags,
	       struct discard_result *res) __attribute__((warn_unused_result));

/* Try the queued pinned pages again; those still pinned stay queued. Returns 0 or
 * -errno as mm_discard(). */
int mm_discard_retry(struct mm *mm, struct discard_result *res)
	__attribute__((warn_unused_result));

/* Drop queued pages overlapping @r from the queue (the guest took them back). Returns
 * the number of pages dropped. */
uint64_t mm_discard_cancel(struct mm *mm, const struct mig_range *r, size_t n);

/* Pages queued now. */
uint64_t mm_discard_pending(struct mm *mm);

/*
 * Turn @n page frame numbers (4 KiB units, any order, duplicates allowed) into sorted,
 * merged ranges in @out (capacity @n). Returns the number of runs. @pfn is scratch: its
 * contents afterwards are unspecified. PFNs are not checked against RAM here; PFNs of
 * 2^52 and above have no 64-bit GPA and are dropped.
 */
size_t mm_pfns_to_ranges(uint64_t *pfn, size_t n, struct mig_range *out);

/* Sort @r and merge overlapping or adjacent ranges in place. Returns the new count. */
size_t mm_ranges_merge(struct mig_range *r, size_t n);

#endif
