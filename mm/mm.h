/* SPDX-License-Identifier: MIT */
/*
 * The guest memory manager of one VM: host node pools, the frame table, the stage-2 map
 * (the authority), and the `kvm` backend, which materialises the map into the host
 * alias that KVM's memslots point at — one mmap per maximal run of frames contiguous in
 * one pool, never one per page.
 *
 * Output addresses in the map encode (pool index, frame): pa = pool << 40 | frame << 12.
 * No printing; errors come back as -errno with mm->err describing them.
 */
#ifndef S2VM_MM_MM_H
#define S2VM_MM_MM_H

#include "mm/frame.h"
#include "mm/pool.h"
#include "mm/s2.h"

#define MM_MAX_NODES 8 /* guest nodes */
#define MM_MAX_POOLS 8 /* host nodes in use */
#define MM_POOL_SHIFT 40

enum mm_policy { MM_POLICY_BIND = 0, MM_POLICY_PREFERRED = 1, MM_POLICY_INTERLEAVE = 2 };

struct mm_guest_node {
	unsigned id; /* guest node ID, 0..MM_MAX_NODES-1, dense */
	uint64_t size; /* bytes, multiple of 2 MiB */
	unsigned policy; /* enum mm_policy */
	unsigned host; /* host node (bind, preferred) */
	unsigned nr_hosts; /* interleave set, or preferred fallbacks */
	unsigned hosts[MM_MAX_POOLS];
	/* filled by mm_create: */
	gpa_t gpa; /* [gpa, gpa + size) */
	uint64_t placed[MM_MAX_POOLS]; /* bytes of this node on each pool */
};

struct mm_pool_cap {
	unsigned node;
	uint64_t bytes;
};

struct mm_config {
	uint64_t mem_size;
	unsigned nr_nodes; /* 0: one node of mem_size on the host node s2vm runs on */
	struct mm_guest_node nodes[MM_MAX_NODES];
	unsigned nr_caps; /* --pool NODE=SIZE limits */
	struct mm_pool_cap caps[MM_MAX_POOLS];
	const struct s2_format *fmt; /* NULL: EPT */
};

struct mm_alias_stats {
	uint64_t mmap_calls; /* maximal runs (re)mapped into the alias */
	uint64_t mprotect_calls;
};

struct mm {
	struct mm_config cfg;
	unsigned nr_pools;
	struct pool pools[MM_MAX_POOLS];
	struct frame_table ft;
	struct s2_map map;
	struct s2_batch batch;
	void *alias_base; /* reservation, alias_len bytes */
	size_t alias_len;
	unsigned char *alias; /* GPA 0, 2 MiB aligned, cfg.mem_size bytes */
	struct mm_alias_stats alias_stats;
	uint64_t build_ns; /* time mm_create took */
	char err[256];
};

/*
 * Validate @cfg, create the pools, place every guest node by its policy, build the map
 * and materialise the alias. Returns 0, or -EINVAL (bad layout) / -ENOMEM (the pools
 * cannot hold it) / -errno, with mm->err set; on error mm_destroy() releases everything.
 */
int mm_create(struct mm *mm, const struct mm_config *cfg) __attribute__((warn_unused_result));
void mm_destroy(struct mm *mm);

/* The host node whose pool backs @gpa, or -ENOENT. */
int mm_gpa_node(const struct mm *mm, gpa_t gpa);

/* The pool index and byte offset backing @gpa, or -ENOENT. */
int mm_gpa_backing(const struct mm *mm, gpa_t gpa, unsigned *pool, uint64_t *offset);

static inline hpa_t mm_pa(unsigned pool, uint64_t frame)
{
	return ((hpa_t)pool << MM_POOL_SHIFT) | (frame << POOL_FRAME_SHIFT);
}

/* The `kvm` backend's ops; ctx is the struct mm. */
extern const struct s2_backend_ops mm_kvm_backend_ops;

#endif
