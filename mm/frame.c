// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdbool.h>
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
	t->tails_written = calloc((t->nr / HUGE + 64) / 64, sizeof(uint64_t));
	if (!t->tails_written) {
		frame_table_destroy(t);
		return -ENOMEM;
	}
	return 0;
}

void frame_table_destroy(struct frame_table *t)
{
	if (t->f)
		munmap(t->f, t->nr * sizeof(struct frame));
	free(t->tails_written);
	t->tails_written = NULL;
	t->f = NULL;
	t->nr = 0;
}

static bool tails_dirty(const struct frame_table *t, uint64_t chunk)
{
	return (t->tails_written[chunk / 64] >> (chunk % 64)) & 1;
}

static void tails_mark(struct frame_table *t, uint64_t chunk, bool dirty)
{
	if (dirty)
		t->tails_written[chunk / 64] |= 1ull << (chunk % 64);
	else
		t->tails_written[chunk / 64] &= ~(1ull << (chunk % 64));
}

/* Give every record of 2 MiB chunk @chunk its own value if it is a huge frame (head plus
 * zero tails): the chunk is about to be partly rewritten. */
static void split_huge(struct frame_table *t, uint64_t chunk)
{
	struct frame *f = &t->f[chunk * HUGE];
	struct frame h = *f;

	if (!(h.flags & FRAME_HUGE_HEAD))
		return;
	h.flags &= (uint8_t)~FRAME_HUGE_HEAD;
	for (unsigned k = 0; k < HUGE; k++) {
		f[k] = h;
		f[k].pfn = h.pfn + k;
	}
	tails_mark(t, chunk, true);
}

int frame_table_set(struct frame_table *t, gpa_t gpa, uint64_t size, unsigned pool, uint64_t pfn)
{
	uint64_t i = gpa >> 12, end = i + (size >> 12);

	if ((gpa | size) & 4095 || i > t->nr || size >> 12 > t->nr - i || pool > UINT8_MAX ||
	    pfn > UINT32_MAX || size >> 12 > (uint64_t)UINT32_MAX + 1 - pfn)
		return -ERANGE;

	/* chunks written only in part keep their other records */
	if (i < end && (i % HUGE || end - i < HUGE))
		split_huge(t, i / HUGE);
	if (i < end && end % HUGE)
		split_huge(t, (end - 1) / HUGE);
	while (i < end) {
		struct frame *f = &t->f[i];

		if (i % HUGE == 0 && end - i >= HUGE && pfn % HUGE == 0) {
			*f = (struct frame){ .pfn = (uint32_t)pfn, .pool = (uint8_t)pool,
					     .flags = FRAME_PRESENT | FRAME_HUGE_HEAD };
			/* tails must read as zero; clean ones are never touched, so their
			 * pages stay unallocated */
			if (tails_dirty(t, i / HUGE)) {
				memset(&f[1], 0, (HUGE - 1) * sizeof(*f));
				tails_mark(t, i / HUGE, false);
			}
			i += HUGE;
			pfn += HUGE;
			continue;
		}
		*f = (struct frame){ .pfn = (uint32_t)pfn, .pool = (uint8_t)pool,
				     .flags = FRAME_PRESENT };
		if (i % HUGE)
			tails_mark(t, i / HUGE, true);
		i++;
		pfn++;
	}
	return 0;
}

const struct frame *frame_lookup(const struct frame_table *t, gpa_t gpa, uint64_t *pfn)
{
	uint64_t i = gpa >> 12;
	const struct frame *f;

	if (i >= t->nr)
		return NULL;
	f = &t->f[i];
	if (!f->flags && (i & (HUGE - 1))) {
		const struct frame *h = &t->f[i & ~(uint64_t)(HUGE - 1)];

		if (h->flags & FRAME_HUGE_HEAD) { /* a tail */
			if (pfn)
				*pfn = h->pfn + (i & (HUGE - 1));
			return h;
		}
	}
	if (pfn)
		*pfn = f->pfn;
	return (f->flags & FRAME_PRESENT) ? f : NULL;
}

uint64_t frame_table_resident_bytes(const struct frame_table *t)
{
	size_t len = (t->nr * sizeof(struct frame) + 4095) & ~(size_t)4095;
	size_t pages = len / 4096, n = 0;
	unsigned char *vec = malloc(pages ? pages : 1);

	if (!vec || !t->f || mincore(t->f, len, vec)) {
		free(vec);
		return 0;
	}
	for (size_t i = 0; i < pages; i++)
		n += vec[i] & 1;
	free(vec);
	return (uint64_t)n * 4096;
}
