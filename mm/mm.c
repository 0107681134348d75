// SPDX-License-Identifier: MIT
#include <errno.h>
#include <unistd.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "mm/copy_pool.h"
#include "mm/mm.h"
#include "s2vm/clock.h"

#define MIB2 (2ull << 20)
#define HUGE POOL_HUGE_FRAMES


#define MM_ERR(mm, code, ...) (snprintf((mm)->err, sizeof((mm)->err), __VA_ARGS__), (code))

/* ---- the kvm backend: map -> alias, in maximal runs ---- */

static int prot_of(unsigned perm)
{
	return (perm & S2_PERM_R ? PROT_READ : 0) | (perm & S2_PERM_W ? PROT_WRITE : 0) |
	       (perm & S2_PERM_X ? PROT_EXEC : 0);
}

struct run {
	gpa_t gpa;
	uint64_t len;
	int pool; /* -1: hole */
	uint64_t off;
	int prot;
};

const char *const mm_host_call_names[MM_CALL_NR] = {
	[MM_CALL_MMAP] = "mmap",
	[MM_CALL_MPROTECT] = "mprotect",
	[MM_CALL_FALLOCATE] = "fallocate",
	[MM_CALL_MEMFD] = "memfd_create",
	[MM_CALL_MBIND] = "mbind",
	[MM_CALL_TABLE] = "table",
	[MM_CALL_FRAME] = "frame",
};

bool mm_inject_fail(struct mm *mm, enum mm_host_call c)
{
	uint32_t rate = mm->cfg.inject.per_million[c];
	uint64_t x = mm->inject_state;

	if (!rate)
		return false;
	x ^= x >> 12; /* xorshift64* */
	x ^= x << 25;
	x ^= x >> 27;
	mm->inject_state = x;
	if ((x * 0x2545f4914f6cdd1dull >> 32) % 1000000u >= rate)
		return false;
	mm->injected[c]++;
	errno = ENOMEM;
	return true;
}

/* Remember that the alias did not take [gpa, gpa + len) (call @c failed with -@err). */
static void alias_fail_note(struct mm *mm, gpa_t gpa, uint64_t len, enum mm_host_call c, int err)
{
	struct mm_alias_fail *f = &mm->afail;

	if (!f->err) {
		f->err = err;
		f->call = c;
	}
	if (f->all)
		return;
	if (f->n == f->cap) {
		size_t cap = f->cap ? 2 * f->cap : 16;
		struct mm_span *v = realloc(f->v, cap * sizeof(*v));

		if (!v) {
			f->all = true;
			return;
		}
		f->v = v;
		f->cap = cap;
	}
	f->v[f->n++] = (struct mm_span){ gpa, gpa + len };
}

static int run_flush(struct mm *mm, const struct run *r, bool prot_only)
{
	void *at = mm_alias_at(mm, r->gpa);
	enum mm_host_call c = prot_only && r->pool >= 0 ? MM_CALL_MPROTECT : MM_CALL_MMAP;
	bool failed;

	if (!r->len)
		return 0;
	if (mm_inject_fail(mm, c)) {
		failed = true;
	} else if (r->pool < 0) {
		mm->alias_stats.mmap_calls++;
		failed = mmap(at, r->len, PROT_NONE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1,
			      0) == MAP_FAILED;
	} else if (prot_only) {
		mm->alias_stats.mprotect_calls++;
		failed = mprotect(at, r->len, r->prot) != 0;
	} else {
		const struct pool *p = &mm->pools[r->pool];
		uint64_t first = r->off >> POOL_FRAME_SHIFT, left = r->len >> POOL_FRAME_SHIFT;

		/* one call per file the run reaches (a huge pool's small part is its own);
		 * NORESERVE: a huge pool's pages are already backed (or it reserves none) */
		failed = false;
		while (left && !failed) {
			uint64_t n = left, off;
			int fd = pool_file_span(p, first, &n, &off);

			mm->alias_stats.mmap_calls++;
			failed = mmap(at, n << POOL_FRAME_SHIFT, r->prot,
				      MAP_SHARED | MAP_FIXED | MAP_NORESERVE, fd,
				      (off_t)off) == MAP_FAILED;
			at = (unsigned char *)at + (n << POOL_FRAME_SHIFT);
			first += n;
			left -= n;
		}
	}
	if (!failed)
		return 0;
	alias_fail_note(mm, r->gpa, r->len, c, -errno);
	return -errno;
}

