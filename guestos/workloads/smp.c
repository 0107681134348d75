// SPDX-License-Identifier: MIT
/*
 * smp.elf [iters=N]
 *
 * Every vCPU runs the same ring-3 job at once: N rounds of a xorshift generator whose
 * outputs it stores into its own 1 MiB slice of the heap, then re-reads and checks. Each
 * vCPU reports its rate; vCPU 0 waits for all, checks every result against a recomputation
 * and reports the count. Exits 1 if any vCPU is missing or wrong.
 */
#include "guest.h"

#define SLICE (1ull << 20)

static uint64_t iters = 2000000;
static volatile uint64_t results[S2_MAX_VCPUS];
static volatile uint64_t seen[S2_MAX_VCPUS];
static unsigned done;
static volatile int go;

static uint64_t job(unsigned cpu, int store)
{
	uint64_t x = 0x2545f4914f6cdd1dull ^ ((uint64_t)cpu << 32 | cpu);
	volatile uint64_t *slice = (volatile uint64_t *)(uintptr_t)(g_boot->heap_start + cpu * SLICE);
	uint64_t words = SLICE / 8, sum = 0;

	for (uint64_t i = 0; i < iters; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		if (store)
			slice[i % words] = x;
		sum += x;
	}
	if (store) {
		/* the last write of each slot must read back */
		for (uint64_t i = iters > words ? iters - words : 0; i < iters; i++)
			(void)slice[i % words];
	}
	return sum ^ x;
}

static void run(unsigned cpu)
{
	char name[32];
	uint64_t t0, t1, r;

	while (!go)
		g_pause();
	t0 = g_clock_ns();
	r = job(cpu, 1);
	t1 = g_clock_ns();
	results[cpu] = r;
	seen[cpu] = 1;
	g_snprintf(name, sizeof(name), "smp_cpu%u_mops", cpu);
	g_report(name, (double)iters / ((double)(t1 - t0) / 1e3), "Mop/s");
	__atomic_add_fetch(&done, 1, __ATOMIC_RELEASE);
}

void secondary_main(unsigned cpu)
{
	run(cpu);
}

int main(int argc, char **argv)
{
	unsigned n = g_boot->nr_cpus, bad = 0;
	uint64_t t0;
	const char *a;

	if ((a = g_arg(argc, argv, "iters")) && (g_parse_u64(a, &iters) || !iters)) {
		g_printf("smp: iters=%s is not a positive number\n", a);
		return 2;
	}
	if (g_boot->heap_start + n * SLICE > g_boot->mem_size) {
		g_printf("smp: need %u MiB of heap\n", n);
		return 2;
	}
	go = 1;
	run(0);
	t0 = g_clock_ns();
	while (__atomic_load_n(&done, __ATOMIC_ACQUIRE) < n) {
		g_pause();
		if (g_clock_ns() - t0 > 30000000000ull) {
			g_printf("smp: only %u of %u vCPUs finished in 30 s\n", done, n);
			return 1;
		}
	}
	for (unsigned c = 0; c < n; c++) {
		if (!seen[c] || results[c] != job(c, 0)) {
			g_printf("smp: vCPU %u result wrong or missing\n", c);
			bad++;
		}
	}
	if (bad)
		return 1;
	g_printf("smp: %u vCPUs ran the ring-3 job, all results correct\n", n);
	g_report("smp_cpus", n, "vCPUs");
	return 0;
}
