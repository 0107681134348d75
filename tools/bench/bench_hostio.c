// SPDX-License-Identifier: MIT
/*
 * bench-hostio --file PATH --mode seqread|seqwrite|randread|randwrite --bs SIZE --qd N
 *              --seconds S [--direct] [--repeat N] [--seed N] [--json]
 *
 * The host-side baseline for blkbench.elf on s2vm's virtio-blk: what the host itself gets
 * from io_uring on the same file, with the same block size and queue depth. One io_uring,
 * QD requests kept in flight: each completion is reaped and its slot resubmitted at once.
 * Each slot has its own buffer (4 KiB aligned, so --direct works; touched in setup). Plain
 * IORING_OP_READ/WRITE into ordinary memory, as s2vm's queues issue them when
 * registered=off (its default): no fixed buffers, no SQPOLL.
 *
 *   seqread, seqwrite    consecutive SIZE blocks from offset 0, wrapping at the end of
 *                        the file (its size rounded down to a multiple of SIZE)
 *   randread, randwrite  uniformly random SIZE-aligned offsets inside the file
 *                        (xorshift64*, --seed, default 1)
 *
 * Untimed setup (reported apart): open (O_DIRECT with --direct), buffers, ring. Then
 * --repeat windows of --seconds each, back to back on the same ring; a window counts every
 * request reaped before its deadline, the requests still in flight then are reaped
 * uncounted. Time is CLOCK_MONOTONIC. Per window: MB/s (10^6 bytes per second), IOPS,
 * and latency from just before the io_uring_enter that submitted a request to just after
 * the one that reaped it: p50, p99 and mean in us. Percentiles come from a log-linear
 * histogram whose buckets are 1/64 of a power of two wide (within 1.6%). With --repeat N
 * the median over the N windows is reported. Writes write the slot's buffer, a pattern set
 * in setup; nothing is fsync()ed (buffered writes measure the page cache, as a guest's do
 * through s2vm's buffered disk).
 *
 * Exit: 0; 2 on bad options (message on stderr); 77 when --direct is asked for and the
 * file's filesystem refuses O_DIRECT (open fails with EINVAL), or io_uring is not
 * available here (ENOSYS, EPERM); 1 on any other failure (open, a request's error, a short
 * transfer).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <liburing.h>
#include <linux/fs.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_args.h"
#include "s2vm/clock.h"

#define HOSTIO_QD_MAX	   1024
#define HOSTIO_BS_MAX	   (64ull << 20)
#define HOSTIO_SECONDS_MAX 3600.0
#define HOSTIO_REPEAT_MAX  1000
#define HOSTIO_BUF_ALIGN   4096

/* Latency histogram: values below 2^SUB_BITS ns exact, above in 2^SUB_BITS buckets per
 * power of two. */
#define HIST_SUB_BITS 6
#define HIST_SUB      (1u << HIST_SUB_BITS)
#define HIST_BUCKETS  (2 * HIST_SUB + (64 - HIST_SUB_BITS - 1) * HIST_SUB)

enum hostio_mode { M_SEQREAD, M_SEQWRITE, M_RANDREAD, M_RANDWRITE, M_NR };
static const char *const mode_names[M_NR] = {"seqread", "seqwrite", "randread", "randwrite"};

/* What to run; filled from the command line. */
struct hostio_opts {
	const char *path;
	enum hostio_mode mode;
	uint64_t bs;	 /* bytes per request, a multiple of 512 in [512, 64 MiB] */
	unsigned int qd; /* requests in flight, [1, HOSTIO_QD_MAX] */
	double seconds;	 /* length of one measured window, (0, 3600] */
	int repeat;	 /* windows, [1, 1000] */
	uint64_t seed;	 /* random offsets; non-zero */
	bool direct;	 /* O_DIRECT */
	bool json;
};

