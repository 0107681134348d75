/* SPDX-License-Identifier: MIT */
/*
 * A host node pool: one memfd whose pages are bound to a host NUMA node with
 * mbind(MPOL_BIND) before first touch, plus a frame allocator (4 KiB frames; runs aligned
 * as asked, 2 MiB for huge frames). A node the host does not have is emulated: its own
 * memfd, bound to a real node, so every copy and remap is real; only distance is missing.
 *
 * A huge pool (POOL_HUGETLB) is a hugetlbfs memfd of 2 MiB pages: it hands out whole
 * 2 MiB frames only (allocations are rounded to them) and backs each one as it is
 * allocated (MADV_POPULATE_WRITE through the pool's own, node-bound mapping), so running
 * out of the host's huge pages is an allocation failure, never a fault in the guest.
 *
 * A huge pool may also have a *small part* (POOL_SMALL_PART): POOL_SMALL_FRAMES 4 KiB
 * frames after its huge ones, [huge_frames, nr_frames), on a second, ordinary memfd bound
 * to the same node, for the one 2 MiB window of guest RAM a huge page cannot back (under
 * the proc accelerator the alias starts at vm.mmap_min_addr, not at a 2 MiB boundary).
 * Frame numbers, the pool's own mapping and the map's output addresses run across both
 * parts as one; only the file behind a frame differs (pool_file_span()). The plain
 * allocation calls never hand out small-part frames; the _small calls hand out only
 * those (on a pool without huge pages, its frames are all small: the calls are the same).
 *
 * Locking: none; the owner (mm) serialises.
 */
#ifndef S2VM_MM_POOL_H
#define S2VM_MM_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POOL_FRAME_SHIFT 12
#define POOL_HUGE_FRAMES 512u /* 4 KiB frames per 2 MiB huge frame */
/* The most one pool holds: the map's output addresses keep the frame's byte offset in
 * 40 bits (mm/mm.h, MM_POOL_SHIFT); frame records number frames in 32 bits. */
#define POOL_MAX_BYTES (1ull << 40)

struct pool {
	unsigned node; /* host node as named on the command line */
	int bound_node; /* real node the pages are bound to, -1 if unbound (no NUMA) */
	bool emulated; /* @node does not exist on this host */
	bool huge; /* hugetlbfs, 2 MiB pages: frames [0, huge_frames) go in whole 2 MiB units */
	int fd; /* memfd of [0, huge_frames) on a huge pool, of every frame otherwise (sparse) */
	int small_fd; /* memfd of a huge pool's small part [huge_frames, nr_frames), or -1 */
	unsigned char *base; /* the pool's own shared mapping of every frame (both memfds) */
	uint64_t nr_frames; /* capacity in 4 KiB frames, a multiple of 512 */
	uint64_t huge_frames; /* frames on 2 MiB pages: nr_frames, less a small part; 0 if
			       * not huge */
	uint64_t nr_free;
	uint64_t *bitmap; /* bit set: frame in use */
	uint16_t *chunk_free; /* free frames in each 2 MiB chunk, 0..512 */
	uint64_t hint; /* next-fit start, in chunks */
	uint64_t punched_frames; /* frames returned to the host by pool_punch() */
	uint64_t punch_calls; /* successful pool_punch() calls */
};

/* Is host node @node present (with memory) on this host? */
bool pool_node_is_real(unsigned node);
/* The host node the calling thread runs on; -1 without NUMA support. */
int pool_local_node(void);
/* Bytes of memory on host node @node (for an emulated node: on the node it binds to). */
uint64_t pool_node_bytes(unsigned node);

#define POOL_FAIL_MEMFD 1u /* fault injection: memfd_create fails with ENOMEM */
#define POOL_FAIL_MBIND 2u /* fault injection: mbind fails with ENOMEM */
#define POOL_HUGETLB 4u /* back the pool with 2 MiB huge pages */
#define POOL_SMALL_PART 8u /* with POOL_HUGETLB: add a small part of 4 KiB frames */

/* Frames of a small part: one 2 MiB window of guest RAM, and room for a second while
 * the first is queued behind a migration's generation (freed later). */
#define POOL_SMALL_FRAMES (2 * POOL_HUGE_FRAMES)

/* Free 2 MiB huge pages on host node @node (the whole host's without NUMA), and the
 * sysfs file that sets how many there are, for error messages. */
uint64_t pool_huge_free(int node, char *nr_file, size_t len);

