// SPDX-License-Identifier: MIT
/*
 * balloonbad.elf mode=MODE [rounds=N] [seconds=N] — one hostile or careless balloon
 * driver behaviour per run against the virtio-balloon device, checking the answer
 * docs/DEVICES.md documents. Every buffer must come back with used length 0, the device
 * must never set DEVICE_NEEDS_RESET, and afterwards a normal inflate of 8 pages must
 * discard exactly 8 pages (S2_HC_MEM_INFO discarded_pages) that read as zero once
 * deflated. Pages are patterned (GPA and a generation) so a page the device wrongly
 * discards, or wrongly keeps, shows.
 *
 *	oob-pfns	PFNs past the end of RAM, in the device window, 2^31 and 2^32 - 1
 *			mixed with 8 valid ones: only the 8 are discarded (they read zero
 *			after deflating), their neighbours keep their data
 *	dup-pfns	one buffer naming pages a, a, b, a, c, b: 3 pages discarded
 *	double-inflate	the same 8 pages inflated in two buffers: the second discards
 *			nothing; after one deflate they read zero; reused, then deflated
 *			again (no longer in the balloon): their new data stays
 *	deflate-not-inflated  8 pages never inflated are deflated, alone and mixed with
 *			8 inflated ones: nothing is discarded, the 8 keep their data
 *	partial-pfn	buffers of 4n + 2, 3 and 1 bytes: the n whole entries are
 *			discarded, the trailing bytes (the low half of a canary page's PFN,
 *			its high half in memory right after the buffer) are not
 *	report-oob	one report chain: a range straddling the end of RAM, one at 1 TiB,
 *			one wholly past RAM, an unaligned 64 KiB range, a 1000-byte range:
 *			exactly the whole pages inside RAM are discarded (read zero), the
 *			partial pages at the unaligned ends keep their data
 *	report-inflight	(a --disk) ROUNDS times (default 16): 8 reads from the disk into
 *			a 4 MiB buffer, and a report of that buffer as free 0 to 750 us
 *			later (even rounds, a sweep) or as soon as the first read is back
 *			(odd rounds). The
 *			device must not discard frames pinned by the reads: a page whose
 *			read completed before the report came back may read as zero (it was
 *			reported free), any other page must hold the disk's data, and no
 *			page may be torn. Prints how often the two overlapped.
 *	pinned-chunk	(--disk ...,registered=on,pinned_max=2M) a read into a 2 MiB chunk
 *			registers it (long-term pin); a report of it must skip it
 *			(discard_pinned grows, data intact); inflating it with 64 unpinned
 *			pages must discard the 64 and defer the chunk (discard_pending);
 *			deflating drops the deferral and the chunk keeps its data; inflated
 *			again, then unpinned by I/O into another chunk (evicting it), its
 *			deferred discard must happen within 5 s (it reads zero once deflated)
 *	report-migrate	(--vcpus 2 or more) vCPU 1 migrates a 16 MiB range between host
 *			nodes 0 and 1 (S2_HC_MIGRATE) in a loop (half the time: each call is
 *			followed by as long a pause) while vCPU 0, for SECONDS
 *			(default 3), patterns it, reports some of its 2 MiB blocks, inflates
 *			some scattered pages: pages not given keep their data, reported
 *			pages read zero once the chain is back, inflated ones once deflated
 *	reset-deferred	(--disk ...,registered=on,pinned_max=2M) 64 pages of a registered
 *			chunk inflated (deferred), then the device reset without a deflate:
 *			discard_pending must drop to 0 and the balloon forget the pages (one
 *			re-inflated is deferred again, not a duplicate); new data written to
 *			them must survive the chunk's eviction by I/O elsewhere and 2.5 s
 *			(a deferred discard firing after the reset would zero them)
 *
 * Prints what it saw and "balloonbad: mode=MODE: PASS" or FAIL; exits 0, 1, or 2 (bad
 * arguments, no balloon device, the mode's disk or vCPUs missing).
 */
#include "balloon.h"
#include "guest.h"

#define PAGE 4096ull
#define BLOCK (2ull << 20)
#define AREA_BYTES (16ull << 20)
#define AREA_PAGES (AREA_BYTES / PAGE)
#define WORKS_PAGES 8u /* the last pages of the area: works() */
#define MIG_BYTES (16ull << 20)
#define IO_BYTES (4ull << 20)
#define IO_REQS 8u
#define DISK_SECTOR 512u

struct bad {
	struct vballoon b;
	struct vblk d;
	struct vheap heap;
	bool have_disk;
	uint32_t *pfns; /* 4 pages of PFN buffers */
	uint8_t *area; /* AREA_BYTES, 4 MiB aligned: the pages the modes play with */
	uint8_t *gen; /* [AREA_PAGES] */
	uint8_t *io; /* IO_BYTES, 4 MiB aligned: report-inflight's reads land here */
	uint8_t *src; /* IO_BYTES: what the disk holds (report-inflight, pinned-chunk) */
	uint64_t rounds, seconds;
	unsigned fails;
};

