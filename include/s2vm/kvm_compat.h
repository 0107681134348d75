/* SPDX-License-Identifier: MIT */
/*
 * KVM constants newer than Debian 12's 6.1 uapi headers. The running kernel may be
 * newer than the headers; each definition is guarded so newer headers win.
 */
#ifndef S2VM_KVM_COMPAT_H
#define S2VM_KVM_COMPAT_H

#include <linux/kvm.h>

#ifndef KVM_EXIT_MEMORY_FAULT
#define KVM_EXIT_MEMORY_FAULT 39 /* Linux 6.8 */
#endif
#ifndef KVM_CAP_MEMORY_FAULT_INFO
#define KVM_CAP_MEMORY_FAULT_INFO 232 /* Linux 6.8 */
#endif
#ifndef KVM_MEMORY_EXIT_FLAG_PRIVATE
#define KVM_MEMORY_EXIT_FLAG_PRIVATE (1ULL << 3)
#endif
#ifndef KVM_CAP_USER_MEMORY2
#define KVM_CAP_USER_MEMORY2 231 /* Linux 6.8 */
#endif

/* kvm_run's memory_fault member (Linux 6.8), at the start of the exit union; read
 * through this struct so the 6.1 headers suffice. */
struct s2_kvm_memory_fault {
	__u64 flags;
	__u64 gpa;
	__u64 size;
};

static inline const struct s2_kvm_memory_fault *s2_kvm_memory_fault(const struct kvm_run *r)
{
	return (const struct s2_kvm_memory_fault *)(const void *)&r->mmio;
}

#endif
