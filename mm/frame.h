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

#include <stdint.h>

#include "s2vm/types.h"

enum frame_flags {
	FRAME_PRESENT = 1u << 0,
	FRAME_WP = 1u << 1, /* write-protected in the map */
	FRAME_MIGRATING = 1u << 2,
	FRAME_HUGE_HEAD = 1u << 3,
};

struct frame {
	uint32_t pfn; /* frame index in its pool (4 KiB units): up to 16 TiB per pool */
	uint8_t pool; /* pool index */
	uint8_t flags; /* enum frame_flags */
	uint16_t pin; /* DMA pin count */
	uint32_t gen; /* low 32 bits of the generation of the last remap */
	uint32_t reserved;
};

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

/* The record that describes @gpa's frame (the head for a huge tail) and @gpa's frame
 * index in its pool. Returns NULL if @gpa is outside the table or absent. */
const struct frame *frame_lookup(const struct frame_table *t, gpa_t gpa, uint64_t *pfn);

static inline uint64_t frame_table_bytes(const struct frame_table *t)
{
	return t->nr * sizeof(struct frame);
}

/* Bytes of the table actually backed by memory (written pages; zero-page tails are not). */
uint64_t frame_table_resident_bytes(const struct frame_table *t);

#endif
