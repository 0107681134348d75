// SPDX-License-Identifier: MIT
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/options.h"
#include "s2vm/hypercall.h"

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
		"                       a guest NUMA node backed by host node NODE; repeat\n"
		"                       for each guest node, sizes adding up to --mem.\n"
		"                       P: bind (default), preferred (falls back to hosts=\n"
		"                       when NODE's pool is full) or interleave (2 MiB\n"
		"                       frames round-robin over hosts=). LIST: 0:1 or 0-2.\n"
		"                       Host nodes this machine lacks are emulated.\n"
		"      --pool NODE=SIZE  cap host node NODE's pool at SIZE (default: the\n"
		"                       node's memory)\n"
		"      --churn MS[,SIZE] every MS ms move the next SIZE (default 1%% of --mem,\n"
		"                       at least 2 MiB) of guest memory to the next host\n"
		"                       node, round-robin, while the guest runs\n"
		"      --migrate-writable=eager|lazy\n"
		"                       make migrated pages writable at the end of each\n"
		"                       batch (eager, default) or on their first write\n"
		"      --stats[=FMT]    print memory statistics at exit (and on SIGUSR1);\n"
		"                       FMT is text (default, stderr) or json (stdout)\n"
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
		"      --numa guest=0,size=512M,host=0 --numa guest=1,size=512M,host=1\n",
		S2_EXIT_GUEST_CRASH);
}

static int node_list_parse(const char *v, struct mm_guest_node *n, struct s2_err *e)
{
	char *end;
	unsigned long a, b;

	n->nr_hosts = 0;
	while (*v) {
		a = strtoul(v, &end, 10);
		if (end == v || a > 63)
			return s2_err_set(e, -EINVAL, "hosts=%s: not a node list (e.g. 0:1 or 0-2)", v);
		b = a;
		if (*end == '-') {
			v = end + 1;
			b = strtoul(v, &end, 10);
			if (end == v || b < a || b > 63)
				return s2_err_set(e, -EINVAL, "hosts=: bad range ending '%s'", v);
		}
		for (unsigned long x = a; x <= b; x++) {
			if (n->nr_hosts == MM_MAX_POOLS)
				return s2_err_set(e, -EINVAL, "hosts=: more than %d nodes",
						  MM_MAX_POOLS);
			n->hosts[n->nr_hosts++] = (unsigned)x;
		}
		if (*end == ':')
			end++;
		else if (*end)
			return s2_err_set(e, -EINVAL, "hosts=: unexpected '%s'", end);
		v = end;
	}
	if (!n->nr_hosts)
		return s2_err_set(e, -EINVAL, "hosts= is empty");
	return 0;
}

int numa_opt_parse(const char *s, struct mm_guest_node *n, struct s2_err *e)
{
	char buf[256], *save = NULL, *kv;
	bool have_id = false, have_size = false, have_host = false;
	unsigned long v;
	char *end;

	memset(n, 0, sizeof(*n));
	if (strlen(s) >= sizeof(buf))
		return s2_err_set(e, -EINVAL, "--numa %s: too long", s);
	strcpy(buf, s);
	for (kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *val = strchr(kv, '=');

		if (!val)
			return s2_err_set(e, -EINVAL, "--numa %s: '%s' is not KEY=VALUE", s, kv);
		*val++ = '\0';
		if (!strcmp(kv, "guest")) {
			v = strtoul(val, &end, 10);
			if (!*val || *end || v >= MM_MAX_NODES)
				return s2_err_set(e, -EINVAL, "--numa guest=%s: not a guest node ID (0..%d)",
						  val, MM_MAX_NODES - 1);
			n->id = (unsigned)v;
			have_id = true;
		} else if (!strcmp(kv, "size")) {
			uint64_t sz;

			if (s2_size_parse(val, 20, &sz))
				return s2_err_set(e, -EINVAL, "--numa size=%s: not a size", val);
			if (!sz || sz % (2u << 20))
				return s2_err_set(e, -EINVAL,
						  "--numa size=%s: must be a non-zero multiple of 2 MiB", val);
			n->size = sz;
			have_size = true;
		} else if (!strcmp(kv, "host")) {
			v = strtoul(val, &end, 10);
			if (!*val || *end || v > 63)
				return s2_err_set(e, -EINVAL, "--numa host=%s: not a host node (0..63)",
						  val);
			n->host = (unsigned)v;
			have_host = true;
		} else if (!strcmp(kv, "policy")) {
			if (!strcmp(val, "bind"))
				n->policy = MM_POLICY_BIND;
			else if (!strcmp(val, "preferred"))
				n->policy = MM_POLICY_PREFERRED;
			else if (!strcmp(val, "interleave"))
				n->policy = MM_POLICY_INTERLEAVE;
			else
				return s2_err_set(e, -EINVAL,
						  "--numa policy=%s: unknown policy (bind, preferred or interleave)",
						  val);
		} else if (!strcmp(kv, "hosts")) {
			int r = node_list_parse(val, n, e);

			if (r)
				return r;
		} else {
			return s2_err_set(e, -EINVAL,
					  "--numa: unknown key '%s' (guest, size, host, policy, hosts)", kv);
		}
	}
	if (!have_id || !have_size)
		return s2_err_set(e, -EINVAL, "--numa %s: needs guest=ID and size=SIZE", s);
	if (n->policy == MM_POLICY_INTERLEAVE) {
		if (!n->nr_hosts)
			return s2_err_set(e, -EINVAL, "--numa %s: interleave needs hosts=LIST", s);
		if (!have_host)
			n->host = n->hosts[0];
	} else if (!have_host) {
		return s2_err_set(e, -EINVAL, "--numa %s: needs host=NODE", s);
	}
	return 0;
}

