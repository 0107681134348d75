// SPDX-License-Identifier: MIT
/*
 * blkbench.elf [mode=seqread|seqwrite|randread|randwrite] [bs=SIZE] [qd=N] [seconds=N]
 *              [disk=K] [indirect=0] [event_idx=0]
 *
 * Throughput and latency of virtio-blk disk K (default 0): qd (1..64, default 16)
 * requests of bs bytes (a multiple of 512 up to 1 MiB, default 64K) kept in flight for N
 * seconds (default 2), each from its own buffer. Sequential modes walk the disk and wrap;
 * random modes pick bs-aligned offsets. Setup (device init, buffers, TSC calibration) is
 * not timed. Latency is submit to reaped completion, by rdtsc calibrated against the
 * host's CLOCK_MONOTONIC, kept in a log-linear histogram (32 buckets per octave, ~3%).
 * indirect=0 / event_idx=0 keep the driver from accepting those ring features.
 *
 * Reports blk_mbps (1e6 bytes/s), blk_iops, blk_p50_us, blk_p99_us, blk_ops. Exit 0, 1 on
 * an I/O error or a stuck device, 2 on bad arguments or no disk.
 */
#include "guest.h"
#include "virtio.h"

#define MAX_QD 64u
#define MAX_BS (1u << 20)
#define HIST_SUB 32u /* buckets per octave */
#define HIST_N (60u * HIST_SUB)

enum mode { SEQREAD, SEQWRITE, RANDREAD, RANDWRITE };

static const char *const mode_name[] = { "seqread", "seqwrite", "randread", "randwrite" };

static uint32_t hist[HIST_N];

/* Histogram bucket of @v ns: exact below 32, then 32 per power of two. */
static unsigned hist_idx(uint64_t v)
{
	unsigned e;

	if (v < HIST_SUB)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v);
	return (e - 4) * HIST_SUB + (unsigned)((v >> (e - 5)) & (HIST_SUB - 1));
}

/* Middle of bucket @i, ns. */
static uint64_t hist_val(unsigned i)
{
	unsigned e = i / HIST_SUB + 4, sub = i % HIST_SUB;

	if (i < HIST_SUB)
		return i;
	return ((uint64_t)(HIST_SUB + sub) << (e - 5)) + ((1ull << (e - 5)) >> 1);
}

/* Value at quantile @q (0..1] of the @n samples. */
static uint64_t hist_quantile(uint64_t n, double q)
{
	uint64_t rank = (uint64_t)(q * (double)n + 0.999999), seen = 0;

	for (unsigned i = 0; i < HIST_N; i++) {
		seen += hist[i];
		if (seen >= rank && hist[i])
			return hist_val(i);
	}
	return 0;
}

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static int parse_mode(const char *s, enum mode *m)
{
	for (unsigned i = 0; i < 4; i++)
		if (!strcmp(s, mode_name[i])) {
			*m = (enum mode)i;
			return 0;
		}
	return -1;
}

static struct vblk dev;

