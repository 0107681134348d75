// SPDX-License-Identifier: MIT
/*
 * The split-virtqueue walker (vmm/virtq.h) against fake guest memory: well-formed chains
 * (direct, indirect, mixed) come out as the driver built them; every malformed one of
 * docs/DEVICES.md's table (loops, chains longer than the queue, indices out of range,
 * nested or malformed indirect tables, avail index jumps, readable after writable) is
 * -EBADMSG with nothing taken; the used ring and avail_event land exactly where the spec
 * puts them and nowhere else; and random descriptor tables never make the walker read
 * outside the rings and tables or run longer than the queue allows.
 */
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "tests/unit/unit.h"
#include "vmm/virtq.h"

#define RAM (1u << 20)
#define DESC 0x10000u
#define AVAIL 0x20000u
#define USED 0x30000u
#define DATA 0x40000u
#define TABLE 0x80000u /* indirect tables */

struct fake {
	uint8_t ram[RAM];
	uint64_t reads, writes;
	uint64_t wlo, whi; /* writes allowed in [wlo, whi) */
	int bad_writes;
	uint64_t fail_lo, fail_hi; /* reads in [fail_lo, fail_hi) fail (unmapped) */
};

static struct fake F;

static int f_read(void *ctx, uint64_t gpa, void *dst, uint64_t len)
{
	struct fake *f = ctx;

	f->reads++;
	if (gpa > RAM || len > RAM - gpa)
		return -EFAULT;
	if (gpa < f->fail_hi && f->fail_lo < gpa + len)
		return -EFAULT;
	memcpy(dst, f->ram + gpa, len);
	return 0;
}

static int f_write(void *ctx, uint64_t gpa, const void *src, uint64_t len)
{
	struct fake *f = ctx;

	f->writes++;
	if (gpa > RAM || len > RAM - gpa)
		return -EFAULT;
	if (gpa < f->wlo || gpa + len > f->whi)
		f->bad_writes++;
	memcpy(f->ram + gpa, src, len);
	return 0;
}

static int f_read16(void *ctx, uint64_t gpa, uint16_t *v)
{
	if (gpa & 1)
		return -EINVAL; /* the walker must only ask for aligned indices */
	return f_read(ctx, gpa, v, 2);
}

static int f_write16(void *ctx, uint64_t gpa, uint16_t v)
{
	if (gpa & 1)
		return -EINVAL;
	return f_write(ctx, gpa, &v, 2);
}

static const struct virtq_mem_ops f_ops = { f_read, f_write, f_read16, f_write16 };

static void put16(uint64_t gpa, uint16_t v)
{
	v = htole16(v);
	memcpy(F.ram + gpa, &v, 2);
}

static uint16_t get16(uint64_t gpa)
{
	uint16_t v;

	memcpy(&v, F.ram + gpa, 2);
	return le16toh(v);
}

static uint32_t get32(uint64_t gpa)
{
	uint32_t v;

	memcpy(&v, F.ram + gpa, 4);
	return le32toh(v);
}

/* Descriptor @i of the table at @table. */
static void desc(uint64_t table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
		 uint16_t next)
{
	uint8_t *p = F.ram + table + 16ull * i;
	uint64_t a = htole64(addr);
	uint32_t l = htole32(len);
	uint16_t fl = htole16(flags), n = htole16(next);

	memcpy(p, &a, 8);
	memcpy(p + 8, &l, 4);
	memcpy(p + 12, &fl, 2);
	memcpy(p + 14, &n, 2);
}

/* Publish @head as avail entry @slot and set avail->idx to @idx. */
static void avail(uint16_t size, uint16_t slot, uint16_t head, uint16_t idx)
{
	put16(AVAIL + 4 + 2ull * (slot & (size - 1)), head);
	put16(AVAIL + 2, idx);
}

static struct virtq_seg segs[VIRTQ_MAX_SIZE * 2];

