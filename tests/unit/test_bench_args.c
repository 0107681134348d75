// SPDX-License-Identifier: MIT
/* The benchmarks' option parsers (tools/bench/bench_args.c): whole values only. */
#include <errno.h>
#include <stdint.h>

#include "tests/unit/unit.h"
#include "tools/bench/bench_args.h"

static void test_u64(void)
{
	uint64_t v = 7;

	CU_ASSERT_EQUAL(bench_parse_u64("42", 1, 64, &v), 0);
	CU_ASSERT_EQUAL(v, 42);
	CU_ASSERT_EQUAL(bench_parse_u64("0x10", 1, 64, &v), 0);
	CU_ASSERT_EQUAL(v, 16);
	CU_ASSERT_EQUAL(bench_parse_u64("010", 1, 64, &v), 0);
	CU_ASSERT_EQUAL(v, 10);
	CU_ASSERT_EQUAL(bench_parse_u64("18446744073709551615", 0, UINT64_MAX, &v), 0);
	CU_ASSERT_EQUAL(v, UINT64_MAX);
	v = 7;
	/* each refused, *out untouched */
	CU_ASSERT_EQUAL(bench_parse_u64("", 0, 64, &v), -EINVAL);
	CU_ASSERT_EQUAL(bench_parse_u64("2x", 0, 64, &v), -EINVAL);
	CU_ASSERT_EQUAL(bench_parse_u64(" 2", 0, 64, &v), -EINVAL);
	CU_ASSERT_EQUAL(bench_parse_u64("+2", 0, 64, &v), -EINVAL);
	CU_ASSERT_EQUAL(bench_parse_u64("-1", 0, UINT64_MAX, &v), -EINVAL);
	CU_ASSERT_EQUAL(bench_parse_u64("0", 1, 64, &v), -EINVAL);
	CU_ASSERT_EQUAL(bench_parse_u64("65", 1, 64, &v), -EINVAL);
	CU_ASSERT_EQUAL(bench_parse_u64("18446744073709551616", 0, UINT64_MAX, &v), -EINVAL);
	CU_ASSERT_EQUAL(v, 7);
}

static void test_size(void)
{
	uint64_t v = 7;

	CU_ASSERT_EQUAL(bench_parse_size("4096", &v), 0);
	CU_ASSERT_EQUAL(v, 4096);
	CU_ASSERT_EQUAL(bench_parse_size("64K", &v), 0);
	CU_ASSERT_EQUAL(v, 64 << 10);
	CU_ASSERT_EQUAL(bench_parse_size("256m", &v), 0);
	CU_ASSERT_EQUAL(v, 256ull << 20);
	CU_ASSERT_EQUAL(bench_parse_size("1G", &v), 0);
	CU_ASSERT_EQUAL(v, 1ull << 30);
	v = 7;
	CU_ASSERT_EQUAL(bench_parse_size("1Q", &v), -EINVAL);
	CU_ASSERT_EQUAL(bench_parse_size("1KB", &v), -EINVAL);
	CU_ASSERT_EQUAL(bench_parse_size("K", &v), -EINVAL);
	CU_ASSERT_EQUAL(bench_parse_size("-1M", &v), -EINVAL);
	CU_ASSERT_EQUAL(bench_parse_size("17179869184G", &v), -EINVAL); /* 2^64 bytes */
	CU_ASSERT_EQUAL(v, 7);
}

static CU_TestInfo tests[] = {
	{ "whole numbers in a range", test_u64 },
	{ "sizes with binary suffixes", test_size },
	CU_TEST_INFO_NULL,
};

UNIT_MAIN("bench-args", tests)
