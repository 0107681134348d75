// SPDX-License-Identifier: MIT
/*
 * The x86 trap decoder of --accel proc (vmm/x86_decode.h): every IN/OUT form it must
 * accept with its port, size, direction and length; the look-alikes it must refuse
 * (string I/O, rep and other prefixes, truncated bytes); exactly guestos's eight MMIO
 * accessor encodings and none of their near misses. Then random byte strings against an
 * independent reference decoder, with the input placed right before a PROT_NONE page
 * so that a decoder reading past @n faults (ASan catches the same on a heap copy).
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tests/unit/unit.h"
#include "vmm/x86_decode.h"

#define RDX 0xdeadbeef0000cafeull /* the DX forms use its low 16 bits: 0xcafe */

/* ---- port I/O ---- */

struct io_case {
	uint8_t bytes[4];
	size_t n;
	uint16_t port;
	uint8_t size;
	bool out, dx;
	uint8_t len;
};

static const struct io_case io_good[] = {
	/* in/out with an imm8 port; the imm8 is an unsigned port number */
	{ { 0xe4, 0x60 }, 2, 0x60, 1, false, false, 2 }, /* in $0x60,%al */
	{ { 0xe5, 0x71 }, 2, 0x71, 4, false, false, 2 }, /* in $0x71,%eax */
	{ { 0xe6, 0x80 }, 2, 0x80, 1, true, false, 2 }, /* out %al,$0x80 */
	{ { 0xe7, 0xff }, 2, 0xff, 4, true, false, 2 }, /* out %eax,$0xff */
	{ { 0x66, 0xe5, 0x42 }, 3, 0x42, 2, false, false, 3 }, /* in $0x42,%ax */
	{ { 0x66, 0xe7, 0x00 }, 3, 0x00, 2, true, false, 3 }, /* out %ax,$0x0 */
	/* 66 does not widen or narrow the byte forms */
	{ { 0x66, 0xe4, 0x10 }, 3, 0x10, 1, false, false, 3 },
	{ { 0x66, 0xe6, 0x11 }, 3, 0x11, 1, true, false, 3 },
	/* port in %dx: only its low 16 bits */
	{ { 0xec }, 1, 0xcafe, 1, false, true, 1 }, /* in (%dx),%al */
	{ { 0xed }, 1, 0xcafe, 4, false, true, 1 }, /* in (%dx),%eax */
	{ { 0xee }, 1, 0xcafe, 1, true, true, 1 }, /* out %al,(%dx) */
	{ { 0xef }, 1, 0xcafe, 4, true, true, 1 }, /* out %eax,(%dx) */
	{ { 0x66, 0xed }, 2, 0xcafe, 2, false, true, 2 }, /* in (%dx),%ax */
	{ { 0x66, 0xef }, 2, 0xcafe, 2, true, true, 2 }, /* out %ax,(%dx) */
	{ { 0x66, 0xec }, 2, 0xcafe, 1, false, true, 2 },
	{ { 0x66, 0xee }, 2, 0xcafe, 1, true, true, 2 },
	/* bytes after the instruction are the next instruction's: length unchanged */
	{ { 0xef, 0xf4, 0xeb, 0xfe }, 4, 0xcafe, 4, true, true, 1 },
	{ { 0xe6, 0x80, 0xe6, 0x81 }, 4, 0x80, 1, true, false, 2 },
	{ { 0x66, 0xef, 0x90, 0x90 }, 4, 0xcafe, 2, true, true, 2 },
};

