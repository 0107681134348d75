/* SPDX-License-Identifier: MIT */
/*
 * guestos virtio: a polled virtio-mmio (version 2) transport with split virtqueues, and a
 * virtio-blk driver on it (docs/DEVICES.md is the device's side of the contract).
 *
 * No interrupts are wired: the driver publishes requests, notifies the device when
 * VIRTIO_F_RING_EVENT_IDX says it must, and polls the used ring. Every device register
 * access goes through guest.h's mmio_* accessors; rings, headers and data live in guest
 * RAM, which guestos maps 1:1, so a pointer is its own GPA.
 *
 * Layers, each usable on its own (blkbad drives the lower ones by hand):
 *	vheap_*	bump allocation of guest RAM
 *	vio_*	the transport: discovery, status, feature negotiation, config space
 *	vq_*	one split virtqueue: descriptors, avail and used rings, notification
 *	vblk_*	virtio-blk: requests with ids, many in flight, sync helpers
 *
 * Nothing here is thread-safe: one vCPU drives one device.
 */
#ifndef GUESTOS_VIRTIO_H
#define GUESTOS_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>

#include "s2vm/virtio_blk.h"

/* Negative errno values returned below (guestos has no errno.h). */
#define VIO_EIO 5
#define VIO_EAGAIN 11
#define VIO_ENOMEM 12
#define VIO_ENODEV 19
#define VIO_EINVAL 22
#define VIO_ENOSPC 28
#define VIO_ETIMEDOUT 110

/* virtio-mmio v2 registers (virtio 1.2 §4.2.2), byte offsets from the slot. */
#define VIRTIO_MMIO_MAGIC 0x000 /* 0x74726976 "virt" */
#define VIRTIO_MMIO_VERSION 0x004
#define VIRTIO_MMIO_DEVICE_ID 0x008
#define VIRTIO_MMIO_VENDOR_ID 0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES 0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES 0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL 0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX 0x034
#define VIRTIO_MMIO_QUEUE_NUM 0x038
#define VIRTIO_MMIO_QUEUE_READY 0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY 0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS 0x060
#define VIRTIO_MMIO_INTERRUPT_ACK 0x064
#define VIRTIO_MMIO_STATUS 0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW 0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH 0x084
#define VIRTIO_MMIO_QUEUE_DRIVER_LOW 0x090
#define VIRTIO_MMIO_QUEUE_DRIVER_HIGH 0x094
#define VIRTIO_MMIO_QUEUE_DEVICE_LOW 0x0a0
#define VIRTIO_MMIO_QUEUE_DEVICE_HIGH 0x0a4
#define VIRTIO_MMIO_CONFIG_GENERATION 0x0fc
#define VIRTIO_MMIO_CONFIG 0x100

#define VIRTIO_MMIO_MAGIC_VALUE 0x74726976u

/* Device status bits (§2.1). */
#define VIRTIO_S_ACKNOWLEDGE 0x01
#define VIRTIO_S_DRIVER 0x02
#define VIRTIO_S_DRIVER_OK 0x04
#define VIRTIO_S_FEATURES_OK 0x08
#define VIRTIO_S_NEEDS_RESET 0x40
#define VIRTIO_S_FAILED 0x80

/* Feature bits. */
/* virtio-blk's own bits: s2vm/virtio_blk.h */
#define VIRTIO_F_RING_INDIRECT_DESC 28
#define VIRTIO_F_RING_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32


/* Split virtqueue layout (§2.7). */
#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2 /* device-writable */
#define VIRTQ_DESC_F_INDIRECT 4
#define VIRTQ_USED_F_NO_NOTIFY 1

struct virtq_desc {
	uint64_t addr; /* GPA */
	uint32_t len; /* bytes */
	uint16_t flags; /* VIRTQ_DESC_F_* */
	uint16_t next; /* with F_NEXT: index of the next descriptor */
};

