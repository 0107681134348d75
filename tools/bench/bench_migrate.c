// SPDX-License-Identifier: MIT
/*
 * bench-migrate [--mib N] [--repeat N] [--json]
 *
 * The migration engine on the kvm backend's alias (no vCPU needed), in one run:
 *   memcpy       single-thread memcpy between two warm buffers: the limit
 *   2m_runs      N MiB mapped with 2 MiB blocks, one request
 *   4k_contig    N MiB of 4 KiB pages, requested page by page in GPA order
 *   4k_scattered every other 4 KiB page of N MiB (at most 128 MiB: each moved page is
 *                its own alias mapping, and vm.max_map_count bounds those)
 *   per_page     naive baseline on 4 KiB pages: protect, copy, remap one page at a time
 * Each case migrates node 0 -> 1 -> 0 first (so destination frames are warm, as a
 * node's free pages are: freed frames are kept, as with --keep-warm), then times 0 -> 1. Reports GiB/s, ratio to memcpy, speedup
 * over the per-page baseline and alias calls per page.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "mm/migrate.h"
#include "s2vm/clock.h"


static double memcpy_gibps(uint64_t bytes, int repeat)
{
	char *a = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *b = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t best = UINT64_MAX;

	memset(a, 1, bytes);
	memset(b, 2, bytes);
	for (int i = 0; i < repeat; i++) {
		uint64_t t0 = s2_now_ns();

		memcpy(b, a, bytes);
		t0 = s2_now_ns() - t0;
		if (t0 < best)
			best = t0;
		a[i] = b[i + 1]; /* keep the copy observable */
	}
	munmap(a, bytes);
	munmap(b, bytes);
	return (double)bytes / (double)best * 1e9 / (1 << 30);
}

enum kind { K_2M, K_4K_CONTIG, K_4K_SCATTERED, K_PER_PAGE, K_NR };
static const char *const names[K_NR] = { "2m_runs", "4k_contig", "4k_scattered", "per_page" };

struct res {
	double gibps;
	double calls_per_page;
	uint64_t pages;
};

static int setup(struct mm *mm, uint64_t bytes, bool split)
{
	/* freed frames kept warm (--keep-warm): the engine against memcpy, not the kernel's
	 * page allocation, which a punched destination pays on first touch */
	struct mm_config c = { .mem_size = bytes, .nr_nodes = 2, .mig.keep_freed = true };

	c.nodes[0] = (struct mm_guest_node){ .id = 0, .size = bytes - (2 << 20), .host = 0 };
	c.nodes[1] = (struct mm_guest_node){ .id = 1, .size = 2 << 20, .host = 1 }; /* makes pool 1 */
	if (mm_create(mm, &c)) {
		fprintf(stderr, "bench-migrate: %s\n", mm->err);
		return -1;
	}
	memset(mm->alias, 0x5a, bytes); /* the guest touched all its memory */
	if (split) {
		for (gpa_t g = 0; g < bytes; g += 2 << 20)
			if (s2_split(&mm->map, g, 2, &mm->batch))
				return -1;
		s2_batch_commit(&mm->map, &mm->batch);
	}
	return 0;
}

/* Every other page of at most this much: each moved page is its own mapping in the
 * alias, and the engine keeps the process under 3/4 of vm.max_map_count (65530). */
#define SCATTERED_MAX (128ull << 20)

/* Requests for @k over [0, bytes): one range, or one per page (every page / every other;
 * scattered pages over at most SCATTERED_MAX). */
static struct mig_range *requests(enum kind k, uint64_t bytes, size_t *n)
{
	uint64_t pages = bytes / 4096, step = k == K_4K_SCATTERED ? 2 : 1;

	if (k == K_4K_SCATTERED && bytes > SCATTERED_MAX)
		pages = SCATTERED_MAX / 4096;
	struct mig_range *r;

	if (k == K_2M) {
		r = malloc(sizeof(*r));
		r[0] = (struct mig_range){ 0, bytes };
		*n = 1;
		return r;
	}
	r = malloc(pages / step * sizeof(*r));
	*n = 0;
	for (uint64_t p = 0; p < pages; p += step)
		r[(*n)++] = (struct mig_range){ p * 4096, 4096 };
	return r;
}

