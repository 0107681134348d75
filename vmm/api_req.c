// SPDX-License-Identifier: MIT
/* The control API's request bodies that configure a VM (vm.create): pure, so unit tests
 * and a fuzz target drive them without a server. */
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/api_req.h"

/* Member @key of @o as an object (NULL if absent); -1 through @bad if not an object. */
static json_object *member(json_object *o, const char *key, json_type t, bool *bad)
{
	json_object *x;

	if (!json_object_object_get_ex(o, key, &x) || json_object_is_type(x, json_type_null))
		return NULL;
	if (!json_object_is_type(x, t)) {
		*bad = true;
		return NULL;
	}
	return x;
}

static int u64_member(json_object *o, const char *key, uint64_t *v, bool *present,
		      struct s2_err *e, const char *where)
{
	bool bad = false;
	json_object *x = member(o, key, json_type_int, &bad);

	*present = x != NULL;
	if (bad || (x && json_object_get_int64(x) < 0))
		return s2_err_set(e, -EINVAL, "%s.%s: expected a non-negative integer", where, key);
	if (x)
		*v = json_object_get_uint64(x);
	return 0;
}

static int str_member(json_object *o, const char *key, const char **v, struct s2_err *e,
		      const char *where)
{
	bool bad = false;
	json_object *x = member(o, key, json_type_string, &bad);

	if (bad)
		return s2_err_set(e, -EINVAL, "%s.%s: expected a string", where, key);
	*v = x ? json_object_get_string(x) : NULL;
	return 0;
}

int api_create_parse(const char *body, size_t len, struct run_opts *o, struct s2_err *e)
{
	enum json_tokener_error je = json_tokener_success;
	struct json_tokener *tok = json_tokener_new();
	json_object *root, *cpus, *mem, *payload, *kernel, *cmdline, *disks;
	const char *kpath = NULL, *args = NULL;
	bool bad = false, present;
	uint64_t v;
	int r = 0;

	memset(o, 0, sizeof(*o));
	o->mem_size = RUN_OPTS_DEFAULT_MEM;
	o->vcpus = 1;
	o->api.fd = -1;
	if (!tok)
		return s2_err_set(e, -ENOMEM, "out of memory");
	root = json_tokener_parse_ex(tok, body, (int)(len > 1u << 30 ? 1u << 30 : len));
	je = json_tokener_get_error(tok);
	json_tokener_free(tok);
	if (!root || je != json_tokener_success) {
		json_object_put(root);
		return s2_err_set(e, -EINVAL, "malformed JSON: %s", json_tokener_error_desc(je));
	}
	if (!json_object_is_type(root, json_type_object)) {
		r = s2_err_set(e, -EINVAL, "expected a JSON object");
		goto out;
	}
	cpus = member(root, "cpus", json_type_object, &bad);
	mem = member(root, "memory", json_type_object, &bad);
	payload = member(root, "payload", json_type_object, &bad);
	kernel = member(root, "kernel", json_type_object, &bad);
	cmdline = member(root, "cmdline", json_type_object, &bad);
	disks = member(root, "disks", json_type_array, &bad);
	if (bad) {
		r = s2_err_set(e, -EINVAL,
			       "cpus, memory, payload, kernel and cmdline must be objects, disks an "
			       "array");
		goto out;
	}
	if (cpus) {
		r = u64_member(cpus, "boot_vcpus", &v, &present, e, "cpus");
		if (r)
			goto out;
		if (present && (v < 1 || v > RUN_MAX_VCPUS)) {
			r = s2_err_set(e, -EINVAL, "cpus.boot_vcpus=%llu: expected 1..%d",
				       (unsigned long long)v, RUN_MAX_VCPUS);
			goto out;
		}
		if (present)
			o->vcpus = (unsigned)v;
	}
	if (mem) {
		r = u64_member(mem, "size", &v, &present, e, "memory");
		if (r)
			goto out;
		if (present && (!v || v % (2ull << 20) || v > RUN_MAX_MEM)) {
			r = s2_err_set(e, -EINVAL,
				       "memory.size=%llu: a non-zero multiple of 2 MiB, at most %llu GiB",
				       (unsigned long long)v, (unsigned long long)(RUN_MAX_MEM >> 30));
			goto out;
		}
		if (present)
			o->mem_size = v;
	}
	/* Cloud Hypervisor >= 28 puts kernel and cmdline under payload; libvirt 9.0 sends
	 * the older kernel.path and cmdline.args */
	if (payload) {
		r = str_member(payload, "kernel", &kpath, e, "payload");
		if (!r)
			r = str_member(payload, "cmdline", &args, e, "payload");
	}
	if (!r && !kpath && kernel)
		r = str_member(kernel, "path", &kpath, e, "kernel");
	if (!r && !args && cmdline)
		r = str_member(cmdline, "args", &args, e, "cmdline");
	if (r)
		goto out;
	if (!kpath || !*kpath) {
		r = s2_err_set(e, -EINVAL, "the kernel is missing (payload.kernel or kernel.path)");
		goto out;
	}
	o->kernel_owned = strdup(kpath);
	o->guest_args = strdup(args ? args : "");
	if (!o->kernel_owned || !o->guest_args) {
		r = s2_err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	o->kernel = o->kernel_owned;
	/* serial or console "Pty" (libvirt): the console is also copied to a pty */
	for (const char *const *k = (const char *const[]){ "serial", "console", NULL }; *k; k++) {
		json_object *dev = member(root, *k, json_type_object, &bad);
		const char *mode = NULL;

		if (bad || (dev && str_member(dev, "mode", &mode, e, *k))) {
			r = bad ? s2_err_set(e, -EINVAL, "%s: expected an object", *k) : -EINVAL;
			goto out;
		}
		if (mode && !strcmp(mode, "Pty"))
			o->console_pty = true;
	}
	for (size_t i = 0; disks && i < json_object_array_length(disks); i++) {
		json_object *d = json_object_array_get_idx(disks, i);
		const char *path = NULL;
		bool ro = false;
		json_object *x;

		if (o->nr_disks == RUN_MAX_DISKS) {
			r = s2_err_set(e, -EINVAL, "disks: at most %d", RUN_MAX_DISKS);
			goto out;
		}
		if (!json_object_is_type(d, json_type_object)) {
			r = s2_err_set(e, -EINVAL, "disks[%zu]: expected an object", i);
			goto out;
		}
		r = str_member(d, "path", &path, e, "disks[]");
		if (r)
			goto out;
		if (!path || !*path) {
			r = s2_err_set(e, -EINVAL, "disks[%zu]: path is missing", i);
			goto out;
		}
		if (json_object_object_get_ex(d, "readonly", &x)) {
			if (!json_object_is_type(x, json_type_boolean)) {
				r = s2_err_set(e, -EINVAL, "disks[%zu].readonly: expected a boolean", i);
				goto out;
			}
			ro = json_object_get_boolean(x);
		}
		o->disks[o->nr_disks] = (struct disk_opts){ .path = strdup(path), .readonly = ro,
							    .num_queues = 1,
							    .queue_size = DISK_DEFAULT_QUEUE_SIZE,
							    .home_node = -1,
							    .pinned_max = DISK_DEFAULT_PINNED_MAX };
		if (!o->disks[o->nr_disks].path) {
			r = s2_err_set(e, -ENOMEM, "out of memory");
			goto out;
		}
		o->nr_disks++;
	}
out:
	json_object_put(root);
	if (r)
		run_opts_free(o);
	return r;
}
