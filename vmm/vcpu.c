// SPDX-License-Identifier: MIT
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "s2vm/hypercall.h"
#include "vmm/hypercall.h"
#include "vmm/vcpu.h"

static const char *const vector_names[32] = {
	"#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow",
	"#BR bound range", "#UD invalid opcode", "#NM device not available",
	"#DF double fault", "coprocessor overrun", "#TS invalid TSS", "#NP segment not present",
	"#SS stack fault", "#GP general protection", "#PF page fault", "reserved 15",
	"#MF x87 error", "#AC alignment check", "#MC machine check", "#XM SIMD error",
	"#VE virtualization", "#CP control protection",
};

const char *x86_vector_name(unsigned vector)
{
	return vector < 32 && vector_names[vector] ? vector_names[vector] : "exception";
}

/* Report why the guest cannot go on, with its registers, and stop the VM as crashed. */
static void vcpu_crash(struct vcpu *v, const char *why)
{
	struct vm *vm = v->vm;

	pthread_mutex_lock(&vm->out_lock);
	fprintf(stderr, "s2vm: vCPU %u: %s\n", v->id, why);
	vm->accel->vcpu_dump(v, stderr);
	fflush(stderr);
	pthread_mutex_unlock(&vm->out_lock);
	vm_stop(vm, VM_STOP_CRASH, S2_EXIT_GUEST_CRASH);
}

/* The crash report for an exit the guest cannot continue from. */
static void vcpu_crash_exit(struct vcpu *v, const struct accel_exit *x)
{
	char why[400];

	switch (x->kind) {
	case ACCEL_EXIT_EXCEPTION:
		snprintf(why, sizeof(why),
			 "guest exception %u (%s), error code %#" PRIx64 ", rip %#" PRIx64
			 ", cr2 %#" PRIx64 ", rsp %#" PRIx64 "%s%s",
			 x->exc.vector, x86_vector_name(x->exc.vector), x->exc.error, x->exc.rip,
			 x->exc.cr2, x->exc.rsp, x->why[0] ? ": " : "", x->why);
		break;
	case ACCEL_EXIT_SYSCALL:
		snprintf(why, sizeof(why),
			 "guest made a host system call (nr %" PRIu64 ") at rip %#" PRIx64
			 ": refused; --accel proc gives no isolation, so the guest is stopped",
			 x->sys.nr, x->sys.rip);
		break;
	case ACCEL_EXIT_SHUTDOWN:
		snprintf(why, sizeof(why), "KVM_EXIT_SHUTDOWN (triple fault)");
		break;
	case ACCEL_EXIT_IO:
		snprintf(why, sizeof(why), "unhandled port I/O: %s port %#x, size %u, count 1",
			 x->io.out ? "out to" : "in from", x->io.port, x->io.size);
		break;
	case ACCEL_EXIT_MMIO:
		if (x->mmio.write)
			snprintf(why, sizeof(why),
				 "MMIO write of %u bytes at GPA %#" PRIx64 " (value %#" PRIx64
				 "): no device there",
				 x->mmio.len, x->mmio.gpa, x->mmio.data);
		else
			snprintf(why, sizeof(why),
				 "MMIO read of %u bytes at GPA %#" PRIx64 ": no device there",
				 x->mmio.len, x->mmio.gpa);
		break;
	case ACCEL_EXIT_WRITE_FAULT:
		snprintf(why, sizeof(why), "guest write to GPA %#" PRIx64 " failed: not writable",
			 x->wfault.gpa);
		break;
	default:
		snprintf(why, sizeof(why), "%s", x->why[0] ? x->why : "unhandled exit");
		break;
	}
	vcpu_crash(v, why);
}

/*
 * Dispatch one exit. @seq is mm_seq() as read before the guest was entered. Returns true
 * to re-enter the guest, false when this vCPU must leave its loop.
 */
static bool vcpu_handle_exit(struct vcpu *v, struct accel_exit *x, uint64_t seq)
{
	struct vm *vm = v->vm;

	switch (x->kind) {
	case ACCEL_EXIT_NONE:
		return true;
	case ACCEL_EXIT_IO:
		if (x->io.port == S2_HC_PORT && x->io.out && x->io.size == 4) {
			__atomic_add_fetch(&v->hypercalls, 1, __ATOMIC_RELAXED);
			switch (hc_dispatch(vm, x->io.data, x)) {
			case HC_CONTINUE:
				return true;
			case HC_STOPPED:
				return false;
			case HC_CRASH:
				break;
			}
		}
		break;
	case ACCEL_EXIT_MMIO:
		if (vm_mmio_access(vm, x->mmio.gpa, x->mmio.len, x->mmio.write, &x->mmio.data) == 0)
			return true;
		break;
	case ACCEL_EXIT_WRITE_FAULT:
		/* a write to a write-protected page: a migration batch is in progress, or the
		 * lazy policy left it read-only */
		if (mm_handle_write_fault(&vm->mm, x->wfault.gpa, seq) == 0)
			return true;
		break;
	default:
		break;
	}
	vcpu_crash_exit(v, x);
	return false;
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct vm *vm = v->vm;
	struct s2_err e = { "" };

	if (vm->accel->vcpu_thread_enter(v, &e)) {
		fprintf(stderr, "s2vm: vCPU %u: %s\n", v->id, e.msg);
		vm_stop(vm, VM_STOP_ERROR, 1);
		goto out;
	}
	while (!atomic_load(&vm->stopping)) {
		uint64_t seq;

		if (atomic_load(&vm->paused)) {
			vm_pause_point(vm);
			continue;
		}
		seq = mm_seq(&vm->mm);

		if (vm->accel->vcpu_run(v, &v->exit)) {
			vcpu_crash(v, v->exit.why);
			break;
		}
		__atomic_add_fetch(&v->exits, 1, __ATOMIC_RELAXED);
		if (!vcpu_handle_exit(v, &v->exit, seq))
			break;
	}
	vm->accel->vcpu_thread_leave(v);
out:
	vm_vcpu_exited(v);
	return NULL;
}

int vcpu_start(struct vcpu *v)
{
	int r;

	pthread_mutex_lock(&v->vm->stop_lock); /* vm_stop() reads thread and started */
	r = pthread_create(&v->thread, NULL, vcpu_thread, v);
	if (!r) {
		char name[16];

		/* named before anyone is told the VM runs: libvirt looks for vcpuN threads
		 * once, right after vm.boot answers */
		snprintf(name, sizeof(name), "vcpu%u", v->id);
		pthread_setname_np(v->thread, name);
		v->started = true;
	}
	pthread_mutex_unlock(&v->vm->stop_lock);
	return -r;
}
