// SPDX-License-Identifier: MIT
/*
 * s2vm ctl --api-socket PATH [--json] COMMAND [ARGS]: the control API's client (as
 * Cloud Hypervisor's ch-remote is), over the Unix socket with libcurl. Prints a short
 * human summary, or with --json the server's JSON as it came. Exit 0 on success, 1 when
 * the server answered with an error (its message on stderr), 2 on bad usage or when the
 * socket cannot be reached.
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s2vm/types.h"
#include "vmm/cmd.h"
#include "vmm/err.h"
#include "vmm/options.h"

static const char usage_text[] =
	"Usage: s2vm ctl --api-socket PATH [--json] COMMAND [ARGS]\n"
	"\n"
	"Talk to a running s2vm through its control API (s2vm run ... --api-socket PATH).\n"
	"\n"
	"Commands:\n"
	"  ping                       the server's version and pid\n"
	"  info                       the VM's configuration and state\n"
	"  counters                   device counters\n"
	"  pause | resume             stop / restart every vCPU\n"
	"  shutdown                   stop the guest (s2vm exits)\n"
	"  memory                     the memory statistics (--stats=json), live\n"
	"  migrate-memory HOST_NODE (--guest-node G | --range GPA:LEN ...)\n"
	"                             move guest memory to host node HOST_NODE\n"
	"  balloon SIZE               set the balloon target (K, M, G suffixes)\n"
	"\n"
	"Options:\n"
	"      --api-socket PATH  the server's socket\n"
	"      --json             print the server's JSON answer as it is\n"
	"  -h, --help             show this help\n";

struct buf {
	char *p;
	size_t len;
};

static size_t on_data(char *d, size_t sz, size_t n, void *ctx)
{
	struct buf *b = ctx;
	char *p = realloc(b->p, b->len + sz * n + 1);

	if (!p)
		return 0;
	memcpy(p + b->len, d, sz * n);
	b->p = p;
	b->len += sz * n;
	b->p[b->len] = '\0';
	return sz * n;
}

/* One request. Returns the HTTP status (0 if the socket could not be reached, with the
 * reason in @err) and the body in @out. */
static long request(const char *sock, const char *method, const char *ep, const char *body,
		    struct buf *out, char *err, size_t errlen)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	char url[128], ebuf[CURL_ERROR_SIZE] = "";
	long status = 0;

	if (!c) {
		snprintf(err, errlen, "libcurl cannot start");
		return 0;
	}
	snprintf(url, sizeof(url), "http://localhost/api/v1/%s", ep);
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 600L);
	if (body) {
		h = curl_slist_append(h, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	} else if (!strcmp(method, "PUT")) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	}
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	else
		snprintf(err, errlen, "cannot reach %s: %s", sock, ebuf[0] ? ebuf : "error");
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return status;
}

static uint64_t jget(json_object *o, const char *path)
{
	char key[64];
	const char *dot;
	json_object *x = o;

	while (x && (dot = strchr(path, '.'))) {
		snprintf(key, sizeof(key), "%.*s", (int)(dot - path), path);
		if (!json_object_object_get_ex(x, key, &x))
			return 0;
		path = dot + 1;
	}
	return x && json_object_object_get_ex(x, path, &x) ? json_object_get_uint64(x) : 0;
}

/* The human summary of a successful answer to @cmd. */
static void print_human(const char *cmd, json_object *o)
{
	char a[32];

	if (!strcmp(cmd, "ping")) {
		json_object *v;

		printf("s2vm %s (API %s), pid %" PRIu64 "\n",
		       json_object_object_get_ex(o, "build_version", &v) ? json_object_get_string(v) : "?",
		       json_object_object_get_ex(o, "version", &v) ? json_object_get_string(v) : "?",
		       jget(o, "pid"));
	} else if (!strcmp(cmd, "info")) {
		json_object *st;

		printf("state      %s\n", json_object_object_get_ex(o, "state", &st) ?
						  json_object_get_string(st) : "?");
		printf("vCPUs      %" PRIu64 "\n", jget(o, "config.cpus.boot_vcpus"));
		printf("memory     %s", s2_size_format(jget(o, "config.memory.size"), a, sizeof(a)));
		printf(" (%s available to the guest)\n",
		       s2_size_format(jget(o, "memory_actual_size"), a, sizeof(a)));
	} else if (!strcmp(cmd, "migrate-memory")) {
		printf("moved %" PRIu64 " pages (%s) in %" PRIu64 " runs; %" PRIu64
		       " already there, %" PRIu64 " aborted, %" PRIu64 " pinned\n",
		       jget(o, "pages"), s2_size_format(jget(o, "bytes"), a, sizeof(a)),
		       jget(o, "runs"), jget(o, "skipped_pages"), jget(o, "aborted_pages"),
		       jget(o, "pinned_pages"));
	} else if (!strcmp(cmd, "memory")) {
		json_object *hn;

		if (json_object_object_get_ex(o, "memory", &hn) &&
		    json_object_object_get_ex(hn, "host_nodes", &hn)) {
			printf("host node  real  used MiB  resident MiB\n");
			for (size_t i = 0; i < json_object_array_length(hn); i++) {
				json_object *n = json_object_array_get_idx(hn, i), *r;

				printf("%9" PRIu64 "  %-4s  %8.1f  %12.1f\n", jget(n, "node"),
				       json_object_object_get_ex(n, "real", &r) &&
						       json_object_get_boolean(r) ? "yes" : "no",
				       (double)jget(n, "used_bytes") / (1 << 20),
				       (double)jget(n, "resident_bytes") / (1 << 20));
			}
		}
		printf("migrated   %" PRIu64 " pages; discarded %" PRIu64 " pages\n",
		       jget(o, "migration.pages"), jget(o, "discard.pages"));
	} else {
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
	}
}

