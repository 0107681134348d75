// SPDX-License-Identifier: MIT
/*
 * Fault injection into the memory manager's commit path (issue 10), on the real `kvm`
 * backend and the default alias (memfd pools, no /dev/kvm needed): many random
 * migrations between two host nodes while alias mmap/mprotect calls fail at seeded rates
 * (1%, 5%, 20%), eager and lazy, with and without deferred invalidation. After every
 * migration:
 *
 *  - no byte is lost or torn: mm_guest_read and the alias both show the shadow copy, which
 *    the test keeps up to date as it writes through mm_guest_write and, like a vCPU,
 *    through the alias where /proc/self/maps says it is writable;
 *  - map, alias and frames agree: every alias page maps the pool memfd at exactly the
 *    offset the map names, with the map's permissions (read from /proc/self/maps, never
 *    by touching), a marker written through the pool appears in the alias, the frame
 *    table names the same frame, no frame is mapped twice or mapped while free, the
 *    alias has one mapping per maximal run of the map (nothing left fragmented against
 *    vm.max_map_count), and in eager mode nothing is left read-only;
 *  - during each copy (the batch is write-protected) the source frames are read-only in
 *    both map and alias and the destination frames are reachable by neither;
 *  - mig_result agrees with the totals, and after mm_flush_and_free the pools hold
 *    exactly guest RAM's frames.
 *
 * When a roll-back itself fails, mm->fatal must be set with on_fatal called exactly once,
 * the data must still be intact, and further migrations and write faults must change
 * nothing (migrations returning -EIO); the run then continues on a new VM. Every
 * mprotect or every mmap failing, and memfd_create failing, are tested on their own.
 *
 * Seeded: $S2VM_SEED, else a fixed default; every failure prints the seed and run.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "mm/discard.h"
#include "mm/migrate.h"
#include "mm/mm.h"
#include "tests/unit/unit.h"

#define MIB (1ull << 20)
#define BLOCK (2 * MIB)
#define PAGE 4096ull
#define NODE_SIZE (8 * MIB) /* two guest nodes */
#define POOL_CAP (14 * MIB) /* each pool: the whole guest does not fit one */
#define RATE_PCT(p) ((uint32_t)((p) * 10000))
#define MAX_REPORTS 40 /* messages printed per run */
#define MAX_LINES 2048 /* EXPECT sites, indexed by __LINE__ */
#define PER_SITE 3 /* failures asserted per site and run; the rest are counted */

/* One random run: the policy, the failure rates, how much to migrate. */
struct run_cfg {
	const char *name;
	bool lazy, defer, punch;
	uint32_t rate; /* mmap and mprotect failures per million (fallocate too with punch) */
	uint32_t copy_fail; /* copy hook failures per million */
	uint64_t batch_frames, cap_frames; /* 0: the engine's defaults */
	uint64_t pages; /* migrate at least this many pages */
};

/* An alias VMA from /proc/self/maps, clipped to the alias. */
struct vma {
	uintptr_t s, e;
	uint64_t off;
	unsigned long ino;
	char perm[5];
};

/* What one run saw, summed over its VMs (a fatal roll-back starts a new one). */
struct totals {
	uint64_t pages, aborted, skipped, calls, errors, batches;
	uint64_t injected[MM_CALL_NR];
	uint64_t alias_failures, lazy_fixups, fatal;
	uint64_t guest_writes, alias_writes, faults, copy_failed;
	uint64_t words_checked, words_wrong;
};

struct env {
	struct mm mm;
	bool live;
	const struct run_cfg *rc;
	uint64_t seed, rng;
	unsigned vm, iter; /* VM number in this run, migration number */
	uint64_t size;
	unsigned char *shadow, *buf;
	unsigned long ino[MM_MAX_POOLS];
	unsigned fatal_calls;
	struct vma *vma;
	size_t nvma, capvma;
	/* copy hook: per pool, per frame, what reaches it (FR_*), rebuilt per batch */
	uint64_t copy_seq;
	uint8_t *fr[MM_MAX_POOLS];
	uint8_t *req; /* per page: REQ_* for the migration being checked */
	unsigned reports;
	unsigned site_fails[MAX_LINES];
	struct totals t;
};

enum { FR_ALIAS = 1, FR_ALIAS_W = 2, FR_MAP = 4, FR_MAP_W = 8 };
enum { REQ_ASKED = 1, REQ_THERE = 2 }; /* asked to move; already on the target */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12; /* xorshift64* */
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull; /* splitmix64 */
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x ? x : 1;
}

static void fill(uint64_t *s, void *buf, uint64_t len)
{
	unsigned char *b = buf;

	for (uint64_t i = 0; i < len; i += 8) {
		uint64_t x = rnd(s);

		memcpy(b + i, &x, len - i < 8 ? len - i : 8);
	}
}

/* Say what failed, with everything needed to replay it (first few only). */
static void __attribute__((format(printf, 2, 3))) report(struct env *e, const char *fmt, ...)
{
	va_list ap;

	if (e->reports++ >= MAX_REPORTS)
		return;
	fprintf(stderr, "\n  [%s, S2VM_SEED=%#llx, VM %u, migration %u] ", e->rc->name,
		(unsigned long long)e->seed, e->vm, e->iter);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

/*
 * A CUnit assertion that evaluates @cond once and, if false, reports @fmt. A site that
 * keeps failing in one run is asserted (and printed) PER_SITE times, then only counted:
 * the run goes on checking everything else.
 */
#define EXPECT(e, cond, ...)                                                                       \
	do {                                                                                       \
		bool ok_ = (cond);                                                                 \
		if (!ok_ && ++(e)->site_fails[__LINE__ % MAX_LINES] > PER_SITE)                    \
			break;                                                                     \
		if (!ok_)                                                                          \
			report(e, __VA_ARGS__);                                                    \
		CU_assertImplementation(ok_, __LINE__, #cond, __FILE__, "", CU_FALSE);             \
	} while (0)

/* How often each failing site failed in this run, for those past PER_SITE. */
static void site_summary(const struct env *e)
{
	for (unsigned l = 0; l < MAX_LINES; l++)
		if (e->site_fails[l] > PER_SITE)
			fprintf(stderr, "\n  [%s] the check at test_inject.c:%u failed %u times",
				e->rc->name, l, e->site_fails[l]);
}

static void on_fatal(void *ctx, struct mm *mm)
{
	struct env *e = ctx;

	(void)mm;
	e->fatal_calls++;
}

/* ---- what the host shows: /proc/self/maps over the alias ---- */

static void maps_parse(struct env *e)
{
	uintptr_t lo = (uintptr_t)e->mm.alias, hi = lo + e->size;
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];

	e->nvma = 0;
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, en, ino;
		unsigned long long off;
		char p[5];
		struct vma *v;

		if (sscanf(line, "%lx-%lx %4s %llx %*s %lu", &s, &en, p, &off, &ino) != 5 ||
		    en <= lo || s >= hi)
			continue;
		if (e->nvma == e->capvma) {
			e->capvma = e->capvma ? 2 * e->capvma : 1024;
			e->vma = realloc(e->vma, e->capvma * sizeof(*e->vma));
			CU_ASSERT_PTR_NOT_NULL_FATAL(e->vma);
		}
		v = &e->vma[e->nvma++];
		v->s = s < lo ? lo : s;
		v->e = en > hi ? hi : en;
		v->off = off + (v->s - s);
		v->ino = ino;
		memcpy(v->perm, p, sizeof(v->perm));
	}
	fclose(f);
}

/* The VMA holding alias address @a, or NULL. */
static const struct vma *vma_at(const struct env *e, uintptr_t a)
{
	size_t lo = 0, hi = e->nvma;

	while (lo < hi) {
		size_t m = (lo + hi) / 2;

		if (a < e->vma[m].s)
			hi = m;
		else if (a >= e->vma[m].e)
			lo = m + 1;
		else
			return &e->vma[m];
	}
	return NULL;
}

static int pool_of_ino(const struct env *e, unsigned long ino)
{
	for (unsigned p = 0; p < e->mm.nr_pools; p++)
		if (ino && e->ino[p] == ino)
			return (int)p;
	return -1;
}

/* ---- the checks ---- */

/* [gpa, gpa + len) reads the same as the shadow through mm_guest_read and the alias. */
static void check_data(struct env *e, gpa_t gpa, uint64_t len, const char *when)
{
	const unsigned char *w = e->shadow + gpa;
	const unsigned char *views[2] = { e->buf + gpa, mm_alias_at(&e->mm, gpa) };
	static const char *const name[2] = { "mm_guest_read", "the alias" };
	int r = mm_guest_read(&e->mm, gpa, e->buf + gpa, len);

	EXPECT(e, r == 0, "mm_guest_read [%#llx, +%#llx) %s: %d\n", (unsigned long long)gpa,
	       (unsigned long long)len, when, r);
	for (int k = 0; k < 2; k++) {
		uint64_t bad = 0, first = 0;

		if (!memcmp(views[k], w, len))
			continue;
		for (uint64_t i = 0; i < len; i += 8) {
			uint64_t n = len - i < 8 ? len - i : 8;

			if (memcmp(views[k] + i, w + i, n) && !bad++)
				for (first = i; views[k][first] == w[first];)
					first++;
		}
		e->t.words_wrong += bad;
		EXPECT(e, bad == 0,
		       "%s: %llu words differ from what was written %s, first at GPA %#llx "
		       "(got %02x, want %02x)\n",
		       name[k], (unsigned long long)bad, when, (unsigned long long)(gpa + first),
		       views[k][first], w[first]);
	}
	e->t.words_checked += 2 * (len / 8);
}

