/* SPDX-License-Identifier: MIT */
/* `S2VM_INJECT`: fault injection into the memory manager's host calls, for tests. */
#ifndef S2VM_INJECT_H
#define S2VM_INJECT_H

#include "mm/mm.h"
#include "vmm/err.h"

/*
 * Parse "CALL=RATE[,CALL=RATE...][,seed=N]" where CALL is mmap, mprotect, fallocate,
 * memfd_create, mbind or table (stage-2 table pages) and RATE a fraction in [0, 1]
 * (e.g. 0.01). Returns 0 or -EINVAL
 * with @e naming the problem; @out is zeroed first.
 */
int inject_parse(const char *s, struct mm_inject *out, struct s2_err *e)
	__attribute__((warn_unused_result));

#endif
