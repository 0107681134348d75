// SPDX-License-Identifier: MIT
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "mm/discard.h"
#include "s2vm/clock.h"
#include "vmm/balloon_pfn.h"
#include "vmm/virtio_balloon.h"

#define BQ_MAX 4u /* queue slots: inflate, deflate, stats, reporting */
#define BQ_SIZE 256u /* QueueNumMax */
#define BQ_SEGS 64u /* buffers of one chain looked at; more are ignored and counted */
#define CHAIN_MAX_BYTES (1u << 20) /* PFN bytes read from one chain; more are ignored */
#define RETRY_NS 20000000ull /* deferred discards are retried after 20 ms, */
#define RETRY_MAX_NS 1000000000ull /* backing off to 1 s while nothing is unpinned */
#define PAGE 4096ull

enum bq_role { ROLE_NONE, ROLE_INFLATE, ROLE_DEFLATE, ROLE_STATS, ROLE_REPORT };

struct bq {
	bool running; /* queue_start() .. queue_stop() */
	enum bq_role role;
	int notify_fd;
	struct virtq vq;
};

struct vballoon {
	struct balloon_opts o;
	struct vm *vm;
	struct mm *mm;
	struct vmmio_dev t;
	bool transport_ok, holder_ok;
	struct mm_dma_holder h; /* the device thread's view of guest memory */
	pthread_mutex_t lock; /* queues, held bitmap, stats buffer, scratch; the thread's */
	pthread_t thread;
	bool thread_started;
	int wake_fd;
	bool stop; /* under lock */
	bool closing; /* vballoon_stop(): queues stop because the VM ended, not a reset */
	struct bq q[BQ_MAX];
	uint64_t ram_pages;
	uint64_t *held; /* bit per RAM page: in the balloon */
	uint32_t target; /* atomic: num_pages */
	uint32_t actual; /* atomic: as the driver wrote it */
	uint32_t gen; /* atomic: ConfigGeneration */
	unsigned sched_next; /* atomic: next schedule= entry */
	bool stats_buf; /* a stats buffer is held (head below) */
	uint16_t stats_head;
	uint64_t stats_due_ns; /* when to hand it back */
	uint64_t retry_due_ns; /* when to retry deferred discards, 0: none */
	uint64_t retry_ns; /* the current retry interval */
	/* scratch for one pass */
	uint8_t *buf;
	uint64_t *pfns;
	size_t pfn_cap;
	struct mig_range *ranges;
	size_t range_cap;
	uint16_t heads[BQ_SIZE];
	pthread_mutex_t slock; /* c: never held across mm calls */
	struct vballoon_report c;
};

/* ---- counters ---- */

#define COUNT(b, field, n)                          \
	do {                                        \
		pthread_mutex_lock(&(b)->slock);    \
		(b)->c.field += (n);                \
		pthread_mutex_unlock(&(b)->slock);  \
	} while (0)

static void count_pfns(struct vballoon *b, const struct bpfn_counts *k)
{
	pthread_mutex_lock(&b->slock);
	b->c.bad_pfns += k->bad;
	b->c.dup_pfns += k->dup;
	b->c.not_inflated += k->not_held;
	b->c.partial_bytes += k->partial_bytes;
	pthread_mutex_unlock(&b->slock);
}

static void count_discard(struct vballoon *b, const struct discard_result *r, int err)
{
	pthread_mutex_lock(&b->slock);
	b->c.discarded_pages += r->pages;
	b->c.returned_bytes += r->returned;
	b->c.deferred_pages += r->deferred;
	b->c.pinned_pages += r->pinned - r->deferred;
	b->c.discard_errors += err != 0;
	pthread_mutex_unlock(&b->slock);
}

/* ---- guest memory for the virtqueue walker ---- */

static int b_read(void *ctx, uint64_t gpa, void *dst, uint64_t len)
{
	struct vballoon *b = ctx;

	return mm_dma_read(b->mm, &b->h, gpa, dst, len);
}

static int b_write(void *ctx, uint64_t gpa, const void *src, uint64_t len)
{
	struct vballoon *b = ctx;

	return mm_dma_write(b->mm, &b->h, gpa, src, len);
}

