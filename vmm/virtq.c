// SPDX-License-Identifier: MIT
/* Split virtqueues, device side: see virtq.h. Every guest address is the driver's choice
 * and reaches memory only through cfg.mem; every count is bounded by the queue size. */
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "vmm/virtq.h"

/* Ring layout (virtio 1.2 §2.7): offsets into the driver (avail) and device (used) areas. */
#define AVAIL_IDX 2u
#define AVAIL_RING 4u
#define USED_IDX 2u
#define USED_RING 4u

/*
 * Fences between the guest-visible accesses made through cfg.mem. Spelled as instructions:
 * GCC's ThreadSanitizer does not model atomic_thread_fence (and warns), and the other
 * side of these is guest code, which no sanitizer sees.
 */
#if defined(__x86_64__)
#define vq_rmb() __asm__ volatile("" ::: "memory") /* TSO: loads are not reordered */
#define vq_wmb() __asm__ volatile("" ::: "memory")
#define vq_mb() __asm__ volatile("mfence" ::: "memory")
#elif defined(__aarch64__)
#define vq_rmb() __asm__ volatile("dmb ishld" ::: "memory")
#define vq_wmb() __asm__ volatile("dmb ishst" ::: "memory")
#define vq_mb() __asm__ volatile("dmb ish" ::: "memory")
#else
#define vq_rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define vq_wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#define vq_mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#endif

struct desc_raw {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};
_Static_assert(sizeof(struct desc_raw) == VIRTQ_DESC_SIZE, "descriptor layout");

