// SPDX-License-Identifier: MIT
/*
 * bench-frame [--gib N] [--repeat N] [--json]
 *
 * The frame table's HVO: resident bytes per GiB of guest for an N GiB (default 1) guest
 * mapped in 2 MiB runs (optimised), the same table unoptimised (every chunk's records on
 * private pages: the baseline, measured in the same run), and a 4 KiB-backed guest (no
 * run is one 2 MiB frame); then the time of one restore (a 4 KiB record of an optimised
 * 2 MiB run written: allocate, copy, map read-only, read-write) and one optimise (the
 * run one 2 MiB frame again: zero, read-only, shared page, free), median of --repeat.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench_args.h"
#include "mm/frame.h"

#define MIB2 (2ull << 20)

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct table_fig {
	double mib_per_gib;
	uint64_t resident, setup_ns;
	struct frame_table_stats st;
};

/* Build an N GiB table: @pfn0 0 gives 2 MiB runs, 1 gives 4 KiB records only. */
static int table_figure(uint64_t gib, uint64_t pfn0, bool no_optimise, struct table_fig *out)
{
	struct frame_table t;
	uint64_t t0 = now_ns();

	if (frame_table_init(&t, gib << 30))
		return -1;
	t.no_optimise = no_optimise;
	for (uint64_t g = 0; g < gib << 30; g += MIB2) /* one call per 2 MiB run */
		if (frame_table_set(&t, g, MIB2, 0, pfn0 + g / 4096)) {
			frame_table_destroy(&t);
			return -1;
		}
	out->setup_ns = now_ns() - t0;
	frame_table_get_stats(&t, &out->st);
	out->resident = out->st.resident_bytes;
	out->mib_per_gib = (double)out->resident / (1 << 20) / (double)gib;
	frame_table_destroy(&t);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = { { "gib", required_argument, NULL, 'g' },
					      { "repeat", required_argument, NULL, 'r' },
					      { "json", no_argument, NULL, 'j' },
					      { "help", no_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	uint64_t gib = 1, *rest, *opt, *both;
	int repeat = 200, json = 0, c;
	struct table_fig huge, base, split;
	struct frame_table t;

	while ((c = getopt_long(argc, argv, "g:r:jh", opts, NULL)) != -1) {
		if (c == 'g')
			gib = bench_opt_u64("bench-frame", "gib", optarg, 1, 1024);
		else if (c == 'r')
			repeat = (int)bench_opt_u64("bench-frame", "repeat", optarg, 1, 1000000);
		else if (c == 'j')
			json = 1;
		else {
			printf("usage: bench-frame [--gib N] [--repeat N] [--json]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (table_figure(gib, 0, false, &huge) || table_figure(gib, 0, true, &base) ||
	    table_figure(gib, 1, false, &split)) {
		fprintf(stderr, "bench-frame: cannot build a %" PRIu64 " GiB frame table\n", gib);
		return 1;
	}

	/* optimise + restore of one 2 MiB run, timed apart from the setup */
	rest = calloc((size_t)repeat, sizeof(*rest));
	opt = calloc((size_t)repeat, sizeof(*opt));
	both = calloc((size_t)repeat, sizeof(*both));
	if (!rest || !opt || !both || frame_table_init(&t, gib << 30) ||
	    frame_table_set(&t, 0, gib << 30, 0, 0)) {
		fprintf(stderr, "bench-frame: setup failed\n");
		return 1;
	}
	t.grace_ns = 0; /* optimise at once: the sequence itself is what is timed */
	for (int i = 0; i < repeat; i++) {
		uint64_t run = (uint64_t)i % ((gib << 30) / MIB2), g = run * MIB2, t0, t1, t2;

		t0 = now_ns();
		if (frame_table_set(&t, g + 9 * 4096, 4096, 0, g / 4096 + 9)) /* restore */
			return 1;
		t1 = now_ns();
		if (frame_table_set(&t, g, MIB2, 0, g / 4096)) /* optimise */
			return 1;
		t2 = now_ns();
		rest[i] = t1 - t0;
		opt[i] = t2 - t1;
		both[i] = t2 - t0;
	}
	{
		struct frame_table_stats st;

		frame_table_get_stats(&t, &st);
		if (st.restores != (uint64_t)repeat || st.optimises != (uint64_t)repeat) {
			fprintf(stderr, "bench-frame: %" PRIu64 " restores, %" PRIu64
					" optimises for %d rounds\n",
				st.restores, st.optimises, repeat);
			return 1;
		}
	}
	frame_table_destroy(&t);
	qsort(rest, (size_t)repeat, sizeof(*rest), cmp_u64);
	qsort(opt, (size_t)repeat, sizeof(*opt), cmp_u64);
	qsort(both, (size_t)repeat, sizeof(*both), cmp_u64);

	if (json) {
		printf("{\"gib\":%" PRIu64 ",\"repeat\":%d,"
		       "\"frame_table_resident_mib_per_gib\":{\"huge_2m_runs\":%.4f,"
		       "\"unoptimised_baseline\":%.4f,\"split_4k\":%.4f},"
		       "\"targets_mib_per_gib\":{\"huge_2m_runs\":0.5,\"split_4k\":4},"
		       "\"runs_optimised\":%" PRIu64 ",\"runs_private_split\":%" PRIu64 ","
		       "\"restore_us\":{\"median\":%.2f,\"p90\":%.2f},"
		       "\"optimise_us\":{\"median\":%.2f,\"p90\":%.2f},"
		       "\"optimise_plus_restore_us\":{\"median\":%.2f,\"p90\":%.2f},"
		       "\"setup_ms\":{\"huge\":%.2f,\"baseline\":%.2f,\"split\":%.2f}}\n",
		       gib, repeat, huge.mib_per_gib, base.mib_per_gib, split.mib_per_gib,
		       huge.st.runs_optimised, split.st.runs_private, rest[repeat / 2] / 1e3,
		       rest[repeat * 9 / 10] / 1e3, opt[repeat / 2] / 1e3, opt[repeat * 9 / 10] / 1e3,
		       both[repeat / 2] / 1e3, both[repeat * 9 / 10] / 1e3, huge.setup_ns / 1e6,
		       base.setup_ns / 1e6, split.setup_ns / 1e6);
	} else {
		printf("frame table, %" PRIu64 " GiB guest             resident      per GiB   target\n",
		       gib);
		printf("  2 MiB runs, optimised (HVO)      %9.3f MiB  %7.4f MiB  <= 0.5 MiB\n",
		       huge.resident / 1048576.0, huge.mib_per_gib);
		printf("  2 MiB runs, unoptimised baseline %9.3f MiB  %7.4f MiB  (baseline)\n",
		       base.resident / 1048576.0, base.mib_per_gib);
		printf("  4 KiB-backed (split)             %9.3f MiB  %7.4f MiB  <= 4 MiB\n",
		       split.resident / 1048576.0, split.mib_per_gib);
		printf("  saved by HVO: %.1f%% of the baseline\n",
		       100.0 * (1.0 - (double)huge.resident / (double)base.resident));
		printf("one 2 MiB run, %d rounds           median       p90\n", repeat);
		printf("  restore                          %7.2f us  %7.2f us\n", rest[repeat / 2] / 1e3,
		       rest[repeat * 9 / 10] / 1e3);
		printf("  optimise                         %7.2f us  %7.2f us\n", opt[repeat / 2] / 1e3,
		       opt[repeat * 9 / 10] / 1e3);
		printf("  optimise + restore               %7.2f us  %7.2f us\n", both[repeat / 2] / 1e3,
		       both[repeat * 9 / 10] / 1e3);
	}
	free(rest);
	free(opt);
	free(both);
	return 0;
}
