/* SPDX-License-Identifier: MIT */
/*
 * What the VMM tells the guest at boot, and the fixed low-memory layout both sides
 * agree on. All addresses are guest-physical; guestos maps all RAM 1:1 with 2 MiB pages.
 *
 *	[0x001000, 0x002000)  GDT (null, kcode, kdata, udata, ucode, one TSS per vCPU)
 *	[0x010000, 0x018000)  TSS array, S2_TSS_SIZE bytes per vCPU (with I/O bitmap)
 *	[0x030000, 0x031000)  struct s2_bootinfo (above vm.mmap_min_addr: under --accel proc
 *	                      guest RAM sits at host address == GPA and the host cannot map
 *	                      the lowest pages; ring-3 guest code never touches [0, 0x10000))
 *	[0x040000, 0x080000)  per-vCPU kernel stacks, S2_KSTACK_SIZE each (also TSS.RSP0)
 *	[0x080000, 0x081000)  PML4
 *	[0x081000, 0x082000)  PDPT
 *	[0x082000, 0x100000)  page directories, one per GiB of RAM
 *	[0x100000, ...)       the kernel image (ELF PT_LOAD segments)
 *	[free_start, ...)     per-vCPU user stacks, then the heap up to mem_size
 *	[mem_size, +2 MiB)    the device (MMIO) window: not RAM; mapped in the guest's page
 *	                      tables, reached only through guestos's mmio_* accessors.
 *	                      virtio-mmio devices sit in 4 KiB slots from its start, each
 *	                      listed in s2_bootinfo.devs (and, for a Linux guest, as
 *	                      "virtio_mmio.device=4K@0xADDR:IRQ" in the guest arguments)
 *
 * guestos images carry an ELF note (name S2_NOTE_NAME, type S2_NOTE_USER_ENTRY, an
 * 8-byte GPA) naming their ring-3 entry: where --accel proc starts each vCPU, with
 * rdi = boot info GPA, rsi = cpu index, rsp = rdx = top of its user stack — the state
 * the ring-0 entry hands to ring 3 under KVM.
 */
#ifndef S2VM_BOOTINFO_H
#define S2VM_BOOTINFO_H

#include <stdint.h>

#define S2_GDT_GPA 0x1000ull
#define S2_TSS_GPA 0x10000ull
#define S2_TSS_SIZE 512ull /* 104-byte TSS + I/O bitmap for ports [0, 0x518) + 0xff */
#define S2_BOOTINFO_GPA 0x30000ull
#define S2_KSTACK_GPA 0x40000ull
#define S2_KSTACK_SIZE 0x1000ull
#define S2_PML4_GPA 0x80000ull
#define S2_PDPT_GPA 0x81000ull
#define S2_PD_GPA 0x82000ull
#define S2_PD_MAX ((0x100000ull - S2_PD_GPA) / 0x1000ull) /* GiB of RAM mappable */
#define S2_IMAGE_MIN_GPA 0x100000ull
#define S2_USTACK_SIZE 0x10000ull
#define S2_MAX_VCPUS 64u
#define S2_MMIO_SIZE (2ull << 20) /* device window right after RAM */

#define S2_NOTE_NAME "s2vm"
#define S2_NOTE_USER_ENTRY 1 /* desc: uint64_t ring-3 entry GPA */

/* GDT selectors */
#define S2_SEL_KCODE 0x08
#define S2_SEL_KDATA 0x10
#define S2_SEL_UDATA 0x1b /* 0x18 | RPL 3 */
#define S2_SEL_UCODE 0x23 /* 0x20 | RPL 3 */
#define S2_SEL_TSS(cpu) (0x28 + 16 * (cpu))

#define S2_MAX_BOOT_DEVS 16u
#define S2_VIRTIO_MMIO_SLOT 0x1000ull /* bytes of device window per virtio-mmio device */

#define S2_BOOTINFO_MAGIC 0x4f464e49324d5653ull /* "SVM2INFO" */
#define S2_MAX_GUEST_NODES 8u

struct s2_boot_node {
	uint64_t gpa_start; /* [gpa_start, gpa_end) */
	uint64_t gpa_end;
	uint64_t cpu_mask; /* vCPUs of this guest node */
	uint32_t host_node; /* host node the command line asked for */
	uint32_t policy; /* 0 bind, 1 preferred, 2 interleave */
	uint32_t nr_hosts; /* interleave set / preferred fallbacks */
	uint8_t hosts[8];
	uint32_t pad;
};

/* A device in the window (v4). */
struct s2_boot_dev {
	uint64_t gpa; /* registers [gpa, gpa + size), inside the device window */
	uint32_t size;
	uint32_t virtio_id; /* virtio device ID (2 = block, 5 = balloon); transport virtio-mmio v2 */
	uint32_t irq; /* 0: none wired (guestos polls the used rings) */
	uint32_t flags; /* 0 */
};

struct s2_bootinfo {
	uint64_t magic;
	uint32_t version; /* 4 */
	uint32_t nr_cpus;
	uint64_t mem_size; /* bytes of guest RAM at GPA 0 */
	uint64_t free_start; /* first byte after the image, 64 KiB aligned */
	uint64_t heap_start; /* after the user stacks */
	uint32_t nr_nodes;
	uint32_t pad;
	struct s2_boot_node nodes[S2_MAX_GUEST_NODES];
	uint64_t mmio_base; /* device window [mmio_base, mmio_base + mmio_size) (v3) */
	uint64_t mmio_size;
	uint32_t nr_devs; /* (v4) entries of devs[] in use */
	uint32_t pad2;
	struct s2_boot_dev devs[S2_MAX_BOOT_DEVS];
};

#endif
