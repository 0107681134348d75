// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the ELF loader. elf_parse() runs on the input; an image it accepts
 * goes through elf_check_fits() against a 16 MiB guest and, when it fits, elf_load() into
 * a buffer standing in for that guest's RAM. Besides what ASan and UBSan catch, a finding
 * is any documented guarantee that does not hold: an accepted image that breaks one of
 * elf_parse()'s checks, an elf_check_fits() verdict that disagrees with the segments, a
 * write outside RAM or outside every segment, loaded bytes that are not the file's bytes
 * followed by zeros, or an error from the writer that elf_load() does not pass back.
 */
#include <elf.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "s2vm/bootinfo.h"
#include "tests/fuzz/fuzz.h"
#include "vmm/elf.h"

#define RAM_SIZE (16ull << 20) /* every guestos image fits, churnload's 8 MiB bss included */
#define POISON 0xa5 /* segment bytes before the load: each must be overwritten */

/* elf_load()'s writer context: one guest's RAM and what may be written into it. */
struct ram {
	unsigned char *base; /* RAM_SIZE bytes, guest-physical [0, RAM_SIZE) */
	const struct elf_image *img;
	uint64_t written; /* bytes the writer was given */
	unsigned calls; /* writer calls so far */
	unsigned fail_at; /* failing writer: the call that returns -EIO */
};

/* Is [gpa, gpa + len) inside one segment of @img? */
static int in_segment(const struct elf_image *img, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < img->nr_segs; i++) {
		const struct elf_segment *s = &img->segs[i];

		if (gpa >= s->gpa && gpa - s->gpa <= s->memsz && len <= s->memsz - (gpa - s->gpa))
			return 1;
	}
	return 0;
}

/* The writer: bounds-checked against RAM and the segments before anything is copied. */
static int ram_write(void *ctx, uint64_t gpa, const void *src, uint64_t len)
{
	struct ram *ram = ctx;

	fuzz_check(gpa <= RAM_SIZE && len <= RAM_SIZE - gpa);
	fuzz_check(in_segment(ram->img, gpa, len));
	memcpy(ram->base + gpa, src, len);
	ram->written += len;
	ram->calls++;
	return 0;
}

/* A writer that fails at call fail_at; elf_load() must stop there and return -EIO. */
static int failing_write(void *ctx, uint64_t gpa, const void *src, uint64_t len)
{
	struct ram *ram = ctx;

	fuzz_check(ram->calls <= ram->fail_at);
	return ram->calls++ == ram->fail_at ? -EIO : 0;
}

/* Is @gpa inside an executable segment of @img? */
static int in_exec_segment(const struct elf_image *img, uint64_t gpa)
{
	for (unsigned i = 0; i < img->nr_segs; i++) {
		const struct elf_segment *s = &img->segs[i];

		if ((s->flags & PF_X) && gpa >= s->gpa && gpa - s->gpa < s->memsz)
			return 1;
	}
	return 0;
}

/* elf_parse() accepted @img from the @len-byte file: check what its comment promises. */
static void check_parsed(const struct elf_image *img, size_t len)
{
	fuzz_check(img->nr_segs >= 1 && img->nr_segs <= ELF_MAX_SEGS);
	for (unsigned i = 0; i < img->nr_segs; i++) {
		const struct elf_segment *s = &img->segs[i];

		fuzz_check(s->memsz > 0 && s->filesz <= s->memsz);
		fuzz_check(s->offset <= len && s->filesz <= len - s->offset);
		fuzz_check(s->gpa + s->memsz > s->gpa); /* does not wrap */
		fuzz_check(s->gpa >= img->lo && s->gpa + s->memsz <= img->hi);
		for (unsigned j = 0; j < i; j++) {
			const struct elf_segment *o = &img->segs[j];

			fuzz_check(s->gpa >= o->gpa + o->memsz || o->gpa >= s->gpa + s->memsz);
		}
	}
	fuzz_check(in_exec_segment(img, img->entry));
	fuzz_check(!img->user_entry || in_exec_segment(img, img->user_entry));
}

/* Is every byte of [p, p + n) zero? */
static int all_zero(const unsigned char *p, uint64_t n)
{
	return !n || (!p[0] && !memcmp(p, p + 1, n - 1));
}

static unsigned char *ram_base(void)
{
	static unsigned char *base;

	if (!base) {
		base = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			    -1, 0);
		fuzz_check(base != MAP_FAILED);
	}
	return base;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct elf_image img;
	struct s2_err e = { .msg = "" };
	struct ram ram = { .base = ram_base(), .img = &img };
	uint64_t total = 0;
	int fits, r;

	r = elf_parse(data, size, &img, &e);
	if (r) {
		fuzz_check(r == -ENOEXEC && e.msg[0]);
		return 0;
	}
	check_parsed(&img, size);

	fits = 1;
	for (unsigned i = 0; i < img.nr_segs; i++) {
		const struct elf_segment *s = &img.segs[i];

		if (s->gpa < S2_IMAGE_MIN_GPA || s->gpa >= RAM_SIZE || s->memsz > RAM_SIZE - s->gpa)
			fits = 0;
	}
	r = elf_check_fits(&img, S2_IMAGE_MIN_GPA, RAM_SIZE, &e);
	if (r) {
		fuzz_check(!fits && (r == -E2BIG || r == -EINVAL) && e.msg[0]);
		return 0;
	}
	fuzz_check(fits);

	for (unsigned i = 0; i < img.nr_segs; i++) {
		memset(ram.base + img.segs[i].gpa, POISON, img.segs[i].memsz);
		total += img.segs[i].memsz;
	}
	r = elf_load(&img, data, ram_write, &ram);
	fuzz_check(r == 0);
	fuzz_check(ram.written == total);
	for (unsigned i = 0; i < img.nr_segs; i++) {
		const struct elf_segment *s = &img.segs[i];
		const unsigned char *m = ram.base + s->gpa;

		fuzz_check(!memcmp(m, data + s->offset, s->filesz));
		fuzz_check(all_zero(m + s->filesz, s->memsz - s->filesz));
	}

	/* the same load failing part way, at a call chosen by the input's last byte */
	ram.fail_at = data[size - 1] % ram.calls;
	ram.calls = 0;
	r = elf_load(&img, data, failing_write, &ram);
	fuzz_check(r == -EIO && ram.calls == ram.fail_at + 1);
	return 0;
}