/* One benchmark's state: the file, the ring, a buffer and a submit time per slot. */
struct hostio {
	const struct hostio_opts *o;
	int fd;
	uint64_t file_bytes; /* size of the file */
	uint64_t nblocks;    /* whole bs blocks in the file, >= 1 */
	uint64_t next_block; /* seq modes: the next block to issue, [0, nblocks) */
	uint64_t rng;	     /* rand modes: xorshift64* state, non-zero */
	struct io_uring ring;
	char *bufs;	      /* qd buffers of stride bytes each */
	uint64_t stride;      /* bs rounded up to HOSTIO_BUF_ALIGN */
	uint64_t *submit_ns;  /* per slot: CLOCK_MONOTONIC at its submission */
	uint64_t *off;	      /* per slot: file offset of the request in flight */
	unsigned int *reaped; /* scratch: slots reaped by one wait */
	uint64_t hist[HIST_BUCKETS];
};

/* One window's result. */
struct hostio_res {
	uint64_t ops; /* requests completed before the deadline */
	uint64_t ns;  /* window start to the last counted completion */
	uint64_t lat_sum_ns;
	double mbps, iops, p50_us, p99_us, mean_us;
};

static unsigned int hist_bucket(uint64_t v)
{
	unsigned int e;

	if (v < 2 * HIST_SUB)
		return (unsigned int)v;
	e = 63u - (unsigned int)__builtin_clzll(v); /* >= HIST_SUB_BITS + 1 */
	return 2 * HIST_SUB + (e - HIST_SUB_BITS - 1) * HIST_SUB +
	       (unsigned int)((v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1));
}

/* The middle of bucket @b, in ns. */
static double hist_value(unsigned int b)
{
	unsigned int e, sub;

	if (b < 2 * HIST_SUB)
		return b;
	e = (b - 2 * HIST_SUB) / HIST_SUB + HIST_SUB_BITS + 1;
	sub = (b - 2 * HIST_SUB) % HIST_SUB;
	return ((double)(HIST_SUB + sub) + 0.5) * (double)(1ull << (e - HIST_SUB_BITS));
}

/* The @p quantile (0 < p <= 1) of @n samples in @h, in ns: the smallest bucket holding
 * the ceil(p * n)-th sample. */
static double hist_quantile(const uint64_t *h, uint64_t n, double p)
{
	uint64_t want = (uint64_t)ceil(p * (double)n), seen = 0;

	if (want < 1)
		want = 1;
	for (unsigned int b = 0; b < HIST_BUCKETS; b++) {
		seen += h[b];
		if (seen >= want)
			return hist_value(b);
	}
	return 0;
}

static uint64_t hostio_rand(struct hostio *h)
{
	h->rng ^= h->rng >> 12;
	h->rng ^= h->rng << 25;
	h->rng ^= h->rng >> 27;
	return h->rng * 0x2545f4914f6cdd1dull;
}

/* The file offset of the next request. */
static uint64_t hostio_next_off(struct hostio *h)
{
	uint64_t b;

	if (h->o->mode == M_SEQREAD || h->o->mode == M_SEQWRITE) {
		b = h->next_block;
		h->next_block = b + 1 == h->nblocks ? 0 : b + 1;
	} else {
		b = hostio_rand(h) % h->nblocks;
	}
	return b * h->o->bs;
}

/* Queue one request for @slot at the next offset. Returns 0, or -EBUSY when the SQ is
 * full (cannot happen: the ring has qd entries and at most qd requests exist). */
static int hostio_prep(struct hostio *h, unsigned int slot)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&h->ring);
	char *buf = h->bufs + (uint64_t)slot * h->stride;

	if (!sqe)
		return -EBUSY;
	h->off[slot] = hostio_next_off(h);
	if (h->o->mode == M_SEQREAD || h->o->mode == M_RANDREAD)
		io_uring_prep_read(sqe, h->fd, buf, (unsigned int)h->o->bs, h->off[slot]);
	else
		io_uring_prep_write(sqe, h->fd, buf, (unsigned int)h->o->bs, h->off[slot]);
	io_uring_sqe_set_data64(sqe, slot);
	return 0;
}

/* Submit what is queued, stamping @n slots of @slots with the submission time. Returns 0,
 * -EAGAIN if the kernel took fewer than @n, or -errno. */
static int hostio_submit(struct hostio *h, const unsigned int *slots, unsigned int n)
{
	uint64_t t = s2_now_ns();
	int r;

	for (unsigned int i = 0; i < n; i++)
		h->submit_ns[slots[i]] = t;
	r = io_uring_submit(&h->ring);
	if (r < 0)
		return r;
	return (unsigned int)r == n ? 0 : -EAGAIN;
}

