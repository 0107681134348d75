// SPDX-License-Identifier: MIT
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arch/x86/boot.h"
#include "s2vm/hypercall.h"
#include "s2vm/kvm_compat.h"
#include "vmm/vcpu.h"

#define CPUID_MAX_ENTRIES 256

static int vcpu_set_cpuid(struct vcpu *v, struct s2_err *e)
{
	struct kvm_cpuid2 *c;
	int r = 0;

	c = calloc(1, sizeof(*c) + CPUID_MAX_ENTRIES * sizeof(c->entries[0]));
	if (!c)
		return s2_err_set(e, -ENOMEM, "out of memory");
	c->nent = CPUID_MAX_ENTRIES;
	if (ioctl(v->vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
		r = s2_err_set(e, -errno, "KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
		goto out_free;
	}
	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *x = &c->entries[i];

		if (x->function == 1) /* initial APIC ID */
			x->ebx = (x->ebx & 0x00ffffffu) | (v->id << 24);
		if (x->function == 0xb || x->function == 0x1f) /* x2APIC ID */
			x->edx = v->id;
	}
	if (ioctl(v->fd, KVM_SET_CPUID2, c) < 0)
		r = s2_err_set(e, -errno, "KVM_SET_CPUID2: %s", strerror(errno));
out_free:
	free(c);
	return r;
}

int vcpu_create(struct vm *vm, struct vcpu *v, unsigned id, struct s2_err *e)
{
	void *run;

	v->vm = vm;
	v->id = id;
	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (v->fd < 0)
		return s2_err_set(e, -errno, "KVM_CREATE_VCPU %u: %s", id, strerror(errno));
	run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (run == MAP_FAILED)
		return s2_err_set(e, -errno, "mmap of vCPU %u run area: %s", id, strerror(errno));
	v->run = run;
	return vcpu_set_cpuid(v, e);
}

int vcpu_set_boot_state(struct vcpu *v, uint64_t entry, uint64_t ustack_base, struct s2_err *e)
{
	struct kvm_sregs s;
	struct kvm_regs r;
	struct kvm_fpu fpu;

	if (ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
		return s2_err_set(e, -errno, "KVM_GET_SREGS: %s", strerror(errno));
	x86_boot_sregs(&s, v->id, v->vm->nr_vcpus);
	if (ioctl(v->fd, KVM_SET_SREGS, &s) < 0)
		return s2_err_set(e, -errno, "KVM_SET_SREGS (long mode) on vCPU %u: %s", v->id,
				  strerror(errno));
	x86_boot_regs(&r, v->id, entry, ustack_base);
	if (ioctl(v->fd, KVM_SET_REGS, &r) < 0)
		return s2_err_set(e, -errno, "KVM_SET_REGS: %s", strerror(errno));
	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37f;
	fpu.mxcsr = 0x1f80;
	if (ioctl(v->fd, KVM_SET_FPU, &fpu) < 0)
		return s2_err_set(e, -errno, "KVM_SET_FPU: %s", strerror(errno));
	return 0;
}

void vcpu_dump(struct vcpu *v, const char *why)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	FILE *f = stderr;

	fprintf(f, "s2vm: vCPU %u: %s\n", v->id, why);
	if (ioctl(v->fd, KVM_GET_REGS, &r) < 0 || ioctl(v->fd, KVM_GET_SREGS, &s) < 0) {
		fprintf(f, "s2vm: (cannot read registers: %s)\n", strerror(errno));
		return;
	}
	fprintf(f,
		" rip %016llx  rsp %016llx  rflags %016llx\n"
		" rax %016llx  rbx %016llx  rcx %016llx  rdx %016llx\n"
		" rsi %016llx  rdi %016llx  rbp %016llx\n"
		" r8  %016llx  r9  %016llx  r10 %016llx  r11 %016llx\n"
		" r12 %016llx  r13 %016llx  r14 %016llx  r15 %016llx\n"
		" cs %04x (dpl %u, l %u)  ss %04x  tr %04x\n"
		" cr0 %016llx  cr2 %016llx  cr3 %016llx  cr4 %016llx  efer %016llx\n"
		" idt base %016llx limit %04x  gdt base %016llx limit %04x\n",
		r.rip, r.rsp, r.rflags, r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.r8,
		r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, s.cs.selector, s.cs.dpl, s.cs.l,
		s.ss.selector, s.tr.selector, s.cr0, s.cr2, s.cr3, s.cr4, s.efer, s.idt.base,
		s.idt.limit, s.gdt.base, s.gdt.limit);
}

static const char *exit_name(uint32_t reason)
{
	switch (reason) {
	case KVM_EXIT_UNKNOWN:
		return "KVM_EXIT_UNKNOWN";
	case KVM_EXIT_IO:
		return "KVM_EXIT_IO";
	case KVM_EXIT_HLT:
		return "KVM_EXIT_HLT";
	case KVM_EXIT_MMIO:
		return "KVM_EXIT_MMIO";
	case KVM_EXIT_SHUTDOWN:
		return "KVM_EXIT_SHUTDOWN (triple fault)";
	case KVM_EXIT_FAIL_ENTRY:
		return "KVM_EXIT_FAIL_ENTRY";
	case KVM_EXIT_INTERNAL_ERROR:
		return "KVM_EXIT_INTERNAL_ERROR";
	case KVM_EXIT_MEMORY_FAULT:
		return "KVM_EXIT_MEMORY_FAULT";
	default:
		return "unknown exit";
	}
}

static void vcpu_crash(struct vcpu *v, const char *why)
{
	vcpu_dump(v, why);
	vm_stop(v->vm, VM_STOP_CRASH, S2_EXIT_GUEST_CRASH);
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct vm *vm = v->vm;
	struct kvm_run *run = v->run;
	sigset_t kick;
	char why[160];

	sigemptyset(&kick);
	sigaddset(&kick, SIGUSR2);
	pthread_sigmask(SIG_UNBLOCK, &kick, NULL);

	while (!atomic_load(&vm->stopping)) {
		uint64_t seq = mm_seq(&vm->mm);

		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				__atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
				continue;
			}
			if (errno == EFAULT) {
				/* a write to a write-protected page: a migration batch is in
				 * progress, or the lazy policy left it read-only */
				gpa_t gpa = run->exit_reason == KVM_EXIT_MEMORY_FAULT
						    ? s2_kvm_memory_fault(run)->gpa
						    : ~0ull;

				if (mm_handle_write_fault(&vm->mm, gpa, seq) == 0)
					continue;
				snprintf(why, sizeof(why), "guest access to GPA %#llx failed (EFAULT)",
					 (unsigned long long)gpa);
				vcpu_crash(v, why);
				break;
			}
			snprintf(why, sizeof(why), "KVM_RUN failed: %s", strerror(errno));
			vcpu_crash(v, why);
			break;
		}
		__atomic_add_fetch(&v->exits, 1, __ATOMIC_RELAXED);
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			if (run->io.port == S2_HC_PORT && run->io.direction == KVM_EXIT_IO_OUT &&
			    run->io.size == 4 && run->io.count == 1) {
				uint32_t gpa;

				memcpy(&gpa, (char *)run + run->io.data_offset, 4);
				if (!vcpu_hypercall(v, gpa))
					goto out;
				break;
			}
			snprintf(why, sizeof(why),
				 "unhandled port I/O: %s port %#x, size %u, count %u",
				 run->io.direction == KVM_EXIT_IO_OUT ? "out to" : "in from",
				 run->io.port, run->io.size, run->io.count);
			vcpu_crash(v, why);
			goto out;
		case KVM_EXIT_INTR:
			break;
		case KVM_EXIT_FAIL_ENTRY:
			snprintf(why, sizeof(why), "%s, hardware reason %#llx",
				 exit_name(run->exit_reason),
				 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
			vcpu_crash(v, why);
			goto out;
		case KVM_EXIT_INTERNAL_ERROR:
			snprintf(why, sizeof(why), "%s, suberror %u", exit_name(run->exit_reason),
				 run->internal.suberror);
			vcpu_crash(v, why);
			goto out;
		case KVM_EXIT_MMIO:
			snprintf(why, sizeof(why), "unhandled MMIO %s at GPA %#llx (outside RAM)",
				 run->mmio.is_write ? "write" : "read",
				 (unsigned long long)run->mmio.phys_addr);
			vcpu_crash(v, why);
			goto out;
		default:
			snprintf(why, sizeof(why), "unhandled exit %u: %s", run->exit_reason,
				 exit_name(run->exit_reason));
			vcpu_crash(v, why);
			goto out;
		}
	}
out:
	return NULL;
}

int vcpu_start(struct vcpu *v)
{
	int r;

	pthread_mutex_lock(&v->vm->stop_lock); /* vm_stop() reads thread and started */
	r = pthread_create(&v->thread, NULL, vcpu_thread, v);
	if (!r)
		v->started = true;
	pthread_mutex_unlock(&v->vm->stop_lock);
	return -r;
}

void vcpu_destroy(struct vcpu *v)
{
	if (v->run)
		munmap(v->run, v->vm->run_size);
	v->run = NULL;
	if (v->fd >= 0)
		close(v->fd);
	v->fd = -1;
}
