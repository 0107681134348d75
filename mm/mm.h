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

#include <pthread.h>

#include "mm/dma.h"
#include "mm/frame.h"
#include "mm/holders.h"
#include "mm/pool.h"
#include "mm/s2.h"
#include "mm/timeline.h"

#define MM_MAX_NODES 8 /* guest nodes */
#define MM_MAX_POOLS 8 /* host nodes in use */
#define MM_POOL_SHIFT 40
#define MM_MAX_MEM (1ull << MM_POOL_SHIFT) /* guest RAM: offsets in a pool fit 40 bits */
#define MM_SMALL_WINDOW (2ull << 20) /* see mm_gpa_small() */

enum mm_policy { MM_POLICY_BIND = 0, MM_POLICY_PREFERRED = 1, MM_POLICY_INTERLEAVE = 2 };

struct mm_guest_node {
	unsigned id; /* guest node ID, 0..MM_MAX_NODES-1, dense */
	uint64_t size; /* bytes, multiple of 2 MiB */
	unsigned policy; /* enum mm_policy */
	unsigned host; /* host node (bind, preferred) */
	unsigned nr_hosts; /* interleave set, or preferred fallbacks */
	unsigned hosts[MM_MAX_POOLS];
	bool huge; /* hugepages=on: its host pools use 2 MiB huge pages */
	/* filled by mm_create: */
	gpa_t gpa; /* [gpa, gpa + size) */
	uint64_t placed[MM_MAX_POOLS]; /* bytes of this node on each pool at creation */
};

struct mm_pool_cap {
	unsigned node;
	uint64_t bytes;
};

struct mm;

/* Host calls the memory manager makes, for fault injection and its counts. */
enum mm_host_call {
	MM_CALL_MMAP, /* alias remaps */
	MM_CALL_MPROTECT, /* alias permission changes */
	MM_CALL_FALLOCATE, /* punching freed frames out of a pool */
	MM_CALL_MEMFD, /* creating a pool's memfd */
	MM_CALL_MBIND, /* binding a pool to its host node */
	MM_CALL_TABLE, /* allocating stage-2 table pages */
	MM_CALL_FRAME, /* allocating frame-table record pages (restoring a split chunk) */
	MM_CALL_NR,
};

extern const char *const mm_host_call_names[MM_CALL_NR];

/* Fault injection (tests, `S2VM_INJECT`): each host call fails with ENOMEM at a seeded
 * rate instead of being made. All zero: off. */
struct mm_inject {
	uint64_t seed;
	uint32_t per_million[MM_CALL_NR]; /* failure rate per call type, 0..1000000 */
};

/* Copy @n frames from pool @sp frame @sf to pool @dp frame @df. Returns 0 or -errno. */
typedef int (*mm_copy_fn)(void *ctx, struct mm *mm, unsigned sp, uint64_t sf, unsigned dp,
			  uint64_t df, uint64_t n);

struct mig_range {
	gpa_t gpa; /* [gpa, gpa + len), 4 KiB aligned */
	uint64_t len;
};

struct mig_policy {
	bool lazy_writable; /* migrated pages stay read-only until their first write */
	bool defer_invalidation; /* hold back deferrable invalidations (arm64 rules) */
	uint64_t cap_frames; /* flush and free when more frames are pending (0: 8192) */
	uint64_t batch_frames; /* frames per batch (0: 8192) */
	/* Keep freed source frames backed (warm: reused without faults) instead of punching
	 * them out of their pool's memfd, one fallocate per freed run, which returns the
	 * memory to the host (the default: migrating a VM off a node frees that node). */
	bool keep_freed;
	/* Copy threads for large batches (mm/copy_pool.h), the migrating thread included:
	 * 0 = as many as the CPUs this process may run on (at most 8), 1 = copy on the
	 * migrating thread only, N = at most N. */
	unsigned copy_threads;
	/* Exact placement: move only the requested pages. Off (default): a cost model may
	 * move a whole 2 MiB window of scattered 4 KiB requests in one copy and one remap
	 * when that is cheaper than one remap per requested run (counted in mig_stats). */
	bool exact;
};

