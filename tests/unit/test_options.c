// SPDX-License-Identifier: MIT
/* Sizes and `s2vm run` option parsing. */
#include <errno.h>
#include <string.h>

#include "tests/unit/unit.h"
#include "vmm/mems.h"
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
	const char *w[] = { "k.elf", "--mem", "768M", "--numa", "guest=1,size=512M,host=3,policy=preferred,hosts=0:2",
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
	expect_error(badlist, "reversed range 2-1");
	expect_error(badpool, "expected NODE=SIZE");
	expect_error(smallpool, "at least 2 MiB");
}

/* Each word list must be refused with a message containing its needle. */
struct bad_case {
	const char *w[24]; /* NULL-terminated */
	const char *needle;
};

static void expect_errors(const struct bad_case *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		expect_error((const char **)c[i].w, c[i].needle);
}

#define EXPECT_ERRORS(cases) expect_errors(cases, sizeof(cases) / sizeof(cases[0]))

static void test_numa_strict(void)
{
	static const struct bad_case cases[] = {
		/* each key at most once; a repeated guest= is a repeated key, not a bad ID */
		{ { "k", "--numa", "guest=0,size=32M,size=64M,host=0" },
		  "key 'size' given more than once" },
		{ { "k", "--numa", "guest=0,guest=9,size=2M,host=0" },
		  "key 'guest' given more than once" },
		{ { "k", "--numa", "guest=0,size=2M,host=0,host=1" }, "key 'host' given more than once" },
		{ { "k", "--numa", "guest=0,size=2M,host=0,policy=bind,policy=bind" },
		  "key 'policy' given more than once" },
		{ { "k", "--numa", "guest=0,size=2M,policy=interleave,hosts=0,hosts=1" },
		  "key 'hosts' given more than once" },
		/* no empty items */
		{ { "k", "--numa", "guest=0,,size=2M,host=0" }, "empty item (',,')" },
		{ { "k", "--numa", ",guest=0,size=2M,host=0" }, "empty item (leading ',')" },
		{ { "k", "--numa", "guest=0,size=2M,host=0," }, "empty item (trailing ',')" },
		{ { "k", "--numa", "" }, "--numa: empty value" },
		/* options that do not apply to the policy */
		{ { "k", "--numa", "guest=0,size=2M,host=0,policy=bind,hosts=1:2" },
		  "hosts= does not apply to policy=bind (it is for policy=preferred or policy=interleave)" },
		{ { "k", "--numa", "guest=0,size=2M,host=0,hosts=1:2" },
		  "hosts= does not apply to policy=bind, the default" },
		{ { "k", "--numa", "guest=0,size=2M,host=3,policy=interleave,hosts=0:1" },
		  "host=3 is not in hosts=" },
		/* node lists */
		{ { "k", "--numa", "guest=0,size=2M,policy=interleave,hosts=0:" },
		  "'hosts=0:': trailing ':'" },
		{ { "k", "--numa", "guest=0,size=2M,policy=interleave,hosts=0:0:0:0" },
		  "'hosts=0:0:0:0': host node 0 listed twice" },
		{ { "k", "--numa", "guest=0,size=2M,policy=interleave,hosts=0-2:1" },
		  "host node 1 listed twice" },
		{ { "k", "--numa", "guest=0,size=2M,policy=interleave,hosts=5-2" },
		  "'hosts=5-2': reversed range 5-2" },
		{ { "k", "--numa", "guest=0,size=2M,policy=interleave,hosts=2-" },
		  "'hosts=2-': expected the range's end node at ''" },
		{ { "k", "--numa", "guest=0,size=2M,policy=interleave,hosts=:0" },
		  "expected a host node number (a list is 0:1 or 0-2) at ':0'" },
		{ { "k", "--numa", "guest=0,size=2M,policy=interleave,hosts=0::1" },
		  "at ':1'" },
		{ { "k", "--numa", "guest=0,size=2M,policy=interleave,hosts=0-1-2" },
		  "unexpected '-2'" },
		{ { "k", "--numa", "guest=0,size=2M,policy=interleave,hosts=64" },
		  "host node 64 out of range (0..63)" },
		{ { "k", "--numa", "guest=0,size=2M,policy=interleave,hosts=0-64" },
		  "host node 64 out of range (0..63)" },
		{ { "k", "--numa", "guest=0,size=2M,policy=interleave,hosts=99999999999999999999999" },
		  "host node 99999999999999999999999 out of range (0..63)" },
		{ { "k", "--numa", "guest=0,size=2M,policy=interleave,hosts=1-99999999999999999999999" },
		  "host node 99999999999999999999999 out of range (0..63)" },
		{ { "k", "--numa", "guest=99999999999999999999999,size=2M,host=0" },
		  "not a guest node ID (0..7)" },
		{ { "k", "--numa", "guest=0,size=2M,host=99999999999999999999999" },
		  "not a host node (0..63)" },
		{ { "k", "--numa", "guest=0,size=2M,policy=interleave,hosts=0-8" }, "more than 8 nodes" },
		{ { "k", "--numa", "guest=0,size=2M,policy=interleave,hosts=" }, "hosts= is empty" },
		/* sizes: each checked, and their sum too, before it can wrap */
		{ { "k", "--numa", "guest=0,size=16777216T,host=0" }, "size too large" },
		{ { "k", "--mem", "2M", "--numa", "guest=0,size=8388608T,host=0", "--numa",
		    "guest=1,size=9223372036856872960B,host=0" },
		  "guest node sizes add up to more than 2^64 bytes" },
		{ { "k", "--mem", "64M", "--numa", "guest=0,size=32M,host=0" },
		  "guest node sizes add up to 32 MiB but --mem is 64 MiB" },
		{ { "k", "--numa", "guest=0,size=64M,host=0", "--mem", "32M" },
		  "guest node sizes add up to 64 MiB but --mem is 32 MiB" },
	};

	EXPECT_ERRORS(cases);
}

