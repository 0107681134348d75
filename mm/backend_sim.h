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
 */
#ifndef S2VM_MM_BACKEND_SIM_H
#define S2VM_MM_BACKEND_SIM_H

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

struct s2_sim {
	struct s2_map *map; /* set by s2_sim_attach() */
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
const char *s2_sim_rule_name(enum sim_rule r);

#endif
