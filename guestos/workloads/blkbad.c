// SPDX-License-Identifier: MIT
/*
 * blkbad.elf mode=MODE [disk=K] — one hostile or broken driver behaviour per mode against
 * virtio-blk disk K (default 0), checking the device answers as docs/DEVICES.md says.
 * Prints what it saw; exits 0 when every answer was the documented one, 1 otherwise
 * (2: bad arguments, no disk, or a disk not attached as the mode needs).
 *
 * IOERR modes: the request must complete with VIRTIO_BLK_S_IOERR (used len 1 where the
 * table says so), the device must not set DEVICE_NEEDS_RESET, and a normal write + read
 * must then work without a reset.
 *	oob-data	header or data buffer outside RAM (device window, past the end,
 *			straddling the end of RAM, 1 TiB)
 *	wrap-data	data buffer wrapping the 64-bit address space
 *	huge-len	two segments totalling more than 2^32 bytes
 *	too-many-segs	seg_max + 1 data segments
 *	zero-len	IN with a 0-byte data descriptor; OUT with no data descriptor
 *	unaligned-len	IN of 1000 bytes; OUT of 4097 bytes
 *	read-into-readable  IN into a device-readable buffer (must stay untouched); OUT
 *			from a device-writable one (the disk must not change)
 *	header-writable	the header descriptor is device-writable
 *	short-header	an 8-byte header
 *	past-end	reads crossing or starting at the capacity, and a sector overflowing
 *			64 bits (the last whole block must read fine)
 *	readonly-write	OUT, DISCARD, WRITE_ZEROES on a disk attached readonly=on (and the
 *			data must not change; reads still work)
 *	unsupp		an unknown request type: VIRTIO_BLK_S_UNSUPP
 *
 * NEEDS_RESET modes: Status must get DEVICE_NEEDS_RESET within 2 s (with no used entry
 * for the structural ones), a valid request queued behind must not be served (the
 * queues stop), and a reset + re-init must bring the device back: normal write + read.
 *	loop		a descriptor chain that loops
 *	longchain	an indirect table of queue size + 1 descriptors
 *	badindex	next index >= queue size; then a head index >= queue size
 *	nested-indirect	an INDIRECT descriptor inside an indirect table
 *	indirect-len	indirect table length 24 (not a multiple of 16), then 0
 *	indirect-next	a descriptor with both INDIRECT and NEXT
 *	oob-status	status descriptor outside RAM
 *	status-readonly	status descriptor device-readable
 *	status-zero-len	status descriptor of length 0
 *	no-status	a chain of just the header
 *	avail-jump	avail idx moved by queue size + 1
 *
 * Register modes:
 *	live-queue-change  queue registers rewritten while QueueReady is 1, with requests
 *			in flight: ignored, the queue keeps working
 *	notify-before-ok   a request notified before DRIVER_OK is not served until after
 *			it; notifies for queues out of range are ignored
 *	bad-queue-sel	QueueSel beyond num_queues: QueueNumMax 0, QueueReady stays 0
 *	bad-queue-num	QueueNum 0 / above max / not a power of two, rings outside RAM or
 *			misaligned: QueueReady stays 0; then a correct setup works
 *	reset-inflight	20 times: fill the queue with 64 KiB requests, reset at once; Status
 *			must read 0 within 2 s and the re-initialised device must work
 *	recover		every NEEDS_RESET mode in turn on one device, each followed by a
 *			reset, re-init and write + read check; then 64 blocks verified
 */
#include "guest.h"
#include "virtio.h"

#define TIMEOUT_NS 2000000000ull
#define QUIET_NS 200000000ull /* how long "nothing happens" is watched */
#define BUF_BYTES (512u << 10)
#define TABLE_ENTRIES 1024u
#define CHECK_SECTOR 64u /* where the write + read checks go */
#define NR_HDRS 32u /* more than any mode builds before sending them */

struct bad {
	struct vblk d;
	struct vheap heap;
	struct vq *q; /* queue 0 */
	struct virtio_blk_outhdr *hdrs; /* [NR_HDRS], handed out in turn by hdr() */
	unsigned next_hdr;
	volatile uint8_t *status;
	uint8_t *buf; /* BUF_BYTES of data */
	uint8_t *buf2; /* BUF_BYTES, for comparisons */
	struct virtq_desc *table, *table2; /* indirect tables, TABLE_ENTRIES each */
	uint32_t token; /* makes every write check's data unique */
};

static struct bad g_bad;

#define D(addr, len, flags) ((struct virtq_desc){ (uintptr_t)(addr), (uint32_t)(len), (flags), 0 })
#define W VIRTQ_DESC_F_WRITE

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int fail(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	g_vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	g_printf("blkbad: FAIL: %s\n", msg);
	return 1;
}

/* The header descriptor for a request of @type at @sector (a header of its own). */
static struct virtq_desc hdr(struct bad *b, uint32_t type, uint64_t sector)
{
	struct virtio_blk_outhdr *h = &b->hdrs[b->next_hdr++ % NR_HDRS];

	*h = (struct virtio_blk_outhdr){ .type = type, .sector = sector };
	return D(h, sizeof(*h), 0);
}

static struct virtq_desc st(struct bad *b)
{
	return D(b->status, 1, W);
}

/*
 * Put @ds[0..n) in queue 0's table linked in order (the last keeps its own flags and
 * next; a next below n there means "position in ds"), publish the head and notify.
 * Returns the head, or -1 when descriptors are short.
 */
static int raw_submit(struct bad *b, const struct virtq_desc *ds, unsigned n)
{
	struct vq *q = b->q;
	uint16_t idx[256];

	if (n > 256 || q->nr_free < n)
		return -1;
	for (unsigned i = 0; i < n; i++)
		idx[i] = (uint16_t)vq_desc_get(q);
	for (unsigned i = 0; i < n; i++) {
		struct virtq_desc *x = &q->desc[idx[i]];

		*x = ds[i];
		if (i + 1 < n) {
			x->flags |= VIRTQ_DESC_F_NEXT;
			x->next = idx[i + 1];
		} else if ((x->flags & VIRTQ_DESC_F_NEXT) && x->next < n) {
			x->next = idx[x->next];
		}
	}
	*b->status = 0xff;
	vq_publish(q, idx[0]);
	q->kicked_idx = q->avail_idx;
	vq_notify(&b->d.dev, 0);
	return idx[0];
}