static struct bad g_bad;

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int fail(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	g_vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	g_printf("balloonbad: FAIL: %s\n", msg);
	g_bad.fails++;
	return 1;
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

/* ---- patterned pages ---------------------------------------------------------------- */

static uint64_t pat(uint64_t gpa, unsigned gen)
{
	return mix(gpa ^ ((uint64_t)gen << 52) ^ 0xbadba11);
}

/* Write @gpa's page with generation @gen. */
static void pfill(uint64_t gpa, unsigned gen)
{
	uint64_t *w = (uint64_t *)(uintptr_t)(gpa & ~(PAGE - 1));
	uint64_t x = pat(gpa & ~(PAGE - 1), gen);

	for (unsigned k = 0; k < PAGE / 8; k++)
		w[k] = x + k;
}

/* 1 if @gpa's page holds generation @gen, else 0. */
static int pcheck(uint64_t gpa, unsigned gen)
{
	const uint64_t *w = (const uint64_t *)(uintptr_t)(gpa & ~(PAGE - 1));
	uint64_t x = pat(gpa & ~(PAGE - 1), gen);

	for (unsigned k = 0; k < PAGE / 8; k++)
		if (w[k] != x + k)
			return 0;
	return 1;
}

/* 1 if @gpa's page reads all zero. */
static int pzero(uint64_t gpa)
{
	const uint64_t *w = (const uint64_t *)(uintptr_t)(gpa & ~(PAGE - 1));

	for (unsigned k = 0; k < PAGE / 8; k++)
		if (w[k])
			return 0;
	return 1;
}

static uint64_t apage(struct bad *bb, uint64_t i)
{
	return (uintptr_t)bb->area + i * PAGE;
}

static uint32_t apfn(struct bad *bb, uint64_t i)
{
	return (uint32_t)(apage(bb, i) / PAGE);
}

/* Pattern area pages [from, to) with a new generation each. */
static void afill(struct bad *bb, uint64_t from, uint64_t to)
{
	for (uint64_t i = from; i < to; i++)
		pfill(apage(bb, i), ++bb->gen[i]);
}

/* Count area pages [from, to) that lost their data; prints the first few. */
static uint64_t acheck(struct bad *bb, uint64_t from, uint64_t to, const char *what)
{
	uint64_t bad = 0;

	for (uint64_t i = from; i < to; i++) {
		if (pcheck(apage(bb, i), bb->gen[i]))
			continue;
		if (bad++ < 4)
			g_printf("balloonbad: %s: page at GPA %#lx lost its data (%s)\n", what,
				 (unsigned long)apage(bb, i),
				 pzero(apage(bb, i)) ? "reads zero" : "other data");
	}
	return bad;
}

/* Count area pages [from, to) that do not read zero. */
static uint64_t azero(struct bad *bb, uint64_t from, uint64_t to, const char *what)
{
	uint64_t bad = 0;

	for (uint64_t i = from; i < to; i++) {
		if (pzero(apage(bb, i)))
			continue;
		if (bad++ < 4)
			g_printf("balloonbad: %s: page at GPA %#lx does not read zero (%s)\n", what,
				 (unsigned long)apage(bb, i),
				 pcheck(apage(bb, i), bb->gen[i]) ? "still our data" : "other data");
	}
	return bad;
}

/* ---- device interaction ------------------------------------------------------------- */

static int mi(struct s2_hc_mem_info *m)
{
	int r = vballoon_mem_info(m);

	if (r)
		return fail("S2_HC_MEM_INFO: %d", r);
	return 0;
}

/*
 * One buffer of @len bytes at @buf (device-readable) on role @r, waited for: it must
 * come back with used length 0 and no DEVICE_NEEDS_RESET.
 */
static int raw(struct bad *bb, enum vballoon_q r, const void *buf, uint32_t len,
	       const char *what)
{
	struct virtq_desc d = { (uintptr_t)buf, len, 0, 0 };
	struct virtq_used_elem e;
	uint64_t bad_len = bb->b.bad_used_len;
	int head = vballoon_add(&bb->b, r, &d, 1), x;

	if (head < 0)
		return fail("%s: could not queue the buffer: %d", what, head);
	x = vballoon_reap(&bb->b, r, &e, 5000000000ull);
	if (x < 0)
		return fail("%s: device error %d, Status %#x (expected the buffer back)", what, x,
			    vio_status(&bb->b.dev));
	if (!x)
		return fail("%s: the buffer did not come back in 5 s", what);
	if (e.id != (uint32_t)head)
		return fail("%s: used entry names %u, the buffer was %d", what, e.id, head);
	if (bb->b.bad_used_len != bad_len)
		return fail("%s: used length %u, expected 0", what, e.len);
	if (vballoon_needs_reset(&bb->b))
		return fail("%s: DEVICE_NEEDS_RESET (Status %#x)", what, vio_status(&bb->b.dev));
	return 0;
}

/* discarded_pages grew by exactly @want since @m0. */
static int expect_discarded(const struct s2_hc_mem_info *m0, uint64_t want, const char *what)
{
	struct s2_hc_mem_info m1;

	if (mi(&m1))
		return 1;
	if (m1.discarded_pages - m0->discarded_pages != want)
		return fail("%s: %lu pages discarded, expected %lu", what,
			    (unsigned long)(m1.discarded_pages - m0->discarded_pages),
			    (unsigned long)want);
	g_printf("balloonbad: %s: %lu pages discarded, as expected\n", what, (unsigned long)want);
	return 0;
}

/* A normal inflate of the area's last WORKS_PAGES pages discards exactly them; they
 * read zero once deflated. */
static int works(struct bad *bb, const char *what)
{
	uint64_t from = AREA_PAGES - WORKS_PAGES;
	uint32_t *p = bb->pfns + 3 * 1024; /* the last PFN page: the modes use the first */
	struct s2_hc_mem_info m0;
	int r;

	afill(bb, from, AREA_PAGES);
	for (unsigned k = 0; k < WORKS_PAGES; k++)
		p[k] = apfn(bb, from + k);
	if (mi(&m0))
		return 1;
	r = vballoon_inflate(&bb->b, p, WORKS_PAGES);
	if (r)
		return fail("%s: afterwards a normal inflate failed: %d (Status %#x)", what, r,
			    vio_status(&bb->b.dev));
	if (expect_discarded(&m0, WORKS_PAGES, "afterwards a normal inflate"))
		return 1;
	r = vballoon_deflate(&bb->b, p, WORKS_PAGES);
	if (r)
		return fail("%s: afterwards a normal deflate failed: %d", what, r);
	if (azero(bb, from, AREA_PAGES, what))
		return fail("%s: afterwards deflated pages do not read zero", what);
	afill(bb, from, AREA_PAGES);
	if (bb->b.bad_used_len)
		return fail("%s: %lu used entries with a length other than 0", what,
			    (unsigned long)bb->b.bad_used_len);
	g_printf("balloonbad: %s: device still works (inflate 8, discarded 8, deflate, zero)\n",
		 what);
	return 0;
}

/* ---- modes -------------------------------------------------------------------------- */

static int m_oob_pfns(struct bad *bb)
{
	uint32_t *p = bb->pfns, end = (uint32_t)(g_boot->mem_size / PAGE);
	uint32_t mmio = (uint32_t)(g_boot->mmio_base / PAGE);
	uint32_t bad[] = { end, end + 1, mmio, mmio + 1, 1u << 31, 0xffffffffu, end + 512,
			   0xfffffffeu };
	struct s2_hc_mem_info m0;
	unsigned n = 0;

	/* valid pages 16, 18, ..., 30: their odd neighbours must keep their data */
	afill(bb, 15, 32);
	for (unsigned k = 0; k < 8; k++) {
		p[n++] = bad[k];
		p[n++] = apfn(bb, 16 + 2 * k);
	}
	if (mi(&m0) || raw(bb, VB_INFLATE, p, 4 * n, "inflate with 8 PFNs outside RAM") ||
	    expect_discarded(&m0, 8, "inflate with 8 PFNs outside RAM"))
		return 1;
	for (unsigned k = 15; k < 32; k += 2)
		if (acheck(bb, k, k + 1, "oob-pfns neighbour"))
			return fail("a page next to the inflated ones lost its data");
	/* deflate everything named, the outside ones too: ignored */
	if (raw(bb, VB_DEFLATE, p, 4 * n, "deflate with 8 PFNs outside RAM"))
		return 1;
	for (unsigned k = 0; k < 8; k++)
		if (azero(bb, 16 + 2 * k, 17 + 2 * k, "oob-pfns deflated"))
			return fail("a deflated page does not read zero");
	for (unsigned k = 15; k < 32; k += 2)
		if (acheck(bb, k, k + 1, "oob-pfns neighbour"))
			return fail("a page next to the deflated ones lost its data");
	g_printf("balloonbad: PFNs outside RAM ignored; the 8 valid ones discarded and zero after deflate\n");
	return works(bb, "oob-pfns");
}

static int m_dup_pfns(struct bad *bb)
{
	uint32_t *p = bb->pfns;
	uint32_t a = apfn(bb, 40), b = apfn(bb, 41), c = apfn(bb, 43);
	struct s2_hc_mem_info m0;

	afill(bb, 39, 45);
	p[0] = a, p[1] = a, p[2] = b, p[3] = a, p[4] = c, p[5] = b;
	if (mi(&m0) || raw(bb, VB_INFLATE, p, 24, "inflate a, a, b, a, c, b") ||
	    expect_discarded(&m0, 3, "inflate a, a, b, a, c, b"))
		return 1;
	if (acheck(bb, 39, 40, "dup") || acheck(bb, 42, 43, "dup") || acheck(bb, 44, 45, "dup"))
		return fail("a page not named lost its data");
	p[0] = a, p[1] = b, p[2] = c;
	if (raw(bb, VB_DEFLATE, p, 12, "deflate a, b, c"))
		return 1;
	if (azero(bb, 40, 42, "dup deflated") || azero(bb, 43, 44, "dup deflated"))
		return fail("a deflated page does not read zero");
	g_printf("balloonbad: duplicates in one buffer: 3 distinct pages discarded, zero after deflate\n");
	return works(bb, "dup-pfns");
}

static int m_double_inflate(struct bad *bb)
{
	uint32_t *p = bb->pfns;
	struct s2_hc_mem_info m0;

	afill(bb, 64, 72);
	for (unsigned k = 0; k < 8; k++)
		p[k] = apfn(bb, 64 + k);
	if (mi(&m0) || raw(bb, VB_INFLATE, p, 32, "first inflate of 8 pages") ||
	    expect_discarded(&m0, 8, "first inflate of 8 pages"))
		return 1;
	if (mi(&m0) || raw(bb, VB_INFLATE, p, 32, "second inflate of the same 8 pages") ||
	    expect_discarded(&m0, 0, "second inflate of the same 8 pages"))
		return 1;
	if (raw(bb, VB_DEFLATE, p, 32, "one deflate of the 8 pages"))
		return 1;
	if (azero(bb, 64, 72, "double-inflate deflated"))
		return fail("a page inflated twice, deflated once, does not read zero");
	afill(bb, 64, 72);
	if (mi(&m0) || raw(bb, VB_DEFLATE, p, 32, "a second deflate of the reused pages") ||
	    expect_discarded(&m0, 0, "a second deflate of the reused pages"))
		return 1;
	if (acheck(bb, 64, 72, "double-inflate reused"))
		return fail("reused pages deflated a second time lost their data");
	g_printf("balloonbad: inflated twice: second inflate ignored; reused pages keep data through a stray deflate\n");
	return works(bb, "double-inflate");
}

static int m_deflate_not_inflated(struct bad *bb)
{
	uint32_t *p = bb->pfns;
	struct s2_hc_mem_info m0;

	afill(bb, 80, 96);
	for (unsigned k = 0; k < 8; k++)
		p[k] = apfn(bb, 80 + k);
	if (mi(&m0) || raw(bb, VB_DEFLATE, p, 32, "deflate 8 pages never inflated") ||
	    expect_discarded(&m0, 0, "deflate 8 pages never inflated"))
		return 1;
	if (acheck(bb, 80, 88, "deflate-not-inflated"))
		return fail("pages never inflated lost their data when deflated");
	/* 8 inflated (88..95), then one deflate naming all 16 */
	for (unsigned k = 0; k < 8; k++)
		p[8 + k] = apfn(bb, 88 + k);
	if (mi(&m0) || raw(bb, VB_INFLATE, p + 8, 32, "inflate 8 other pages") ||
	    expect_discarded(&m0, 8, "inflate 8 other pages"))
		return 1;
	if (raw(bb, VB_DEFLATE, p, 64, "deflate 8 never inflated + 8 inflated"))
		return 1;
	if (acheck(bb, 80, 88, "deflate-not-inflated mixed"))
		return fail("pages never inflated lost their data in a mixed deflate");
	if (azero(bb, 88, 96, "deflate-not-inflated mixed"))
		return fail("inflated pages do not read zero after a mixed deflate");
	g_printf("balloonbad: deflating pages never inflated: ignored, their data kept\n");
	return works(bb, "deflate-not-inflated");
}

static int m_partial_pfn(struct bad *bb)
{
	uint32_t canary = apfn(bb, 100), *p = bb->pfns;
	struct s2_hc_mem_info m0;

	afill(bb, 100, 112);
	/* 4 whole entries (101..104), then the canary's PFN's low 2 bytes inside the
	 * buffer and its high 2 bytes just after it */
	for (unsigned k = 0; k < 4; k++)
		p[k] = apfn(bb, 101 + k);
	p[4] = canary;
	if (mi(&m0) || raw(bb, VB_INFLATE, p, 18, "inflate of 18 bytes (4 PFNs + 2 bytes)") ||
	    expect_discarded(&m0, 4, "inflate of 18 bytes (4 PFNs + 2 bytes)"))
		return 1;
	if (acheck(bb, 100, 101, "partial entry canary"))
		return fail("the page named by the trailing partial entry lost its data");
	/* 3 bytes, then 1 byte: nothing whole */
	p[0] = apfn(bb, 106); /* its 4th byte (and the next entry) lie outside the buffer */
	if (mi(&m0) || raw(bb, VB_INFLATE, p, 3, "inflate of 3 bytes") ||
	    raw(bb, VB_INFLATE, p, 1, "inflate of 1 byte") ||
	    expect_discarded(&m0, 0, "inflate of 3 bytes, then of 1 byte"))
		return 1;
	if (acheck(bb, 105, 112, "partial entries"))
		return fail("pages named only by partial entries lost their data");
	/* deflate the 4 with a partial entry after them too */
	for (unsigned k = 0; k < 4; k++)
		p[k] = apfn(bb, 101 + k);
	p[4] = canary;
	if (raw(bb, VB_DEFLATE, p, 18, "deflate of 18 bytes"))
		return 1;
	if (azero(bb, 101, 105, "partial deflated"))
		return fail("deflated pages do not read zero");
	if (acheck(bb, 100, 101, "partial entry canary"))
		return fail("the canary lost its data after the deflate");
	g_printf("balloonbad: trailing partial entries ignored; whole entries discarded\n");
	return works(bb, "partial-pfn");
}

static int m_report_oob(struct bad *bb)
{
	uint64_t end = g_boot->mem_size, x = apage(bb, 128), y = apage(bb, 200);
	struct virtq_desc ds[5] = {
		{ end - 4 * PAGE, 8 * PAGE, VIRTQ_DESC_F_WRITE, 0 }, /* 4 pages inside */
		{ 1ull << 40, BLOCK, VIRTQ_DESC_F_WRITE, 0 },
		{ end, BLOCK, VIRTQ_DESC_F_WRITE, 0 },
		{ x + 100, 16 * PAGE, VIRTQ_DESC_F_WRITE, 0 }, /* 15 whole pages */
		{ y + 8, 1000, VIRTQ_DESC_F_WRITE, 0 },
	};
	struct s2_hc_mem_info m0;
	struct virtq_used_elem e;
	int head, r;

	if (!vballoon_has(&bb->b, VIRTIO_BALLOON_F_REPORTING))
		return fail("needs free_page_reporting=on (REPORTING not offered)");
	if (end - 4 * PAGE < (uintptr_t)bb->area + AREA_BYTES)
		return fail("the end of RAM is inside the test's own memory");
	for (unsigned k = 1; k <= 4; k++)
		pfill(end - k * PAGE, 1);
	pfill(end - 5 * PAGE, 1);
	afill(bb, 127, 146);
	afill(bb, 199, 202);
	if (mi(&m0))
		return 1;
	head = vballoon_add(&bb->b, VB_REPORT, ds, 5);
	if (head < 0)
		return fail("could not queue the report: %d", head);
	r = vballoon_reap(&bb->b, VB_REPORT, &e, 5000000000ull);
	if (r != 1)
		return fail("the report did not come back: %d (Status %#x)", r,
			    vio_status(&bb->b.dev));
	if (e.len || bb->b.bad_used_len)
		return fail("the report came back with used length %u, expected 0", e.len);
	if (vballoon_needs_reset(&bb->b))
		return fail("DEVICE_NEEDS_RESET after the report");
	if (expect_discarded(&m0, 4 + 15, "report with ranges outside RAM and unaligned"))
		return 1;
	for (unsigned k = 1; k <= 4; k++)
		if (!pzero(end - k * PAGE))
			return fail("the last pages of RAM (reported) do not read zero");
	if (!pcheck(end - 5 * PAGE, 1))
		return fail("the page before the reported end of RAM lost its data");
	if (acheck(bb, 127, 129, "unaligned range head") || acheck(bb, 144, 146, "range tail"))
		return fail("the partial pages at the ends of an unaligned range lost their data");
	if (azero(bb, 129, 144, "unaligned range"))
		return fail("whole pages inside an unaligned reported range do not read zero");
	if (acheck(bb, 199, 202, "1000-byte range"))
		return fail("the page of a 1000-byte reported range lost its data");
	g_printf("balloonbad: report: parts outside RAM and partial pages ignored; 19 whole pages discarded\n");
	return works(bb, "report-oob");
}

/* Fill the first @bytes of the disk from bb->src (pattern @seed). */
static int disk_prepare(struct bad *bb, uint64_t bytes, uint32_t seed)
{
	for (uint64_t off = 0; off < bytes; off += IO_BYTES) {
		uint64_t *w = (uint64_t *)bb->src;
		int r;

		for (uint64_t k = 0; k < IO_BYTES / 8; k++)
			w[k] = mix((off / 8 + k) ^ ((uint64_t)seed << 48)) | 1;
		for (uint64_t o = 0; o < IO_BYTES; o += 1 << 20) {
			r = vblk_write(&bb->d, (off + o) / DISK_SECTOR, bb->src + o, 1 << 20);
			if (r)
				return fail("writing the disk: %d", r);
		}
	}
	return 0;
}

/* What disk byte offset @off holds after disk_prepare(@seed) (8-byte word). */
static uint64_t disk_word(uint64_t off, uint32_t seed)
{
	return mix((off / 8) ^ ((uint64_t)seed << 48)) | 1;
}

static int m_report_inflight(struct bad *bb)
{
	uint64_t disk_bytes, overlaps = 0, zero_pages = 0;
	struct s2_hc_mem_info m0, m1;
	struct vballoon_range rg = { (uintptr_t)bb->io, IO_BYTES };

	if (!bb->have_disk)
		return fail("needs a --disk");
	if (!vballoon_has(&bb->b, VIRTIO_BALLOON_F_REPORTING))
		return fail("needs free_page_reporting=on (REPORTING not offered)");
	disk_bytes = bb->d.capacity * DISK_SECTOR;
	if (disk_bytes < 4 * IO_BYTES)
		return fail("needs a disk of at least 16 MiB");
	if (disk_prepare(bb, 4 * IO_BYTES, 7))
		return 1;
	if (mi(&m0))
		return 1;
	for (uint64_t it = 0; it < bb->rounds; it++) {
		uint64_t doff = (it % 4) * IO_BYTES, chunk = IO_BYTES / IO_REQS;
		uint64_t done_mask = 0, done_at_report = 0, *w = (uint64_t *)bb->io;
		struct virtq_desc d = { rg.addr, (uint32_t)rg.len, VIRTQ_DESC_F_WRITE, 0 };
		int slot[IO_REQS], head = -1;
		bool sent = false, report_back = false;
		struct virtq_used_elem e;

		for (uint64_t k = 0; k < IO_BYTES / 8; k++)
			w[k] = 0xeeeeeeeeeeeeeeeeull;
		for (unsigned q = 0; q < IO_REQS; q++) {
			struct vblk_req rq = { .type = VIRTIO_BLK_T_IN, .nseg = 1, .cookie = q,
					       .sector = (doff + q * chunk) / DISK_SECTOR };

			rq.seg[0] = (struct vblk_seg){ bb->io + q * chunk, (uint32_t)chunk };
			slot[q] = vblk_submit(&bb->d, &rq);
			if (slot[q] < 0)
				return fail("round %lu: read %u not queued: %d", (unsigned long)it, q,
					    slot[q]);
		}
		/*
		 * Even rounds: the report 0 to 750 us after the reads (a sweep over the
		 * window in which they are served, their frames pinned); odd rounds: right
		 * after the first read completes, the others still in flight.
		 */
		if (it % 2 == 0) {
			uint64_t until = g_rdtsc() + (it / 2 % 7) * bb->b.tsc_per_ms / 8;

			while ((int64_t)(g_rdtsc() - until) < 0)
				g_pause();
			head = vballoon_add(&bb->b, VB_REPORT, &d, 1);
			if (head < 0)
				return fail("round %lu: report not queued: %d", (unsigned long)it, head);
			sent = true;
		}
		/* watch both rings: which came back first */
		{
			uint64_t t0 = g_clock_ns(), spins = 0;

			while (!report_back || done_mask != (1u << IO_REQS) - 1) {
				struct vblk_done dn;
				int r;

				if (!sent && done_mask) {
					head = vballoon_add(&bb->b, VB_REPORT, &d, 1);
					if (head < 0)
						return fail("round %lu: report not queued: %d",
							    (unsigned long)it, head);
					sent = true;
				}
				r = vblk_poll(&bb->d, &dn);

				if (r < 0)
					return fail("round %lu: blk poll: %d", (unsigned long)it, r);
				if (r) {
					if (dn.status)
						return fail("round %lu: read %lu: status %u",
							    (unsigned long)it,
							    (unsigned long)dn.cookie, dn.status);
					done_mask |= 1ull << dn.cookie;
					continue;
				}
				if (sent && !report_back && vq_used_pending(&bb->b.vq[VB_REPORT])) {
					done_at_report = done_mask;
					report_back = true;
					r = vballoon_reap(&bb->b, VB_REPORT, &e, 1000000000ull);
					if (r != 1 || e.id != (uint32_t)head)
						return fail("round %lu: report reap %d id %u",
							    (unsigned long)it, r, e.id);
					continue;
				}
				g_pause();
				if (++spins % 4096 == 0 && g_clock_ns() - t0 > 5000000000ull)
					return fail("round %lu: reads %#lx done, report %s after 5 s (Status %#x / %#x)",
						    (unsigned long)it, (unsigned long)done_mask,
						    report_back ? "back" : "not back",
						    vio_status(&bb->d.dev), vio_status(&bb->b.dev));
			}
		}
		if (done_at_report != (1u << IO_REQS) - 1)
			overlaps++;
		/* every page: the disk's data, or (read done before the report was back)
		 * zero; never torn, never the fill */
		for (uint64_t pg = 0, bad = 0; pg < IO_BYTES / PAGE; pg++) {
			unsigned q = (unsigned)(pg * PAGE / chunk);
			const uint64_t *pw = (const uint64_t *)(bb->io + pg * PAGE);
			bool data = true, zero = true;

			for (unsigned k = 0; k < PAGE / 8; k++) {
				uint64_t want = disk_word(doff + pg * PAGE + k * 8, 7);

				data &= pw[k] == want;
				zero &= pw[k] == 0;
			}
			if (data)
				continue;
			if (zero && (done_at_report >> q & 1)) {
				zero_pages++;
				continue;
			}
			if (bad++ < 4)
				g_printf("balloonbad: round %lu: page %lu of the read buffer (read %u, %s when the report came back) %s\n",
					 (unsigned long)it, (unsigned long)pg, q,
					 done_at_report >> q & 1 ? "completed" : "still in flight",
					 zero ? "reads zero: a frame of a request in flight was discarded" :
						"holds neither the disk's data nor zero (torn)");
			if (pg + 1 < IO_BYTES / PAGE)
				continue;
			if (!mi(&m1))
				g_printf("balloonbad: round %lu: reads done when the report came back: %#lx; discard_pinned +%lu so far\n",
					 (unsigned long)it, (unsigned long)done_at_report,
					 (unsigned long)(m1.discard_pinned - m0.discard_pinned));
			return fail("round %lu: %lu pages of reads in flight lost their data",
				    (unsigned long)it, (unsigned long)bad);
		}
	}
	if (mi(&m1))
		return 1;
	g_printf("balloonbad: %lu rounds: the report came back with reads in flight %lu times; %lu pages read zero (read done first); discard_pinned +%lu\n",
		 (unsigned long)bb->rounds, (unsigned long)overlaps, (unsigned long)zero_pages,
		 (unsigned long)(m1.discard_pinned - m0.discard_pinned));
	g_report("balloonbad_inflight_overlaps", (double)overlaps, "rounds");
	g_report("balloonbad_discard_pinned", (double)(m1.discard_pinned - m0.discard_pinned),
		 "pages");
	return works(bb, "report-inflight");
}

static int m_pinned_chunk(struct bad *bb)
{
	uint32_t *p = bb->pfns;
	/* chunk C: area pages [0, 512); unpinned D: [1024, 1088); chunk E: [2048, 2560) */
	struct s2_hc_mem_info m0, m1;
	struct vballoon_range rg = { apage(bb, 0), BLOCK };
	uint64_t t0;
	int r;

	if (!bb->have_disk)
		return fail("needs a --disk ...,registered=on");
	if (!vballoon_has(&bb->b, VIRTIO_BALLOON_F_REPORTING))
		return fail("needs free_page_reporting=on (REPORTING not offered)");
	if (disk_prepare(bb, IO_BYTES, 9))
		return 1;
	afill(bb, 0, 2560);
	/* one read wholly inside C registers (long-term pins) it */
	r = vblk_read(&bb->d, 0, bb->area + 64 * PAGE, 256 << 10);
	if (r)
		return fail("read into the chunk: %d", r);
	/* C's pages 64..127 now hold disk words 0..256 KiB */
	for (unsigned i = 64; i < 128; i++)
		bb->gen[i] = 0;
#define C_OK(what)                                                                             \
	do {                                                                                   \
		for (unsigned pg = 64; pg < 128; pg++)                                         \
			for (unsigned k = 0; k < PAGE / 8; k++)                                \
				if (((uint64_t *)(bb->area + pg * PAGE))[k] !=                 \
				    disk_word((pg - 64) * PAGE + k * 8, 9))                    \
					return fail("%s: the chunk's read data changed at page %u", \
						    what, pg);                                 \
		if (acheck(bb, 0, 64, what) || acheck(bb, 128, 512, what))                    \
			return fail("%s: the pinned chunk lost its data", what);               \
	} while (0)
	C_OK("after the read");

	/* a report over the pinned chunk: skipped */
	if (mi(&m0))
		return 1;
	r = vballoon_report(&bb->b, &rg, 1);
	if (r)
		return fail("report of the pinned chunk: %d", r);
	if (mi(&m1))
		return 1;
	g_printf("balloonbad: report of the pinned chunk: discarded +%lu, discard_pinned +%lu\n",
		 (unsigned long)(m1.discarded_pages - m0.discarded_pages),
		 (unsigned long)(m1.discard_pinned - m0.discard_pinned));
	C_OK("after the report");
	if (m1.discard_pinned == m0.discard_pinned)
		return fail("report of the pinned chunk: discard_pinned did not grow (was the chunk registered?)");

	/* inflate C + D: D discarded, C deferred */
	for (unsigned k = 0; k < 512; k++)
		p[k] = apfn(bb, k);
	for (unsigned k = 0; k < 64; k++)
		p[512 + k] = apfn(bb, 1024 + k);
	if (mi(&m0))
		return 1;
	r = vballoon_inflate(&bb->b, p, 576);
	if (r)
		return fail("inflate of the pinned chunk + 64 pages: %d", r);
	if (mi(&m1))
		return 1;
	g_printf("balloonbad: inflate of the pinned chunk + 64 pages: discarded +%lu, pending %lu -> %lu, discard_pinned +%lu\n",
		 (unsigned long)(m1.discarded_pages - m0.discarded_pages),
		 (unsigned long)m0.discard_pending, (unsigned long)m1.discard_pending,
		 (unsigned long)(m1.discard_pinned - m0.discard_pinned));
	if (m1.discarded_pages - m0.discarded_pages != 64)
		return fail("inflate of the pinned chunk + 64 pages: %lu discarded, expected the 64 unpinned",
			    (unsigned long)(m1.discarded_pages - m0.discarded_pages));
	if (m1.discard_pending < m0.discard_pending + 512)
		return fail("inflate of the pinned chunk: discard_pending %lu -> %lu, expected +512 (deferred)",
			    (unsigned long)m0.discard_pending, (unsigned long)m1.discard_pending);
	/* deflate first: the deferral is dropped, the chunk keeps its contents */
	r = vballoon_deflate(&bb->b, p, 576);
	if (r)
		return fail("deflate: %d", r);
	if (mi(&m1))
		return 1;
	if (m1.discard_pending != m0.discard_pending)
		return fail("after the deflate discard_pending is %lu, expected %lu again",
			    (unsigned long)m1.discard_pending, (unsigned long)m0.discard_pending);
	C_OK("after inflate + deflate");
	if (azero(bb, 1024, 1088, "unpinned pages deflated"))
		return fail("the 64 unpinned pages do not read zero after the deflate");
	afill(bb, 1024, 1088);
	g_printf("balloonbad: the pinned chunk's deferred discard was dropped at deflate; data intact\n");

	/* inflate C again, then evict it with I/O into chunk E: the deferral must go */
	if (mi(&m0))
		return 1;
	r = vballoon_inflate(&bb->b, p, 512);
	if (r)
		return fail("second inflate of the chunk: %d", r);
	r = vblk_read(&bb->d, 0, bb->area + 2048 * PAGE, 256 << 10);
	if (r)
		return fail("read into another chunk: %d", r);
	t0 = g_clock_ns();
	do {
		if (mi(&m1))
			return 1;
		if (m1.discard_pending <= m0.discard_pending &&
		    m1.discarded_pages - m0.discarded_pages >= 512)
			break;
		for (int i = 0; i < 100000; i++)
			g_pause();
	} while (g_clock_ns() - t0 < 5000000000ull);
	g_printf("balloonbad: chunk inflated, then unpinned by I/O elsewhere: discarded +%lu, pending %lu after %lu ms\n",
		 (unsigned long)(m1.discarded_pages - m0.discarded_pages),
		 (unsigned long)m1.discard_pending, (unsigned long)((g_clock_ns() - t0) / 1000000));
	if (m1.discarded_pages - m0.discarded_pages < 512)
		return fail("the deferred discard of the unpinned chunk did not happen in 5 s (pinned_max must be one chunk)");
	r = vballoon_deflate(&bb->b, p, 512);
	if (r)
		return fail("deflate of the chunk: %d", r);
	if (azero(bb, 0, 512, "deferred chunk deflated"))
		return fail("the chunk discarded late does not read zero after the deflate");
	afill(bb, 0, 512);
	return works(bb, "pinned-chunk");
#undef C_OK
}

/*
 * reset-deferred: a device reset cancels every deferred discard and empties the
 * balloon, so pages the driver owns again after it are never zeroed later.
 * Chunk C: area pages [0, 512), registered by a read into [64, 128); the pages given:
 * [256, 320); chunk E: [2048, 2560), whose I/O evicts C (pinned_max is one chunk).
 */
static int m_reset_deferred(struct bad *bb)
{
	uint32_t *p = bb->pfns;
	struct s2_hc_mem_info m0, m1;
	uint64_t t0, bad = 0;
	unsigned fails0 = bb->fails;
	int r;

	if (!bb->have_disk)
		return fail("needs a --disk ...,registered=on,pinned_max=2M");
	if (disk_prepare(bb, IO_BYTES, 13))
		return 1;
	afill(bb, 0, 512);
	/* check 1: a read wholly inside C registers (long-term pins) it */
	r = vblk_read(&bb->d, 0, bb->area + 64 * PAGE, 256 << 10);
	if (r)
		return fail("check 1: read into the chunk: %d", r);
	for (unsigned i = 64; i < 128; i++)
		bb->gen[i] = 0; /* disk words 0..256 KiB */

	/* check 2: pages of C patterned and inflated: their discard is deferred */
	afill(bb, 256, 320);
	for (unsigned k = 0; k < 64; k++)
		p[k] = apfn(bb, 256 + k);
	if (mi(&m0))
		return 1;
	r = vballoon_inflate(&bb->b, p, 64);
	if (r)
		return fail("check 2: inflate of 64 pages of the pinned chunk: %d", r);
	vballoon_set_actual(&bb->b, 64);
	if (mi(&m1))
		return 1;
	g_printf("balloonbad: inflate of 64 pages of the pinned chunk: discarded +%lu, pending %lu -> %lu\n",
		 (unsigned long)(m1.discarded_pages - m0.discarded_pages),
		 (unsigned long)m0.discard_pending, (unsigned long)m1.discard_pending);
	if (m1.discard_pending < m0.discard_pending + 64 ||
	    m1.discarded_pages != m0.discarded_pages)
		return fail("check 2: inflate of the pinned chunk: discard_pending %lu -> %lu, discarded +%lu; expected +64 deferred, none discarded (was the chunk registered?)",
			    (unsigned long)m0.discard_pending, (unsigned long)m1.discard_pending,
			    (unsigned long)(m1.discarded_pages - m0.discarded_pages));

	/* check 3: reset without deflating: every deferred discard is cancelled ... */
	r = vio_reset(&bb->b.dev, 5000000000ull);
	if (r)
		return fail("check 3: Status 0 did not read back 0: %d", r);
	if (mi(&m1))
		return 1;
	g_printf("balloonbad: after the reset (Status 0): discard_pending %lu\n",
		 (unsigned long)m1.discard_pending);
	if (m1.discard_pending)
		fail("check 3: after the reset discard_pending is %lu, expected 0 (deferred discards not cancelled)",
		     (unsigned long)m1.discard_pending);
	if (vio_cfg32(&bb->b.dev, VIRTIO_BALLOON_CFG_ACTUAL))
		fail("check 3: after the reset config actual is %u, expected 0 (the balloon is empty)",
		     vio_cfg32(&bb->b.dev, VIRTIO_BALLOON_CFG_ACTUAL));
	r = vballoon_init(&bb->b);
	if (r)
		return fail("check 3: re-initialising the balloon after the reset: %d", r);
	if (acheck(bb, 256, 320, "check 3: after the reset"))
		fail("check 3: pages given before the reset lost their data at the reset");
	/* ... and the balloon is empty: re-inflating a page (C still pinned) is taken and
	 * deferred again, not ignored as a duplicate; deflated, it keeps its data */
	if (mi(&m0))
		return 1;
	r = vballoon_inflate(&bb->b, p, 1);
	if (r)
		return fail("check 3: re-inflate of one page after the reset: %d", r);
	if (mi(&m1))
		return 1;
	if (m1.discard_pending != m0.discard_pending + 1 ||
	    m1.discarded_pages != m0.discarded_pages)
		fail("check 3: re-inflate of one page after the reset: discard_pending %lu -> %lu, discarded +%lu; expected +1 deferred (the balloon should have forgotten the page)",
		     (unsigned long)m0.discard_pending, (unsigned long)m1.discard_pending,
		     (unsigned long)(m1.discarded_pages - m0.discarded_pages));
	r = vballoon_deflate(&bb->b, p, 1);
	if (r)
		return fail("check 3: deflate of the re-inflated page: %d", r);
	if (mi(&m1))
		return 1;
	if (m1.discard_pending != m0.discard_pending)
		fail("check 3: after deflating the re-inflated page discard_pending is %lu, expected %lu",
		     (unsigned long)m1.discard_pending, (unsigned long)m0.discard_pending);
	if (acheck(bb, 256, 257, "check 3: re-inflated and deflated"))
		fail("check 3: the re-inflated page lost its data after its deflate");
	if (bb->fails == fails0)
		g_printf("balloonbad: reset: deferred discards cancelled, balloon empty (re-inflate deferred +1, deflate -1)\n");

	/* check 4: the driver owns the pages: new data, then C unpinned by I/O into E */
	afill(bb, 256, 320);
	r = vblk_read(&bb->d, 0, bb->area + 2048 * PAGE, 256 << 10);
	if (r)
		return fail("check 4: read into another chunk: %d", r);
	t0 = g_clock_ns();
	while (g_clock_ns() - t0 < 2500000000ull) /* > 2x the 1 s retry back-off */
		for (int i = 0; i < 100000; i++)
			g_pause();
	if (mi(&m1))
		return 1;
	g_printf("balloonbad: %lu ms after unpinning the chunk: discard_pending %lu, discarded +%lu since the re-inflate\n",
		 (unsigned long)((g_clock_ns() - t0) / 1000000), (unsigned long)m1.discard_pending,
		 (unsigned long)(m1.discarded_pages - m0.discarded_pages));
	bad = acheck(bb, 256, 320, "check 4: new data");
	if (bad)
		fail("check 4: %lu of the 64 pages given before the reset lost their new data after the chunk was unpinned (a deferred discard fired after the reset)",
		     (unsigned long)bad);
	if (acheck(bb, 0, 64, "check 4: chunk") || acheck(bb, 128, 256, "check 4: chunk") ||
	    acheck(bb, 320, 512, "check 4: chunk"))
		fail("check 4: other pages of the chunk lost their data");
	for (unsigned pg = 64; pg < 128; pg++)
		for (unsigned k = 0; k < PAGE / 8; k++)
			if (((uint64_t *)(bb->area + pg * PAGE))[k] !=
			    disk_word((pg - 64) * PAGE + k * 8, 13)) {
				fail("check 4: the chunk's read data changed at page %u", pg);
				pg = 128;
				break;
			}
	if (bb->fails != fails0)
		return 1;
	/* control: C really is unpinned now (else check 4 proved nothing): a page of it
	 * inflated is discarded at once */
	p[0] = apfn(bb, 400);
	if (mi(&m0))
		return 1;
	r = vballoon_inflate(&bb->b, p, 1);
	if (r)
		return fail("control: inflate of one page of the evicted chunk: %d", r);
	if (mi(&m1))
		return 1;
	if (m1.discarded_pages - m0.discarded_pages != 1 || m1.discard_pending)
		return fail("control: a page of the chunk inflated after the eviction: discarded +%lu, pending %lu; expected +1, 0 (was the chunk evicted? pinned_max must be one chunk)",
			    (unsigned long)(m1.discarded_pages - m0.discarded_pages),
			    (unsigned long)m1.discard_pending);
	r = vballoon_deflate(&bb->b, p, 1);
	if (r)
		return fail("control: deflate: %d", r);
	if (azero(bb, 400, 401, "control deflated"))
		return fail("control: the page discarded after the eviction does not read zero");
	afill(bb, 400, 401);
	g_printf("balloonbad: new data intact in all 64 pages 2.5 s after the chunk was unpinned\n");
	return works(bb, "reset-deferred");
}

/* report-migrate: vCPU 1 moves [mig_lo, mig_lo + MIG_BYTES) between nodes until stop. */
static uint64_t mig_lo;
static unsigned mig_go, mig_stop, mig_done;
static uint64_t mig_calls, mig_errors, mig_bytes;
static int64_t mig_last_err;

void secondary_main(unsigned cpu)
{
	uint64_t node = 0;

	if (cpu != 1)
		return;
	while (!__atomic_load_n(&mig_go, __ATOMIC_ACQUIRE))
		g_pause();
	while (!__atomic_load_n(&mig_stop, __ATOMIC_ACQUIRE)) {
		uint64_t t0 = g_rdtsc(), t1;
		int64_t r = g_hypercall(S2_HC_MIGRATE, mig_lo, MIG_BYTES, node ^= 1, 0, 0);

		/* as long again off the lock (at least ~100 us): back-to-back batches would
		 * starve vCPU 0's writes and the device's discards, which wait for them */
		t1 = g_rdtsc();
		while (g_rdtsc() - t1 < t1 - t0 + 200000)
			g_pause();
		mig_calls++;
		if (r < 0) {
			mig_errors++;
			mig_last_err = r;
		} else {
			mig_bytes += (uint64_t)r;
		}
	}
	__atomic_store_n(&mig_done, 1, __ATOMIC_RELEASE);
}

static int m_report_migrate(struct bad *bb)
{
	uint64_t rng = 0x9e3779b97f4a7c15ull, t_end, rounds = 0, reported = 0, inflated = 0;
	uint64_t npg = MIG_BYTES / PAGE, lost = 0, nonzero = 0;
	struct vballoon_range rg[8];
	uint32_t *p = bb->pfns;
	static uint8_t g[MIG_BYTES / PAGE]; /* generation of each page, 0: inflated */

	if (g_boot->nr_cpus < 2)
		return fail("needs --vcpus 2");
	if (!vballoon_has(&bb->b, VIRTIO_BALLOON_F_REPORTING))
		return fail("needs free_page_reporting=on (REPORTING not offered)");
	mig_lo = (uintptr_t)bb->area; /* the area's first 16 MiB (works() uses its end) */
	for (uint64_t i = 0; i < npg; i++)
		pfill(mig_lo + i * PAGE, g[i] = 1);
	__atomic_store_n(&mig_go, 1, __ATOMIC_RELEASE);
	t_end = g_clock_ns() + bb->seconds * 1000000000ull;
	while (g_clock_ns() < t_end && !lost && !nonzero) {
		uint8_t st[MIG_BYTES / BLOCK];
		unsigned nr = 0, ni = 0;
		int r;

		rounds++;
		/* 2 of the 8 blocks reported, 64 scattered pages of the others inflated;
		 * the last block holds works()'s pages: never given here */
		for (unsigned b = 0; b < MIG_BYTES / BLOCK; b++) {
			rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
			st[b] = b + 1 < MIG_BYTES / BLOCK && rng % 4 == 0;
			if (st[b] && nr < 2)
				rg[nr++] = (struct vballoon_range){ mig_lo + b * BLOCK, BLOCK };
			else
				st[b] = 0;
		}
		for (unsigned k = 0; k < 64; k++) {
			uint64_t i;

			rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
			i = rng % (npg - BLOCK / PAGE);
			if (st[i * PAGE / BLOCK] || g[i] == 0)
				continue;
			g[i] = 0; /* given */
			p[ni++] = (uint32_t)((mig_lo + i * PAGE) / PAGE);
		}
		if (nr && (r = vballoon_report(&bb->b, rg, nr)))
			return fail("round %lu: report: %d", (unsigned long)rounds, r);
		if (ni && (r = vballoon_inflate(&bb->b, p, ni)))
			return fail("round %lu: inflate: %d", (unsigned long)rounds, r);
		reported += nr * BLOCK / PAGE;
		inflated += ni;
		/* pages not given keep their data; reported ones read zero */
		for (uint64_t i = 0; i < npg; i++) {
			uint64_t gpa = mig_lo + i * PAGE;

			if (st[i * PAGE / BLOCK]) {
				if (!pzero(gpa) && nonzero++ < 4)
					g_printf("balloonbad: round %lu: reported page %#lx does not read zero after the chain came back (%s)\n",
						 (unsigned long)rounds, (unsigned long)gpa,
						 pcheck(gpa, g[i]) ? "still our data" : "other data");
				pfill(gpa, g[i] = (uint8_t)(g[i] % 200 + 1));
			} else if (g[i] && !pcheck(gpa, g[i]) && lost++ < 4) {
				g_printf("balloonbad: round %lu: page %#lx (not given) lost its data (%s)\n",
					 (unsigned long)rounds, (unsigned long)gpa,
					 pzero(gpa) ? "reads zero" : "other data");
			}
		}
		if (ni && (r = vballoon_deflate(&bb->b, p, ni)))
			return fail("round %lu: deflate: %d", (unsigned long)rounds, r);
		for (unsigned k = 0; k < ni; k++) {
			uint64_t gpa = (uint64_t)p[k] * PAGE, i = (gpa - mig_lo) / PAGE;

			if (!pzero(gpa) && nonzero++ < 4)
				g_printf("balloonbad: round %lu: deflated page %#lx does not read zero\n",
					 (unsigned long)rounds, (unsigned long)gpa);
			pfill(gpa, g[i] = 1);
		}
		/* and a fresh generation on a few blocks, so moving data is new data */
		for (uint64_t i = rounds % 4 * (npg / 4); i < (rounds % 4 + 1) * (npg / 4); i++)
			if (g[i])
				pfill(mig_lo + i * PAGE, g[i] = (uint8_t)(g[i] % 200 + 1));
	}
	__atomic_store_n(&mig_stop, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&mig_done, __ATOMIC_ACQUIRE))
		g_pause();
	g_printf("balloonbad: %lu rounds: %lu pages reported, %lu inflated; vCPU 1: %lu migrate calls, %lu MiB moved, %lu errors (last %ld); %lu pages lost data, %lu given pages not zero\n",
		 (unsigned long)rounds, (unsigned long)reported, (unsigned long)inflated,
		 (unsigned long)mig_calls, (unsigned long)(mig_bytes >> 20),
		 (unsigned long)mig_errors, (long)mig_last_err, (unsigned long)lost,
		 (unsigned long)nonzero);
	g_report("balloonbad_migrate_calls", (double)mig_calls, "calls");
	g_report("balloonbad_migrated_bytes", (double)mig_bytes, "bytes");
	if (lost || nonzero)
		return fail("%lu pages not given lost their data, %lu given pages did not read zero",
			    (unsigned long)lost, (unsigned long)nonzero);
	if (!mig_bytes)
		return fail("vCPU 1 migrated nothing (%lu calls, last error %ld): nothing was tested",
			    (unsigned long)mig_calls, (long)mig_last_err);
	return works(bb, "report-migrate");
}

