/* SPDX-License-Identifier: MIT */
/*
 * The accelerator interface: how a vCPU's guest code is executed. Everything above it —
 * guest RAM and the memory manager, loading, boot info, the run loop, hypercalls, MMIO
 * dispatch, stop and statistics — is one code for every accelerator.
 *
 *   kvm   KVM ioctls: guest RAM is the memory manager's alias, registered as a memslot.
 *   proc  the guest's ring-3 code runs on the vCPU threads of s2vm itself, with guest RAM
 *         at host virtual address == GPA (the same alias, placed there). Exits are signals
 *         on the vCPU thread: the handler saves the guest registers and returns into the
 *         run loop, which serves the exit in ordinary thread context and re-enters.
 *         No isolation: the guest shares the VMM's address space (see --help).
 *
 * An accelerator is a static const ops table (kvmtool's manner). The run loop (vcpu.c)
 * calls vcpu_run() and dispatches the exit it describes; input from the loop to the
 * guest (an MMIO read's value) is left in the exit and applied by the next vcpu_run().
 */
#ifndef S2VM_ACCEL_H
#define S2VM_ACCEL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "mm/mm.h"
#include "vmm/err.h"

struct vm;
struct vcpu;

enum accel_kind { ACCEL_AUTO, ACCEL_KVM, ACCEL_PROC };

enum accel_exit_kind {
	ACCEL_EXIT_NONE, /* returned without an event (kick, host signal): re-check, re-enter */
	ACCEL_EXIT_IO, /* port I/O the guest was allowed to make */
	ACCEL_EXIT_MMIO, /* a load or store to a GPA that is not RAM */
	ACCEL_EXIT_WRITE_FAULT, /* a write to a write-protected page of the alias */
	ACCEL_EXIT_EXCEPTION, /* a guest exception the VMM must report (a crash) */
	ACCEL_EXIT_SYSCALL, /* proc: guest code made a host system call (refused) */
	ACCEL_EXIT_SHUTDOWN, /* triple fault */
	ACCEL_EXIT_CRASH, /* anything else the guest cannot go on from; @why says what */
};

struct accel_exit {
	enum accel_exit_kind kind;
	union {
		struct {
			uint16_t port;
			uint8_t size; /* 1, 2 or 4 bytes */
			bool out;
			uint32_t data; /* out: the value; in: set by the loop */
		} io;
		struct {
			gpa_t gpa;
			uint8_t len; /* 1, 2, 4 or 8 bytes */
			bool write;
			uint64_t data; /* write: the value; read: set by the loop */
		} mmio;
		struct {
			gpa_t gpa; /* the faulting GPA, ~0 when the host does not say (PVM) */
		} wfault;
		struct {
			unsigned vector; /* x86 exception vector */
			uint64_t error; /* error code (0 if the vector has none) */
			uint64_t rip, cr2, rsp;
		} exc;
		struct {
			uint64_t nr; /* host system call number */
			uint64_t rip; /* address of the system call instruction */
		} sys;
	};
	char why[200]; /* ACCEL_EXIT_CRASH, and extra detail for the others (may be "") */
};

/* Where and how a vCPU starts (x86-64 guestos boot protocol, include/s2vm/bootinfo.h). */
struct accel_boot {
	uint64_t entry; /* ELF entry: ring 0, long mode, paging on */
	uint64_t user_entry; /* ring-3 entry from the image's s2vm note, 0 if none */
	uint64_t bootinfo; /* GPA of struct s2_bootinfo (rdi) */
	uint64_t ustack_top; /* top of this vCPU's user stack (rdx; rsp in ring 3) */
	unsigned cpu; /* vCPU index (rsi) */
};

struct accel_ops {
	const char *name; /* "kvm", "proc" */
	/* Create the VM-wide part; @fd is the opened KVM device for kvm (owned from here on,
	 * even on failure), -1 for proc. Sets vm->max_vcpus. Returns 0 or -errno, @e set. */
	int (*vm_init)(struct vm *vm, int fd, struct s2_err *e);
	/* Adjust the memory manager's configuration before guest RAM is built. */
	int (*mm_config)(struct vm *vm, struct mm_config *mc, struct s2_err *e);
	/* Guest RAM exists (vm->mm): expose it to the accelerator. */
	int (*ram_ready)(struct vm *vm, struct s2_err *e);
	int (*vcpu_init)(struct vcpu *v, struct s2_err *e);
	/* Set the start state; under proc a kernel without a ring-3 entry is refused. */
	int (*vcpu_set_boot)(struct vcpu *v, const struct accel_boot *b, struct s2_err *e);
	/* On the vCPU's own thread, before its first and after its last vcpu_run(). */
	int (*vcpu_thread_enter)(struct vcpu *v, struct s2_err *e);
	void (*vcpu_thread_leave)(struct vcpu *v);
	/* Run guest code until an exit, described in @x. Returns 0, or -errno when the
	 * accelerator itself failed (@x->why says how); the guest cannot go on then. */
	int (*vcpu_run)(struct vcpu *v, struct accel_exit *x);
	/* Make vcpu_run() on @v return soon (ACCEL_EXIT_NONE). Any thread; may repeat. */
	void (*vcpu_kick)(struct vcpu *v);
	/* Print the guest registers as of the last exit. */
	void (*vcpu_dump)(struct vcpu *v, FILE *f);
	void (*vcpu_destroy)(struct vcpu *v);
	void (*vm_destroy)(struct vm *vm);
	/* Optional: signal eventfd @fd on a guest write of @value (@len bytes) at @gpa
	 * without an exit (KVM_IOEVENTFD). NULL: unsupported. */
	int (*ioeventfd)(struct vm *vm, gpa_t gpa, unsigned len, uint64_t value, int fd);
};

extern const struct accel_ops accel_kvm_ops;
extern const struct accel_ops accel_proc_ops;

/*
 * Open and check the KVM device ($S2VM_KVM_DEVICE or /dev/kvm). Returns an fd, or
 * -errno with @e saying why KVM cannot be used (no remedy hints: see accel_kvm_hint()).
 */
int accel_kvm_open(struct s2_err *e) __attribute__((warn_unused_result));
/* A remedy for accel_kvm_open()'s error @err ("" if none), for an explicit --accel kvm. */
const char *accel_kvm_hint(int err);

/* Name of x86 exception @vector ("#PF page fault"), or "exception". */
const char *x86_vector_name(unsigned vector);

#endif
