// SPDX-License-Identifier: MIT
/*
 * The VMM's guest memory access (mm_guest_read, mm_guest_write) and the host alias, on
 * the real `kvm` backend (memfd pools, no /dev/kvm needed): random data written one way
 * reads back every other way, across 2 MiB blocks and pool boundaries, and after
 * migration; checked range errors that copy nothing. With alias_at_gpa: the alias at
 * host address == GPA, nothing mapped below the floor, the device window reserved
 * PROT_NONE, clashes refused with -EEXIST, and the range free again after mm_destroy.
 *
 * Every random case uses a fixed seed, printed with the first differing GPA on failure.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "mm/migrate.h"
#include "mm/mm.h"
#include "tests/unit/mm_unit.h"
#include "tests/unit/unit.h"

#define MIB (1ull << 20)
#define BLOCK (2 * MIB)
#define PAGE 4096ull

/* ---- helpers ---- */

static void fill(uint64_t *s, void *buf, uint64_t len)
{
	unsigned char *b = buf;

	for (uint64_t i = 0; i < len; i += 8) {
		uint64_t x = rnd(s);

		memcpy(b + i, &x, len - i < 8 ? len - i : 8);
	}
}

/* Compare @len bytes seen at GPA @gpa; on a difference, say where and with which seed. */
static bool same(const char *what, uint64_t seed, gpa_t gpa, const void *got, const void *want,
		 uint64_t len)
{
	const unsigned char *g = got, *w = want;
	uint64_t i = 0;

	if (!memcmp(got, want, len))
		return true;
	while (g[i] == w[i])
		i++;
	fprintf(stderr,
		"\n  %s: GPA %#llx differs (got %02x, want %02x) in [%#llx, %#llx); seed %#llx\n",
		what, (unsigned long long)(gpa + i), g[i], w[i], (unsigned long long)gpa,
		(unsigned long long)(gpa + len), (unsigned long long)seed);
	return false;
}

/* A random span of [0, @size): often straddling a 2 MiB block (or node) boundary. */
static void random_span(uint64_t *s, uint64_t size, gpa_t *gpa, uint64_t *len)
{
	uint64_t kind = rnd(s) % 4, g, l;

	if (kind < 2) { /* around a block boundary */
		uint64_t b = (1 + rnd(s) % (size / BLOCK - 1)) * BLOCK;

		g = b - 1 - rnd(s) % (64 << 10);
		l = b - g + rnd(s) % (64 << 10);
	} else if (kind == 2) { /* small, anywhere, unaligned */
		g = rnd(s) % size;
		l = 1 + rnd(s) % 5000;
	} else { /* long: several blocks */
		g = rnd(s) % size;
		l = 1 + rnd(s) % (5 * MIB);
	}
	if (l > size - g)
		l = size - g;
	*gpa = g;
	*len = l;
}

/*
 * Bytes of [@lo, @hi) mapped in this process, per /proc/self/maps; *@all_match is
 * cleared if any of those mappings has permissions other than @perms ("rw?s": '?' is any).
 */
static uint64_t maps_scan(uintptr_t lo, uintptr_t hi, const char *perms, bool *all_match)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char *line = NULL;
	size_t cap = 0;
	uint64_t mapped = 0;
	bool match = true;

	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	while (getline(&line, &cap, f) > 0) {
		unsigned long s, e;
		char p[5];

		if (sscanf(line, "%lx-%lx %4s", &s, &e, p) != 3 || e <= lo || s >= hi)
			continue;
		mapped += (e < hi ? e : hi) - (s > lo ? s : lo);
		for (int i = 0; i < 4 && perms; i++)
			if (perms[i] != '?' && perms[i] != p[i])
				match = false;
	}
	free(line);
	fclose(f);
	if (all_match)
		*all_match = match;
	return mapped;
}

