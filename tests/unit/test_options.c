// SPDX-License-Identifier: MIT
/* Sizes and `s2vm run` option parsing. */
#include <errno.h>
#include <string.h>

#include "tests/unit/unit.h"
#include "vmm/options.h"

static void test_size_units(void)
{
	uint64_t v;

	CU_ASSERT_EQUAL(s2_size_parse("128M", 20, &v), 0);
	CU_ASSERT_EQUAL(v, 128ull << 20);
	CU_ASSERT_EQUAL(s2_size_parse("2GiB", 20, &v), 0);
	CU_ASSERT_EQUAL(v, 2ull << 30);
	CU_ASSERT_EQUAL(s2_size_parse("4096k", 20, &v), 0);
	CU_ASSERT_EQUAL(v, 4096ull << 10);
	CU_ASSERT_EQUAL(s2_size_parse("1tb", 20, &v), 0);
	CU_ASSERT_EQUAL(v, 1ull << 40);
	CU_ASSERT_EQUAL(s2_size_parse("512", 20, &v), 0); /* bare number: MiB */
	CU_ASSERT_EQUAL(v, 512ull << 20);
	CU_ASSERT_EQUAL(s2_size_parse("512", 0, &v), 0); /* bare number: bytes */
	CU_ASSERT_EQUAL(v, 512);
	CU_ASSERT_EQUAL(s2_size_parse("1048576B", 20, &v), 0);
	CU_ASSERT_EQUAL(v, 1048576);
	CU_ASSERT_EQUAL(s2_size_parse("0", 20, &v), 0);
	CU_ASSERT_EQUAL(v, 0);
}

static void test_size_malformed(void)
{
	uint64_t v = 77;
	const char *bad[] = { "", "M", "-1M", "1.5G", "12X", "1MM", "1 M", "1Mi", "1GiBx", " 1", "0x10" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CU_ASSERT_EQUAL(s2_size_parse(bad[i], 20, &v), -EINVAL);
		CU_ASSERT_EQUAL(v, 77); /* untouched on error */
	}
	CU_ASSERT_EQUAL(s2_size_parse(NULL, 20, &v), -EINVAL);
}

static void test_size_overflow(void)
{
	uint64_t v;

	CU_ASSERT_EQUAL(s2_size_parse("18446744073709551615B", 20, &v), 0);
	CU_ASSERT_EQUAL(v, UINT64_MAX);
	CU_ASSERT_EQUAL(s2_size_parse("18446744073709551616B", 20, &v), -ERANGE);
	CU_ASSERT_EQUAL(s2_size_parse("16777216T", 20, &v), -ERANGE); /* 2^64 */
	CU_ASSERT_EQUAL(s2_size_parse("16777215T", 20, &v), 0);
	CU_ASSERT_EQUAL(s2_size_parse("99999999999999999999999", 20, &v), -ERANGE);
}

static void test_size_format(void)
{
	char b[32];

	CU_ASSERT_STRING_EQUAL(s2_size_format(0, b, sizeof(b)), "0 B");
	CU_ASSERT_STRING_EQUAL(s2_size_format(1023, b, sizeof(b)), "1023 B");
	CU_ASSERT_STRING_EQUAL(s2_size_format(4096, b, sizeof(b)), "4 KiB");
	CU_ASSERT_STRING_EQUAL(s2_size_format(128ull << 20, b, sizeof(b)), "128 MiB");
	CU_ASSERT_STRING_EQUAL(s2_size_format(3ull << 29, b, sizeof(b)), "1.5 GiB");
}

/* Parse a NULL-terminated word list as `s2vm run ...`. */
static int parse(struct run_opts *o, struct s2_err *e, const char **words)
{
	char *argv[32];
	int argc = 0;

	argv[argc++] = "run";
	for (; *words; words++)
		argv[argc++] = (char *)*words;
	argv[argc] = NULL;
	return run_opts_parse(argc, argv, o, e);
}

