// SPDX-License-Identifier: MIT
#include <errno.h>
#include <string.h>

#include "vmm/x86_decode.h"

int x86_decode_io(const uint8_t *b, size_t n, uint64_t rdx, struct x86_io *io)
{
	size_t i = 0;
	unsigned wide = 4;
	uint8_t op;

	if (n && b[0] == 0x66) {
		wide = 2;
		i = 1;
	}
	if (i >= n)
		return -EINVAL;
	op = b[i];
	memset(io, 0, sizeof(*io));
	switch (op) {
	case 0xe4: case 0xe5: case 0xe6: case 0xe7:
		if (i + 1 >= n)
			return -EINVAL;
		io->port = b[i + 1];
		io->insn_len = (uint8_t)(i + 2);
		break;
	case 0xec: case 0xed: case 0xee: case 0xef:
		io->port = (uint16_t)rdx;
		io->port_in_dx = true;
		io->insn_len = (uint8_t)(i + 1);
		break;
	default:
		return -EINVAL;
	}
	io->out = op & 2;
	io->size = (uint8_t)((op & 1) ? wide : 1);
	return 0;
}

static const struct {
	uint8_t bytes[3];
	uint8_t n, len;
	bool write;
} mmio_insns[] = {
	{ { 0x0f, 0xb6, 0x07 }, 3, 1, false }, /* movzbl (%rdi),%eax */
	{ { 0x0f, 0xb7, 0x07 }, 3, 2, false }, /* movzwl (%rdi),%eax */
	{ { 0x8b, 0x07 }, 2, 4, false }, /* movl (%rdi),%eax */
	{ { 0x48, 0x8b, 0x07 }, 3, 8, false }, /* movq (%rdi),%rax */
	{ { 0x40, 0x88, 0x37 }, 3, 1, true }, /* movb %sil,(%rdi) */
	{ { 0x66, 0x89, 0x37 }, 3, 2, true }, /* movw %si,(%rdi) */
	{ { 0x89, 0x37 }, 2, 4, true }, /* movl %esi,(%rdi) */
	{ { 0x48, 0x89, 0x37 }, 3, 8, true }, /* movq %rsi,(%rdi) */
};

int x86_decode_mmio(const uint8_t *b, size_t n, struct x86_mmio *m)
{
	for (size_t i = 0; i < sizeof(mmio_insns) / sizeof(mmio_insns[0]); i++) {
		if (n >= mmio_insns[i].n && !memcmp(b, mmio_insns[i].bytes, mmio_insns[i].n)) {
			m->len = mmio_insns[i].len;
			m->write = mmio_insns[i].write;
			m->insn_len = mmio_insns[i].n;
			return 0;
		}
	}
	return -EINVAL;
}
