// SPDX-License-Identifier: MIT
/*
 * bench-migrate [--mib N] [--repeat N] [--json]
 *
 * The migration engine on the kvm backend's alias (no vCPU needed), in one run:
 *   memcpy                  single-thread memcpy between two warm buffers: the baseline
 *   2m_runs                 N MiB mapped with 2 MiB blocks, one request, 1 copy thread
 *   2m_runs_threads         the same, copy threads as many as the CPUs allowed (auto)
 *   4k_contig               N MiB of 4 KiB pages, requested page by page in GPA order
 *   4k_scattered_1in8       one 4 KiB page in 8 (over at most 256 MiB), cost model on:
 *                           2 MiB windows may move whole
 *   4k_scattered_1in8_exact the same with exact placement (only requested pages move)
 *   per_page                naive baseline on 4 KiB pages: protect, copy, remap one page
 *                           at a time (1/8 of the memory)
 * Each case migrates node 0 -> 1 -> 0 first (so destination frames are warm, as a
 * node's free pages are: freed frames are kept, as with --keep-warm), then times 0 -> 1.
 * Reports GiB/s of requested pages (and of all pages moved), ratio to memcpy, speedup
 * over the per-page baseline, alias calls per page, copy threads, and the time of each
 * engine phase (protect, copy, remap, wait, free) of the timed run; --json adds them
 * as phases_ns per case.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "bench_args.h"
#include "mm/copy_pool.h"
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

enum kind { K_2M, K_2M_THREADS, K_2M_HUGE, K_4K_CONTIG, K_4K_1IN8, K_4K_1IN8_EXACT,
	    K_PER_PAGE, K_NR };
static const char *const names[K_NR] = { "2m_runs", "2m_runs_threads", "2m_huge_pools",
					  "4k_contig", "4k_scattered_1in8",
					  "4k_scattered_1in8_exact", "per_page" };
#define HUGE_MIB_MAX 64 /* the huge-pool row moves at most this (its pages must be free) */

struct res {
	double gibps; /* requested bytes moved per second */
	double moved_gibps; /* all bytes moved (with the cost model's extra pages) */
	double calls_per_page;
	uint64_t pages; /* requested pages moved */
	uint64_t moved; /* pages moved in all */
	uint64_t windows; /* 2 MiB windows the cost model moved whole */
	unsigned threads; /* copiers the engine had for large batches */
	uint64_t phases_ns[MIG_PHASE_NR]; /* the timed migration, per phase */
};

static unsigned case_threads(enum kind k)
{
	return k == K_2M || k == K_2M_HUGE || k == K_PER_PAGE ? 1 : 0; /* 0: auto */
}

