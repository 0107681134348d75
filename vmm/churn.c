// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mm/migrate.h"
#include "vmm/churn.h"

/* A phased lab run is in an off phase: wait for the next on phase, then half a period
 * more, so the rounds of an on phase of k periods are k, each half a period away from its
 * ends (whatever the wake-up latency). Returns true if the VM stopped. */
static bool churn_wait_on(struct churn *c, struct timespec *next)
{
	struct vm *vm = c->vm;

	pthread_mutex_lock(&vm->stop_lock);
	while (!atomic_load(&vm->stopping) && atomic_load(&vm->lab_phase) == VM_LAB_PHASE_OFF)
		pthread_cond_wait(&vm->stop_cond, &vm->stop_lock);
	pthread_mutex_unlock(&vm->stop_lock);
	clock_gettime(CLOCK_REALTIME, next);
	return vm_sleep_period(vm, next, c->ms / 2);
}

static void *churn_thread(void *arg)
{
	struct churn *c = arg;
	struct vm *vm = c->vm;
	struct timespec next;

	clock_gettime(CLOCK_REALTIME, &next);
	for (;;) {
		struct mig_range r;
		struct mig_result res;
		int node, target = 0;

		/* one period after the previous round, or after now if that round ran late */
		if (vm_sleep_period(vm, &next, c->ms))
			break;
		if (atomic_load(&vm->lab_phase) == VM_LAB_PHASE_OFF) {
			if (churn_wait_on(c, &next))
				break;
			if (atomic_load(&vm->lab_phase) == VM_LAB_PHASE_OFF)
				continue; /* an on phase shorter than half a period */
		}

		r.gpa = c->cursor;
		r.len = c->chunk;
		if (r.gpa + r.len > vm->mem_size)
			r.len = vm->mem_size - r.gpa;
		node = mm_gpa_node(&vm->mm, r.gpa);
		for (unsigned i = 0; i < c->nr_nodes; i++)
			if ((int)c->nodes[i] == node)
				target = (int)c->nodes[(i + 1) % c->nr_nodes];
		if (mm_migrate(&vm->mm, &r, 1, (unsigned)target, &res))
			c->errors++;
		c->rounds++;
		c->cursor = (r.gpa + r.len) % vm->mem_size;
	}
	return NULL;
}

int churn_start(struct churn *c, struct vm *vm, unsigned ms, uint64_t chunk, struct s2_err *e)
{
	unsigned spare = 0;
	int r;

	memset(c, 0, sizeof(*c));
	c->vm = vm;
	c->ms = ms;
	c->chunk = chunk;
	for (unsigned i = 0; i < vm->mm.nr_pools; i++)
		c->nodes[c->nr_nodes++] = vm->mm.pools[i].node;
	if (c->nr_nodes == 1) {
		/* the lowest node number not in use (host nodes are 0..63) */
		while (spare == c->nodes[0])
			spare++;
		pthread_mutex_lock(&vm->mm.lock);
		r = mm_pool_get(&vm->mm, spare);
		pthread_mutex_unlock(&vm->mm.lock);
		if (r < 0)
			return s2_err_set(e, r, "--churn: %s", vm->mm.err);
		c->nodes[c->nr_nodes++] = spare;
		fprintf(stderr, "s2vm: --churn: the guest uses one host node; churning between "
				"nodes %u and %u\n", c->nodes[0], spare);
	}
	r = pthread_create(&c->thread, NULL, churn_thread, c);
	if (r)
		return s2_err_set(e, -r, "--churn: cannot start its thread: %s", strerror(r));
	c->started = true;
	return 0;
}

void churn_join(struct churn *c)
{
	if (c->started)
		pthread_join(c->thread, NULL);
	c->started = false;
}
