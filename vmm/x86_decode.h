/* SPDX-License-Identifier: MIT */
/*
 * The few x86-64 instructions --accel proc decodes when guest code traps: port I/O (the
 * hypercall `out`) and guestos's fixed MMIO accessor encodings. Pure functions.
 */
#ifndef S2VM_X86_DECODE_H
#define S2VM_X86_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct x86_io {
	uint16_t port;
	uint8_t size; /* 1, 2 or 4 */
	bool out;
	bool port_in_dx; /* port from %dx (else an imm8) */
	uint8_t insn_len;
};

/*
 * Decode IN/OUT (forms E4-E7, EC-EF, with an optional 66 prefix) from the @n bytes at
 * @b; @rdx gives the port of the DX forms. Returns 0 or -EINVAL (not one of them; string
 * I/O and other prefixes are not).
 */
int x86_decode_io(const uint8_t *b, size_t n, uint64_t rdx, struct x86_io *io);

struct x86_mmio {
	uint8_t len; /* 1, 2, 4 or 8 bytes */
	bool write; /* value in %rsi (write) or result in %rax, zero-extended (read) */
	uint8_t insn_len;
};

/*
 * Match one of guestos's MMIO accessor instructions (guestos/lib/mmio.S), which address
 * memory only through (%rdi): read 0f b6 07, 0f b7 07, 8b 07, 48 8b 07; write 40 88 37,
 * 66 89 37, 89 37, 48 89 37. Returns 0, or -EINVAL for any other instruction.
 */
int x86_decode_mmio(const uint8_t *b, size_t n, struct x86_mmio *m);

#endif