static int pool_opt_parse(const char *s, struct mm_pool_cap *c, struct s2_err *e)
{
	char *end;
	unsigned long node = strtoul(s, &end, 10);

	if (end == s || *end != '=' || node > 63)
		return s2_err_set(e, -EINVAL, "--pool %s: expected NODE=SIZE, e.g. 1=512M", s);
	if (s2_size_parse(end + 1, 20, &c->bytes) || c->bytes < (2u << 20))
		return s2_err_set(e, -EINVAL, "--pool %s: size must be at least 2 MiB", s);
	c->node = (unsigned)node;
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

int run_opts_parse(int argc, char **argv, struct run_opts *o, struct s2_err *e)
{
	static const struct option longopts[] = {
		{ "mem", required_argument, NULL, 'm' },
		{ "vcpus", required_argument, NULL, 'c' },
		{ "stats", optional_argument, NULL, 'S' },
		{ "numa", required_argument, NULL, 'N' },
		{ "pool", required_argument, NULL, 'P' },
		{ "churn", required_argument, NULL, 'C' },
		{ "migrate-writable", required_argument, NULL, 'W' },
		{ "accel", required_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int nargs = argc, c, r;
	char **guest_words = NULL;
	int nguest = 0;
	uint64_t v;
	char *end;

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
		switch (c) {
		case 'm':
			r = s2_size_parse(optarg, 20, &v);
			if (r == -ERANGE)
				return s2_err_set(e, -EINVAL, "--mem %s: size too large", optarg);
			if (r)
				return s2_err_set(e, -EINVAL,
						  "--mem %s: not a size (try 128M, 2G or 512MiB)",
						  optarg);
			if (v == 0 || v % (2u << 20))
				return s2_err_set(e, -EINVAL,
						  "--mem %s: must be a non-zero multiple of 2 MiB",
						  optarg);
			o->mem_size = v;
			break;
		case 'c':
			errno = 0;
			v = strtoull(optarg, &end, 10);
			if (!isdigit((unsigned char)optarg[0]) || *end || errno)
				return s2_err_set(e, -EINVAL, "--vcpus %s: not a number", optarg);
			if (v == 0)
				return s2_err_set(e, -EINVAL, "--vcpus 0: need at least one vCPU");
			if (v > 4096)
				return s2_err_set(e, -EINVAL, "--vcpus %s: too many vCPUs", optarg);
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
		case 'P':
			if (o->nr_pools == MM_MAX_POOLS)
				return s2_err_set(e, -EINVAL, "--pool: at most %d", MM_MAX_POOLS);
			r = pool_opt_parse(optarg, &o->pools[o->nr_pools], e);
			if (r)
				return r;
			o->nr_pools++;
			break;
		case 'C': {
			char *comma;

			errno = 0;
			v = strtoull(optarg, &comma, 10);
			if (!isdigit((unsigned char)optarg[0]) || errno || v == 0 || v > 3600000 ||
			    (*comma && *comma != ','))
				return s2_err_set(e, -EINVAL,
						  "--churn %s: expected MS[,SIZE] with MS in 1..3600000",
						  optarg);
			o->churn_ms = (unsigned)v;
			if (*comma && (s2_size_parse(comma + 1, 20, &o->churn_bytes) ||
				       !o->churn_bytes || o->churn_bytes % (2u << 20)))
				return s2_err_set(e, -EINVAL,
						  "--churn %s: SIZE must be a non-zero multiple of 2 MiB",
						  optarg);
			break;
		}
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
			return s2_err_set(e, -EINVAL, "option %s needs a value", argv[optind - 1]);
		case '?':
		default:
			if (optopt)
				return s2_err_set(e, -EINVAL, "unknown option -%c", optopt);
			return s2_err_set(e, -EINVAL, "unknown option %s", argv[optind - 1]);
		}
	}
	r = numa_check_ids(o, e);
	if (r)
		return r;
	if (optind >= nargs)
		return s2_err_set(e, -EINVAL, "missing KERNEL (an ELF64 guest image)");
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

void run_opts_free(struct run_opts *o)
{
	free(o->guest_args);
	o->guest_args = NULL;
}
