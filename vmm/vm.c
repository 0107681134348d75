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
#include <sys/signalfd.h>
#include <sys/sysinfo.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "arch/x86/boot.h"
#include "s2vm/bootinfo.h"
#include "s2vm/clock.h"
#include "vmm/elf.h"
#include "vmm/options.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define MIB2 (2ull << 20)
#define LOW_SIZE S2_IMAGE_MIN_GPA /* boot structures live in [0, 1 MiB) */

/* The memory manager can no longer keep the alias and the map in agreement. */
static void vm_mm_fatal(void *ctx, struct mm *mm)
{
	struct vm *vm = ctx;

	fprintf(stderr, "s2vm: %s\n", mm->fatal_msg);
	vm_stop(vm, VM_STOP_ERROR, 1);
}

/* Guest RAM: the memory manager places it on host node pools and maps it into one alias,
 * placed and exposed as the accelerator needs. */
static int vm_ram_create(struct vm *vm, const struct mm_config *cfg, struct s2_err *e)
{
	struct mm_config mc = *cfg;
	struct sysinfo si;
	char a[32], b[32];
	int r;

	if (sysinfo(&si) == 0 && vm->mem_size > (uint64_t)si.totalram * si.mem_unit)
		return s2_err_set(e, -ENOMEM, "--mem %s is more than this host's %s of RAM",
				  s2_size_format(vm->mem_size, a, sizeof(a)),
				  s2_size_format((uint64_t)si.totalram * si.mem_unit, b,
						 sizeof(b)));
	r = vm->accel->mm_config(vm, &mc, e);
	if (r)
		return r;
	mc.on_fatal = vm_mm_fatal;
	mc.fatal_ctx = vm;
	vm->mm_created = true;
	r = mm_create(&vm->mm, &mc);
	if (r)
		return s2_err_set(e, r, "%s", vm->mm.err);
	return vm->accel->ram_ready(vm, e);
}

int vm_create(struct vm *vm, const struct vm_config *cfg, struct s2_err *e)
{
	char a[32];
	int r;

	memset(vm, 0, sizeof(*vm));
	vm->boot_ns = s2_now_ns();
	vm->accel = cfg->accel;
	vm->done_efd = -1;
	pthread_mutex_init(&vm->out_lock, NULL);
	vm->console_fd = -1;
	pthread_mutex_init(&vm->stop_lock, NULL);
	pthread_cond_init(&vm->stop_cond, NULL);
	pthread_cond_init(&vm->exited_cond, NULL);
	vm->mem_size = cfg->mem.mem_size;
	vm->mmio_base = vm->mem_size;
	vm->nr_vcpus = cfg->nr_vcpus;

	r = vm->accel->vm_init(vm, cfg->accel_fd, e);
	if (r)
		return r;
	if (vm->max_vcpus > S2_MAX_VCPUS)
		vm->max_vcpus = S2_MAX_VCPUS;
	if (cfg->nr_vcpus == 0 || cfg->nr_vcpus > vm->max_vcpus)
		return s2_err_set(e, -EINVAL, "--vcpus %u: this host allows 1 to %u vCPUs per VM",
				  cfg->nr_vcpus, vm->max_vcpus);
	if (vm->mem_size == 0 || vm->mem_size % MIB2)
		return s2_err_set(e, -EINVAL, "--mem must be a non-zero multiple of 2 MiB");
	if (vm->mem_size > (S2_PD_MAX << 30) - S2_MMIO_SIZE)
		return s2_err_set(e, -EINVAL, "--mem %s: s2vm maps at most %llu GiB of guest RAM",
				  s2_size_format(vm->mem_size, a, sizeof(a)), S2_PD_MAX);
	vm->guest_args = strdup(cfg->guest_args ? cfg->guest_args : "");
	if (!vm->guest_args)
		return s2_err_set(e, -ENOMEM, "out of memory");
	vm->done_efd = eventfd(0, EFD_CLOEXEC);
	if (vm->done_efd < 0)
		return s2_err_set(e, -errno, "eventfd: %s", strerror(errno));
	r = vm_ram_create(vm, &cfg->mem, e);
	if (r)
		return r;

	vm->vcpus = calloc(vm->nr_vcpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		return s2_err_set(e, -ENOMEM, "out of memory");
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		vm->vcpus[i].vm = vm;
		vm->vcpus[i].id = i;
	}
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		r = vm->accel->vcpu_init(&vm->vcpus[i], e);
		if (r)
			return r;
	}
	return 0;
}