/* Wait up to @ns for a used entry on queue 0. Returns 1 with @e, 0 on timeout. */
static int used_wait(struct bad *b, struct virtq_used_elem *e, uint64_t ns)
{
	uint64_t t0 = g_clock_ns();

	for (;;) {
		for (int i = 0; i < 256; i++) {
			if (vq_used_pop(b->q, e))
				return 1;
			g_pause();
		}
		if (g_clock_ns() - t0 > ns)
			return vq_used_pop(b->q, e);
	}
}

/* Wait up to @ns for Status to have @bits. Returns the last Status read. */
static uint8_t status_wait(struct bad *b, uint8_t bits, uint64_t ns)
{
	uint64_t t0 = g_clock_ns();
	uint8_t s;

	while (!((s = vio_status(&b->d.dev)) & bits) && g_clock_ns() - t0 < ns)
		g_pause();
	return s;
}

/*
 * A normal write + read-back (a read only on a readonly disk) and a flush, through the
 * regular driver path on queue 0. Returns 0 or 1 (printed).
 */
static int check_works(struct bad *b, const char *what)
{
	uint32_t len = 16384;
	int r;

	b->token++;
	if (!b->d.ro) {
		for (uint32_t i = 0; i < len; i += 4)
			*(uint32_t *)(b->buf + i) = b->token * 0x9e3779b9u ^ i;
		r = vblk_write(&b->d, CHECK_SECTOR, b->buf, len);
		if (r)
			return fail("%s: afterwards a normal write answered %d", what, r);
	}
	memset(b->buf2, 0x5a, len);
	r = vblk_read(&b->d, CHECK_SECTOR, b->buf2, len);
	if (r)
		return fail("%s: afterwards a normal read answered %d", what, r);
	if (!b->d.ro && memcmp(b->buf, b->buf2, len))
		return fail("%s: afterwards a write + read gave other data back", what);
	r = vblk_flush(&b->d);
	if (r)
		return fail("%s: afterwards a flush answered %d", what, r);
	g_printf("blkbad: %s: device still works (%s + read + flush)\n", what,
		 b->d.ro ? "no write: readonly" : "write");
	return 0;
}

/* Reset, re-init, check Status and that I/O works. */
static int recover(struct bad *b, const char *what)
{
	uint8_t s;
	int r = vblk_init(&b->d);

	if (r)
		return fail("%s: reset + re-init failed: %d (Status %#x)", what, r,
			    vio_status(&b->d.dev));
	s = vio_status(&b->d.dev);
	if ((s & (VIRTIO_S_NEEDS_RESET | VIRTIO_S_FAILED)) || !(s & VIRTIO_S_DRIVER_OK))
		return fail("%s: after reset + re-init Status is %#x", what, s);
	g_printf("blkbad: %s: reset + re-init done (Status %#x)\n", what, s);
	return check_works(b, what);
}

/*
 * The device must set DEVICE_NEEDS_RESET; with @no_used it must not have written a used
 * entry since @used_before. With @stopped, a valid request queued now must not be served.
 * Then recover.
 */
static int expect_needs_reset(struct bad *b, const char *what, uint16_t used_before,
			      bool no_used, bool stopped)
{
	uint8_t s = status_wait(b, VIRTIO_S_NEEDS_RESET, TIMEOUT_NS);
	uint16_t used = b->q->used_hdr[1];

	if (!(s & VIRTIO_S_NEEDS_RESET))
		return fail("%s: expected DEVICE_NEEDS_RESET; Status still %#x after 2 s, used idx %u -> %u, status byte %#x",
			    what, s, used_before, used, *b->status);
	if (no_used && used != used_before)
		return fail("%s: DEVICE_NEEDS_RESET, but also %u used entries (status byte %#x)",
			    what, (uint16_t)(used - used_before), *b->status);
	g_printf("blkbad: %s: DEVICE_NEEDS_RESET (Status %#x), %u used entries\n", what, s,
		 (uint16_t)(used - used_before));
	if (stopped) {
		struct virtq_desc ds[3] = { hdr(b, VIRTIO_BLK_T_IN, 0), D(b->buf, 4096, W), st(b) };
		struct virtq_used_elem e;

		if (raw_submit(b, ds, 3) < 0)
			return fail("%s: no descriptors left for the stopped-queue check", what);
		if (used_wait(b, &e, QUIET_NS))
			return fail("%s: device served a request after DEVICE_NEEDS_RESET (status %#x)",
				    what, *b->status);
		g_printf("blkbad: %s: a valid request queued behind was not served\n", what);
	}
	return recover(b, what);
}

/*
 * The request with head @head must complete with VIRTIO_BLK_S_IOERR (and used len 1 when
 * @len1), without DEVICE_NEEDS_RESET; then I/O must still work.
 */
static int expect_status(struct bad *b, int head, uint8_t want, bool len1, const char *what)
{
	struct virtq_used_elem e;
	uint8_t s;

	if (head < 0)
		return fail("%s: no descriptors to build the request", what);
	if (!used_wait(b, &e, TIMEOUT_NS))
		return fail("%s: expected status %u; no used entry after 2 s (Status %#x)", what,
			    want, vio_status(&b->d.dev));
	if (e.id != (uint32_t)head)
		return fail("%s: used entry names descriptor %u, the request was %d", what, e.id,
			    head);
	vq_chain_put(b->q, (uint16_t)head);
	if (*b->status != want)
		return fail("%s: expected status %u, got %u (used len %u)", what, want,
			    *b->status, e.len);
	if (len1 && e.len != 1)
		return fail("%s: status %u, but used len %u (expected 1)", what, want, e.len);
	s = vio_status(&b->d.dev);
	if (s & VIRTIO_S_NEEDS_RESET)
		return fail("%s: status %u, but Status also has DEVICE_NEEDS_RESET (%#x)", what,
			    want, s);
	g_printf("blkbad: %s: status %u, used len %u\n", what, *b->status, e.len);
	return check_works(b, what);
}

