// SPDX-License-Identifier: MIT
/*
 * Polled virtio-balloon driver (include/balloon.h) on the transport and virtqueue layers
 * of lib/virtio.c.
 *
 * Ordering as in lib/virtio.c: x86 keeps stores and loads in order, so only compiler
 * barriers are needed around ring updates; vq_kick() has the one mfence (our avail->idx
 * before we read avail_event).
 */
#include "balloon.h"
#include "guest.h"

#define barrier() __asm__ volatile("" ::: "memory")

int vballoon_mem_info(struct s2_hc_mem_info *mi)
{
	int64_t r;

	memset(mi, 0, sizeof(*mi));
	r = g_hypercall(S2_HC_MEM_INFO, (uintptr_t)mi, sizeof(*mi), 0, 0, 0);
	if (r < 0)
		return (int)r;
	/* the fields workloads rely on come first: resident and the discard counters */
	return r >= 32 ? 0 : -VIO_EIO;
}

/* Largest power of two <= @n (n >= 1). */
static uint16_t pow2_floor(uint32_t n)
{
	uint32_t p = 1;

	while (p * 2 <= n)
		p *= 2;
	return (uint16_t)p;
}

int vballoon_open(struct vballoon *b, struct vheap *h, uint64_t want)
{
	int r;

	memset(b, 0, sizeof(*b));
	b->want = want ? want : VBALLOON_FEATURES;
	b->timeout_ns = VBALLOON_TIMEOUT_NS;
	r = vio_find(&b->dev, VIRTIO_ID_BALLOON, 0);
	if (r)
		return r;
	b->tsc_per_ms = vio_tsc_per_ms();
	for (unsigned i = 0; i < VBALLOON_NR_VQS; i++) {
		r = vq_alloc(&b->vq[i], h, VBALLOON_QUEUE_SIZE);
		if (r)
			return r;
		b->busy[i] = vheap_alloc(h, VBALLOON_QUEUE_SIZE, 8);
		if (!b->busy[i])
			return -VIO_ENOMEM;
		if (i == VB_STATS)
			continue;
		b->ind[i] = vheap_alloc(h, 16ull * VBALLOON_REPORT_MAX * VBALLOON_QUEUE_SIZE, 4096);
		if (!b->ind[i])
			return -VIO_ENOMEM;
	}
	b->stats_buf = vheap_alloc(h, sizeof(struct vballoon_stat) * VIRTIO_BALLOON_S_NR, 64);
	if (!b->stats_buf)
		return -VIO_ENOMEM;
	b->stat_mask = 1u << VIRTIO_BALLOON_S_SWAP_IN | 1u << VIRTIO_BALLOON_S_SWAP_OUT |
		       1u << VIRTIO_BALLOON_S_MAJFLT | 1u << VIRTIO_BALLOON_S_MINFLT |
		       1u << VIRTIO_BALLOON_S_MEMFREE | 1u << VIRTIO_BALLOON_S_MEMTOT |
		       1u << VIRTIO_BALLOON_S_AVAIL | 1u << VIRTIO_BALLOON_S_CACHES;
	b->stat_val[VIRTIO_BALLOON_S_MEMTOT] = g_boot->mem_size;
	b->stat_val[VIRTIO_BALLOON_S_MEMFREE] = g_boot->mem_size - g_boot->heap_start;
	b->stat_val[VIRTIO_BALLOON_S_AVAIL] = g_boot->mem_size - g_boot->heap_start;
	return vballoon_init(b);
}

bool vballoon_has(const struct vballoon *b, unsigned bit)
{
	return b->dev.features & (1ull << bit);
}

/* Fill the stats buffer from b->stat_val and add it; returns 0 or an error of add. */
static int stats_add(struct vballoon *b)
{
	struct virtq_desc d;
	unsigned k = 0;
	int head;

	for (unsigned t = 0; t < VIRTIO_BALLOON_S_NR; t++) {
		if (!(b->stat_mask >> t & 1))
			continue;
		b->stats_buf[k].tag = (uint16_t)t;
		b->stats_buf[k].val = b->stat_val[t];
		k++;
	}
	d = (struct virtq_desc){ (uintptr_t)b->stats_buf, VIRTIO_BALLOON_STAT_SIZE * k, 0, 0 };
	head = vballoon_add(b, VB_STATS, &d, 1);
	if (head < 0)
		return head;
	b->stats_out = true;
	b->stats_head = head;
	return 0;
}

