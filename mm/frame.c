// SPDX-License-Identifier: MIT
/*
 * The frame table with HVO by remapping (the layout and the sequences are described in
 * frame.h). Writers are serialised by the caller; readers (frame_get) are lock-free and
 * never fault: the records' mapping is replaced by single host calls (mmap MAP_FIXED,
 * mprotect) and is never absent.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mm/frame.h"

#define HUGE 512u
#define CHUNK_BYTES ((size_t)HUGE * sizeof(struct frame)) /* 8 KiB: two table pages */
#define PAGE_BYTES 4096u
#define CS_MASK 0x3fu
#define CS_NEW 0x40u /* restored from shared by the reserve in progress */
#define CS_PENDING 0x80u /* on the pending list */

_Static_assert(CHUNK_BYTES == 2 * PAGE_BYTES, "a chunk's records fill two whole pages");

/*
 * ThreadSanitizer models mmap as a write to the whole range, so a remap under a lock-free
 * reader looks like a race. It is not one: every remap here replaces pages by pages of
 * identical contents in one host call (the point of the sequences). Under TSan the remap
 * runs with this thread's accesses ignored, which makes TSan reset the range's history
 * instead of recording a write; every other access stays checked.
 */
#if defined(__SANITIZE_THREAD__) /* gcc */
#define S2_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) /* clang */
#define S2_TSAN 1
#endif
#endif
#ifdef S2_TSAN
void AnnotateIgnoreWritesBegin(const char *file, int line);
void AnnotateIgnoreWritesEnd(const char *file, int line);
#define REMAP_BEGIN() AnnotateIgnoreWritesBegin(__FILE__, __LINE__)
#define REMAP_END() AnnotateIgnoreWritesEnd(__FILE__, __LINE__)
#else
#define REMAP_BEGIN() ((void)0)
#define REMAP_END() ((void)0)
#endif