/* Report a failed request on stderr. */
static void hostio_req_failed(struct hostio *h, unsigned int slot, int res)
{
	const char *what = h->o->mode == M_SEQREAD || h->o->mode == M_RANDREAD ? "read" : "write";

	if (res < 0)
		fprintf(stderr,
			"bench-hostio: %s of %" PRIu64 " bytes at offset %" PRIu64 " of %s: %s%s\n",
			what, h->o->bs, h->off[slot], h->o->path, strerror(-res),
			res == -EINVAL && h->o->direct
			    ? " (O_DIRECT: --bs or the offset is not a multiple of the "
			      "device's logical block size)"
			    : "");
	else
		fprintf(stderr,
			"bench-hostio: short %s at offset %" PRIu64 " of %s: %d of %" PRIu64
			" bytes\n",
			what, h->off[slot], h->o->path, res, h->o->bs);
}

/*
 * One measured window of @seconds on @h's ring, which holds nothing in flight on entry
 * and on return. Fills @r. Returns 0, or -EIO after a failed or short request (said on
 * stderr), or -errno from io_uring.
 */
static int hostio_window(struct hostio *h, struct hostio_res *r)
{
	const struct hostio_opts *o = h->o;
	unsigned int qd = o->qd, inflight = 0, n, head;
	uint64_t t0, end, now = 0, last = 0;
	struct io_uring_cqe *cqe;
	int err = 0, ret;

	memset(h->hist, 0, sizeof(h->hist));
	memset(r, 0, sizeof(*r));
	for (unsigned int i = 0; i < qd; i++) {
		ret = hostio_prep(h, i);
		if (ret)
			return ret;
		h->reaped[i] = i;
	}
	t0 = s2_now_ns();
	end = t0 + (uint64_t)(o->seconds * 1e9);
	ret = hostio_submit(h, h->reaped, qd);
	if (ret)
		return ret; /* the caller tears the ring down, with what is in flight */
	inflight = qd;
	while (inflight) {
		ret = io_uring_wait_cqe(&h->ring, &cqe);
		if (ret == -EINTR)
			continue;
		if (ret < 0) {
			err = ret;
			break; /* the ring is torn down by the caller */
		}
		now = s2_now_ns();
		n = 0;
		io_uring_for_each_cqe(&h->ring, head, cqe)
		{
			unsigned int slot = (unsigned int)io_uring_cqe_get_data64(cqe);

			if (cqe->res != (int)o->bs) {
				if (!err)
					hostio_req_failed(h, slot, cqe->res);
				err = -EIO;
			}
			if (now <= end) {
				uint64_t lat = now - h->submit_ns[slot];

				h->hist[hist_bucket(lat)]++;
				r->lat_sum_ns += lat;
				r->ops++;
				last = now;
			}
			h->reaped[n++] = slot;
		}
		io_uring_cq_advance(&h->ring, n);
		inflight -= n;
		if (now > end || err)
			continue; /* drain what is in flight, uncounted */
		for (unsigned int i = 0; i < n; i++) {
			ret = hostio_prep(h, h->reaped[i]);
			if (ret)
				return ret;
		}
		ret = hostio_submit(h, h->reaped, n);
		if (ret)
			return ret;
		inflight += n;
	}
	if (err)
		return err;
	r->ns = last - t0;
	if (r->ops && r->ns) {
		r->iops = (double)r->ops / ((double)r->ns / 1e9);
		r->mbps = r->iops * (double)o->bs / 1e6;
		r->p50_us = hist_quantile(h->hist, r->ops, 0.50) / 1e3;
		r->p99_us = hist_quantile(h->hist, r->ops, 0.99) / 1e3;
		r->mean_us = (double)r->lat_sum_ns / (double)r->ops / 1e3;
	}
	return 0;
}

/*
 * Untimed setup: open the file, size it, allocate and touch the buffers, create the ring.
 * Returns 0, or the exit code (message on stderr); on failure what was set up is undone.
 */