/* The boot info the guest reads at S2_BOOTINFO_GPA, into @bi. */
static void vm_fill_bootinfo(const struct vm *vm, struct s2_bootinfo *bi, uint64_t free_start,
			     uint64_t heap_start)
{
	memset(bi, 0, sizeof(*bi));
	bi->magic = S2_BOOTINFO_MAGIC;
	bi->version = 4;
	bi->nr_cpus = vm->nr_vcpus;
	bi->mem_size = vm->mem_size;
	bi->free_start = free_start;
	bi->heap_start = heap_start;
	bi->mmio_base = vm->mmio_base;
	bi->mmio_size = S2_MMIO_SIZE;
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
	bi->nr_devs = vm->nr_boot_devs;
	memcpy(bi->devs, vm->boot_devs, sizeof(bi->devs));
	/* vCPUs spread over guest nodes in contiguous blocks */
	for (unsigned c = 0; c < vm->nr_vcpus; c++)
		bi->nodes[c * bi->nr_nodes / vm->nr_vcpus].cpu_mask |= 1ull << c;
}

/* elf_load()'s writer: through the memory manager (the alias may not map every page). */
static int vm_write_guest(void *ctx, uint64_t gpa, const void *src, uint64_t len)
{
	return mm_guest_write(ctx, gpa, src, len);
}

int vm_load_kernel(struct vm *vm, const struct elf_image *img, const void *buf,
		   struct s2_err *e)
{
	struct x86_extent ext[X86_BOOT_EXTENTS + 1];
	uint64_t free_start, heap_start;
	unsigned char *low;
	unsigned n;
	char a[32], b[32];
	int r = 0;

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
	if (elf_load(img, buf, vm_write_guest, &vm->mm))
		return s2_err_set(e, -EFAULT, "cannot write the kernel into guest RAM");

	/* The boot structures are built in a buffer laid out as [0, 1 MiB) of guest memory;
	 * only their extents are written (the rest of guest RAM is already zero). */
	low = calloc(1, LOW_SIZE);
	if (!low)
		return s2_err_set(e, -ENOMEM, "out of memory");
	if (x86_boot_write_tables(low, vm->mem_size, S2_MMIO_SIZE, vm->nr_vcpus)) {
		free(low);
		return s2_err_set(e, -EINVAL, "cannot build boot page tables");
	}
	vm_fill_bootinfo(vm, (struct s2_bootinfo *)(low + S2_BOOTINFO_GPA), free_start,
			 heap_start);
	n = x86_boot_extents(vm->mem_size, S2_MMIO_SIZE, vm->nr_vcpus, ext);
	ext[n++] = (struct x86_extent){ S2_BOOTINFO_GPA,
					S2_BOOTINFO_GPA + sizeof(struct s2_bootinfo) };
	for (unsigned i = 0; i < n && !r; i++)
		r = mm_guest_write(&vm->mm, ext[i].start, low + ext[i].start,
				   ext[i].end - ext[i].start);
	free(low);
	if (r)
		return s2_err_set(e, r, "cannot write the boot structures into guest RAM");

	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		struct accel_boot boot = {
			.entry = img->entry,
			.user_entry = img->user_entry,
			.bootinfo = S2_BOOTINFO_GPA,
			.ustack_top = free_start + (uint64_t)(i + 1) * S2_USTACK_SIZE,
			.cpu = i,
		};

		r = vm->accel->vcpu_set_boot(&vm->vcpus[i], &boot, e);
		if (r)
			return r;
	}
	return 0;
}