static void test_io_forms(void)
{
	for (size_t i = 0; i < sizeof(io_good) / sizeof(io_good[0]); i++) {
		const struct io_case *c = &io_good[i];
		struct x86_io io;
		int r;

		memset(&io, 0xa5, sizeof(io)); /* every field must be written */
		r = x86_decode_io(c->bytes, c->n, RDX, &io);
		CU_ASSERT_EQUAL(r, 0);
		if (r) {
			fprintf(stderr, "\n  case %zu (%02x %02x ...) rejected\n", i, c->bytes[0],
				c->bytes[1]);
			continue;
		}
		CU_ASSERT_EQUAL(io.port, c->port);
		CU_ASSERT_EQUAL(io.size, c->size);
		CU_ASSERT_EQUAL(io.out, c->out);
		CU_ASSERT_EQUAL(io.port_in_dx, c->dx);
		CU_ASSERT_EQUAL(io.insn_len, c->len);
	}
}

/* The port of a DX form is %dx as it is now, not a value cached from an earlier call. */
static void test_io_port_follows_rdx(void)
{
	const uint8_t out_dx[] = { 0xee };
	const uint64_t rdx[] = { 0, 0x3f8, 0xffff, 0x10000, 0xffffffffffff1234ull };
	const uint16_t port[] = { 0, 0x3f8, 0xffff, 0, 0x1234 };

	for (size_t i = 0; i < sizeof(rdx) / sizeof(rdx[0]); i++) {
		struct x86_io io;

		CU_ASSERT_EQUAL_FATAL(x86_decode_io(out_dx, 1, rdx[i], &io), 0);
		CU_ASSERT_EQUAL(io.port, port[i]);
	}
}

static void test_io_rejects(void)
{
	static const struct {
		uint8_t bytes[4];
		size_t n;
	} bad[] = {
		/* string I/O: ins/outs, also with 66 and rep */
		{ { 0x6c }, 1 }, { { 0x6d }, 1 }, { { 0x6e }, 1 }, { { 0x6f }, 1 },
		{ { 0x66, 0x6d }, 2 }, { { 0x66, 0x6f }, 2 },
		{ { 0xf3, 0x6c }, 2 }, { { 0xf3, 0x6e }, 2 }, { { 0xf3, 0x66, 0x6f }, 3 },
		/* rep/repne and other prefixes on the plain forms */
		{ { 0xf3, 0xee }, 2 }, { { 0xf2, 0xec }, 2 }, { { 0xf3, 0xe6, 0x80 }, 3 },
		{ { 0x66, 0xf3, 0xef }, 3 }, { { 0x66, 0x66, 0xef }, 3 },
		{ { 0x67, 0xee }, 2 }, { { 0x2e, 0xee }, 2 }, { { 0xf0, 0xee }, 2 },
		{ { 0x48, 0xef }, 2 }, { { 0x40, 0xe6, 0x80 }, 3 },
		/* truncated: nothing, a lone prefix, an imm8 form without its port */
		{ { 0 }, 0 }, { { 0x66 }, 1 }, { { 0xe4 }, 1 }, { { 0xe7 }, 1 },
		{ { 0x66, 0xe5 }, 2 }, { { 0x66, 0xe6 }, 2 },
		/* other opcodes, including the neighbours of the accepted ones */
		{ { 0x90 }, 1 }, { { 0xf4 }, 1 }, { { 0xe3, 0x00 }, 2 }, { { 0xe8, 0, 0, 0 }, 4 },
		{ { 0xeb, 0xfe }, 2 }, { { 0xf0 }, 1 }, { { 0x0f, 0x01, 0xc1 }, 3 },
		{ { 0x66, 0x90 }, 2 }, { { 0x89, 0x37 }, 2 },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct x86_io io;
		int r = x86_decode_io(bad[i].bytes, bad[i].n, RDX, &io);

		CU_ASSERT_EQUAL(r, -EINVAL);
		if (r != -EINVAL)
			fprintf(stderr, "\n  case %zu (n=%zu, %02x %02x ...) gave %d\n", i,
				bad[i].n, bad[i].bytes[0], bad[i].bytes[1], r);
	}
	/* n = 0 must not look at the bytes at all */
	{
		struct x86_io io;

		CU_ASSERT_EQUAL(x86_decode_io(NULL, 0, RDX, &io), -EINVAL);
	}
}

/* ---- MMIO accessors ---- */

