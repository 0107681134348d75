// SPDX-License-Identifier: MIT
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "vmm/options.h"
#include "s2vm/hypercall.h"

#define MIB2 (2ull << 20)
#define HOST_NODE_MAX 63 /* host node numbers are 0..63 */

int s2_size_parse(const char *s, unsigned default_shift, uint64_t *out)
{
	uint64_t v = 0;
	unsigned shift = default_shift;
	const char *p = s;

	if (!s || !isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	if (*p) {
		switch (toupper((unsigned char)*p)) {
		case 'B':
			shift = 0;
			p++;
			goto done;
		case 'K':
			shift = 10;
			break;
		case 'M':
			shift = 20;
			break;
		case 'G':
			shift = 30;
			break;
		case 'T':
			shift = 40;
			break;
		default:
			return -EINVAL;
		}
		p++;
		if (*p == 'i' && toupper((unsigned char)p[1]) == 'B')
			p += 2;
		else if (toupper((unsigned char)*p) == 'B')
			p++;
	}
done:
	if (*p)
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = v << shift;
	return 0;
}

const char *s2_size_format(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	unsigned u = 0;
	uint64_t whole = bytes;

	while (whole >= 1024 && u < 6) {
		whole >>= 10;
		u++;
	}
	if (u == 0 || (bytes & ((1ull << (10 * u)) - 1)) == 0)
		snprintf(buf, len, "%" PRIu64 " %s", whole, units[u]);
	else
		snprintf(buf, len, "%.1f %s", (double)bytes / (double)(1ull << (10 * u)), units[u]);
	return buf;
}

void run_opts_usage(FILE *f)
{
	fprintf(f,
		"Usage: s2vm run KERNEL [OPTIONS] [-- GUEST ARGS...]\n"
		"\n"
		"Boot the ELF64 guest kernel KERNEL under KVM, or on s2vm's own threads where\n"
		"there is no KVM (--accel). The guest's exit code becomes\n"
		"s2vm's exit code; s2vm itself exits 2 on bad options or setup errors and %d\n"
		"when the guest crashes (fault, triple fault, unhandled exit).\n"
		"\n"
		"Options:\n"
		"  -m, --mem SIZE       guest RAM, a multiple of 2 MiB (default 128M).\n"
		"                       Suffixes K, M, G, T (binary); a bare number is MiB.\n"
		"  -c, --vcpus N        number of vCPUs, each on its own thread (default 1)\n"
		"      --accel kvm|proc|auto\n"
		"                       how guest code runs (default auto: kvm when /dev/kvm\n"
		"                       is usable, else proc). kvm: hardware virtualisation,\n"
		"                       the guest is isolated. proc: the guest's ring-3 code\n"
		"                       runs on s2vm's own threads, guest RAM at host address\n"
		"                       == GPA, exits as signals. proc gives no isolation: the\n"
		"                       guest shares s2vm's address space (a seccomp filter\n"
		"                       only refuses system calls made from guest code). Use\n"
		"                       it for trusted images such as guestos, for CI and on\n"
		"                       machines without KVM.\n"
		"      --numa guest=ID,size=SIZE,host=NODE[,policy=P][,hosts=LIST]\n"
		"             [,hugepages=on]\n"
		"                       a guest NUMA node backed by host node NODE; repeat\n"
		"                       for each guest node, sizes adding up to --mem.\n"
		"                       P: bind (default), preferred (falls back to hosts=\n"
		"                       when NODE's pool is full) or interleave (2 MiB\n"
		"                       frames round-robin over hosts=). LIST: 0:1 or 0-2,\n"
		"                       each node once; bind takes no hosts=.\n"
		"                       hugepages=on: its memory on 2 MiB huge pages.\n"
		"                       Host nodes this machine lacks are emulated.\n"
		"      --pool NODE=SIZE  cap host node NODE's pool at SIZE, a multiple of\n"
		"                       2 MiB up to 1 TiB (default: the node's memory);\n"
		"                       once per node\n"
		"      --churn MS[,SIZE] every MS ms move the next SIZE (default 1%% of --mem,\n"
		"                       at least 2 MiB; at most --mem) of guest memory to the\n"
		"                       next host node, round-robin, while the guest runs\n"
		"      --migrate-writable=eager|lazy\n"
		"                       make migrated pages writable at the end of each\n"
		"                       batch (eager, default) or on their first write\n"
		"      --keep-warm      keep the source frames a migration freed backed, for\n"
		"                       reuse without faults; by default they are returned to\n"
		"                       the host (one fallocate per freed run)\n"
		"      --migrate-batch SIZE\n"
		"                       pages one migration batch moves (default 32M, from\n"
		"                       4K to 1G): smaller batches stall a writing vCPU for\n"
		"                       less time, larger ones make fewer invalidations\n"
		"      --hugepages      back guest RAM with 2 MiB huge pages (hugetlbfs memfds;\n"
		"                       per guest node: --numa ...,hugepages=on). The host must\n"
		"                       have them free on each node used: see\n"
		"                       /sys/devices/system/node/nodeN/hugepages/\n"
		"                       Under --accel proc the first 2 MiB stays on 4 KiB\n"
		"                       pages (guest RAM starts at vm.mmap_min_addr there)\n"
		"      --migrate-copy-threads N\n"
		"                       threads copying large migration batches (default 0:\n"
		"                       one per CPU this process may use, at most 8; 1: copy\n"
		"                       on the migrating thread only)\n"
		"      --migrate-exact  move only the requested pages (by default a cost model\n"
		"                       may move a whole 2 MiB window of scattered 4 KiB pages\n"
		"                       when one copy is cheaper than a remap per page)\n"
		"      --defer-invalidation=on|off\n"
		"                       hold back the invalidation of an address change made\n"
		"                       while read-only until a page becomes writable again\n"
		"                       (the arm64 deferral; default off)\n"
		"      --timeline[=N]   record the last N migration batches and write faults\n"
		"                       (default 8192; at most 1048576) with per-phase times,\n"
		"                       in --stats=json and the API's vm.memory\n"
		"      --lab-out FILE   write the guest's lab results (the S2_HC_LAB_RESULT\n"
		"                       hypercall: latency histograms, throughput per 10 ms\n"
		"                       window; checked first) to FILE, replaced on each call\n"
		"      --stats[=FMT]    print memory statistics at exit (and on SIGUSR1);\n"
		"                       FMT is text (default, stderr) or json (stdout)\n"
		"      --disk path=FILE[,readonly=on][,direct=on][,num_queues=N]\n"
		"             [,queue_size=N][,home_node=N][,registered=on][,pinned_max=SIZE]\n"
		"                       a virtio-blk disk (virtio-mmio) backed by FILE, a\n"
		"                       regular file or block device; repeat for more disks\n"
		"                       (at most %d). readonly=on: the guest cannot write it.\n"
		"                       direct=on: O_DIRECT (requests the host cannot do\n"
		"                       directly go through the page cache). num_queues: 1-%d\n"
		"                       queues (default 1), each with its own thread and\n"
		"                       io_uring. queue_size: a power of two, 4 to %d\n"
		"                       (default %d). registered=on: guest buffers become\n"
		"                       io_uring fixed buffers, long-term pinned in 2 MiB\n"
		"                       chunks on host node home_node, at most pinned_max\n"
		"                       bytes (default 64M; at least 2M per queue), least\n"
		"                       recently used replaced\n"
		"      --balloon size=SIZE[,deflate_on_oom=on][,free_page_reporting=on]\n"
		"             [,stats_polling=S][,schedule=SIZE:SIZE:...]\n"
		"                       a virtio-balloon device asking the guest for SIZE\n"
		"                       (at most --mem) back; pages it gives are returned to\n"
		"                       the host (one punch per merged run). free_page_reporting:\n"
		"                       the guest may also report free ranges. stats_polling:\n"
		"                       ask for guest memory statistics every S seconds (0,\n"
		"                       the default: never). schedule: each SIGUSR2 moves the\n"
		"                       target to the next SIZE\n"
		"      --api-socket path=PATH|fd=N\n"
		"                       serve the control API (Cloud Hypervisor's REST API\n"
		"                       and s2vm's memory endpoints) on a Unix socket, mode\n"
		"                       0600; `s2vm ctl --api-socket PATH` is its client\n"
		"  -h, --help           show this help and exit\n"
		"  -V, --version        show the version and exit\n"
		"\n"
		"Words after \"--\" are joined with spaces and passed to the guest.\n"
		"\n"
		"Examples:\n"
		"  s2vm run build/guestos/hello.elf\n"
		"  s2vm run build/guestos/memtouch.elf --mem 1G -- size=512M\n"
		"  s2vm run build/guestos/smp.elf --vcpus 2\n"
		"  s2vm run build/guestos/numainfo.elf --mem 1G --stats \\\n"
		"      --numa guest=0,size=512M,host=0 --numa guest=1,size=512M,host=1\n"
		"  s2vm run build/guestos/blkcheck.elf --disk path=disk.img,num_queues=2\n",
		S2_EXIT_GUEST_CRASH, RUN_MAX_DISKS, DISK_MAX_QUEUES, DISK_MAX_QUEUE_SIZE,
		DISK_DEFAULT_QUEUE_SIZE);
}

/*
 * Parse a decimal number at @s: digits only (no sign, no blanks), at least one. Sets *@end
 * to the first character after the digits. Returns 0, -EINVAL if @s does not start with a
 * digit (*@end and *@out untouched), or -ERANGE if the number does not fit 64 bits
 * (*@out is then UINT64_MAX, so range checks on it refuse it too).
 */
static int dec_parse(const char *s, const char **end, uint64_t *out)
{
	uint64_t v = 0;
	bool big = false;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			big = true;
		else
			v = v * 10 + d;
	}
	*end = p;
	*out = big ? UINT64_MAX : v;
	return big ? -ERANGE : 0;
}