/*
 * The alias maps exactly what the map says, page by page: the pool memfd the map names,
 * at the offset it names, readable, writable iff the map says so, shared. No frame is
 * mapped by two GPAs, and every mapped frame is allocated in its pool. With @eager_w every
 * page must be writable (eager migration never leaves one read-only). Parses the maps.
 */
static void check_agree(struct env *e, bool eager_w)
{
	uint64_t *seen[MM_MAX_POOLS] = { 0 };
	uint64_t bad_ino = 0, bad_off = 0, bad_perm = 0, twice = 0, unalloc = 0, ro = 0;
	uint64_t unmapped = 0, ft_bad = 0, first[8] = { 0 }, ft_pfn = 0;

	maps_parse(e);
	for (unsigned p = 0; p < e->mm.nr_pools; p++) {
		seen[p] = calloc((e->mm.pools[p].nr_frames + 63) / 64, sizeof(uint64_t));
		CU_ASSERT_PTR_NOT_NULL_FATAL(seen[p]);
	}
	for (gpa_t g = 0; g < e->size; g += PAGE) {
		uintptr_t a = (uintptr_t)mm_alias_at(&e->mm, g);
		const struct vma *v = vma_at(e, a);
		unsigned pool, lvl;
		uint64_t off, f;
		struct s2_leaf l;
		char want[5];

		if (mm_gpa_backing(&e->mm, g, &pool, &off) || s2_walk(&e->mm.map, g, &l, &lvl)) {
			if (!unmapped++)
				first[6] = g;
			continue;
		}
		f = off / PAGE;
		{
			const struct frame *rec = frame_lookup(&e->mm.ft, g, &ft_pfn);

			if ((!rec || frame_pool(rec) != pool || ft_pfn != f) && !ft_bad++)
				first[7] = g;
		}
		if (seen[pool][f / 64] >> (f % 64) & 1) {
			if (!twice++)
				first[3] = g;
		}
		seen[pool][f / 64] |= 1ull << (f % 64);
		if (!pool_frame_used(&e->mm.pools[pool], f) && !unalloc++)
			first[4] = g;
		if (eager_w && !(l.perm & S2_PERM_W) && !ro++)
			first[5] = g;
		if (!v || pool_of_ino(e, v->ino) != (int)pool) {
			if (!bad_ino++)
				first[0] = g;
			continue;
		}
		if (v->off + (a - v->s) != off && !bad_off++)
			first[1] = g;
		snprintf(want, sizeof(want), "r%c%cs", l.perm & S2_PERM_W ? 'w' : '-',
			 l.perm & S2_PERM_X ? 'x' : '-');
		if (memcmp(v->perm, want, 4) && !bad_perm++)
			first[2] = g;
	}
	{
		/* the maximal runs of the map (same pool, contiguous frames, same
		 * permissions): the host merges the alias back to exactly one mapping per
		 * run, so no failure or roll-back may leave it more fragmented (each
		 * mapping counts against vm.max_map_count) */
		uint64_t runs = 0, pk = ~0ull;
		unsigned pperm = 0;

		for (gpa_t g = 0; g < e->size;) {
			struct s2_leaf l;
			hpa_t oa;
			uint64_t step;

			if (s2_walk_span(&e->mm.map, g, e->size, &l, &oa, &step) == 0) {
				if (oa != pk || l.perm != pperm)
					runs++;
				pk = oa + step;
				pperm = l.perm;
			}
			g += step;
		}
		EXPECT(e, e->nvma == runs, "the alias has %zu mappings for %llu maximal runs\n",
		       e->nvma, (unsigned long long)runs);
	}
	EXPECT(e, unmapped == 0, "%llu pages of RAM unmapped in the map, first GPA %#llx\n",
	       (unsigned long long)unmapped, (unsigned long long)first[6]);
	EXPECT(e, bad_ino == 0,
	       "%llu alias pages do not map the pool the map names, first GPA %#llx\n",
	       (unsigned long long)bad_ino, (unsigned long long)first[0]);
	EXPECT(e, bad_off == 0,
	       "%llu alias pages map another frame than the map names, first GPA %#llx\n",
	       (unsigned long long)bad_off, (unsigned long long)first[1]);
	EXPECT(e, bad_perm == 0,
	       "%llu alias pages have other permissions than the map, first GPA %#llx\n",
	       (unsigned long long)bad_perm, (unsigned long long)first[2]);
	EXPECT(e, ft_bad == 0,
	       "%llu pages: the frame table does not name the frame the map does, first GPA "
	       "%#llx\n",
	       (unsigned long long)ft_bad, (unsigned long long)first[7]);
	EXPECT(e, twice == 0, "%llu frames mapped by two GPAs, first at GPA %#llx\n",
	       (unsigned long long)twice, (unsigned long long)first[3]);
	EXPECT(e, unalloc == 0, "%llu mapped frames are free in their pool, first at GPA %#llx\n",
	       (unsigned long long)unalloc, (unsigned long long)first[4]);
	/* eager: read-only only where the alias refused to make a page writable again
	 * (vcpu_writes() checks that a write fault then fixes it) */
	EXPECT(e, ro == 0 || e->mm.mig.alias_failures > 0,
	       "eager migration left %llu pages read-only without any alias failure, first "
	       "GPA %#llx\n",
	       (unsigned long long)ro, (unsigned long long)first[5]);
	for (unsigned p = 0; p < e->mm.nr_pools; p++)
		free(seen[p]);
}

/* A marker written through the pool frame the map names shows in the alias. */
static void check_markers(struct env *e)
{
	uint64_t bad = 0, first = 0;

	for (gpa_t g = 0; g < e->size; g += PAGE) {
		unsigned pool;
		uint64_t off, saved, marker = mix(g ^ e->seed), got;
		unsigned char *host;
		size_t in = (size_t)(rnd(&e->rng) % (PAGE / 8)) * 8;

		if (mm_gpa_backing(&e->mm, g, &pool, &off))
			continue; /* check_agree reports it */
		host = e->mm.pools[pool].base + off + in;
		memcpy(&saved, host, 8);
		memcpy(host, &marker, 8);
		memcpy(&got, (unsigned char *)mm_alias_at(&e->mm, g) + in, 8);
		memcpy(host, &saved, 8);
		if (got != marker && !bad++)
			first = g;
	}
	EXPECT(e, bad == 0,
	       "%llu pages: a marker written to the pool frame the map names is not in the "
	       "alias, first GPA %#llx\n",
	       (unsigned long long)bad, (unsigned long long)first);
}

/* After mm_flush_and_free the pools hold exactly guest RAM's frames, the mapped ones. */
static void check_frames(struct env *e)
{
	uint64_t used = 0, held, pending, mapped[MM_MAX_POOLS] = { 0 };

	pthread_mutex_lock(&e->mm.lock);
	mm_flush_and_free(&e->mm);
	held = e->mm.mig.held_frames;
	pending = e->mm.deferred.frames;
	pthread_mutex_unlock(&e->mm.lock);
	for (gpa_t g = 0; g < e->size; g += PAGE) {
		unsigned pool;
		uint64_t off;

		if (mm_gpa_backing(&e->mm, g, &pool, &off) == 0)
			mapped[pool]++;
	}
	for (unsigned p = 0; p < e->mm.nr_pools; p++) {
		uint64_t u = e->mm.pools[p].nr_frames - e->mm.pools[p].nr_free;

		EXPECT(e, u == mapped[p],
		       "pool %u (host node %u) has %llu frames in use, the map uses %llu\n", p,
		       e->mm.pools[p].node, (unsigned long long)u, (unsigned long long)mapped[p]);
		used += u;
	}
	EXPECT(e, used == e->size / PAGE, "%llu frames in use for %llu pages of RAM\n",
	       (unsigned long long)used, (unsigned long long)(e->size / PAGE));
	EXPECT(e, held == 0, "%llu frames held back\n", (unsigned long long)held);
	EXPECT(e, pending == 0, "%llu frames still deferred after a flush\n",
	       (unsigned long long)pending);
}

/* ---- the copy hook: runs while the batch is write-protected ---- */

static void copy_index(struct env *e, struct mm *mm)
{
	maps_parse(e);
	for (unsigned p = 0; p < mm->nr_pools; p++)
		memset(e->fr[p], 0, mm->pools[p].nr_frames);
	for (size_t i = 0; i < e->nvma; i++) {
		int p = pool_of_ino(e, e->vma[i].ino);
		uint8_t fl = FR_ALIAS | (e->vma[i].perm[1] == 'w' ? FR_ALIAS_W : 0);

		if (p < 0)
			continue;
		for (uint64_t o = e->vma[i].off; o < e->vma[i].off + (e->vma[i].e - e->vma[i].s);
		     o += PAGE)
			if (o / PAGE < mm->pools[p].nr_frames)
				e->fr[p][o / PAGE] |= fl;
	}
	for (gpa_t g = 0; g < e->size;) {
		struct s2_leaf l;
		hpa_t oa;
		uint64_t step;

		if (s2_walk_span(&mm->map, g, e->size, &l, &oa, &step) == 0) {
			unsigned p = (unsigned)(oa >> MM_POOL_SHIFT);
			uint64_t f = (oa & ((1ull << MM_POOL_SHIFT) - 1)) / PAGE;

			for (uint64_t k = 0; k < step / PAGE; k++)
				e->fr[p][f + k] |= FR_MAP | (l.perm & S2_PERM_W ? FR_MAP_W : 0);
		}
		g += step;
	}
}

