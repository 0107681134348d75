// SPDX-License-Identifier: MIT
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_args.h"

int bench_parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	uint64_t v;

	if (*s < '0' || *s > '9')
		return -EINVAL; /* strtoull would take a sign or blanks */
	errno = 0; /* base 10 unless 0x: "010" is ten, not octal eight */
	v = strtoull(s, &end, s[0] == '0' && (s[1] == 'x' || s[1] == 'X') ? 16 : 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

int bench_parse_size(const char *s, uint64_t *out)
{
	char *end;
	uint64_t v;
	int sh = 0;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	if (*end && strchr("kKmMgG", *end)) {
		sh = *end == 'k' || *end == 'K' ? 10 : *end == 'm' || *end == 'M' ? 20 : 30;
		end++;
	}
	if (*end || v > (UINT64_MAX >> sh))
		return -EINVAL;
	*out = v << sh;
	return 0;
}

uint64_t bench_opt_u64(const char *prog, const char *opt, const char *arg, uint64_t lo,
		       uint64_t hi)
{
	uint64_t v;

	if (bench_parse_u64(arg, lo, hi, &v)) {
		fprintf(stderr, "%s: --%s '%s': a whole number from %" PRIu64 " to %" PRIu64 "\n",
			prog, opt, arg, lo, hi);
		exit(2);
	}
	return v;
}
