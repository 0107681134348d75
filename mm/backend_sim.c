// SPDX-License-Identifier: MIT
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm/backend_sim.h"

static const char *const rule_names[SIM_NR_RULES] = {
	[SIM_STALE_WRITABLE] = "stale writable translation after committed change",
	[SIM_UAF] = "access to a freed frame",
	[SIM_OA_NO_BBM] = "output address changed without break-before-make",
	[SIM_PERM_AND_OA] = "permission and output address changed in one write",
	[SIM_TLB_CONFLICT] = "block and table translations live at once",
};

const char *s2_sim_rule_name(enum sim_rule r)
{
	return r < SIM_NR_RULES ? rule_names[r] : "?";
}

static void violation(struct s2_sim *s, enum sim_rule r, gpa_t gpa, const char *detail)
{
	s->violations[r]++;
	snprintf(s->last, sizeof(s->last), "%s at GPA %#" PRIx64 ": %s", rule_names[r], gpa,
		 detail);
}

uint64_t s2_sim_violations(const struct s2_sim *s)
{
	uint64_t n = 0;

	for (int i = 0; i < SIM_NR_RULES; i++)
		n += s->violations[i];
	return n;
}

int s2_sim_init(struct s2_sim *s, unsigned nr_agents, uint64_t nr_frames, unsigned bbm_level)
{
	memset(s, 0, sizeof(*s));
	s->nr_agents = nr_agents;
	s->nr_frames = nr_frames;
	s->bbm_level = bbm_level;
	s->agents = calloc(nr_agents, sizeof(*s->agents));
	s->freed = calloc(nr_frames ? nr_frames : 1, 1);
	s->token = calloc(nr_frames ? nr_frames : 1, sizeof(*s->token));
	if (!s->agents || !s->freed || !s->token) {
		s2_sim_destroy(s);
		return -ENOMEM;
	}
	return 0;
}

void s2_sim_destroy(struct s2_sim *s)
{
	free(s->agents);
	free(s->freed);
	free(s->token);
	s->agents = NULL;
	s->freed = NULL;
	s->token = NULL;
}

void s2_sim_attach(struct s2_sim *s, struct s2_map *m)
{
	s->map = m;
	s->arm_rules = m->fmt->needs_bbm;
}

static uint64_t fidx(const struct s2_sim *s, hpa_t pa)
{
	return s->frame_index ? s->frame_index(s->frame_ctx, pa) : pa >> S2_PAGE_SHIFT;
}

static bool frame_known(const struct s2_sim *s, hpa_t pa)
{
	return fidx(s, pa) < s->nr_frames;
}

void s2_sim_frame_alloc(struct s2_sim *s, hpa_t pa, uint64_t size)
{
	for (uint64_t o = 0; o < size; o += S2_PAGE_SIZE) {
		if (!frame_known(s, pa + o))
			continue;
		s->freed[fidx(s, pa + o)] = 0;
		s->token[fidx(s, pa + o)] = ++s->next_token;
	}
}

void s2_sim_frame_free(struct s2_sim *s, hpa_t pa, uint64_t size)
{
	for (uint64_t o = 0; o < size; o += S2_PAGE_SIZE)
		if (frame_known(s, pa + o))
			s->freed[fidx(s, pa + o)] = 1;
}

void s2_sim_frame_copy(struct s2_sim *s, hpa_t dst, hpa_t src, uint64_t size)
{
	for (uint64_t o = 0; o < size; o += S2_PAGE_SIZE)
		if (frame_known(s, dst + o) && frame_known(s, src + o))
			s->token[fidx(s, dst + o)] = s->token[fidx(s, src + o)];
}

int s2_sim_copy(void *ctx, hpa_t from, hpa_t to, uint64_t len)
{
	s2_sim_frame_copy(ctx, to, from, len);
	return 0;
}

static bool same_contents(const struct s2_sim *s, hpa_t a, hpa_t b, uint64_t size)
{
	for (uint64_t o = 0; o < size; o += S2_PAGE_SIZE) {
		if (!frame_known(s, a + o) || !frame_known(s, b + o))
			return false;
		if (s->token[fidx(s, a + o)] != s->token[fidx(s, b + o)])
			return false;
	}
	return true;
}