struct virtq_used_elem {
	uint32_t id; /* head descriptor of the chain */
	uint32_t len; /* bytes the device wrote into the chain */
};

/*
 * One split virtqueue and the driver's private state for it. The rings are allocated
 * once (vq_alloc) and reused across device resets (vq_setup clears them).
 */
struct vq {
	uint64_t base; /* the device's register slot */
	unsigned index; /* queue index on the device */
	uint16_t num; /* queue size in use, a power of two */
	uint16_t cap; /* entries the rings were allocated for (>= num) */
	bool event_idx; /* VIRTIO_F_RING_EVENT_IDX negotiated */
	struct virtq_desc *desc; /* [num] */
	volatile uint16_t *avail; /* flags, idx, ring[num], used_event */
	volatile uint16_t *used_hdr; /* flags, idx (then the ring, then avail_event) */
	volatile struct virtq_used_elem *used; /* ring[num] */
	uint16_t *next_free; /* [num]: free descriptor list links */
	uint16_t free_head, nr_free;
	uint16_t avail_idx; /* what avail->idx holds */
	uint16_t kicked_idx; /* avail_idx at the last notify decision */
	uint16_t last_used; /* next used entry to consume */
	uint64_t notifies; /* QueueNotify writes */
	uint64_t notifies_skipped; /* avoided thanks to EVENT_IDX */
};

/* Bump allocator over guest RAM [cur, end). */
struct vheap {
	uint64_t cur, end;
};

/* A virtio-mmio device found in the boot info's device table. */
struct vio_dev {
	uint64_t base; /* register slot GPA */
	uint32_t virtio_id;
	uint64_t offered; /* device features */
	uint64_t features; /* negotiated: accepted by us and FEATURES_OK stuck */
};

/*
 * virtio-blk config space (§5.2.4), byte offsets from VIRTIO_MMIO_CONFIG.
 */
#define VBLK_CFG_CAPACITY 0x00 /* le64, 512-byte sectors */
#define VBLK_CFG_SEG_MAX 0x0c
#define VBLK_CFG_BLK_SIZE 0x14
#define VBLK_CFG_NUM_QUEUES 0x22 /* le16 */
#define VBLK_CFG_MAX_DISCARD_SECTORS 0x24
#define VBLK_CFG_MAX_DISCARD_SEG 0x28
#define VBLK_CFG_DISCARD_ALIGN 0x2c
#define VBLK_CFG_MAX_WZ_SECTORS 0x30
#define VBLK_CFG_MAX_WZ_SEG 0x34
#define VBLK_CFG_WZ_MAY_UNMAP 0x38 /* u8 */

/* Request types and status values: s2vm/virtio_blk.h */

struct virtio_blk_outhdr {
	uint32_t type; /* VIRTIO_BLK_T_* */
	uint32_t reserved;
	uint64_t sector; /* 512-byte units */
};

/* DISCARD / WRITE_ZEROES payload: one range. */
struct virtio_blk_range {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags; /* VIRTIO_BLK_WZ_F_UNMAP */
};

#define VBLK_SECTOR 512u
#define VBLK_MAX_QUEUES 4u /* queues set up (more offered: the rest stay unused) */
#define VBLK_QUEUE_SIZE 256u /* at most; less if QueueNumMax says so */
#define VBLK_MAX_SLOTS 128u /* requests in flight, all queues together */
#define VBLK_MAX_SEGS 8u /* data segments per request */
#define VBLK_TIMEOUT_NS 2000000000ull /* default wait for the device: 2 s */
#define VBLK_CHECK_MAX_MS 8u /* vblk_wait reads Status and the clock at least this often */
#define VBLK_FEATURES                                                                          \
	(1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_F_RING_INDIRECT_DESC |                    \
	 1ull << VIRTIO_F_RING_EVENT_IDX | 1ull << VIRTIO_BLK_F_SEG_MAX |                     \
	 1ull << VIRTIO_BLK_F_BLK_SIZE | 1ull << VIRTIO_BLK_F_FLUSH |                          \
	 1ull << VIRTIO_BLK_F_DISCARD | 1ull << VIRTIO_BLK_F_WRITE_ZEROES |                    \
	 1ull << VIRTIO_BLK_F_MQ | 1ull << VIRTIO_BLK_F_RO)

