// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "mm/migrate.h"
#include "vmm/api.h"
#include "vmm/api_req.h"
#include "vmm/options.h"
#include "vmm/stats.h"
#include "vmm/version.h"
#include "vmm/virtio_balloon.h"
#include "vmm/virtio_blk.h"


enum api_state {
	API_EMPTY, /* no VM: waiting for vm.create */
	API_CREATED, /* vm.create gave a config: waiting for vm.boot */
	API_BOOTING, /* vm.boot: the main thread builds the VM (api_wait_boot returned) */
	API_ATTACHED, /* a VM runs: ctx.vm is set */
	API_REBOOTING, /* vm.reboot: the main thread tears the VM down and builds it again */
	API_QUIT, /* vmm.shutdown before any VM (or while one is rebuilt) */
};

struct api {
	pthread_mutex_t lock; /* state, ctx, cfg */
	pthread_cond_t cond; /* state changed */
	enum api_state state;
	struct run_opts cfg; /* API_CREATED, API_BOOTING: from vm.create */
	struct api_ctx pending; /* api_set_pending(): attached by api_started() */
	struct api_ctx ctx;
	unsigned users; /* requests using ctx.vm now: a reboot waits for them */
	bool reboot; /* vm.reboot answered: the VM stops, then is built again */
	bool reboot_asked; /* vm.reboot is being answered: vm.info says "rebooting" from now */
	bool shutdown_asked; /* vm.shutdown/vm.delete/vmm.shutdown for this VM */
	struct MHD_Daemon *d;
	int fd;
	char *path; /* unlinked at stop, if we made it */
};

/* One request's body, gathered across the access handler's calls. */
struct req {
	char *body;
	size_t len;
	bool too_big;
	bool stop_vm; /* once the answer is sent: stop the VM */
	bool quit; /* once the answer is sent: no VM will come, s2vm exits */
	bool reboot; /* once the answer is sent: stop the VM and build it again */
	bool holds_vm; /* counted in api->users until done() */
};