int cmd_ctl(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "api-socket", required_argument, NULL, 'S' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "guest-node", required_argument, NULL, 'g' },
		{ "range", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock = NULL, *cmd, *method = "GET", *ep;
	json_object *body = NULL, *ranges = NULL;
	bool json = false;
	long guest_node = -1;
	struct buf out = { 0 };
	char err[256] = "", *bodystr = NULL;
	long status;
	int c, rc = 2;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'S':
			sock = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'g': {
			char *end;

			errno = 0;
			guest_node = strtol(optarg, &end, 10);
			if (errno || *end || guest_node < 0) {
				fprintf(stderr, "s2vm ctl: --guest-node %s: not a node number\n", optarg);
				return 2;
			}
			break;
		}
		case 'r': {
			uint64_t gpa, len;
			char *colon = strchr(optarg, ':');
			json_object *r;

			if (!colon || s2_size_parse(colon + 1, 0, &len) ||
			    (*optarg == '0' && (optarg[1] == 'x' || optarg[1] == 'X') ?
				     sscanf(optarg, "%" SCNx64, &gpa) != 1 :
				     sscanf(optarg, "%" SCNu64, &gpa) != 1)) {
				fprintf(stderr, "s2vm ctl: --range %s: expected GPA:LEN (e.g. "
						"0x200000:2M)\n",
					optarg);
				json_object_put(ranges);
				return 2;
			}
			if (!ranges)
				ranges = json_object_new_array();
			r = json_object_new_object();
			json_object_object_add(r, "gpa", json_object_new_uint64(gpa));
			json_object_object_add(r, "len", json_object_new_uint64(len));
			json_object_array_add(ranges, r);
			break;
		}
		default:
			fputs(usage_text, stderr);
			return 2;
		}
	}
	if (!sock || optind >= argc) {
		fprintf(stderr, "s2vm ctl: %s\n\n%s", !sock ? "--api-socket PATH is required" :
							       "which command?", usage_text);
		json_object_put(ranges);
		return 2;
	}
	cmd = argv[optind++];
	ep = NULL;
	if (!strcmp(cmd, "ping")) {
		ep = "vmm.ping";
	} else if (!strcmp(cmd, "info")) {
		ep = "vm.info";
	} else if (!strcmp(cmd, "counters")) {
		ep = "vm.counters";
	} else if (!strcmp(cmd, "memory")) {
		ep = "vm.memory";
	} else if (!strcmp(cmd, "pause") || !strcmp(cmd, "resume") || !strcmp(cmd, "shutdown")) {
		static char name[16];

		snprintf(name, sizeof(name), "vm.%s", cmd);
		ep = name;
		method = "PUT";
	} else if (!strcmp(cmd, "balloon") && optind == argc - 1) {
		uint64_t v;

		if (s2_size_parse(argv[optind], 20, &v)) {
			fprintf(stderr, "s2vm ctl: balloon %s: not a size\n", argv[optind]);
			return 2;
		}
		body = json_object_new_object();
		json_object_object_add(body, "desired_balloon", json_object_new_uint64(v));
		ep = "vm.resize";
		method = "PUT";
	} else if (!strcmp(cmd, "migrate-memory") && optind == argc - 1 &&
		   (guest_node >= 0) != (ranges != NULL)) {
		char *end;
		long node;

		errno = 0;
		node = strtol(argv[optind], &end, 10);
		if (errno || *end || node < 0) {
			fprintf(stderr, "s2vm ctl: migrate-memory %s: not a host node\n", argv[optind]);
			json_object_put(ranges);
			return 2;
		}
		body = json_object_new_object();
		json_object_object_add(body, "host_node", json_object_new_int64(node));
		if (ranges)
			json_object_object_add(body, "ranges", ranges);
		else
			json_object_object_add(body, "guest_node", json_object_new_int64(guest_node));
		ranges = NULL;
		ep = "vm.migrate-memory";
		method = "PUT";
	}
	json_object_put(ranges);
	if (!ep) {
		fprintf(stderr, "s2vm ctl: %s: unknown command or wrong arguments\n\n%s", cmd,
			usage_text);
		json_object_put(body);
		return 2;
	}
	if (body)
		bodystr = strdup(json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN));
	json_object_put(body);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	status = request(sock, method, ep, bodystr, &out, err, sizeof(err));
	free(bodystr);
	if (!status) {
		fprintf(stderr, "s2vm ctl: %s\n", err);
	} else if (status >= 400) {
		json_object *o = out.p ? json_tokener_parse(out.p) : NULL, *m;

		fprintf(stderr, "s2vm ctl: %s: HTTP %ld: %s\n", cmd, status,
			o && json_object_object_get_ex(o, "error", &m) ? json_object_get_string(m) :
									 (out.p ? out.p : ""));
		json_object_put(o);
		rc = 1;
	} else {
		json_object *o = out.len ? json_tokener_parse(out.p) : NULL;

		if (json && out.len)
			printf("%s\n", out.p);
		else if (o)
			print_human(cmd, o);
		else
			printf("%s: done\n", cmd);
		json_object_put(o);
		rc = 0;
	}
	free(out.p);
	curl_global_cleanup();
	return rc;
}