/* guestos/lib/mmio.S, as listed in the header. */
static const struct {
	uint8_t bytes[3];
	uint8_t n, len;
	bool write;
} mmio_good[] = {
	{ { 0x0f, 0xb6, 0x07 }, 3, 1, false }, /* movzbl (%rdi),%eax */
	{ { 0x0f, 0xb7, 0x07 }, 3, 2, false }, /* movzwl (%rdi),%eax */
	{ { 0x8b, 0x07 }, 2, 4, false }, /* mov (%rdi),%eax */
	{ { 0x48, 0x8b, 0x07 }, 3, 8, false }, /* mov (%rdi),%rax */
	{ { 0x40, 0x88, 0x37 }, 3, 1, true }, /* mov %sil,(%rdi) */
	{ { 0x66, 0x89, 0x37 }, 3, 2, true }, /* mov %si,(%rdi) */
	{ { 0x89, 0x37 }, 2, 4, true }, /* mov %esi,(%rdi) */
	{ { 0x48, 0x89, 0x37 }, 3, 8, true }, /* mov %rsi,(%rdi) */
};
#define NR_MMIO (sizeof(mmio_good) / sizeof(mmio_good[0]))

static void test_mmio_forms(void)
{
	for (size_t i = 0; i < NR_MMIO; i++) {
		uint8_t buf[8];
		struct x86_mmio m;
		int r;

		/* exact length, then followed by other bytes (a ret and padding) */
		for (size_t tail = 0; tail <= 3; tail += 3) {
			memcpy(buf, mmio_good[i].bytes, mmio_good[i].n);
			memcpy(buf + mmio_good[i].n, "\xc3\x90\x90", tail);
			memset(&m, 0xa5, sizeof(m));
			r = x86_decode_mmio(buf, mmio_good[i].n + tail, &m);
			CU_ASSERT_EQUAL(r, 0);
			if (r) {
				fprintf(stderr, "\n  accessor %zu rejected\n", i);
				continue;
			}
			CU_ASSERT_EQUAL(m.len, mmio_good[i].len);
			CU_ASSERT_EQUAL(m.write, mmio_good[i].write);
			CU_ASSERT_EQUAL(m.insn_len, mmio_good[i].n);
		}
	}
}

