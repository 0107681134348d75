// SPDX-License-Identifier: MIT
/*
 * numainfo.elf [step=SIZE]
 *
 * Prints the guest NUMA layout from the boot info, then asks the VMM (S2_HC_GPA_NODE)
 * which host node backs every page (every SIZE bytes, default 4 KiB) of each guest node
 * and checks it against the command line: bind -> the host node; preferred -> the host
 * node or one of its fallbacks; interleave -> hosts[(offset / 2 MiB) % n]. Exits 1 on
 * any mismatch.
 */
#include "guest.h"

static const char *const policies[] = { "bind", "preferred", "interleave" };

int main(int argc, char **argv)
{
	uint64_t step = 4096, checked = 0, bad = 0;
	const char *a;

	if ((a = g_arg(argc, argv, "step")) && (g_parse_size(a, &step) || !step || step % 4096)) {
		g_printf("numainfo: step=%s must be a multiple of 4 KiB\n", a);
		return 2;
	}
	g_printf("numainfo: %u guest node(s), %lu MiB, %u vCPU(s)\n", g_boot->nr_nodes,
		 (unsigned long)(g_boot->mem_size >> 20), g_boot->nr_cpus);
	for (unsigned i = 0; i < g_boot->nr_nodes; i++) {
		const struct s2_boot_node *n = &g_boot->nodes[i];
		uint64_t on[64] = { 0 }, nbad = 0;
		char cpus[128];
		int len = 0;

		for (unsigned c = 0; c < g_boot->nr_cpus && c < 64; c++)
			if (n->cpu_mask >> c & 1)
				len += g_snprintf(cpus + len, sizeof(cpus) - (size_t)len, "%s%u",
						  len ? "," : "", c);
		if (!len)
			g_snprintf(cpus, sizeof(cpus), "none");
		for (uint64_t gpa = n->gpa_start; gpa < n->gpa_end; gpa += step) {
			int64_t h = g_gpa_node(gpa);
			int ok;

			if (h < 0 || h >= 64) {
				nbad++;
				continue;
			}
			on[h] += step;
			if (n->policy == 2) {
				uint64_t k = (gpa - n->gpa_start) >> 21;

				ok = n->nr_hosts && h == n->hosts[k % n->nr_hosts];
			} else {
				ok = h == n->host_node;
				for (unsigned j = 0; n->policy == 1 && j < n->nr_hosts; j++)
					ok |= h == n->hosts[j];
			}
			if (!ok) {
				if (!nbad)
					g_printf("numainfo: MISMATCH guest node %u GPA %#lx is on host node %ld\n",
						 i, (unsigned long)gpa, (long)h);
				nbad++;
			}
			checked++;
		}
		g_printf("numainfo: guest node %u [%#lx, %#lx) %lu MiB, %s, host node %u, vCPUs %s:",
			 i, (unsigned long)n->gpa_start, (unsigned long)n->gpa_end,
			 (unsigned long)((n->gpa_end - n->gpa_start) >> 20), policies[n->policy % 3],
			 n->host_node, cpus);
		for (unsigned h = 0; h < 64; h++)
			if (on[h])
				g_printf(" %lu MiB on host %u", (unsigned long)(on[h] >> 20), h);
		g_printf(nbad ? " -- %lu WRONG\n" : " -- OK\n", (unsigned long)nbad);
		bad += nbad;
	}
	g_report("numainfo_pages_checked", (double)checked, "pages");
	g_report("numainfo_mismatches", (double)bad, "pages");
	return bad ? 1 : 0;
}