static int expect_ioerr(struct bad *b, int head, bool len1, const char *what)
{
	return expect_status(b, head, VIRTIO_BLK_S_IOERR, len1, what);
}

/* ---- IOERR modes -------------------------------------------------------------------- */

static int m_oob_data(struct bad *b)
{
	uint64_t end = g_boot->mem_size;
	struct virtq_desc a[3] = { hdr(b, VIRTIO_BLK_T_IN, 0), D(end, 4096, W), st(b) };
	struct virtq_desc c[3] = { hdr(b, VIRTIO_BLK_T_IN, 0), D(end - 2048, 4096, W), st(b) };
	struct virtq_desc e[3] = { hdr(b, VIRTIO_BLK_T_IN, 0), D(1ull << 40, 4096, W), st(b) };
	struct virtq_desc f[3] = { D(end + 64, 16, 0), D(b->buf, 4096, W), st(b) };
	struct virtq_desc o[3] = { hdr(b, VIRTIO_BLK_T_OUT, 0), D(end, 4096, 0), st(b) };

	return expect_ioerr(b, raw_submit(b, a, 3), true, "IN into the device window") ||
	       expect_ioerr(b, raw_submit(b, c, 3), true, "IN straddling the end of RAM") ||
	       expect_ioerr(b, raw_submit(b, e, 3), true, "IN at 1 TiB") ||
	       expect_ioerr(b, raw_submit(b, o, 3), true, "OUT from the device window") ||
	       expect_ioerr(b, raw_submit(b, f, 3), true, "header in the device window");
}

static int m_wrap_data(struct bad *b)
{
	struct virtq_desc a[3] = { hdr(b, VIRTIO_BLK_T_IN, 0), D(-4096ull, 8192, W), st(b) };
	struct virtq_desc c[3] = { hdr(b, VIRTIO_BLK_T_OUT, 0), D(-512ull, 4096, 0), st(b) };

	return expect_ioerr(b, raw_submit(b, a, 3), true, "IN wrapping 2^64") ||
	       expect_ioerr(b, raw_submit(b, c, 3), true, "OUT wrapping 2^64");
}

static int m_huge_len(struct bad *b)
{
	struct virtq_desc a[4] = { hdr(b, VIRTIO_BLK_T_OUT, 0), D(b->buf, 0xfffffe00u, 0),
				   D(b->buf, 0xfffffe00u, 0), st(b) };

	if (b->d.seg_max < 2)
		return fail("seg_max is %u: cannot send two segments", b->d.seg_max);
	return expect_ioerr(b, raw_submit(b, a, 4), true, "OUT of 2 x 4 GiB - 512");
}

static int m_too_many_segs(struct bad *b)
{
	uint32_t segs = vio_cfg32(&b->d.dev, VBLK_CFG_SEG_MAX) + 1;
	struct virtq_desc *t = b->table;
	unsigned n = 0;
	int head;

	if (segs + 2 > b->q->num) {
		/* then the chain is also longer than the queue: DEVICES.md's rows conflict */
		g_printf("blkbad: seg_max %u + 1 segments make a chain longer than the queue (%u): not testable\n",
			 segs - 1, b->q->num);
		return 2;
	}
	if (segs + 2 > TABLE_ENTRIES || segs * 512 > BUF_BYTES)
		return fail("seg_max %u is too big for the test's table", segs - 1);
	/* in an indirect table, so the chain itself stays within the queue size */
	t[n++] = hdr(b, VIRTIO_BLK_T_IN, 0);
	for (uint32_t i = 0; i < segs; i++)
		t[n++] = D(b->buf + i * 512, 512, W);
	t[n++] = st(b);
	for (unsigned i = 0; i + 1 < n; i++) {
		t[i].flags |= VIRTQ_DESC_F_NEXT;
		t[i].next = (uint16_t)(i + 1);
	}
	{
		struct virtq_desc ind = D(t, 16 * n, VIRTQ_DESC_F_INDIRECT);

		head = raw_submit(b, &ind, 1);
	}
	g_printf("blkbad: sending %u data segments (seg_max %u)\n", segs, segs - 1);
	return expect_ioerr(b, head, true, "seg_max + 1 segments");
}

static int m_zero_len(struct bad *b)
{
	struct virtq_desc a[3] = { hdr(b, VIRTIO_BLK_T_IN, 0), D(b->buf, 0, W), st(b) };
	struct virtq_desc c[2] = { hdr(b, VIRTIO_BLK_T_OUT, 0), st(b) };

	return expect_ioerr(b, raw_submit(b, a, 3), false, "IN of 0 bytes") ||
	       expect_ioerr(b, raw_submit(b, c, 2), false, "OUT without data");
}

static int m_unaligned_len(struct bad *b)
{
	struct virtq_desc a[3] = { hdr(b, VIRTIO_BLK_T_IN, 0), D(b->buf, 1000, W), st(b) };
	struct virtq_desc c[3] = { hdr(b, VIRTIO_BLK_T_OUT, 0), D(b->buf, 4097, 0), st(b) };

	return expect_ioerr(b, raw_submit(b, a, 3), false, "IN of 1000 bytes") ||
	       expect_ioerr(b, raw_submit(b, c, 3), false, "OUT of 4097 bytes");
}

