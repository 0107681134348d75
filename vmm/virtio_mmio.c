// SPDX-License-Identifier: MIT
/* The virtio-mmio v2 transport: see virtio_mmio.h and docs/DEVICES.md. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "s2vm/bootinfo.h"
#include "vmm/virtio_mmio.h"

/* Register offsets (virtio 1.2 §4.2.2). */
enum {
	REG_MAGIC = 0x000,
	REG_VERSION = 0x004,
	REG_DEVICE_ID = 0x008,
	REG_VENDOR_ID = 0x00c,
	REG_DEVICE_FEATURES = 0x010,
	REG_DEVICE_FEATURES_SEL = 0x014,
	REG_DRIVER_FEATURES = 0x020,
	REG_DRIVER_FEATURES_SEL = 0x024,
	REG_QUEUE_SEL = 0x030,
	REG_QUEUE_NUM_MAX = 0x034,
	REG_QUEUE_NUM = 0x038,
	REG_QUEUE_READY = 0x044,
	REG_QUEUE_NOTIFY = 0x050,
	REG_INTERRUPT_STATUS = 0x060,
	REG_INTERRUPT_ACK = 0x064,
	REG_STATUS = 0x070,
	REG_QUEUE_DESC_LOW = 0x080,
	REG_QUEUE_DESC_HIGH = 0x084,
	REG_QUEUE_DRIVER_LOW = 0x090,
	REG_QUEUE_DRIVER_HIGH = 0x094,
	REG_QUEUE_DEVICE_LOW = 0x0a0,
	REG_QUEUE_DEVICE_HIGH = 0x0a4,
	REG_SHM_SEL = 0x0ac,
	REG_SHM_LEN_LOW = 0x0b0,
	REG_SHM_LEN_HIGH = 0x0b4,
	REG_SHM_BASE_LOW = 0x0b8,
	REG_SHM_BASE_HIGH = 0x0bc,
	REG_QUEUE_RESET = 0x0c0,
	REG_CONFIG_GENERATION = 0x0fc,
	REG_CONFIG = 0x100,
};

static void count(uint64_t *c)
{
	__atomic_add_fetch(c, 1, __ATOMIC_RELAXED);
}

void vmmio_needs_reset(struct vmmio_dev *d, const char *why)
{
	uint32_t expect = 0;

	if (__atomic_exchange_n(&d->needs_reset, 1, __ATOMIC_ACQ_REL) == 0)
		count(&d->st.needs_reset);
	/* keep the first reason: whoever sets why_set from 0 to 2 writes it, then 1 */
	if (__atomic_compare_exchange_n(&d->why_set, &expect, 2, false, __ATOMIC_ACQ_REL,
					__ATOMIC_RELAXED)) {
		snprintf(d->why, sizeof(d->why), "%s", why);
		__atomic_store_n(&d->why_set, 1, __ATOMIC_RELEASE);
	}
}

/* The virtq_config of queue @i as the driver programmed it. Caller holds d->lock. */
static void queue_config(const struct vmmio_dev *d, unsigned i, struct virtq_config *c)
{
	const struct vmmio_queue *q = &d->q[i];

	memset(c, 0, sizeof(*c));
	c->size = (uint16_t)q->num;
	c->desc = q->desc;
	c->avail = q->driver;
	c->used = q->device;
	c->indirect = d->driver_features >> VIRTIO_F_RING_INDIRECT_DESC & 1;
	c->event_idx = d->driver_features >> VIRTIO_F_RING_EVENT_IDX & 1;
}

static bool driver_ok(const struct vmmio_dev *d)
{
	return (d->status & (VIRTIO_S_DRIVER_OK | VIRTIO_S_FEATURES_OK)) ==
	       (VIRTIO_S_DRIVER_OK | VIRTIO_S_FEATURES_OK);
}

/* Start queue @i if it is ready, the driver is OK and the device is not broken. Caller
 * holds d->lock. */