static int inj_copy(void *ctx, struct mm *mm, unsigned sp, uint64_t sf, unsigned dp, uint64_t df,
		    uint64_t n)
{
	struct env *e = ctx;
	uint64_t src_bad = 0, src_w = 0, dst_reached = 0, dst_free = 0;

	if (e->rc->copy_fail && rnd(&e->rng) % 1000000 < e->rc->copy_fail) {
		e->t.copy_failed++;
		return -EIO;
	}
	if (e->copy_seq != mm->seq) { /* a new batch: the alias is fixed until its remap */
		copy_index(e, mm);
		e->copy_seq = mm->seq;
	}
	for (uint64_t k = 0; k < n; k++) {
		uint8_t s = e->fr[sp][sf + k], d = e->fr[dp][df + k];

		src_bad += (s & (FR_ALIAS | FR_MAP)) != (FR_ALIAS | FR_MAP);
		src_w += (s & (FR_ALIAS_W | FR_MAP_W)) != 0;
		dst_reached += d != 0;
		dst_free += !pool_frame_used(&mm->pools[dp], df + k);
	}
	EXPECT(e, src_w == 0,
	       "copy: %llu of %llu source frames (pool %u from %llu) are writable in the map or "
	       "the alias during the copy: a guest write there would be lost\n",
	       (unsigned long long)src_w, (unsigned long long)n, sp, (unsigned long long)sf);
	EXPECT(e, src_bad == 0, "copy: %llu source frames (pool %u from %llu) not mapped\n",
	       (unsigned long long)src_bad, sp, (unsigned long long)sf);
	EXPECT(e, dst_reached == 0,
	       "copy: %llu destination frames (pool %u from %llu) are still reachable through "
	       "the map or the alias: freed while in use\n",
	       (unsigned long long)dst_reached, dp, (unsigned long long)df);
	EXPECT(e, dst_free == 0, "copy: %llu destination frames not allocated\n",
	       (unsigned long long)dst_free);
	memcpy(mm->pools[dp].base + df * PAGE, mm->pools[sp].base + sf * PAGE, n * PAGE);
	return 0;
}

/* ---- one VM ---- */

/* Two guest nodes of NODE_SIZE on host nodes 0 and 1, pools capped at POOL_CAP. */
static struct mm_config two_nodes(void)
{
	struct mm_config c = { .mem_size = 2 * NODE_SIZE, .nr_nodes = 2, .nr_caps = 2 };

	for (unsigned i = 0; i < 2; i++) {
		c.nodes[i] = (struct mm_guest_node){ .id = i, .size = NODE_SIZE, .host = i };
		c.caps[i] = (struct mm_pool_cap){ .node = i, .bytes = POOL_CAP };
	}
	return c;
}

static struct mm_config config(struct env *e)
{
	const struct run_cfg *rc = e->rc;
	struct mm_config c = two_nodes();

	c.mig = (struct mig_policy){ .lazy_writable = rc->lazy, .defer_invalidation = rc->defer,
				     .cap_frames = rc->cap_frames, .batch_frames = rc->batch_frames,
				     .keep_freed = !rc->punch };
	c.copy = inj_copy;
	c.copy_ctx = e;
	c.on_fatal = on_fatal;
	c.fatal_ctx = e;
	return c;
}

/* Create VM number e->vm, fill RAM with random data, turn injection on. */
static bool vm_open(struct env *e)
{
	struct mm_config c = config(e);
	int r;

	e->size = c.mem_size;
	e->fatal_calls = 0;
	e->copy_seq = 0;
	r = mm_create(&e->mm, &c);
	EXPECT(e, r == 0, "mm_create: %d: %s\n", r, e->mm.err);
	if (r) {
		mm_destroy(&e->mm);
		return false;
	}
	e->live = true;
	for (unsigned p = 0; p < e->mm.nr_pools; p++) {
		struct stat st;

		CU_ASSERT_EQUAL_FATAL(fstat(e->mm.pools[p].fd, &st), 0);
		e->ino[p] = (unsigned long)st.st_ino;
		e->fr[p] = malloc(e->mm.pools[p].nr_frames);
		CU_ASSERT_PTR_NOT_NULL_FATAL(e->fr[p]);
	}
	fill(&e->rng, e->shadow, e->size);
	r = mm_guest_write(&e->mm, 0, e->shadow, e->size);
	EXPECT(e, r == 0, "the initial fill failed: %d\n", r);
	/* on from here: mm_create's own mapping of the alias is not under test */
	e->mm.cfg.inject.per_million[MM_CALL_MMAP] = e->rc->rate;
	e->mm.cfg.inject.per_million[MM_CALL_MPROTECT] = e->rc->rate;
	if (e->rc->punch)
		e->mm.cfg.inject.per_million[MM_CALL_FALLOCATE] = e->rc->rate;
	e->mm.inject_state = mix(e->seed ^ (0x1000ull + e->vm));
	check_data(e, 0, e->size, "after the initial fill");
	check_agree(e, !e->rc->lazy);
	return true;
}

static void vm_close(struct env *e)
{
	if (!e->live)
		return;
	for (unsigned c = 0; c < MM_CALL_NR; c++)
		e->t.injected[c] += e->mm.injected[c];
	e->t.alias_failures += e->mm.mig.alias_failures;
	e->t.lazy_fixups += e->mm.mig.lazy_fixups;
	mm_destroy(&e->mm);
	for (unsigned p = 0; p < MM_MAX_POOLS; p++) {
		free(e->fr[p]);
		e->fr[p] = NULL;
	}
	e->live = false;
}

/* Where every page is and whether it is writable: (pool << 40 | offset | W), or ~0. */
static void backing_snapshot(struct env *e, uint64_t *v)
{
	for (gpa_t g = 0; g < e->size; g += PAGE) {
		unsigned pool, lvl;
		uint64_t off;
		struct s2_leaf l;

		if (mm_gpa_backing(&e->mm, g, &pool, &off) || s2_walk(&e->mm.map, g, &l, &lvl))
			v[g / PAGE] = ~0ull;
		else
			v[g / PAGE] = (uint64_t)pool << 40 | off | !!(l.perm & S2_PERM_W);
	}
}

static size_t random_ranges(struct env *e, struct mig_range *r, size_t max)
{
	size_t n = 1 + rnd(&e->rng) % max;

	for (size_t i = 0; i < n; i++) {
		uint64_t k = rnd(&e->rng) % 10, pages;
		gpa_t g;

		if (k < 4) { /* small, 4 KiB granular */
			g = rnd(&e->rng) % (e->size / PAGE) * PAGE;
			pages = 1 + rnd(&e->rng) % 64;
		} else if (k < 6) { /* large, 4 KiB granular */
			g = rnd(&e->rng) % (e->size / PAGE) * PAGE;
			pages = 1 + rnd(&e->rng) % 1024;
		} else if (k < 9) { /* whole 2 MiB blocks */
			g = rnd(&e->rng) % (e->size / BLOCK) * BLOCK;
			pages = (1 + rnd(&e->rng) % 3) * (BLOCK / PAGE);
		} else { /* a whole guest node */
			g = rnd(&e->rng) % 2 * NODE_SIZE;
			pages = NODE_SIZE / PAGE;
		}
		if (g + pages * PAGE > e->size)
			pages = (e->size - g) / PAGE;
		r[i] = (struct mig_range){ g, pages * PAGE };
	}
	return n;
}

/*
 * The VM stopped (mm->fatal): on_fatal was called once, nothing written was lost, and
 * further migrations fail with -EIO changing nothing. Then a new VM.
 */
