/* SPDX-License-Identifier: MIT */
/*
 * Device register accessors (guest.h): the only code that touches the MMIO window.
 * Under --accel proc an access to the window traps into the VMM, which decodes the
 * faulting instruction and accepts exactly these encodings, so they are spelled as bytes
 * (with the instruction they encode beside them) rather than left to the assembler.
 * SysV ABI: address in rdi, value in rsi, result in rax. Each body is one access + ret.
 */
	.macro MMIO_FN name
	.globl	\name
	.type	\name, @function
	.balign 16
\name:
	.endm

	.text
	MMIO_FN mmio_read8
	.byte	0x0f, 0xb6, 0x07	/* movzbl (%rdi), %eax */
	ret
	.size	mmio_read8, . - mmio_read8

	MMIO_FN mmio_read16
	.byte	0x0f, 0xb7, 0x07	/* movzwl (%rdi), %eax */
	ret
	.size	mmio_read16, . - mmio_read16

	MMIO_FN mmio_read32
	.byte	0x8b, 0x07		/* movl (%rdi), %eax */
	ret
	.size	mmio_read32, . - mmio_read32

	MMIO_FN mmio_read64
	.byte	0x48, 0x8b, 0x07	/* movq (%rdi), %rax */
	ret
	.size	mmio_read64, . - mmio_read64

	MMIO_FN mmio_write8
	.byte	0x40, 0x88, 0x37	/* movb %sil, (%rdi) */
	ret
	.size	mmio_write8, . - mmio_write8

	MMIO_FN mmio_write16
	.byte	0x66, 0x89, 0x37	/* movw %si, (%rdi) */
	ret
	.size	mmio_write16, . - mmio_write16

	MMIO_FN mmio_write32
	.byte	0x89, 0x37		/* movl %esi, (%rdi) */
	ret
	.size	mmio_write32, . - mmio_write32

	MMIO_FN mmio_write64
	.byte	0x48, 0x89, 0x37	/* movq %rsi, (%rdi) */
	ret
	.size	mmio_write64, . - mmio_write64

	.section .note.GNU-stack, "", @progbits
