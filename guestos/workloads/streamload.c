// SPDX-License-Identifier: MIT
/*
 * streamload.elf [seconds=N] [size=SIZE] [lab=0|1]
 *
 * STREAM-style memory bandwidth for the lab: three arrays of doubles filling SIZE bytes
 * of the heap (default: all of it) and the four kernels copy (c = a), scale (b = s*c),
 * add (c = a + b) and triad (a = b + s*c), run in turn, each over the whole arrays, for N
 * seconds. Bytes are counted as STREAM does (16 per element for copy and scale, 24 for
 * add and triad). Reports each kernel's mean and best-pass MiB/s; with lab=1 (default)
 * also the time of every 64 KiB block of a kernel (histogram "block64k"; a migration
 * stall lands in one) and the bytes moved per 10 ms window, in the results blob.
 */
#include "guest.h"
#include "lab.h"

#define BLOCK (65536u / sizeof(double)) /* elements per timed block */

static struct lab lab;
static struct lab_hist block_hist;

static const char *const kname[4] = { "copy", "scale", "add", "triad" };
static const unsigned kbytes[4] = { 16, 16, 24, 24 };

/* One kernel @k over elements [i, i + n). */
static void kernel(unsigned k, double *a, double *b, double *c, uint64_t i, uint64_t n)
{
	const double s = 3.0;

	switch (k) {
	case 0:
		for (uint64_t j = i; j < i + n; j++)
			c[j] = a[j];
		break;
	case 1:
		for (uint64_t j = i; j < i + n; j++)
			b[j] = s * c[j];
		break;
	case 2:
		for (uint64_t j = i; j < i + n; j++)
			c[j] = a[j] + b[j];
		break;
	default:
		for (uint64_t j = i; j < i + n; j++)
			a[j] = b[j] + s * c[j];
		break;
	}
}

int main(int argc, char **argv)
{
	uint64_t seconds = 3, size = (g_boot->mem_size - g_boot->heap_start) & ~4095ull;
	uint64_t n, t, end, passes[4] = { 0 }, cycles[4] = { 0 }, best[4], total = 0;
	double *a, *b, *c;
	const char *arg;

	if ((arg = g_arg(argc, argv, "seconds")) && (g_parse_u64(arg, &seconds) || !seconds)) {
		g_printf("streamload: seconds=%s is not a positive number\n", arg);
		return 2;
	}
	if ((arg = g_arg(argc, argv, "size")) &&
	    (g_parse_size(arg, &size) || size < 3 * 65536 ||
	     size > g_boot->mem_size - g_boot->heap_start)) {
		g_printf("streamload: size=%s: from 192K to the guest's heap\n", arg);
		return 2;
	}
	if (lab_start(&lab, "streamload", argc, argv))
		return 2;
	lab.unit = 1; /* windows count bytes */
	lab_hist_reset(&block_hist);
	n = size / 3 / sizeof(double) / BLOCK * BLOCK;
	a = (double *)(uintptr_t)g_boot->heap_start;
	b = a + n;
	c = b + n;
	for (uint64_t j = 0; j < n; j++) {
		a[j] = 1.0;
		b[j] = 2.0;
		c[j] = 0.0;
	}
	for (unsigned k = 0; k < 4; k++)
		best[k] = UINT64_MAX;
	t = g_rdtsc();
	end = t + lab_ns_to_tsc(&lab, seconds * 1000000000ull);
	lab_begin(&lab, t);
	for (unsigned k = 0; t < end; k = (k + 1) % 4) {
		uint64_t start = t, prev = t;

		for (uint64_t i = 0; i < n; i += BLOCK) {
			kernel(k, a, b, c, i, BLOCK);
			if (lab.on) {
				t = g_rdtsc();
				lab_hist_record(&block_hist, t - prev);
				lab_tick(&lab, t, (uint64_t)BLOCK * kbytes[k]);
				prev = t;
			}
		}
		t = g_rdtsc();
		passes[k]++;
		cycles[k] += t - start;
		if (t - start < best[k])
			best[k] = t - start;
		total += n * kbytes[k];
	}
	lab_end(&lab, t);
	{
		double npc = lab_ns_per_cycle(&lab), secs = lab_seconds(&lab);
		char name[40];

		g_printf("streamload: %lu MiB arrays x3, %lu passes in %lu ms\n",
			 (unsigned long)(n * sizeof(double) >> 20),
			 (unsigned long)(passes[0] + passes[1] + passes[2] + passes[3]),
			 (unsigned long)(secs * 1000));
		lab_scalar(&lab, "streamload_mib_per_s", (double)total / secs / 1048576.0, "MiB/s");
		for (unsigned k = 0; k < 4; k++) {
			double bytes = (double)n * kbytes[k];

			if (!passes[k])
				continue;
			g_snprintf(name, sizeof(name), "stream_%s_mib_per_s", kname[k]);
			lab_scalar(&lab, name,
				   bytes * (double)passes[k] / ((double)cycles[k] * npc / 1e9) / 1048576.0,
				   "MiB/s");
			g_snprintf(name, sizeof(name), "stream_%s_best", kname[k]);
			lab_scalar(&lab, name, bytes / ((double)best[k] * npc / 1e9) / 1048576.0,
				   "MiB/s");
		}
		if (lab.on)
			lab_add_hist(&lab, "block64k", &block_hist);
		lab_send(&lab);
	}
	return 0;
}