static void vq_new(struct virtq *vq, uint16_t size, bool indirect, bool event_idx)
{
	struct virtq_config c = { .size = size, .desc = DESC, .avail = AVAIL, .used = USED,
				  .indirect = indirect, .event_idx = event_idx,
				  .mem = &f_ops, .mem_ctx = &F };

	memset(&F, 0, sizeof(F));
	F.wlo = USED;
	F.whi = USED + 6 + 8ull * size;
	virtq_init(vq, &c);
}

static struct virtq_chain chain(unsigned max)
{
	struct virtq_chain c = { .seg = segs, .max_seg = max };

	return c;
}

static void test_ring_check(void)
{
	CU_ASSERT_EQUAL(virtq_ring_check(256, DESC, AVAIL, USED, RAM), 0);
	CU_ASSERT_EQUAL(virtq_ring_check(1, DESC, AVAIL, USED, RAM), 0);
	CU_ASSERT_EQUAL(virtq_ring_check(1024, DESC, AVAIL, USED, RAM), 0);
	CU_ASSERT_EQUAL(virtq_ring_check(0, DESC, AVAIL, USED, RAM), -EINVAL);
	CU_ASSERT_EQUAL(virtq_ring_check(3, DESC, AVAIL, USED, RAM), -EINVAL);
	CU_ASSERT_EQUAL(virtq_ring_check(2048, DESC, AVAIL, USED, RAM), -EINVAL);
	/* alignment: desc 16, avail 2, used 4 */
	CU_ASSERT_EQUAL(virtq_ring_check(256, DESC + 8, AVAIL, USED, RAM), -EINVAL);
	CU_ASSERT_EQUAL(virtq_ring_check(256, DESC, AVAIL + 1, USED, RAM), -EINVAL);
	CU_ASSERT_EQUAL(virtq_ring_check(256, DESC, AVAIL, USED + 2, RAM), -EINVAL);
	/* inside RAM, event fields included: used ring of 256 is 6 + 2048 bytes */
	CU_ASSERT_EQUAL(virtq_ring_check(256, DESC, AVAIL, RAM - 2054, RAM), -EINVAL);
	CU_ASSERT_EQUAL(virtq_ring_check(256, DESC, AVAIL, RAM - 2056, RAM), 0);
	CU_ASSERT_EQUAL(virtq_ring_check(256, RAM - 4096, AVAIL, USED, RAM), 0);
	CU_ASSERT_EQUAL(virtq_ring_check(256, RAM - 4080, AVAIL, USED, RAM), -EINVAL);
	CU_ASSERT_EQUAL(virtq_ring_check(256, DESC, RAM - 518, USED, RAM), 0);
	CU_ASSERT_EQUAL(virtq_ring_check(256, DESC, RAM - 516, USED, RAM), -EINVAL);
	/* wrapping the 64-bit space */
	CU_ASSERT_EQUAL(virtq_ring_check(256, -4096ull, AVAIL, USED, RAM), -EINVAL);
	CU_ASSERT_EQUAL(virtq_ring_check(256, DESC, -2ull, USED, UINT64_MAX), -EINVAL);
}

