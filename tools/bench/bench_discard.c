// SPDX-License-Identifier: MIT
/*
 * tools/dev bench discard [--mib N] [--repeat N] [--touched-pct P] [--seed N] [--json]
 *
 * Discarding guest memory (mm/discard.h) on the kvm backend's alias (no vCPU needed), in
 * one run:
 *
 * 1. N MiB (default 1024) of touched guest RAM reported as every one of its 4 KiB PFNs in
 *    a seeded shuffled order (what free page reporting or a balloon hands over:
 *    scattered, but together adjacent). Timed: mm_pfns_to_ranges() + mm_discard().
 *    Baselines in the same run, interleaved, each on a freshly touched memfd mapping of
 *    the same size: one madvise(MADV_REMOVE) per 4 KiB page in the same shuffled order
 *    (what kvmtool and QEMU do), one fallocate(PUNCH_HOLE) per 4 KiB page, and one
 *    fallocate over the whole range (the limit). Touching is setup, timed apart.
 *    Checked every run: the pool's resident bytes dropped by N MiB and a sample of pages
 *    reads zero through the alias.
 * 2. Host residency after migrating a guest of N MiB, P% of its 4 KiB pages touched
 *    (seeded random pages), from host node 0 to host node 1 and freeing the old frames
 *    (mm_flush_and_free): resident bytes of every pool over the touched bytes.
 *
 * Cases run interleaved; s2vm and one_fallocate each right after a per-page loop.
 *
 * Exit status: 0 whether the targets are met or not (PASS/MISS is printed), 1 when a
 * correctness check fails or the memory manager refuses, 2 for bad options.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_args.h"
#include "mm/discard.h"
#include "s2vm/clock.h"

#define PAGE ((uint64_t)4096)
#define MIB ((uint64_t)1 << 20)
#define SAMPLES 4096 /* pages read back after each discard */

/* Targets (DESIGN.md, "Discard"). */
#define TARGET_VS_MADVISE 8.0 /* madvise loop / s2vm, at least */
#define TARGET_VS_ONE_FALLOCATE 1.25 /* s2vm / one fallocate, at most */
#define TARGET_CALLS_PER_RUN 2.0 /* host calls per merged run, at most */
#define TARGET_RESIDENT 1.1 /* resident after migration / touched, at most */

/* xorshift64*: seeded, so every case discards in the same order. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s * 0x2545f4914f6cdd1dull;
}

static void shuffle(uint64_t *v, size_t n, uint64_t seed)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < n; i++)
		v[i] = i;
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = (size_t)(rnd(&s) % (i + 1));
		uint64_t t = v[i];

		v[i] = v[j];
		v[j] = t;
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Minimum and median of @n samples (@v is sorted in place). */
struct stat2 {
	double min, median;
};

static struct stat2 stat2(uint64_t *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_u64);
	return (struct stat2){ (double)v[0],
			       n % 2 ? (double)v[n / 2] : ((double)v[n / 2 - 1] + v[n / 2]) / 2 };
}

/* A correctness check failed: say so loudly. Returns -1. */
static int __attribute__((format(printf, 1, 2))) fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bench-discard: FAILED: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -1;
}

/* ---- 1. discard: s2vm and the host baselines ---------------------------------------- */

enum dcase { D_S2VM, D_MADVISE, D_FALLOC_LOOP, D_FALLOC_ONE, D_NR };
static const char *const dnames[D_NR] = { "s2vm", "madvise_loop", "fallocate_loop",
					  "one_fallocate" };
static const char *const dhow[D_NR] = {
	"mm_pfns_to_ranges + mm_discard",
	"madvise(MADV_REMOVE) per 4 KiB, shuffled",
	"fallocate(PUNCH_HOLE) per 4 KiB, shuffled",
	"fallocate(PUNCH_HOLE) over the whole range",
};