static void fatal_episode(struct env *e, const char *where)
{
	uint64_t n = e->size / PAGE, *before = malloc(n * 8), *after = malloc(n * 8);
	uint64_t nr_free[MM_MAX_POOLS], pages = e->mm.mig.pages, ab = e->mm.mig.aborted_pages;
	uint64_t sk = e->mm.mig.skipped_pages;

	CU_ASSERT_FATAL(before && after);
	e->t.fatal++;
	EXPECT(e, e->fatal_calls == 1, "on_fatal called %u times (%s)\n", e->fatal_calls, where);
	EXPECT(e, strstr(e->mm.fatal_msg, "mmap") || strstr(e->mm.fatal_msg, "mprotect"),
	       "fatal message does not name the call: \"%s\"\n", e->mm.fatal_msg);
	check_data(e, 0, e->size, "when the VM stopped");
	backing_snapshot(e, before);
	for (unsigned p = 0; p < e->mm.nr_pools; p++)
		nr_free[p] = e->mm.pools[p].nr_free;
	/* a vCPU still running faults on a read-only page: nothing may change for it */
	for (uint64_t p = 0; p < n; p++) {
		gpa_t g = (p * 997 + e->iter) % n * PAGE;
		int r;

		if (before[g / PAGE] == ~0ull || (before[g / PAGE] & 1))
			continue;
		r = mm_handle_write_fault(&e->mm, g, mm_seq(&e->mm));
		backing_snapshot(e, after);
		EXPECT(e, !memcmp(before, after, n * 8),
		       "a write fault at GPA %#llx after the VM stopped (returned %d) changed the "
		       "map\n",
		       (unsigned long long)g, r);
		memcpy(before, after, n * 8); /* the migrations below are judged on their own */
		break;
	}
	for (int k = 0; k < 4; k++) {
		struct mig_range r[6];
		size_t nr = random_ranges(e, r, 6);
		struct mig_result res;
		int ret = mm_migrate(&e->mm, r, nr, (unsigned)(rnd(&e->rng) % 2), &res);

		EXPECT(e, ret == -EIO,
		       "mm_migrate after the VM stopped returned %d, not -EIO (moved %llu, skipped "
		       "%llu, aborted %llu)\n",
		       ret, (unsigned long long)res.pages, (unsigned long long)res.skipped,
		       (unsigned long long)res.aborted);
		EXPECT(e, res.pages == 0, "mm_migrate after the VM stopped moved %llu pages\n",
		       (unsigned long long)res.pages);
	}
	backing_snapshot(e, after);
	EXPECT(e, !memcmp(before, after, n * 8),
	       "mm_migrate after the VM stopped changed the map\n");
	for (unsigned p = 0; p < e->mm.nr_pools; p++)
		EXPECT(e, e->mm.pools[p].nr_free == nr_free[p],
		       "mm_migrate after the VM stopped changed pool %u's free frames "
		       "(%llu -> %llu)\n",
		       p, (unsigned long long)nr_free[p],
		       (unsigned long long)e->mm.pools[p].nr_free);
	EXPECT(e, e->mm.mig.pages == pages && e->mm.mig.aborted_pages == ab &&
			  e->mm.mig.skipped_pages == sk,
	       "mm_migrate after the VM stopped changed the counters: pages +%llu, aborted "
	       "+%llu, skipped +%llu\n",
	       (unsigned long long)(e->mm.mig.pages - pages),
	       (unsigned long long)(e->mm.mig.aborted_pages - ab),
	       (unsigned long long)(e->mm.mig.skipped_pages - sk));
	EXPECT(e, e->fatal_calls == 1, "on_fatal called again (%u)\n", e->fatal_calls);
	check_data(e, 0, e->size, "after migrations refused with -EIO");
	free(before);
	free(after);
	vm_close(e);
	e->vm++;
	vm_open(e);
}

static bool stopped(struct env *e, const char *where)
{
	if (!e->mm.fatal) {
		EXPECT(e, e->fatal_calls == 0, "on_fatal called but mm->fatal is not set\n");
		return false;
	}
	fatal_episode(e, where);
	return true;
}

/* The VMM writes: random spans through mm_guest_write (lazy fix-ups happen here). */
static void guest_writes(struct env *e)
{
	for (int k = 1 + (int)(rnd(&e->rng) % 3); k > 0; k--) {
		uint64_t max = rnd(&e->rng) % 8 ? 64 << 10 : 2 * MIB;
		uint64_t len = 1 + rnd(&e->rng) % max;
		gpa_t g = rnd(&e->rng) % e->size;
		int r;

		if (len > e->size - g)
			len = e->size - g;
		fill(&e->rng, e->shadow + g, len);
		r = mm_guest_write(&e->mm, g, e->shadow + g, len);
		EXPECT(e, r == 0, "mm_guest_write [%#llx, +%#llx): %d\n", (unsigned long long)g,
		       (unsigned long long)len, r);
		e->t.guest_writes++;
		if (e->mm.fatal)
			return;
	}
}

/*
 * A vCPU writes: to pages the alias shows writable, directly; to the others, after the
 * write-fault path (lazy fix-up) made them writable. Uses the maps check_agree() read.
 */
static void vcpu_writes(struct env *e)
{
	gpa_t faulted[8];
	unsigned nf = 0;

	/* now and then a fault the host did not give the GPA of (PVM): every lazily
	 * write-protected page is made writable at once (only gains: the maps read stay
	 * right for every page they show writable) */
	if (e->rc->lazy && rnd(&e->rng) % 16 == 0) {
		bool any_ro = false;
		int r;

		for (gpa_t g = 0; g < e->size && !any_ro;) {
			struct s2_leaf l;
			hpa_t oa;
			uint64_t step;

			any_ro = s2_walk_span(&e->mm.map, g, e->size, &l, &oa, &step) == 0 &&
				 !(l.perm & S2_PERM_W);
			g += step;
		}
		r = mm_handle_write_fault(&e->mm, ~0ull, mm_seq(&e->mm));
		e->t.faults++;
		if (e->mm.fatal)
			return;
		/* -EFAULT only when no page was waiting to be made writable */
		EXPECT(e, r == (any_ro ? 0 : -EFAULT),
		       "a write fault without a GPA returned %d (%s page was read-only)\n", r,
		       any_ro ? "a" : "no");
	}
	/* random pages, then (eager) up to 4 the map left read-only: each must be made
	 * writable by the write-fault path, whatever the policy */
	for (int k = 0; k < 28; k++) {
		gpa_t g = rnd(&e->rng) % (e->size / PAGE) * PAGE;
		const struct vma *v = vma_at(e, (uintptr_t)mm_alias_at(&e->mm, g));
		uint64_t in = rnd(&e->rng) % PAGE, len = 1 + rnd(&e->rng) % (PAGE - in);

		if (k >= 24) {
			if (e->rc->lazy)
				break;
			for (uint64_t p = 0; p < e->size / PAGE; p++, g = (g + PAGE) % e->size) {
				struct s2_leaf l;
				unsigned lvl;

				if (s2_walk(&e->mm.map, g, &l, &lvl) == 0 && !(l.perm & S2_PERM_W))
					break;
			}
			v = vma_at(e, (uintptr_t)mm_alias_at(&e->mm, g));
		}
		if (v && v->perm[1] == 'w') {
			fill(&e->rng, e->shadow + g + in, len);
			memcpy(mm_alias_at(&e->mm, g + in), e->shadow + g + in, len);
			e->t.alias_writes++;
		} else if (nf < 8) {
			struct s2_leaf l;
			unsigned lvl;
			int r;

			if (s2_walk(&e->mm.map, g, &l, &lvl) == 0 && (l.perm & S2_PERM_W)) {
				faulted[nf++] = g; /* an earlier fix-up here made it writable */
				continue;
			}
			r = mm_handle_write_fault(&e->mm, g, mm_seq(&e->mm));

			e->t.faults++;
			if (e->mm.fatal)
				return;
			EXPECT(e, r == 0, "a vCPU write fault at GPA %#llx returned %d: the guest "
			       "would be reported crashed\n", (unsigned long long)g, r);
			faulted[nf++] = g;
		}
	}
	if (!nf)
		return;
	maps_parse(e);
	for (unsigned i = 0; i < nf; i++) {
		const struct vma *v = vma_at(e, (uintptr_t)mm_alias_at(&e->mm, faulted[i]));
		struct s2_leaf l;
		unsigned lvl;

		if (!v || v->perm[1] != 'w' || s2_walk(&e->mm.map, faulted[i], &l, &lvl) ||
		    !(l.perm & S2_PERM_W))
			continue; /* the fix-up was refused: the vCPU would fault again */
		fill(&e->rng, e->shadow + faulted[i], 64);
		memcpy(mm_alias_at(&e->mm, faulted[i]), e->shadow + faulted[i], 64);
		e->t.alias_writes++;
	}
}

/* Pages of @r (merged) and how many of them are on host node @node now. */
static uint64_t requested(struct env *e, const struct mig_range *r, size_t n, unsigned node,
			  uint64_t *on_node)
{
	uint64_t u = 0;

	memset(e->req, 0, e->size / PAGE);
	*on_node = 0;
	for (size_t i = 0; i < n; i++)
		for (gpa_t g = r[i].gpa; g < r[i].gpa + r[i].len; g += PAGE)
			e->req[g / PAGE] = REQ_ASKED;
	for (uint64_t p = 0; p < e->size / PAGE; p++) {
		unsigned pool;
		uint64_t off;

		if (!e->req[p])
			continue;
		u++;
		if (mm_gpa_backing(&e->mm, p * PAGE, &pool, &off) == 0 &&
		    e->mm.pools[pool].node == node) {
			e->req[p] |= REQ_THERE;
			(*on_node)++;
		}
	}
	return u;
}

/* Check the data of the pages marked @mark in e->req, one run at a time. */
static void check_marked(struct env *e, uint8_t mark, const char *when)
{
	uint64_t n = e->size / PAGE;

	for (uint64_t p = 0; p < n;) {
		uint64_t q = p;

		while (q < n && e->req[q] == mark)
			q++;
		if (q > p)
			check_data(e, p * PAGE, (q - p) * PAGE, when);
		p = q + (q == p);
	}
}

/* One random migration and everything checked after it. Returns false if the VM stopped
 * (a new one is open then). */