/* ---- responses ---- */

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_object *o)
{
	const char *s = o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN) : "";
	struct MHD_Response *r =
		MHD_create_response_from_buffer(strlen(s), (void *)s, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (o)
		MHD_add_response_header(r, "Content-Type", "application/json");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	json_object_put(o);
	return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
{
	json_object *o = json_object_new_object();
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_object_object_add(o, "error", json_object_new_string(msg));
	return send_json(c, status, o);
}

/* ---- endpoints ---- */

/* What a handler answers: an HTTP status and a JSON body (NULL: none, e.g. 204). */
struct answer {
	unsigned status;
	json_object *body;
	char err[400]; /* used when status >= 400 */
	bool stop_vm, quit, reboot; /* acted on after the answer went out (done()):
				     * stopping first could close the socket before the
				     * client has its answer */
};

static void fail(struct answer *a, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail(struct answer *a, unsigned status, const char *fmt, ...)
{
	va_list ap;

	a->status = status;
	va_start(ap, fmt);
	vsnprintf(a->err, sizeof(a->err), fmt, ap);
	va_end(ap);
}

static void ep_ping(struct api *api, json_object *in, struct answer *a)
{
	json_object *o = json_object_new_object(), *f = json_object_new_array();

	(void)api;
	(void)in;
	json_object_object_add(o, "build_version", json_object_new_string(S2VM_VERSION));
	json_object_object_add(o, "version", json_object_new_string(API_CH_VERSION));
	json_object_object_add(o, "pid", json_object_new_int64(getpid()));
	json_object_array_add(f, json_object_new_string("s2vm-memory"));
	json_object_object_add(o, "features", f);
	a->status = 200;
	a->body = o;
}

static const char *vm_state(struct vm *vm)
{
	if (atomic_load(&vm->stopping))
		return "Shutdown";
	return atomic_load(&vm->paused) ? "Paused" : "Running";
}

/* vm.info before the VM runs: the config vm.create gave, state Created. */
static void info_created(struct api *api, struct answer *a)
{
	json_object *o = json_object_new_object(), *cfg = json_object_new_object();
	json_object *cpus = json_object_new_object(), *mem = json_object_new_object();
	json_object *payload = json_object_new_object();

	pthread_mutex_lock(&api->lock);
	if (api->state == API_EMPTY || api->state == API_QUIT) {
		pthread_mutex_unlock(&api->lock);
		json_object_put(o);
		json_object_put(cfg);
		json_object_put(cpus);
		json_object_put(mem);
		json_object_put(payload);
		return fail(a, 404, "no VM: vm.create first");
	}
	json_object_object_add(cpus, "boot_vcpus", json_object_new_int((int)api->cfg.vcpus));
	json_object_object_add(cpus, "max_vcpus", json_object_new_int((int)api->cfg.vcpus));
	json_object_object_add(cfg, "cpus", cpus);
	json_object_object_add(mem, "size", json_object_new_uint64(api->cfg.mem_size));
	json_object_object_add(cfg, "memory", mem);
	json_object_object_add(payload, "kernel", json_object_new_string(api->cfg.kernel));
	json_object_object_add(payload, "cmdline", json_object_new_string(api->cfg.guest_args));
	json_object_object_add(cfg, "payload", payload);
	json_object_object_add(o, "config", cfg);
	json_object_object_add(o, "state", json_object_new_string("Created"));
	json_object_object_add(o, "memory_actual_size", json_object_new_uint64(api->cfg.mem_size));
	pthread_mutex_unlock(&api->lock);
	a->status = 200;
	a->body = o;
}

static void ep_info(struct api *api, json_object *in, struct answer *a)
{
	struct vm *vm;
	bool rebooting;

	pthread_mutex_lock(&api->lock);
	/* once vm.reboot is answered the old VM is on its way out: never report it Running
	 * (done() stops it only after the answer went out, and a client may ask at once) */
	rebooting = api->state == API_REBOOTING ||
		    (api->state == API_ATTACHED && api->reboot_asked && !api->shutdown_asked);
	vm = api->state == API_ATTACHED && !rebooting ? api->ctx.vm : NULL;
	pthread_mutex_unlock(&api->lock);
	if (rebooting)
		return fail(a, 409, "the VM is rebooting");
	if (!vm)
		return info_created(api, a);
	json_object *o = json_object_new_object(), *cfg = json_object_new_object();
	json_object *cpus = json_object_new_object(), *mem = json_object_new_object();
	json_object *payload = json_object_new_object(), *con = json_object_new_object();
	uint64_t actual = vm->mm.cfg.mem_size;

	(void)in;
	json_object_object_add(cpus, "boot_vcpus", json_object_new_int(vm->nr_vcpus));
	json_object_object_add(cpus, "max_vcpus", json_object_new_int(vm->nr_vcpus));
	json_object_object_add(cfg, "cpus", cpus);
	json_object_object_add(mem, "size", json_object_new_uint64(vm->mm.cfg.mem_size));
	json_object_object_add(cfg, "memory", mem);
	if (api->ctx.kernel)
		json_object_object_add(payload, "kernel", json_object_new_string(api->ctx.kernel));
	if (api->ctx.cmdline)
		json_object_object_add(payload, "cmdline", json_object_new_string(api->ctx.cmdline));
	json_object_object_add(cfg, "payload", payload);
	/* the guest's console is s2vm's standard output, and a pty if vm.create asked */
	json_object_object_add(con, "mode", json_object_new_string(vm->console_fd >= 0 ? "Pty" :
											   "Tty"));
	if (vm->console_fd >= 0)
		json_object_object_add(con, "file", json_object_new_string(vm->console_path));
	json_object_object_add(cfg, "console", json_object_get(con));
	json_object_object_add(cfg, "serial", con);
	json_object_object_add(o, "config", cfg);
	json_object_object_add(o, "state", json_object_new_string(vm_state(vm)));
	if (api->ctx.balloon) {
		struct vballoon_report r;

		vballoon_report(api->ctx.balloon, &r);
		actual -= r.held_pages << 12 < actual ? r.held_pages << 12 : actual;
	}
	json_object_object_add(o, "memory_actual_size", json_object_new_uint64(actual));
	a->status = 200;
	a->body = o;
}

static void ep_counters(struct api *api, json_object *in, struct answer *a)
{
	struct vm *vm = api->ctx.vm;
	json_object *o = json_object_new_object();

	(void)in;
	for (unsigned i = 0, disk = 0; i < vm->nr_mmio; i++) {
		struct vmmio_dev *d = vmmio_of(&vm->mmio[i]);
		struct vblk *b = d ? vblk_of(d) : NULL;
		json_object *c;
		struct vblk_report r;
		char name[16];

		if (!b)
			continue;
		vblk_report(b, &r);
		c = json_object_new_object();
		json_object_object_add(c, "read_bytes", json_object_new_uint64(r.read_bytes));
		json_object_object_add(c, "write_bytes", json_object_new_uint64(r.write_bytes));
		json_object_object_add(c, "read_ops", json_object_new_uint64(r.read_ops));
		json_object_object_add(c, "write_ops", json_object_new_uint64(r.write_ops));
		snprintf(name, sizeof(name), "_disk%u", disk++);
		json_object_object_add(o, name, c);
	}
	if (api->ctx.balloon) {
		struct vballoon_report r;
		json_object *c = json_object_new_object();

		vballoon_report(api->ctx.balloon, &r);
		json_object_object_add(c, "inflated_pages", json_object_new_uint64(r.inflated_pages));
		json_object_object_add(c, "deflated_pages", json_object_new_uint64(r.deflated_pages));
		json_object_object_add(c, "reported_pages", json_object_new_uint64(r.reported_pages));
		json_object_object_add(c, "returned_bytes", json_object_new_uint64(r.returned_bytes));
		json_object_object_add(o, "_balloon", c);
	}
	a->status = 200;
	a->body = o;
}

static void ep_pause(struct api *api, json_object *in, struct answer *a)
{
	int r = vm_pause(api->ctx.vm);

	(void)in;
	if (r == -EALREADY)
		return fail(a, 409, "the VM is already paused");
	if (r)
		return fail(a, 500, "pausing the VM: %s", strerror(-r));
	a->status = 204;
}

static void ep_resume(struct api *api, json_object *in, struct answer *a)
{
	(void)in;
	if (vm_resume(api->ctx.vm) == -EALREADY)
		return fail(a, 409, "the VM is not paused");
	a->status = 204;
}

static void ep_shutdown(struct api *api, json_object *in, struct answer *a)
{
	(void)api;
	(void)in;
	a->stop_vm = true;
	a->status = 204;
}

/* A non-negative integer member @key of @in. Returns 1 found, 0 absent, -1 wrong type. */
static int get_u64(json_object *in, const char *key, uint64_t *v)
{
	json_object *x;

	if (!json_object_object_get_ex(in, key, &x))
		return 0;
	if (!json_object_is_type(x, json_type_int) || json_object_get_int64(x) < 0)
		return -1;
	*v = json_object_get_uint64(x);
	return 1;
}

static void ep_resize(struct api *api, json_object *in, struct answer *a)
{
	uint64_t v;
	int r = get_u64(in, "desired_balloon", &v);

	if (r < 0)
		return fail(a, 400, "desired_balloon: expected a byte count");
	if (json_object_object_get_ex(in, "desired_vcpus", NULL) ||
	    json_object_object_get_ex(in, "desired_ram", NULL))
		return fail(a, 400, "s2vm cannot hot-plug vCPUs or RAM: resize takes "
				    "desired_balloon only");
	if (!r)
		return fail(a, 400, "desired_balloon is missing");
	if (!api->ctx.balloon)
		return fail(a, 409, "the VM has no balloon (--balloon)");
	if (v % 4096 || v > api->ctx.vm->mm.cfg.mem_size)
		return fail(a, 400, "desired_balloon=%llu: a multiple of 4 KiB, at most the "
				    "guest's RAM (%llu bytes)",
			    (unsigned long long)v, (unsigned long long)api->ctx.vm->mm.cfg.mem_size);
	vballoon_set_target(api->ctx.balloon, v);
	a->status = 204;
}

static void ep_memory(struct api *api, json_object *in, struct answer *a)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);

	(void)in;
	if (!m)
		return fail(a, 500, "out of memory");
	vm_stats_print(api->ctx.vm, RUN_STATS_JSON, m);
	if (fclose(m) == 0)
		a->body = json_tokener_parse(buf);
	free(buf);
	if (!a->body)
		return fail(a, 500, "statistics unavailable");
	a->status = 200;
}