struct dsamples {
	uint64_t *ns[D_NR]; /* timed part, per repeat */
	uint64_t *setup_ns[D_NR]; /* memfd/mm setup + touching, per repeat */
	uint64_t *sort_ns, *discard_ns; /* s2vm's two steps */
	uint64_t calls[D_NR]; /* host calls, all repeats */
	struct discard_result res; /* s2vm, all repeats */
	uint64_t obs_punch, obs_alias; /* pool->punch_calls and alias_stats deltas, all runs */
	uint64_t returned; /* mm->discard.returned_bytes deltas, all pools and runs, bytes */
	uint64_t failed; /* mm->discard.failed_pages delta, all runs */
	uint64_t mm_build_ns;
	uint64_t resident_before, resident_after; /* last s2vm run, bytes */
};

static uint64_t mm_resident(const struct mm *mm)
{
	uint64_t b = 0;

	for (unsigned i = 0; i < mm->nr_pools; i++)
		b += pool_resident_bytes(&mm->pools[i]);
	return b;
}

static uint64_t mm_punch_calls(const struct mm *mm)
{
	uint64_t c = 0;

	for (unsigned i = 0; i < mm->nr_pools; i++)
		c += mm->pools[i].punch_calls;
	return c;
}

static uint64_t mm_returned(const struct mm *mm)
{
	uint64_t b = 0;

	for (unsigned i = 0; i < MM_MAX_POOLS; i++)
		b += mm->discard.returned_bytes[i];
	return b;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/*
 * Make every page of [p, p + bytes) resident and non-zero: the guest used it all. One
 * MADV_POPULATE_WRITE and a word per page rather than a memset: a first-touch fault
 * costs ~12 us per 4 KiB on this machine (3.2 s per GiB), which would make the setup
 * dominate the run; the pages end up just as resident and mapped.
 */
static void touch(unsigned char *p, uint64_t bytes)
{
	if (madvise(p, bytes, MADV_POPULATE_WRITE) < 0) {
		memset(p, 0x5a, bytes);
		return;
	}
	for (uint64_t o = 0; o < bytes; o += PAGE)
		p[o + (o >> 12) % PAGE] = 0x5a;
}

/* Every byte of the 4 KiB page at @p is zero. */
static bool page_zero(const unsigned char *p)
{
	const uint64_t *w = (const uint64_t *)p;

	for (size_t i = 0; i < PAGE / 8; i++)
		if (w[i])
			return false;
	return true;
}

/* One timed s2vm discard of every page of guest RAM, reported as @order (PFNs). */
static int run_s2vm(struct mm *mm, uint64_t bytes, const uint64_t *order, uint64_t *pfn,
		    struct mig_range *ranges, uint64_t seed, struct dsamples *d, int i)
{
	uint64_t pages = bytes / PAGE, t0, t1, t2, before, after, punch0, alias0, ret0, failed0;
	struct discard_result res = { 0 };
	size_t n;
	int r;

	t0 = s2_now_ns();
	touch(mm_alias_at(mm, 0), bytes);
	d->setup_ns[D_S2VM][i] = s2_now_ns() - t0 + (i ? 0 : d->mm_build_ns);
	before = mm_resident(mm);
	if (before < bytes)
		return fail("s2vm: pools hold %" PRIu64 " bytes after touching %" PRIu64
			    " (the holes of the last discard did not refill)",
			    before, bytes);
	memcpy(pfn, order, pages * sizeof(*pfn)); /* mm_pfns_to_ranges sorts in place */
	punch0 = mm_punch_calls(mm);
	alias0 = mm->alias_stats.mmap_calls + mm->alias_stats.mprotect_calls;
	ret0 = mm_returned(mm);
	failed0 = mm->discard.failed_pages;

	t0 = s2_now_ns();
	n = mm_pfns_to_ranges(pfn, pages, ranges);
	t1 = s2_now_ns();
	r = mm_discard(mm, ranges, n, 0, &res);
	t2 = s2_now_ns();

	if (r) {
		fprintf(stderr, "bench-discard: mm_discard: %s (%d): %s\n", strerror(-r), r,
			mm->err);
		return -1;
	}
	d->sort_ns[i] = t1 - t0;
	d->discard_ns[i] = t2 - t1;
	d->ns[D_S2VM][i] = t2 - t0;
	d->calls[D_S2VM] += res.punch_calls + res.alias_calls;
	d->res.pages += res.pages;
	d->res.runs += res.runs;
	d->res.punch_calls += res.punch_calls;
	d->res.alias_calls += res.alias_calls;
	d->res.rehomed += res.rehomed;
	d->res.misplaced += res.misplaced;
	d->res.pinned += res.pinned;
	d->res.deferred += res.deferred;
	d->obs_punch += mm_punch_calls(mm) - punch0;
	d->obs_alias += mm->alias_stats.mmap_calls + mm->alias_stats.mprotect_calls - alias0;
	d->returned += mm_returned(mm) - ret0;
	d->failed += mm->discard.failed_pages - failed0;

	/* correctness: everything went back to the host and reads as zero */
	if (n != 1)
		return fail("s2vm: mm_pfns_to_ranges made %zu ranges of %" PRIu64
			    " adjacent pages (want 1)",
			    n, pages);
	if (res.pages != pages || res.pinned)
		return fail("s2vm: discarded %" PRIu64 " of %" PRIu64 " pages (%" PRIu64
			    " pinned)",
			    res.pages, pages, res.pinned);
	if (mm->discard.failed_pages != failed0)
		return fail("s2vm: %" PRIu64 " pages failed to punch (mm->discard.failed_pages)",
			    mm->discard.failed_pages - failed0);
	after = mm_resident(mm); /* before reading: a read of a hole fills it */
	d->resident_before = before;
	d->resident_after = after;
	if (after > before || before - after < bytes)
		return fail("s2vm: pools' resident bytes dropped by %" PRIu64 ", not %" PRIu64
			    " (%" PRIu64 " -> %" PRIu64 ")",
			    before - after, bytes, before, after);
	uint64_t s = seed + 77 + (uint64_t)i;

	for (int k = 0; k < SAMPLES; k++) {
		uint64_t p = k == 0 ? 0 : k == 1 ? pages - 1 : rnd(&s) % pages;

		if (!page_zero(mm_alias_at(mm, p * PAGE)))
			return fail("s2vm: guest page %" PRIu64 " (of %" PRIu64
				    ") does not read zero through the alias after the discard",
				    p, pages);
	}
	return 0;
}

/* One timed host baseline on a fresh, touched memfd of @bytes. */
static int run_baseline(enum dcase k, uint64_t bytes, const uint64_t *order, struct dsamples *d,
			int i)
{
	uint64_t pages = bytes / PAGE, t0, calls = 0;
	unsigned char *p;
	struct stat st;
	int fd, err = 0;

	t0 = s2_now_ns();
	fd = memfd_create("bench-discard", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)bytes) < 0) {
		perror("bench-discard: memfd");
		return -1;
	}
	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		perror("bench-discard: mmap");
		close(fd);
		return -1;
	}
	touch(p, bytes);
	d->setup_ns[k][i] = s2_now_ns() - t0;

	t0 = s2_now_ns();
	switch (k) {
	case D_MADVISE:
		for (uint64_t j = 0; j < pages && !err; j++, calls++)
			err = madvise(p + order[j] * PAGE, PAGE, MADV_REMOVE);
		break;
	case D_FALLOC_LOOP:
		for (uint64_t j = 0; j < pages && !err; j++, calls++)
			err = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					(off_t)(order[j] * PAGE), (off_t)PAGE);
		break;
	default:
		err = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)bytes);
		calls++;
		break;
	}
	d->ns[k][i] = s2_now_ns() - t0;
	d->calls[k] += calls;
	if (err)
		fprintf(stderr, "bench-discard: %s: %s\n", dnames[k], strerror(errno));
	else if (fstat(fd, &st) < 0 || st.st_blocks) {
		fprintf(stderr, "bench-discard: FAILED: %s: %" PRIu64 " bytes still resident\n",
			dnames[k], (uint64_t)st.st_blocks * 512);
		err = -1;
	}
	munmap(p, bytes);
	close(fd);
	return err ? -1 : 0;
}

