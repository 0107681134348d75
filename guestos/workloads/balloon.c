// SPDX-License-Identifier: MIT
/*
 * balloon.elf [modes=LIST] [rounds=N] [size=SIZE] [slack=SIZE] [give=inflate|report|both]
 *             [report=on|off|auto] [follow=N] [seconds=N] [seed=N]
 *
 * Gives guest memory back through virtio-balloon (docs/DEVICES.md) and checks what came
 * of it. A working region (the heap after the driver's memory, 2 MiB aligned, the first
 * SIZE bytes of it, default all) is touched first: every page gets a pattern derived from
 * its GPA and a generation. The balloon is first inflated to the device's target
 * (num_pages). Then, for each round and each mode of LIST (comma separated, default
 * 4k,2m,node):
 *	4k	a quarter of the pages we own, scattered, are freed and inflated; all are
 *		deflated again but those in every fourth 2 MiB block below the node span
 *	2m	a quarter of the 2 MiB blocks we own wholly are freed; with reporting, half
 *		of them are reported (2 MiB / 4 MiB ranges, as Linux's page reporting
 *		sends them), the rest inflated; 3 of 4 inflated blocks are deflated again
 *	node	most of the last guest node (7 of every 8 of its 2 MiB blocks; the upper
 *		half of the region when the VM has one node): reported on even rounds,
 *		inflated on odd ones (with reporting; inflated always without), then all
 *		taken back
 * Around each give the host's pool residency is read (S2_HC_MEM_INFO): it must drop by
 * about what was given: after <= before - given * 9/10 + slack (default 8M: a
 * concurrent --churn's migrations allocate before they free). Nothing else is written
 * between the two readings (the driver's arrays are touched at start). Then every page
 * we still own is checked; reported pages (the chain is back) and part of the inflated
 * ones (deflated) are taken back: they must read as zero, and are reused (patterned
 * again). At the end every page beyond the target is deflated, checked and reused, and
 * the whole region is checked once more.
 *	follow	(also in LIST) follow the target: whenever num_pages changes, inflate or
 *		deflate toward it (checked as above) and write "actual" (pages held);
 *		until FOLLOW changes of the target were followed (the VMM's
 *		--balloon schedule= moves it on SIGUSR2), or fail after SECONDS (default 30).
 *		Without follow=, follows for SECONDS and counts the changes.
 * give= restricts how freed memory goes back (default both: report where the mode does
 * and REPORTING was negotiated). report=on asks for REPORTING and fails without it;
 * off does not ask; auto (default) asks and uses it when offered. The stats buffer is
 * served (vballoon_poll) between steps and while following.
 *
 * Prints a line per step ending in PASS or FAIL, then "balloon: PASS" or "balloon: FAIL";
 * reports balloon_mismatches (owned pages whose data changed), balloon_zero_mismatches
 * (pages taken back that did not read as zero), balloon_returned_bytes (given),
 * balloon_resident_drop_bytes (sum of the measured drops), balloon_resident_failures
 * (steps whose drop was short), balloon_inflated_pages, balloon_deflated_pages,
 * balloon_reported_pages, balloon_target_changes, balloon_stats_returns. Exit 0 on PASS,
 * 1 on FAIL, 2 on bad arguments, no balloon device or too little memory.
 */
#include "balloon.h"
#include "guest.h"

#define PAGE 4096ull
#define BLOCK (2ull << 20)
#define PPB (BLOCK / PAGE) /* pages per 2 MiB block */
#define MAX_PRINT 8

enum pstate {
	P_OWNED, /* holds pat(gpa, gen) */
	P_FREE, /* freed, about to be given */
	P_BALLOON, /* inflated for a step */
	P_TARGET, /* inflated for the device's target */
	P_ZERO, /* taken back, must read zero, untouched since */
};

enum mode { M_4K = 1, M_2M = 2, M_NODE = 4, M_FOLLOW = 8 };