#define MIGRATE_MAX_RANGES 1024

static void ep_migrate(struct api *api, json_object *in, struct answer *a)
{
	struct mm *mm = &api->ctx.vm->mm;
	struct mig_range r[MIGRATE_MAX_RANGES];
	struct mig_result res;
	json_object *ranges, *o;
	uint64_t node, g;
	size_t n = 0;
	int e;

	if (get_u64(in, "host_node", &node) != 1 || node > 63)
		return fail(a, 400, "host_node: expected a host node number, 0..63");
	e = get_u64(in, "guest_node", &g);
	if (json_object_object_get_ex(in, "ranges", &ranges) == (e == 1))
		return fail(a, 400, "give exactly one of guest_node and ranges");
	if (e < 0)
		return fail(a, 400, "guest_node: expected a guest node number");
	if (e == 1) {
		if (g >= mm->cfg.nr_nodes)
			return fail(a, 400, "guest_node %llu: the guest has %u node(s)",
				    (unsigned long long)g, mm->cfg.nr_nodes);
		r[n++] = (struct mig_range){ mm->cfg.nodes[g].gpa, mm->cfg.nodes[g].size };
	} else {
		if (!json_object_is_type(ranges, json_type_array) ||
		    !json_object_array_length(ranges))
			return fail(a, 400, "ranges: expected a non-empty array of {gpa, len}");
		if (json_object_array_length(ranges) > MIGRATE_MAX_RANGES)
			return fail(a, 400, "ranges: at most %u", MIGRATE_MAX_RANGES);
		for (size_t i = 0; i < json_object_array_length(ranges); i++) {
			json_object *x = json_object_array_get_idx(ranges, i);
			uint64_t gpa, len;

			if (!json_object_is_type(x, json_type_object) || get_u64(x, "gpa", &gpa) != 1 ||
			    get_u64(x, "len", &len) != 1)
				return fail(a, 400, "ranges[%zu]: expected {\"gpa\": N, \"len\": N}", i);
			if (!len || (gpa | len) % 4096 || gpa + len < gpa ||
			    gpa + len > mm->cfg.mem_size)
				return fail(a, 400,
					    "ranges[%zu]: [%#llx, +%#llx) must be 4 KiB aligned, "
					    "non-empty and inside guest RAM",
					    i, (unsigned long long)gpa, (unsigned long long)len);
			r[n++] = (struct mig_range){ gpa, len };
		}
	}
	{
		bool known = pool_node_is_real((unsigned)node);

		for (unsigned i = 0; i < mm->nr_pools; i++)
			known |= mm->pools[i].node == node;
		for (unsigned i = 0; i < mm->cfg.nr_caps; i++) /* --pool names it */
			known |= mm->cfg.caps[i].node == node;
		if (!known)
			return fail(a, 400,
				    "host node %llu: not on this host and not one of the VM's "
				    "pools (emulated nodes come from s2vm run's --numa and --pool)",
				    (unsigned long long)node);
	}
	e = mm_migrate(mm, r, n, (unsigned)node, &res);
	if (e && e != -ENOSPC)
		return fail(a, e == -EINVAL ? 400 : 500, "migrating to host node %llu: %s",
			    (unsigned long long)node, mm->err[0] ? mm->err : strerror(-e));
	o = json_object_new_object();
	json_object_object_add(o, "pages", json_object_new_uint64(res.pages));
	json_object_object_add(o, "bytes", json_object_new_uint64(res.pages << 12));
	json_object_object_add(o, "skipped_pages", json_object_new_uint64(res.skipped));
	json_object_object_add(o, "aborted_pages", json_object_new_uint64(res.aborted));
	json_object_object_add(o, "pinned_pages", json_object_new_uint64(res.pinned));
	json_object_object_add(o, "runs", json_object_new_uint64(res.runs));
	json_object_object_add(o, "batches", json_object_new_uint64(res.batches));
	a->status = 200;
	a->body = o;
}