/* Every byte of [@lo, @hi) is mapped with permissions @perms. */
static bool maps_covered(uintptr_t lo, uintptr_t hi, const char *perms)
{
	bool match;

	return maps_scan(lo, hi, perms, &match) == hi - lo && match;
}

static bool maps_free(uintptr_t lo, uintptr_t hi)
{
	return maps_scan(lo, hi, NULL, NULL) == 0;
}

/* mincore(2) fails with ENOMEM exactly where nothing is mapped; it never touches. */
static bool page_mapped(uintptr_t a)
{
	unsigned char v;

	return mincore((void *)a, PAGE, &v) == 0 || errno != ENOMEM;
}

/* An alias_at_gpa config of @c's layout; false (a failed assertion) if its range is taken
 * here: s2vm's own process has it free, so a test process must too. */
static bool at_gpa(struct mm_config *c, uint64_t extra)
{
	c->alias_at_gpa = true;
	c->alias_floor = unit_alias_floor();
	c->alias_extra = extra;
	if (!maps_free(c->alias_floor, c->mem_size + extra)) {
		fprintf(stderr, "\n  [%#llx, %#llx) is already in use in this process\n",
			(unsigned long long)c->alias_floor,
			(unsigned long long)(c->mem_size + extra));
		CU_FAIL("the alias range is taken");
		return false;
	}
	return true;
}

/* The alias shows @shadow wherever it maps guest RAM. */
static void check_alias(const struct mm *mm, uint64_t seed, const unsigned char *shadow)
{
	gpa_t lo = mm->cfg.alias_at_gpa ? mm->cfg.alias_floor : 0;

	CU_ASSERT(same("alias", seed, lo, mm_alias_at(mm, lo), shadow + lo,
		       mm->cfg.mem_size - lo));
}

static void check_read_guest(struct mm *mm, uint64_t seed, const unsigned char *shadow)
{
	uint64_t size = mm->cfg.mem_size;
	unsigned char *buf = malloc(size);

	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	CU_ASSERT_EQUAL(mm_guest_read(mm, 0, buf, size), 0);
	CU_ASSERT(same("mm_guest_read", seed, 0, buf, shadow, size));
	free(buf);
}

/* The alias-at-GPA layout is intact: nothing below the floor, RAM shared and writable
 * from the floor up, the device window reserved PROT_NONE. */
static void check_at_gpa_layout(const struct mm *mm)
{
	uint64_t floor = mm->cfg.alias_floor, size = mm->cfg.mem_size;
	unsigned below = 0;

	for (uintptr_t a = 0; a < floor; a += PAGE)
		below += page_mapped(a);
	CU_ASSERT_EQUAL(below, 0);
	CU_ASSERT(maps_free(0, floor));
	CU_ASSERT(maps_covered(floor, size, "r??s"));
	CU_ASSERT(maps_covered(size, size + mm->cfg.alias_extra, "---p"));
}

/* ---- default alias ---- */

