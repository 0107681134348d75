// SPDX-License-Identifier: MIT
/* virtio-blk on io_uring: see virtio_blk.h and docs/DEVICES.md. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "mm/dma.h"
#include "s2vm/clock.h"
#include "s2vm/bootinfo.h"
#include "vmm/virtio_blk.h"

#define SECTOR 512ull
#define HDR_BYTES 16u /* struct virtio_blk_outhdr: le32 type, le32 reserved, le64 sector */
#define RANGE_BYTES 16u /* discard/write-zeroes range: le64 sector, le32 num, le32 flags */
#define MAX_DISCARD_SECTORS (1u << 22)
#define DISCARD_ALIGN 8u /* sectors */
#define MAX_DATA (1ull << 32) /* bytes of data per request */
#define SEG_CAP (VBLK_SEG_MAX + 2) /* descriptors per request: header, data, status */
#define MAX_IOV 1024u /* UIO_MAXIOV: iovecs of one readv/writev */
#define CONFIG_BYTES 60u
#define PAGE_BYTES 4096ull /* the memory manager's page: the unit ring pages are mapped in */
/* Before sleeping, a queue with nothing to do polls its avail ring and completions this
 * long: the driver's next request usually follows its last completion within a few
 * microseconds, and a notify costs it a VM exit (a signal under proc). */
#define POLL_NS 50000u
/* With requests in flight the queue does not ask for a notify before it sleeps: it waits
 * for their next completion, at most this long, and takes the driver's new chains when it
 * wakes. Only after a nap with no completion does it ask for a notify and sleep for good
 * (a slow request delays the chains queued behind it by at most this). */
#define NAP_NS 200000u

/* user_data of the ring's own requests; a request's is its struct vblk_req pointer */
enum { TAG_NOTIFY = 1, TAG_WAKE = 2, TAG_CANCEL = 3 };

enum req_op { OP_READ, OP_WRITE, OP_FLUSH, OP_DISCARD, OP_WRITE_ZEROES };

struct range {
	uint64_t gpa, len;
};

/* One request in flight (submitted to io_uring). */
struct vblk_req {
	struct vblk_req *next; /* free list, or the completed list until the used flush */
	uint16_t head; /* chain to hand back */
	uint8_t op; /* enum req_op */
	bool direct; /* went to the O_DIRECT descriptor */
	int fa_mode; /* fallocate mode (discard, write zeroes) */
	uint64_t status_gpa;
	uint64_t off, len; /* file range, bytes */
	unsigned nr_maps; /* guest ranges mapped (pinned) by mm_dma_map */
	struct range maps[SEG_CAP];
	unsigned nr_iov;
	struct iovec *iov; /* iov_inline or malloc'ed */
	struct iovec iov_inline[8];
	int chunk; /* registered=on: the fixed buffer (chunk slot) used, or -1 */
};

#define CHUNK (2ull << 20) /* registered=on: guest memory is registered in 2 MiB chunks */
#define MAX_CHUNKS 16384u /* io_uring's limit of fixed buffers per ring */
#define CHUNK_HINTS 256u
#define CHUNK_NEG 64u

/*
 * registered=on: one long-term pinned, io_uring-registered 2 MiB chunk of guest memory
 * (fixed buffer slot = index in q->chunks).
 */
struct vblk_chunk {
	uint64_t gpa; /* CHUNK aligned; ~0: slot empty */
	unsigned char *host; /* the chunk in the pool's own mapping (contiguous) */
	uint64_t used; /* q->chunk_clock at its last use: least recently used goes first */
	unsigned users; /* requests in flight reading or writing it */
};

#define QPAGES 16u /* ring pages a queue keeps mapped during a batch */

/* One guest page mapped for the batch (see vblk_queue.pages). */
struct q_page {
	uint64_t gpa; /* page aligned */
	unsigned char *host; /* the page in its pool's own mapping */
	bool writable; /* mapped MM_DMA_BIDIR (else MM_DMA_TO_DEVICE) */
};

struct vblk_queue {
	struct vblk *blk;
	unsigned index;
	pthread_mutex_t lock; /* everything below but thread and thread_started */
	pthread_t thread;
	bool thread_started; /* under the transport's lock */
	bool ring_ok; /* io_uring set up (for the device's lifetime) */
	bool running; /* the thread serves the queue: the drain may touch the ring */
	bool stop; /* asked to stop */
	struct io_uring ring;
	struct mm_dma_holder h;
	bool holder_ok;
	struct virtq vq;
	int notify_fd; /* the transport's */
	bool notify_armed; /* a read of notify_fd is in the ring */
	bool cancel_pending;
	uint64_t notify_buf; /* that read's buffer */
	unsigned in_flight; /* requests submitted, not completed */
	unsigned nr_reqs; /* allocated */
	struct vblk_req *free_reqs;
	struct vblk_req *done_reqs; /* completed, still pinned until their used entries are
				     * published (q_reap) */
	/* ring pages: the pages of rings, descriptors, headers and status bytes this batch
	 * touched, mapped (pinned) until the batch ends (q_pages_drop: before q->lock is
	 * released, and when the holder's generation moves) */
	struct q_page pages[QPAGES];
	unsigned nr_pages;
	struct virtq_seg segs[SEG_CAP]; /* chain walk */
	struct iovec iov[MAX_IOV]; /* mm_dma_map scratch */
	/* registered=on */
	struct vblk_chunk *chunks; /* [nr_chunks]: the ring's sparse fixed-buffer table */
	unsigned nr_chunks;
	uint64_t chunk_clock;
	uint32_t hint[CHUNK_HINTS]; /* chunk number % CHUNK_HINTS -> likely slot */
	uint64_t neg[CHUNK_NEG]; /* chunks that could not be registered (gpa + 1, 0: none) */
	uint64_t busy_until_ns; /* a long-term pin found migration busy: retry after this */
};

struct vblk_counters {
	uint64_t read_ops, read_bytes, write_ops, write_bytes;
	uint64_t flush_ops, discard_ops, write_zeroes_ops, get_id_ops;
	uint64_t in_flight, in_flight_peak;
	uint64_t bad_requests, io_errors, direct_fallbacks;
	uint64_t pinned_bytes, pinned_peak, chunk_registrations, chunk_evictions;
	uint64_t fixed_ops, pin_failures;
	uint64_t pin_busy; /* long-term pins put off: migration busy (retried) */
};

struct vblk {
	struct disk_opts o; /* path owned */
	unsigned index;
	int fd; /* buffered (read-only if o.readonly) */
	int dfd; /* O_DIRECT, or -1 */
	uint32_t dio_mem_align, dio_off_align; /* O_DIRECT alignment, bytes */
	uint64_t capacity; /* sectors */
	uint32_t seg_max; /* offered: data segments per request */
	uint64_t features;
	uint8_t config[CONFIG_BYTES];
	char id[VIRTIO_BLK_ID_BYTES];
	struct vm *vm;
	struct mm *mm;
	bool transport_ok;
	struct vmmio_dev t;
	struct vblk_counters c;
	struct vblk_queue q[DISK_MAX_QUEUES];
};

static void add(uint64_t *c, uint64_t v)
{
	__atomic_add_fetch(c, v, __ATOMIC_RELAXED);
}

