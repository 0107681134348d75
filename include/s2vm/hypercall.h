/* SPDX-License-Identifier: MIT */
/*
 * The s2vm hypercall ABI, shared by the VMM (vmm/) and the guest (guestos/).
 *
 * A hypercall is one 32-bit port write from guest ring 3 (IOPL 3) or ring 0:
 *
 *	outl(S2_HC_PORT, gpa_of(block))
 *
 * where the block is a struct s2_hc_block in guest RAM below 4 GiB, 8-byte aligned.
 * The VMM reads nr and args, performs the call, and writes ret before the guest
 * resumes. Pointers inside args are guest-physical addresses (guestos runs identity
 * mapped, so a guest pointer is its GPA). A negative ret is -errno.
 */
#ifndef S2VM_HYPERCALL_H
#define S2VM_HYPERCALL_H

#include <stdint.h>

#define S2_HC_PORT 0x0510

enum s2_hc_nr {
	/* args: [0] buf gpa, [1] len (<= S2_HC_CONSOLE_MAX). ret: bytes written. */
	S2_HC_CONSOLE_WRITE = 1,
	/* args: [0] exit code (0..255). Does not return: the VM stops. */
	S2_HC_EXIT = 2,
	/* args: [0] name gpa, [1] name len, [2] value (IEEE-754 double bits),
	 *       [3] unit gpa, [4] unit len. The VMM prints "report: NAME=VALUE UNIT". */
	S2_HC_REPORT = 3,
	/* no args. ret: host CLOCK_MONOTONIC in ns. */
	S2_HC_CLOCK_NS = 4,
	/* args: [0] buf gpa, [1] buf size. Copies the guest argument string with a
	 * terminating NUL, truncated to fit. ret: full length without the NUL. */
	S2_HC_GET_ARGS = 5,
	/* no args. The calling vCPU stops running until the VM exits. Does not return. */
	S2_HC_PARK = 6,
	/* args: [0] vector, [1] error code, [2] rip, [3] cr2, [4] rsp. Reported by the
	 * guest's exception handlers; the VM stops with S2_EXIT_GUEST_CRASH. */
	S2_HC_FAULT = 7,
	/* args: [0] gpa. ret: host node whose pool backs that GPA, or -errno. */
	S2_HC_GPA_NODE = 8,
	/* args: [0] gpa, [1] len, [2] host node. ret: bytes migrated, or -errno. */
	S2_HC_MIGRATE = 9,
	/* no args, ret 0: the round-trip cost of a hypercall (benchmarks). */
	S2_HC_NOP = 10,
	/* args: [0] buf gpa, [1] buf size. Fills a struct s2_hc_mem_info (truncated to
	 * fit). ret: bytes written. */
	S2_HC_MEM_INFO = 11,
	/* args: [0] blob gpa, [1] len. A lab results blob (include/s2vm/lab.h), checked
	 * with s2_lab_check() and written to the file of `s2vm run --lab-out`, replacing
	 * what an earlier call wrote. ret: len, -E2BIG (len > S2_LAB_MAX_LEN), -EFAULT
	 * (outside RAM), -EINVAL (malformed), -ENODEV (no --lab-out) or -EIO (the file
	 * could not be written). */
	S2_HC_LAB_RESULT = 12,
	/* args: [0] 0 or 1. The lab's phased runs: the guest's measured loop entered an
	 * off (0) or on (1) phase. `--churn` migrates only in on phases once a guest made
	 * this call (half a period after the phase starts, then every period), so one run
	 * holds both arms of a comparison. ret: 0 or -EINVAL. */
	S2_HC_LAB_PHASE = 13,
};

#define S2_HC_MAX_POOLS 8

/* The host's view of the VM's memory, for workloads that check what a discard or a
 * migration returned to the host. */
struct s2_hc_mem_info {
	uint64_t resident_bytes; /* backed bytes in all host node pools */
	uint64_t discarded_pages; /* pages the memory manager discarded so far */
	uint64_t discard_pending; /* pinned pages whose discard is deferred now */
	uint64_t discard_pinned; /* pinned pages not discarded (skipped + deferred, counted
				  * each time) */
	uint64_t nr_pools;
	uint64_t pool_node[S2_HC_MAX_POOLS]; /* host node of each pool */
	uint64_t pool_resident[S2_HC_MAX_POOLS]; /* backed bytes of each pool */
};

#define S2_HC_CONSOLE_MAX 65536u
#define S2_HC_NAME_MAX 64u

struct s2_hc_block {
	uint64_t nr;
	uint64_t args[5];
	int64_t ret;
};

/* Process exit code of s2vm when the guest crashed (fault, triple fault, bad exit). */
#define S2_EXIT_GUEST_CRASH 3

#endif