static void test_mmio_near_misses(void)
{
	static const struct {
		uint8_t bytes[4];
		size_t n;
		const char *what;
	} bad[] = {
		{ { 0x8b, 0x06 }, 2, "mov (%rsi),%eax: other base register" },
		{ { 0x8b, 0x0f }, 2, "mov (%rdi),%ecx: other destination" },
		{ { 0x8b, 0x47, 0x08 }, 3, "mov 8(%rdi),%eax: displacement" },
		{ { 0x8b, 0x87, 0, 0x10 }, 4, "mov disp32(%rdi),%eax, truncated" },
		{ { 0x8b, 0x04, 0x3f }, 3, "SIB addressing" },
		{ { 0x89, 0x36 }, 2, "mov %esi,(%rsi)" },
		{ { 0x89, 0x3f }, 2, "mov %edi,(%rdi)" },
		{ { 0x89, 0x77, 0x04 }, 3, "mov %esi,4(%rdi)" },
		{ { 0x88, 0x37 }, 2, "mov %dh,(%rdi): no REX, not %sil" },
		{ { 0x8a, 0x07 }, 2, "mov (%rdi),%al: not zero-extending" },
		{ { 0x66, 0x8b, 0x07 }, 3, "mov (%rdi),%ax: not zero-extending" },
		{ { 0x41, 0x89, 0x37 }, 3, "mov %esi,(%r15)" },
		{ { 0x49, 0x8b, 0x07 }, 3, "mov (%r15),%rax" },
		{ { 0x4c, 0x8b, 0x07 }, 3, "mov (%rdi),%r8" },
		{ { 0x44, 0x88, 0x37 }, 3, "mov %r14b,(%rdi)" },
		{ { 0x67, 0x8b, 0x07 }, 3, "address-size prefix: (%edi)" },
		{ { 0xf0, 0x89, 0x37 }, 3, "lock prefix" },
		{ { 0x65, 0x8b, 0x07 }, 3, "segment override" },
		{ { 0x0f, 0xbe, 0x07 }, 3, "movsbl: sign-extending" },
		{ { 0x0f, 0xb6, 0x06 }, 3, "movzbl (%rsi)" },
		{ { 0xc7, 0x07, 0, 0 }, 4, "mov $imm,(%rdi)" },
		{ { 0x48, 0x8b }, 2, "48 8b alone" },
		{ { 0x48 }, 1, "a lone REX.W" },
		{ { 0x0f, 0xb7 }, 2, "0f b7 alone" },
		{ { 0x0f }, 1, "0f alone" },
		{ { 0x8b }, 1, "8b alone" },
		{ { 0x89 }, 1, "89 alone" },
		{ { 0x40, 0x88 }, 2, "40 88 alone" },
		{ { 0x66, 0x89 }, 2, "66 89 alone" },
		{ { 0 }, 0, "nothing" },
		{ { 0x90 }, 1, "nop" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct x86_mmio m;
		int r = x86_decode_mmio(bad[i].bytes, bad[i].n, &m);

		CU_ASSERT_EQUAL(r, -EINVAL);
		if (r != -EINVAL)
			fprintf(stderr, "\n  accepted: %s\n", bad[i].what);
	}
	/* every accessor cut short by any number of bytes */
	for (size_t i = 0; i < NR_MMIO; i++)
		for (size_t n = 0; n < mmio_good[i].n; n++) {
			struct x86_mmio m;
			int r = x86_decode_mmio(mmio_good[i].bytes, n, &m);

			CU_ASSERT_EQUAL(r, -EINVAL);
			if (r != -EINVAL)
				fprintf(stderr, "\n  accessor %zu accepted with %zu bytes\n", i, n);
		}
	{
		struct x86_mmio m;

		CU_ASSERT_EQUAL(x86_decode_mmio(NULL, 0, &m), -EINVAL);
	}
}

/* ---- random byte strings against a reference ---- */

/* Reference: written from the architecture, not from the decoder. */
static bool ref_io(const uint8_t *b, size_t n, uint64_t rdx, struct x86_io *io)
{
	static const struct {
		uint8_t op;
		bool imm, out, wide;
	} ops[] = {
		{ 0xe4, true, false, false }, { 0xe5, true, false, true },
		{ 0xe6, true, true, false }, { 0xe7, true, true, true },
		{ 0xec, false, false, false }, { 0xed, false, false, true },
		{ 0xee, false, true, false }, { 0xef, false, true, true },
	};
	size_t p = n >= 1 && b[0] == 0x66;

	if (n < p + 1)
		return false;
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (b[p] != ops[i].op)
			continue;
		if (ops[i].imm && n < p + 2)
			return false;
		io->port = ops[i].imm ? b[p + 1] : (uint16_t)(rdx & 0xffff);
		io->port_in_dx = !ops[i].imm;
		io->out = ops[i].out;
		io->size = !ops[i].wide ? 1 : p ? 2 : 4;
		io->insn_len = (uint8_t)(p + 1 + ops[i].imm);
		return true;
	}
	return false;
}

static bool ref_mmio(const uint8_t *b, size_t n, struct x86_mmio *m)
{
	for (size_t i = 0; i < NR_MMIO; i++)
		if (n >= mmio_good[i].n && !memcmp(b, mmio_good[i].bytes, mmio_good[i].n)) {
			m->len = mmio_good[i].len;
			m->write = mmio_good[i].write;
			m->insn_len = mmio_good[i].n;
			return true;
		}
	return false;
}

/* Bytes that make up the accepted forms and their near misses, drawn more often than
 * chance would so that a good share of the strings decode. */
