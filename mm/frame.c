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

static inline uint64_t mkstate(unsigned pool, unsigned flags)
{
	return (uint64_t)pool | (uint64_t)flags << 8;
}

/* Write record @f: pfn first, then the state that publishes it. */
static void rec_store(struct frame *f, uint32_t pfn, uint64_t state)
{
	__atomic_store_n(&f->pfn, pfn, __ATOMIC_RELAXED);
	__atomic_store_n(&f->gen, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&f->state, state, __ATOMIC_RELEASE);
}

int frame_pin(struct frame *f, uint64_t inc)
{
	uint64_t old = __atomic_load_n(&f->state, __ATOMIC_RELAXED), nw;

	do {
		unsigned flags = (old >> 8) & 0xff;
		uint64_t pin = old >> 16;

		if (!(flags & FRAME_PRESENT))
			return -ENOENT;
		if (flags & FRAME_MIGRATING)
			return -EBUSY;
		if (inc == FRAME_PIN_LONGTERM ? pin / FRAME_PIN_LONGTERM >= FRAME_PIN_LONG_MAX
					      : pin % FRAME_PIN_LONGTERM >= FRAME_PIN_SHORT_MAX)
			return -EOVERFLOW;
		nw = old + (inc << 16);
	} while (!__atomic_compare_exchange_n(&f->state, &old, nw, false, __ATOMIC_SEQ_CST,
					      __ATOMIC_RELAXED));
	return 0;
}

void frame_unpin(struct frame *f, uint64_t inc)
{
	__atomic_sub_fetch(&f->state, inc << 16, __ATOMIC_SEQ_CST);
}

bool frame_try_mark(struct frame *f)
{
	uint64_t old = __atomic_load_n(&f->state, __ATOMIC_RELAXED);

	do {
		if (old >> 16)
			return false;
	} while (!__atomic_compare_exchange_n(&f->state, &old, old | ((uint64_t)FRAME_MIGRATING << 8), false,
					      __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
	return true;
}

void frame_clear_flags(struct frame *f, unsigned flags)
{
	__atomic_and_fetch(&f->state, ~((uint64_t)flags << 8), __ATOMIC_SEQ_CST);
}

void frame_set_flags(struct frame *f, unsigned flags)
{
	__atomic_or_fetch(&f->state, (uint64_t)flags << 8, __ATOMIC_SEQ_CST);
}

/* Give every record of 2 MiB chunk @chunk its own value if it is a huge frame (head plus
 * zero tails): the chunk is about to be partly rewritten. The tails inherit the head's
 * flags (FRAME_MIGRATING during a batch) and no pins (the head has none then). */
static void split_huge(struct frame_table *t, uint64_t chunk)
{
	struct frame *f = &t->f[chunk * HUGE];
	uint64_t st = frame_state(f);
	uint32_t pfn = (uint32_t)frame_pfn(f);

	if (!((st >> 8) & FRAME_HUGE_HEAD))
		return;
	st = mkstate(st & 0xff, ((st >> 8) & 0xff) & ~FRAME_HUGE_HEAD);
	/* tails first: until the head loses FRAME_HUGE_HEAD, lookups of a tail that still
	 * reads as zero go through the head */
	for (unsigned k = 1; k < HUGE; k++)
		rec_store(&f[k], pfn + k, st);
	rec_store(&f[0], pfn, st);
	tails_mark(t, chunk, true);
}

int frame_table_set(struct frame_table *t, gpa_t gpa, uint64_t size, unsigned pool, uint64_t pfn)
{
	return frame_table_set_flags(t, gpa, size, pool, pfn, 0);
}

int frame_table_set_flags(struct frame_table *t, gpa_t gpa, uint64_t size, unsigned pool,
			  uint64_t pfn, unsigned flags)
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
			/* tails must read as zero; clean ones are never touched, so their
			 * pages stay unallocated. Head first: lookups of zeroed tails then
			 * go to the new head. */
			rec_store(f, (uint32_t)pfn, mkstate(pool, FRAME_PRESENT | FRAME_HUGE_HEAD | flags));
			if (tails_dirty(t, i / HUGE)) {
				for (unsigned k = 1; k < HUGE; k++)
					rec_store(&f[k], 0, 0);
				tails_mark(t, i / HUGE, false);
			}
			i += HUGE;
			pfn += HUGE;
			continue;
		}
		rec_store(f, (uint32_t)pfn, mkstate(pool, FRAME_PRESENT | flags));
		if (i % HUGE)
			tails_mark(t, i / HUGE, true);
		i++;
		pfn++;
	}
	return 0;
}

struct frame *frame_get(struct frame_table *t, gpa_t gpa, uint64_t *pfn)
{
	uint64_t i = gpa >> 12;
	struct frame *f;
	uint64_t st;

	if (i >= t->nr)
		return NULL;
	f = &t->f[i];
	st = frame_state(f);
	if (!st && (i & (HUGE - 1))) {
		struct frame *h = &t->f[i & ~(uint64_t)(HUGE - 1)];

		if (frame_flags(h) & FRAME_HUGE_HEAD) { /* a tail */
			if (pfn)
				*pfn = frame_pfn(h) + (i & (HUGE - 1));
			return h;
		}
		/* the head is not huge (any more): a split writes the tails before it
		 * clears the head's flag, so this tail's own record is visible now */
		st = frame_state(f);
	}
	if (pfn)
		*pfn = frame_pfn(f);
	return ((st >> 8) & FRAME_PRESENT) ? f : NULL;
}

const struct frame *frame_lookup(const struct frame_table *t, gpa_t gpa, uint64_t *pfn)
{
	return frame_get((struct frame_table *)t, gpa, pfn);
}

int frame_for_each(struct frame_table *t, gpa_t gpa, uint64_t size,
		   int (*fn)(void *ctx, struct frame *f, gpa_t gpa, uint64_t npages), void *ctx)
{
	for (gpa_t g = gpa & ~4095ull, end = gpa + size; g < end;) {
		struct frame *f = frame_get(t, g, NULL);
		gpa_t next = g + 4096;
		int r;

		if (f && (frame_flags(f) & FRAME_HUGE_HEAD)) {
			next = (g | ((HUGE << 12) - 1)) + 1;
			if (next > end)
				next = (end + 4095) & ~4095ull;
		}
		if (f && (r = fn(ctx, f, g, (next - g) >> 12)))
			return r;
		g = next;
	}
	return 0;
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
