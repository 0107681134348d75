/* SPDX-License-Identifier: MIT */
/* vCPU creation, start state, the run loop (one thread per vCPU) and hypercall dispatch. */
#ifndef S2VM_VCPU_H
#define S2VM_VCPU_H

#include "vmm/vm.h"

/* Create vCPU @id of @vm with host-supported CPUID. Returns 0 or -errno with @e set. */
int vcpu_create(struct vm *vm, struct vcpu *v, unsigned id, struct s2_err *e)
	__attribute__((warn_unused_result));

/* Set the long-mode start state: rip = @entry, user stacks from @ustack_base. */
int vcpu_set_boot_state(struct vcpu *v, uint64_t entry, uint64_t ustack_base, struct s2_err *e)
	__attribute__((warn_unused_result));

/* Start the vCPU's thread. Returns 0 or -errno. */
int vcpu_start(struct vcpu *v) __attribute__((warn_unused_result));

/* Print the vCPU's registers to stderr (called on its own thread). */
void vcpu_dump(struct vcpu *v, const char *why);

void vcpu_destroy(struct vcpu *v);

/* Handle one hypercall whose block is at @block_gpa. Returns false if the vCPU must stop. */
bool vcpu_hypercall(struct vcpu *v, uint32_t block_gpa);

#endif