static const uint8_t interesting[] = {
	0x66, 0xe4, 0xe5, 0xe6, 0xe7, 0xec, 0xed, 0xee, 0xef, 0x6c, 0x6d, 0x6e, 0x6f, 0xf3, 0xf2,
	0x48, 0x40, 0x41, 0x0f, 0xb6, 0xb7, 0x8b, 0x89, 0x88, 0x07, 0x37, 0x06, 0x36, 0x47,
};

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

#define MAX_LEN 7

/*
 * @MAX_LEN test bytes: biased random bytes, or an accepted I/O or MMIO form followed by
 * random bytes, with one byte replaced half of the time (a near miss). The caller takes
 * a random prefix, so truncations come out too.
 */
static void make_bytes(uint64_t *s, uint8_t b[MAX_LEN])
{
	static const uint8_t io_ops[] = { 0xe4, 0xe5, 0xe6, 0xe7, 0xec, 0xed, 0xee, 0xef };
	uint64_t mode = xorshift(s) % 4;
	size_t at = 0;

	for (size_t i = 0; i < MAX_LEN; i++) {
		uint64_t x = xorshift(s);

		b[i] = mode != 3 && x % 10 < 7 ? interesting[(x >> 8) % sizeof(interesting)]
					       : (uint8_t)(x >> 32);
	}
	if (mode == 1) {
		size_t k = (size_t)(xorshift(s) % NR_MMIO);

		memcpy(b, mmio_good[k].bytes, mmio_good[k].n);
		at = mmio_good[k].n;
	} else if (mode == 2) {
		if (xorshift(s) % 2)
			b[at++] = 0x66;
		b[at++] = io_ops[xorshift(s) % sizeof(io_ops)];
		at++; /* the imm8 (or the next instruction) stays random */
	}
	if (at && xorshift(s) % 2) {
		uint64_t x = xorshift(s);

		b[x % at] = x % 3 ? interesting[(x >> 8) % sizeof(interesting)]
				  : (uint8_t)(x >> 32);
	}
}

static sigjmp_buf *segv_jump; /* set only while a decode runs on the guarded buffer */

static void on_segv(int sig)
{
	(void)sig;
	if (segv_jump)
		siglongjmp(*segv_jump, 1);
	_exit(1);
}

/* Run both decoders on @b; returns true if one of them faulted (read past @n). */
static bool decode_guarded(const uint8_t *b, size_t n, uint64_t rdx, int *r_io,
			   struct x86_io *io, int *r_mmio, struct x86_mmio *m)
{
	sigjmp_buf jb;

	if (sigsetjmp(jb, 1)) {
		segv_jump = NULL;
		return true;
	}
	segv_jump = &jb;
	*r_io = x86_decode_io(b, n, rdx, io);
	*r_mmio = x86_decode_mmio(b, n, m);
	segv_jump = NULL;
	return false;
}

static void report(const char *what, uint64_t seed, unsigned iter, const uint8_t *b, size_t n)
{
	fprintf(stderr, "\n  %s (seed %#llx, iteration %u, n=%zu:", what,
		(unsigned long long)seed, iter, n);
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, " %02x", b[i]);
	fprintf(stderr, ")\n");
}

#define RANDOM_ITERS 300000