static bool one_migration(struct env *e)
{
	struct mig_range r[6];
	size_t n = random_ranges(e, r, 6);
	unsigned node = (unsigned)(rnd(&e->rng) % 2);
	struct mig_result res;
	uint64_t pages0 = e->mm.mig.pages, ab0 = e->mm.mig.aborted_pages;
	uint64_t sk0 = e->mm.mig.skipped_pages, af0 = e->mm.mig.alias_failures, uniq, on_node;
	uint64_t there0;
	int ret;

	uniq = requested(e, r, n, node, &there0);
	ret = mm_migrate(&e->mm, r, n, node, &res);
	e->t.calls++;
	e->t.errors += ret != 0;
	e->t.pages += res.pages;
	e->t.aborted += res.aborted;
	e->t.skipped += res.skipped;
	e->t.batches += res.batches;
	EXPECT(e, e->mm.mig.pages - pages0 == res.pages,
	       "res.pages %llu but the engine counted %llu\n", (unsigned long long)res.pages,
	       (unsigned long long)(e->mm.mig.pages - pages0));
	EXPECT(e, e->mm.mig.aborted_pages - ab0 == res.aborted,
	       "res.aborted %llu but the engine counted %llu\n", (unsigned long long)res.aborted,
	       (unsigned long long)(e->mm.mig.aborted_pages - ab0));
	EXPECT(e, e->mm.mig.skipped_pages - sk0 == res.skipped,
	       "res.skipped %llu but the engine counted %llu\n", (unsigned long long)res.skipped,
	       (unsigned long long)(e->mm.mig.skipped_pages - sk0));
	if (stopped(e, "migration"))
		return false;
	/* an error is an alias failure (rolled back) or an injected copy failure */
	EXPECT(e, ret == 0 || ret == -ENOMEM || (ret == -EIO && e->rc->copy_fail),
	       "mm_migrate returned %d\n", ret);
	if (!e->rc->copy_fail)
		EXPECT(e, (ret != 0) == (e->mm.mig.alias_failures != af0),
		       "mm_migrate returned %d with %llu alias failures\n", ret,
		       (unsigned long long)(e->mm.mig.alias_failures - af0));
	on_node = 0;
	for (uint64_t p = 0; p < e->size / PAGE; p++) {
		unsigned pool;
		uint64_t off;

		if (e->req[p] && mm_gpa_backing(&e->mm, p * PAGE, &pool, &off) == 0 &&
		    e->mm.pools[pool].node == node)
			on_node++;
	}
	EXPECT(e, res.skipped <= there0, "%llu pages skipped, %llu were on host node %u\n",
	       (unsigned long long)res.skipped, (unsigned long long)there0, node);
	EXPECT(e, res.pages + res.skipped + res.aborted <= uniq,
	       "moved %llu + skipped %llu + aborted %llu of %llu pages asked\n",
	       (unsigned long long)res.pages, (unsigned long long)res.skipped,
	       (unsigned long long)res.aborted, (unsigned long long)uniq);
	EXPECT(e, on_node >= res.pages + res.skipped,
	       "%llu pages reported moved or already there, %llu are on host node %u\n",
	       (unsigned long long)(res.pages + res.skipped), (unsigned long long)on_node, node);
	if (ret == 0 && res.aborted == 0) {
		EXPECT(e, on_node == uniq,
		       "migration to host node %u succeeded, but %llu of %llu pages are not "
		       "there\n",
		       node, (unsigned long long)(uniq - on_node), (unsigned long long)uniq);
		EXPECT(e, res.skipped == there0, "%llu pages skipped, %llu were on host node %u\n",
		       (unsigned long long)res.skipped, (unsigned long long)there0, node);
		EXPECT(e, res.pages + res.skipped == uniq,
		       "migration succeeded: %llu moved + %llu skipped of %llu pages\n",
		       (unsigned long long)res.pages, (unsigned long long)res.skipped,
		       (unsigned long long)uniq);
	}
	/* the pages asked to move (the others were not touched), everything now and then */
	check_marked(e, REQ_ASKED, "after a migration");
	if (e->iter % 16 == 0)
		check_data(e, 0, e->size, "after a migration");
	check_agree(e, !e->rc->lazy);
	if (e->iter % 64 == 0) {
		check_markers(e);
		check_frames(e);
	}
	return true;
}

/* Close the VM, print the per-site summary and free the environment. */
static void env_free(struct env *e)
{
	vm_close(e);
	site_summary(e);
	free(e->shadow);
	free(e->buf);
	free(e->req);
	free(e->vma);
	free(e);
}

/* A new environment for @rc: the suite's seed, its generator salted with @salt, and the
 * shadow copy and buffers of a two-node guest. Free with env_free(). */
static struct env *env_new(const struct run_cfg *rc, uint64_t salt)
{
	struct env *e = calloc(1, sizeof(*e));

	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	e->rc = rc;
	e->seed = unit_seed(0x5eed1f00d5ull);
	e->rng = mix(e->seed ^ salt);
	e->shadow = malloc(2 * NODE_SIZE);
	e->buf = malloc(2 * NODE_SIZE);
	e->req = malloc(2 * NODE_SIZE / PAGE);
	CU_ASSERT_FATAL(e->shadow && e->buf && e->req);
	return e;
}

static void run(const struct run_cfg *rc, uint64_t salt, struct totals *sum)
{
	struct env *e = env_new(rc, salt);
	double t0 = now_s();

	if (!vm_open(e))
		goto out;
	for (e->iter = 1; e->t.pages < rc->pages && e->iter < 5000 && e->live; e->iter++) {
		/* the alias as the last check_agree() read it: nothing changed since */
		vcpu_writes(e);
		if (stopped(e, "vCPU write fault"))
			continue;
		guest_writes(e);
		if (stopped(e, "mm_guest_write"))
			continue;
		one_migration(e);
	}
	if (!e->live)
		goto out;
	check_data(e, 0, e->size, "at the end");
	check_agree(e, !e->rc->lazy);
	check_markers(e);
	check_frames(e);
	check_data(e, 0, e->size, "after flush and free");
	vm_close(e);
	printf("\n    %-24s %5.2f s: %6llu pages in %4llu calls, %6llu aborted, %4llu errors; "
	       "injected mmap %llu, mprotect %llu, fallocate %llu; %llu alias failures, %llu fatal",
	       rc->name, now_s() - t0, (unsigned long long)e->t.pages,
	       (unsigned long long)e->t.calls,
	       (unsigned long long)e->t.aborted, (unsigned long long)e->t.errors,
	       (unsigned long long)e->t.injected[MM_CALL_MMAP],
	       (unsigned long long)e->t.injected[MM_CALL_MPROTECT],
	       (unsigned long long)e->t.injected[MM_CALL_FALLOCATE],
	       (unsigned long long)e->t.alias_failures, (unsigned long long)e->t.fatal);
	printf("\n    %24s %llu VMM writes, %llu vCPU writes, %llu write faults, %llu lazy "
	       "fix-ups; %llu words checked, %llu wrong",
	       "", (unsigned long long)e->t.guest_writes, (unsigned long long)e->t.alias_writes,
	       (unsigned long long)e->t.faults, (unsigned long long)e->t.lazy_fixups,
	       (unsigned long long)e->t.words_checked, (unsigned long long)e->t.words_wrong);
	EXPECT(e, e->t.pages >= rc->pages, "only %llu pages moved (want %llu)\n",
	       (unsigned long long)e->t.pages, (unsigned long long)rc->pages);
	if (rc->rate >= RATE_PCT(5)) {
		EXPECT(e, e->t.injected[MM_CALL_MMAP] > 0, "no mmap failure injected\n");
		EXPECT(e, e->t.injected[MM_CALL_MPROTECT] > 0, "no mprotect failure injected\n");
		EXPECT(e, e->t.alias_failures > 0, "no alias failure seen\n");
		EXPECT(e, e->t.aborted > 0, "nothing aborted\n");
		if (rc->punch)
			EXPECT(e, e->t.injected[MM_CALL_FALLOCATE] > 0,
			       "no fallocate failure injected\n");
	}
	if (rc->copy_fail)
		EXPECT(e, e->t.copy_failed > 0, "no copy failure\n");
	sum->pages += e->t.pages;
	sum->calls += e->t.calls;
	sum->aborted += e->t.aborted;
	sum->fatal += e->t.fatal;
	sum->alias_failures += e->t.alias_failures;
	sum->words_checked += e->t.words_checked;
	sum->words_wrong += e->t.words_wrong;
	for (unsigned c = 0; c < MM_CALL_NR; c++)
		sum->injected[c] += e->t.injected[c];
out:
	env_free(e);
}

/* ---- the random suites: one per policy, three rates each ---- */

static struct totals grand;

