// SPDX-License-Identifier: MIT
/* The ELF loader against valid, malformed and hostile images built in memory. */
#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "s2vm/bootinfo.h"
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

/* elf_load()'s writer for a flat buffer standing in for guest RAM at GPA 0 */
static int ram_write(void *ctx, uint64_t gpa, const void *src, uint64_t len)
{
	memcpy((unsigned char *)ctx + gpa, src, len);
	return 0;
}

static int fail_write(void *ctx, uint64_t gpa, const void *src, uint64_t len)
{
	return -EFAULT;
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
	CU_ASSERT_EQUAL(elf_load(&im, i.b, ram_write, ram), 0);
	CU_ASSERT_EQUAL(ram[0x100000], 0xcc);
	CU_ASSERT_EQUAL(ram[0x100fff], 0xcc);
	CU_ASSERT_EQUAL(ram[0x101000], 0x5a);
	CU_ASSERT_EQUAL(ram[0x1010ff], 0x5a);
	CU_ASSERT_EQUAL(ram[0x101100], 0);
	CU_ASSERT_EQUAL(ram[0x105fff], 0);
	CU_ASSERT_EQUAL(ram[0x106000], 0);
	CU_ASSERT_EQUAL(elf_load(&im, i.b, fail_write, NULL), -EFAULT);
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

#define NOTE_OFF 0x2800 /* where the note segment starts in the file */

/* Write one note at file offset @off (name and descriptor padded to 4 bytes); returns the
 * offset after it. */
static size_t put_note(struct img *i, size_t off, const char *name, uint32_t type,
		       const void *desc, uint32_t descsz)
{
	Elf64_Nhdr nh = { .n_namesz = (uint32_t)strlen(name) + 1, .n_descsz = descsz,
			  .n_type = type };

	memcpy(i->b + off, &nh, sizeof(nh));
	off += sizeof(nh);
	memcpy(i->b + off, name, nh.n_namesz);
	off += (nh.n_namesz + 3) & ~3u;
	if (descsz)
		memcpy(i->b + off, desc, descsz);
	return off + ((descsz + 3) & ~3u);
}

/* Make a PT_NOTE segment (program header 3) of the notes in [NOTE_OFF, @end). */
static void note_seg(struct img *i, size_t end)
{
	eh(i)->e_phnum = 4;
	*ph(i, 3) = (Elf64_Phdr){ .p_type = PT_NOTE, .p_flags = PF_R, .p_offset = NOTE_OFF,
				  .p_filesz = end - NOTE_OFF, .p_memsz = end - NOTE_OFF,
				  .p_align = 4 };
}

/* The valid image plus a segment holding just the s2vm note naming @user_entry. */
static void make_noted(struct img *i, uint64_t user_entry)
{
	make(i);
	note_seg(i, put_note(i, NOTE_OFF, S2_NOTE_NAME, S2_NOTE_USER_ENTRY, &user_entry, 8));
}

static Elf64_Nhdr *nhdr(struct img *i)
{
	return (Elf64_Nhdr *)(i->b + NOTE_OFF);
}

static uint64_t parse_user_entry(struct img *i)
{
	struct elf_image im;
	struct s2_err e = { "" };

	if (elf_parse(i->b, sizeof(i->b), &im, &e)) {
		fprintf(stderr, "\n  elf_parse: %s\n", e.msg);
		return ~0ull;
	}
	CU_ASSERT_EQUAL(im.entry, 0x100010); /* the note never changes the ELF entry */
	return im.user_entry;
}

static void test_note_found(void)
{
	struct img i;

	make_noted(&i, 0x100020);
	CU_ASSERT_EQUAL(parse_user_entry(&i), 0x100020);
	/* the last byte of the text segment */
	make_noted(&i, 0x100fff);
	CU_ASSERT_EQUAL(parse_user_entry(&i), 0x100fff);
	/* no note, or an empty note segment: no ring-3 entry */
	make(&i);
	CU_ASSERT_EQUAL(parse_user_entry(&i), 0);
	make(&i);
	note_seg(&i, NOTE_OFF);
	CU_ASSERT_EQUAL(parse_user_entry(&i), 0);
}

static void test_note_others_ignored(void)
{
	struct img i;
	uint64_t wrong = 0x101000, entry = 0x100040;
	unsigned char build_id[20], odd[3] = { 1, 2, 3 };
	size_t end;

	memset(build_id, 0xab, sizeof(build_id));
	/* other owners with our type, our owner with other types, odd sizes that need
	 * padding: none of them is the ring-3 entry, whatever their descriptor holds */
	make(&i);
	end = put_note(&i, NOTE_OFF, "GNU", NT_GNU_BUILD_ID, build_id, sizeof(build_id));
	end = put_note(&i, end, "GNU", S2_NOTE_USER_ENTRY, &wrong, 8);
	end = put_note(&i, end, "s2vmx", S2_NOTE_USER_ENTRY, odd, sizeof(odd));
	end = put_note(&i, end, "s2v", S2_NOTE_USER_ENTRY, &wrong, 8);
	end = put_note(&i, end, S2_NOTE_NAME, S2_NOTE_USER_ENTRY + 1, odd, sizeof(odd));
	end = put_note(&i, end, "", 0, NULL, 0);
	note_seg(&i, end);
	CU_ASSERT_EQUAL(parse_user_entry(&i), 0);
	/* ... and the s2vm note after them is still found */
	note_seg(&i, put_note(&i, end, S2_NOTE_NAME, S2_NOTE_USER_ENTRY, &entry, 8));
	CU_ASSERT_EQUAL(parse_user_entry(&i), 0x100040);
}

static void test_note_truncated(void)
{
	struct img i;

	/* the segment past the end of the file */
	make_noted(&i, 0x100020);
	expect(&i, NOTE_OFF + 20, "truncated ELF: note segment 3");
	make_noted(&i, 0x100020);
	ph(&i, 3)->p_offset = ~0ull - 8;
	expect(&i, sizeof(i.b), "truncated ELF: note segment 3");
	make_noted(&i, 0x100020);
	ph(&i, 3)->p_filesz = ~0ull - 0x1000;
	expect(&i, sizeof(i.b), "truncated ELF: note segment 3");
	/* the segment ends inside a note header, name or descriptor */
	make_noted(&i, 0x100020);
	ph(&i, 3)->p_filesz = 8;
	expect(&i, sizeof(i.b), "truncated note header");
	make_noted(&i, 0x100020);
	ph(&i, 3)->p_filesz = 28 + 4; /* a valid note, then 4 stray bytes */
	expect(&i, sizeof(i.b), "truncated note header");
	make_noted(&i, 0x100020);
	ph(&i, 3)->p_filesz = 16;
	expect(&i, sizeof(i.b), "5-byte name overflows");
	make_noted(&i, 0x100020);
	ph(&i, 3)->p_filesz = 24;
	expect(&i, sizeof(i.b), "8-byte descriptor overflows");
}

static void test_note_size_overflow(void)
{
	struct img i;

	/* sizes that overflow the segment, and 32-bit arithmetic when padded */
	make_noted(&i, 0x100020);
	nhdr(&i)->n_namesz = 17;
	expect(&i, sizeof(i.b), "17-byte name overflows");
	make_noted(&i, 0x100020);
	nhdr(&i)->n_namesz = 0xffffffff;
	expect(&i, sizeof(i.b), "4294967295-byte name overflows");
	make_noted(&i, 0x100020);
	nhdr(&i)->n_namesz = 0xfffffffd;
	expect(&i, sizeof(i.b), "name overflows");
	make_noted(&i, 0x100020);
	nhdr(&i)->n_descsz = 9; /* padded to 12: one byte too many is still too many */
	expect(&i, sizeof(i.b), "9-byte descriptor overflows");
	make_noted(&i, 0x100020);
	nhdr(&i)->n_descsz = 0xffffffff;
	expect(&i, sizeof(i.b), "4294967295-byte descriptor overflows");
}

static void test_note_bad_descsz(void)
{
	struct img i;
	uint32_t small = 0x100020;
	uint64_t big[2] = { 0x100020, 0x100020 };

	make(&i);
	note_seg(&i, put_note(&i, NOTE_OFF, S2_NOTE_NAME, S2_NOTE_USER_ENTRY, &small, 4));
	expect(&i, sizeof(i.b), "s2vm note: ring-3 entry note has 4-byte descriptor, expected 8");
	make(&i);
	note_seg(&i, put_note(&i, NOTE_OFF, S2_NOTE_NAME, S2_NOTE_USER_ENTRY, big, 16));
	expect(&i, sizeof(i.b), "s2vm note: ring-3 entry note has 16-byte descriptor, expected 8");
	make(&i);
	note_seg(&i, put_note(&i, NOTE_OFF, S2_NOTE_NAME, S2_NOTE_USER_ENTRY, NULL, 0));
	expect(&i, sizeof(i.b), "s2vm note: ring-3 entry note has 0-byte descriptor, expected 8");
}

static void test_note_entry_outside_exec(void)
{
	struct img i;
	uint64_t a = 0x100020, b = 0x100030;
	size_t end;

	make_noted(&i, 0x101000); /* in data */
	expect(&i, sizeof(i.b), "ring-3 entry 0x101000 (s2vm note) is not in an executable");
	make_noted(&i, 0x100000 - 1); /* just below text */
	expect(&i, sizeof(i.b), "(s2vm note) is not in an executable segment");
	make_noted(&i, 0x101000 + 0x4fff); /* in the bss */
	expect(&i, sizeof(i.b), "(s2vm note) is not in an executable segment");
	make_noted(&i, 0); /* present but zero is not "no note" */
	expect(&i, sizeof(i.b), "ring-3 entry 0 (s2vm note)");
	make_noted(&i, ~0ull);
	expect(&i, sizeof(i.b), "(s2vm note) is not in an executable segment");
	/* two entry notes: which one would the VMM start? */
	make(&i);
	end = put_note(&i, NOTE_OFF, S2_NOTE_NAME, S2_NOTE_USER_ENTRY, &a, 8);
	note_seg(&i, put_note(&i, end, S2_NOTE_NAME, S2_NOTE_USER_ENTRY, &b, 8));
	expect(&i, sizeof(i.b), "more than one ring-3 entry note");
}

/* Random corruption of the note and its program header never crashes the parser (ASan
 * watches the reads), and a ring-3 entry it accepts is inside the executable segment. */
static void test_note_fuzz(void)
{
	struct img i;
	struct elf_image im;
	unsigned seed = 777, accepted = 0, with_entry = 0;

	for (int n = 0; n < 20000; n++) {
		make_noted(&i, 0x100020);
		for (int k = 0; k < 1 + n % 4; k++) {
			size_t at;

			seed = seed * 1103515245u + 12345u;
			at = (seed >> 8) % (28 + sizeof(Elf64_Phdr));
			seed = seed * 1103515245u + 12345u;
			if (at < 28)
				i.b[NOTE_OFF + at] = (unsigned char)(seed >> 20);
			else
				((unsigned char *)ph(&i, 3))[at - 28] = (unsigned char)(seed >> 20);
		}
		if (elf_parse(i.b, sizeof(i.b), &im, NULL) == 0) {
			accepted++;
			if (im.user_entry) {
				with_entry++;
				CU_ASSERT(im.user_entry >= 0x100000 && im.user_entry < 0x101000);
			}
		}
	}
	CU_ASSERT(accepted > 0);
	CU_ASSERT(with_entry > 0);
	CU_ASSERT(accepted < 20000); /* some mutations must be refused */
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
	{ "s2vm note: ring-3 entry found", test_note_found },
	{ "s2vm note: other notes ignored", test_note_others_ignored },
	{ "s2vm note: truncated", test_note_truncated },
	{ "s2vm note: size overflow", test_note_size_overflow },
	{ "s2vm note: descriptor size", test_note_bad_descsz },
	{ "s2vm note: entry outside text", test_note_entry_outside_exec },
	{ "s2vm note: random corruption", test_note_fuzz },
	{ "fits guest RAM", test_fits },
	{ "random corruption", test_fuzz },
	CU_TEST_INFO_NULL,
};

UNIT_MAIN("elf", tests)