static void test_default_roundtrip(void)
{
	const uint64_t seed = 0x6a7e57d1ull;
	uint64_t s = seed;
	struct mm_config c = two_nodes(8 * MIB);
	uint64_t size = c.mem_size;
	unsigned char *shadow = malloc(size), *buf = malloc(size);
	const struct {
		gpa_t gpa;
		uint64_t len;
	} fixed[] = {
		{ 0, 1 }, { size - 1, 1 }, { BLOCK - 1, 2 }, { 8 * MIB - 1000, 2000 },
		{ 8 * MIB - PAGE, 2 * PAGE }, { MIB + 5, 6 * MIB + 3 }, { 0, size },
	};
	struct mm mm;
	unsigned pool_lo, pool_hi;
	uint64_t off_lo, off_hi;

	CU_ASSERT_PTR_NOT_NULL_FATAL(shadow);
	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	CU_ASSERT_EQUAL_FATAL(create(&mm, &c), 0);
	CU_ASSERT_PTR_NOT_NULL(mm.alias);
	/* the guest node boundary at 8 MiB is a boundary between two pools */
	CU_ASSERT_EQUAL(mm_gpa_node(&mm, 8 * MIB - 1), 0);
	CU_ASSERT_EQUAL(mm_gpa_node(&mm, 8 * MIB), 1);
	CU_ASSERT_EQUAL_FATAL(mm_gpa_backing(&mm, 8 * MIB - PAGE, &pool_lo, &off_lo), 0);
	CU_ASSERT_EQUAL_FATAL(mm_gpa_backing(&mm, 8 * MIB, &pool_hi, &off_hi), 0);
	CU_ASSERT_NOT_EQUAL(pool_lo, pool_hi);

	fill(&s, shadow, size);
	CU_ASSERT_EQUAL_FATAL(mm_guest_write(&mm, 0, shadow, size), 0);
	check_alias(&mm, seed, shadow);

	/* fixed spans, one way then the other */
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		gpa_t g = fixed[i].gpa;
		uint64_t l = fixed[i].len;

		fill(&s, shadow + g, l);
		CU_ASSERT_EQUAL(mm_guest_write(&mm, g, shadow + g, l), 0);
		CU_ASSERT(same("write_guest -> alias", seed, g, mm_alias_at(&mm, g), shadow + g,
			       l));
		fill(&s, shadow + g, l);
		memcpy(mm_alias_at(&mm, g), shadow + g, l);
		CU_ASSERT_EQUAL(mm_guest_read(&mm, g, buf, l), 0);
		CU_ASSERT(same("alias -> read_guest", seed, g, buf, shadow + g, l));
	}

	/* random interleaving of the four paths */
	for (int op = 0; op < 400; op++) {
		gpa_t g;
		uint64_t l;

		random_span(&s, size, &g, &l);
		switch (rnd(&s) % 4) {
		case 0:
			fill(&s, shadow + g, l);
			CU_ASSERT_EQUAL(mm_guest_write(&mm, g, shadow + g, l), 0);
			break;
		case 1:
			fill(&s, shadow + g, l);
			memcpy(mm_alias_at(&mm, g), shadow + g, l);
			break;
		case 2:
			CU_ASSERT_EQUAL(mm_guest_read(&mm, g, buf, l), 0);
			CU_ASSERT(same("read_guest", seed, g, buf, shadow + g, l));
			break;
		default:
			CU_ASSERT(same("alias", seed, g, mm_alias_at(&mm, g), shadow + g, l));
		}
	}
	check_read_guest(&mm, seed, shadow);
	check_alias(&mm, seed, shadow);
	/* and the bytes are in the pools the map names, on both sides of the boundary */
	CU_ASSERT(same("pool below 8 MiB", seed, 8 * MIB - PAGE, mm.pools[pool_lo].base + off_lo,
		       shadow + 8 * MIB - PAGE, PAGE));
	CU_ASSERT(same("pool at 8 MiB", seed, 8 * MIB, mm.pools[pool_hi].base + off_hi,
		       shadow + 8 * MIB, PAGE));
	mm_destroy(&mm);
	free(shadow);
	free(buf);
}

