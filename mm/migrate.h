/* SPDX-License-Identifier: MIT */
/*
 * Migrating guest pages between host node pools while the guest runs (DESIGN.md,
 * "Migration"). Per batch: group the requested frames into runs contiguous in GPA;
 * allocate destination frames contiguously where possible; write-protect every run
 * (one alias call per run); copy; remap every run to its new frames, writable again now
 * (eager) or on the first write (lazy); queue the old frames behind the batch's
 * generation and free them, in one batch, once every translation holder has passed it.
 */
#ifndef S2VM_MM_MIGRATE_H
#define S2VM_MM_MIGRATE_H

#include "mm/mm.h"

struct mig_result {
	uint64_t pages; /* requested pages moved to the target */
	uint64_t skipped; /* already there */
	uint64_t aborted; /* not moved: the target pool ran out */
	uint64_t pinned; /* not moved: pinned by a device (left for a later batch) */
	uint64_t runs;
	uint64_t batches;
	uint64_t promoted; /* not requested, moved too (not in @pages): their 2 MiB window
			    * moved whole by the cost model (mig_policy.exact off) */
	uint64_t huge_extra; /* not requested, moved too: the rest of a 2 MiB frame of a
			      * huge pool, which moves whole */
};

/*
 * Move the guest pages of @ranges (sorted or not, may overlap) to host node @node's
 * pool, creating it if needed. Takes mm->lock per batch; vCPUs that write to pages of a
 * batch wait for it. If the target pool runs out, the rest is left where it is, readable
 * and writable with its data, and counted in @res->aborted.
 * Returns 0 (also with aborted pages), -EINVAL (range outside RAM), -ENOSPC (the alias
 * would need more mappings than mm->map_budget: stopped before, the rest counted as
 * aborted, mm->err says so), -EIO (mm_fatal() happened), or -errno from the pool, the
 * copy hook or an alias call (the current batch, or the part the alias refused, is
 * rolled back to its old frames and counted as aborted).
 */
int mm_migrate(struct mm *mm, const struct mig_range *ranges, size_t n, unsigned node,
	       struct mig_result *res) __attribute__((warn_unused_result));

/* As mm_migrate(), but never waits for another migration in progress: returns -EBUSY
 * (what was moved before stays moved) when one holds the engine. For device threads. */
int mm_migrate_nowait(struct mm *mm, const struct mig_range *ranges, size_t n, unsigned node,
		      struct mig_result *res) __attribute__((warn_unused_result));

/* Free (and punch) the deferred old frames every translation holder has passed. Takes
 * mm->lock. Returns frames freed. For a device that just passed a quiescent point. */
uint64_t mm_reap_deferred(struct mm *mm);

/* Issue pending deferred invalidations, publish, and free every frame that may be.
 * Caller holds mm->lock. Returns frames freed. */
uint64_t mm_flush_and_free(struct mm *mm);

#endif