static void ep_vmm_shutdown(struct api *api, json_object *in, struct answer *a)
{
	(void)in;
	(void)api;
	a->stop_vm = true;
	a->quit = true;
	a->status = 204;
}

/* The request's raw body (vm.create parses it itself). */
static __thread const char *req_body;
static __thread size_t req_len;

static void ep_create(struct api *api, json_object *in, struct answer *a)
{
	struct s2_err e = { "" };
	struct run_opts o;

	(void)in;
	pthread_mutex_lock(&api->lock);
	if (api->state != API_EMPTY) {
		pthread_mutex_unlock(&api->lock);
		return fail(a, 409, "a VM was created already (vm.delete it first)");
	}
	pthread_mutex_unlock(&api->lock);
	if (!req_len)
		return fail(a, 400, "vm.create needs a JSON body (a VmConfig)");
	if (api_create_parse(req_body, req_len, &o, &e))
		return fail(a, 400, "vm.create: %s", e.msg);
	pthread_mutex_lock(&api->lock);
	if (api->state != API_EMPTY) { /* another create won the race */
		pthread_mutex_unlock(&api->lock);
		run_opts_free(&o);
		return fail(a, 409, "a VM was created already (vm.delete it first)");
	}
	api->cfg = o;
	api->state = API_CREATED;
	pthread_mutex_unlock(&api->lock);
	a->status = 204;
}