/*
 * Create a pool for host node @node holding up to @bytes (rounded down to 2 MiB).
 * @flags: POOL_HUGETLB for huge pages (the capacity is then also limited to the huge
 * pages free on the bound node now, and none free is an error naming the sysfs file to
 * raise), with POOL_SMALL_PART also POOL_SMALL_FRAMES small frames after the huge ones
 * (not counted in @bytes); POOL_FAIL_* (tests) make those host calls fail instead of
 * being made.
 * Returns 0, or -errno with @err (of @errlen bytes) naming the failed step; nothing is
 * left behind.
 */
int pool_create(struct pool *p, unsigned node, uint64_t bytes, unsigned flags, char *err,
		size_t errlen) __attribute__((warn_unused_result));
void pool_destroy(struct pool *p);

/* Allocate exactly @n contiguous frames starting at a multiple of @align frames (a huge
 * pool: @n must be whole 2 MiB frames, else -EINVAL). Returns 0 and *@first, or -ENOMEM
 * leaving the pool unchanged (also when a huge pool cannot get its huge pages). */
int pool_alloc(struct pool *p, uint64_t n, uint64_t align, uint64_t *first)
	__attribute__((warn_unused_result));

/* Allocate the longest free run of at most @max frames starting at a multiple of @align
 * (a huge pool: whole 2 MiB frames, @max rounded down to them). Returns the number of
 * frames (0 if none), *@first its start. */
uint64_t pool_alloc_upto(struct pool *p, uint64_t max, uint64_t align, uint64_t *first);

/* The same two calls for small frames: a huge pool's small part only (nothing if it has
 * none), any frame of a pool without huge pages; 4 KiB granularity, @align as asked. */
int pool_alloc_small(struct pool *p, uint64_t n, uint64_t align, uint64_t *first)
	__attribute__((warn_unused_result));
uint64_t pool_alloc_small_upto(struct pool *p, uint64_t max, uint64_t align, uint64_t *first);

/* Allocate the free frames from exactly @first on, at most @n, stopping at the first used
 * one and at the end of @first's part (a huge frame: whole 2 MiB frames from a 2 MiB
 * boundary). Returns how many (0 if @first is used or out of range). */
uint64_t pool_alloc_at(struct pool *p, uint64_t first, uint64_t n);

/* Is frame @f on a 2 MiB huge page (whole frames only: no 4 KiB map, punch or free)? */
static inline bool pool_frame_huge(const struct pool *p, uint64_t f)
{
	return f < p->huge_frames;
}

/* The file behind frame @first: returns its descriptor, sets *@off to @first's byte
 * offset in it and returns in *@n how many of @n frames from @first it holds (a run
 * may not cross from the huge part into the small part). */
int pool_file_span(const struct pool *p, uint64_t first, uint64_t *n, uint64_t *off);

/* Free [@first, @first + @n). Every frame must be allocated. */
void pool_free(struct pool *p, uint64_t first, uint64_t n);

static inline bool pool_frame_used(const struct pool *p, uint64_t f)
{
	return (p->bitmap[f / 64] >> (f % 64)) & 1;
}

/* Bytes the host has actually backed in this pool (pages touched, not punched). */
uint64_t pool_resident_bytes(const struct pool *p);
/* Of those, the bytes on 4 KiB pages: a huge pool's small part, or all of a small pool. */
uint64_t pool_small_resident_bytes(const struct pool *p);
/* Frames in use on 4 KiB pages: in a huge pool's small part, or all of a small pool's. */
uint64_t pool_small_used_frames(const struct pool *p);

/* Allocate and map frames' memory now (MADV_POPULATE_WRITE), instead of one page fault
 * per 4 KiB on first touch. Returns 0 or -errno (then the first touch does it). */
int pool_populate(struct pool *p, uint64_t first, uint64_t n);

/* Do frames [first, first + n) hold any data, i.e. are they not all holes? (SEEK_DATA:
 * swapped-out pages count as data.) True also when the host cannot tell. */
bool pool_has_data(const struct pool *p, uint64_t first, uint64_t n);

/* Give frames' memory back to the host (fallocate PUNCH_HOLE). Returns 0 or -errno. */
int pool_punch(struct pool *p, uint64_t first, uint64_t n);
/* The same without touching the pool's counters (callers without the owner's lock),
 * and the counting done afterwards under it. */
int pool_punch_uncounted(const struct pool *p, uint64_t first, uint64_t n);
void pool_count_punch(struct pool *p, uint64_t n);

#endif
