/* SPDX-License-Identifier: MIT */
/*
 * int proc_enter(struct proc_vcpu *pv)
 *
 * Enter guest code on this thread: save the host's callee-saved registers and stack
 * pointer in @pv, load the guest's extended state (XSAVE image: x87, SSE, AVX, AVX-512,
 * mask registers ...; FXSAVE without XSAVE), flags and every general register, and
 * jump to the guest rip (through a thread-local slot: no register is free by then).
 *
 * It "returns" only through the signal handler in accel_proc.c, which saves the guest
 * state from the signal frame and rewrites the frame so that sigreturn resumes here with
 * the host's registers and %eax = 0 — or returns 1 at once when a kick is pending. The
 * handler treats a signal whose rip lies in [proc_enter, proc_enter_end) as "not yet in
 * the guest": it aborts the entry (the guest registers in @pv are untouched).
 */
#include "vmm/accel_proc.h"

	.text
	.globl	proc_enter
	.globl	proc_enter_end
	.type	proc_enter, @function
proc_enter:
	movq	%rbx, PV_H_RBX(%rdi)
	movq	%rbp, PV_H_RBP(%rdi)
	movq	%r12, PV_H_R12(%rdi)
	movq	%r13, PV_H_R13(%rdi)
	movq	%r14, PV_H_R14(%rdi)
	movq	%r15, PV_H_R15(%rdi)
	movq	%rsp, PV_H_RSP(%rdi)
	stmxcsr	PV_H_MXCSR(%rdi)
	fnstcw	PV_H_FCW(%rdi)
	movl	$1, PV_IN_GUEST(%rdi)
	cmpl	$0, PV_KICK(%rdi)	/* after in_guest: a later kick's signal finds us here */
	jne	1f
	movq	PV_XSAVE(%rdi), %rcx
	testq	%rcx, %rcx
	jz	2f
	movl	$-1, %eax		/* every state component the OS enabled */
	movl	$-1, %edx
	xrstor64 (%rcx)
	jmp	3f
2:	fxrstor64 PV_FX(%rdi)
3:	movq	PV_RIP(%rdi), %rax
	movq	%rax, %fs:proc_guest_rip@tpoff
	pushq	PV_RFLAGS(%rdi)
	popfq				/* nothing below changes flags */
	movq	PV_RBX(%rdi), %rbx
	movq	PV_RCX(%rdi), %rcx
	movq	PV_RDX(%rdi), %rdx
	movq	PV_RSI(%rdi), %rsi
	movq	PV_RBP(%rdi), %rbp
	movq	PV_R8(%rdi), %r8
	movq	PV_R9(%rdi), %r9
	movq	PV_R10(%rdi), %r10
	movq	PV_R11(%rdi), %r11
	movq	PV_R12(%rdi), %r12
	movq	PV_R13(%rdi), %r13
	movq	PV_R14(%rdi), %r14
	movq	PV_R15(%rdi), %r15
	movq	PV_RSP(%rdi), %rsp
	movq	PV_RAX(%rdi), %rax
	movq	PV_RDI(%rdi), %rdi
	jmp	*%fs:proc_guest_rip@tpoff
1:	movl	$0, PV_IN_GUEST(%rdi)
	movl	$1, %eax
	ret
proc_enter_end:
	.size	proc_enter, proc_enter_end - proc_enter

/*
 * The signal handler's entry: the kernel delivers signals with the interrupted code's
 * EFLAGS.AC, and a guest may have set it; compiled code must not run with alignment
 * checking on. Clear it, then run the C handler.
 */
	.globl	proc_signal_entry
	.type	proc_signal_entry, @function
proc_signal_entry:
	pushfq
	andq	$~0x40000, (%rsp)
	popfq
	jmp	proc_signal
	.size	proc_signal_entry, . - proc_signal_entry

	.section .note.GNU-stack, "", @progbits
