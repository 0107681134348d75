// SPDX-License-Identifier: MIT
/*
 * blkcheck.elf [seconds=N] [qd=N] [disk=K] [span=SIZE] [seed=N] [indirect=0] [event_idx=0]
 *
 * Data integrity of virtio-blk disk K (default 0) with qd (1..64, default 8) requests in
 * flight for N seconds (default 2). The disk's first span bytes (default: all of it, at
 * most 256 MiB) are cut into 4 KiB blocks. Every block written carries a
 * header (magic, block number, sequence number) and a checksum over the whole block; a
 * shadow in guest memory says what each block must hold: a sequence number, zeros (after
 * WRITE_ZEROES or DISCARD), or unknown. Requests are 4..64 KiB at random blocks, never two
 * in flight over the same block; their data is split into 1..3 segments, each from a
 * buffer on a different guest node, so every node's memory is read and written by the
 * device. The mix: writes, reads (verified on completion), DISCARD and WRITE_ZEROES (the
 * blocks must then read as zeros), FLUSH and GET_ID ("s2vm-..."). A directed check of
 * write / read / discard / write-zeroes runs first; once the time is up every block of
 * the span is read back and verified. indirect=0 / event_idx=0 keep the driver from
 * accepting those ring features (the device's direct-chain and notify-always paths).
 *
 * Reports blk_writes, blk_reads (requests), blk_mismatches (blocks, must be 0), blk_bytes
 * (data moved), blk_errors (requests answered with a status other than OK, or lost),
 * blk_nodeN_bytes (data through guest node N's buffers). Exit 0 iff no mismatch, no error
 * and something was written and read; 2 on bad arguments, no disk or too little memory.
 * Guest nodes with less than 1 MiB of heap get no buffers.
 */
#include "guest.h"
#include "virtio.h"

#define BLK 4096u
#define SPB (BLK / VBLK_SECTOR) /* sectors per block */
#define REQ_BLOCKS 16u /* at most 64 KiB per request */
#define MAX_QD 64u
#define MAX_SPAN (256ull << 20)
#define BLK_MAGIC 0x6b6863656b6c6273ull /* "sblkechk" */
#define SEQ_ZERO 0u /* shadow: the block reads as zeros */
#define SEQ_UNKNOWN 0xffffffffu /* shadow: never written by us */
#define MAX_NODES S2_MAX_GUEST_NODES

enum op_kind { OP_READ, OP_WRITE, OP_DISCARD, OP_WZ, OP_FLUSH, OP_GET_ID };

static const char *const op_name[] = { "read", "write", "discard", "write-zeroes", "flush",
				       "get-id" };

/* The header every written block starts with; sum covers the block with sum = 0. */
struct blk_head {
	uint64_t magic;
	uint64_t blk;
	uint32_t seq;
	uint32_t pad;
	uint64_t sum;
};

#define SUM_WORD (__builtin_offsetof(struct blk_head, sum) / 8)

/* One in-flight request (index = the request's cookie). */
struct op {
	enum op_kind kind;
	bool active;
	uint64_t blk; /* first block */
	unsigned nblk;
	unsigned nseg;
	unsigned node0; /* segment j uses buf[slot][node0 + j] */
	uint32_t seq; /* OP_WRITE */
};

struct check {
	struct vblk d;
	uint64_t nblocks; /* span in blocks */
	uint32_t *shadow; /* [nblocks] */
	uint8_t *busy; /* [nblocks]: a request in flight covers it */
	unsigned qd, nr_nodes, inflight;
	uint8_t *buf[MAX_QD][MAX_NODES]; /* REQ_BLOCKS * BLK each, on node [n] */
	unsigned buf_node[MAX_NODES]; /* guest node each buffer column sits on */
	char *idbuf[MAX_QD];
	struct op op[MAX_QD];
	uint64_t rng;
	uint32_t seq;
	uint64_t writes, reads, discards, wzs, flushes, ids, bytes, mismatches, errors;
	uint64_t node_bytes[MAX_NODES];
};