static void test_opts_defaults(void)
{
	struct run_opts o;
	struct s2_err e;
	const char *w[] = { "k.elf", NULL };

	CU_ASSERT_EQUAL(parse(&o, &e, w), RUN_OPTS_OK);
	CU_ASSERT_STRING_EQUAL(o.kernel, "k.elf");
	CU_ASSERT_EQUAL(o.mem_size, RUN_OPTS_DEFAULT_MEM);
	CU_ASSERT_EQUAL(o.vcpus, 1);
	CU_ASSERT_STRING_EQUAL(o.guest_args, "");
	CU_ASSERT_EQUAL(o.stats, RUN_STATS_NONE);
	run_opts_free(&o);
}

static void test_opts_full(void)
{
	struct run_opts o;
	struct s2_err e;
	const char *w[] = { "--mem", "1G", "k.elf", "-c", "3", "--stats=json", "--", "size=64M",
			    "--mem", "x", NULL };

	CU_ASSERT_EQUAL(parse(&o, &e, w), RUN_OPTS_OK);
	CU_ASSERT_STRING_EQUAL(o.kernel, "k.elf");
	CU_ASSERT_EQUAL(o.mem_size, 1ull << 30);
	CU_ASSERT_EQUAL(o.vcpus, 3);
	CU_ASSERT_EQUAL(o.stats, RUN_STATS_JSON);
	/* everything after "--" goes to the guest verbatim, even option-like words */
	CU_ASSERT_STRING_EQUAL(o.guest_args, "size=64M --mem x");
	run_opts_free(&o);
}

static void test_opts_help_version(void)
{
	struct run_opts o;
	struct s2_err e;
	const char *h[] = { "--help", NULL };
	const char *v[] = { "k.elf", "-V", NULL };

	CU_ASSERT_EQUAL(parse(&o, &e, h), RUN_OPTS_HELP);
	CU_ASSERT_EQUAL(parse(&o, &e, v), RUN_OPTS_VERSION);
}

static void expect_error(const char **w, const char *needle)
{
	struct run_opts o;
	struct s2_err e = { "" };
	int r = parse(&o, &e, w);

	CU_ASSERT_EQUAL(r, -EINVAL);
	if (!strstr(e.msg, needle))
		fprintf(stderr, "\n  message '%s' lacks '%s'\n", e.msg, needle);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, needle));
}

static void test_opts_errors(void)
{
	const char *nokernel[] = { "--mem", "64M", NULL };
	const char *two[] = { "a.elf", "b.elf", NULL };
	const char *unknown[] = { "k.elf", "--frobnicate", NULL };
	const char *unknown_short[] = { "k.elf", "-z", NULL };
	const char *badmem[] = { "k.elf", "--mem", "lots", NULL };
	const char *oddmem[] = { "k.elf", "--mem", "3M", NULL };
	const char *zeromem[] = { "k.elf", "--mem", "0", NULL };
	const char *hugemem[] = { "k.elf", "--mem", "99999999999T", NULL };
	const char *zerocpu[] = { "k.elf", "--vcpus", "0", NULL };
	const char *badcpu[] = { "k.elf", "--vcpus", "2x", NULL };
	const char *negcpu[] = { "k.elf", "--vcpus", "-1", NULL };
	const char *novalue[] = { "k.elf", "--mem", NULL };
	const char *badstats[] = { "k.elf", "--stats=xml", NULL };

	expect_error(nokernel, "missing KERNEL");
	expect_error(two, "unexpected argument 'b.elf'");
	expect_error(unknown, "unknown option --frobnicate");
	expect_error(unknown_short, "unknown option -z");
	expect_error(badmem, "not a size");
	expect_error(oddmem, "multiple of 2 MiB");
	expect_error(zeromem, "multiple of 2 MiB");
	expect_error(hugemem, "too large");
	expect_error(zerocpu, "at least one vCPU");
	expect_error(badcpu, "not a number");
	expect_error(negcpu, "not a number");
	expect_error(novalue, "needs a value");
	expect_error(badstats, "unknown format");
}