static int migrate(struct mm *mm, enum kind k, struct mig_range *r, size_t n, unsigned node,
		   uint64_t *pages)
{
	struct mig_result res;

	*pages = 0;
	if (k == K_PER_PAGE) { /* one batch per page */
		for (size_t i = 0; i < n; i++) {
			if (mm_migrate(mm, &r[i], 1, node, &res))
				return -1;
			*pages += res.pages;
		}
		return 0;
	}
	if (mm_migrate(mm, r, n, node, &res))
		return -1;
	*pages = res.pages;
	return 0;
}

static int run_case(enum kind k, uint64_t bytes, int repeat, struct res *out)
{
	struct mm mm;
	size_t n;
	struct mig_range *r;
	uint64_t best = UINT64_MAX, pages = 0, calls = 0;

	if (setup(&mm, bytes + (2 << 20), k != K_2M)) {
		mm_destroy(&mm);
		return -1;
	}
	r = requests(k, bytes, &n);
	for (int i = 0; i < repeat; i++) {
		uint64_t t0, c0, p;

		if (migrate(&mm, k, r, n, 1, &p) || migrate(&mm, k, r, n, 0, &p))
			goto fail;
		c0 = mm.mig.alias_mprotect + mm.mig.alias_mmap;
		t0 = s2_now_ns();
		if (migrate(&mm, k, r, n, 1, &p))
			goto fail;
		t0 = s2_now_ns() - t0;
		if (t0 < best) {
			best = t0;
			pages = p;
			calls = mm.mig.alias_mprotect + mm.mig.alias_mmap - c0;
		}
		if (migrate(&mm, k, r, n, 0, &p))
			goto fail;
	}
	out->pages = pages;
	out->gibps = (double)(pages * 4096) / (double)best * 1e9 / (1 << 30);
	out->calls_per_page = pages ? (double)calls / (double)pages : 0;
	free(r);
	mm_destroy(&mm);
	return 0;
fail:
	fprintf(stderr, "bench-migrate: %s failed\n", names[k]);
	free(r);
	mm_destroy(&mm);
	return -1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = { { "mib", required_argument, NULL, 'm' },
					      { "repeat", required_argument, NULL, 'r' },
					      { "json", no_argument, NULL, 'j' },
					      { "help", no_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	uint64_t mib = 256;
	int repeat = 3, json = 0, c;
	struct res res[K_NR];
	double mc;

	while ((c = getopt_long(argc, argv, "m:r:jh", opts, NULL)) != -1) {
		if (c == 'm')
			mib = strtoull(optarg, NULL, 10);
		else if (c == 'r')
			repeat = atoi(optarg);
		else if (c == 'j')
			json = 1;
		else {
			printf("usage: bench-migrate [--mib N] [--repeat N] [--json]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (mib < 8 || mib > 8192 || mib % 2 || repeat < 1) {
		fprintf(stderr, "bench-migrate: --mib 8..8192 (even), --repeat >= 1\n");
		return 2;
	}
	mc = memcpy_gibps(mib << 20, repeat + 1);
	for (int k = 0; k < K_NR; k++) {
		/* the per-page baseline is slow: run it on 1/8 of the memory */
		uint64_t bytes = k == K_PER_PAGE ? (mib << 20) / 8 : mib << 20;

		if (run_case((enum kind)k, bytes, repeat, &res[k]))
			return 1;
	}
	if (json) {
		printf("{\"mib\":%" PRIu64 ",\"memcpy_gibps\":%.3f,\"cases\":[", mib, mc);
		for (int k = 0; k < K_NR; k++)
			printf("%s{\"name\":\"%s\",\"pages\":%" PRIu64 ",\"gibps\":%.3f,"
			       "\"ratio_to_memcpy\":%.3f,\"speedup_vs_per_page\":%.2f,"
			       "\"alias_calls_per_page\":%.5f}",
			       k ? "," : "", names[k], res[k].pages, res[k].gibps, res[k].gibps / mc,
			       res[k].gibps / res[K_PER_PAGE].gibps, res[k].calls_per_page);
		printf("]}\n");
		return 0;
	}
	printf("migration engine benchmark: %" PRIu64 " MiB, best of %d (memcpy %.2f GiB/s)\n", mib,
	       repeat, mc);
	printf("%-13s %10s %9s %12s %12s\n", "case", "GiB/s", "/memcpy", "x per-page", "calls/page");
	for (int k = 0; k < K_NR; k++)
		printf("%-13s %10.3f %9.3f %12.1f %12.5f\n", names[k], res[k].gibps,
		       res[k].gibps / mc, res[k].gibps / res[K_PER_PAGE].gibps,
		       res[k].calls_per_page);
	return 0;
}