struct mm_config {
	uint64_t mem_size;
	unsigned nr_nodes; /* 0: one node of mem_size on the host node s2vm runs on */
	struct mm_guest_node nodes[MM_MAX_NODES];
	bool hugepages; /* --hugepages: every pool uses 2 MiB huge pages (mm/pool.h) */
	unsigned nr_caps; /* --pool NODE=SIZE limits */
	struct mm_pool_cap caps[MM_MAX_POOLS];
	const struct s2_format *fmt; /* NULL: EPT */
	/* NULL: the kvm backend and a host alias. Otherwise (tests, the sim lab) no alias
	 * is made and the map reports to this backend. */
	const struct s2_backend_ops *be;
	void *be_ctx;
	mm_copy_fn copy; /* NULL: memcpy between the pools' own mappings */
	void *copy_ctx;
	/* Told about every batch of frames returned to a pool (the sim model tracks them). */
	void (*on_free)(void *ctx, struct mm *mm, unsigned pool, uint64_t first, uint64_t n);
	struct mig_policy mig;
	uint32_t timeline_cap; /* events the migration timeline keeps (mm/timeline.h); 0: off */
	/*
	 * Alias placement (kvm backend only). Default: anywhere, 2 MiB aligned. With
	 * alias_at_gpa the alias is reserved at host address == GPA (--accel proc): GPAs
	 * below alias_floor (vm.mmap_min_addr) are never mapped there, and alias_extra bytes
	 * after RAM (the device window) stay reserved PROT_NONE so that a guest access there
	 * faults instead of reaching whatever the host put at that address.
	 */
	bool alias_at_gpa;
	uint64_t alias_floor; /* page aligned */
	uint64_t alias_extra;
	struct mm_inject inject;
	/*
	 * Called once, with mm->lock held, when the alias can no longer be made to agree
	 * with the map (a host call failed and so did the roll-back): the guest must stop.
	 * mm->fatal_msg names the call and errno. Afterwards migrations fail with -EIO.
	 */
	void (*on_fatal)(void *ctx, struct mm *mm);
	void *fatal_ctx;
};

struct mig_stats {
	uint64_t pages, bytes; /* migrated, as requested (promoted_pages apart) */
	uint64_t batches, runs;
	uint64_t alias_mprotect, alias_mmap; /* alias calls made by migrations */
	uint64_t fault_waits, stall_ns; /* vCPU write faults that waited, total time */
	uint64_t fault_gpa_known; /* of those, faults whose GPA the host reported */
	uint64_t lazy_fixups; /* pages made writable on first write */
	uint64_t forced_flushes; /* cap or low pool forced flush-and-free */
	uint64_t aborted_pages; /* not moved: the destination pool ran out, the alias could
				 * not be changed (rolled back to the old frames), or the
				 * mappings would have passed the budget */
	uint64_t map_budget_stops; /* migrations stopped at the mapping budget */
	uint64_t alias_failures; /* batches whose alias calls failed and were rolled back */
	uint64_t held_frames; /* old frames kept, not freed: the deferred queue could not
			       * grow and some holder had not passed their generation */
	uint64_t skipped_pages; /* already on the target node */
	uint64_t phase_ns[MIG_PHASE_NR]; /* time in each phase, all batches (mm/timeline.h) */
	uint64_t huge_frames; /* 2 MiB frames of huge pools moved whole */
	uint64_t huge_extra_pages; /* pages those moved beyond the requested ones */
	uint64_t huge_refused_pages; /* requested, not moved: a window mixing 4 KiB pieces
				      * of several pools cannot go to a huge pool whole */
	uint64_t small_window_pages; /* pages moved of the window a huge page cannot back
				      * (mm_gpa_small()), in a VM with huge pools: on
				      * small frames (a huge pool's small part) */
	uint64_t windows_promoted; /* 2 MiB windows moved whole by the cost model */
	uint64_t promoted_pages; /* pages those moved beyond the requested ones */
	uint64_t parallel_copies; /* batches copied on more than one thread */
	/* The cost model's running estimates (averages of the engine's own timers):
	 * one alias run changed (protect + remap, per run) and one 2 MiB copy, in ns. */
	uint64_t est_run_ns, est_copy2m_ns;
};

/* DMA pins (mm/dma.h). Counters are updated with atomics; read them under mm->lock. */
struct mm_pin_stats {
	uint64_t short_now, short_peak; /* short-term pins held (one per record per map call) */
	uint64_t longterm_bytes[MM_MAX_POOLS]; /* long-term pinned bytes per pool */
	uint64_t skipped_pages; /* migration left pages where they were: pinned */
	uint64_t drains; /* holders asked to drain before a frame was judged pinned */
	uint64_t drain_avoided; /* pages pinned before a drain and free after it */
	uint64_t refused; /* pins refused: count full */
};

