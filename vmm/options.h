/* SPDX-License-Identifier: MIT */
/* Command-line parsing for `s2vm run`: sizes and the option set. No I/O except --help text. */
#ifndef S2VM_OPTIONS_H
#define S2VM_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "mm/mm.h"
#include "vmm/accel.h"
#include "vmm/err.h"

/*
 * Parse a size such as "128M", "2GiB", "4096k" or "1048576B". A bare number is in units
 * of 1 << @default_shift bytes (20 for --mem, as QEMU's -m). Suffixes K, M, G, T are
 * binary (KiB, MiB, ...), optionally followed by "iB" or "B"; "B" alone means bytes.
 * Returns 0, -EINVAL for malformed text, or -ERANGE if the result overflows 64 bits.
 */
int s2_size_parse(const char *s, unsigned default_shift, uint64_t *out)
	__attribute__((warn_unused_result));

/*
 * Parse one --numa value: guest=ID,size=SIZE,host=NODE[,policy=bind|preferred|interleave]
 * [,hosts=LIST]. LIST is NODE[:NODE...] where each item may be a range A-B, every node
 * at most once. interleave needs hosts= and may omit host= (if given, it must be one of
 * hosts=); preferred uses hosts= as its fallbacks; bind takes no hosts=. Each key at most
 * once, no empty items, numbers in plain decimal (no sign, no blanks). Returns 0 or
 * -EINVAL with @e naming the problem.
 */
int numa_opt_parse(const char *s, struct mm_guest_node *n, struct s2_err *e)
	__attribute__((warn_unused_result));

/* Format @bytes as "512 MiB", "1.5 GiB", "4 KiB" or "12 B" into @buf. Returns @buf. */
const char *s2_size_format(uint64_t bytes, char *buf, size_t len);

enum run_stats_mode { RUN_STATS_NONE, RUN_STATS_TEXT, RUN_STATS_JSON };

#define RUN_MAX_DISKS 8
#define DISK_MAX_QUEUES 8
#define DISK_DEFAULT_QUEUE_SIZE 256
#define DISK_MIN_QUEUE_SIZE 4
#define DISK_MAX_QUEUE_SIZE 1024
#define DISK_DEFAULT_PINNED_MAX (64ull << 20)

/* One --disk: a virtio-blk device backed by a file or block device. */
struct disk_opts {
	char *path; /* malloc'ed; not checked here (the device opens it) */
	bool readonly; /* readonly=on: opened read-only, VIRTIO_BLK_F_RO offered */
	bool direct; /* direct=on: O_DIRECT (aligned requests; others go through the cache) */
	unsigned num_queues; /* 1..DISK_MAX_QUEUES, default 1 */
	unsigned queue_size; /* QueueNumMax: a power of two, 1..DISK_MAX_QUEUE_SIZE */
	int home_node; /* host node of long-term pins (registered=on); -1: not given */
	bool registered; /* registered=on: io_uring fixed buffers over guest memory */
	uint64_t pinned_max; /* bytes long-term pinned at most, a multiple of 2 MiB */
};

/*
 * Parse one --disk value: path=FILE[,readonly=on|off][,direct=on|off][,num_queues=N]
 * [,queue_size=N][,home_node=N][,registered=on|off][,pinned_max=SIZE] (Cloud
 * Hypervisor's syntax). Each key at most once, path= required. Returns 0 with @d filled
 * (free d->path), or -EINVAL with @e naming the key and nothing to free.
 */
int disk_opt_parse(const char *s, struct disk_opts *d, struct s2_err *e)
	__attribute__((warn_unused_result));

#define BALLOON_MAX_SCHEDULE 16

/* --balloon: a virtio-balloon device (Cloud Hypervisor's syntax, plus schedule=). */
struct balloon_opts {
	bool enabled;
	uint64_t size; /* initial target, bytes, a multiple of 4 KiB, at most --mem */
	bool deflate_on_oom; /* VIRTIO_BALLOON_F_DEFLATE_ON_OOM offered */
	bool free_page_reporting; /* VIRTIO_BALLOON_F_REPORTING offered */
	unsigned stats_polling; /* seconds between stats requests, 0 = off */
	unsigned nr_schedule; /* targets SIGUSR2 moves through, in order */
	uint64_t schedule[BALLOON_MAX_SCHEDULE];
};