static void queue_try_start(struct vmmio_dev *d, unsigned i)
{
	struct vmmio_queue *q = &d->q[i];
	struct virtq_config c;
	char why[96];
	int r;

	if (!q->ready || q->running || !driver_ok(d) || vmmio_broken(d))
		return;
	queue_config(d, i, &c);
	r = d->ops->queue_start(d->dev, i, &c, q->notify_fd, d->driver_features);
	if (r) {
		snprintf(why, sizeof(why), "cannot start queue %u: %s", i, strerror(-r));
		vmmio_needs_reset(d, why);
		return;
	}
	q->running = true;
}

static void queue_stop(struct vmmio_dev *d, unsigned i)
{
	if (d->q[i].running) {
		d->ops->queue_stop(d->dev, i);
		d->q[i].running = false;
	}
}

/* Status 0: stop every queue (waiting for requests in flight), forget everything the
 * driver wrote. Caller holds d->lock. */
static void dev_reset(struct vmmio_dev *d)
{
	for (unsigned i = 0; i < d->nr_queues; i++) {
		queue_stop(d, i);
		d->q[i].ready = false;
		d->q[i].num = d->queue_max;
		d->q[i].desc = d->q[i].driver = d->q[i].device = 0;
	}
	d->status = 0;
	d->dev_features_sel = d->drv_features_sel = d->queue_sel = 0;
	d->driver_features = 0;
	__atomic_store_n(&d->needs_reset, 0, __ATOMIC_RELEASE);
	count(&d->st.resets);
}

/* FEATURES_OK: the driver accepted VERSION_1 and nothing that was not offered. */
static bool features_ok(struct vmmio_dev *d)
{
	uint64_t offered = d->ops->features(d->dev);

	return (d->driver_features >> VIRTIO_F_VERSION_1 & 1) &&
	       !(d->driver_features & ~offered);
}

static void status_write(struct vmmio_dev *d, uint32_t v)
{
	uint32_t old = d->status;

	if (v == 0) {
		dev_reset(d);
		return;
	}
	v &= 0xff & ~VIRTIO_S_NEEDS_RESET; /* the device's bit */
	if ((v & VIRTIO_S_FEATURES_OK) && !(old & VIRTIO_S_FEATURES_OK) && !features_ok(d)) {
		v &= ~VIRTIO_S_FEATURES_OK;
		count(&d->st.features_refused);
	}
	d->status = v;
	if (driver_ok(d) && !(old & VIRTIO_S_DRIVER_OK))
		for (unsigned i = 0; i < d->nr_queues; i++)
			queue_try_start(d, i);
}

/* QueueReady: 1 checks the rings and starts the queue if the driver is OK; 0 stops it. */
static void queue_ready_write(struct vmmio_dev *d, struct vmmio_queue *q, unsigned i, uint32_t v)
{
	if (!v) {
		queue_stop(d, i);
		q->ready = false;
		return;
	}
	if (q->ready)
		return;
	if (q->num > d->queue_max ||
	    virtq_ring_check((uint16_t)q->num, q->desc, q->driver, q->device, d->vm->mem_size)) {
		count(&d->st.ignored_writes);
		return; /* QueueReady stays 0 */
	}
	q->ready = true;
	queue_try_start(d, i);
}

static void notify_write(struct vmmio_dev *d, uint32_t v)
{
	uint64_t one = 1;

	if (!driver_ok(d) || v >= d->nr_queues || !d->q[v].running || vmmio_broken(d)) {
		count(&d->st.ignored_notifies);
		return;
	}
	count(&d->st.notifies);
	if (write(d->q[v].notify_fd, &one, sizeof(one)) < 0) {
		/* only at a counter of 2^64 - 2: the queue is awake anyway */
	}
}

static void set_lo(uint64_t *r, uint32_t v)
{
	*r = (*r & ~0xffffffffull) | v;
}

static void set_hi(uint64_t *r, uint32_t v)
{
	*r = (*r & 0xffffffffull) | (uint64_t)v << 32;
}