static int m_read_into_readable(struct bad *b)
{
	uint8_t *x = b->buf + BUF_BYTES / 2; /* check_works() uses the start of buf */
	struct virtq_desc a[3] = { hdr(b, VIRTIO_BLK_T_IN, 0), D(x, 4096, 0), st(b) };
	struct virtq_desc c[3] = { hdr(b, VIRTIO_BLK_T_OUT, 0), D(x, 4096, W), st(b) };
	int r;

	if (b->d.ro)
		return fail("needs a writable disk");
	/* sector 0 holds a known pattern; the IN must leave our readable buffer alone */
	for (unsigned i = 0; i < 4096; i++)
		x[i] = (uint8_t)(i * 7 + 1);
	if (vblk_write(&b->d, 0, x, 4096))
		return fail("could not write sector 0 to start with");
	memset(x, 0xa5, 4096);
	r = expect_ioerr(b, raw_submit(b, a, 3), false, "IN into a device-readable buffer");
	if (r)
		return r;
	for (unsigned i = 0; i < 4096; i++)
		if (x[i] != 0xa5)
			return fail("the device wrote byte %u of a device-readable buffer", i);
	memset(x, 0x3c, 4096);
	r = expect_ioerr(b, raw_submit(b, c, 3), false, "OUT from a device-writable buffer");
	if (r)
		return r;
	if (vblk_read(&b->d, 0, b->buf2, 4096))
		return fail("could not read sector 0 back");
	for (unsigned i = 0; i < 4096; i++)
		if (b->buf2[i] != (uint8_t)(i * 7 + 1))
			return fail("the refused OUT changed the disk (byte %u)", i);
	g_printf("blkbad: readable buffer untouched, disk unchanged\n");
	return 0;
}

static int m_header_writable(struct bad *b)
{
	struct virtq_desc a[3] = { hdr(b, VIRTIO_BLK_T_IN, 0), D(b->buf, 4096, W), st(b) };

	a[0].flags = W;
	return expect_ioerr(b, raw_submit(b, a, 3), false, "device-writable header");
}

static int m_short_header(struct bad *b)
{
	struct virtq_desc a[3] = { hdr(b, VIRTIO_BLK_T_IN, 0), D(b->buf, 4096, W), st(b) };

	a[0].len = 8;
	return expect_ioerr(b, raw_submit(b, a, 3), false, "8-byte header");
}

static int m_past_end(struct bad *b)
{
	uint64_t cap = b->d.capacity;
	struct virtq_desc ok[3] = { hdr(b, VIRTIO_BLK_T_IN, cap - 8), D(b->buf, 4096, W), st(b) };
	struct virtq_desc a[3] = { hdr(b, VIRTIO_BLK_T_IN, cap - 4), D(b->buf, 4096, W), st(b) };
	struct virtq_desc c[3] = { hdr(b, VIRTIO_BLK_T_IN, cap), D(b->buf, 512, W), st(b) };
	struct virtq_desc e[3] = { hdr(b, VIRTIO_BLK_T_IN, -4ull), D(b->buf, 4096, W), st(b) };

	if (cap < 8)
		return fail("capacity %lu sectors is too small", (unsigned long)cap);
	return expect_status(b, raw_submit(b, ok, 3), VIRTIO_BLK_S_OK, false,
			     "IN of the last 8 sectors") ||
	       expect_ioerr(b, raw_submit(b, a, 3), false, "IN crossing the capacity") ||
	       expect_ioerr(b, raw_submit(b, c, 3), false, "IN at the capacity") ||
	       expect_ioerr(b, raw_submit(b, e, 3), false, "IN at sector 2^64 - 4");
}

static int m_readonly_write(struct bad *b)
{
	uint8_t *x = b->buf + BUF_BYTES / 2, *orig = b->buf2 + BUF_BYTES / 2; /* not check_works' */
	struct virtq_desc w[3] = { hdr(b, VIRTIO_BLK_T_OUT, 0), D(x, 4096, 0), st(b) };
	struct vblk_req dr = { .type = VIRTIO_BLK_T_DISCARD, .sector = 0, .nr_sectors = 8 };
	struct vblk_req zr = { .type = VIRTIO_BLK_T_WRITE_ZEROES, .sector = 0, .nr_sectors = 8 };
	int r;

	if (!b->d.ro) {
		g_printf("blkbad: readonly-write needs the disk attached with readonly=on "
			 "(VIRTIO_BLK_F_RO not offered)\n");
		return 2;
	}
	g_printf("blkbad: VIRTIO_BLK_F_RO negotiated\n");
	if (vblk_read(&b->d, 0, orig, 4096))
		return fail("reading sector 0 failed");
	for (unsigned i = 0; i < 4096; i++)
		x[i] = (uint8_t)~orig[i];
	r = expect_ioerr(b, raw_submit(b, w, 3), false, "OUT on a readonly disk");
	if (r)
		return r;
	/* DISCARD and WRITE_ZEROES go through the driver: the device offers them even so */
	if (b->d.max_discard_sectors) {
		r = vblk_sync(&b->d, &dr);
		if (r != VIRTIO_BLK_S_IOERR)
			return fail("DISCARD on a readonly disk answered %d, not IOERR", r);
		g_printf("blkbad: DISCARD on a readonly disk: status %d\n", r);
	}
	if (b->d.max_wz_sectors) {
		r = vblk_sync(&b->d, &zr);
		if (r != VIRTIO_BLK_S_IOERR)
			return fail("WRITE_ZEROES on a readonly disk answered %d, not IOERR", r);
		g_printf("blkbad: WRITE_ZEROES on a readonly disk: status %d\n", r);
	}
	if (vblk_read(&b->d, 0, x, 4096))
		return fail("reading sector 0 again failed");
	if (memcmp(x, orig, 4096))
		return fail("sector 0 changed on a readonly disk");
	g_printf("blkbad: sector 0 unchanged\n");
	return 0;
}

static int m_unsupp(struct bad *b)
{
	struct virtq_desc a[3] = { hdr(b, 0xdead, 0), D(b->buf, 512, W), st(b) };

	return expect_status(b, raw_submit(b, a, 3), VIRTIO_BLK_S_UNSUPP, false,
			     "request type 0xdead");
}

/* ---- NEEDS_RESET modes -------------------------------------------------------------- */

