// SPDX-License-Identifier: MIT
/* The long-mode boot structures: page tables map exactly RAM, GDT/TSS are well-formed. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/boot.h"
#include "s2vm/bootinfo.h"
#include "s2vm/hypercall.h"
#include "tests/unit/unit.h"

static uint64_t rd64(const unsigned char *ram, uint64_t gpa)
{
	uint64_t v;

	memcpy(&v, ram + gpa, 8);
	return v;
}

/* Walk the guest's tables: returns the physical address for @va, or ~0 if unmapped. */
static uint64_t walk(const unsigned char *ram, uint64_t va)
{
	uint64_t e = rd64(ram, S2_PML4_GPA + ((va >> 39) & 511) * 8);

	if (!(e & X86_PTE_P))
		return ~0ull;
	e = rd64(ram, (e & ~0xfffull) + ((va >> 30) & 511) * 8);
	if (!(e & X86_PTE_P))
		return ~0ull;
	e = rd64(ram, (e & ~0xfffull) + ((va >> 21) & 511) * 8);
	if (!(e & X86_PTE_P) || !(e & X86_PTE_PS) || !(e & X86_PTE_US) || !(e & X86_PTE_RW))
		return ~0ull;
	return (e & ~0x1fffffull) + (va & 0x1fffff);
}

static void check_mem(uint64_t mem)
{
	unsigned char *ram = calloc(1, 1 << 20); /* the tables live below 1 MiB */

	CU_ASSERT_EQUAL_FATAL(x86_boot_write_tables(ram, mem, S2_MMIO_SIZE, 2), 0);
	for (uint64_t va = 0; va < mem + S2_MMIO_SIZE; va += 2 << 20)
		CU_ASSERT_EQUAL(walk(ram, va + 0x1234), va + 0x1234);
	CU_ASSERT_EQUAL(walk(ram, mem + S2_MMIO_SIZE), ~0ull); /* past the device window */
	CU_ASSERT_EQUAL(walk(ram, 512ull << 30), ~0ull);
	free(ram);
}

static void test_identity_map(void)
{
	check_mem(4 << 20);
	check_mem(128 << 20);
	check_mem(1ull << 30);
	check_mem((1ull << 30) + (2 << 20)); /* straddles a page directory */
	check_mem(5ull << 30);
}

static void test_bad_sizes(void)
{
	unsigned char *ram = calloc(1, 1 << 20);

	CU_ASSERT_EQUAL(x86_boot_write_tables(ram, 0, 0, 1), -EINVAL);
	CU_ASSERT_EQUAL(x86_boot_write_tables(ram, 3 << 20, 0, 1), -EINVAL);
	CU_ASSERT_EQUAL(x86_boot_write_tables(ram, (S2_PD_MAX + 1) << 30, 0, 1), -EINVAL);
	CU_ASSERT_EQUAL(x86_boot_write_tables(ram, 4 << 20, 0, 0), -EINVAL);
	CU_ASSERT_EQUAL(x86_boot_write_tables(ram, 4 << 20, 4096, 1), -EINVAL);
	CU_ASSERT_EQUAL(x86_boot_write_tables(ram, S2_PD_MAX << 30, S2_MMIO_SIZE, 1), -EINVAL);
	CU_ASSERT_EQUAL(x86_boot_write_tables(ram, 4 << 20, 0, S2_MAX_VCPUS + 1), -EINVAL);
	free(ram);
}

