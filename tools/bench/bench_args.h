/* SPDX-License-Identifier: MIT */
/* Option values of the benchmarks (tools/bench): whole numbers and sizes, checked whole. */
#ifndef S2VM_BENCH_ARGS_H
#define S2VM_BENCH_ARGS_H

#include <stdint.h>

/* A whole number (decimal, or hex after 0x) in [@lo, @hi]: no sign, blank or trailing
 * text. Returns 0 or -EINVAL. */
int bench_parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);

/* Bytes: "4096", "64K", "256M", "1G" (binary suffixes). Returns 0 or -EINVAL (also when
 * the value overflows). */
int bench_parse_size(const char *s, uint64_t *out);

/* The value @arg of option --@opt of benchmark @prog, by bench_parse_u64(); on a bad one
 * says why ("bench-numa: --gib 'x': a whole number from 1 to 64") and exits 2. */
uint64_t bench_opt_u64(const char *prog, const char *opt, const char *arg, uint64_t lo,
		       uint64_t hi);

#endif
