// SPDX-License-Identifier: MIT
/*
 * crash.elf mode=MODE — misbehaves on purpose so the tests can check how s2vm reports
 * guest crashes. Every mode first prints "crash: mode=MODE"; one that comes back (the
 * mmio modes, when the VMM serves the access) prints "crash: still running after
 * mode=MODE" and exits 0.
 *
 *	ud		#UD (ud2)
 *	pf		read unmapped memory (512 GiB)
 *	triple		#UD with an unusable ring-0 stack: triple fault
 *	badio		port write the VMM does not handle
 *	deniedio	port write ring 3 may not do: #GP
 *	spin		loop forever in ring 3 (signal tests)
 *	syscall		the syscall instruction (getpid, were it run on the host)
 *	jump		call unmapped memory (512 GiB)
 *	hlt		privileged instruction in ring 3: #GP
 *	mmio		mmio_write32(mmio_base + 0x10, 0x1234)
 *	mmio-read	mmio_read32(mmio_base + 0x10), then print "crash: mmio_read32 = VALUE"
 *	mmio-bad	touch the device window with an instruction that is not an accessor
 *	N		exit with code N
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
	} else if (!strcmp(mode, "syscall")) {
		/* rax 39: getpid on a Linux host; never a guest service */
		__asm__ volatile("movl $39, %%eax\n\tsyscall" ::: "rax", "rcx", "r11", "memory");
	} else if (!strcmp(mode, "jump")) {
		void (*volatile fn)(void) = (void (*)(void))0x8000000000ull;

		fn();
	} else if (!strcmp(mode, "hlt")) {
		__asm__ volatile("hlt");
	} else if (!strcmp(mode, "mmio")) {
		mmio_write32(g_boot->mmio_base + 0x10, 0x1234);
	} else if (!strcmp(mode, "mmio-read")) {
		uint32_t v = mmio_read32(g_boot->mmio_base + 0x10);

		g_printf("crash: mmio_read32 = %#x\n", v);
	} else if (!strcmp(mode, "mmio-bad")) {
		/* a read-modify-write no accessor encodes: the VMM must refuse it */
		__asm__ volatile("addl $1, (%0)" ::"r"(g_boot->mmio_base + 0x20) : "memory");
	} else if (!g_parse_u64(mode, &code)) {
		return (int)code;
	}
	g_printf("crash: still running after mode=%s\n", mode);
	return 0;
}