static void test_gdt_tss(void)
{
	unsigned char *ram = calloc(1, 1 << 20);
	unsigned n = 3;

	CU_ASSERT_EQUAL_FATAL(x86_boot_write_tables(ram, 4 << 20, S2_MMIO_SIZE, n), 0);
	/* user code: present, DPL 3, code, long mode */
	uint64_t ucode = rd64(ram, S2_GDT_GPA + (S2_SEL_UCODE & ~3));
	CU_ASSERT((ucode >> 47) & 1);
	CU_ASSERT_EQUAL((ucode >> 45) & 3, 3);
	CU_ASSERT((ucode >> 53) & 1);
	for (unsigned c = 0; c < n; c++) {
		uint64_t tss = S2_TSS_GPA + c * S2_TSS_SIZE;
		uint64_t lo = rd64(ram, S2_GDT_GPA + S2_SEL_TSS(c));
		uint64_t base = ((lo >> 16) & 0xffffff) | (((lo >> 56) & 0xff) << 24) |
				(rd64(ram, S2_GDT_GPA + S2_SEL_TSS(c) + 8) << 32);
		uint64_t rsp0;
		uint16_t iomap;

		CU_ASSERT_EQUAL(base, tss);
		memcpy(&rsp0, ram + tss + 4, 8);
		CU_ASSERT_EQUAL(rsp0, S2_KSTACK_GPA + (c + 1) * S2_KSTACK_SIZE);
		memcpy(&iomap, ram + tss + 102, 2);
		/* only the hypercall ports are open to ring 3 */
		for (unsigned port = 0; port < (S2_TSS_SIZE - iomap - 1) * 8; port++) {
			int open = !((ram[tss + iomap + port / 8] >> (port % 8)) & 1);

			CU_ASSERT_EQUAL(open, port >= S2_HC_PORT && port < S2_HC_PORT + 4);
		}
		CU_ASSERT_EQUAL(ram[tss + S2_TSS_SIZE - 1], 0xff);
	}
	free(ram);
}

static void test_regs(void)
{
	struct kvm_regs r;
	struct kvm_sregs s;

	memset(&s, 0, sizeof(s));
	x86_boot_regs(&r, 2, 0x100000, 0x200000);
	CU_ASSERT_EQUAL(r.rip, 0x100000);
	CU_ASSERT_EQUAL(r.rsi, 2);
	CU_ASSERT_EQUAL(r.rdi, S2_BOOTINFO_GPA);
	CU_ASSERT_EQUAL(r.rdx, 0x200000 + 3 * S2_USTACK_SIZE);
	CU_ASSERT_EQUAL(r.rsp, S2_KSTACK_GPA + 3 * S2_KSTACK_SIZE);
	x86_boot_sregs(&s, 2, 4);
	CU_ASSERT(s.efer & X86_EFER_LMA);
	CU_ASSERT(s.cr0 & X86_CR0_PG);
	CU_ASSERT_EQUAL(s.cs.l, 1);
	CU_ASSERT_EQUAL(s.tr.selector, S2_SEL_TSS(2));
	CU_ASSERT_EQUAL(s.tr.base, S2_TSS_GPA + 2 * S2_TSS_SIZE);
	CU_ASSERT_EQUAL(s.gdt.limit, S2_SEL_TSS(4) - 1);
}

/* Every byte the tables write lies in the extents the VMM copies into guest RAM, and the
 * extents stay inside the boot area, clear of the boot info page. */
static void test_extents(void)
{
	static const uint64_t mems[] = { 4 << 20, 1ull << 30, (5ull << 30) + (2 << 20) };
	static const unsigned cpus[] = { 1, 7, S2_MAX_VCPUS };

	for (unsigned m = 0; m < 3; m++) {
		for (unsigned c = 0; c < 3; c++) {
			unsigned char *ram = malloc(1 << 20);
			struct x86_extent x[X86_BOOT_EXTENTS];
			unsigned n = x86_boot_extents(mems[m], S2_MMIO_SIZE, cpus[c], x);
			uint64_t stray = 0;

			memset(ram, 0xa5, 1 << 20); /* poison: untouched bytes keep it */
			CU_ASSERT_EQUAL_FATAL(x86_boot_write_tables(ram, mems[m], S2_MMIO_SIZE,
								     cpus[c]), 0);
			for (unsigned i = 0; i < n; i++) {
				CU_ASSERT(x[i].start < x[i].end && x[i].end <= S2_IMAGE_MIN_GPA);
				CU_ASSERT(x[i].end <= S2_BOOTINFO_GPA ||
					  x[i].start >= S2_BOOTINFO_GPA + 0x1000);
				memset(ram + x[i].start, 0xa5, x[i].end - x[i].start);
			}
			for (uint64_t b = 0; b < (1 << 20); b++)
				stray += ram[b] != 0xa5;
			CU_ASSERT_EQUAL(stray, 0);
			free(ram);
		}
	}
}

static CU_TestInfo tests[] = {
	{ "written bytes lie in the boot extents", test_extents },
	{ "identity map covers exactly RAM", test_identity_map },
	{ "bad sizes rejected", test_bad_sizes },
	{ "GDT and TSS with I/O bitmap", test_gdt_tss },
	{ "vCPU start registers", test_regs },
	CU_TEST_INFO_NULL,
};

UNIT_MAIN("x86boot", tests)
