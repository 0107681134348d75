// SPDX-License-Identifier: MIT
/* `--stats`: per-host-node and per-guest-node memory tables, text or one JSON object. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "mm/copy_pool.h"
#include "vmm/stats.h"
#include "vmm/virtio_balloon.h"
#include "vmm/virtio_blk.h"

/* A field of /proc/self/status in KiB, converted to bytes (0 if missing). */
static uint64_t proc_status_bytes(const char *field)
{
	char line[256];
	size_t n = strlen(field);
	uint64_t kib = 0;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, field, n) && line[n] == ':') {
			sscanf(line + n + 1, "%" SCNu64, &kib);
			break;
		}
	}
	fclose(f);
	return kib * 1024;
}

static const char *const policy_names[] = { "bind", "preferred", "interleave" };

#define MIB(x) ((double)(x) / (1 << 20))

/* The disks of @vm, in --disk order: up to @max into @out. Returns how many. */
static unsigned stats_disks(struct vm *vm, struct vblk_report *out, unsigned max)
{
	unsigned n = 0;

	for (unsigned i = 0; i < vm->nr_mmio && n < max; i++) {
		struct vmmio_dev *d = vmmio_of(&vm->mmio[i]);
		struct vblk *b = d ? vblk_of(d) : NULL;

		if (b)
			vblk_report(b, &out[n++]);
	}
	return n;
}

static json_object *disk_json(const struct vblk_report *r)
{
	json_object *d = json_object_new_object();

#define ADD(k, v) json_object_object_add(d, k, json_object_new_uint64(v))
	json_object_object_add(d, "path", json_object_new_string(r->path));
	ADD("index", r->index);
	ADD("gpa", r->gpa);
	ADD("capacity_bytes", r->capacity * 512);
	json_object_object_add(d, "readonly", json_object_new_boolean(r->readonly));
	json_object_object_add(d, "direct", json_object_new_boolean(r->direct));
	json_object_object_add(d, "registered", json_object_new_boolean(r->registered));
	ADD("num_queues", r->num_queues);
	ADD("queue_size", r->queue_size);
	ADD("read_ops", r->read_ops);
	ADD("read_bytes", r->read_bytes);
	ADD("write_ops", r->write_ops);
	ADD("write_bytes", r->write_bytes);
	ADD("flush_ops", r->flush_ops);
	ADD("discard_ops", r->discard_ops);
	ADD("write_zeroes_ops", r->write_zeroes_ops);
	ADD("get_id_ops", r->get_id_ops);
	ADD("in_flight", r->in_flight);
	ADD("in_flight_peak", r->in_flight_peak);
	ADD("bad_requests", r->bad_requests);
	ADD("io_errors", r->io_errors);
	ADD("direct_fallbacks", r->direct_fallbacks);
	ADD("notifies", r->notifies);
	ADD("ignored_notifies", r->ignored_notifies);
	ADD("ignored_writes", r->ignored_writes);
	ADD("needs_reset", r->needs_reset);
	ADD("resets", r->resets);
	if (r->needs_reset_why)
		json_object_object_add(d, "needs_reset_why",
				       json_object_new_string(r->needs_reset_why));
	if (r->registered) {
		ADD("pinned_bytes", r->pinned_bytes);
		ADD("pinned_peak_bytes", r->pinned_peak);
		ADD("pinned_max_bytes", r->pinned_max);
		ADD("chunk_registrations", r->chunk_registrations);
		ADD("chunk_evictions", r->chunk_evictions);
		ADD("fixed_ops", r->fixed_ops);
		ADD("pin_failures", r->pin_failures);
		ADD("pin_busy", r->pin_busy);
	}
#undef ADD
	return d;
}

/* The balloon of @vm, or NULL. */
static struct vballoon *stats_balloon(struct vm *vm)
{
	for (unsigned i = 0; i < vm->nr_mmio; i++) {
		struct vmmio_dev *d = vmmio_of(&vm->mmio[i]);
		struct vballoon *b = d ? vballoon_of(d) : NULL;

		if (b)
			return b;
	}
	return NULL;
}

