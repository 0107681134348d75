// SPDX-License-Identifier: MIT
/* The ELF loader against valid, malformed and hostile images built in memory. */
#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/unit.h"
#include "vmm/elf.h"

#define IMG_SIZE 0x3000

struct img {
	unsigned char b[IMG_SIZE];
};

static Elf64_Ehdr *eh(struct img *i)
{
	return (Elf64_Ehdr *)i->b;
}

static Elf64_Phdr *ph(struct img *i, unsigned n)
{
	return (Elf64_Phdr *)(i->b + sizeof(Elf64_Ehdr)) + n;
}

/* A valid image: text at 1 MiB (0x1000 bytes from file offset 0x1000), data+bss after. */
static void make(struct img *i)
{
	memset(i, 0, sizeof(*i));
	memcpy(i->b, ELFMAG, SELFMAG);
	eh(i)->e_ident[EI_CLASS] = ELFCLASS64;
	eh(i)->e_ident[EI_DATA] = ELFDATA2LSB;
	eh(i)->e_ident[EI_VERSION] = EV_CURRENT;
	eh(i)->e_type = ET_EXEC;
	eh(i)->e_machine = EM_X86_64;
	eh(i)->e_version = EV_CURRENT;
	eh(i)->e_entry = 0x100010;
	eh(i)->e_phoff = sizeof(Elf64_Ehdr);
	eh(i)->e_ehsize = sizeof(Elf64_Ehdr);
	eh(i)->e_phentsize = sizeof(Elf64_Phdr);
	eh(i)->e_phnum = 3;
	*ph(i, 0) = (Elf64_Phdr){ .p_type = PT_LOAD, .p_flags = PF_R | PF_X, .p_offset = 0x1000,
				  .p_vaddr = 0x100000, .p_paddr = 0x100000, .p_filesz = 0x1000,
				  .p_memsz = 0x1000 };
	*ph(i, 1) = (Elf64_Phdr){ .p_type = PT_LOAD, .p_flags = PF_R | PF_W, .p_offset = 0x2000,
				  .p_vaddr = 0x101000, .p_paddr = 0x101000, .p_filesz = 0x100,
				  .p_memsz = 0x5000 };
	*ph(i, 2) = (Elf64_Phdr){ .p_type = PT_GNU_STACK, .p_flags = PF_R | PF_W };
	memset(i->b + 0x1000, 0xcc, 0x1000);
	memset(i->b + 0x2000, 0x5a, 0x100);
	memset(i->b + 0x2100, 0x77, 0x100); /* beyond filesz: must not be loaded */
}

static void test_valid(void)
{
	struct img i;
	struct elf_image im;
	struct s2_err e;
	unsigned char *ram = calloc(1, 4 << 20);

	make(&i);
	CU_ASSERT_EQUAL_FATAL(elf_parse(i.b, sizeof(i.b), &im, &e), 0);
	CU_ASSERT_EQUAL(im.nr_segs, 2);
	CU_ASSERT_EQUAL(im.entry, 0x100010);
	CU_ASSERT_EQUAL(im.lo, 0x100000);
	CU_ASSERT_EQUAL(im.hi, 0x106000);
	CU_ASSERT_EQUAL(elf_check_fits(&im, 0x100000, 4 << 20, &e), 0);

	memset(ram + 0x101000, 0xee, 0x5000); /* bss must be zeroed */
	elf_load(&im, i.b, ram);
	CU_ASSERT_EQUAL(ram[0x100000], 0xcc);
	CU_ASSERT_EQUAL(ram[0x100fff], 0xcc);
	CU_ASSERT_EQUAL(ram[0x101000], 0x5a);
	CU_ASSERT_EQUAL(ram[0x1010ff], 0x5a);
	CU_ASSERT_EQUAL(ram[0x101100], 0);
	CU_ASSERT_EQUAL(ram[0x105fff], 0);
	CU_ASSERT_EQUAL(ram[0x106000], 0);
	free(ram);
}

static void expect(struct img *i, size_t len, const char *needle)
{
	struct elf_image im;
	struct s2_err e = { "" };
	int r = elf_parse(i->b, len, &im, &e);

	CU_ASSERT_EQUAL(r, -ENOEXEC);
	if (!strstr(e.msg, needle))
		fprintf(stderr, "\n  message '%s' lacks '%s'\n", e.msg, needle);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, needle));
}

static void test_malformed_header(void)
{
	struct img i;

	make(&i);
	expect(&i, 0, "not an ELF");
	expect(&i, 3, "not an ELF");
	expect(&i, 40, "truncated ELF header");
	make(&i);
	i.b[1] = 'X';
	expect(&i, sizeof(i.b), "not an ELF");
	make(&i);
	eh(&i)->e_ident[EI_CLASS] = ELFCLASS32;
	expect(&i, sizeof(i.b), "not a 64-bit ELF");
	make(&i);
	eh(&i)->e_ident[EI_DATA] = ELFDATA2MSB;
	expect(&i, sizeof(i.b), "little-endian");
	make(&i);
	eh(&i)->e_machine = EM_AARCH64;
	expect(&i, sizeof(i.b), "not x86-64");
	make(&i);
	eh(&i)->e_type = ET_DYN;
	expect(&i, sizeof(i.b), "not an executable");
	make(&i);
	eh(&i)->e_phentsize = 40;
	expect(&i, sizeof(i.b), "program header size");
	make(&i);
	eh(&i)->e_phnum = 0;
	expect(&i, sizeof(i.b), "no program headers");
}