static void test_simple_chain(void)
{
	struct virtq vq;
	struct virtq_chain c = chain(8);

	vq_new(&vq, 8, false, false);
	CU_ASSERT_EQUAL(virtq_pop(&vq, &c), 0); /* empty */
	desc(DESC, 5, DATA, 16, VIRTQ_DESC_F_NEXT, 2);
	desc(DESC, 2, DATA + 0x1000, 4096, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 7);
	desc(DESC, 7, DATA + 0x3000, 1, VIRTQ_DESC_F_WRITE, 0);
	avail(8, 0, 5, 1);
	CU_ASSERT_EQUAL(virtq_pop(&vq, &c), 1);
	CU_ASSERT_EQUAL(c.head, 5);
	CU_ASSERT_EQUAL(c.nr_desc, 3);
	CU_ASSERT_EQUAL(c.nr_seg, 3);
	CU_ASSERT_EQUAL(c.out_len, 16);
	CU_ASSERT_EQUAL(c.in_len, 4097);
	CU_ASSERT_FALSE(c.indirect);
	CU_ASSERT_EQUAL(segs[1].gpa, DATA + 0x1000);
	CU_ASSERT_EQUAL(segs[1].write, 1);
	CU_ASSERT_EQUAL(c.last.gpa, DATA + 0x3000);
	CU_ASSERT_EQUAL(c.last.len, 1);
	CU_ASSERT_EQUAL(virtq_pop(&vq, &c), 0);
	/* used: element at slot 0, invisible until the flush moves used->idx */
	CU_ASSERT_EQUAL(virtq_used_add(&vq, 5, 4097), 0);
	CU_ASSERT_EQUAL(get32(USED + 4), 5);
	CU_ASSERT_EQUAL(get32(USED + 8), 4097);
	CU_ASSERT_EQUAL(get16(USED + 2), 0);
	CU_ASSERT_EQUAL(virtq_used_flush(&vq), 0);
	CU_ASSERT_EQUAL(get16(USED + 2), 1);
	CU_ASSERT_EQUAL(F.bad_writes, 0);
	/* the same chain again, twice: two entries, one flush */
	avail(8, 1, 5, 2);
	avail(8, 2, 5, 3);
	CU_ASSERT_EQUAL(virtq_pop(&vq, &c), 1);
	CU_ASSERT_EQUAL(virtq_pop(&vq, &c), 1);
	CU_ASSERT_EQUAL(virtq_pop(&vq, &c), 0);
	CU_ASSERT_EQUAL(virtq_used_add(&vq, 5, 1), 0);
	CU_ASSERT_EQUAL(virtq_used_add(&vq, 5, 2), 0);
	CU_ASSERT_EQUAL(virtq_used_flush(&vq), 0);
	CU_ASSERT_EQUAL(get16(USED + 2), 3);
	CU_ASSERT_EQUAL(get32(USED + 4 + 8 * 2 + 4), 2);
}

/* Pop once more after a failure: the chain was not taken. */
static void expect_bad(struct virtq *vq, struct virtq_chain *c, const char *what)
{
	uint16_t last = vq->last_avail;

	CU_ASSERT_EQUAL(virtq_pop(vq, c), -EBADMSG);
	CU_ASSERT_EQUAL(vq->last_avail, last);
	CU_ASSERT_PTR_NOT_NULL(strstr(vq->err, what));
	if (!strstr(vq->err, what))
		fprintf(stderr, "expected '%s', got '%s'\n", what, vq->err);
}

