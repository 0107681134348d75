/* SPDX-License-Identifier: MIT */
/* Statistics printed by `s2vm run --stats[=json]` at exit and on SIGUSR1. */
#ifndef S2VM_STATS_H
#define S2VM_STATS_H

#include <stdio.h>

#include "vmm/options.h"
#include "vmm/vm.h"

/* Print @vm's statistics to @f in @mode (text table or one JSON object per line). */
void vm_stats_print(struct vm *vm, enum run_stats_mode mode, FILE *f);

#endif