/* ---- the table ---------------------------------------------------------------------- */

struct mode {
	const char *name;
	int (*fn)(struct bad *bb);
	bool disk;
};

static const struct mode modes[] = {
	{ "oob-pfns", m_oob_pfns, false },
	{ "dup-pfns", m_dup_pfns, false },
	{ "double-inflate", m_double_inflate, false },
	{ "deflate-not-inflated", m_deflate_not_inflated, false },
	{ "partial-pfn", m_partial_pfn, false },
	{ "report-oob", m_report_oob, false },
	{ "report-inflight", m_report_inflight, true },
	{ "pinned-chunk", m_pinned_chunk, true },
	{ "report-migrate", m_report_migrate, false },
	{ "reset-deferred", m_reset_deferred, true },
};

int main(int argc, char **argv)
{
	struct bad *bb = &g_bad;
	const char *mode = g_arg(argc, argv, "mode"), *a;
	const struct mode *m = NULL;
	uint64_t want = VBALLOON_FEATURES | 1ull << VIRTIO_BALLOON_F_REPORTING;
	int r;

	for (unsigned i = 0; mode && i < sizeof(modes) / sizeof(modes[0]); i++)
		if (!strcmp(mode, modes[i].name))
			m = &modes[i];
	if (!m) {
		g_printf("balloonbad: mode= one of:");
		for (unsigned i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
			g_printf(" %s", modes[i].name);
		g_printf("\n");
		return 2;
	}
	bb->rounds = 16;
	bb->seconds = 3;
	if ((a = g_arg(argc, argv, "rounds")) && (g_parse_u64(a, &bb->rounds) || !bb->rounds)) {
		g_printf("balloonbad: rounds=%s: expected a positive number\n", a);
		return 2;
	}
	if ((a = g_arg(argc, argv, "seconds")) && (g_parse_u64(a, &bb->seconds) || !bb->seconds)) {
		g_printf("balloonbad: seconds=%s: expected a positive number\n", a);
		return 2;
	}
	vheap_init(&bb->heap, g_boot->heap_start, g_boot->mem_size);
	bb->pfns = vheap_alloc(&bb->heap, 4 * PAGE, PAGE);
	bb->gen = vheap_alloc(&bb->heap, AREA_PAGES, PAGE);
	bb->src = vheap_alloc(&bb->heap, IO_BYTES, PAGE);
	bb->area = vheap_alloc(&bb->heap, AREA_BYTES, 2 * BLOCK);
	bb->io = vheap_alloc(&bb->heap, IO_BYTES, 2 * BLOCK);
	if (!bb->pfns || !bb->gen || !bb->src || !bb->area || !bb->io) {
		g_printf("balloonbad: not enough guest memory (needs about 40 MiB of heap)\n");
		return 2;
	}
	r = vballoon_open(&bb->b, &bb->heap, want);
	if (r) {
		g_printf("balloonbad: no usable virtio-balloon device: %d\n", r);
		return 2;
	}
	bb->b.timeout_ns = 5000000000ull;
	if (m->disk) {
		r = vblk_open(&bb->d, 0, &bb->heap);
		if (r) {
			g_printf("balloonbad: mode=%s needs a virtio-blk disk: %d\n", m->name, r);
			return 2;
		}
		bb->have_disk = true;
	}
	g_printf("balloonbad: mode=%s: features %#lx (offered %#lx), queues %d/%d/%d/%d of %u%s\n",
		 m->name, (unsigned long)bb->b.dev.features, (unsigned long)bb->b.dev.offered,
		 bb->b.qi[VB_INFLATE], bb->b.qi[VB_DEFLATE], bb->b.qi[VB_STATS],
		 bb->b.qi[VB_REPORT], bb->b.vq[VB_INFLATE].num,
		 bb->have_disk ? ", with disk 0" : "");
	afill(bb, 0, AREA_PAGES);
	r = m->fn(bb);
	if (!r && bb->fails)
		r = 1;
	g_printf("balloonbad: mode=%s: %s\n", m->name, r ? "FAIL" : "PASS");
	return r ? 1 : 0;
}