int vm_mmio_register(struct vm *vm, gpa_t gpa, uint64_t len, const struct vm_mmio_ops *ops,
		     void *ctx)
{
	if (!len || gpa < vm->mmio_base || len > S2_MMIO_SIZE ||
	    gpa - vm->mmio_base > S2_MMIO_SIZE - len)
		return -EINVAL;
	for (unsigned i = 0; i < vm->nr_mmio; i++)
		if (gpa < vm->mmio[i].gpa + vm->mmio[i].len && vm->mmio[i].gpa < gpa + len)
			return -EINVAL;
	if (vm->nr_mmio == VM_MAX_MMIO)
		return -ENOSPC;
	vm->mmio[vm->nr_mmio++] = (struct vm_mmio){ gpa, len, ops, ctx };
	return 0;
}

int vm_boot_dev_add(struct vm *vm, gpa_t gpa, uint32_t size, uint32_t virtio_id)
{
	char tok[64], *args;
	size_t n;

	if (!size || gpa < vm->mmio_base || size > S2_MMIO_SIZE ||
	    gpa - vm->mmio_base > S2_MMIO_SIZE - size)
		return -EINVAL;
	if (vm->nr_boot_devs == S2_MAX_BOOT_DEVS)
		return -ENOSPC;
	/* the form Linux's virtio_mmio driver takes on its command line */
	snprintf(tok, sizeof(tok), "virtio_mmio.device=%uK@0x%llx:0", size >> 10,
		 (unsigned long long)gpa);
	n = strlen(vm->guest_args ? vm->guest_args : "");
	args = realloc(vm->guest_args, n + strlen(tok) + 2);
	if (!args)
		return -ENOMEM;
	if (!n)
		args[0] = 0;
	snprintf(args + n, strlen(tok) + 2, "%s%s", n ? " " : "", tok);
	vm->guest_args = args;
	vm->boot_devs[vm->nr_boot_devs++] =
		(struct s2_boot_dev){ .gpa = gpa, .size = size, .virtio_id = virtio_id };
	return 0;
}

int vm_ioeventfd(struct vm *vm, gpa_t gpa, unsigned len, uint64_t value, int fd)
{
	if (!vm->accel->ioeventfd)
		return -EOPNOTSUPP;
	return vm->accel->ioeventfd(vm, gpa, len, value, fd);
}

int vm_mmio_access(struct vm *vm, gpa_t gpa, unsigned len, bool write, uint64_t *data)
{
	for (unsigned i = 0; i < vm->nr_mmio; i++) {
		const struct vm_mmio *m = &vm->mmio[i];

		if (gpa >= m->gpa && gpa - m->gpa < m->len && len <= m->len - (gpa - m->gpa))
			return m->ops->access(m->ctx, gpa - m->gpa, len, write, data);
	}
	return -ENODEV;
}

/* Kick every started vCPU that has not left its run loop, but the calling one (it is
 * not in the guest). Caller holds stop_lock. */
static void vm_kick_all(struct vm *vm)
{
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		if (v->started && !atomic_load(&v->exited) &&
		    !pthread_equal(v->thread, pthread_self()))
			vm->accel->vcpu_kick(v);
	}
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
	/* under stop_lock, which vcpu_start() holds while it creates a thread */
	vm_kick_all(vm);
	pthread_mutex_unlock(&vm->stop_lock);
	if (write(vm->done_efd, &one, sizeof(one)) < 0) {
		/* the counter cannot overflow with one write; nothing to do */
	}
}

bool vm_sleep_period(struct vm *vm, struct timespec *next, unsigned ms)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	if (now.tv_sec > next->tv_sec ||
	    (now.tv_sec == next->tv_sec && now.tv_nsec > next->tv_nsec))
		*next = now;
	next->tv_nsec += (long)(ms % 1000) * 1000000L;
	next->tv_sec += ms / 1000 + next->tv_nsec / 1000000000L;
	next->tv_nsec %= 1000000000L;
	pthread_mutex_lock(&vm->stop_lock);
	while (!atomic_load(&vm->stopping) &&
	       pthread_cond_timedwait(&vm->stop_cond, &vm->stop_lock, next) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&vm->stop_lock);
	return atomic_load(&vm->stopping);
}