/* Walk the stage-1-like table: level-3 pages only. */
static int s1_walk(const struct sim_s1 *t, uint64_t va, struct s2_leaf *l, unsigned *lvl)
{
	uint64_t p = va >> S2_PAGE_SHIFT, pte;

	if (p >= t->npages)
		return -ENOENT;
	pte = __atomic_load_n(&t->pte[p], __ATOMIC_ACQUIRE);
	if (s2_format_arm64.kind(pte, 3) != S2_PTE_LEAF)
		return -ENOENT;
	s2_format_arm64.leaf(pte, 3, l);
	*lvl = 3;
	return 0;
}

static bool overlaps(const struct sim_tlbe *e, gpa_t gpa, uint64_t size)
{
	return e->valid && e->base < gpa + size && gpa < e->base + e->size;
}

static void touch_frame(struct s2_sim *s, gpa_t gpa, hpa_t pa, bool write)
{
	if (!frame_known(s, pa))
		return;
	if (s->freed[fidx(s, pa)])
		violation(s, SIM_UAF, gpa, "the frame was freed");
	else if (write)
		s->token[fidx(s, pa)] = ++s->next_token;
}

int s2_sim_access(struct s2_sim *s, unsigned agent, gpa_t gpa, bool write)
{
	struct sim_agent *a = &s->agents[agent];
	struct sim_tlbe *e;
	struct s2_leaf l;
	unsigned lvl;

	s->accesses++;
	for (unsigned i = 0; i < SIM_TLB_ENTRIES; i++) {
		e = &a->e[i];
		if (!overlaps(e, gpa, 1))
			continue;
		if (write && !(e->perm & S2_PERM_W)) {
			e->valid = false; /* permission fault: the entry is dropped, re-walk */
			break;
		}
		touch_frame(s, gpa, e->oa + (gpa - e->base), write);
		return 0;
	}
	if (s->s1 ? s1_walk(s->s1, gpa, &l, &lvl) : s2_walk(s->map, gpa, &l, &lvl)) {
		s->faults++;
		return -EFAULT;
	}
	if (write && !(l.perm & S2_PERM_W)) {
		s->faults++;
		return -EACCES;
	}
	e = &a->e[a->next];
	a->next = (a->next + 1) % SIM_TLB_ENTRIES;
	e->size = s2_level_size(lvl);
	e->base = gpa & ~(e->size - 1);
	e->oa = l.oa;
	e->perm = l.perm;
	e->valid = true;
	touch_frame(s, gpa, l.oa + (gpa - e->base), write);
	return 0;
}

static void sim_tlbi(void *ctx, gpa_t gpa, uint64_t size)
{
	struct s2_sim *s = ctx;

	s->tlbi_calls++;
	for (unsigned i = 0; i < s->nr_agents; i++)
		for (unsigned j = 0; j < SIM_TLB_ENTRIES && !s->agents[i].device; j++)
			if (overlaps(&s->agents[i].e[j], gpa, size)) {
				s->agents[i].e[j].valid = false;
				s->tlbi_entries++;
			}
}

void s2_sim_agent_set_device(struct s2_sim *s, unsigned agent, bool device)
{
	s->agents[agent].device = device;
}

void s2_sim_agent_flush(struct s2_sim *s, unsigned agent)
{
	for (unsigned j = 0; j < SIM_TLB_ENTRIES; j++)
		s->agents[agent].e[j].valid = false;
}

static bool any_cached(const struct s2_sim *s, gpa_t gpa, uint64_t size)
{
	for (unsigned i = 0; i < s->nr_agents; i++)
		for (unsigned j = 0; j < SIM_TLB_ENTRIES; j++)
			if (overlaps(&s->agents[i].e[j], gpa, size))
				return true;
	return false;
}