/* Make the alias of [gpa, gpa + size) match the map, one call per maximal run. A failed
 * call is recorded (mm->afail) and the next runs are still applied. Returns 0 or the
 * first -errno. */
static int alias_sync(struct mm *mm, gpa_t gpa, uint64_t size, bool prot_only)
{
	gpa_t end = gpa + size;
	struct run cur;
	int r = 0, e;

	if (gpa < mm->cfg.alias_floor) /* never mapped: below vm.mmap_min_addr */
		gpa = end > mm->cfg.alias_floor ? mm->cfg.alias_floor : end;
	cur = (struct run){ .gpa = gpa };
	for (gpa_t g = gpa; g < end;) {
		struct s2_leaf l;
		struct run nx = { .gpa = g, .pool = -1 };
		hpa_t oa;
		uint64_t step;

		if (s2_walk_span(&mm->map, g, end, &l, &oa, &step) == 0) {
			nx.pool = (int)(oa >> MM_POOL_SHIFT);
			nx.off = oa & ((1ull << MM_POOL_SHIFT) - 1);
			nx.prot = prot_of(l.perm);
		}
		nx.len = step;
		if (cur.len && cur.pool == nx.pool && cur.prot == nx.prot &&
		    (cur.pool < 0 || cur.off + cur.len == nx.off)) {
			cur.len += step;
		} else {
			e = run_flush(mm, &cur, prot_only);
			r = r ? r : e;
			cur = nx;
		}
		g += step;
	}
	e = run_flush(mm, &cur, prot_only);
	return r ? r : e;
}

struct span {
	gpa_t s, e;
	bool prot_only;
};

static int span_cmp(const void *a, const void *b)
{
	const struct span *x = a, *y = b;

	return x->s < y->s ? -1 : x->s > y->s;
}

static int kvm_commit(void *ctx, const struct s2_batch *b)
{
	struct mm *mm = ctx;
	struct span *v;
	size_t n = 0;
	int r = 0, e;

	if (b->overflow || !b->n)
		return b->overflow ? alias_sync(mm, 0, mm->cfg.mem_size, false) : 0;
	v = malloc(b->n * sizeof(*v));
	if (!v)
		return alias_sync(mm, 0, mm->cfg.mem_size, false);
	for (size_t i = 0; i < b->n; i++) {
		const struct s2_change *c = &b->v[i];

		if (c->op == S2_OP_SPLIT || c->op == S2_OP_COLLAPSE || c->gpa >= mm->cfg.mem_size)
			continue; /* same translations, or beyond RAM: nothing to redo */
		v[n++] = (struct span){ c->gpa, c->gpa + c->size, c->op == S2_OP_PROTECT };
	}
	/* Union overlapping and adjacent changes, whatever their op or level, so a run that
	 * was remapped and re-protected in one batch costs one call. */
	qsort(v, n, sizeof(*v), span_cmp);
	for (size_t i = 0; i < n;) {
		struct span u = v[i++];

		while (i < n && v[i].s <= u.e) {
			if (v[i].e > u.e)
				u.e = v[i].e;
			u.prot_only &= v[i].prot_only;
			i++;
		}
		if (u.e > mm->cfg.mem_size)
			u.e = mm->cfg.mem_size;
		e = alias_sync(mm, u.s, u.e - u.s, u.prot_only);
		r = r ? r : e;
	}
	free(v);
	return r;
}

int mm_commit(struct mm *mm, struct s2_batch *b, unsigned flags)
{
	mm->afail.n = 0;
	mm->afail.all = false;
	mm->afail.err = 0;
	s2_batch_commit_flags(&mm->map, b, flags);
	return mm->afail.err;
}