int vm_console_pty(struct vm *vm, struct s2_err *e)
{
	struct termios t;
	int fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC), sfd;

	if (fd < 0 || grantpt(fd) || unlockpt(fd) ||
	    ptsname_r(fd, vm->console_path, sizeof(vm->console_path))) {
		int r = -errno;

		if (fd >= 0)
			close(fd);
		return s2_err_set(e, r, "serial pty: %s", strerror(-r));
	}
	/* raw: the guest's bytes as they are, and no echo back into a master nobody reads */
	sfd = open(vm->console_path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (sfd >= 0) {
		if (!tcgetattr(sfd, &t)) {
			cfmakeraw(&t);
			(void)tcsetattr(sfd, TCSANOW, &t);
		}
		close(sfd);
	}
	(void)fcntl(fd, F_SETFL, O_NONBLOCK);
	vm->console_fd = fd;
	return 0;
}

void vm_console_write(struct vm *vm, const char *buf, size_t len)
{
	fwrite(buf, 1, len, stdout);
	if (vm->console_fd >= 0 && write(vm->console_fd, buf, len) < 0) {
		/* full (nobody reads) or closed: the pty copy is best effort */
	}
}

void vm_pause_point(struct vm *vm)
{
	pthread_mutex_lock(&vm->stop_lock);
	vm->nr_paused++;
	pthread_cond_broadcast(&vm->exited_cond);
	while (atomic_load(&vm->paused) && !atomic_load(&vm->stopping))
		pthread_cond_wait(&vm->stop_cond, &vm->stop_lock);
	vm->nr_paused--;
	pthread_mutex_unlock(&vm->stop_lock);
}

/* vCPUs not running guest code: paused, parked by the guest, or gone. Under stop_lock. */
static unsigned vm_quiet_vcpus(const struct vm *vm)
{
	unsigned n = vm->nr_paused + vm->nr_hc_parked;

	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		if (!vm->vcpus[i].started || atomic_load(&vm->vcpus[i].exited))
			n++;
	return n;
}

int vm_pause(struct vm *vm)
{
	uint64_t deadline = s2_now_ns() + 1000000000ull;
	int r = 0;

	pthread_mutex_lock(&vm->stop_lock);
	if (atomic_load(&vm->paused)) {
		pthread_mutex_unlock(&vm->stop_lock);
		return -EALREADY;
	}
	atomic_store(&vm->paused, true);
	while (vm_quiet_vcpus(vm) < vm->nr_vcpus && !atomic_load(&vm->stopping)) {
		struct timespec ts;
		uint64_t t;

		if (s2_now_ns() > deadline) {
			r = -ETIMEDOUT;
			break;
		}
		/* a kick can land just before a vCPU re-enters: kick again every 5 ms */
		vm_kick_all(vm);
		clock_gettime(CLOCK_REALTIME, &ts);
		t = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec + 5000000;
		ts = (struct timespec){ .tv_sec = (time_t)(t / 1000000000ull),
					.tv_nsec = (long)(t % 1000000000ull) };
		pthread_cond_timedwait(&vm->exited_cond, &vm->stop_lock, &ts);
	}
	if (r) {
		atomic_store(&vm->paused, false);
		pthread_cond_broadcast(&vm->stop_cond);
	}
	pthread_mutex_unlock(&vm->stop_lock);
	return r;
}

int vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->stop_lock);
	if (!atomic_load(&vm->paused)) {
		pthread_mutex_unlock(&vm->stop_lock);
		return -EALREADY;
	}
	atomic_store(&vm->paused, false);
	pthread_cond_broadcast(&vm->stop_cond);
	pthread_mutex_unlock(&vm->stop_lock);
	return 0;
}

void vm_vcpu_exited(struct vcpu *v)
{
	pthread_mutex_lock(&v->vm->stop_lock);
	atomic_store(&v->exited, true);
	pthread_cond_broadcast(&v->vm->exited_cond);
	pthread_mutex_unlock(&v->vm->stop_lock);
}

