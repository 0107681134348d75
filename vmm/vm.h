/* SPDX-License-Identifier: MIT */
/* One KVM virtual machine: guest RAM, vCPU threads, hypercalls, lifecycle. */
#ifndef S2VM_VM_H
#define S2VM_VM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "mm/mm.h"
#include "vmm/err.h"

#include "s2vm/types.h"

struct vm;

struct vcpu {
	struct vm *vm;
	unsigned id;
	int fd;
	struct kvm_run *run; /* mmap of the vCPU fd, vm->run_size bytes */
	pthread_t thread;
	bool started;
	uint64_t exits; /* VM exits handled, for stats */
	uint64_t hypercalls;
};

struct vm_config {
	struct mm_config mem; /* guest RAM size, NUMA layout, pool caps */
	unsigned nr_vcpus;
	const char *guest_args; /* copied by vm_create */
};

enum vm_stop_reason {
	VM_STOP_NONE,
	VM_STOP_GUEST_EXIT, /* the guest's exit hypercall */
	VM_STOP_CRASH, /* fault, triple fault or unhandled exit */
	VM_STOP_SIGNAL, /* SIGINT / SIGTERM */
	VM_STOP_ERROR, /* a VMM-side failure while running */
};

struct vm {
	int kvm_fd, vm_fd;
	struct mm mm; /* pools, frame table, stage-2 map, the alias */
	bool mm_created;
	unsigned char *ram; /* the alias of guest RAM (mm.alias): GPA g at ram + g */
	uint64_t mem_size;
	size_t run_size;
	unsigned nr_vcpus;
	struct vcpu *vcpus;
	char *guest_args;

	pthread_mutex_t out_lock; /* serialises guest console and report output */
	pthread_mutex_t stop_lock;
	pthread_cond_t stop_cond; /* parked vCPUs wait here */
	atomic_bool stopping;
	enum vm_stop_reason stop_reason;
	int exit_code; /* valid once stopping */
	int done_efd; /* eventfd: written once when the VM stops */
	uint64_t boot_ns; /* CLOCK_MONOTONIC at vm_create() start */
	uint64_t first_exit_ns; /* CLOCK_MONOTONIC when the guest asked to exit */
};

/*
 * Open and check the KVM device: the path is $S2VM_KVM_DEVICE or /dev/kvm.
 * Returns an fd or -errno with @e saying why KVM cannot be used.
 */
int vm_kvm_open(struct s2_err *e) __attribute__((warn_unused_result));

/*
 * Create a VM on @kvm_fd (ownership passes to @vm even on failure): guest RAM, memslot,
 * boot tables and vCPUs. Returns 0 or -errno with @e set; on failure everything created
 * so far is released by vm_destroy(), which the caller must still call.
 */
int vm_create(struct vm *vm, int kvm_fd, const struct vm_config *cfg, struct s2_err *e)
	__attribute__((warn_unused_result));

struct elf_image;

/*
 * Load the parsed ELF kernel @img (file contents @buf) into guest RAM, write the boot
 * info and set every vCPU's start state. Returns 0, or -E2BIG/-EINVAL if the image or
 * its stacks do not fit in guest RAM, or -errno from KVM, with @e set.
 */
int vm_load_kernel(struct vm *vm, const struct elf_image *img, const void *buf,
		   struct s2_err *e) __attribute__((warn_unused_result));

/*
 * Start all vCPU threads and wait until the guest exits, crashes or a SIGINT/SIGTERM
 * arrives (both must be blocked in the caller). SIGUSR1 calls @on_usr1 if set.
 * Returns the process exit code.
 */
int vm_run(struct vm *vm, void (*on_usr1)(struct vm *vm, void *arg), void *arg);

/* Stop the VM with @reason and @code; the first caller wins. Safe from any thread. */
void vm_stop(struct vm *vm, enum vm_stop_reason reason, int code);

/* Release everything vm_create() made. Safe on a partially created or zeroed VM. */
void vm_destroy(struct vm *vm);

/*
 * The one checked path from a guest address to a host pointer: returns the host address
 * of [@gpa, @gpa + @len) if that range lies inside guest RAM, else NULL.
 */
void *vm_gpa_to_hva(struct vm *vm, gpa_t gpa, uint64_t len);


#endif