/* Replace @len bytes at @addr by a new mapping with the same contents (see above). */
static bool remap_same(void *addr, size_t len, int flags, int fd, off_t off)
{
	void *p;

	REMAP_BEGIN();
	p = mmap(addr, len, PROT_READ, flags | MAP_FIXED, fd, off);
	REMAP_END();
	return p != MAP_FAILED;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static size_t heads_len(uint64_t nchunks)
{
	size_t b = (size_t)nchunks * sizeof(struct frame);

	return (b + PAGE_BYTES - 1) & ~(size_t)(PAGE_BYTES - 1);
}

static void step(struct frame_table *t, unsigned kind, uint64_t c, bool shared, bool writable)
{
	struct frame_step s = { .kind = (uint8_t)kind, .shared = shared, .writable = writable,
				.chunk = c };

	if (t->hooks && t->hooks->step)
		t->hooks->step(t->hooks->ctx, t, &s);
}

static inline unsigned cstate(const struct frame_table *t, uint64_t c)
{
	return t->cstate[c] & CS_MASK;
}

static inline void cstate_set(struct frame_table *t, uint64_t c, unsigned s)
{
	t->cstate[c] = (uint8_t)((t->cstate[c] & ~CS_MASK) | s);
}

static inline struct frame *chunk_recs(struct frame_table *t, uint64_t c)
{
	return &t->f[c * HUGE];
}

int frame_table_init(struct frame_table *t, uint64_t mem_size)
{
	size_t len;

	memset(t, 0, sizeof(*t));
	t->fd = -1;
	t->grace_ns = FRAME_GRACE_NS;
	t->nr = mem_size >> 12;
	t->nchunks = (t->nr + HUGE - 1) / HUGE;
	if (!t->nchunks)
		return 0;
	len = (size_t)t->nchunks * CHUNK_BYTES;
	t->fd = memfd_create("s2vm-frame-table", MFD_CLOEXEC);
	if (t->fd < 0 || ftruncate(t->fd, (off_t)len))
		goto fail;
	/* every chunk starts optimised: absent records read as zeros from the shared page */
	t->f = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (t->f == MAP_FAILED) {
		t->f = NULL;
		goto fail;
	}
	t->heads = mmap(NULL, heads_len(t->nchunks), PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (t->heads == MAP_FAILED) {
		t->heads = NULL;
		goto fail;
	}
	t->cstate = calloc(t->nchunks, 1);
	t->heads_written = calloc(heads_len(t->nchunks) / PAGE_BYTES / 8 + 1, 1);
	if (!t->cstate || !t->heads_written)
		goto fail;
	return 0;
fail:
	frame_table_destroy(t);
	return -ENOMEM;
}

void frame_table_destroy(struct frame_table *t)
{
	if (t->f)
		munmap(t->f, (size_t)t->nchunks * CHUNK_BYTES);
	if (t->heads)
		munmap(t->heads, heads_len(t->nchunks));
	if (t->fd >= 0)
		close(t->fd);
	free(t->cstate);
	free(t->heads_written);
	free(t->pend);
	free(t->pend_ns);
	memset(t, 0, sizeof(*t));
	t->fd = -1;
}

static inline uint64_t mkstate(unsigned pool, unsigned flags)
{
	return (uint64_t)pool | (uint64_t)flags << 8;
}

/* Write record @f: pfn first, then the state that publishes it. */
static void rec_store(struct frame *f, uint32_t pfn, uint64_t state)
{
	__atomic_store_n(&f->pfn, pfn, __ATOMIC_RELAXED);
	__atomic_store_n(&f->gen, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&f->state, state, __ATOMIC_RELEASE);
}

int frame_pin(struct frame *f, uint64_t inc)
{
	uint64_t old = __atomic_load_n(&f->state, __ATOMIC_RELAXED), nw;

	do {
		unsigned flags = (old >> 8) & 0xff;
		uint64_t pin = old >> 16;

		if (!(flags & FRAME_PRESENT))
			return -ENOENT;
		if (flags & FRAME_MIGRATING)
			return -EBUSY;
		if (inc == FRAME_PIN_LONGTERM ? pin / FRAME_PIN_LONGTERM >= FRAME_PIN_LONG_MAX
					      : pin % FRAME_PIN_LONGTERM >= FRAME_PIN_SHORT_MAX)
			return -EOVERFLOW;
		nw = old + (inc << 16);
	} while (!__atomic_compare_exchange_n(&f->state, &old, nw, false, __ATOMIC_SEQ_CST,
					      __ATOMIC_RELAXED));
	return 0;
}

void frame_unpin(struct frame *f, uint64_t inc)
{
	__atomic_sub_fetch(&f->state, inc << 16, __ATOMIC_SEQ_CST);
}

bool frame_try_mark(struct frame *f)
{
	uint64_t old = __atomic_load_n(&f->state, __ATOMIC_RELAXED);

	do {
		if (old >> 16)
			return false;
	} while (!__atomic_compare_exchange_n(&f->state, &old, old | ((uint64_t)FRAME_MIGRATING << 8), false,
					      __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
	return true;
}

void frame_clear_flags(struct frame *f, unsigned flags)
{
	uint64_t m = (uint64_t)flags << 8, old = __atomic_load_n(&f->state, __ATOMIC_SEQ_CST);

	/* a compare-and-swap writes even when it fails: never issue one on a record that
	 * does not carry the flags (an optimised, read-only record is all zeros) */
	while (old & m)
		if (__atomic_compare_exchange_n(&f->state, &old, old & ~m, false, __ATOMIC_SEQ_CST,
						__ATOMIC_RELAXED))
			return;
}

void frame_set_flags(struct frame *f, unsigned flags)
{
	__atomic_or_fetch(&f->state, (uint64_t)flags << 8, __ATOMIC_SEQ_CST);
}

/* ---- the records' mapping: restore and optimise ---- */

static bool chunk_zero_check(struct frame_table *t, uint64_t c)
{
	const uint64_t *w = (const uint64_t *)chunk_recs(t, c);

	for (size_t k = 0; k < CHUNK_BYTES / sizeof(*w); k++)
		if (__atomic_load_n(&w[k], __ATOMIC_RELAXED))
			return false;
	return true;
}

/*
 * Give chunk @c private, writable record pages with the contents it shows now: allocate,
 * copy, map read-only (new address, same permission, identical contents), then make
 * read-write (same address). Returns 0 or -ENOMEM; on error lookups are unchanged (the
 * chunk may be left private and read-only, which lookups cannot tell).
 */
static int chunk_restore(struct frame_table *t, uint64_t c)
{
	struct frame *r = chunk_recs(t, c);
	off_t off = (off_t)(c * CHUNK_BYTES);

	if (cstate(t, c) == FRAME_CHUNK_PRIV_RW)
		return 0;
	if (cstate(t, c) == FRAME_CHUNK_SHARED) {
		/* allocate first: until the mapping changes, nothing is visible */
		if ((t->fail_alloc && t->fail_alloc(t->fail_ctx)) ||
		    fallocate(t->fd, 0, off, (off_t)CHUNK_BYTES))
			goto enomem;
		step(t, FRAME_STEP_ALLOC, c, false, false);
		/* copy: a shared chunk's records are the shared page's zeros, and so are
		 * freshly allocated memfd pages; nothing to move (reading the old mapping
		 * would only fault the zero page in) */
		step(t, FRAME_STEP_COPY, c, false, false);
		if (!remap_same(r, CHUNK_BYTES, MAP_SHARED, t->fd, off))
			goto free_pages;
		cstate_set(t, c, FRAME_CHUNK_PRIV_RO);
		step(t, FRAME_STEP_MAP, c, false, false);
	}
	if (mprotect(r, CHUNK_BYTES, PROT_READ | PROT_WRITE))
		goto enomem;
	cstate_set(t, c, FRAME_CHUNK_PRIV_RW);
	step(t, FRAME_STEP_PROTECT, c, false, true);
	t->st.restores++;
	return 0;
free_pages:
	fallocate(t->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, (off_t)CHUNK_BYTES);
	step(t, FRAME_STEP_FREE, c, false, false);
enomem:
	t->st.restore_enomem++;
	return -ENOMEM;
}

/*
 * Share chunk @c's record pages: read-only at the same address, then the shared zero
 * page (new address while read-only, identical contents: the records are all zero),
 * then free the private pages. The records must be zero and unreachable (the head is
 * huge, or the chunk absent and never handed out). Returns 0 or -errno (the chunk stays
 * private; lookups are unchanged either way).
 */
static int chunk_optimise(struct frame_table *t, uint64_t c)
{
	struct frame *r = chunk_recs(t, c);
	off_t off = (off_t)(c * CHUNK_BYTES);

	if (cstate(t, c) == FRAME_CHUNK_SHARED || t->no_optimise)
		return 0;
	if (!chunk_zero_check(t, c)) { /* the contents would differ: never */
		t->st.optimise_errors++;
		return -EINVAL;
	}
	if (cstate(t, c) == FRAME_CHUNK_PRIV_RW) {
		if (mprotect(r, CHUNK_BYTES, PROT_READ))
			goto fail;
		cstate_set(t, c, FRAME_CHUNK_PRIV_RO);
		step(t, FRAME_STEP_PROTECT, c, false, false);
	}
	if (!remap_same(r, CHUNK_BYTES, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0))
		goto fail;
	cstate_set(t, c, FRAME_CHUNK_SHARED);
	step(t, FRAME_STEP_MAP, c, true, false);
	fallocate(t->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, (off_t)CHUNK_BYTES);
	step(t, FRAME_STEP_FREE, c, false, false);
	t->st.optimises++;
	return 0;
fail:
	t->st.optimise_errors++;
	return -errno;
}

static void pend_remove(struct frame_table *t, uint64_t c)
{
	if (!(t->cstate[c] & CS_PENDING))
		return;
	t->cstate[c] &= (uint8_t)~CS_PENDING;
	for (size_t k = 0; k < t->npend; k++)
		if (t->pend[k] == c) {
			memmove(&t->pend[k], &t->pend[k + 1], (t->npend - k - 1) * sizeof(*t->pend));
			memmove(&t->pend_ns[k], &t->pend_ns[k + 1],
				(t->npend - k - 1) * sizeof(*t->pend_ns));
			t->npend--;
			return;
		}
}

/* Chunk @c became one huge frame again and its zeroed records are private: optimise
 * after the grace period (at once if there is none or the list cannot grow). */
static void pend_push(struct frame_table *t, uint64_t c)
{
	pend_remove(t, c);
	if (!t->grace_ns) {
		chunk_optimise(t, c);
		return;
	}
	if (t->npend == t->cappend) {
		size_t cap = t->cappend ? t->cappend * 2 : 16;
		uint64_t *p = realloc(t->pend, cap * sizeof(*p)), *q;

		if (p)
			t->pend = p;
		q = p ? realloc(t->pend_ns, cap * sizeof(*q)) : NULL;
		if (!q)
			return; /* stays private: correct, only not optimised */
		t->pend_ns = q;
		t->cappend = cap;
	}
	t->pend[t->npend] = c;
	t->pend_ns[t->npend++] = now_ns();
	t->cstate[c] |= CS_PENDING;
}

unsigned frame_table_optimise_pending(struct frame_table *t, bool force)
{
	uint64_t now = t->npend ? now_ns() : 0;
	unsigned done = 0;
	size_t k = 0;

	for (; k < t->npend; k++) {
		uint64_t c = t->pend[k];

		if (!force && now - t->pend_ns[k] < t->grace_ns)
			break;
		t->cstate[c] &= (uint8_t)~CS_PENDING;
		if ((frame_flags(&t->heads[c]) & FRAME_HUGE_HEAD) && !chunk_optimise(t, c))
			done++;
	}
	if (!k)
		return 0;
	memmove(t->pend, t->pend + k, (t->npend - k) * sizeof(*t->pend));
	memmove(t->pend_ns, t->pend_ns + k, (t->npend - k) * sizeof(*t->pend_ns));
	t->npend -= k;
	return done;
}

/* ---- records ---- */

static void head_store(struct frame_table *t, uint64_t c, uint32_t pfn, uint64_t state)
{
	rec_store(&t->heads[c], pfn, state);
	t->heads_written[c * sizeof(struct frame) / PAGE_BYTES / 8] |=
		(uint8_t)(1u << (c * sizeof(struct frame) / PAGE_BYTES % 8));
}

/* Zero chunk @c's private records (its head is huge now: they are no longer read). */
static void chunk_zero(struct frame_table *t, uint64_t c)
{
	struct frame *r = chunk_recs(t, c);

	for (unsigned k = 0; k < HUGE; k++)
		if (__atomic_load_n(&r[k].state, __ATOMIC_RELAXED) ||
		    __atomic_load_n(&r[k].pfn, __ATOMIC_RELAXED) ||
		    __atomic_load_n(&r[k].gen, __ATOMIC_RELAXED)) {
			/* each store ordered after the head's (see frame_get) */
			__atomic_store_n(&r[k].state, 0, __ATOMIC_RELEASE);
			__atomic_store_n(&r[k].pfn, 0, __ATOMIC_RELEASE);
			__atomic_store_n(&r[k].gen, 0, __ATOMIC_RELEASE);
		}
	step(t, FRAME_STEP_ZERO, c, false, false);
}

/* Give every record of huge chunk @c its own value (its pages are private and
 * writable): the chunk is about to be partly rewritten. The records inherit the head's
 * flags (FRAME_MIGRATING during a batch) and no pins (the head has none then). */
static void split_huge(struct frame_table *t, uint64_t c)
{
	struct frame *h = &t->heads[c], *r = chunk_recs(t, c);
	uint64_t st = frame_state(h);
	uint32_t pfn = (uint32_t)frame_pfn(h);

	if (!((st >> 8) & FRAME_HUGE_HEAD))
		return;
	pend_remove(t, c);
	st = mkstate(st & 0xff, ((st >> 8) & 0xff) & ~FRAME_HUGE_HEAD);
	/* records first: until the head loses FRAME_HUGE_HEAD, lookups go through it */
	for (unsigned k = 0; k < HUGE; k++)
		rec_store(&r[k], pfn + k, st);
	step(t, FRAME_STEP_WRITE, c, false, false);
	/* the head stops governing; it keeps its pool and frame, so a reader that still
	 * holds it reads a consistent, absent record (a pin fails, it looks up again) */
	__atomic_store_n(&h->state, st & 0xff, __ATOMIC_RELEASE);
}

/* Will a set of [i, end) from frame @pfn (for record i) write chunk @c's records? */
static bool chunk_needs_records(const struct frame_table *t, uint64_t c, uint64_t i, uint64_t end,
				uint64_t pfn)
{
	uint64_t cs = c * HUGE > i ? c * HUGE : i, ce = (c + 1) * HUGE < end ? (c + 1) * HUGE : end;

	return t->no_optimise || cs != c * HUGE || ce - cs != HUGE || (pfn + (cs - i)) % HUGE;
}

/* Restore every chunk a set of [i, end) will write; on -ENOMEM re-share the chunks this
 * call restored (they were shared: nobody holds their records) and return it. */
static int reserve_records(struct frame_table *t, uint64_t i, uint64_t end, uint64_t pfn, bool all)
{
	uint64_t c0 = i / HUGE, c1 = (end + HUGE - 1) / HUGE;
	int r = 0;

	for (uint64_t c = c0; c < c1 && !r; c++) {
		unsigned was = cstate(t, c);

		if ((!all && !chunk_needs_records(t, c, i, end, pfn)) || was == FRAME_CHUNK_PRIV_RW)
			continue;
		r = chunk_restore(t, c);
		if (!r && was == FRAME_CHUNK_SHARED)
			t->cstate[c] |= CS_NEW;
	}
	for (uint64_t c = c0; c < c1; c++) {
		if (!(t->cstate[c] & CS_NEW))
			continue;
		t->cstate[c] &= (uint8_t)~CS_NEW;
		if (r)
			chunk_optimise(t, c); /* best effort: unchanged zeros */
	}
	return r;
}

static int check_range(const struct frame_table *t, gpa_t gpa, uint64_t size, unsigned pool,
		       uint64_t pfn)
{
	uint64_t i = gpa >> 12;

	if ((gpa | size) & 4095 || i > t->nr || size >> 12 > t->nr - i || pool > UINT8_MAX ||
	    pfn > UINT32_MAX || size >> 12 > (uint64_t)UINT32_MAX + 1 - pfn)
		return -ERANGE;
	return 0;
}

static int reserve(struct frame_table *t, gpa_t gpa, uint64_t size, uint64_t pfn, bool all)
{
	uint64_t i = gpa >> 12, end = (gpa + size) >> 12;
	int r = check_range(t, gpa, size, 0, pfn);

	if (r || !size)
		return r;
	r = reserve_records(t, i, end, pfn, all);
	if (!r) /* a reserved chunk stays private until it is set */
		for (uint64_t c = i / HUGE; c < (end + HUGE - 1) / HUGE; c++)
			if (all || chunk_needs_records(t, c, i, end, pfn))
				pend_remove(t, c);
	return r;
}

int frame_table_reserve(struct frame_table *t, gpa_t gpa, uint64_t size, uint64_t pfn)
{
	return reserve(t, gpa, size, pfn, false);
}

int frame_table_reserve_chunks(struct frame_table *t, gpa_t gpa, uint64_t size)
{
	return reserve(t, gpa, size, 0, true);
}

int frame_table_set(struct frame_table *t, gpa_t gpa, uint64_t size, unsigned pool, uint64_t pfn)
{
	return frame_table_set_flags(t, gpa, size, pool, pfn, 0);
}

int frame_table_set_flags(struct frame_table *t, gpa_t gpa, uint64_t size, unsigned pool,
			  uint64_t pfn, unsigned flags)
{
	uint64_t i = gpa >> 12, end = i + (size >> 12);
	int r = check_range(t, gpa, size, pool, pfn);

	if (r || !size)
		return r;
	/* allocate before anything is written: -ENOMEM leaves every lookup as it was */
	r = reserve_records(t, i, end, pfn, false);
	if (r)
		return r;
	while (i < end) {
		uint64_t c = i / HUGE, ce = (c + 1) * HUGE < end ? (c + 1) * HUGE : end;

		if (!chunk_needs_records(t, c, i, end, pfn)) {
			/* a whole huge frame: its head, then its records are not read any more */
			head_store(t, c, (uint32_t)pfn,
				   mkstate(pool, FRAME_PRESENT | FRAME_HUGE_HEAD | flags));
			if (cstate(t, c) != FRAME_CHUNK_SHARED) {
				chunk_zero(t, c);
				pend_push(t, c);
			}
		} else {
			struct frame *rec = chunk_recs(t, c);

			if (t->no_optimise && !(i % HUGE) && ce - i == HUGE && !(pfn % HUGE)) {
				/* the unoptimised baseline: a huge head, private zero records */
				head_store(t, c, (uint32_t)pfn,
					   mkstate(pool, FRAME_PRESENT | FRAME_HUGE_HEAD | flags));
				chunk_zero(t, c);
			} else {
				split_huge(t, c);
				for (uint64_t k = i; k < ce; k++)
					rec_store(&rec[k - c * HUGE], (uint32_t)(pfn + (k - i)),
						  mkstate(pool, FRAME_PRESENT | flags));
				step(t, FRAME_STEP_WRITE, c, false, false);
			}
		}
		pfn += ce - i;
		i = ce;
	}
	frame_table_optimise_pending(t, false);
	return 0;
}

void frame_table_clear_flags(struct frame_table *t, gpa_t gpa, uint64_t size, unsigned flags)
{
	uint64_t i = gpa >> 12, end = (gpa + size + 4095) >> 12;

	if (end > t->nr)
		end = t->nr;
	for (; i < end; i++) {
		uint64_t c = i / HUGE;

		if (i == c * HUGE || i == gpa >> 12)
			frame_clear_flags(&t->heads[c], flags);
		if (cstate(t, c) != FRAME_CHUNK_SHARED)
			frame_clear_flags(&t->f[i], flags);
	}
}

struct frame *frame_get(struct frame_table *t, gpa_t gpa, uint64_t *pfn)
{
	uint64_t i = gpa >> 12, c;
	struct frame *f, *h;
	uint64_t st;

	if (i >= t->nr)
		return NULL;
	c = i / HUGE;
	h = &t->heads[c];
	f = &t->f[i];
	/* the head first: while it is huge it governs the chunk; the records are read only
	 * while it is not, and re-checked after (a chunk re-formed under us zeroes them) */
	if (!(frame_flags(h) & FRAME_HUGE_HEAD)) {
		uint64_t p;

		st = frame_state(f);
		p = frame_pfn(f);
		/* a zeroed record was zeroed after its head became huge (release stores):
		 * if we read any of its zeros, we see the huge head now */
		if (!(frame_flags(h) & FRAME_HUGE_HEAD)) {
			if (pfn)
				*pfn = p;
			return ((st >> 8) & FRAME_PRESENT) ? f : NULL;
		}
	}
	if (pfn)
		*pfn = frame_pfn(h) + (i & (HUGE - 1));
	return h;
}

const struct frame *frame_lookup(const struct frame_table *t, gpa_t gpa, uint64_t *pfn)
{
	return frame_get((struct frame_table *)t, gpa, pfn);
}

int frame_for_each(struct frame_table *t, gpa_t gpa, uint64_t size,
		   int (*fn)(void *ctx, struct frame *f, gpa_t gpa, uint64_t npages), void *ctx)
{
	for (gpa_t g = gpa & ~4095ull, end = gpa + size; g < end;) {
		struct frame *f = frame_get(t, g, NULL);
		gpa_t next = g + 4096;
		int r;

		if (f && (frame_flags(f) & FRAME_HUGE_HEAD)) {
			next = (g | ((HUGE << 12) - 1)) + 1;
			if (next > end)
				next = (end + 4095) & ~4095ull;
		}
		if (f && (r = fn(ctx, f, g, (next - g) >> 12)))
			return r;
		g = next;
	}
	return 0;
}

static uint64_t heads_resident(const struct frame_table *t)
{
	uint64_t n = 0, pages = heads_len(t->nchunks) / PAGE_BYTES;

	for (uint64_t p = 0; p < pages; p++)
		n += (t->heads_written[p / 8] >> (p % 8)) & 1;
	return n * PAGE_BYTES;
}

uint64_t frame_table_resident_bytes(const struct frame_table *t)
{
	struct stat sb;
	uint64_t priv = 0;

	if (!t->nchunks)
		return 0;
	/* the kernel's word for the private pages; our own count if it will not say */
	if (!fstat(t->fd, &sb) && sb.st_blocks)
		priv = (uint64_t)sb.st_blocks * 512;
	else
		for (uint64_t c = 0; c < t->nchunks; c++)
			priv += cstate(t, c) != FRAME_CHUNK_SHARED ? CHUNK_BYTES : 0;
	return priv + heads_resident(t);
}

void frame_table_get_stats(const struct frame_table *t, struct frame_table_stats *out)
{
	*out = t->st;
	out->virt_bytes = (uint64_t)t->nchunks * CHUNK_BYTES + heads_len(t->nchunks);
	out->resident_bytes = frame_table_resident_bytes(t);
	out->runs_optimised = out->runs_private = 0;
	for (uint64_t c = 0; c < t->nchunks; c++) {
		if (cstate(t, c) != FRAME_CHUNK_SHARED)
			out->runs_private++;
		else if (frame_flags(&t->heads[c]) & FRAME_HUGE_HEAD)
			out->runs_optimised++;
	}
	out->pending = t->npend;
}