/* What the strict --numa parser still accepts. */
static void test_numa_accepted(void)
{
	struct mm_guest_node n;
	struct s2_err e = { "" };
	struct run_opts o;
	const char *w[] = { "k", "--mem", "64M", "--numa", "guest=1,size=32M,host=1",
			    "--numa", "guest=0,size=32M,host=2,policy=interleave,hosts=0-1:2", NULL };

	CU_ASSERT_EQUAL(numa_opt_parse("guest=0,size=2M,host=1,policy=preferred,hosts=0-3", &n, &e), 0);
	CU_ASSERT_EQUAL(n.nr_hosts, 4); /* preferred may list its own node: it is skipped */
	CU_ASSERT_EQUAL(numa_opt_parse("policy=interleave,hosts=7:3,size=4M,guest=7", &n, &e), 0);
	CU_ASSERT_EQUAL(n.id, 7);
	CU_ASSERT_EQUAL(n.host, 7); /* the first of hosts= */
	CU_ASSERT_EQUAL(n.hosts[1], 3);
	CU_ASSERT_EQUAL(numa_opt_parse("guest=00,size=2M,host=063", &n, &e), 0); /* leading zeros */
	CU_ASSERT_EQUAL(n.host, 63);
	CU_ASSERT_EQUAL(numa_opt_parse("guest=0,guest=0,size=2M,host=0", &n, &e), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "key 'guest' given more than once"));

	CU_ASSERT_EQUAL_FATAL(parse(&o, &e, w), RUN_OPTS_OK);
	CU_ASSERT_EQUAL(o.numa[0].host, 2);
	CU_ASSERT_EQUAL(o.numa[0].nr_hosts, 3);
	run_opts_free(&o);
}