static void test_loops(void)
{
	struct virtq vq;
	struct virtq_chain c = chain(16);

	/* a self-loop, a 2-cycle and a cycle entered after a prefix */
	vq_new(&vq, 16, false, false);
	desc(DESC, 0, DATA, 16, VIRTQ_DESC_F_NEXT, 0);
	avail(16, 0, 0, 1);
	expect_bad(&vq, &c, "loop");
	desc(DESC, 0, DATA, 16, VIRTQ_DESC_F_NEXT, 1);
	desc(DESC, 1, DATA, 16, VIRTQ_DESC_F_NEXT, 0);
	expect_bad(&vq, &c, "loop");
	desc(DESC, 0, DATA, 16, VIRTQ_DESC_F_NEXT, 1);
	desc(DESC, 1, DATA, 16, VIRTQ_DESC_F_NEXT, 2);
	desc(DESC, 2, DATA, 16, VIRTQ_DESC_F_NEXT, 3);
	desc(DESC, 3, DATA, 16, VIRTQ_DESC_F_NEXT, 1);
	expect_bad(&vq, &c, "loop");
	/* a loop inside an indirect table */
	vq_new(&vq, 16, true, false);
	desc(DESC, 0, TABLE, 4 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	desc(TABLE, 0, DATA, 16, VIRTQ_DESC_F_NEXT, 1);
	desc(TABLE, 1, DATA, 16, VIRTQ_DESC_F_NEXT, 2);
	desc(TABLE, 2, DATA, 16, VIRTQ_DESC_F_NEXT, 0);
	avail(16, 0, 0, 1);
	expect_bad(&vq, &c, "loop");
}

static void test_long_chains(void)
{
	struct virtq vq;
	struct virtq_chain c = chain(4);

	/* exactly the queue size: fine, however many are kept */
	vq_new(&vq, 256, false, false);
	for (unsigned i = 0; i < 256; i++)
		desc(DESC, i, DATA + i, 1, i < 255 ? VIRTQ_DESC_F_NEXT : VIRTQ_DESC_F_WRITE,
		     (uint16_t)(i + 1));
	avail(256, 0, 0, 1);
	CU_ASSERT_EQUAL(virtq_pop(&vq, &c), 1);
	CU_ASSERT_EQUAL(c.nr_desc, 256);
	CU_ASSERT_EQUAL(c.nr_seg, 4);
	CU_ASSERT_EQUAL(c.last.gpa, DATA + 255);
	CU_ASSERT_EQUAL(c.out_len, 255);
	CU_ASSERT_EQUAL(c.in_len, 1);
	/* a chain of all 256 that goes on to one of them again is a loop */
	desc(DESC, 255, DATA + 255, 1, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 17);
	avail(256, 1, 0, 2);
	expect_bad(&vq, &c, "loop");

	/* an indirect table of the queue size is fine, one more is not */
	vq_new(&vq, 64, true, false);
	for (unsigned i = 0; i < 65; i++)
		desc(TABLE, i, DATA + 16 * i, 16, i < 64 ? VIRTQ_DESC_F_NEXT : 0,
		     (uint16_t)(i + 1));
	desc(TABLE, 63, DATA + 16 * 63, 16, 0, 0);
	desc(DESC, 3, TABLE, 64 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	avail(64, 0, 3, 1);
	CU_ASSERT_EQUAL(virtq_pop(&vq, &c), 1);
	CU_ASSERT_EQUAL(c.nr_desc, 64);
	CU_ASSERT_TRUE(c.indirect);
	CU_ASSERT_EQUAL(c.out_len, 64 * 16);
	desc(DESC, 3, TABLE, 65 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	avail(64, 1, 3, 2);
	expect_bad(&vq, &c, "indirect table of 65");
	/* direct descriptors before a full table: more than the queue in all */
	desc(DESC, 3, DATA, 16, VIRTQ_DESC_F_NEXT, 4);
	desc(DESC, 4, TABLE, 64 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	expect_bad(&vq, &c, "more than the queue size");
	/* a table of 1024 in a queue of 1024: 1024 descriptors walked, no more */
	vq_new(&vq, 1024, true, false);
	for (unsigned i = 0; i < 1024; i++)
		desc(TABLE, i, DATA, 1, i < 1023 ? VIRTQ_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	desc(DESC, 0, TABLE, 1024 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	avail(1024, 0, 0, 1);
	CU_ASSERT_EQUAL(virtq_pop(&vq, &c), 1);
	CU_ASSERT_EQUAL(c.nr_desc, 1024);
	CU_ASSERT_TRUE(F.reads <= 1024 + 8);
}

static void test_bounds(void)
{
	struct virtq vq;
	struct virtq_chain c = chain(8);

	vq_new(&vq, 8, true, false);
	/* head index out of range */
	avail(8, 0, 8, 1);
	expect_bad(&vq, &c, "avail ring names descriptor 8");
	/* next index out of range */
	desc(DESC, 1, DATA, 16, VIRTQ_DESC_F_NEXT, 8);
	avail(8, 0, 1, 1);
	expect_bad(&vq, &c, "index 8 out of range");
	/* next out of range of an indirect table (the queue would allow it) */
	desc(DESC, 1, TABLE, 2 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	desc(TABLE, 0, DATA, 16, VIRTQ_DESC_F_NEXT, 2);
	expect_bad(&vq, &c, "index 2 out of range (indirect table of 2)");
	/* the descriptor table cannot be read */
	vq_new(&vq, 8, true, false);
	desc(DESC, 1, TABLE, 2 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	avail(8, 0, 1, 1);
	F.fail_lo = TABLE;
	F.fail_hi = TABLE + 16;
	expect_bad(&vq, &c, "cannot read descriptor 0");
	F.fail_lo = F.fail_hi = 0;
	/* a table running past the end of RAM, and one wrapping 2^64 */
	desc(DESC, 1, RAM - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
	desc(RAM - 16, 0, DATA, 16, VIRTQ_DESC_F_NEXT, 1);
	expect_bad(&vq, &c, "cannot read descriptor 1");
	desc(DESC, 1, -16ull, 32, VIRTQ_DESC_F_INDIRECT, 0);
	expect_bad(&vq, &c, "wraps");
	/* buffers anywhere are the device's business, not the walker's: taken as they are */
	desc(DESC, 1, -1ull, 0xffffffffu, VIRTQ_DESC_F_WRITE, 0);
	CU_ASSERT_EQUAL(virtq_pop(&vq, &c), 1);
	CU_ASSERT_EQUAL(c.last.gpa, -1ull);
	CU_ASSERT_EQUAL(c.in_len, 0xffffffffu);
}

static void test_indirect_rules(void)
{
	struct virtq vq;
	struct virtq_chain c = chain(8);

	/* INDIRECT not negotiated */
	vq_new(&vq, 8, false, false);
	desc(DESC, 0, TABLE, 32, VIRTQ_DESC_F_INDIRECT, 0);
	avail(8, 0, 0, 1);
	expect_bad(&vq, &c, "not negotiated");
	vq_new(&vq, 8, true, false);
	avail(8, 0, 0, 1);
	/* nested */
	desc(DESC, 0, TABLE, 32, VIRTQ_DESC_F_INDIRECT, 0);
	desc(TABLE, 0, DATA, 16, VIRTQ_DESC_F_NEXT, 1);
	desc(TABLE, 1, TABLE + 0x1000, 32, VIRTQ_DESC_F_INDIRECT, 0);
	expect_bad(&vq, &c, "inside an indirect table");
	/* INDIRECT with NEXT */
	desc(DESC, 0, TABLE, 32, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
	expect_bad(&vq, &c, "both INDIRECT and NEXT");
	/* lengths 0 and 24 */
	desc(DESC, 0, TABLE, 0, VIRTQ_DESC_F_INDIRECT, 0);
	expect_bad(&vq, &c, "length 0");
	desc(DESC, 0, TABLE, 24, VIRTQ_DESC_F_INDIRECT, 0);
	expect_bad(&vq, &c, "length 24");
	/* a well-formed mixed chain: direct header, then a table; WRITE on the table's
	 * descriptor is ignored */
	desc(DESC, 0, DATA, 16, VIRTQ_DESC_F_NEXT, 6);
	desc(DESC, 6, TABLE, 32, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, 0);
	desc(TABLE, 0, DATA + 0x100, 512, VIRTQ_DESC_F_NEXT, 1);
	desc(TABLE, 1, DATA + 0x400, 1, VIRTQ_DESC_F_WRITE, 0);
	CU_ASSERT_EQUAL(virtq_pop(&vq, &c), 1);
	CU_ASSERT_EQUAL(c.nr_desc, 3);
	CU_ASSERT_EQUAL(c.out_len, 528);
	CU_ASSERT_EQUAL(c.in_len, 1);
	CU_ASSERT_TRUE(c.indirect);
	/* readable after writable */
	desc(DESC, 0, DATA, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	desc(DESC, 1, DATA, 16, 0, 0);
	avail(8, 1, 0, 2);
	expect_bad(&vq, &c, "device-readable descriptor 1 after");
}

static void test_avail_idx(void)
{
	struct virtq vq;
	struct virtq_chain c = chain(8);

	vq_new(&vq, 8, false, false);
	desc(DESC, 0, DATA, 1, VIRTQ_DESC_F_WRITE, 0);
	for (unsigned i = 0; i < 8; i++)
		put16(AVAIL + 4 + 2 * i, 0);
	/* a jump of exactly the queue size is allowed, one more is not */
	put16(AVAIL + 2, 9);
	expect_bad(&vq, &c, "avail index moved from 0 to 9");
	put16(AVAIL + 2, 8);
	for (unsigned i = 0; i < 8; i++)
		CU_ASSERT_EQUAL(virtq_pop(&vq, &c), 1);
	CU_ASSERT_EQUAL(virtq_pop(&vq, &c), 0);
	/* backwards is a jump too */
	put16(AVAIL + 2, 7);
	expect_bad(&vq, &c, "avail index moved from 8 to 7");
	/* wrapping at 2^16 is not */
	vq_new(&vq, 8, false, false);
	desc(DESC, 0, DATA, 1, VIRTQ_DESC_F_WRITE, 0);
	vq.last_avail = vq.avail_idx = 65534;
	vq.used_idx = 65535;
	put16(AVAIL + 2, 2);
	for (unsigned i = 0; i < 4; i++)
		CU_ASSERT_EQUAL(virtq_pop(&vq, &c), 1);
	CU_ASSERT_EQUAL(virtq_pop(&vq, &c), 0);
	/* used slots wrap with the index: 65535 is slot 7, 0 is slot 0 */
	CU_ASSERT_EQUAL(virtq_used_add(&vq, 0, 11), 0);
	CU_ASSERT_EQUAL(virtq_used_add(&vq, 0, 22), 0);
	CU_ASSERT_EQUAL(virtq_used_flush(&vq), 0);
	CU_ASSERT_EQUAL(get32(USED + 4 + 8 * 7 + 4), 11);
	CU_ASSERT_EQUAL(get32(USED + 4 + 8 * 0 + 4), 22);
	CU_ASSERT_EQUAL(get16(USED + 2), 1);
	CU_ASSERT_EQUAL(F.bad_writes, 0);
}

static void test_event_idx(void)
{
	struct virtq vq;
	struct virtq_chain c = chain(8);
	uint64_t avail_event = USED + 4 + 8 * 8;

	vq_new(&vq, 8, false, true);
	put16(avail_event, 0xbeef);
	desc(DESC, 0, DATA, 1, VIRTQ_DESC_F_WRITE, 0);
	CU_ASSERT_EQUAL(virtq_arm_notify(&vq), 0); /* nothing: may sleep */
	CU_ASSERT_EQUAL(get16(avail_event), 0);
	avail(8, 0, 0, 1);
	avail(8, 1, 0, 2);
	CU_ASSERT_EQUAL(virtq_pop(&vq, &c), 1);
	CU_ASSERT_EQUAL(virtq_arm_notify(&vq), 1); /* one more is there: do not sleep */
	CU_ASSERT_EQUAL(virtq_pop(&vq, &c), 1);
	CU_ASSERT_EQUAL(virtq_arm_notify(&vq), 0);
	CU_ASSERT_EQUAL(get16(avail_event), 2); /* notify me when you publish slot 2 */
	/* published between the event write and the re-read: seen, no sleep */
	avail(8, 2, 0, 3);
	CU_ASSERT_EQUAL(virtq_arm_notify(&vq), 1);
	CU_ASSERT_EQUAL(F.bad_writes, 0);
	/* without EVENT_IDX nothing is written */
	vq_new(&vq, 8, false, false);
	CU_ASSERT_EQUAL(virtq_arm_notify(&vq), 0);
	CU_ASSERT_EQUAL(F.writes, 0);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/*
 * Random rings: descriptor tables and indirect tables full of random (but mostly
 * plausible) values. Whatever happens, the walker reads at most queue size + one table's
 * worth of descriptors per chain, writes nothing outside the used ring, and every chain
 * it returns obeys the limits.
 */
static void test_random(void)
{
	uint64_t s = unit_seed(0x5eed7a11c0ffeeull);
	unsigned good = 0, bad = 0;

	for (unsigned round = 0; round < 3000; round++) {
		uint16_t size = (uint16_t)(1u << (rnd(&s) % 9));
		struct virtq vq;
		struct virtq_chain c = chain((unsigned)(rnd(&s) % 8));

		vq_new(&vq, size, rnd(&s) & 1, rnd(&s) & 1);
		for (unsigned i = 0; i < size; i++) {
			uint64_t r = rnd(&s);
			uint16_t flags = (uint16_t)(r & 7);
			uint32_t len = (uint32_t)(r >> 8) % 4 ? (uint32_t)(r >> 16) % 64 :
								 16 * (uint32_t)((r >> 20) % (size + 2));

			desc(DESC, i, flags & VIRTQ_DESC_F_INDIRECT ? TABLE : DATA, len, flags,
			     (uint16_t)((r >> 32) % (size + 1)));
		}
		for (unsigned i = 0; i < 1024; i++) {
			uint64_t r = rnd(&s);

			desc(TABLE, i, r & 1 ? TABLE : DATA, (uint32_t)(r >> 8) % 64,
			     (uint16_t)((r >> 4) & 7), (uint16_t)((r >> 32) % (size + 2)));
		}
		for (unsigned i = 0; i < size; i++)
			put16(AVAIL + 4 + 2 * i, (uint16_t)(rnd(&s) % (size + 1)));
		put16(AVAIL + 2, (uint16_t)(rnd(&s) % (size + 2)));
		for (unsigned n = 0; n < size + 2u; n++) {
			uint64_t reads = F.reads;
			int r = virtq_pop(&vq, &c);

			CU_ASSERT_TRUE(F.reads - reads <= 2u + size + size);
			if (r <= 0) {
				bad += r < 0;
				break;
			}
			good++;
			CU_ASSERT_TRUE(c.nr_desc >= 1 && c.nr_desc <= size);
			CU_ASSERT_TRUE(c.nr_seg <= c.max_seg && c.nr_seg <= c.nr_desc);
			CU_ASSERT_TRUE(c.head < size);
			CU_ASSERT_EQUAL(virtq_used_add(&vq, c.head, 1), 0);
		}
		CU_ASSERT_EQUAL(virtq_used_flush(&vq), 0);
		CU_ASSERT_EQUAL(virtq_arm_notify(&vq) >= -EBADMSG, 1);
		CU_ASSERT_EQUAL(F.bad_writes, 0);
	}
	/* the generator must exercise both outcomes */
	CU_ASSERT_TRUE(good > 100);
	CU_ASSERT_TRUE(bad > 100);
}

static CU_TestInfo tests[] = {
	{ "ring geometry checks", test_ring_check },
	{ "a chain in, a used entry out", test_simple_chain },
	{ "descriptor loops are refused", test_loops },
	{ "chains up to the queue size, no longer", test_long_chains },
	{ "indices and tables out of bounds", test_bounds },
	{ "indirect table rules", test_indirect_rules },
	{ "avail index jumps and wrapping", test_avail_idx },
	{ "EVENT_IDX avail_event", test_event_idx },
	{ "random rings keep every bound", test_random },
	CU_TEST_INFO_NULL,
};

UNIT_MAIN("virtq", tests)