static uint64_t rnd(struct check *c)
{
	c->rng ^= c->rng << 13;
	c->rng ^= c->rng >> 7;
	c->rng ^= c->rng << 17;
	return c->rng;
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

static uint64_t blk_sum(const uint64_t *w)
{
	uint64_t s = 0x9e3779b97f4a7c15ull;

	for (unsigned i = 0; i < BLK / 8; i++)
		s = (s ^ (i == SUM_WORD ? 0 : w[i])) * 0x100000001b3ull + i;
	return s;
}

static void blk_fill(uint8_t *p, uint64_t blk, uint32_t seq)
{
	uint64_t *w = (uint64_t *)p;
	struct blk_head *h = (struct blk_head *)p;
	uint64_t x = mix(blk * 0x10001ull ^ ((uint64_t)seq << 40));

	for (unsigned i = sizeof(*h) / 8; i < BLK / 8; i++)
		w[i] = x + i * 0x9e3779b97f4a7c15ull;
	*h = (struct blk_head){ .magic = BLK_MAGIC, .blk = blk, .seq = seq };
	h->sum = blk_sum(w);
}

/* Check one block read back against the shadow; counts and reports a mismatch. */
static void blk_verify(struct check *c, const uint8_t *p, uint64_t blk)
{
	const struct blk_head *h = (const struct blk_head *)p;
	uint32_t want = c->shadow[blk];
	const char *why = NULL;

	if (want == SEQ_UNKNOWN)
		return;
	if (want == SEQ_ZERO) {
		for (unsigned i = 0; i < BLK; i++)
			if (p[i]) {
				why = "not zero";
				break;
			}
	} else if (h->magic != BLK_MAGIC) {
		why = "no header";
	} else if (h->blk != blk) {
		why = "wrong block";
	} else if (h->seq != want) {
		why = "wrong sequence";
	} else if (h->sum != blk_sum((const uint64_t *)p)) {
		why = "bad checksum";
	}
	if (!why)
		return;
	if (c->mismatches++ < 8)
		g_printf("blkcheck: block %lu (sector %lu): %s: want seq %u, header says block %lu seq %u\n",
			 (unsigned long)blk, (unsigned long)(blk * SPB), why, want,
			 (unsigned long)h->blk, h->seq);
}

/* Block of the request's data at block offset @i: its segment's buffer. */
static uint8_t *op_block(struct check *c, unsigned slot, unsigned i)
{
	const struct op *o = &c->op[slot];
	unsigned j = i * o->nseg / o->nblk; /* segment of block i: see op_segs() */

	return c->buf[slot][(o->node0 + j) % c->nr_nodes] + (uint64_t)i * BLK;
}

/* Split the request's blocks into nseg segments, segment j on node node0 + j. */
static void op_segs(struct check *c, unsigned slot, struct vblk_req *r)
{
	const struct op *o = &c->op[slot];
	unsigned start = 0;

	r->nseg = o->nseg;
	for (unsigned j = 0; j < o->nseg; j++) {
		unsigned end = start;
		unsigned node = (o->node0 + j) % c->nr_nodes;

		while (end < o->nblk && end * o->nseg / o->nblk == j)
			end++;
		r->seg[j] = (struct vblk_seg){ c->buf[slot][node] + (uint64_t)start * BLK,
					       (end - start) * BLK };
		start = end;
	}
}

/*
 * Issue @kind over blocks [blk, blk + nblk) in free slot @slot (the blocks must not be
 * busy). Returns 0; 1 when the driver is short of descriptors or slots (reap, then try
 * again); -1 when it refused the request (counted as an error).
 */
static int op_issue(struct check *c, unsigned slot, enum op_kind kind, uint64_t blk,
		    unsigned nblk)
{
	struct op *o = &c->op[slot];
	struct vblk_req r = { .cookie = slot, .queue = slot % c->d.nr_queues };
	unsigned maxseg = c->d.seg_max < 3 ? c->d.seg_max : 3;
	uint32_t seq = 0;
	int ret;

	*o = (struct op){ .kind = kind, .blk = blk, .nblk = nblk };
	if (nblk)
		o->nseg = 1 + (unsigned)(rnd(c) % (nblk < maxseg ? nblk : maxseg));
	o->node0 = (unsigned)(rnd(c) % c->nr_nodes);
	r.sector = blk * SPB;
	switch (kind) {
	case OP_READ:
		r.type = VIRTIO_BLK_T_IN;
		op_segs(c, slot, &r);
		break;
	case OP_WRITE:
		r.type = VIRTIO_BLK_T_OUT;
		seq = c->seq + 1 == SEQ_UNKNOWN ? 1 : c->seq + 1;
		for (unsigned i = 0; i < nblk; i++)
			blk_fill(op_block(c, slot, i), blk + i, seq);
		op_segs(c, slot, &r);
		break;
	case OP_DISCARD:
	case OP_WZ:
		r.type = kind == OP_DISCARD ? VIRTIO_BLK_T_DISCARD : VIRTIO_BLK_T_WRITE_ZEROES;
		r.nr_sectors = nblk * SPB;
		r.flags = kind == OP_WZ && (rnd(c) & 1) ? VIRTIO_BLK_WZ_F_UNMAP : 0;
		break;
	case OP_FLUSH:
		r.type = VIRTIO_BLK_T_FLUSH;
		break;
	case OP_GET_ID:
		r.type = VIRTIO_BLK_T_GET_ID;
		r.nseg = 1;
		memset(c->idbuf[slot], 0, VIRTIO_BLK_ID_BYTES + 1);
		r.seg[0] = (struct vblk_seg){ c->idbuf[slot], VIRTIO_BLK_ID_BYTES };
		break;
	}
	ret = vblk_submit(&c->d, &r);
	if (ret == -VIO_EAGAIN)
		return 1;
	if (ret < 0) {
		if (c->errors++ < 8)
			g_printf("blkcheck: submit %s of %u blocks at block %lu failed: %d\n",
				 op_name[kind], nblk, (unsigned long)blk, ret);
		return -1;
	}
	/* what the blocks hold once it completes; no read of them is issued meanwhile */
	if (kind == OP_WRITE)
		o->seq = c->seq = seq;
	for (unsigned i = 0; i < nblk; i++) {
		if (kind == OP_WRITE)
			c->shadow[blk + i] = seq;
		else if (kind == OP_DISCARD || kind == OP_WZ)
			c->shadow[blk + i] = SEQ_ZERO;
		c->busy[blk + i] = 1;
	}
	o->active = true;
	c->inflight++;
	return 0;
}

static void op_complete(struct check *c, const struct vblk_done *dn)
{
	unsigned slot = (unsigned)dn->cookie;
	struct op *o = &c->op[slot];

	if (slot >= c->qd || !o->active) {
		g_printf("blkcheck: completion for idle slot %u\n", slot);
		c->errors++;
		return;
	}
	if (dn->status != VIRTIO_BLK_S_OK) {
		if (c->errors++ < 8)
			g_printf("blkcheck: %s of %u blocks at block %lu: status %u (used len %u)\n",
				 op_name[o->kind], o->nblk, (unsigned long)o->blk, dn->status,
				 dn->used_len);
		/* what the device did to those blocks is now unknown */
		if (o->kind != OP_READ)
			for (unsigned i = 0; i < o->nblk; i++)
				c->shadow[o->blk + i] = SEQ_UNKNOWN;
	} else {
		if (o->kind == OP_READ || o->kind == OP_WRITE)
			for (unsigned i = 0; i < o->nblk; i++)
				c->node_bytes[(o->node0 + i * o->nseg / o->nblk) % c->nr_nodes] +=
					BLK;
		switch (o->kind) {
		case OP_READ:
			for (unsigned i = 0; i < o->nblk; i++)
				blk_verify(c, op_block(c, slot, i), o->blk + i);
			c->reads++;
			c->bytes += (uint64_t)o->nblk * BLK;
			break;
		case OP_WRITE:
			c->writes++;
			c->bytes += (uint64_t)o->nblk * BLK;
			break;
		case OP_DISCARD:
			c->discards++;
			break;
		case OP_WZ:
			c->wzs++;
			break;
		case OP_FLUSH:
			c->flushes++;
			break;
		case OP_GET_ID:
			if (strncmp(c->idbuf[slot], "s2vm-", 5)) {
				if (c->errors++ < 8)
					g_printf("blkcheck: GET_ID gave \"%s\", not s2vm-...\n",
						 c->idbuf[slot]);
			}
			c->ids++;
			break;
		}
	}
	for (unsigned i = 0; i < o->nblk; i++)
		c->busy[o->blk + i] = 0;
	o->active = false;
	c->inflight--;
}

/* Wait for one completion and handle it. Returns 0, or -1 when the device is stuck. */
static int reap(struct check *c)
{
	struct vblk_done dn;
	int r = vblk_wait(&c->d, &dn, c->d.timeout_ns);

	if (r == 1) {
		op_complete(c, &dn);
		return 0;
	}
	g_printf("blkcheck: %s with %u requests in flight\n",
		 r == 0 ? "no completion within 2 s" :
		 vblk_needs_reset(&c->d) ? "device set DEVICE_NEEDS_RESET" : "bad used entry",
		 c->inflight);
	c->errors++;
	return -1;
}

static int drain(struct check *c)
{
	while (c->inflight)
		if (reap(c))
			return -1;
	return 0;
}

static int free_slot(struct check *c)
{
	for (unsigned i = 0; i < c->qd; i++)
		if (!c->op[i].active)
			return (int)i;
	return -1;
}

static bool range_free(const struct check *c, uint64_t blk, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (c->busy[blk + i])
			return false;
	return true;
}

/* Issue one random request if a slot and its blocks are free. Returns true if issued. */
static bool issue_random(struct check *c)
{
	unsigned p = (unsigned)(rnd(c) % 100), nblk, align = 1;
	enum op_kind kind;
	int slot = free_slot(c);
	uint64_t blk;

	if (slot < 0)
		return false;
	if (p < 40)
		kind = OP_WRITE;
	else if (p < 85)
		kind = OP_READ;
	else if (p < 90)
		kind = c->d.max_discard_sectors ? OP_DISCARD : OP_WRITE;
	else if (p < 95)
		kind = c->d.max_wz_sectors ? OP_WZ : OP_WRITE;
	else if (p < 98)
		kind = OP_FLUSH;
	else
		kind = OP_GET_ID;
	if (kind == OP_FLUSH || kind == OP_GET_ID)
		return op_issue(c, (unsigned)slot, kind, 0, 0) == 0;
	nblk = 1 + (unsigned)(rnd(c) % REQ_BLOCKS);
	if (nblk > c->nblocks)
		nblk = (unsigned)c->nblocks;
	if (kind == OP_DISCARD && c->d.discard_align > SPB)
		align = c->d.discard_align / SPB;
	for (int tries = 0; tries < 8; tries++) {
		blk = rnd(c) % (c->nblocks - nblk + 1) / align * align;
		if (range_free(c, blk, nblk))
			return op_issue(c, (unsigned)slot, kind, blk, nblk) == 0;
	}
	return false;
}

/* Run one request to completion with nothing else in flight. */
static int run_one(struct check *c, enum op_kind kind, uint64_t blk, unsigned nblk)
{
	int r = op_issue(c, 0, kind, blk, nblk);

	if (r > 0) {
		g_printf("blkcheck: the queue cannot take one %s request\n", op_name[kind]);
		c->errors++;
	}
	return r ? -1 : drain(c);
}

/* Write, read back, discard (must read zeros), write, write-zeroes (zeros), flush. */
static int directed(struct check *c)
{
	unsigned n = c->nblocks < REQ_BLOCKS ? (unsigned)c->nblocks : REQ_BLOCKS;
	uint64_t before = c->mismatches + c->errors;

	if (run_one(c, OP_WRITE, 0, n) || run_one(c, OP_READ, 0, n))
		return -1;
	if (c->d.max_discard_sectors &&
	    (run_one(c, OP_DISCARD, 0, n) || run_one(c, OP_READ, 0, n)))
		return -1;
	if (c->d.max_wz_sectors && (run_one(c, OP_WRITE, 0, n) || run_one(c, OP_WZ, 0, n) ||
				    run_one(c, OP_READ, 0, n)))
		return -1;
	if (run_one(c, OP_FLUSH, 0, 0) || run_one(c, OP_GET_ID, 0, 0))
		return -1;
	return c->mismatches + c->errors == before ? 0 : -1;
}

/* Read every block of the span back and verify it. */
static int verify_all(struct check *c)
{
	uint64_t blk = 0;

	while (blk < c->nblocks || c->inflight) {
		int slot = free_slot(c);

		if (blk < c->nblocks && slot >= 0) {
			unsigned n = c->nblocks - blk < REQ_BLOCKS ? (unsigned)(c->nblocks - blk)
								   : REQ_BLOCKS;
			int r = op_issue(c, (unsigned)slot, OP_READ, blk, n);

			if (r < 0)
				return -1;
			if (!r) {
				blk += n;
				continue;
			}
		}
		if (reap(c))
			return -1;
	}
	return 0;
}

/* Per-node heaps: [max(heap_start, node start), node end); one heap when there are none. */
static unsigned node_heaps(struct vheap *h, unsigned *node)
{
	unsigned n = 0;

	for (unsigned i = 0; i < g_boot->nr_nodes && i < MAX_NODES; i++) {
		const struct s2_boot_node *bn = &g_boot->nodes[i];
		uint64_t lo = bn->gpa_start > g_boot->heap_start ? bn->gpa_start
								  : g_boot->heap_start;

		if (bn->gpa_end <= lo + (1u << 20))
			continue;
		vheap_init(&h[n], lo, bn->gpa_end);
		node[n++] = i;
	}
	if (!n) {
		vheap_init(&h[0], g_boot->heap_start, g_boot->mem_size);
		node[n++] = 0;
	}
	return n;
}

static struct check chk;

int main(int argc, char **argv)
{
	struct check *c = &chk;
	struct vheap heap[MAX_NODES];
	uint64_t seconds = 2, qd = 8, disk = 0, span = MAX_SPAN, seed = 0, t0, t_end, t1;
	uint64_t indirect = 1, event_idx = 1;
	unsigned big = 0;
	char id[VIRTIO_BLK_ID_BYTES + 1];
	const char *a;
	int r;

	if (((a = g_arg(argc, argv, "seconds")) && g_parse_u64(a, &seconds)) ||
	    ((a = g_arg(argc, argv, "qd")) && (g_parse_u64(a, &qd) || !qd || qd > MAX_QD)) ||
	    ((a = g_arg(argc, argv, "disk")) && g_parse_u64(a, &disk)) ||
	    ((a = g_arg(argc, argv, "span")) && (g_parse_size(a, &span) || span < BLK)) ||
	    ((a = g_arg(argc, argv, "seed")) && g_parse_u64(a, &seed)) ||
	    ((a = g_arg(argc, argv, "indirect")) && g_parse_u64(a, &indirect)) ||
	    ((a = g_arg(argc, argv, "event_idx")) && g_parse_u64(a, &event_idx))) {
		g_printf("blkcheck: bad argument %s (seconds=N qd=1..%u disk=K span=SIZE seed=N "
			 "indirect=0|1 event_idx=0|1)\n", a, MAX_QD);
		return 2;
	}
	c->qd = (unsigned)qd;
	c->rng = seed ? seed : (g_rdtsc() | 1);
	c->nr_nodes = node_heaps(heap, c->buf_node);
	for (unsigned i = 1; i < c->nr_nodes; i++)
		if (heap[i].end - heap[i].cur > heap[big].end - heap[big].cur)
			big = i;
	r = vblk_open(&c->d, (unsigned)disk, &heap[big]);
	if (!r && (!indirect || !event_idx)) {
		c->d.want &= ~((indirect ? 0 : 1ull << VIRTIO_F_RING_INDIRECT_DESC) |
			       (event_idx ? 0 : 1ull << VIRTIO_F_RING_EVENT_IDX));
		r = vblk_init(&c->d);
	}
	if (r) {
		g_printf("blkcheck: no usable virtio-blk disk %lu: %d\n", (unsigned long)disk, r);
		return 2;
	}
	if (c->d.capacity * VBLK_SECTOR < span)
		span = c->d.capacity * VBLK_SECTOR;
	c->nblocks = span / BLK;
	span = c->nblocks * BLK;
	if (c->nblocks < 1) {
		g_printf("blkcheck: disk of %lu sectors is too small\n",
			 (unsigned long)c->d.capacity);
		return 2;
	}
	c->shadow = vheap_alloc(&heap[big], c->nblocks * 4, 64);
	c->busy = vheap_alloc(&heap[big], c->nblocks, 64);
	for (unsigned s = 0; s < c->qd; s++) {
		c->idbuf[s] = vheap_alloc(&heap[big], 64, 64);
		for (unsigned n = 0; n < c->nr_nodes; n++)
			if (!(c->buf[s][n] = vheap_alloc(&heap[n], REQ_BLOCKS * BLK, 4096)))
				break;
		if (!c->buf[s][c->nr_nodes - 1] || !c->idbuf[s])
			break;
	}
	if (!c->shadow || !c->busy || !c->buf[c->qd - 1][c->nr_nodes - 1] ||
	    !c->idbuf[c->qd - 1]) {
		g_printf("blkcheck: not enough guest memory for qd=%u over %u nodes\n", c->qd,
			 c->nr_nodes);
		return 2;
	}
	for (uint64_t b = 0; b < c->nblocks; b++)
		c->shadow[b] = SEQ_UNKNOWN;
	r = vblk_get_id(&c->d, c->idbuf[0]);
	memcpy(id, c->idbuf[0], sizeof(id));
	if (r != VIRTIO_BLK_S_OK || strncmp(id, "s2vm-", 5)) {
		g_printf("blkcheck: GET_ID: status %d, id \"%s\"\n", r, id);
		return 1;
	}
	/* start from a known state: the whole span zeroed */
	if (c->d.max_wz_sectors) {
		for (uint64_t b = 0; b < c->nblocks;) {
			uint64_t n = c->nblocks - b;

			if (n > c->d.max_wz_sectors / SPB)
				n = c->d.max_wz_sectors / SPB;
			r = vblk_write_zeroes(&c->d, b * SPB, (uint32_t)(n * SPB), false);
			if (r != VIRTIO_BLK_S_OK) {
				g_printf("blkcheck: WRITE_ZEROES of blocks [%lu, %lu): %d\n",
					 (unsigned long)b, (unsigned long)(b + n), r);
				return 1;
			}
			for (uint64_t i = b; i < b + n; i++)
				c->shadow[i] = SEQ_ZERO;
			b += n;
		}
	}
	t0 = t1 = g_clock_ns();
	if (directed(c)) {
		g_printf("blkcheck: directed write/read/discard/write-zeroes check failed\n");
		goto out;
	}

	t0 = g_clock_ns();
	t_end = t0 + seconds * 1000000000ull;
	for (unsigned n = 0;; n++) {
		while (c->inflight < c->qd && issue_random(c))
			;
		if (c->errors > 64)
			break;
		if (c->inflight && reap(c))
			break;
		if (!(n % 16) && g_clock_ns() >= t_end)
			break;
	}
	t1 = g_clock_ns();
	if (!drain(c) && !c->errors) {
		r = vblk_flush(&c->d);
		if (r != VIRTIO_BLK_S_OK) {
			g_printf("blkcheck: final FLUSH: %d\n", r);
			c->errors++;
		}
		verify_all(c);
	}
out:
	g_printf("blkcheck: disk %lu \"%s\": %lu KiB span, qd %u, %u queue(s), %lu.%03lu s: "
		 "%lu writes, %lu reads, %lu discards, %lu write-zeroes, %lu flushes, "
		 "%lu get-ids, %lu MiB; buffers on %u node(s); %lu mismatches, %lu errors\n",
		 (unsigned long)disk, id, (unsigned long)(span >> 10), c->qd, c->d.nr_queues,
		 (unsigned long)((t1 - t0) / 1000000000ull),
		 (unsigned long)((t1 - t0) / 1000000 % 1000), (unsigned long)c->writes,
		 (unsigned long)c->reads, (unsigned long)c->discards, (unsigned long)c->wzs,
		 (unsigned long)c->flushes, (unsigned long)c->ids, (unsigned long)(c->bytes >> 20),
		 c->nr_nodes, (unsigned long)c->mismatches, (unsigned long)c->errors);
	g_report("blk_writes", (double)c->writes, "requests");
	g_report("blk_reads", (double)c->reads, "requests");
	g_report("blk_mismatches", (double)c->mismatches, "blocks");
	g_report("blk_bytes", (double)c->bytes, "bytes");
	g_report("blk_errors", (double)c->errors, "requests");
	for (unsigned n = 0; n < c->nr_nodes; n++) {
		char name[S2_HC_NAME_MAX];

		g_snprintf(name, sizeof(name), "blk_node%u_bytes", c->buf_node[n]);
		g_report(name, (double)c->node_bytes[n], "bytes");
	}
	return c->mismatches || c->errors || !c->writes || !c->reads ? 1 : 0;
}
