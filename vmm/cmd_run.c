// SPDX-License-Identifier: MIT
/* `s2vm run KERNEL`: parse options, load the kernel, create and run the VM. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/api.h"
#include "vmm/churn.h"
#include "vmm/cmd.h"
#include "vmm/elf.h"
#include "vmm/hypercall.h"
#include "vmm/inject.h"
#include "vmm/mems.h"
#include "vmm/options.h"
#include "vmm/stats.h"
#include "vmm/version.h"
#include "vmm/virtio_balloon.h"
#include "vmm/virtio_blk.h"
#include "vmm/vm.h"

#define KERNEL_MAX_BYTES (1ull << 30)

/* Read the whole file @path. Returns a malloc'ed buffer, or NULL with @e set. */
static void *read_file(const char *path, size_t *len, struct s2_err *e)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		s2_err_set(e, -errno, "cannot open kernel '%s': %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		s2_err_set(e, -EINVAL, "kernel '%s' is not a regular file", path);
		goto out_close;
	}
	if ((uint64_t)st.st_size > KERNEL_MAX_BYTES) {
		s2_err_set(e, -EFBIG, "kernel '%s' is larger than 1 GiB", path);
		goto out_close;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		s2_err_set(e, -ENOMEM, "out of memory reading '%s'", path);
		goto out_close;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n <= 0) {
			s2_err_set(e, -EIO, "cannot read kernel '%s': %s", path,
				   n < 0 ? strerror(errno) : "unexpected end of file");
			free(buf);
			buf = NULL;
			goto out_close;
		}
		got += (size_t)n;
	}
	*len = got;
out_close:
	close(fd);
	return buf;
}

struct run_ctx {
	enum run_stats_mode stats;
	struct vballoon *balloon;
};

/* SIGUSR1: statistics now. SIGUSR2: the balloon's next target (schedule=). */
static void on_signal(struct vm *vm, int signo, void *arg)
{
	struct run_ctx *ctx = arg;

	if (signo == SIGUSR2) {
		if (!ctx->balloon)
			fprintf(stderr, "s2vm: SIGUSR2 ignored: no --balloon\n");
		else if (!vballoon_schedule_next(ctx->balloon))
			fprintf(stderr, "s2vm: SIGUSR2 ignored: the --balloon schedule is done\n");
		return;
	}
	vm_stats_print(vm, ctx->stats == RUN_STATS_JSON ? RUN_STATS_JSON : RUN_STATS_TEXT,
		       ctx->stats == RUN_STATS_JSON ? stdout : stderr);
}

