// SPDX-License-Identifier: MIT
#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "s2vm/bootinfo.h"
#include "vmm/elf.h"

static int add_overflows(uint64_t a, uint64_t b)
{
	return a + b < a;
}

/* Note name and descriptor sizes are padded to 4 bytes in the file. */
static uint64_t note_pad(uint32_t n)
{
	return ((uint64_t)n + 3) & ~3ull;
}

/*
 * Walk the notes of PT_NOTE segment @idx, @ph, of the @len-byte file @p. Every note must
 * lie inside the segment and the segment inside the file. The first s2vm ring-3 entry
 * note sets img->user_entry and *@found; a second one is an error.
 * Returns 0, or -ENOEXEC with @e set.
 */
static int elf_notes_parse(const unsigned char *p, size_t len, unsigned idx, const Elf64_Phdr *ph,
			   struct elf_image *img, int *found, struct s2_err *e)
{
	static const char name[] = S2_NOTE_NAME; /* with its NUL, as namesz counts it */
	const unsigned char *seg;
	uint64_t pos = 0, size = ph->p_filesz;

	if (ph->p_offset > len || ph->p_filesz > len - ph->p_offset)
		return s2_err_set(e, -ENOEXEC,
				  "truncated ELF: note segment %u needs bytes [%#" PRIx64
				  ", %#" PRIx64 ") of a %zu-byte file",
				  idx, (uint64_t)ph->p_offset,
				  (uint64_t)ph->p_offset + ph->p_filesz, len);
	seg = p + ph->p_offset;
	while (pos < size) {
		Elf64_Nhdr nh;
		uint64_t at = pos, name_at, desc_at;

		if (size - pos < sizeof(nh))
			return s2_err_set(e, -ENOEXEC,
					  "note segment %u: truncated note header at %#" PRIx64,
					  idx, at);
		memcpy(&nh, seg + pos, sizeof(nh));
		pos += sizeof(nh);
		name_at = pos;
		if (note_pad(nh.n_namesz) > size - pos)
			return s2_err_set(e, -ENOEXEC,
					  "note segment %u: note at offset %#" PRIx64 ": %" PRIu32
					  "-byte name overflows the segment",
					  idx, at, (uint32_t)nh.n_namesz);
		pos += note_pad(nh.n_namesz);
		desc_at = pos;
		if (note_pad(nh.n_descsz) > size - pos)
			return s2_err_set(e, -ENOEXEC,
					  "note segment %u: note at offset %#" PRIx64 ": %" PRIu32
					  "-byte descriptor overflows the segment",
					  idx, at, (uint32_t)nh.n_descsz);
		pos += note_pad(nh.n_descsz);

		if (nh.n_namesz != sizeof(name) || memcmp(seg + name_at, name, sizeof(name)) ||
		    nh.n_type != S2_NOTE_USER_ENTRY)
			continue;
		if (nh.n_descsz != sizeof(img->user_entry))
			return s2_err_set(e, -ENOEXEC,
					  "s2vm note: ring-3 entry note has %" PRIu32
					  "-byte descriptor, expected %zu",
					  (uint32_t)nh.n_descsz, sizeof(img->user_entry));
		if (*found)
			return s2_err_set(e, -ENOEXEC,
					  "s2vm note: more than one ring-3 entry note");
		memcpy(&img->user_entry, seg + desc_at, sizeof(img->user_entry));
		*found = 1;
	}
	return 0;
}

/* Is @gpa inside an executable segment of @img? */
static int elf_in_exec_seg(const struct elf_image *img, uint64_t gpa)
{
	for (unsigned i = 0; i < img->nr_segs; i++) {
		const struct elf_segment *s = &img->segs[i];

		if ((s->flags & PF_X) && gpa >= s->gpa && gpa - s->gpa < s->memsz)
			return 1;
	}
	return 0;
}