static void test_truncated(void)
{
	struct img i;

	make(&i);
	/* program headers cut off */
	expect(&i, sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr), "program headers past end");
	/* program headers pointing far beyond the file, and an overflowing count */
	make(&i);
	eh(&i)->e_phoff = ~0ull - 8;
	expect(&i, sizeof(i.b), "program headers past end");
	make(&i);
	eh(&i)->e_phnum = 0xffff;
	expect(&i, sizeof(i.b), "program headers past end");
	/* segment data past the end of the file */
	make(&i);
	expect(&i, 0x2080, "truncated ELF: segment 1");
	make(&i);
	ph(&i, 0)->p_offset = ~0ull - 0x10;
	expect(&i, sizeof(i.b), "truncated ELF: segment 0");
}

static void test_hostile_segments(void)
{
	struct img i;

	make(&i);
	ph(&i, 1)->p_filesz = 0x6000; /* filesz > memsz */
	expect(&i, sizeof(i.b), "file size exceeds memory size");
	make(&i);
	ph(&i, 1)->p_paddr = ~0ull - 0x100; /* wraps */
	expect(&i, sizeof(i.b), "wraps");
	make(&i);
	ph(&i, 1)->p_paddr = 0x100800; /* overlaps text */
	expect(&i, sizeof(i.b), "overlap");
	make(&i);
	eh(&i)->e_entry = 0x101000; /* in data, not text */
	expect(&i, sizeof(i.b), "entry point");
	make(&i);
	ph(&i, 0)->p_type = PT_NOTE;
	ph(&i, 1)->p_type = PT_NOTE;
	expect(&i, sizeof(i.b), "no loadable segments");
}

static void test_fits(void)
{
	struct img i;
	struct elf_image im;
	struct s2_err e = { "" };

	make(&i);
	CU_ASSERT_EQUAL_FATAL(elf_parse(i.b, sizeof(i.b), &im, &e), 0);
	/* RAM ends inside the bss */
	CU_ASSERT_EQUAL(elf_check_fits(&im, 0x100000, 0x104000, &e), -E2BIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "outside guest RAM"));
	/* exactly enough */
	CU_ASSERT_EQUAL(elf_check_fits(&im, 0x100000, 0x106000, &e), 0);
	/* RAM ends before the image starts */
	CU_ASSERT_EQUAL(elf_check_fits(&im, 0x100000, 0x80000, &e), -E2BIG);

	/* linked into the boot area */
	make(&i);
	ph(&i, 0)->p_paddr = 0x8000;
	eh(&i)->e_entry = 0x8000;
	CU_ASSERT_EQUAL_FATAL(elf_parse(i.b, sizeof(i.b), &im, &e), 0);
	CU_ASSERT_EQUAL(elf_check_fits(&im, 0x100000, 4 << 20, &e), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "boot area"));
}

/* Random corruption of a valid image never crashes the parser, and whatever it accepts
 * lies inside the file. */
static void test_fuzz(void)
{
	struct img i;
	struct elf_image im;
	unsigned seed = 12345, accepted = 0;

	for (int n = 0; n < 20000; n++) {
		make(&i);
		for (int k = 0; k < 1 + n % 8; k++) {
			seed = seed * 1103515245u + 12345u;
			i.b[(seed >> 8) % (sizeof(Elf64_Ehdr) + 3 * sizeof(Elf64_Phdr))] =
				(unsigned char)(seed >> 20);
		}
		if (elf_parse(i.b, sizeof(i.b), &im, NULL) == 0) {
			accepted++;
			for (unsigned s = 0; s < im.nr_segs; s++) {
				CU_ASSERT(im.segs[s].offset + im.segs[s].filesz <= sizeof(i.b));
				CU_ASSERT(im.segs[s].filesz <= im.segs[s].memsz);
				CU_ASSERT(im.segs[s].gpa + im.segs[s].memsz >= im.segs[s].gpa);
			}
		}
	}
	CU_ASSERT(accepted > 0); /* some mutations are harmless */
}

static CU_TestInfo tests[] = {
	{ "valid image loads", test_valid },
	{ "malformed header", test_malformed_header },
	{ "truncated", test_truncated },
	{ "hostile segments", test_hostile_segments },
	{ "fits guest RAM", test_fits },
	{ "random corruption", test_fuzz },
	CU_TEST_INFO_NULL,
};

UNIT_MAIN("elf", tests)