static int bench_discard(uint64_t bytes, int repeat, uint64_t seed, struct dsamples *d)
{
	uint64_t pages = bytes / PAGE, t0;
	uint64_t *order = malloc(pages * sizeof(*order)), *pfn = malloc(pages * sizeof(*pfn));
	struct mig_range *ranges = malloc(pages * sizeof(*ranges));
	struct mm_config c = { .mem_size = bytes };
	struct mm mm;
	int r = -1;

	if (!order || !pfn || !ranges) {
		fprintf(stderr, "bench-discard: out of memory\n");
		goto out_free;
	}
	shuffle(order, pages, seed);
	t0 = s2_now_ns();
	if (mm_create(&mm, &c)) {
		fprintf(stderr, "bench-discard: mm_create: %s\n", mm.err);
		goto out_mm;
	}
	d->mm_build_ns = s2_now_ns() - t0;
	/*
	 * Interleaved, so drift hits every case alike, and each one-call case (s2vm,
	 * one_fallocate) right after a page-by-page loop: a loop frees its pages in shuffled
	 * order, and the next case's pages, allocated from those free lists, take ~25% longer
	 * to punch than pages allocated after a single punch. Both then meet the same state.
	 */
	static const enum dcase seq[2][D_NR] = {
		{ D_MADVISE, D_S2VM, D_FALLOC_LOOP, D_FALLOC_ONE },
		{ D_FALLOC_LOOP, D_FALLOC_ONE, D_MADVISE, D_S2VM },
	};

	for (int i = 0; i < repeat; i++)
		for (int j = 0; j < D_NR; j++) {
			enum dcase k = seq[i % 2][j];

			if (k == D_S2VM ? run_s2vm(&mm, bytes, order, pfn, ranges, seed, d, i)
					: run_baseline(k, bytes, order, d, i))
				goto out_mm;
		}
	r = 0;
out_mm:
	mm_destroy(&mm);
out_free:
	free(ranges);
	free(pfn);
	free(order);
	return r;
}

