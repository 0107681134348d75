// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <numa.h>
#include <numaif.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mm/pool.h"

#define CHUNK POOL_HUGE_FRAMES

#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21u << 26) /* log2(2 MiB) << MFD_HUGE_SHIFT (linux/memfd.h) */
#endif

bool pool_node_is_real(unsigned node)
{
	if (numa_available() < 0)
		return node == 0;
	return (int)node <= numa_max_node() && numa_bitmask_isbitset(numa_all_nodes_ptr, node);
}

int pool_local_node(void)
{
	int cpu, n;

	if (numa_available() < 0)
		return -1;
	cpu = sched_getcpu();
	n = cpu >= 0 ? numa_node_of_cpu(cpu) : 0;
	return n >= 0 ? n : 0;
}

uint64_t pool_node_bytes(unsigned node)
{
	long long sz;
	int real = pool_node_is_real(node) ? (int)node : pool_local_node();
	long pages = sysconf(_SC_PHYS_PAGES);
	uint64_t total = pages > 0 ? (uint64_t)pages * (uint64_t)sysconf(_SC_PAGESIZE) : 0;

	/* With one memory node all of RAM is that node's, whatever its sysfs meminfo says
	 * (hotplugged memory may be missing there, as on this development machine). */
	if (real < 0 || numa_available() < 0 || numa_num_configured_nodes() <= 1)
		return total;
	sz = numa_node_size64(real, NULL);
	return sz > 0 ? (uint64_t)sz : 0;
}

uint64_t pool_huge_free(int node, char *nr_file, size_t len)
{
	char dir[96], path[128];
	unsigned long long n = 0;
	FILE *f;

	if (node >= 0 && numa_available() >= 0)
		snprintf(dir, sizeof(dir),
			 "/sys/devices/system/node/node%d/hugepages/hugepages-2048kB", node);
	else
		snprintf(dir, sizeof(dir), "/sys/kernel/mm/hugepages/hugepages-2048kB");
	if (nr_file)
		snprintf(nr_file, len, "%s/nr_hugepages", dir);
	snprintf(path, sizeof(path), "%s/free_hugepages", dir);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fscanf(f, "%llu", &n) != 1)
		n = 0;
	fclose(f);
	return n;
}

/*
 * The pool's own mapping of every frame: the huge memfd (2 MiB aligned, as hugetlbfs
 * needs) and right after it the small part's memfd, so frame f is at base + f * 4 KiB
 * whichever file holds it. Returns the base or MAP_FAILED (errno set).
 */
static unsigned char *pool_map(struct pool *p)
{
	uint64_t len = p->nr_frames << POOL_FRAME_SHIFT, hlen = p->huge_frames << POOL_FRAME_SHIFT;
	uint64_t align = CHUNK << POOL_FRAME_SHIFT;
	unsigned char *res, *base;
	int err;

	if (p->small_fd < 0)
		return mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, p->fd,
			    0);
	res = mmap(NULL, len + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
		   0);
	if (res == MAP_FAILED)
		return MAP_FAILED;
	base = (unsigned char *)(((uintptr_t)res + align - 1) & ~(uintptr_t)(align - 1));
	if (mmap(base, hlen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE | MAP_FIXED, p->fd,
		 0) == MAP_FAILED ||
	    mmap(base + hlen, len - hlen, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_NORESERVE | MAP_FIXED, p->small_fd, 0) == MAP_FAILED) {
		err = errno;
		munmap(res, len + align);
		errno = err;
		return MAP_FAILED;
	}
	/* keep exactly [base, base + len): pool_destroy() unmaps that */
	if (base > res)
		munmap(res, (size_t)(base - res));
	if (base + len < res + len + align)
		munmap(base + len, (size_t)(res + len + align - (base + len)));
	return base;
}

