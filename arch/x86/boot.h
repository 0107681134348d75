/* SPDX-License-Identifier: MIT */
/*
 * x86-64 long-mode guest boot: the structures the VMM writes into guest RAM so that a
 * vCPU can start directly in 64-bit mode (layout in include/s2vm/bootinfo.h), and the
 * register state each vCPU starts with.
 */
#ifndef S2VM_ARCH_X86_BOOT_H
#define S2VM_ARCH_X86_BOOT_H

#include <stdint.h>

#include <linux/kvm.h>

/* Page-table entry bits used for the guest's own (not EPT) tables. */
#define X86_PTE_P (1ull << 0)
#define X86_PTE_RW (1ull << 1)
#define X86_PTE_US (1ull << 2)
#define X86_PTE_A (1ull << 5)
#define X86_PTE_D (1ull << 6)
#define X86_PTE_PS (1ull << 7)

#define X86_TSS_IOMAP_OFF 104 /* I/O bitmap right after the 104-byte TSS */

#define X86_CR0_PE (1ull << 0)
#define X86_CR0_MP (1ull << 1)
#define X86_CR0_ET (1ull << 4)
#define X86_CR0_NE (1ull << 5)
#define X86_CR0_WP (1ull << 16)
#define X86_CR0_PG (1ull << 31)
#define X86_CR4_PAE (1ull << 5)
#define X86_CR4_OSFXSR (1ull << 9)
#define X86_CR4_OSXMMEXCPT (1ull << 10)
#define X86_EFER_LME (1ull << 8)
#define X86_EFER_LMA (1ull << 10)

/*
 * Write the guest's page tables (RAM [0, @mem_size) and the device window
 * [@mem_size, @mem_size + @mmio_size) after it, mapped 1:1 with 2 MiB pages,
 * user-accessible, writable), the GDT and one TSS per vCPU into @low, the first 1 MiB of
 * guest-physical memory (every structure lives there). @mem_size and @mmio_size must be
 * multiples of 2 MiB, together at most S2_PD_MAX GiB; @nr_cpus at most S2_MAX_VCPUS.
 * Returns 0 or -EINVAL.
 */
int x86_boot_write_tables(void *low, uint64_t mem_size, uint64_t mmio_size, unsigned nr_cpus)
	__attribute__((warn_unused_result));

/* A byte range [start, end) of guest-physical memory. */
struct x86_extent {
	uint64_t start, end;
};

#define X86_BOOT_EXTENTS 3

/*
 * The ranges x86_boot_write_tables() writes for this layout (GDT, TSS array, page
 * tables), so a caller can copy just those into guest RAM. Returns how many (at most
 * X86_BOOT_EXTENTS).
 */
unsigned x86_boot_extents(uint64_t mem_size, uint64_t mmio_size, unsigned nr_cpus,
			  struct x86_extent out[X86_BOOT_EXTENTS]);

/* Fill @s (as read by KVM_GET_SREGS) for vCPU @cpu to start in 64-bit ring 0. */
void x86_boot_sregs(struct kvm_sregs *s, unsigned cpu, unsigned nr_cpus);

/*
 * Fill @r for vCPU @cpu: rip = @entry, rsp = its kernel stack, rdi = boot info GPA,
 * rsi = @cpu, rdx = top of its user stack (@ustack_base + (cpu + 1) * S2_USTACK_SIZE).
 */
void x86_boot_regs(struct kvm_regs *r, unsigned cpu, uint64_t entry, uint64_t ustack_base);

#endif
