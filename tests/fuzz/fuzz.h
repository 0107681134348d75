/* SPDX-License-Identifier: MIT */
/* Shared by the libFuzzer targets: the entry point and a check that reports and aborts. */
#ifndef S2VM_TESTS_FUZZ_H
#define S2VM_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Called by libFuzzer once per input; returns 0 (-1 would keep the input out of the corpus). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Abort, which libFuzzer reports as a crash and saves the input, when @cond is false.
 * @cond must have no side effects: a finding is a property that does not hold.
 */
#define fuzz_check(cond)                                                                   \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "%s:%d: property does not hold: %s\n", __FILE__,   \
				__LINE__, #cond);                                          \
			abort();                                                           \
		}                                                                          \
	} while (0)

#endif
