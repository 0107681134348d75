// SPDX-License-Identifier: MIT
/* The lab's guest instruments (lab.h): calibration, windows, the results blob. */
#include "guest.h"
#include "lab.h"

#define CAL_NS 20000000ull /* the start calibration spans about 20 ms */
#define BLOB_MAX (sizeof(struct s2_lab_header) +                                           \
		  LAB_MAX_HISTS * (sizeof(struct s2_lab_section) + sizeof(struct s2_lab_hist) + \
				   8ull * S2_LAB_HIST_BUCKETS) +                                \
		  sizeof(struct s2_lab_section) + sizeof(struct s2_lab_windows) +              \
		  8ull * LAB_MAX_WINDOWS + sizeof(struct s2_lab_section) +                     \
		  LAB_MAX_SCALARS * sizeof(struct s2_lab_scalar) +                             \
		  sizeof(struct s2_lab_section) + LAB_MAX_PHASES * sizeof(struct s2_lab_phase))

static uint64_t lab_windows[LAB_MAX_WINDOWS];
static struct s2_lab_phase lab_phases[LAB_MAX_PHASES];
static uint64_t lab_blob[BLOB_MAX / 8];

static void name_copy(char *dst, unsigned n, const char *src)
{
	unsigned i = 0;

	for (; i < n - 1 && src[i]; i++)
		dst[i] = src[i];
	for (; i < n; i++)
		dst[i] = '\0';
}

void lab_cal_point(uint64_t *tsc, uint64_t *ns)
{
	uint64_t best = UINT64_MAX;

	*tsc = 0;
	*ns = 0;
	/* best of 5: a vCPU preempted inside the bracket would skew the pair */
	for (int i = 0; i < 5; i++) {
		uint64_t a = g_rdtsc(), t = g_clock_ns(), b = g_rdtsc();

		if (b - a < best) {
			best = b - a;
			*tsc = a + (b - a) / 2;
			*ns = t;
		}
	}
}

int lab_start(struct lab *l, const char *workload, int argc, char **argv)
{
	const char *a = g_arg(argc, argv, "lab");
	uint64_t tsc, ns;

	memset(l, 0, sizeof(*l));
	name_copy(l->workload, sizeof(l->workload), workload);
	l->on = 1;
	if (a) {
		if (strcmp(a, "0") && strcmp(a, "1")) {
			g_printf("%s: lab=%s: expected 0 (instruments off) or 1 (on)\n", workload, a);
			return -1;
		}
		l->on = a[0] == '1';
	}
	if ((a = g_arg(argc, argv, "phases"))) {
		if (!strcmp(a, "churn")) {
			l->phase_mode = LAB_PHASES_CHURN;
		} else if (!strcmp(a, "lab")) {
			l->phase_mode = LAB_PHASES_LAB;
		} else {
			g_printf("%s: phases=%s: expected churn (churn against none) or lab "
				 "(instruments against none)\n", workload, a);
			return -1;
		}
		if (l->phase_mode == LAB_PHASES_LAB && !l->on) {
			g_printf("%s: phases=lab compares lab=1 with lab=0 in one run: drop lab=0\n",
				 workload);
			return -1;
		}
	}
	l->phase_ns = 500000000ull;
	if ((a = g_arg(argc, argv, "phase_ms"))) {
		uint64_t ms;

		if (g_parse_u64(a, &ms) || ms < 10 || ms > 600000) {
			g_printf("%s: phase_ms=%s: expected 10 to 600000 (ms)\n", workload, a);
			return -1;
		}
		l->phase_ns = ms * 1000000ull;
	}
	l->phases = lab_phases;
	if (l->phase_mode != LAB_PHASES_NONE)
		lab_phase_enter(0); /* no churn while the workload sets up: its first off
				     * phase must not pay for pages moved before it began */
	l->windows = lab_windows;
	memset(lab_windows, 0, sizeof(lab_windows));
	lab_cal_point(&l->tsc0, &l->ns0);
	do
		lab_cal_point(&tsc, &ns);
	while (ns - l->ns0 < CAL_NS || tsc <= l->tsc0);
	l->window_tsc = (uint64_t)((double)(tsc - l->tsc0) * (double)LAB_WINDOW_NS /
				   (double)(ns - l->ns0));
	if (!l->window_tsc)
		l->window_tsc = 1;
	lab_begin(l, tsc);
	return 0;
}