/* One data segment of a request: [buf, buf + len) in guest RAM. */
struct vblk_seg {
	void *buf;
	uint32_t len;
};

/*
 * A request. IN reads into the segments; OUT writes from them; GET_ID reads 20 bytes into
 * segs[0]; FLUSH takes no segments; DISCARD and WRITE_ZEROES take no segments either: the
 * driver builds their range from sector and nr_sectors.
 */
struct vblk_req {
	uint32_t type; /* VIRTIO_BLK_T_* */
	uint32_t flags; /* WRITE_ZEROES: VIRTIO_BLK_WZ_F_UNMAP */
	uint64_t sector;
	uint32_t nr_sectors; /* DISCARD / WRITE_ZEROES only */
	unsigned queue; /* < vblk.nr_queues */
	unsigned nseg; /* <= VBLK_MAX_SEGS and the device's seg_max */
	struct vblk_seg seg[VBLK_MAX_SEGS];
	uint64_t cookie; /* the caller's, handed back on completion */
};

/* A completed request. */
struct vblk_done {
	unsigned slot; /* the id vblk_submit() returned */
	uint64_t cookie;
	uint8_t status; /* VIRTIO_BLK_S_* */
	uint32_t used_len; /* bytes the device said it wrote, status byte included */
};

/* Per-request driver memory: header, status, range, indirect table. */
struct vblk_slot {
	struct virtq_desc ind[VBLK_MAX_SEGS + 2]; /* indirect table (16-byte aligned) */
	struct virtio_blk_outhdr hdr;
	struct virtio_blk_range range;
	volatile uint8_t status;
	uint8_t busy;
	uint16_t head; /* ring descriptor the chain starts at */
	unsigned queue;
	uint64_t cookie;
};

struct vblk {
	struct vio_dev dev;
	unsigned index; /* among the block devices in devs[] */
	uint64_t capacity; /* sectors */
	uint32_t seg_max; /* data segments per request we may use */
	uint32_t blk_size;
	uint32_t max_discard_sectors, max_wz_sectors, discard_align;
	bool ro; /* VIRTIO_BLK_F_RO negotiated */
	bool use_indirect; /* one ring descriptor per request (INDIRECT_DESC negotiated) */
	uint64_t want; /* features vblk_init accepts (vblk_open: VBLK_FEATURES) */
	unsigned nr_queues; /* set up: min(num_queues, VBLK_MAX_QUEUES) */
	unsigned inflight;
	struct vq vq[VBLK_MAX_QUEUES];
	struct vblk_slot *slots; /* [VBLK_MAX_SLOTS] */
	uint16_t slot_of[VBLK_MAX_QUEUES][VBLK_QUEUE_SIZE]; /* head descriptor -> slot */
	uint64_t timeout_ns; /* how long the sync helpers and resets wait */
	uint64_t tsc_per_ms; /* TSC ticks per ms (vblk_tsc_calibrate; 0: not yet) */
};

/* Start handing out [start, end) (rounded in to 4 KiB). */
void vheap_init(struct vheap *h, uint64_t start, uint64_t end);
/* @size bytes aligned to @align (a power of two), zeroed; NULL when the heap is short. */
void *vheap_alloc(struct vheap *h, uint64_t size, uint64_t align);

/*
 * Fill @v for the @nth (from 0) device with virtio ID @virtio_id in g_boot->devs[] whose
 * registers say virtio-mmio v2. Returns 0, or -VIO_ENODEV. Touches no register but the
 * identification ones.
 */
