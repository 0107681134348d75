/* SPDX-License-Identifier: MIT */
/*
 * guestos entry. The VMM starts every vCPU here in 64-bit ring 0 with paging on, all RAM
 * mapped 1:1, and: rdi = boot info GPA, rsi = cpu index, rdx = top of this cpu's user
 * stack, rsp = this cpu's kernel stack (also TSS.RSP0). Ring 0 runs a handful of
 * instructions (this machine emulates it): load the IDT and drop to ring 3 with IOPL 3.
 * Hosts that virtualise IOPL away from ring 3 (PVM) still let ring 3 reach the hypercall
 * ports through each TSS's I/O permission bitmap, which the VMM fills in.
 * The IDT's entries are filled in from ring 3 by rt_start() before anything can fault.
 */
	.section .text.entry, "ax"
	.code64
	.globl _start
_start:
	lidt	idt_desc(%rip)
	pushq	$0x1b			/* ss: user data, RPL 3 */
	pushq	%rdx			/* rsp: user stack */
	pushq	$0x3002			/* rflags: IOPL 3, IF clear */
	pushq	$0x23			/* cs: user code, RPL 3 */
	leaq	user_start(%rip), %rax
	pushq	%rax
	iretq

/*
 * Ring 3 from here on; rdi and rsi are preserved. Also the entry of --accel proc, which
 * skips ring 0 and starts every vCPU here (named by the s2vm note below) with rdi, rsi
 * as above and rsp = rdx = the user stack top.
 */
	.globl	user_start
user_start:
	xorl	%ebp, %ebp
	andq	$-16, %rsp
	call	rt_start
1:	ud2
	jmp	1b

/*
 * Exception stubs (ring 0). Each pushes a dummy error code where the CPU pushes none,
 * then its vector, and reports the fault to the VMM with one hypercall built on the
 * kernel stack: S2_HC_FAULT(vector, error, rip, cr2, rsp). The VMM stops the VM.
 */
	.macro ISR_NOERR n
isr\n:	pushq	$0
	pushq	$\n
	jmp	isr_common
	.endm
	.macro ISR_ERR n
isr\n:	pushq	$\n
	jmp	isr_common
	.endm

	ISR_NOERR 0
	ISR_NOERR 1
	ISR_NOERR 2
	ISR_NOERR 3
	ISR_NOERR 4
	ISR_NOERR 5
	ISR_NOERR 6
	ISR_NOERR 7
	ISR_ERR 8
	ISR_NOERR 9
	ISR_ERR 10
	ISR_ERR 11
	ISR_ERR 12
	ISR_ERR 13
	ISR_ERR 14
	ISR_NOERR 15
	ISR_NOERR 16
	ISR_ERR 17
	ISR_NOERR 18
	ISR_NOERR 19
	ISR_NOERR 20
	ISR_ERR 21
	ISR_NOERR 22
	ISR_NOERR 23
	ISR_NOERR 24
	ISR_NOERR 25
	ISR_NOERR 26
	ISR_NOERR 27
	ISR_NOERR 28
	ISR_ERR 29
	ISR_ERR 30
	ISR_NOERR 31

isr_common:				/* vector, error, rip, cs, rflags, rsp, ss */
	subq	$64, %rsp		/* struct s2_hc_block (56 bytes), 8-aligned */
	movq	$7, 0(%rsp)		/* S2_HC_FAULT */
	movq	64(%rsp), %rax
	movq	%rax, 8(%rsp)		/* vector */
	movq	72(%rsp), %rax
	movq	%rax, 16(%rsp)		/* error code */
	movq	80(%rsp), %rax
	movq	%rax, 24(%rsp)		/* rip */
	movq	%cr2, %rax
	movq	%rax, 32(%rsp)		/* cr2 */
	movq	104(%rsp), %rax
	movq	%rax, 40(%rsp)		/* rsp at the fault */
	movq	%rsp, %rax
	movw	$0x510, %dx
	outl	%eax, %dx
2:	hlt
	jmp	2b

/*
 * The ELF note naming the ring-3 entry (include/s2vm/bootinfo.h): name S2_NOTE_NAME,
 * type S2_NOTE_USER_ENTRY, an 8-byte GPA. guest.ld keeps it in a PT_NOTE segment.
 */
	.section .note.s2vm, "a", @note
	.balign 4
	.long	2f - 1f			/* namesz: "s2vm" and its NUL */
	.long	4f - 3f			/* descsz */
	.long	1			/* S2_NOTE_USER_ENTRY */
1:	.asciz	"s2vm"			/* S2_NOTE_NAME */
2:	.balign 4
3:	.quad	user_start
4:	.balign 4

	.section .rodata
	.balign 8
	.globl	isr_table
isr_table:
	.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.quad	isr\n
	.endr

	.section .data
	.balign 16
idt_desc:
	.word	256 * 16 - 1
	.quad	idt

	.section .bss
	.balign 4096
	.globl	idt
idt:
	.skip	256 * 16

	.section .note.GNU-stack, "", @progbits
