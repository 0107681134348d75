// SPDX-License-Identifier: MIT
/* The TLB model: each checker rule catches a planted violation, and the map's own
 * sequences (split/collapse with BBM, the safe remap) run with zero reports. */
#include <errno.h>
#include <string.h>

#include "mm/backend_sim.h"
#include "tests/unit/unit.h"

#define MIB2 (2ull << 20)
#define FRAMES 8192 /* 32 MiB of tracked frames */

struct env {
	struct s2_sim sim;
	struct s2_map m;
	struct s2_batch b;
};

static void env_init(struct env *e, const struct s2_format *f, unsigned map_bbm, unsigned hw_bbm)
{
	struct s2_map_config c = { .fmt = f, .ipa_bits = 40, .bbm_level = map_bbm,
				   .be = &s2_sim_ops, .be_ctx = &e->sim };

	CU_ASSERT_EQUAL_FATAL(s2_sim_init(&e->sim, 3, FRAMES, hw_bbm), 0);
	CU_ASSERT_EQUAL_FATAL(s2_map_init(&e->m, &c), 0);
	s2_sim_attach(&e->sim, &e->m);
	s2_batch_init(&e->b);
	s2_sim_frame_alloc(&e->sim, 0, (uint64_t)FRAMES << 12);
}

static void env_fini(struct env *e)
{
	s2_batch_free(&e->b);
	s2_map_destroy(&e->m);
	s2_sim_destroy(&e->sim);
}

static void test_rule_stale_writable(void)
{
	struct env e;

	env_init(&e, &s2_format_arm64, 0, 0);
	CU_ASSERT_EQUAL(s2_map_range(&e.m, 0, 0, 4096, S2_PERM_RW, 0, &e.b), 0);
	s2_batch_commit(&e.m, &e.b);
	CU_ASSERT_EQUAL(s2_sim_access(&e.sim, 1, 0, true), 0); /* agent 1 caches RW */
	CU_ASSERT_EQUAL(s2_protect(&e.m, 0, 4096, S2_PERM_R, &e.b), 0);
	/* plant: claim the batch committed without issuing its invalidation */
	s2_sim_ops.commit(&e.sim, &e.b);
	CU_ASSERT_EQUAL(e.sim.violations[SIM_STALE_WRITABLE], 1);
	/* the real commit invalidates first: no report */
	memset(e.sim.violations, 0, sizeof(e.sim.violations));
	s2_batch_commit(&e.m, &e.b);
	CU_ASSERT_EQUAL(s2_sim_violations(&e.sim), 0);
	CU_ASSERT_EQUAL(s2_sim_access(&e.sim, 1, 0, true), -EACCES); /* now it faults */
	env_fini(&e);
}

static void test_rule_uaf(void)
{
	struct env e;

	env_init(&e, &s2_format_ept, 0, 0);
	CU_ASSERT_EQUAL(s2_map_range(&e.m, MIB2, 0x5000, 4096, S2_PERM_RW, 0, &e.b), 0);
	s2_batch_commit(&e.m, &e.b);
	CU_ASSERT_EQUAL(s2_sim_access(&e.sim, 0, MIB2 + 8, false), 0);
	CU_ASSERT_EQUAL(s2_unmap(&e.m, MIB2, 4096, &e.b), 0);
	/* plant: free the frame before the unmap's invalidation */
	s2_sim_frame_free(&e.sim, 0x5000, 4096);
	CU_ASSERT_EQUAL(s2_sim_access(&e.sim, 0, MIB2 + 8, false), 0); /* stale hit */
	CU_ASSERT_EQUAL(e.sim.violations[SIM_UAF], 1);
	/* the right order: commit, then free — no report and the access faults */
	memset(e.sim.violations, 0, sizeof(e.sim.violations));
	s2_batch_commit(&e.m, &e.b);
	CU_ASSERT_EQUAL(s2_sim_access(&e.sim, 0, MIB2 + 8, false), -EFAULT);
	CU_ASSERT_EQUAL(s2_sim_violations(&e.sim), 0);
	env_fini(&e);
}

