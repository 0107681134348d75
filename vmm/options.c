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
		"Boot the ELF64 guest kernel KERNEL under KVM. The guest's exit code becomes\n"
		"s2vm's exit code; s2vm itself exits 2 on bad options or setup errors and %d\n"
		"when the guest crashes (fault, triple fault, unhandled exit).\n"
		"\n"
		"Options:\n"
		"  -m, --mem SIZE       guest RAM, a multiple of 2 MiB (default 128M).\n"
		"                       Suffixes K, M, G, T (binary); a bare number is MiB.\n"
		"  -c, --vcpus N        number of vCPUs, each on its own thread (default 1)\n"
		"      --stats[=FMT]    print memory statistics at exit; FMT is text (default)\n"
		"                       or json (one JSON object on stdout)\n"
		"  -h, --help           show this help and exit\n"
		"  -V, --version        show the version and exit\n"
		"\n"
		"Words after \"--\" are joined with spaces and passed to the guest.\n"
		"\n"
		"Examples:\n"
		"  s2vm run build/guestos/hello.elf\n"
		"  s2vm run build/guestos/memtouch.elf --mem 1G -- size=512M\n"
		"  s2vm run build/guestos/smp.elf --vcpus 2\n",
		S2_EXIT_GUEST_CRASH);
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