static void test_pool_strict(void)
{
	static const struct bad_case cases[] = {
		{ { "k", "--pool", "1=512M", "--pool", "1=256M" },
		  "--pool 1=256M: host node 1's pool is capped more than once" },
		{ { "k", "--pool", "1=3M" }, "--pool 1=3M: size must be a multiple of 2 MiB" },
		{ { "k", "--pool", "1=1025M" }, "size must be a multiple of 2 MiB" },
		{ { "k", "--pool", "1=0" }, "size must be at least 2 MiB" },
		{ { "k", "--pool", "0=32T" },
		  "--pool 0=32T: at most 1 TiB per host node" },
		{ { "k", "--pool", "0=1099513724928B" }, "at most 1 TiB per host node" },
		{ { "k", "--pool", "0=99999999999T" }, "at most 1 TiB per host node" },
		{ { "k", "--pool", "1=lots" }, "--pool 1=lots: 'lots' is not a size" },
		{ { "k", "--pool", "1=" }, "--pool 1=: SIZE is missing after '='" },
		{ { "k", "--pool", "64=1G" }, "--pool 64=1G: host node 64 out of range (0..63)" },
		{ { "k", "--pool", "99999999999999999999999=1G" },
		  "host node 99999999999999999999999 out of range (0..63)" },
		{ { "k", "--pool", "=1G" }, "expected NODE=SIZE" },
		{ { "k", "--pool", "1" }, "--pool 1: expected NODE=SIZE" },
		{ { "k", "--pool", "0=2M", "--pool", "1=2M", "--pool", "2=2M", "--pool", "3=2M",
		    "--pool", "4=2M", "--pool", "5=2M", "--pool", "6=2M", "--pool", "7=2M",
		    "--pool", "8=2M" },
		  "--pool: at most 8" },
	};
	struct run_opts o;
	struct s2_err e = { "" };
	const char *w[] = { "k", "--pool", "0=1T", "--pool", "1=2M", NULL };

	EXPECT_ERRORS(cases);
	CU_ASSERT_EQUAL_FATAL(parse(&o, &e, w), RUN_OPTS_OK); /* exactly the limit fits */
	CU_ASSERT_EQUAL(o.nr_pools, 2);
	CU_ASSERT_EQUAL(o.pools[0].bytes, 1ull << 40);
	CU_ASSERT_EQUAL(o.pools[1].bytes, 2ull << 20);
	run_opts_free(&o);
}

