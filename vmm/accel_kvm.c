// SPDX-License-Identifier: MIT
/* The kvm accelerator: KVM ioctls. Guest RAM is the memory manager's alias, one memslot. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "arch/x86/boot.h"
#include "s2vm/bootinfo.h"
#include "s2vm/kvm_compat.h"
#include "vmm/options.h"
#include "vmm/vm.h"

#define CPUID_MAX_ENTRIES 256
/* Interrupts KVM_RUN on the vCPU thread. Not SIGUSR2: that is the balloon schedule's, taken
 * by vm_run() from a signalfd, and a process-directed signal must not land in a vCPU
 * thread that leaves it unblocked for kicks. */
#define KVM_KICK (SIGRTMIN + 1)

struct kvm_vm {
	int kvm_fd, vm_fd;
	size_t run_size;
};

struct kvm_vcpu {
	int fd;
	struct kvm_run *run; /* mmap of the vCPU fd, run_size bytes */
};

static struct kvm_vm *kvm_of(const struct vm *vm)
{
	return vm->accel_data;
}

static struct kvm_vcpu *kvcpu_of(const struct vcpu *v)
{
	return v->accel_data;
}

const char *accel_kvm_hint(int err)
{
	return err == -ENOENT	 ? " (is KVM enabled? try 'modprobe kvm_intel' or 'modprobe kvm_amd')"
	       : err == -EACCES ? " (add yourself to the 'kvm' group)"
				 : "";
}

int accel_kvm_open(struct s2_err *e)
{
	const char *path = getenv("S2VM_KVM_DEVICE");
	int fd, v;

	if (!path || !*path)
		path = "/dev/kvm";
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return s2_err_set(e, -errno, "cannot open %s: %s", path, strerror(errno));
	v = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (v != KVM_API_VERSION) {
		close(fd);
		if (v < 0)
			return s2_err_set(e, -ENODEV, "%s is not a usable KVM device: %s", path,
					  strerror(errno));
		return s2_err_set(e, -ENODEV, "%s: KVM API version %d, need %d", path, v,
				  KVM_API_VERSION);
	}
	if (ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY) <= 0 ||
	    ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_IMMEDIATE_EXIT) <= 0) {
		close(fd);
		return s2_err_set(e, -ENODEV,
				  "%s lacks KVM_CAP_USER_MEMORY or KVM_CAP_IMMEDIATE_EXIT", path);
	}
	return fd;
}

static void kvm_kick_handler(int sig)
{
	(void)sig;
}