/* After the stop: kick again every 5 ms until every vCPU has left its loop (a kick can
 * land just before a vCPU re-enters the guest), then join. */
static void vm_join_vcpus(struct vm *vm)
{
	pthread_mutex_lock(&vm->stop_lock);
	for (;;) {
		struct timespec t;
		bool all = true;

		for (unsigned i = 0; i < vm->nr_vcpus; i++)
			if (vm->vcpus[i].started && !atomic_load(&vm->vcpus[i].exited))
				all = false;
		if (all)
			break;
		clock_gettime(CLOCK_REALTIME, &t);
		t.tv_nsec += 5 * 1000 * 1000;
		if (t.tv_nsec >= 1000000000L) {
			t.tv_sec++;
			t.tv_nsec -= 1000000000L;
		}
		if (pthread_cond_timedwait(&vm->exited_cond, &vm->stop_lock, &t) == ETIMEDOUT)
			vm_kick_all(vm);
	}
	pthread_mutex_unlock(&vm->stop_lock);
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		if (vm->vcpus[i].started) {
			pthread_join(vm->vcpus[i].thread, NULL);
			vm->vcpus[i].started = false;
		}
	}
}

void vm_signals_block(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGUSR1);
	sigaddset(set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, set, NULL);
}

int vm_run(struct vm *vm, void (*on_signal)(struct vm *vm, int signo, void *arg), void *arg)
{
	sigset_t set;
	int sfd, r;

	vm_signals_block(&set); /* inherited by vCPU threads */
	/* non-blocking: a readable signalfd whose signal another thread took must not
	 * leave this loop stuck in read() */
	sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);

	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		r = vcpu_start(&vm->vcpus[i]);
		if (r) {
			fprintf(stderr, "s2vm: cannot start vCPU %u thread: %s\n", i, strerror(-r));
			vm_stop(vm, VM_STOP_ERROR, 2); /* a setup error */
			break;
		}
	}
	if (vm->on_started)
		vm->on_started(vm, vm->on_started_ctx);

	while (!atomic_load(&vm->stopping)) {
		struct pollfd pf[2] = { { .fd = vm->done_efd, .events = POLLIN },
					{ .fd = sfd, .events = POLLIN } };

		if (poll(pf, sfd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR)
			break;
		if (sfd >= 0 && (pf[1].revents & POLLIN)) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) != sizeof(si))
				continue;
			if (si.ssi_signo == SIGUSR1 || si.ssi_signo == SIGUSR2) {
				if (on_signal)
					on_signal(vm, (int)si.ssi_signo, arg);
				continue;
			}
			fprintf(stderr, "s2vm: %s received, stopping the guest\n",
				si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
			vm_stop(vm, VM_STOP_SIGNAL, 128 + (int)si.ssi_signo);
		}
	}
	vm_join_vcpus(vm);
	if (sfd >= 0)
		close(sfd);
	return vm->exit_code;
}

void vm_destroy(struct vm *vm)
{
	if (vm->vcpus) {
		for (unsigned i = 0; i < vm->nr_vcpus; i++)
			if (vm->vcpus[i].accel_data)
				vm->accel->vcpu_destroy(&vm->vcpus[i]);
		free(vm->vcpus);
		vm->vcpus = NULL;
	}
	if (vm->accel && vm->accel_data)
		vm->accel->vm_destroy(vm); /* before mm: KVM no longer maps the alias */
	if (vm->done_efd >= 0)
		close(vm->done_efd);
	vm->done_efd = -1;
	if (vm->mm_created)
		mm_destroy(&vm->mm);
	vm->mm_created = false;
	free(vm->guest_args);
	vm->guest_args = NULL;
	free(vm->lab_out);
	vm->lab_out = NULL;
	pthread_mutex_destroy(&vm->out_lock);
	if (vm->console_fd >= 0)
		close(vm->console_fd);
	vm->console_fd = -1;
	pthread_mutex_destroy(&vm->stop_lock);
	pthread_cond_destroy(&vm->stop_cond);
	pthread_cond_destroy(&vm->exited_cond);
}
