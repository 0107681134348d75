// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#include "arch/x86/boot.h"
#include "s2vm/bootinfo.h"
#include "s2vm/clock.h"
#include "s2vm/hypercall.h"
#include "s2vm/kvm_compat.h"
#include "vmm/elf.h"
#include "vmm/options.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define MIB2 (2ull << 20)
#define SIG_KICK SIGUSR2

void *vm_gpa_to_hva(struct vm *vm, gpa_t gpa, uint64_t len)
{
	if (gpa > vm->mem_size || len > vm->mem_size - gpa)
		return NULL;
	return vm->ram + gpa;
}

int vm_kvm_open(struct s2_err *e)
{
	const char *path = getenv("S2VM_KVM_DEVICE");
	int fd, v;

	if (!path || !*path)
		path = "/dev/kvm";
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		int err = errno;

		return s2_err_set(e, -err, "cannot open %s: %s%s", path, strerror(err),
				  err == ENOENT ? " (is KVM enabled? try 'modprobe kvm_intel' or "
						  "'modprobe kvm_amd')"
				  : err == EACCES ? " (add yourself to the 'kvm' group)"
						  : "");
	}
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

static int vm_max_vcpus(int kvm_fd)
{
	int n = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);

	if (n <= 0)
		n = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (n <= 0)
		n = 4;
	return n;
}

/* Guest RAM: the memory manager places it on host node pools and maps it into one
 * alias, registered as a single memslot at GPA 0. */
static int vm_ram_create(struct vm *vm, const struct mm_config *mc, struct s2_err *e)
{
	struct kvm_userspace_memory_region slot;
	struct sysinfo si;
	char a[32], b[32];
	int r;

	if (sysinfo(&si) == 0 && vm->mem_size > (uint64_t)si.totalram * si.mem_unit)
		return s2_err_set(e, -ENOMEM, "--mem %s is more than this host's %s of RAM",
				  s2_size_format(vm->mem_size, a, sizeof(a)),
				  s2_size_format((uint64_t)si.totalram * si.mem_unit, b,
						 sizeof(b)));
	vm->mm_created = true;
	r = mm_create(&vm->mm, mc);
	if (r)
		return s2_err_set(e, r, "%s", vm->mm.err);
	vm->ram = vm->mm.alias;

	memset(&slot, 0, sizeof(slot));
	slot.slot = 0;
	slot.guest_phys_addr = 0;
	slot.memory_size = vm->mem_size;
	slot.userspace_addr = (uint64_t)(uintptr_t)vm->ram;
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
		return s2_err_set(e, -errno, "KVM_SET_USER_MEMORY_REGION (%s at GPA 0): %s",
				  s2_size_format(vm->mem_size, a, sizeof(a)), strerror(errno));
	return 0;
}