/* Why a number at @s was refused, as a parenthesised note, or "". */
static const char *sign_note(const char *s)
{
	return (*s == '+' || *s == '-') ? " (no '+' or '-' sign allowed)" : "";
}

static bool has_blank(const char *s)
{
	for (; *s; s++)
		if (isspace((unsigned char)*s))
			return true;
	return false;
}

/*
 * Parse the host node number at @p, inside hosts=@v (for messages), into @x and set *@end
 * past it. @what says what was expected there. Returns 0 or -EINVAL.
 */
static int host_node_parse(const char *v, const char *p, const char *what, const char **end,
			   unsigned *x, struct s2_err *e)
{
	uint64_t u;

	if (dec_parse(p, end, &u) == -EINVAL)
		return s2_err_set(e, -EINVAL, "--numa 'hosts=%s': expected %s at '%s'%s", v, what,
				  p, sign_note(p));
	if (u > HOST_NODE_MAX)
		return s2_err_set(e, -EINVAL,
				  "--numa 'hosts=%s': host node %.*s out of range (0..%d)", v,
				  (int)(*end - p), p, HOST_NODE_MAX);
	*x = (unsigned)u;
	return 0;
}

/* Parse hosts=@v into @n->hosts: NODE[:NODE...] where each item is N or a range A-B. */
static int node_list_parse(const char *v, struct mm_guest_node *n, struct s2_err *e)
{
	uint64_t seen = 0; /* bit per host node */
	const char *p = v, *end;
	unsigned a, b;
	int r;

	n->nr_hosts = 0;
	if (!*v)
		return s2_err_set(e, -EINVAL, "hosts= is empty");
	for (;;) {
		r = host_node_parse(v, p, "a host node number (a list is 0:1 or 0-2)", &end, &a, e);
		if (r)
			return r;
		b = a;
		if (*end == '-') {
			r = host_node_parse(v, end + 1, "the range's end node", &end, &b, e);
			if (r)
				return r;
			if (b < a)
				return s2_err_set(e, -EINVAL,
						  "--numa 'hosts=%s': reversed range %u-%u (write %u-%u)",
						  v, a, b, b, a);
		}
		for (unsigned x = a; x <= b; x++) {
			if (seen & (1ull << x))
				return s2_err_set(e, -EINVAL,
						  "--numa 'hosts=%s': host node %u listed twice",
						  v, x);
			if (n->nr_hosts == MM_MAX_POOLS)
				return s2_err_set(e, -EINVAL,
						  "--numa 'hosts=%s': more than %d nodes", v,
						  MM_MAX_POOLS);
			seen |= 1ull << x;
			n->hosts[n->nr_hosts++] = x;
		}
		if (!*end)
			return 0;
		if (*end != ':')
			return s2_err_set(e, -EINVAL, "--numa 'hosts=%s': unexpected '%s'", v, end);
		p = end + 1;
		if (!*p)
			return s2_err_set(e, -EINVAL, "--numa 'hosts=%s': trailing ':'", v);
	}
}

