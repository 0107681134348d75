/* SPDX-License-Identifier: MIT */
/*
 * Stage-2 page-table formats: the one ops header through which mm/s2 reads and writes
 * entries. A format is data (which levels may hold blocks, BBM rules) plus small
 * encode/decode functions; the map, walk and invalidation logic lives once in mm/s2.c.
 *
 * Levels follow the Arm numbering for a 4 KiB granule: level 0 entries span 512 GiB,
 * level 1 1 GiB, level 2 2 MiB, level 3 4 KiB (x86 EPT's PML4E, PDPTE, PDE, PTE).
 */
#ifndef S2VM_ARCH_S2_FORMAT_H
#define S2VM_ARCH_S2_FORMAT_H

#include <stdbool.h>
#include <stdint.h>

#define S2_LEVELS 4
#define S2_PAGE_SHIFT 12
#define S2_PAGE_SIZE (1ull << S2_PAGE_SHIFT)
#define S2_PTES_PER_TABLE 512

static inline unsigned s2_level_shift(unsigned level)
{
	return 39 - 9 * level;
}

static inline uint64_t s2_level_size(unsigned level)
{
	return 1ull << s2_level_shift(level);
}

enum s2_perm {
	S2_PERM_R = 1,
	S2_PERM_W = 2,
	S2_PERM_X = 4,
	S2_PERM_RW = 3,
	S2_PERM_RWX = 7,
};

enum s2_memtype {
	S2_MT_NORMAL = 0, /* normal memory, write-back cacheable */
	S2_MT_DEVICE = 1, /* device / uncacheable */
};

enum s2_pte_kind {
	S2_PTE_INVALID = 0,
	S2_PTE_TABLE = 1,
	S2_PTE_LEAF = 2, /* a page at level 3, a block above */
};

/* A decoded leaf entry. */
struct s2_leaf {
	uint64_t oa; /* output address, aligned to the level's size */
	uint8_t perm; /* S2_PERM_*; always includes S2_PERM_R */
	uint8_t memtype; /* enum s2_memtype */
	bool accessed; /* EPT A bit / arm64 AF */
	bool dirty; /* EPT D bit (arm64: always false here, no DBM) */
	bool contig; /* arm64 contiguous hint (EPT: always false) */
};

struct s2_format {
	const char *name;
	/* Bit L set: level L may hold a block. Level 3 always holds pages. */
	uint8_t block_levels;
	/* The architecture requires break-before-make for output-address changes of live
	 * writable entries and for block<->table changes (unless FEAT_BBM level 2). */
	bool needs_bbm;
	/* Highest output-address bit + 1 this format can encode. */
	unsigned oa_bits;
	/* First level of the walk for an input (GPA/IPA) space of @ipa_bits. */
	unsigned (*start_level)(unsigned ipa_bits);
	uint64_t (*mk_table)(uint64_t table_pa);
	/* Encode a leaf at @level; l->oa must be aligned to the level size. */
	uint64_t (*mk_leaf)(unsigned level, const struct s2_leaf *l);
	enum s2_pte_kind (*kind)(uint64_t pte, unsigned level);
	uint64_t (*table_pa)(uint64_t pte);
	void (*leaf)(uint64_t pte, unsigned level, struct s2_leaf *out);
};

extern const struct s2_format s2_format_ept; /* Intel EPT (also VT-d second level) */
extern const struct s2_format s2_format_arm64; /* VMSAv8-64 stage 2, 4 KiB granule */

#endif
