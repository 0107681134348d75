/* SPDX-License-Identifier: MIT */
/*
 * The control API: Cloud Hypervisor's REST API (the /api/v1 subset libvirt's ch driver
 * uses) on a Unix socket, plus s2vm's memory endpoints. HTTP by libmicrohttpd, JSON by
 * json-c. One server per VM, started beside a running guest (`s2vm run --api-socket`).
 *
 *   GET  /api/v1/vmm.ping            {"build_version", "version", "pid", "features"}
 *   PUT  /api/v1/vm.create           a VmConfig (api_req.h); 204, 409 if one exists
 *   PUT  /api/v1/vm.boot             204 once the VM runs; 409 without vm.create
 *   PUT  /api/v1/vm.delete           forget the config, or stop the VM; 204
 *   PUT  /api/v1/vmm.shutdown        204; the VM stops, s2vm exits
 *   GET  /api/v1/vm.info             {"config": {cpus, memory, payload, ...}, "state",
 *                                     "memory_actual_size"}
 *   GET  /api/v1/vm.counters         per device counters
 *   PUT  /api/v1/vm.pause, vm.resume 204 (409 if already in that state)
 *   PUT  /api/v1/vm.shutdown         204; the guest stops
 *   PUT  /api/v1/vm.reboot           204; the VM stops and is built again from its config
 *                                    (fresh memory, the kernel loaded again), like Cloud
 *                                    Hypervisor; VM requests meanwhile get 409
 *   PUT  /api/v1/vm.resize           {"desired_balloon": BYTES}: the balloon target, 204
 *   GET  /api/v1/vm.memory           the --stats=json document, live
 *   PUT  /api/v1/vm.migrate-memory   {"host_node": N, "guest_node": G} or
 *                                    {"host_node": N, "ranges": [{"gpa", "len"}, ...]}:
 *                                    200 with the migration's result
 * Errors: 400 (malformed JSON, wrong types, missing fields, bad values), 404 (unknown
 * endpoint), 405 (wrong method, with Allow), 409 (wrong state), 413 (body over 64 KiB),
 * 500; each with a JSON body {"error": "..."}. The socket is created mode 0600.
 */
#ifndef S2VM_API_H
#define S2VM_API_H

#include <stdint.h>

#include "vmm/err.h"
#include "vmm/options.h"
#include "vmm/vm.h"

struct vballoon;

#define API_MAX_BODY (64u << 10)
/* The Cloud Hypervisor release whose API this one follows (libvirt wants >= 15). */
#define API_CH_VERSION "v40.0.0"

struct api;

/* What the API may act on besides the VM. */
struct api_ctx {
	struct vm *vm;
	struct vballoon *balloon; /* NULL without --balloon */
	const char *kernel; /* for vm.info */
	const char *cmdline;
};

/*
 * Listen on @o (create and bind the socket, mode 0600, or take the passed one) and serve
 * @ctx on libmicrohttpd's own threads. Returns 0 with *@out, or -errno with @e set.
 */
int api_start(const struct api_opts *o, const struct api_ctx *ctx, struct api **out,
	      struct s2_err *e) __attribute__((warn_unused_result));

/*
 * Without a VM (@ctx->vm NULL at api_start): wait until vm.create and vm.boot gave a
 * config, and move it to @o (the caller frees it with run_opts_free()). Returns 0, or 1
 * if vmm.shutdown came first (s2vm exits).
 */
int api_wait_boot(struct api *a, struct run_opts *o);

/* The VM now runs (@ctx), or could not be made (NULL): vm.boot answers. */
void api_attach(struct api *a, const struct api_ctx *ctx);

/* The VM is built (@ctx) but its vCPUs do not run yet: remember it; api_started()
 * (vm->on_started, @ctx the api) attaches it once they do. */
void api_set_pending(struct api *a, const struct api_ctx *ctx);
void api_started(struct vm *vm, void *api);

/*
 * After vm_run() returned: if vm.reboot stopped it, detach the VM (requests that need it
 * get 409 "rebooting"; waits for those using it to finish) and return true: the caller
 * destroys the VM and builds it again, then api_set_pending()/api_started() (or
 * api_attach(NULL) if that failed). Otherwise false: the VM stays attached until
 * api_stop(). NULL is fine (false).
 */
bool api_reboot_detach(struct api *a);

/* Stop serving, close the socket, remove the path it created. NULL is fine. */
void api_stop(struct api *a);

#endif