static uint64_t get(const uint64_t *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

/* ---- guest memory for the virtqueue walker: the queue's DMA holder ---- */

/*
 * Ring pages. A request touches the avail ring, its descriptors (and indirect table), its
 * header, its status byte and the used ring: each a small access that mm_dma_read/write
 * would translate, pin and unpin on its own. Instead the first access to a page in a
 * batch maps the whole page (one pin) and later ones are plain accesses through that
 * mapping. The pins are short-term like a request's: q_pages_drop() lets them go before
 * q->lock is released (the drain can then run, and migration sees no pin of ours) and
 * at the end of the drain itself. An access the cache cannot serve (crossing a page,
 * the cache full, a map error) takes mm_dma_read/write, whose errors stand as before.
 */
static void q_pages_drop(struct vblk_queue *q)
{
	for (unsigned i = 0; i < q->nr_pages; i++)
		mm_dma_unmap(q->blk->mm, &q->h, q->pages[i].gpa, PAGE_BYTES);
	q->nr_pages = 0;
}

/* Host address of [@gpa, @gpa + @len) through a mapped ring page, or NULL. Caller holds
 * q->lock with the holder busy. */
static unsigned char *q_page(struct vblk_queue *q, uint64_t gpa, uint64_t len, bool write)
{
	uint64_t pg = gpa & ~(PAGE_BYTES - 1);
	struct q_page *e = NULL;
	struct iovec iov;
	int n;

	if (!len || (gpa & (PAGE_BYTES - 1)) + len > PAGE_BYTES)
		return NULL;
	for (unsigned i = 0; i < q->nr_pages; i++) {
		if (q->pages[i].gpa != pg)
			continue;
		if (!write || q->pages[i].writable)
			return q->pages[i].host + (gpa - pg);
		/* read so far, now written: map it again for both */
		e = &q->pages[i];
		mm_dma_unmap(q->blk->mm, &q->h, pg, PAGE_BYTES);
		*e = q->pages[--q->nr_pages];
		break;
	}
	if (q->nr_pages == QPAGES)
		return NULL;
	n = mm_dma_map(q->blk->mm, &q->h, pg, PAGE_BYTES,
		       write ? MM_DMA_BIDIR : MM_DMA_TO_DEVICE, &iov, 1);
	if (n != 1) {
		if (n > 0)
			mm_dma_unmap(q->blk->mm, &q->h, pg, PAGE_BYTES);
		return NULL;
	}
	e = &q->pages[q->nr_pages++];
	*e = (struct q_page){ pg, iov.iov_base, write };
	return e->host + (gpa - pg);
}

/* Copy guest memory for the queue: through a ring page, else mm_dma_read/write. */
static int q_read(struct vblk_queue *q, uint64_t gpa, void *dst, uint64_t len)
{
	unsigned char *p = q_page(q, gpa, len, false);

	if (!p)
		return mm_dma_read(q->blk->mm, &q->h, gpa, dst, len);
	memcpy(dst, p, len);
	return 0;
}

static int q_write(struct vblk_queue *q, uint64_t gpa, const void *src, uint64_t len)
{
	unsigned char *p = q_page(q, gpa, len, true);

	if (!p)
		return mm_dma_write(q->blk->mm, &q->h, gpa, src, len);
	memcpy(p, src, len);
	return 0;
}

static int q_mem_read(void *ctx, uint64_t gpa, void *dst, uint64_t len)
{
	return q_read(ctx, gpa, dst, len);
}

static int q_mem_write(void *ctx, uint64_t gpa, const void *src, uint64_t len)
{
	return q_write(ctx, gpa, src, len);
}

/* One aligned 16-bit access through a mapping of its frame: mm_dma_read/write copy
 * byte-wise as far as anyone promises, and a ring index must not be seen half-written. */
static int q_mem_read16(void *ctx, uint64_t gpa, uint16_t *v)
{
	struct vblk_queue *q = ctx;
	unsigned char *p = (gpa & 1) ? NULL : q_page(q, gpa, 2, false);

	if (!p)
		return mm_dma_load16(q->blk->mm, &q->h, gpa, v);
	*v = __atomic_load_n((uint16_t *)(void *)p, __ATOMIC_ACQUIRE);
	return 0;
}

static int q_mem_write16(void *ctx, uint64_t gpa, uint16_t v)
{
	struct vblk_queue *q = ctx;
	unsigned char *p = (gpa & 1) ? NULL : q_page(q, gpa, 2, true);

	if (!p)
		return mm_dma_store16(q->blk->mm, &q->h, gpa, v);
	__atomic_store_n((uint16_t *)(void *)p, v, __ATOMIC_RELEASE);
	return 0;
}

static const struct virtq_mem_ops q_mem_ops = {
	.read = q_mem_read,
	.write = q_mem_write,
	.read16 = q_mem_read16,
	.write16 = q_mem_write16,
};

/* ---- requests ---- */

static struct vblk_req *req_get(struct vblk_queue *q)
{
	struct vblk_req *r = q->free_reqs;

	if (r) {
		q->free_reqs = r->next;
	} else {
		r = malloc(sizeof(*r));
		if (!r)
			return NULL;
		q->nr_reqs++;
	}
	memset(r, 0, offsetof(struct vblk_req, maps));
	r->iov = r->iov_inline;
	r->chunk = -1;
	return r;
}

static void req_put(struct vblk_queue *q, struct vblk_req *r)
{
	if (r->iov != r->iov_inline)
		free(r->iov);
	r->next = q->free_reqs;
	q->free_reqs = r;
}

static void req_unmap(struct vblk_queue *q, struct vblk_req *r)
{
	for (unsigned i = 0; i < r->nr_maps; i++)
		mm_dma_unmap(q->blk->mm, &q->h, r->maps[i].gpa, r->maps[i].len);
	r->nr_maps = 0;
}

/* The queue (and the device) cannot go on: DEVICE_NEEDS_RESET. Returns -EBADMSG. */
static int q_broken(struct vblk_queue *q, const char *why)
{
	char msg[160];

	snprintf(msg, sizeof(msg), "queue %u: %s", q->index, why);
	vmmio_needs_reset(&q->blk->t, msg);
	return -EBADMSG;
}

/* Hand chain @head back with @status at @status_gpa and @used_len. Returns 0 or -EBADMSG
 * (the status byte or the used ring cannot be written: the device needs a reset). */
static int finish(struct vblk_queue *q, uint16_t head, uint64_t status_gpa, uint8_t status,
		  uint32_t used_len)
{
	if (q_write(q, status_gpa, &status, 1))
		return q_broken(q, "cannot write the status byte");
	if (virtq_used_add(&q->vq, head, used_len))
		return q_broken(q, q->vq.err);
	return 0;
}

/* A request the driver got wrong: IOERR (or UNSUPP), used length 1. */
static int finish_bad(struct vblk_queue *q, uint16_t head, uint64_t status_gpa, uint8_t status)
{
	add(&q->blk->c.bad_requests, 1);
	return finish(q, head, status_gpa, status, 1);
}

/* A request for chain @head (status byte at @status_gpa) doing @op; NULL when none can be
 * allocated: the chain is then already finished with IOERR, and *@ret says how. */
static struct vblk_req *req_begin(struct vblk_queue *q, uint16_t head, uint64_t status_gpa,
				  enum req_op op, int *ret)
{
	struct vblk_req *r = req_get(q);

	if (!r) {
		add(&q->blk->c.io_errors, 1);
		*ret = finish(q, head, status_gpa, VIRTIO_BLK_S_IOERR, 1);
		return NULL;
	}
	r->head = head;
	r->status_gpa = status_gpa;
	r->op = op;
	return r;
}

static void in_flight_add(struct vblk *b, int d)
{
	uint64_t now = __atomic_add_fetch(&b->c.in_flight, (uint64_t)(int64_t)d, __ATOMIC_RELAXED);
	uint64_t peak = get(&b->c.in_flight_peak);

	while (d > 0 && now > peak &&
	       !__atomic_compare_exchange_n(&b->c.in_flight_peak, &peak, now, false,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

static struct io_uring_sqe *q_sqe(struct vblk_queue *q)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);

	if (!sqe) { /* cannot happen with the ring sized for the queue: make room anyway */
		io_uring_submit(&q->ring);
		sqe = io_uring_get_sqe(&q->ring);
	}
	return sqe;
}

/* Put request @r into the ring. Returns 0 or -ENOSPC. */
static int req_submit(struct vblk_queue *q, struct vblk_req *r)
{
	struct vblk *b = q->blk;
	struct io_uring_sqe *sqe = q_sqe(q);
	int fd = r->direct ? b->dfd : b->fd;

	if (!sqe)
		return -ENOSPC;
	switch (r->op) {
	case OP_READ:
		if (r->chunk >= 0)
			io_uring_prep_read_fixed(sqe, fd, r->iov[0].iov_base, (unsigned)r->len,
						 r->off, r->chunk);
		else
			io_uring_prep_readv(sqe, fd, r->iov, r->nr_iov, r->off);
		break;
	case OP_WRITE:
		if (r->chunk >= 0)
			io_uring_prep_write_fixed(sqe, fd, r->iov[0].iov_base, (unsigned)r->len,
						  r->off, r->chunk);
		else
			io_uring_prep_writev(sqe, fd, r->iov, r->nr_iov, r->off);
		break;
	case OP_FLUSH:
		io_uring_prep_fsync(sqe, b->fd, 0);
		break;
	default:
		io_uring_prep_fallocate(sqe, b->fd, r->fa_mode, r->off, r->len);
		break;
	}
	io_uring_sqe_set_data(sqe, r);
	return 0;
}

/* ---- registered=on: long-term pinned 2 MiB chunks as io_uring fixed buffers ---- */

static void pinned_add(struct vblk *b, int64_t d)
{
	uint64_t now = __atomic_add_fetch(&b->c.pinned_bytes, (uint64_t)d, __ATOMIC_RELAXED);
	uint64_t peak = get(&b->c.pinned_peak);

	while (d > 0 && now > peak &&
	       !__atomic_compare_exchange_n(&b->c.pinned_peak, &peak, now, false,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

/* Empty slot @i: the ring lets go of the buffer, then the long-term pin goes. The chunk
 * has no request in flight. Caller holds q->lock. */
static void chunk_evict(struct vblk_queue *q, unsigned i)
{
	struct vblk_chunk *c = &q->chunks[i];
	struct iovec none = { NULL, 0 };
	__u64 tag = 0;

	if (c->gpa == ~0ull)
		return;
	(void)io_uring_register_buffers_update_tag(&q->ring, i, &none, &tag, 1);
	mm_dma_unpin_longterm(q->blk->mm, c->gpa, CHUNK);
	pinned_add(q->blk, -(int64_t)CHUNK);
	add(&q->blk->c.chunk_evictions, 1);
	c->gpa = ~0ull;
	c->host = NULL;
}

static void chunk_neg_add(struct vblk_queue *q, uint64_t gpa)
{
	q->neg[(gpa / CHUNK) % CHUNK_NEG] = gpa + 1;
	add(&q->blk->c.pin_failures, 1);
}

/*
 * The fixed-buffer slot holding the chunk at @gpa, registering it first if it is not
 * (evicting the least recently used idle chunk when all slots are taken). Returns the
 * slot, or -1: use the plain path. Caller holds q->lock; it is dropped around the
 * long-term pin, which may migrate the chunk to home_node (a migration calls every
 * queue's drain, this one's included).
 */
static int chunk_get(struct vblk_queue *q, uint64_t gpa)
{
	struct vblk *b = q->blk;
	uint32_t *hint = &q->hint[(gpa / CHUNK) % CHUNK_HINTS];
	struct vblk_chunk *c;
	struct iovec iov[2];
	unsigned victim = UINT32_MAX;
	__u64 tag = 0;
	int n, r;

	if (*hint < q->nr_chunks && q->chunks[*hint].gpa == gpa) {
		q->chunks[*hint].used = ++q->chunk_clock;
		return (int)*hint;
	}
	for (unsigned i = 0; i < q->nr_chunks; i++) {
		if (q->chunks[i].gpa == gpa) {
			*hint = i;
			q->chunks[i].used = ++q->chunk_clock;
			return (int)i;
		}
	}
	if (q->neg[(gpa / CHUNK) % CHUNK_NEG] == gpa + 1)
		return -1;
	if (q->busy_until_ns && s2_now_ns() < q->busy_until_ns)
		return -1; /* migration was busy a moment ago: plain path for now */
	for (unsigned i = 0; i < q->nr_chunks; i++) {
		c = &q->chunks[i];
		if (c->gpa == ~0ull) {
			victim = i;
			break;
		}
		if (!c->users && (victim == UINT32_MAX || c->used < q->chunks[victim].used))
			victim = i;
	}
	if (victim == UINT32_MAX)
		return -1; /* every chunk has requests in flight */
	q_pages_drop(q);
	pthread_mutex_unlock(&q->lock);
	r = mm_dma_pin_longterm(b->mm, gpa, CHUNK, b->o.home_node);
	pthread_mutex_lock(&q->lock);
	if (r == -EBUSY) {
		/* a migration is copying (never wait behind it), or the chunk is in a
		 * request: keep the victim, use the plain path, try again in 1 ms */
		q->busy_until_ns = s2_now_ns() + 1000000;
		add(&b->c.pin_busy, 1);
		return -1;
	}
	if (r) {
		chunk_neg_add(q, gpa);
		return -1;
	}
	q->busy_until_ns = 0;
	/* the victim is still idle: only this thread starts requests on its chunks */
	chunk_evict(q, victim);
	/* where the pinned chunk is: one contiguous piece of one pool, or no fixed buffer */
	n = mm_dma_map(b->mm, &q->h, gpa, CHUNK, MM_DMA_BIDIR, iov, 2);
	if (n > 0)
		mm_dma_unmap(b->mm, &q->h, gpa, CHUNK);
	if (n == 1)
		r = io_uring_register_buffers_update_tag(&q->ring, victim, iov, &tag, 1);
	if (n != 1 || r < 0) {
		mm_dma_unpin_longterm(b->mm, gpa, CHUNK);
		chunk_neg_add(q, gpa);
		return -1;
	}
	c = &q->chunks[victim];
	c->gpa = gpa;
	c->host = iov[0].iov_base;
	c->used = ++q->chunk_clock;
	c->users = 0;
	*hint = victim;
	pinned_add(b, (int64_t)CHUNK);
	add(&b->c.chunk_registrations, 1);
	return (int)victim;
}

/*
 * registered=on: serve the one-range read or write @r of [@gpa, @gpa + r->len) from a
 * fixed buffer if the range lies in one chunk. Returns true if @r now uses one (no
 * short-term pins: the chunk's long-term pin holds the frames).
 */
static bool req_try_fixed(struct vblk_queue *q, struct vblk_req *r, uint64_t gpa)
{
	uint64_t base = gpa & ~(CHUNK - 1);
	int slot;

	if (!q->nr_chunks || gpa + r->len - base > CHUNK || base + CHUNK > q->blk->vm->mem_size)
		return false;
	slot = chunk_get(q, base);
	if (slot < 0)
		return false;
	r->chunk = slot;
	r->iov_inline[0].iov_base = q->chunks[slot].host + (gpa - base);
	r->iov_inline[0].iov_len = r->len;
	r->iov = r->iov_inline;
	r->nr_iov = 1;
	q->chunks[slot].users++;
	return true;
}

/* Is every piece of @r aligned for O_DIRECT? */
static bool dio_aligned(const struct vblk *b, const struct vblk_req *r)
{
	if (r->off % b->dio_off_align || r->len % b->dio_off_align)
		return false;
	for (unsigned i = 0; i < r->nr_iov; i++)
		if ((uintptr_t)r->iov[i].iov_base % b->dio_mem_align ||
		    r->iov[i].iov_len % b->dio_mem_align)
			return false;
	return true;
}

/*
 * Map the data ranges @rg of a read or write into @r's iovecs (pinning them). Returns 0
 * (ready to submit), 1 (finished with IOERR, @r released) or -EBADMSG (@r released).
 */
static int req_start_rw(struct vblk_queue *q, struct vblk_req *r, const struct range *rg,
			unsigned n)
{
	struct vblk *b = q->blk;
	enum mm_dma_dir dir = r->op == OP_READ ? MM_DMA_FROM_DEVICE : MM_DMA_TO_DEVICE;
	unsigned nr_iov = 0;
	int err = 0;

	if (n == 1 && req_try_fixed(q, r, rg[0].gpa)) {
		add(&b->c.fixed_ops, 1);
		goto aligned;
	}
	for (unsigned i = 0; i < n; i++) {
		int k = mm_dma_map(b->mm, &q->h, rg[i].gpa, rg[i].len, dir, q->iov + nr_iov,
				   MAX_IOV - nr_iov);

		if (k < 0) {
			err = k;
			break;
		}
		r->maps[r->nr_maps++] = rg[i];
		nr_iov += (unsigned)k;
	}
	if (!err && nr_iov > sizeof(r->iov_inline) / sizeof(r->iov_inline[0])) {
		r->iov = malloc(nr_iov * sizeof(*r->iov));
		if (!r->iov) {
			r->iov = r->iov_inline;
			err = -ENOMEM;
		}
	}
	if (err) {
		/* outside RAM, too fragmented, pin count full, or the memory manager stopped */
		req_unmap(q, r);
		if (err == -ENOMEM || err == -EIO)
			add(&b->c.io_errors, 1);
		else
			add(&b->c.bad_requests, 1);
		err = finish(q, r->head, r->status_gpa, VIRTIO_BLK_S_IOERR, 1);
		req_put(q, r);
		return err ? err : 1;
	}
	memcpy(r->iov, q->iov, nr_iov * sizeof(*r->iov));
	r->nr_iov = nr_iov;
aligned:
	if (b->dfd >= 0) {
		r->direct = dio_aligned(b, r);
		if (!r->direct)
			add(&b->c.direct_fallbacks, 1);
	}
	return 0;
}

/* Copy the first @len bytes of ranges @rg into @buf. Returns 0 or -EFAULT. */
static int ranges_read(struct vblk_queue *q, const struct range *rg, unsigned n, void *buf,
		       uint64_t len)
{
	unsigned char *p = buf;

	for (unsigned i = 0; i < n && len; i++) {
		uint64_t k = rg[i].len < len ? rg[i].len : len;

		if (mm_dma_read(q->blk->mm, &q->h, rg[i].gpa, p, k))
			return -EFAULT;
		p += k;
		len -= k;
	}
	return len ? -EFAULT : 0;
}

/* GET_ID: the ID into the writable ranges (as much as fits, at most 20 bytes). */
static int req_get_id(struct vblk_queue *q, uint16_t head, uint64_t status_gpa,
		      const struct range *rg, unsigned n, uint64_t in_len)
{
	struct vblk *b = q->blk;
	uint64_t left = in_len < VIRTIO_BLK_ID_BYTES ? in_len : VIRTIO_BLK_ID_BYTES, done = 0;

	if (!in_len)
		return finish_bad(q, head, status_gpa, VIRTIO_BLK_S_IOERR);
	for (unsigned i = 0; i < n && left; i++) {
		uint64_t k = rg[i].len < left ? rg[i].len : left;

		if (mm_dma_write(b->mm, &q->h, rg[i].gpa, b->id + done, k))
			return finish_bad(q, head, status_gpa, VIRTIO_BLK_S_IOERR);
		done += k;
		left -= k;
	}
	add(&b->c.get_id_ops, 1);
	return finish(q, head, status_gpa, VIRTIO_BLK_S_OK, (uint32_t)done + 1);
}

/*
 * Start the request of chain @c: check it against DEVICES.md's table, then either finish
 * it at once (errors, GET_ID, empty ranges) or put it in the ring. Returns 0, or -EBADMSG
 * when the device needs a reset (no used entry for this chain).
 */
static int req_start(struct vblk_queue *q, const struct virtq_chain *c)
{
	struct vblk *b = q->blk;
	const struct virtq_seg *last = &c->last, *first = &c->seg[0];
	struct range out[SEG_CAP], in[SEG_CAP];
	unsigned nout = 0, nin = 0;
	uint64_t status_gpa, out_len = 0, in_len = 0, sector, nsect;
	unsigned char hdr[HDR_BYTES];
	uint32_t type;
	struct vblk_req *r;
	int err;

	if (!c->nr_desc || !last->write || !last->len)
		return q_broken(q, "status descriptor missing, device-readable or empty");
	status_gpa = last->gpa + last->len - 1;
	if (status_gpa < last->gpa || status_gpa >= b->vm->mem_size)
		return q_broken(q, "status byte outside guest RAM");
	if (c->nr_desc > SEG_CAP || first->write || first->len < HDR_BYTES)
		return finish_bad(q, c->head, status_gpa, VIRTIO_BLK_S_IOERR);
	if (q_read(q, first->gpa, hdr, HDR_BYTES))
		return finish_bad(q, c->head, status_gpa, VIRTIO_BLK_S_IOERR);
	memcpy(&type, hdr, 4);
	type = le32toh(type);
	memcpy(&sector, hdr + 8, 8);
	sector = le64toh(sector);

	/* data: readable bytes after the header, writable bytes before the status byte */
	for (unsigned i = 0; i < c->nr_desc; i++) {
		const struct virtq_seg *s = &c->seg[i];
		struct range rg = { s->gpa, s->len };

		if (i == 0) {
			rg.gpa += HDR_BYTES;
			rg.len -= HDR_BYTES;
		}
		if (i == c->nr_desc - 1)
			rg.len--;
		if (!rg.len)
			continue;
		if (rg.gpa + rg.len < rg.gpa) /* wraps the 64-bit space */
			return finish_bad(q, c->head, status_gpa, VIRTIO_BLK_S_IOERR);
		if (s->write) {
			in[nin++] = rg;
			in_len += rg.len;
		} else {
			out[nout++] = rg;
			out_len += rg.len;
		}
	}
	if (nout + nin > b->seg_max || out_len > MAX_DATA || in_len > MAX_DATA)
		return finish_bad(q, c->head, status_gpa, VIRTIO_BLK_S_IOERR);

	switch (type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT: {
		bool rd = type == VIRTIO_BLK_T_IN;
		uint64_t len = rd ? in_len : out_len;

		nsect = len / SECTOR;
		if ((rd ? out_len : in_len) || !len || len % SECTOR || (!rd && b->o.readonly) ||
		    sector > b->capacity || nsect > b->capacity - sector)
			return finish_bad(q, c->head, status_gpa, VIRTIO_BLK_S_IOERR);
		r = req_begin(q, c->head, status_gpa, rd ? OP_READ : OP_WRITE, &err);
		if (!r)
			return err;
		r->off = sector * SECTOR;
		r->len = len;
		err = req_start_rw(q, r, rd ? in : out, rd ? nin : nout);
		if (err)
			return err < 0 ? err : 0; /* finished with IOERR */
		break;
	}
	case VIRTIO_BLK_T_FLUSH:
		r = req_begin(q, c->head, status_gpa, OP_FLUSH, &err);
		if (!r)
			return err;
		break;
	case VIRTIO_BLK_T_GET_ID:
		return req_get_id(q, c->head, status_gpa, in, nin, in_len);
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES: {
		unsigned char rb[RANGE_BYTES];
		uint32_t num, flags;
		bool wz = type == VIRTIO_BLK_T_WRITE_ZEROES;

		if (b->o.readonly || in_len || out_len != RANGE_BYTES ||
		    ranges_read(q, out, nout, rb, RANGE_BYTES))
			return finish_bad(q, c->head, status_gpa, VIRTIO_BLK_S_IOERR);
		memcpy(&sector, rb, 8);
		memcpy(&num, rb + 8, 4);
		memcpy(&flags, rb + 12, 4);
		sector = le64toh(sector);
		num = le32toh(num);
		flags = le32toh(flags);
		if ((flags & ~VIRTIO_BLK_WZ_F_UNMAP) || (!wz && flags))
			return finish_bad(q, c->head, status_gpa, VIRTIO_BLK_S_UNSUPP);
		if (num > MAX_DISCARD_SECTORS || sector > b->capacity || num > b->capacity - sector)
			return finish_bad(q, c->head, status_gpa, VIRTIO_BLK_S_IOERR);
		add(wz ? &b->c.write_zeroes_ops : &b->c.discard_ops, 1);
		if (!num)
			return finish(q, c->head, status_gpa, VIRTIO_BLK_S_OK, 1);
		r = req_begin(q, c->head, status_gpa, wz ? OP_WRITE_ZEROES : OP_DISCARD, &err);
		if (!r)
			return err;
		r->off = sector * SECTOR;
		r->len = (uint64_t)num * SECTOR;
		r->fa_mode = wz && !(flags & VIRTIO_BLK_WZ_F_UNMAP) ?
				     FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE :
				     FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
		break;
	}
	default:
		return finish_bad(q, c->head, status_gpa, VIRTIO_BLK_S_UNSUPP);
	}
	if (req_submit(q, r)) {
		req_unmap(q, r);
		add(&b->c.io_errors, 1);
		err = finish(q, r->head, r->status_gpa, VIRTIO_BLK_S_IOERR, 1);
		req_put(q, r);
		return err;
	}
	q->in_flight++;
	in_flight_add(b, 1);
	return 0;
}

/* Request @r finished with io_uring result @res: status, used entry; its pins are dropped
 * by q_reap() once the used entry is published (until the driver can see the request
 * complete, its buffers are in flight: nothing may discard or move them). Returns 0 or
 * -EBADMSG. */
static int req_complete(struct vblk_queue *q, struct vblk_req *r, int res)
{
	struct vblk *b = q->blk;
	uint8_t status = VIRTIO_BLK_S_OK;
	uint32_t used = 1;
	int err;

	if (r->op == OP_WRITE_ZEROES && res == -EOPNOTSUPP &&
	    (r->fa_mode & FALLOC_FL_ZERO_RANGE)) {
		/* the file system cannot zero a range in place: a hole reads as zeroes too */
		r->fa_mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
		if (!req_submit(q, r))
			return 0;
	}
	if (r->chunk >= 0)
		q->chunks[r->chunk].users--;
	q->in_flight--;
	in_flight_add(b, -1);
	switch (r->op) {
	case OP_READ:
	case OP_WRITE:
		if (res < 0 || (uint64_t)res != r->len) {
			status = VIRTIO_BLK_S_IOERR; /* an error, or short: the file shrank */
			break;
		}
		if (r->op == OP_READ) {
			add(&b->c.read_ops, 1);
			add(&b->c.read_bytes, r->len);
			used = (uint32_t)r->len + 1;
		} else {
			add(&b->c.write_ops, 1);
			add(&b->c.write_bytes, r->len);
		}
		break;
	case OP_FLUSH:
		add(&b->c.flush_ops, 1);
		/* fall through */
	default:
		if (res < 0)
			status = VIRTIO_BLK_S_IOERR;
		break;
	}
	if (status != VIRTIO_BLK_S_OK)
		add(&b->c.io_errors, 1);
	err = finish(q, r->head, r->status_gpa, status, used);
	r->next = q->done_reqs;
	q->done_reqs = r;
	return err;
}

/* ---- the ring ---- */

static void notify_arm(struct vblk_queue *q)
{
	struct io_uring_sqe *sqe = q_sqe(q);

	if (!sqe)
		return; /* cannot happen: the ring has room for the queue and its own */
	io_uring_prep_read(sqe, q->notify_fd, &q->notify_buf, sizeof(q->notify_buf), 0);
	io_uring_sqe_set_data64(sqe, TAG_NOTIFY);
	q->notify_armed = true;
}

/* Reap every completion in the ring. Caller holds q->lock. Returns how many. */
static unsigned q_reap(struct vblk_queue *q)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	io_uring_for_each_cqe(&q->ring, head, cqe)
	{
		uint64_t ud = cqe->user_data;
		int res = cqe->res;

		n++;
		switch (ud) {
		case TAG_NOTIFY:
			q->notify_armed = false;
			if (!q->stop)
				notify_arm(q);
			break;
		case TAG_WAKE:
			break;
		case TAG_CANCEL:
			q->cancel_pending = false;
			break;
		default:
			(void)req_complete(q, (struct vblk_req *)(uintptr_t)ud, res);
			break;
		}
	}
	io_uring_cq_advance(&q->ring, n);
	if (n && virtq_used_flush(&q->vq))
		q_broken(q, q->vq.err);
	while (q->done_reqs) { /* published: unpin */
		struct vblk_req *r = q->done_reqs;

		q->done_reqs = r->next;
		req_unmap(q, r);
		req_put(q, r);
	}
	return n;
}

/*
 * Take chains from the avail ring and start them while fewer than the queue size are in
 * flight. Caller holds q->lock. Returns 0 or -EBADMSG (the device needs a reset).
 */
static int q_process(struct vblk_queue *q)
{
	while (q->in_flight < q->vq.cfg.size && !vmmio_broken(&q->blk->t)) {
		struct virtq_chain c = { .seg = q->segs, .max_seg = SEG_CAP };
		int r = virtq_pop(&q->vq, &c);

		if (r == 0)
			break;
		if (r < 0)
			return q_broken(q, q->vq.err);
		r = req_start(q, &c);
		if (r)
			return r;
	}
	if (virtq_used_flush(&q->vq))
		return q_broken(q, q->vq.err);
	return 0;
}

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void cpu_relax(void)
{
#if defined(__x86_64__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield" ::: "memory");
#endif
}

/* A quiescent point between batches: if the memory manager's generation moved, let the
 * ring pages go too (their pins kept them valid; a fresh batch maps them anew). */
static void q_quiesce(struct vblk_queue *q)
{
	uint64_t gen = q->h.gen;

	mm_dma_quiesce(&q->h);
	if (q->h.gen != gen)
		q_pages_drop(q);
}

/* Poll for up to POLL_NS: returns 1 if a completion or an avail entry appeared, 0 if not,
 * -EBADMSG on a bad avail index. Caller holds q->lock (a drain waits at most that long). */
static int q_poll(struct vblk_queue *q)
{
	uint64_t end = now_ns() + POLL_NS;

	do {
		int r;

		for (unsigned i = 0; i < 16; i++)
			cpu_relax();
		if (io_uring_cq_ready(&q->ring))
			return 1;
		r = virtq_avail_peek(&q->vq);
		if (r)
			return r;
	} while (now_ns() < end);
	return 0;
}

/* Wait for a completion without q->lock (the drain may run meanwhile), then take it back.
 * The holder is idle meanwhile: it caches no translation. */
static void q_wait(struct vblk_queue *q)
{
	q_pages_drop(q);
	mm_dma_idle(&q->h);
	pthread_mutex_unlock(&q->lock);
	/* the raw call reads nothing of the ring in user space (the drain may reap) */
	(void)io_uring_enter(q->ring.ring_fd, 0, 1, IORING_ENTER_GETEVENTS, NULL);
	pthread_mutex_lock(&q->lock);
	mm_dma_busy(&q->h);
}

/*
 * Wait up to NAP_NS for a completion without q->lock, as q_wait. Returns true if the
 * wait ended early (a completion, the drain's wake-up, a signal) or cannot be timed;
 * false on the timeout.
 */
static bool q_nap(struct vblk_queue *q)
{
	struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = NAP_NS };
	struct io_uring_getevents_arg arg = { .ts = (uint64_t)(uintptr_t)&ts };
	int r;

	if (!(q->ring.features & IORING_FEAT_EXT_ARG)) {
		q_wait(q);
		return true;
	}
	q_pages_drop(q);
	mm_dma_idle(&q->h);
	pthread_mutex_unlock(&q->lock);
	r = io_uring_enter2(q->ring.ring_fd, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
			    (sigset_t *)&arg, sizeof(arg));
	pthread_mutex_lock(&q->lock);
	mm_dma_busy(&q->h);
	return r != -ETIME;
}

static void *q_thread(void *arg)
{
	struct vblk_queue *q = arg;

	pthread_mutex_lock(&q->lock);
	mm_dma_busy(&q->h);
	notify_arm(q);
	for (;;) {
		int r;

		q_reap(q);
		if (q->stop)
			break;
		r = q_process(q);
		io_uring_submit(&q->ring);
		q_quiesce(q);
		if (io_uring_cq_ready(&q->ring))
			continue;
		if (!r && !vmmio_broken(&q->blk->t) && q->in_flight < q->vq.cfg.size) {
			/* about to sleep: poll a little if nothing is in flight, else nap until
			 * the next completion; then ask for a notify (EVENT_IDX) and look once
			 * more */
			if (!q->in_flight)
				r = q_poll(q);
			else if (q_nap(q))
				continue;
			else
				r = virtq_avail_peek(&q->vq);
			if (r < 0) {
				q_broken(q, q->vq.err);
				q_wait(q);
				continue;
			}
			if (r > 0)
				continue;
			r = virtq_arm_notify(&q->vq);
			if (r < 0)
				q_broken(q, q->vq.err);
			else if (r > 0)
				continue;
		}
		q_wait(q);
	}

	/* stopping: requests in flight complete (their pins dropped), then the notify read
	 * is cancelled, so the ring is empty for the next start */
	while (q->in_flight) {
		io_uring_submit(&q->ring);
		if (!io_uring_cq_ready(&q->ring))
			q_wait(q);
		q_reap(q);
	}
	if (q->notify_armed) {
		struct io_uring_sqe *sqe = q_sqe(q);

		if (sqe) {
			io_uring_prep_cancel64(sqe, TAG_NOTIFY, 0);
			io_uring_sqe_set_data64(sqe, TAG_CANCEL);
			q->cancel_pending = true;
		}
	}
	while (q->notify_armed || q->cancel_pending) {
		io_uring_submit(&q->ring);
		if (!io_uring_cq_ready(&q->ring))
			q_wait(q);
		q_reap(q);
	}
	/* every pin is dropped at a reset: the long-term ones too */
	for (unsigned i = 0; i < q->nr_chunks; i++)
		chunk_evict(q, i);
	memset(q->neg, 0, sizeof(q->neg));
	q_pages_drop(q);
	mm_dma_quiesce(&q->h);
	mm_dma_idle(&q->h);
	q->running = false;
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

/*
 * The memory manager's drain (from a migrating thread, without mm->lock, with no frame
 * marked): submit what is prepared, reap and complete what has finished (dropping those
 * pins), publish the holder's generation. Never waits for I/O; wakes the queue thread if
 * it took completions it was waiting for.
 */
static void q_drain(void *ctx)
{
	struct vblk_queue *q = ctx;

	pthread_mutex_lock(&q->lock);
	if (q->running) {
		bool idle = q->h.idle;

		if (idle)
			mm_dma_busy(&q->h);
		io_uring_submit(&q->ring);
		if (q_reap(q)) {
			struct io_uring_sqe *sqe = q_sqe(q);

			if (sqe) {
				io_uring_prep_nop(sqe);
				io_uring_sqe_set_data64(sqe, TAG_WAKE);
			}
			io_uring_submit(&q->ring);
		}
		q_pages_drop(q);
		mm_dma_quiesce(&q->h);
		if (idle)
			mm_dma_idle(&q->h);
	}
	pthread_mutex_unlock(&q->lock);
}

/* ---- transport ops ---- */

static uint64_t blk_features(void *dev)
{
	return ((struct vblk *)dev)->features;
}

static uint64_t blk_config_read(void *dev, uint64_t off, unsigned len)
{
	const struct vblk *b = dev;
	uint64_t v = 0;

	if (off < CONFIG_BYTES)
		memcpy(&v, b->config + off, off + len <= CONFIG_BYTES ? len : CONFIG_BYTES - off);
	return le64toh(v);
}

static int blk_queue_start(void *dev, unsigned i, const struct virtq_config *cfg, int notify_fd,
			   uint64_t features)
{
	struct vblk *b = dev;
	struct vblk_queue *q = &b->q[i];
	struct virtq_config c = *cfg;
	sigset_t all, old;
	int r;

	(void)features;
	if (q->thread_started)
		return -EBUSY;
	c.mem = &q_mem_ops;
	c.mem_ctx = q;
	pthread_mutex_lock(&q->lock);
	virtq_init(&q->vq, &c);
	q->notify_fd = notify_fd;
	q->stop = false;
	q->running = true;
	pthread_mutex_unlock(&q->lock);
	/* the queue thread takes no signal (vm_run takes SIGINT/SIGTERM from a signalfd) */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&q->thread, NULL, q_thread, q);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		pthread_mutex_lock(&q->lock);
		q->running = false;
		pthread_mutex_unlock(&q->lock);
		return -r;
	}
	{
		char name[16];

		snprintf(name, sizeof(name), "s2vm-blk%uq%u", b->index % 100, i);
		pthread_setname_np(q->thread, name); /* for top and perf; failure is harmless */
	}
	q->thread_started = true;
	return 0;
}

static void blk_queue_stop(void *dev, unsigned i)
{
	struct vblk *b = dev;
	struct vblk_queue *q = &b->q[i];
	uint64_t one = 1;

	if (!q->thread_started)
		return;
	pthread_mutex_lock(&q->lock);
	q->stop = true;
	pthread_mutex_unlock(&q->lock);
	/* wakes the thread through its notify read (or finds it awake) */
	if (write(q->notify_fd, &one, sizeof(one)) < 0) {
		/* the counter is full: it is awake */
	}
	pthread_join(q->thread, NULL);
	q->thread_started = false;
}

static const struct virtio_dev_ops vblk_ops = {
	.name = "virtio-blk",
	.device_id = VIRTIO_ID_BLOCK,
	.features = blk_features,
	.config_read = blk_config_read,
	.queue_start = blk_queue_start,
	.queue_stop = blk_queue_stop,
};

struct vblk *vblk_of(struct vmmio_dev *d)
{
	return d->ops == &vblk_ops ? d->dev : NULL;
}

/* ---- set-up ---- */

static void put_le16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, 2);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void put_le64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static void blk_config_build(struct vblk *b)
{
	uint8_t *c = b->config;

	memset(c, 0, CONFIG_BYTES);
	put_le64(c + 0, b->capacity);
	/* seg_max: a chain (header, data, status) must fit in the queue */
	b->seg_max = b->o.queue_size >= VBLK_SEG_MAX + 2 ? VBLK_SEG_MAX :
		     b->o.queue_size > 3		     ? b->o.queue_size - 2 :
							       1;
	put_le32(c + 12, b->seg_max);
	put_le32(c + 20, SECTOR); /* blk_size */
	put_le16(c + 34, (uint16_t)b->o.num_queues);
	put_le32(c + 36, MAX_DISCARD_SECTORS); /* max_discard_sectors */
	put_le32(c + 40, 1); /* max_discard_seg */
	put_le32(c + 44, DISCARD_ALIGN); /* discard_sector_alignment */
	put_le32(c + 48, MAX_DISCARD_SECTORS); /* max_write_zeroes_sectors */
	put_le32(c + 52, 1); /* max_write_zeroes_seg */
	c[56] = 1; /* write_zeroes_may_unmap */
	b->features = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_F_RING_INDIRECT_DESC |
		      1ull << VIRTIO_F_RING_EVENT_IDX | 1ull << VIRTIO_BLK_F_SEG_MAX |
		      1ull << VIRTIO_BLK_F_BLK_SIZE | 1ull << VIRTIO_BLK_F_FLUSH |
		      1ull << VIRTIO_BLK_F_DISCARD | 1ull << VIRTIO_BLK_F_WRITE_ZEROES;
	if (b->o.num_queues > 1)
		b->features |= 1ull << VIRTIO_BLK_F_MQ;
	if (b->o.readonly)
		b->features |= 1ull << VIRTIO_BLK_F_RO;
}

/* O_DIRECT alignment of @fd (statx DIOALIGN, else the logical block size, else 512). */
static void dio_align(struct vblk *b, bool bdev)
{
	struct statx sx;
	int lbs = 0;

	b->dio_mem_align = b->dio_off_align = 512;
	if (statx(b->dfd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
	    (sx.stx_mask & STATX_DIOALIGN) && sx.stx_dio_mem_align && sx.stx_dio_offset_align) {
		b->dio_mem_align = sx.stx_dio_mem_align;
		b->dio_off_align = sx.stx_dio_offset_align;
	} else if (bdev && ioctl(b->dfd, BLKSSZGET, &lbs) == 0 && lbs > 0) {
		b->dio_mem_align = b->dio_off_align = (uint32_t)lbs;
	}
}

int vblk_open(const struct disk_opts *o, unsigned index, struct vblk **out, struct s2_err *e)
{
	const char *path = o->path, *base;
	struct flock lk = { .l_whence = SEEK_SET };
	struct vblk *b;
	struct stat st;
	uint64_t bytes;
	int r;

	*out = NULL;
	if (stat(path, &st) < 0)
		return s2_err_set(e, -errno, "--disk path=%s: %s", path,
				  errno == ENOENT ? "no such file" : strerror(errno));
	if (S_ISDIR(st.st_mode))
		return s2_err_set(e, -EISDIR, "--disk path=%s: is a directory", path);
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return s2_err_set(e, -EINVAL, "--disk path=%s: not a regular file or block device",
				  path);
	b = calloc(1, sizeof(*b));
	if (!b)
		return s2_err_set(e, -ENOMEM, "out of memory");
	b->o = *o;
	b->o.path = strdup(path);
	b->index = index;
	b->dfd = -1;
	b->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (!b->o.path) {
		r = s2_err_set(e, -ENOMEM, "out of memory");
		goto out_free;
	}
	if (b->fd < 0) {
		r = s2_err_set(e, -errno, "--disk path=%s: cannot open it for reading: %s", path,
			       strerror(errno));
		goto out_free;
	}
	if (!o->readonly) {
		int fd = open(path, O_RDWR | O_CLOEXEC);

		if (fd < 0) {
			r = s2_err_set(e, -errno,
				       "--disk path=%s: cannot open it for writing: %s (readonly=on "
				       "gives the guest a read-only disk)",
				       path, strerror(errno));
			goto out_free;
		}
		close(b->fd);
		b->fd = fd;
	}
	/* one writer, or any number of readers (as QEMU's image locking) */
	lk.l_type = o->readonly ? F_RDLCK : F_WRLCK;
	if (fcntl(b->fd, F_OFD_SETLK, &lk) < 0) {
		r = s2_err_set(e, -errno, "--disk path=%s: in use by another process (or another "
				   "--disk) that %s: %s",
			       path, o->readonly ? "writes it" : "reads or writes it",
			       strerror(errno));
		goto out_free;
	}
	if (o->direct) {
		b->dfd = open(path, (o->readonly ? O_RDONLY : O_RDWR) | O_DIRECT | O_CLOEXEC);
		if (b->dfd < 0) {
			r = s2_err_set(e, -errno, "--disk path=%s,direct=on: %s", path,
				       errno == EINVAL ? "the file system does not support O_DIRECT" :
							 strerror(errno));
			goto out_free;
		}
		dio_align(b, S_ISBLK(st.st_mode));
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(b->fd, BLKGETSIZE64, &bytes) < 0) {
			r = s2_err_set(e, -errno, "--disk path=%s: cannot read its size: %s", path,
				       strerror(errno));
			goto out_free;
		}
	} else {
		bytes = (uint64_t)st.st_size;
	}
	b->capacity = bytes / SECTOR;
	base = strrchr(b->o.path, '/');
	base = base ? base + 1 : b->o.path;
	/* "s2vm-" + base name, cut at 20 bytes, NUL padded */
	memset(b->id, 0, sizeof(b->id));
	memcpy(b->id, "s2vm-", 5);
	memcpy(b->id + 5, base,
	       strlen(base) < sizeof(b->id) - 5 ? strlen(base) : sizeof(b->id) - 5);
	blk_config_build(b);
	for (unsigned i = 0; i < DISK_MAX_QUEUES; i++) {
		b->q[i].blk = b;
		b->q[i].index = i;
		b->q[i].notify_fd = -1;
		pthread_mutex_init(&b->q[i].lock, NULL);
	}
	*out = b;
	return 0;

out_free:
	if (b->fd >= 0)
		close(b->fd);
	if (b->dfd >= 0)
		close(b->dfd);
	free(b->o.path);
	free(b);
	return r;
}

int vblk_attach(struct vblk *b, struct vm *vm, gpa_t base, struct s2_err *e)
{
	static const char *const names[DISK_MAX_QUEUES] = {
		"virtio-blk q0", "virtio-blk q1", "virtio-blk q2", "virtio-blk q3",
		"virtio-blk q4", "virtio-blk q5", "virtio-blk q6", "virtio-blk q7",
	};
	int r;

	b->vm = vm;
	b->mm = &vm->mm;
	for (unsigned i = 0; i < b->o.num_queues; i++) {
		struct vblk_queue *q = &b->q[i];
		/* room for every request of the queue, its notify read, a wake-up and a cancel */
		unsigned entries = b->o.queue_size + 8;

		r = io_uring_queue_init(entries, &q->ring, 0);
		if (r)
			return s2_err_set(e, r, "--disk path=%s: io_uring for queue %u: %s%s",
					  b->o.path, i, strerror(-r),
					  r == -EPERM || r == -ENOSYS ?
						  " (is io_uring disabled? see "
						  "/proc/sys/kernel/io_uring_disabled)" :
						  "");
		q->ring_ok = true;
		if (b->o.registered) {
			uint64_t n = b->o.pinned_max / CHUNK / b->o.num_queues;

			q->nr_chunks = (unsigned)(n < 1 ? 1 : n > MAX_CHUNKS ? MAX_CHUNKS : n);
			q->chunks = malloc(q->nr_chunks * sizeof(*q->chunks));
			if (!q->chunks)
				return s2_err_set(e, -ENOMEM, "out of memory");
			for (unsigned k = 0; k < q->nr_chunks; k++)
				q->chunks[k] = (struct vblk_chunk){ .gpa = ~0ull };
			r = io_uring_register_buffers_sparse(&q->ring, q->nr_chunks);
			if (r)
				return s2_err_set(e, r, "--disk path=%s,registered=on: cannot register "
						   "%u fixed buffers with io_uring: %s",
						  b->o.path, q->nr_chunks, strerror(-r));
		}
		r = mm_dma_holder_init(b->mm, &q->h, names[i], q_drain, q);
		if (r)
			return s2_err_set(e, r, "--disk path=%s: queue %u: %s", b->o.path, i,
					  r == -ENOSPC ? "too many device queues in all (the memory "
							 "manager tracks at most 16 translation "
							 "holders, the vCPUs included)" :
							 strerror(-r));
		q->holder_ok = true;
	}
	b->transport_ok = true;
	return vmmio_create(&b->t, vm, base, &vblk_ops, b, b->o.num_queues,
			    (uint16_t)b->o.queue_size, e);
}

void vblk_stop(struct vblk *b)
{
	if (b && b->transport_ok)
		vmmio_stop(&b->t);
}

void vblk_close(struct vblk *b)
{
	if (!b)
		return;
	vblk_stop(b);
	for (unsigned i = 0; i < DISK_MAX_QUEUES; i++) {
		struct vblk_queue *q = &b->q[i];

		if (q->holder_ok)
			mm_dma_holder_destroy(&q->h); /* no drain is running or will run */
		if (q->ring_ok)
			io_uring_queue_exit(&q->ring);
		free(q->chunks);
		while (q->free_reqs) {
			struct vblk_req *r = q->free_reqs;

			q->free_reqs = r->next;
			free(r);
		}
		pthread_mutex_destroy(&q->lock);
	}
	if (b->transport_ok)
		vmmio_destroy(&b->t);
	if (b->dfd >= 0)
		close(b->dfd);
	close(b->fd);
	free(b->o.path);
	free(b);
}

void vblk_report(struct vblk *b, struct vblk_report *r)
{
	const struct vmmio_stats *t = &b->t.st;

	memset(r, 0, sizeof(*r));
	r->path = b->o.path;
	r->index = b->index;
	r->gpa = b->t.base;
	r->capacity = b->capacity;
	r->readonly = b->o.readonly;
	r->direct = b->o.direct;
	r->registered = b->o.registered;
	r->num_queues = b->o.num_queues;
	r->queue_size = b->o.queue_size;
	r->read_ops = get(&b->c.read_ops);
	r->read_bytes = get(&b->c.read_bytes);
	r->write_ops = get(&b->c.write_ops);
	r->write_bytes = get(&b->c.write_bytes);
	r->flush_ops = get(&b->c.flush_ops);
	r->discard_ops = get(&b->c.discard_ops);
	r->write_zeroes_ops = get(&b->c.write_zeroes_ops);
	r->get_id_ops = get(&b->c.get_id_ops);
	r->in_flight = get(&b->c.in_flight);
	r->in_flight_peak = get(&b->c.in_flight_peak);
	r->bad_requests = get(&b->c.bad_requests);
	r->io_errors = get(&b->c.io_errors);
	r->direct_fallbacks = get(&b->c.direct_fallbacks);
	r->notifies = get(&t->notifies);
	r->ignored_notifies = get(&t->ignored_notifies);
	r->ignored_writes = get(&t->ignored_writes);
	r->needs_reset = get(&t->needs_reset);
	r->resets = get(&t->resets);
	if (__atomic_load_n(&b->t.why_set, __ATOMIC_ACQUIRE) == 1)
		r->needs_reset_why = b->t.why;
	r->pinned_max = b->o.registered ? b->o.pinned_max : 0;
	r->pinned_bytes = get(&b->c.pinned_bytes);
	r->pinned_peak = get(&b->c.pinned_peak);
	r->chunk_registrations = get(&b->c.chunk_registrations);
	r->chunk_evictions = get(&b->c.chunk_evictions);
	r->fixed_ops = get(&b->c.fixed_ops);
	r->pin_failures = get(&b->c.pin_failures);
	r->pin_busy = get(&b->c.pin_busy);
}