int lab_arg_pow2(const char *workload, int argc, char **argv, const char *key, uint64_t lo,
		 uint64_t hi, uint64_t *v)
{
	const char *a = g_arg(argc, argv, key);
	uint64_t n;

	if (!a)
		return 0;
	if (g_parse_u64(a, &n) || n < lo || (n & (n - 1)) || n > hi) {
		g_printf("%s: %s=%s: expected a power of two from %lu to %lu\n", workload, key, a,
			 (unsigned long)lo, (unsigned long)hi);
		return -1;
	}
	*v = n;
	return 0;
}

uint64_t lab_ns_to_tsc(const struct lab *l, uint64_t ns)
{
	return (uint64_t)((double)ns * (double)l->window_tsc / (double)LAB_WINDOW_NS);
}

void lab_begin(struct lab *l, uint64_t tsc)
{
	memset(l->windows, 0, 8ull * l->nr_windows); /* a warm-up's ticks count in none */
	l->nr_windows = 0;
	l->begin_tsc = tsc;
	l->win_lo = tsc - l->window_tsc; /* no window yet: the first tick takes the slow path */
	l->win_ops = &l->win_sink;
}

void lab_tick_slow(struct lab *l, uint64_t tsc, uint64_t n)
{
	uint64_t i;

	if (tsc < l->begin_tsc)
		return;
	i = (tsc - l->begin_tsc) / l->window_tsc;
	if (i >= LAB_MAX_WINDOWS) {
		l->win_ops = &l->win_sink; /* past the last window: counted in none */
		l->win_lo = l->begin_tsc + i * l->window_tsc;
		return;
	}
	l->win_lo = l->begin_tsc + i * l->window_tsc;
	l->win_ops = &l->windows[i];
	l->windows[i] += n;
	if (i >= l->nr_windows)
		l->nr_windows = (uint32_t)i + 1;
}

void lab_end(struct lab *l, uint64_t tsc)
{
	l->end_tsc = tsc;
	lab_cal_point(&l->tsc1, &l->ns1);
}

double lab_ns_per_cycle(const struct lab *l)
{
	return (double)(l->ns1 - l->ns0) / (double)(l->tsc1 - l->tsc0);
}

double lab_seconds(const struct lab *l)
{
	return (double)(l->end_tsc - l->begin_tsc) * lab_ns_per_cycle(l) / 1e9;
}

uint32_t lab_phase_count(const struct lab *l, uint64_t ns)
{
	uint64_t n = ns / l->phase_ns;

	if (n > LAB_MAX_PHASES)
		n = LAB_MAX_PHASES;
	if (n < 3)
		n = 3;
	return (uint32_t)(n | 1);
}

int lab_phase_enter(uint32_t k)
{
	int on = k & 1;

	g_hypercall(S2_HC_LAB_PHASE, (uint64_t)on, 0, 0, 0, 0);
	return on;
}

void lab_phase_add(struct lab *l, uint64_t start, uint64_t end, uint64_t ops, int on)
{
	if (l->nr_phases == LAB_MAX_PHASES || start >= end ||
	    (l->nr_phases && start < l->phases[l->nr_phases - 1].end_tsc))
		return;
	l->phases[l->nr_phases++] = (struct s2_lab_phase){
		.start_tsc = start, .end_tsc = end, .ops = ops, .on = on ? 1 : 0,
	};
}

void lab_add_hist(struct lab *l, const char *name, const struct lab_hist *h)
{
	if (l->nr_hists == LAB_MAX_HISTS)
		return;
	l->hist_name[l->nr_hists] = name;
	l->hists[l->nr_hists++] = h;
}