static uint32_t reg_read(struct vmmio_dev *d, uint64_t off)
{
	bool qok = d->queue_sel < d->nr_queues;

	switch (off) {
	case REG_MAGIC:
		return VIRTIO_MMIO_MAGIC;
	case REG_VERSION:
		return 2;
	case REG_DEVICE_ID:
		return d->ops->device_id;
	case REG_VENDOR_ID:
		return VIRTIO_MMIO_VENDOR;
	case REG_DEVICE_FEATURES:
		if (d->dev_features_sel > 1)
			return 0;
		return (uint32_t)(d->ops->features(d->dev) >> (32 * d->dev_features_sel));
	case REG_QUEUE_NUM_MAX:
		return qok ? d->queue_max : 0;
	case REG_QUEUE_READY:
		return qok && d->q[d->queue_sel].ready;
	case REG_INTERRUPT_STATUS:
		return 0; /* no interrupts are wired: the driver polls */
	case REG_STATUS:
		return d->status | (vmmio_broken(d) ? VIRTIO_S_NEEDS_RESET : 0);
	case REG_SHM_LEN_LOW:
	case REG_SHM_LEN_HIGH:
	case REG_SHM_BASE_LOW:
	case REG_SHM_BASE_HIGH:
		return 0xffffffffu; /* no shared memory region */
	case REG_CONFIG_GENERATION:
		/* 0 unless the device changes its config space while the driver runs */
		return d->ops->config_generation ? d->ops->config_generation(d->dev) : 0;
	default:
		return 0; /* write-only or reserved */
	}
}

static void reg_write(struct vmmio_dev *d, uint64_t off, uint32_t v)
{
	struct vmmio_queue *q = d->queue_sel < d->nr_queues ? &d->q[d->queue_sel] : NULL;

	switch (off) {
	case REG_DEVICE_FEATURES_SEL:
		d->dev_features_sel = v;
		return;
	case REG_DRIVER_FEATURES_SEL:
		d->drv_features_sel = v;
		return;
	case REG_DRIVER_FEATURES:
		if ((d->status & VIRTIO_S_FEATURES_OK) || d->drv_features_sel > 1)
			break;
		if (d->drv_features_sel)
			set_hi(&d->driver_features, v);
		else
			set_lo(&d->driver_features, v);
		return;
	case REG_QUEUE_SEL:
		d->queue_sel = v;
		return;
	case REG_QUEUE_NOTIFY:
		notify_write(d, v);
		return;
	case REG_INTERRUPT_ACK:
		return;
	case REG_STATUS:
		status_write(d, v);
		return;
	case REG_SHM_SEL:
		return;
	case REG_QUEUE_READY:
		if (!q)
			break;
		queue_ready_write(d, q, d->queue_sel, v);
		return;
	case REG_QUEUE_NUM:
	case REG_QUEUE_DESC_LOW:
	case REG_QUEUE_DESC_HIGH:
	case REG_QUEUE_DRIVER_LOW:
	case REG_QUEUE_DRIVER_HIGH:
	case REG_QUEUE_DEVICE_LOW:
	case REG_QUEUE_DEVICE_HIGH:
		if (!q || q->ready)
			break; /* no such queue, or live: ignored */
		switch (off) {
		case REG_QUEUE_NUM:
			q->num = v;
			break;
		case REG_QUEUE_DESC_LOW:
			set_lo(&q->desc, v);
			break;
		case REG_QUEUE_DESC_HIGH:
			set_hi(&q->desc, v);
			break;
		case REG_QUEUE_DRIVER_LOW:
			set_lo(&q->driver, v);
			break;
		case REG_QUEUE_DRIVER_HIGH:
			set_hi(&q->driver, v);
			break;
		case REG_QUEUE_DEVICE_LOW:
			set_lo(&q->device, v);
			break;
		default:
			set_hi(&q->device, v);
			break;
		}
		return;
	default:
		break; /* read-only or reserved (QueueReset: RING_RESET is not offered) */
	}
	count(&d->st.ignored_writes);
}

/* The window's access handler: registers are 32-bit and aligned, the config space takes
 * 1, 2, 4 and 8-byte reads. Misuse never crashes the guest: reads give 0, writes are
 * ignored and counted. */
