// SPDX-License-Identifier: MIT
/* hello.elf: the smallest guest. Prints a greeting and exits 0. */
#include "guest.h"

int main(int argc, char **argv)
{
	g_printf("Hello from the s2vm guest: %u vCPU(s), %lu MiB of RAM", g_boot->nr_cpus,
		 (unsigned long)(g_boot->mem_size >> 20));
	for (int i = 1; i < argc; i++)
		g_printf("%s %s", i == 1 ? ", args:" : "", argv[i]);
	g_printf("\n");
	return 0;
}