/* Discards (mm/discard.h), under mm->lock. */
struct mm_discard_stats {
	uint64_t calls; /* mm_discard() and mm_discard_retry() calls that did work */
	uint64_t pages; /* discarded (read as zero) */
	uint64_t runs; /* maximal runs after sorting and merging */
	uint64_t punch_calls, alias_calls; /* host calls made for them */
	uint64_t rehomed; /* pages given fresh frames on their policy's pool */
	uint64_t misplaced; /* pages punched where they were: the policy's pool was full */
	uint64_t pinned_skipped; /* pinned pages left alone without deferral */
	uint64_t pinned_deferred; /* pinned pages queued (each time they were queued) */
	uint64_t pending_pages; /* queued now */
	uint64_t cancelled_pages; /* dropped from the queue by mm_discard_cancel() */
	uint64_t failed_pages; /* the host refused the punch: still resident */
	uint64_t huge_partial_pages; /* left: part of a 2 MiB frame of a huge pool */
	uint64_t returned_bytes[MM_MAX_POOLS]; /* bytes punched out of each pool */
};

struct mm_alias_stats {
	uint64_t mmap_calls; /* maximal runs (re)mapped into the alias */
	uint64_t mprotect_calls;
};

/* GPA ranges the alias did not take in the last commit (mm_commit()). */
struct mm_span {
	gpa_t gpa, end; /* [gpa, end) */
};

struct mm_alias_fail {
	struct mm_span *v;
	size_t n, cap;
	bool all; /* too many to record: treat every change of the batch as not applied */
	int err; /* first -errno, 0 if everything was applied */
	enum mm_host_call call; /* the call that failed first */
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
	unsigned char *alias; /* GPA 0 (NULL with alias_at_gpa): use mm_alias_at() */
	struct mm_alias_stats alias_stats;
	struct mm_alias_fail afail;
	uint64_t inject_state; /* PRNG for cfg.inject, under lock */
	uint64_t injected[MM_CALL_NR]; /* failures injected per call type */
	uint64_t map_budget; /* mappings this process may hold: 3/4 of vm.max_map_count */
	uint64_t maps_est; /* upper bound on its mappings now: counted, plus 2 per change
			    * since (each can split a mapping in three); under lock */
	bool fatal; /* map and alias may disagree: nothing more may be changed */
	unsigned wfix_failures; /* write-fault fix-ups refused by the alias in a row */
	char fatal_msg[400];
	uint64_t build_ns; /* time mm_create took */
	pthread_mutex_t lock; /* serialises map updates; not held while a batch copies */
	pthread_mutex_t mig_lock; /* one migration batch at a time; taken before lock */
	pthread_cond_t batch_cond; /* (with lock) a batch ended, or unmarked its frames */
	bool batch_active; /* under lock: a batch has frames marked FRAME_MIGRATING */
	uint64_t seq; /* bumped (under lock) by every change that may end a write fault */
	struct gen_tracker gens;
	int vcpu_holder; /* the vCPU set as a translation holder */
	struct defer_queue deferred; /* old frames waiting for every holder */
	struct mig_stats mig;
	struct mm_timeline tl; /* migration batches and write faults, under mm->lock */
	/* the migration copy threads (mm/copy_pool.h), made on the first large batch,
	 * destroyed by mm_destroy(); NULL until then */
	struct copy_pool *copy_pool;
	bool has_huge; /* some pool is huge (POOL_HUGETLB): the engine moves whole frames */
	struct mm_pin_stats pins;
	struct mm_discard_stats discard;
	struct mig_range *discard_q; /* pinned pages whose discard is deferred, sorted */
	size_t discard_qn, discard_qcap;
	struct mm_dma_holder *dma_holders[GEN_MAX_HOLDERS]; /* by holder index, NULL if none */
	char err[256];
};

/*
 * Validate @cfg, create the pools, place every guest node by its policy, build the map
 * and materialise the alias. Returns 0, or -EINVAL (bad layout) / -ENOMEM (the pools
 * cannot hold it) / -errno, with mm->err set; on error mm_destroy() releases everything.
 */
int mm_create(struct mm *mm, const struct mm_config *cfg) __attribute__((warn_unused_result));
void mm_destroy(struct mm *mm);

/* The host node whose pool backs @gpa, or -ENOENT. Takes mm->lock. */
int mm_gpa_node(struct mm *mm, gpa_t gpa);

/* Bytes of guest node @idx now on each pool (walks the map). Caller holds mm->lock. */
void mm_node_placement(const struct mm *mm, unsigned idx, uint64_t bytes[MM_MAX_POOLS]);

/* The pool index and byte offset backing @gpa, or -ENOENT. */
int mm_gpa_backing(const struct mm *mm, gpa_t gpa, unsigned *pool, uint64_t *offset);