int vm_create(struct vm *vm, int kvm_fd, const struct vm_config *cfg, struct s2_err *e)
{
	int max, r;
	char a[32];

	memset(vm, 0, sizeof(*vm));
	vm->boot_ns = s2_now_ns();
	vm->kvm_fd = kvm_fd;
	vm->vm_fd = vm->done_efd = -1;
	pthread_mutex_init(&vm->out_lock, NULL);
	pthread_mutex_init(&vm->stop_lock, NULL);
	pthread_cond_init(&vm->stop_cond, NULL);
	vm->mem_size = cfg->mem.mem_size;
	vm->nr_vcpus = cfg->nr_vcpus;

	max = vm_max_vcpus(kvm_fd);
	if (max > (int)S2_MAX_VCPUS)
		max = S2_MAX_VCPUS;
	if (cfg->nr_vcpus == 0 || cfg->nr_vcpus > (unsigned)max)
		return s2_err_set(e, -EINVAL, "--vcpus %u: this host allows 1 to %d vCPUs per VM",
				  cfg->nr_vcpus, max);
	if (vm->mem_size == 0 || vm->mem_size % MIB2)
		return s2_err_set(e, -EINVAL, "--mem must be a non-zero multiple of 2 MiB");
	if (vm->mem_size > S2_PD_MAX << 30)
		return s2_err_set(e, -EINVAL, "--mem %s: s2vm maps at most %llu GiB of guest RAM",
				  s2_size_format(vm->mem_size, a, sizeof(a)), S2_PD_MAX);
	vm->guest_args = strdup(cfg->guest_args ? cfg->guest_args : "");
	if (!vm->guest_args)
		return s2_err_set(e, -ENOMEM, "out of memory");
	vm->done_efd = eventfd(0, EFD_CLOEXEC);
	if (vm->done_efd < 0)
		return s2_err_set(e, -errno, "eventfd: %s", strerror(errno));

	vm->vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		return s2_err_set(e, -errno, "KVM_CREATE_VM: %s", strerror(errno));
	r = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (r <= 0)
		return s2_err_set(e, -errno, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
	vm->run_size = (size_t)r;
	r = vm_ram_create(vm, &cfg->mem, e);
	if (r)
		return r;
	if (x86_boot_write_tables(vm->ram, vm->mem_size, vm->nr_vcpus))
		return s2_err_set(e, -EINVAL, "cannot build boot page tables");

	vm->vcpus = calloc(vm->nr_vcpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		return s2_err_set(e, -ENOMEM, "out of memory");
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		vm->vcpus[i].fd = -1;
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		r = vcpu_create(vm, &vm->vcpus[i], i, e);
		if (r)
			return r;
	}
	return 0;
}

int vm_load_kernel(struct vm *vm, const struct elf_image *img, const void *buf,
		   struct s2_err *e)
{
	struct s2_bootinfo *bi;
	uint64_t free_start, heap_start;
	char a[32], b[32];
	int r;

	r = elf_check_fits(img, S2_IMAGE_MIN_GPA, vm->mem_size, e);
	if (r)
		return r;
	free_start = (img->hi + S2_USTACK_SIZE - 1) & ~(S2_USTACK_SIZE - 1);
	heap_start = free_start + (uint64_t)vm->nr_vcpus * S2_USTACK_SIZE;
	if (heap_start > vm->mem_size)
		return s2_err_set(e, -E2BIG,
				  "--mem %s is too small: the image and %u user stacks need %s",
				  s2_size_format(vm->mem_size, a, sizeof(a)), vm->nr_vcpus,
				  s2_size_format(heap_start, b, sizeof(b)));
	elf_load(img, buf, vm->ram);

	bi = vm_gpa_to_hva(vm, S2_BOOTINFO_GPA, sizeof(*bi));
	memset(bi, 0, sizeof(*bi));
	bi->magic = S2_BOOTINFO_MAGIC;
	bi->version = 2;
	bi->nr_cpus = vm->nr_vcpus;
	bi->mem_size = vm->mem_size;
	bi->free_start = free_start;
	bi->heap_start = heap_start;
	bi->nr_nodes = vm->mm.cfg.nr_nodes;
	for (unsigned i = 0; i < bi->nr_nodes; i++) {
		const struct mm_guest_node *n = &vm->mm.cfg.nodes[i];
		struct s2_boot_node *b = &bi->nodes[i];

		b->gpa_start = n->gpa;
		b->gpa_end = n->gpa + n->size;
		b->host_node = n->host;
		b->policy = n->policy;
		b->nr_hosts = n->nr_hosts;
		for (unsigned h = 0; h < n->nr_hosts; h++)
			b->hosts[h] = (uint8_t)n->hosts[h];
	}
	/* vCPUs spread over guest nodes in contiguous blocks */
	for (unsigned c = 0; c < vm->nr_vcpus; c++)
		bi->nodes[c * bi->nr_nodes / vm->nr_vcpus].cpu_mask |= 1ull << c;

	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		r = vcpu_set_boot_state(&vm->vcpus[i], img->entry, free_start, e);
		if (r)
			return r;
	}
	return 0;
}