/* ---- 2. residency after migrating a partly touched guest ----------------------------- */

struct resid {
	uint64_t touched; /* bytes */
	unsigned nr_pools;
	unsigned node[MM_MAX_POOLS];
	bool real[MM_MAX_POOLS];
	uint64_t before[MM_MAX_POOLS], migrated[MM_MAX_POOLS], flushed[MM_MAX_POOLS]; /* bytes */
	uint64_t total_before, total_migrated, total_flushed;
	uint64_t touch_ns, migrate_ns, flush_ns, freed_frames;
	struct mig_result res;
};

/* The pattern a touched page holds: its GPA, so a page moved to the wrong place shows. */
static uint64_t pattern(gpa_t g)
{
	return g ^ 0xd15ca4d0000000ffull;
}

static void snap(const struct mm *mm, uint64_t *per, uint64_t *total)
{
	*total = 0;
	for (unsigned i = 0; i < MM_MAX_POOLS; i++) {
		per[i] = i < mm->nr_pools ? pool_resident_bytes(&mm->pools[i]) : 0;
		*total += per[i];
	}
}

static int bench_residency(uint64_t bytes, unsigned pct, uint64_t seed, struct resid *o)
{
	uint64_t pages = bytes / PAGE, nt = pages * pct / 100, t0;
	uint64_t *order = malloc(pages * sizeof(*order));
	unsigned char *touched = calloc(pages, 1);
	struct mm_config c = { .mem_size = bytes, .nr_nodes = 1 };
	struct mig_range all = { 0, bytes };
	struct mm mm;
	int r = -1;

	if (!order || !touched) {
		fprintf(stderr, "bench-discard: out of memory\n");
		goto out_free;
	}
	c.nodes[0] = (struct mm_guest_node){ .id = 0, .size = bytes, .host = 0 };
	if (mm_create(&mm, &c)) {
		fprintf(stderr, "bench-discard: mm_create: %s\n", mm.err);
		goto out_mm;
	}
	shuffle(order, pages, seed + 1);
	t0 = s2_now_ns();
	for (uint64_t j = 0; j < nt; j++) {
		uint64_t *w = mm_alias_at(&mm, order[j] * PAGE);

		touched[order[j]] = 1;
		w[0] = pattern(order[j] * PAGE);
		w[PAGE / 8 - 1] = ~pattern(order[j] * PAGE);
	}
	o->touch_ns = s2_now_ns() - t0;
	o->touched = nt * PAGE;
	snap(&mm, o->before, &o->total_before);

	t0 = s2_now_ns();
	if (mm_migrate(&mm, &all, 1, 1, &o->res)) {
		fprintf(stderr, "bench-discard: mm_migrate: %s\n", mm.err);
		goto out_mm;
	}
	o->migrate_ns = s2_now_ns() - t0;
	snap(&mm, o->migrated, &o->total_migrated);
	t0 = s2_now_ns();
	pthread_mutex_lock(&mm.lock);
	o->freed_frames = mm_flush_and_free(&mm);
	pthread_mutex_unlock(&mm.lock);
	o->flush_ns = s2_now_ns() - t0;
	snap(&mm, o->flushed, &o->total_flushed);
	o->nr_pools = mm.nr_pools;
	for (unsigned i = 0; i < mm.nr_pools; i++) {
		o->node[i] = mm.pools[i].node;
		o->real[i] = pool_node_is_real(mm.pools[i].node);
	}

	/* correctness: all moved, to node 1, touched data intact, the rest zero */
	if (o->res.pages != pages || o->res.aborted || o->res.pinned) {
		fail("residency: mm_migrate moved %" PRIu64 " of %" PRIu64 " pages (%" PRIu64
		     " aborted, %" PRIu64 " pinned)",
		     o->res.pages, pages, o->res.aborted, o->res.pinned);
		goto out_mm;
	}
	for (uint64_t p = 0; p < pages; p += POOL_HUGE_FRAMES)
		if (mm_gpa_node(&mm, p * PAGE) != 1) {
			fail("residency: GPA %#" PRIx64 " is not on host node 1 after migrating",
			     p * PAGE);
			goto out_mm;
		}
	uint64_t s = seed + 99;

	for (uint64_t p = 0; p < pages; p++) {
		const uint64_t *w;

		/* every touched page; a sample of the others (reading a hole fills it) */
		if (!touched[p] && rnd(&s) % 64)
			continue;
		w = mm_alias_at(&mm, p * PAGE);
		if (touched[p] ? w[0] != pattern(p * PAGE) || w[PAGE / 8 - 1] != ~pattern(p * PAGE)
			       : !page_zero((const unsigned char *)w)) {
			fail("residency: guest page %" PRIu64 " (%s) lost its contents in the "
			     "migration",
			     p, touched[p] ? "touched" : "untouched, not zero");
			goto out_mm;
		}
	}
	r = 0;
out_mm:
	mm_destroy(&mm);
out_free:
	free(touched);
	free(order);
	return r;
}