int mm_alias_resync(struct mm *mm, const struct mm_alias_fail *f)
{
	mm->afail.n = 0;
	mm->afail.all = false;
	mm->afail.err = 0;
	for (int tries = 0; tries <= MM_COMMIT_RETRIES; tries++) {
		if (f->all)
			(void)alias_sync(mm, 0, mm->cfg.mem_size, false);
		for (size_t k = 0; k < f->n && !f->all; k++)
			(void)alias_sync(mm, f->v[k].gpa, f->v[k].end - f->v[k].gpa, false);
		if (!mm->afail.err)
			return 0;
		if (tries < MM_COMMIT_RETRIES) {
			mm->afail.n = 0;
			mm->afail.all = false;
			mm->afail.err = 0;
		}
	}
	return mm->afail.err;
}

int mm_commit_retry(struct mm *mm, struct s2_batch *b, unsigned flags)
{
	int r = mm_commit(mm, b, flags);

	for (int tries = 0; r && tries < MM_COMMIT_RETRIES; tries++) {
		struct mm_alias_fail f = mm->afail;

		mm->afail = (struct mm_alias_fail){ 0 };
		if (f.all)
			(void)alias_sync(mm, 0, mm->cfg.mem_size, false);
		for (size_t k = 0; k < f.n && !f.all; k++)
			(void)alias_sync(mm, f.v[k].gpa, f.v[k].end - f.v[k].gpa, false);
		free(f.v);
		r = mm->afail.err;
	}
	return r;
}

void mm_fatal(struct mm *mm, const char *fmt, ...)
{
	char what[120];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (mm->fatal)
		return;
	mm->fatal = true;
	snprintf(mm->fatal_msg, sizeof(mm->fatal_msg),
		 "%s: %s on the guest RAM alias failed: %s; the alias and the stage-2 map "
		 "cannot be made to agree, so the guest must stop",
		 what, mm_host_call_names[mm->afail.call], strerror(-mm->afail.err));
	if (mm->cfg.on_fatal)
		mm->cfg.on_fatal(mm->cfg.fatal_ctx, mm);
}

/* The alias update is itself KVM's invalidation (MMU notifiers): nothing more to do. */
const struct s2_backend_ops mm_kvm_backend_ops = {
	.commit = kvm_commit,
};

/* ---- layout and placement ---- */

static int pool_index(struct mm *mm, unsigned node)
{
	for (unsigned i = 0; i < mm->nr_pools; i++)
		if (mm->pools[i].node == node)
			return (int)i;
	return -1;
}

static uint64_t pool_cap(const struct mm_config *c, unsigned node)
{
	uint64_t b = pool_node_bytes(node);

	for (unsigned i = 0; i < c->nr_caps; i++)
		if (c->caps[i].node == node)
			return c->caps[i].bytes;
	return b < POOL_MAX_BYTES ? b : POOL_MAX_BYTES; /* a host with > 16 TiB per node */
}

/* Pools use huge pages where the guest nodes they back do (hugepages=on), all of them
 * with --hugepages; a pool made later (a migration target) does when every node does. */
static bool all_huge(const struct mm_config *c)
{
	if (c->hugepages)
		return true;
	for (unsigned i = 0; i < c->nr_nodes; i++)
		if (!c->nodes[i].huge)
			return false;
	return c->nr_nodes > 0;
}

/* The pool of host node @node, made (huge or not, as @huge says) if it does not exist. */
static int pool_get(struct mm *mm, unsigned node, bool huge)
{
	int i = pool_index(mm, node), r;
	unsigned flags;
	char err[200];

	if (i >= 0) {
		if (mm->pools[i].huge != huge)
			return MM_ERR(mm, -EINVAL,
				      "host node %u would back guest memory both with and without "
				      "huge pages: give hugepages=on to every guest node on it, or "
				      "use --hugepages", node);
		return i;
	}
	if (mm->nr_pools == MM_MAX_POOLS)
		return MM_ERR(mm, -EINVAL, "more than %d host nodes in use", MM_MAX_POOLS);
	flags = (mm_inject_fail(mm, MM_CALL_MEMFD) ? POOL_FAIL_MEMFD : 0) |
		(mm_inject_fail(mm, MM_CALL_MBIND) ? POOL_FAIL_MBIND : 0) |
		(huge ? POOL_HUGETLB : 0) |
		/* every huge pool may have to hold the window a huge page cannot back: a
		 * migration or discard may bring it there */
		(huge && mm_cfg_small_window(&mm->cfg) ? POOL_SMALL_PART : 0);
	r = pool_create(&mm->pools[mm->nr_pools], node, pool_cap(&mm->cfg, node), flags, err,
			sizeof(err));
	if (r)
		return MM_ERR(mm, r, "%s", err);
	mm->has_huge |= huge;
	return (int)mm->nr_pools++;
}

