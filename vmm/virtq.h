/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueues (virtio 1.2 §2.7), device side: the descriptor-chain walker (direct
 * chains and indirect tables, with loop, length and nesting checks), the used ring and
 * EVENT_IDX's avail_event.
 *
 * The walker reaches guest memory only through struct virtq_mem_ops (the device passes
 * mm_dma_read/mm_dma_write for its queue's DMA holder; the unit tests and the fuzz target
 * pass fake memory), so it never holds a pointer into guest RAM and every address it
 * reads is the guest's to choose. Nothing here allocates, locks or sleeps; a struct virtq
 * is used by one thread at a time.
 *
 * Errors that the driver caused and that leave the queue unusable (a loop, a chain
 * longer than the queue size (indirect tables count: virtio 1.2 §2.7.5.3.1, so no table
 * may have more entries than the queue), a descriptor index out of range, a nested or malformed indirect
 * table, an avail index that jumped by more than the queue size, a ring that cannot be
 * read) return -EBADMSG with vq->err naming the fault: the device must set
 * DEVICE_NEEDS_RESET and stop the queue.
 */
#ifndef S2VM_VIRTQ_H
#define S2VM_VIRTQ_H

#include <stdbool.h>
#include <stdint.h>

#define VIRTQ_MAX_SIZE 1024u /* largest queue s2vm accepts */

#define VIRTQ_DESC_F_NEXT 1u
#define VIRTQ_DESC_F_WRITE 2u /* device-writable */
#define VIRTQ_DESC_F_INDIRECT 4u

#define VIRTQ_DESC_SIZE 16u /* struct virtq_desc in guest memory: le64 addr, le32 len,
			     * le16 flags, le16 next */
#define VIRTQ_USED_ELEM_SIZE 8u /* le32 id, le32 len */

/*
 * How the walker reaches guest memory. All return 0 or a negative errno (then that memory
 * is not the driver's to use: the queue needs a reset). read/write copy bytes with no
 * atomicity promised (descriptors, used elements: published or consumed through an
 * index). read16/write16 are single-copy atomic 16-bit accesses at a 2-byte aligned
 * @gpa, raw (little-endian) values: for the indices the driver writes while the device
 * reads them (avail->idx) and the reverse (used->idx, avail_event) — a byte-wise copy
 * could see half of an increment.
 */
struct virtq_mem_ops {
	int (*read)(void *ctx, uint64_t gpa, void *dst, uint64_t len);
	int (*write)(void *ctx, uint64_t gpa, const void *src, uint64_t len);
	int (*read16)(void *ctx, uint64_t gpa, uint16_t *v);
	int (*write16)(void *ctx, uint64_t gpa, uint16_t v);
};

/* One buffer of a chain: guest-physical [gpa, gpa + len), device-writable or not. */
struct virtq_seg {
	uint64_t gpa;
	uint32_t len; /* may be 0 */
	uint32_t write; /* VIRTQ_DESC_F_WRITE was set */
};

/*
 * One descriptor chain as virtq_pop() found it. The caller provides @seg (capacity
 * @max_seg); a longer chain is still walked and checked to its end, its first @max_seg
 * buffers kept in @seg and the last one in @last either way.
 */
struct virtq_chain {
	struct virtq_seg *seg; /* in: caller's array */
	unsigned max_seg; /* in: its capacity */
	uint16_t head; /* descriptor index to hand back with virtq_used_add() */
	unsigned nr_desc; /* buffers in the chain (not the descriptor naming an indirect table) */
	unsigned nr_seg; /* entries of @seg filled: min(nr_desc, max_seg) */
	struct virtq_seg last; /* the last buffer (valid if nr_desc > 0) */
	uint64_t out_len; /* total device-readable bytes */
	uint64_t in_len; /* total device-writable bytes */
	bool indirect; /* the chain went through an indirect table */
};

struct virtq_config {
	uint16_t size; /* queue size: a power of two, 1..VIRTQ_MAX_SIZE */
	uint64_t desc, avail, used; /* ring GPAs (QueueDesc, QueueDriver, QueueDevice) */
	bool indirect; /* VIRTIO_F_RING_INDIRECT_DESC negotiated */
	bool event_idx; /* VIRTIO_F_RING_EVENT_IDX negotiated */
	const struct virtq_mem_ops *mem;
	void *mem_ctx;
};

struct virtq {
	struct virtq_config cfg;
	uint16_t last_avail; /* next avail ring slot to take (free-running) */
	uint16_t avail_idx; /* avail->idx as last read */
	uint16_t used_idx; /* next used ring slot (free-running), published by flush */
	uint16_t used_pending; /* elements written since the last virtq_used_flush() */
	uint16_t avail_event; /* last value written to avail_event */
	char err[128]; /* why the last call returned -EBADMSG */
};

/*
 * Check ring geometry the driver wrote before QueueReady: @size a power of two in
 * 1..VIRTQ_MAX_SIZE, the descriptor table 16-byte, the driver area 2-byte and the device
 * area 4-byte aligned, and all three (with the event fields) inside guest RAM
 * [0, @ram_end). Returns 0 or -EINVAL.
 */
int virtq_ring_check(uint16_t size, uint64_t desc, uint64_t avail, uint64_t used,
		     uint64_t ram_end) __attribute__((warn_unused_result));

/* Start a queue on rings @cfg (already checked): indices at 0, as after a reset. */
void virtq_init(struct virtq *vq, const struct virtq_config *cfg);

/*
 * Take the next available chain into @c (seg and max_seg set by the caller). Returns 1
 * with @c filled, 0 if the avail ring is empty, or -EBADMSG (vq->err set: the queue
 * needs a reset; nothing was taken).
 */
int virtq_pop(struct virtq *vq, struct virtq_chain *c) __attribute__((warn_unused_result));

/* Walk the chain at descriptor @head into @c without touching the avail ring (used by
 * virtq_pop; exposed for the tests). Returns 0 or -EBADMSG. */
int virtq_chain_walk(struct virtq *vq, uint16_t head, struct virtq_chain *c)
	__attribute__((warn_unused_result));

/* Read avail->idx: 1 if chains are available, 0 if not, -EBADMSG on a bad index. Cheap:
 * for polling. */
int virtq_avail_peek(struct virtq *vq) __attribute__((warn_unused_result));

/*
 * Write used element (@head, @len) at the next used slot; not visible to the driver
 * until virtq_used_flush(). Returns 0 or -EBADMSG (the used ring cannot be written).
 */
int virtq_used_add(struct virtq *vq, uint16_t head, uint32_t len)
	__attribute__((warn_unused_result));

/* Publish the used elements written since the last flush (one used->idx store, after a
 * release fence). Returns 0 or -EBADMSG. */
int virtq_used_flush(struct virtq *vq) __attribute__((warn_unused_result));

/*
 * Before the device sleeps: with EVENT_IDX write avail_event = the next slot it will take,
 * so the driver notifies for the next chain; then, after a full fence, read avail->idx
 * again. Returns 1 if chains are available (do not sleep), 0 if the device may sleep,
 * -EBADMSG on a bad ring.
 */
int virtq_arm_notify(struct virtq *vq) __attribute__((warn_unused_result));

#endif
