/* SPDX-License-Identifier: MIT */
/*
 * Guest access for devices and the monitor (DESIGN.md, "Guest access", "DMA pinning").
 *
 * Devices reach guest memory through the pools' own mappings, never through the alias.
 * Each device queue is a *DMA holder*: a translation holder in mm->gens with its own
 * IOTLB (GPA page -> pool frame, cached from the stage-2 map and dropped when the global
 * generation moves). A request maps its buffers with mm_dma_map(), which pins every frame
 * it touches (the frame record's pin count) until mm_dma_unmap(). Migration never copies
 * a pinned frame: it sets FRAME_MIGRATING only on records whose pin count is zero (one
 * atomic compare-and-swap on the record), and a pin succeeds only on a record that is not
 * migrating. A request that meets a frame under migration waits for that batch, as a vCPU
 * write does; it never waits behind a copy of other frames.
 *
 * Pins: short-term pins add 1, long-term pins (registered buffers) add FRAME_PIN_LONGTERM
 * to the same 16-bit count, so "maybe pinned" (count != 0) is never a false negative and
 * "long-term pinned" is count >= FRAME_PIN_LONGTERM. A pin that would overflow either part
 * is refused (-EOVERFLOW).
 *
 * Threads: one DMA holder is used by one thread at a time (its queue's thread; the drain
 * callback runs on the migrating thread and must take the queue's own lock). mm_guest_*
 * may be called from any thread.
 */
#ifndef S2VM_MM_DMA_H
#define S2VM_MM_DMA_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "s2vm/types.h"

struct mm;

enum mm_dma_dir {
	MM_DMA_TO_DEVICE = 1, /* the device reads guest memory */
	MM_DMA_FROM_DEVICE = 2, /* the device writes guest memory */
	MM_DMA_BIDIR = 3,
};

#define MM_IOTLB_SIZE 512 /* entries per holder, direct-mapped by GPA page: QD 16 x 64 KiB */

struct mm_iotlb_entry {
	uint64_t page; /* GPA >> 12, or ~0 if empty */
	uint32_t pool;
	uint32_t writable;
	uint64_t pfn; /* frame in the pool */
};

struct mm_dma_stats {
	uint64_t maps, unmaps; /* mm_dma_map/unmap calls */
	uint64_t iotlb_hits, iotlb_misses, iotlb_flushes;
	uint64_t migration_waits; /* a frame was under migration: waited for the batch */
};

/*
 * One device queue's view of guest memory. Fill with mm_dma_holder_init(); used by one
 * thread at a time.
 */
struct mm_dma_holder {
	struct mm *mm;
	int holder; /* index in mm->gens */
	uint64_t gen; /* generation the IOTLB is clean of */
	bool idle; /* holds no translations: mm_dma_idle() */
	struct mm_iotlb_entry tlb[MM_IOTLB_SIZE];
	struct mm_dma_stats st;
	/* Called by a migration (any thread, without mm->lock) before it treats a frame
	 * as pinned: submit prepared requests, reap finished ones (unpinning their frames),
	 * then call mm_dma_quiesce(). NULL: nothing to drain. */
	void (*drain)(void *ctx);
	void *drain_ctx;
};

/*
 * Register @h as a translation holder named @name (a static string). Returns 0, or
 * -ENOSPC (too many holders). Starts idle: call mm_dma_busy() before the first map.
 */
int mm_dma_holder_init(struct mm *mm, struct mm_dma_holder *h, const char *name,
		       void (*drain)(void *ctx), void *drain_ctx) __attribute__((warn_unused_result));
/* Unregister; the holder must hold no pins. */
void mm_dma_holder_destroy(struct mm_dma_holder *h);