enum numa_key { NK_GUEST, NK_SIZE, NK_HOST, NK_POLICY, NK_HOSTS, NK_HUGEPAGES, NK_NR };

static const char *const numa_keys[NK_NR] = { "guest", "size", "host", "policy", "hosts",
					      "hugepages" };

static const char *const policy_names[] = {
	[MM_POLICY_BIND] = "bind",
	[MM_POLICY_PREFERRED] = "preferred",
	[MM_POLICY_INTERLEAVE] = "interleave",
};

/* Parse the value @val of key @k of the --numa option @s into @n. Returns 0 or -EINVAL. */
static int numa_kv_parse(const char *s, enum numa_key k, const char *val, struct mm_guest_node *n,
			 struct s2_err *e)
{
	const char *end;
	uint64_t v;
	int r;

	switch (k) {
	case NK_GUEST:
		if (dec_parse(val, &end, &v) || *end || v >= MM_MAX_NODES)
			return s2_err_set(e, -EINVAL,
					  "--numa guest=%s: not a guest node ID (0..%d)%s", val,
					  MM_MAX_NODES - 1, sign_note(val));
		n->id = (unsigned)v;
		return 0;
	case NK_SIZE:
		r = s2_size_parse(val, 20, &v);
		if (r == -ERANGE)
			return s2_err_set(e, -EINVAL,
					  "--numa size=%s: size too large (2^64 bytes or more)",
					  val);
		if (r)
			return s2_err_set(e, -EINVAL, "--numa size=%s: not a size%s", val,
					  sign_note(val));
		if (!v || v % MIB2)
			return s2_err_set(e, -EINVAL,
					  "--numa size=%s: must be a non-zero multiple of 2 MiB",
					  val);
		n->size = v;
		return 0;
	case NK_HOST:
		if (dec_parse(val, &end, &v) || *end || v > HOST_NODE_MAX)
			return s2_err_set(e, -EINVAL, "--numa host=%s: not a host node (0..%d)%s",
					  val, HOST_NODE_MAX, sign_note(val));
		n->host = (unsigned)v;
		return 0;
	case NK_POLICY:
		for (unsigned i = 0; i < sizeof(policy_names) / sizeof(policy_names[0]); i++) {
			if (!strcmp(val, policy_names[i])) {
				n->policy = i;
				return 0;
			}
		}
		return s2_err_set(e, -EINVAL,
				  "--numa policy=%s: unknown policy (bind, preferred or interleave)",
				  val);
	case NK_HOSTS:
		return node_list_parse(val, n, e);
	case NK_HUGEPAGES:
		if (strcmp(val, "on") && strcmp(val, "off"))
			return s2_err_set(e, -EINVAL, "--numa hugepages=%s: expected on or off",
					  val);
		n->huge = !strcmp(val, "on");
		return 0;
	case NK_NR:
		break;
	}
	return s2_err_set(e, -EINVAL, "--numa %s: internal error", s);
}

int numa_opt_parse(const char *s, struct mm_guest_node *n, struct s2_err *e)
{
	char buf[256], *item, *next;
	bool have[NK_NR] = { false };

	memset(n, 0, sizeof(*n));
	if (strlen(s) >= sizeof(buf))
		return s2_err_set(e, -EINVAL, "--numa %s: too long", s);
	if (!*s)
		return s2_err_set(e, -EINVAL, "--numa: empty value");
	if (has_blank(s))
		return s2_err_set(e, -EINVAL, "--numa '%s': blanks are not allowed", s);
	strcpy(buf, s);
	for (item = buf; item; item = next) {
		char *val;
		unsigned k;
		int r;

		next = strchr(item, ',');
		if (next)
			*next++ = '\0';
		if (!*item)
			return s2_err_set(e, -EINVAL, "--numa %s: empty item (%s)", s,
					  item == buf ? "leading ','" :
					  !next	      ? "trailing ','" :
							"',,'");
		val = strchr(item, '=');
		if (!val)
			return s2_err_set(e, -EINVAL, "--numa %s: '%s' is not KEY=VALUE", s, item);
		*val++ = '\0';
		for (k = 0; k < NK_NR; k++)
			if (!strcmp(item, numa_keys[k]))
				break;
		if (k == NK_NR)
			return s2_err_set(e, -EINVAL,
					  "--numa: unknown key '%s' (guest, size, host, policy, hosts, "
					  "hugepages)",
					  item);
		if (have[k])
			return s2_err_set(e, -EINVAL, "--numa %s: key '%s' given more than once", s,
					  item);
		have[k] = true;
		r = numa_kv_parse(s, (enum numa_key)k, val, n, e);
		if (r)
			return r;
	}
	if (!have[NK_GUEST] || !have[NK_SIZE])
		return s2_err_set(e, -EINVAL, "--numa %s: needs guest=ID and size=SIZE", s);
	switch (n->policy) {
	case MM_POLICY_BIND:
		if (have[NK_HOSTS])
			return s2_err_set(e, -EINVAL,
					  "--numa %s: hosts= does not apply to policy=bind%s "
					  "(it is for policy=preferred or policy=interleave)",
					  s, have[NK_POLICY] ? "" : ", the default");
		break;
	case MM_POLICY_PREFERRED:
		break;
	case MM_POLICY_INTERLEAVE:
		if (!have[NK_HOSTS])
			return s2_err_set(e, -EINVAL, "--numa %s: interleave needs hosts=LIST", s);
		if (!have[NK_HOST]) {
			n->host = n->hosts[0];
		} else {
			unsigned h;

			for (h = 0; h < n->nr_hosts && n->hosts[h] != n->host; h++)
				;
			if (h == n->nr_hosts)
				return s2_err_set(e, -EINVAL,
						  "--numa %s: host=%u is not in hosts= (interleave "
						  "places frames only on hosts=)",
						  s, n->host);
		}
		return 0;
	}
	if (!have[NK_HOST])
		return s2_err_set(e, -EINVAL, "--numa %s: needs host=NODE", s);
	return 0;
}

