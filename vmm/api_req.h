/* SPDX-License-Identifier: MIT */
/* The control API's vm.create body, parsed into the options `s2vm run` takes (pure: no
 * server, no VM; fuzzed by tests/fuzz/fuzz_api.c). */
#ifndef S2VM_API_REQ_H
#define S2VM_API_REQ_H

#include <stddef.h>

#include "vmm/err.h"
#include "vmm/options.h"

/*
 * Parse a Cloud Hypervisor VmConfig body (@len bytes at @body, not NUL-terminated) into
 * @o: cpus.boot_vcpus, memory.size, the kernel (payload.kernel, or kernel.path as libvirt
 * 9.0 sends it), the command line (payload.cmdline or cmdline.args: the guest's
 * arguments), disks[].path/readonly. Other members are accepted and ignored. Returns 0
 * (free @o with run_opts_free()) or -EINVAL/-ENOMEM with @e naming the member; then @o
 * holds nothing.
 */
int api_create_parse(const char *body, size_t len, struct run_opts *o, struct s2_err *e)
	__attribute__((warn_unused_result));

#endif