static void ep_boot(struct api *api, json_object *in, struct answer *a)
{
	(void)in;
	pthread_mutex_lock(&api->lock);
	if (api->state != API_CREATED) {
		enum api_state st = api->state;

		pthread_mutex_unlock(&api->lock);
		return fail(a, 409, st == API_EMPTY ? "no VM: vm.create first" :
						     "the VM is booted already");
	}
	api->state = API_BOOTING;
	pthread_cond_broadcast(&api->cond);
	/* answer once the VM runs (or failed to start), as Cloud Hypervisor does */
	while (api->state == API_BOOTING)
		pthread_cond_wait(&api->cond, &api->lock);
	pthread_mutex_unlock(&api->lock);
	if (api->state == API_QUIT)
		return fail(a, 500, "the VM could not be started (see s2vm's standard error)");
	a->status = 204;
}

static void ep_delete(struct api *api, json_object *in, struct answer *a)
{
	(void)in;
	pthread_mutex_lock(&api->lock);
	if (api->state == API_CREATED) {
		run_opts_free(&api->cfg);
		api->state = API_EMPTY;
	} else if (api->state == API_ATTACHED) {
		a->stop_vm = true;
	}
	pthread_mutex_unlock(&api->lock);
	a->status = 204;
}

/* Like Cloud Hypervisor: the guest starts again from its kernel with the same config;
 * its memory is made anew (the old VM and its memory are gone). */