static json_object *balloon_json(const struct vballoon_report *r)
{
	json_object *d = json_object_new_object();

#define ADD(k, v) json_object_object_add(d, k, json_object_new_uint64(v))
	ADD("gpa", r->gpa);
	json_object_object_add(d, "free_page_reporting",
			       json_object_new_boolean(r->free_page_reporting));
	json_object_object_add(d, "deflate_on_oom", json_object_new_boolean(r->deflate_on_oom));
	ADD("stats_polling_s", r->stats_polling);
	ADD("target_pages", r->target_pages);
	ADD("actual_pages", r->actual_pages);
	ADD("held_pages", r->held_pages);
	ADD("inflated_pages", r->inflated_pages);
	ADD("deflated_pages", r->deflated_pages);
	ADD("reported_pages", r->reported_pages);
	ADD("discarded_pages", r->discarded_pages);
	ADD("returned_bytes", r->returned_bytes);
	ADD("deferred_pages", r->deferred_pages);
	ADD("pinned_pages", r->pinned_pages);
	ADD("bad_pfns", r->bad_pfns);
	ADD("dup_pfns", r->dup_pfns);
	ADD("not_inflated", r->not_inflated);
	ADD("partial_bytes", r->partial_bytes);
	ADD("bad_reports", r->bad_reports);
	ADD("discard_errors", r->discard_errors);
	ADD("stats_updates", r->stats_updates);
	ADD("notifies", r->notifies);
	ADD("ignored_notifies", r->ignored_notifies);
	ADD("ignored_writes", r->ignored_writes);
	ADD("needs_reset", r->needs_reset);
	ADD("resets", r->resets);
	if (r->needs_reset_why)
		json_object_object_add(d, "needs_reset_why",
				       json_object_new_string(r->needs_reset_why));
	if (r->have_stats) {
		static const char *const tags[VIRTIO_BALLOON_S_NR] = {
			"swap_in", "swap_out", "major_faults", "minor_faults", "free_memory",
			"total_memory", "available_memory", "disk_caches", "hugetlb_allocations",
			"hugetlb_failures",
		};
		json_object *g = json_object_new_object();

		for (unsigned i = 0; i < VIRTIO_BALLOON_S_NR; i++)
			if (r->stats[i] != UINT64_MAX)
				json_object_object_add(g, tags[i], json_object_new_uint64(r->stats[i]));
		json_object_object_add(d, "guest_stats", g);
	}
#undef ADD
	return d;
}

/* mm->discard: what discards did, bytes returned per host node. */
static json_object *discard_json(const struct mm *mm)
{
	const struct mm_discard_stats *ds = &mm->discard;
	json_object *d = json_object_new_object(), *rb = json_object_new_object();

#define ADD(k, v) json_object_object_add(d, k, json_object_new_uint64(v))
	ADD("calls", ds->calls);
	ADD("pages", ds->pages);
	ADD("runs", ds->runs);
	ADD("punch_calls", ds->punch_calls);
	ADD("alias_calls", ds->alias_calls);
	ADD("rehomed_pages", ds->rehomed);
	ADD("misplaced_pages", ds->misplaced);
	ADD("pinned_skipped", ds->pinned_skipped);
	ADD("pinned_deferred", ds->pinned_deferred);
	ADD("pending_pages", ds->pending_pages);
	ADD("cancelled_pages", ds->cancelled_pages);
	ADD("failed_pages", ds->failed_pages);
	ADD("huge_partial_pages", ds->huge_partial_pages);
	for (unsigned k = 0; k < mm->nr_pools; k++) {
		char key[16];

		snprintf(key, sizeof(key), "%u", mm->pools[k].node);
		json_object_object_add(rb, key, json_object_new_uint64(ds->returned_bytes[k]));
	}
	json_object_object_add(d, "returned_bytes_on_host_node", rb);
#undef ADD
	return d;
}

/* mm->pins: short-term now/peak, long-term bytes per host node, what migration did. */
static json_object *pins_json(const struct mm *mm)
{
	const struct mm_pin_stats *ps = &mm->pins;
	json_object *p = json_object_new_object(), *lt = json_object_new_object();

#define ADD(k, v) json_object_object_add(p, k, json_object_new_uint64(__atomic_load_n(&(v), __ATOMIC_RELAXED)))
	ADD("short_now", ps->short_now);
	ADD("short_peak", ps->short_peak);
	for (unsigned k = 0; k < mm->nr_pools; k++) {
		char key[16];

		snprintf(key, sizeof(key), "%u", mm->pools[k].node);
		json_object_object_add(
			lt, key,
			json_object_new_uint64(__atomic_load_n(&ps->longterm_bytes[k], __ATOMIC_RELAXED)));
	}
	json_object_object_add(p, "longterm_bytes_on_host_node", lt);
	ADD("skipped_pages", ps->skipped_pages);
	ADD("drains", ps->drains);
	ADD("drain_avoided", ps->drain_avoided);
	ADD("refused", ps->refused);
#undef ADD
	return p;
}

/* The migration timeline (--timeline): every event the ring still holds, oldest first,
 * and how many older ones it dropped. Caller holds mm->lock. */
