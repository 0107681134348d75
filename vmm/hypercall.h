/* SPDX-License-Identifier: MIT */
/* Guest hypercalls (include/s2vm/hypercall.h), served for the run loop. They reach guest
 * memory only through the memory manager and know nothing of vCPUs or accelerators. */
#ifndef S2VM_VMM_HYPERCALL_H
#define S2VM_VMM_HYPERCALL_H

#include "vmm/vm.h"

enum hc_action {
	HC_CONTINUE, /* done: the vCPU re-enters the guest */
	HC_STOPPED, /* the VM is stopping (exit, or a parked vCPU woken by the stop) */
	HC_CRASH, /* the guest must be stopped as crashed: @x says why */
};

/*
 * Serve the hypercall whose block is at @block_gpa. For HC_CRASH, @x is filled as an
 * ACCEL_EXIT_EXCEPTION (a fault the guest reported) or ACCEL_EXIT_CRASH (a bad block).
 * May block: S2_HC_PARK waits for the VM to stop, S2_HC_MIGRATE for the migration.
 */
enum hc_action hc_dispatch(struct vm *vm, uint32_t block_gpa, struct accel_exit *x);

/* Send @vm's S2_HC_LAB_RESULT blobs to the file @path (copied into vm->lab_out, freed by
 * vm_destroy), or to nowhere when @path is NULL. Returns 0 or -ENOMEM. */
int hc_lab_out_set(struct vm *vm, const char *path);

#endif