void vm_stop(struct vm *vm, enum vm_stop_reason reason, int code)
{
	uint64_t one = 1;

	pthread_mutex_lock(&vm->stop_lock);
	if (atomic_load(&vm->stopping)) {
		pthread_mutex_unlock(&vm->stop_lock);
		return;
	}
	vm->stop_reason = reason;
	vm->exit_code = code;
	if (reason == VM_STOP_GUEST_EXIT)
		vm->first_exit_ns = s2_now_ns();
	atomic_store(&vm->stopping, true);
	pthread_cond_broadcast(&vm->stop_cond);

	/* Kick every vCPU out of KVM_RUN: immediate_exit covers one about to enter. Under
	 * stop_lock, which vcpu_start() holds while it creates a thread. */
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		if (v->run)
			__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
		if (v->started)
			pthread_kill(v->thread, SIG_KICK);
	}
	pthread_mutex_unlock(&vm->stop_lock);
	if (write(vm->done_efd, &one, sizeof(one)) < 0) {
		/* the counter cannot overflow with one write; nothing to do */
	}
}

static void kick_handler(int sig)
{
	(void)sig;
}

int vm_run(struct vm *vm, void (*on_usr1)(struct vm *vm, void *arg), void *arg)
{
	struct sigaction sa;
	sigset_t set;
	int sfd, r;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler; /* no SA_RESTART: KVM_RUN must return EINTR */
	sigaction(SIG_KICK, &sa, NULL);

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIG_KICK);
	pthread_sigmask(SIG_BLOCK, &set, NULL); /* inherited by vCPU threads */
	sigdelset(&set, SIG_KICK);
	sfd = signalfd(-1, &set, SFD_CLOEXEC);

	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		r = vcpu_start(&vm->vcpus[i]);
		if (r) {
			fprintf(stderr, "s2vm: cannot start vCPU %u thread: %s\n", i, strerror(-r));
			vm_stop(vm, VM_STOP_ERROR, 1);
			break;
		}
	}

	while (!atomic_load(&vm->stopping)) {
		struct pollfd pf[2] = { { .fd = vm->done_efd, .events = POLLIN },
					{ .fd = sfd, .events = POLLIN } };

		if (poll(pf, sfd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR)
			break;
		if (sfd >= 0 && (pf[1].revents & POLLIN)) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) != sizeof(si))
				continue;
			if (si.ssi_signo == SIGUSR1) {
				if (on_usr1)
					on_usr1(vm, arg);
				continue;
			}
			fprintf(stderr, "s2vm: %s received, stopping the guest\n",
				si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
			vm_stop(vm, VM_STOP_SIGNAL, 128 + (int)si.ssi_signo);
		}
	}
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		if (vm->vcpus[i].started) {
			pthread_join(vm->vcpus[i].thread, NULL);
			vm->vcpus[i].started = false;
		}
	}
	if (sfd >= 0)
		close(sfd);
	return vm->exit_code;
}

void vm_destroy(struct vm *vm)
{
	if (vm->vcpus) {
		for (unsigned i = 0; i < vm->nr_vcpus; i++)
			vcpu_destroy(&vm->vcpus[i]);
		free(vm->vcpus);
		vm->vcpus = NULL;
	}
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	if (vm->done_efd >= 0)
		close(vm->done_efd);
	vm->vm_fd = vm->kvm_fd = vm->done_efd = -1;
	if (vm->mm_created)
		mm_destroy(&vm->mm); /* after the VM fd: KVM no longer maps the alias */
	vm->mm_created = false;
	vm->ram = NULL;
	free(vm->guest_args);
	vm->guest_args = NULL;
	pthread_mutex_destroy(&vm->out_lock);
	pthread_mutex_destroy(&vm->stop_lock);
	pthread_cond_destroy(&vm->stop_cond);
}