static int b_read16(void *ctx, uint64_t gpa, uint16_t *v)
{
	struct vballoon *b = ctx;

	return mm_dma_load16(b->mm, &b->h, gpa, v);
}

static int b_write16(void *ctx, uint64_t gpa, uint16_t v)
{
	struct vballoon *b = ctx;

	return mm_dma_store16(b->mm, &b->h, gpa, v);
}

static const struct virtq_mem_ops b_mem_ops = {
	.read = b_read,
	.write = b_write,
	.read16 = b_read16,
	.write16 = b_write16,
};

/* ---- scratch ---- */

static int pfn_room(struct vballoon *b, size_t n)
{
	if (n <= b->pfn_cap)
		return 0;
	size_t cap = b->pfn_cap ? b->pfn_cap : 1024;
	uint64_t *p;

	while (cap < n)
		cap *= 2;
	p = realloc(b->pfns, cap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	b->pfns = p;
	b->pfn_cap = cap;
	return 0;
}

static int range_room(struct vballoon *b, size_t n)
{
	if (n <= b->range_cap)
		return 0;
	size_t cap = b->range_cap ? b->range_cap : 1024;
	struct mig_range *p;

	while (cap < n)
		cap *= 2;
	p = realloc(b->ranges, cap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	b->ranges = p;
	b->range_cap = cap;
	return 0;
}

/* ---- queues ---- */

/* The driver broke queue @q: say why, stop serving it. Caller holds b->lock. */
static void q_broken(struct vballoon *b, struct bq *q, const char *why)
{
	vmmio_needs_reset(&b->t, why);
	q->running = false;
	if (q->role == ROLE_STATS)
		b->stats_buf = false; /* nothing to hand back any more */
}

/* Read the device-readable bytes of chain @c (at most CHAIN_MAX_BYTES) into b->buf.
 * Returns the byte count, or -errno (the memory is not the driver's). */
static long chain_read(struct vballoon *b, const struct virtq_chain *c, uint64_t *ignored)
{
	size_t got = 0;

	*ignored = 0;
	for (unsigned i = 0; i < c->nr_seg; i++) {
		const struct virtq_seg *s = &c->seg[i];
		uint64_t n = s->len;
		int r;

		if (s->write)
			continue;
		if (n > CHAIN_MAX_BYTES - got)
			n = CHAIN_MAX_BYTES - got;
		r = n ? mm_dma_read(b->mm, &b->h, s->gpa, b->buf + got, n) : 0;
		if (r)
			return r;
		got += n;
	}
	/* past CHAIN_MAX_BYTES, or in buffers past BQ_SEGS: not read */
	*ignored = c->out_len > got ? c->out_len - got : 0;
	return (long)got;
}

/* Pages re-homed by a discard left their old frames behind this device's generation
 * (and every other holder's): pass a quiescent point (no pins are held between chains)
 * and free what may be, so the memory is back before the driver sees its buffers. */
static void reap_rehomed(struct vballoon *b, const struct discard_result *res)
{
	if (!res->rehomed)
		return;
	mm_dma_quiesce(&b->h);
	mm_reap_deferred(b->mm);
}

/* Hand back the chains of b->heads[0, n) with used length 0. Caller holds b->lock. */
static void give_back(struct vballoon *b, struct bq *q, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (virtq_used_add(&q->vq, b->heads[i], 0)) {
			q_broken(b, q, q->vq.err);
			return;
		}
	if (n && virtq_used_flush(&q->vq))
		q_broken(b, q, q->vq.err);
}

/* Deflate: the PFNs of @len bytes at b->buf leave the balloon; cancel their deferred
 * discards, 256 at a time with no allocation (a cancel must never be lost: the driver
 * uses the pages again once the buffer comes back). Caller holds b->lock. */
static void deflate_pfns(struct vballoon *b, size_t len, struct bpfn_counts *k)
{
	for (size_t off = 0; off < len; off += 1024) {
		uint64_t pfns[256];
		struct mig_range r[256];
		size_t n = bpfn_take(b->buf + off, len - off < 1024 ? len - off : 1024,
				     b->ram_pages, b->held, false, pfns, k);

		if (!n)
			continue;
		mm_discard_cancel(b->mm, r, mm_pfns_to_ranges(pfns, n, r));
		pthread_mutex_lock(&b->slock);
		b->c.deflated_pages += n;
		b->c.held_pages -= n;
		pthread_mutex_unlock(&b->slock);
	}
}

/*
 * Take every available inflate or deflate chain. Inflate: turn their PFNs into runs and
 * discard them (pinned pages deferred), one discard call per pass; deflate: cancel
 * deferred discards. Then hand the chains back. Caller holds b->lock.
 */
static void serve_pfns(struct vballoon *b, struct bq *q)
{
	bool inflate = q->role == ROLE_INFLATE;
	struct bpfn_counts k = { 0 };
	size_t npfn = 0;
	unsigned nh = 0;

	while (nh < BQ_SIZE) {
		struct virtq_seg seg[BQ_SEGS];
		struct virtq_chain c = { .seg = seg, .max_seg = BQ_SEGS };
		uint64_t ignored;
		long len;
		int r = virtq_pop(&q->vq, &c);

		if (r < 0) {
			q_broken(b, q, q->vq.err);
			break;
		}
		if (!r)
			break;
		b->heads[nh++] = c.head;
		len = chain_read(b, &c, &ignored);
		k.bad += ignored / 4;
		if (len < 0) {
			k.bad += c.out_len / 4;
			continue;
		}
		if (!inflate) {
			deflate_pfns(b, (size_t)len, &k);
			continue;
		}
		/* no room: these pages are not taken (not held, not discarded) */
		if (pfn_room(b, npfn + (size_t)len / 4)) {
			k.bad += (uint64_t)len / 4;
			continue;
		}
		npfn += bpfn_take(b->buf, (size_t)len, b->ram_pages, b->held, true, b->pfns + npfn,
				  &k);
	}
	count_pfns(b, &k);
	if (npfn) {
		struct discard_result res = { 0 };
		int e = -ENOMEM;

		/* without room for the runs the pages are held but stay resident */
		if (!range_room(b, npfn))
			e = mm_discard(b->mm, b->ranges, mm_pfns_to_ranges(b->pfns, npfn, b->ranges),
				       MM_DISCARD_DEFER_PINNED, &res);
		count_discard(b, &res, e);
		reap_rehomed(b, &res);
		COUNT(b, inflated_pages, npfn);
		COUNT(b, held_pages, npfn);
		if (res.deferred) {
			b->retry_ns = RETRY_NS;
			b->retry_due_ns = s2_now_ns() + RETRY_NS;
		}
	}
	give_back(b, q, nh);
}

/* Take every available report chain: each buffer is one free range. Caller holds
 * b->lock. */
static void serve_reports(struct vballoon *b, struct bq *q)
{
	uint64_t ram = b->ram_pages * PAGE, pages = 0, bad = 0, partial = 0;
	size_t nr = 0;
	unsigned nh = 0;

	while (nh < BQ_SIZE) {
		struct virtq_seg seg[BQ_SEGS];
		struct virtq_chain c = { .seg = seg, .max_seg = BQ_SEGS };
		int r = virtq_pop(&q->vq, &c);

		if (r < 0) {
			q_broken(b, q, q->vq.err);
			break;
		}
		if (!r)
			break;
		b->heads[nh++] = c.head;
		if (c.nr_desc > c.nr_seg)
			bad += c.nr_desc - c.nr_seg;
		for (unsigned i = 0; i < c.nr_seg; i++) {
			uint64_t s = seg[i].gpa, e = s + seg[i].len, as, ae;

			if (e < s || e > ram) { /* wraps or leaves RAM: keep the part inside */
				bad++;
				e = e < s || e > ram ? ram : e;
				if (s >= e)
					continue;
			}
			as = (s + PAGE - 1) & ~(PAGE - 1);
			ae = e & ~(PAGE - 1);
			if (ae <= as) {
				partial += e - s;
				continue;
			}
			partial += (as - s) + (e - ae);
			if (range_room(b, nr + 1)) {
				bad++;
				continue;
			}
			b->ranges[nr++] = (struct mig_range){ as, ae - as };
			pages += (ae - as) / PAGE;
		}
	}
	if (nr) {
		struct discard_result res = { 0 };
		int e = mm_discard(b->mm, b->ranges, nr, 0, &res);

		count_discard(b, &res, e);
		reap_rehomed(b, &res);
	}
	pthread_mutex_lock(&b->slock);
	b->c.reported_pages += pages;
	b->c.bad_reports += bad;
	b->c.partial_bytes += partial;
	pthread_mutex_unlock(&b->slock);
	give_back(b, q, nh);
}

/* A stats buffer arrived: read its entries and keep it until polling asks for more.
 * Caller holds b->lock. */
static void serve_stats(struct vballoon *b, struct bq *q)
{
	for (;;) {
		struct virtq_seg seg[BQ_SEGS];
		struct virtq_chain c = { .seg = seg, .max_seg = BQ_SEGS };
		uint64_t ignored, vals[VIRTIO_BALLOON_S_NR];
		long len;
		int r = virtq_pop(&q->vq, &c);

		if (r < 0) {
			q_broken(b, q, q->vq.err);
			return;
		}
		if (!r)
			return;
		if (b->stats_buf) { /* a second buffer: hand the older one back */
			b->heads[0] = b->stats_head;
			give_back(b, q, 1);
		}
		b->stats_buf = true;
		b->stats_head = c.head;
		if (b->o.stats_polling)
			b->stats_due_ns = s2_now_ns() + b->o.stats_polling * 1000000000ull;
		len = chain_read(b, &c, &ignored);
		if (len < 0)
			continue;
		for (unsigned i = 0; i < VIRTIO_BALLOON_S_NR; i++)
			vals[i] = UINT64_MAX;
		for (long off = 0; off + VIRTIO_BALLOON_STAT_SIZE <= len;
		     off += VIRTIO_BALLOON_STAT_SIZE) {
			const uint8_t *p = b->buf + off;
			unsigned tag = p[0] | p[1] << 8;
			uint64_t v = 0;

			for (int j = 7; j >= 0; j--)
				v = v << 8 | p[2 + j];
			if (tag < VIRTIO_BALLOON_S_NR) /* unknown tags are ignored (§5.5.6.3) */
				vals[tag] = v;
		}
		pthread_mutex_lock(&b->slock);
		memcpy(b->c.stats, vals, sizeof(vals));
		b->c.have_stats = true;
		b->c.stats_updates++;
		pthread_mutex_unlock(&b->slock);
	}
}

static void serve(struct vballoon *b, struct bq *q)
{
	for (int rounds = 0; rounds < 4 && q->running; rounds++) {
		switch (q->role) {
		case ROLE_INFLATE:
		case ROLE_DEFLATE:
			serve_pfns(b, q);
			break;
		case ROLE_REPORT:
			serve_reports(b, q);
			break;
		case ROLE_STATS:
			serve_stats(b, q);
			break;
		case ROLE_NONE:
			return;
		}
		if (!q->running)
			return;
		/* EVENT_IDX: ask for a notify for the next chain, unless one came meanwhile */
		int more = virtq_arm_notify(&q->vq);

		if (more < 0)
			q_broken(b, q, q->vq.err);
		if (more <= 0)
			return;
	}
}

/* Timed work: hand the stats buffer back, retry deferred discards. Caller holds b->lock. */
static void timers(struct vballoon *b, uint64_t now)
{
	if (b->stats_buf && b->o.stats_polling && now >= b->stats_due_ns) {
		for (unsigned i = 0; i < BQ_MAX; i++)
			if (b->q[i].running && b->q[i].role == ROLE_STATS) {
				b->heads[0] = b->stats_head;
				give_back(b, &b->q[i], 1);
				b->stats_buf = false;
			}
	}
	if (b->retry_due_ns && now >= b->retry_due_ns) {
		struct discard_result res = { 0 };
		int e = mm_discard_retry(b->mm, &res);

		count_discard(b, &res, e);
		pthread_mutex_lock(&b->slock);
		b->c.deferred_pages -= res.deferred; /* still deferred: counted once */
		pthread_mutex_unlock(&b->slock);
		if (!res.pages && b->retry_ns < RETRY_MAX_NS)
			b->retry_ns *= 2; /* still pinned: look less often */
		b->retry_due_ns = mm_discard_pending(b->mm) ? now + b->retry_ns : 0;
	}
}

static void *b_thread(void *arg)
{
	struct vballoon *b = arg;

	pthread_mutex_lock(&b->lock);
	while (!b->stop) {
		struct pollfd pf[BQ_MAX + 1];
		unsigned n = 0;
		uint64_t now = s2_now_ns(), due = UINT64_MAX;
		int timeout;

		pf[n++] = (struct pollfd){ .fd = b->wake_fd, .events = POLLIN };
		for (unsigned i = 0; i < BQ_MAX; i++)
			if (b->q[i].running && b->q[i].role != ROLE_NONE) {
				pf[n++] = (struct pollfd){ .fd = b->q[i].notify_fd, .events = POLLIN };
			}
		for (unsigned i = 0; i < BQ_MAX; i++)
			if (b->stats_buf && b->o.stats_polling && b->q[i].running &&
			    b->q[i].role == ROLE_STATS)
				due = b->stats_due_ns;
		if (b->retry_due_ns && b->retry_due_ns < due)
			due = b->retry_due_ns;
		timeout = due == UINT64_MAX ? -1 : due <= now ? 0 : (int)((due - now) / 1000000 + 1);
		mm_dma_idle(&b->h);
		pthread_mutex_unlock(&b->lock);
		(void)poll(pf, n, timeout);
		pthread_mutex_lock(&b->lock);
		if (b->stop)
			break;
		mm_dma_busy(&b->h);
		for (unsigned i = 0; i < n; i++) {
			uint64_t v;

			if (pf[i].revents & POLLIN)
				(void)!read(pf[i].fd, &v, sizeof(v));
		}
		/* every queue, not only the notified ones: a polling driver skips notifies
		 * while the device is working (EVENT_IDX) */
		for (unsigned i = 0; i < BQ_MAX; i++)
			if (b->q[i].running)
				serve(b, &b->q[i]);
		timers(b, s2_now_ns());
		mm_dma_quiesce(&b->h);
	}
	mm_dma_idle(&b->h);
	pthread_mutex_unlock(&b->lock);
	return NULL;
}

static void wake(struct vballoon *b)
{
	uint64_t one = 1;

	(void)!write(b->wake_fd, &one, sizeof(one));
}

/* ---- the device type ---- */

static uint64_t b_features(void *dev)
{
	struct vballoon *b = dev;

	return 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_F_RING_INDIRECT_DESC |
	       1ull << VIRTIO_F_RING_EVENT_IDX | 1ull << VIRTIO_BALLOON_F_MUST_TELL_HOST |
	       1ull << VIRTIO_BALLOON_F_STATS_VQ |
	       (b->o.deflate_on_oom ? 1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM : 0) |
	       (b->o.free_page_reporting ? 1ull << VIRTIO_BALLOON_F_REPORTING : 0);
}

static uint64_t b_config_read(void *dev, uint64_t off, unsigned len)
{
	struct vballoon *b = dev;
	uint8_t cfg[VIRTIO_BALLOON_CFG_SIZE] = { 0 };
	uint32_t t = __atomic_load_n(&b->target, __ATOMIC_ACQUIRE);
	uint32_t a = __atomic_load_n(&b->actual, __ATOMIC_ACQUIRE);
	uint64_t v = 0;

	for (int i = 0; i < 4; i++) {
		cfg[VIRTIO_BALLOON_CFG_NUM_PAGES + i] = (uint8_t)(t >> (8 * i));
		cfg[VIRTIO_BALLOON_CFG_ACTUAL + i] = (uint8_t)(a >> (8 * i));
	}
	for (unsigned i = 0; i < len; i++)
		if (off + i < sizeof(cfg))
			v |= (uint64_t)cfg[off + i] << (8 * i);
	return v;
}

static int b_config_write(void *dev, uint64_t off, unsigned len, uint64_t value)
{
	struct vballoon *b = dev;

	if (off != VIRTIO_BALLOON_CFG_ACTUAL || len != 4)
		return -1; /* only `actual` is the driver's */
	__atomic_store_n(&b->actual, (uint32_t)value, __ATOMIC_RELEASE);
	return 0;
}

static uint32_t b_config_generation(void *dev)
{
	struct vballoon *b = dev;

	return __atomic_load_n(&b->gen, __ATOMIC_ACQUIRE);
}

static int b_queue_start(void *dev, unsigned i, const struct virtq_config *cfg, int notify_fd,
			 uint64_t features)
{
	struct vballoon *b = dev;
	struct virtq_config c = *cfg;
	bool stats = features >> VIRTIO_BALLOON_F_STATS_VQ & 1;
	bool report = features >> VIRTIO_BALLOON_F_REPORTING & 1;
	enum bq_role role = ROLE_NONE;

	if (i == VIRTIO_BALLOON_Q_INFLATE)
		role = ROLE_INFLATE;
	else if (i == VIRTIO_BALLOON_Q_DEFLATE)
		role = ROLE_DEFLATE;
	else if (i == 2)
		role = stats ? ROLE_STATS : report ? ROLE_REPORT : ROLE_NONE;
	else if (i == 3 && stats && report)
		role = ROLE_REPORT;
	c.mem = &b_mem_ops;
	c.mem_ctx = b;
	pthread_mutex_lock(&b->lock);
	virtq_init(&b->q[i].vq, &c);
	b->q[i].role = role;
	b->q[i].notify_fd = notify_fd;
	b->q[i].running = true;
	pthread_mutex_unlock(&b->lock);
	wake(b);
	return 0;
}

static void b_queue_stop(void *dev, unsigned i)
{
	struct vballoon *b = dev;

	pthread_mutex_lock(&b->lock);
	if (b->q[i].role == ROLE_STATS)
		b->stats_buf = false;
	if (b->q[i].role == ROLE_INFLATE && b->q[i].running && !b->closing) {
		/* A reset (or the VM's end): the driver owns every page again, so no deferred
		 * discard may fire later, and the balloon starts empty. */
		mm_discard_cancel(b->mm, &(struct mig_range){ 0, b->mm->cfg.mem_size }, 1);
		memset(b->held, 0, (b->ram_pages + 63) / 64 * sizeof(*b->held));
		b->retry_due_ns = 0;
		__atomic_store_n(&b->actual, 0, __ATOMIC_RELEASE);
		pthread_mutex_lock(&b->slock);
		b->c.held_pages = 0;
		pthread_mutex_unlock(&b->slock);
	}
	b->q[i].running = false;
	pthread_mutex_unlock(&b->lock);
}

static const struct virtio_dev_ops vballoon_ops = {
	.name = "virtio-balloon",
	.device_id = VIRTIO_ID_BALLOON,
	.features = b_features,
	.config_read = b_config_read,
	.config_write = b_config_write,
	.config_generation = b_config_generation,
	.queue_start = b_queue_start,
	.queue_stop = b_queue_stop,
};

struct vballoon *vballoon_of(struct vmmio_dev *d)
{
	return d->ops == &vballoon_ops ? d->dev : NULL;
}

/* ---- lifecycle ---- */

void vballoon_set_target(struct vballoon *b, uint64_t bytes)
{
	uint64_t pages = bytes / PAGE;

	if (pages > b->ram_pages)
		pages = b->ram_pages;
	__atomic_store_n(&b->target, (uint32_t)pages, __ATOMIC_RELEASE);
	__atomic_add_fetch(&b->gen, 1, __ATOMIC_RELEASE);
}

bool vballoon_schedule_next(struct vballoon *b)
{
	unsigned k = __atomic_fetch_add(&b->sched_next, 1, __ATOMIC_ACQ_REL);

	if (k >= b->o.nr_schedule)
		return false;
	vballoon_set_target(b, b->o.schedule[k]);
	return true;
}

int vballoon_attach(const struct balloon_opts *o, struct vm *vm, gpa_t base, struct vballoon **out,
		    struct s2_err *e)
{
	struct vballoon *b = calloc(1, sizeof(*b));
	sigset_t all, old;
	int r;

	*out = b;
	if (!b)
		return s2_err_set(e, -ENOMEM, "out of memory");
	b->o = *o;
	b->vm = vm;
	b->mm = &vm->mm;
	b->wake_fd = -1;
	pthread_mutex_init(&b->lock, NULL);
	pthread_mutex_init(&b->slock, NULL);
	b->ram_pages = b->mm->cfg.mem_size / PAGE;
	if (b->ram_pages > UINT32_MAX) /* PFNs are 32 bits: 16 TiB */
		b->ram_pages = UINT32_MAX;
	b->held = calloc((b->ram_pages + 63) / 64, sizeof(*b->held));
	b->buf = malloc(CHAIN_MAX_BYTES);
	if (!b->held || !b->buf)
		return s2_err_set(e, -ENOMEM, "--balloon: out of memory");
	vballoon_set_target(b, o->size);
	b->gen = 0;
	b->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->wake_fd < 0)
		return s2_err_set(e, -errno, "--balloon: eventfd: %s", strerror(errno));
	r = mm_dma_holder_init(b->mm, &b->h, "virtio-balloon", NULL, NULL);
	if (r)
		return s2_err_set(e, r, "--balloon: %s",
				  r == -ENOSPC ? "too many device queues in all" : strerror(-r));
	b->holder_ok = true;
	b->transport_ok = true;
	r = vmmio_create(&b->t, vm, base, &vballoon_ops, b, BQ_MAX, BQ_SIZE, e);
	if (r)
		return r;
	/* the device thread takes no signal (vm_run takes them from a signalfd) */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&b->thread, NULL, b_thread, b);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r)
		return s2_err_set(e, -r, "--balloon: cannot start the device thread: %s",
				  strerror(r));
	b->thread_started = true;
	return 0;
}