/* Every number, alone or inside --numa, --pool and --churn: digits only. */
static void test_numbers_plain(void)
{
	static const char *const sign = "no '+' or '-' sign allowed";
	static const char *const blank = "blanks are not allowed";
	static const struct bad_case cases[] = {
		{ { "k", "--mem", "+128M" }, "--mem +128M: not a size (try 128M, 2G or 512MiB) (no '+'" },
		{ { "k", "--mem", "-0" }, "--mem -0: not a size" },
		{ { "k", "--mem", " 128M" }, "--mem ' 128M': blanks are not allowed" },
		{ { "k", "--mem", "128M " }, "--mem '128M ': blanks are not allowed" },
		{ { "k", "--vcpus", "+1" }, "--vcpus +1: not a number (no '+'" },
		{ { "k", "--vcpus", "-0" }, "--vcpus -0: not a number (no '+'" },
		{ { "k", "--vcpus", " 1" }, "--vcpus ' 1': blanks" },
		{ { "k", "--vcpus", "1 " }, "--vcpus '1 ': blanks" },
		{ { "k", "--vcpus", "99999999999999999999999" }, "too many vCPUs" },
		{ { "k", "--numa", "guest=+0,size=2M,host=0" }, "--numa guest=+0: not a guest node ID" },
		{ { "k", "--numa", "guest=-0,size=2M,host=0" }, "--numa guest=-0: not a guest node ID" },
		{ { "k", "--numa", "guest= 0,size=2M,host=0" }, "--numa 'guest= 0,size=2M,host=0': blanks" },
		{ { "k", "--numa", "guest=0 ,size=2M,host=0" }, blank },
		{ { "k", "--numa", "guest=0,size=+2M,host=0" }, "--numa size=+2M: not a size (no '+'" },
		{ { "k", "--numa", "guest=0,size=-0,host=0" }, "--numa size=-0: not a size (no '+'" },
		{ { "k", "--numa", "guest=0,size= 2M,host=0" }, blank },
		{ { "k", "--numa", "guest=0,size=2M ,host=0" }, blank },
		{ { "k", "--numa", "guest=0,size=2M,host=+1" }, "--numa host=+1: not a host node (0..63) (no '+'" },
		{ { "k", "--numa", "guest=0,size=2M,host=-0" }, "--numa host=-0: not a host node" },
		{ { "k", "--numa", "guest=0,size=2M,host= 1" }, blank },
		{ { "k", "--numa", "guest=0,size=2M,host=1 " }, blank },
		{ { "k", "--numa", "guest=0,size=2M,policy=interleave,hosts=+1" },
		  "expected a host node number (a list is 0:1 or 0-2) at '+1' (no '+'" },
		{ { "k", "--numa", "guest=0,size=2M,policy=interleave,hosts=-0" }, sign },
		{ { "k", "--numa", "guest=0,size=2M,policy=interleave,hosts=0-+1" },
		  "expected the range's end node at '+1' (no '+'" },
		{ { "k", "--numa", "guest=0,size=2M,policy=interleave,hosts=0:-1" }, sign },
		{ { "k", "--numa", "guest=0,size=2M,policy=interleave,hosts= 1" }, blank },
		{ { "k", "--numa", "guest=0,size=2M,policy=interleave,hosts=0: 1" }, blank },
		{ { "k", "--numa", "guest=0,size=2M,policy=interleave,hosts=1 " }, blank },
		{ { "k", "--pool", "+1=2M" }, "--pool +1=2M: expected NODE=SIZE, e.g. 1=512M (no '+'" },
		{ { "k", "--pool", "-0=2M" }, sign },
		{ { "k", "--pool", " 1=2M" }, "--pool ' 1=2M': blanks are not allowed" },
		{ { "k", "--pool", "1 =2M" }, blank },
		{ { "k", "--pool", "1=+2M" }, "--pool 1=+2M: '+2M' is not a size (no '+'" },
		{ { "k", "--pool", "1=-0" }, sign },
		{ { "k", "--pool", "1= 2M" }, blank },
		{ { "k", "--pool", "1=2M " }, blank },
		{ { "k", "--churn", "+1" }, "--churn +1: expected MS[,SIZE] with MS in 1..3600000 (no '+'" },
		{ { "k", "--churn", "-0" }, sign },
		{ { "k", "--churn", " 1" }, "--churn ' 1': blanks are not allowed" },
		{ { "k", "--churn", "1 " }, blank },
		{ { "k", "--churn", "10,+2M" }, "--churn 10,+2M: SIZE '+2M' is not a size (no '+'" },
		{ { "k", "--churn", "10,-0" }, sign },
		{ { "k", "--churn", "10, 2M" }, blank },
		{ { "k", "--churn", "10,2M " }, blank },
	};

	EXPECT_ERRORS(cases);
}