int vballoon_init(struct vballoon *b)
{
	struct vio_dev *v = &b->dev;
	int next = 2, r;

	for (unsigned i = 0; i < VBALLOON_NR_VQS; i++) {
		b->qi[i] = -1; /* not negotiated */
		b->inflight[i] = 0;
		memset(b->busy[i], 0, VBALLOON_QUEUE_SIZE);
	}
	b->stats_out = false;
	r = vio_negotiate(v, b->want, b->timeout_ns);
	if (r)
		return r;
	b->qi[VB_INFLATE] = VIRTIO_BALLOON_Q_INFLATE;
	b->qi[VB_DEFLATE] = VIRTIO_BALLOON_Q_DEFLATE;
	if (vballoon_has(b, VIRTIO_BALLOON_F_STATS_VQ))
		b->qi[VB_STATS] = next++;
	if (vballoon_has(b, VIRTIO_BALLOON_F_REPORTING))
		b->qi[VB_REPORT] = next++;
	b->use_indirect = vballoon_has(b, VIRTIO_F_RING_INDIRECT_DESC);
	for (unsigned i = 0; i < VBALLOON_NR_VQS; i++) {
		uint32_t max;

		if (b->qi[i] < 0)
			continue;
		vio_write(v, VIRTIO_MMIO_QUEUE_SEL, (uint32_t)b->qi[i]);
		max = vio_read(v, VIRTIO_MMIO_QUEUE_NUM_MAX);
		if (!max) {
			r = -VIO_ENODEV;
			goto fail;
		}
		r = vq_setup(&b->vq[i], v, (unsigned)b->qi[i],
			     pow2_floor(max < VBALLOON_QUEUE_SIZE ? max : VBALLOON_QUEUE_SIZE));
		if (r)
			goto fail;
	}
	vio_driver_ok(v);
	b->actual = 0;
	vballoon_set_actual(b, 0);
	if (b->qi[VB_STATS] >= 0) {
		r = stats_add(b);
		if (r)
			goto fail;
	}
	return 0;
fail:
	vio_write(v, VIRTIO_MMIO_STATUS, vio_status(v) | VIRTIO_S_FAILED);
	return r;
}

uint32_t vballoon_target(const struct vballoon *b)
{
	return vio_cfg32(&b->dev, VIRTIO_BALLOON_CFG_NUM_PAGES);
}

void vballoon_set_actual(struct vballoon *b, uint32_t pages)
{
	b->actual = pages;
	vio_write(&b->dev, VIRTIO_MMIO_CONFIG + VIRTIO_BALLOON_CFG_ACTUAL, pages);
}

bool vballoon_needs_reset(const struct vballoon *b)
{
	return vio_status(&b->dev) & VIRTIO_S_NEEDS_RESET;
}

int vballoon_add(struct vballoon *b, enum vballoon_q r, const struct virtq_desc *ds,
		 unsigned n)
{
	struct vq *q = &b->vq[r];
	int head;

	if (r >= VBALLOON_NR_VQS || b->qi[r] < 0 || !n)
		return -VIO_EINVAL;
	if (b->use_indirect && n > 1 && b->ind[r]) {
		struct virtq_desc *t;

		if (n > VBALLOON_REPORT_MAX)
			return -VIO_EINVAL;
		head = vq_desc_get(q);
		if (head < 0)
			return -VIO_EAGAIN;
		t = b->ind[r] + (unsigned)head * VBALLOON_REPORT_MAX;
		for (unsigned i = 0; i < n; i++) {
			t[i] = ds[i];
			t[i].flags &= (uint16_t)~VIRTQ_DESC_F_NEXT;
			t[i].next = 0;
			if (i + 1 < n) {
				t[i].flags |= VIRTQ_DESC_F_NEXT;
				t[i].next = (uint16_t)(i + 1);
			}
		}
		q->desc[head] = (struct virtq_desc){ (uintptr_t)t, 16 * n, VIRTQ_DESC_F_INDIRECT,
						     0 };
	} else {
		int prev = -1;

		if (n > q->num)
			return -VIO_EINVAL;
		if (q->nr_free < n)
			return -VIO_EAGAIN;
		head = -1;
		for (unsigned i = 0; i < n; i++) {
			int di = vq_desc_get(q);

			q->desc[di] = ds[i];
			q->desc[di].flags &= (uint16_t)~VIRTQ_DESC_F_NEXT;
			q->desc[di].next = 0;
			if (prev >= 0) {
				q->desc[prev].flags |= VIRTQ_DESC_F_NEXT;
				q->desc[prev].next = (uint16_t)di;
			} else {
				head = di;
			}
			prev = di;
		}
	}
	b->busy[r][head] = 1;
	b->inflight[r]++;
	vq_publish(q, (uint16_t)head);
	if (vq_kick(q))
		b->notifies++;
	return head;
}

/* Pop one used entry of role @r if there is one: 1 with @e, 0 none, -VIO_EIO foreign. */
static int reap_one(struct vballoon *b, enum vballoon_q r, struct virtq_used_elem *e)
{
	struct vq *q = &b->vq[r];

	if (!vq_used_pop(q, e))
		return 0;
	if (e->id >= q->num || !b->busy[r][e->id]) {
		g_printf("virtio-balloon: queue %d: used entry names descriptor %u, not a chain of ours\n",
			 b->qi[r], e->id);
		return -VIO_EIO;
	}
	if (e->len)
		b->bad_used_len++;
	barrier();
	vq_chain_put(q, (uint16_t)e->id);
	b->busy[r][e->id] = 0;
	b->inflight[r]--;
	return 1;
}

