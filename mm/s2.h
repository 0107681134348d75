/* SPDX-License-Identifier: MIT */
/*
 * The stage-2 map: the authoritative GPA -> output address map, kept as a real page table
 * in a hardware format (arch/s2_format.h). Changes are collected in a batch that records,
 * per change, which invalidation it needs before it may be considered done; committing
 * the batch issues them through the backend and only then frees table pages.
 *
 * Locking: none inside; the caller serialises updates to one map. Walks may run
 * concurrently with updates (entries are written with single atomic stores).
 */
#ifndef S2VM_MM_S2_H
#define S2VM_MM_S2_H

#include <stdbool.h>
#include <stddef.h>

#include "arch/s2_format.h"
#include "s2vm/types.h"

#define S2_WUR __attribute__((warn_unused_result))

/* Table pages live at synthetic output addresses [S2_TABLE_BASE, ...), above any frame. */
#define S2_TABLE_BASE (1ull << 46)

enum s2_op {
	S2_OP_MAP,
	S2_OP_UNMAP,
	S2_OP_PROTECT,
	S2_OP_REMAP, /* output address changed */
	S2_OP_SPLIT, /* block -> table of smaller leaves, same translations */
	S2_OP_COLLAPSE, /* table of leaves -> one block, same translations */
	S2_OP_TABLE_FREE, /* an emptied table was unlinked */
};

enum s2_inv {
	S2_INV_NONE = 0, /* nothing cached can be stale (new entry, or permissions relaxed) */
	S2_INV_DEFERRABLE = 1, /* stale entries are read-only and point at identical contents */
	S2_INV_REQUIRED = 2, /* the change is not done until translations are invalidated */
};

/* One change: [gpa, gpa + size) at @level, and the invalidation it needs. */
struct s2_change {
	gpa_t gpa;
	uint64_t size;
	uint8_t op; /* enum s2_op */
	uint8_t inv; /* enum s2_inv */
	uint8_t level;
	bool bbm; /* break-before-make done synchronously (its invalidation already issued) */
};

struct s2_batch {
	struct s2_change *v;
	size_t n, cap;
	hpa_t *free_tables; /* table pages to release after the invalidations */
	size_t nfree, capfree;
	bool overflow; /* a record could not be stored: commit invalidates everything */
};

/* Backend hooks. All optional. Called with the map's (caller's) serialisation held. */
struct s2_backend_ops {
	/* Before every entry write at @level covering the slot that starts at @gpa. */
	void (*pte_write)(void *ctx, gpa_t gpa, unsigned level, uint64_t old, uint64_t new_pte);
	/* Invalidate every cached translation of [gpa, gpa + size); done when it returns. */
	void (*tlbi)(void *ctx, gpa_t gpa, uint64_t size);
	/* After a batch's invalidations were issued, before its tables are freed. Returns 0,
	 * or -errno when the backend could not apply all of it (it records what it could
	 * not apply itself; the map counts the failure in stats.commit_errors). */
	int (*commit)(void *ctx, const struct s2_batch *b);
};

struct s2_map_config {
	const struct s2_format *fmt;
	unsigned ipa_bits; /* input address bits, 32..48 */
	unsigned bbm_level; /* arm64 FEAT_BBM level 0, 1 or 2; ignored when !fmt->needs_bbm */
	size_t max_tables; /* cap on table pages, 0 for none (tests use it to force -ENOMEM) */
	const struct s2_backend_ops *be;
	void *be_ctx;
	/* Fault injection: asked before table pages are allocated; true makes that
	 * allocation fail with -ENOMEM. NULL: never. */
	bool (*fail_alloc)(void *ctx);
	void *fail_ctx;
};

struct s2_map_stats {
	uint64_t tables; /* table pages in use, including the root */
	uint64_t tables_peak;
	uint64_t bbm; /* break-before-make sequences */
	uint64_t tlbi; /* invalidation calls issued */
	uint64_t commits;
	uint64_t deferred; /* deferrable invalidations held back by S2_COMMIT_DEFER */
	uint64_t deferred_flushes; /* s2_flush_deferred() calls that issued one */
	uint64_t commit_errors; /* commits the backend could not fully apply */
};

struct s2_tables {
	uint64_t **pages; /* index i holds the table at S2_TABLE_BASE + i * 4 KiB */
	size_t nr, cap;
	size_t *free; /* free page indices */
	size_t nfree;
	size_t used;
};

struct s2_map {
	const struct s2_format *fmt;
	unsigned ipa_bits, start_level, bbm_level;
	size_t max_tables;
	bool (*fail_alloc)(void *ctx);
	void *fail_ctx;
	hpa_t root;
	struct s2_tables tables;
	const struct s2_backend_ops *be;
	void *be_ctx;
	struct s2_map_stats stats;
	bool flush_pending; /* deferred invalidations not yet issued */
	/*
	 * Table-at-a-time updates of 4 KiB leaves (s2.c, "level-3 tables"): set by
	 * s2_map_init() when the format keeps a page's output address verbatim in
	 * oa_mask3 (checked there), so one pass over a table rewrites only those bits or
	 * only the others. per_entry (tests) forces the general per-entry path instead.
	 */
	bool fast3;
	bool per_entry;
	uint64_t oa_mask3;
};

/* Create an empty map. Returns 0, -EINVAL for a bad config or -ENOMEM. */
int s2_map_init(struct s2_map *m, const struct s2_map_config *cfg) S2_WUR;
/* Free every table page. The map must not be walked afterwards. */
void s2_map_destroy(struct s2_map *m);