static int hostio_setup(struct hostio *h, const struct hostio_opts *o)
{
	bool write = o->mode == M_SEQWRITE || o->mode == M_RANDWRITE;
	struct stat st;
	int ret, rc = 1;

	memset(h, 0, sizeof(*h));
	h->o = o;
	h->rng = o->seed;
	h->fd = open(o->path, (write ? O_RDWR : O_RDONLY) | O_CLOEXEC | (o->direct ? O_DIRECT : 0));
	if (h->fd < 0) {
		if (errno == EINVAL && o->direct) {
			fprintf(stderr,
				"bench-hostio: %s: the filesystem does not support O_DIRECT "
				"(open: EINVAL)\n",
				o->path);
			return 77;
		}
		fprintf(stderr, "bench-hostio: %s: %s\n", o->path, strerror(errno));
		return 1;
	}
	if (fstat(h->fd, &st) < 0) {
		fprintf(stderr, "bench-hostio: %s: %s\n", o->path, strerror(errno));
		goto err_close;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(h->fd, BLKGETSIZE64, &h->file_bytes) < 0) {
			fprintf(stderr, "bench-hostio: %s: BLKGETSIZE64: %s\n", o->path,
				strerror(errno));
			goto err_close;
		}
	} else if (S_ISREG(st.st_mode)) {
		h->file_bytes = (uint64_t)st.st_size;
	} else {
		fprintf(stderr, "bench-hostio: %s: not a regular file or block device\n", o->path);
		rc = 2;
		goto err_close;
	}
	h->nblocks = h->file_bytes / o->bs;
	if (!h->nblocks) {
		fprintf(stderr,
			"bench-hostio: %s: %" PRIu64 " bytes, smaller than --bs %" PRIu64 "\n",
			o->path, h->file_bytes, o->bs);
		rc = 2;
		goto err_close;
	}
	h->stride = (o->bs + HOSTIO_BUF_ALIGN - 1) & ~(uint64_t)(HOSTIO_BUF_ALIGN - 1);
	if (posix_memalign((void **)&h->bufs, HOSTIO_BUF_ALIGN, h->stride * o->qd)) {
		fprintf(stderr, "bench-hostio: %u buffers of %" PRIu64 " bytes: out of memory\n",
			o->qd, h->stride);
		goto err_close;
	}
	for (uint64_t i = 0; i < h->stride * o->qd; i++) /* touched, and a pattern to write */
		h->bufs[i] = (char)(i * 131 + (i >> 12) + 1);
	h->submit_ns = calloc(o->qd, sizeof(*h->submit_ns));
	h->off = calloc(o->qd, sizeof(*h->off));
	h->reaped = calloc(o->qd, sizeof(*h->reaped));
	if (!h->submit_ns || !h->off || !h->reaped) {
		fprintf(stderr, "bench-hostio: out of memory\n");
		goto err_free;
	}
	/* SUBMIT_ALL: a request refused at submission fails in its CQE, the rest still go */
	ret = io_uring_queue_init(o->qd, &h->ring, IORING_SETUP_SUBMIT_ALL);
	if (ret == -EINVAL)
		ret = io_uring_queue_init(o->qd, &h->ring, 0);
	if (ret < 0) {
		fprintf(stderr, "bench-hostio: io_uring_queue_init(%u): %s%s\n", o->qd,
			strerror(-ret),
			ret == -ENOSYS || ret == -EPERM ? " (io_uring is not available here)" : "");
		rc = ret == -ENOSYS || ret == -EPERM ? 77 : 1;
		goto err_free;
	}
	return 0;
err_free:
	free(h->reaped);
	free(h->off);
	free(h->submit_ns);
	free(h->bufs);
err_close:
	close(h->fd);
	return rc;
}