static void test_churn_strict(void)
{
	static const struct bad_case cases[] = {
		{ { "k", "--churn", "10,1T" },
		  "--churn 10,1T: SIZE is more than the guest's RAM (--mem 128 MiB)" },
		/* --mem may come after --churn: checked once all options are in */
		{ { "k", "--churn", "10,256M", "--mem", "128M" },
		  "--churn 10,256M: SIZE is more than the guest's RAM (--mem 128 MiB)" },
		{ { "k", "--churn", "10," }, "--churn 10,: SIZE is missing after ','" },
		{ { "k", "--churn", "10,2M,4M" }, "SIZE '2M,4M' is not a size" },
		{ { "k", "--churn", "10,16777216T" }, "--churn 10,16777216T: SIZE too large" },
		{ { "k", "--churn", "10,3M" }, "SIZE must be a non-zero multiple of 2 MiB" },
		{ { "k", "--churn", "0" }, "--churn 0: expected MS[,SIZE]" },
		{ { "k", "--churn", "3600001" }, "with MS in 1..3600000" },
		{ { "k", "--churn", "99999999999999999999999" }, "with MS in 1..3600000" },
	};
	struct run_opts o;
	struct s2_err e = { "" };
	const char *w[] = { "k", "--churn", "10,256M", "--mem", "256M", NULL };

	EXPECT_ERRORS(cases);
	CU_ASSERT_EQUAL_FATAL(parse(&o, &e, w), RUN_OPTS_OK); /* SIZE == --mem is allowed */
	CU_ASSERT_EQUAL(o.churn_ms, 10);
	CU_ASSERT_EQUAL(o.churn_bytes, 256ull << 20);
	run_opts_free(&o);
}

static void test_opts_values(void)
{
	static const struct bad_case cases[] = {
		{ { "k", "--help=1" }, "--help takes no value" },
		{ { "k", "--version=yes" }, "--version takes no value" },
		{ { "k", "--hel=1" }, "--help takes no value" }, /* abbreviated */
		{ { "k", "--mem=" }, "--mem: empty value" },
		{ { "k", "--mem", "" }, "--mem: empty value" },
		{ { "k", "-m", "" }, "--mem: empty value" },
		{ { "k", "--vcpus=" }, "--vcpus: empty value" },
		{ { "k", "--pool=" }, "--pool: empty value" },
		{ { "k", "--churn=" }, "--churn: empty value" },
		{ { "k", "--accel=" }, "--accel: empty value" },
		{ { "k", "--stats=" }, "--stats: empty value" },
		{ { "k", "--stats=xml" }, "--stats=xml: unknown format (text or json)" },
		{ { "k", "--accel", " kvm" }, "--accel ' kvm': blanks are not allowed" },
		{ { "k", "--migrate-writable" }, "option --migrate-writable needs a value" },
		{ { "k", "-c" }, "option --vcpus needs a value" },
		{ { "k", "--frobnicate=3" }, "unknown option --frobnicate" },
		{ { "k", "--m", "64M" }, "option --m is ambiguous (--mem or --migrate-writable)" },
		{ { "k", "-z" }, "unknown option -z" },
		{ { "k", "-cz" }, "--vcpus z: not a number" },
	};

	EXPECT_ERRORS(cases);
}