int elf_parse(const void *buf, size_t len, struct elf_image *img, struct s2_err *e)
{
	const unsigned char *p = buf;
	Elf64_Ehdr eh;
	int note_found = 0;

	memset(img, 0, sizeof(*img));
	if (len < EI_NIDENT || memcmp(p, ELFMAG, SELFMAG) != 0)
		return s2_err_set(e, -ENOEXEC, "not an ELF file (bad magic)");
	if (len < sizeof(eh))
		return s2_err_set(e, -ENOEXEC, "truncated ELF header (%zu of %zu bytes)", len,
				  sizeof(eh));
	memcpy(&eh, p, sizeof(eh));
	if (eh.e_ident[EI_CLASS] != ELFCLASS64)
		return s2_err_set(e, -ENOEXEC, "not a 64-bit ELF (class %u)",
				  eh.e_ident[EI_CLASS]);
	if (eh.e_ident[EI_DATA] != ELFDATA2LSB)
		return s2_err_set(e, -ENOEXEC, "not a little-endian ELF");
	if (eh.e_machine != EM_X86_64)
		return s2_err_set(e, -ENOEXEC, "ELF machine %u is not x86-64", eh.e_machine);
	if (eh.e_type != ET_EXEC)
		return s2_err_set(e, -ENOEXEC,
				  "ELF type %u is not an executable (ET_EXEC); link it static, non-PIE",
				  eh.e_type);
	if (eh.e_phentsize != sizeof(Elf64_Phdr))
		return s2_err_set(e, -ENOEXEC, "bad program header size %u", eh.e_phentsize);
	if (eh.e_phnum == 0)
		return s2_err_set(e, -ENOEXEC, "ELF has no program headers");
	if (eh.e_phoff > len || (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > len - eh.e_phoff)
		return s2_err_set(e, -ENOEXEC, "truncated ELF: program headers past end of file");

	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		struct elf_segment *s;

		memcpy(&ph, p + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;
		if (img->nr_segs == ELF_MAX_SEGS)
			return s2_err_set(e, -ENOEXEC, "more than %d loadable segments",
					  ELF_MAX_SEGS);
		if (ph.p_filesz > ph.p_memsz)
			return s2_err_set(e, -ENOEXEC, "segment %u: file size exceeds memory size",
					  i);
		if (ph.p_offset > len || ph.p_filesz > len - ph.p_offset)
			return s2_err_set(e, -ENOEXEC,
					  "truncated ELF: segment %u needs bytes [%#" PRIx64
					  ", %#" PRIx64 ") of a %zu-byte file",
					  i, (uint64_t)ph.p_offset,
					  (uint64_t)ph.p_offset + ph.p_filesz, len);
		if (add_overflows(ph.p_paddr, ph.p_memsz))
			return s2_err_set(e, -ENOEXEC, "segment %u wraps the address space", i);
		s = &img->segs[img->nr_segs];
		s->gpa = ph.p_paddr;
		s->memsz = ph.p_memsz;
		s->offset = ph.p_offset;
		s->filesz = ph.p_filesz;
		s->flags = ph.p_flags;
		for (unsigned j = 0; j < img->nr_segs; j++) {
			const struct elf_segment *o = &img->segs[j];

			if (s->gpa < o->gpa + o->memsz && o->gpa < s->gpa + s->memsz)
				return s2_err_set(e, -ENOEXEC, "segments overlap at %#" PRIx64,
						  s->gpa > o->gpa ? s->gpa : o->gpa);
		}
		if (img->nr_segs == 0 || s->gpa < img->lo)
			img->lo = s->gpa;
		if (s->gpa + s->memsz > img->hi)
			img->hi = s->gpa + s->memsz;
		img->nr_segs++;
	}
	if (img->nr_segs == 0)
		return s2_err_set(e, -ENOEXEC, "ELF has no loadable segments");
	if (!elf_in_exec_seg(img, eh.e_entry))
		return s2_err_set(e, -ENOEXEC,
				  "entry point %#" PRIx64 " is not in an executable segment",
				  (uint64_t)eh.e_entry);
	img->entry = eh.e_entry;

	/* notes after the load segments: the ring-3 entry is checked against them */
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		int r;

		memcpy(&ph, p + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_NOTE)
			continue;
		r = elf_notes_parse(p, len, i, &ph, img, &note_found, e);
		if (r)
			return r;
	}
	if (note_found && !elf_in_exec_seg(img, img->user_entry))
		return s2_err_set(e, -ENOEXEC,
				  "ring-3 entry %#" PRIx64
				  " (s2vm note) is not in an executable segment",
				  img->user_entry);
	return 0;
}

int elf_check_fits(const struct elf_image *img, uint64_t min_gpa, uint64_t mem_size,
		   struct s2_err *e)
{
	for (unsigned i = 0; i < img->nr_segs; i++) {
		const struct elf_segment *s = &img->segs[i];

		if (s->gpa < min_gpa)
			return s2_err_set(e, -EINVAL,
					  "segment at %#" PRIx64 " overlaps the boot area [0, %#" PRIx64
					  "); link the kernel at or above %#" PRIx64,
					  s->gpa, min_gpa, min_gpa);
		if (s->gpa >= mem_size || s->memsz > mem_size - s->gpa)
			return s2_err_set(e, -E2BIG,
					  "segment [%#" PRIx64 ", %#" PRIx64
					  ") lies outside guest RAM [0, %#" PRIx64 ")",
					  s->gpa, s->gpa + s->memsz, mem_size);
	}
	return 0;
}

int elf_load(const struct elf_image *img, const void *buf, elf_write_fn write, void *ctx)
{
	static const unsigned char zero[4096];
	const unsigned char *p = buf;
	int r;

	for (unsigned i = 0; i < img->nr_segs; i++) {
		const struct elf_segment *s = &img->segs[i];

		r = write(ctx, s->gpa, p + s->offset, s->filesz);
		for (uint64_t off = s->filesz; !r && off < s->memsz;) {
			uint64_t n = s->memsz - off < sizeof(zero) ? s->memsz - off : sizeof(zero);

			r = write(ctx, s->gpa + off, zero, n);
			off += n;
		}
		if (r)
			return r;
	}
	return 0;
}
