/* SPDX-License-Identifier: MIT */
/*
 * guestos virtio-balloon: a polled driver on the virtio-mmio transport of virtio.h
 * (docs/DEVICES.md, "virtio-balloon", is the device's side of the contract).
 *
 * Queues: 0 inflate, 1 deflate, then stats (STATS_VQ negotiated), then free page
 * reporting (REPORTING negotiated): index 3 with stats, 2 without. No interrupts: the
 * driver publishes buffers, notifies when EVENT_IDX says it must and polls the used
 * rings; the target (num_pages) is read from config space whenever the caller asks.
 *
 * Layers, each usable on its own (balloonbad drives the lower one by hand):
 *	vballoon_add / vballoon_reap	one chain on one queue: submit, wait for it back
 *	vballoon_inflate / _deflate	arrays of le32 PFNs, 256 per buffer, many in flight
 *	vballoon_report			free ranges, up to VBALLOON_REPORT_MAX per chain
 *	vballoon_poll			hands the stats buffer back when the device returned it
 *
 * Buffers are not copied: the PFN arrays and ranges the caller passes are what the
 * device reads, so they must sit in guest RAM and stay unchanged until the call returns.
 * Nothing here is thread-safe: one vCPU drives the device.
 */
#ifndef GUESTOS_BALLOON_H
#define GUESTOS_BALLOON_H

#include <stdbool.h>
#include <stdint.h>

#include "s2vm/hypercall.h"
#include "s2vm/virtio_balloon.h"
#include "virtio.h"

#define VBALLOON_PFNS_PER_BUF 256u /* PFNs per inflate/deflate buffer (Linux's) */
#define VBALLOON_REPORT_MAX 32u /* ranges per report chain (Linux's reporting capacity) */
#define VBALLOON_QUEUE_SIZE 128u /* at most; less if QueueNumMax says so */
#define VBALLOON_NR_VQS 4u
#define VBALLOON_TIMEOUT_NS 10000000000ull /* default wait for one buffer: 10 s */
#define VBALLOON_CHECK_MAX_MS 8u /* waits read Status and the clock at least this often */
#define VBALLOON_PAGE 4096ull

/* Features vballoon_open asks for by default (REPORTING is added by the caller). */
#define VBALLOON_FEATURES                                                                      \
	(1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_F_RING_INDIRECT_DESC |                    \
	 1ull << VIRTIO_F_RING_EVENT_IDX | 1ull << VIRTIO_BALLOON_F_MUST_TELL_HOST |           \
	 1ull << VIRTIO_BALLOON_F_STATS_VQ)

/* Queue roles (not indices: see vballoon.qi). */
enum vballoon_q { VB_INFLATE, VB_DEFLATE, VB_STATS, VB_REPORT };

/* A free guest-physical range [addr, addr + len) for vballoon_report(). */
struct vballoon_range {
	uint64_t addr;
	uint64_t len; /* bytes, < 4 GiB (one descriptor) */
};

/* One (le16 tag, le64 value) entry of the stats buffer (§5.5.6.3). */
struct vballoon_stat {
	uint16_t tag; /* VIRTIO_BALLOON_S_* */
	uint64_t val;
} __attribute__((packed));

struct vballoon {
	struct vio_dev dev;
	uint64_t want; /* features vballoon_init accepts */
	struct vq vq[VBALLOON_NR_VQS]; /* by role, enum vballoon_q */
	int qi[VBALLOON_NR_VQS]; /* device queue index of each role, -1 if not negotiated */
	bool use_indirect; /* RING_INDIRECT_DESC negotiated: multi-descriptor chains go
			    * through an indirect table */
	/* indirect tables: role r, head h -> ind[r] + h * VBALLOON_REPORT_MAX */
	struct virtq_desc *ind[VBALLOON_NR_VQS];
	uint8_t *busy[VBALLOON_NR_VQS]; /* [VBALLOON_QUEUE_SIZE]: head h is with the device */
	unsigned inflight[VBALLOON_NR_VQS];

	/* stats: values the caller keeps current (vballoon_poll sends them) */
	uint64_t stat_val[VIRTIO_BALLOON_S_NR];
	uint32_t stat_mask; /* tags sent: bit t for VIRTIO_BALLOON_S_t */
	struct vballoon_stat *stats_buf; /* [VIRTIO_BALLOON_S_NR], what the device reads */
	bool stats_out; /* the stats buffer is with the device */
	int stats_head;
	uint64_t stats_returns; /* times the device handed the stats buffer back */