static void run_rates(const char *mode, bool lazy, bool defer, uint64_t salt)
{
	/*
	 * One failed call aborts a whole batch, and a batch of scattered 4 KiB pieces makes
	 * one call per piece: the higher the rate, the smaller the batches must be for some
	 * to get through. 1%: the default batch and a small deferred-free cap (forced
	 * flushes); 5%: freed frames punched, so a frame freed while in use loses its data.
	 */
	static const struct {
		uint32_t rate;
		uint64_t batch_frames, cap_frames, pages;
		bool punch;
	} k[] = {
		{ RATE_PCT(1), 0, 1024, 220000, false },
		{ RATE_PCT(5), 64, 0, 30000, true },
		{ RATE_PCT(20), 16, 0, 5000, false },
	};
	char names[3][48];

	for (unsigned i = 0; i < 3; i++) {
		struct run_cfg rc = {
			.name = names[i], .lazy = lazy, .defer = defer, .rate = k[i].rate,
			.punch = k[i].punch, .batch_frames = k[i].batch_frames,
			.cap_frames = k[i].cap_frames, .pages = k[i].pages,
		};

		snprintf(names[i], sizeof(names[i]), "%s, %u%%", mode, k[i].rate / 10000);
		run(&rc, salt * 16 + i, &grand);
	}
}

static void test_eager_immediate(void)
{
	run_rates("eager, immediate", false, false, 1);
}

static void test_eager_deferred(void)
{
	run_rates("eager, deferred", false, true, 2);
}

static void test_lazy_immediate(void)
{
	run_rates("lazy, immediate", true, false, 3);
}

static void test_lazy_deferred(void)
{
	run_rates("lazy, deferred", true, true, 4);
}

/* A failing copy rolls the whole batch back, with alias failures on top. */
static void test_copy_failures(void)
{
	struct run_cfg rc = { .name = "lazy, deferred, copy 2%", .lazy = true, .defer = true,
			      .rate = RATE_PCT(5), .copy_fail = RATE_PCT(2), .batch_frames = 64,
			      .pages = 20000 };

	run(&rc, 5 * 16, &grand);
}

/* ---- every call failing ---- */

/*
 * With @call failing every time (after the VM is built), a migration returns an error,
 * moves nothing and loses nothing; if that stopped the VM, on_fatal was called once and
 * later migrations are refused with -EIO changing nothing. Then, with injection off
 * again, a VM that did not stop migrates normally.
 */
static void all_fail(enum mm_host_call call, bool lazy, bool defer, uint64_t salt)
{
	char name[64];
	struct run_cfg rc = { .name = name, .lazy = lazy, .defer = defer };
	struct env *e = env_new(&rc, 0x100 + salt);
	/* 588 pages to host node 1, which has room for 6 MiB more */
	const struct mig_range r[] = { { 0, 2 * MIB }, { 5 * MIB + 3 * PAGE, 75 * PAGE },
				       { 6 * MIB + PAGE, PAGE } };
	uint64_t n, *before, *after, nr_free[MM_MAX_POOLS], ab0, uniq, on_node;
	struct mig_result res;
	int ret;

	snprintf(name, sizeof(name), "100%% %s, %s, %s", mm_host_call_names[call],
		 lazy ? "lazy" : "eager", defer ? "deferred" : "immediate");
	if (!vm_open(e))
		goto out;
	n = e->size / PAGE;
	before = malloc(n * 8);
	after = malloc(n * 8);
	CU_ASSERT_FATAL(before && after);
	backing_snapshot(e, before);
	for (unsigned p = 0; p < e->mm.nr_pools; p++)
		nr_free[p] = e->mm.pools[p].nr_free;
	ab0 = e->mm.mig.aborted_pages;
	uniq = requested(e, r, 3, 1, &on_node);

	e->mm.cfg.inject.per_million[call] = 1000000;
	ret = mm_migrate(&e->mm, r, 3, 1, &res);
	/* the injected -ENOMEM, or -EIO when the roll-back failed too and the VM stopped */
	EXPECT(e, ret == (e->mm.fatal ? -EIO : -ENOMEM),
	       "mm_migrate returned %d, want %s\n", ret,
	       e->mm.fatal ? "-EIO (stopped)" : "the injected -ENOMEM");
	EXPECT(e, e->mm.injected[call] > 0, "nothing injected\n");
	EXPECT(e, res.pages == 0, "%llu pages moved\n", (unsigned long long)res.pages);
	EXPECT(e, e->mm.mig.pages == 0, "the engine counted %llu pages moved\n",
	       (unsigned long long)e->mm.mig.pages);
	EXPECT(e, e->mm.mig.aborted_pages - ab0 == res.aborted,
	       "res.aborted %llu, the engine counted %llu\n", (unsigned long long)res.aborted,
	       (unsigned long long)(e->mm.mig.aborted_pages - ab0));
	backing_snapshot(e, after);
	EXPECT(e, !memcmp(before, after, n * 8), "pages moved (the map changed)\n");
	check_data(e, 0, e->size, "after the failed migration");
	printf("\n    %-34s returned %d, aborted %llu of %llu, fatal %d, on_fatal %u", name, ret,
	       (unsigned long long)res.aborted, (unsigned long long)(uniq - on_node),
	       e->mm.fatal, e->fatal_calls);
	if (e->mm.fatal) {
		/* -EIO from now on, nothing changes (checked there), then a new VM */
		fatal_episode(e, "every call failing");
		goto done;
	}
	EXPECT(e, e->fatal_calls == 0, "on_fatal called without mm->fatal\n");
	EXPECT(e, res.aborted == uniq - on_node, "aborted %llu of the %llu pages to move\n",
	       (unsigned long long)res.aborted, (unsigned long long)(uniq - on_node));
	check_agree(e, !lazy);
	check_markers(e);
	check_frames(e);
	for (unsigned p = 0; p < e->mm.nr_pools; p++)
		EXPECT(e, e->mm.pools[p].nr_free == nr_free[p],
		       "pool %u's free frames %llu -> %llu\n", p, (unsigned long long)nr_free[p],
		       (unsigned long long)e->mm.pools[p].nr_free);
	/* the host says yes again: the same migration works */
	e->mm.cfg.inject.per_million[call] = 0;
	ret = mm_migrate(&e->mm, r, 3, 1, &res);
	EXPECT(e, ret == 0 && res.pages == uniq - on_node,
	       "after the host recovered: returned %d, moved %llu of %llu\n", ret,
	       (unsigned long long)res.pages, (unsigned long long)(uniq - on_node));
	check_data(e, 0, e->size, "after the host recovered");
	check_agree(e, !lazy);
	check_frames(e);
done:
	free(before);
	free(after);
out:
	env_free(e);
}

static void test_all_mprotect_fail(void)
{
	for (unsigned m = 0; m < 4; m++)
		all_fail(MM_CALL_MPROTECT, m & 1, m & 2, m);
}

static void test_all_mmap_fail(void)
{
	for (unsigned m = 0; m < 4; m++)
		all_fail(MM_CALL_MMAP, m & 1, m & 2, 4 + m);
}

/* A pool that cannot be created: mm_create fails naming the call, and cleans up. */
/* Pool creation's host calls fail at their own sites: mm_create says which, and the
 * pool leaves nothing behind. */
static void pool_call_fail(enum mm_host_call call, const char *want)
{
	struct mm_config c = two_nodes();
	struct mm mm;
	int r;

	c.inject.seed = 7;
	c.inject.per_million[call] = 1000000;
	r = mm_create(&mm, &c);
	CU_ASSERT_EQUAL(r, -ENOMEM);
	CU_ASSERT_EQUAL(mm.injected[call], 1);
	CU_ASSERT_EQUAL(mm.nr_pools, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(mm.err, want));
	if (r != -ENOMEM || !strstr(mm.err, want))
		fprintf(stderr, "\n  mm_create: %d \"%s\"\n", r, mm.err);
	mm_destroy(&mm);
}

static void test_memfd_fail(void)
{
	pool_call_fail(MM_CALL_MEMFD, "memfd: Cannot allocate memory");
	if (pool_local_node() >= 0) /* pools are bound only where there is NUMA */
		pool_call_fail(MM_CALL_MBIND, "mbind(MPOL_BIND, node 0): Cannot allocate memory");
}

/* Scattered 4 KiB moves need one alias mapping each: past the mapping budget the engine
 * stops before the limit, says so, counts the rest as aborted and loses nothing. */
static void test_map_budget(void)
{
	struct mm_config c = two_nodes();
	uint64_t pages = c.mem_size / PAGE / 2, moved, before, after;
	struct mig_range *r = calloc(pages, sizeof(*r));
	unsigned char *data = malloc(c.mem_size), *back = malloc(c.mem_size);
	struct mig_result res;
	struct mm mm;
	uint64_t x = unit_seed(0x6d6170);
	int ret;

	CU_ASSERT_FATAL(r && data && back);
	CU_ASSERT_EQUAL_FATAL(mm_create(&mm, &c), 0);
	fill(&x, data, c.mem_size);
	CU_ASSERT_EQUAL_FATAL(mm_guest_write(&mm, 0, data, c.mem_size), 0);
	/* room for fewer mappings than one batch of 1024 pieces may make */
	before = mm_process_mappings();
	CU_ASSERT_FATAL(before > 0);
	mm.map_budget = before + 1500;
	for (uint64_t p = 0; p < pages; p++) /* every other page of guest node 0 */
		r[p] = (struct mig_range){ (2 * p * PAGE) % NODE_SIZE, PAGE };
	ret = mm_migrate(&mm, r, NODE_SIZE / PAGE / 2, 1, &res);
	moved = res.pages;
	after = mm_process_mappings();
	CU_ASSERT_EQUAL(ret, -ENOSPC);
	CU_ASSERT_PTR_NOT_NULL(strstr(mm.err, "vm.max_map_count"));
	CU_ASSERT(moved < NODE_SIZE / PAGE / 2);
	CU_ASSERT_EQUAL(moved + res.aborted, NODE_SIZE / PAGE / 2);
	CU_ASSERT_EQUAL(mm.mig.map_budget_stops, 1);
	CU_ASSERT(after <= mm.map_budget);
	CU_ASSERT_EQUAL(mm_guest_read(&mm, 0, back, c.mem_size), 0);
	CU_ASSERT_EQUAL(memcmp(back, data, c.mem_size), 0);
	CU_ASSERT_EQUAL(memcmp(mm_alias_at(&mm, 0), data, c.mem_size), 0);
	if (ret != -ENOSPC || after > mm.map_budget)
		fprintf(stderr, "\n  mm_migrate %d, moved %llu, mappings %llu -> %llu, budget %llu: %s\n",
			ret, (unsigned long long)moved, (unsigned long long)before,
			(unsigned long long)after, (unsigned long long)mm.map_budget, mm.err);
	mm_destroy(&mm);
	free(r);
	free(data);
	free(back);
}