/* Record why the queue needs a reset; returns -EBADMSG. */
static int __attribute__((format(printf, 2, 3))) vq_bad(struct virtq *vq, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(vq->err, sizeof(vq->err), fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

/* Is [@gpa, @gpa + @len) inside [0, @end) without wrapping? */
static bool in_ram(uint64_t gpa, uint64_t len, uint64_t end)
{
	return gpa <= end && len <= end - gpa;
}

int virtq_ring_check(uint16_t size, uint64_t desc, uint64_t avail, uint64_t used,
		     uint64_t ram_end)
{
	if (size == 0 || size > VIRTQ_MAX_SIZE || (size & (size - 1)))
		return -EINVAL;
	if ((desc & 15) || (avail & 1) || (used & 3))
		return -EINVAL;
	if (!in_ram(desc, (uint64_t)size * VIRTQ_DESC_SIZE, ram_end) ||
	    !in_ram(avail, 6 + 2ull * size, ram_end) ||
	    !in_ram(used, 6 + (uint64_t)VIRTQ_USED_ELEM_SIZE * size, ram_end))
		return -EINVAL;
	return 0;
}

void virtq_init(struct virtq *vq, const struct virtq_config *cfg)
{
	memset(vq, 0, sizeof(*vq));
	vq->cfg = *cfg;
}

static int vq_read16(struct virtq *vq, uint64_t gpa, uint16_t *v)
{
	uint16_t le;
	int r = vq->cfg.mem->read16(vq->cfg.mem_ctx, gpa, &le);

	if (r)
		return r;
	*v = le16toh(le);
	return 0;
}

static int vq_write16(struct virtq *vq, uint64_t gpa, uint16_t v)
{
	return vq->cfg.mem->write16(vq->cfg.mem_ctx, gpa, htole16(v));
}

/* Read avail->idx and check it moved by at most the queue size past last_avail. */
static int vq_avail_idx_read(struct virtq *vq)
{
	uint16_t idx;

	if (vq_read16(vq, vq->cfg.avail + AVAIL_IDX, &idx))
		return vq_bad(vq, "cannot read the avail ring index at GPA %#llx",
			      (unsigned long long)(vq->cfg.avail + AVAIL_IDX));
	if ((uint16_t)(idx - vq->last_avail) > vq->cfg.size)
		return vq_bad(vq, "avail index moved from %u to %u (queue size %u)",
			      vq->last_avail, idx, vq->cfg.size);
	vq->avail_idx = idx;
	return 0;
}

int virtq_chain_walk(struct virtq *vq, uint16_t head, struct virtq_chain *c)
{
	uint64_t table = vq->cfg.desc;
	uint32_t n = vq->cfg.size; /* entries of the table being walked */
	uint32_t seen = 0; /* descriptors read from that table */
	uint32_t i = head;
	bool in_indirect = false, saw_write = false;

	c->head = head;
	c->nr_desc = 0;
	c->nr_seg = 0;
	c->out_len = 0;
	c->in_len = 0;
	c->indirect = false;
	memset(&c->last, 0, sizeof(c->last));
	for (;;) {
		struct desc_raw d;
		struct virtq_seg s;
		uint16_t flags;

		if (i >= n)
			return vq_bad(vq, "descriptor index %u out of range (%s of %u)", i,
				      in_indirect ? "indirect table" : "queue", n);
		if (++seen > n)
			return vq_bad(vq, "descriptor loop or chain longer than the %s (%u)",
				      in_indirect ? "indirect table" : "queue", n);
		if (vq->cfg.mem->read(vq->cfg.mem_ctx, table + (uint64_t)i * VIRTQ_DESC_SIZE, &d,
				      sizeof(d)))
			return vq_bad(vq, "cannot read descriptor %u at GPA %#llx", i,
				      (unsigned long long)(table + (uint64_t)i * VIRTQ_DESC_SIZE));
		flags = le16toh(d.flags);
		s.gpa = le64toh(d.addr);
		s.len = le32toh(d.len);
		s.write = (flags & VIRTQ_DESC_F_WRITE) ? 1 : 0;
		if (flags & VIRTQ_DESC_F_INDIRECT) {
			if (!vq->cfg.indirect)
				return vq_bad(vq, "indirect descriptor %u, but INDIRECT_DESC was "
						  "not negotiated", i);
			if (in_indirect)
				return vq_bad(vq, "indirect descriptor inside an indirect table");
			if (flags & VIRTQ_DESC_F_NEXT)
				return vq_bad(vq, "descriptor %u has both INDIRECT and NEXT", i);
			if (s.len == 0 || s.len % VIRTQ_DESC_SIZE)
				return vq_bad(vq, "indirect table length %u is not a non-zero "
						  "multiple of 16", s.len);
			/* a chain, indirect table included, is at most the queue size
			 * (§2.7.5.3.1) */
			if (s.len / VIRTQ_DESC_SIZE > vq->cfg.size)
				return vq_bad(vq, "indirect table of %u descriptors (queue size %u)",
					      s.len / VIRTQ_DESC_SIZE, vq->cfg.size);
			if (s.gpa + s.len < s.gpa)
				return vq_bad(vq, "indirect table at GPA %#llx wraps",
					      (unsigned long long)s.gpa);
			/* the WRITE flag of a descriptor naming a table is ignored (§2.7.5.3.2) */
			table = s.gpa;
			n = s.len / VIRTQ_DESC_SIZE;
			seen = 0;
			i = 0;
			in_indirect = true;
			c->indirect = true;
			continue;
		}
		if (s.write) {
			saw_write = true;
			c->in_len += s.len;
		} else {
			if (saw_write)
				return vq_bad(vq, "device-readable descriptor %u after a "
						  "device-writable one", i);
			c->out_len += s.len;
		}
		if (c->nr_seg < c->max_seg)
			c->seg[c->nr_seg++] = s;
		if (++c->nr_desc > vq->cfg.size)
			return vq_bad(vq, "chain of more than the queue size (%u) descriptors",
				      vq->cfg.size);
		c->last = s;
		if (!(flags & VIRTQ_DESC_F_NEXT))
			return 0;
		i = le16toh(d.next);
	}
}

int virtq_pop(struct virtq *vq, struct virtq_chain *c)
{
	uint16_t head;
	uint64_t slot;
	int r;

	if (vq->last_avail == vq->avail_idx) {
		r = vq_avail_idx_read(vq);
		if (r)
			return r;
		if (vq->last_avail == vq->avail_idx)
			return 0;
		/* the ring entries and descriptors are read after the index */
		vq_rmb();
	}
	slot = vq->cfg.avail + AVAIL_RING + 2ull * (vq->last_avail & (vq->cfg.size - 1));
	if (vq_read16(vq, slot, &head))
		return vq_bad(vq, "cannot read the avail ring at GPA %#llx",
			      (unsigned long long)slot);
	if (head >= vq->cfg.size)
		return vq_bad(vq, "avail ring names descriptor %u (queue size %u)", head,
			      vq->cfg.size);
	r = virtq_chain_walk(vq, head, c);
	if (r)
		return r;
	vq->last_avail++;
	return 1;
}

int virtq_avail_peek(struct virtq *vq)
{
	int r;

	if (vq->last_avail != vq->avail_idx)
		return 1;
	r = vq_avail_idx_read(vq);
	if (r)
		return r;
	return vq->last_avail != vq->avail_idx;
}

int virtq_used_add(struct virtq *vq, uint16_t head, uint32_t len)
{
	uint32_t elem[2] = { htole32(head), htole32(len) };
	uint64_t gpa;
	int r;

	if (vq->used_pending == vq->cfg.size) {
		r = virtq_used_flush(vq);
		if (r)
			return r;
	}
	gpa = vq->cfg.used + USED_RING +
	      (uint64_t)VIRTQ_USED_ELEM_SIZE *
		      ((uint16_t)(vq->used_idx + vq->used_pending) & (vq->cfg.size - 1));
	if (vq->cfg.mem->write(vq->cfg.mem_ctx, gpa, elem, sizeof(elem)))
		return vq_bad(vq, "cannot write the used ring at GPA %#llx",
			      (unsigned long long)gpa);
	vq->used_pending++;
	return 0;
}

int virtq_used_flush(struct virtq *vq)
{
	uint16_t idx = (uint16_t)(vq->used_idx + vq->used_pending);

	if (!vq->used_pending)
		return 0;
	/* the elements before the index that publishes them */
	vq_wmb();
	if (vq_write16(vq, vq->cfg.used + USED_IDX, idx))
		return vq_bad(vq, "cannot write the used ring index at GPA %#llx",
			      (unsigned long long)(vq->cfg.used + USED_IDX));
	vq->used_idx = idx;
	vq->used_pending = 0;
	return 0;
}

int virtq_arm_notify(struct virtq *vq)
{
	int r;

	if (vq->last_avail != vq->avail_idx)
		return 1;
	if (vq->cfg.event_idx) {
		uint64_t gpa = vq->cfg.used + USED_RING +
			       (uint64_t)VIRTQ_USED_ELEM_SIZE * vq->cfg.size;

		if (vq_write16(vq, gpa, vq->last_avail))
			return vq_bad(vq, "cannot write avail_event at GPA %#llx",
				      (unsigned long long)gpa);
		vq->avail_event = vq->last_avail;
	}
	/* the driver writes avail->idx then reads avail_event; we write avail_event then
	 * read avail->idx: one of us sees the other's store */
	vq_mb();
	r = vq_avail_idx_read(vq);
	if (r)
		return r;
	return vq->last_avail != vq->avail_idx;
}
