/* SPDX-License-Identifier: MIT */
/* The vCPU run loop, one thread per vCPU, the same for every accelerator: run until an
 * exit, dispatch it (hypercall port, MMIO windows, write faults), report crashes. */
#ifndef S2VM_VCPU_H
#define S2VM_VCPU_H

#include "vmm/vm.h"

/* Start the vCPU's thread. Returns 0 or -errno. */
int vcpu_start(struct vcpu *v) __attribute__((warn_unused_result));

#endif
