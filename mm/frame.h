/* SPDX-License-Identifier: MIT */
/*
 * The frame table: the project's struct page. One 16-byte record per 4 KiB guest frame,
 * indexed by GPA >> 12. A 2 MiB huge frame has a head record (pool, frame, flags, pins,
 * generation); its 511 tail records are all-zero and lookups go through the head. The
 * table is anonymous memory, so tail records that were never written stay on the
 * kernel's shared zero page: the hugetlb-vmemmap-optimisation idea (identical tails share
 * one read-only page) without remapping by hand. Splitting a huge frame writes its
 * tails, which allocates their pages first.
 */
#ifndef S2VM_MM_FRAME_H
#define S2VM_MM_FRAME_H

#include <stdbool.h>
#include <stdint.h>

#include "s2vm/types.h"

enum frame_flags {
	FRAME_PRESENT = 1u << 0,
	FRAME_WP = 1u << 1, /* left read-only in the map by a lazy migration */
	FRAME_MIGRATING = 1u << 2, /* in a migration batch: no new pins until it ends */
	FRAME_HUGE_HEAD = 1u << 3,
};

/*
 * One record. `state` packs pool (bits 0-7), flags (8-15) and the DMA pins (16-63)
 * so that a pin and the migration's "mark if unpinned" are each one compare-and-swap on
 * the same word: a pin succeeds only while FRAME_MIGRATING is clear, marking succeeds
 * only while the pin count is zero, so a frame is never copied while pinned (DESIGN.md,
 * "DMA pinning"; the GUP/writeback pairing of seed-algorithms.md §4, made one atomic).
 * Every access to pfn and state is atomic: devices read records without mm->lock.
 * pfn and pool change only while FRAME_MIGRATING is set (or before the guest runs).
 */
struct frame {
	uint64_t state; /* pool | flags << 8 | pins << 16 */
	uint32_t pfn; /* frame index in its pool (4 KiB units): up to 16 TiB per pool */
	uint32_t gen; /* low 32 bits of the generation of the last remap */
};

/*
 * Pin counting (48 bits): short-term pins (requests) add 1 to the low 32 bits, long-term
 * pins (registered buffers) add FRAME_PIN_LONGTERM, counting in the high 16; neither part
 * may overflow into the next. A huge frame's head counts the pins of all its pages: with
 * 32 bits, no realistic number of requests in flight fills it.
 */
#define FRAME_PIN_LONGTERM (1ull << 32)
#define FRAME_PIN_SHORT_MAX 0xffffffffull
#define FRAME_PIN_LONG_MAX 0xffffull

static inline uint64_t frame_state(const struct frame *f)
{
	return __atomic_load_n(&f->state, __ATOMIC_ACQUIRE);
}

static inline unsigned frame_pool(const struct frame *f)
{
	return frame_state(f) & 0xff;
}

static inline unsigned frame_flags(const struct frame *f)
{
	return (frame_state(f) >> 8) & 0xff;
}

static inline uint64_t frame_pins(const struct frame *f)
{
	return frame_state(f) >> 16;
}

static inline uint64_t frame_pfn(const struct frame *f)
{
	return __atomic_load_n(&f->pfn, __ATOMIC_ACQUIRE);
}

/* Pin @f by @inc (1 or FRAME_PIN_LONGTERM). Returns 0, -EBUSY (being migrated: wait for
 * the batch and look it up again), -EOVERFLOW (that part of the count is full) or
 * -ENOENT (not present). Full barrier: the caller re-validates its translation after. */
int frame_pin(struct frame *f, uint64_t inc) __attribute__((warn_unused_result));
/* Drop a pin frame_pin() took. */
void frame_unpin(struct frame *f, uint64_t inc);
/* Set FRAME_MIGRATING if @f has no pins (returns true), else leave it (false). */
bool frame_try_mark(struct frame *f);
/* Clear @flags on @f (atomic). */
void frame_clear_flags(struct frame *f, unsigned flags);
/* Set @flags on @f (atomic). */
void frame_set_flags(struct frame *f, unsigned flags);

_Static_assert(sizeof(struct frame) == 16, "frame records are 16 bytes");

struct frame_table {
	struct frame *f; /* nr records */
	uint64_t nr;
	uint64_t *tails_written; /* bit per 2 MiB: some of its tail records are not zero */
};

/* Allocate records for [0, @mem_size) guest RAM, all absent. Returns 0 or -ENOMEM. */
int frame_table_init(struct frame_table *t, uint64_t mem_size) __attribute__((warn_unused_result));
void frame_table_destroy(struct frame_table *t);

/* Record that [gpa, gpa + size) is backed by pool @pool from frame @pfn; 2 MiB-aligned
 * 2 MiB pieces get a huge head and identical tails. Returns 0, or -ERANGE (nothing
 * written) if the range is not 4 KiB aligned or leaves the table, or the pool or frame
 * numbers do not fit a record (8-bit pool, 32-bit frame). */
int frame_table_set(struct frame_table *t, gpa_t gpa, uint64_t size, unsigned pool, uint64_t pfn)
	__attribute__((warn_unused_result));
/* The same, the new records carrying @flags (FRAME_MIGRATING while a batch ends). Pins of
 * the old records must be zero (they are: marked records cannot be pinned). */
int frame_table_set_flags(struct frame_table *t, gpa_t gpa, uint64_t size, unsigned pool,
			  uint64_t pfn, unsigned flags) __attribute__((warn_unused_result));

/* The record that describes @gpa's frame (the head for a huge tail) and @gpa's frame
 * index in its pool. Returns NULL if @gpa is outside the table or absent. */
const struct frame *frame_lookup(const struct frame_table *t, gpa_t gpa, uint64_t *pfn);
/* The same, writable (pins, flags), safe without mm->lock. */
struct frame *frame_get(struct frame_table *t, gpa_t gpa, uint64_t *pfn);
/* Apply @fn to each distinct record governing [gpa, gpa + size) once (a huge head once
 * for its whole 2 MiB). Stops at the first nonzero return, which it returns. */
int frame_for_each(struct frame_table *t, gpa_t gpa, uint64_t size,
		   int (*fn)(void *ctx, struct frame *f, gpa_t gpa, uint64_t npages), void *ctx);

static inline uint64_t frame_table_bytes(const struct frame_table *t)
{
	return t->nr * sizeof(struct frame);
}

/* Bytes of the table actually backed by memory (written pages; zero-page tails are not). */
uint64_t frame_table_resident_bytes(const struct frame_table *t);

#endif