/* Submit @ds and expect DEVICE_NEEDS_RESET with no used entry. */
static int bad_chain(struct bad *b, const struct virtq_desc *ds, unsigned n, const char *what)
{
	uint16_t before = b->q->used_hdr[1];

	if (raw_submit(b, ds, n) < 0)
		return fail("%s: no descriptors", what);
	return expect_needs_reset(b, what, before, true, true);
}

/* An indirect descriptor for table @t of @n entries linked in order. */
static struct virtq_desc ind_table(struct virtq_desc *t, unsigned n)
{
	for (unsigned i = 0; i + 1 < n; i++) {
		t[i].flags |= VIRTQ_DESC_F_NEXT;
		t[i].next = (uint16_t)(i + 1);
	}
	return D(t, 16 * n, VIRTQ_DESC_F_INDIRECT);
}

static bool need_indirect(struct bad *b)
{
	if (b->d.use_indirect)
		return true;
	fail("VIRTIO_F_RING_INDIRECT_DESC was not negotiated");
	return false;
}

static int m_loop(struct bad *b)
{
	struct virtq_desc a[3] = { hdr(b, VIRTIO_BLK_T_IN, 0), D(b->buf, 4096, W), st(b) };

	a[2].flags |= VIRTQ_DESC_F_NEXT;
	a[2].next = 0; /* back to the head */
	return bad_chain(b, a, 3, "descriptor loop");
}

static int m_longchain(struct bad *b)
{
	unsigned n = b->q->num + 1u, i = 0;
	struct virtq_desc ind;

	if (!need_indirect(b))
		return 1;
	if (n > TABLE_ENTRIES || (n - 2) * 512 > BUF_BYTES)
		return fail("queue of %u is too big for the test's table", b->q->num);
	b->table[i++] = hdr(b, VIRTIO_BLK_T_IN, 0);
	while (i < n - 1) {
		b->table[i] = D(b->buf + (i - 1) * 512, 512, W);
		i++;
	}
	b->table[i++] = st(b);
	ind = ind_table(b->table, n);
	g_printf("blkbad: indirect chain of %u descriptors, queue size %u\n", n, b->q->num);
	return bad_chain(b, &ind, 1, "chain longer than the queue");
}

static int m_badindex(struct bad *b)
{
	struct virtq_desc a[2] = { hdr(b, VIRTIO_BLK_T_IN, 0), D(b->buf, 4096, W) };
	uint16_t before;
	int r;

	a[1].flags |= VIRTQ_DESC_F_NEXT;
	a[1].next = (uint16_t)(b->q->num + 3); /* >= n: left as it is */
	r = bad_chain(b, a, 2, "next index >= queue size");
	if (r)
		return r;
	/* the head itself out of range */
	before = b->q->used_hdr[1];
	vq_publish(b->q, (uint16_t)(b->q->num + 1));
	vq_notify(&b->d.dev, 0);
	return expect_needs_reset(b, "head index >= queue size", before, true, true);
}

static int m_nested_indirect(struct bad *b)
{
	struct virtq_desc ind;

	if (!need_indirect(b))
		return 1;
	b->table2[0] = D(b->buf, 4096, W);
	b->table2[1] = st(b);
	ind_table(b->table2, 2);
	b->table[0] = hdr(b, VIRTIO_BLK_T_IN, 0);
	b->table[1] = D(b->table2, 32, VIRTQ_DESC_F_INDIRECT);
	ind = ind_table(b->table, 2);
	return bad_chain(b, &ind, 1, "indirect inside an indirect table");
}

static int m_indirect_len(struct bad *b)
{
	struct virtq_desc ind;
	int r;

	if (!need_indirect(b))
		return 1;
	b->table[0] = hdr(b, VIRTIO_BLK_T_IN, 0);
	b->table[1] = D(b->buf, 4096, W);
	b->table[2] = st(b);
	ind = ind_table(b->table, 3);
	ind.len = 24;
	r = bad_chain(b, &ind, 1, "indirect table of 24 bytes");
	if (r)
		return r;
	ind.len = 0;
	return bad_chain(b, &ind, 1, "indirect table of 0 bytes");
}

static int m_indirect_next(struct bad *b)
{
	struct virtq_desc a[2];

	if (!need_indirect(b))
		return 1;
	b->table[0] = hdr(b, VIRTIO_BLK_T_IN, 0);
	b->table[1] = D(b->buf, 4096, W);
	a[0] = ind_table(b->table, 2);
	a[1] = st(b);
	return bad_chain(b, a, 2, "INDIRECT with NEXT");
}

static int m_oob_status(struct bad *b)
{
	struct virtq_desc a[3] = { hdr(b, VIRTIO_BLK_T_IN, 0), D(b->buf, 4096, W),
				   D(g_boot->mem_size + 16, 1, W) };

	return bad_chain(b, a, 3, "status byte outside RAM");
}

static int m_status_readonly(struct bad *b)
{
	struct virtq_desc a[3] = { hdr(b, VIRTIO_BLK_T_IN, 0), D(b->buf, 4096, W), st(b) };

	a[2].flags = 0;
	return bad_chain(b, a, 3, "device-readable status byte");
}

static int m_status_zero_len(struct bad *b)
{
	struct virtq_desc a[3] = { hdr(b, VIRTIO_BLK_T_IN, 0), D(b->buf, 4096, W), st(b) };

	a[2].len = 0;
	return bad_chain(b, a, 3, "status descriptor of length 0");
}

static int m_no_status(struct bad *b)
{
	struct virtq_desc a[1] = { hdr(b, VIRTIO_BLK_T_IN, 0) };

	return bad_chain(b, a, 1, "chain of only a header");
}

static int m_avail_jump(struct bad *b)
{
	uint16_t before = b->q->used_hdr[1];

	vq_publish_idx(b->q, (uint16_t)(b->q->avail_idx + b->q->num + 1));
	vq_notify(&b->d.dev, 0);
	return expect_needs_reset(b, "avail idx jumping by queue size + 1", before, false, false);
}