static void test_out_of_range(void)
{
	const uint64_t seed = 0x0fbadull;
	uint64_t s = seed;
	struct mm_config c = { .mem_size = 4 * MIB };
	uint64_t size = c.mem_size;
	const struct {
		gpa_t gpa;
		uint64_t len;
	} bad[] = {
		{ size - 4, 8 }, /* straddles the end */
		{ size, 1 },
		{ size + PAGE, 4 },
		{ UINT64_MAX - 2, 8 }, /* gpa + len wraps */
		{ 8, UINT64_MAX - 4 }, /* gpa + len wraps to 3 */
		{ size - PAGE, UINT64_MAX - size + PAGE + 1 }, /* gpa + len == 2^64 == 0 */
		{ size - PAGE, UINT64_MAX - size + PAGE + 17 }, /* gpa + len wraps to 16 */
		{ 0, size + 1 },
	};
	/* RAM-sized buffers: a check that lets the in-RAM part through copies that part
	 * (and no more), which the comparisons below then see */
	unsigned char *shadow = malloc(size), *buf = malloc(size), *src = malloc(size),
		      *dst = malloc(size), *sentinel = malloc(size);
	struct mm mm;

	CU_ASSERT_FATAL(shadow && buf && src && dst && sentinel);
	CU_ASSERT_EQUAL_FATAL(create(&mm, &c), 0);
	fill(&s, shadow, size);
	CU_ASSERT_EQUAL_FATAL(mm_guest_write(&mm, 0, shadow, size), 0);
	fill(&s, src, size);
	fill(&s, sentinel, size);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int w, r;

		memcpy(dst, sentinel, size);
		w = mm_guest_write(&mm, bad[i].gpa, src, bad[i].len);
		r = mm_guest_read(&mm, bad[i].gpa, dst, bad[i].len);
		CU_ASSERT_EQUAL(w, -EFAULT);
		CU_ASSERT_EQUAL(r, -EFAULT);
		if (w != -EFAULT || r != -EFAULT)
			fprintf(stderr, "\n  [%#llx, +%#llx): write %d, read %d\n",
				(unsigned long long)bad[i].gpa, (unsigned long long)bad[i].len, w,
				r);
		CU_ASSERT(same("dst after a failed read", seed, bad[i].gpa, dst, sentinel, size));
	}
	/* no failed write copied anything, not even the part inside RAM */
	check_read_guest(&mm, seed, shadow);
	check_alias(&mm, seed, shadow);
	/* the last bytes of RAM are reachable: the check is not off by one */
	CU_ASSERT_EQUAL(mm_guest_write(&mm, size - 8, src, 8), 0);
	CU_ASSERT_EQUAL(mm_guest_read(&mm, size - 8, buf, 8), 0);
	CU_ASSERT(same("last 8 bytes", seed, size - 8, buf, src, 8));
	mm_destroy(&mm);
	free(shadow);
	free(buf);
	free(src);
	free(dst);
	free(sentinel);
}

/* ---- alias at host address == GPA ---- */

