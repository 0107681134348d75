// SPDX-License-Identifier: MIT
/*
 * labbad.elf: hostile S2_HC_LAB_RESULT and S2_HC_LAB_PHASE calls. Each bad length, address or content must
 * come back with its exact error and nothing written; then a minimal valid blob and a
 * full one from the instruments (lab.h) must be accepted (run with --lab-out). Reports
 * labbad_refused (cases refused as expected), labbad_wrong (cases answered otherwise)
 * and labbad_accepted (valid blobs taken).
 */
#include "guest.h"
#include "lab.h"

#define E2BIG_ 7
#define EFAULT_ 14
#define EINVAL_ 22

static uint64_t buf[4096];
static struct lab lab;
static unsigned refused, wrong, accepted;

static struct s2_lab_header *hdr(void)
{
	return (struct s2_lab_header *)buf;
}

/* A valid header-only blob, or with one section header of @kind, @len after it. */
static uint64_t base_blob(int with_section, uint32_t kind, uint32_t len)
{
	struct s2_lab_header *h = hdr();

	memset(buf, 0, sizeof(buf));
	h->magic = S2_LAB_MAGIC;
	h->version = S2_LAB_VERSION;
	h->header_len = sizeof(*h);
	h->total_len = sizeof(*h);
	memcpy(h->workload, "labbad", 6);
	h->tsc0 = 1;
	h->ns0 = 1;
	h->tsc1 = 2;
	h->ns1 = 2;
	if (with_section) {
		struct s2_lab_section *s = (struct s2_lab_section *)(h + 1);

		h->nr_sections = 1;
		s->kind = kind;
		s->len = len;
		memcpy(s->name, "x", 1);
		h->total_len = (uint32_t)(sizeof(*h) + sizeof(*s) + 64);
	}
	return h->total_len;
}

static void expect(const char *what, uint64_t gpa, uint64_t len, int64_t want)
{
	int64_t r = g_hypercall(S2_HC_LAB_RESULT, gpa, len, 0, 0, 0);

	if (r == want) {
		want < 0 ? refused++ : accepted++;
		return;
	}
	wrong++;
	g_printf("labbad: %s: got %ld, expected %ld\n", what, (long)r, (long)want);
}

int main(int argc, char **argv)
{
	uint64_t mem = g_boot->mem_size, b = (uintptr_t)buf, n;

	expect("len 0", b, 0, -EINVAL_);
	expect("len 4", b, 4, -EINVAL_);
	expect("len max+8", b, S2_LAB_MAX_LEN + 8ull, -E2BIG_);
	expect("len 2^64-8", b, UINT64_MAX - 7, -E2BIG_);
	n = base_blob(0, 0, 0);
	expect("end of RAM", mem - 64, n, -EFAULT_);
	expect("device window", mem, n, -EFAULT_);
	expect("gpa wraps", UINT64_MAX - 7, n, -EFAULT_);
	hdr()->magic ^= 0x100;
	expect("bad magic", b, n, -EINVAL_);
	n = base_blob(0, 0, 0);
	hdr()->total_len = 4096;
	expect("total_len != len", b, n, -EINVAL_);
	n = base_blob(1, S2_LAB_SEC_HIST, 0xfffffff8u);
	expect("section past the end", b, n, -EINVAL_);
	n = base_blob(1, S2_LAB_SEC_HIST, 64);
	expect("short histogram", b, n, -EINVAL_);
	n = base_blob(1, S2_LAB_SEC_WINDOWS, 64);
	((struct s2_lab_windows *)((char *)buf + sizeof(struct s2_lab_header) +
				   sizeof(struct s2_lab_section)))->window_tsc = 1;
	((struct s2_lab_windows *)((char *)buf + sizeof(struct s2_lab_header) +
				   sizeof(struct s2_lab_section)))->nr = 0xffffffffu;
	expect("window count", b, n, -EINVAL_);
	n = base_blob(1, S2_LAB_SEC_PHASES, 64); /* two empty phases */
	expect("empty phase", b, n, -EINVAL_);
	n = base_blob(0, 0, 0);
	hdr()->workload[1] = '\n';
	expect("name", b, n, -EINVAL_);
	n = base_blob(0, 0, 0);
	expect("valid header-only blob", b, n, (int64_t)n);
	if (g_hypercall(S2_HC_LAB_PHASE, 2, 0, 0, 0, 0) == -EINVAL_)
		refused++;
	else
		wrong++;
	for (uint64_t on = 0; on < 2; on++) {
		if (g_hypercall(S2_HC_LAB_PHASE, 1 - on, 0, 0, 0, 0) == 0)
			accepted++;
		else
			wrong++;
	}

	/* the instruments' own blob, with one histogram and windows */
	if (lab_start(&lab, "labbad", argc, argv))
		return 2;
	{
		static struct lab_hist h;
		uint64_t t = g_rdtsc();
		int64_t r;

		lab_hist_reset(&h);
		lab_begin(&lab, t);
		for (int i = 0; i < 1000; i++) {
			uint64_t s = g_rdtsc();

			lab_hist_record(&h, g_rdtsc() - s);
			lab_tick(&lab, g_rdtsc(), 1);
		}
		lab_end(&lab, g_rdtsc());
		lab_add_hist(&lab, "op", &h);
		lab_scalar(&lab, "labbad_ops", 1000, "op");
		r = lab_send(&lab);
		if (r > 0)
			accepted++;
		else
			wrong++;
	}
	g_report("labbad_refused", refused, "");
	g_report("labbad_wrong", wrong, "");
	g_report("labbad_accepted", accepted, "");
	return wrong ? 1 : 0;
}