static json_object *timeline_json(const struct mm *mm)
{
	json_object *t = json_object_new_object(), *evs = json_object_new_array();
	struct mm_tl_event ev;
	uint64_t cursor = 0, lost = 0, l;

	while (mm_timeline_read(&mm->tl, &cursor, &ev, 1, &l)) {
		json_object *j = json_object_new_object();

		lost += l;
#define ADD(k, v) json_object_object_add(j, k, json_object_new_uint64(v))
		ADD("seq", ev.seq);
		json_object_object_add(j, "kind", json_object_new_string(
			ev.kind == MM_TL_BATCH ? "batch" : "fault"));
		ADD("start_ns", ev.start_ns);
		ADD("end_ns", ev.end_ns);
		if (ev.gpa != ~0ull)
			ADD("gpa", ev.gpa);
		json_object_object_add(j, "err", json_object_new_int(ev.err));
		if (ev.kind == MM_TL_BATCH) {
			json_object *ph = json_object_new_object();

			json_object_object_add(j, "node", json_object_new_int(ev.node));
			ADD("pages", ev.pages);
			ADD("runs", ev.runs);
			ADD("aborted", ev.aborted);
			ADD("invalidations", ev.invalidations);
			for (unsigned i = 0; i < MIG_PHASE_NR; i++)
				json_object_object_add(ph, mig_phase_names[i],
						       json_object_new_uint64(ev.phase_ns[i]));
			json_object_object_add(j, "phases_ns", ph);
		}
#undef ADD
		json_object_array_add(evs, j);
	}
	json_object_object_add(t, "capacity", json_object_new_uint64(mm->tl.cap));
	json_object_object_add(t, "lost", json_object_new_uint64(lost));
	json_object_object_add(t, "clock", json_object_new_string("CLOCK_MONOTONIC"));
	json_object_object_add(t, "events", evs);
	return t;
}