static void test_at_gpa_roundtrip(void)
{
	const uint64_t seed = 0xa11a5a7ull;
	uint64_t s = seed;
	struct mm_config c = { .mem_size = 32 * MIB };
	uint64_t size = c.mem_size, floor;
	unsigned char *shadow = malloc(size), *buf = malloc(size);
	struct mm mm;

	CU_ASSERT_PTR_NOT_NULL_FATAL(shadow);
	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	if (!at_gpa(&c, 2 * MIB))
		goto out;
	floor = c.alias_floor;
	CU_ASSERT_EQUAL_FATAL(create(&mm, &c), 0);
	for (gpa_t g = floor; g < size; g += 3 * MIB + 4 * PAGE + 123)
		CU_ASSERT_PTR_EQUAL(mm_alias_at(&mm, g), (void *)(uintptr_t)g);
	CU_ASSERT_PTR_EQUAL(mm_alias_at(&mm, size - 1), (void *)(uintptr_t)(size - 1));
	check_at_gpa_layout(&mm);

	/* everything, below the floor too, through the pools; above it, at host == GPA */
	fill(&s, shadow, size);
	CU_ASSERT_EQUAL_FATAL(mm_guest_write(&mm, 0, shadow, size), 0);
	check_alias(&mm, seed, shadow);
	check_read_guest(&mm, seed, shadow);

	/* below the floor: only the pools, and a span across the floor */
	fill(&s, shadow, floor + 300);
	CU_ASSERT_EQUAL(mm_guest_write(&mm, 0, shadow, floor), 0);
	CU_ASSERT_EQUAL(mm_guest_write(&mm, floor - 100, shadow + floor - 100, 400), 0);
	CU_ASSERT_EQUAL(mm_guest_read(&mm, 0, buf, floor + 300), 0);
	CU_ASSERT(same("below the floor", seed, 0, buf, shadow, floor + 300));
	CU_ASSERT(same("across the floor, host side", seed, floor, (void *)(uintptr_t)floor,
		       shadow + floor, 300));

	/* random spans above the floor: one way through the pools, the other at host == GPA */
	for (int op = 0; op < 300; op++) {
		gpa_t g;
		uint64_t l;

		random_span(&s, size, &g, &l);
		if (g < floor) {
			l -= floor - g < l ? floor - g : l;
			g = floor;
			if (!l)
				continue;
		}
		fill(&s, shadow + g, l);
		if (op % 2) {
			CU_ASSERT_EQUAL(mm_guest_write(&mm, g, shadow + g, l), 0);
			CU_ASSERT(same("write_guest -> host == GPA", seed, g, (void *)(uintptr_t)g,
				       shadow + g, l));
		} else {
			memcpy((void *)(uintptr_t)g, shadow + g, l);
			CU_ASSERT_EQUAL(mm_guest_read(&mm, g, buf, l), 0);
			CU_ASSERT(same("host == GPA -> read_guest", seed, g, buf, shadow + g, l));
		}
	}
	check_read_guest(&mm, seed, shadow);
	check_alias(&mm, seed, shadow);
	check_at_gpa_layout(&mm); /* no access above mapped anything below the floor */
	mm_destroy(&mm);
	CU_ASSERT(maps_free(0, size + 2 * MIB));
out:
	free(shadow);
	free(buf);
}

