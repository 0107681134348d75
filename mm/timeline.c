// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdlib.h>

#include "mm/timeline.h"

const char *const mig_phase_names[MIG_PHASE_NR] = {
	[MIG_PHASE_PROTECT] = "protect", [MIG_PHASE_COPY] = "copy",
	[MIG_PHASE_REMAP] = "remap",	 [MIG_PHASE_WAIT] = "wait",
	[MIG_PHASE_FREE] = "free",
};

int mm_timeline_init(struct mm_timeline *t, uint32_t cap)
{
	*t = (struct mm_timeline){ .next_seq = 1 };
	if (!cap)
		return 0;
	t->ev = calloc(cap, sizeof(*t->ev));
	if (!t->ev)
		return -ENOMEM;
	t->cap = cap;
	return 0;
}

void mm_timeline_destroy(struct mm_timeline *t)
{
	free(t->ev);
	t->ev = NULL;
	t->cap = 0;
}

void mm_timeline_push(struct mm_timeline *t, const struct mm_tl_event *e)
{
	struct mm_tl_event *slot;

	if (!t->ev)
		return;
	slot = &t->ev[(t->next_seq - 1) % t->cap];
	*slot = *e;
	slot->seq = t->next_seq++;
}

size_t mm_timeline_read(const struct mm_timeline *t, uint64_t *cursor, struct mm_tl_event *out,
			size_t max, uint64_t *lost)
{
	uint64_t last = t->next_seq - 1; /* newest seq written, 0 if none */
	uint64_t oldest = last >= t->cap ? last - t->cap + 1 : 1; /* oldest still held */
	uint64_t from = *cursor + 1;
	size_t n = 0;

	if (lost)
		*lost = 0;
	if (!t->ev || from > last)
		return 0;
	if (from < oldest) {
		if (lost)
			*lost = oldest - from;
		from = oldest;
	}
	for (uint64_t s = from; s <= last && n < max; s++)
		out[n++] = t->ev[(s - 1) % t->cap];
	*cursor = from + n - 1;
	return n;
}