static void ep_reboot(struct api *api, json_object *in, struct answer *a)
{
	(void)in;
	pthread_mutex_lock(&api->lock);
	api->reboot_asked = true;
	pthread_mutex_unlock(&api->lock);
	a->reboot = true;
	a->status = 204;
}

struct endpoint {
	const char *name; /* after /api/v1/ */
	const char *method;
	bool body; /* takes a JSON body */
	bool vm; /* needs a running VM */
	void (*fn)(struct api *api, json_object *in, struct answer *a);
};

static const struct endpoint endpoints[] = {
	{ "vmm.ping", "GET", false, false, ep_ping },
	{ "vmm.shutdown", "PUT", false, false, ep_vmm_shutdown },
	{ "vm.create", "PUT", false, false, ep_create }, /* the raw body: api_create_parse() */
	{ "vm.boot", "PUT", false, false, ep_boot },
	{ "vm.delete", "PUT", false, false, ep_delete },
	{ "vm.info", "GET", false, false, ep_info },
	{ "vm.counters", "GET", false, true, ep_counters },
	{ "vm.pause", "PUT", false, true, ep_pause },
	{ "vm.resume", "PUT", false, true, ep_resume },
	{ "vm.shutdown", "PUT", false, true, ep_shutdown },
	{ "vm.reboot", "PUT", false, true, ep_reboot },
	{ "vm.resize", "PUT", true, true, ep_resize },
	{ "vm.memory", "GET", false, true, ep_memory },
	{ "vm.migrate-memory", "PUT", true, true, ep_migrate },
};

