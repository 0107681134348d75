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

int mems_allowed_from(const char *path, uint64_t *mask)
{
	char line[512];
	FILE *f = fopen(path, "re");
	int r = -ENOENT;
	bool first = true;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		const char *v = NULL;

		if (!strncmp(line, "Mems_allowed_list:", 18))
			v = line + 18;
		else if (first && strchr("0123456789", line[0]))
			v = line; /* a bare list */
		first = false;
		if (!v)
			continue;
		while (*v == ' ' || *v == '\t')
			v++;
		line[strcspn(line, "\n")] = '\0';
		r = mems_list_parse(v, mask);
		break;
	}
	fclose(f);
	return r;
}

int mems_allowed(uint64_t *mask)
{
	return mems_allowed_from("/proc/self/status", mask);
}

/* Move every 2 MiB of guest RAM on a node outside @mask to its lowest node: one
 * migration request of maximal ranges (batched by the engine). */
static void follow(struct mems_watch *w, uint64_t mask)
{
	struct vm *vm = w->vm;
	unsigned target = (unsigned)__builtin_ctzll(mask);
	struct mig_range *r = malloc((vm->mem_size / MIB2) * sizeof(*r));
	struct mig_result res = { 0 };
	size_t n = 0;

	if (!r) {
		w->errors++;
		return;
	}
	for (gpa_t g = 0; g < vm->mem_size; g += MIB2) {
		int node = mm_gpa_node(&vm->mm, g);

		if (node < 0 || (mask >> node & 1))
			continue;
		if (n && r[n - 1].gpa + r[n - 1].len == g)
			r[n - 1].len += MIB2;
		else
			r[n++] = (struct mig_range){ g, MIB2 };
	}
	if (n && mm_migrate(&vm->mm, r, n, target, &res))
		w->errors++;
	w->moved_pages += res.pages;
	fprintf(stderr, "s2vm: moved %llu MiB of guest memory to host node %u (%llu MiB not "
			"moved)\n",
		(unsigned long long)(res.pages >> 8), target,
		(unsigned long long)((res.aborted + res.pinned) >> 8));
	free(r);
}

static void *watch_thread(void *arg)
{
	struct mems_watch *w = arg;
	struct vm *vm = w->vm;

	for (;;) {
		struct timespec next = { 0 }; /* past: one period from now */
		uint64_t mask;

		if (vm_sleep_period(vm, &next, w->period_ms))
			break;
		if (mems_allowed_from(w->path, &mask) || !mask || mask == w->mask)
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
	w->path = getenv("S2VM_MEMS_ALLOWED_FILE") ? getenv("S2VM_MEMS_ALLOWED_FILE")
						   : "/proc/self/status";
	r = mems_allowed_from(w->path, &w->mask);
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