/* A table page that cannot be allocated (splitting a 2 MiB block for a 4 KiB move) makes
 * the migration fail cleanly: error returned, pages stay, map and alias still agree. */
static void test_table_fail(void)
{
	struct mm_config c = two_nodes();
	struct mig_range r = { .gpa = (2 << 20) + 5 * PAGE, .len = 3 * PAGE };
	unsigned char *data = malloc(c.mem_size), *back = malloc(c.mem_size);
	uint64_t x = unit_seed(0x7461626c65);
	struct mig_result res;
	struct mm mm;
	int ret;

	CU_ASSERT_FATAL(data && back);
	CU_ASSERT_EQUAL_FATAL(mm_create(&mm, &c), 0);
	fill(&x, data, c.mem_size);
	CU_ASSERT_EQUAL_FATAL(mm_guest_write(&mm, 0, data, c.mem_size), 0);
	mm.cfg.inject.per_million[MM_CALL_TABLE] = 1000000;
	ret = mm_migrate(&mm, &r, 1, 1, &res);
	CU_ASSERT_EQUAL(ret, -ENOMEM);
	CU_ASSERT(mm.injected[MM_CALL_TABLE] >= 1);
	CU_ASSERT_EQUAL(res.pages, 0);
	CU_ASSERT_FALSE(mm.fatal);
	CU_ASSERT_EQUAL(mm_gpa_node(&mm, r.gpa), 0);
	CU_ASSERT_EQUAL(mm_guest_read(&mm, 0, back, c.mem_size), 0);
	CU_ASSERT_EQUAL(memcmp(back, data, c.mem_size), 0);
	CU_ASSERT_EQUAL(memcmp(mm_alias_at(&mm, 0), data, c.mem_size), 0);
	/* the alias is writable again where the map says so */
	((unsigned char *)mm_alias_at(&mm, r.gpa))[0] ^= 0xff;
	data[r.gpa] ^= 0xff;
	CU_ASSERT_EQUAL(mm_guest_read(&mm, r.gpa, back, 1), 0);
	CU_ASSERT_EQUAL(back[0], data[r.gpa]);
	/* with tables again, the same move goes through */
	mm.cfg.inject.per_million[MM_CALL_TABLE] = 0;
	CU_ASSERT_EQUAL(mm_migrate(&mm, &r, 1, 1, &res), 0);
	CU_ASSERT_EQUAL(res.pages, 3);
	CU_ASSERT_EQUAL(mm_gpa_node(&mm, r.gpa), 1);
	CU_ASSERT_EQUAL(memcmp(mm_alias_at(&mm, 0), data, c.mem_size), 0);
	mm_destroy(&mm);
	free(data);
	free(back);
}

/* ---- frame-table record pages that cannot be allocated (MM_CALL_FRAME) ---- */

/* Where every page's frame is, by the frame table and by the map. */
struct where {
	uint64_t pfn; /* frame table: frame in its pool */
	unsigned pool, flags;
	unsigned map_pool; /* the map */
	uint64_t map_pfn;
};

static void where_snapshot(struct mm *mm, struct where *w)
{
	for (gpa_t g = 0; g < mm->cfg.mem_size; g += PAGE) {
		const struct frame *f = frame_lookup(&mm->ft, g, &w->pfn);
		uint64_t off = 0;

		w->pool = f ? frame_pool(f) : ~0u;
		w->flags = f ? frame_flags(f) : ~0u;
		if (mm_gpa_backing(mm, g, &w->map_pool, &off))
			w->map_pool = ~0u;
		w->map_pfn = off / PAGE;
		w++;
	}
}

/* Frame table and map name the same frame for every page, and no page is left marked. */
static bool where_agrees(const struct mm *mm, const struct where *w)
{
	for (uint64_t i = 0; i < mm->cfg.mem_size / PAGE; i++)
		if (w[i].pool != w[i].map_pool || w[i].pfn != w[i].map_pfn ||
		    (w[i].flags & FRAME_MIGRATING) || !(w[i].flags & FRAME_PRESENT))
			return false;
	return true;
}

/* Frames in use in every pool, after the deferred frees: exactly guest RAM's. */
static uint64_t frames_used(struct mm *mm)
{
	uint64_t n = 0;

	pthread_mutex_lock(&mm->lock);
	mm_flush_and_free(mm);
	pthread_mutex_unlock(&mm->lock);
	for (unsigned p = 0; p < mm->nr_pools; p++)
		n += mm->pools[p].nr_frames - mm->pools[p].nr_free;
	return n;
}

/*
 * A frame-table restore that cannot allocate its record pages (S2VM_INJECT=frame=1):
 * a partial migration of an optimised chunk fails with -ENOMEM before anything changes
 * (map, frame table, its resident pages, pool frames, data), counted as injected and as
 * restore_enomem; a discard that must re-home part of an optimised chunk punches in
 * place instead. Without injection the same migration goes through.
 */
static void test_frame_fail(void)
{
	struct mm_config c = two_nodes();
	struct mig_range r = { .gpa = BLOCK + 5 * PAGE, .len = 3 * PAGE };
	struct mig_range chunk2 = { .gpa = 2 * BLOCK, .len = BLOCK };
	struct mig_range one = { .gpa = 2 * BLOCK + 7 * PAGE, .len = PAGE };
	uint64_t pages = c.mem_size / PAGE, x = unit_seed(0x6672616d65), res_bytes, used;
	unsigned char *data = malloc(c.mem_size), *back = malloc(c.mem_size);
	struct where *w0 = calloc(pages, sizeof(*w0)), *w1 = calloc(pages, sizeof(*w1));
	struct frame_table_stats st0, st1;
	struct discard_result dr = { 0 };
	struct mig_result res;
	struct mm mm;

	CU_ASSERT_FATAL(data && back && w0 && w1);
	CU_ASSERT_EQUAL_FATAL(mm_create(&mm, &c), 0);
	fill(&x, data, c.mem_size);
	CU_ASSERT_EQUAL_FATAL(mm_guest_write(&mm, 0, data, c.mem_size), 0);
	used = frames_used(&mm);
	CU_ASSERT_EQUAL(used, pages);
	where_snapshot(&mm, w0);
	CU_ASSERT(where_agrees(&mm, w0));
	frame_table_get_stats(&mm.ft, &st0);
	res_bytes = frame_table_resident_bytes(&mm.ft);
	CU_ASSERT_EQUAL(st0.runs_private, 0); /* every chunk one frame run: optimised */

	mm.cfg.inject.per_million[MM_CALL_FRAME] = 1000000;
	CU_ASSERT_EQUAL(mm_migrate(&mm, &r, 1, 1, &res), -ENOMEM);
	CU_ASSERT_EQUAL(res.pages, 0);
	CU_ASSERT_EQUAL(res.aborted, 3);
	CU_ASSERT_EQUAL(mm.injected[MM_CALL_FRAME], 1);
	CU_ASSERT_FALSE(mm.fatal);
	frame_table_get_stats(&mm.ft, &st1);
	CU_ASSERT_EQUAL(st1.restore_enomem, st0.restore_enomem + 1);
	CU_ASSERT_EQUAL(st1.restores, st0.restores);
	CU_ASSERT_EQUAL(st1.runs_private, 0);
	CU_ASSERT_EQUAL(frame_table_resident_bytes(&mm.ft), res_bytes);
	where_snapshot(&mm, w1);
	CU_ASSERT_EQUAL(memcmp(w0, w1, pages * sizeof(*w0)), 0); /* nothing moved or marked */
	CU_ASSERT_EQUAL(frames_used(&mm), used); /* the destination frames went back */
	CU_ASSERT_EQUAL(mm_guest_read(&mm, 0, back, c.mem_size), 0);
	CU_ASSERT_EQUAL(memcmp(back, data, c.mem_size), 0);
	CU_ASSERT_EQUAL(memcmp(mm_alias_at(&mm, 0), data, c.mem_size), 0);
	((unsigned char *)mm_alias_at(&mm, r.gpa))[1] ^= 0x5a; /* writable again */
	data[r.gpa + 1] ^= 0x5a;
	CU_ASSERT_EQUAL(mm_guest_read(&mm, r.gpa, back, 2), 0);
	CU_ASSERT_EQUAL(back[1], data[r.gpa + 1]);

	/* a whole chunk needs no records: it moves even now */
	CU_ASSERT_EQUAL(mm_migrate(&mm, &chunk2, 1, 1, &res), 0);
	CU_ASSERT_EQUAL(res.pages, BLOCK / PAGE);
	CU_ASSERT_EQUAL(mm.injected[MM_CALL_FRAME], 1);
	/* one page of it discarded: node 0's policy would re-home it to pool 0, which
	 * splits the chunk; without record pages it is punched where it is instead */
	CU_ASSERT_EQUAL(mm_discard(&mm, &one, 1, 0, &dr), 0);
	CU_ASSERT_EQUAL(dr.pages, 1);
	CU_ASSERT_EQUAL(dr.rehomed, 0);
	CU_ASSERT_EQUAL(mm.injected[MM_CALL_FRAME], 2);
	memset(data + one.gpa, 0, PAGE);
	CU_ASSERT_EQUAL(mm_guest_read(&mm, 0, back, c.mem_size), 0);
	CU_ASSERT_EQUAL(memcmp(back, data, c.mem_size), 0);
	CU_ASSERT_EQUAL(memcmp(mm_alias_at(&mm, 0), data, c.mem_size), 0);
	where_snapshot(&mm, w1);
	CU_ASSERT(where_agrees(&mm, w1));
	for (gpa_t g = chunk2.gpa; g < chunk2.gpa + BLOCK; g += PAGE)
		CU_ASSERT_EQUAL(w1[g / PAGE].pool, 1);
	frame_table_get_stats(&mm.ft, &st1);
	CU_ASSERT_EQUAL(st1.restore_enomem, st0.restore_enomem + 2);
	CU_ASSERT_EQUAL(st1.runs_private, 0);

	/* with record pages again, the refused move goes through and splits its chunk */
	mm.cfg.inject.per_million[MM_CALL_FRAME] = 0;
	CU_ASSERT_EQUAL(mm_migrate(&mm, &r, 1, 1, &res), 0);
	CU_ASSERT_EQUAL(res.pages, 3);
	CU_ASSERT_EQUAL(mm_gpa_node(&mm, r.gpa), 1);
	frame_table_get_stats(&mm.ft, &st1);
	CU_ASSERT(st1.restores > st0.restores);
	CU_ASSERT_EQUAL(memcmp(mm_alias_at(&mm, 0), data, c.mem_size), 0);
	CU_ASSERT_EQUAL(frames_used(&mm), used);
	mm_destroy(&mm);
	free(w0);
	free(w1);
	free(data);
	free(back);
}

