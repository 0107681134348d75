// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the option parsers. The input is split into words at NUL or
 * newline (a seed file is one word per line); each word goes to s2_size_parse() and
 * numa_opt_parse(), then "run" followed by the words goes to run_opts_parse(), freed with
 * run_opts_free() on success. Besides what ASan, UBSan and LeakSanitizer catch, a finding
 * is a documented guarantee that does not hold: an error without a message, a size whose
 * meaning depends on the default unit although it has a suffix, or an accepted option set
 * that breaks a struct run_opts or struct mm_guest_node field comment.
 */
#include <errno.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"
#include "vmm/options.h"

#define MAX_WORDS 256 /* argv words after "run"; more are dropped */
#define MIB2 (2ull << 20)

/* A node numa_opt_parse() or run_opts_parse() accepted, against mm/mm.h's field comments. */
static void check_node(const struct mm_guest_node *n)
{
	fuzz_check(n->id < MM_MAX_NODES);
	fuzz_check(n->size && n->size % MIB2 == 0);
	fuzz_check(n->policy == MM_POLICY_BIND || n->policy == MM_POLICY_PREFERRED ||
		   n->policy == MM_POLICY_INTERLEAVE);
	fuzz_check(n->nr_hosts <= MM_MAX_POOLS);
}

/*
 * s2_size_parse() with the default unit bytes and MiB: malformed text is malformed in both,
 * and a size that parses in MiB is the bytes one, shifted if it had no suffix.
 */
static void check_size(const char *w)
{
	uint64_t b = 0, m = 0;
	int rb = s2_size_parse(w, 0, &b);
	int rm = s2_size_parse(w, 20, &m);
	char text[64];

	fuzz_check(rb == 0 || rb == -EINVAL || rb == -ERANGE);
	fuzz_check(rm == 0 || rm == -EINVAL || rm == -ERANGE);
	fuzz_check((rb == -EINVAL) == (rm == -EINVAL));
	fuzz_check(rb != -ERANGE || rm == -ERANGE);
	if (rm == 0)
		fuzz_check(rb == 0 && (m == b || (m == b << 20 && m >> 20 == b)));
	if (rb == 0)
		fuzz_check(strlen(s2_size_format(b, text, sizeof(text))) < sizeof(text));
}

static void check_numa(const char *w)
{
	struct mm_guest_node n;
	struct s2_err e = { .msg = "" };
	int r = numa_opt_parse(w, &n, &e);

	if (r == 0)
		check_node(&n);
	else
		fuzz_check(r == -EINVAL && e.msg[0]);
}

/* run_opts_parse() returned @r for @o; argv's strings are [text, text_end). */
static void check_run(int r, const struct run_opts *o, const struct s2_err *e, const char *text,
		      const char *text_end)
{
	if (r < 0) {
		fuzz_check(e->msg[0]);
		return;
	}
	fuzz_check(r == RUN_OPTS_OK || r == RUN_OPTS_HELP || r == RUN_OPTS_VERSION);
	if (r != RUN_OPTS_OK)
		return;
	/* Without KERNEL only --api-socket is accepted: the VM then waits for vm.create. */
	if (o->kernel) {
		fuzz_check(o->kernel >= text && o->kernel < text_end);
		fuzz_check(o->guest_args);
	} else {
		fuzz_check(o->api.enabled && (o->api.path || o->api.fd >= 0));
		fuzz_check(!o->guest_args);
	}
	fuzz_check(o->mem_size && o->mem_size % MIB2 == 0);
	fuzz_check(o->vcpus >= 1);
	fuzz_check(o->stats == RUN_STATS_NONE || o->stats == RUN_STATS_TEXT ||
		   o->stats == RUN_STATS_JSON);
	fuzz_check(o->accel == ACCEL_AUTO || o->accel == ACCEL_KVM || o->accel == ACCEL_PROC);
	fuzz_check(o->nr_numa <= MM_MAX_NODES && o->nr_pools <= MM_MAX_POOLS);
	for (unsigned i = 0; i < o->nr_numa; i++) {
		check_node(&o->numa[i]);
		fuzz_check(o->numa[i].id == i); /* sorted by guest ID, and dense */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char run[] = "run";
	char *argv[MAX_WORDS + 2] = { run };
	int argc = 1, r;
	struct run_opts o;
	struct s2_err e = { .msg = "" };
	char *text, *w;

	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	/* every NUL or newline ends a word; an empty last word is not one */
	w = text;
	for (size_t i = 0; i <= size && argc <= MAX_WORDS; i++) {
		if (i < size && text[i] != '\0' && text[i] != '\n')
			continue;
		text[i] = '\0';
		if (i < size || w < text + i)
			argv[argc++] = w;
		w = text + i + 1;
	}
	argv[argc] = NULL;

	for (int i = 1; i < argc; i++) {
		check_size(argv[i]);
		check_numa(argv[i]);
	}
	r = run_opts_parse(argc, argv, &o, &e);
	check_run(r, &o, &e, text, text + size + 1);
	if (r >= 0)
		run_opts_free(&o);
	free(text);
	return 0;
}
