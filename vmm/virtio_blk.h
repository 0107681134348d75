/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk (virtio 1.2 §5.2; docs/DEVICES.md) on the virtio-mmio transport, backed by a
 * file or block device through io_uring.
 *
 * Each queue has its own thread and its own io_uring. The thread waits in the ring for a
 * completion; the queue's notify eventfd is always being read by one request in that ring,
 * so a notify is a completion too. Guest buffers are mapped with mm_dma_map() (pinned,
 * translated through the queue's IOTLB) into iovecs that point straight into the pools'
 * own mappings: no bounce buffers. Rings, headers, status bytes and used entries are read
 * and written with mm_dma_read()/mm_dma_write().
 *
 * Locking: a queue's lock covers its io_uring, its requests, its virtqueue state and its
 * DMA holder. The queue thread holds it while it works and releases it only to wait for a
 * completion (and around mm calls that migrate, which may call drains). The memory
 * manager's drain callback takes the same lock, submits, reaps and completes what has
 * finished (dropping those pins), and publishes the holder's generation; it never waits
 * for I/O.
 */
#ifndef S2VM_VIRTIO_BLK_H
#define S2VM_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/err.h"
#include "vmm/options.h"
#include "vmm/virtio_mmio.h"
#include "vmm/vm.h"
#include "s2vm/virtio_blk.h"

#define VBLK_SEG_MAX 128u /* seg_max offered: data segments per request */

struct vblk;

/* Per-disk counters (a snapshot). */
struct vblk_report {
	const char *path;
	unsigned index; /* --disk order */
	gpa_t gpa; /* register slot */
	uint64_t capacity; /* 512-byte sectors */
	bool readonly, direct, registered;
	unsigned num_queues, queue_size;
	uint64_t read_ops, read_bytes;
	uint64_t write_ops, write_bytes;
	uint64_t flush_ops, discard_ops, write_zeroes_ops, get_id_ops;
	uint64_t in_flight, in_flight_peak; /* requests submitted to io_uring, all queues */
	uint64_t bad_requests; /* IOERR or UNSUPP for what the driver asked */
	uint64_t io_errors; /* IOERR because the host call failed */
	uint64_t direct_fallbacks; /* direct=on requests not aligned for O_DIRECT: buffered */
	uint64_t notifies, ignored_notifies, ignored_writes; /* from the transport */
	uint64_t needs_reset, resets;
	const char *needs_reset_why; /* first reason, or NULL */
	/* registered=on */
	uint64_t pinned_bytes, pinned_peak, pinned_max;
	uint64_t chunk_registrations, chunk_evictions, fixed_ops, pin_failures;
	uint64_t pin_busy; /* registrations put off: migration busy, retried later */
};

/*
 * Open --disk @o's backing file for disk number @index and check it: it exists, is a
 * regular file or block device, is readable, writable unless readonly=on, takes O_DIRECT
 * if direct=on, and is not in use by another writer. Returns 0 with *@out, or -errno with
 * @e naming the key (s2vm exits 2).
 */
int vblk_open(const struct disk_opts *o, unsigned index, struct vblk **out, struct s2_err *e)
	__attribute__((warn_unused_result));

/*
 * Put the disk on @vm at register slot @base: DMA holders (one per queue), io_urings, the
 * virtio-mmio transport and its boot info entry. Call after vm_create() and before
 * vm_load_kernel(). Returns 0 or -errno with @e set; vblk_close() undoes what was done.
 */
int vblk_attach(struct vblk *b, struct vm *vm, gpa_t base, struct s2_err *e)
	__attribute__((warn_unused_result));

/* Stop every queue thread, waiting for requests in flight (after vm_run() returned). */
void vblk_stop(struct vblk *b);

/* Release everything (after vblk_stop(), before vm_destroy()). NULL is fine. */
void vblk_close(struct vblk *b);

/* The disk behind transport @d, or NULL if @d is another device type. */
struct vblk *vblk_of(struct vmmio_dev *d);

/* Fill @r with @b's counters (atomics: any thread). */
void vblk_report(struct vblk *b, struct vblk_report *r);

#endif