/* The lab's engine knobs: --migrate-batch, --defer-invalidation, --timeline. */
static void test_engine_knobs(void)
{
	static const struct bad_case cases[] = {
		{ { "k", "--migrate-batch", "6K" }, "--migrate-batch 6K: expected a multiple of 4K" },
		{ { "k", "--migrate-batch", "0" }, "--migrate-batch 0: expected" },
		{ { "k", "--migrate-batch", "2G" }, "--migrate-batch 2G: expected" },
		{ { "k", "--migrate-batch", "-4K" }, "--migrate-batch -4K: expected" },
		{ { "k", "--defer-invalidation=yes" }, "--defer-invalidation=yes: expected on or off" },
		{ { "k", "--timeline=0" }, "--timeline=0: expected a number of events from 1" },
		{ { "k", "--timeline=1048577" }, "--timeline=1048577: expected" },
		{ { "k", "--timeline=-1" }, "--timeline=-1: expected" },
		{ { "k", "--timeline=12x" }, "--timeline=12x: expected" },
		{ { "k", "--migrate-copy-threads", "65" }, "--migrate-copy-threads 65: expected" },
		{ { "k", "--migrate-copy-threads", "-1" }, "--migrate-copy-threads -1: expected" },
		{ { "k", "--migrate-exact=1" }, "--migrate-exact takes no value" },
	};
	struct run_opts o;
	struct s2_err e = { "" };
	const char *dflt[] = { "k", NULL };
	const char *all[] = { "k", "--migrate-batch", "2M", "--defer-invalidation=on",
			      "--timeline", "--migrate-copy-threads", "3", "--migrate-exact", NULL };
	const char *n[] = { "k", "--timeline=100", "--defer-invalidation=off", NULL };

	EXPECT_ERRORS(cases);
	CU_ASSERT_EQUAL_FATAL(parse(&o, &e, dflt), RUN_OPTS_OK);
	CU_ASSERT_EQUAL(o.batch_bytes, 0);
	CU_ASSERT_FALSE(o.defer_invalidation);
	CU_ASSERT_EQUAL(o.timeline_cap, 0);
	run_opts_free(&o);
	CU_ASSERT_EQUAL_FATAL(parse(&o, &e, all), RUN_OPTS_OK);
	CU_ASSERT_EQUAL(o.batch_bytes, 2ull << 20);
	CU_ASSERT_TRUE(o.defer_invalidation);
	CU_ASSERT_EQUAL(o.timeline_cap, RUN_TIMELINE_DEFAULT);
	CU_ASSERT_EQUAL(o.copy_threads, 3);
	CU_ASSERT_TRUE(o.migrate_exact);
	run_opts_free(&o);
	CU_ASSERT_EQUAL_FATAL(parse(&o, &e, n), RUN_OPTS_OK);
	CU_ASSERT_EQUAL(o.timeline_cap, 100);
	CU_ASSERT_FALSE(o.defer_invalidation);
	run_opts_free(&o);
}

/* --disk values: every key, defaults, and each malformed form refused naming the key. */
static void test_disk_opts(void)
{
	struct disk_opts d;
	struct s2_err e = { "" };
	static const struct {
		const char *s, *needle;
	} bad[] = {
		{ "", "empty" },
		{ "readonly=on", "path" },
		{ "path=", "path" },
		{ "path=a,path=b", "path" },
		{ "path=a,readonly=yes", "readonly" },
		{ "path=a,direct=1", "direct" },
		{ "path=a,num_queues=0", "num_queues" },
		{ "path=a,num_queues=9", "num_queues" },
		{ "path=a,num_queues=-1", "num_queues" },
		{ "path=a,queue_size=3", "queue_size" },
		{ "path=a,queue_size=2", "queue_size" },
		{ "path=a,registered=on,num_queues=4,pinned_max=6M", "pinned_max" },
		{ "path=a,queue_size=2048", "queue_size" },
		{ "path=a,queue_size=", "queue_size" },
		{ "path=a,registered=on,pinned_max=3M", "pinned_max" },
		{ "path=a,registered=on,pinned_max=lots", "pinned_max" },
		{ "path=a,registered=on,home_node=x", "home_node" },
		{ "path=a,bogus=1", "bogus" },
		{ "path=a,,readonly=on", "" },
	};

	CU_ASSERT_EQUAL_FATAL(disk_opt_parse("path=/tmp/x.img", &d, &e), 0);
	CU_ASSERT_STRING_EQUAL(d.path, "/tmp/x.img");
	CU_ASSERT_FALSE(d.readonly);
	CU_ASSERT_FALSE(d.direct);
	CU_ASSERT_FALSE(d.registered);
	CU_ASSERT_EQUAL(d.num_queues, 1);
	CU_ASSERT_EQUAL(d.queue_size, DISK_DEFAULT_QUEUE_SIZE);
	CU_ASSERT_EQUAL(d.home_node, -1);
	free(d.path);

	CU_ASSERT_EQUAL_FATAL(disk_opt_parse("path=d.img,readonly=on,direct=on,num_queues=4,"
					     "queue_size=64,registered=on,home_node=1,"
					     "pinned_max=128M",
					     &d, &e),
			      0);
	CU_ASSERT_STRING_EQUAL(d.path, "d.img");
	CU_ASSERT_TRUE(d.readonly);
	CU_ASSERT_TRUE(d.direct);
	CU_ASSERT_TRUE(d.registered);
	CU_ASSERT_EQUAL(d.num_queues, 4);
	CU_ASSERT_EQUAL(d.queue_size, 64);
	CU_ASSERT_EQUAL(d.home_node, 1);
	CU_ASSERT_EQUAL(d.pinned_max, 128ull << 20);
	free(d.path);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		e.msg[0] = 0;
		CU_ASSERT_EQUAL(disk_opt_parse(bad[i].s, &d, &e), -EINVAL);
		if (!strstr(e.msg, bad[i].needle))
			fprintf(stderr, "\n  --disk %s: message '%s' lacks '%s'\n", bad[i].s, e.msg,
				bad[i].needle);
		CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, bad[i].needle));
	}
}

