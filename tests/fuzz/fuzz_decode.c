// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the x86 decoder --accel proc uses on trapped guest code:
 * x86_decode_io() and x86_decode_mmio() on the input bytes, read only within them (ASan
 * sees the input as an exact-size allocation). A finding, besides a sanitizer report, is
 * a decoded instruction longer than the bytes given or a field outside its documented range.
 */
#include "tests/fuzz/fuzz.h"
#include "vmm/x86_decode.h"

#define RDX 0xfeedface5a5aa5a5ull /* %rdx at the trap; the DX forms take its low 16 bits */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct x86_io io;
	struct x86_mmio m;

	if (x86_decode_io(data, size, RDX, &io) == 0) {
		fuzz_check(io.insn_len >= 1 && io.insn_len <= size);
		fuzz_check(io.size == 1 || io.size == 2 || io.size == 4);
		fuzz_check(!io.port_in_dx || io.port == (uint16_t)RDX);
		fuzz_check(io.port_in_dx || io.port <= 0xff);
	}
	if (x86_decode_mmio(data, size, &m) == 0) {
		fuzz_check(m.insn_len >= 1 && m.insn_len <= size);
		fuzz_check(m.len == 1 || m.len == 2 || m.len == 4 || m.len == 8);
	}
	return 0;
}