static json_object *stats_json(struct vm *vm)
{
	const struct mm *mm = &vm->mm;
	json_object *o = json_object_new_object(), *g = json_object_new_object();
	json_object *p = json_object_new_object(), *hosts = json_object_new_array();
	json_object *gnodes = json_object_new_array(), *mem = json_object_new_object();
	uint64_t exits = 0, hcalls = 0, resident = 0;

	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		exits += __atomic_load_n(&vm->vcpus[i].exits, __ATOMIC_RELAXED);
		hcalls += __atomic_load_n(&vm->vcpus[i].hypercalls, __ATOMIC_RELAXED);
	}
	for (unsigned i = 0; i < mm->nr_pools; i++) {
		const struct pool *pl = &mm->pools[i];
		json_object *h = json_object_new_object();
		uint64_t res = pool_resident_bytes(pl);

		resident += res;
		json_object_object_add(h, "node", json_object_new_int((int)pl->node));
		json_object_object_add(h, "real", json_object_new_boolean(!pl->emulated));
		json_object_object_add(h, "bound_node", json_object_new_int(pl->bound_node));
		json_object_object_add(h, "frames_used",
				       json_object_new_uint64(pl->nr_frames - pl->nr_free));
		json_object_object_add(h, "frames_free", json_object_new_uint64(pl->nr_free));
		json_object_object_add(h, "used_bytes",
				       json_object_new_uint64((pl->nr_frames - pl->nr_free) << 12));
		json_object_object_add(h, "capacity_bytes",
				       json_object_new_uint64(pl->nr_frames << 12));
		json_object_object_add(h, "resident_bytes", json_object_new_uint64(res));
		json_object_object_add(h, "returned_bytes",
				       json_object_new_uint64(pl->punched_frames << 12));
		json_object_object_add(h, "punch_calls", json_object_new_uint64(pl->punch_calls));
		/* what is on 4 KiB pages: all of a small pool; of a huge pool, its small
		 * part (the window a huge page cannot back, mm_gpa_small()) */
		json_object_object_add(h, "huge_pages", json_object_new_boolean(pl->huge));
		json_object_object_add(
			h, "small_capacity_bytes",
			json_object_new_uint64((pl->nr_frames - pl->huge_frames) << 12));
		json_object_object_add(h, "small_used_bytes",
				       json_object_new_uint64(pool_small_used_frames(pl) << 12));
		json_object_object_add(h, "small_resident_bytes",
				       json_object_new_uint64(pool_small_resident_bytes(pl)));
		json_object_array_add(hosts, h);
	}
	for (unsigned i = 0; i < mm->cfg.nr_nodes; i++) {
		const struct mm_guest_node *n = &mm->cfg.nodes[i];
		json_object *gn = json_object_new_object(), *pl = json_object_new_object();
		uint64_t now[MM_MAX_POOLS];

		mm_node_placement(mm, i, now);
		json_object_object_add(gn, "id", json_object_new_int((int)n->id));
		json_object_object_add(gn, "gpa_start", json_object_new_uint64(n->gpa));
		json_object_object_add(gn, "size_bytes", json_object_new_uint64(n->size));
		json_object_object_add(gn, "policy", json_object_new_string(policy_names[n->policy]));
		for (unsigned k = 0; k < mm->nr_pools; k++) {
			char key[16];

			snprintf(key, sizeof(key), "%u", mm->pools[k].node);
			json_object_object_add(pl, key, json_object_new_uint64(now[k]));
		}
		json_object_object_add(gn, "bytes_on_host_node", pl);
		json_object_array_add(gnodes, gn);
	}
	json_object_object_add(mem, "host_nodes", hosts);
	json_object_object_add(mem, "guest_nodes", gnodes);
	if (mm->has_huge && mm_cfg_small_window(&mm->cfg)) {
		json_object *sw = json_object_new_object();
		gpa_t w = mm->cfg.alias_floor & ~(MM_SMALL_WINDOW - 1);

		json_object_object_add(sw, "gpa_start", json_object_new_uint64(w));
		json_object_object_add(sw, "gpa_end", json_object_new_uint64(w + MM_SMALL_WINDOW));
		json_object_object_add(sw, "alias_floor",
				       json_object_new_uint64(mm->cfg.alias_floor));
		json_object_object_add(mem, "small_page_window", sw);
	}
	json_object_object_add(mem, "frame_table_bytes",
			       json_object_new_uint64(frame_table_bytes(&mm->ft)));
	json_object_object_add(mem, "frame_table_resident_bytes",
			       json_object_new_uint64(frame_table_resident_bytes(&mm->ft)));
	{
		struct frame_table_stats fs;
		json_object *ft = json_object_new_object();

		frame_table_get_stats(&mm->ft, &fs);
		json_object_object_add(ft, "virt_bytes", json_object_new_uint64(fs.virt_bytes));
		json_object_object_add(ft, "resident_bytes", json_object_new_uint64(fs.resident_bytes));
		json_object_object_add(ft, "runs_optimised", json_object_new_uint64(fs.runs_optimised));
		json_object_object_add(ft, "runs_private", json_object_new_uint64(fs.runs_private));
		json_object_object_add(ft, "optimises", json_object_new_uint64(fs.optimises));
		json_object_object_add(ft, "restores", json_object_new_uint64(fs.restores));
		json_object_object_add(ft, "restore_enomem", json_object_new_uint64(fs.restore_enomem));
		json_object_object_add(ft, "optimise_errors",
				       json_object_new_uint64(fs.optimise_errors));
		json_object_object_add(ft, "pending", json_object_new_uint64(fs.pending));
		json_object_object_add(mem, "frame_table", ft);
	}
	json_object_object_add(mem, "s2_table_bytes",
			       json_object_new_uint64(s2_map_table_bytes(&mm->map)));
	json_object_object_add(mem, "alias_mmap_calls",
			       json_object_new_uint64(mm->alias_stats.mmap_calls));
	json_object_object_add(mem, "alias_mprotect_calls",
			       json_object_new_uint64(mm->alias_stats.mprotect_calls));
	json_object_object_add(mem, "build_ns", json_object_new_uint64(mm->build_ns));
	{
		const struct mig_stats *ms = &mm->mig;
		json_object *mj = json_object_new_object();

#define ADD(k, v) json_object_object_add(mj, k, json_object_new_uint64(v))
		ADD("pages", ms->pages);
		ADD("bytes", ms->bytes);
		ADD("batches", ms->batches);
		ADD("runs", ms->runs);
		ADD("alias_mprotect_calls", ms->alias_mprotect);
		ADD("alias_mmap_calls", ms->alias_mmap);
		ADD("write_fault_waits", ms->fault_waits);
		ADD("write_fault_stall_ns", ms->stall_ns);
		ADD("write_fault_gpa_known", ms->fault_gpa_known);
		ADD("lazy_fixup_pages", ms->lazy_fixups);
		ADD("deferred_frames", mm->deferred.frames);
		ADD("deferred_frames_max", mm->deferred.frames_max);
		ADD("forced_flushes", ms->forced_flushes);
		ADD("aborted_pages", ms->aborted_pages);
		ADD("alias_failures", ms->alias_failures);
		ADD("held_frames", ms->held_frames);
		ADD("skipped_pages", ms->skipped_pages);
		ADD("copy_ns", ms->phase_ns[MIG_PHASE_COPY]);
		ADD("huge_frames", ms->huge_frames);
		ADD("huge_extra_pages", ms->huge_extra_pages);
		ADD("huge_refused_pages", ms->huge_refused_pages);
		ADD("small_window_pages", ms->small_window_pages);
		ADD("windows_promoted", ms->windows_promoted);
		ADD("promoted_pages", ms->promoted_pages);
		ADD("parallel_copies", ms->parallel_copies);
		ADD("copy_threads", mm->copy_pool ? copy_pool_threads(mm->copy_pool) : 1);
		ADD("est_run_ns", ms->est_run_ns);
		ADD("est_copy2m_ns", ms->est_copy2m_ns);
#undef ADD
		{
			json_object *ph = json_object_new_object();

			for (unsigned i = 0; i < MIG_PHASE_NR; i++)
				json_object_object_add(ph, mig_phase_names[i],
						       json_object_new_uint64(ms->phase_ns[i]));
			json_object_object_add(mj, "phases_ns", ph);
		}
		json_object_object_add(mj, "writable",
				       json_object_new_string(mm->cfg.mig.lazy_writable ? "lazy"
											: "eager"));
		json_object_object_add(o, "migration", mj);
	}
	if (mm->tl.ev)
		json_object_object_add(o, "timeline", timeline_json(mm));
	{
		json_object *inj = json_object_new_object();
		bool on = false;

		for (unsigned c = 0; c < MM_CALL_NR; c++) {
			on |= mm->cfg.inject.per_million[c] != 0;
			json_object_object_add(inj, mm_host_call_names[c],
					       json_object_new_uint64(mm->injected[c]));
		}
		if (on)
			json_object_object_add(o, "injected_failures", inj);
		else
			json_object_put(inj);
	}

	json_object_object_add(g, "accel", json_object_new_string(vm->accel->name));
	json_object_object_add(g, "mem_bytes", json_object_new_uint64(vm->mem_size));
	json_object_object_add(g, "resident_bytes", json_object_new_uint64(resident));
	json_object_object_add(g, "vcpus", json_object_new_int((int)vm->nr_vcpus));
	json_object_object_add(g, "exits", json_object_new_uint64(exits));
	json_object_object_add(g, "hypercalls", json_object_new_uint64(hcalls));
	if (vm->first_exit_ns)
		json_object_object_add(g, "create_to_exit_ns",
				       json_object_new_uint64(vm->first_exit_ns - vm->boot_ns));
	json_object_object_add(o, "guest", g);
	json_object_object_add(p, "rss_anon_bytes",
			       json_object_new_uint64(proc_status_bytes("RssAnon")));
	json_object_object_add(p, "rss_file_bytes",
			       json_object_new_uint64(proc_status_bytes("RssFile")));
	json_object_object_add(p, "peak_rss_bytes", json_object_new_uint64(proc_status_bytes("VmHWM")));
	json_object_object_add(o, "vmm", p);
	json_object_object_add(o, "memory", mem);
	{
		struct vblk_report r[RUN_MAX_DISKS];
		unsigned n = stats_disks(vm, r, RUN_MAX_DISKS);
		json_object *disks = json_object_new_array();

		for (unsigned i = 0; i < n; i++)
			json_object_array_add(disks, disk_json(&r[i]));
		json_object_object_add(o, "disks", disks);
		json_object_object_add(o, "pins", pins_json(mm));
		json_object_object_add(o, "discard", discard_json(mm));
	}
	if (stats_balloon(vm)) {
		struct vballoon_report r;

		vballoon_report(stats_balloon(vm), &r);
		json_object_object_add(o, "balloon", balloon_json(&r));
	}
	return o;
}

