/* SPDX-License-Identifier: MIT */
/* `--churn MS[,SIZE]`: every MS ms, move the next SIZE bytes of guest memory to the next
 * host node in round-robin, until the guest exits (the lab's "memory churn" knob). In a
 * phased lab run (the guest's S2_HC_LAB_PHASE calls) only during its on phases. */
#ifndef S2VM_CHURN_H
#define S2VM_CHURN_H

#include "vmm/vm.h"

struct churn {
	struct vm *vm;
	unsigned ms; /* period */
	uint64_t chunk; /* bytes per period, multiple of 2 MiB */
	unsigned nodes[MM_MAX_POOLS]; /* round-robin host nodes */
	unsigned nr_nodes;
	gpa_t cursor;
	uint64_t rounds, errors;
	pthread_t thread;
	bool started;
};

/* Start churning @vm. Adds an (emulated) second host node if the guest uses only one.
 * Returns 0 or -errno with @e set. */
int churn_start(struct churn *c, struct vm *vm, unsigned ms, uint64_t chunk, struct s2_err *e)
	__attribute__((warn_unused_result));
/* Wait for the churn thread; call after the VM stopped. */
void churn_join(struct churn *c);

#endif
