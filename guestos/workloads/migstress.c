// SPDX-License-Identifier: MIT
/*
 * migstress.elf [seconds=N] [min_passes=N] [size=SIZE] [migrate=1] [refusals=ok]
 *
 * Every vCPU owns a slice of the heap. Pass after pass it checks that each word still
 * holds what it wrote last pass, then writes the next sequence number there, while the
 * VMM moves those same pages between host nodes (--churn, or with migrate=1 vCPU 0 also
 * asks for migrations itself through the migrate hypercall; with refusals=ok a migration
 * the host refuses for want of memory, -ENOMEM or -ENOSPC, is counted, not an error). After N seconds,
 * and once it has done min_passes passes (default 2: the second checks words written while
 * pages moved; a vCPU slowed down, e.g. by a sanitized VMM's slow copies, keeps going for
 * at most MIN_PASSES_GRACE_S more seconds to reach them), every vCPU checks its whole
 * slice once more and reports. Any lost or torn write is a mismatch:
 * the guest exits 1, as it does when a vCPU checked no words at all (an empty slice
 * proves nothing). vCPU 0 prints the summary and every vCPU's words and passes once all
 * are done.
 */
#include "guest.h"

/* Set by main() before the release store of go; read by every vCPU after acquiring go. */
#define MIN_PASSES_GRACE_S 20

static uint64_t seconds = 3, min_passes = 2, size, migrate, refusals_ok, refused;
static unsigned go, done;
/* What each vCPU did, indexed by cpu; read by vCPU 0 after acquiring done == nr_cpus. */
static uint64_t cpu_bad[S2_MAX_VCPUS], cpu_passes[S2_MAX_VCPUS], cpu_words[S2_MAX_VCPUS];

static inline uint64_t val(unsigned cpu, uint64_t i, uint64_t pass)
{
	return (pass << 40) ^ (i * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)cpu << 32) ^ 0x5a5a;
}

static void stress(unsigned cpu)
{
	volatile uint64_t *w;
	uint64_t per, t_end, t_cap, now, pass = 0, bad = 0, node = 0;

	while (!__atomic_load_n(&go, __ATOMIC_ACQUIRE))
		g_pause();
	per = size / g_boot->nr_cpus / 8;
	w = (volatile uint64_t *)(uintptr_t)(g_boot->heap_start + cpu * per * 8);
	for (uint64_t i = 0; i < per; i++)
		w[i] = val(cpu, i, 0);
	t_end = g_clock_ns() + seconds * 1000000000ull;
	t_cap = t_end + MIN_PASSES_GRACE_S * 1000000000ull;
	while (!bad) {
		pass++;
		for (uint64_t i = 0; i < per; i++) {
			uint64_t x = w[i];

			if (x != val(cpu, i, pass - 1)) {
				if (!bad)
					g_printf("migstress: vCPU %u pass %lu: word %lu at GPA %#lx holds %#lx, wrote %#lx\n",
						 cpu, (unsigned long)pass, (unsigned long)i,
						 (unsigned long)(uintptr_t)&w[i], (unsigned long)x,
						 (unsigned long)val(cpu, i, pass - 1));
				bad++;
			}
			w[i] = val(cpu, i, pass);
		}
		if (cpu == 0 && migrate) {
			/* ask for a migration of our own slice to the other node */
			uint64_t lo = ((uintptr_t)w + 4095) & ~4095ull;
			uint64_t hi = ((uintptr_t)w + per * 8) & ~4095ull;
			int64_t r = hi > lo ? g_hypercall(S2_HC_MIGRATE, lo, hi - lo, node ^= 1, 0, 0)
					    : 0;

			if ((r == -12 || r == -28) && refusals_ok) { /* ENOMEM, ENOSPC */
				refused++;
			} else if (r < 0) {
				g_printf("migstress: migrate hypercall failed: %ld\n", (long)r);
				bad++;
			}
		}
		now = g_clock_ns();
		if (now > t_end && (pass >= min_passes || now > t_cap))
			break;
	}
	/* the final checksum of everything this vCPU wrote */
	for (uint64_t i = 0; i < per; i++)
		if (w[i] != val(cpu, i, pass))
			bad++;
	cpu_bad[cpu] = bad;
	cpu_passes[cpu] = pass;
	cpu_words[cpu] = pass * per;
	__atomic_add_fetch(&done, 1, __ATOMIC_RELEASE);
}

