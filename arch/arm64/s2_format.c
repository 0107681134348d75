// SPDX-License-Identifier: MIT
/*
 * Arm VMSAv8-64 stage-2 descriptors, 4 KiB granule (Arm ARM D8.3): table, block (levels
 * 1 and 2) and page (level 3) descriptors with S2AP, MemAttr, SH, AF, XN and the
 * contiguous hint. Output addresses up to 48 bits.
 */
#include "arch/s2_format.h"

#define A64_VALID (1ull << 0)
#define A64_TABLE_OR_PAGE (1ull << 1)
#define A64_MEMATTR_SHIFT 2 /* [5:2] stage-2 MemAttr */
#define A64_MEMATTR_MASK (0xfull << A64_MEMATTR_SHIFT)
#define A64_MEMATTR_NORMAL_WB 0xfull /* Normal, Outer WB, Inner WB */
#define A64_MEMATTR_DEVICE_NGNRE 0x1ull
#define A64_S2AP_R (1ull << 6)
#define A64_S2AP_W (1ull << 7)
#define A64_SH_INNER (3ull << 8)
#define A64_AF (1ull << 10)
#define A64_CONTIG (1ull << 52)
#define A64_XN (2ull << 53) /* XN[1:0] = 0b10: not executable at EL1 or EL0 */
#define A64_XN_MASK (3ull << 53)
#define A64_ADDR_MASK 0x0000fffffffff000ull /* bits 47:12 */

static unsigned a64_start_level(unsigned ipa_bits)
{
	/* 4 KiB granule without concatenation: level 0 resolves up to 48 bits, level 1 up
	 * to 39, level 2 up to 30 (VTCR_EL2.SL0 chooses this). */
	if (ipa_bits > 39)
		return 0;
	if (ipa_bits > 30)
		return 1;
	return 2;
}

static uint64_t a64_mk_table(uint64_t pa)
{
	return (pa & A64_ADDR_MASK) | A64_TABLE_OR_PAGE | A64_VALID;
}

static uint64_t a64_mk_leaf(unsigned level, const struct s2_leaf *l)
{
	uint64_t e = (l->oa & A64_ADDR_MASK & ~(s2_level_size(level) - 1)) | A64_VALID;

	if (level == 3)
		e |= A64_TABLE_OR_PAGE;
	if (l->perm & S2_PERM_R)
		e |= A64_S2AP_R;
	if (l->perm & S2_PERM_W)
		e |= A64_S2AP_W;
	if (!(l->perm & S2_PERM_X))
		e |= A64_XN;
	if (l->memtype == S2_MT_DEVICE) {
		e |= A64_MEMATTR_DEVICE_NGNRE << A64_MEMATTR_SHIFT;
	} else {
		e |= A64_MEMATTR_NORMAL_WB << A64_MEMATTR_SHIFT;
		e |= A64_SH_INNER;
	}
	if (l->accessed)
		e |= A64_AF;
	if (l->contig)
		e |= A64_CONTIG;
	return e;
}

static enum s2_pte_kind a64_kind(uint64_t e, unsigned level)
{
	if (!(e & A64_VALID))
		return S2_PTE_INVALID;
	if (level == 3)
		return (e & A64_TABLE_OR_PAGE) ? S2_PTE_LEAF : S2_PTE_INVALID; /* 0b01: reserved */
	if (e & A64_TABLE_OR_PAGE)
		return S2_PTE_TABLE;
	return level == 0 ? S2_PTE_INVALID : S2_PTE_LEAF; /* no level-0 blocks without LPA2 */
}

static uint64_t a64_table_pa(uint64_t e)
{
	return e & A64_ADDR_MASK;
}

static void a64_leaf(uint64_t e, unsigned level, struct s2_leaf *l)
{
	l->oa = e & A64_ADDR_MASK & ~(s2_level_size(level) - 1);
	l->perm = (uint8_t)(((e & A64_S2AP_R) ? S2_PERM_R : 0) | ((e & A64_S2AP_W) ? S2_PERM_W : 0) |
			    ((e & A64_XN_MASK) ? 0 : S2_PERM_X));
	l->memtype = ((e & A64_MEMATTR_MASK) >> A64_MEMATTR_SHIFT) == A64_MEMATTR_NORMAL_WB
			     ? S2_MT_NORMAL
			     : S2_MT_DEVICE;
	l->accessed = !!(e & A64_AF);
	l->dirty = false;
	l->contig = !!(e & A64_CONTIG);
}

const struct s2_format s2_format_arm64 = {
	.name = "arm64",
	.block_levels = (1u << 1) | (1u << 2),
	.needs_bbm = true,
	.oa_bits = 48,
	.start_level = a64_start_level,
	.mk_table = a64_mk_table,
	.mk_leaf = a64_mk_leaf,
	.kind = a64_kind,
	.table_pa = a64_table_pa,
	.leaf = a64_leaf,
};
