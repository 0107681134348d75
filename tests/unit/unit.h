/* SPDX-License-Identifier: MIT */
/* One CUnit suite per test binary; tests/unit/meson.build lists the suites. */
#ifndef S2VM_UNIT_H
#define S2VM_UNIT_H

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The lowest GPA the process accelerator maps at host address == GPA: 0x10000, or
 * vm.mmap_min_addr rounded up to a page if that is higher (as vmm/accel_proc.c), for
 * tests that lay guest memory out as --accel proc does. */
static inline uint64_t unit_alias_floor(void)
{
	uint64_t min = 0;
	FILE *f = fopen("/proc/sys/vm/mmap_min_addr", "r");

	if (f) {
		if (fscanf(f, "%" SCNu64, &min) != 1)
			min = 0;
		fclose(f);
	}
	min = (min + 4095) & ~4095ull;
	return min > 0x10000 ? min : 0x10000;
}

/* The seed of a randomized suite: $S2VM_SEED if set, else @fallback. Printed once so a
 * failure can be replayed with S2VM_SEED=... */
static inline unsigned long long unit_seed(unsigned long long fallback)
{
	const char *s = getenv("S2VM_SEED");
	unsigned long long v = s && *s ? strtoull(s, NULL, 0) : fallback;
	static int said;

	if (!said++)
		fprintf(stderr, "seed: S2VM_SEED=%#llx\n", v);
	if (!v)
		v = fallback; /* xorshift generators need a non-zero state */
	return v;
}

static inline int unit_run(const char *name, CU_TestInfo *tests)
{
	CU_SuiteInfo suites[] = {
		{ (char *)name, NULL, NULL, NULL, NULL, tests },
		CU_SUITE_INFO_NULL,
	};
	unsigned failures;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	if (CU_register_suites(suites) != CUE_SUCCESS) {
		fprintf(stderr, "cannot register suite %s: %s\n", name, CU_get_error_msg());
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failures ? 1 : 0;
}

#define UNIT_MAIN(name, tests)                                                                     \
	int main(void)                                                                             \
	{                                                                                          \
		return unit_run(name, tests);                                                      \
	}

#endif