void vballoon_stop(struct vballoon *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&b->lock);
	b->closing = true; /* keep the counters for --stats */
	pthread_mutex_unlock(&b->lock);
	if (b->transport_ok)
		vmmio_stop(&b->t);
	if (b->thread_started) {
		pthread_mutex_lock(&b->lock);
		b->stop = true;
		pthread_mutex_unlock(&b->lock);
		wake(b);
		pthread_join(b->thread, NULL);
		b->thread_started = false;
	}
}

void vballoon_close(struct vballoon *b)
{
	if (!b)
		return;
	vballoon_stop(b);
	if (b->transport_ok)
		vmmio_destroy(&b->t);
	if (b->holder_ok)
		mm_dma_holder_destroy(&b->h);
	if (b->wake_fd >= 0)
		close(b->wake_fd);
	pthread_mutex_destroy(&b->lock);
	pthread_mutex_destroy(&b->slock);
	free(b->held);
	free(b->buf);
	free(b->pfns);
	free(b->ranges);
	free(b);
}

void vballoon_report(struct vballoon *b, struct vballoon_report *r)
{
	pthread_mutex_lock(&b->slock);
	*r = b->c;
	pthread_mutex_unlock(&b->slock);
	r->gpa = b->t.base;
	r->free_page_reporting = b->o.free_page_reporting;
	r->deflate_on_oom = b->o.deflate_on_oom;
	r->stats_polling = b->o.stats_polling;
	r->target_pages = __atomic_load_n(&b->target, __ATOMIC_ACQUIRE);
	r->actual_pages = __atomic_load_n(&b->actual, __ATOMIC_ACQUIRE);
	r->notifies = __atomic_load_n(&b->t.st.notifies, __ATOMIC_RELAXED);
	r->ignored_notifies = __atomic_load_n(&b->t.st.ignored_notifies, __ATOMIC_RELAXED);
	r->ignored_writes = __atomic_load_n(&b->t.st.ignored_writes, __ATOMIC_RELAXED);
	r->needs_reset = __atomic_load_n(&b->t.st.needs_reset, __ATOMIC_RELAXED);
	r->resets = __atomic_load_n(&b->t.st.resets, __ATOMIC_RELAXED);
	r->needs_reset_why = __atomic_load_n(&b->t.why_set, __ATOMIC_ACQUIRE) ? b->t.why : NULL;
}