static void test_rule_oa_without_bbm(void)
{
	struct env e;
	struct s2_leaf old = { .oa = 0x1000, .perm = S2_PERM_RW, .accessed = true };
	struct s2_leaf new_ = old;

	env_init(&e, &s2_format_arm64, 0, 0);
	new_.oa = 0x2000;
	/* plant: a writable live entry re-pointed in one write */
	s2_sim_ops.pte_write(&e.sim, 0, 3, s2_format_arm64.mk_leaf(3, &old),
			     s2_format_arm64.mk_leaf(3, &new_));
	CU_ASSERT_EQUAL(e.sim.violations[SIM_OA_NO_BBM], 1);
	/* read-only but different contents: still a violation */
	old.perm = new_.perm = S2_PERM_R;
	s2_sim_ops.pte_write(&e.sim, 0, 3, s2_format_arm64.mk_leaf(3, &old),
			     s2_format_arm64.mk_leaf(3, &new_));
	CU_ASSERT_EQUAL(e.sim.violations[SIM_OA_NO_BBM], 2);
	/* read-only and identical contents: allowed */
	s2_sim_frame_copy(&e.sim, 0x2000, 0x1000, 4096);
	s2_sim_ops.pte_write(&e.sim, 0, 3, s2_format_arm64.mk_leaf(3, &old),
			     s2_format_arm64.mk_leaf(3, &new_));
	CU_ASSERT_EQUAL(e.sim.violations[SIM_OA_NO_BBM], 2);
	CU_ASSERT_EQUAL(e.sim.violations[SIM_PERM_AND_OA], 0);
	env_fini(&e);
}

static void test_rule_perm_and_oa(void)
{
	struct env e;
	struct s2_leaf old = { .oa = 0x1000, .perm = S2_PERM_R, .accessed = true };
	struct s2_leaf new_ = { .oa = 0x2000, .perm = S2_PERM_RW, .accessed = true };

	env_init(&e, &s2_format_arm64, 0, 0);
	s2_sim_frame_copy(&e.sim, 0x2000, 0x1000, 4096);
	s2_sim_ops.pte_write(&e.sim, 0, 3, s2_format_arm64.mk_leaf(3, &old),
			     s2_format_arm64.mk_leaf(3, &new_));
	CU_ASSERT_EQUAL(e.sim.violations[SIM_PERM_AND_OA], 1);
	env_fini(&e);
}

static void test_rule_tlb_conflict(void)
{
	struct env e;

	/* plant: the map believes FEAT_BBM level 2, the hardware has level 0 */
	env_init(&e, &s2_format_arm64, 2, 0);
	CU_ASSERT_EQUAL(s2_map_range(&e.m, MIB2, MIB2, MIB2, S2_PERM_RW, 0, &e.b), 0);
	s2_batch_commit(&e.m, &e.b);
	CU_ASSERT_EQUAL(s2_sim_access(&e.sim, 2, MIB2 + 64, false), 0); /* caches the block */
	CU_ASSERT_EQUAL(s2_split(&e.m, MIB2, 2, &e.b), 0);
	CU_ASSERT_EQUAL(e.sim.violations[SIM_TLB_CONFLICT], 1);
	env_fini(&e);

	/* the same on level-2 hardware is allowed */
	env_init(&e, &s2_format_arm64, 2, 2);
	CU_ASSERT_EQUAL(s2_map_range(&e.m, MIB2, MIB2, MIB2, S2_PERM_RW, 0, &e.b), 0);
	s2_batch_commit(&e.m, &e.b);
	CU_ASSERT_EQUAL(s2_sim_access(&e.sim, 2, MIB2 + 64, false), 0);
	CU_ASSERT_EQUAL(s2_split(&e.m, MIB2, 2, &e.b), 0);
	CU_ASSERT_EQUAL(s2_sim_violations(&e.sim), 0);
	env_fini(&e);
}

/* Split and collapse of cached blocks at FEAT_BBM level 0: the map uses BBM, no report. */
static void test_library_bbm_sequences(void)
{
	struct env e;

	env_init(&e, &s2_format_arm64, 0, 0);
	CU_ASSERT_EQUAL(s2_map_range(&e.m, MIB2, MIB2, MIB2, S2_PERM_RW, 0, &e.b), 0);
	s2_batch_commit(&e.m, &e.b);
	for (int round = 0; round < 4; round++) {
		for (unsigned a = 0; a < 3; a++)
			CU_ASSERT_EQUAL(s2_sim_access(&e.sim, a, MIB2 + a * 4096, true), 0);
		CU_ASSERT_EQUAL(s2_split(&e.m, MIB2, 2, &e.b), 0);
		s2_batch_commit(&e.m, &e.b);
		for (unsigned a = 0; a < 3; a++)
			CU_ASSERT_EQUAL(s2_sim_access(&e.sim, a, MIB2 + 99 * 4096, true), 0);
		CU_ASSERT_EQUAL(s2_collapse(&e.m, MIB2, 2, &e.b), 0);
		s2_batch_commit(&e.m, &e.b);
	}
	CU_ASSERT_EQUAL(e.m.stats.bbm, 8);
	CU_ASSERT_EQUAL(s2_sim_violations(&e.sim), 0);
	env_fini(&e);
}