/* ---- output ------------------------------------------------------------------------ */

static const char *verdict(bool ok)
{
	return ok ? "PASS" : "MISS";
}

int main(int argc, char **argv)
{
	static const struct option opts[] = { { "mib", required_argument, NULL, 'm' },
					      { "repeat", required_argument, NULL, 'r' },
					      { "touched-pct", required_argument, NULL, 't' },
					      { "seed", required_argument, NULL, 's' },
					      { "json", no_argument, NULL, 'j' },
					      { "help", no_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	uint64_t mib = 1024, seed = 1, t_all = s2_now_ns();
	int repeat = 3, json = 0, c;
	unsigned pct = 25;
	struct dsamples d = { 0 };
	struct resid rs = { 0 };
	struct stat2 t[D_NR], setup[D_NR], sort, disc;

	while ((c = getopt_long(argc, argv, "m:r:t:s:jh", opts, NULL)) != -1) {
		if (c == 'm')
			mib = bench_opt_u64("bench-discard", "mib", optarg, 2, 16384);
		else if (c == 'r')
			repeat = (int)bench_opt_u64("bench-discard", "repeat", optarg, 1, 1000);
		else if (c == 't')
			pct = (unsigned)bench_opt_u64("bench-discard", "touched-pct", optarg, 1, 100);
		else if (c == 's')
			seed = bench_opt_u64("bench-discard", "seed", optarg, 0, UINT64_MAX);
		else if (c == 'j')
			json = 1;
		else {
			printf("usage: bench-discard [--mib N] [--repeat N] [--touched-pct P] "
			       "[--seed N] [--json]\n"
			       "  --mib N          guest RAM discarded and migrated (default 1024; "
			       "even, 2..16384)\n"
			       "  --repeat N       timed runs of each discard case (default 3): "
			       "min and median\n"
			       "  --touched-pct P  pages touched before the migration (default 25, "
			       "1..100)\n"
			       "  --seed N         shuffle and touch order (default 1)\n"
			       "  --json           one JSON object instead of the table\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (mib % 2) {
		fprintf(stderr, "bench-discard: --mib %" PRIu64 ": an even number of MiB\n", mib);
		return 2;
	}
	uint64_t bytes = mib * MIB, pages = bytes / PAGE;

	for (int k = 0; k < D_NR; k++) {
		d.ns[k] = calloc((size_t)repeat, sizeof(uint64_t));
		d.setup_ns[k] = calloc((size_t)repeat, sizeof(uint64_t));
	}
	d.sort_ns = calloc((size_t)repeat, sizeof(uint64_t));
	d.discard_ns = calloc((size_t)repeat, sizeof(uint64_t));
	if (bench_discard(bytes, repeat, seed, &d) || bench_residency(bytes, pct, seed, &rs))
		return 1;
	for (int k = 0; k < D_NR; k++) {
		t[k] = stat2(d.ns[k], repeat);
		setup[k] = stat2(d.setup_ns[k], repeat);
	}
	sort = stat2(d.sort_ns, repeat);
	disc = stat2(d.discard_ns, repeat);

	/* ratios of medians */
	double vs_madvise = t[D_MADVISE].median / t[D_S2VM].median;
	double vs_one = t[D_S2VM].median / t[D_FALLOC_ONE].median;
	double per_run = d.res.runs ? (double)d.calls[D_S2VM] / (double)d.res.runs : 0;
	double per_call = (double)d.calls[D_S2VM] / repeat;
	double resid = (double)rs.total_flushed / (double)rs.touched;
	bool ok_madvise = vs_madvise >= TARGET_VS_MADVISE;
	bool ok_one = vs_one <= TARGET_VS_ONE_FALLOCATE;
	bool ok_calls = per_run <= TARGET_CALLS_PER_RUN, ok_resid = resid <= TARGET_RESIDENT;
	bool acct = d.obs_punch == d.res.punch_calls && d.obs_alias == d.res.alias_calls &&
		    d.returned == d.res.pages * PAGE;
	double total_s = (double)(s2_now_ns() - t_all) / 1e9;

	if (json) {
		printf("{\"mib\":%" PRIu64 ",\"pages\":%" PRIu64 ",\"repeat\":%d,\"seed\":%" PRIu64
		       ",\"discard\":{\"cases\":[",
		       mib, pages, repeat, seed);
		for (int k = 0; k < D_NR; k++)
			printf("%s{\"name\":\"%s\",\"how\":\"%s\",\"min_ms\":%.3f,"
			       "\"median_ms\":%.3f,\"setup_median_ms\":%.3f,"
			       "\"host_calls_per_discard\":%.2f,\"gib_per_s\":%.2f,"
			       "\"ratio_to_s2vm\":%.3f}",
			       k ? "," : "", dnames[k], dhow[k], t[k].min / 1e6, t[k].median / 1e6,
			       setup[k].median / 1e6, (double)d.calls[k] / repeat,
			       (double)bytes / t[k].median * 1e9 / (1 << 30),
			       t[k].median / t[D_S2VM].median);
		printf("],\"s2vm_pfns_to_ranges_median_ms\":%.3f,"
		       "\"s2vm_mm_discard_median_ms\":%.3f,\"mm_create_ms\":%.3f,"
		       "\"result_per_discard\":{\"pages\":%" PRIu64 ",\"runs\":%.2f,"
		       "\"punch_calls\":%.2f,\"alias_calls\":%.2f,\"rehomed\":%" PRIu64
		       ",\"misplaced\":%" PRIu64 ",\"pinned\":%" PRIu64 "},"
		       "\"observed_punch_calls\":%.2f,\"observed_alias_calls\":%.2f,"
		       "\"returned_bytes\":%" PRIu64 ",\"failed_pages\":%" PRIu64
		       ",\"accounting_agrees\":%s,"
		       "\"resident_before_bytes\":%" PRIu64 ",\"resident_after_bytes\":%" PRIu64 ","
		       "\"madvise_loop_over_s2vm\":%.2f,\"target_madvise_loop_over_s2vm\":%.2f,"
		       "\"madvise_loop_over_s2vm_pass\":%s,"
		       "\"s2vm_over_one_fallocate\":%.3f,\"target_s2vm_over_one_fallocate\":%.2f,"
		       "\"s2vm_over_one_fallocate_pass\":%s,"
		       "\"host_calls_per_run\":%.2f,\"host_calls_per_discard\":%.2f,"
		       "\"target_host_calls_per_run\":%.1f,\"host_calls_per_run_pass\":%s},",
		       sort.median / 1e6, disc.median / 1e6, d.mm_build_ns / 1e6,
		       d.res.pages / (uint64_t)repeat, (double)d.res.runs / repeat,
		       (double)d.res.punch_calls / repeat, (double)d.res.alias_calls / repeat,
		       d.res.rehomed / (uint64_t)repeat, d.res.misplaced / (uint64_t)repeat,
		       d.res.pinned / (uint64_t)repeat,
		       (double)d.obs_punch / repeat, (double)d.obs_alias / repeat,
		       d.returned / (uint64_t)repeat, d.failed, acct ? "true" : "false",
		       d.resident_before, d.resident_after,
		       vs_madvise, TARGET_VS_MADVISE, ok_madvise ? "true" : "false", vs_one,
		       TARGET_VS_ONE_FALLOCATE, ok_one ? "true" : "false", per_run, per_call,
		       TARGET_CALLS_PER_RUN, ok_calls ? "true" : "false");
		printf("\"residency\":{\"touched_pct\":%u,\"touched_bytes\":%" PRIu64
		       ",\"from_node\":0,\"to_node\":1,\"migrated_pages\":%" PRIu64
		       ",\"migrate_ms\":%.3f,\"flush_ms\":%.3f,\"freed_frames\":%" PRIu64
		       ",\"pools\":[",
		       pct, rs.touched, rs.res.pages, rs.migrate_ns / 1e6, rs.flush_ns / 1e6,
		       rs.freed_frames);
		for (unsigned i = 0; i < rs.nr_pools; i++)
			printf("%s{\"host_node\":%u,\"real\":%s,\"before_bytes\":%" PRIu64
			       ",\"after_migrate_bytes\":%" PRIu64 ",\"after_flush_bytes\":%" PRIu64
			       "}",
			       i ? "," : "", rs.node[i], rs.real[i] ? "true" : "false",
			       rs.before[i], rs.migrated[i], rs.flushed[i]);
		printf("],\"resident_bytes\":%" PRIu64 ",\"resident_over_touched\":%.3f,"
		       "\"target_resident_over_touched\":%.2f,\"resident_over_touched_pass\":%s},"
		       "\"total_s\":%.1f}\n",
		       rs.total_flushed, resid, TARGET_RESIDENT, ok_resid ? "true" : "false",
		       total_s);
		return 0;
	}

	printf("discard benchmark: %" PRIu64 " MiB reported as %" PRIu64
	       " shuffled 4 KiB PFNs (seed %" PRIu64 "), %d runs each, interleaved\n",
	       mib, pages, seed, repeat);
	printf("%-15s %-43s %9s %9s %8s %11s %10s %9s\n", "case", "what", "min ms", "median ms",
	       "GiB/s", "calls/disc", "setup ms", "x s2vm");
	for (int k = 0; k < D_NR; k++)
		printf("%-15s %-43s %9.2f %9.2f %8.2f %11.0f %10.1f %9.2f\n", dnames[k], dhow[k],
		       t[k].min / 1e6, t[k].median / 1e6,
		       (double)bytes / t[k].median * 1e9 / (1 << 30), (double)d.calls[k] / repeat,
		       setup[k].median / 1e6, t[k].median / t[D_S2VM].median);
	printf("  s2vm split (median): mm_pfns_to_ranges %.2f ms, mm_discard %.2f ms; setup = "
	       "touching %" PRIu64 " MiB (+ mm_create %.1f ms in run 1)\n",
	       sort.median / 1e6, disc.median / 1e6, mib, d.mm_build_ns / 1e6);
	printf("  s2vm per discard: %" PRIu64 " pages, %.1f runs, %.1f punch calls, %.1f alias "
	       "calls, %" PRIu64 " rehomed, %" PRIu64 " misplaced, %" PRIu64 " pinned\n",
	       d.res.pages / (uint64_t)repeat, (double)d.res.runs / repeat,
	       (double)d.res.punch_calls / repeat, (double)d.res.alias_calls / repeat,
	       d.res.rehomed / (uint64_t)repeat, d.res.misplaced / (uint64_t)repeat,
	       d.res.pinned / (uint64_t)repeat);
	printf("  checked every run: pool resident %.1f -> %.1f MiB, %d sampled pages read zero "
	       "through the alias\n",
	       (double)d.resident_before / MIB, (double)d.resident_after / MIB, SAMPLES);
	if (!acct)
		printf("  WARN: counters disagree over all runs: pools saw %" PRIu64
		       " punch calls, the alias %" PRIu64
		       " calls, mm->discard.returned_bytes %" PRIu64
		       " MiB; discard_result says %" PRIu64 ", %" PRIu64 ", %" PRIu64 " MiB\n",
		       d.obs_punch, d.obs_alias, d.returned / MIB, d.res.punch_calls,
		       d.res.alias_calls, d.res.pages * PAGE / MIB);
	printf("  madvise_loop / s2vm        %8.2f x   (target >= %.0f x)     %s\n", vs_madvise,
	       TARGET_VS_MADVISE, verdict(ok_madvise));
	printf("  s2vm / one_fallocate       %8.2f x   (target <= %.2f x)  %s\n", vs_one,
	       TARGET_VS_ONE_FALLOCATE, verdict(ok_one));
	printf("  s2vm host calls per run    %8.2f     (target <= %.0f)       %s  (%.2f per "
	       "mm_discard call)\n",
	       per_run, TARGET_CALLS_PER_RUN, verdict(ok_calls), per_call);

	printf("\nresidency after migration: %" PRIu64 " MiB guest node on host node 0, %u%% of "
	       "its 4 KiB pages touched (%.1f MiB, seeded random), all moved to host node 1\n",
	       mib, pct, (double)rs.touched / MIB);
	for (unsigned i = 0; i < rs.nr_pools; i++)
		if (!rs.real[i])
			printf("  host node %u is emulated (pool_node_is_real(%u) = false: this "
			       "host has fewer NUMA nodes): its own memfd, no physical distance\n",
			       rs.node[i], rs.node[i]);
	printf("  mm_migrate %.1f ms (%" PRIu64 " pages), mm_flush_and_free %.1f ms (%" PRIu64
	       " frames freed)\n",
	       rs.migrate_ns / 1e6, rs.res.pages, rs.flush_ns / 1e6, rs.freed_frames);
	printf("  %-10s %-5s %14s %18s %16s\n", "host node", "real", "before MiB",
	       "after migrate MiB", "after flush MiB");
	for (unsigned i = 0; i < rs.nr_pools; i++)
		printf("  %-10u %-5s %14.1f %18.1f %16.1f\n", rs.node[i], rs.real[i] ? "yes" : "no",
		       (double)rs.before[i] / MIB, (double)rs.migrated[i] / MIB,
		       (double)rs.flushed[i] / MIB);
	printf("  %-10s %-5s %14.1f %18.1f %16.1f\n", "total", "", (double)rs.total_before / MIB,
	       (double)rs.total_migrated / MIB, (double)rs.total_flushed / MIB);
	printf("  resident / touched         %8.2f x   (target <= %.1f x)    %s\n", resid,
	       TARGET_RESIDENT, verdict(ok_resid));
	printf("total %.1f s\n", total_s);
	return 0;
}
