/* SPDX-License-Identifier: MIT */
/*
 * The balloon's PFN-array parser (docs/DEVICES.md, virtio-balloon): what an inflate or
 * deflate buffer from the driver says, checked against guest RAM and the pages the
 * balloon holds. Pure: no guest memory, no locks (the device holds its own); a fuzz
 * target drives it with arbitrary bytes.
 */
#ifndef S2VM_BALLOON_PFN_H
#define S2VM_BALLOON_PFN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a buffer held besides PFNs taken (added to, not reset). */
struct bpfn_counts {
	uint64_t taken; /* PFNs accepted */
	uint64_t bad; /* outside guest RAM */
	uint64_t dup; /* inflate: already held (inflated twice, or twice in the buffer) */
	uint64_t not_held; /* deflate: not in the balloon */
	uint64_t partial_bytes; /* a trailing part of an entry (length not a multiple of 4) */
};

/*
 * Parse @len bytes of little-endian 32-bit PFNs from @buf. Inflate (@inflate true):
 * accept each PFN below @ram_pages whose bit in @held is clear, and set it. Deflate:
 * accept each whose bit is set, and clear it. Accepted PFNs go to @out (room for @len / 4)
 * in buffer order. Returns how many were accepted.
 */
size_t bpfn_take(const uint8_t *buf, size_t len, uint64_t ram_pages, uint64_t *held, bool inflate,
		 uint64_t *out, struct bpfn_counts *c);

#endif
