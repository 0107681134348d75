// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the control API's vm.create body parser (vmm/api_req.c): what a
 * client of the socket controls before any VM exists. The input is the body, as bytes.
 *
 * A finding, besides a sanitizer report: an accepted config outside what `s2vm run`
 * accepts (vCPUs 1..RUN_MAX_VCPUS, RAM a non-zero multiple of 2 MiB up to RUN_MAX_MEM,
 * a non-empty kernel path, at most RUN_MAX_DISKS disks each with a path), a refusal
 * without a message, or a refusal that leaves anything allocated (LeakSanitizer).
 */
#include <string.h>

#include "tests/fuzz/fuzz.h"
#include "vmm/api_req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct s2_err e = { "" };
	struct run_opts o;

	if (api_create_parse((const char *)data, size, &o, &e)) {
		fuzz_check(e.msg[0] != '\0');
		return 0;
	}
	fuzz_check(o.vcpus >= 1 && o.vcpus <= RUN_MAX_VCPUS);
	fuzz_check(o.mem_size && o.mem_size % (2ull << 20) == 0 && o.mem_size <= RUN_MAX_MEM);
	fuzz_check(o.kernel && o.kernel == o.kernel_owned && o.kernel[0]);
	fuzz_check(o.guest_args != NULL);
	fuzz_check(o.nr_disks <= RUN_MAX_DISKS);
	for (unsigned i = 0; i < o.nr_disks; i++)
		fuzz_check(o.disks[i].path && o.disks[i].path[0] && o.disks[i].num_queues == 1);
	run_opts_free(&o);
	return 0;
}