	uint32_t actual; /* last value written to config "actual" */
	uint64_t timeout_ns; /* how long a wait for one buffer may take */
	uint64_t tsc_per_ms;
	/* what the device did that DEVICES.md does not allow (workloads fail on these) */
	uint64_t bad_used_len; /* used entries with a length other than 0 */
	/* totals, pages */
	uint64_t inflated, deflated, reported;
	uint64_t notifies;
};

/*
 * Find the virtio-balloon device, allocate rings and tables from @h, bring it up
 * (vballoon_init) accepting @want & offered (0: VBALLOON_FEATURES). Returns 0,
 * -VIO_ENODEV, -VIO_ENOMEM, or an error of vballoon_init. On failure the memory taken
 * from @h stays taken.
 */
int vballoon_open(struct vballoon *b, struct vheap *h, uint64_t want);
/*
 * Reset, negotiate b->want, set up the negotiated queues, DRIVER_OK, and add the stats
 * buffer (STATS_VQ). Forgets every buffer in flight and sets actual to 0. Returns 0, or
 * the first error of vio_negotiate / vq_setup.
 */
int vballoon_init(struct vballoon *b);
/* True when feature @bit was negotiated. */
bool vballoon_has(const struct vballoon *b, unsigned bit);
/* The device's target, config num_pages (4 KiB pages). */
uint32_t vballoon_target(const struct vballoon *b);
/* Write config "actual" (pages the driver holds in the balloon). */
void vballoon_set_actual(struct vballoon *b, uint32_t pages);
/* True when Status has DEVICE_NEEDS_RESET. */
bool vballoon_needs_reset(const struct vballoon *b);

/*
 * Queue one chain of @n descriptors (linked here, flags and lengths as given, F_NEXT
 * added) on the queue of role @r. With b->use_indirect and n > 1 the chain goes through
 * the head's indirect table (n <= VBALLOON_REPORT_MAX); otherwise n ring descriptors.
 * Notifies as EVENT_IDX says. Returns the head descriptor, -VIO_EAGAIN when descriptors
 * are short (reap, retry), -VIO_EINVAL (n 0 or too many; queue not negotiated).
 */
int vballoon_add(struct vballoon *b, enum vballoon_q r, const struct virtq_desc *ds,
		 unsigned n);
/*
 * Wait up to @timeout_ns for one used entry on role @r's queue; frees its chain. While
 * waiting it also serves the stats queue (vballoon_poll's job). Returns 1 with @e,
 * 0 on timeout, -VIO_EIO when Status has DEVICE_NEEDS_RESET or the entry names no chain
 * of ours. Counts a used length other than 0 in b->bad_used_len.
 */
int vballoon_reap(struct vballoon *b, enum vballoon_q r, struct virtq_used_elem *e,
		  uint64_t timeout_ns);

/*
 * Give @n pages to the device (@pfn: le32 4 KiB PFNs, in guest RAM, untouched until
 * return): buffers of up to VBALLOON_PFNS_PER_BUF, as many in flight as the queue
 * holds; returns when the device has returned them all (their pages are discarded).
 * Does not touch "actual". Returns 0, -VIO_ETIMEDOUT, -VIO_EIO.
 */
int vballoon_inflate(struct vballoon *b, const uint32_t *pfn, uint64_t n);
/* Take @n pages back, as vballoon_inflate. They read as zero afterwards. */
int vballoon_deflate(struct vballoon *b, const uint32_t *pfn, uint64_t n);
/*
 * Report @n free ranges (REPORTING negotiated): chains of up to VBALLOON_REPORT_MAX
 * device-writable descriptors, one range each, as Linux sends them; returns when every
 * chain is back (the driver owns the pages again). Returns 0, -VIO_EINVAL (not
 * negotiated, a range of 4 GiB or more), -VIO_ETIMEDOUT, -VIO_EIO.
 */
int vballoon_report(struct vballoon *b, const struct vballoon_range *rg, unsigned n);
/*
 * Serve the stats queue: when the device has handed the buffer back, refill it from
 * b->stat_val and add it again. Reads no register unless it adds (cheap to call
 * often). Returns the number of buffers handed back (0 or 1), or -VIO_EIO.
 */
int vballoon_poll(struct vballoon *b);

/* S2_HC_MEM_INFO: fill @mi (zeroed first). Returns 0 or the hypercall's -errno. */
int vballoon_mem_info(struct s2_hc_mem_info *mi);

#endif
