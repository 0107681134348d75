// SPDX-License-Identifier: MIT
/*
 * Polled virtio-mmio v2 transport, split virtqueues and virtio-blk (include/virtio.h).
 *
 * Ordering: x86 keeps stores in order and loads in order, so publishing (descriptors,
 * then the avail entry, then avail->idx) and consuming (used->idx, then the used entry)
 * need only compiler barriers. The one store->load case is the notify decision: our
 * avail->idx store must be visible before we read avail_event (or used->flags), or the
 * device may have gone idle on the old index while we skip the notify; that takes mfence.
 */
#include "guest.h"
#include "virtio.h"

#define barrier() __asm__ volatile("" ::: "memory")
#define mb() __asm__ volatile("mfence" ::: "memory")

void vheap_init(struct vheap *h, uint64_t start, uint64_t end)
{
	h->cur = (start + 4095) & ~4095ull;
	h->end = end & ~4095ull;
	if (h->end < h->cur)
		h->end = h->cur;
}

void *vheap_alloc(struct vheap *h, uint64_t size, uint64_t align)
{
	uint64_t p = (h->cur + align - 1) & ~(align - 1);

	if (p < h->cur || p > h->end || size > h->end - p)
		return NULL;
	h->cur = p + size;
	memset((void *)(uintptr_t)p, 0, size);
	return (void *)(uintptr_t)p;
}

/* ---- transport ---------------------------------------------------------------------- */

uint32_t vio_read(const struct vio_dev *v, uint32_t off)
{
	return mmio_read32(v->base + off);
}

void vio_write(const struct vio_dev *v, uint32_t off, uint32_t val)
{
	mmio_write32(v->base + off, val);
}

uint8_t vio_status(const struct vio_dev *v)
{
	return (uint8_t)vio_read(v, VIRTIO_MMIO_STATUS);
}

int vio_find(struct vio_dev *v, uint32_t virtio_id, unsigned nth)
{
	for (unsigned i = 0; i < g_boot->nr_devs && i < S2_MAX_BOOT_DEVS; i++) {
		const struct s2_boot_dev *b = &g_boot->devs[i];

		if (b->virtio_id != virtio_id || b->size < 0x200)
			continue;
		if (mmio_read32(b->gpa + VIRTIO_MMIO_MAGIC) != VIRTIO_MMIO_MAGIC_VALUE ||
		    mmio_read32(b->gpa + VIRTIO_MMIO_VERSION) != 2 ||
		    mmio_read32(b->gpa + VIRTIO_MMIO_DEVICE_ID) != virtio_id)
			continue;
		if (nth--)
			continue;
		*v = (struct vio_dev){ .base = b->gpa, .virtio_id = virtio_id };
		return 0;
	}
	return -VIO_ENODEV;
}

int vio_reset(const struct vio_dev *v, uint64_t timeout_ns)
{
	uint64_t t0 = g_clock_ns();

	vio_write(v, VIRTIO_MMIO_STATUS, 0);
	while (vio_status(v)) {
		if (g_clock_ns() - t0 > timeout_ns)
			return -VIO_ETIMEDOUT;
		g_pause();
	}
	return 0;
}

uint64_t vio_tsc_per_ms(void)
{
	uint64_t c0, c1, t0, t1, r;
	unsigned n = 0;

	c0 = g_clock_ns();
	t0 = g_rdtsc();
	/* ~0.5-1 ms at 2-4 GHz; bounded by a pause count should the TSC stand still */
	do {
		g_pause();
		t1 = g_rdtsc();
	} while (t1 - t0 < (1u << 21) && ++n < (1u << 22));
	c1 = g_clock_ns();
	t1 = g_rdtsc();
	r = c1 > c0 ? (t1 - t0) * 1000000 / (c1 - c0) : 0;
	return r ? r : 1;
}

void vio_wait_start(struct vio_wait *w, uint64_t tsc_per_ms, unsigned max_ms)
{
	w->t0 = 0;
	w->spin = 0;
	w->step = tsc_per_ms;
	w->max_step = max_ms * tsc_per_ms;
	w->next = g_rdtsc() + w->step;
}