/* ---- register modes ----------------------------------------------------------------- */

static int m_live_queue_change(struct bad *b)
{
	struct vio_dev *v = &b->d.dev;
	struct vblk_done dn;
	unsigned n = 0, done = 0;
	uint32_t ready;
	int r;

	if (b->d.ro)
		return fail("needs a writable disk");
	/* 16 writes in flight while the queue's registers are rewritten */
	for (unsigned i = 0; i < 16; i++) {
		struct vblk_req q = { .type = VIRTIO_BLK_T_OUT, .sector = CHECK_SECTOR + i * 64,
				      .nseg = 1, .cookie = i };

		q.seg[0] = (struct vblk_seg){ b->buf + i * 32768, 32768 };
		if (vblk_submit(&b->d, &q) < 0)
			break;
		n++;
	}
	vio_write(v, VIRTIO_MMIO_QUEUE_SEL, 0);
	vio_write(v, VIRTIO_MMIO_QUEUE_NUM, 2);
	vio_write(v, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x1000);
	vio_write(v, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0x1);
	vio_write(v, VIRTIO_MMIO_QUEUE_DRIVER_LOW, 0x2000);
	vio_write(v, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, 0xffff);
	vio_write(v, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)g_boot->mem_size);
	vio_write(v, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, (uint32_t)(g_boot->mem_size >> 32));
	ready = vio_read(v, VIRTIO_MMIO_QUEUE_READY);
	g_printf("blkbad: rewrote QueueNum, QueueDesc, QueueDriver, QueueDevice with %u requests in flight; QueueReady reads %u\n",
		 n, ready);
	if (ready != 1)
		return fail("QueueReady reads %u after the ignored writes", ready);
	while (done < n) {
		r = vblk_wait(&b->d, &dn, TIMEOUT_NS);
		if (r != 1)
			return fail("only %u of %u in-flight requests completed (%d, Status %#x)",
				    done, n, r, vio_status(v));
		if (dn.status)
			return fail("in-flight request %lu: status %u", (unsigned long)dn.cookie,
				    dn.status);
		done++;
	}
	g_printf("blkbad: all %u in-flight requests completed OK\n", n);
	if (vio_status(v) & VIRTIO_S_NEEDS_RESET)
		return fail("DEVICE_NEEDS_RESET after ignored register writes");
	for (int i = 0; i < 4; i++)
		if (check_works(b, "live queue change"))
			return 1;
	return 0;
}

static int m_notify_before_ok(struct bad *b)
{
	struct vio_dev *v = &b->d.dev;
	struct virtq_desc a[3] = { hdr(b, VIRTIO_BLK_T_IN, 0), D(b->buf, 4096, W), st(b) };
	struct virtq_used_elem e;
	int head, r;

	r = vio_negotiate(v, b->d.want, TIMEOUT_NS);
	if (r)
		return fail("feature negotiation: %d", r);
	r = vq_setup(b->q, v, 0, b->q->num);
	if (r)
		return fail("queue setup: %d", r);
	head = raw_submit(b, a, 3); /* notifies: before DRIVER_OK */
	if (used_wait(b, &e, QUIET_NS))
		return fail("a request notified before DRIVER_OK was served (status %u)",
			    *b->status);
	if (vio_status(v) & (VIRTIO_S_NEEDS_RESET | VIRTIO_S_FAILED))
		return fail("Status %#x after a notify before DRIVER_OK", vio_status(v));
	g_printf("blkbad: notify before DRIVER_OK: ignored (no used entry in 200 ms, Status %#x)\n",
		 vio_status(v));
	vio_driver_ok(v);
	/* out-of-range and not-ready queues: ignored */
	vq_notify(v, 1000);
	vq_notify(v, 0xffff);
	vq_notify(v, b->d.nr_queues); /* MQ: one past the last queue we may set up */
	if (b->d.nr_queues > 1)
		vq_notify(v, 1); /* not set up this time */
	vq_notify(v, 0);
	if (!used_wait(b, &e, TIMEOUT_NS))
		return fail("the request was not served after DRIVER_OK and a notify");
	if (e.id != (uint32_t)head || *b->status != VIRTIO_BLK_S_OK)
		return fail("after DRIVER_OK: used id %u (head %d), status %u", e.id, head,
			    *b->status);
	vq_chain_put(b->q, (uint16_t)head);
	g_printf("blkbad: after DRIVER_OK + notify it was served OK; stray notifies ignored\n");
	if (vio_status(v) & VIRTIO_S_NEEDS_RESET)
		return fail("DEVICE_NEEDS_RESET after stray notifies");
	/* the driver's other queues were not set up: keep to queue 0 from here */
	b->d.nr_queues = 1;
	return check_works(b, "notify before DRIVER_OK") || recover(b, "notify before DRIVER_OK");
}

/* Program queue 0 by hand and set QueueReady; returns what QueueReady reads back. */
static uint32_t try_ready(struct bad *b, uint32_t num, uint64_t desc, uint64_t avail,
			  uint64_t used)
{
	struct vio_dev *v = &b->d.dev;

	vio_write(v, VIRTIO_MMIO_QUEUE_SEL, 0);
	vio_write(v, VIRTIO_MMIO_QUEUE_NUM, num);
	vio_write(v, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)desc);
	vio_write(v, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
	vio_write(v, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)avail);
	vio_write(v, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, (uint32_t)(avail >> 32));
	vio_write(v, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)used);
	vio_write(v, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, (uint32_t)(used >> 32));
	vio_write(v, VIRTIO_MMIO_QUEUE_READY, 1);
	return vio_read(v, VIRTIO_MMIO_QUEUE_READY);
}

/* Finish the init by hand on queue 0 and check the device works. */
static int finish_init(struct bad *b, const char *what)
{
	int r = vq_setup(b->q, &b->d.dev, 0, b->q->num);

	if (r)
		return fail("%s: a correct queue setup afterwards failed: %d", what, r);
	vio_driver_ok(&b->d.dev);
	b->d.nr_queues = 1;
	return check_works(b, what) || recover(b, what);
}