int vio_find(struct vio_dev *v, uint32_t virtio_id, unsigned nth);
uint32_t vio_read(const struct vio_dev *v, uint32_t off);
void vio_write(const struct vio_dev *v, uint32_t off, uint32_t val);
uint8_t vio_status(const struct vio_dev *v);
/*
 * Write 0 to Status and wait up to @timeout_ns for it to read 0 (the device completes
 * in-flight requests first). Returns 0 or -VIO_ETIMEDOUT.
 */
int vio_reset(const struct vio_dev *v, uint64_t timeout_ns);

/* TSC ticks per ms against the host clock (~1 ms, two clock hypercalls; at least 1):
 * pacing only, never a deadline. */
uint64_t vio_tsc_per_ms(void);

/*
 * Pacing of a polled wait. The device's status and the clock each cost an exit (a signal
 * under proc): spin on the used rings and the TSC alone, look at them after ~1 ms, then
 * at doubling intervals up to max_ms. The timeout runs on the host clock from the first
 * look; the TSC only paces the looks.
 */
struct vio_wait {
	uint64_t t0, next, step, max_step; /* t0: host ns of the first look, 0 before */
	unsigned spin;
};

void vio_wait_start(struct vio_wait *w, uint64_t tsc_per_ms, unsigned max_ms);
/* After a poll that found nothing: 0 (poll again), -VIO_EIO (@v needs a reset) or 1 (the
 * wait timed out: poll once more, then give up). */
int vio_wait_idle(struct vio_wait *w, const struct vio_dev *v, uint64_t timeout_ns);
/*
 * Reset, ACKNOWLEDGE, DRIVER, then accept @wanted & offered (VERSION_1 is required) and
 * set FEATURES_OK. Returns 0 with v->features set, -VIO_ENODEV when VERSION_1 is not
 * offered, -VIO_EIO when FEATURES_OK did not stick (Status then has FAILED set), or
 * -VIO_ETIMEDOUT from the reset.
 */
int vio_negotiate(struct vio_dev *v, uint64_t wanted, uint64_t timeout_ns);
/* Set DRIVER_OK. */
void vio_driver_ok(const struct vio_dev *v);
/* Config space: reads retried until ConfigGeneration is stable. */
uint8_t vio_cfg8(const struct vio_dev *v, uint32_t off);
uint16_t vio_cfg16(const struct vio_dev *v, uint32_t off);
uint32_t vio_cfg32(const struct vio_dev *v, uint32_t off);
uint64_t vio_cfg64(const struct vio_dev *v, uint32_t off);

/*
 * Allocate the rings of a queue of up to @cap (power of two) entries. Returns 0 or
 * -VIO_ENOMEM.
 */
int vq_alloc(struct vq *q, struct vheap *h, uint16_t cap);
/*
 * Clear the rings and program them as queue @index of @v with @num entries (<= q->cap),
 * then set QueueReady. Returns 0, -VIO_ENODEV when QueueNumMax is 0 or below @num,
 * -VIO_EINVAL when @num exceeds q->cap, or -VIO_EIO when QueueReady did not read back 1.
 */
int vq_setup(struct vq *q, const struct vio_dev *v, unsigned index, uint16_t num);
/* Take one free descriptor; returns its index, or -VIO_ENOSPC. */
int vq_desc_get(struct vq *q);
/* Return the chain starting at @head to the free list (follows F_NEXT, not INDIRECT). */
void vq_chain_put(struct vq *q, uint16_t head);
/*
 * Put @head in the next avail ring entry and publish it (avail->idx += 1). Does not
 * notify: see vq_kick().
 */
void vq_publish(struct vq *q, uint16_t head);
/* Make the just-published entries visible by raw avail->idx value (blkbad). */
void vq_publish_idx(struct vq *q, uint16_t idx);
/*
 * Notify the device of what was published since the last kick, when it needs it
 * (EVENT_IDX: vring_need_event over avail_event; otherwise unless USED_F_NO_NOTIFY).
 * Returns true if it wrote QueueNotify.
 */