int vio_wait_idle(struct vio_wait *w, const struct vio_dev *v, uint64_t timeout_ns)
{
	uint64_t now;

	g_pause();
	if (++w->spin % 16)
		return 0;
	now = g_rdtsc();
	if ((int64_t)(now - w->next) < 0)
		return 0;
	if (vio_status(v) & VIRTIO_S_NEEDS_RESET)
		return -VIO_EIO;
	if (!w->t0)
		w->t0 = g_clock_ns();
	else if (g_clock_ns() - w->t0 > timeout_ns)
		return 1;
	if (w->step < w->max_step)
		w->step *= 2;
	w->next = now + w->step;
	return 0;
}

int vio_negotiate(struct vio_dev *v, uint64_t wanted, uint64_t timeout_ns)
{
	uint64_t offered;
	int r;

	r = vio_reset(v, timeout_ns);
	if (r)
		return r;
	vio_write(v, VIRTIO_MMIO_STATUS, VIRTIO_S_ACKNOWLEDGE);
	vio_write(v, VIRTIO_MMIO_STATUS, VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER);
	vio_write(v, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	offered = (uint64_t)vio_read(v, VIRTIO_MMIO_DEVICE_FEATURES) << 32;
	vio_write(v, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	offered |= vio_read(v, VIRTIO_MMIO_DEVICE_FEATURES);
	v->offered = offered;
	v->features = 0;
	if (!(offered & (1ull << VIRTIO_F_VERSION_1))) {
		vio_write(v, VIRTIO_MMIO_STATUS, VIRTIO_S_FAILED);
		return -VIO_ENODEV;
	}
	wanted &= offered;
	vio_write(v, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	vio_write(v, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)wanted);
	vio_write(v, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	vio_write(v, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(wanted >> 32));
	vio_write(v, VIRTIO_MMIO_STATUS,
		  VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER | VIRTIO_S_FEATURES_OK);
	if (!(vio_status(v) & VIRTIO_S_FEATURES_OK)) {
		vio_write(v, VIRTIO_MMIO_STATUS, vio_status(v) | VIRTIO_S_FAILED);
		return -VIO_EIO;
	}
	v->features = wanted;
	return 0;
}

void vio_driver_ok(const struct vio_dev *v)
{
	vio_write(v, VIRTIO_MMIO_STATUS, vio_status(v) | VIRTIO_S_DRIVER_OK);
}

/* Config reads: retry while ConfigGeneration moves under us (§4.2.2.2). */
#define VIO_CFG_READ(bits)                                                                     \
	uint##bits##_t vio_cfg##bits(const struct vio_dev *v, uint32_t off)                    \
	{                                                                                      \
		uint32_t gen;                                                                  \
		uint##bits##_t val;                                                            \
                                                                                               \
		do {                                                                           \
			gen = vio_read(v, VIRTIO_MMIO_CONFIG_GENERATION);                      \
			val = mmio_read##bits(v->base + VIRTIO_MMIO_CONFIG + off);             \
		} while (gen != vio_read(v, VIRTIO_MMIO_CONFIG_GENERATION));                   \
		return val;                                                                    \
	}
VIO_CFG_READ(8)
VIO_CFG_READ(16)
VIO_CFG_READ(32)
VIO_CFG_READ(64)

/* ---- split virtqueue ---------------------------------------------------------------- */

/* Ring sizes (§2.7): desc 16*num, avail 6+2*num, used 6+8*num; each gets its own pages. */
static uint64_t vq_avail_bytes(uint16_t num)
{
	return 6 + 2ull * num;
}

static uint64_t vq_used_bytes(uint16_t num)
{
	return 6 + 8ull * num;
}

int vq_alloc(struct vq *q, struct vheap *h, uint16_t cap)
{
	memset(q, 0, sizeof(*q));
	q->num = q->cap = cap;
	q->desc = vheap_alloc(h, 16ull * cap, 4096);
	q->avail = vheap_alloc(h, vq_avail_bytes(cap), 4096);
	q->used_hdr = vheap_alloc(h, vq_used_bytes(cap), 4096);
	q->next_free = vheap_alloc(h, 2ull * cap, 8);
	if (!q->desc || !q->avail || !q->used_hdr || !q->next_free)
		return -VIO_ENOMEM;
	q->used = (volatile struct virtq_used_elem *)(q->used_hdr + 2);
	return 0;
}

static void vq_set_addr(const struct vio_dev *v, uint32_t lo, const volatile void *p)
{
	uint64_t a = (uintptr_t)p;

	vio_write(v, lo, (uint32_t)a);
	vio_write(v, lo + 4, (uint32_t)(a >> 32));
}

int vq_setup(struct vq *q, const struct vio_dev *v, unsigned index, uint16_t num)
{
	uint16_t cap = q->cap;
	uint32_t max;

	if (num > cap)
		return -VIO_EINVAL;
	vio_write(v, VIRTIO_MMIO_QUEUE_SEL, index);
	max = vio_read(v, VIRTIO_MMIO_QUEUE_NUM_MAX);
	if (!max || max < num)
		return -VIO_ENODEV;
	memset(q->desc, 0, 16ull * cap);
	memset((void *)q->avail, 0, vq_avail_bytes(cap));
	memset((void *)q->used_hdr, 0, vq_used_bytes(cap));
	q->base = v->base;
	q->index = index;
	q->num = num;
	q->event_idx = v->features & (1ull << VIRTIO_F_RING_EVENT_IDX);
	for (uint16_t i = 0; i < num; i++)
		q->next_free[i] = (uint16_t)(i + 1);
	q->free_head = 0;
	q->nr_free = num;
	q->avail_idx = q->kicked_idx = q->last_used = 0;
	q->notifies = q->notifies_skipped = 0;
	barrier();
	vio_write(v, VIRTIO_MMIO_QUEUE_NUM, num);
	vq_set_addr(v, VIRTIO_MMIO_QUEUE_DESC_LOW, q->desc);
	vq_set_addr(v, VIRTIO_MMIO_QUEUE_DRIVER_LOW, q->avail);
	vq_set_addr(v, VIRTIO_MMIO_QUEUE_DEVICE_LOW, q->used_hdr);
	vio_write(v, VIRTIO_MMIO_QUEUE_READY, 1);
	if (vio_read(v, VIRTIO_MMIO_QUEUE_READY) != 1)
		return -VIO_EIO;
	return 0;
}

int vq_desc_get(struct vq *q)
{
	uint16_t i = q->free_head;

	if (!q->nr_free)
		return -VIO_ENOSPC;
	q->free_head = q->next_free[i];
	q->nr_free--;
	return i;
}

void vq_chain_put(struct vq *q, uint16_t head)
{
	uint16_t i = head;

	for (unsigned n = 0; n < q->num; n++) {
		uint16_t flags = q->desc[i].flags, next = q->desc[i].next;

		q->next_free[i] = q->free_head;
		q->free_head = i;
		q->nr_free++;
		if (!(flags & VIRTQ_DESC_F_NEXT) || next >= q->num)
			break;
		i = next;
	}
}

void vq_publish(struct vq *q, uint16_t head)
{
	barrier(); /* descriptors, headers and data before the entry naming them */
	q->avail[2 + (q->avail_idx & (q->num - 1))] = head;
	barrier(); /* the entry before the index that covers it */
	q->avail[1] = ++q->avail_idx;
}

void vq_publish_idx(struct vq *q, uint16_t idx)
{
	barrier();
	q->avail_idx = idx;
	q->avail[1] = idx;
}

void vq_notify(const struct vio_dev *v, unsigned index)
{
	vio_write(v, VIRTIO_MMIO_QUEUE_NOTIFY, index);
}

bool vq_kick(struct vq *q)
{
	uint16_t old = q->kicked_idx, new = q->avail_idx;
	bool need;

	if (old == new)
		return false;
	q->kicked_idx = new;
	mb(); /* avail->idx visible before we read what the device last saw */
	if (q->event_idx)
		need = vring_need_event(q->used_hdr[2 + 4 * q->num], new, old);
	else
		need = !(q->used_hdr[0] & VIRTQ_USED_F_NO_NOTIFY);
	if (!need) {
		q->notifies_skipped++;
		return false;
	}
	mmio_write32(q->base + VIRTIO_MMIO_QUEUE_NOTIFY, q->index);
	q->notifies++;
	return true;
}

uint16_t vq_used_pending(const struct vq *q)
{
	return (uint16_t)(q->used_hdr[1] - q->last_used);
}

bool vq_used_pop(struct vq *q, struct virtq_used_elem *e)
{
	if (q->used_hdr[1] == q->last_used)
		return false;
	barrier(); /* the index before the entries it covers */
	e->id = q->used[q->last_used & (q->num - 1)].id;
	e->len = q->used[q->last_used & (q->num - 1)].len;
	q->last_used++;
	if (q->event_idx)
		q->avail[2 + q->num] = q->last_used; /* used_event */
	return true;
}

/* ---- virtio-blk --------------------------------------------------------------------- */

/* every slot's indirect table stays 16-byte aligned */
_Static_assert(sizeof(struct vblk_slot) % 16 == 0, "vblk_slot size");

int vblk_open(struct vblk *d, unsigned index, struct vheap *h)
{
	int r;

	memset(d, 0, sizeof(*d));
	d->index = index;
	d->timeout_ns = VBLK_TIMEOUT_NS;
	d->want = VBLK_FEATURES;
	r = vio_find(&d->dev, VIRTIO_ID_BLOCK, index);
	if (r)
		return r;
	vblk_tsc_calibrate(d);
	d->slots = vheap_alloc(h, sizeof(struct vblk_slot) * VBLK_MAX_SLOTS, 64);
	if (!d->slots)
		return -VIO_ENOMEM;
	for (unsigned i = 0; i < VBLK_MAX_QUEUES; i++) {
		r = vq_alloc(&d->vq[i], h, VBLK_QUEUE_SIZE);
		if (r)
			return r;
	}
	return vblk_init(d);
}

void vblk_tsc_calibrate(struct vblk *d)
{
	d->tsc_per_ms = vio_tsc_per_ms();
}

static void vblk_forget(struct vblk *d)
{
	for (unsigned i = 0; i < VBLK_MAX_SLOTS; i++)
		d->slots[i].busy = 0;
	d->inflight = 0;
}

int vblk_reset(struct vblk *d)
{
	vblk_forget(d);
	return vio_reset(&d->dev, d->timeout_ns);
}

/* Largest power of two <= @n (n >= 1). */
static uint16_t pow2_floor(uint32_t n)
{
	uint32_t p = 1;

	while (p * 2 <= n)
		p *= 2;
	return (uint16_t)p;
}

int vblk_init(struct vblk *d)
{
	struct vio_dev *v = &d->dev;
	uint64_t f;
	unsigned nq = 1;
	int r;

	vblk_forget(d);
	r = vio_negotiate(v, d->want, d->timeout_ns);
	if (r)
		return r;
	f = v->features;
	d->capacity = vio_cfg64(v, VBLK_CFG_CAPACITY);
	d->seg_max = f & (1ull << VIRTIO_BLK_F_SEG_MAX) ? vio_cfg32(v, VBLK_CFG_SEG_MAX) : 1;
	if (!d->seg_max)
		d->seg_max = 1;
	if (d->seg_max > VBLK_MAX_SEGS)
		d->seg_max = VBLK_MAX_SEGS;
	d->blk_size = f & (1ull << VIRTIO_BLK_F_BLK_SIZE) ? vio_cfg32(v, VBLK_CFG_BLK_SIZE) : 512;
	d->ro = f & (1ull << VIRTIO_BLK_F_RO);
	d->max_discard_sectors = d->max_wz_sectors = d->discard_align = 0;
	if (f & (1ull << VIRTIO_BLK_F_DISCARD)) {
		d->max_discard_sectors = vio_cfg32(v, VBLK_CFG_MAX_DISCARD_SECTORS);
		d->discard_align = vio_cfg32(v, VBLK_CFG_DISCARD_ALIGN);
	}
	if (f & (1ull << VIRTIO_BLK_F_WRITE_ZEROES))
		d->max_wz_sectors = vio_cfg32(v, VBLK_CFG_MAX_WZ_SECTORS);
	if (f & (1ull << VIRTIO_BLK_F_MQ))
		nq = vio_cfg16(v, VBLK_CFG_NUM_QUEUES);
	if (!nq)
		nq = 1;
	d->nr_queues = nq < VBLK_MAX_QUEUES ? nq : VBLK_MAX_QUEUES;
	d->use_indirect = f & (1ull << VIRTIO_F_RING_INDIRECT_DESC);
	for (unsigned i = 0; i < d->nr_queues; i++) {
		uint32_t max;

		vio_write(v, VIRTIO_MMIO_QUEUE_SEL, i);
		max = vio_read(v, VIRTIO_MMIO_QUEUE_NUM_MAX);
		if (!max) {
			r = -VIO_ENODEV;
			goto fail;
		}
		r = vq_setup(&d->vq[i], v, i,
			     pow2_floor(max < VBLK_QUEUE_SIZE ? max : VBLK_QUEUE_SIZE));
		if (r)
			goto fail;
	}
	vio_driver_ok(v);
	return 0;
fail:
	vio_write(v, VIRTIO_MMIO_STATUS, vio_status(v) | VIRTIO_S_FAILED);
	return r;
}

static int vblk_slot_get(struct vblk *d)
{
	for (unsigned i = 0; i < VBLK_MAX_SLOTS; i++)
		if (!d->slots[i].busy)
			return (int)i;
	return -VIO_EAGAIN;
}

/* Fill @ds with the request's descriptors (without links); returns how many. */
static unsigned vblk_req_descs(struct vblk_slot *s, const struct vblk_req *r,
			       struct virtq_desc *ds)
{
	unsigned n = 0;
	uint16_t dflags = r->type == VIRTIO_BLK_T_OUT ? 0 : VIRTQ_DESC_F_WRITE;

	ds[n++] = (struct virtq_desc){ (uintptr_t)&s->hdr, sizeof(s->hdr), 0, 0 };
	if (r->type == VIRTIO_BLK_T_DISCARD || r->type == VIRTIO_BLK_T_WRITE_ZEROES) {
		ds[n++] = (struct virtq_desc){ (uintptr_t)&s->range, sizeof(s->range), 0, 0 };
	} else {
		for (unsigned i = 0; i < r->nseg; i++)
			ds[n++] = (struct virtq_desc){ (uintptr_t)r->seg[i].buf, r->seg[i].len,
						       dflags, 0 };
	}
	ds[n++] = (struct virtq_desc){ (uintptr_t)&s->status, 1, VIRTQ_DESC_F_WRITE, 0 };
	return n;
}

int vblk_submit(struct vblk *d, const struct vblk_req *r)
{
	struct virtq_desc ds[VBLK_MAX_SEGS + 2];
	struct vblk_slot *s;
	struct vq *q;
	unsigned n;
	int si, head;

	if (r->queue >= d->nr_queues || r->nseg > d->seg_max)
		return -VIO_EINVAL;
	q = &d->vq[r->queue];
	si = vblk_slot_get(d);
	if (si < 0)
		return si;
	s = &d->slots[si];
	s->hdr = (struct virtio_blk_outhdr){ .type = r->type, .sector = r->sector };
	s->range = (struct virtio_blk_range){ r->sector, r->nr_sectors, r->flags };
	s->status = 0xff; /* no VIRTIO_BLK_S_*: shows a status the device never wrote */
	n = vblk_req_descs(s, r, ds);
	if (d->use_indirect) {
		head = vq_desc_get(q);
		if (head < 0)
			return -VIO_EAGAIN;
		for (unsigned i = 0; i < n; i++) {
			s->ind[i] = ds[i];
			if (i + 1 < n) {
				s->ind[i].flags |= VIRTQ_DESC_F_NEXT;
				s->ind[i].next = (uint16_t)(i + 1);
			}
		}
		q->desc[head] = (struct virtq_desc){ (uintptr_t)s->ind, 16 * n,
						     VIRTQ_DESC_F_INDIRECT, 0 };
	} else {
		int prev = -1;

		if (q->nr_free < n)
			return -VIO_EAGAIN;
		head = -1;
		for (unsigned i = 0; i < n; i++) {
			int di = vq_desc_get(q);

			q->desc[di] = ds[i];
			if (prev >= 0) {
				q->desc[prev].flags |= VIRTQ_DESC_F_NEXT;
				q->desc[prev].next = (uint16_t)di;
			} else {
				head = di;
			}
			prev = di;
		}
	}
	s->busy = 1;
	s->head = (uint16_t)head;
	s->queue = r->queue;
	s->cookie = r->cookie;
	d->slot_of[r->queue][head] = (uint16_t)si;
	d->inflight++;
	vq_publish(q, (uint16_t)head);
	vq_kick(q);
	return si;
}

int vblk_poll(struct vblk *d, struct vblk_done *out)
{
	for (unsigned qi = 0; qi < d->nr_queues; qi++) {
		struct vq *q = &d->vq[qi];
		struct virtq_used_elem e;
		struct vblk_slot *s;
		unsigned si;

		if (!vq_used_pop(q, &e))
			continue;
		if (e.id >= q->num)
			return -VIO_EIO;
		si = d->slot_of[qi][e.id];
		if (si >= VBLK_MAX_SLOTS)
			return -VIO_EIO;
		s = &d->slots[si];
		if (!s->busy || s->queue != qi || s->head != e.id)
			return -VIO_EIO;
		barrier();
		out->slot = si;
		out->cookie = s->cookie;
		out->status = s->status;
		out->used_len = e.len;
		vq_chain_put(q, (uint16_t)e.id);
		s->busy = 0;
		d->inflight--;
		return 1;
	}
	return 0;
}

bool vblk_needs_reset(const struct vblk *d)
{
	return vio_status(&d->dev) & VIRTIO_S_NEEDS_RESET;
}

int vblk_wait(struct vblk *d, struct vblk_done *out, uint64_t timeout_ns)
{
	struct vio_wait w;

	if (!d->tsc_per_ms)
		vblk_tsc_calibrate(d);
	vio_wait_start(&w, d->tsc_per_ms, VBLK_CHECK_MAX_MS);
	for (;;) {
		int r = vblk_poll(d, out);

		if (r)
			return r;
		r = vio_wait_idle(&w, &d->dev, timeout_ns);
		if (r < 0)
			return r;
		if (r)
			return vblk_poll(d, out);
	}
}

int vblk_sync(struct vblk *d, const struct vblk_req *r)
{
	struct vblk_done done;
	int si, ret;

	si = vblk_submit(d, r);
	if (si < 0)
		return si;
	for (;;) {
		ret = vblk_wait(d, &done, d->timeout_ns);
		if (ret < 0)
			return ret;
		if (!ret)
			return -VIO_ETIMEDOUT;
		if (done.slot == (unsigned)si)
			return done.status;
	}
}

int vblk_read(struct vblk *d, uint64_t sector, void *buf, uint32_t len)
{
	struct vblk_req r = { .type = VIRTIO_BLK_T_IN, .sector = sector, .nseg = 1 };

	r.seg[0] = (struct vblk_seg){ buf, len };
	return vblk_sync(d, &r);
}

int vblk_write(struct vblk *d, uint64_t sector, const void *buf, uint32_t len)
{
	struct vblk_req r = { .type = VIRTIO_BLK_T_OUT, .sector = sector, .nseg = 1 };

	r.seg[0] = (struct vblk_seg){ (void *)(uintptr_t)buf, len };
	return vblk_sync(d, &r);
}

int vblk_flush(struct vblk *d)
{
	struct vblk_req r = { .type = VIRTIO_BLK_T_FLUSH };

	return vblk_sync(d, &r);
}

int vblk_discard(struct vblk *d, uint64_t sector, uint32_t nr_sectors)
{
	struct vblk_req r = { .type = VIRTIO_BLK_T_DISCARD, .sector = sector,
			      .nr_sectors = nr_sectors };

	return vblk_sync(d, &r);
}

int vblk_write_zeroes(struct vblk *d, uint64_t sector, uint32_t nr_sectors, bool unmap)
{
	struct vblk_req r = { .type = VIRTIO_BLK_T_WRITE_ZEROES, .sector = sector,
			      .nr_sectors = nr_sectors };

	r.flags = unmap ? VIRTIO_BLK_WZ_F_UNMAP : 0;
	return vblk_sync(d, &r);
}

int vblk_get_id(struct vblk *d, char id[VIRTIO_BLK_ID_BYTES + 1])
{
	struct vblk_req r = { .type = VIRTIO_BLK_T_GET_ID, .nseg = 1 };

	memset(id, 0, VIRTIO_BLK_ID_BYTES + 1);
	r.seg[0] = (struct vblk_seg){ id, VIRTIO_BLK_ID_BYTES };
	return vblk_sync(d, &r);
}
