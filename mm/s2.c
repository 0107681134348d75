// SPDX-License-Identifier: MIT
/*
 * The stage-2 map, written once for every format in arch/. Every update runs twice over
 * its range: a dry run that checks preconditions and counts the table pages it will need,
 * then, once those are reserved, the real run, which cannot fail. So every error return
 * leaves the map exactly as it was.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mm/s2.h"

#define MIN(a, b) ((a) < (b) ? (a) : (b))

/* ---- table pages ---- */

static uint64_t *tbl(const struct s2_map *m, hpa_t pa)
{
	return m->tables.pages[(pa - S2_TABLE_BASE) >> S2_PAGE_SHIFT];
}

/* Make sure @n table pages can be taken without failing. Returns 0 or -ENOMEM. */
static int tables_reserve(struct s2_map *m, size_t n)
{
	struct s2_tables *t = &m->tables;

	if (m->max_tables && t->used + n > m->max_tables)
		return -ENOMEM;
	if (t->nfree < n && m->fail_alloc && m->fail_alloc(m->fail_ctx))
		return -ENOMEM;
	while (t->nfree < n) {
		uint64_t *page;

		if (t->nr == t->cap) {
			size_t cap = t->cap ? t->cap * 2 : 64;
			uint64_t **pages = realloc(t->pages, cap * sizeof(*pages));
			size_t *fr;

			if (!pages)
				return -ENOMEM;
			t->pages = pages;
			fr = realloc(t->free, cap * sizeof(*fr));
			if (!fr)
				return -ENOMEM;
			t->free = fr;
			t->cap = cap;
		}
		page = aligned_alloc(S2_PAGE_SIZE, S2_PAGE_SIZE);
		if (!page)
			return -ENOMEM;
		t->pages[t->nr] = page;
		t->free[t->nfree++] = t->nr++;
	}
	return 0;
}

/* Take a reserved, zeroed (all-invalid) table page. Cannot fail after tables_reserve(). */
static hpa_t table_get(struct s2_map *m)
{
	struct s2_tables *t = &m->tables;
	size_t idx = t->free[--t->nfree];

	memset(t->pages[idx], 0, S2_PAGE_SIZE);
	t->used++;
	m->stats.tables = t->used;
	if (t->used > m->stats.tables_peak)
		m->stats.tables_peak = t->used;
	return S2_TABLE_BASE + ((hpa_t)idx << S2_PAGE_SHIFT);
}

static void table_put(struct s2_map *m, hpa_t pa)
{
	struct s2_tables *t = &m->tables;

	t->free[t->nfree++] = (size_t)((pa - S2_TABLE_BASE) >> S2_PAGE_SHIFT);
	t->used--;
	m->stats.tables = t->used;
}

/* ---- batches ---- */

void s2_batch_init(struct s2_batch *b)
{
	memset(b, 0, sizeof(*b));
}

void s2_batch_free(struct s2_batch *b)
{
	free(b->v);
	free(b->free_tables);
	memset(b, 0, sizeof(*b));
}

/* Room to record every table the map could free in one update, so that an update never
 * fails half-way because of the batch. Returns 0 or -ENOMEM. */
static int batch_prepare(const struct s2_map *m, struct s2_batch *b)
{
	size_t want = b->nfree + m->tables.used + 1;

	if (b->capfree < want) {
		hpa_t *v = realloc(b->free_tables, want * sizeof(*v));

		if (!v)
			return -ENOMEM;
		b->free_tables = v;
		b->capfree = want;
	}
	return 0;
}

static void batch_add(struct s2_batch *b, enum s2_op op, gpa_t gpa, uint64_t size, unsigned level,
		      enum s2_inv inv, bool bbm)
{
	if (b->n) {
		struct s2_change *l = &b->v[b->n - 1];

		if (l->op == op && l->inv == inv && l->bbm == bbm && l->level == level &&
		    l->gpa + l->size == gpa) {
			l->size += size;
			return;
		}
	}
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 32;
		struct s2_change *v = realloc(b->v, cap * sizeof(*v));

		if (!v) {
			b->overflow = true; /* commit falls back to invalidating everything */
			return;
		}
		b->v = v;
		b->cap = cap;
	}
	b->v[b->n++] = (struct s2_change){ .gpa = gpa, .size = size, .op = (uint8_t)op,
					   .inv = (uint8_t)inv, .level = (uint8_t)level, .bbm = bbm };
}

/* ---- entry writes ---- */