bool vq_kick(struct vq *q);
/* Write QueueNotify for queue @index whatever the rings say. */
void vq_notify(const struct vio_dev *v, unsigned index);
/*
 * Consume the next used entry into @e. Returns true if there was one. Also advances
 * used_event so a device using it sees us keep up.
 */
bool vq_used_pop(struct vq *q, struct virtq_used_elem *e);
/* Used entries the device published and we have not popped. */
uint16_t vq_used_pending(const struct vq *q);

/* The spec's vring_need_event (§2.7.10): notify iff event_idx is in (old, new]. */
static inline bool vring_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old);
}

/*
 * Find the @index'th block device, allocate its rings and request slots from @h and
 * bring it up (vblk_init). Returns 0, -VIO_ENODEV, -VIO_ENOMEM, or an error of
 * vblk_init. On failure the memory taken from @h stays taken.
 */
int vblk_open(struct vblk *d, unsigned index, struct vheap *h);
/*
 * (Re)initialise the device on its already allocated memory: reset, negotiate, read the
 * config, set up min(num_queues, VBLK_MAX_QUEUES) queues, DRIVER_OK. Forgets every
 * request in flight. Returns 0, or the first error of vio_negotiate / vq_setup.
 */
int vblk_init(struct vblk *d);
/* Measure d->tsc_per_ms against the host clock (~1 ms, two clock hypercalls).
 * vblk_open does it; vblk_wait does it first if d->tsc_per_ms is 0. */
void vblk_tsc_calibrate(struct vblk *d);
/* vio_reset() with d->timeout_ns; forgets every request in flight. */
int vblk_reset(struct vblk *d);
/*
 * Queue @r (does not wait). Returns the request's slot (>= 0), handed back in
 * vblk_done.slot, or -VIO_EAGAIN when slots or descriptors are short (poll, retry), or
 * -VIO_EINVAL for a malformed request (too many segments, bad queue).
 */
int vblk_submit(struct vblk *d, const struct vblk_req *r);
/*
 * Reap at most one completion from any queue into @out. Returns 1 when it did, 0 when
 * none is ready, or -VIO_EIO on a used entry naming no request of ours. Reads no
 * register (cheap to spin on): see vblk_wait() and vblk_needs_reset().
 */
int vblk_poll(struct vblk *d, struct vblk_done *out);
/* True when Status has DEVICE_NEEDS_RESET. */
bool vblk_needs_reset(const struct vblk *d);
/*
 * Submit @r and wait for it (d->timeout_ns). Returns its VIRTIO_BLK_S_* status (>= 0),
 * or -VIO_ETIMEDOUT, -VIO_EIO (needs reset), -VIO_EINVAL. Other requests completing
 * meanwhile are dropped: use it with nothing else in flight.
 */
int vblk_sync(struct vblk *d, const struct vblk_req *r);
/* One-segment synchronous helpers; return as vblk_sync. */
int vblk_read(struct vblk *d, uint64_t sector, void *buf, uint32_t len);
int vblk_write(struct vblk *d, uint64_t sector, const void *buf, uint32_t len);
int vblk_flush(struct vblk *d);
int vblk_discard(struct vblk *d, uint64_t sector, uint32_t nr_sectors);
int vblk_write_zeroes(struct vblk *d, uint64_t sector, uint32_t nr_sectors, bool unmap);
/* Read the 20-byte device ID into @id (NUL-terminated: 21 bytes). */
int vblk_get_id(struct vblk *d, char id[VIRTIO_BLK_ID_BYTES + 1]);
/*
 * Wait up to @timeout_ns for one completion. Returns 1, 0 on timeout, -VIO_EIO when the
 * device sets DEVICE_NEEDS_RESET meanwhile, or as vblk_poll. Spins on the used rings
 * and the TSC: Status and the clock (each an exit) are read only after ~1 ms of waiting,
 * then at doubling intervals at most VBLK_CHECK_MAX_MS apart.
 */
int vblk_wait(struct vblk *d, struct vblk_done *out, uint64_t timeout_ns);

#endif
