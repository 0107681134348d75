// SPDX-License-Identifier: MIT
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm/copy_pool.h"

unsigned copy_pool_cpus(void)
{
	cpu_set_t set;
	int n;

	if (sched_getaffinity(0, sizeof(set), &set))
		return 1;
	n = CPU_COUNT(&set);
	return n > 0 ? (unsigned)n : 1;
}

/* Take tasks until none is left. */
static void run_tasks(struct copy_pool *p)
{
	for (;;) {
		unsigned i = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED);
		int r, zero = 0;

		if (i >= p->ntasks)
			return;
		r = p->fn(p->ctx, i);
		if (r)
			__atomic_compare_exchange_n(&p->err, &zero, r, false, __ATOMIC_RELAXED,
						    __ATOMIC_RELAXED);
		__atomic_fetch_add(&p->finished, 1, __ATOMIC_RELEASE);
	}
}

static void *worker(void *arg)
{
	struct copy_pool *p = arg;
	uint64_t seen;

	pthread_mutex_lock(&p->lock);
	seen = p->gen;
	for (;;) {
		/* join only an open job: a job is closed (under lock) only once every
		 * worker that joined it left, so none reads a job's fields late */
		while (!p->stop && (p->gen == seen || !p->open))
			pthread_cond_wait(&p->work, &p->lock);
		if (p->stop)
			break;
		seen = p->gen;
		p->active++;
		pthread_mutex_unlock(&p->lock);
		run_tasks(p);
		pthread_mutex_lock(&p->lock);
		if (--p->active == 0)
			pthread_cond_broadcast(&p->done);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int copy_pool_create(struct copy_pool **out, unsigned threads)
{
	struct copy_pool *p;
	sigset_t all, old;
	int r = 0;

	if (threads < 2 || threads > COPY_POOL_MAX_THREADS)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->th = calloc(threads - 1, sizeof(*p->th));
	if (!p->th) {
		free(p);
		return -ENOMEM;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
	/* workers never take the VMM's signals (kicks, SIGINT, the proc accelerator's) */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned i = 0; i < threads - 1; i++) {
		char name[16];

		r = -pthread_create(&p->th[i], NULL, worker, p);
		if (r)
			break;
		snprintf(name, sizeof(name), "s2vm-copy%u", i + 1);
		pthread_setname_np(p->th[i], name);
		p->nth++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		copy_pool_destroy(p);
		return r;
	}
	*out = p;
	return 0;
}

void copy_pool_destroy(struct copy_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->nth; i++)
		pthread_join(p->th[i], NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->done);
	free(p->th);
	free(p);
}

int copy_pool_run(struct copy_pool *p, unsigned ntasks, int (*fn)(void *ctx, unsigned task),
		  void *ctx)
{
	int r;

	if (!ntasks)
		return 0;
	pthread_mutex_lock(&p->lock);
	p->fn = fn;
	p->ctx = ctx;
	p->ntasks = ntasks;
	__atomic_store_n(&p->next, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&p->finished, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&p->err, 0, __ATOMIC_RELAXED);
	p->gen++;
	p->open = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	run_tasks(p);
	pthread_mutex_lock(&p->lock);
	/* every task returned, and no worker still reads this job */
	while (__atomic_load_n(&p->finished, __ATOMIC_ACQUIRE) < ntasks || p->active)
		pthread_cond_wait(&p->done, &p->lock);
	p->open = false;
	r = __atomic_load_n(&p->err, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&p->lock);
	return r;
}