void lab_scalar(struct lab *l, const char *name, double v, const char *unit)
{
	g_report(name, v, unit);
	if (l->nr_scalars == LAB_MAX_SCALARS)
		return;
	name_copy(l->scalars[l->nr_scalars].name, S2_LAB_SCALAR_NAME_LEN, name);
	l->scalars[l->nr_scalars++].value = v;
}

/* Append a section header of @kind, @name, @len payload bytes at @off; returns the
 * payload's offset. */
static uint64_t put_section(unsigned char *p, uint64_t off, uint32_t kind, const char *name,
			    uint64_t len)
{
	struct s2_lab_section s;

	s.kind = kind;
	s.len = (uint32_t)len;
	name_copy(s.name, sizeof(s.name), name);
	memcpy(p + off, &s, sizeof(s));
	return off + sizeof(s);
}

int64_t lab_send(struct lab *l)
{
	unsigned char *p = (unsigned char *)lab_blob;
	struct s2_lab_header h;
	uint64_t off = sizeof(h);
	uint32_t nsec = 0;
	int64_t r;

	if (l->on) {
		for (unsigned i = 0; i < l->nr_hists; i++) {
			struct s2_lab_hist hh = {
				.sub_bits = S2_LAB_HIST_SUB_BITS,
				.nr_buckets = S2_LAB_HIST_BUCKETS,
				.count = l->hists[i]->count,
				.sum = l->hists[i]->sum,
				.min = l->hists[i]->min,
				.max = l->hists[i]->max,
			};

			off = put_section(p, off, S2_LAB_SEC_HIST, l->hist_name[i],
					  sizeof(hh) + 8ull * S2_LAB_HIST_BUCKETS);
			memcpy(p + off, &hh, sizeof(hh));
			off += sizeof(hh);
			memcpy(p + off, l->hists[i]->b, 8ull * S2_LAB_HIST_BUCKETS);
			off += 8ull * S2_LAB_HIST_BUCKETS;
			nsec++;
		}
		{
			struct s2_lab_windows w = {
				.start_tsc = l->begin_tsc,
				.window_tsc = l->window_tsc,
				.nr = l->nr_windows,
				.unit = l->unit,
			};

			off = put_section(p, off, S2_LAB_SEC_WINDOWS, "throughput",
					  sizeof(w) + 8ull * w.nr);
			memcpy(p + off, &w, sizeof(w));
			off += sizeof(w);
			memcpy(p + off, l->windows, 8ull * w.nr);
			off += 8ull * w.nr;
			nsec++;
		}
	}
	if (l->nr_phases) {
		uint64_t n = l->nr_phases * sizeof(struct s2_lab_phase);

		off = put_section(p, off, S2_LAB_SEC_PHASES, "phases", n);
		memcpy(p + off, l->phases, n);
		off += n;
		nsec++;
	}
	if (l->nr_scalars) {
		off = put_section(p, off, S2_LAB_SEC_SCALARS, "scalars",
				  l->nr_scalars * sizeof(struct s2_lab_scalar));
		memcpy(p + off, l->scalars, l->nr_scalars * sizeof(struct s2_lab_scalar));
		off += l->nr_scalars * sizeof(struct s2_lab_scalar);
		nsec++;
	}
	memset(&h, 0, sizeof(h));
	h.magic = S2_LAB_MAGIC;
	h.version = S2_LAB_VERSION;
	h.header_len = sizeof(h);
	h.total_len = (uint32_t)off;
	h.nr_sections = nsec;
	name_copy(h.workload, sizeof(h.workload), l->workload);
	h.tsc0 = l->tsc0;
	h.ns0 = l->ns0;
	h.tsc1 = l->tsc1;
	h.ns1 = l->ns1;
	h.flags = l->on ? S2_LAB_F_INSTRUMENTS : 0;
	memcpy(p, &h, sizeof(h));
	r = g_hypercall(S2_HC_LAB_RESULT, (uintptr_t)p, off, 0, 0, 0);
	if (r < 0 && r != -19 /* ENODEV: no --lab-out */)
		g_printf("%s: the VMM refused the lab results: error %ld\n", l->workload, (long)r);
	return r;
}