static int m_bad_queue_sel(struct bad *b)
{
	struct vio_dev *v = &b->d.dev;
	uint32_t nq = 1, sels[2], max, ready;
	uint64_t de = (uintptr_t)b->q->desc, av = (uintptr_t)b->q->avail;
	uint64_t us = (uintptr_t)b->q->used_hdr;
	int r;

	r = vio_negotiate(v, b->d.want, TIMEOUT_NS);
	if (r)
		return fail("feature negotiation: %d", r);
	if (v->features & (1ull << VIRTIO_BLK_F_MQ))
		nq = vio_cfg16(v, VBLK_CFG_NUM_QUEUES);
	sels[0] = nq;
	sels[1] = 0xffffffffu;
	for (int i = 0; i < 2; i++) {
		vio_write(v, VIRTIO_MMIO_QUEUE_SEL, sels[i]);
		max = vio_read(v, VIRTIO_MMIO_QUEUE_NUM_MAX);
		vio_write(v, VIRTIO_MMIO_QUEUE_NUM, 8);
		vio_write(v, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)de);
		vio_write(v, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(de >> 32));
		vio_write(v, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)av);
		vio_write(v, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, (uint32_t)(av >> 32));
		vio_write(v, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)us);
		vio_write(v, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, (uint32_t)(us >> 32));
		vio_write(v, VIRTIO_MMIO_QUEUE_READY, 1);
		ready = vio_read(v, VIRTIO_MMIO_QUEUE_READY);
		g_printf("blkbad: QueueSel %#x (num_queues %u): QueueNumMax %u, QueueReady %u\n",
			 sels[i], nq, max, ready);
		if (max || ready)
			return fail("QueueSel %#x beyond num_queues %u: QueueNumMax %u, QueueReady %u (expected 0, 0)",
				    sels[i], nq, max, ready);
	}
	return finish_init(b, "bad QueueSel");
}

static int m_bad_queue_num(struct bad *b)
{
	struct vio_dev *v = &b->d.dev;
	uint64_t de = (uintptr_t)b->q->desc, av = (uintptr_t)b->q->avail;
	uint64_t us = (uintptr_t)b->q->used_hdr, end = g_boot->mem_size;
	uint32_t max, n;
	struct {
		const char *what;
		uint32_t num;
		uint64_t desc, avail, used;
	} t[10];
	unsigned nt = 0;
	int r;

	r = vio_negotiate(v, b->d.want, TIMEOUT_NS);
	if (r)
		return fail("feature negotiation: %d", r);
	vio_write(v, VIRTIO_MMIO_QUEUE_SEL, 0);
	max = vio_read(v, VIRTIO_MMIO_QUEUE_NUM_MAX);
	n = b->q->num;
	t[nt++] = (typeof(t[0])){ "QueueNum 0", 0, de, av, us };
	t[nt++] = (typeof(t[0])){ "QueueNum 2 x QueueNumMax", max * 2, de, av, us };
	t[nt++] = (typeof(t[0])){ "QueueNum QueueNumMax + 1", max + 1, de, av, us };
	t[nt++] = (typeof(t[0])){ "QueueNum 3", 3, de, av, us };
	t[nt++] = (typeof(t[0])){ "descriptor table outside RAM", n, end, av, us };
	t[nt++] = (typeof(t[0])){ "descriptor table across the end of RAM", n, end - 64, av, us };
	t[nt++] = (typeof(t[0])){ "used ring outside RAM", n, de, av, end + 4096 };
	t[nt++] = (typeof(t[0])){ "descriptor table misaligned", n, de + 8, av, us };
	t[nt++] = (typeof(t[0])){ "avail ring misaligned", n, de, av + 1, us };
	t[nt++] = (typeof(t[0])){ "used ring misaligned", n, de, av, us + 2 };
	for (unsigned i = 0; i < nt; i++) {
		uint32_t ready = try_ready(b, t[i].num, t[i].desc, t[i].avail, t[i].used);

		g_printf("blkbad: %s (num %u, max %u): QueueReady %u\n", t[i].what, t[i].num, max,
			 ready);
		if (ready)
			return fail("%s: QueueReady became %u (expected to stay 0)", t[i].what,
				    ready);
	}
	return finish_init(b, "bad QueueNum / ring addresses");
}

static int m_reset_inflight(struct bad *b)
{
	struct vio_dev *v = &b->d.dev;

	if (b->d.ro)
		return fail("needs a writable disk");
	for (int it = 0; it < 20; it++) {
		uint16_t used0 = b->q->used_hdr[1];
		unsigned n = 0;
		uint64_t t0, t1;
		int r;

		for (unsigned i = 0; i < 64; i++) {
			/* 64 KiB each, spread over the first MiB or further (any disk >= 1 MiB) */
			uint64_t span = b->d.capacity > 16384 ? 8192 : b->d.capacity - 512;
			struct vblk_req q = { .type = i % 2 ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT,
					      .sector = CHECK_SECTOR + 256 + i * 128 % span,
					      .nseg = 1, .queue = i % b->d.nr_queues };

			q.seg[0] = (struct vblk_seg){ b->buf + (i % 8) * 65536, 65536 };
			if (vblk_submit(&b->d, &q) < 0)
				break;
			n++;
		}
		t0 = g_clock_ns();
		r = vblk_reset(&b->d);
		t1 = g_clock_ns();
		if (r)
			return fail("iteration %d: reset with %u requests in flight: Status still %#x after 2 s",
				    it, n, vio_status(v));
		if (it % 5 == 0)
			g_printf("blkbad: iteration %d: reset with %u requests in flight took %lu us; %u of them completed\n",
				 it, n, (unsigned long)((t1 - t0) / 1000),
				 (uint16_t)(b->q->used_hdr[1] - used0));
		r = vblk_init(&b->d);
		if (r)
			return fail("iteration %d: re-init after the reset failed: %d", it, r);
		if (check_works(b, "reset in flight"))
			return 1;
	}
	return 0;
}