int mm_pool_get(struct mm *mm, unsigned node)
{
	int i = pool_index(mm, node);

	return i >= 0 ? i : pool_get(mm, node, all_huge(&mm->cfg));
}

static int validate(struct mm *mm)
{
	struct mm_config *c = &mm->cfg;
	uint64_t sum = 0;

	if (!c->mem_size || c->mem_size % MIB2)
		return MM_ERR(mm, -EINVAL, "guest RAM must be a non-zero multiple of 2 MiB");
	if (c->mem_size > MM_MAX_MEM)
		return MM_ERR(mm, -EINVAL, "guest RAM of %llu MiB is more than the %llu MiB s2vm maps",
			      (unsigned long long)(c->mem_size >> 20),
			      (unsigned long long)(MM_MAX_MEM >> 20));
	if (c->nr_caps > MM_MAX_POOLS)
		return MM_ERR(mm, -EINVAL, "at most %d pool caps", MM_MAX_POOLS);
	for (unsigned i = 0; i < c->nr_caps; i++)
		if (c->caps[i].bytes > POOL_MAX_BYTES)
			return MM_ERR(mm, -EINVAL,
				      "host node %u: a pool holds at most %llu TiB",
				      c->caps[i].node, (unsigned long long)(POOL_MAX_BYTES >> 40));
	if (c->nr_nodes > MM_MAX_NODES)
		return MM_ERR(mm, -EINVAL, "at most %d guest nodes", MM_MAX_NODES);
	for (unsigned i = 0; i < c->nr_nodes; i++) {
		struct mm_guest_node *n = &c->nodes[i];

		if (n->id != i)
			return MM_ERR(mm, -EINVAL,
				      "guest node IDs must be 0..%u, each once, in order (got %u at position %u)",
				      c->nr_nodes - 1, n->id, i);
		if (!n->size || n->size % MIB2)
			return MM_ERR(mm, -EINVAL,
				      "guest node %u: size must be a non-zero multiple of 2 MiB", i);
		if (n->policy > MM_POLICY_INTERLEAVE)
			return MM_ERR(mm, -EINVAL, "guest node %u: unknown policy", i);
		if (n->policy == MM_POLICY_INTERLEAVE && !n->nr_hosts)
			return MM_ERR(mm, -EINVAL, "guest node %u: interleave needs hosts=LIST", i);
		if (n->nr_hosts > MM_MAX_POOLS)
			return MM_ERR(mm, -EINVAL, "guest node %u: more than %d host nodes", i,
				      MM_MAX_POOLS);
		if (n->size > c->mem_size - sum) /* checked: the sum never wraps */
			return MM_ERR(mm, -EINVAL,
				      "guest node sizes add up to more than --mem (%llu MiB) at guest "
				      "node %u",
				      (unsigned long long)(c->mem_size >> 20), i);
		sum += n->size;
	}
	if (c->nr_nodes && sum != c->mem_size)
		return MM_ERR(mm, -EINVAL,
			      "guest node sizes add up to %llu MiB but --mem is %llu MiB",
			      (unsigned long long)(sum >> 20),
			      (unsigned long long)(c->mem_size >> 20));
	return 0;
}

/* Back [gpa, gpa + size) from pool @pi, as few runs as possible. Returns bytes placed.
 * The window a huge page cannot back (mm_gpa_small()) gets small frames: on a huge pool,
 * those of its small part. */
