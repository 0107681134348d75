/* SPDX-License-Identifier: MIT */
/* One virtual machine: guest RAM, vCPU threads, device windows, lifecycle. Execution is
 * behind the accelerator interface (vmm/accel.h); nothing here is KVM-specific. */
#ifndef S2VM_VM_H
#define S2VM_VM_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "mm/mm.h"
#include "vmm/accel.h"
#include "vmm/err.h"

#include "s2vm/bootinfo.h"
#include "s2vm/types.h"

struct vm;

struct vcpu {
	struct vm *vm;
	unsigned id;
	void *accel_data; /* the accelerator's per-vCPU state */
	struct accel_exit exit; /* the last exit; input for the next run (MMIO reads) */
	pthread_t thread;
	bool started;
	atomic_bool exited; /* its thread has left the run loop */
	uint64_t exits; /* exits handled, for stats */
	uint64_t hypercalls;
};

struct vm_config {
	struct mm_config mem; /* guest RAM size, NUMA layout, pool caps */
	unsigned nr_vcpus;
	const char *guest_args; /* copied by vm_create */
	const struct accel_ops *accel;
	int accel_fd; /* the opened KVM device for kvm (ownership passes), -1 otherwise */
};

enum vm_stop_reason {
	VM_STOP_NONE,
	VM_STOP_GUEST_EXIT, /* the guest's exit hypercall */
	VM_STOP_CRASH, /* fault, triple fault or unhandled exit */
	VM_STOP_SIGNAL, /* SIGINT / SIGTERM */
	VM_STOP_ERROR, /* a VMM-side failure while running */
};

/* A device's MMIO window, registered with vm_mmio_register(). */
struct vm_mmio_ops {
	/* Serve a @len-byte access at @off into the window; a read stores into *@data.
	 * Returns 0, or -errno to crash the guest (the access cannot be served). */
	int (*access)(void *ctx, uint64_t off, unsigned len, bool write, uint64_t *data);
};

#define VM_MAX_MMIO 32

struct vm_mmio {
	gpa_t gpa; /* [gpa, gpa + len) inside the device window */
	uint64_t len;
	const struct vm_mmio_ops *ops;
	void *ctx;
};

enum vm_lab_phase {
	VM_LAB_PHASE_NONE, /* the guest never made the call: --churn runs throughout */
	VM_LAB_PHASE_OFF,
	VM_LAB_PHASE_ON,
};

struct vm {
	const struct accel_ops *accel;
	void *accel_data; /* the accelerator's VM-wide state */
	unsigned max_vcpus; /* set by the accelerator */
	struct mm mm; /* pools, frame table, stage-2 map, the alias */
	bool mm_created;
	uint64_t mem_size;
	gpa_t mmio_base; /* device window [mmio_base, mmio_base + S2_MMIO_SIZE), after RAM */
	unsigned nr_mmio;
	struct vm_mmio mmio[VM_MAX_MMIO];
	unsigned nr_boot_devs;
	struct s2_boot_dev boot_devs[S2_MAX_BOOT_DEVS];
	unsigned nr_vcpus;
	struct vcpu *vcpus;
	char *guest_args;

	pthread_mutex_t out_lock; /* serialises guest console and report output, and
				   * writes of lab_out */
	char *lab_out; /* --lab-out: where S2_HC_LAB_RESULT blobs go (malloc'ed), or NULL */
	int console_fd; /* -1, or a pty master the console is copied to (vm_console_pty) */
	char console_path[64]; /* its slave, e.g. /dev/pts/3 */
	pthread_mutex_t stop_lock;
	pthread_cond_t stop_cond; /* parked vCPUs wait here */
	pthread_cond_t exited_cond; /* a vCPU left its run loop (under stop_lock) */
	atomic_bool stopping;
	atomic_bool paused; /* vm_pause(): vCPUs wait at the top of their loop */
	/* S2_HC_LAB_PHASE: VM_LAB_PHASE_*, changed under stop_lock with stop_cond broadcast
	 * (the churn thread waits there through off phases) */
	atomic_int lab_phase;
	/* Called by vm_run() once every vCPU thread exists (named vcpuN): the control
	 * API answers vm.boot then. */
	void (*on_started)(struct vm *vm, void *ctx);
	void *on_started_ctx;
	unsigned nr_paused; /* under stop_lock: vCPUs waiting because of paused */
	unsigned nr_hc_parked; /* under stop_lock: vCPUs in the PARK hypercall */
	enum vm_stop_reason stop_reason;
	int exit_code; /* valid once stopping */
	int done_efd; /* eventfd: written once when the VM stops */
	uint64_t boot_ns; /* CLOCK_MONOTONIC at vm_create() start */
	uint64_t first_exit_ns; /* CLOCK_MONOTONIC when the guest asked to exit */
};

