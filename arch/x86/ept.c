// SPDX-License-Identifier: MIT
/* Intel EPT entries (SDM vol. 3C, 29.3.2), 4 levels, 4 KiB pages and 2 MiB / 1 GiB blocks. */
#include "arch/s2_format.h"

#define EPT_R (1ull << 0)
#define EPT_W (1ull << 1)
#define EPT_X (1ull << 2)
#define EPT_MT_SHIFT 3 /* memory type, leaves only: 0 UC, 6 WB */
#define EPT_MT_MASK (7ull << EPT_MT_SHIFT)
#define EPT_IPAT (1ull << 6) /* ignore guest PAT */
#define EPT_PS (1ull << 7) /* large page (block) at levels 1 and 2 */
#define EPT_A (1ull << 8)
#define EPT_D (1ull << 9)
#define EPT_ADDR_MASK 0x000ffffffffff000ull /* bits 51:12 */

static unsigned ept_start_level(unsigned ipa_bits)
{
	(void)ipa_bits;
	return 0; /* EPT always walks 4 levels (5 with LA57, not used) */
}

static uint64_t ept_mk_table(uint64_t pa)
{
	return (pa & EPT_ADDR_MASK) | EPT_R | EPT_W | EPT_X;
}

static uint64_t ept_mk_leaf(unsigned level, const struct s2_leaf *l)
{
	uint64_t e = l->oa & EPT_ADDR_MASK & ~(s2_level_size(level) - 1);

	if (l->perm & S2_PERM_R)
		e |= EPT_R;
	if (l->perm & S2_PERM_W)
		e |= EPT_W;
	if (l->perm & S2_PERM_X)
		e |= EPT_X;
	e |= (l->memtype == S2_MT_DEVICE ? 0ull : 6ull) << EPT_MT_SHIFT;
	if (l->memtype == S2_MT_NORMAL)
		e |= EPT_IPAT;
	if (level < 3)
		e |= EPT_PS;
	if (l->accessed)
		e |= EPT_A;
	if (l->dirty)
		e |= EPT_D;
	return e;
}

static enum s2_pte_kind ept_kind(uint64_t e, unsigned level)
{
	if (!(e & (EPT_R | EPT_W | EPT_X)))
		return S2_PTE_INVALID;
	if (level == 3 || (e & EPT_PS))
		return level == 0 ? S2_PTE_INVALID : S2_PTE_LEAF; /* no 512 GiB pages */
	return S2_PTE_TABLE;
}

static uint64_t ept_table_pa(uint64_t e)
{
	return e & EPT_ADDR_MASK;
}

static void ept_leaf(uint64_t e, unsigned level, struct s2_leaf *l)
{
	l->oa = e & EPT_ADDR_MASK & ~(s2_level_size(level) - 1);
	l->perm = (uint8_t)(((e & EPT_R) ? S2_PERM_R : 0) | ((e & EPT_W) ? S2_PERM_W : 0) |
			    ((e & EPT_X) ? S2_PERM_X : 0));
	l->memtype = ((e & EPT_MT_MASK) >> EPT_MT_SHIFT) == 6 ? S2_MT_NORMAL : S2_MT_DEVICE;
	l->accessed = !!(e & EPT_A);
	l->dirty = !!(e & EPT_D);
	l->contig = false;
}

const struct s2_format s2_format_ept = {
	.name = "ept",
	.block_levels = (1u << 1) | (1u << 2),
	.needs_bbm = false,
	.oa_bits = 52,
	.start_level = ept_start_level,
	.mk_table = ept_mk_table,
	.mk_leaf = ept_mk_leaf,
	.kind = ept_kind,
	.table_pa = ept_table_pa,
	.leaf = ept_leaf,
};