static uint64_t place_from(struct mm *mm, unsigned pi, gpa_t gpa, uint64_t size)
{
	struct pool *p = &mm->pools[pi];
	uint64_t done = 0;

	while (done < size) {
		uint64_t first, n, want = (size - done) >> POOL_FRAME_SHIFT;
		gpa_t g = gpa + done, sw = mm->cfg.alias_floor & ~(MM_SMALL_WINDOW - 1);
		bool small = p->huge && mm_gpa_small(mm, g);

		/* a huge pool: that window from its small part, on its own */
		if (small && want > HUGE)
			want = HUGE;
		else if (p->huge && mm_cfg_small_window(&mm->cfg) && g < sw &&
			 want > (sw - g) >> POOL_FRAME_SHIFT)
			want = (sw - g) >> POOL_FRAME_SHIFT;
		n = mm_pool_alloc_upto(mm, p, g, want, HUGE, &first);
		if (!n)
			break;
		n &= ~(uint64_t)(HUGE - 1); /* whole 2 MiB frames (huge or not) only */
		if (!n)
			break;
		/* cannot fail: the range is empty and tables are allocated on demand */
		if (s2_map_range(&mm->map, gpa + done, mm_pa(pi, first), n << POOL_FRAME_SHIFT,
				 S2_PERM_RWX, S2_MT_NORMAL, &mm->batch))
			break;
		/* cannot fail: validate() bounded the layout and pools hold < 2^32 frames;
		 * whole 2 MiB runs on 2 MiB-aligned frames write heads only (no -ENOMEM) */
		if (frame_table_set(&mm->ft, gpa + done, n << POOL_FRAME_SHIFT, pi, first))
			break;
		done += n << POOL_FRAME_SHIFT;
	}
	return done;
}

static int place_node(struct mm *mm, struct mm_guest_node *n)
{
	int pi, r;
	uint64_t got;
	bool huge = mm->cfg.hugepages || n->huge;
	char more_help[256] = "";

	if (n->policy == MM_POLICY_INTERLEAVE) {
		int idx[MM_MAX_POOLS];

		for (unsigned h = 0; h < n->nr_hosts; h++) {
			idx[h] = pool_get(mm, n->hosts[h], huge);
			if (idx[h] < 0)
				return idx[h];
		}
		for (uint64_t off = 0, k = 0; off < n->size; off += MIB2, k++) {
			unsigned h = (unsigned)(k % n->nr_hosts);

			if (place_from(mm, (unsigned)idx[h], n->gpa + off, MIB2) != MIB2)
				return MM_ERR(mm, -ENOMEM,
					      "guest node %u: host node %u's pool is full (interleave)",
					      n->id, n->hosts[h]);
			n->placed[idx[h]] += MIB2;
		}
		return 0;
	}
	pi = pool_get(mm, n->host, huge);
	if (pi < 0)
		return pi;
	got = place_from(mm, (unsigned)pi, n->gpa, n->size);
	n->placed[pi] += got;
	if (got == n->size)
		return 0;
	if (n->policy == MM_POLICY_PREFERRED) {
		for (unsigned h = 0; h < n->nr_hosts && got < n->size; h++) {
			uint64_t more;

			if (n->hosts[h] == n->host)
				continue;
			r = pool_get(mm, n->hosts[h], huge);
			if (r < 0)
				return r;
			more = place_from(mm, (unsigned)r, n->gpa + got, n->size - got);
			n->placed[r] += more;
			got += more;
		}
		if (got == n->size)
			return 0;
	}
	if (huge) {
		char nr_file[128];
		uint64_t free_pages = pool_huge_free(mm->pools[pi].bound_node, nr_file,
						     sizeof(nr_file));

		snprintf(more_help, sizeof(more_help),
			 " (2 MiB huge pages: %llu free on host node %d; raise %s)",
			 (unsigned long long)free_pages,
			 mm->pools[pi].bound_node < 0 ? 0 : mm->pools[pi].bound_node, nr_file);
	}
	return MM_ERR(mm, -ENOMEM,
		      "guest node %u needs %llu MiB but host node %u's pool holds only %llu MiB more%s%.120s",
		      n->id, (unsigned long long)(n->size >> 20), n->host,
		      (unsigned long long)(got >> 20),
		      n->policy == MM_POLICY_PREFERRED ? " and the fallback nodes are full" : "",
		      more_help);
}

uint64_t mm_process_mappings(void)
{
	char buf[65536];
	uint64_t lines = 0;
	ssize_t n;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++)
			lines += buf[i] == '\n';
	close(fd);
	return lines;
}

/* 3/4 of vm.max_map_count (65530 if it cannot be read): the rest stays for the rest of
 * the process (its libraries, heap arenas, thread stacks). */
