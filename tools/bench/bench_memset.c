// SPDX-License-Identifier: MIT
/*
 * bench-memset [--size SIZE] [--passes N] [--repeat N] [--fill memset|pattern] [--json]
 *
 * The host-side baseline for memtouch.elf: what the host itself writes per second into
 * memory backed the way s2vm backs guest RAM. Each repetition, untimed setup: a fresh
 * memfd of SIZE bytes (ftruncate, no pages yet) mapped MAP_SHARED | MAP_NORESERVE, as
 * mm/pool.c maps a host node's pool (which it also mbind()s to its node: on a one-node
 * host that changes nothing; on more, this baseline runs where the kernel places it).
 * Then PASSES timed write passes over all SIZE bytes, each followed by an untimed read
 * of every word (memtouch verifies between its write passes). The first pass pays the
 * first-touch page faults on the memfd, exactly as the guest's first pass does on s2vm's
 * alias of its memfd; later passes write resident memory.
 * Reports MiB/s = SIZE * PASSES / (sum of the write-pass times), CLOCK_MONOTONIC.
 *
 *   --fill memset   memset() each pass (the baseline the target is stated against)
 *   --fill pattern  memtouch's own loop: one volatile 8-byte store of a computed pattern
 *                   per word, so a gap between guest and memset can be split into what
 *                   the code costs and what running it as a guest costs
 *
 * With --repeat N the median over N repetitions is reported (each with its own memfd).
 * --json prints one object: write_mibps, first_pass_mibps, later_passes_mibps (0 when
 * PASSES is 1), write_ns (median, all passes), setup_ns (median, untimed part).
 * Exits 2 on bad options, 1 if setup fails.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench_args.h"
#include "s2vm/clock.h"

/* One repetition's result; times in ns. */
struct memset_res {
	uint64_t setup_ns;	/* memfd_create + ftruncate + mmap */
	uint64_t write_ns;	/* sum over passes of the timed write */
	uint64_t first_pass_ns; /* the first pass alone (includes first-touch faults) */
	uint64_t checksum;	/* xor of the untimed read-backs, keeps them observable */
};

/* memtouch.elf's pattern, kept identical so the "pattern" fill runs the same code. */
static inline uint64_t pattern(uint64_t i, uint64_t seed)
{
	uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull ^ seed;

	return x ^ (x >> 29);
}

/*
 * One repetition over a fresh memfd of @size bytes: @passes timed write passes with
 * @use_pattern choosing the fill. Returns 0 or -errno (setup failed, @r untouched).
 */
static int bench_memset_run(uint64_t size, uint64_t passes, int use_pattern, struct memset_res *r)
{
	uint64_t t0 = s2_now_ns(), words = size / 8, sum = 0;
	volatile uint64_t *v;
	char *p;
	int fd, err;

	fd = memfd_create("bench-memset", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0)
		goto err_close;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
	if (p == MAP_FAILED)
		goto err_close;
	r->setup_ns = s2_now_ns() - t0;
	r->write_ns = 0;
	v = (volatile uint64_t *)p;
	for (uint64_t pass = 0; pass < passes; pass++) {
		uint64_t s = 0x5eed + pass * 0x1000193ull, t;

		t = s2_now_ns();
		if (use_pattern)
			for (uint64_t i = 0; i < words; i++)
				v[i] = pattern(i, s);
		else
			memset(p, (int)(0x5a + pass), size);
		t = s2_now_ns() - t;
		r->write_ns += t;
		if (pass == 0)
			r->first_pass_ns = t;
		for (uint64_t i = 0; i < words; i++) /* untimed, like memtouch's verify */
			sum ^= v[i];
	}
	r->checksum = sum;
	munmap(p, size);
	close(fd);
	return 0;
err_close:
	err = -errno;
	close(fd);
	return err;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t median_u64(uint64_t *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_u64);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double mibps(uint64_t bytes, uint64_t ns)
{
	return ns ? (double)bytes / (1 << 20) / ((double)ns / 1e9) : 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"size", required_argument, NULL, 's'},
					     {"passes", required_argument, NULL, 'p'},
					     {"repeat", required_argument, NULL, 'r'},
					     {"fill", required_argument, NULL, 'f'},
					     {"json", no_argument, NULL, 'j'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	uint64_t size = 256ull << 20, passes = 3, *w, *f, *l, *s, x = 0;
	int repeat = 1, json = 0, use_pattern = 0, c;
	struct memset_res r = {0};

	while ((c = getopt_long(argc, argv, "s:p:r:f:jh", opts, NULL)) != -1) {
		if (c == 's' && !bench_parse_size(optarg, &size))
			continue;
		if (c == 'p')
			passes = bench_opt_u64("bench-memset", "passes", optarg, 1, 1000000);
		else if (c == 'r')
			repeat = (int)bench_opt_u64("bench-memset", "repeat", optarg, 1, 1000);
		else if (c == 'f' && (!strcmp(optarg, "memset") || !strcmp(optarg, "pattern")))
			use_pattern = !strcmp(optarg, "pattern");
		else if (c == 'j')
			json = 1;
		else {
			printf("usage: bench-memset [--size SIZE] [--passes N] [--repeat N] "
			       "[--fill memset|pattern] [--json]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (size < 4096 || size % 8 || passes < 1 || repeat < 1 || repeat > 1000) {
		fprintf(stderr, "bench-memset: --size >= 4K (multiple of 8), --passes >= 1, "
				"--repeat 1..1000\n");
		return 2;
	}
	w = calloc((size_t)repeat * 4, sizeof(*w));
	if (!w)
		return 1;
	f = w + repeat; /* first pass */
	l = f + repeat; /* later passes */
	s = l + repeat; /* setup */
	for (int i = 0; i < repeat; i++) {
		int err = bench_memset_run(size, passes, use_pattern, &r);

		if (err) {
			fprintf(stderr, "bench-memset: %" PRIu64 " byte memfd: %s\n", size,
				strerror(-err));
			free(w);
			return 1;
		}
		w[i] = r.write_ns;
		f[i] = r.first_pass_ns;
		l[i] = r.write_ns - r.first_pass_ns;
		s[i] = r.setup_ns;
		x ^= r.checksum;
	}
	{
		uint64_t mw = median_u64(w, repeat), mf = median_u64(f, repeat);
		uint64_t ml = median_u64(l, repeat), ms = median_u64(s, repeat);
		double rate = mibps(size * passes, mw), first = mibps(size, mf);
		double rest = passes > 1 ? mibps(size * (passes - 1), ml) : 0;

		if (json)
			printf("{\"fill\":\"%s\",\"size_bytes\":%" PRIu64 ",\"passes\":%" PRIu64
			       ",\"repeat\":%d,\"write_mibps\":%.1f,\"first_pass_mibps\":%.1f,"
			       "\"later_passes_mibps\":%.1f,\"write_ns\":%" PRIu64
			       ",\"setup_ns\":%" PRIu64 ",\"checksum\":%" PRIu64 "}\n",
			       use_pattern ? "pattern" : "memset", size, passes, repeat, rate,
			       first, rest, mw, ms, x);
		else {
			printf("bench-memset: %s, %" PRIu64 " MiB x %" PRIu64
			       " passes, median of %d: %.1f MiB/s (first pass %.1f MiB/s",
			       use_pattern ? "pattern" : "memset", size >> 20, passes, repeat, rate,
			       first);
			if (passes > 1)
				printf(", later passes %.1f MiB/s", rest);
			printf("; setup %.3f ms)\n", (double)ms / 1e6);
		}
	}
	free(w);
	return 0;
}
