/* SPDX-License-Identifier: MIT */
/*
 * A small pool of copy threads for the migration engine (mm/migrate.c): a large batch's
 * copy is cut into tasks that the workers and the calling thread take in turn, so the
 * copy runs at the memory bandwidth of more than one core (the AMD batch-copy RFC's
 * multi-threaded folio copy, seed-algorithms.md). One pool per VM (struct mm), made the
 * first time a batch is large enough, destroyed with the VM; no file-scope state.
 *
 * Locking: copy_pool_run() has one caller at a time (the engine calls it under
 * mm->mig_lock); the pool's own lock and conditions order everything else.
 */
#ifndef S2VM_MM_COPY_POOL_H
#define S2VM_MM_COPY_POOL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define COPY_POOL_MAX_THREADS 8 /* copy threads at most, the caller included */

struct copy_pool {
	pthread_mutex_t lock;
	pthread_cond_t work; /* a job was posted, or stop */
	pthread_cond_t done; /* the last worker left a job */
	pthread_t *th;
	unsigned nth; /* worker threads (the caller is one more copier) */
	uint64_t gen; /* jobs posted; workers wait for it to change */
	bool open; /* the job may be joined: from its posting until its caller returns */
	bool stop;
	/* the job, written under lock before gen changes: */
	int (*fn)(void *ctx, unsigned task);
	void *ctx;
	unsigned ntasks;
	unsigned next; /* next task to take (atomic) */
	unsigned finished; /* tasks done (atomic) */
	unsigned active; /* workers inside the job, under lock */
	int err; /* first -errno a task returned (atomic) */
};

/* CPUs this process may run on (sched_getaffinity), at least 1. */
unsigned copy_pool_cpus(void);

/*
 * Make a pool of @threads copiers in all: @threads - 1 workers (all signals blocked,
 * named "s2vm-copy"), the caller of copy_pool_run() being the last. @threads is 2 ..
 * COPY_POOL_MAX_THREADS. Returns 0 and *@out, or -EINVAL / -ENOMEM / -EAGAIN with nothing
 * left behind.
 */
int copy_pool_create(struct copy_pool **out, unsigned threads) __attribute__((warn_unused_result));

/* Stop and join the workers, free the pool. NULL is ignored. No job may be running. */
void copy_pool_destroy(struct copy_pool *p);

/* Copiers in all: workers + the caller. */
static inline unsigned copy_pool_threads(const struct copy_pool *p)
{
	return p ? p->nth + 1 : 1;
}

/*
 * Run @fn(@ctx, i) once for every i in [0, @ntasks), on the workers and the calling
 * thread, and return when all have returned. Tasks must be independent. Returns 0 or
 * the first nonzero value a task returned (the other tasks still run).
 */
int copy_pool_run(struct copy_pool *p, unsigned ntasks, int (*fn)(void *ctx, unsigned task),
		  void *ctx) __attribute__((warn_unused_result));

#endif
