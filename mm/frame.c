// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "mm/frame.h"

#define HUGE 512u

int frame_table_init(struct frame_table *t, uint64_t mem_size)
{
	t->nr = mem_size >> 12;
	/* anonymous mapping: untouched records cost nothing until written */
	t->f = mmap(NULL, t->nr * sizeof(struct frame), PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (t->f == MAP_FAILED) {
		t->f = NULL;
		t->nr = 0;
		return -ENOMEM;
	}
	return 0;
}

void frame_table_destroy(struct frame_table *t)
{
	if (t->f)
		munmap(t->f, t->nr * sizeof(struct frame));
	t->f = NULL;
	t->nr = 0;
}

void frame_table_set(struct frame_table *t, gpa_t gpa, uint64_t size, unsigned pool, uint64_t pfn)
{
	uint64_t i = gpa >> 12, end = (gpa + size) >> 12;

	while (i < end) {
		struct frame *f = &t->f[i];

		if (i % HUGE == 0 && end - i >= HUGE && pfn % HUGE == 0) {
			*f = (struct frame){ .pfn = (uint32_t)pfn, .pool = (uint8_t)pool,
					     .flags = FRAME_PRESENT | FRAME_HUGE_HEAD };
			for (unsigned k = 1; k < HUGE; k++)
				f[k] = (struct frame){ .flags = FRAME_HUGE_TAIL };
			i += HUGE;
			pfn += HUGE;
			continue;
		}
		*f = (struct frame){ .pfn = (uint32_t)pfn, .pool = (uint8_t)pool,
				     .flags = FRAME_PRESENT };
		i++;
		pfn++;
	}
}

const struct frame *frame_lookup(const struct frame_table *t, gpa_t gpa, uint64_t *pfn)
{
	uint64_t i = gpa >> 12;
	const struct frame *f;

	if (i >= t->nr)
		return NULL;
	f = &t->f[i];
	if (f->flags & FRAME_HUGE_TAIL) {
		f = &t->f[i & ~(uint64_t)(HUGE - 1)];
		if (pfn)
			*pfn = f->pfn + (i & (HUGE - 1));
	} else if (pfn) {
		*pfn = f->pfn;
	}
	return (f->flags & FRAME_PRESENT) ? f : NULL;
}
