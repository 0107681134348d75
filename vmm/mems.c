// SPDX-License-Identifier: MIT
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mm/migrate.h"
#include "vmm/mems.h"

#define MIB2 (2ull << 20)

int mems_allowed(uint64_t *mask)
{
	char line[512];
	FILE *f = fopen("/proc/self/status", "re");
	int r = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "Mems_allowed_list:", 18)) {
			const char *v = line + 18;

			while (*v == ' ' || *v == '\t')
				v++;
			r = mems_list_parse(v, mask);
			break;
		}
	fclose(f);
	return r;
}

/* Move every 2 MiB of guest RAM on a node outside @mask to its lowest node. */
static void follow(struct mems_watch *w, uint64_t mask)
{
	struct vm *vm = w->vm;
	unsigned target = (unsigned)__builtin_ctzll(mask);

	for (gpa_t g = 0; g < vm->mem_size && !atomic_load(&vm->stopping); g += MIB2) {
		int node = mm_gpa_node(&vm->mm, g);
		struct mig_range r = { g, MIB2 };
		struct mig_result res;

		if (node < 0 || (mask >> node & 1))
			continue;
		if (mm_migrate(&vm->mm, &r, 1, target, &res))
			w->errors++;
		w->moved_pages += res.pages;
	}
}

static void *watch_thread(void *arg)
{
	struct mems_watch *w = arg;
	struct vm *vm = w->vm;

	for (;;) {
		struct timespec next;
		uint64_t mask;

		clock_gettime(CLOCK_REALTIME, &next);
		next.tv_nsec += (long)(w->period_ms % 1000) * 1000000L;
		next.tv_sec += w->period_ms / 1000 + next.tv_nsec / 1000000000L;
		next.tv_nsec %= 1000000000L;
		pthread_mutex_lock(&vm->stop_lock);
		while (!atomic_load(&vm->stopping) &&
		       pthread_cond_timedwait(&vm->stop_cond, &vm->stop_lock, &next) != ETIMEDOUT)
			;
		pthread_mutex_unlock(&vm->stop_lock);
		if (atomic_load(&vm->stopping))
			break;
		if (mems_allowed(&mask) || mask == w->mask)
			continue;
		w->mask = mask;
		w->changes++;
		fprintf(stderr, "s2vm: the memory nodes allowed changed (mask %#llx): moving guest "
				"memory off the others\n",
			(unsigned long long)mask);
		follow(w, mask);
	}
	return NULL;
}

int mems_watch_start(struct mems_watch *w, struct vm *vm, unsigned period_ms, struct s2_err *e)
{
	sigset_t all, old;
	int r;

	memset(w, 0, sizeof(*w));
	w->vm = vm;
	w->period_ms = period_ms;
	r = mems_allowed(&w->mask);
	if (r)
		return s2_err_set(e, r, "reading Mems_allowed_list: %s", strerror(-r));
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&w->thread, NULL, watch_thread, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r)
		return s2_err_set(e, -r, "cannot start the Mems_allowed thread: %s", strerror(r));
	w->started = true;
	return 0;
}

void mems_watch_join(struct mems_watch *w)
{
	if (w->started)
		pthread_join(w->thread, NULL);
	w->started = false;
}
