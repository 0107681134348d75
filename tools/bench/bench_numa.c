// SPDX-License-Identifier: MIT
/*
 * tools/dev bench numa [--gib N] [--repeat N] [--json]
 *
 * Time to build and map an N GiB (default 4) guest over 2 host node pools with the memory
 * manager (pools, frame table, stage-2 map, alias materialised in maximal runs), its
 * alias mmap calls and frame-table bytes per GiB. Baseline in the same run: what a
 * single-memfd VMM does (memfd_create + ftruncate + one mmap). KVM is not involved.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "bench_args.h"
#include "mm/mm.h"
#include "s2vm/clock.h"


static uint64_t baseline_ns(uint64_t size)
{
	uint64_t t0 = s2_now_ns();
	int fd = memfd_create("bench-baseline", MFD_CLOEXEC);
	void *p;

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		return 0;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	uint64_t t = s2_now_ns() - t0;

	if (p != MAP_FAILED)
		munmap(p, size);
	close(fd);
	return t;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = { { "gib", required_argument, NULL, 'g' },
					      { "repeat", required_argument, NULL, 'r' },
					      { "json", no_argument, NULL, 'j' },
					      { "help", no_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	uint64_t gib = 4, best = UINT64_MAX, base = UINT64_MAX, calls = 0, ftb = 0, ftr = 0, s2b = 0;
	int repeat = 5, json = 0, c;
	unsigned emulated = 0;

	while ((c = getopt_long(argc, argv, "g:r:jh", opts, NULL)) != -1) {
		if (c == 'g')
			gib = bench_opt_u64("bench-numa", "gib", optarg, 1, 64);
		else if (c == 'r')
			repeat = (int)bench_opt_u64("bench-numa", "repeat", optarg, 1, 1000);
		else if (c == 'j')
			json = 1;
		else {
			printf("usage: bench-numa [--gib N] [--repeat N] [--json]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	for (int i = 0; i < repeat; i++) {
		struct mm_config cfg = { .mem_size = gib << 30, .nr_nodes = 2 };
		struct mm mm;
		uint64_t b;

		cfg.nodes[0] = (struct mm_guest_node){ .id = 0, .size = gib << 29, .host = 0 };
		cfg.nodes[1] = (struct mm_guest_node){ .id = 1, .size = gib << 29, .host = 1 };
		if (mm_create(&mm, &cfg)) {
			fprintf(stderr, "bench-numa: %s\n", mm.err);
			mm_destroy(&mm);
			return 1;
		}
		if (mm.build_ns < best)
			best = mm.build_ns;
		calls = mm.alias_stats.mmap_calls;
		ftb = frame_table_bytes(&mm.ft);
		ftr = frame_table_resident_bytes(&mm.ft);
		s2b = s2_map_table_bytes(&mm.map);
		emulated = 0;
		for (unsigned p = 0; p < mm.nr_pools; p++)
			emulated += mm.pools[p].emulated;
		mm_destroy(&mm);
		b = baseline_ns(gib << 30);
		if (b && b < base)
			base = b;
	}
	double per_gib = (double)ftb / (double)gib / (1 << 20);
	double res_gib = (double)ftr / (double)gib / (1 << 20);

	if (json) {
		printf("{\"gib\":%" PRIu64 ",\"nodes\":2,\"emulated_nodes\":%u,\"build_ms\":%.3f,"
		       "\"baseline_single_memfd_ms\":%.3f,\"ratio_to_baseline\":%.1f,"
		       "\"alias_mmap_calls\":%" PRIu64 ",\"frame_table_mib_per_gib\":%.2f,"
		       "\"frame_table_resident_mib_per_gib\":%.2f,"
		       "\"s2_table_bytes\":%" PRIu64 ",\"target_frame_table_mib_per_gib\":4,"
		       "\"linux_struct_page_mib_per_gib\":16}\n",
		       gib, emulated, best / 1e6, base / 1e6, (double)best / (double)base, calls,
		       per_gib, res_gib, s2b);
		return 0;
	}
	printf("guest memory build benchmark: %" PRIu64 " GiB over 2 host nodes (%u emulated), best of %d\n",
	       gib, emulated, repeat);
	printf("  build + map (pools, frame table, stage-2, alias)  %8.3f ms\n", best / 1e6);
	printf("  baseline: one memfd + one mmap                    %8.3f ms  (x%.1f)\n", base / 1e6,
	       (double)best / (double)base);
	printf("  alias mmap calls                                  %8" PRIu64 "\n", calls);
	printf("  frame table                                       %8.2f MiB per GiB (target <= 4; Linux struct page: 16)\n",
	       per_gib);
	printf("  frame table resident (zero-page tails)            %8.2f MiB per GiB\n", res_gib);
	printf("  stage-2 tables                                    %8" PRIu64 " KiB\n", s2b >> 10);
	return 0;
}