int main(int argc, char **argv)
{
	struct vblk *d = &dev;
	struct vheap heap;
	enum mode mode = SEQREAD;
	uint64_t bs = 64 << 10, qd = 16, seconds = 2, disk = 0, indirect = 1, event_idx = 1;
	uint64_t nblk, next = 0, ops = 0, bytes = 0, t0, tsc_end, t1, c0, c1, tsc0, tsc1;
	uint64_t notifies = 0, skipped = 0;
	static uint64_t sent[MAX_QD]; /* TSC at submit, 0 when the slot is free */
	static uint8_t *buf[MAX_QD];
	double ns_per_tick;
	bool stopping = false;
	unsigned inflight = 0;
	const char *a;
	int r, ret = 0;

	if (((a = g_arg(argc, argv, "mode")) && parse_mode(a, &mode)) ||
	    ((a = g_arg(argc, argv, "bs")) &&
	     (g_parse_size(a, &bs) || !bs || bs % VBLK_SECTOR || bs > MAX_BS)) ||
	    ((a = g_arg(argc, argv, "qd")) && (g_parse_u64(a, &qd) || !qd || qd > MAX_QD)) ||
	    ((a = g_arg(argc, argv, "seconds")) && (g_parse_u64(a, &seconds) || !seconds)) ||
	    ((a = g_arg(argc, argv, "disk")) && g_parse_u64(a, &disk)) ||
	    ((a = g_arg(argc, argv, "indirect")) && g_parse_u64(a, &indirect)) ||
	    ((a = g_arg(argc, argv, "event_idx")) && g_parse_u64(a, &event_idx))) {
		g_printf("blkbench: bad argument %s (mode=seqread|seqwrite|randread|randwrite "
			 "bs=512..1M qd=1..%u seconds=N disk=K indirect=0|1 event_idx=0|1)\n", a,
			 MAX_QD);
		return 2;
	}
	vheap_init(&heap, g_boot->heap_start, g_boot->mem_size);
	r = vblk_open(d, (unsigned)disk, &heap);
	if (!r && (!indirect || !event_idx)) {
		d->want &= ~((indirect ? 0 : 1ull << VIRTIO_F_RING_INDIRECT_DESC) |
			     (event_idx ? 0 : 1ull << VIRTIO_F_RING_EVENT_IDX));
		r = vblk_init(d);
	}
	if (r) {
		g_printf("blkbench: no usable virtio-blk disk %lu: %d\n", (unsigned long)disk, r);
		return 2;
	}
	nblk = d->capacity * VBLK_SECTOR / bs;
	if (!nblk) {
		g_printf("blkbench: disk of %lu sectors is smaller than bs=%lu\n",
			 (unsigned long)d->capacity, (unsigned long)bs);
		return 2;
	}
	if ((mode == SEQWRITE || mode == RANDWRITE) && d->ro) {
		g_printf("blkbench: disk %lu is read-only\n", (unsigned long)disk);
		return 2;
	}
	for (unsigned i = 0; i < qd; i++) {
		buf[i] = vheap_alloc(&heap, bs, 4096);
		if (!buf[i]) {
			g_printf("blkbench: no memory for %lu buffers of %lu bytes\n",
				 (unsigned long)qd, (unsigned long)bs);
			return 2;
		}
		for (uint64_t j = 0; j < bs; j += 8)
			*(uint64_t *)(buf[i] + j) = j * 0x9e3779b97f4a7c15ull + i;
	}
	/* calibrate the TSC against the host clock over ~20 ms */
	c0 = g_clock_ns();
	tsc0 = g_rdtsc();
	while ((c1 = g_clock_ns()) - c0 < 20000000)
		;
	tsc1 = g_rdtsc();
	ns_per_tick = (double)(c1 - c0) / (double)(tsc1 - tsc0);

	/* the end is watched on the TSC: a clock hypercall is an exit */
	t0 = g_clock_ns();
	tsc_end = g_rdtsc() + (uint64_t)((double)seconds * 1e9 / ns_per_tick);
	for (;;) {
		struct vblk_done dn;

		while (!stopping && inflight < qd) {
			struct vblk_req q = { .nseg = 1 };
			unsigned slot = 0;
			uint64_t blk;

			while (sent[slot]) /* a slot not in flight: inflight < qd */
				slot++;
			if (mode == SEQREAD || mode == SEQWRITE) {
				blk = next;
				next = next + 1 == nblk ? 0 : next + 1;
			} else {
				blk = rnd() % nblk;
			}
			q.type = mode == SEQREAD || mode == RANDREAD ? VIRTIO_BLK_T_IN
								     : VIRTIO_BLK_T_OUT;
			q.sector = blk * (bs / VBLK_SECTOR);
			q.queue = slot % d->nr_queues;
			q.cookie = slot;
			q.seg[0] = (struct vblk_seg){ buf[slot], (uint32_t)bs };
			sent[slot] = g_rdtsc() | 1;
			r = vblk_submit(d, &q);
			if (r == -VIO_EAGAIN && inflight) {
				/* short of descriptors (direct chains): reap first */
				sent[slot] = 0;
				if (mode == SEQREAD || mode == SEQWRITE)
					next = blk;
				break;
			}
			if (r < 0) {
				g_printf("blkbench: submit failed: %d\n", r);
				return 1;
			}
			inflight++;
		}
		if (!inflight)
			break;
		r = vblk_wait(d, &dn, d->timeout_ns);
		if (r != 1) {
			g_printf("blkbench: %s with %u requests in flight\n",
				 r == 0 ? "no completion within 2 s"
					: "device needs reset or bad used entry",
				 inflight);
			return 1;
		}
		hist[hist_idx((uint64_t)((double)(g_rdtsc() - sent[dn.cookie]) * ns_per_tick))]++;
		sent[dn.cookie] = 0;
		inflight--;
		if (dn.status != VIRTIO_BLK_S_OK) {
			g_printf("blkbench: request at slot %lu: status %u\n",
				 (unsigned long)dn.cookie, dn.status);
			ret = 1;
			stopping = true;
			continue;
		}
		ops++;
		bytes += bs;
		if (!(ops % 16) && (int64_t)(g_rdtsc() - tsc_end) >= 0)
			stopping = true;
	}
	t1 = g_clock_ns();
	for (unsigned i = 0; i < d->nr_queues; i++) {
		notifies += d->vq[i].notifies;
		skipped += d->vq[i].notifies_skipped;
	}

	{
		double s = (double)(t1 - t0) / 1e9;
		double mbps = (double)bytes / s / 1e6, iops = (double)ops / s;
		uint64_t p50 = hist_quantile(ops, 0.50), p99 = hist_quantile(ops, 0.99);

		g_printf("blkbench: %s bs=%lu qd=%lu queues=%u: %lu ops in %lu ms, %lu MB/s, %lu IOPS, "
			 "p50 %lu us, p99 %lu us; notifies %lu, skipped %lu\n",
			 mode_name[mode], (unsigned long)bs, (unsigned long)qd, d->nr_queues,
			 (unsigned long)ops, (unsigned long)((t1 - t0) / 1000000),
			 (unsigned long)mbps, (unsigned long)iops, (unsigned long)(p50 / 1000),
			 (unsigned long)(p99 / 1000), (unsigned long)notifies,
			 (unsigned long)skipped);
		g_report("blk_mbps", mbps, "MB/s");
		g_report("blk_iops", iops, "IOPS");
		g_report("blk_p50_us", (double)p50 / 1e3, "us");
		g_report("blk_p99_us", (double)p99 / 1e3, "us");
		g_report("blk_ops", (double)ops, "ops");
	}
	return ret;
}
