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
 *	tf		set EFLAGS.TF, then a hypercall: the trace trap is owed after it (#DB)
 *	ac		set EFLAGS.AC (alignment checking) around 100 hypercalls, then go on
 *	sse		fill xmm0-15, make 200 hypercalls, check every register kept its value
 *	N		exit with code N
 */
#include "guest.h"

/* xmm0-15 hold distinct values across 200 hypercalls (the VMM's own code runs between). */
static int sse_survives(void)
{
	static uint64_t in[32] __attribute__((aligned(16))), out[32] __attribute__((aligned(16)));
	static volatile struct s2_hc_block b __attribute__((aligned(8))) = { .nr = S2_HC_NOP };

	for (int i = 0; i < 32; i++)
		in[i] = 0x0123456789abcdefull * (uint64_t)(i + 1);
	__asm__ volatile(
		"movdqa 0(%0), %%xmm0; movdqa 16(%0), %%xmm1; movdqa 32(%0), %%xmm2\n"
		"movdqa 48(%0), %%xmm3; movdqa 64(%0), %%xmm4; movdqa 80(%0), %%xmm5\n"
		"movdqa 96(%0), %%xmm6; movdqa 112(%0), %%xmm7; movdqa 128(%0), %%xmm8\n"
		"movdqa 144(%0), %%xmm9; movdqa 160(%0), %%xmm10; movdqa 176(%0), %%xmm11\n"
		"movdqa 192(%0), %%xmm12; movdqa 208(%0), %%xmm13; movdqa 224(%0), %%xmm14\n"
		"movdqa 240(%0), %%xmm15\n"
		"movl $200, %%ecx\n"
		"1: movl %2, %%eax; movw %3, %%dx; outl %%eax, %%dx; decl %%ecx; jnz 1b\n"
		"movdqa %%xmm0, 0(%1); movdqa %%xmm1, 16(%1); movdqa %%xmm2, 32(%1)\n"
		"movdqa %%xmm3, 48(%1); movdqa %%xmm4, 64(%1); movdqa %%xmm5, 80(%1)\n"
		"movdqa %%xmm6, 96(%1); movdqa %%xmm7, 112(%1); movdqa %%xmm8, 128(%1)\n"
		"movdqa %%xmm9, 144(%1); movdqa %%xmm10, 160(%1); movdqa %%xmm11, 176(%1)\n"
		"movdqa %%xmm12, 192(%1); movdqa %%xmm13, 208(%1); movdqa %%xmm14, 224(%1)\n"
		"movdqa %%xmm15, 240(%1)\n"
		:
		: "r"(in), "r"(out), "i"(0), "i"(S2_HC_PORT), "m"(b)
		: "rax", "rcx", "rdx", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5",
		  "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14",
		  "xmm15");
	for (int i = 0; i < 32; i++) {
		if (in[i] != out[i]) {
			g_printf("crash: xmm%d changed across hypercalls: %#lx, was %#lx\n", i / 2,
				 (unsigned long)out[i], (unsigned long)in[i]);
			return 0;
		}
	}
	g_printf("crash: xmm0-15 kept their values over 200 hypercalls\n");
	return 1;
}

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
	} else if (!strcmp(mode, "tf")) {
		static volatile struct s2_hc_block b __attribute__((aligned(8))) = { .nr = S2_HC_NOP };

		__asm__ volatile("pushfq; orq $0x100, (%%rsp); popfq; outl %%eax, %%dx"
				 ::"a"((uint32_t)(uintptr_t)&b), "d"(S2_HC_PORT) : "memory", "cc");
	} else if (!strcmp(mode, "ac")) {
		__asm__ volatile("pushfq; orq $0x40000, (%%rsp); popfq" ::: "memory", "cc");
		for (int i = 0; i < 100; i++)
			g_hypercall(S2_HC_NOP, 0, 0, 0, 0, 0);
		__asm__ volatile("pushfq; andq $~0x40000, (%%rsp); popfq" ::: "memory", "cc");
	} else if (!strcmp(mode, "sse")) {
		return sse_survives() ? 0 : 1;
	} else if (!g_parse_u64(mode, &code)) {
		return (int)code;
	}
	g_printf("crash: still running after mode=%s\n", mode);
	return 0;
}
