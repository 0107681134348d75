/* SPDX-License-Identifier: MIT */
/*
 * virtio-balloon (virtio 1.2 §5.5; docs/DEVICES.md) on the virtio-mmio transport: inflate,
 * deflate, stats and free page reporting. Pages the driver gives up go to the memory
 * manager's one discard path (mm/discard.h): sorted, merged, one punch per run.
 *
 * One device thread serves every queue: it waits on the queues' notify eventfds, a wake-up
 * eventfd and a timer (stats polling, deferred discards), and holds the device lock while
 * it works. The target (num_pages) changes from any thread with vballoon_set_target().
 */
#ifndef S2VM_VIRTIO_BALLOON_H
#define S2VM_VIRTIO_BALLOON_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/err.h"
#include "vmm/options.h"
#include "vmm/virtio_mmio.h"
#include "vmm/vm.h"
#include "s2vm/virtio_balloon.h"

struct vballoon;

/* Counters (a snapshot; pages are 4 KiB). */
struct vballoon_report {
	gpa_t gpa; /* register slot */
	bool free_page_reporting, deflate_on_oom;
	unsigned stats_polling; /* s */
	uint64_t target_pages; /* num_pages now */
	uint64_t actual_pages; /* what the driver last wrote to `actual` */
	uint64_t held_pages; /* pages the device counts in the balloon */
	uint64_t inflated_pages, deflated_pages; /* accepted from the driver, in all */
	uint64_t reported_pages; /* whole pages in free page reports */
	uint64_t discarded_pages; /* of inflated + reported: returned to the host */
	uint64_t returned_bytes; /* bytes punched out of the pools for this device */
	uint64_t deferred_pages; /* pinned at inflate: discard deferred (each time) */
	uint64_t pinned_pages; /* pinned when reported: left alone */
	uint64_t bad_pfns, dup_pfns, not_inflated, partial_bytes; /* ignored, counted */
	uint64_t bad_reports; /* report descriptors (partly) outside RAM */
	uint64_t discard_errors; /* mm_discard() failures */
	uint64_t stats_updates; /* stats buffers received */
	bool have_stats;
	uint64_t stats[VIRTIO_BALLOON_S_NR]; /* latest guest values, UINT64_MAX if not sent */
	uint64_t notifies, ignored_notifies, ignored_writes, needs_reset, resets;
	const char *needs_reset_why;
};

/*
 * Create the device for --balloon @o on @vm at register slot @base (after vm_create(),
 * before vm_load_kernel()): the transport, its DMA holder and its thread. Returns 0 or
 * -errno with @e set; *@out is set either way (vballoon_close() it).
 */
int vballoon_attach(const struct balloon_opts *o, struct vm *vm, gpa_t base, struct vballoon **out,
		    struct s2_err *e) __attribute__((warn_unused_result));

/* Set the target to @bytes (rounded down to 4 KiB, at most guest RAM): any thread. */
void vballoon_set_target(struct vballoon *b, uint64_t bytes);

/* The next size of the schedule= list (SIGUSR2): returns false if the list is done. */
bool vballoon_schedule_next(struct vballoon *b);

/* Stop the thread and the queues (after vm_run() returned). */
void vballoon_stop(struct vballoon *b);

/* Release everything (after vballoon_stop(), before vm_destroy()). NULL is fine. */
void vballoon_close(struct vballoon *b);

/* The balloon behind transport @d, or NULL. */
struct vballoon *vballoon_of(struct vmmio_dev *d);

/* Fill @r (any thread). */
void vballoon_report(struct vballoon *b, struct vballoon_report *r);

#endif