/* ---- the server ---- */

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_size, void **con_cls)
{
	struct api *api = cls;
	struct req *rq = *con_cls;
	const struct endpoint *ep = NULL;
	struct answer a = { 0 };
	json_object *in = NULL;

	(void)version;
	if (!rq) { /* first call: headers only */
		rq = calloc(1, sizeof(*rq));
		if (!rq)
			return MHD_NO;
		*con_cls = rq;
		return MHD_YES;
	}
	if (*upload_size) { /* body data, possibly chunked: gather up to the limit */
		if (!rq->too_big && rq->len + *upload_size <= API_MAX_BODY) {
			char *b = realloc(rq->body, rq->len + *upload_size + 1);

			if (!b)
				return MHD_NO;
			memcpy(b + rq->len, upload, *upload_size);
			rq->body = b;
			rq->len += *upload_size;
			rq->body[rq->len] = '\0';
		} else {
			rq->too_big = true;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (rq->too_big)
		return send_error(c, 413, "request body over %u bytes",
				  API_MAX_BODY);
	if (strncmp(url, "/api/v1/", 8))
		return send_error(c, MHD_HTTP_NOT_FOUND, "no such endpoint: %s", url);
	for (size_t i = 0; i < sizeof(endpoints) / sizeof(endpoints[0]); i++)
		if (!strcmp(url + 8, endpoints[i].name))
			ep = &endpoints[i];
	if (!ep)
		return send_error(c, MHD_HTTP_NOT_FOUND, "no such endpoint: %s", url);
	if (strcmp(method, ep->method)) {
		json_object *o = json_object_new_object();
		const char *s;
		struct MHD_Response *r;
		enum MHD_Result ret;

		json_object_object_add(o, "error",
				       json_object_new_string(ep->method[0] == 'G' ?
								      "method not allowed: use GET" :
								      "method not allowed: use PUT"));
		s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
		r = MHD_create_response_from_buffer(strlen(s), (void *)s, MHD_RESPMEM_MUST_COPY);
		MHD_add_response_header(r, "Allow", ep->method);
		MHD_add_response_header(r, "Content-Type", "application/json");
		ret = MHD_queue_response(c, MHD_HTTP_METHOD_NOT_ALLOWED, r);
		MHD_destroy_response(r);
		json_object_put(o);
		return ret;
	}
	{
		/* a request that may use the VM holds it: a reboot waits for it */
		enum api_state st;

		pthread_mutex_lock(&api->lock);
		st = api->state;
		if (st == API_ATTACHED)
			api->users++;
		pthread_mutex_unlock(&api->lock);
		if (ep->vm && st != API_ATTACHED)
			return send_error(c, 409, st == API_REBOOTING ? "the VM is rebooting" :
					  "no VM is running (vm.create, then vm.boot)");
		rq->holds_vm = st == API_ATTACHED;
	}
	req_body = rq->body;
	req_len = rq->len;
	if (ep->body) {
		enum json_tokener_error je = json_tokener_success;

		if (!rq->len)
			return send_error(c, MHD_HTTP_BAD_REQUEST, "%s needs a JSON body", ep->name);
		in = json_tokener_parse_verbose(rq->body, &je);
		if (!in)
			return send_error(c, MHD_HTTP_BAD_REQUEST, "malformed JSON: %s",
					  json_tokener_error_desc(je));
		if (!json_object_is_type(in, json_type_object)) {
			json_object_put(in);
			return send_error(c, MHD_HTTP_BAD_REQUEST, "expected a JSON object");
		}
	}
	ep->fn(api, in, &a);
	json_object_put(in);
	rq->stop_vm = a.stop_vm;
	rq->quit = a.quit;
	rq->reboot = a.reboot;
	if (a.status >= 400)
		return send_error(c, a.status, "%s", a.err);
	return send_json(c, a.status, a.body);
}

static void done(void *cls, struct MHD_Connection *c, void **con_cls,
		 enum MHD_RequestTerminationCode toe)
{
	struct api *api = cls;
	struct req *rq = *con_cls;

	(void)c;
	(void)toe;
	if (rq && (rq->stop_vm || rq->quit || rq->reboot || rq->holds_vm)) {
		pthread_mutex_lock(&api->lock);
		if ((rq->stop_vm || rq->reboot) && api->state == API_ATTACHED) {
			/* a shutdown wins over a reboot asked before or after it */
			api->shutdown_asked |= rq->stop_vm;
			api->reboot = rq->reboot && !api->shutdown_asked;
			vm_stop(api->ctx.vm, VM_STOP_SIGNAL, 0);
		} else if (rq->quit && api->state != API_BOOTING && api->state != API_ATTACHED) {
			api->state = API_QUIT;
		}
		if (rq->holds_vm)
			api->users--;
		pthread_cond_broadcast(&api->cond);
		pthread_mutex_unlock(&api->lock);
	}
	if (rq) {
		free(rq->body);
		free(rq);
		*con_cls = NULL;
	}
}

int api_start(const struct api_opts *o, const struct api_ctx *ctx, struct api **out,
	      struct s2_err *e)
{
	struct api *a = calloc(1, sizeof(*a));
	sigset_t all, old;

	*out = NULL;
	if (!a)
		return s2_err_set(e, -ENOMEM, "out of memory");
	a->ctx = *ctx;
	a->fd = o->fd;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	a->state = ctx->vm ? API_ATTACHED : API_EMPTY;
	if (o->path) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		mode_t um;
		int r;

		a->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (a->fd < 0) {
			r = -errno;
			free(a);
			return s2_err_set(e, r, "--api-socket: socket: %s", strerror(-r));
		}
		strcpy(sa.sun_path, o->path); /* length checked by api_opt_parse() */
		um = umask(0177); /* the socket is created 0600: only its owner drives the VM */
		r = bind(a->fd, (struct sockaddr *)&sa, sizeof(sa)) ? -errno : 0;
		umask(um);
		if (!r && listen(a->fd, 64))
			r = -errno;
		if (r) {
			close(a->fd);
			free(a);
			return s2_err_set(e, r, "--api-socket path=%s: %s%s", o->path, strerror(-r),
					  r == -EADDRINUSE ? " (remove the stale socket, or is "
							     "another s2vm using it?)" :
							     "");
		}
		a->path = strdup(o->path);
	} else {
		int type = 0;
		socklen_t tl = sizeof(type);

		if (getsockopt(a->fd, SOL_SOCKET, SO_TYPE, &type, &tl) || type != SOCK_STREAM) {
			free(a);
			return s2_err_set(e, -EINVAL,
					  "--api-socket fd=%d: not a listening stream socket", o->fd);
		}
		(void)fcntl(a->fd, F_SETFD, FD_CLOEXEC);
	}
	/* the server's threads take no signal: vm_run() takes them from a signalfd */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	a->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL,
				handle, a, MHD_OPTION_LISTEN_SOCKET, a->fd,
				MHD_OPTION_NOTIFY_COMPLETED, done, a,
				MHD_OPTION_THREAD_POOL_SIZE, 2u,
				MHD_OPTION_CONNECTION_LIMIT, 256u,
				MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!a->d) {
		api_stop(a);
		return s2_err_set(e, -EIO, "--api-socket: the HTTP server did not start");
	}
	*out = a;
	return 0;
}