static void hostio_teardown(struct hostio *h)
{
	io_uring_queue_exit(&h->ring);
	free(h->reaped);
	free(h->off);
	free(h->submit_ns);
	free(h->bufs);
	close(h->fd);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The median of @n values at @v, each @stride doubles apart (a field of struct array). */
static double median_field(const double *v, size_t stride, int n)
{
	double *t = malloc(sizeof(*t) * (size_t)n), m;

	if (!t)
		return NAN;
	for (int i = 0; i < n; i++)
		t[i] = v[(size_t)i * stride];
	qsort(t, (size_t)n, sizeof(*t), cmp_double);
	m = n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
	free(t);
	return m;
}

/* @s as a JSON string, quotes included. */
static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

/* @bs as "64 KiB", "1 MiB" or "1536 B". */
static const char *size_str(char *buf, size_t len, uint64_t bs)
{
	if (bs % (1 << 20) == 0)
		snprintf(buf, len, "%" PRIu64 " MiB", bs >> 20);
	else if (bs % 1024 == 0)
		snprintf(buf, len, "%" PRIu64 " KiB", bs >> 10);
	else
		snprintf(buf, len, "%" PRIu64 " B", bs);
	return buf;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bench-hostio --file PATH --mode seqread|seqwrite|randread|randwrite\n"
		"                    --bs SIZE --qd N --seconds S [--direct] [--repeat N]\n"
		"                    [--seed N] [--json]\n"
		"  --bs SIZE     bytes per request, a multiple of 512 up to 64M (suffix K, M)\n"
		"  --qd N        requests kept in flight, 1..%d\n"
		"  --seconds S   length of one measured window, > 0 and <= 3600 (decimals ok)\n"
		"  --direct      open the file O_DIRECT (exit 77 where the filesystem refuses)\n"
		"  --repeat N    measured windows, median reported (default 1, at most %d)\n"
		"  --seed N      random-offset seed for randread/randwrite (default 1, not 0)\n"
		"  --json        one JSON object instead of the text line\n",
		HOSTIO_QD_MAX, HOSTIO_REPEAT_MAX);
}

