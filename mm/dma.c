// SPDX-License-Identifier: MIT
/*
 * Guest access for devices and the monitor: translation through a per-holder IOTLB (a
 * cache of stage-2 walks), pins in the frame records, copies through the pools' own
 * mappings. See mm/dma.h for the protocol with migration.
 */
#include <errno.h>
#include <string.h>

#include "mm/dma.h"
#include "mm/migrate.h"
#include "mm/mm.h"

#define PAGE 4096ull
#define PAGE_MASK (~(PAGE - 1))

static void pins_add(struct mm *mm, int64_t d)
{
	uint64_t now = __atomic_add_fetch(&mm->pins.short_now, (uint64_t)d, __ATOMIC_RELAXED);
	uint64_t peak = __atomic_load_n(&mm->pins.short_peak, __ATOMIC_RELAXED);

	while (d > 0 && now > peak &&
	       !__atomic_compare_exchange_n(&mm->pins.short_peak, &peak, now, false,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

/*
 * Wait until @f is no longer marked by a migration batch (or, @f NULL, until no batch is
 * marking frames). Takes mm->lock; the batch does not hold it while it copies, so this
 * waits exactly for the batch that marked the frame.
 */
static void wait_unmarked(struct mm *mm, struct frame *f)
{
	pthread_mutex_lock(&mm->lock);
	while (mm->batch_active && (!f || (frame_flags(f) & FRAME_MIGRATING)) && !mm->fatal)
		pthread_cond_wait(&mm->batch_cond, &mm->lock);
	pthread_mutex_unlock(&mm->lock);
}

/*
 * Pin the record governing @gpa and return its pool and frame. Lock-free unless the
 * frame is being migrated (then it waits for that batch) or is read-only and @write (then
 * it is made writable under mm->lock). Returns the record, or NULL with *@err set.
 */
static struct frame *pin_page(struct mm *mm, gpa_t gpa, bool write, unsigned *pool,
			      uint64_t *pfn, int *err, bool *waited)
{
	bool wp_ok = false; /* write even if FRAME_WP: the fix-up is impossible (fatal) */

	for (;;) {
		struct frame *f = frame_get(&mm->ft, gpa, NULL), *g;
		int r;

		if (!f) {
			*err = -EFAULT;
			return NULL;
		}
		r = frame_pin(f, 1);
		if (r == -EBUSY) {
			*waited = true;
			wait_unmarked(mm, f);
			if (__atomic_load_n(&mm->fatal, __ATOMIC_ACQUIRE)) {
				*err = -EIO;
				return NULL;
			}
			continue;
		}
		if (r == -ENOENT && frame_get(&mm->ft, gpa, NULL) != f)
			continue; /* a huge frame was re-formed under us: look up again */
		if (r == -EOVERFLOW)
			__atomic_add_fetch(&mm->pins.refused, 1, __ATOMIC_RELAXED);
		if (r) {
			*err = r == -ENOENT ? -EFAULT : r;
			return NULL;
		}
		/* pinned: the record can no longer be marked, split or moved; check that it
		 * is still the one governing @gpa (a batch may have ended in between) */
		g = frame_get(&mm->ft, gpa, pfn);
		if (g != f) {
			frame_unpin(f, 1);
			continue;
		}
		if (write && !wp_ok && (frame_flags(f) & FRAME_WP)) {
			/* left read-only by a lazy migration: make it writable first (this
			 * completes any deferred invalidation), as a vCPU write would */
			frame_unpin(f, 1);
			pthread_mutex_lock(&mm->lock);
			r = mm_handle_write_fault_locked(mm, gpa);
			if (r == -EFAULT) {
				/* the map (the authority) has it writable already: a fix-up
				 * that the alias took only in part left the flag behind */
				struct s2_leaf l;
				unsigned lvl;

				if (!s2_walk(&mm->map, gpa & PAGE_MASK, &l, &lvl) &&
				    (l.perm & S2_PERM_W)) {
					frame_clear_flags(f, FRAME_WP);
					r = 0;
				}
			}
			pthread_mutex_unlock(&mm->lock);
			/* after a fatal error the data still goes where the map says: the
			 * guest is stopping, and what it wrote must not be lost */
			wp_ok = r == -EIO;
			if (r && r != -EAGAIN && r != -EIO && (frame_flags(f) & FRAME_WP)) {
				*err = r == -EIO ? -EIO : -EFAULT;
				return NULL;
			}
			continue;
		}
		*pool = frame_pool(f);
		pins_add(mm, 1);
		return f;
	}
}

static void unpin_page(struct mm *mm, struct frame *f)
{
	frame_unpin(f, 1);
	pins_add(mm, -1);
}

/* Bounds of a guest range: inside RAM and not wrapping. */
static bool range_ok(const struct mm *mm, gpa_t gpa, uint64_t len)
{
	return gpa <= mm->cfg.mem_size && len <= mm->cfg.mem_size - gpa;
}

/* Copy through pinned frames, one record at a time. */
static int guest_copy(struct mm *mm, gpa_t gpa, void *buf, uint64_t len, bool to_guest)
{
	unsigned char *b = buf;
	bool waited = false;

	if (!range_ok(mm, gpa, len))
		return -EFAULT;
	while (len) {
		uint64_t in_page = PAGE - (gpa & (PAGE - 1)), n = len < in_page ? len : in_page;
		unsigned pool;
		uint64_t pfn;
		int err = 0;
		struct frame *f = pin_page(mm, gpa, to_guest, &pool, &pfn, &err, &waited);
		unsigned char *host;

		if (!f)
			return err;
		host = mm->pools[pool].base + (pfn << POOL_FRAME_SHIFT) + (gpa & (PAGE - 1));
		if (to_guest)
			memcpy(host, b, n);
		else
			memcpy(b, host, n);
		unpin_page(mm, f);
		b += n;
		gpa += n;
		len -= n;
	}
	return 0;
}

int mm_guest_read(struct mm *mm, gpa_t gpa, void *dst, uint64_t len)
{
	return guest_copy(mm, gpa, dst, len, false);
}

int mm_guest_write(struct mm *mm, gpa_t gpa, const void *src, uint64_t len)
{
	return guest_copy(mm, gpa, (void *)src, len, true);
}

int mm_dma_holder_init(struct mm *mm, struct mm_dma_holder *h, const char *name,
		       void (*drain)(void *ctx), void *drain_ctx)
{
	int idx;

	memset(h, 0, sizeof(*h));
	for (unsigned i = 0; i < MM_IOTLB_SIZE; i++)
		h->tlb[i].page = ~0ull;
	pthread_mutex_lock(&mm->lock);
	idx = gen_holder_add(&mm->gens, name);
	if (idx >= 0) {
		gen_holder_set_idle(&mm->gens, idx, true);
		h->mm = mm;
		h->holder = idx;
		h->idle = true;
		h->drain = drain;
		h->drain_ctx = drain_ctx;
		h->gen = gen_current(&mm->gens);
		mm->dma_holders[idx] = h;
	}
	pthread_mutex_unlock(&mm->lock);
	return idx < 0 ? idx : 0;
}

void mm_dma_holder_destroy(struct mm_dma_holder *h)
{
	struct mm *mm = h->mm;

	if (!mm)
		return;
	/* mig_lock: no migration is calling this holder's drain now or later */
	pthread_mutex_lock(&mm->mig_lock);
	pthread_mutex_lock(&mm->lock);
	mm->dma_holders[h->holder] = NULL;
	gen_holder_remove(&mm->gens, h->holder);
	pthread_mutex_unlock(&mm->lock);
	pthread_mutex_unlock(&mm->mig_lock);
	h->mm = NULL;
}

static void iotlb_flush(struct mm_dma_holder *h)
{
	for (unsigned i = 0; i < MM_IOTLB_SIZE; i++)
		h->tlb[i].page = ~0ull;
	h->st.iotlb_flushes++;
}

void mm_dma_quiesce(struct mm_dma_holder *h)
{
	uint64_t gen = gen_current(&h->mm->gens); /* read before dropping entries */

	if (gen != h->gen) {
		iotlb_flush(h);
		h->gen = gen;
	}
	gen_publish(&h->mm->gens, h->holder, gen);
}

void mm_dma_idle(struct mm_dma_holder *h)
{
	iotlb_flush(h);
	h->idle = true;
	gen_holder_set_idle(&h->mm->gens, h->holder, true);
}

void mm_dma_busy(struct mm_dma_holder *h)
{
	h->gen = gen_current(&h->mm->gens);
	h->idle = false;
	gen_holder_set_idle(&h->mm->gens, h->holder, false);
}

/*
 * Translate the page of @gpa through @h's IOTLB, walking the stage-2 map on a miss (under
 * mm->lock, which a batch does not hold while it copies). Fills *@e. Returns 0 or
 * -EFAULT (unmapped).
 */
static int iotlb_lookup(struct mm *mm, struct mm_dma_holder *h, gpa_t gpa, bool write,
			struct mm_iotlb_entry **e)
{
	uint64_t page = gpa >> 12;
	struct mm_iotlb_entry *t = &h->tlb[page % MM_IOTLB_SIZE];
	struct s2_leaf l;
	unsigned lvl;
	int r;

	if (t->page == page && (!write || t->writable)) {
		h->st.iotlb_hits++;
		*e = t;
		return 0;
	}
	h->st.iotlb_misses++;
	pthread_mutex_lock(&mm->lock);
	r = s2_walk(&mm->map, gpa & PAGE_MASK, &l, &lvl);
	if (!r && write && !(l.perm & S2_PERM_W)) {
		/* lazily read-only: writable first, as for a vCPU's write */
		(void)mm_handle_write_fault_locked(mm, gpa & PAGE_MASK);
		r = s2_walk(&mm->map, gpa & PAGE_MASK, &l, &lvl);
	}
	pthread_mutex_unlock(&mm->lock);
	if (r)
		return -EFAULT;
	{
		uint64_t lsz = s2_level_size(lvl);
		hpa_t oa = l.oa + ((gpa & PAGE_MASK) & (lsz - 1));

		t->page = page;
		t->pool = (uint32_t)(oa >> MM_POOL_SHIFT);
		t->pfn = (oa & ((1ull << MM_POOL_SHIFT) - 1)) >> POOL_FRAME_SHIFT;
		t->writable = !!(l.perm & S2_PERM_W);
	}
	*e = t;
	return 0;
}

/*
 * Pin the page of @gpa for @h and return its host address: IOTLB translation, then a pin
 * on the record, then a check that the record still says what the IOTLB said (else the
 * entry was stale: drop it and walk again). @prev is the record the previous page of the
 * same request pinned: pages of one huge frame pin its head once per request.
 */
static int dma_pin_page(struct mm *mm, struct mm_dma_holder *h, gpa_t gpa, bool write,
			struct frame **prev, unsigned char **host)
{
	for (int tries = 0;; tries++) {
		struct mm_iotlb_entry *e;
		struct frame *f, *g;
		uint64_t pfn;
		int r = iotlb_lookup(mm, h, gpa, write, &e);

		if (r)
			return r;
		f = frame_get(&mm->ft, gpa, NULL);
		if (!f)
			return -EFAULT;
		if (f != *prev) {
			r = frame_pin(f, 1);
			if (r == -EBUSY) {
				h->st.migration_waits++;
				e->page = ~0ull;
				wait_unmarked(mm, f);
				if (__atomic_load_n(&mm->fatal, __ATOMIC_ACQUIRE))
					return -EIO;
				continue;
			}
			if (r == -ENOENT && frame_get(&mm->ft, gpa, NULL) != f) {
				e->page = ~0ull; /* re-formed under us: look up again */
				continue;
			}
			if (r == -EOVERFLOW)
				__atomic_add_fetch(&mm->pins.refused, 1, __ATOMIC_RELAXED);
			if (r)
				return r == -ENOENT ? -EFAULT : r;
		}
		g = frame_get(&mm->ft, gpa, &pfn);
		if (g != f || frame_pool(f) != e->pool || pfn != e->pfn ||
		    (write && (frame_flags(f) & FRAME_WP))) {
			/* stale entry (the frame moved since): walk again */
			if (f != *prev)
				frame_unpin(f, 1);
			e->page = ~0ull;
			if (write && (frame_flags(f) & FRAME_WP))
				e->writable = 0;
			if (tries > 1000)
				return -EAGAIN;
			continue;
		}
		if (write && !e->writable) {
			/* read-only and not fixable now: let the walk try again, then fail */
			if (f != *prev)
				frame_unpin(f, 1);
			e->page = ~0ull;
			if (tries > 3)
				return -EFAULT;
			continue;
		}
		if (f != *prev)
			pins_add(mm, 1);
		*prev = f;
		*host = mm->pools[e->pool].base + (pfn << POOL_FRAME_SHIFT);
		return 0;
	}
}

void mm_dma_unmap(struct mm *mm, struct mm_dma_holder *h, gpa_t gpa, uint64_t len)
{
	struct frame *prev = NULL;

	if (!len)
		return;
	h->st.unmaps++;
	for (gpa_t g = gpa & PAGE_MASK, end = gpa + len; g < end; g += PAGE) {
		struct frame *f = frame_get(&mm->ft, g, NULL);

		if (f && f != prev)
			unpin_page(mm, f);
		prev = f;
	}
}

int mm_dma_map(struct mm *mm, struct mm_dma_holder *h, gpa_t gpa, uint64_t len,
	       enum mm_dma_dir dir, struct iovec *iov, unsigned max_iov)
{
	bool write = dir & MM_DMA_FROM_DEVICE;
	struct frame *prev = NULL;
	unsigned n = 0;
	gpa_t g = gpa, end = gpa + len;
	int r = 0;

	if (!len)
		return 0;
	if (!range_ok(mm, gpa, len))
		return -EFAULT;
	h->st.maps++;
	while (g < end) {
		unsigned char *host;
		uint64_t in_page = PAGE - (g & (PAGE - 1)), step = end - g < in_page ? end - g : in_page;

		r = dma_pin_page(mm, h, g, write, &prev, &host);
		if (r)
			break;
		host += g & (PAGE - 1);
		if (n && (unsigned char *)iov[n - 1].iov_base + iov[n - 1].iov_len == host) {
			iov[n - 1].iov_len += step;
		} else if (n == max_iov) {
			r = -E2BIG;
			g += step; /* this page is pinned too: unpin it below */
			break;
		} else {
			iov[n++] = (struct iovec){ host, step };
		}
		g += step;
	}
	if (r) {
		if (g > gpa) {
			mm_dma_unmap(mm, h, gpa, g - gpa);
			h->st.unmaps--; /* not the caller's unmap */
		}
		return r;
	}
	return (int)n;
}

static int dma_copy(struct mm *mm, struct mm_dma_holder *h, gpa_t gpa, void *buf, uint64_t len,
		    bool to_guest)
{
	unsigned char *b = buf;
	struct frame *prev = NULL;
	gpa_t g;

	if (!range_ok(mm, gpa, len))
		return -EFAULT;
	for (g = gpa; g < gpa + len;) {
		uint64_t in_page = PAGE - (g & (PAGE - 1));
		uint64_t n = gpa + len - g < in_page ? gpa + len - g : in_page;
		unsigned char *host;
		int r = dma_pin_page(mm, h, g, to_guest, &prev, &host);

		if (r) {
			if (g > gpa) {
				mm_dma_unmap(mm, h, gpa, g - gpa);
				h->st.unmaps--;
			}
			return r;
		}
		host += g & (PAGE - 1);
		if (to_guest)
			memcpy(host, b, n);
		else
			memcpy(b, host, n);
		b += n;
		g += n;
	}
	h->st.unmaps--; /* not a request's unmap */
	mm_dma_unmap(mm, h, gpa, len);
	return 0;
}

int mm_dma_read(struct mm *mm, struct mm_dma_holder *h, gpa_t gpa, void *dst, uint64_t len)
{
	return dma_copy(mm, h, gpa, dst, len, false);
}

int mm_dma_write(struct mm *mm, struct mm_dma_holder *h, gpa_t gpa, const void *src,
		 uint64_t len)
{
	return dma_copy(mm, h, gpa, (void *)src, len, true);
}

/* frame_for_each callbacks for long-term pins */
struct lt_ctx {
	struct mm *mm;
	int err;
	gpa_t done_to; /* pinned [start, done_to) */
};

static int lt_pin_one(void *ctx, struct frame *f, gpa_t gpa, uint64_t npages)
{
	struct lt_ctx *c = ctx;
	int r;

	(void)npages;
	r = frame_pin(f, FRAME_PIN_LONGTERM); /* -EBUSY: a batch is moving it, do not wait */
	if (r) {
		if (r == -EOVERFLOW)
			__atomic_add_fetch(&c->mm->pins.refused, 1, __ATOMIC_RELAXED);
		return r;
	}
	__atomic_add_fetch(&c->mm->pins.longterm_bytes[frame_pool(f)], npages * PAGE,
			   __ATOMIC_RELAXED);
	c->done_to = gpa + npages * PAGE;
	return 0;
}

static int lt_unpin_one(void *ctx, struct frame *f, gpa_t gpa, uint64_t npages)
{
	struct lt_ctx *c = ctx;

	(void)gpa;
	__atomic_sub_fetch(&c->mm->pins.longterm_bytes[frame_pool(f)], npages * PAGE,
			   __ATOMIC_RELAXED);
	frame_unpin(f, FRAME_PIN_LONGTERM);
	return 0;
}

int mm_dma_pin_longterm(struct mm *mm, gpa_t gpa, uint64_t len, int home_node)
{
	struct lt_ctx c = { .mm = mm, .done_to = gpa };
	int r;

	if (!len || (gpa | len) & (PAGE - 1) || !range_ok(mm, gpa, len))
		return -EINVAL;
	if (home_node >= 0) {
		/* long-term pins land on the device's node: move first, as FOLL_LONGTERM
		 * moves pages out of movable memory; a page that cannot move fails the pin */
		struct mig_range rg = { gpa, len };
		struct mig_result res;

		r = mm_migrate_nowait(mm, &rg, 1, (unsigned)home_node, &res);
		if (r)
			return r;
		if (res.aborted)
			return -ENOMEM;
		if (res.pinned)
			return -EBUSY; /* in a request right now: try again later */
	}
	/* the whole range is governed by records that frame_for_each visits once each */
	r = frame_for_each(&mm->ft, gpa, len, lt_pin_one, &c);
	if (r && c.done_to > gpa)
		frame_for_each(&mm->ft, gpa, c.done_to - gpa, lt_unpin_one, &c);
	return r;
}

void mm_dma_unpin_longterm(struct mm *mm, gpa_t gpa, uint64_t len)
{
	struct lt_ctx c = { .mm = mm };

	frame_for_each(&mm->ft, gpa, len, lt_unpin_one, &c);
}

/* Map the aligned 16-bit word at @gpa for @dir: its address, or NULL with *@err. */
static uint16_t *map16(struct mm *mm, struct mm_dma_holder *h, gpa_t gpa, enum mm_dma_dir dir,
		       int *err)
{
	struct iovec iov;
	int n;

	if (gpa & 1) {
		*err = -EFAULT;
		return NULL;
	}
	n = mm_dma_map(mm, h, gpa, 2, dir, &iov, 1);
	if (n < 0) {
		*err = n;
		return NULL;
	}
	return iov.iov_base; /* one page holds an aligned word: one iovec, aligned */
}

int mm_dma_load16(struct mm *mm, struct mm_dma_holder *h, gpa_t gpa, uint16_t *v)
{
	int err = 0;
	uint16_t *p = map16(mm, h, gpa, MM_DMA_TO_DEVICE, &err);

	if (!p)
		return err;
	*v = __atomic_load_n(p, __ATOMIC_ACQUIRE);
	mm_dma_unmap(mm, h, gpa, 2);
	return 0;
}

int mm_dma_store16(struct mm *mm, struct mm_dma_holder *h, gpa_t gpa, uint16_t v)
{
	int err = 0;
	uint16_t *p = map16(mm, h, gpa, MM_DMA_FROM_DEVICE, &err);

	if (!p)
		return err;
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
	mm_dma_unmap(mm, h, gpa, 2);
	return 0;
}