void api_stop(struct api *a)
{
	if (!a)
		return;
	if (a->d)
		MHD_stop_daemon(a->d);
	if (a->fd >= 0)
		close(a->fd);
	if (a->path) {
		unlink(a->path);
		free(a->path);
	}
	if (a->state == API_CREATED || a->state == API_BOOTING)
		run_opts_free(&a->cfg);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->cond);
	free(a);
}

int api_wait_boot(struct api *a, struct run_opts *o)
{
	pthread_mutex_lock(&a->lock);
	while (a->state != API_BOOTING && a->state != API_QUIT)
		pthread_cond_wait(&a->cond, &a->lock);
	if (a->state == API_QUIT) {
		pthread_mutex_unlock(&a->lock);
		return 1;
	}
	*o = a->cfg; /* the caller owns it now */
	memset(&a->cfg, 0, sizeof(a->cfg));
	pthread_mutex_unlock(&a->lock);
	return 0;
}

void api_set_pending(struct api *a, const struct api_ctx *ctx)
{
	pthread_mutex_lock(&a->lock);
	a->pending = *ctx;
	pthread_mutex_unlock(&a->lock);
}

void api_started(struct vm *vm, void *api)
{
	struct api *a = api;
	struct api_ctx ctx;

	(void)vm;
	pthread_mutex_lock(&a->lock);
	ctx = a->pending;
	pthread_mutex_unlock(&a->lock);
	api_attach(a, &ctx);
}

void api_attach(struct api *a, const struct api_ctx *ctx)
{
	pthread_mutex_lock(&a->lock);
	if (ctx && a->state == API_QUIT) {
		vm_stop(ctx->vm, VM_STOP_SIGNAL, 0); /* vmm.shutdown while it was rebuilt */
	} else if (ctx) {
		a->ctx = *ctx;
		a->state = API_ATTACHED;
		a->reboot = a->reboot_asked = a->shutdown_asked = false;
	} else if (a->state == API_BOOTING || a->state == API_REBOOTING) {
		a->state = API_QUIT; /* the VM could not be made */
	}
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
}

bool api_reboot_detach(struct api *a)
{
	bool reboot;

	if (!a)
		return false;
	pthread_mutex_lock(&a->lock);
	reboot = a->reboot && a->state == API_ATTACHED;
	if (reboot) {
		a->state = API_REBOOTING; /* new requests leave the VM alone */
		while (a->users)
			pthread_cond_wait(&a->cond, &a->lock);
		a->ctx = (struct api_ctx){ 0 };
		a->pending = (struct api_ctx){ 0 };
	}
	a->reboot = a->reboot_asked = false;
	pthread_mutex_unlock(&a->lock);
	return reboot;
}
