// SPDX-License-Identifier: MIT
/* Guest hypercalls (include/s2vm/hypercall.h). Every guest pointer goes through
 * vm_gpa_to_hva(); the block is copied once so a racing vCPU cannot change it midway. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "mm/migrate.h"
#include "s2vm/clock.h"
#include "s2vm/hypercall.h"
#include "vmm/vcpu.h"

/* Copy a guest string of @len bytes into @out (NUL-terminated) if it is a valid name:
 * 1..S2_HC_NAME_MAX printable characters without spaces or '='. */
static int guest_name(struct vm *vm, uint64_t gpa, uint64_t len, char *out, bool allow_empty)
{
	const char *p;

	if (len > S2_HC_NAME_MAX || (!len && !allow_empty))
		return -EINVAL;
	p = vm_gpa_to_hva(vm, gpa, len);
	if (!p)
		return -EFAULT;
	memcpy(out, p, len);
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

static int64_t hc_report(struct vcpu *v, const uint64_t *a)
{
	char name[S2_HC_NAME_MAX + 1], unit[S2_HC_NAME_MAX + 1], val[64];
	double d;
	int r;

	r = guest_name(v->vm, a[0], a[1], name, false);
	if (r)
		return r;
	r = guest_name(v->vm, a[3], a[4], unit, true);
	if (r)
		return r;
	memcpy(&d, &a[2], sizeof(d));
	print_value(val, sizeof(val), d);
	pthread_mutex_lock(&v->vm->out_lock);
	fprintf(stdout, "report: %s=%s%s%s\n", name, val, unit[0] ? " " : "", unit);
	fflush(stdout);
	pthread_mutex_unlock(&v->vm->out_lock);
	return 0;
}

static int64_t hc_console(struct vcpu *v, const uint64_t *a)
{
	const char *p;

	if (a[1] > S2_HC_CONSOLE_MAX)
		return -EINVAL;
	p = vm_gpa_to_hva(v->vm, a[0], a[1]);
	if (!p)
		return -EFAULT;
	pthread_mutex_lock(&v->vm->out_lock);
	fwrite(p, 1, a[1], stdout);
	fflush(stdout);
	pthread_mutex_unlock(&v->vm->out_lock);
	return (int64_t)a[1];
}

static int64_t hc_get_args(struct vcpu *v, const uint64_t *a)
{
	size_t n = strlen(v->vm->guest_args);
	uint64_t len;

	if (a[1] == 0)
		return (int64_t)n;
	len = n + 1 <= a[1] ? n : a[1] - 1;
	if (mm_write_guest(&v->vm->mm, a[0], v->vm->guest_args, len) ||
	    mm_write_guest(&v->vm->mm, a[0] + len, "", 1))
		return -EFAULT;
	return (int64_t)n;
}

static int64_t hc_migrate(struct vcpu *v, const uint64_t *a)
{
	struct mig_range r = { .gpa = a[0], .len = a[1] };
	struct mig_result res;
	int e;

	if (a[2] > 63)
		return -EINVAL;
	e = mm_migrate(&v->vm->mm, &r, 1, (unsigned)a[2], &res);
	if (e)
		return e;
	return (int64_t)((res.pages + res.skipped) * 4096);
}

static const char *const vector_names[32] = {
	"#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow",
	"#BR bound range", "#UD invalid opcode", "#NM device not available",
	"#DF double fault", "coprocessor overrun", "#TS invalid TSS", "#NP segment not present",
	"#SS stack fault", "#GP general protection", "#PF page fault", "reserved 15",
	"#MF x87 error", "#AC alignment check", "#MC machine check", "#XM SIMD error",
	"#VE virtualization", "#CP control protection",
};

static void hc_fault(struct vcpu *v, const uint64_t *a)
{
	const char *name = a[0] < 32 && vector_names[a[0]] ? vector_names[a[0]] : "exception";
	char why[256];

	snprintf(why, sizeof(why),
		 "guest exception %" PRIu64 " (%s), error code %#" PRIx64 ", rip %#" PRIx64
		 ", cr2 %#" PRIx64 ", rsp %#" PRIx64,
		 a[0], name, a[1], a[2], a[3], a[4]);
	vcpu_dump(v, why);
	vm_stop(v->vm, VM_STOP_CRASH, S2_EXIT_GUEST_CRASH);
}

bool vcpu_hypercall(struct vcpu *v, uint32_t block_gpa)
{
	struct vm *vm = v->vm;
	struct s2_hc_block *gb, b;
	int64_t ret = -ENOSYS;

	__atomic_add_fetch(&v->hypercalls, 1, __ATOMIC_RELAXED);
	gb = (block_gpa % 8) ? NULL : vm_gpa_to_hva(vm, block_gpa, sizeof(*gb));
	if (!gb) {
		char why[96];

		snprintf(why, sizeof(why), "hypercall block at GPA %#x is outside RAM or unaligned",
			 block_gpa);
		vcpu_dump(v, why);
		vm_stop(vm, VM_STOP_CRASH, S2_EXIT_GUEST_CRASH);
		return false;
	}
	memcpy(&b, gb, sizeof(b));

	switch (b.nr) {
	case S2_HC_CONSOLE_WRITE:
		ret = hc_console(v, b.args);
		break;
	case S2_HC_EXIT:
		vm_stop(vm, VM_STOP_GUEST_EXIT, (int)(b.args[0] & 0xff));
		return false;
	case S2_HC_REPORT:
		ret = hc_report(v, b.args);
		break;
	case S2_HC_CLOCK_NS:
		ret = (int64_t)s2_now_ns();
		break;
	case S2_HC_GET_ARGS:
		ret = hc_get_args(v, b.args);
		break;
	case S2_HC_PARK:
		pthread_mutex_lock(&vm->stop_lock);
		while (!atomic_load(&vm->stopping))
			pthread_cond_wait(&vm->stop_cond, &vm->stop_lock);
		pthread_mutex_unlock(&vm->stop_lock);
		return false;
	case S2_HC_MIGRATE:
		ret = hc_migrate(v, b.args);
		break;
	case S2_HC_GPA_NODE:
		ret = mm_gpa_node(&vm->mm, b.args[0]);
		break;
	case S2_HC_FAULT:
		hc_fault(v, b.args);
		return false;
	default:
		break;
	}
	/* through the memory manager: the block may sit on a page being migrated */
	if (mm_write_guest(&vm->mm, block_gpa + offsetof(struct s2_hc_block, ret), &ret,
			   sizeof(ret))) {
		vm_stop(vm, VM_STOP_CRASH, S2_EXIT_GUEST_CRASH);
		return false;
	}
	return true;
}
