// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the virtqueue walker (vmm/virtq.c), the part of every device that
 * reads what a hostile driver wrote. The input is a queue configuration and an image of a
 * small guest RAM holding the rings; descriptors may point anywhere (reads outside RAM
 * fail as the memory manager's would). Each input pops every available chain, hands each
 * back and arms the notify, as a device does.
 *
 * Input: byte 0 queue size (1 << (b % 9)), byte 1 bit 0 INDIRECT_DESC and bit 1
 * EVENT_IDX negotiated, byte 2 max_seg (% 16), bytes 3-4 the starting avail/used index
 * (le16: wrap-around is reachable), then the RAM image (zero-filled to RAM bytes):
 * descriptor table at DESC, avail ring at AVAIL, used ring at USED.
 *
 * A finding, besides a sanitizer report: a pop that reads more descriptors than the queue
 * size allows, returns a chain breaking a struct virtq_chain field comment, takes a chain
 * it refused, fails without saying why, makes an unaligned 16-bit access, or any write
 * outside the used ring.
 */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"
#include "vmm/virtq.h"

#define RAM 0x4000u
#define DESC 0x0000u
#define AVAIL 0x1000u
#define USED 0x1800u
#define HDR 5u

struct fake {
	uint8_t ram[RAM];
	uint64_t reads;
	uint64_t wlo, whi; /* writes allowed in [wlo, whi) */
};

static int f_read(void *ctx, uint64_t gpa, void *dst, uint64_t len)
{
	struct fake *f = ctx;

	f->reads++;
	if (gpa > RAM || len > RAM - gpa)
		return -EFAULT;
	memcpy(dst, f->ram + gpa, len);
	return 0;
}

static int f_write(void *ctx, uint64_t gpa, const void *src, uint64_t len)
{
	struct fake *f = ctx;

	fuzz_check(gpa >= f->wlo && gpa <= f->whi && len <= f->whi - gpa);
	memcpy(f->ram + gpa, src, len);
	return 0;
}

static int f_read16(void *ctx, uint64_t gpa, uint16_t *v)
{
	fuzz_check(!(gpa & 1));
	return f_read(ctx, gpa, v, 2);
}

static int f_write16(void *ctx, uint64_t gpa, uint16_t v)
{
	fuzz_check(!(gpa & 1));
	return f_write(ctx, gpa, &v, 2);
}

static const struct virtq_mem_ops f_ops = { f_read, f_write, f_read16, f_write16 };

static struct fake F;
static struct virtq_seg segs[16];

/* A chain virtq_pop() returned, against virtq.h's field comments. */
static void check_chain(const struct virtq *vq, const struct virtq_chain *c)
{
	uint64_t out = 0, in = 0;
	bool saw_write = false;

	fuzz_check(c->head < vq->cfg.size);
	fuzz_check(c->nr_desc >= 1 && c->nr_desc <= vq->cfg.size);
	fuzz_check(c->nr_seg <= c->max_seg && c->nr_seg <= c->nr_desc);
	fuzz_check(c->nr_seg == (c->nr_desc < c->max_seg ? c->nr_desc : c->max_seg));
	fuzz_check(!c->indirect || vq->cfg.indirect);
	for (unsigned i = 0; i < c->nr_seg; i++) {
		fuzz_check(!(saw_write && !c->seg[i].write)); /* readable before writable */
		saw_write |= c->seg[i].write != 0;
		if (c->seg[i].write)
			in += c->seg[i].len;
		else
			out += c->seg[i].len;
	}
	if (c->nr_seg == c->nr_desc) {
		fuzz_check(out == c->out_len && in == c->in_len);
		fuzz_check(c->nr_desc == 0 || !memcmp(&c->seg[c->nr_seg - 1], &c->last,
						      sizeof(c->last)));
	}
	fuzz_check(c->out_len <= (uint64_t)c->nr_desc * UINT32_MAX);
	fuzz_check(c->in_len <= (uint64_t)c->nr_desc * UINT32_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct virtq_config cfg = { .desc = DESC, .avail = AVAIL, .used = USED,
				    .mem = &f_ops, .mem_ctx = &F };
	struct virtq vq;
	uint16_t start;
	unsigned max_seg, added = 0;

	if (size < HDR)
		return 0;
	cfg.size = (uint16_t)(1u << (data[0] % 9));
	cfg.indirect = data[1] & 1;
	cfg.event_idx = data[1] & 2;
	max_seg = data[2] % 16;
	start = (uint16_t)(data[3] | data[4] << 8);
	memset(F.ram, 0, sizeof(F.ram));
	memcpy(F.ram, data + HDR, size - HDR < RAM ? size - HDR : RAM);
	F.wlo = USED;
	F.whi = USED + 6 + 8ull * cfg.size;
	fuzz_check(virtq_ring_check(cfg.size, DESC, AVAIL, USED, RAM) == 0);
	virtq_init(&vq, &cfg);
	vq.last_avail = vq.avail_idx = vq.used_idx = start;

	for (unsigned n = 0; n < cfg.size + 2u; n++) {
		struct virtq_chain c = { .seg = segs, .max_seg = max_seg };
		uint16_t last = vq.last_avail;
		uint64_t reads = F.reads;
		int r = virtq_pop(&vq, &c);

		/* avail idx + avail entry + a direct part and one table, each <= size */
		fuzz_check(F.reads - reads <= 2u + 2u * cfg.size);
		fuzz_check(r == 1 || r == 0 || r == -EBADMSG);
		if (r == -EBADMSG) {
			fuzz_check(vq.err[0]);
			fuzz_check(vq.last_avail == last);
			break;
		}
		if (r == 0) {
			fuzz_check(vq.last_avail == last);
			break;
		}
		fuzz_check(vq.last_avail == (uint16_t)(last + 1));
		check_chain(&vq, &c);
		fuzz_check(virtq_used_add(&vq, c.head, (uint32_t)c.in_len) == 0);
		added++;
	}
	fuzz_check(virtq_used_flush(&vq) == 0);
	fuzz_check(vq.used_idx == (uint16_t)(start + added));
	if (added)
		fuzz_check(le16toh(*(uint16_t *)(F.ram + USED + 2)) == vq.used_idx);
	{
		int r = virtq_avail_peek(&vq);

		fuzz_check(r == 0 || r == 1 || r == -EBADMSG);
		r = virtq_arm_notify(&vq);

		fuzz_check(r == 0 || r == 1 || r == -EBADMSG);
		if (cfg.event_idx && r == 0) /* it wrote, then found nothing new */
			fuzz_check(le16toh(*(uint16_t *)(F.ram + USED + 4 + 8 * cfg.size)) ==
				   vq.last_avail);
	}
	return 0;
}
