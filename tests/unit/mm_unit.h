/* SPDX-License-Identifier: MIT */
/* Fixtures shared by the suites that build a real memory manager (memfd pools). */
#ifndef S2VM_MM_UNIT_H
#define S2VM_MM_UNIT_H

#include <stdint.h>
#include <stdio.h>

#include "mm/mm.h"

/* xorshift64*: the suites' seeded random numbers. */
static inline uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s * 0x2545f4914f6cdd1dull;
}

/* Two guest nodes of @half bytes each on host nodes 0 and 1 (1 is emulated on a one-node
 * host: its own memfd, so still a distinct pool), each pool capped at 64 MiB. */
static inline struct mm_config two_nodes(uint64_t half)
{
	struct mm_config c = { .mem_size = 2 * half, .nr_nodes = 2, .nr_caps = 2 };

	for (unsigned i = 0; i < 2; i++) {
		c.nodes[i] = (struct mm_guest_node){ .id = i, .size = half, .host = i };
		c.caps[i] = (struct mm_pool_cap){ .node = i, .bytes = 64ull << 20 };
	}
	return c;
}

/* mm_create(), saying why on stderr when it fails. */
static inline int create(struct mm *mm, const struct mm_config *c)
{
	int r = mm_create(mm, c);

	if (r)
		fprintf(stderr, "\n  mm_create: %d: %s\n", r, mm->err);
	return r;
}

#endif