/*
 * Parse one --balloon value: size=SIZE[,deflate_on_oom=on|off][,free_page_reporting=on|off]
 * [,stats_polling=SECONDS][,schedule=SIZE:SIZE:...]. Sizes are checked against --mem by
 * run_opts_parse(). Returns 0 or -EINVAL with @e naming the key.
 */
int balloon_opt_parse(const char *s, struct balloon_opts *b, struct s2_err *e)
	__attribute__((warn_unused_result));

/* --api-socket path=PATH | fd=N (Cloud Hypervisor's syntax; a bare PATH is a path). */
struct api_opts {
	bool enabled;
	char *path; /* malloc'ed; NULL with fd */
	int fd; /* a listening AF_UNIX socket passed in (libvirt), or -1 */
};

/* Parse --api-socket's value into @o. Returns 0 or -EINVAL with @e set. */
int api_opt_parse(const char *s, struct api_opts *o, struct s2_err *e)
	__attribute__((warn_unused_result));

struct run_opts {
	const char *kernel; /* path, points into argv or kernel_owned; NULL: wait for the
			     * control API's vm.create (--api-socket without KERNEL) */
	char *kernel_owned; /* malloc'ed (vm.create), or NULL */
	uint64_t mem_size; /* bytes, multiple of 2 MiB */
	unsigned vcpus; /* >= 1; the KVM limit is checked when the VM is created */
	char *guest_args; /* malloc'ed, "" when none; space-joined words after "--";
			  * NULL without KERNEL */
	enum run_stats_mode stats;
	unsigned nr_numa; /* --numa, sorted by guest ID */
	struct mm_guest_node numa[MM_MAX_NODES];
	unsigned nr_pools; /* --pool NODE=SIZE */
	struct mm_pool_cap pools[MM_MAX_POOLS];
	unsigned churn_ms; /* --churn MS[,SIZE]: 0 = off */
	uint64_t churn_bytes; /* 0 = 1% of --mem, at least 2 MiB */
	bool lazy_writable; /* --migrate-writable=lazy */
	bool keep_warm; /* --keep-warm: freed source frames stay backed */
	uint64_t batch_bytes; /* --migrate-batch: bytes per batch, 4 KiB multiple; 0: default */
	bool defer_invalidation; /* --defer-invalidation=on */
	unsigned copy_threads; /* --migrate-copy-threads: 0 = one per allowed CPU (max 8) */
	bool migrate_exact; /* --migrate-exact: no whole-window moves by the cost model */
	bool hugepages; /* --hugepages: every pool on 2 MiB huge pages */
	uint32_t timeline_cap; /* --timeline[=N]: events kept; 0: off */
	const char *lab_out; /* --lab-out FILE: where S2_HC_LAB_RESULT blobs go (points into
			      * argv); NULL: the hypercall returns -ENODEV */
	enum accel_kind accel; /* --accel, default ACCEL_AUTO */
	unsigned nr_disks; /* --disk, in command-line order */
	struct disk_opts disks[RUN_MAX_DISKS];
	struct balloon_opts balloon; /* --balloon, at most once */
	struct api_opts api; /* --api-socket, at most once */
	bool console_pty; /* copy the console to a pty (vm.create's serial/console "Pty") */
};

#define RUN_OPTS_DEFAULT_MEM (128ull << 20)
#define RUN_TIMELINE_DEFAULT 8192u
#define RUN_TIMELINE_MAX 1048576u
#define RUN_MAX_VCPUS 4096
#define RUN_MAX_MEM (1ull << 40) /* guest RAM: pool offsets fit 40 bits */

enum run_opts_result {
	RUN_OPTS_OK = 0,
	RUN_OPTS_HELP = 1, /* --help: usage printed, exit 0 */
	RUN_OPTS_VERSION = 2, /* --version: version printed, exit 0 */
};

/*
 * Parse `s2vm run` arguments (argv[0] is "run"). On success fills @o and returns one of
 * enum run_opts_result; on error returns -EINVAL with @e describing the problem. In every
 * case @o holds nothing that needs freeing unless RUN_OPTS_OK was returned; then free it
 * with run_opts_free() (which may be called more than once).
 */
int run_opts_parse(int argc, char **argv, struct run_opts *o, struct s2_err *e)
	__attribute__((warn_unused_result));
void run_opts_free(struct run_opts *o);
void run_opts_usage(FILE *f);

#endif
