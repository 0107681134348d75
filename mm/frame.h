/* SPDX-License-Identifier: MIT */
/*
 * The frame table: the project's struct page. One 16-byte record per 4 KiB guest frame,
 * indexed by GPA >> 12, with the hugetlb-vmemmap optimisation (HVO) done by remapping.
 *
 * Layout. Guest RAM is cut into 2 MiB chunks. A chunk that is one 2 MiB frame is
 * described by its head record in a compact array (heads[], 16 bytes per 2 MiB, never
 * remapped); its 512 per-frame records are not needed (each is derived from the head and
 * its position), so the two table pages holding them map one shared read-only page of
 * zeros (the kernel's zero page, through a read-only anonymous mapping): the chunk is
 * *optimised* and its records cost no memory. A write to them faults. A chunk that is not
 * one huge frame has its records on two private pages of a memfd (offset chunk * 8 KiB),
 * mapped read-write at the same place. Pins and marks of a huge frame (a 4 KiB page of
 * it included) count on its head, so they never write a record of an optimised chunk.
 *
 * Restore (anything that must write a chunk's records, e.g. a split): allocate the
 * chunk's memfd pages first (-ENOMEM, nothing changed), copy the current contents, map
 * them read-only (address change while read-only, identical contents), then read-write
 * (permission only). Optimise (a chunk became one 2 MiB frame): zero the records, make
 * them read-only (permission only), map the shared zero page read-only (address change
 * while read-only, identical contents), free the pages. Address and permission never
 * change in one step, and nothing writable is ever re-pointed: the arm64 rules of
 * DESIGN.md, checked step by step by the sim backend (struct frame_table_hooks).
 *
 * Chunks that were restored and become huge again are optimised only after a grace
 * period (grace_ns): a lock-free pinner may hold a pointer to one of their records and
 * be between frame_pin()'s load and its compare-and-swap; the records are zeroed at once
 * (such a CAS then fails harmlessly), the page is made read-only later.
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
/* Clear @flags on @f (atomic). Writes nothing if none of them is set, so it is safe on
 * the (read-only, all-zero) records of an optimised chunk. */
void frame_clear_flags(struct frame *f, unsigned flags);
/* Set @flags on @f (atomic). */
void frame_set_flags(struct frame *f, unsigned flags);

_Static_assert(sizeof(struct frame) == 16, "frame records are 16 bytes");

/* Per-chunk state of the records' table pages (writer side, under the caller's lock). */
enum frame_chunk_state {
	FRAME_CHUNK_SHARED = 0, /* both pages map the shared zero page, read-only */
	FRAME_CHUNK_PRIV_RO, /* private memfd pages, read-only (a sequence stopped midway) */
	FRAME_CHUNK_PRIV_RW, /* private memfd pages, read-write */
};

/* One step of a restore or optimise sequence, as the table's own mapping sees it. Each
 * host call (mmap, mprotect) is one step and includes its invalidation. */
enum frame_step_kind {
	FRAME_STEP_ALLOC, /* the chunk's private pages were allocated (fresh contents) */
	FRAME_STEP_COPY, /* the records as now seen were copied into the private pages */
	FRAME_STEP_MAP, /* the chunk's pages now map @shared or its private pages, @writable */
	FRAME_STEP_PROTECT, /* permission only: @writable */
	FRAME_STEP_WRITE, /* records of the chunk were written (contents changed) */
	FRAME_STEP_ZERO, /* every record of the chunk was zeroed: identical to the shared page */
	FRAME_STEP_FREE, /* the chunk's private pages were freed */
};

struct frame_step {
	uint8_t kind; /* enum frame_step_kind */
	bool shared; /* FRAME_STEP_MAP: the shared page (else the chunk's private pages) */
	bool writable; /* FRAME_STEP_MAP, FRAME_STEP_PROTECT */
	uint64_t chunk; /* 2 MiB chunk index; its pages are [chunk * 2, chunk * 2 + 2) */
};

struct frame_table;

/* Observer of the table's own mapping (tests: the sim backend's stage-1 model). Called
 * after each step, under the writer's serialisation. */
struct frame_table_hooks {
	void (*step)(void *ctx, struct frame_table *t, const struct frame_step *s);
	void *ctx;
};

struct frame_table_stats {
	uint64_t virt_bytes; /* address space of records and heads */
	uint64_t resident_bytes; /* private record pages plus written pages of heads[] */
	uint64_t runs_optimised; /* chunks whose records map the shared page now */
	uint64_t runs_private; /* chunks with private record pages now */
	uint64_t optimises; /* optimise sequences completed (cumulative) */
	uint64_t restores; /* restore sequences completed (cumulative) */
	uint64_t restore_enomem; /* restores refused for memory: nothing changed */
	uint64_t optimise_errors; /* optimise sequences the host refused (chunk stays private) */
	uint64_t pending; /* re-formed chunks waiting for their grace period */
};

