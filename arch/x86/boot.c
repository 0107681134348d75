// SPDX-License-Identifier: MIT
#include <errno.h>
#include <string.h>

#include "arch/x86/boot.h"
#include "s2vm/bootinfo.h"
#include "s2vm/hypercall.h"

#define GIB (1ull << 30)
#define MIB2 (2ull << 20)

static void put64(unsigned char *ram, uint64_t gpa, uint64_t v)
{
	memcpy(ram + gpa, &v, sizeof(v));
}

/* A 64-bit available TSS descriptor (16 bytes), type 0xb (busy) as KVM loads TR. */
static void gdt_tss(unsigned char *ram, uint64_t gpa, uint64_t base, uint32_t limit)
{
	uint64_t lo = (limit & 0xffffull) | ((base & 0xffffffull) << 16) | (0x8bull << 40) |
		      ((uint64_t)((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xffull) << 56);

	put64(ram, gpa, lo);
	put64(ram, gpa + 8, base >> 32);
}

int x86_boot_write_tables(void *ram_, uint64_t mem_size, uint64_t mmio_size, unsigned nr_cpus)
{
	unsigned char *ram = ram_;
	uint64_t map_size = mem_size + mmio_size;
	uint64_t ngib = (map_size + GIB - 1) / GIB;
	/* Accessed and Dirty are preset: a host walking these tables (shadow paging, the
	 * instruction emulator) then never writes them, so they stay correct even while
	 * their page is write-protected for a migration. */
	const uint64_t flags = X86_PTE_P | X86_PTE_RW | X86_PTE_US | X86_PTE_A;

	if (mem_size == 0 || mem_size % MIB2 || mmio_size % MIB2 || map_size < mem_size ||
	    ngib > S2_PD_MAX || nr_cpus == 0 ||
	    nr_cpus > S2_MAX_VCPUS || mem_size < S2_IMAGE_MIN_GPA)
		return -EINVAL;

	memset(ram + S2_PML4_GPA, 0, 0x2000 + ngib * 0x1000);
	put64(ram, S2_PML4_GPA, S2_PDPT_GPA | flags);
	for (uint64_t g = 0; g < ngib; g++) {
		uint64_t pd = S2_PD_GPA + g * 0x1000;

		put64(ram, S2_PDPT_GPA + g * 8, pd | flags);
		for (uint64_t j = 0; j < 512; j++) {
			uint64_t pa = g * GIB + j * MIB2;

			if (pa >= map_size)
				break;
			put64(ram, pd + j * 8, pa | flags | X86_PTE_D | X86_PTE_PS);
		}
	}

	/* GDT: null, kernel code/data, user data, user code (sysret order), TSSs. */
	memset(ram + S2_GDT_GPA, 0, 0x1000);
	put64(ram, S2_GDT_GPA + 0x08, 0x00af9b000000ffffull); /* 64-bit code, DPL 0 */
	put64(ram, S2_GDT_GPA + 0x10, 0x00cf93000000ffffull); /* data, DPL 0 */
	put64(ram, S2_GDT_GPA + 0x18, 0x00cff3000000ffffull); /* data, DPL 3 */
	put64(ram, S2_GDT_GPA + 0x20, 0x00affb000000ffffull); /* 64-bit code, DPL 3 */

	memset(ram + S2_TSS_GPA, 0, nr_cpus * S2_TSS_SIZE);
	for (unsigned c = 0; c < nr_cpus; c++) {
		uint64_t tss = S2_TSS_GPA + c * S2_TSS_SIZE;
		uint64_t rsp0 = S2_KSTACK_GPA + (c + 1) * S2_KSTACK_SIZE;
		uint16_t iomap = X86_TSS_IOMAP_OFF;

		/*
		 * I/O permission bitmap: every port denied except the hypercall ports
		 * [S2_HC_PORT, S2_HC_PORT + 4). Guests set IOPL 3 as well; hosts whose
		 * ring 3 cannot hold IOPL 3 (PVM) check this bitmap instead.
		 */
		memcpy(ram + tss + 4, &rsp0, 8);
		memcpy(ram + tss + 102, &iomap, 2);
		memset(ram + tss + X86_TSS_IOMAP_OFF, 0xff, S2_TSS_SIZE - X86_TSS_IOMAP_OFF);
		for (unsigned port = S2_HC_PORT; port < S2_HC_PORT + 4; port++)
			ram[tss + X86_TSS_IOMAP_OFF + port / 8] &= (unsigned char)~(1u << (port % 8));
		gdt_tss(ram, S2_GDT_GPA + S2_SEL_TSS(c), tss, (uint32_t)S2_TSS_SIZE - 1);
	}
	return 0;
}

unsigned x86_boot_extents(uint64_t mem_size, uint64_t mmio_size, unsigned nr_cpus,
			  struct x86_extent out[X86_BOOT_EXTENTS])
{
	uint64_t ngib = (mem_size + mmio_size + GIB - 1) / GIB;

	out[0] = (struct x86_extent){ S2_GDT_GPA, S2_GDT_GPA + 0x1000 };
	out[1] = (struct x86_extent){ S2_TSS_GPA, S2_TSS_GPA + nr_cpus * S2_TSS_SIZE };
	out[2] = (struct x86_extent){ S2_PML4_GPA, S2_PD_GPA + ngib * 0x1000 };
	return X86_BOOT_EXTENTS;
}

static void seg(struct kvm_segment *s, uint16_t sel, uint8_t type, uint8_t l, uint8_t db)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->dpl = sel & 3;
	s->db = db;
	s->s = 1;
	s->l = l;
	s->g = 1;
}

void x86_boot_sregs(struct kvm_sregs *s, unsigned cpu, unsigned nr_cpus)
{
	seg(&s->cs, S2_SEL_KCODE, 0xb, 1, 0);
	seg(&s->ds, S2_SEL_KDATA, 0x3, 0, 1);
	s->es = s->fs = s->gs = s->ss = s->ds;

	memset(&s->tr, 0, sizeof(s->tr));
	s->tr.base = S2_TSS_GPA + cpu * S2_TSS_SIZE;
	s->tr.limit = (uint32_t)S2_TSS_SIZE - 1;
	s->tr.selector = S2_SEL_TSS(cpu);
	s->tr.type = 0xb;
	s->tr.present = 1;

	s->gdt.base = S2_GDT_GPA;
	s->gdt.limit = S2_SEL_TSS(nr_cpus) - 1;
	s->idt.base = 0;
	s->idt.limit = 0; /* the guest loads its own IDT */

	s->cr0 = X86_CR0_PE | X86_CR0_MP | X86_CR0_ET | X86_CR0_NE | X86_CR0_WP | X86_CR0_PG;
	s->cr3 = S2_PML4_GPA;
	s->cr4 = X86_CR4_PAE | X86_CR4_OSFXSR | X86_CR4_OSXMMEXCPT;
	s->efer = X86_EFER_LME | X86_EFER_LMA;
}

void x86_boot_regs(struct kvm_regs *r, unsigned cpu, uint64_t entry, uint64_t ustack_base)
{
	memset(r, 0, sizeof(*r));
	r->rip = entry;
	r->rsp = S2_KSTACK_GPA + (cpu + 1) * S2_KSTACK_SIZE;
	r->rdi = S2_BOOTINFO_GPA;
	r->rsi = cpu;
	r->rdx = ustack_base + (cpu + 1) * S2_USTACK_SIZE;
	r->rflags = 0x2;
}