/* Render the statistics into @f. Caller holds mm->lock (a consistent snapshot). */
static void stats_render(struct vm *vm, enum run_stats_mode mode, FILE *f)
{
	const struct mm *mm = &vm->mm;
	json_object *o, *g, *v;
	char a[32], b[32], c[32];

	o = stats_json(vm);
	if (mode == RUN_STATS_JSON) {
		fprintf(f, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
		return;
	}
	json_object_object_get_ex(o, "guest", &g);
	json_object_object_get_ex(o, "vmm", &v);
	fprintf(f, "s2vm stats\n");
	fprintf(f, "  host node  kind      bound  used MiB  free MiB  frames used  resident MiB"
		   "  pages\n");
	for (unsigned i = 0; i < mm->nr_pools; i++) {
		const struct pool *p = &mm->pools[i];

		fprintf(f, "  %9u  %-8s  %5d  %8.0f  %8.0f  %11" PRIu64 "  %12.1f  %5s\n", p->node,
			p->emulated ? "emulated" : "real", p->bound_node,
			MIB((p->nr_frames - p->nr_free) << 12), MIB(p->nr_free << 12),
			p->nr_frames - p->nr_free, MIB(pool_resident_bytes(p)),
			p->huge ? "2M" : "4K");
	}
	if (mm->has_huge && mm_cfg_small_window(&mm->cfg)) {
		gpa_t w = mm->cfg.alias_floor & ~(MM_SMALL_WINDOW - 1);
		char where[128] = "";
		size_t len = 0;

		for (unsigned k = 0; k < mm->nr_pools; k++) {
			uint64_t used = pool_small_used_frames(&mm->pools[k]);

			if (mm->pools[k].huge && used)
				len += (size_t)snprintf(where + len, sizeof(where) - len,
							"%s%u:%.1f", len ? " " : "",
							mm->pools[k].node, MIB(used << 12));
		}
		fprintf(f, "  small pages        GPA [%#" PRIx64 ", %#" PRIx64 ") on 4 KiB pages "
			   "(the alias starts at %#" PRIx64 ": no 2 MiB page there); on huge "
			   "pools' small parts, MiB: %s; %" PRIu64 " of its pages migrated\n",
			(uint64_t)w, (uint64_t)(w + MM_SMALL_WINDOW), (uint64_t)mm->cfg.alias_floor,
			len ? where : "none", mm->mig.small_window_pages);
	}
	fprintf(f, "  guest node  GPA range                      policy      MiB on host nodes now\n");
	for (unsigned i = 0; i < mm->cfg.nr_nodes; i++) {
		const struct mm_guest_node *n = &mm->cfg.nodes[i];
		char where[128] = "";
		size_t len = 0;
		uint64_t now[MM_MAX_POOLS];

		mm_node_placement(mm, i, now);
		for (unsigned k = 0; k < mm->nr_pools; k++)
			if (now[k])
				len += (size_t)snprintf(where + len, sizeof(where) - len, "%s%u:%.0f",
							len ? " " : "", mm->pools[k].node,
							MIB(now[k]));
		fprintf(f, "  %10u  [%#012" PRIx64 ", %#012" PRIx64 ")  %-10s  %s\n", n->id, n->gpa,
			n->gpa + n->size, policy_names[n->policy], where);
	}
	fprintf(f, "  frame table        %s (%u B per 4 KiB frame, %.2f MiB per GiB), %s resident\n",
		s2_size_format(frame_table_bytes(&mm->ft), a, sizeof(a)),
		(unsigned)sizeof(struct frame),
		MIB(frame_table_bytes(&mm->ft)) / ((double)vm->mem_size / (1 << 30)),
		s2_size_format(frame_table_resident_bytes(&mm->ft), b, sizeof(b)));
	{
		struct frame_table_stats fs;

		frame_table_get_stats(&mm->ft, &fs);
		fprintf(f, "  frame table HVO    %s virtual, %s resident (%.3f MiB per GiB); %" PRIu64
			   " runs optimised, %" PRIu64 " private, %" PRIu64 " pending; %" PRIu64
			   " optimises, %" PRIu64 " restores (%" PRIu64 " refused: no memory)\n",
			s2_size_format(fs.virt_bytes, a, sizeof(a)),
			s2_size_format(fs.resident_bytes, b, sizeof(b)),
			MIB(fs.resident_bytes) / ((double)vm->mem_size / (1 << 30)), fs.runs_optimised,
			fs.runs_private, fs.pending, fs.optimises, fs.restores, fs.restore_enomem);
	}
	fprintf(f, "  stage-2 tables     %s\n", s2_size_format(s2_map_table_bytes(&mm->map), a, sizeof(a)));
	fprintf(f, "  alias calls        %" PRIu64 " mmap, %" PRIu64 " mprotect; built in %.2f ms\n",
		mm->alias_stats.mmap_calls, mm->alias_stats.mprotect_calls, (double)mm->build_ns / 1e6);
	if (mm->mig.pages || mm->mig.aborted_pages || mm->mig.fault_waits) {
		const struct mig_stats *ms = &mm->mig;

		fprintf(f, "  migration          %" PRIu64 " pages (%s) in %" PRIu64 " batches, %" PRIu64
			   " runs; alias calls %" PRIu64 " mprotect + %" PRIu64 " mmap\n",
			ms->pages, s2_size_format(ms->bytes, a, sizeof(a)), ms->batches, ms->runs,
			ms->alias_mprotect, ms->alias_mmap);
		fprintf(f, "                     %" PRIu64 " write-fault waits, %.3f ms stalled; %" PRIu64
			   " deferred frames now, %" PRIu64 " at most; %" PRIu64
			   " forced flushes; %" PRIu64 " aborted pages (%" PRIu64
			   " alias failures rolled back); writable %s\n",
			ms->fault_waits, (double)ms->stall_ns / 1e6, mm->deferred.frames,
			mm->deferred.frames_max, ms->forced_flushes, ms->aborted_pages,
			ms->alias_failures,
			mm->cfg.mig.lazy_writable ? "lazy" : "eager");
		{
			uint64_t tot = 0;

			for (unsigned i = 0; i < MIG_PHASE_NR; i++)
				tot += ms->phase_ns[i];
			fprintf(f, "                     phases: protect %.1f%%, copy %.1f%%, remap "
				   "%.1f%%, wait %.1f%%, free %.1f%% of %.3f ms; %u copy thread(s), "
				   "%" PRIu64 " parallel copies; %" PRIu64 " 2 MiB windows moved whole "
				   "(+%" PRIu64 " pages)%s\n",
				tot ? 100.0 * ms->phase_ns[MIG_PHASE_PROTECT] / tot : 0,
				tot ? 100.0 * ms->phase_ns[MIG_PHASE_COPY] / tot : 0,
				tot ? 100.0 * ms->phase_ns[MIG_PHASE_REMAP] / tot : 0,
				tot ? 100.0 * ms->phase_ns[MIG_PHASE_WAIT] / tot : 0,
				tot ? 100.0 * ms->phase_ns[MIG_PHASE_FREE] / tot : 0, (double)tot / 1e6,
				mm->copy_pool ? copy_pool_threads(mm->copy_pool) : 1u, ms->parallel_copies,
				ms->windows_promoted, ms->promoted_pages,
				mm->cfg.mig.exact ? " (--migrate-exact)" : "");
		}
		if (mm->cfg.mig.keep_freed) {
			fprintf(f, "  freed source       kept backed for reuse (--keep-warm)\n");
		} else {
			uint64_t fr = 0, calls = 0;

			for (unsigned i = 0; i < mm->nr_pools; i++) {
				fr += mm->pools[i].punched_frames;
				calls += mm->pools[i].punch_calls;
			}
			fprintf(f, "  freed source       %s returned to the host in %" PRIu64
				   " fallocate calls (one per freed run)\n",
				s2_size_format(fr << 12, a, sizeof(a)), calls);
		}
	}
	{
		struct vblk_report r[RUN_MAX_DISKS];
		unsigned n = stats_disks(vm, r, RUN_MAX_DISKS);
		const struct mm_pin_stats *ps = &mm->pins;

		for (unsigned i = 0; i < n; i++) {
			const struct vblk_report *d = &r[i];

			fprintf(f, "  disk %u             %s (%s%s, %u queue%s of %u)\n", d->index,
				d->path, s2_size_format(d->capacity * 512, a, sizeof(a)),
				d->readonly ? ", read-only" : "", d->num_queues,
				d->num_queues == 1 ? "" : "s", d->queue_size);
			fprintf(f, "                     read %" PRIu64 " ops %s, write %" PRIu64
				   " ops %s, %" PRIu64 " flush, %" PRIu64 " discard, %" PRIu64
				   " write-zeroes; in flight %" PRIu64 " now, %" PRIu64 " peak\n",
				d->read_ops, s2_size_format(d->read_bytes, b, sizeof(b)), d->write_ops,
				s2_size_format(d->write_bytes, c, sizeof(c)), d->flush_ops,
				d->discard_ops, d->write_zeroes_ops, d->in_flight, d->in_flight_peak);
			fprintf(f, "                     %" PRIu64 " bad requests, %" PRIu64
				   " I/O errors, %" PRIu64 " needs-reset, %" PRIu64
				   " ignored writes, %" PRIu64 " ignored notifies%s%s\n",
				d->bad_requests, d->io_errors, d->needs_reset, d->ignored_writes,
				d->ignored_notifies, d->needs_reset_why ? "; needs reset: " : "",
				d->needs_reset_why ? d->needs_reset_why : "");
			if (d->direct)
				fprintf(f, "                     direct: %" PRIu64
					   " requests went through the page cache (not aligned)\n",
					d->direct_fallbacks);
			if (d->registered)
				fprintf(f, "                     registered: %s pinned now, %s peak, "
					   "at most %s; %" PRIu64 " chunk registrations, %" PRIu64
					   " evictions, %" PRIu64 " fixed-buffer ops\n",
					s2_size_format(d->pinned_bytes, a, sizeof(a)),
					s2_size_format(d->pinned_peak, b, sizeof(b)),
					s2_size_format(d->pinned_max, c, sizeof(c)),
					d->chunk_registrations, d->chunk_evictions, d->fixed_ops);
		}
#define LD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
		if (n || LD(ps->short_peak) || LD(ps->skipped_pages) || LD(ps->drains)) {
			char lt[160] = "";
			size_t len = 0;

			for (unsigned k = 0; k < mm->nr_pools; k++)
				len += (size_t)snprintf(lt + len, sizeof(lt) - len, "%s%u:%s",
							len ? " " : "", mm->pools[k].node,
							s2_size_format(LD(ps->longterm_bytes[k]), a,
								       sizeof(a)));
			fprintf(f, "  DMA pins           short-term %" PRIu64 " pins now, %" PRIu64
				   " peak; long-term %s; migration skipped %" PRIu64
				   " pinned pages, %" PRIu64 " drains, %" PRIu64
				   " pages freed by a drain, %" PRIu64 " pins refused\n",
				LD(ps->short_now), LD(ps->short_peak), lt, LD(ps->skipped_pages),
				LD(ps->drains), LD(ps->drain_avoided), LD(ps->refused));
		}
#undef LD
	}
	if (mm->discard.calls) {
		const struct mm_discard_stats *ds = &mm->discard;
		char rb[160] = "";
		size_t len = 0;

		for (unsigned k = 0; k < mm->nr_pools; k++)
			len += (size_t)snprintf(rb + len, sizeof(rb) - len, "%s%u:%s", len ? " " : "",
						mm->pools[k].node,
						s2_size_format(ds->returned_bytes[k], a, sizeof(a)));
		fprintf(f, "  discard            %" PRIu64 " pages in %" PRIu64 " runs, %" PRIu64
			   " punch + %" PRIu64 " alias calls; returned per host node %s; %" PRIu64
			   " re-homed, %" PRIu64 " misplaced; pinned: %" PRIu64 " skipped, %" PRIu64
			   " deferred, %" PRIu64 " pending now\n",
			ds->pages, ds->runs, ds->punch_calls, ds->alias_calls, rb, ds->rehomed,
			ds->misplaced, ds->pinned_skipped, ds->pinned_deferred, ds->pending_pages);
	}
	if (stats_balloon(vm)) {
		struct vballoon_report r;
		char rbuf[32];

		vballoon_report(stats_balloon(vm), &r);
		fprintf(f, "  balloon            target %s, driver says %s, held %s; inflated %" PRIu64
			   " pages, deflated %" PRIu64 ", reported %" PRIu64 "; returned %s\n",
			s2_size_format(r.target_pages << 12, a, sizeof(a)),
			s2_size_format(r.actual_pages << 12, b, sizeof(b)),
			s2_size_format(r.held_pages << 12, c, sizeof(c)), r.inflated_pages,
			r.deflated_pages, r.reported_pages,
			s2_size_format(r.returned_bytes, rbuf, sizeof(rbuf)));
		fprintf(f, "                     ignored: %" PRIu64 " PFNs outside RAM, %" PRIu64
			   " duplicates, %" PRIu64 " deflates of pages not inflated, %" PRIu64
			   " partial bytes, %" PRIu64 " bad report buffers; pinned: %" PRIu64
			   " deferred, %" PRIu64 " left; %" PRIu64 " stats updates%s%s\n",
			r.bad_pfns, r.dup_pfns, r.not_inflated, r.partial_bytes, r.bad_reports,
			r.deferred_pages, r.pinned_pages, r.stats_updates,
			r.needs_reset_why ? "; needs reset: " : "",
			r.needs_reset_why ? r.needs_reset_why : "");
	}
	fprintf(f, "  vCPUs              %u (accel %s), %" PRIu64 " exits, %" PRIu64 " hypercalls\n",
		vm->nr_vcpus, vm->accel->name, json_object_get_uint64(json_object_object_get(g, "exits")),
		json_object_get_uint64(json_object_object_get(g, "hypercalls")));
	fprintf(f, "  VMM RSS            %s anon + %s file (peak %s incl. touched guest RAM)\n",
		s2_size_format(json_object_get_uint64(json_object_object_get(v, "rss_anon_bytes")), a, sizeof(a)),
		s2_size_format(json_object_get_uint64(json_object_object_get(v, "rss_file_bytes")), b, sizeof(b)),
		s2_size_format(json_object_get_uint64(json_object_object_get(v, "peak_rss_bytes")), c, sizeof(c)));
	json_object_put(o);
}

void vm_stats_print(struct vm *vm, enum run_stats_mode mode, FILE *f)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);

	if (!m)
		return;
	/* snapshot under the lock (SIGUSR1 may arrive while a migration runs), write after
	 * it: a slow reader of @f must not hold up every vCPU's write fault */
	pthread_mutex_lock(&vm->mm.lock);
	stats_render(vm, mode, m);
	pthread_mutex_unlock(&vm->mm.lock);
	if (fclose(m) == 0) {
		fwrite(buf, 1, len, f);
		fflush(f);
	}
	free(buf);
}