/* The safe remap sequence moves live, cached, writable memory with zero reports and no
 * break-before-make, and the old frames can be freed after it. */
static void test_library_safe_remap(void)
{
	struct env e;
	struct s2_leaf l;
	unsigned lvl;

	env_init(&e, &s2_format_arm64, 0, 0);
	CU_ASSERT_EQUAL(s2_map_range(&e.m, 0, 0, 64 * 4096, S2_PERM_RW, 0, &e.b), 0);
	s2_batch_commit(&e.m, &e.b);
	for (unsigned p = 0; p < 64; p++)
		CU_ASSERT_EQUAL(s2_sim_access(&e.sim, p % 3, p * 4096, true), 0);
	CU_ASSERT_EQUAL(s2_remap_safe(&e.m, 0, 64 * 4096, 0x100000, S2_PERM_RW, s2_sim_copy,
				      &e.sim), 0);
	s2_sim_frame_free(&e.sim, 0, 64 * 4096);
	for (unsigned p = 0; p < 64; p++)
		CU_ASSERT_EQUAL(s2_sim_access(&e.sim, (p + 1) % 3, p * 4096, true), 0);
	CU_ASSERT_EQUAL(s2_walk(&e.m, 5 * 4096, &l, &lvl), 0);
	CU_ASSERT_EQUAL(l.oa, 0x100000 + 5 * 4096);
	CU_ASSERT_EQUAL(l.perm, S2_PERM_RW);
	CU_ASSERT_EQUAL(e.m.stats.bbm, 0);
	if (s2_sim_violations(&e.sim))
		fprintf(stderr, "\n  %s\n", e.sim.last);
	CU_ASSERT_EQUAL(s2_sim_violations(&e.sim), 0);

	/* the naive way — remap a writable entry in place, then free — is caught when the
	 * map is told the entry is identical: the checker sees the writable entry */
	struct s2_leaf old = { .oa = 0x100000, .perm = S2_PERM_RW, .accessed = true }, nw = old;
	nw.oa = 0x200000;
	s2_sim_ops.pte_write(&e.sim, 0, 3, s2_format_arm64.mk_leaf(3, &old),
			     s2_format_arm64.mk_leaf(3, &nw));
	CU_ASSERT_EQUAL(e.sim.violations[SIM_OA_NO_BBM], 1);
	env_fini(&e);
}

/* The stage-1-like table (a frame table's own mapping): Catalin Marinas' sequence —
 * read-only at the same address, new address while read-only with identical contents,
 * then read-write — and its reverse run with zero reports at FEAT_BBM 0 and 2 while
 * readers cache every step; the same moves done wrong are reported. */