struct frame_table {
	struct frame *f; /* nr records; the pages of optimised chunks are read-only zeros */
	uint64_t nr;
	struct frame *heads; /* nchunks: the record of each chunk that is one huge frame */
	uint64_t nchunks;
	uint8_t *cstate; /* nchunks: enum frame_chunk_state */
	uint8_t *heads_written; /* bit per 4 KiB page of heads[]: written (resident) */
	int fd; /* memfd of private record pages, chunk c at c * 8 KiB; -1 if none */
	uint64_t *pend; /* re-formed chunks waiting for the grace period, oldest first */
	uint64_t *pend_ns; /* when each was re-formed (CLOCK_MONOTONIC) */
	size_t npend, cappend;
	uint64_t grace_ns; /* see above; default FRAME_GRACE_NS, 0 optimises at once */
	bool no_optimise; /* never share pages (the unoptimised baseline of the bench) */
	struct frame_table_stats st; /* cumulative counters (frame_table_get_stats()) */
	const struct frame_table_hooks *hooks; /* NULL: none */
	/* Fault injection: asked before private pages are allocated; true fails with -ENOMEM */
	bool (*fail_alloc)(void *ctx);
	void *fail_ctx;
};

#define FRAME_GRACE_NS 100000000ull /* 100 ms */

/* Allocate records for [0, @mem_size) guest RAM, all absent (every chunk optimised).
 * Returns 0 or -ENOMEM / -errno (memfd, mmap). */
int frame_table_init(struct frame_table *t, uint64_t mem_size) __attribute__((warn_unused_result));
void frame_table_destroy(struct frame_table *t);

/*
 * Record that [gpa, gpa + size) is backed by pool @pool from frame @pfn; 2 MiB-aligned
 * 2 MiB pieces on 2 MiB-aligned frames become huge frames (head record only, their table
 * pages optimised). Writing part of a chunk first restores its table pages.
 * Returns 0; -ERANGE (nothing written) if the range is not 4 KiB aligned or leaves the
 * table, or the pool or frame numbers do not fit a record (8-bit pool, 32-bit frame);
 * -ENOMEM (nothing written, lookups unchanged) if a chunk's private pages could not be
 * allocated or mapped. frame_table_reserve() over the same range first makes -ENOMEM
 * impossible. Caller serialises writers (mm->lock); readers need no lock.
 */
int frame_table_set(struct frame_table *t, gpa_t gpa, uint64_t size, unsigned pool, uint64_t pfn)
	__attribute__((warn_unused_result));
/* The same, the new records carrying @flags (FRAME_MIGRATING while a batch ends). Pins of
 * the old records must be zero (they are: marked records cannot be pinned). */
int frame_table_set_flags(struct frame_table *t, gpa_t gpa, uint64_t size, unsigned pool,
			  uint64_t pfn, unsigned flags) __attribute__((warn_unused_result));
/*
 * Allocate before remap: restore now every chunk a later frame_table_set() of
 * [gpa, gpa + size) from frame @pfn will write in part, so that set cannot fail with
 * -ENOMEM (until the next set of another range). Lookups are unchanged. Returns 0,
 * -ERANGE or -ENOMEM (nothing changed that lookups can see).
 */
int frame_table_reserve(struct frame_table *t, gpa_t gpa, uint64_t size, uint64_t pfn)
	__attribute__((warn_unused_result));
/* The same for every chunk [gpa, gpa + size) touches, whatever a later set writes there
 * (e.g. before the pieces of a range the host took only in part are recorded). */
int frame_table_reserve_chunks(struct frame_table *t, gpa_t gpa, uint64_t size)
	__attribute__((warn_unused_result));
/* Clear @flags on every record of [gpa, gpa + size): heads, and private records of split
 * chunks (optimised pages are never written). For a batch's unmark of whole chunks. */
void frame_table_clear_flags(struct frame_table *t, gpa_t gpa, uint64_t size, unsigned flags);
/* Optimise the re-formed chunks whose grace period is over (all of them if @force).
 * Returns how many were optimised. Writers' serialisation. */
unsigned frame_table_optimise_pending(struct frame_table *t, bool force);

/* The record that describes @gpa's frame (the head for a huge tail) and @gpa's frame
 * index in its pool. Returns NULL if @gpa is outside the table or absent. */
const struct frame *frame_lookup(const struct frame_table *t, gpa_t gpa, uint64_t *pfn);
/* The same, writable (pins, flags), safe without mm->lock. */
struct frame *frame_get(struct frame_table *t, gpa_t gpa, uint64_t *pfn);
/* Apply @fn to each distinct record governing [gpa, gpa + size) once (a huge head once
 * for its whole 2 MiB). Stops at the first nonzero return, which it returns. */
int frame_for_each(struct frame_table *t, gpa_t gpa, uint64_t size,
		   int (*fn)(void *ctx, struct frame *f, gpa_t gpa, uint64_t npages), void *ctx);

/* Address space of the records (16 bytes per 4 KiB frame; heads[] not included). */
static inline uint64_t frame_table_bytes(const struct frame_table *t)
{
	return t->nr * sizeof(struct frame);
}

/* Bytes of the table actually backed by memory: private record pages and the written
 * pages of heads[] (optimised records share the zero page and cost nothing). */
uint64_t frame_table_resident_bytes(const struct frame_table *t);

/* Fill @out: sizes now, the counters since init. Writers' serialisation for exact figures. */
void frame_table_get_stats(const struct frame_table *t, struct frame_table_stats *out);

#endif