/* ---- the table ---------------------------------------------------------------------- */

struct mode {
	const char *name;
	int (*fn)(struct bad *b);
	bool needs_reset; /* run by recover */
};

static int m_recover(struct bad *b);

static const struct mode modes[] = {
	{ "oob-data", m_oob_data, false },
	{ "wrap-data", m_wrap_data, false },
	{ "huge-len", m_huge_len, false },
	{ "too-many-segs", m_too_many_segs, false },
	{ "zero-len", m_zero_len, false },
	{ "unaligned-len", m_unaligned_len, false },
	{ "read-into-readable", m_read_into_readable, false },
	{ "header-writable", m_header_writable, false },
	{ "short-header", m_short_header, false },
	{ "past-end", m_past_end, false },
	{ "readonly-write", m_readonly_write, false },
	{ "unsupp", m_unsupp, false },
	{ "loop", m_loop, true },
	{ "longchain", m_longchain, true },
	{ "badindex", m_badindex, true },
	{ "nested-indirect", m_nested_indirect, true },
	{ "indirect-len", m_indirect_len, true },
	{ "indirect-next", m_indirect_next, true },
	{ "oob-status", m_oob_status, true },
	{ "status-readonly", m_status_readonly, true },
	{ "status-zero-len", m_status_zero_len, true },
	{ "no-status", m_no_status, true },
	{ "avail-jump", m_avail_jump, true },
	{ "live-queue-change", m_live_queue_change, false },
	{ "notify-before-ok", m_notify_before_ok, false },
	{ "bad-queue-sel", m_bad_queue_sel, false },
	{ "bad-queue-num", m_bad_queue_num, false },
	{ "reset-inflight", m_reset_inflight, false },
	{ "recover", m_recover, false },
};

static int m_recover(struct bad *b)
{
	unsigned n = 0;

	for (unsigned i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		if (!modes[i].needs_reset)
			continue;
		g_printf("blkbad: recover: -- %s --\n", modes[i].name);
		if (modes[i].fn(b))
			return fail("recover: mode %s", modes[i].name);
		n++;
	}
	if (b->d.ro)
		return 0;
	/* a longer check on the recovered device: 64 blocks of 4 KiB, all in flight */
	for (unsigned i = 0; i < 64; i++) {
		struct vblk_req q = { .type = VIRTIO_BLK_T_OUT, .sector = CHECK_SECTOR + i * 8,
				      .nseg = 1, .cookie = i };

		for (unsigned j = 0; j < 4096; j += 4)
			*(uint32_t *)(b->buf + i * 4096 + j) = i * 0x01000193u ^ j ^ 0xc0ffee;
		q.seg[0] = (struct vblk_seg){ b->buf + i * 4096, 4096 };
		while (vblk_submit(&b->d, &q) == -VIO_EAGAIN) {
			struct vblk_done dn;

			if (vblk_wait(&b->d, &dn, TIMEOUT_NS) != 1 || dn.status)
				return fail("recover: a write failed or timed out");
		}
	}
	while (b->d.inflight) {
		struct vblk_done dn;

		if (vblk_wait(&b->d, &dn, TIMEOUT_NS) != 1 || dn.status)
			return fail("recover: a write failed or timed out");
	}
	if (vblk_read(&b->d, CHECK_SECTOR, b->buf2, 64 * 4096) ||
	    memcmp(b->buf, b->buf2, 64 * 4096))
		return fail("recover: 64 blocks written did not read back the same");
	g_printf("blkbad: recover: %u NEEDS_RESET modes recovered; 256 KiB written and read back\n",
		 n);
	return 0;
}

int main(int argc, char **argv)
{
	struct bad *b = &g_bad;
	const char *mode = g_arg(argc, argv, "mode"), *a;
	uint64_t disk = 0;
	int r;

	if ((a = g_arg(argc, argv, "disk")) && g_parse_u64(a, &disk)) {
		g_printf("blkbad: disk=%s is not a number\n", a);
		return 2;
	}
	vheap_init(&b->heap, g_boot->heap_start, g_boot->mem_size);
	b->hdrs = vheap_alloc(&b->heap, NR_HDRS * sizeof(*b->hdrs), 4096);
	b->status = vheap_alloc(&b->heap, 64, 64);
	b->buf = vheap_alloc(&b->heap, BUF_BYTES, 4096);
	b->buf2 = vheap_alloc(&b->heap, BUF_BYTES, 4096);
	b->table = vheap_alloc(&b->heap, 16 * TABLE_ENTRIES, 4096);
	b->table2 = vheap_alloc(&b->heap, 16 * TABLE_ENTRIES, 4096);
	if (!b->hdrs || !b->status || !b->buf || !b->buf2 || !b->table || !b->table2) {
		g_printf("blkbad: not enough guest memory\n");
		return 2;
	}
	r = vblk_open(&b->d, (unsigned)disk, &b->heap);
	if (r) {
		g_printf("blkbad: no usable virtio-blk disk %lu: %d\n", (unsigned long)disk, r);
		return 2;
	}
	b->q = &b->d.vq[0];
	for (unsigned i = 0; mode && i < sizeof(modes) / sizeof(modes[0]); i++) {
		if (strcmp(mode, modes[i].name))
			continue;
		g_printf("blkbad: mode=%s: disk %lu, %lu sectors, queue size %u, %u queue(s), seg_max %u, features %#lx\n",
			 mode, (unsigned long)disk, (unsigned long)b->d.capacity, b->q->num,
			 b->d.nr_queues, b->d.seg_max, (unsigned long)b->d.dev.features);
		r = modes[i].fn(b);
		g_printf("blkbad: mode=%s: %s\n", mode, r == 0 ? "PASS" : r == 2 ? "SKIP" : "FAIL");
		return r;
	}
	g_printf("blkbad: mode= one of:");
	for (unsigned i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		g_printf(" %s", modes[i].name);
	g_printf("\n");
	return 2;
}