int vballoon_poll(struct vballoon *b)
{
	struct virtq_used_elem e;
	int r;

	if (b->qi[VB_STATS] < 0 || !vq_used_pending(&b->vq[VB_STATS]))
		return 0;
	r = reap_one(b, VB_STATS, &e);
	if (r <= 0)
		return r;
	b->stats_out = false;
	b->stats_returns++;
	r = stats_add(b);
	return r < 0 ? -VIO_EIO : 1;
}

int vballoon_reap(struct vballoon *b, enum vballoon_q r, struct virtq_used_elem *e,
		  uint64_t timeout_ns)
{
	struct vio_wait w;

	vio_wait_start(&w, b->tsc_per_ms, VBALLOON_CHECK_MAX_MS);
	for (;;) {
		int x = reap_one(b, r, e);

		if (x)
			return x;
		if (r != VB_STATS && vballoon_poll(b) < 0)
			return -VIO_EIO;
		x = vio_wait_idle(&w, &b->dev, timeout_ns);
		if (x < 0)
			return x;
		if (x)
			return reap_one(b, r, e);
	}
}

/* Wait for one buffer of @r back; 0, or -VIO_ETIMEDOUT / -VIO_EIO. */
static int reap_wait(struct vballoon *b, enum vballoon_q r)
{
	struct virtq_used_elem e;
	int x = vballoon_reap(b, r, &e, b->timeout_ns);

	if (x < 0)
		return x;
	return x ? 0 : -VIO_ETIMEDOUT;
}

/* Wait for every buffer of @r in flight. */
static int drain(struct vballoon *b, enum vballoon_q r)
{
	while (b->inflight[r]) {
		int x = reap_wait(b, r);

		if (x)
			return x;
	}
	return 0;
}

static int xflate(struct vballoon *b, enum vballoon_q r, const uint32_t *pfn, uint64_t n)
{
	uint64_t i = 0;

	if (b->qi[r] < 0)
		return -VIO_EINVAL;
	while (i < n) {
		uint64_t cnt = n - i < VBALLOON_PFNS_PER_BUF ? n - i : VBALLOON_PFNS_PER_BUF;
		struct virtq_desc d = { (uintptr_t)(pfn + i), (uint32_t)(4 * cnt), 0, 0 };
		int x = vballoon_add(b, r, &d, 1);

		if (x == -VIO_EAGAIN) {
			x = reap_wait(b, r);
			if (x)
				return x;
			continue;
		}
		if (x < 0)
			return x;
		i += cnt;
	}
	return drain(b, r);
}

int vballoon_inflate(struct vballoon *b, const uint32_t *pfn, uint64_t n)
{
	int r = xflate(b, VB_INFLATE, pfn, n);

	if (!r)
		b->inflated += n;
	return r;
}

int vballoon_deflate(struct vballoon *b, const uint32_t *pfn, uint64_t n)
{
	int r = xflate(b, VB_DEFLATE, pfn, n);

	if (!r)
		b->deflated += n;
	return r;
}

int vballoon_report(struct vballoon *b, const struct vballoon_range *rg, unsigned n)
{
	struct virtq_desc ds[VBALLOON_REPORT_MAX];
	unsigned per, i = 0;
	uint64_t pages = 0;
	int x;

	if (b->qi[VB_REPORT] < 0)
		return -VIO_EINVAL;
	per = VBALLOON_REPORT_MAX;
	if (!b->use_indirect && per > b->vq[VB_REPORT].num)
		per = b->vq[VB_REPORT].num;
	for (unsigned k = 0; k < n; k++)
		if (rg[k].len >= (1ull << 32))
			return -VIO_EINVAL;
	while (i < n) {
		unsigned cnt = n - i < per ? n - i : per;

		for (unsigned k = 0; k < cnt; k++)
			ds[k] = (struct virtq_desc){ rg[i + k].addr, (uint32_t)rg[i + k].len,
						     VIRTQ_DESC_F_WRITE, 0 };
		x = vballoon_add(b, VB_REPORT, ds, cnt);
		if (x == -VIO_EAGAIN) {
			x = reap_wait(b, VB_REPORT);
			if (x)
				return x;
			continue;
		}
		if (x < 0)
			return x;
		for (unsigned k = 0; k < cnt; k++)
			pages += rg[i + k].len / VBALLOON_PAGE;
		i += cnt;
	}
	x = drain(b, VB_REPORT);
	if (!x)
		b->reported += pages;
	return x;
}