void secondary_main(unsigned cpu)
{
	if (cpu < S2_MAX_VCPUS) /* main() refuses to start otherwise */
		stress(cpu);
}

int main(int argc, char **argv)
{
	uint64_t avail = g_boot->mem_size - g_boot->heap_start;
	uint64_t bad_total = 0, passes_total = 0, words_total = 0;
	unsigned nr = g_boot->nr_cpus, idle = 0;
	const char *a;
	char name[S2_HC_NAME_MAX];

	size = avail & ~((uint64_t)(1 << 20) - 1);
	if ((a = g_arg(argc, argv, "seconds")) && g_parse_u64(a, &seconds)) {
		g_printf("migstress: seconds=%s is not a number\n", a);
		return 2;
	}
	if ((a = g_arg(argc, argv, "min_passes")) && g_parse_u64(a, &min_passes)) {
		g_printf("migstress: min_passes=%s is not a number\n", a);
		return 2;
	}
	if ((a = g_arg(argc, argv, "size")) && (g_parse_size(a, &size) || size > avail || !size)) {
		g_printf("migstress: size=%s must fit the %lu free bytes\n", a, (unsigned long)avail);
		return 2;
	}
	if ((a = g_arg(argc, argv, "migrate")))
		g_parse_u64(a, &migrate);
	refusals_ok = (a = g_arg(argc, argv, "refusals")) && !strcmp(a, "ok");
	if (nr > S2_MAX_VCPUS) {
		g_printf("migstress: %u vCPUs, at most %u supported\n", nr, S2_MAX_VCPUS);
		return 2;
	}
	g_printf("migstress: %u vCPU(s) writing and checking %lu MiB for %lu s\n", nr,
		 (unsigned long)(size >> 20), (unsigned long)seconds);
	__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
	stress(0);
	while (__atomic_load_n(&done, __ATOMIC_ACQUIRE) < nr)
		g_pause();

	for (unsigned cpu = 0; cpu < nr; cpu++) {
		bad_total += cpu_bad[cpu];
		passes_total += cpu_passes[cpu];
		words_total += cpu_words[cpu];
	}
	g_printf("migstress: %u vCPUs, %lu MiB, %lu passes, %lu words checked, %lu mismatches\n",
		 nr, (unsigned long)(size >> 20), (unsigned long)passes_total,
		 (unsigned long)words_total, (unsigned long)bad_total);
	g_report("migstress_words_checked", (double)words_total, "words");
	g_report("migstress_mismatches", (double)bad_total, "words");
	if (migrate)
		g_report("migstress_migrations_refused", (double)refused, "calls");
	{
		/* what the host holds for this guest after the migrations, against what the
		 * guest touched (the image and boot data below the heap, and the slices): the
		 * sources a migration freed must have gone back to the host */
		static struct s2_hc_mem_info mi;

		if (g_hypercall(S2_HC_MEM_INFO, (uint64_t)&mi, sizeof(mi), 0, 0, 0) > 0)
			g_report("migstress_resident_ratio",
				 (double)mi.resident_bytes / (double)(g_boot->heap_start + size),
				 "x");
	}
	for (unsigned cpu = 0; cpu < nr; cpu++) {
		g_snprintf(name, sizeof(name), "migstress_cpu%u_words", cpu);
		g_report(name, (double)cpu_words[cpu], "words");
		g_snprintf(name, sizeof(name), "migstress_cpu%u_passes", cpu);
		g_report(name, (double)cpu_passes[cpu], "passes");
	}
	for (unsigned cpu = 0; cpu < nr; cpu++) {
		if (cpu_words[cpu])
			continue;
		g_printf("migstress: vCPU %u checked no words (%lu passes over a %lu-byte slice)\n",
			 cpu, (unsigned long)cpu_passes[cpu], (unsigned long)(size / nr / 8 * 8));
		idle++;
	}
	return bad_total || idle ? 1 : 0;
}
