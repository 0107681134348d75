/* SPDX-License-Identifier: MIT */
/*
 * The virtio-mmio transport, version 2 (virtio 1.2 §4.2; docs/DEVICES.md): registers,
 * feature negotiation, device status and reset, queue set-up and notification. A device
 * type supplies a `static const struct virtio_dev_ops` (kvmtool's manner); the transport
 * owns one 4 KiB MMIO slot, one notify eventfd per queue and the rules of DEVICES.md's
 * table for register misuse.
 *
 * Notification: the driver writes a queue index to QueueNotify. Under an accelerator with
 * KVM_IOEVENTFD that write signals the queue's eventfd in the kernel; otherwise (proc) the
 * MMIO handler signals the same eventfd, so the device only ever waits on the eventfd.
 *
 * Locking: register accesses come from any vCPU thread and are serialised by dev->lock.
 * Device ops are called with dev->lock held (queue_start/queue_stop/reset may block until
 * the queue's in-flight requests complete; they must not take dev->lock). Device threads
 * never take dev->lock: they report with vmmio_needs_reset() and read nothing else.
 */
#ifndef S2VM_VIRTIO_MMIO_H
#define S2VM_VIRTIO_MMIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/virtq.h"
#include "vmm/vm.h"

#define VIRTIO_MMIO_MAGIC 0x74726976u /* "virt" */
#define VIRTIO_MMIO_VENDOR 0x53325648u /* "S2VH" */
#define VMMIO_MAX_QUEUES 8u

/* Device status bits (§2.1). */
#define VIRTIO_S_ACKNOWLEDGE 0x01u
#define VIRTIO_S_DRIVER 0x02u
#define VIRTIO_S_DRIVER_OK 0x04u
#define VIRTIO_S_FEATURES_OK 0x08u
#define VIRTIO_S_NEEDS_RESET 0x40u
#define VIRTIO_S_FAILED 0x80u

/* Transport feature bits. */
#define VIRTIO_F_RING_INDIRECT_DESC 28
#define VIRTIO_F_RING_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32

struct vmmio_dev;

/* One device type. @dev is the device's context given to vmmio_create(). */
struct virtio_dev_ops {
	const char *name; /* "virtio-blk" */
	uint32_t device_id; /* virtio device ID (2: block) */
	/* Feature bits offered (VERSION_1 and the ring features included). */
	uint64_t (*features)(void *dev);
	/* Read @len (1, 2, 4 or 8) bytes of config space at @off; bytes past its end read
	 * as 0. */
	uint64_t (*config_read)(void *dev, uint64_t off, unsigned len);
	/* Optional: the driver writes @len bytes of config space at @off. Returns 0, or -1
	 * to have the write ignored and counted. NULL: config space is read-only. */
	int (*config_write)(void *dev, uint64_t off, unsigned len, uint64_t value);
	/* Optional: ConfigGeneration, changed whenever the device changes config space
	 * while the driver runs. NULL: always 0. */
	uint32_t (*config_generation)(void *dev);
	/*
	 * Start serving queue @q on rings @cfg (already checked; cfg->mem is filled in by
	 * the device) with the negotiated @features; @notify_fd is the eventfd the driver's
	 * notifies signal. Called once the queue is ready and the driver set DRIVER_OK.
	 * Returns 0 or -errno (the device then needs a reset).
	 */
	int (*queue_start)(void *dev, unsigned q, const struct virtq_config *cfg, int notify_fd,
			   uint64_t features);
	/* Stop queue @q: wait for its requests in flight, drop every pin it holds. */
	void (*queue_stop)(void *dev, unsigned q);
};

struct vmmio_queue {
	uint32_t num; /* QueueNum as written */
	bool ready; /* QueueReady reads 1 */
	bool running; /* queue_start() succeeded, queue_stop() not yet called */
	uint64_t desc, driver, device; /* ring GPAs as written */
	int notify_fd; /* eventfd, for the device's lifetime */
};

/* Counters of what the driver did wrong or in vain; atomics, read with __atomic_load_n. */
struct vmmio_stats {
	uint64_t notifies; /* QueueNotify writes the handler passed on (proc) */
	uint64_t ignored_notifies; /* before DRIVER_OK, queue not running or out of range */
	uint64_t ignored_writes; /* queue registers while ready, read-only registers, bad
				  * sizes, features after FEATURES_OK, config space */
	uint64_t needs_reset; /* times DEVICE_NEEDS_RESET was set */
	uint64_t resets; /* Status 0 written */
	uint64_t features_refused; /* FEATURES_OK refused */
};

struct vmmio_dev {
	struct vm *vm;
	gpa_t base; /* [base, base + S2_VIRTIO_MMIO_SLOT) */
	const struct virtio_dev_ops *ops;
	void *dev;
	unsigned nr_queues; /* 1..VMMIO_MAX_QUEUES */
	uint16_t queue_max; /* QueueNumMax */
	bool kvm_notify; /* notifies reach the eventfds through KVM_IOEVENTFD */
	pthread_mutex_t lock; /* the registers below */
	uint32_t status; /* as the driver wrote it (FEATURES_OK only if accepted) */
	uint32_t needs_reset; /* atomic: DEVICE_NEEDS_RESET set by the device */
	uint32_t dev_features_sel, drv_features_sel, queue_sel;
	uint64_t driver_features;
	struct vmmio_queue q[VMMIO_MAX_QUEUES];
	struct vmmio_stats st;
	char why[160]; /* the first reason DEVICE_NEEDS_RESET was set, for --stats */
	uint32_t why_set; /* atomic: why[] is written */
};

/*
 * Create the transport for device @ops/@dev at slot @base of @vm's device window, with
 * @nr_queues queues of at most @queue_max entries: eventfds, the MMIO window, the boot
 * info entry and (where the accelerator has it) KVM_IOEVENTFD per queue. Call after
 * vm_create() and before vm_load_kernel(). Returns 0 or -errno with @e set; on failure
 * call vmmio_destroy().
 */
int vmmio_create(struct vmmio_dev *d, struct vm *vm, gpa_t base, const struct virtio_dev_ops *ops,
		 void *dev, unsigned nr_queues, uint16_t queue_max, struct s2_err *e)
	__attribute__((warn_unused_result));

/* Stop every running queue (the VM has stopped; no vCPU touches the registers). */
void vmmio_stop(struct vmmio_dev *d);

/* Close the eventfds. The window stays registered with the VM (it goes with it). */
void vmmio_destroy(struct vmmio_dev *d);

/* Called by the device from any thread: set DEVICE_NEEDS_RESET, recording @why (the
 * first reason is kept). The device stops its queues itself. */
void vmmio_needs_reset(struct vmmio_dev *d, const char *why);

/* Has DEVICE_NEEDS_RESET been set since the last reset? Any thread. */
static inline bool vmmio_broken(const struct vmmio_dev *d)
{
	return __atomic_load_n(&d->needs_reset, __ATOMIC_ACQUIRE) != 0;
}

/* The MMIO ops every virtio-mmio window is registered with (stats.c finds devices by
 * them). */
extern const struct vm_mmio_ops vmmio_mmio_ops;

/* The transport behind window @m, or NULL if it is not a virtio-mmio device. */
static inline struct vmmio_dev *vmmio_of(const struct vm_mmio *m)
{
	return m->ops == &vmmio_mmio_ops ? (struct vmmio_dev *)m->ctx : NULL;
}

#endif