static uint64_t map_budget(void)
{
	unsigned long v = 65530;
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");

	if (f) {
		if (fscanf(f, "%lu", &v) != 1)
			v = 65530;
		fclose(f);
	}
	return (uint64_t)v / 4 * 3;
}

/* The map's fault-injection hook for table pages (MM_CALL_TABLE). */
static bool mm_table_fail(void *ctx)
{
	return mm_inject_fail(ctx, MM_CALL_TABLE);
}

/* The frame table's hook for record pages (MM_CALL_FRAME): its writers hold mm->lock. */
static bool mm_frame_fail(void *ctx)
{
	return mm_inject_fail(ctx, MM_CALL_FRAME);
}

int mm_create(struct mm *mm, const struct mm_config *cfg)
{
	struct s2_map_config mc = { 0 };
	uint64_t t0 = s2_now_ns();
	uintptr_t base;
	gpa_t gpa = 0;
	int r;

	memset(mm, 0, sizeof(*mm));
	mm->cfg = *cfg;
	mm->inject_state = cfg->inject.seed * 2 + 1; /* xorshift needs a non-zero state */
	mm->map_budget = map_budget();
	s2_batch_init(&mm->batch);
	pthread_mutex_init(&mm->lock, NULL);
	pthread_mutex_init(&mm->mig_lock, NULL);
	pthread_cond_init(&mm->batch_cond, NULL);
	gen_init(&mm->gens, 1);
	mm->vcpu_holder = gen_holder_add(&mm->gens, "vcpus");
	if (!mm->cfg.mig.cap_frames)
		mm->cfg.mig.cap_frames = 8192;
	if (!mm->cfg.mig.batch_frames)
		mm->cfg.mig.batch_frames = 8192;
	defer_init(&mm->deferred, mm->cfg.mig.cap_frames);
	if (mm_timeline_init(&mm->tl, cfg->timeline_cap))
		return MM_ERR(mm, -ENOMEM, "cannot allocate the migration timeline");
	r = validate(mm);
	if (r)
		return r;
	if (!mm->cfg.nr_nodes) {
		mm->cfg.nr_nodes = 1;
		mm->cfg.nodes[0] = (struct mm_guest_node){ .size = cfg->mem_size };
		if (pool_local_node() > 0)
			mm->cfg.nodes[0].host = (unsigned)pool_local_node();
	}
	mc.fmt = cfg->fmt ? cfg->fmt : &s2_format_ept;
	mc.ipa_bits = 48;
	mc.be = cfg->be ? cfg->be : &mm_kvm_backend_ops;
	mc.be_ctx = cfg->be ? cfg->be_ctx : mm;
	mc.fail_alloc = mm_table_fail;
	mc.fail_ctx = mm;
	r = s2_map_init(&mm->map, &mc);
	if (r)
		return MM_ERR(mm, r, "cannot create the stage-2 map");
	r = frame_table_init(&mm->ft, cfg->mem_size);
	if (r)
		return MM_ERR(mm, r, "cannot allocate the frame table");
	mm->ft.fail_alloc = mm_frame_fail;
	mm->ft.fail_ctx = mm;

	if (!cfg->be && cfg->alias_at_gpa) {
		uint64_t floor = cfg->alias_floor;
		void *want = (void *)(uintptr_t)floor;

		if (floor % S2_PAGE_SIZE || floor >= cfg->mem_size)
			return MM_ERR(mm, -EINVAL, "bad alias floor %#llx", (unsigned long long)floor);
		mm->alias_len = cfg->mem_size + cfg->alias_extra - floor;
		mm->alias_base = mmap(want, mm->alias_len, PROT_NONE,
				      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
					      MAP_FIXED_NOREPLACE, -1, 0);
		if (mm->alias_base == MAP_FAILED || mm->alias_base != want) {
			int err = mm->alias_base == MAP_FAILED ? errno : EEXIST;

			if (mm->alias_base != MAP_FAILED)
				munmap(mm->alias_base, mm->alias_len); /* kernel without NOREPLACE */
			mm->alias_base = NULL;
			return MM_ERR(mm, -err,
				      "cannot place guest RAM at host addresses [%#llx, %#llx) == its "
				      "GPAs: %s",
				      (unsigned long long)floor,
				      (unsigned long long)(cfg->mem_size + cfg->alias_extra),
				      err == EEXIST ? "part of that range is in use in this process"
						    : strerror(err));
		}
		mm->alias = NULL; /* GPA 0 is host address 0 */
	} else if (!cfg->be) {
		mm->alias_len = cfg->mem_size + MIB2;
		mm->alias_base = mmap(NULL, mm->alias_len, PROT_NONE,
				      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (mm->alias_base == MAP_FAILED) {
			mm->alias_base = NULL;
			return MM_ERR(mm, -ENOMEM, "cannot reserve address space for guest RAM");
		}
		base = ((uintptr_t)mm->alias_base + MIB2 - 1) & ~(uintptr_t)(MIB2 - 1);
		mm->alias = (unsigned char *)base;
	}

	for (unsigned i = 0; i < mm->cfg.nr_nodes; i++) {
		mm->cfg.nodes[i].gpa = gpa;
		gpa += mm->cfg.nodes[i].size;
		r = place_node(mm, &mm->cfg.nodes[i]);
		if (r)
			return r;
	}
	r = mm_commit(mm, &mm->batch, 0); /* materialises the alias */
	mm->maps_est = cfg->be ? 0 : mm_process_mappings();
	if (r)
		return MM_ERR(mm, r, "cannot map guest RAM into its alias: %s failed: %s",
			      mm_host_call_names[mm->afail.call], strerror(-r));
	mm->build_ns = s2_now_ns() - t0;
	return 0;
}

void mm_destroy(struct mm *mm)
{
	copy_pool_destroy(mm->copy_pool); /* the migration copy threads, if made */
	mm->copy_pool = NULL;
	if (mm->alias_base)
		munmap(mm->alias_base, mm->alias_len);
	mm->alias_base = NULL;
	mm->alias = NULL;
	for (unsigned i = 0; i < mm->nr_pools; i++)
		pool_destroy(&mm->pools[i]);
	mm->nr_pools = 0;
	frame_table_destroy(&mm->ft);
	if (mm->map.tables.pages)
		s2_map_destroy(&mm->map);
	s2_batch_free(&mm->batch);
	defer_destroy(&mm->deferred);
	mm_timeline_destroy(&mm->tl);
	free(mm->afail.v);
	mm->afail.v = NULL;
	free(mm->discard_q);
	mm->discard_q = NULL;
	mm->discard_qn = mm->discard_qcap = 0;
	pthread_mutex_destroy(&mm->lock);
	pthread_mutex_destroy(&mm->mig_lock);
	pthread_cond_destroy(&mm->batch_cond);
}

void mm_node_placement(const struct mm *mm, unsigned idx, uint64_t bytes[MM_MAX_POOLS])
{
	const struct mm_guest_node *n = &mm->cfg.nodes[idx];

	memset(bytes, 0, MM_MAX_POOLS * sizeof(bytes[0]));
	for (gpa_t g = n->gpa; g < n->gpa + n->size;) {
		struct s2_leaf l;
		hpa_t oa;
		uint64_t step;

		if (s2_walk_span(&mm->map, g, n->gpa + n->size, &l, &oa, &step) == 0)
			bytes[oa >> MM_POOL_SHIFT] += step;
		g += step;
	}
}

int mm_gpa_backing(const struct mm *mm, gpa_t gpa, unsigned *pool, uint64_t *offset)
{
	struct s2_leaf l;
	unsigned lvl;

	if (gpa >= mm->cfg.mem_size || s2_walk(&mm->map, gpa, &l, &lvl))
		return -ENOENT;
	*pool = (unsigned)(l.oa >> MM_POOL_SHIFT);
	*offset = (l.oa & ((1ull << MM_POOL_SHIFT) - 1)) + (gpa & (s2_level_size(lvl) - 1));
	return 0;
}

int mm_gpa_node(struct mm *mm, gpa_t gpa)
{
	unsigned pool;
	uint64_t off;
	int r;

	pthread_mutex_lock(&mm->lock); /* walks race with migrations */
	r = mm_gpa_backing(mm, gpa, &pool, &off) ? -ENOENT : (int)mm->pools[pool].node;
	pthread_mutex_unlock(&mm->lock);
	return r;
}