static int setup(struct mm *mm, uint64_t bytes, bool split, enum kind k)
{
	/* freed frames kept warm (--keep-warm): the engine against memcpy, not the kernel's
	 * page allocation, which a punched destination pays on first touch */
	struct mm_config c = { .mem_size = bytes, .nr_nodes = 2, .mig.keep_freed = true };

	c.mig.copy_threads = case_threads(k);
	c.mig.exact = k == K_4K_1IN8_EXACT;
	c.hugepages = k == K_2M_HUGE; /* hugetlbfs pools of 2 MiB pages */
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

/* Scattered pages over at most this much: each page moved alone is its own mapping in
 * the alias, and the engine keeps the process under 3/4 of vm.max_map_count (65530). */
#define SCATTERED_MAX (256ull << 20)

/* Requests for @k over [0, bytes): one range, or one per page (every page, or one in
 * 8 over at most SCATTERED_MAX). */
static struct mig_range *requests(enum kind k, uint64_t bytes, size_t *n)
{
	bool scattered = k == K_4K_1IN8 || k == K_4K_1IN8_EXACT;
	uint64_t pages = bytes / 4096, step = scattered ? 8 : 1;
	struct mig_range *r;

	if (scattered && bytes > SCATTERED_MAX)
		pages = SCATTERED_MAX / 4096;
	if (k == K_2M || k == K_2M_THREADS || k == K_2M_HUGE) {
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
		   uint64_t *pages, uint64_t *promoted)
{
	struct mig_result res;

	*pages = *promoted = 0;
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
	*promoted = res.promoted;
	return 0;
}

static int run_case(enum kind k, uint64_t bytes, int repeat, struct res *out)
{
	struct mm mm;
	size_t n;
	struct mig_range *r;
	uint64_t best = UINT64_MAX, pages = 0, calls = 0, moved = 0, windows = 0;
	uint64_t ph[MIG_PHASE_NR] = { 0 };

	if (setup(&mm, bytes + (2 << 20), k != K_2M && k != K_2M_THREADS && k != K_2M_HUGE, k)) {
		mm_destroy(&mm);
		return -1;
	}
	r = requests(k, bytes, &n);
	for (int i = 0; i < repeat; i++) {
		uint64_t t0, c0, p, pr, w0, ph0[MIG_PHASE_NR];

		if (migrate(&mm, k, r, n, 1, &p, &pr) || migrate(&mm, k, r, n, 0, &p, &pr))
			goto fail;
		c0 = mm.mig.alias_mprotect + mm.mig.alias_mmap;
		w0 = mm.mig.windows_promoted;
		memcpy(ph0, mm.mig.phase_ns, sizeof(ph0));
		t0 = s2_now_ns();
		if (migrate(&mm, k, r, n, 1, &p, &pr))
			goto fail;
		t0 = s2_now_ns() - t0;
		if (t0 < best) {
			best = t0;
			pages = p; /* requested */
			moved = p + pr;
			windows = mm.mig.windows_promoted - w0;
			calls = mm.mig.alias_mprotect + mm.mig.alias_mmap - c0;
			for (unsigned j = 0; j < MIG_PHASE_NR; j++)
				ph[j] = mm.mig.phase_ns[j] - ph0[j];
		}
		if (migrate(&mm, k, r, n, 0, &p, &pr))
			goto fail;
	}
	out->pages = pages;
	out->moved = moved;
	out->windows = windows;
	out->threads = mm.copy_pool ? copy_pool_threads(mm.copy_pool) : 1;
	memcpy(out->phases_ns, ph, sizeof(ph));
	out->gibps = (double)(pages * 4096) / (double)best * 1e9 / (1 << 30);
	out->moved_gibps = (double)(moved * 4096) / (double)best * 1e9 / (1 << 30);
	out->calls_per_page = pages ? (double)calls / (double)pages : 0;
	free(r);
	mm_destroy(&mm);
	return 0;
fail:
	fprintf(stderr, "bench-migrate: %s failed: %s\n", names[k], mm.err);
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
	uint64_t huge_mib, huge_need, huge_free;
	char nr_file[128];
	double mc;

	while ((c = getopt_long(argc, argv, "m:r:jh", opts, NULL)) != -1) {
		if (c == 'm')
			mib = bench_opt_u64("bench-migrate", "mib", optarg, 8, 8192);
		else if (c == 'r')
			repeat = (int)bench_opt_u64("bench-migrate", "repeat", optarg, 1, 1000);
		else if (c == 'j')
			json = 1;
		else {
			printf("usage: bench-migrate [--mib N] [--repeat N] [--json]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (mib % 2) {
		fprintf(stderr, "bench-migrate: --mib %" PRIu64 ": an even number of MiB\n", mib);
		return 2;
	}
	mc = memcpy_gibps(mib << 20, repeat + 1);
	huge_mib = mib < HUGE_MIB_MAX ? mib : HUGE_MIB_MAX;
	/* both pools hold the guest once (freed frames are kept warm), plus node 1's 2 MiB */
	huge_need = huge_mib + 2;
	huge_free = pool_huge_free(pool_local_node(), nr_file, sizeof(nr_file));
	for (int k = 0; k < K_NR; k++) {
		/* the per-page baseline is slow: run it on 1/8 of the memory */
		uint64_t bytes = k == K_PER_PAGE ? (mib << 20) / 8 : mib << 20;

		memset(&res[k], 0, sizeof(res[k]));
		if (k == K_2M_HUGE) {
			if (huge_free < huge_need) {
				fprintf(stderr, "bench-migrate: %s skipped: needs %" PRIu64 " free 2 MiB "
					"huge pages, %" PRIu64 " free (as root: echo %" PRIu64 " > %s)\n",
					names[k], huge_need, huge_free, huge_need + 16, nr_file);
				continue;
			}
			bytes = huge_mib << 20;
		}
		if (run_case((enum kind)k, bytes, repeat, &res[k]))
			return 1;
	}
	if (json) {
		printf("{\"mib\":%" PRIu64 ",\"memcpy_gibps\":%.3f,\"cpus\":%u,\"cases\":[",
		       mib, mc, copy_pool_cpus());
		for (int k = 0; k < K_NR; k++) {
			printf("%s{\"name\":\"%s\",\"pages\":%" PRIu64 ",\"gibps\":%.3f,"
			       "\"ratio_to_memcpy\":%.3f,\"speedup_vs_per_page\":%.2f,"
			       "\"alias_calls_per_page\":%.5f,\"copy_threads\":%u,"
			       "\"moved_pages\":%" PRIu64 ",\"moved_gibps\":%.3f,"
			       "\"windows_promoted\":%" PRIu64 ",\"skipped\":%s,\"phases_ns\":{",
			       k ? "," : "", names[k], res[k].pages, res[k].gibps, res[k].gibps / mc,
			       res[k].gibps / res[K_PER_PAGE].gibps, res[k].calls_per_page,
			       res[k].threads, res[k].moved, res[k].moved_gibps, res[k].windows,
			       res[k].pages ? "false" : "true");
			for (unsigned j = 0; j < MIG_PHASE_NR; j++)
				printf("%s\"%s\":%" PRIu64, j ? "," : "", mig_phase_names[j],
				       res[k].phases_ns[j]);
			printf("}}");
		}
		printf("]}\n");
		return 0;
	}
	printf("migration engine benchmark: %" PRIu64 " MiB, best of %d (memcpy %.2f GiB/s, "
	       "single thread, warm; %u CPUs allowed)\n",
	       mib, repeat, mc, copy_pool_cpus());
	printf("%-24s %4s %8s %8s %10s %10s %9s   %s\n", "case", "thr", "GiB/s", "/memcpy",
	       "x per-page", "calls/page", "moved/s", "phases ms (protect copy remap wait free)");
	for (int k = 0; k < K_NR; k++) {
		if (!res[k].pages) {
			printf("%-24s skipped (no free huge pages: see above)\n", names[k]);
			continue;
		}
		printf("%-24s %4u %8.3f %8.3f %10.1f %10.5f %9.3f  ", names[k], res[k].threads,
		       res[k].gibps, res[k].gibps / mc, res[k].gibps / res[K_PER_PAGE].gibps,
		       res[k].calls_per_page, res[k].moved_gibps);
		for (unsigned j = 0; j < MIG_PHASE_NR; j++)
			printf(" %6.2f", (double)res[k].phases_ns[j] / 1e6);
		printf("\n");
	}
	return 0;
}
