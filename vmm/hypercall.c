// SPDX-License-Identifier: MIT
/* Guest hypercalls (include/s2vm/hypercall.h). Guest memory is read and written only
 * through the memory manager (mm_guest_read/mm_guest_write: checked, through the pools'
 * own mappings); the block is copied once so a racing vCPU cannot change it midway. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mm/migrate.h"
#include "s2vm/clock.h"
#include "s2vm/hypercall.h"
#include "s2vm/lab.h"
#include "vmm/hypercall.h"

/* Copy a guest string of @len bytes into @out (NUL-terminated) if it is a valid name:
 * 1..S2_HC_NAME_MAX printable characters without spaces or '='. */
static int guest_name(struct vm *vm, uint64_t gpa, uint64_t len, char *out, bool allow_empty)
{
	if (len > S2_HC_NAME_MAX || (!len && !allow_empty))
		return -EINVAL;
	if (mm_guest_read(&vm->mm, gpa, out, len))
		return -EFAULT;
	out[len] = '\0';
	for (uint64_t i = 0; i < len; i++)
		if (out[i] <= ' ' || out[i] > '~' || out[i] == '=')
			return -EINVAL;
	return 0;
}

static void print_value(char *buf, size_t len, double v)
{
	if (isfinite(v) && v == (double)(int64_t)v && fabs(v) < 9.0e15)
		snprintf(buf, len, "%" PRId64, (int64_t)v);
	else
		snprintf(buf, len, "%.6g", v);
}

static int64_t hc_report(struct vm *vm, const uint64_t *a)
{
	char name[S2_HC_NAME_MAX + 1], unit[S2_HC_NAME_MAX + 1], val[64];
	double d;
	int r;

	r = guest_name(vm, a[0], a[1], name, false);
	if (r)
		return r;
	r = guest_name(vm, a[3], a[4], unit, true);
	if (r)
		return r;
	memcpy(&d, &a[2], sizeof(d));
	print_value(val, sizeof(val), d);
	{
		char line[512];
		int n = snprintf(line, sizeof(line), "report: %s=%s%s%s\n", name, val,
				 unit[0] ? " " : "", unit);

		pthread_mutex_lock(&vm->out_lock);
		vm_console_write(vm, line, n < (int)sizeof(line) ? (size_t)n : sizeof(line) - 1);
		fflush(stdout);
	}
	pthread_mutex_unlock(&vm->out_lock);
	return 0;
}

static int64_t hc_console(struct vm *vm, const uint64_t *a)
{
	char buf[4096];

	if (a[1] > S2_HC_CONSOLE_MAX)
		return -EINVAL;
	if (a[0] > vm->mem_size || a[1] > vm->mem_size - a[0])
		return -EFAULT;
	pthread_mutex_lock(&vm->out_lock);
	for (uint64_t off = 0; off < a[1];) {
		uint64_t n = a[1] - off < sizeof(buf) ? a[1] - off : sizeof(buf);

		if (mm_guest_read(&vm->mm, a[0] + off, buf, n))
			break;
		vm_console_write(vm, buf, n);
		off += n;
	}
	fflush(stdout);
	pthread_mutex_unlock(&vm->out_lock);
	return (int64_t)a[1];
}

static int64_t hc_get_args(struct vm *vm, const uint64_t *a)
{
	size_t n = strlen(vm->guest_args);
	uint64_t len;

	if (a[1] == 0)
		return (int64_t)n;
	len = n + 1 <= a[1] ? n : a[1] - 1;
	if (mm_guest_write(&vm->mm, a[0], vm->guest_args, len) ||
	    mm_guest_write(&vm->mm, a[0] + len, "", 1))
		return -EFAULT;
	return (int64_t)n;
}

static int64_t hc_migrate(struct vm *vm, const uint64_t *a)
{
	struct mig_range r = { .gpa = a[0], .len = a[1] };
	struct mig_result res;
	int e;

	if (a[2] > 63)
		return -EINVAL;
	e = mm_migrate(&vm->mm, &r, 1, (unsigned)a[2], &res);
	if (e)
		return e;
	return (int64_t)((res.pages + res.skipped) * 4096);
}

/* The pools' resident bytes and the discard counters, for workloads that check what went
 * back to the host. */
static int64_t hc_mem_info(struct vm *vm, const uint64_t *a)
{
	struct s2_hc_mem_info mi = { 0 };
	struct mm *mm = &vm->mm;
	uint64_t len = a[1] < sizeof(mi) ? a[1] : sizeof(mi);
	int e;

	pthread_mutex_lock(&mm->lock);
	mi.nr_pools = mm->nr_pools < S2_HC_MAX_POOLS ? mm->nr_pools : S2_HC_MAX_POOLS;
	for (unsigned i = 0; i < mi.nr_pools; i++) {
		mi.pool_node[i] = mm->pools[i].node;
		mi.pool_resident[i] = pool_resident_bytes(&mm->pools[i]);
		mi.resident_bytes += mi.pool_resident[i];
	}
	mi.discarded_pages = mm->discard.pages;
	mi.discard_pending = mm->discard.pending_pages;
	mi.discard_pinned = mm->discard.pinned_skipped + mm->discard.pinned_deferred;
	pthread_mutex_unlock(&mm->lock);
	e = mm_guest_write(mm, a[0], &mi, len);
	return e ? e : (int64_t)len;
}

int hc_lab_out_set(struct vm *vm, const char *path)
{
	char *copy = NULL;

	if (path && !(copy = strdup(path)))
		return -ENOMEM;
	pthread_mutex_lock(&vm->out_lock);
	free(vm->lab_out);
	vm->lab_out = copy;
	pthread_mutex_unlock(&vm->out_lock);
	return 0;
}

