/* SPDX-License-Identifier: MIT */
/*
 * The migration timeline: a ring of the engine's events in CLOCK_MONOTONIC time, for the
 * lab and the stats JSON. Each migration batch is one event (its pages, runs, alias calls
 * and the time of each phase); each vCPU write fault that waited is one event (its GPA and
 * stall). Events carry a sequence number from 1 up, so a reader that fell behind a full
 * ring learns how many it lost instead of silently missing them. Off (no memory) unless
 * mm_config.timeline_cap is set.
 */
#ifndef S2VM_MM_TIMELINE_H
#define S2VM_MM_TIMELINE_H

#include <stddef.h>
#include <stdint.h>

/* Where a migration batch spends its time (DESIGN.md, "Migration", steps 2-5). */
enum mig_phase {
	MIG_PHASE_PROTECT, /* write-protect the runs and commit (step 2) */
	MIG_PHASE_COPY, /* copy frames to the destination (step 3) */
	MIG_PHASE_REMAP, /* point the runs at the new frames, writable again (step 4) */
	MIG_PHASE_WAIT, /* drain device holders of the frames; complete deferred invalidations */
	MIG_PHASE_FREE, /* return old frames to their pool (and punch them) (step 5) */
	MIG_PHASE_NR
};

extern const char *const mig_phase_names[MIG_PHASE_NR]; /* "protect", "copy", ... */

enum mm_tl_kind {
	MM_TL_BATCH = 1, /* a migration batch: [start_ns, end_ns) */
	MM_TL_FAULT = 2, /* a vCPU write fault that waited: [start_ns, end_ns) is the stall */
};

struct mm_tl_event {
	uint64_t seq; /* 1, 2, ...: consecutive over the VM's life */
	uint64_t start_ns, end_ns; /* CLOCK_MONOTONIC (s2_now_ns()) */
	uint8_t kind; /* enum mm_tl_kind */
	uint8_t node; /* batch: target host node */
	uint16_t pad;
	int32_t err; /* batch: 0 or the negative errno it returned */
	uint64_t gpa; /* fault: the GPA, ~0 if the host did not say; batch: first run's GPA */
	uint64_t pages; /* batch: pages moved */
	uint64_t runs; /* batch: runs (contiguous pieces) */
	uint64_t aborted; /* batch: pages left where they were */
	uint32_t invalidations; /* batch: alias calls (mprotect + mmap); each is one KVM
				 * MMU-notifier invalidation of the range */
	uint32_t pad2;
	uint64_t phase_ns[MIG_PHASE_NR]; /* batch */
};

struct mm_timeline {
	struct mm_tl_event *ev; /* cap entries, NULL when off */
	uint32_t cap;
	uint64_t next_seq; /* seq of the next event; starts at 1 */
};

/* Allocate a ring of @cap events (0: off). Returns 0 or -ENOMEM. */
int mm_timeline_init(struct mm_timeline *t, uint32_t cap) __attribute__((warn_unused_result));
void mm_timeline_destroy(struct mm_timeline *t);

/* Append @e (its seq is assigned), overwriting the oldest when full. No-op when off.
 * Caller serialises (mm->lock). */
void mm_timeline_push(struct mm_timeline *t, const struct mm_tl_event *e);

/*
 * Copy up to @max events with seq > *@cursor, oldest first, into @out, and advance
 * *@cursor past them. *@lost (if not NULL) gets how many events after *@cursor were
 * overwritten before this read. Returns the number copied. Caller serialises.
 */
size_t mm_timeline_read(const struct mm_timeline *t, uint64_t *cursor, struct mm_tl_event *out,
			size_t max, uint64_t *lost);

#endif