static void test_random_bytes(void)
{
	const uint64_t seed = 0x5eedd3c0de2024ull;
	long pg = sysconf(_SC_PAGESIZE);
	uint8_t *page = mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned io_ok = 0, mmio_ok = 0, rejected = 0, failures = 0;
	struct sigaction sa = { .sa_handler = on_segv }, old_segv, old_bus;
	uint64_t s = seed;

	CU_ASSERT_FATAL(page != MAP_FAILED);
	CU_ASSERT_EQUAL_FATAL(mprotect(page + pg, (size_t)pg, PROT_NONE), 0);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &old_segv);
	sigaction(SIGBUS, &sa, &old_bus);

	for (unsigned it = 0; it < RANDOM_ITERS && failures < 10; it++) {
		size_t n = (size_t)(xorshift(&s) % (MAX_LEN + 1));
		uint8_t want_b[MAX_LEN];
		uint8_t *guarded = page + pg - n; /* byte n is on the PROT_NONE page */
		uint8_t *heap = malloc(n ? n : 1);
		uint64_t rdx = xorshift(&s);
		struct x86_io io, rio;
		struct x86_mmio m, rm;
		int r_io, r_mmio, r_io2, r_mmio2;
		bool want_io, want_mmio;

		CU_ASSERT_FATAL(heap != NULL);
		make_bytes(&s, want_b);
		memcpy(guarded, want_b, n);
		memcpy(heap, want_b, n);

		if (decode_guarded(guarded, n, rdx, &r_io, &io, &r_mmio, &m)) {
			report("decoder read past n (fault on the guard page)", seed, it, want_b,
			       n);
			CU_FAIL("decoder read past the end of its input");
			failures++;
			free(heap);
			continue;
		}
		/* the same on an exactly sized heap copy (ASan checks the bound there) */
		r_io2 = x86_decode_io(heap, n, rdx, &rio);
		r_mmio2 = x86_decode_mmio(heap, n, &rm);
		free(heap);
		if (r_io != r_io2 || r_mmio != r_mmio2) {
			report("result depends on the buffer", seed, it, want_b, n);
			CU_FAIL("decoding is not a function of the n input bytes");
			failures++;
			continue;
		}

		want_io = ref_io(want_b, n, rdx, &rio);
		want_mmio = ref_mmio(want_b, n, &rm);
		if (r_io != (want_io ? 0 : -EINVAL) ||
		    (want_io && (io.port != rio.port || io.size != rio.size || io.out != rio.out ||
				 io.port_in_dx != rio.port_in_dx || io.insn_len != rio.insn_len))) {
			report(want_io ? "I/O decoded wrongly or refused" : "I/O accepted", seed,
			       it, want_b, n);
			CU_FAIL("x86_decode_io disagrees with the reference");
			failures++;
		}
		if (r_mmio != (want_mmio ? 0 : -EINVAL) ||
		    (want_mmio && (m.len != rm.len || m.write != rm.write ||
				   m.insn_len != rm.insn_len))) {
			report(want_mmio ? "MMIO decoded wrongly or refused" : "MMIO accepted",
			       seed, it, want_b, n);
			CU_FAIL("x86_decode_mmio disagrees with the reference");
			failures++;
		}
		/* whatever is accepted fits in the input */
		if ((!r_io && io.insn_len > n) || (!r_mmio && m.insn_len > n)) {
			report("instruction longer than the input", seed, it, want_b, n);
			CU_FAIL("insn_len beyond n");
			failures++;
		}
		io_ok += !r_io;
		mmio_ok += !r_mmio;
		rejected += r_io && r_mmio;
	}
	sigaction(SIGSEGV, &old_segv, NULL);
	sigaction(SIGBUS, &old_bus, NULL);
	munmap(page, (size_t)pg * 2);
	/* the strings exercised both sides of every decision, not only rejections */
	CU_ASSERT(io_ok > 1000);
	CU_ASSERT(mmio_ok > 1000);
	CU_ASSERT(rejected > 10000);
	if (failures)
		fprintf(stderr, "\n  %u failures (seed %#llx)\n", failures,
			(unsigned long long)seed);
}

static CU_TestInfo tests[] = {
	{ "IN/OUT: every form, port, size, length", test_io_forms },
	{ "IN/OUT: DX port is the low 16 bits of rdx", test_io_port_follows_rdx },
	{ "IN/OUT: string I/O, prefixes, truncation refused", test_io_rejects },
	{ "MMIO: the eight accessor encodings", test_mmio_forms },
	{ "MMIO: near misses and truncation refused", test_mmio_near_misses },
	{ "random bytes: reference agreement, no read past n", test_random_bytes },
	CU_TEST_INFO_NULL,
};

UNIT_MAIN("decode", tests)