/*
 * Half of all record-page allocations fail (frame=0.5) while random partial migrations
 * split chunks and whole-chunk moves there and back re-form them (no grace period: each
 * re-formed chunk is optimised at once, so it needs a restore again). After every call: data intact
 * through mm_guest_read and the alias, map and frame table agree, nothing left marked;
 * a refused call moved nothing of what it asked (-ENOMEM, all aborted). At the end both
 * outcomes happened, every injected failure is a counted restore_enomem, and the pools
 * hold exactly guest RAM's frames.
 */
static void test_frame_fail_random(void)
{
	struct mm_config c = two_nodes();
	uint64_t pages = c.mem_size / PAGE, x = unit_seed(0x6672616d32), moved = 0, refused = 0;
	unsigned char *data = malloc(c.mem_size), *back = malloc(c.mem_size);
	struct where *w = calloc(pages, sizeof(*w)), *w0 = calloc(pages, sizeof(*w0));
	struct frame_table_stats st;
	struct mig_result res;
	struct mm mm;
	bool ok = true;

	CU_ASSERT_FATAL(data && back && w && w0);
	c.inject.seed = x;
	c.inject.per_million[MM_CALL_FRAME] = 500000;
	CU_ASSERT_EQUAL_FATAL(mm_create(&mm, &c), 0);
	mm.ft.grace_ns = 0;
	fill(&x, data, c.mem_size);
	CU_ASSERT_EQUAL_FATAL(mm_guest_write(&mm, 0, data, c.mem_size), 0);
	for (unsigned it = 0; it < 400 && ok; it++) {
		struct mig_range r;
		unsigned node = (unsigned)(rnd(&x) % 2);
		int ret;

		if (it % 2) { /* a whole chunk: re-formed on the target */
			r.gpa = rnd(&x) % (c.mem_size / BLOCK) * BLOCK;
			r.len = BLOCK;
		} else {
			r.gpa = rnd(&x) % pages * PAGE;
			r.len = (1 + rnd(&x) % 40) * PAGE;
			if (r.len > c.mem_size - r.gpa)
				r.len = c.mem_size - r.gpa;
		}
		where_snapshot(&mm, w0);
		ret = mm_migrate(&mm, &r, 1, node, &res);
		if (it % 2 && !ret) { /* and back whole: one source run, re-formed */
			moved += res.pages;
			where_snapshot(&mm, w0);
			ret = mm_migrate(&mm, &r, 1, node ^ 1, &res);
		}
		where_snapshot(&mm, w);
		if (ret == -ENOMEM) {
			refused++;
			/* refused before the point of no return: nothing of it moved */
			for (gpa_t g = r.gpa; g < r.gpa + r.len; g += PAGE)
				ok &= w[g / PAGE].pool == w0[g / PAGE].pool &&
				      w[g / PAGE].pfn == w0[g / PAGE].pfn;
			ok &= res.pages == 0;
		} else {
			ok &= ret == 0;
			moved += res.pages;
		}
		ok &= where_agrees(&mm, w);
		ok &= mm_guest_read(&mm, 0, back, c.mem_size) == 0 &&
		      memcmp(back, data, c.mem_size) == 0;
		ok &= memcmp(mm_alias_at(&mm, 0), data, c.mem_size) == 0;
		ok &= !mm.fatal;
		if (!ok)
			fprintf(stderr, "\n  iteration %u: [%#llx, +%#llx) to %u: %d\n", it,
				(unsigned long long)r.gpa, (unsigned long long)r.len, node, ret);
		/* a vCPU-like write through the alias, where it is writable (eager: all) */
		if (ok) {
			gpa_t g = rnd(&x) % c.mem_size & ~7ull;
			uint64_t v = rnd(&x);

			memcpy((unsigned char *)mm_alias_at(&mm, g), &v, 8);
			memcpy(data + g, &v, 8);
		}
	}
	CU_ASSERT(ok);
	CU_ASSERT(refused > 0);
	CU_ASSERT(moved > 0);
	frame_table_get_stats(&mm.ft, &st);
	CU_ASSERT(mm.injected[MM_CALL_FRAME] >= refused);
	CU_ASSERT_EQUAL(st.restore_enomem, mm.injected[MM_CALL_FRAME]);
	CU_ASSERT(st.restores > 0);
	CU_ASSERT_EQUAL(frames_used(&mm), pages);
	printf("\n    %llu pages moved, %llu calls refused, %llu record allocations failed, "
	       "%llu restores ", (unsigned long long)moved, (unsigned long long)refused,
	       (unsigned long long)mm.injected[MM_CALL_FRAME], (unsigned long long)st.restores);
	mm_destroy(&mm);
	free(w);
	free(w0);
	free(data);
	free(back);
}

static void test_summary(void)
{
	printf("\n    total: %llu pages migrated in %llu calls, %llu aborted; injected mmap %llu, "
	       "mprotect %llu, fallocate %llu; %llu alias failures; %llu VMs stopped; "
	       "%llu words checked, %llu wrong ",
	       (unsigned long long)grand.pages, (unsigned long long)grand.calls,
	       (unsigned long long)grand.aborted, (unsigned long long)grand.injected[MM_CALL_MMAP],
	       (unsigned long long)grand.injected[MM_CALL_MPROTECT],
	       (unsigned long long)grand.injected[MM_CALL_FALLOCATE],
	       (unsigned long long)grand.alias_failures, (unsigned long long)grand.fatal,
	       (unsigned long long)grand.words_checked, (unsigned long long)grand.words_wrong);
	CU_ASSERT(grand.pages >= 1000000);
}

static CU_TestInfo tests[] = {
	{ "eager, immediate: 1%, 5%, 20% alias failures", test_eager_immediate },
	{ "eager, deferred: 1%, 5%, 20% alias failures", test_eager_deferred },
	{ "lazy, immediate: 1%, 5%, 20% alias failures", test_lazy_immediate },
	{ "lazy, deferred: 1%, 5%, 20% alias failures", test_lazy_deferred },
	{ "copy failures on top of alias failures", test_copy_failures },
	{ "every mprotect fails: nothing moves, nothing lost", test_all_mprotect_fail },
	{ "every mmap fails: error, then -EIO if stopped", test_all_mmap_fail },
	{ "memfd_create or mbind fails: mm_create says so", test_memfd_fail },
	{ "scattered moves stop at the mapping budget", test_map_budget },
	{ "a table page that cannot be allocated", test_table_fail },
	{ "frame-table record pages that cannot be allocated", test_frame_fail },
	{ "half the record-page allocations fail, random moves", test_frame_fail_random },
	{ "at least 10^6 pages migrated", test_summary },
	CU_TEST_INFO_NULL,
};

UNIT_MAIN("inject", tests)