static int pool_opt_parse(const char *s, struct mm_pool_cap *c, struct s2_err *e)
{
	const char *end, *size;
	uint64_t node, bytes;
	int r;

	if (has_blank(s))
		return s2_err_set(e, -EINVAL, "--pool '%s': blanks are not allowed", s);
	if (dec_parse(s, &end, &node) == -EINVAL || *end != '=')
		return s2_err_set(e, -EINVAL, "--pool %s: expected NODE=SIZE, e.g. 1=512M%s", s,
				  sign_note(s));
	if (node > HOST_NODE_MAX)
		return s2_err_set(e, -EINVAL, "--pool %s: host node %.*s out of range (0..%d)", s,
				  (int)(end - s), s, HOST_NODE_MAX);
	size = end + 1;
	if (!*size)
		return s2_err_set(e, -EINVAL, "--pool %s: SIZE is missing after '='", s);
	r = s2_size_parse(size, 20, &bytes);
	if (r == -EINVAL)
		return s2_err_set(e, -EINVAL, "--pool %s: '%s' is not a size%s", s, size,
				  sign_note(size));
	if (r == -ERANGE || bytes > POOL_MAX_BYTES)
		return s2_err_set(e, -EINVAL,
				  "--pool %s: at most 1 TiB per host node",
				  s);
	if (bytes < MIB2)
		return s2_err_set(e, -EINVAL, "--pool %s: size must be at least 2 MiB", s);
	if (bytes % MIB2)
		return s2_err_set(e, -EINVAL, "--pool %s: size must be a multiple of 2 MiB", s);
	c->node = (unsigned)node;
	c->bytes = bytes;
	return 0;
}

enum disk_key {
	DK_PATH,
	DK_READONLY,
	DK_DIRECT,
	DK_NUM_QUEUES,
	DK_QUEUE_SIZE,
	DK_HOME_NODE,
	DK_REGISTERED,
	DK_PINNED_MAX,
	DK_NR
};

static const char *const disk_keys[DK_NR] = { "path",	    "readonly",	 "direct",
					      "num_queues", "queue_size", "home_node",
					      "registered", "pinned_max" };

/* on|off (or true|false) of --@opt @key into *@v. Returns 0 or -EINVAL. */
static int toggle_parse(const char *opt, const char *key, const char *val, bool *v,
			struct s2_err *e)
{
	if (!strcmp(val, "on") || !strcmp(val, "true")) {
		*v = true;
		return 0;
	}
	if (!strcmp(val, "off") || !strcmp(val, "false")) {
		*v = false;
		return 0;
	}
	return s2_err_set(e, -EINVAL, "--%s %s=%s: expected on or off", opt, key, val);
}

/* Parse the value @val of key @k of a --disk option into @d. Returns 0 or -EINVAL. */
static int disk_kv_parse(enum disk_key k, const char *val, struct disk_opts *d, struct s2_err *e)
{
	const char *end;
	uint64_t v;
	int r;

	switch (k) {
	case DK_PATH:
		if (!*val)
			return s2_err_set(e, -EINVAL, "--disk path=: empty file name");
		d->path = strdup(val);
		if (!d->path)
			return s2_err_set(e, -ENOMEM, "out of memory");
		return 0;
	case DK_READONLY:
		return toggle_parse("disk", "readonly", val, &d->readonly, e);
	case DK_DIRECT:
		return toggle_parse("disk", "direct", val, &d->direct, e);
	case DK_REGISTERED:
		return toggle_parse("disk", "registered", val, &d->registered, e);
	case DK_NUM_QUEUES:
		if (dec_parse(val, &end, &v) || *end || v < 1 || v > DISK_MAX_QUEUES)
			return s2_err_set(e, -EINVAL, "--disk num_queues=%s: expected 1..%d%s", val,
					  DISK_MAX_QUEUES, sign_note(val));
		d->num_queues = (unsigned)v;
		return 0;
	case DK_QUEUE_SIZE:
		/* a request needs a header, data and a status: at least 3 descriptors */
		if (dec_parse(val, &end, &v) || *end || v < DISK_MIN_QUEUE_SIZE ||
		    v > DISK_MAX_QUEUE_SIZE || (v & (v - 1)))
			return s2_err_set(e, -EINVAL,
					  "--disk queue_size=%s: expected a power of two, %d..%d%s",
					  val, DISK_MIN_QUEUE_SIZE, DISK_MAX_QUEUE_SIZE, sign_note(val));
		d->queue_size = (unsigned)v;
		return 0;
	case DK_HOME_NODE:
		if (dec_parse(val, &end, &v) || *end || v > HOST_NODE_MAX)
			return s2_err_set(e, -EINVAL, "--disk home_node=%s: not a host node (0..%d)%s",
					  val, HOST_NODE_MAX, sign_note(val));
		d->home_node = (int)v;
		return 0;
	case DK_PINNED_MAX:
		r = s2_size_parse(val, 20, &v);
		if (r == -ERANGE)
			return s2_err_set(e, -EINVAL, "--disk pinned_max=%s: size too large", val);
		if (r)
			return s2_err_set(e, -EINVAL,
					  "--disk pinned_max=%s: not a size (try 64M or 1G)%s", val,
					  sign_note(val));
		if (!v || v % MIB2 || v > POOL_MAX_BYTES)
			return s2_err_set(e, -EINVAL,
					  "--disk pinned_max=%s: must be a non-zero multiple of 2 MiB, "
					  "at most 1 TiB",
					  val);
		d->pinned_max = v;
		return 0;
	case DK_NR:
		break;
	}
	return s2_err_set(e, -EINVAL, "--disk: internal error");
}