/* The arm64 rules for one entry write at @level of a table in format @f. */
static void check_write(struct s2_sim *s, const struct s2_format *f, gpa_t gpa, unsigned level,
			uint64_t old, uint64_t new_pte)
{
	enum s2_pte_kind ko = f->kind(old, level), kn = f->kind(new_pte, level);
	uint64_t size = s2_level_size(level);

	if (ko == S2_PTE_INVALID || kn == S2_PTE_INVALID)
		return;
	if (ko == S2_PTE_LEAF && kn == S2_PTE_LEAF) {
		struct s2_leaf lo, ln;

		f->leaf(old, level, &lo);
		f->leaf(new_pte, level, &ln);
		if (lo.oa == ln.oa)
			return;
		if (lo.perm != ln.perm)
			violation(s, SIM_PERM_AND_OA, gpa, "one write changed both");
		if ((lo.perm & S2_PERM_W) || (ln.perm & S2_PERM_W) ||
		    !same_contents(s, lo.oa, ln.oa, size))
			violation(s, SIM_OA_NO_BBM, gpa,
				  (lo.perm | ln.perm) & S2_PERM_W ? "a writable entry"
								  : "contents differ");
		return;
	}
	if (ko != kn && s->bbm_level < 2 && any_cached(s, gpa, size))
		violation(s, SIM_TLB_CONFLICT, gpa,
			  ko == S2_PTE_LEAF ? "block replaced by a table while cached"
					    : "table replaced by a block while cached");
}

static void sim_pte_write(void *ctx, gpa_t gpa, unsigned level, uint64_t old, uint64_t new_pte)
{
	struct s2_sim *s = ctx;

	if (!s->map || !s->arm_rules) /* before s2_sim_attach() nothing can be cached */
		return;
	check_write(s, s->map->fmt, gpa, level, old, new_pte);
}

/* The batch claims its changes done: nothing writable that the map no longer allows may
 * remain cached. */
static int sim_commit(void *ctx, const struct s2_batch *b)
{
	struct s2_sim *s = ctx;

	if (!s->map)
		return 0;
	for (size_t c = 0; c < b->n; c++) {
		const struct s2_change *ch = &b->v[c];

		if (ch->inv == S2_INV_NONE)
			continue;
		for (unsigned i = 0; i < s->nr_agents; i++) {
			/* devices write only through pinned frames, which no batch changes */
			for (unsigned j = 0; j < SIM_TLB_ENTRIES && !s->agents[i].device; j++) {
				const struct sim_tlbe *e = &s->agents[i].e[j];
				struct s2_leaf l;
				unsigned lvl;

				if (!overlaps(e, ch->gpa, ch->size) || !(e->perm & S2_PERM_W))
					continue;
				if (s2_walk(s->map, e->base, &l, &lvl) || !(l.perm & S2_PERM_W) ||
				    l.oa + (e->base - (e->base & ~(s2_level_size(lvl) - 1))) !=
					    e->oa)
					violation(s, SIM_STALE_WRITABLE, e->base,
						  "still cached after commit");
			}
		}
	}
	return 0;
}

const struct s2_backend_ops s2_sim_ops = {
	.pte_write = sim_pte_write,
	.tlbi = sim_tlbi,
	.commit = sim_commit,
};

/* ---- the stage-1-like table of a frame table ---- */

static uint64_t s1_pte(hpa_t oa, unsigned perm)
{
	struct s2_leaf l = { .oa = oa, .perm = (uint8_t)perm, .memtype = S2_MT_NORMAL,
			     .accessed = true };

	return perm ? s2_format_arm64.mk_leaf(3, &l) : 0;
}

int sim_s1_init(struct sim_s1 *t, struct s2_sim *sim, uint64_t npages, unsigned readers)
{
	memset(t, 0, sizeof(*t));
	t->pte = calloc(npages ? npages : 1, sizeof(*t->pte));
	if (!t->pte)
		return -ENOMEM;
	t->sim = sim;
	t->npages = npages;
	t->readers = readers < sim->nr_agents ? readers : sim->nr_agents - 1;
	sim->s1 = t;
	sim->arm_rules = true;
	/* the shared page holds the zeros every record starts as; private pages are free */
	s2_sim_frame_alloc(sim, SIM_S1_SHARED_PA, S2_PAGE_SIZE);
	s2_sim_frame_free(sim, S2_PAGE_SIZE, npages * S2_PAGE_SIZE);
	for (uint64_t p = 0; p < npages; p++)
		t->pte[p] = s1_pte(SIM_S1_SHARED_PA, S2_PERM_R);
	return 0;
}

void sim_s1_destroy(struct sim_s1 *t)
{
	if (t->sim && t->sim->s1 == t)
		t->sim->s1 = NULL;
	free(t->pte);
	t->pte = NULL;
}