int pool_create(struct pool *p, unsigned node, uint64_t bytes, unsigned flags, char *err,
		size_t errlen)
{
	unsigned fail = flags & (POOL_FAIL_MEMFD | POOL_FAIL_MBIND);
	uint64_t len;
	char name[40];

	memset(p, 0, sizeof(*p));
	p->fd = -1;
	p->small_fd = -1;
	p->node = node;
	p->emulated = !pool_node_is_real(node);
	p->bound_node = p->emulated ? pool_local_node() : (int)node;
	p->huge = flags & POOL_HUGETLB;
	if (p->huge) {
		char nr_file[160];
		uint64_t free_pages = pool_huge_free(p->bound_node, nr_file, sizeof(nr_file));

		if (!free_pages) {
			snprintf(err, errlen,
				 "host node %u: no free 2 MiB huge pages on host node %d for "
				 "--hugepages (reserve some: echo N > %s)",
				 node, p->bound_node < 0 ? 0 : p->bound_node, nr_file);
			return -ENOMEM;
		}
		if (bytes > free_pages * (CHUNK << POOL_FRAME_SHIFT))
			bytes = free_pages * (CHUNK << POOL_FRAME_SHIFT);
		/* frame offsets, small part included, stay below POOL_MAX_BYTES */
		if ((flags & POOL_SMALL_PART) &&
		    bytes > POOL_MAX_BYTES - ((uint64_t)POOL_SMALL_FRAMES << POOL_FRAME_SHIFT))
			bytes = POOL_MAX_BYTES - ((uint64_t)POOL_SMALL_FRAMES << POOL_FRAME_SHIFT);
	}
	p->nr_frames = (bytes >> POOL_FRAME_SHIFT) & ~(uint64_t)(CHUNK - 1);
	if (!p->nr_frames) {
		snprintf(err, errlen, "host node %u: pool size below 2 MiB", node);
		return -EINVAL;
	}
	if (p->huge) {
		p->huge_frames = p->nr_frames;
		if (flags & POOL_SMALL_PART)
			p->nr_frames += POOL_SMALL_FRAMES;
	}
	len = p->nr_frames << POOL_FRAME_SHIFT;
	p->bitmap = calloc((p->nr_frames + 63) / 64, sizeof(uint64_t));
	p->chunk_free = malloc(p->nr_frames / CHUNK * sizeof(uint16_t));
	if (!p->bitmap || !p->chunk_free) {
		snprintf(err, errlen, "host node %u: out of memory for the frame allocator", node);
		goto fail;
	}
	for (uint64_t c = 0; c < p->nr_frames / CHUNK; c++)
		p->chunk_free[c] = CHUNK;
	p->nr_free = p->nr_frames;

	snprintf(name, sizeof(name), "s2vm-node%u", node);
	errno = ENOMEM;
	p->fd = (fail & POOL_FAIL_MEMFD) ? -1
				       : memfd_create(name, MFD_CLOEXEC |
							    (p->huge ? MFD_HUGETLB | MFD_HUGE_2MB : 0));
	if (p->fd < 0 ||
	    ftruncate(p->fd, (off_t)((p->huge ? p->huge_frames : p->nr_frames)
				     << POOL_FRAME_SHIFT)) < 0) {
		snprintf(err, errlen, "host node %u: cannot create a %llu MiB %smemfd: %s", node,
			 (unsigned long long)(len >> 20), p->huge ? "hugetlb " : "",
			 strerror(errno));
		goto fail;
	}
	if (p->nr_frames > p->huge_frames && p->huge) {
		snprintf(name, sizeof(name), "s2vm-node%u-small", node);
		p->small_fd = memfd_create(name, MFD_CLOEXEC);
		if (p->small_fd < 0 ||
		    ftruncate(p->small_fd,
			      (off_t)((p->nr_frames - p->huge_frames) << POOL_FRAME_SHIFT)) < 0) {
			snprintf(err, errlen,
				 "host node %u: cannot create the memfd of its small part: %s",
				 node, strerror(errno));
			goto fail;
		}
	}
	p->base = pool_map(p);
	if (p->base == MAP_FAILED) {
		p->base = NULL;
		snprintf(err, errlen, "host node %u: cannot map its pool: %s", node,
			 strerror(errno));
		goto fail;
	}
	/* Bind before anything touches the memory: shmem keeps the policy per file, so
	 * every later mapping (the guest alias) allocates on this node too. One call covers
	 * both parts. */
	if (p->bound_node >= 0) {
		unsigned long mask[16] = { 0 };

		mask[p->bound_node / (8 * sizeof(long))] |= 1ul << (p->bound_node % (8 * sizeof(long)));
		errno = ENOMEM;
		if ((fail & POOL_FAIL_MBIND) ||
		    mbind(p->base, len, MPOL_BIND, mask, sizeof(mask) * 8, 0) < 0) {
			snprintf(err, errlen, "host node %u: mbind(MPOL_BIND, node %d): %s", node,
				 p->bound_node, strerror(errno));
			goto fail;
		}
	}
	return 0;
fail:
	pool_destroy(p);
	return -ENOMEM;
}

void pool_destroy(struct pool *p)
{
	if (p->base)
		munmap(p->base, p->nr_frames << POOL_FRAME_SHIFT);
	if (p->fd >= 0)
		close(p->fd);
	if (p->small_fd >= 0)
		close(p->small_fd);
	free(p->bitmap);
	free(p->chunk_free);
	memset(p, 0, sizeof(*p));
	p->fd = -1;
	p->small_fd = -1;
}

static void mark(struct pool *p, uint64_t first, uint64_t n, bool used)
{
	for (uint64_t f = first; f < first + n; f++) {
		if (used)
			p->bitmap[f / 64] |= 1ull << (f % 64);
		else
			p->bitmap[f / 64] &= ~(1ull << (f % 64));
		p->chunk_free[f / CHUNK] += used ? (uint16_t)-1 : 1;
	}
	p->nr_free += used ? -n : n;
}