static int kvm_vm_init(struct vm *vm, int fd, struct s2_err *e)
{
	struct kvm_vm *k = calloc(1, sizeof(*k));
	struct sigaction sa;
	int n;

	if (!k) {
		close(fd);
		return s2_err_set(e, -ENOMEM, "out of memory");
	}
	k->kvm_fd = fd;
	k->vm_fd = -1;
	vm->accel_data = k;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kvm_kick_handler; /* no SA_RESTART: KVM_RUN must return EINTR */
	sigaction(KVM_KICK, &sa, NULL);

	n = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (n <= 0)
		n = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	vm->max_vcpus = n > 0 ? (unsigned)n : 4;

	k->vm_fd = ioctl(fd, KVM_CREATE_VM, 0);
	if (k->vm_fd < 0)
		return s2_err_set(e, -errno, "KVM_CREATE_VM: %s", strerror(errno));
	n = ioctl(fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (n <= 0)
		return s2_err_set(e, -errno, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
	k->run_size = (size_t)n;
	return 0;
}

static int kvm_mm_config(struct vm *vm, struct mm_config *mc, struct s2_err *e)
{
	return 0; /* the alias anywhere: KVM translates GPAs through the memslot */
}

static int kvm_ram_ready(struct vm *vm, struct s2_err *e)
{
	struct kvm_userspace_memory_region slot;
	char a[32];

	memset(&slot, 0, sizeof(slot));
	slot.slot = 0;
	slot.guest_phys_addr = 0;
	slot.memory_size = vm->mem_size;
	slot.userspace_addr = (uint64_t)(uintptr_t)mm_alias_at(&vm->mm, 0);
	if (ioctl(kvm_of(vm)->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
		return s2_err_set(e, -errno, "KVM_SET_USER_MEMORY_REGION (%s at GPA 0): %s",
				  s2_size_format(vm->mem_size, a, sizeof(a)), strerror(errno));
	return 0;
}

static int kvm_set_cpuid(struct vcpu *v, struct s2_err *e)
{
	struct kvm_cpuid2 *c;
	int r = 0;

	c = calloc(1, sizeof(*c) + CPUID_MAX_ENTRIES * sizeof(c->entries[0]));
	if (!c)
		return s2_err_set(e, -ENOMEM, "out of memory");
	c->nent = CPUID_MAX_ENTRIES;
	if (ioctl(kvm_of(v->vm)->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
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
	if (ioctl(kvcpu_of(v)->fd, KVM_SET_CPUID2, c) < 0)
		r = s2_err_set(e, -errno, "KVM_SET_CPUID2: %s", strerror(errno));
out_free:
	free(c);
	return r;
}

static int kvm_vcpu_init(struct vcpu *v, struct s2_err *e)
{
	struct kvm_vm *k = kvm_of(v->vm);
	struct kvm_vcpu *kv = calloc(1, sizeof(*kv));
	void *run;

	if (!kv)
		return s2_err_set(e, -ENOMEM, "out of memory");
	v->accel_data = kv;
	kv->fd = ioctl(k->vm_fd, KVM_CREATE_VCPU, (unsigned long)v->id);
	if (kv->fd < 0)
		return s2_err_set(e, -errno, "KVM_CREATE_VCPU %u: %s", v->id, strerror(errno));
	run = mmap(NULL, k->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, kv->fd, 0);
	if (run == MAP_FAILED)
		return s2_err_set(e, -errno, "mmap of vCPU %u run area: %s", v->id,
				  strerror(errno));
	kv->run = run;
	return kvm_set_cpuid(v, e);
}

static int kvm_vcpu_set_boot(struct vcpu *v, const struct accel_boot *b, struct s2_err *e)
{
	int fd = kvcpu_of(v)->fd;
	struct kvm_sregs s;
	struct kvm_regs r;
	struct kvm_fpu fpu;

	if (ioctl(fd, KVM_GET_SREGS, &s) < 0)
		return s2_err_set(e, -errno, "KVM_GET_SREGS: %s", strerror(errno));
	x86_boot_sregs(&s, v->id, v->vm->nr_vcpus);
	if (ioctl(fd, KVM_SET_SREGS, &s) < 0)
		return s2_err_set(e, -errno, "KVM_SET_SREGS (long mode) on vCPU %u: %s", v->id,
				  strerror(errno));
	x86_boot_regs(&r, b->cpu, b->entry, b->ustack_top - (b->cpu + 1) * S2_USTACK_SIZE);
	if (ioctl(fd, KVM_SET_REGS, &r) < 0)
		return s2_err_set(e, -errno, "KVM_SET_REGS: %s", strerror(errno));
	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37f;
	fpu.mxcsr = 0x1f80;
	if (ioctl(fd, KVM_SET_FPU, &fpu) < 0)
		return s2_err_set(e, -errno, "KVM_SET_FPU: %s", strerror(errno));
	return 0;
}

static int kvm_vcpu_thread_enter(struct vcpu *v, struct s2_err *e)
{
	sigset_t kick;

	sigemptyset(&kick);
	sigaddset(&kick, KVM_KICK);
	pthread_sigmask(SIG_UNBLOCK, &kick, NULL);
	return 0;
}

static void kvm_vcpu_thread_leave(struct vcpu *v)
{
}

static const char *exit_name(uint32_t reason)
{
	switch (reason) {
	case KVM_EXIT_UNKNOWN:
		return "KVM_EXIT_UNKNOWN";
	case KVM_EXIT_HLT:
		return "KVM_EXIT_HLT";
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

static int kvm_vcpu_run(struct vcpu *v, struct accel_exit *x)
{
	struct kvm_vcpu *kv = kvcpu_of(v);
	struct kvm_run *run = kv->run;
	bool mmio_read = run->exit_reason == KVM_EXIT_MMIO && !run->mmio.is_write &&
			 x->kind == ACCEL_EXIT_MMIO;

	if (mmio_read) /* complete the read the loop just served */
		memcpy(run->mmio.data, &x->mmio.data, run->mmio.len);
	x->why[0] = '\0';
	if (ioctl(kv->fd, KVM_RUN, 0) < 0) {
		if (errno == EINTR || errno == EAGAIN) {
			__atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
			x->kind = ACCEL_EXIT_NONE;
			return 0;
		}
		if (errno == EFAULT) {
			/* a write to a write-protected page of the alias; PVM does not say which */
			x->kind = ACCEL_EXIT_WRITE_FAULT;
			x->wfault.gpa = run->exit_reason == KVM_EXIT_MEMORY_FAULT
						? s2_kvm_memory_fault(run)->gpa
						: ~0ull;
			return 0;
		}
		snprintf(x->why, sizeof(x->why), "KVM_RUN failed: %s", strerror(errno));
		x->kind = ACCEL_EXIT_CRASH;
		return -errno;
	}
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		if (run->io.count != 1 || run->io.size > 4) {
			x->kind = ACCEL_EXIT_CRASH;
			snprintf(x->why, sizeof(x->why),
				 "unhandled port I/O: %s port %#x, size %u, count %u",
				 run->io.direction == KVM_EXIT_IO_OUT ? "out to" : "in from",
				 run->io.port, run->io.size, run->io.count);
			break;
		}
		x->kind = ACCEL_EXIT_IO;
		x->io.port = run->io.port;
		x->io.size = run->io.size;
		x->io.out = run->io.direction == KVM_EXIT_IO_OUT;
		x->io.data = 0;
		if (x->io.out)
			memcpy(&x->io.data, (char *)run + run->io.data_offset, run->io.size);
		break;
	case KVM_EXIT_MMIO:
		x->kind = ACCEL_EXIT_MMIO;
		x->mmio.gpa = run->mmio.phys_addr;
		x->mmio.len = (uint8_t)(run->mmio.len <= 8 ? run->mmio.len : 8);
		x->mmio.write = run->mmio.is_write;
		x->mmio.data = 0;
		if (x->mmio.write)
			memcpy(&x->mmio.data, run->mmio.data, x->mmio.len);
		break;
	case KVM_EXIT_INTR:
		x->kind = ACCEL_EXIT_NONE;
		break;
	case KVM_EXIT_SHUTDOWN:
		x->kind = ACCEL_EXIT_SHUTDOWN;
		break;
	case KVM_EXIT_FAIL_ENTRY:
		x->kind = ACCEL_EXIT_CRASH;
		snprintf(x->why, sizeof(x->why), "%s, hardware reason %#llx",
			 exit_name(run->exit_reason),
			 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		x->kind = ACCEL_EXIT_CRASH;
		snprintf(x->why, sizeof(x->why), "%s, suberror %u", exit_name(run->exit_reason),
			 run->internal.suberror);
		break;
	default:
		x->kind = ACCEL_EXIT_CRASH;
		snprintf(x->why, sizeof(x->why), "unhandled exit %u: %s", run->exit_reason,
			 exit_name(run->exit_reason));
		break;
	}
	return 0;
}

static void kvm_vcpu_kick(struct vcpu *v)
{
	struct kvm_vcpu *kv = kvcpu_of(v);

	/* immediate_exit covers a vCPU about to enter KVM_RUN, the signal one inside it */
	if (kv->run)
		__atomic_store_n(&kv->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	pthread_kill(v->thread, KVM_KICK);
}

static void kvm_vcpu_dump(struct vcpu *v, FILE *f)
{
	int fd = kvcpu_of(v)->fd;
	struct kvm_regs r;
	struct kvm_sregs s;

	if (ioctl(fd, KVM_GET_REGS, &r) < 0 || ioctl(fd, KVM_GET_SREGS, &s) < 0) {
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

static void kvm_vcpu_destroy(struct vcpu *v)
{
	struct kvm_vcpu *kv = kvcpu_of(v);

	if (kv->run)
		munmap(kv->run, kvm_of(v->vm)->run_size);
	if (kv->fd >= 0)
		close(kv->fd);
	free(kv);
	v->accel_data = NULL;
}

static void kvm_vm_destroy(struct vm *vm)
{
	struct kvm_vm *k = kvm_of(vm);

	if (k->vm_fd >= 0)
		close(k->vm_fd);
	if (k->kvm_fd >= 0)
		close(k->kvm_fd);
	free(k);
	vm->accel_data = NULL;
}

/* A notify write of @value to @gpa signals @fd inside KVM: the vCPU does not exit. */
static int kvm_ioeventfd(struct vm *vm, gpa_t gpa, unsigned len, uint64_t value, int fd)
{
	struct kvm_ioeventfd io = {
		.datamatch = value,
		.addr = gpa,
		.len = len,
		.fd = fd,
		.flags = KVM_IOEVENTFD_FLAG_DATAMATCH,
	};

	return ioctl(kvm_of(vm)->vm_fd, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}

const struct accel_ops accel_kvm_ops = {
	.name = "kvm",
	.vm_init = kvm_vm_init,
	.mm_config = kvm_mm_config,
	.ram_ready = kvm_ram_ready,
	.vcpu_init = kvm_vcpu_init,
	.vcpu_set_boot = kvm_vcpu_set_boot,
	.vcpu_thread_enter = kvm_vcpu_thread_enter,
	.vcpu_thread_leave = kvm_vcpu_thread_leave,
	.vcpu_run = kvm_vcpu_run,
	.vcpu_kick = kvm_vcpu_kick,
	.vcpu_dump = kvm_vcpu_dump,
	.vcpu_destroy = kvm_vcpu_destroy,
	.vm_destroy = kvm_vm_destroy,
	.ioeventfd = kvm_ioeventfd,
};