void sim_s1_write(struct sim_s1 *t, uint64_t page, hpa_t oa, unsigned perm)
{
	uint64_t nw = s1_pte(oa, perm);

	if (page >= t->npages)
		return;
	t->writes++;
	check_write(t->sim, &s2_format_arm64, page << S2_PAGE_SHIFT, 3, t->pte[page], nw);
	__atomic_store_n(&t->pte[page], nw, __ATOMIC_RELEASE);
}

void sim_s1_tlbi(struct sim_s1 *t, uint64_t page, uint64_t n)
{
	sim_tlbi(t->sim, page << S2_PAGE_SHIFT, n << S2_PAGE_SHIFT);
}

int sim_s1_access(struct sim_s1 *t, unsigned agent, uint64_t page, bool write)
{
	return s2_sim_access(t->sim, agent, page << S2_PAGE_SHIFT, write);
}

static unsigned s1_perm(const struct sim_s1 *t, uint64_t page)
{
	struct s2_leaf l;
	unsigned lvl;

	return s1_walk(t, page << S2_PAGE_SHIFT, &l, &lvl) ? 0 : l.perm;
}

static hpa_t s1_oa(const struct sim_s1 *t, uint64_t page)
{
	struct s2_leaf l;
	unsigned lvl;

	return s1_walk(t, page << S2_PAGE_SHIFT, &l, &lvl) ? ~0ull : l.oa;
}

void sim_s1_frame_step(void *ctx, struct frame_table *ft, const struct frame_step *st)
{
	struct sim_s1 *t = ctx;
	struct s2_sim *s = t->sim;
	uint64_t p0 = st->chunk * 2;
	hpa_t priv = sim_s1_priv_pa(st->chunk, 0);

	(void)ft;
	t->steps++;
	switch (st->kind) {
	case FRAME_STEP_ALLOC:
		s2_sim_frame_alloc(s, priv, 2 * S2_PAGE_SIZE);
		break;
	case FRAME_STEP_COPY:
		for (unsigned k = 0; k < 2; k++)
			if (s1_oa(t, p0 + k) != ~0ull)
				s2_sim_frame_copy(s, priv + k * S2_PAGE_SIZE, s1_oa(t, p0 + k),
						  S2_PAGE_SIZE);
		break;
	case FRAME_STEP_MAP: /* one mmap: each entry rewritten, then invalidated */
		for (unsigned k = 0; k < 2; k++)
			sim_s1_write(t, p0 + k,
				     st->shared ? SIM_S1_SHARED_PA : priv + k * S2_PAGE_SIZE,
				     st->writable ? S2_PERM_RW : S2_PERM_R);
		sim_s1_tlbi(t, p0, 2);
		break;
	case FRAME_STEP_PROTECT: /* one mprotect: same addresses */
		for (unsigned k = 0; k < 2; k++)
			sim_s1_write(t, p0 + k, s1_oa(t, p0 + k),
				     st->writable ? S2_PERM_RW : S2_PERM_R);
		sim_s1_tlbi(t, p0, 2);
		break;
	case FRAME_STEP_WRITE:
	case FRAME_STEP_ZERO: /* the writer (agent 0) stores through its translation */
		for (unsigned k = 0; k < 2; k++)
			if (sim_s1_access(t, 0, p0 + k, true))
				t->write_faults++;
		if (st->kind == FRAME_STEP_ZERO)
			for (unsigned k = 0; k < 2; k++)
				if (s1_oa(t, p0 + k) != SIM_S1_SHARED_PA &&
				    (s1_perm(t, p0 + k) & S2_PERM_W))
					s2_sim_frame_copy(s, s1_oa(t, p0 + k), SIM_S1_SHARED_PA,
							  S2_PAGE_SIZE);
		break;
	case FRAME_STEP_FREE:
		s2_sim_frame_free(s, priv, 2 * S2_PAGE_SIZE);
		break;
	}
	/* concurrent readers: each walks the chunk's records now */
	for (unsigned a = 1; a <= t->readers; a++)
		for (unsigned k = 0; k < 2; k++)
			(void)sim_s1_access(t, a, p0 + k, false);
}