static int vmmio_access(void *ctx, uint64_t off, unsigned len, bool write, uint64_t *data)
{
	struct vmmio_dev *d = ctx;

	pthread_mutex_lock(&d->lock);
	if (off >= REG_CONFIG) {
		if (write && (!d->ops->config_write ||
			      d->ops->config_write(d->dev, off - REG_CONFIG, len, *data)))
			count(&d->st.ignored_writes);
		else if (len == 1 || len == 2 || len == 4 || len == 8)
			*data = d->ops->config_read(d->dev, off - REG_CONFIG, len);
		else
			*data = 0;
	} else if (len != 4 || (off & 3)) {
		if (write)
			count(&d->st.ignored_writes);
		else
			*data = 0;
	} else if (write) {
		reg_write(d, off, (uint32_t)*data);
	} else {
		*data = reg_read(d, off);
	}
	pthread_mutex_unlock(&d->lock);
	return 0;
}

const struct vm_mmio_ops vmmio_mmio_ops = {
	.access = vmmio_access,
};

int vmmio_create(struct vmmio_dev *d, struct vm *vm, gpa_t base, const struct virtio_dev_ops *ops,
		 void *dev, unsigned nr_queues, uint16_t queue_max, struct s2_err *e)
{
	int r;

	memset(d, 0, sizeof(*d));
	for (unsigned i = 0; i < VMMIO_MAX_QUEUES; i++)
		d->q[i].notify_fd = -1;
	pthread_mutex_init(&d->lock, NULL);
	if (!nr_queues || nr_queues > VMMIO_MAX_QUEUES || !queue_max ||
	    queue_max > VIRTQ_MAX_SIZE)
		return s2_err_set(e, -EINVAL, "%s: bad queue geometry", ops->name);
	d->vm = vm;
	d->base = base;
	d->ops = ops;
	d->dev = dev;
	d->nr_queues = nr_queues;
	d->queue_max = queue_max;
	d->kvm_notify = true;
	for (unsigned i = 0; i < nr_queues; i++) {
		d->q[i].num = queue_max;
		/* blocking: the device's io_uring read waits on it */
		d->q[i].notify_fd = eventfd(0, EFD_CLOEXEC);
		if (d->q[i].notify_fd < 0)
			return s2_err_set(e, -errno, "%s: eventfd: %s", ops->name, strerror(errno));
	}
	r = vm_mmio_register(vm, base, S2_VIRTIO_MMIO_SLOT, &vmmio_mmio_ops, d);
	if (r)
		return s2_err_set(e, r, "%s: cannot register MMIO window at %#llx: %s", ops->name,
				  (unsigned long long)base, strerror(-r));
	r = vm_boot_dev_add(vm, base, S2_VIRTIO_MMIO_SLOT, ops->device_id);
	if (r)
		return s2_err_set(e, r, "%s: cannot list the device in boot info: %s", ops->name,
				  r == -ENOSPC ? "too many devices" : strerror(-r));
	for (unsigned i = 0; i < nr_queues && d->kvm_notify; i++) {
		r = vm_ioeventfd(vm, base + REG_QUEUE_NOTIFY, 4, i, d->q[i].notify_fd);
		if (r == -EOPNOTSUPP && i == 0)
			d->kvm_notify = false; /* proc: the handler signals the eventfd */
		else if (r)
			return s2_err_set(e, r, "%s: KVM_IOEVENTFD for queue %u: %s", ops->name, i,
					  strerror(-r));
	}
	return 0;
}

void vmmio_stop(struct vmmio_dev *d)
{
	pthread_mutex_lock(&d->lock);
	for (unsigned i = 0; i < d->nr_queues; i++)
		queue_stop(d, i);
	pthread_mutex_unlock(&d->lock);
}

void vmmio_destroy(struct vmmio_dev *d)
{
	for (unsigned i = 0; i < VMMIO_MAX_QUEUES; i++) {
		if (d->q[i].notify_fd >= 0)
			close(d->q[i].notify_fd);
		d->q[i].notify_fd = -1;
	}
	pthread_mutex_destroy(&d->lock);
}
