// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the balloon's PFN-array parser (vmm/balloon_pfn.c) and the sort
 * and merge that turns accepted PFNs into discard runs (mm/ranges.c): what a hostile
 * balloon driver controls. The input is a small guest (RAM size) and a sequence of
 * inflate and deflate buffers of arbitrary bytes.
 *
 * Input: bytes 0-1 RAM in pages minus one (le16 mod 16384: 1..16384 pages), then buffers, each a
 * header byte (bit 0: deflate, else inflate; bits 1-7: its length in bytes, 0..127, so
 * partial entries happen) followed by that many bytes of le32 PFNs.
 *
 * A finding, besides a sanitizer report: an accepted PFN outside RAM, an inflate that
 * accepts a page already held or a deflate one not held, counts that do not add up to
 * the entries read, runs that are unsorted, overlapping, adjacent (not merged), miss an
 * accepted page or cover one not accepted, or a held bitmap that disagrees with an
 * oracle set.
 */
#include <string.h>

#include "mm/discard.h"
#include "tests/fuzz/fuzz.h"
#include "vmm/balloon_pfn.h"

#define MAX_PAGES 16384u

static uint64_t held[MAX_PAGES / 64];
static uint8_t oracle[MAX_PAGES];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t ram, pfns[64], sorted[64];
	struct mig_range runs[64];
	size_t off = 2;

	if (size < 2)
		return 0;
	ram = (uint64_t)((data[0] | data[1] << 8) % MAX_PAGES) + 1;
	memset(held, 0, sizeof(held));
	memset(oracle, 0, sizeof(oracle));
	while (off < size) {
		bool deflate = data[off] & 1;
		size_t len = data[off] >> 1, n, nr, pages = 0;
		struct bpfn_counts c = { 0 };
		uint8_t seen[MAX_PAGES / 8];

		off++;
		if (len > size - off)
			len = size - off;
		n = bpfn_take(data + off, len, ram, held, !deflate, pfns, &c);
		fuzz_check(n <= len / 4);
		fuzz_check(c.taken == n);
		fuzz_check(c.taken + c.bad + c.dup + c.not_held == len / 4);
		fuzz_check(c.partial_bytes == len % 4);
		fuzz_check(deflate ? c.dup == 0 : c.not_held == 0);
		for (size_t i = 0; i < n; i++) {
			fuzz_check(pfns[i] < ram);
			fuzz_check(oracle[pfns[i]] == (deflate ? 1 : 0));
			oracle[pfns[i]] = deflate ? 0 : 1;
		}
		/* the runs cover exactly the accepted pages, sorted, disjoint, merged */
		memcpy(sorted, pfns, n * sizeof(*pfns));
		nr = mm_pfns_to_ranges(sorted, n, runs);
		memset(seen, 0, sizeof(seen));
		for (size_t i = 0; i < n; i++)
			seen[pfns[i] / 8] |= (uint8_t)(1u << (pfns[i] % 8));
		for (size_t k = 0; k < nr; k++) {
			fuzz_check(runs[k].len && runs[k].len % 4096 == 0 && runs[k].gpa % 4096 == 0);
			if (k)
				fuzz_check(runs[k].gpa > runs[k - 1].gpa + runs[k - 1].len);
			for (uint64_t g = runs[k].gpa; g < runs[k].gpa + runs[k].len; g += 4096) {
				uint64_t p = g / 4096;

				fuzz_check(p < ram && (seen[p / 8] >> (p % 8) & 1));
				pages++;
			}
		}
		fuzz_check(pages == n); /* every accepted page once: no duplicates survive */
		off += len;
	}
	for (uint64_t p = 0; p < ram; p++)
		fuzz_check(((held[p / 64] >> (p % 64)) & 1) == oracle[p]);
	return 0;
}