/*
 * Translate [@gpa, @gpa + @len) for @dir and pin every frame it touches; fill @iov (at
 * most @max_iov entries, pieces contiguous in one pool merged) with pointers into the
 * pools' own mappings. Frames stay pinned until mm_dma_unmap() with the same range.
 * Waits if a frame is being migrated. Returns the number of iovecs, or -EFAULT (outside
 * RAM, wrapping, unmapped), -E2BIG (needs more than @max_iov), -EOVERFLOW (pin count
 * full), -EIO (the memory manager stopped after a fatal error); nothing stays pinned on
 * failure. @len 0 returns 0.
 */
int mm_dma_map(struct mm *mm, struct mm_dma_holder *h, gpa_t gpa, uint64_t len,
	       enum mm_dma_dir dir, struct iovec *iov, unsigned max_iov)
	__attribute__((warn_unused_result));
/* Drop the pins mm_dma_map() took for [@gpa, @gpa + @len). */
void mm_dma_unmap(struct mm *mm, struct mm_dma_holder *h, gpa_t gpa, uint64_t len);

/* Copy between guest memory and a buffer for @h (pins held only during the copy): for
 * ring structures. Not single-copy atomic (byte-wise under ASan): read or write a ring
 * index through mm_dma_map() and an atomic access. Return 0 or the mm_dma_map() errors. */
int mm_dma_read(struct mm *mm, struct mm_dma_holder *h, gpa_t gpa, void *dst, uint64_t len)
	__attribute__((warn_unused_result));
int mm_dma_write(struct mm *mm, struct mm_dma_holder *h, gpa_t gpa, const void *src,
		 uint64_t len) __attribute__((warn_unused_result));

/* Single-copy atomic 16-bit load (acquire) / store (release) at the 2-byte aligned @gpa
 * for @h: ring indices. Return 0, -EFAULT (unaligned) or the mm_dma_map() errors. */
int mm_dma_load16(struct mm *mm, struct mm_dma_holder *h, gpa_t gpa, uint16_t *v)
	__attribute__((warn_unused_result));
int mm_dma_store16(struct mm *mm, struct mm_dma_holder *h, gpa_t gpa, uint16_t v)
	__attribute__((warn_unused_result));

/* A quiescent point of @h (between requests): if the generation moved, drop the IOTLB;
 * publish the generation it is clean of. Cheap when nothing changed. */
void mm_dma_quiesce(struct mm_dma_holder *h);
/* @h caches no translations until mm_dma_busy(): it no longer holds back frees (a queue
 * waiting for its next notify). Requests in flight may keep their pins: pinned frames
 * are never moved, so nothing they reach is freed. */
void mm_dma_idle(struct mm_dma_holder *h);
void mm_dma_busy(struct mm_dma_holder *h);

/*
 * Long-term pins (registered buffers): pin [@gpa, @gpa + @len) with FRAME_PIN_LONGTERM
 * after migrating it to host node @home_node (-1: where it is). Never waits for another
 * migration: -EBUSY if one is running or part of the range is pinned by a request (try
 * again later). Returns 0 or -errno (-EINVAL bad range, -ENOMEM the home pool is full);
 * nothing pinned on failure. mm_dma_unpin_longterm() releases exactly that range.
 */
int mm_dma_pin_longterm(struct mm *mm, gpa_t gpa, uint64_t len, int home_node)
	__attribute__((warn_unused_result));
void mm_dma_unpin_longterm(struct mm *mm, gpa_t gpa, uint64_t len);

/*
 * The monitor's access to guest memory (hypercalls, the loader): copies through the pools'
 * own mappings, pinning each frame for the copy; waits only for a migration of the same
 * frames. A write first makes lazily write-protected pages writable. Return 0 or -EFAULT
 * (outside RAM or unmapped), -EIO (fatal).
 */
int mm_guest_read(struct mm *mm, gpa_t gpa, void *dst, uint64_t len)
	__attribute__((warn_unused_result));
int mm_guest_write(struct mm *mm, gpa_t gpa, const void *src, uint64_t len)
	__attribute__((warn_unused_result));

#endif
