/* SPDX-License-Identifier: MIT */
/* ELF64 x86-64 guest kernel loader: parse and check in memory, then copy into guest RAM. */
#ifndef S2VM_ELF_H
#define S2VM_ELF_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/err.h"

#define ELF_MAX_SEGS 16

struct elf_segment {
	uint64_t gpa; /* load address (p_paddr) */
	uint64_t memsz; /* bytes in guest memory, [gpa, gpa + memsz) */
	uint64_t offset; /* file offset of the initialised part */
	uint64_t filesz; /* initialised bytes, <= memsz; the rest is zeroed */
	uint32_t flags; /* PF_R / PF_W / PF_X */
};

struct elf_image {
	uint64_t entry; /* entry point GPA, inside an executable segment */
	uint64_t user_entry; /* ring-3 entry GPA from the s2vm note, 0 if none */
	uint64_t lo; /* lowest segment GPA */
	uint64_t hi; /* end of the highest segment, exclusive */
	unsigned nr_segs;
	struct elf_segment segs[ELF_MAX_SEGS];
};

/*
 * Parse the ELF64 image @buf of @len bytes. Checks the identification, machine, type,
 * header sizes, that every PT_LOAD segment lies inside the file and does not wrap, that
 * segments do not overlap, and that the entry point is inside an executable segment.
 * Walks the notes of every PT_NOTE segment (each inside the file, every note inside its
 * segment): a note named S2_NOTE_NAME of type S2_NOTE_USER_ENTRY must carry an 8-byte
 * GPA inside an executable segment and sets @img->user_entry; other notes are ignored.
 * Returns 0, or -ENOEXEC with @e naming the problem.
 */
int elf_parse(const void *buf, size_t len, struct elf_image *img, struct s2_err *e)
	__attribute__((warn_unused_result));

/*
 * Check that every segment of @img lies in guest RAM [@min_gpa, @mem_size).
 * Returns 0, or -E2BIG (segment past the end of RAM) / -EINVAL (below @min_gpa) with @e set.
 */
int elf_check_fits(const struct elf_image *img, uint64_t min_gpa, uint64_t mem_size,
		   struct s2_err *e) __attribute__((warn_unused_result));

/* Writes @len bytes from @src into guest memory at @gpa. Returns 0 or -errno. */
typedef int (*elf_write_fn)(void *ctx, uint64_t gpa, const void *src, uint64_t len);

/*
 * Write the segments of a parsed and checked image into guest memory through @write:
 * each segment's file bytes, then zeros up to its memory size (RAM may be reused).
 * Returns 0, or the first error @write returned.
 */
int elf_load(const struct elf_image *img, const void *buf, elf_write_fn write, void *ctx)
	__attribute__((warn_unused_result));

#endif