/* --balloon values: every key, the schedule, and each malformed form refused by name;
 * targets above --mem refused by run_opts_parse(). */
static void test_balloon_opts(void)
{
	struct s2_err e = { "" };
	struct balloon_opts b;
	struct run_opts o;
	static const struct {
		const char *s, *needle;
	} bad[] = {
		{ "", "empty value" },
		{ "deflate_on_oom=on", "needs size=SIZE" },
		{ "size=", "not a size" },
		{ "size=5001K", "multiple of 4 KiB" },
		{ "size=1M,size=2M", "more than once" },
		{ "size=1M,color=red", "unknown key 'color'" },
		{ "size=1M,free_page_reporting=yes", "expected on or off" },
		{ "size=1M,stats_polling=-1", "stats_polling" },
		{ "size=1M,stats_polling=3601", "0..3600" },
		{ "size=1M,schedule=1M::2M", "schedule" },
		{ "size=1M,schedule=1M:2M:3M:4M:5M:6M:7M:8M:9M:10M:11M:12M:13M:14M:15M:16M:17M",
		  "at most 16" },
		{ "size=1M,,deflate_on_oom=on", "empty item" },
		{ "size=1M deflate_on_oom=on", "blanks" },
	};
	const char *big[] = { "k.elf", "--mem", "64M", "--balloon", "size=8M,schedule=16M:65M", NULL };
	const char *twice[] = { "k.elf", "--balloon", "size=1M", "--balloon", "size=2M", NULL };
	const char *ok[] = { "k.elf", "--mem", "64M", "--balloon", "size=64M,schedule=0:4K", NULL };

	CU_ASSERT_EQUAL_FATAL(balloon_opt_parse("size=16M", &b, &e), 0);
	CU_ASSERT(b.enabled);
	CU_ASSERT_EQUAL(b.size, 16ull << 20);
	CU_ASSERT(!b.deflate_on_oom && !b.free_page_reporting);
	CU_ASSERT_EQUAL(b.stats_polling, 0);
	CU_ASSERT_EQUAL(b.nr_schedule, 0);
	CU_ASSERT_EQUAL_FATAL(balloon_opt_parse("size=0,deflate_on_oom=on,free_page_reporting=on,"
						"stats_polling=2,schedule=64M:0:8K",
						&b, &e),
			      0);
	CU_ASSERT_EQUAL(b.size, 0);
	CU_ASSERT(b.deflate_on_oom && b.free_page_reporting);
	CU_ASSERT_EQUAL(b.stats_polling, 2);
	CU_ASSERT_EQUAL_FATAL(b.nr_schedule, 3);
	CU_ASSERT_EQUAL(b.schedule[0], 64ull << 20);
	CU_ASSERT_EQUAL(b.schedule[1], 0);
	CU_ASSERT_EQUAL(b.schedule[2], 8192);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CU_ASSERT_EQUAL(balloon_opt_parse(bad[i].s, &b, &e), -EINVAL);
		if (!strstr(e.msg, bad[i].needle))
			fprintf(stderr, "\n  --balloon %s: message '%s' lacks '%s'\n", bad[i].s,
				e.msg, bad[i].needle);
		CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, bad[i].needle));
	}
	CU_ASSERT_EQUAL(parse(&o, &e, big), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "more than the guest's RAM"));
	CU_ASSERT_EQUAL(parse(&o, &e, twice), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "more than once"));
	CU_ASSERT_EQUAL_FATAL(parse(&o, &e, ok), RUN_OPTS_OK);
	CU_ASSERT(o.balloon.enabled);
	CU_ASSERT_EQUAL(o.balloon.nr_schedule, 2);
	run_opts_free(&o);
}