/*
 * Create a VM with @cfg->accel: guest RAM, boot tables and vCPUs. Returns 0 or -errno
 * with @e set; on failure everything created so far is released by vm_destroy(), which
 * the caller must still call.
 */
int vm_create(struct vm *vm, const struct vm_config *cfg, struct s2_err *e)
	__attribute__((warn_unused_result));

struct elf_image;

/*
 * Load the parsed ELF kernel @img (file contents @buf) into guest RAM, write the boot
 * info and set every vCPU's start state. Returns 0, or -E2BIG/-EINVAL if the image or
 * its stacks do not fit in guest RAM, -ENOEXEC if the accelerator cannot start this
 * image, or -errno from the accelerator, with @e set.
 */
int vm_load_kernel(struct vm *vm, const struct elf_image *img, const void *buf,
		   struct s2_err *e) __attribute__((warn_unused_result));

/*
 * Register a device's MMIO window [@gpa, @gpa + @len) inside the device window. Call
 * before vm_run(). Returns 0, -EINVAL (outside the window or overlapping another) or
 * -ENOSPC.
 */
int vm_mmio_register(struct vm *vm, gpa_t gpa, uint64_t len, const struct vm_mmio_ops *ops,
		     void *ctx) __attribute__((warn_unused_result));

/* Describe a device to the guest in boot info (and as "virtio_mmio.device=4K@0xGPA:IRQ"
 * in its arguments). Call before vm_load_kernel(). Returns 0, -EINVAL or -ENOSPC. */
int vm_boot_dev_add(struct vm *vm, gpa_t gpa, uint32_t size, uint32_t virtio_id)
	__attribute__((warn_unused_result));

/*
 * Have a guest write of @len bytes of @value at @gpa (in the device window) signal eventfd
 * @fd without returning to the run loop (KVM_IOEVENTFD). Returns 0, or -EOPNOTSUPP when
 * the accelerator cannot (proc): the device's MMIO handler must then signal @fd itself,
 * so the device code is the same either way.
 */
int vm_ioeventfd(struct vm *vm, gpa_t gpa, unsigned len, uint64_t value, int fd)
	__attribute__((warn_unused_result));

/* Serve an MMIO access from a vCPU. Returns 0, or -ENODEV when no device is there. */
int vm_mmio_access(struct vm *vm, gpa_t gpa, unsigned len, bool write, uint64_t *data);

/* Block SIGINT, SIGTERM, SIGUSR1 and SIGUSR2 in the calling thread (and so in every thread it
 * creates afterwards): vm_run() takes them from a signalfd. Fills @set with them. Call it
 * before creating any thread that must not receive them (the churn thread). */
void vm_signals_block(sigset_t *set);

/*
 * Start all vCPU threads and wait until the guest exits, crashes or a SIGINT/SIGTERM
 * arrives; blocks those (vm_signals_block()) and takes them from a signalfd. SIGUSR1 and
 * SIGUSR2 call @on_signal (if set) with the signal number. Returns the process exit code.
 */
int vm_run(struct vm *vm, void (*on_signal)(struct vm *vm, int signo, void *arg), void *arg);

/*
 * Pause: every vCPU leaves guest code and waits until vm_resume() (or the VM stops).
 * Returns 0 once all have stopped running guest code, -EALREADY if paused already, or
 * -ETIMEDOUT (then the VM is resumed again) if some did not within a second.
 */
int vm_pause(struct vm *vm);
/* Resume after vm_pause(). Returns 0 or -EALREADY if not paused. */
int vm_resume(struct vm *vm);
/* Called by a vCPU's thread at the top of its loop: waits while the VM is paused. */
void vm_pause_point(struct vm *vm);

/* Also copy the guest's console to a new pty (libvirt's serial "Pty" mode): its slave's
 * path goes to vm->console_path. Writes never block: output nobody reads is dropped once
 * the pty's buffer is full. Returns 0 or -errno with @e set. */
int vm_console_pty(struct vm *vm, struct s2_err *e) __attribute__((warn_unused_result));

/* Write guest console bytes to stdout (and the pty). Caller holds vm->out_lock. */
void vm_console_write(struct vm *vm, const char *buf, size_t len);

/* Called by a vCPU's thread when it leaves its run loop for good. */
void vm_vcpu_exited(struct vcpu *v);

/* Stop the VM with @reason and @code; the first caller wins. Safe from any thread. */
void vm_stop(struct vm *vm, enum vm_stop_reason reason, int code);

/*
 * For periodic VMM threads (churn, the Mems_allowed watcher): advance *@next by @ms
 * (CLOCK_REALTIME; from now if *@next is already past, so a late round does not make
 * the next ones run back to back) and sleep until then or until @vm stops. Returns true
 * if it stopped.
 */
bool vm_sleep_period(struct vm *vm, struct timespec *next, unsigned ms);

/* Release everything vm_create() made. Safe on a partially created or zeroed VM. */
void vm_destroy(struct vm *vm);

#endif