/* The frames one allocation may use: a huge pool's huge part [0, huge_frames), or the
 * small frames [huge_frames, nr_frames) (every frame of a pool without huge pages). */
struct part {
	uint64_t lo, hi; /* frames, multiples of CHUNK */
	bool huge;
};

static struct part part_of(const struct pool *p, bool small)
{
	if (small || !p->huge)
		return (struct part){ p->huge_frames, p->nr_frames, false };
	return (struct part){ 0, p->huge_frames, true };
}

/* Length of the free run at @f, at most @max, not past frame @hi. Skips whole free
 * chunks quickly. */
static uint64_t free_run(const struct pool *p, uint64_t f, uint64_t max, uint64_t hi)
{
	uint64_t n = 0;

	while (n < max && f + n < hi) {
		uint64_t g = f + n;

		if (g % CHUNK == 0 && p->chunk_free[g / CHUNK] == CHUNK && max - n >= CHUNK &&
		    g + CHUNK <= hi) {
			n += CHUNK;
			continue;
		}
		if (pool_frame_used(p, g))
			break;
		n++;
	}
	return n;
}

/* Find the first aligned position in @pt (next-fit from the hint) whose free run is
 * maximal up to @max; stop early at a run of @max. Returns the run length, 0 if nothing
 * is free. */
static uint64_t find(const struct pool *p, struct part pt, uint64_t max, uint64_t align,
		     uint64_t *first)
{
	uint64_t c0 = pt.lo / CHUNK, nch = (pt.hi - pt.lo) / CHUNK, best = 0;
	uint64_t h = p->hint >= c0 && p->hint - c0 < nch ? p->hint - c0 : 0;

	if (!align)
		align = 1;
	for (uint64_t i = 0; i < nch; i++) {
		uint64_t c = c0 + (h + i) % nch;

		if (p->chunk_free[c] == 0)
			continue;
		for (uint64_t f = c * CHUNK; f < (c + 1) * CHUNK; f++) {
			uint64_t run;

			if (f % align || pool_frame_used(p, f))
				continue;
			run = free_run(p, f, max, pt.hi);
			if (run > best) {
				best = run;
				*first = f;
				if (best == max)
					return best;
			}
			if (align >= CHUNK)
				break;
			f += run ? run - 1 : 0;
		}
	}
	return best;
}

/*
 * A huge pool backs frames as it hands them out, through its own node-bound mapping
 * (hugetlbfs keeps no per-file policy: a fault through the guest alias would allocate
 * on the faulting thread's node). Returns how many of [f, f + n) are backed, a multiple
 * of CHUNK; the rest is given back to the allocator. Small frames: all of them (the
 * first touch backs them, on the node the file's policy names).
 */
static uint64_t huge_back(struct pool *p, uint64_t f, uint64_t n)
{
	uint64_t done = 0;

	if (!pool_frame_huge(p, f))
		return n;
	/* chunk by chunk: a partial failure keeps what was backed */
	while (done < n && !pool_populate(p, f + done, CHUNK))
		done += CHUNK;
	if (done < n)
		mark(p, f + done, n - done, false);
	return done;
}

/* A request in whole 2 MiB frames when @pt is huge: @n rounded down, @align up. */
static void huge_round(struct part pt, uint64_t *n, uint64_t *align)
{
	if (!pt.huge)
		return;
	*n &= ~(uint64_t)(CHUNK - 1);
	if (*align < CHUNK)
		*align = CHUNK;
	*align = (*align + CHUNK - 1) & ~(uint64_t)(CHUNK - 1);
}

/* Only huge-part allocations move the next-fit hint: the small part is searched from
 * its start (it holds two chunks). */
static void hint_after(struct pool *p, struct part pt, uint64_t f, uint64_t n)
{
	if (pt.huge || !p->huge)
		p->hint = (f + n) / CHUNK;
}

static int alloc_part(struct pool *p, struct part pt, uint64_t n, uint64_t align, uint64_t *first)
{
	uint64_t f = 0, got;

	if (pt.huge && n % CHUNK)
		return -EINVAL;
	huge_round(pt, &n, &align);
	if (!n || n > p->nr_free || find(p, pt, n, align, &f) < n)
		return -ENOMEM;
	mark(p, f, n, true);
	got = huge_back(p, f, n);
	if (got < n) { /* exactly n or nothing: give back the huge pages it did get */
		if (got) {
			mark(p, f, got, false);
			(void)pool_punch_uncounted(p, f, got);
		}
		return -ENOMEM;
	}
	hint_after(p, pt, f, n);
	*first = f;
	return 0;
}