static inline hpa_t mm_pa(unsigned pool, uint64_t frame)
{
	return ((hpa_t)pool << MM_POOL_SHIFT) | (frame << POOL_FRAME_SHIFT);
}

/* The pool for host node @node, created if needed. Returns its index or -errno.
 * Caller holds mm->lock (or is single-threaded). */
int mm_pool_get(struct mm *mm, unsigned node);

/*
 * Commit @b (s2_batch_commit_flags() with @flags) and check that the alias took all of
 * it. Caller holds mm->lock. Returns 0, or the first failed host call's -errno with
 * mm->afail listing the GPA ranges the alias did not take (still as before the batch:
 * the old mapping or a hole).
 */
int mm_commit(struct mm *mm, struct s2_batch *b, unsigned flags) __attribute__((warn_unused_result));

#define MM_COMMIT_RETRIES 3

/* As mm_commit(), then re-apply whatever the alias refused, up to MM_COMMIT_RETRIES more
 * times: for roll-backs, which must not give up on one transient failure. */
int mm_commit_retry(struct mm *mm, struct s2_batch *b, unsigned flags)
	__attribute__((warn_unused_result));

/* Make the alias match the map again over every range in @f, whole (each mmap'ed from
 * the map as it is now), retrying up to MM_COMMIT_RETRIES times. Returns 0 or -errno. */
int mm_alias_resync(struct mm *mm, const struct mm_alias_fail *f) __attribute__((warn_unused_result));

/* The map and the alias can no longer be made to agree: record why (@fmt) with the
 * failed call from mm->afail, stop all changes and tell the VMM. Caller holds mm->lock. */
void mm_fatal(struct mm *mm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The number of mappings (VMAs) this process holds now, from /proc/self/maps; 0 if it
 * cannot be read. */
uint64_t mm_process_mappings(void);

/* Should this host call fail now (fault injection)? Counts it. Caller holds mm->lock. */
bool mm_inject_fail(struct mm *mm, enum mm_host_call c);

/* Does @c place the alias at host address == GPA with a floor inside a 2 MiB window
 * (the proc accelerator: vm.mmap_min_addr is not a multiple of 2 MiB)? Then that window
 * cannot be one huge mapping (hugetlbfs maps whole, 2 MiB-aligned pages only), and huge
 * pools get a small part (POOL_SMALL_PART) to back it. */
static inline bool mm_cfg_small_window(const struct mm_config *c)
{
	return c->alias_at_gpa && (c->alias_floor & (MM_SMALL_WINDOW - 1));
}

/* Is @gpa in that window? Its frames are always small: on a huge pool, from its small
 * part (pool_alloc_small*()); every other 2 MiB window of a huge pool is one huge frame. */
static inline bool mm_gpa_small(const struct mm *mm, gpa_t gpa)
{
	return mm_cfg_small_window(&mm->cfg) &&
	       gpa / MM_SMALL_WINDOW == mm->cfg.alias_floor / MM_SMALL_WINDOW;
}

/* pool_alloc_upto() of frames to back guest memory at @gpa: from @p's small part in the
 * window a huge page cannot back. */
static inline uint64_t mm_pool_alloc_upto(const struct mm *mm, struct pool *p, gpa_t gpa,
					  uint64_t max, uint64_t align, uint64_t *first)
{
	return mm_gpa_small(mm, gpa) ? pool_alloc_small_upto(p, max, align, first)
				     : pool_alloc_upto(p, max, align, first);
}

/* The alias address of @gpa: integer arithmetic, as the alias may start at address 0. */
static inline void *mm_alias_at(const struct mm *mm, gpa_t gpa)
{
	return (void *)((uintptr_t)mm->alias + gpa);
}

/*
 * A vCPU's write to @gpa (~0 if unknown) faulted. Waits for a migration batch in
 * progress, or makes a lazily write-protected page writable. @seen_seq is mm->seq as
 * read before the vCPU entered the guest. Returns 0 if re-entering can make progress,
 * -EFAULT if the page is simply not writable.
 */
int mm_handle_write_fault(struct mm *mm, gpa_t gpa, uint64_t seen_seq);

/* The same with mm->lock held and a known @gpa: make its leaf writable if the lazy
 * policy left it read-only. Returns 0 or -EFAULT. */
int mm_handle_write_fault_locked(struct mm *mm, gpa_t gpa);

static inline uint64_t mm_seq(struct mm *mm)
{
	return __atomic_load_n(&mm->seq, __ATOMIC_ACQUIRE);
}

/* The `kvm` backend's ops; ctx is the struct mm. */
extern const struct s2_backend_ops mm_kvm_backend_ops;

#endif