int cmd_run(int argc, char **argv)
{
	struct run_opts o;
	struct s2_err e = { "" };
	struct elf_image img;
	struct vm_config cfg;
	struct run_ctx ctx;
	struct vm vm;
	struct churn churn = { 0 };
	struct mems_watch mw = { 0 };
	struct vblk *disks[RUN_MAX_DISKS] = { NULL };
	struct vballoon *balloon = NULL;
	struct api *api = NULL;
	sigset_t sigs;
	void *kernel;
	size_t klen = 0;
	bool reboot;
	int r, code, pty_fd = -1; /* the console pty, kept across a reboot */
	char pty_path[sizeof(vm.console_path)];

	r = run_opts_parse(argc, argv, &o, &e);
	if (r == RUN_OPTS_HELP) {
		run_opts_usage(stdout);
		return 0;
	}
	if (r == RUN_OPTS_VERSION) {
		printf("s2vm %s\n", S2VM_VERSION);
		return 0;
	}
	if (r < 0) {
		fprintf(stderr, "s2vm run: %s\n", e.msg);
		fprintf(stderr, "Try 's2vm run --help'.\n");
		return 2;
	}

	if (!o.kernel) {
		/* no KERNEL: serve the API and wait for vm.create + vm.boot (libvirt's way) */
		struct api_ctx actx = { 0 };
		struct run_opts c;

		if (api_start(&o.api, &actx, &api, &e)) {
			fprintf(stderr, "s2vm run: %s\n", e.msg);
			run_opts_free(&o);
			return 2;
		}
		if (api_wait_boot(api, &c)) { /* vmm.shutdown before any VM */
			api_stop(api);
			run_opts_free(&o);
			return 0;
		}
		o.mem_size = c.mem_size;
		o.vcpus = c.vcpus;
		o.kernel = o.kernel_owned = c.kernel_owned;
		free(o.guest_args);
		o.guest_args = c.guest_args;
		o.nr_disks = c.nr_disks;
		memcpy(o.disks, c.disks, sizeof(o.disks));
		o.console_pty = c.console_pty;
	}
	/* Once per boot: vm.reboot stops the VM, which is then built again from the same
	 * options (fresh memory, the kernel read again), as Cloud Hypervisor does. */
	do {
		reboot = false;
		kernel = NULL;
		churn = (struct churn){ 0 };
		mw = (struct mems_watch){ 0 };
		code = 2;
		kernel = read_file(o.kernel, &klen, &e);
		if (!kernel) {
			fprintf(stderr, "s2vm run: %s\n", e.msg);
			goto out_opts;
		}
		if (elf_parse(kernel, klen, &img, &e)) {
			fprintf(stderr, "s2vm run: %s: %s\n", o.kernel, e.msg);
			goto out_kernel;
		}
		/* the disks' files: a bad --disk is an option error, before any VM exists */
		for (unsigned i = 0; i < o.nr_disks; i++) {
			if (vblk_open(&o.disks[i], i, &disks[i], &e)) {
				fprintf(stderr, "s2vm run: %s\n", e.msg);
				goto out_disks;
			}
		}
		memset(&cfg, 0, sizeof(cfg));
		cfg.accel = &accel_proc_ops;
		cfg.accel_fd = -1;
		if (o.accel != ACCEL_PROC) {
			r = accel_kvm_open(&e);
			if (r >= 0) {
				cfg.accel = &accel_kvm_ops;
				cfg.accel_fd = r;
			} else if (o.accel == ACCEL_KVM) {
				fprintf(stderr, "s2vm run: %s%s\n", e.msg, accel_kvm_hint(r));
				goto out_disks;
			} else {
				fprintf(stderr, "s2vm: KVM is not usable here (%s); using --accel proc\n",
					e.msg);
			}
		}
		cfg.mem.mem_size = o.mem_size;
		cfg.mem.nr_nodes = o.nr_numa;
		memcpy(cfg.mem.nodes, o.numa, sizeof(o.numa));
		if (!o.nr_numa) {
			/* no --numa: a node this process may use (libvirt's <numatune> sets it) */
			uint64_t allowed;
			int local = pool_local_node();

			if (!mems_allowed(&allowed) && local >= 0 && local < 64 &&
			    !(allowed >> local & 1)) {
				cfg.mem.nr_nodes = 1;
				cfg.mem.nodes[0] = (struct mm_guest_node){
					.id = 0, .size = o.mem_size,
					.host = (unsigned)__builtin_ctzll(allowed) };
			}
		}
		cfg.mem.nr_caps = o.nr_pools;
		memcpy(cfg.mem.caps, o.pools, sizeof(o.pools));
		cfg.mem.mig.lazy_writable = o.lazy_writable;
		cfg.mem.mig.keep_freed = o.keep_warm;
		cfg.mem.mig.batch_frames = o.batch_bytes / 4096;
		cfg.mem.mig.defer_invalidation = o.defer_invalidation;
		cfg.mem.mig.copy_threads = o.copy_threads;
		cfg.mem.mig.exact = o.migrate_exact;
		cfg.mem.hugepages = o.hugepages;
		cfg.mem.timeline_cap = o.timeline_cap;
		if (getenv("S2VM_INJECT")) { /* read once, here: tests only */
			if (inject_parse(getenv("S2VM_INJECT"), &cfg.mem.inject, &e)) {
				fprintf(stderr, "s2vm run: %s\n", e.msg);
				goto out_disks;
			}
			fprintf(stderr, "s2vm: S2VM_INJECT=%s: host calls of the memory manager fail "
					"at those rates\n",
				getenv("S2VM_INJECT"));
		}
		cfg.nr_vcpus = o.vcpus;
		cfg.guest_args = o.guest_args;
		if (vm_create(&vm, &cfg, &e)) {
			fprintf(stderr, "s2vm run: %s\n", e.msg);
			goto out_vm;
		}
		if (o.lab_out && hc_lab_out_set(&vm, o.lab_out)) {
			fprintf(stderr, "s2vm run: --lab-out %s: out of memory\n", o.lab_out);
			goto out_vm;
		}
		if (o.console_pty && pty_fd >= 0) {
			/* rebooted: the same pty, as Cloud Hypervisor keeps it (libvirt read
			 * its path once, at start) */
			vm.console_fd = pty_fd;
			memcpy(vm.console_path, pty_path, sizeof(pty_path));
			pty_fd = -1;
		} else if (o.console_pty && vm_console_pty(&vm, &e)) {
			fprintf(stderr, "s2vm run: %s\n", e.msg);
			goto out_vm;
		}
		/* devices before the kernel: boot info lists them; disk k in slot k */
		for (unsigned i = 0; i < o.nr_disks; i++) {
			if (vblk_attach(disks[i], &vm, vm.mmio_base + i * S2_VIRTIO_MMIO_SLOT, &e)) {
				fprintf(stderr, "s2vm run: %s\n", e.msg);
				goto out_vm;
			}
		}
		if (o.balloon.enabled &&
		    vballoon_attach(&o.balloon, &vm, vm.mmio_base + o.nr_disks * S2_VIRTIO_MMIO_SLOT,
				    &balloon, &e)) {
			fprintf(stderr, "s2vm run: %s\n", e.msg);
			goto out_vm;
		}
		if (vm_load_kernel(&vm, &img, kernel, &e)) {
			fprintf(stderr, "s2vm run: %s\n", e.msg);
			goto out_vm;
		}
		free(kernel);
		kernel = NULL;
		for (unsigned i = 0; i < vm.mm.nr_pools; i++) {
			const struct pool *p = &vm.mm.pools[i];

			if (p->emulated)
				fprintf(stderr,
					"s2vm: host node %u is emulated (not on this host): its pool is a "
					"memfd bound to node %d\n",
					p->node, p->bound_node);
		}

		vm_signals_block(&sigs); /* before any thread: the churn thread must not take them */
		if (o.api.enabled) {
			struct api_ctx actx = { .vm = &vm, .balloon = balloon, .kernel = o.kernel,
						.cmdline = o.guest_args };

			if (api) {
				/* vm.boot answers once the vCPU threads exist (vm_run) */
				api_set_pending(api, &actx);
				vm.on_started = api_started;
				vm.on_started_ctx = api;
			} else if (api_start(&o.api, &actx, &api, &e)) {
				fprintf(stderr, "s2vm run: %s\n", e.msg);
				goto out_vm;
			}
		}
		if (o.churn_ms) {
			uint64_t chunk = o.churn_bytes ? o.churn_bytes
					 : ((o.mem_size / 100) & ~((2ull << 20) - 1));

			if (!chunk)
				chunk = 2ull << 20;
			if (churn_start(&churn, &vm, o.churn_ms, chunk, &e)) {
				fprintf(stderr, "s2vm run: %s\n", e.msg);
				goto out_vm;
			}
		}
		/* managed (libvirt): follow Mems_allowed while the guest runs, unless --numa placed it */
		if (o.api.enabled && !o.nr_numa && mems_watch_start(&mw, &vm, 250, &e))
			fprintf(stderr, "s2vm: %s: not following memory node changes\n", e.msg);
		ctx.stats = o.stats;
		ctx.balloon = balloon;
		code = vm_run(&vm, on_signal, &ctx);
		/* no request reaches the VM after this: vm.reboot keeps the API serving (VM
		 * requests get 409 until the new VM runs), anything else stops it */
		reboot = api_reboot_detach(api);
		if (!reboot) {
			api_stop(api);
			api = NULL;
		}
		churn_join(&churn); /* no migration calls a queue's drain after this */
		mems_watch_join(&mw);
		for (unsigned i = 0; i < o.nr_disks; i++)
			vblk_stop(disks[i]); /* requests in flight complete, pins dropped */
		vballoon_stop(balloon);
		if (o.stats != RUN_STATS_NONE)
			vm_stats_print(&vm, o.stats, o.stats == RUN_STATS_JSON ? stdout : stderr);
out_vm:
		if (api && !reboot) {
			api_attach(api, NULL); /* a vm.boot waiting: the VM could not be made */
			api_stop(api);
			api = NULL;
		}
		vballoon_close(balloon); /* before the memory manager goes */
		balloon = NULL;
		for (unsigned i = 0; i < o.nr_disks; i++) {
			vblk_close(disks[i]); /* before the memory manager goes */
			disks[i] = NULL;
		}
		if (reboot && vm.console_fd >= 0) { /* the next VM keeps the pty */
			pty_fd = vm.console_fd;
			memcpy(pty_path, vm.console_path, sizeof(pty_path));
			vm.console_fd = -1;
		}
		vm_destroy(&vm);
out_disks:
		for (unsigned i = 0; i < o.nr_disks; i++)
			vblk_close(disks[i]);
out_kernel:
		free(kernel);
	} while (reboot);
out_opts:
	if (pty_fd >= 0)
		close(pty_fd);
	if (api) {
		api_attach(api, NULL); /* a vm.boot waiting: the VM could not be made */
		api_stop(api);
	}
	run_opts_free(&o);
	return code;
}
