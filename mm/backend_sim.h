/* SPDX-License-Identifier: MIT */
/*
 * The `sim` backend: a software TLB model. N simulated agents (vCPUs and devices) cache
 * translations as they access memory; invalidations drop them. A checker flags ordering
 * bugs as they happen:
 *   SIM_STALE_WRITABLE  a writable cached translation survives a committed change that
 *                       removed write access (or the mapping)
 *   SIM_UAF             an access reaches a freed frame (through a stale translation,
 *                       e.g. a device's IOTLB entry kept past the frame's free)
 *   SIM_OA_NO_BBM       arm64: a live entry's output address changed without
 *                       break-before-make while writable or with different contents
 *   SIM_PERM_AND_OA     arm64: permission and output address changed in one write
 *   SIM_TLB_CONFLICT    arm64, FEAT_BBM < 2: a block/table change while an agent caches
 *                       a translation of another size for the same addresses
 * Frames are tracked per 4 KiB below nr_frames * 4 KiB: freed or not, and a contents token.
 *
 * The same checker also observes a stage-1-like table (struct sim_s1): the frame table's
 * own mapping, virtual page -> backing page, written one entry at a time by the frame
 * table's restore and optimise sequences (struct frame_table_hooks), while agents read
 * the table through their TLBs.
 */
#ifndef S2VM_MM_BACKEND_SIM_H
#define S2VM_MM_BACKEND_SIM_H

#include "mm/frame.h"
#include "mm/s2.h"

enum sim_rule {
	SIM_STALE_WRITABLE,
	SIM_UAF,
	SIM_OA_NO_BBM,
	SIM_PERM_AND_OA,
	SIM_TLB_CONFLICT,
	SIM_NR_RULES,
};

#define SIM_TLB_ENTRIES 64

struct sim_tlbe {
	gpa_t base; /* [base, base + size) */
	uint64_t size;
	hpa_t oa;
	uint8_t perm;
	bool valid;
};

struct sim_agent {
	struct sim_tlbe e[SIM_TLB_ENTRIES];
	unsigned next; /* round-robin victim */
	bool device; /* a device queue: its IOTLB is not shot down by the map's
		      * invalidations, only dropped at its quiescent points */
};

struct sim_s1;

struct s2_sim {
	struct s2_map *map; /* set by s2_sim_attach() */
	struct sim_s1 *s1; /* or this stage-1-like table (sim_s1_init()), walked instead */
	bool arm_rules; /* check the arm64 rules (the map's format needs BBM) */
	unsigned bbm_level; /* the simulated hardware's FEAT_BBM level */
	unsigned nr_agents;
	struct sim_agent *agents;
	uint64_t nr_frames;
	uint8_t *freed; /* per frame: 1 if freed */
	uint32_t *token; /* per frame: contents version */
	uint32_t next_token;
	uint64_t violations[SIM_NR_RULES];
	char last[256]; /* the most recent violation, for test output */
	uint64_t tlbi_calls, tlbi_entries, accesses, faults;
	/* Dense frame index of an output address (default pa >> 12); UINT64_MAX = untracked. */
	uint64_t (*frame_index)(void *ctx, hpa_t pa);
	void *frame_ctx;
};

extern const struct s2_backend_ops s2_sim_ops;

/* Create a model with @nr_agents agents tracking frames below @nr_frames * 4 KiB, as
 * hardware with FEAT_BBM level @bbm_level. Returns 0 or -ENOMEM. */
int s2_sim_init(struct s2_sim *s, unsigned nr_agents, uint64_t nr_frames, unsigned bbm_level)
	__attribute__((warn_unused_result));
void s2_sim_destroy(struct s2_sim *s);
/* Connect the model to the map it observes (created with .be = &s2_sim_ops, .be_ctx = s). */
void s2_sim_attach(struct s2_sim *s, struct s2_map *m);

/* Agent @agent reads or writes @gpa. Returns 0, or -EFAULT (unmapped) / -EACCES. */
int s2_sim_access(struct s2_sim *s, unsigned agent, gpa_t gpa, bool write);

void s2_sim_frame_alloc(struct s2_sim *s, hpa_t pa, uint64_t size); /* fresh contents */
void s2_sim_frame_free(struct s2_sim *s, hpa_t pa, uint64_t size);
void s2_sim_frame_copy(struct s2_sim *s, hpa_t dst, hpa_t src, uint64_t size);
/* An s2_copy_fn for s2_remap_safe(): @ctx is the struct s2_sim. */
int s2_sim_copy(void *ctx, hpa_t from, hpa_t to, uint64_t len);

/* Make @agent a device (see struct sim_agent). */
void s2_sim_agent_set_device(struct s2_sim *s, unsigned agent, bool device);
/* Drop every translation @agent caches (a device queue's quiescent point). */
void s2_sim_agent_flush(struct s2_sim *s, unsigned agent);

uint64_t s2_sim_violations(const struct s2_sim *s);

/*
 * A stage-1-like table observed by @sim: one arm64 level-3 descriptor per 4 KiB virtual
 * page of [0, npages * 4 KiB). Model of a frame table's mapping: page 2c and 2c + 1 hold
 * chunk c's records; the shared page is frame 0, chunk c's private pages are frames
 * 1 + 2c and 2 + 2c (so @sim needs 1 + 2 * chunks frames).
 */
struct sim_s1 {
	struct s2_sim *sim;
	uint64_t *pte; /* npages descriptors (0: invalid) */
	uint64_t npages;
	unsigned readers; /* agents 1..readers read the chunk's pages after every step */
	uint64_t steps, writes, write_faults; /* write_faults: a record write hit a read-only page */
};

/* Create the table, all pages mapping the shared page read-only, and make @sim check it
 * with the arm64 rules (its FEAT_BBM level as given to s2_sim_init()). @sim must not be
 * attached to a map. Returns 0 or -ENOMEM. */
int sim_s1_init(struct sim_s1 *t, struct s2_sim *sim, uint64_t npages, unsigned readers)
	__attribute__((warn_unused_result));
void sim_s1_destroy(struct sim_s1 *t);
/* Write page @page's descriptor: @oa with @perm, or invalid if @perm is 0. The checker
 * sees the old and new entries. No invalidation: call sim_s1_tlbi(). */
void sim_s1_write(struct sim_s1 *t, uint64_t page, hpa_t oa, unsigned perm);
/* Invalidate [page, page + n) in every agent (a broadcast TLBI). */
void sim_s1_tlbi(struct sim_s1 *t, uint64_t page, uint64_t n);
/* Agent @agent reads (or writes) page @page through its TLB. As s2_sim_access(). */
int sim_s1_access(struct sim_s1 *t, unsigned agent, uint64_t page, bool write);
/* Output address of page @idx of chunk @c's private pages, and of the shared page. */
static inline hpa_t sim_s1_priv_pa(uint64_t c, unsigned idx)
{
	return (1 + 2 * c + idx) << S2_PAGE_SHIFT;
}
#define SIM_S1_SHARED_PA 0ull
/* A struct frame_table_hooks step function (@ctx is the struct sim_s1): applies @s to the
 * model as the host call did it (each entry write, then its invalidation), then lets
 * the reader agents walk the chunk's pages. */
void sim_s1_frame_step(void *ctx, struct frame_table *ft, const struct frame_step *s);
const char *s2_sim_rule_name(enum sim_rule r);

#endif