void s2_batch_init(struct s2_batch *b);
void s2_batch_free(struct s2_batch *b);

/*
 * Map [gpa, gpa + size) to [pa, pa + size) with @perm (must include S2_PERM_R) and
 * @memtype, using the largest blocks alignment allows. Returns 0, -EINVAL (unaligned,
 * outside the IPA space, bad perm), -EEXIST (part of the range is mapped) or -ENOMEM
 * (table pages); on error nothing was changed.
 */
int s2_map_range(struct s2_map *m, gpa_t gpa, hpa_t pa, uint64_t size, unsigned perm,
		 unsigned memtype, struct s2_batch *b) S2_WUR;

/* Unmap whatever is mapped in the range, splitting blocks at its edges and unlinking
 * emptied tables. Returns 0, -EINVAL or -ENOMEM (splits); on error nothing changed. */
int s2_unmap(struct s2_map *m, gpa_t gpa, uint64_t size, struct s2_batch *b) S2_WUR;

/* Set the permissions of every mapped page in the range to @perm. Unmapped holes are
 * skipped. Returns 0, -EINVAL or -ENOMEM; on error nothing changed. */
int s2_protect(struct s2_map *m, gpa_t gpa, uint64_t size, unsigned perm, struct s2_batch *b) S2_WUR;

#define S2_REMAP_SAME_CONTENTS 1u /* the new frames hold exactly the old contents */

/*
 * Point the (fully mapped) range at [new_pa, new_pa + size), keeping permissions.
 * On arm64 a live entry that is writable, or whose contents may differ, is changed with
 * break-before-make. Returns 0, -EINVAL, -ENOENT (a hole in the range) or -ENOMEM;
 * on error nothing changed.
 */
int s2_remap(struct s2_map *m, gpa_t gpa, uint64_t size, hpa_t new_pa, unsigned flags,
	     struct s2_batch *b) S2_WUR;

/* Split the block leaf at @level covering @gpa into a table of the next level.
 * Returns 0, -ENOENT (no block leaf there), -EINVAL or -ENOMEM. */
int s2_split(struct s2_map *m, gpa_t gpa, unsigned level, struct s2_batch *b) S2_WUR;

/* Replace the table at @level covering @gpa by one block, if its 512 entries are leaves
 * mapping one aligned contiguous range with equal attributes. Returns 0, -ENOENT (no
 * table there), -EBUSY (not collapsible) or -EINVAL (level cannot hold blocks). */
int s2_collapse(struct s2_map *m, gpa_t gpa, unsigned level, struct s2_batch *b) S2_WUR;

/* Translate @gpa. Returns 0 and fills @out (oa of the leaf, not of gpa) and @level,
 * or -ENOENT. */
int s2_walk(const struct s2_map *m, gpa_t gpa, struct s2_leaf *out, unsigned *level) S2_WUR;

/*
 * Walk @gpa for range iteration up to @end: returns 0 with @out (the leaf holding @gpa),
 * *@oa (the output address of @gpa itself) and *@span: bytes from @gpa to the end of the
 * run of leaves that follow it contiguous in output address with the same permissions
 * and memory type (read a table at a time; never past an output address that is a
 * multiple of s2_level_size(0)), at most @end - @gpa. Or -ENOENT for a hole, with
 * *@span = one page (at most @end - @gpa).
 */
int s2_walk_span(const struct s2_map *m, gpa_t gpa, gpa_t end, struct s2_leaf *out, hpa_t *oa,
		 uint64_t *span);

/* Issue the batch's invalidations (coalesced), then free its tables; empties the batch.
 * Returns the number of invalidation calls issued. */
size_t s2_batch_commit(struct s2_map *m, struct s2_batch *b);

#define S2_COMMIT_DEFER 1u /* hold back S2_INV_DEFERRABLE invalidations */

/*
 * As s2_batch_commit(); with S2_COMMIT_DEFER the deferrable invalidations are not
 * issued but left pending for s2_flush_deferred(). The caller must flush before any
 * affected mapping becomes writable and before freeing the frames the stale entries
 * point at (mm/holders.h orders the latter). A batch that frees tables is never deferred.
 */
size_t s2_batch_commit_flags(struct s2_map *m, struct s2_batch *b, unsigned flags);

/* Issue the pending deferred invalidations as one full invalidation. Returns 1 if one
 * was issued, 0 if nothing was pending. */
size_t s2_flush_deferred(struct s2_map *m);

/* Bytes of table pages in use. */
static inline uint64_t s2_map_table_bytes(const struct s2_map *m)
{
	return m->stats.tables * S2_PAGE_SIZE;
}

/* Copy callback for s2_remap_safe(): copy @len bytes of frames from @from to @to. */
typedef int (*s2_copy_fn)(void *ctx, hpa_t from, hpa_t to, uint64_t len);

/*
 * The safe remap sequence (DESIGN.md, arm64 rules): make the range read-only at its
 * current address and invalidate; copy the contents to [new_pa, ...); change the address
 * while read-only (contents identical) and invalidate; make it @perm and invalidate.
 * Never changes permission and address in one write, never needs break-before-make.
 * Returns 0 or -errno (from the map or @copy); on error the range stays mapped, with its
 * data, at the old or the new frames and readable.
 */
int s2_remap_safe(struct s2_map *m, gpa_t gpa, uint64_t size, hpa_t new_pa, unsigned perm,
		  s2_copy_fn copy, void *ctx) S2_WUR;

#endif