static uint64_t alloc_part_upto(struct pool *p, struct part pt, uint64_t max, uint64_t align,
				uint64_t *first)
{
	uint64_t f = 0, n;

	huge_round(pt, &max, &align);
	if (!max || !p->nr_free)
		return 0;
	n = find(p, pt, max, align, &f);
	if (pt.huge)
		n &= ~(uint64_t)(CHUNK - 1);
	if (!n)
		return 0;
	mark(p, f, n, true);
	n = huge_back(p, f, n);
	if (!n)
		return 0;
	hint_after(p, pt, f, n);
	*first = f;
	return n;
}

int pool_alloc(struct pool *p, uint64_t n, uint64_t align, uint64_t *first)
{
	return alloc_part(p, part_of(p, false), n, align, first);
}

uint64_t pool_alloc_upto(struct pool *p, uint64_t max, uint64_t align, uint64_t *first)
{
	return alloc_part_upto(p, part_of(p, false), max, align, first);
}

int pool_alloc_small(struct pool *p, uint64_t n, uint64_t align, uint64_t *first)
{
	return alloc_part(p, part_of(p, true), n, align, first);
}

uint64_t pool_alloc_small_upto(struct pool *p, uint64_t max, uint64_t align, uint64_t *first)
{
	return alloc_part_upto(p, part_of(p, true), max, align, first);
}

uint64_t pool_alloc_at(struct pool *p, uint64_t first, uint64_t n)
{
	struct part pt = part_of(p, !pool_frame_huge(p, first));
	uint64_t got;

	if (first >= p->nr_frames || (pt.huge && first % CHUNK))
		return 0;
	if (pt.huge)
		n &= ~(uint64_t)(CHUNK - 1);
	got = free_run(p, first, n, pt.hi);
	if (pt.huge)
		got &= ~(uint64_t)(CHUNK - 1);
	if (got) {
		mark(p, first, got, true);
		got = huge_back(p, first, got);
	}
	return got;
}

void pool_free(struct pool *p, uint64_t first, uint64_t n)
{
	mark(p, first, n, false);
	/* look here first next time: recently freed frames are still backed (warm) */
	if (first / CHUNK < p->hint)
		p->hint = first / CHUNK;
}

uint64_t pool_small_used_frames(const struct pool *p)
{
	uint64_t n = 0;

	for (uint64_t c = p->huge_frames / CHUNK; c < p->nr_frames / CHUNK; c++)
		n += CHUNK - p->chunk_free[c];
	return n;
}

int pool_file_span(const struct pool *p, uint64_t first, uint64_t *n, uint64_t *off)
{
	if (p->small_fd < 0 || first < p->huge_frames) {
		if (p->small_fd >= 0 && first + *n > p->huge_frames)
			*n = p->huge_frames - first;
		*off = first << POOL_FRAME_SHIFT;
		return p->fd;
	}
	*off = (first - p->huge_frames) << POOL_FRAME_SHIFT;
	return p->small_fd;
}

static uint64_t file_resident(int fd)
{
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0)
		return 0;
	return (uint64_t)st.st_blocks * 512;
}

uint64_t pool_resident_bytes(const struct pool *p)
{
	return file_resident(p->fd) + file_resident(p->small_fd);
}

uint64_t pool_small_resident_bytes(const struct pool *p)
{
	return p->huge ? file_resident(p->small_fd) : file_resident(p->fd);
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

int pool_populate(struct pool *p, uint64_t first, uint64_t n)
{
	if (madvise(p->base + (first << POOL_FRAME_SHIFT), n << POOL_FRAME_SHIFT,
		    MADV_POPULATE_WRITE) < 0)
		return -errno;
	return 0;
}

int pool_punch_uncounted(const struct pool *p, uint64_t first, uint64_t n)
{
	while (n) { /* one call per file the run reaches */
		uint64_t k = n, off;
		int fd = pool_file_span(p, first, &k, &off);

		if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
			      (off_t)(k << POOL_FRAME_SHIFT)) < 0)
			return -errno;
		first += k;
		n -= k;
	}
	return 0;
}

void pool_count_punch(struct pool *p, uint64_t n)
{
	p->punched_frames += n;
	p->punch_calls++;
}

int pool_punch(struct pool *p, uint64_t first, uint64_t n)
{
	int r = pool_punch_uncounted(p, first, n);

	if (!r)
		pool_count_punch(p, n);
	return r;
}

bool pool_has_data(const struct pool *p, uint64_t first, uint64_t n)
{
	while (n) {
		uint64_t k = n, o;
		int fd = pool_file_span(p, first, &k, &o);
		off_t off = (off_t)o, d = lseek(fd, off, SEEK_DATA);

		if (d < 0 ? errno != ENXIO : d < off + (off_t)(k << POOL_FRAME_SHIFT))
			return true;
		first += k;
		n -= k;
	}
	return false;
}