static void test_s1_sequences(void)
{
	for (unsigned bbm = 0; bbm <= 2; bbm += 2) {
		struct s2_sim sim;
		struct sim_s1 t;
		hpa_t priv = sim_s1_priv_pa(0, 0);

		CU_ASSERT_EQUAL_FATAL(s2_sim_init(&sim, 3, 1 + 2 * 2, bbm), 0);
		CU_ASSERT_EQUAL_FATAL(sim_s1_init(&t, &sim, 4, 2), 0);
		for (unsigned a = 1; a < 3; a++)
			CU_ASSERT_EQUAL(sim_s1_access(&t, a, 0, false), 0);
		CU_ASSERT_EQUAL(sim_s1_access(&t, 1, 0, true), -EACCES); /* shared: read-only */
		/* restore: allocate, copy, map read-only, then read-write */
		s2_sim_frame_alloc(&sim, priv, S2_PAGE_SIZE);
		s2_sim_frame_copy(&sim, priv, SIM_S1_SHARED_PA, S2_PAGE_SIZE);
		sim_s1_write(&t, 0, priv, S2_PERM_R);
		sim_s1_tlbi(&t, 0, 1);
		for (unsigned a = 1; a < 3; a++)
			CU_ASSERT_EQUAL(sim_s1_access(&t, a, 0, false), 0);
		sim_s1_write(&t, 0, priv, S2_PERM_RW);
		sim_s1_tlbi(&t, 0, 1);
		CU_ASSERT_EQUAL(sim_s1_access(&t, 0, 0, true), 0); /* the writer */
		/* optimise: contents made identical, read-only, shared page, free */
		s2_sim_frame_copy(&sim, priv, SIM_S1_SHARED_PA, S2_PAGE_SIZE);
		sim_s1_write(&t, 0, priv, S2_PERM_R);
		sim_s1_tlbi(&t, 0, 1);
		CU_ASSERT_EQUAL(sim_s1_access(&t, 1, 0, false), 0);
		sim_s1_write(&t, 0, SIM_S1_SHARED_PA, S2_PERM_R);
		sim_s1_tlbi(&t, 0, 1);
		s2_sim_frame_free(&sim, priv, S2_PAGE_SIZE);
		for (unsigned a = 0; a < 3; a++)
			CU_ASSERT_EQUAL(sim_s1_access(&t, a, 0, false), 0);
		if (s2_sim_violations(&sim))
			fprintf(stderr, "\n  %s\n", sim.last);
		CU_ASSERT_EQUAL(s2_sim_violations(&sim), 0);

		/* wrong: address and permission in one write */
		s2_sim_frame_alloc(&sim, priv, S2_PAGE_SIZE);
		s2_sim_frame_copy(&sim, priv, SIM_S1_SHARED_PA, S2_PAGE_SIZE);
		sim_s1_write(&t, 0, priv, S2_PERM_RW);
		CU_ASSERT_EQUAL(sim.violations[SIM_PERM_AND_OA], 1);
		sim_s1_tlbi(&t, 0, 1);
		/* wrong: a writable page re-pointed without break (the contents equal) */
		memset(sim.violations, 0, sizeof(sim.violations));
		s2_sim_frame_alloc(&sim, priv + S2_PAGE_SIZE, S2_PAGE_SIZE);
		s2_sim_frame_copy(&sim, priv + S2_PAGE_SIZE, priv, S2_PAGE_SIZE);
		sim_s1_write(&t, 0, priv + S2_PAGE_SIZE, S2_PERM_RW);
		CU_ASSERT_EQUAL(sim.violations[SIM_OA_NO_BBM], 1);
		CU_ASSERT_EQUAL(sim.violations[SIM_PERM_AND_OA], 0);
		/* wrong: read-only but the contents differ (records not zeroed first) */
		memset(sim.violations, 0, sizeof(sim.violations));
		CU_ASSERT_EQUAL(sim_s1_access(&t, 0, 0, true), 0);
		sim_s1_write(&t, 0, priv + S2_PAGE_SIZE, S2_PERM_R);
		sim_s1_tlbi(&t, 0, 1);
		sim_s1_write(&t, 0, SIM_S1_SHARED_PA, S2_PERM_R);
		CU_ASSERT_EQUAL(sim.violations[SIM_OA_NO_BBM], 1);
		/* right: break-before-make may change anything */
		memset(sim.violations, 0, sizeof(sim.violations));
		sim_s1_write(&t, 1, 0, 0);
		sim_s1_tlbi(&t, 1, 1);
		sim_s1_write(&t, 1, priv, S2_PERM_RW);
		CU_ASSERT_EQUAL(s2_sim_violations(&sim), 0);
		sim_s1_destroy(&t);
		s2_sim_destroy(&sim);
	}
}

static CU_TestInfo tests[] = {
	{ "rule: stale writable after commit", test_rule_stale_writable },
	{ "rule: use after free", test_rule_uaf },
	{ "rule: OA change without BBM", test_rule_oa_without_bbm },
	{ "rule: permission and OA in one write", test_rule_perm_and_oa },
	{ "rule: block/table conflict", test_rule_tlb_conflict },
	{ "library: BBM split/collapse, zero reports", test_library_bbm_sequences },
	{ "library: safe remap, zero reports", test_library_safe_remap },
	{ "stage-1 model: HVO sequences and planted errors", test_s1_sequences },
	CU_TEST_INFO_NULL,
};

UNIT_MAIN("tlbsim", tests)