static void test_numa_opts(void)
{
	struct run_opts o;
	struct s2_err e = { "" };
	const char *w[] = { "k.elf", "--mem", "1G", "--numa", "guest=1,size=512M,host=3,policy=preferred,hosts=0:2",
			    "--numa", "guest=0,size=256M,policy=interleave,hosts=0-2",
			    "--pool", "3=1G", NULL };

	CU_ASSERT_EQUAL_FATAL(parse(&o, &e, w), RUN_OPTS_OK);
	CU_ASSERT_EQUAL(o.nr_numa, 2);
	/* sorted by guest ID */
	CU_ASSERT_EQUAL(o.numa[0].id, 0);
	CU_ASSERT_EQUAL(o.numa[0].policy, MM_POLICY_INTERLEAVE);
	CU_ASSERT_EQUAL(o.numa[0].nr_hosts, 3);
	CU_ASSERT_EQUAL(o.numa[0].hosts[2], 2);
	CU_ASSERT_EQUAL(o.numa[0].host, 0); /* defaults to the first of hosts= */
	CU_ASSERT_EQUAL(o.numa[1].id, 1);
	CU_ASSERT_EQUAL(o.numa[1].size, 512ull << 20);
	CU_ASSERT_EQUAL(o.numa[1].host, 3);
	CU_ASSERT_EQUAL(o.numa[1].policy, MM_POLICY_PREFERRED);
	CU_ASSERT_EQUAL(o.numa[1].nr_hosts, 2);
	CU_ASSERT_EQUAL(o.numa[1].hosts[1], 2);
	CU_ASSERT_EQUAL(o.nr_pools, 1);
	CU_ASSERT_EQUAL(o.pools[0].node, 3);
	CU_ASSERT_EQUAL(o.pools[0].bytes, 1ull << 30);
	run_opts_free(&o);
}

static void test_numa_opt_errors(void)
{
	const char *dup[] = { "k", "--numa", "guest=0,size=2M,host=0", "--numa", "guest=0,size=2M,host=0", NULL };
	const char *gap[] = { "k", "--numa", "guest=1,size=2M,host=0", NULL };
	const char *pol[] = { "k", "--numa", "guest=0,size=2M,host=0,policy=x", NULL };
	const char *odd[] = { "k", "--numa", "guest=0,size=1M,host=0", NULL };
	const char *nohost[] = { "k", "--numa", "guest=0,size=2M", NULL };
	const char *noid[] = { "k", "--numa", "size=2M,host=0", NULL };
	const char *bigid[] = { "k", "--numa", "guest=9,size=2M,host=0", NULL };
	const char *kv[] = { "k", "--numa", "guest=0,size", NULL };
	const char *badlist[] = { "k", "--numa", "guest=0,size=2M,policy=interleave,hosts=2-1", NULL };
	const char *badpool[] = { "k", "--pool", "x=1G", NULL };
	const char *smallpool[] = { "k", "--pool", "1=1M", NULL };

	expect_error(dup, "given more than once");
	expect_error(gap, "IDs must be 0..0");
	expect_error(pol, "unknown policy");
	expect_error(odd, "multiple of 2 MiB");
	expect_error(nohost, "needs host=NODE");
	expect_error(noid, "needs guest=ID");
	expect_error(bigid, "not a guest node ID");
	expect_error(kv, "is not KEY=VALUE");
	expect_error(badlist, "bad range");
	expect_error(badpool, "expected NODE=SIZE");
	expect_error(smallpool, "at least 2 MiB");
}

static CU_TestInfo tests[] = {
	{ "--numa and --pool", test_numa_opts },
	{ "--numa errors", test_numa_opt_errors },
	{ "size units", test_size_units },
	{ "size malformed", test_size_malformed },
	{ "size overflow", test_size_overflow },
	{ "size format", test_size_format },
	{ "run defaults", test_opts_defaults },
	{ "run all options", test_opts_full },
	{ "run help/version", test_opts_help_version },
	{ "run errors", test_opts_errors },
	CU_TEST_INFO_NULL,
};

UNIT_MAIN("options", tests)