/* Mems_allowed_list values as the kernel prints them, and malformed ones. */
static void test_mems_list(void)
{
	static const struct {
		const char *s;
		uint64_t mask;
	} good[] = { { "0", 1 }, { "0-1", 3 }, { "0,2-3,63", 0x800000000000000dull },
		     { "5\n", 1ull << 5 }, { "0-63", ~0ull } };
	static const char *const bad[] = { "", "-1", "1-", "3-2", "64", "0,,1", "a", "0 1", "1-2-3" };
	uint64_t m;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		m = 0;
		CU_ASSERT_EQUAL(mems_list_parse(good[i].s, &m), 0);
		CU_ASSERT_EQUAL(m, good[i].mask);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CU_ASSERT_EQUAL(mems_list_parse(bad[i], &m), -EINVAL);
}

/* --lab-out FILE: kept as given, at most once, never empty. */
static void test_lab_out(void)
{
	static const struct bad_case cases[] = {
		{ { "k", "--lab-out" }, "option --lab-out needs a value" },
		{ { "k", "--lab-out=" }, "--lab-out: empty value" },
		{ { "k", "--lab-out", "a", "--lab-out", "b" }, "--lab-out: given more than once" },
		{ { "k", "--lab-out", "a b" }, "blanks are not allowed" },
	};
	struct run_opts o;
	struct s2_err e = { "" };
	const char *dflt[] = { "k", NULL };
	const char *given[] = { "k", "--lab-out", "/tmp/x.blob", NULL };

	EXPECT_ERRORS(cases);
	CU_ASSERT_EQUAL_FATAL(parse(&o, &e, dflt), RUN_OPTS_OK);
	CU_ASSERT_PTR_NULL(o.lab_out);
	run_opts_free(&o);
	CU_ASSERT_EQUAL_FATAL(parse(&o, &e, given), RUN_OPTS_OK);
	CU_ASSERT_STRING_EQUAL(o.lab_out, "/tmp/x.blob");
	run_opts_free(&o);
}

static CU_TestInfo tests[] = {
	{ "--lab-out", test_lab_out },
	{ "engine knobs: --migrate-batch, --defer-invalidation, --timeline", test_engine_knobs },
	{ "Mems_allowed lists", test_mems_list },
	{ "--disk values", test_disk_opts },
	{ "--balloon values", test_balloon_opts },
	{ "--numa and --pool", test_numa_opts },
	{ "--numa errors", test_numa_opt_errors },
	{ "--numa strict", test_numa_strict },
	{ "--numa accepted", test_numa_accepted },
	{ "--pool strict", test_pool_strict },
	{ "--churn strict", test_churn_strict },
	{ "numbers: no sign, no blanks", test_numbers_plain },
	{ "size units", test_size_units },
	{ "size malformed", test_size_malformed },
	{ "size overflow", test_size_overflow },
	{ "size format", test_size_format },
	{ "run defaults", test_opts_defaults },
	{ "run all options", test_opts_full },
	{ "run help/version", test_opts_help_version },
	{ "run errors", test_opts_errors },
	{ "run option values", test_opts_values },
	CU_TEST_INFO_NULL,
};

UNIT_MAIN("options", tests)