/* Parse the command line into @o. Returns 0, -1 for --help, or 2 after a message. */
static int parse_opts(int argc, char **argv, struct hostio_opts *o)
{
	static const struct option opts[] = {{"file", required_argument, NULL, 'f'},
					     {"mode", required_argument, NULL, 'm'},
					     {"bs", required_argument, NULL, 'b'},
					     {"qd", required_argument, NULL, 'q'},
					     {"seconds", required_argument, NULL, 's'},
					     {"direct", no_argument, NULL, 'd'},
					     {"repeat", required_argument, NULL, 'r'},
					     {"seed", required_argument, NULL, 'S'},
					     {"json", no_argument, NULL, 'j'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	bool have_mode = false, have_bs = false, have_qd = false, have_secs = false;
	uint64_t v;
	char *end;
	int c;

	*o = (struct hostio_opts){.repeat = 1, .seed = 1};
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			o->path = optarg;
			break;
		case 'm':
			for (o->mode = 0; o->mode < M_NR; o->mode++)
				if (!strcmp(optarg, mode_names[o->mode]))
					break;
			if (o->mode == M_NR) {
				fprintf(stderr,
					"bench-hostio: --mode '%s': choose seqread, seqwrite, "
					"randread or randwrite\n",
					optarg);
				return 2;
			}
			have_mode = true;
			break;
		case 'b':
			if (bench_parse_size(optarg, &o->bs) || o->bs < 512 || o->bs % 512 ||
			    o->bs > HOSTIO_BS_MAX) {
				fprintf(stderr,
					"bench-hostio: --bs '%s': a multiple of 512 bytes from "
					"512 to 64M (suffix K or M)\n",
					optarg);
				return 2;
			}
			have_bs = true;
			break;
		case 'q':
			if (bench_parse_u64(optarg, 1, HOSTIO_QD_MAX, &v)) {
				fprintf(stderr,
					"bench-hostio: --qd '%s': a whole number from 1 to %d\n",
					optarg, HOSTIO_QD_MAX);
				return 2;
			}
			o->qd = (unsigned int)v;
			have_qd = true;
			break;
		case 's':
			errno = 0;
			o->seconds = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(o->seconds > 0) ||
			    o->seconds > HOSTIO_SECONDS_MAX) {
				fprintf(stderr,
					"bench-hostio: --seconds '%s': a number above 0, at "
					"most 3600\n",
					optarg);
				return 2;
			}
			have_secs = true;
			break;
		case 'd':
			o->direct = true;
			break;
		case 'r':
			if (bench_parse_u64(optarg, 1, HOSTIO_REPEAT_MAX, &v)) {
				fprintf(stderr,
					"bench-hostio: --repeat '%s': a whole number from 1 "
					"to %d\n",
					optarg, HOSTIO_REPEAT_MAX);
				return 2;
			}
			o->repeat = (int)v;
			break;
		case 'S':
			if (bench_parse_u64(optarg, 1, UINT64_MAX, &o->seed)) {
				fprintf(stderr,
					"bench-hostio: --seed '%s': a whole number above 0\n",
					optarg);
				return 2;
			}
			break;
		case 'j':
			o->json = true;
			break;
		case 'h':
			usage(stdout);
			return -1;
		default:
			for (c = 0; optopt && opts[c].name && opts[c].val != optopt; c++)
				;
			if (optopt && opts[c].name)
				fprintf(stderr, "bench-hostio: option --%s needs a value\n",
					opts[c].name);
			else
				fprintf(stderr, "bench-hostio: unknown option '%s'\n",
					argv[optind - 1]);
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "bench-hostio: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!o->path || !have_mode || !have_bs || !have_qd || !have_secs) {
		fprintf(stderr, "bench-hostio: --file, --mode, --bs, --qd and --seconds are all "
				"required\n");
		usage(stderr);
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct hostio_opts o;
	struct hostio_res *res, m;
	struct hostio *h;
	uint64_t setup_ns, ops = 0;
	int rc, ret = 0;

	rc = parse_opts(argc, argv, &o);
	if (rc)
		return rc < 0 ? 0 : rc;
	h = malloc(sizeof(*h));
	res = calloc((size_t)o.repeat, sizeof(*res));
	if (!h || !res) {
		fprintf(stderr, "bench-hostio: out of memory\n");
		rc = 1;
		goto out;
	}
	setup_ns = s2_now_ns();
	rc = hostio_setup(h, &o);
	setup_ns = s2_now_ns() - setup_ns;
	if (rc)
		goto out;
	for (int i = 0; i < o.repeat && !ret; i++) {
		ret = hostio_window(h, &res[i]);
		if (!ret && !res[i].ops) {
			fprintf(stderr, "bench-hostio: no request completed within %g s\n",
				o.seconds);
			ret = -ETIMEDOUT;
		}
		ops += res[i].ops;
	}
	hostio_teardown(h);
	if (ret) {
		if (ret != -EIO && ret != -ETIMEDOUT)
			fprintf(stderr, "bench-hostio: io_uring: %s\n", strerror(-ret));
		rc = 1;
		goto out;
	}
#define MED(f) median_field(&res[0].f, sizeof(*res) / sizeof(double), o.repeat)
	_Static_assert(sizeof(struct hostio_res) % sizeof(double) == 0, "hostio_res layout");
	m.mbps = MED(mbps);
	m.iops = MED(iops);
	m.p50_us = MED(p50_us);
	m.p99_us = MED(p99_us);
	m.mean_us = MED(mean_us);
#undef MED
	if (o.json) {
		printf("{\"file\":");
		json_str(o.path);
		printf(",\"file_bytes\":%" PRIu64 ",\"mode\":\"%s\",\"bs_bytes\":%" PRIu64
		       ",\"qd\":%u,\"direct\":%s,\"seconds\":%g,\"repeat\":%d,\"ops\":%" PRIu64
		       ",\"mbps\":%.3f,\"iops\":%.1f,\"p50_us\":%.3f,\"p99_us\":%.3f,"
		       "\"mean_us\":%.3f,\"setup_ns\":%" PRIu64 "}\n",
		       h->file_bytes, mode_names[o.mode], o.bs, o.qd, o.direct ? "true" : "false",
		       o.seconds, o.repeat, ops, m.mbps, m.iops, m.p50_us, m.p99_us, m.mean_us,
		       setup_ns);
	} else {
		char bs[32];

		printf("bench-hostio: %s %s QD %u %s, %s (%.1f MiB), %g s x %d (median): "
		       "%.1f MB/s, %.0f IOPS, latency p50 %.1f us, p99 %.1f us, mean %.1f us "
		       "(setup %.3f ms)\n",
		       mode_names[o.mode], size_str(bs, sizeof(bs), o.bs), o.qd,
		       o.direct ? "O_DIRECT" : "buffered", o.path,
		       (double)h->file_bytes / (1 << 20), o.seconds, o.repeat, m.mbps, m.iops,
		       m.p50_us, m.p99_us, m.mean_us, (double)setup_ns / 1e6);
	}
out:
	free(res);
	free(h);
	return rc;
}
