/* SPDX-License-Identifier: MIT */
/*
 * Following the memory nodes the process may use (Mems_allowed: what libvirt's
 * <numatune> sets through the cpuset cgroup). At start a VM without --numa is placed on
 * an allowed node; while it runs, a thread watches the set and, when it changes, moves
 * every 2 MiB of guest RAM on a node no longer allowed to the lowest allowed node with
 * the migration engine, live.
 */
#ifndef S2VM_MEMS_H
#define S2VM_MEMS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/err.h"
#include "vmm/vm.h"

/* Parse a cpuset list ("0", "0-2,5") into a mask of nodes 0..63. Returns 0 or -EINVAL. */
int mems_list_parse(const char *s, uint64_t *mask) __attribute__((warn_unused_result));

/* This process's Mems_allowed (from /proc/self/status). Returns 0 or -errno. */
int mems_allowed(uint64_t *mask) __attribute__((warn_unused_result));

/* The same from the file @path: a status file (its Mems_allowed_list: line) or a bare
 * list. For tests: $S2VM_MEMS_ALLOWED_FILE, read by the watcher instead of
 * /proc/self/status, stands in for a cgroup change on a host with one node. */
int mems_allowed_from(const char *path, uint64_t *mask) __attribute__((warn_unused_result));

struct mems_watch {
	struct vm *vm;
	uint64_t mask; /* the set last seen */
	unsigned period_ms;
	uint64_t changes, moved_pages, errors;
	const char *path; /* what it reads: /proc/self/status or $S2VM_MEMS_ALLOWED_FILE */
	pthread_t thread;
	bool started;
};

/* Watch @vm's Mems_allowed every @period_ms. Returns 0 or -errno with @e set. */
int mems_watch_start(struct mems_watch *w, struct vm *vm, unsigned period_ms, struct s2_err *e)
	__attribute__((warn_unused_result));
/* Wait for the thread; call after the VM stopped. */
void mems_watch_join(struct mems_watch *w);

#endif