/* Write @len bytes at @buf to the VM's --lab-out file (created or truncated). Returns 0,
 * -ENODEV without --lab-out, or -EIO. */
static int lab_sink_write(struct vm *vm, const void *buf, size_t len)
{
	int r = -ENODEV, fd;
	size_t done = 0;

	pthread_mutex_lock(&vm->out_lock); /* one writer at a time */
	if (!vm->lab_out)
		goto out;
	r = -EIO;
	fd = open(vm->lab_out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		goto out;
	while (done < len) {
		ssize_t n = write(fd, (const char *)buf + done, len - done);

		if (n <= 0)
			break;
		done += (size_t)n;
	}
	if (close(fd) == 0 && done == len)
		r = 0;
out:
	pthread_mutex_unlock(&vm->out_lock);
	return r;
}

/* S2_HC_LAB_RESULT: copy the blob out of guest RAM once (a racing vCPU cannot change it
 * after the check), check it, write it. */
static int64_t hc_lab_result(struct vm *vm, const uint64_t *a)
{
	uint64_t len = a[1];
	void *buf;
	int r;

	if (len > S2_LAB_MAX_LEN)
		return -E2BIG;
	if (len == 0 || len % 8)
		return -EINVAL;
	if (a[0] > vm->mem_size || len > vm->mem_size - a[0])
		return -EFAULT;
	buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	r = mm_guest_read(&vm->mm, a[0], buf, len) ? -EFAULT : s2_lab_check(buf, len);
	if (!r)
		r = lab_sink_write(vm, buf, len);
	free(buf);
	return r ? r : (int64_t)len;
}

/* S2_HC_LAB_PHASE: a phased lab run switched phase; wake the churn thread. */
static int64_t hc_lab_phase(struct vm *vm, const uint64_t *a)
{
	if (a[0] > 1)
		return -EINVAL;
	pthread_mutex_lock(&vm->stop_lock);
	atomic_store(&vm->lab_phase, a[0] ? VM_LAB_PHASE_ON : VM_LAB_PHASE_OFF);
	pthread_cond_broadcast(&vm->stop_cond);
	pthread_mutex_unlock(&vm->stop_lock);
	return 0;
}

enum hc_action hc_dispatch(struct vm *vm, uint32_t block_gpa, struct accel_exit *x)
{
	struct s2_hc_block b;
	int64_t ret = -ENOSYS;

	if ((block_gpa % 8) || mm_guest_read(&vm->mm, block_gpa, &b, sizeof(b))) {
		x->kind = ACCEL_EXIT_CRASH;
		snprintf(x->why, sizeof(x->why),
			 "hypercall block at GPA %#x is outside RAM or unaligned", block_gpa);
		return HC_CRASH;
	}

	switch (b.nr) {
	case S2_HC_CONSOLE_WRITE:
		ret = hc_console(vm, b.args);
		break;
	case S2_HC_EXIT:
		vm_stop(vm, VM_STOP_GUEST_EXIT, (int)(b.args[0] & 0xff));
		return HC_STOPPED;
	case S2_HC_REPORT:
		ret = hc_report(vm, b.args);
		break;
	case S2_HC_CLOCK_NS:
		ret = (int64_t)s2_now_ns();
		break;
	case S2_HC_GET_ARGS:
		ret = hc_get_args(vm, b.args);
		break;
	case S2_HC_PARK:
		pthread_mutex_lock(&vm->stop_lock);
		vm->nr_hc_parked++; /* counts as paused for vm_pause() */
		pthread_cond_broadcast(&vm->exited_cond);
		while (!atomic_load(&vm->stopping))
			pthread_cond_wait(&vm->stop_cond, &vm->stop_lock);
		vm->nr_hc_parked--;
		pthread_mutex_unlock(&vm->stop_lock);
		return HC_STOPPED;
	case S2_HC_MIGRATE:
		ret = hc_migrate(vm, b.args);
		break;
	case S2_HC_GPA_NODE:
		ret = mm_gpa_node(&vm->mm, b.args[0]);
		break;
	case S2_HC_NOP:
		ret = 0;
		break;
	case S2_HC_MEM_INFO:
		ret = hc_mem_info(vm, b.args);
		break;
	case S2_HC_LAB_RESULT:
		ret = hc_lab_result(vm, b.args);
		break;
	case S2_HC_LAB_PHASE:
		ret = hc_lab_phase(vm, b.args);
		break;
	case S2_HC_FAULT:
		/* the guest's ring-0 exception stub reports a fault it cannot handle */
		x->kind = ACCEL_EXIT_EXCEPTION;
		x->exc.vector = (unsigned)(b.args[0] < 256 ? b.args[0] : 255);
		x->exc.error = b.args[1];
		x->exc.rip = b.args[2];
		x->exc.cr2 = b.args[3];
		x->exc.rsp = b.args[4];
		x->why[0] = '\0';
		return HC_CRASH;
	default:
		break;
	}
	/* through the memory manager: the block may sit on a page being migrated */
	if (mm_guest_write(&vm->mm, block_gpa + offsetof(struct s2_hc_block, ret), &ret,
			   sizeof(ret))) {
		x->kind = ACCEL_EXIT_CRASH;
		snprintf(x->why, sizeof(x->why), "cannot write the hypercall result at GPA %#x",
			 block_gpa);
		return HC_CRASH;
	}
	return HC_CONTINUE;
}
