// SPDX-License-Identifier: MIT
#include "vmm/balloon_pfn.h"

size_t bpfn_take(const uint8_t *buf, size_t len, uint64_t ram_pages, uint64_t *held, bool inflate,
		 uint64_t *out, struct bpfn_counts *c)
{
	size_t n = 0;

	c->partial_bytes += len % 4;
	for (size_t i = 0; i + 4 <= len; i += 4) {
		uint64_t pfn = (uint64_t)buf[i] | (uint64_t)buf[i + 1] << 8 |
			       (uint64_t)buf[i + 2] << 16 | (uint64_t)buf[i + 3] << 24;
		uint64_t bit = 1ull << (pfn % 64), *w;

		if (pfn >= ram_pages) {
			c->bad++;
			continue;
		}
		w = &held[pfn / 64];
		if (inflate ? (*w & bit) : !(*w & bit)) {
			if (inflate)
				c->dup++;
			else
				c->not_held++;
			continue;
		}
		*w ^= bit;
		out[n++] = pfn;
	}
	c->taken += n;
	return n;
}