static uint64_t pte_get(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void pte_set(struct s2_map *m, uint64_t *p, gpa_t slot, unsigned level, uint64_t v)
{
	if (m->be && m->be->pte_write)
		m->be->pte_write(m->be_ctx, slot, level, pte_get(p), v);
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static void do_tlbi(struct s2_map *m, gpa_t gpa, uint64_t size)
{
	m->stats.tlbi++;
	if (m->be && m->be->tlbi)
		m->be->tlbi(m->be_ctx, gpa, size);
}

/* Does changing a live entry's block size (block <-> table) need break-before-make? */
static bool level_change_needs_bbm(const struct s2_map *m)
{
	return m->fmt->needs_bbm && m->bbm_level < 2;
}

/* The "break": invalid entry, then invalidate, before anything new is written. */
static void pte_break(struct s2_map *m, uint64_t *p, gpa_t slot, unsigned level)
{
	pte_set(m, p, slot, level, 0);
	do_tlbi(m, slot, s2_level_size(level));
	m->stats.bbm++;
}

static unsigned slot_idx(gpa_t gpa, unsigned level)
{
	return (unsigned)((gpa >> s2_level_shift(level)) & (S2_PTES_PER_TABLE - 1));
}

/* ---- set-up ---- */

/*
 * Does @f keep a 4 KiB page's output address verbatim in the bits @mask, independent of
 * every other field (so a level-3 entry is its attribute bits | its output address)?
 * Checked for every attribute combination s2_leaf can describe.
 */
static bool oa_verbatim3(const struct s2_format *f, uint64_t mask)
{
	for (unsigned perm = S2_PERM_R; perm <= S2_PERM_RWX; perm++) {
		for (unsigned mt = 0; mt <= S2_MT_DEVICE && (perm & S2_PERM_R); mt++) {
			for (unsigned bits = 0; bits < 8; bits++) {
				struct s2_leaf l = { .perm = (uint8_t)perm, .memtype = (uint8_t)mt,
						     .accessed = bits & 1, .dirty = bits & 2,
						     .contig = bits & 4 }, d;
				uint64_t lo, hi;

				lo = f->mk_leaf(3, &l);
				l.oa = mask;
				hi = f->mk_leaf(3, &l);
				if ((lo & mask) || (hi ^ lo) != mask ||
				    f->kind(hi, 3) != S2_PTE_LEAF)
					return false;
				f->leaf(hi, 3, &d);
				if (d.oa != mask)
					return false;
			}
		}
	}
	return true;
}

int s2_map_init(struct s2_map *m, const struct s2_map_config *cfg)
{
	int r;

	memset(m, 0, sizeof(*m));
	if (!cfg->fmt || cfg->ipa_bits < 32 || cfg->ipa_bits > 48 || cfg->bbm_level > 2)
		return -EINVAL;
	m->fmt = cfg->fmt;
	m->ipa_bits = cfg->ipa_bits;
	m->start_level = cfg->fmt->start_level(cfg->ipa_bits);
	m->bbm_level = cfg->bbm_level;
	m->max_tables = cfg->max_tables;
	m->fail_alloc = cfg->fail_alloc;
	m->fail_ctx = cfg->fail_ctx;
	m->be = cfg->be;
	m->be_ctx = cfg->be_ctx;
	m->oa_mask3 = (cfg->fmt->oa_bits >= 64 ? ~0ull : (1ull << cfg->fmt->oa_bits) - 1) &
		      ~(S2_PAGE_SIZE - 1);
	m->fast3 = oa_verbatim3(cfg->fmt, m->oa_mask3);
	r = tables_reserve(m, 1);
	if (r) {
		s2_map_destroy(m);
		return r;
	}
	m->root = table_get(m);
	return 0;
}

void s2_map_destroy(struct s2_map *m)
{
	for (size_t i = 0; i < m->tables.nr; i++)
		free(m->tables.pages[i]);
	free(m->tables.pages);
	free(m->tables.free);
	memset(&m->tables, 0, sizeof(m->tables));
}

static int check_range(const struct s2_map *m, gpa_t gpa, uint64_t size)
{
	if (!size || (gpa | size) & (S2_PAGE_SIZE - 1) || gpa + size < gpa ||
	    gpa + size > (1ull << m->ipa_bits))
		return -EINVAL;
	return 0;
}

static int check_perm(unsigned perm)
{
	return (perm & S2_PERM_R) && !(perm & ~(unsigned)S2_PERM_RWX) ? 0 : -EINVAL;
}

/* ---- map ---- */

static bool leaf_fits(const struct s2_map *m, unsigned level, gpa_t ss, gpa_t se, hpa_t pa)
{
	uint64_t sz = s2_level_size(level);

	if (level != 3 && !(m->fmt->block_levels & (1u << level)))
		return false;
	return (ss & (sz - 1)) == 0 && se - ss == sz && (pa & (sz - 1)) == 0;
}

/* Any leaf in [s, e) below table @t at @level? */
static bool range_has_leaf(const struct s2_map *m, const uint64_t *t, unsigned level, gpa_t s,
			   gpa_t e)
{
	uint64_t sz = s2_level_size(level);

	if (level == 3) { /* one pass over the table: empty entries need no decoding */
		unsigned i = slot_idx(s, 3), n = (unsigned)((e - s) >> S2_PAGE_SHIFT);

		for (; n; i++, n--) {
			uint64_t pte = pte_get(&t[i]);

			if (pte && m->fmt->kind(pte, 3) == S2_PTE_LEAF)
				return true;
		}
		return false;
	}
	for (gpa_t ss = s; ss < e;) {
		gpa_t slot = ss & ~(sz - 1), se = MIN(e, slot + sz);
		uint64_t pte = pte_get(&t[slot_idx(ss, level)]);

		switch (m->fmt->kind(pte, level)) {
		case S2_PTE_LEAF:
			return true;
		case S2_PTE_TABLE:
			if (range_has_leaf(m, tbl(m, m->fmt->table_pa(pte)), level + 1, ss, se))
				return true;
			break;
		default:
			break;
		}
		ss = se;
	}
	return false;
}

struct map_args {
	gpa_t s0;
	hpa_t pa0;
	struct s2_leaf tmpl;
	bool dry;
	size_t need; /* dry run: table pages to allocate */
	struct s2_batch *b;
};

/*
 * Map [s, e) (inside one level-3 table @t) with 4 KiB leaves in one pass: the first
 * entry is encoded, the others differ only in their output address (m->fast3). One
 * batch record for the stretch, as the per-page records would merge into.
 */
static void map_table3(struct s2_map *m, uint64_t *t, gpa_t s, gpa_t e, struct map_args *a)
{
	struct s2_leaf l = a->tmpl;
	uint64_t pte;
	gpa_t slot = s;

	l.oa = a->pa0 + (s - a->s0);
	pte = m->fmt->mk_leaf(3, &l);
	for (unsigned i = slot_idx(s, 3); slot < e; i++, slot += S2_PAGE_SIZE) {
		pte_set(m, &t[i], slot, 3, pte);
		pte += S2_PAGE_SIZE;
	}
	batch_add(a->b, S2_OP_MAP, s, e - s, 3, S2_INV_NONE, false);
}

/* Map [s, e) under table @t (NULL in a dry run for a table still to be allocated). */
static void map_level(struct s2_map *m, uint64_t *t, unsigned level, gpa_t s, gpa_t e,
		      struct map_args *a)
{
	uint64_t sz = s2_level_size(level);

	if (level == 3 && m->fast3 && !m->per_entry) {
		if (!a->dry) /* pages always fit: a dry run has nothing to count here */
			map_table3(m, t, s, e, a);
		return;
	}

	for (gpa_t ss = s; ss < e;) {
		gpa_t slot = ss & ~(sz - 1), se = MIN(e, slot + sz);
		hpa_t pa = a->pa0 + (ss - a->s0);
		uint64_t *p = t ? &t[slot_idx(ss, level)] : NULL;

		if (leaf_fits(m, level, ss, se, pa)) {
			if (!a->dry) {
				struct s2_leaf l = a->tmpl;

				l.oa = pa;
				pte_set(m, p, slot, level, m->fmt->mk_leaf(level, &l));
				batch_add(a->b, S2_OP_MAP, ss, sz, level, S2_INV_NONE, false);
			}
		} else {
			uint64_t *child = NULL;

			if (p && m->fmt->kind(pte_get(p), level) == S2_PTE_TABLE) {
				child = tbl(m, m->fmt->table_pa(pte_get(p)));
			} else if (a->dry) {
				a->need++;
			} else {
				hpa_t np = table_get(m);

				pte_set(m, p, slot, level, m->fmt->mk_table(np));
				child = tbl(m, np);
			}
			map_level(m, child, level + 1, ss, se, a);
		}
		ss = se;
	}
}

int s2_map_range(struct s2_map *m, gpa_t gpa, hpa_t pa, uint64_t size, unsigned perm,
		 unsigned memtype, struct s2_batch *b)
{
	struct map_args a = { .s0 = gpa, .pa0 = pa, .dry = true, .b = b };
	uint64_t *root = tbl(m, m->root);
	int r;

	if (check_range(m, gpa, size) || check_perm(perm) || memtype > S2_MT_DEVICE ||
	    (pa & (S2_PAGE_SIZE - 1)) || pa + size < pa || pa + size > S2_TABLE_BASE)
		return -EINVAL;
	if (range_has_leaf(m, root, m->start_level, gpa, gpa + size))
		return -EEXIST;
	a.tmpl.perm = (uint8_t)perm;
	a.tmpl.memtype = (uint8_t)memtype;
	a.tmpl.accessed = true;
	map_level(m, root, m->start_level, gpa, gpa + size, &a);
	r = tables_reserve(m, a.need);
	if (r)
		return r;
	r = batch_prepare(m, b);
	if (r)
		return r;
	a.dry = false;
	map_level(m, root, m->start_level, gpa, gpa + size, &a); /* no turning back */
	return 0;
}

/* ---- unmap, protect, remap ---- */

enum upd_op { UPD_UNMAP, UPD_PROTECT, UPD_REMAP };

/* A leaf broken by a batched break-before-make, waiting for its new entry. */
struct upd_make {
	uint64_t *p;
	gpa_t slot;
	unsigned level;
	uint64_t pte;
};

struct upd_args {
	enum upd_op op;
	unsigned perm; /* UPD_PROTECT */
	gpa_t s0; /* UPD_REMAP: new_pa corresponds to s0 */
	hpa_t pa0;
	unsigned flags;
	bool dry;
	size_t need;
	int err; /* dry run: precondition failure */
	struct s2_batch *b;
	/* UPD_REMAP with break-before-make: every leaf is broken first, then one
	 * invalidation covers them all, then every new entry is made (s2_remap()). */
	struct upd_make *mk;
	size_t nmk, capmk;
	gpa_t mk_lo, mk_hi; /* [lo, hi) covers every broken slot */
};

/* Queue a broken leaf's new entry. Returns false (make it at once) if out of memory. */
static bool make_later(struct upd_args *a, uint64_t *p, gpa_t slot, unsigned level, uint64_t pte)
{
	if (a->nmk == a->capmk) {
		size_t cap = a->capmk ? a->capmk * 2 : 64;
		struct upd_make *v = realloc(a->mk, cap * sizeof(*v));

		if (!v)
			return false;
		a->mk = v;
		a->capmk = cap;
	}
	a->mk[a->nmk++] = (struct upd_make){ p, slot, level, pte };
	if (a->nmk == 1 || slot < a->mk_lo)
		a->mk_lo = slot;
	if (a->nmk == 1 || slot + s2_level_size(level) > a->mk_hi)
		a->mk_hi = slot + s2_level_size(level);
	return true;
}

static bool table_empty(const uint64_t *t)
{
	for (unsigned i = 0; i < S2_PTES_PER_TABLE; i++)
		if (pte_get(&t[i]))
			return false;
	return true;
}

/* Replace block leaf *@p (decoded @l) by a table of next-level leaves, same translations. */
static uint64_t *split_leaf(struct s2_map *m, uint64_t *p, gpa_t slot, unsigned level,
			    const struct s2_leaf *l, struct s2_batch *b)
{
	uint64_t csz = s2_level_size(level + 1);
	hpa_t np = table_get(m);
	uint64_t *child = tbl(m, np);

	for (unsigned i = 0; i < S2_PTES_PER_TABLE; i++) {
		struct s2_leaf cl = *l;

		cl.oa = l->oa + i * csz;
		cl.contig = false;
		child[i] = m->fmt->mk_leaf(level + 1, &cl); /* not yet reachable */
	}
	if (level_change_needs_bbm(m)) {
		pte_break(m, p, slot, level);
		pte_set(m, p, slot, level, m->fmt->mk_table(np));
		batch_add(b, S2_OP_SPLIT, slot, s2_level_size(level), level, S2_INV_NONE, true);
	} else {
		/* Old block and new pages translate identically: a stale block is harmless
		 * until the invalidation, which may be deferred. */
		pte_set(m, p, slot, level, m->fmt->mk_table(np));
		batch_add(b, S2_OP_SPLIT, slot, s2_level_size(level), level, S2_INV_DEFERRABLE,
			  false);
	}
	return child;
}

static void apply_leaf(struct s2_map *m, uint64_t *p, gpa_t slot, unsigned level,
		       const struct s2_leaf *l, struct upd_args *a)
{
	uint64_t sz = s2_level_size(level);
	struct s2_leaf nl = *l;

	switch (a->op) {
	case UPD_UNMAP:
		pte_set(m, p, slot, level, 0);
		batch_add(a->b, S2_OP_UNMAP, slot, sz, level, S2_INV_REQUIRED, false);
		break;
	case UPD_PROTECT:
		if (l->perm == a->perm)
			break;
		nl.perm = (uint8_t)a->perm;
		pte_set(m, p, slot, level, m->fmt->mk_leaf(level, &nl));
		/* Losing a permission must be invalidated; gaining one only risks a spurious
		 * fault through a stale, stricter entry. */
		batch_add(a->b, S2_OP_PROTECT, slot, sz, level,
			  (l->perm & ~a->perm) ? S2_INV_REQUIRED : S2_INV_NONE, false);
		break;
	case UPD_REMAP: {
		bool ro = !(l->perm & S2_PERM_W);
		bool same = a->flags & S2_REMAP_SAME_CONTENTS;

		nl.oa = a->pa0 + (slot - a->s0);
		if (nl.oa == l->oa)
			break;
		if (m->fmt->needs_bbm && !(ro && same)) {
			uint64_t pte = m->fmt->mk_leaf(level, &nl);

			if (make_later(a, p, slot, level, pte)) { /* the break only, for now */
				pte_set(m, p, slot, level, 0);
				m->stats.bbm++;
				break;
			}
			pte_break(m, p, slot, level);
			pte_set(m, p, slot, level, pte);
			batch_add(a->b, S2_OP_REMAP, slot, sz, level, S2_INV_NONE, true);
		} else {
			pte_set(m, p, slot, level, m->fmt->mk_leaf(level, &nl));
			batch_add(a->b, S2_OP_REMAP, slot, sz, level,
				  ro && same ? S2_INV_DEFERRABLE : S2_INV_REQUIRED, false);
		}
		break;
	}
	}
}

/* ---- level-3 tables, a table at a time ---- */

enum { ACT_NONE, ACT_SET, ACT_SLOW };

/*
 * What a level-3 entry's attribute bits (the entry without its output address) mean for
 * the update under way: decided once per distinct attribute word, by decoding and
 * re-encoding one entry exactly as apply_leaf() would, then applied to every entry
 * with the same word by rewriting the attribute or address bits alone (m->fast3).
 */
struct attr_memo {
	uint64_t attrs;
	bool valid;
	uint8_t act; /* ACT_NONE: nothing to do; ACT_SET: write new_attrs | address;
		      * ACT_SLOW: apply_leaf() (arm64 break-before-make remaps) */
	uint8_t inv; /* enum s2_inv of the change */
	uint64_t new_attrs;
};

static void memo_fill(const struct s2_map *m, const struct upd_args *a, uint64_t pte,
		      struct attr_memo *mo)
{
	const uint64_t mask = m->oa_mask3;
	struct s2_leaf l, nl;
	uint64_t np;

	mo->valid = true;
	mo->attrs = pte & ~mask;
	mo->act = ACT_NONE;
	if (m->fmt->kind(pte, 3) != S2_PTE_LEAF)
		return;
	m->fmt->leaf(pte, 3, &l);
	nl = l;
	switch (a->op) {
	case UPD_UNMAP:
		mo->act = ACT_SET;
		mo->new_attrs = 0; /* the whole entry becomes 0 */
		mo->inv = S2_INV_REQUIRED;
		break;
	case UPD_PROTECT:
		if (l.perm == a->perm)
			return;
		nl.perm = (uint8_t)a->perm;
		np = m->fmt->mk_leaf(3, &nl);
		mo->act = (np & mask) == (pte & mask) ? ACT_SET : ACT_SLOW;
		mo->new_attrs = np & ~mask;
		mo->inv = (l.perm & ~a->perm) ? S2_INV_REQUIRED : S2_INV_NONE;
		break;
	case UPD_REMAP: {
		bool ro = !(l.perm & S2_PERM_W);
		bool same = a->flags & S2_REMAP_SAME_CONTENTS;

		if (m->fmt->needs_bbm && !(ro && same)) {
			mo->act = ACT_SLOW;
			return;
		}
		nl.oa = l.oa ^ S2_PAGE_SIZE; /* any other address: the attributes it gets */
		np = m->fmt->mk_leaf(3, &nl);
		mo->act = (np & mask) == nl.oa ? ACT_SET : ACT_SLOW;
		mo->new_attrs = np & ~mask;
		mo->inv = ro && same ? S2_INV_DEFERRABLE : S2_INV_REQUIRED;
		break;
	}
	}
}

/* A stretch of equal changes not yet recorded in the batch. */
struct upd_run {
	gpa_t s, e;
	uint8_t inv;
};

static void run_flush(struct upd_args *a, struct upd_run *r)
{
	static const uint8_t ops[] = { [UPD_UNMAP] = S2_OP_UNMAP, [UPD_PROTECT] = S2_OP_PROTECT,
				       [UPD_REMAP] = S2_OP_REMAP };

	if (r->e > r->s)
		batch_add(a->b, (enum s2_op)ops[a->op], r->s, r->e - r->s, 3,
			  (enum s2_inv)r->inv, false);
	r->s = r->e = 0;
}

/*
 * Apply @a to [s, e) inside the level-3 table @t in one pass over its entries: the
 * same entries, the same batch records (one per maximal stretch of equal changes, as
 * per-entry records merge into) and the same backend calls as upd_level() would make
 * entry by entry. Needs m->fast3. A dry run only looks for holes (s2_remap()).
 */
static void upd_table3(struct s2_map *m, uint64_t *t, gpa_t s, gpa_t e, struct upd_args *a)
{
	const uint64_t mask = m->oa_mask3;
	unsigned i = slot_idx(s, 3);
	struct attr_memo mo = { .valid = false };
	struct upd_run run = { 0 };

	if (a->dry) {
		if (a->op != UPD_REMAP)
			return; /* leaves need no table pages and no checks */
		for (gpa_t slot = s; slot < e; slot += S2_PAGE_SIZE, i++) {
			uint64_t pte = pte_get(&t[i]);

			if (!pte || m->fmt->kind(pte, 3) != S2_PTE_LEAF) {
				a->err = -ENOENT;
				return;
			}
		}
		return;
	}
	for (gpa_t slot = s; slot < e; slot += S2_PAGE_SIZE, i++) {
		uint64_t *p = &t[i], pte = pte_get(p), np;

		if (!pte) { /* nothing mapped: nothing to change or record */
			run_flush(a, &run);
			continue;
		}
		if (!mo.valid || (pte & ~mask) != mo.attrs)
			memo_fill(m, a, pte, &mo);
		if (mo.act == ACT_SLOW) {
			struct s2_leaf l;

			run_flush(a, &run);
			m->fmt->leaf(pte, 3, &l);
			apply_leaf(m, p, slot, 3, &l, a);
			continue;
		}
		if (mo.act == ACT_NONE) {
			run_flush(a, &run);
			continue;
		}
		if (a->op == UPD_UNMAP) {
			np = 0;
		} else if (a->op == UPD_PROTECT) {
			np = (pte & mask) | mo.new_attrs;
		} else {
			hpa_t oa = a->pa0 + (slot - a->s0);

			if (oa == (pte & mask)) { /* already there */
				run_flush(a, &run);
				continue;
			}
			np = oa | mo.new_attrs;
		}
		pte_set(m, p, slot, 3, np);
		if (run.e != slot || run.inv != mo.inv) {
			run_flush(a, &run);
			run.s = slot;
			run.inv = mo.inv;
		}
		run.e = slot + S2_PAGE_SIZE;
	}
	run_flush(a, &run);
}

/*
 * Apply @a to [s, e) under table @t at @level. In a dry run @t may be NULL: the table is
 * then the split of block @vparent (which maps @vbase), and its entries are derived.
 */
static void upd_level(struct s2_map *m, uint64_t *t, unsigned level, gpa_t s, gpa_t e,
		      const struct s2_leaf *vparent, gpa_t vbase, struct upd_args *a)
{
	uint64_t sz = s2_level_size(level);

	if (level == 3 && t && m->fast3 && !m->per_entry) {
		upd_table3(m, t, s, e, a);
		return;
	}

	for (gpa_t ss = s; ss < e;) {
		gpa_t slot = ss & ~(sz - 1), se = MIN(e, slot + sz);
		uint64_t *p = t ? &t[slot_idx(ss, level)] : NULL;
		uint64_t pte;
		struct s2_leaf l;
		bool full;

		if (p) {
			pte = pte_get(p);
		} else {
			l = *vparent;
			l.oa = vparent->oa + (slot - vbase);
			pte = m->fmt->mk_leaf(level, &l);
		}
		switch (m->fmt->kind(pte, level)) {
		case S2_PTE_INVALID:
			if (a->op == UPD_REMAP)
				a->err = -ENOENT;
			break;
		case S2_PTE_TABLE: {
			uint64_t *child = tbl(m, m->fmt->table_pa(pte));

			upd_level(m, child, level + 1, ss, se, NULL, 0, a);
			/* a whole slot unmapped leaves only zero entries below it */
			if (!a->dry && a->op == UPD_UNMAP &&
			    ((ss == slot && se == slot + sz) || table_empty(child))) {
				pte_set(m, p, slot, level, 0);
				batch_add(a->b, S2_OP_TABLE_FREE, slot, sz, level, S2_INV_REQUIRED,
					  false);
				a->b->free_tables[a->b->nfree++] = m->fmt->table_pa(pte);
			}
			break;
		}
		case S2_PTE_LEAF:
			m->fmt->leaf(pte, level, &l);
			full = ss == slot && se == slot + sz;
			if (a->op == UPD_REMAP && ((a->pa0 + (slot - a->s0)) & (sz - 1)))
				full = false; /* the new frames cannot hold this block */
			if (full) {
				if (!a->dry)
					apply_leaf(m, p, slot, level, &l, a);
			} else if (a->dry) {
				a->need++;
				upd_level(m, NULL, level + 1, ss, se, &l, slot, a);
			} else {
				uint64_t *child = split_leaf(m, p, slot, level, &l, a->b);

				upd_level(m, child, level + 1, ss, se, NULL, 0, a);
			}
			break;
		}
		ss = se;
	}
}

static int update(struct s2_map *m, gpa_t gpa, uint64_t size, struct upd_args *a)
{
	uint64_t *root = tbl(m, m->root);
	int r;

	if (check_range(m, gpa, size))
		return -EINVAL;
	a->dry = true;
	upd_level(m, root, m->start_level, gpa, gpa + size, NULL, 0, a);
	if (a->err)
		return a->err;
	r = tables_reserve(m, a->need);
	if (r)
		return r;
	r = batch_prepare(m, a->b);
	if (r)
		return r;
	a->dry = false;
	upd_level(m, root, m->start_level, gpa, gpa + size, NULL, 0, a); /* no turning back */
	return 0;
}

int s2_unmap(struct s2_map *m, gpa_t gpa, uint64_t size, struct s2_batch *b)
{
	struct upd_args a = { .op = UPD_UNMAP, .b = b };

	return update(m, gpa, size, &a);
}

int s2_protect(struct s2_map *m, gpa_t gpa, uint64_t size, unsigned perm, struct s2_batch *b)
{
	struct upd_args a = { .op = UPD_PROTECT, .perm = perm, .b = b };

	if (check_perm(perm))
		return -EINVAL;
	return update(m, gpa, size, &a);
}

int s2_remap(struct s2_map *m, gpa_t gpa, uint64_t size, hpa_t new_pa, unsigned flags,
	     struct s2_batch *b)
{
	struct upd_args a = { .op = UPD_REMAP, .s0 = gpa, .pa0 = new_pa, .flags = flags, .b = b };
	int r;

	if ((new_pa & (S2_PAGE_SIZE - 1)) || new_pa + size < new_pa ||
	    new_pa + size > S2_TABLE_BASE)
		return -EINVAL;
	r = update(m, gpa, size, &a);
	if (a.nmk) {
		/* break-before-make for the whole range: every changed leaf is invalid now;
		 * one invalidation, then the new entries */
		do_tlbi(m, a.mk_lo, a.mk_hi - a.mk_lo);
		for (size_t i = 0; i < a.nmk; i++) {
			pte_set(m, a.mk[i].p, a.mk[i].slot, a.mk[i].level, a.mk[i].pte);
			batch_add(b, S2_OP_REMAP, a.mk[i].slot, s2_level_size(a.mk[i].level),
				  a.mk[i].level, S2_INV_NONE, true);
		}
	}
	free(a.mk);
	return r;
}

/* ---- split, collapse, walk ---- */

/* The entry at @level covering @gpa, or NULL if the walk stops above that level. */
static uint64_t *entry_at(const struct s2_map *m, gpa_t gpa, unsigned level)
{
	uint64_t *t = tbl(m, m->root);

	for (unsigned l = m->start_level;; l++) {
		uint64_t *p = &t[slot_idx(gpa, l)];

		if (l == level)
			return p;
		if (m->fmt->kind(pte_get(p), l) != S2_PTE_TABLE)
			return NULL;
		t = tbl(m, m->fmt->table_pa(pte_get(p)));
	}
}

int s2_split(struct s2_map *m, gpa_t gpa, unsigned level, struct s2_batch *b)
{
	uint64_t *p;
	struct s2_leaf l;
	int r;

	if (level < m->start_level || level >= 3 || gpa >= (1ull << m->ipa_bits))
		return -EINVAL;
	p = entry_at(m, gpa, level);
	if (!p || m->fmt->kind(pte_get(p), level) != S2_PTE_LEAF)
		return -ENOENT;
	r = tables_reserve(m, 1);
	if (!r)
		r = batch_prepare(m, b);
	if (r)
		return r;
	m->fmt->leaf(pte_get(p), level, &l);
	split_leaf(m, p, gpa & ~(s2_level_size(level) - 1), level, &l, b);
	return 0;
}

int s2_collapse(struct s2_map *m, gpa_t gpa, unsigned level, struct s2_batch *b)
{
	uint64_t csz = s2_level_size(level + 1);
	gpa_t slot = gpa & ~(s2_level_size(level) - 1);
	struct s2_leaf first, l;
	uint64_t *p, *child;
	hpa_t old;
	int r;

	if (level < m->start_level || level >= 3 || !(m->fmt->block_levels & (1u << level)) ||
	    gpa >= (1ull << m->ipa_bits))
		return -EINVAL;
	p = entry_at(m, gpa, level);
	if (!p || m->fmt->kind(pte_get(p), level) != S2_PTE_TABLE)
		return -ENOENT;
	old = m->fmt->table_pa(pte_get(p));
	child = tbl(m, old);
	for (unsigned i = 0; i < S2_PTES_PER_TABLE; i++) {
		if (m->fmt->kind(pte_get(&child[i]), level + 1) != S2_PTE_LEAF)
			return -EBUSY;
		m->fmt->leaf(pte_get(&child[i]), level + 1, &l);
		if (i == 0) {
			first = l;
			if (first.oa & (s2_level_size(level) - 1))
				return -EBUSY;
		} else if (l.oa != first.oa + i * csz || l.perm != first.perm ||
			   l.memtype != first.memtype) {
			return -EBUSY;
		}
	}
	r = batch_prepare(m, b);
	if (r)
		return r;
	first.contig = false;
	if (level_change_needs_bbm(m)) {
		pte_break(m, p, slot, level);
		pte_set(m, p, slot, level, m->fmt->mk_leaf(level, &first));
		batch_add(b, S2_OP_COLLAPSE, slot, s2_level_size(level), level, S2_INV_NONE, true);
	} else {
		/* Translations are unchanged, but the old table may sit in walk caches:
		 * it is freed only after the invalidation. */
		pte_set(m, p, slot, level, m->fmt->mk_leaf(level, &first));
		batch_add(b, S2_OP_COLLAPSE, slot, s2_level_size(level), level, S2_INV_REQUIRED,
			  false);
	}
	b->free_tables[b->nfree++] = old;
	return 0;
}

int s2_walk(const struct s2_map *m, gpa_t gpa, struct s2_leaf *out, unsigned *level)
{
	const uint64_t *t = tbl(m, m->root);

	if (gpa >= (1ull << m->ipa_bits))
		return -ENOENT;
	for (unsigned l = m->start_level; l < S2_LEVELS; l++) {
		uint64_t pte = pte_get(&t[slot_idx(gpa, l)]);

		switch (m->fmt->kind(pte, l)) {
		case S2_PTE_LEAF:
			m->fmt->leaf(pte, l, out);
			if (level)
				*level = l;
			return 0;
		case S2_PTE_TABLE:
			t = tbl(m, m->fmt->table_pa(pte));
			break;
		default:
			return -ENOENT;
		}
	}
	return -ENOENT;
}

/*
 * The leaf holding @gpa and how far the leaves after it in the same table continue it
 * (contiguous output addresses, same permissions and memory type), up to @end. Returns
 * 0 with @out, *@oa (of @gpa), *@span and *@table_end (the run reached the table's last
 * entry), or -ENOENT.
 */
static int leaf_run(const struct s2_map *m, gpa_t gpa, gpa_t end, struct s2_leaf *out, hpa_t *oa,
		    uint64_t *span, bool *table_end)
{
	const uint64_t *t = tbl(m, m->root);
	uint64_t pte = 0, lsz, next;
	unsigned l, i;

	if (gpa >= (1ull << m->ipa_bits))
		return -ENOENT;
	for (l = m->start_level; l < S2_LEVELS; l++) {
		pte = pte_get(&t[slot_idx(gpa, l)]);
		if (m->fmt->kind(pte, l) == S2_PTE_LEAF)
			break;
		if (m->fmt->kind(pte, l) != S2_PTE_TABLE)
			return -ENOENT;
		t = tbl(m, m->fmt->table_pa(pte));
	}
	if (l == S2_LEVELS)
		return -ENOENT;
	m->fmt->leaf(pte, l, out);
	lsz = s2_level_size(l);
	*oa = out->oa + (gpa & (lsz - 1));
	*span = lsz - (gpa & (lsz - 1));
	next = out->oa + lsz;
	for (i = slot_idx(gpa, l) + 1; i < S2_PTES_PER_TABLE && gpa + *span < end; i++) {
		uint64_t q = pte_get(&t[i]);
		struct s2_leaf d;

		if (!(next & (s2_level_size(0) - 1)))
			break; /* runs never cross such an output address */
		if (!(l == 3 && m->fast3 && q == pte + lsz)) { /* the common case: same bits */
			if (m->fmt->kind(q, l) != S2_PTE_LEAF)
				break;
			m->fmt->leaf(q, l, &d);
			if (d.oa != next || d.perm != out->perm || d.memtype != out->memtype)
				break;
		}
		pte = q;
		*span += lsz;
		next += lsz;
	}
	*table_end = i == S2_PTES_PER_TABLE;
	return 0;
}

int s2_walk_span(const struct s2_map *m, gpa_t gpa, gpa_t end, struct s2_leaf *out, hpa_t *oa,
		 uint64_t *span)
{
	bool te;

	if (leaf_run(m, gpa, end, out, oa, span, &te)) {
		*span = MIN(S2_PAGE_SIZE, end - gpa);
		return -ENOENT;
	}
	/* the run may go on in the next table */
	while (te && gpa + *span < end) {
		struct s2_leaf n;
		hpa_t noa;
		uint64_t nspan;

		if (!((*oa + *span) & (s2_level_size(0) - 1)) ||
		    leaf_run(m, gpa + *span, end, &n, &noa, &nspan, &te) || noa != *oa + *span ||
		    n.perm != out->perm || n.memtype != out->memtype)
			break;
		*span += nspan;
	}
	*span = MIN(*span, end - gpa);
	return 0;
}

/* ---- commit ---- */

size_t s2_batch_commit(struct s2_map *m, struct s2_batch *b)
{
	return s2_batch_commit_flags(m, b, 0);
}

size_t s2_flush_deferred(struct s2_map *m)
{
	if (!m->flush_pending)
		return 0;
	do_tlbi(m, 0, 1ull << m->ipa_bits);
	m->flush_pending = false;
	m->stats.deferred_flushes++;
	return 1;
}

size_t s2_batch_commit_flags(struct s2_map *m, struct s2_batch *b, unsigned flags)
{
	size_t issued = 0;
	gpa_t cs = 0, ce = 0;
	bool open = false;
	bool defer = (flags & S2_COMMIT_DEFER) && !b->nfree;

	if (b->overflow) {
		do_tlbi(m, 0, 1ull << m->ipa_bits);
		issued++;
	} else {
		for (size_t i = 0; i < b->n; i++) {
			const struct s2_change *c = &b->v[i];

			if (c->inv == S2_INV_NONE)
				continue;
			if (c->inv == S2_INV_DEFERRABLE && defer) {
				m->flush_pending = true;
				m->stats.deferred++;
				continue;
			}
			if (open && c->gpa == ce) {
				ce += c->size;
				continue;
			}
			if (open) {
				do_tlbi(m, cs, ce - cs);
				issued++;
			}
			cs = c->gpa;
			ce = c->gpa + c->size;
			open = true;
		}
		if (open) {
			do_tlbi(m, cs, ce - cs);
			issued++;
		}
	}
	if (m->be && m->be->commit && m->be->commit(m->be_ctx, b))
		m->stats.commit_errors++;
	for (size_t i = 0; i < b->nfree; i++)
		table_put(m, b->free_tables[i]);
	m->stats.commits++;
	b->n = 0;
	b->nfree = 0;
	b->overflow = false;
	return issued;
}

/* ---- the safe remap sequence ---- */

int s2_remap_safe(struct s2_map *m, gpa_t gpa, uint64_t size, hpa_t new_pa, unsigned perm,
		  s2_copy_fn copy, void *ctx)
{
	struct s2_batch b;
	uint64_t off;
	int r;

	if (check_range(m, gpa, size) || check_perm(perm))
		return -EINVAL;
	for (off = 0; off < size;) { /* the range must be fully mapped */
		struct s2_leaf l;
		hpa_t oa;
		uint64_t n;

		if (s2_walk_span(m, gpa + off, gpa + size, &l, &oa, &n))
			return -ENOENT;
		off += n;
	}
	s2_batch_init(&b);
	/* 1. read-only at the same address, invalidate */
	r = s2_protect(m, gpa, size, perm & ~(unsigned)S2_PERM_W, &b);
	if (r)
		goto out;
	s2_batch_commit(m, &b);
	/* 2. copy, leaf by leaf, from the old frames */
	for (off = 0; off < size;) {
		struct s2_leaf l;
		hpa_t oa;
		uint64_t n;

		r = s2_walk_span(m, gpa + off, gpa + size, &l, &oa, &n);
		if (r)
			goto out_restore;
		r = copy(ctx, oa, new_pa + off, n);
		if (r)
			goto out_restore;
		off += n;
	}
	/* 3. change the address while read-only (contents identical), invalidate */
	r = s2_remap(m, gpa, size, new_pa, S2_REMAP_SAME_CONTENTS, &b);
	if (r)
		goto out_restore;
	s2_batch_commit(m, &b);
	/* 4. writable again, invalidate */
	r = s2_protect(m, gpa, size, perm, &b);
	s2_batch_commit(m, &b);
	goto out;
out_restore:
	/* still at the old frames with the old data: give the permissions back */
	if (s2_protect(m, gpa, size, perm, &b) == 0)
		s2_batch_commit(m, &b);
out:
	s2_batch_free(&b);
	return r;
}