/*
 * Split --@opt's value @s into KEY=VALUE items and hand each to @fn with the index of its
 * key in @keys (@nkeys of them, @key_list naming them for the error). Unknown keys, keys
 * given twice, empty items and blanks are errors. @have[k] is set for each key seen.
 * Returns 0 or the first error (-EINVAL, or what @fn returned) with @e set.
 */
static int kv_list_parse(const char *opt, const char *s, const char *const *keys, unsigned nkeys,
			 const char *key_list, bool *have,
			 int (*fn)(void *ctx, unsigned k, const char *val, struct s2_err *e),
			 void *ctx, struct s2_err *e)
{
	char *buf, *item, *next;
	int r = 0;

	if (!*s)
		return s2_err_set(e, -EINVAL, "--%s: empty value", opt);
	if (has_blank(s))
		return s2_err_set(e, -EINVAL, "--%s '%s': blanks are not allowed", opt, s);
	buf = strdup(s);
	if (!buf)
		return s2_err_set(e, -ENOMEM, "out of memory");
	for (item = buf; item && !r; item = next) {
		char *val;
		unsigned k;

		next = strchr(item, ',');
		if (next)
			*next++ = '\0';
		if (!*item) {
			r = s2_err_set(e, -EINVAL, "--%s %s: empty item (%s)", opt, s,
				       item == buf ? "leading ','" :
				       !next	   ? "trailing ','" :
						     "',,'");
			break;
		}
		val = strchr(item, '=');
		if (!val) {
			r = s2_err_set(e, -EINVAL, "--%s %s: '%s' is not KEY=VALUE", opt, s, item);
			break;
		}
		*val++ = '\0';
		for (k = 0; k < nkeys; k++)
			if (!strcmp(item, keys[k]))
				break;
		if (k == nkeys) {
			r = s2_err_set(e, -EINVAL, "--%s: unknown key '%s' (%s)", opt, item, key_list);
			break;
		}
		if (have[k]) {
			r = s2_err_set(e, -EINVAL, "--%s %s: key '%s' given more than once", opt, s,
				       item);
			break;
		}
		have[k] = true;
		r = fn(ctx, k, val, e);
	}
	free(buf);
	return r;
}

static int disk_kv(void *ctx, unsigned k, const char *val, struct s2_err *e)
{
	return disk_kv_parse((enum disk_key)k, val, ctx, e);
}

int disk_opt_parse(const char *s, struct disk_opts *d, struct s2_err *e)
{
	bool have[DK_NR] = { false };
	int r;

	memset(d, 0, sizeof(*d));
	d->num_queues = 1;
	d->queue_size = DISK_DEFAULT_QUEUE_SIZE;
	d->home_node = -1;
	d->pinned_max = DISK_DEFAULT_PINNED_MAX;
	r = kv_list_parse("disk", s, disk_keys, DK_NR,
			  "path, readonly, direct, num_queues, queue_size, home_node, registered, "
			  "pinned_max",
			  have, disk_kv, d, e);
	if (!r && !have[DK_PATH])
		r = s2_err_set(e, -EINVAL, "--disk %s: needs path=FILE", s);
	if (!r && (have[DK_HOME_NODE] || have[DK_PINNED_MAX]) && !d->registered)
		r = s2_err_set(e, -EINVAL,
			       "--disk %s: home_node= and pinned_max= apply to registered=on only",
			       s);
	/* each queue registers its own chunks: pinned_max is shared out, one chunk at least */
	if (!r && d->registered && d->pinned_max < (uint64_t)d->num_queues * MIB2)
		r = s2_err_set(e, -EINVAL,
			       "--disk %s: pinned_max must allow one 2 MiB chunk per queue "
			       "(num_queues=%u needs at least %u MiB)",
			       s, d->num_queues, 2 * d->num_queues);
	if (r) {
		free(d->path);
		d->path = NULL;
	}
	return r;
}

