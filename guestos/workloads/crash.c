// SPDX-License-Identifier: MIT
/*
 * crash.elf mode=ud|pf|triple|badio|deniedio|spin|N — misbehaves on purpose so the tests can
 * check how s2vm reports guest crashes.
 */
#include "guest.h"

int main(int argc, char **argv)
{
	const char *mode = g_arg(argc, argv, "mode");
	uint64_t code;

	if (!mode)
		mode = "ud";
	g_printf("crash: mode=%s\n", mode);
	if (!strcmp(mode, "ud")) {
		__asm__ volatile("ud2");
	} else if (!strcmp(mode, "pf")) {
		/* 512 GiB: beyond every mapping the VMM built */
		return (int)*(volatile uint64_t *)0x8000000000ull;
	} else if (!strcmp(mode, "triple")) {
		/* Point this vCPU's ring-0 stack at unmapped memory: the #UD cannot be
		 * delivered, nor the #DF after it, so the CPU shuts down. */
		uint64_t bad = 0x8000000000ull;

		memcpy((void *)(uintptr_t)(S2_TSS_GPA + 4), &bad, 8);
		__asm__ volatile("ud2");
	} else if (!strcmp(mode, "badio")) {
		/* a port the TSS lets ring 3 reach but the VMM does not handle: an exit
		 * the VMM cannot serve */
		__asm__ volatile("outw %%ax, %%dx" ::"a"(0), "d"(S2_HC_PORT + 2));
	} else if (!strcmp(mode, "deniedio")) {
		/* a port ring 3 may not touch: #GP inside the guest */
		__asm__ volatile("outb %%al, $0x80" ::"a"(0));
	} else if (!strcmp(mode, "spin")) {
		/* run in ring 3 until the VMM is told to stop (signal tests) */
		for (volatile uint64_t i = 0;; i++)
			;
	} else if (!g_parse_u64(mode, &code)) {
		return (int)code;
	}
	g_printf("crash: still running after mode=%s\n", mode);
	return 0;
}