struct ctx {
	struct vballoon b;
	struct vheap heap;
	uint64_t base, npages; /* region [base, base + npages * PAGE) */
	uint8_t *state, *gen; /* [npages] */
	uint32_t *give, *take; /* [npages] PFN lists */
	struct vballoon_range *rg; /* [npages / PPB + 1] */
	uint64_t node_lo, node_hi; /* page indexes of "node" mode's span */
	unsigned modes, rounds;
	bool use_report, give_inflate, give_report;
	uint64_t slack, follow, seconds, rng;
	uint64_t t_give; /* clock at the start of the current give */
	uint64_t followed; /* the last target follow_to() went for */
	uint64_t target_held; /* pages in P_TARGET (less than followed if we ran short) */
	uint64_t step_held; /* pages in P_BALLOON */
	/* results */
	uint64_t mismatches, zero_mismatches, returned, drop, res_fail, changes, errors;
};

static struct ctx g_ctx;

static uint64_t rnd(struct ctx *c)
{
	c->rng ^= c->rng << 13;
	c->rng ^= c->rng >> 7;
	c->rng ^= c->rng << 17;
	return c->rng;
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

static uint64_t *page_ptr(struct ctx *c, uint64_t i)
{
	return (uint64_t *)(uintptr_t)(c->base + i * PAGE);
}

static uint32_t pfn_of(struct ctx *c, uint64_t i)
{
	return (uint32_t)((c->base + i * PAGE) / PAGE);
}

/* Write page @i's next pattern; it is ours again. */
static void page_fill(struct ctx *c, uint64_t i)
{
	uint64_t *w = page_ptr(c, i);
	uint64_t x;

	c->gen[i]++;
	x = mix(((uint64_t)(uintptr_t)w) ^ ((uint64_t)c->gen[i] << 52) ^ 0xba11);
	for (unsigned k = 0; k < PAGE / 8; k++)
		w[k] = x + k * 0x9e3779b97f4a7c15ull;
	c->state[i] = P_OWNED;
}

static void page_check(struct ctx *c, uint64_t i, const char *when)
{
	const uint64_t *w = page_ptr(c, i);
	uint64_t x = mix(((uint64_t)(uintptr_t)w) ^ ((uint64_t)c->gen[i] << 52) ^ 0xba11);

	for (unsigned k = 0; k < PAGE / 8; k++) {
		if (w[k] == x + k * 0x9e3779b97f4a7c15ull)
			continue;
		if (c->mismatches++ < MAX_PRINT)
			g_printf("balloon: %s: page at GPA %#lx (ours) word %u holds %#lx, wrote %#lx\n",
				 when, (unsigned long)(uintptr_t)w, k, (unsigned long)w[k],
				 (unsigned long)(x + k * 0x9e3779b97f4a7c15ull));
		return;
	}
}

/* Page @i came back: it must read zero. Then reuse it. */
static void page_zero_check(struct ctx *c, uint64_t i, const char *when)
{
	const uint64_t *w = page_ptr(c, i);

	for (unsigned k = 0; k < PAGE / 8; k++) {
		if (!w[k])
			continue;
		if (c->zero_mismatches++ < MAX_PRINT)
			g_printf("balloon: %s: page at GPA %#lx taken back reads %#lx at word %u, not zero\n",
				 when, (unsigned long)(uintptr_t)w, (unsigned long)w[k], k);
		break;
	}
	page_fill(c, i);
}

/* Check every page we own, then every page taken back (zero) and reuse it. */
static void check_all(struct ctx *c, const char *when)
{
	for (uint64_t i = 0; i < c->npages; i++) {
		if (c->state[i] == P_OWNED)
			page_check(c, i, when);
		else if (c->state[i] == P_ZERO)
			page_zero_check(c, i, when);
	}
}

static void stats_update(struct ctx *c)
{
	uint64_t owned = 0;

	for (uint64_t i = 0; i < c->npages; i++)
		owned += c->state[i] == P_OWNED;
	c->b.stat_val[VIRTIO_BALLOON_S_MEMFREE] = (c->npages - owned) * PAGE;
	c->b.stat_val[VIRTIO_BALLOON_S_AVAIL] =
		(c->npages - c->target_held - c->step_held) * PAGE;
	c->b.stat_val[VIRTIO_BALLOON_S_MINFLT] = c->b.inflated + c->b.deflated;
	if (vballoon_poll(&c->b) < 0) {
		g_printf("balloon: the stats queue returned a buffer that is not ours\n");
		c->errors++;
	}
}

static int mem_info(struct ctx *c, struct s2_hc_mem_info *mi)
{
	int r = vballoon_mem_info(mi);

	if (r) {
		g_printf("balloon: S2_HC_MEM_INFO failed: %d\n", r);
		c->errors++;
	}
	return r;
}

/*
 * The host residency must have dropped by about @given bytes since @before:
 * after <= before - given * 9/10 + slack. @touched: bytes the guest first wrote in
 * between (0 where the step writes nothing new).
 */
static void resident_check(struct ctx *c, const struct s2_hc_mem_info *before,
			   uint64_t given, uint64_t touched, const char *what)
{
	struct s2_hc_mem_info after;
	uint64_t want = given / 10 * 9, limit;
	int64_t drop;
	bool ok;

	if (mem_info(c, &after))
		return;
	drop = (int64_t)(before->resident_bytes - after.resident_bytes);
	limit = before->resident_bytes + c->slack + touched;
	ok = after.resident_bytes + want <= limit;
	c->returned += given;
	if (drop > 0)
		c->drop += (uint64_t)drop;
	if (!ok)
		c->res_fail++;
	if (!ok) {
		/* diagnosis for the device side: does the drop come later, and when? */
		struct s2_hc_mem_info late = after;
		uint64_t t0 = g_clock_ns(), t;

		while ((t = g_clock_ns() - t0) < 2000000000ull &&
		       late.resident_bytes + want > limit) {
			for (int k = 0; k < 20000; k++)
				g_pause();
			if (vballoon_mem_info(&late))
				break;
		}
		g_printf("balloon: %s: short drop; %lu ms later resident is %lu KiB (%s)\n", what,
			 (unsigned long)(t / 1000000), (unsigned long)(late.resident_bytes >> 10),
			 late.resident_bytes + want <= limit ? "the drop came late" : "still short");
	}
	g_printf("balloon: %s: gave %lu KiB in %lu ms; host resident %lu -> %lu KiB (drop %ld KiB, want >= %lu KiB - %lu KiB slack): %s\n",
		 what, (unsigned long)(given >> 10),
		 (unsigned long)((g_clock_ns() - c->t_give) / 1000000), (unsigned long)(before->resident_bytes >> 10),
		 (unsigned long)(after.resident_bytes >> 10), (long)(drop / 1024),
		 (unsigned long)(want >> 10), (unsigned long)((c->slack + touched) >> 10),
		 ok ? "PASS" : "FAIL");
}

static int drv_err(struct ctx *c, const char *what, int r)
{
	g_printf("balloon: %s: driver error %d (Status %#x)\n", what, r, vio_status(&c->b.dev));
	c->errors++;
	return r;
}

/* Append 2 MiB blocks [blk, blk + n) (page index of the first, a block start) to the
 * report list as Linux would: 4 MiB ranges where 4 MiB aligned, else 2 MiB. */
static unsigned ranges_from_blocks(struct ctx *c, const uint64_t *blk, unsigned n)
{
	unsigned nr = 0;

	for (unsigned k = 0; k < n; k++) {
		uint64_t gpa = c->base + blk[k] * PAGE;

		if (nr && c->rg[nr - 1].len == BLOCK && c->rg[nr - 1].addr + BLOCK == gpa &&
		    !(c->rg[nr - 1].addr & (2 * BLOCK - 1))) {
			c->rg[nr - 1].len = 2 * BLOCK;
			continue;
		}
		c->rg[nr++] = (struct vballoon_range){ gpa, BLOCK };
	}
	return nr;
}

/*
 * Give the pages in c->give[0..ninf) (inflate) and the blocks in @blk[0..nrep)
 * (report), all P_FREE, with a residency check around. Inflated pages become
 * P_BALLOON (@as_target: P_TARGET), reported ones P_ZERO (the chain came back).
 */
static int give(struct ctx *c, uint64_t ninf, const uint64_t *blk, unsigned nrep,
		bool as_target, const char *what)
{
	struct s2_hc_mem_info before;
	unsigned nr = nrep ? ranges_from_blocks(c, blk, nrep) : 0;
	int r;

	if (!ninf && !nrep)
		return 0;
	if (mem_info(c, &before))
		return -1;
	c->t_give = g_clock_ns();
	if (ninf) {
		r = vballoon_inflate(&c->b, c->give, ninf);
		if (r)
			return drv_err(c, what, r);
	}
	if (nr) {
		r = vballoon_report(&c->b, c->rg, nr);
		if (r)
			return drv_err(c, what, r);
	}
	resident_check(c, &before, (ninf + nrep * PPB) * PAGE, 0, what);
	for (uint64_t k = 0; k < ninf; k++) {
		uint64_t i = c->give[k] - c->base / PAGE;

		c->state[i] = as_target ? P_TARGET : P_BALLOON;
	}
	if (as_target)
		c->target_held += ninf;
	else
		c->step_held += ninf;
	for (unsigned k = 0; k < nrep; k++)
		for (uint64_t i = blk[k]; i < blk[k] + PPB; i++)
			c->state[i] = P_ZERO;
	vballoon_set_actual(&c->b, (uint32_t)(c->target_held + c->step_held));
	return 0;
}

/* Deflate the pages of c->take[0..n) (P_BALLOON or P_TARGET): they become P_ZERO. */
static int take_back(struct ctx *c, uint64_t n, const char *what)
{
	int r;

	if (!n)
		return 0;
	r = vballoon_deflate(&c->b, c->take, n);
	if (r)
		return drv_err(c, what, r);
	for (uint64_t k = 0; k < n; k++) {
		uint64_t i = c->take[k] - c->base / PAGE;

		if (c->state[i] == P_TARGET)
			c->target_held--;
		else
			c->step_held--;
		c->state[i] = P_ZERO;
	}
	vballoon_set_actual(&c->b, (uint32_t)(c->target_held + c->step_held));
	return 0;
}

/* Inflate or deflate toward @target pages for the target (lowest owned pages first;
 * deflates the highest target pages first). */
static int follow_to(struct ctx *c, uint64_t target, const char *what)
{
	char msg[96];
	uint64_t n = 0;

	c->followed = target;
	if (target > c->target_held) {
		uint64_t want = target - c->target_held;

		for (uint64_t i = 0; i < c->npages && n < want; i++)
			if (c->state[i] == P_OWNED) {
				c->state[i] = P_FREE;
				c->give[n++] = pfn_of(c, i);
			}
		if (n < want)
			g_printf("balloon: %s: target %lu pages, only %lu more pages of ours to give\n",
				 what, (unsigned long)target, (unsigned long)n);
		g_snprintf(msg, sizeof(msg), "%s: inflate %lu pages toward target %lu", what,
			   (unsigned long)n, (unsigned long)target);
		return give(c, n, NULL, 0, true, msg);
	}
	for (uint64_t i = c->npages; i-- > 0 && c->target_held - n > target;)
		if (c->state[i] == P_TARGET)
			c->take[n++] = pfn_of(c, i);
	if (n)
		g_printf("balloon: %s: deflate %lu pages toward target %lu\n", what,
			 (unsigned long)n, (unsigned long)target);
	return take_back(c, n, what);
}

/*
 * Free a quarter of the pages we own, scattered, and inflate them; deflate them again
 * except those in every fourth 2 MiB block below the node span (so the other blocks
 * are whole again for the 2m and node steps).
 */
static int step_4k(struct ctx *c, unsigned round)
{
	char what[64];
	uint64_t n = 0, m = 0;

	g_snprintf(what, sizeof(what), "round %u 4k inflate", round);
	for (uint64_t i = 0; i < c->npages; i++)
		if (c->state[i] == P_OWNED && rnd(c) % 4 == 0) {
			c->state[i] = P_FREE;
			c->give[n++] = pfn_of(c, i);
		}
	if (give(c, n, NULL, 0, false, what))
		return -1;
	check_all(c, what);
	for (uint64_t k = 0; k < n; k++) {
		uint64_t i = c->give[k] - c->base / PAGE;

		if (i / PPB % 4 != 1 || i >= c->node_lo)
			c->take[m++] = c->give[k];
	}
	if (take_back(c, m, what))
		return -1;
	check_all(c, what);
	return 0;
}

/* Blocks [first, last) (page indexes, block aligned) wholly P_OWNED, chosen with
 * probability 1/@one_in (1: all), into @blk; their pages become P_FREE. */
static unsigned pick_blocks(struct ctx *c, uint64_t first, uint64_t last, unsigned one_in,
			    unsigned skip_every, uint64_t *blk)
{
	unsigned n = 0, seen = 0;

	for (uint64_t s = first; s + PPB <= last; s += PPB) {
		bool whole = true;

		for (uint64_t i = s; i < s + PPB && whole; i++)
			whole = c->state[i] == P_OWNED;
		if (!whole)
			continue;
		if (skip_every && ++seen % skip_every == 0)
			continue;
		if (one_in > 1 && rnd(c) % one_in)
			continue;
		for (uint64_t i = s; i < s + PPB; i++)
			c->state[i] = P_FREE;
		blk[n++] = s;
	}
	return n;
}

/* Give blocks @blk[0..n): report those marked in @rep (1 of 2 or all), inflate the rest.
 * Afterwards deflate the inflated ones, keeping 1 in @keep_one_in blocks (0: none). */
static int give_blocks(struct ctx *c, uint64_t *blk, unsigned n, unsigned rep_one_in,
		       unsigned keep_one_in, const char *what)
{
	unsigned nrep = 0, ninfb = 0;
	uint64_t ninf = 0, m = 0;

	/* reported blocks first in blk[], inflated ones after (order kept otherwise) */
	for (unsigned k = 0; k < n; k++) {
		bool rep = c->give_report && c->use_report && rep_one_in &&
			   (rep_one_in == 1 || k % rep_one_in == 0);

		if (!c->give_inflate)
			rep = c->use_report;
		if (rep) {
			uint64_t t = blk[k];

			blk[k] = blk[nrep];
			blk[nrep++] = t;
		}
	}
	/* keep the reported ones sorted so adjacent blocks merge into 4 MiB ranges */
	for (unsigned a = 1; a < nrep; a++)
		for (unsigned z = a; z > 0 && blk[z - 1] > blk[z]; z--) {
			uint64_t t = blk[z];

			blk[z] = blk[z - 1];
			blk[z - 1] = t;
		}
	for (unsigned k = nrep; k < n; k++, ninfb++)
		for (uint64_t i = blk[k]; i < blk[k] + PPB; i++)
			c->give[ninf++] = pfn_of(c, i);
	g_printf("balloon: %s: %u blocks of 2 MiB: %u reported, %u inflated\n", what, n, nrep,
		 ninfb);
	if (give(c, ninf, blk, nrep, false, what))
		return -1;
	check_all(c, what);
	for (unsigned k = nrep; k < n; k++) {
		if (keep_one_in && (k - nrep) % keep_one_in == keep_one_in - 1)
			continue;
		for (uint64_t i = blk[k]; i < blk[k] + PPB; i++)
			c->take[m++] = pfn_of(c, i);
	}
	if (take_back(c, m, what))
		return -1;
	check_all(c, what);
	return 0;
}

static int step_2m(struct ctx *c, unsigned round, uint64_t *blk)
{
	char what[64];
	unsigned n = pick_blocks(c, 0, c->npages, 4, 0, blk);

	g_snprintf(what, sizeof(what), "round %u 2m", round);
	return give_blocks(c, blk, n, 2, 4, what);
}

static int step_node(struct ctx *c, unsigned round, uint64_t *blk)
{
	char what[64];
	unsigned n = pick_blocks(c, c->node_lo, c->node_hi, 1, 8, blk);
	bool rep = round % 2 == 0;

	g_snprintf(what, sizeof(what), "round %u node %s", round,
		   rep && c->use_report && c->give_report ? "report" : "inflate");
	return give_blocks(c, blk, n, rep ? 1 : 0, 0, what);
}

/* Follow num_pages until c->follow changes were followed (or seconds pass). */
static int follow_loop(struct ctx *c)
{
	uint64_t t_end = g_clock_ns() + c->seconds * 1000000000ull;
	uint64_t next = 0, verify = 0, last = c->followed;
	char what[64];

	g_printf("balloon: follow: target %lu pages, holding %lu; waiting for %lu change(s), at most %lu s\n",
		 (unsigned long)last, (unsigned long)c->target_held, (unsigned long)c->follow,
		 (unsigned long)c->seconds);
	for (;;) {
		uint64_t now = g_rdtsc(), t;

		/* between target reads: check (and rewrite) a slice of the pages we own */
		for (unsigned k = 0; k < 64; k++, verify = (verify + 1) % c->npages)
			if (c->state[verify] == P_OWNED) {
				page_check(c, verify, "follow");
				page_fill(c, verify);
			}
		if ((int64_t)(now - next) < 0)
			continue;
		next = now + 2 * c->b.tsc_per_ms;
		stats_update(c);
		t = vballoon_target(&c->b);
		if (t != last) {
			c->changes++;
			g_printf("balloon: follow: target %lu -> %lu pages (change %lu)\n",
				 (unsigned long)last, (unsigned long)t, (unsigned long)c->changes);
			last = t;
			g_snprintf(what, sizeof(what), "follow change %lu", (unsigned long)c->changes);
			if (follow_to(c, t, what))
				return -1;
			check_all(c, what);
		}
		if (c->follow && c->changes >= c->follow)
			return 0;
		if (g_clock_ns() > t_end) {
			if (!c->follow)
				return 0;
			g_printf("balloon: follow: only %lu of %lu target changes in %lu s: FAIL\n",
				 (unsigned long)c->changes, (unsigned long)c->follow,
				 (unsigned long)c->seconds);
			c->errors++;
			return -1;
		}
	}
}

static int parse_modes(const char *s, unsigned *out)
{
	*out = 0;
	while (*s) {
		size_t n = 0;

		while (s[n] && s[n] != ',')
			n++;
		if (n == 2 && !strncmp(s, "4k", 2))
			*out |= M_4K;
		else if (n == 2 && !strncmp(s, "2m", 2))
			*out |= M_2M;
		else if (n == 4 && !strncmp(s, "node", 4))
			*out |= M_NODE;
		else if (n == 6 && !strncmp(s, "follow", 6))
			*out |= M_FOLLOW;
		else
			return -1;
		s += n;
		if (*s == ',')
			s++;
	}
	return *out ? 0 : -1;
}

static int args(struct ctx *c, int argc, char **argv, uint64_t *size, const char **report)
{
	const char *a;
	uint64_t v;

	c->modes = M_4K | M_2M | M_NODE;
	c->rounds = 3;
	c->slack = 8ull << 20;
	c->seconds = 30;
	c->rng = 0x2545f4914f6cdd1dull;
	c->give_inflate = c->give_report = true;
	*report = "auto";
	if ((a = g_arg(argc, argv, "modes")) && parse_modes(a, &c->modes)) {
		g_printf("balloon: modes=%s: expected a comma list of 4k, 2m, node, follow\n", a);
		return -1;
	}
	if ((a = g_arg(argc, argv, "rounds"))) {
		if (g_parse_u64(a, &v) || v > 1000) {
			g_printf("balloon: rounds=%s: expected 0..1000\n", a);
			return -1;
		}
		c->rounds = (unsigned)v;
	}
	if ((a = g_arg(argc, argv, "size")) && (g_parse_size(a, size) || *size < BLOCK)) {
		g_printf("balloon: size=%s: expected a size of at least 2M\n", a);
		return -1;
	}
	if ((a = g_arg(argc, argv, "slack")) && g_parse_size(a, &c->slack)) {
		g_printf("balloon: slack=%s: not a size\n", a);
		return -1;
	}
	if ((a = g_arg(argc, argv, "give"))) {
		c->give_inflate = !strcmp(a, "inflate") || !strcmp(a, "both");
		c->give_report = !strcmp(a, "report") || !strcmp(a, "both");
		if (!c->give_inflate && !c->give_report) {
			g_printf("balloon: give=%s: expected inflate, report or both\n", a);
			return -1;
		}
	}
	if ((a = g_arg(argc, argv, "report"))) {
		if (strcmp(a, "on") && strcmp(a, "off") && strcmp(a, "auto")) {
			g_printf("balloon: report=%s: expected on, off or auto\n", a);
			return -1;
		}
		*report = a;
	}
	if ((a = g_arg(argc, argv, "follow")) && g_parse_u64(a, &c->follow)) {
		g_printf("balloon: follow=%s: not a number\n", a);
		return -1;
	}
	if (c->follow)
		c->modes |= M_FOLLOW;
	if ((a = g_arg(argc, argv, "seconds")) && (g_parse_u64(a, &c->seconds) || !c->seconds)) {
		g_printf("balloon: seconds=%s: expected a positive number\n", a);
		return -1;
	}
	if ((a = g_arg(argc, argv, "seed"))) {
		if (g_parse_u64(a, &v) || !v) {
			g_printf("balloon: seed=%s: expected a positive number\n", a);
			return -1;
		}
		c->rng = v;
	}
	return 0;
}

static void *alloc(struct ctx *c, uint64_t size)
{
	return vheap_alloc(&c->heap, size ? size : 1, 4096);
}

int main(int argc, char **argv)
{
	struct ctx *c = &g_ctx;
	uint64_t size = 0, max_pages, *blk, t0;
	const char *report;
	uint64_t want = VBALLOON_FEATURES;
	bool pass;
	int r;

	if (args(c, argc, argv, &size, &report))
		return 2;
	if (strcmp(report, "off"))
		want |= 1ull << VIRTIO_BALLOON_F_REPORTING;
	vheap_init(&c->heap, g_boot->heap_start, g_boot->mem_size);
	r = vballoon_open(&c->b, &c->heap, want);
	if (r) {
		g_printf("balloon: no usable virtio-balloon device: %d\n", r);
		return 2;
	}
	c->use_report = vballoon_has(&c->b, VIRTIO_BALLOON_F_REPORTING);
	if (!strcmp(report, "on") && !c->use_report) {
		g_printf("balloon: report=on but the device does not offer REPORTING (features %#lx): FAIL\n",
			 (unsigned long)c->b.dev.offered);
		return 1;
	}
	max_pages = (g_boot->mem_size - g_boot->heap_start) / PAGE;
	c->state = alloc(c, max_pages);
	c->gen = alloc(c, max_pages);
	c->give = alloc(c, 4 * max_pages);
	c->take = alloc(c, 4 * max_pages);
	c->rg = alloc(c, sizeof(*c->rg) * (max_pages / PPB + 1));
	blk = alloc(c, 8 * (max_pages / PPB + 1));
	if (!c->state || !c->gen || !c->give || !c->take || !c->rg || !blk) {
		g_printf("balloon: not enough guest memory for the page tables\n");
		return 2;
	}
	c->base = (c->heap.cur + BLOCK - 1) & ~(BLOCK - 1);
	{
		uint64_t end = g_boot->mem_size & ~(BLOCK - 1);

		if (end < c->base + BLOCK) {
			g_printf("balloon: not enough guest memory for a region\n");
			return 2;
		}
		if (size && c->base + size < end)
			end = (c->base + size) & ~(BLOCK - 1);
		else if (size && c->base + size > end)
			g_printf("balloon: size=%lu MiB does not fit; the region is %lu MiB\n",
				 (unsigned long)(size >> 20), (unsigned long)((end - c->base) >> 20));
		c->npages = (end - c->base) / PAGE;
	}
	c->node_lo = c->npages / 2 / PPB * PPB;
	c->node_hi = c->npages;
	if (g_boot->nr_nodes >= 2) {
		const struct s2_boot_node *n = &g_boot->nodes[g_boot->nr_nodes - 1];
		uint64_t lo = n->gpa_start > c->base ? n->gpa_start : c->base;
		uint64_t hi = n->gpa_end < c->base + c->npages * PAGE ? n->gpa_end
								  : c->base + c->npages * PAGE;

		if (hi > lo) {
			c->node_lo = ((lo - c->base) / PAGE + PPB - 1) / PPB * PPB;
			c->node_hi = (hi - c->base) / PAGE / PPB * PPB;
		}
	}
	g_printf("balloon: region [%#lx, %#lx) %lu MiB; node span [%#lx, %#lx)%s; features %#lx (offered %#lx), reporting %s, queues %d/%d/%d/%d; slack %lu KiB\n",
		 (unsigned long)c->base, (unsigned long)(c->base + c->npages * PAGE),
		 (unsigned long)(c->npages * PAGE >> 20),
		 (unsigned long)(c->base + c->node_lo * PAGE),
		 (unsigned long)(c->base + c->node_hi * PAGE),
		 g_boot->nr_nodes >= 2 ? " (last guest node)" : " (one guest node: upper half)",
		 (unsigned long)c->b.dev.features, (unsigned long)c->b.dev.offered,
		 c->use_report ? "on" : "off", c->b.qi[VB_INFLATE], c->b.qi[VB_DEFLATE],
		 c->b.qi[VB_STATS], c->b.qi[VB_REPORT], (unsigned long)(c->slack >> 10));

	t0 = g_clock_ns();
	for (uint64_t i = 0; i < c->npages; i++)
		page_fill(c, i);
	stats_update(c);
	/* the initial target, as a driver inflates at probe */
	if (follow_to(c, vballoon_target(&c->b), "initial target"))
		goto out;
	check_all(c, "initial target");
	for (unsigned round = 1; round <= c->rounds && !(c->errors); round++) {
		if ((c->modes & M_4K) && step_4k(c, round))
			break;
		stats_update(c);
		if ((c->modes & M_2M) && step_2m(c, round, blk))
			break;
		stats_update(c);
		if ((c->modes & M_NODE) && step_node(c, round, blk))
			break;
		stats_update(c);
	}
	if (!c->errors && (c->modes & M_FOLLOW))
		follow_loop(c);
	if (!c->errors) {
		/* everything beyond the target comes back, then one last check */
		uint64_t m = 0;

		for (uint64_t i = 0; i < c->npages; i++)
			if (c->state[i] == P_BALLOON)
				c->take[m++] = pfn_of(c, i);
		if (!take_back(c, m, "final deflate"))
			check_all(c, "final deflate");
		check_all(c, "final check");
		stats_update(c);
	}
out:
	pass = !c->mismatches && !c->zero_mismatches && !c->res_fail && !c->errors &&
	       !c->b.bad_used_len;
	g_printf("balloon: %lu ms; inflated %lu, deflated %lu, reported %lu pages; holding %lu (target %u); %lu mismatches, %lu zero mismatches, %lu short drops, %lu errors, %lu used lengths not 0, %lu stats returns\n",
		 (unsigned long)((g_clock_ns() - t0) / 1000000), (unsigned long)c->b.inflated,
		 (unsigned long)c->b.deflated, (unsigned long)c->b.reported,
		 (unsigned long)(c->target_held + c->step_held), vballoon_target(&c->b),
		 (unsigned long)c->mismatches, (unsigned long)c->zero_mismatches,
		 (unsigned long)c->res_fail, (unsigned long)c->errors,
		 (unsigned long)c->b.bad_used_len, (unsigned long)c->b.stats_returns);
	g_report("balloon_mismatches", (double)c->mismatches, "pages");
	g_report("balloon_zero_mismatches", (double)c->zero_mismatches, "pages");
	g_report("balloon_returned_bytes", (double)c->returned, "bytes");
	g_report("balloon_resident_drop_bytes", (double)c->drop, "bytes");
	g_report("balloon_resident_failures", (double)c->res_fail, "steps");
	g_report("balloon_inflated_pages", (double)c->b.inflated, "pages");
	g_report("balloon_deflated_pages", (double)c->b.deflated, "pages");
	g_report("balloon_reported_pages", (double)c->b.reported, "pages");
	g_report("balloon_target_changes", (double)c->changes, "changes");
	g_report("balloon_stats_returns", (double)c->b.stats_returns, "buffers");
	g_printf("balloon: %s\n", pass ? "PASS" : "FAIL");
	return pass ? 0 : 1;
}