int api_opt_parse(const char *s, struct api_opts *o, struct s2_err *e)
{
	const char *v = s;

	o->path = NULL;
	o->fd = -1;
	o->enabled = true;
	if (!strncmp(s, "fd=", 3)) {
		char *end;
		long fd;

		errno = 0;
		fd = strtol(s + 3, &end, 10);
		if (errno || end == s + 3 || *end || fd < 0 || fd > 65535)
			return s2_err_set(e, -EINVAL, "--api-socket %s: fd= needs a descriptor number",
					  s);
		o->fd = (int)fd;
		return 0;
	}
	if (!strncmp(s, "path=", 5))
		v = s + 5;
	if (!*v)
		return s2_err_set(e, -EINVAL, "--api-socket %s: empty path", s);
	if (strlen(v) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return s2_err_set(e, -EINVAL, "--api-socket %s: path longer than %zu bytes", s,
				  sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	if (strchr(v, ','))
		return s2_err_set(e, -EINVAL, "--api-socket %s: expected path=PATH or fd=N", s);
	o->path = strdup(v);
	if (!o->path)
		return s2_err_set(e, -ENOMEM, "out of memory");
	return 0;
}

enum balloon_key { BK_SIZE, BK_DEFLATE_ON_OOM, BK_FPR, BK_STATS_POLLING, BK_SCHEDULE, BK_NR };

static const char *const balloon_keys[BK_NR] = { "size", "deflate_on_oom", "free_page_reporting",
						 "stats_polling", "schedule" };

/* A balloon size: a multiple of 4 KiB (checked against --mem later). */
static int balloon_size_parse(const char *what, const char *val, uint64_t *out, struct s2_err *e)
{
	int r = s2_size_parse(val, 20, out);

	if (r == -ERANGE)
		return s2_err_set(e, -EINVAL, "--balloon %s=%s: size too large", what, val);
	if (r)
		return s2_err_set(e, -EINVAL, "--balloon %s=%s: not a size (try 64M or 1G)%s", what,
				  val, sign_note(val));
	if (*out % 4096)
		return s2_err_set(e, -EINVAL, "--balloon %s=%s: must be a multiple of 4 KiB", what,
				  val);
	return 0;
}

static int balloon_kv(void *ctx, unsigned k, const char *val, struct s2_err *e)
{
	struct balloon_opts *b = ctx;
	const char *end;
	uint64_t v;

	switch ((enum balloon_key)k) {
	case BK_SIZE:
		return balloon_size_parse("size", val, &b->size, e);
	case BK_DEFLATE_ON_OOM:
		return toggle_parse("balloon", "deflate_on_oom", val, &b->deflate_on_oom, e);
	case BK_FPR:
		return toggle_parse("balloon", "free_page_reporting", val, &b->free_page_reporting,
				    e);
	case BK_STATS_POLLING:
		if (dec_parse(val, &end, &v) || *end || v > 3600)
			return s2_err_set(e, -EINVAL,
					  "--balloon stats_polling=%s: expected seconds, 0..3600%s",
					  val, sign_note(val));
		b->stats_polling = (unsigned)v;
		return 0;
	case BK_SCHEDULE: {
		char *buf = strdup(val), *item, *next;
		int r = 0;

		if (!buf)
			return s2_err_set(e, -ENOMEM, "out of memory");
		for (item = buf; item && !r; item = next) {
			next = strchr(item, ':');
			if (next)
				*next++ = '\0';
			if (b->nr_schedule == BALLOON_MAX_SCHEDULE)
				r = s2_err_set(e, -EINVAL, "--balloon schedule=%s: at most %d sizes",
					       val, BALLOON_MAX_SCHEDULE);
			else
				r = balloon_size_parse("schedule", item, &b->schedule[b->nr_schedule++],
						       e);
		}
		free(buf);
		return r;
	}
	case BK_NR:
		break;
	}
	return s2_err_set(e, -EINVAL, "--balloon: internal error");
}

int balloon_opt_parse(const char *s, struct balloon_opts *b, struct s2_err *e)
{
	bool have[BK_NR] = { false };
	int r;

	memset(b, 0, sizeof(*b));
	r = kv_list_parse("balloon", s, balloon_keys, BK_NR,
			  "size, deflate_on_oom, free_page_reporting, stats_polling, schedule", have,
			  balloon_kv, b, e);
	if (!r && !have[BK_SIZE])
		r = s2_err_set(e, -EINVAL, "--balloon %s: needs size=SIZE", s);
	if (!r)
		b->enabled = true;
	return r;
}

/* Parse --churn MS[,SIZE] into @o. SIZE is checked against --mem once all options are in. */
static int churn_opt_parse(const char *s, struct run_opts *o, struct s2_err *e)
{
	const char *end, *size;
	uint64_t v;
	int r;

	if (dec_parse(s, &end, &v) || v == 0 || v > 3600000 || (*end && *end != ','))
		return s2_err_set(e, -EINVAL,
				  "--churn %s: expected MS[,SIZE] with MS in 1..3600000%s", s,
				  sign_note(s));
	o->churn_ms = (unsigned)v;
	o->churn_bytes = 0;
	if (!*end)
		return 0;
	size = end + 1;
	if (!*size)
		return s2_err_set(e, -EINVAL, "--churn %s: SIZE is missing after ','", s);
	r = s2_size_parse(size, 20, &v);
	if (r == -ERANGE)
		return s2_err_set(e, -EINVAL, "--churn %s: SIZE too large", s);
	if (r)
		return s2_err_set(e, -EINVAL, "--churn %s: SIZE '%s' is not a size%s", s, size,
				  sign_note(size));
	if (!v || v % MIB2)
		return s2_err_set(e, -EINVAL,
				  "--churn %s: SIZE must be a non-zero multiple of 2 MiB", s);
	o->churn_bytes = v;
	return 0;
}

/* Sort --numa nodes by guest ID and check each ID 0..n-1 appears exactly once. */
static int numa_check_ids(struct run_opts *o, struct s2_err *e)
{
	struct mm_guest_node sorted[MM_MAX_NODES];
	bool seen[MM_MAX_NODES] = { false };

	for (unsigned i = 0; i < o->nr_numa; i++) {
		unsigned id = o->numa[i].id;

		if (seen[id])
			return s2_err_set(e, -EINVAL, "--numa guest=%u given more than once", id);
		seen[id] = true;
		if (id >= o->nr_numa)
			return s2_err_set(e, -EINVAL,
					  "--numa guest=%u: with %u guest nodes the IDs must be 0..%u",
					  id, o->nr_numa, o->nr_numa - 1);
		sorted[id] = o->numa[i];
	}
	memcpy(o->numa, sorted, o->nr_numa * sizeof(sorted[0]));
	return 0;
}

/* Checks between options, once all are parsed (--mem may come after --numa or --churn). */
static int run_opts_check(struct run_opts *o, const char *churn_arg, struct s2_err *e)
{
	uint64_t sum = 0;
	int r;

	r = numa_check_ids(o, e);
	if (r)
		return r;
	for (unsigned i = 0; i < o->nr_numa; i++) {
		if (o->numa[i].size > UINT64_MAX - sum)
			return s2_err_set(e, -EINVAL,
					  "--numa: guest node sizes add up to more than 2^64 bytes");
		sum += o->numa[i].size;
	}
	if (o->nr_numa && sum != o->mem_size)
		return s2_err_set(e, -EINVAL,
				  "guest node sizes add up to %llu MiB but --mem is %llu MiB",
				  (unsigned long long)(sum >> 20),
				  (unsigned long long)(o->mem_size >> 20));
	if (o->churn_bytes > o->mem_size)
		return s2_err_set(e, -EINVAL,
				  "--churn %s: SIZE is more than the guest's RAM (--mem %llu MiB)",
				  churn_arg, (unsigned long long)(o->mem_size >> 20));
	if (o->balloon.enabled) {
		uint64_t big = o->balloon.size;

		for (unsigned i = 0; i < o->balloon.nr_schedule; i++)
			big = o->balloon.schedule[i] > big ? o->balloon.schedule[i] : big;
		if (big > o->mem_size)
			return s2_err_set(e, -EINVAL,
					  "--balloon: a target of %llu KiB is more than the guest's "
					  "RAM (--mem %llu MiB)",
					  (unsigned long long)(big >> 10),
					  (unsigned long long)(o->mem_size >> 20));
	}
	return 0;
}

static char *join_words(int n, char **w)
{
	size_t len = 1;
	char *s;

	for (int i = 0; i < n; i++)
		len += strlen(w[i]) + 1;
	s = malloc(len);
	if (!s)
		return NULL;
	s[0] = '\0';
	for (int i = 0; i < n; i++) {
		if (i)
			strcat(s, " ");
		strcat(s, w[i]);
	}
	return s;
}

/* The long name of the option whose getopt value is @c ("?" if none has it). */
static const char *opt_long_name(const struct option *longopts, int c)
{
	for (; longopts->name; longopts++)
		if (longopts->val == c)
			return longopts->name;
	return "?";
}

/*
 * Describe the option getopt_long refused with '?'. @optopt is getopt's: the character of
 * an unknown short option, the value of a long option that takes no value but was given
 * one, or 0 for an unknown or ambiguous long option, which is then @arg.
 */
static int opt_refused(const struct option *longopts, const char *arg, int optopt,
		       struct s2_err *e)
{
	const char *name, *first = NULL;
	unsigned nr_match = 0;
	size_t len;

	if (optopt) {
		for (const struct option *l = longopts; l->name; l++)
			if (l->val == optopt && l->has_arg == no_argument)
				return s2_err_set(e, -EINVAL, "--%s takes no value", l->name);
		return s2_err_set(e, -EINVAL, "unknown option -%c", optopt);
	}
	if (strncmp(arg, "--", 2))
		return s2_err_set(e, -EINVAL, "unknown option %s", arg);
	name = arg + 2;
	len = strcspn(name, "=");
	for (const struct option *l = longopts; len && l->name; l++) {
		if (strncmp(l->name, name, len))
			continue;
		/* "--m" could be --mem or --migrate-writable: name two of them */
		if (nr_match++)
			return s2_err_set(e, -EINVAL, "option --%.*s is ambiguous (--%s or --%s)",
					  (int)len, name, first, l->name);
		first = l->name;
	}
	return s2_err_set(e, -EINVAL, "unknown option --%.*s", (int)len, name);
}

static int run_opts_parse_all(int argc, char **argv, struct run_opts *o, struct s2_err *e)
{
	static const struct option longopts[] = {
		{ "mem", required_argument, NULL, 'm' },
		{ "vcpus", required_argument, NULL, 'c' },
		{ "stats", optional_argument, NULL, 'S' },
		{ "numa", required_argument, NULL, 'N' },
		{ "pool", required_argument, NULL, 'P' },
		{ "churn", required_argument, NULL, 'C' },
		{ "migrate-writable", required_argument, NULL, 'W' },
		{ "keep-warm", no_argument, NULL, 'K' },
		{ "migrate-batch", required_argument, NULL, 'b' },
		{ "migrate-copy-threads", required_argument, NULL, 't' },
		{ "migrate-exact", no_argument, NULL, 'x' },
		{ "hugepages", no_argument, NULL, 'H' },
		{ "defer-invalidation", required_argument, NULL, 'd' },
		{ "timeline", optional_argument, NULL, 'T' },
		{ "lab-out", required_argument, NULL, 'L' },
		{ "accel", required_argument, NULL, 'A' },
		{ "disk", required_argument, NULL, 'D' },
		{ "balloon", required_argument, NULL, 'B' },
		{ "api-socket", required_argument, NULL, 'I' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int nargs = argc, c, r;
	char **guest_words = NULL;
	const char *churn_arg = NULL, *end;
	int nguest = 0;
	uint64_t v;

	memset(o, 0, sizeof(*o));
	o->mem_size = RUN_OPTS_DEFAULT_MEM;
	o->vcpus = 1;

	/* Everything after the first "--" belongs to the guest. */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			nargs = i;
			guest_words = argv + i + 1;
			nguest = argc - i - 1;
			break;
		}
	}

	optind = 0; /* full re-initialisation of getopt, also between unit tests */
	opterr = 0;
	while ((c = getopt_long(nargs, argv, ":m:c:hV", longopts, NULL)) != -1) {
		if (c != '?' && c != ':' && optarg) {
			/* "--mem=" and "--mem ''" give an empty value; blanks are never meant */
			if (!*optarg)
				return s2_err_set(e, -EINVAL, "--%s: empty value",
						  opt_long_name(longopts, c));
			if (has_blank(optarg))
				return s2_err_set(e, -EINVAL, "--%s '%s': blanks are not allowed",
						  opt_long_name(longopts, c), optarg);
		}
		switch (c) {
		case 'm':
			r = s2_size_parse(optarg, 20, &v);
			if (r == -ERANGE)
				return s2_err_set(e, -EINVAL, "--mem %s: size too large", optarg);
			if (r)
				return s2_err_set(e, -EINVAL,
						  "--mem %s: not a size (try 128M, 2G or 512MiB)%s",
						  optarg, sign_note(optarg));
			if (v == 0 || v % MIB2)
				return s2_err_set(e, -EINVAL,
						  "--mem %s: must be a non-zero multiple of 2 MiB",
						  optarg);
			o->mem_size = v;
			break;
		case 'c':
			r = dec_parse(optarg, &end, &v);
			if (r == -EINVAL || *end)
				return s2_err_set(e, -EINVAL, "--vcpus %s: not a number%s", optarg,
						  sign_note(optarg));
			if (r == -ERANGE || v > 4096)
				return s2_err_set(e, -EINVAL, "--vcpus %s: too many vCPUs", optarg);
			if (v == 0)
				return s2_err_set(e, -EINVAL, "--vcpus %s: need at least one vCPU",
						  optarg);
			o->vcpus = (unsigned)v;
			break;
		case 'S':
			if (!optarg || strcmp(optarg, "text") == 0)
				o->stats = RUN_STATS_TEXT;
			else if (strcmp(optarg, "json") == 0)
				o->stats = RUN_STATS_JSON;
			else
				return s2_err_set(e, -EINVAL,
						  "--stats=%s: unknown format (text or json)", optarg);
			break;
		case 'N':
			if (o->nr_numa == MM_MAX_NODES)
				return s2_err_set(e, -EINVAL, "--numa: at most %d guest nodes",
						  MM_MAX_NODES);
			r = numa_opt_parse(optarg, &o->numa[o->nr_numa], e);
			if (r)
				return r;
			o->nr_numa++;
			break;
		case 'P': {
			struct mm_pool_cap cap;

			r = pool_opt_parse(optarg, &cap, e);
			if (r)
				return r;
			for (unsigned i = 0; i < o->nr_pools; i++) {
				if (o->pools[i].node != cap.node)
					continue;
				return s2_err_set(e, -EINVAL,
						  "--pool %s: host node %u's pool is capped more than once",
						  optarg, cap.node);
			}
			if (o->nr_pools == MM_MAX_POOLS)
				return s2_err_set(e, -EINVAL, "--pool: at most %d", MM_MAX_POOLS);
			o->pools[o->nr_pools++] = cap;
			break;
		}
		case 'C':
			r = churn_opt_parse(optarg, o, e);
			if (r)
				return r;
			churn_arg = optarg;
			break;
		case 'A':
			if (!strcmp(optarg, "kvm"))
				o->accel = ACCEL_KVM;
			else if (!strcmp(optarg, "proc"))
				o->accel = ACCEL_PROC;
			else if (!strcmp(optarg, "auto"))
				o->accel = ACCEL_AUTO;
			else
				return s2_err_set(e, -EINVAL, "--accel %s: expected kvm, proc or auto",
						  optarg);
			break;
		case 'D':
			if (o->nr_disks == RUN_MAX_DISKS)
				return s2_err_set(e, -EINVAL, "--disk: at most %d disks",
						  RUN_MAX_DISKS);
			r = disk_opt_parse(optarg, &o->disks[o->nr_disks], e);
			if (r)
				return r;
			o->nr_disks++;
			break;
		case 'I':
			if (o->api.enabled)
				return s2_err_set(e, -EINVAL, "--api-socket: given more than once");
			r = api_opt_parse(optarg, &o->api, e);
			if (r)
				return r;
			break;
		case 'B':
			if (o->balloon.enabled)
				return s2_err_set(e, -EINVAL, "--balloon: given more than once");
			r = balloon_opt_parse(optarg, &o->balloon, e);
			if (r)
				return r;
			break;
		case 'K':
			o->keep_warm = true;
			break;
		case 'b':
			r = s2_size_parse(optarg, 0, &v);
			if (r || v < 4096 || v > (1ull << 30) || v % 4096)
				return s2_err_set(e, -EINVAL,
						  "--migrate-batch %s: expected a multiple of 4K from "
						  "4K to 1G (e.g. 2M)%s", optarg, sign_note(optarg));
			o->batch_bytes = v;
			break;
		case 't':
			if (dec_parse(optarg, &end, &v) || *end || v > 64)
				return s2_err_set(e, -EINVAL,
						  "--migrate-copy-threads %s: expected 0 (one per "
						  "CPU) to 64%s", optarg, sign_note(optarg));
			o->copy_threads = (unsigned)v;
			break;
		case 'x':
			o->migrate_exact = true;
			break;
		case 'H':
			o->hugepages = true;
			break;
		case 'd':
			if (!strcmp(optarg, "on"))
				o->defer_invalidation = true;
			else if (!strcmp(optarg, "off"))
				o->defer_invalidation = false;
			else
				return s2_err_set(e, -EINVAL,
						  "--defer-invalidation=%s: expected on or off", optarg);
			break;
		case 'T':
			if (!optarg) {
				o->timeline_cap = RUN_TIMELINE_DEFAULT;
				break;
			}
			if (dec_parse(optarg, &end, &v) || *end || !v || v > RUN_TIMELINE_MAX)
				return s2_err_set(e, -EINVAL,
						  "--timeline=%s: expected a number of events from 1 "
						  "to %u%s", optarg, RUN_TIMELINE_MAX, sign_note(optarg));
			o->timeline_cap = (uint32_t)v;
			break;
		case 'L':
			if (o->lab_out)
				return s2_err_set(e, -EINVAL, "--lab-out: given more than once");
			o->lab_out = optarg;
			break;
		case 'W':
			if (!strcmp(optarg, "eager"))
				o->lazy_writable = false;
			else if (!strcmp(optarg, "lazy"))
				o->lazy_writable = true;
			else
				return s2_err_set(e, -EINVAL,
						  "--migrate-writable=%s: expected eager or lazy", optarg);
			break;
		case 'h':
			return RUN_OPTS_HELP;
		case 'V':
			return RUN_OPTS_VERSION;
		case ':':
			return s2_err_set(e, -EINVAL, "option --%s needs a value",
					  opt_long_name(longopts, optopt));
		case '?':
		default:
			return opt_refused(longopts, argv[optind - 1], optopt, e);
		}
	}
	r = run_opts_check(o, churn_arg, e);
	if (r)
		return r;
	if (optind >= nargs && o->api.enabled && !nguest)
		return RUN_OPTS_OK; /* no KERNEL: the control API's vm.create gives it */
	if (optind >= nargs)
		return s2_err_set(e, -EINVAL, "missing KERNEL (an ELF64 guest image)%s",
				  o->api.enabled ? " (or no guest arguments: with --api-socket "
						   "alone, vm.create gives the kernel)" : "");
	if (optind + 1 < nargs)
		return s2_err_set(e, -EINVAL,
				  "unexpected argument '%s' (guest arguments go after \"--\")",
				  argv[optind + 1]);
	o->kernel = argv[optind];
	o->guest_args = join_words(nguest, guest_words);
	if (!o->guest_args)
		return s2_err_set(e, -ENOMEM, "out of memory");
	return RUN_OPTS_OK;
}

int run_opts_parse(int argc, char **argv, struct run_opts *o, struct s2_err *e)
{
	int r = run_opts_parse_all(argc, argv, o, e);

	if (r != RUN_OPTS_OK)
		run_opts_free(o); /* --help, --version or an error: nothing for the caller */
	return r;
}

void run_opts_free(struct run_opts *o)
{
	free(o->guest_args);
	o->guest_args = NULL;
	for (unsigned i = 0; i < o->nr_disks; i++) {
		free(o->disks[i].path);
		o->disks[i].path = NULL;
	}
	o->nr_disks = 0;
	free(o->api.path);
	o->api.path = NULL;
	free(o->kernel_owned);
	o->kernel_owned = NULL;
}