static void test_at_gpa_exclusive(void)
{
	struct mm_config c = { .mem_size = 32 * MIB };
	uint64_t size = c.mem_size, end = size + 2 * MIB;
	char lo[32], hi[32];
	struct mm a, b;
	void *foreign;
	int r;

	if (!at_gpa(&c, 2 * MIB))
		return;
	snprintf(lo, sizeof(lo), "%#llx", (unsigned long long)c.alias_floor);
	snprintf(hi, sizeof(hi), "%#llx", (unsigned long long)end);
	CU_ASSERT_EQUAL_FATAL(create(&a, &c), 0);
	memset((void *)(uintptr_t)(size - PAGE), 0x5a, PAGE);

	/* a second VM at the same place is refused, and names the range */
	r = mm_create(&b, &c);
	CU_ASSERT_EQUAL(r, -EEXIST);
	CU_ASSERT_PTR_NOT_NULL(strstr(b.err, lo));
	CU_ASSERT_PTR_NOT_NULL(strstr(b.err, hi));
	if (r != -EEXIST || !strstr(b.err, lo) || !strstr(b.err, hi))
		fprintf(stderr, "\n  second mm_create: %d \"%s\" (want -EEXIST and %s, %s)\n", r,
			b.err, lo, hi);
	if (r == 0)
		mm_destroy(&a); /* b now owns the range (or part of it); a must not unmap it */
	mm_destroy(&b);
	if (r == 0)
		return;
	/* ... and cleaning up after it leaves the first one alone */
	check_at_gpa_layout(&a);
	CU_ASSERT_EQUAL(((unsigned char *)(uintptr_t)size)[-1], 0x5a);
	CU_ASSERT(maps_covered(size - PAGE, size, "rw?s"));

	/* after mm_destroy the whole range is unmapped, and can be taken again */
	mm_destroy(&a);
	CU_ASSERT(maps_free(0, end));
	CU_ASSERT_EQUAL_FATAL(create(&a, &c), 0);
	mm_destroy(&a);
	CU_ASSERT(maps_free(0, end));

	/* a host mapping inside the device window is never replaced: -EEXIST, left as is */
	foreign = mmap((void *)(uintptr_t)(size + MIB), PAGE, PROT_READ,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	CU_ASSERT_EQUAL_FATAL(foreign, (void *)(uintptr_t)(size + MIB));
	r = mm_create(&b, &c);
	CU_ASSERT_EQUAL(r, -EEXIST);
	mm_destroy(&b);
	CU_ASSERT(maps_covered(size + MIB, size + MIB + PAGE, "r--p"));
	CU_ASSERT(maps_free(0, size + MIB));
	munmap(foreign, PAGE);
}

static void test_at_gpa_bad_floor(void)
{
	struct mm_config c = { .mem_size = 4 * MIB, .alias_at_gpa = true, .alias_extra = 0 };
	struct mm mm;

	c.alias_floor = unit_alias_floor() + 1; /* not page aligned */
	CU_ASSERT_EQUAL(mm_create(&mm, &c), -EINVAL);
	mm_destroy(&mm);
	c.alias_floor = c.mem_size; /* no RAM above it */
	CU_ASSERT_EQUAL(mm_create(&mm, &c), -EINVAL);
	mm_destroy(&mm);
	CU_ASSERT(maps_free(0, c.mem_size + PAGE));
}

/* ---- after migration ---- */

static void run_migrate(bool alias_at_gpa, bool lazy, uint64_t seed)
{
	uint64_t s = seed;
	struct mm_config c = two_nodes(16 * MIB);
	uint64_t size = c.mem_size;
	/* to host node 1: a range from GPA 0 across the floor and a piece of a 2 MiB block;
	 * to host node 0: a range across the node boundary (half already there), two pages */
	const struct mig_range to1[] = { { 0, 4 * MIB }, { 5 * MIB + 3 * PAGE, 75 * PAGE } };
	const struct mig_range to0[] = { { 14 * MIB, 4 * MIB }, { 24 * MIB + PAGE, 2 * PAGE } };
	unsigned char *shadow = malloc(size), *buf = malloc(size);
	struct mig_result res;
	struct mm mm;
	uintptr_t host;
	gpa_t g;

	CU_ASSERT_PTR_NOT_NULL_FATAL(shadow);
	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	c.mig.lazy_writable = lazy;
	if (alias_at_gpa && !at_gpa(&c, 2 * MIB))
		goto out;
	CU_ASSERT_EQUAL_FATAL(create(&mm, &c), 0);
	fill(&s, shadow, size);
	CU_ASSERT_EQUAL_FATAL(mm_guest_write(&mm, 0, shadow, size), 0);

	CU_ASSERT_EQUAL(mm_migrate(&mm, to1, 2, 1, &res), 0);
	CU_ASSERT_EQUAL(res.pages, 1024 + 75);
	CU_ASSERT_EQUAL(res.skipped, 0);
	CU_ASSERT_EQUAL(res.aborted, 0);
	CU_ASSERT_EQUAL(mm_migrate(&mm, to0, 2, 0, &res), 0);
	CU_ASSERT_EQUAL(res.pages, 512 + 2);
	CU_ASSERT_EQUAL(res.skipped, 512);
	CU_ASSERT_EQUAL(res.aborted, 0);
	/* the pages moved, their neighbours did not */
	CU_ASSERT_EQUAL(mm_gpa_node(&mm, 0), 1);
	CU_ASSERT_EQUAL(mm_gpa_node(&mm, 4 * MIB - PAGE), 1);
	CU_ASSERT_EQUAL(mm_gpa_node(&mm, 4 * MIB), 0);
	CU_ASSERT_EQUAL(mm_gpa_node(&mm, 5 * MIB + 2 * PAGE), 0);
	CU_ASSERT_EQUAL(mm_gpa_node(&mm, 5 * MIB + 3 * PAGE), 1);
	CU_ASSERT_EQUAL(mm_gpa_node(&mm, 5 * MIB + 77 * PAGE), 1);
	CU_ASSERT_EQUAL(mm_gpa_node(&mm, 5 * MIB + 78 * PAGE), 0);
	CU_ASSERT_EQUAL(mm_gpa_node(&mm, 16 * MIB), 0);
	CU_ASSERT_EQUAL(mm_gpa_node(&mm, 18 * MIB - PAGE), 0);
	CU_ASSERT_EQUAL(mm_gpa_node(&mm, 18 * MIB), 1);
	CU_ASSERT_EQUAL(mm_gpa_node(&mm, 24 * MIB), 1);
	CU_ASSERT_EQUAL(mm_gpa_node(&mm, 24 * MIB + PAGE), 0);
	CU_ASSERT_EQUAL(mm_gpa_node(&mm, 24 * MIB + 3 * PAGE), 1);

	/* same bytes, through the pools and through the alias */
	check_read_guest(&mm, seed, shadow);
	check_alias(&mm, seed, shadow);
	if (alias_at_gpa)
		check_at_gpa_layout(&mm); /* remapping [0, 4 MiB) kept below the floor empty */
	if (lazy && alias_at_gpa) /* the migrated pages wait for their first write */
		CU_ASSERT(maps_covered(2 * MIB, 2 * MIB + PAGE, "r-?s"));

	/* new data into the moved pages (and across their edges) through the pools */
	for (size_t i = 0; i < 4; i++) {
		const struct mig_range *r = i < 2 ? &to1[i] : &to0[i - 2];

		g = r->gpa ? r->gpa - 100 : 0;
		fill(&s, shadow + g, r->len + 200);
		CU_ASSERT_EQUAL(mm_guest_write(&mm, g, shadow + g, r->len + 200), 0);
	}
	check_read_guest(&mm, seed, shadow);
	check_alias(&mm, seed, shadow);
	/* and through the alias: writable now, also after a lazy migration */
	g = 2 * MIB + 5;
	host = (uintptr_t)mm_alias_at(&mm, 2 * MIB);
	if (maps_covered(host, host + PAGE, "rw?s")) {
		fill(&s, shadow + g, 1000);
		memcpy(mm_alias_at(&mm, g), shadow + g, 1000);
		CU_ASSERT_EQUAL(mm_guest_read(&mm, g, buf, 1000), 0);
		CU_ASSERT(same("alias -> read_guest after migration", seed, g, buf, shadow + g,
			       1000));
	} else {
		CU_FAIL("a page written by mm_guest_write is still read-only in the alias");
	}
	mm_destroy(&mm);
	if (alias_at_gpa)
		CU_ASSERT(maps_free(0, size + 2 * MIB));
out:
	free(shadow);
	free(buf);
}

static void test_migrate_default(void)
{
	run_migrate(false, false, 0x316a7e01ull);
}

static void test_migrate_at_gpa(void)
{
	run_migrate(true, false, 0x316a7e02ull);
}

static void test_migrate_at_gpa_lazy(void)
{
	run_migrate(true, true, 0x316a7e03ull);
}

static CU_TestInfo tests[] = {
	{ "default alias: pools and alias agree across blocks and pools",
	  test_default_roundtrip },
	{ "out of range and overflowing spans: -EFAULT, nothing copied", test_out_of_range },
	{ "alias at GPA: host == GPA, nothing below the floor, window reserved",
	  test_at_gpa_roundtrip },
	{ "alias at GPA: a clash is -EEXIST naming the range; destroy unmaps",
	  test_at_gpa_exclusive },
	{ "alias at GPA: bad floors refused", test_at_gpa_bad_floor },
	{ "migration keeps the bytes (default alias)", test_migrate_default },
	{ "migration keeps the bytes (alias at GPA)", test_migrate_at_gpa },
	{ "migration keeps the bytes (alias at GPA, lazy)", test_migrate_at_gpa_lazy },
	CU_TEST_INFO_NULL,
};

UNIT_MAIN("guestio", tests)
