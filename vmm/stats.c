// SPDX-License-Identifier: MIT
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "vmm/stats.h"

/* Bytes of guest RAM the host has actually allocated (pages the guest or VMM touched). */
static uint64_t guest_resident_bytes(struct vm *vm)
{
	struct stat st;

	if (vm->mem_fd < 0 || fstat(vm->mem_fd, &st) < 0)
		return 0;
	return (uint64_t)st.st_blocks * 512;
}

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

void vm_stats_print(struct vm *vm, enum run_stats_mode mode, FILE *f)
{
	uint64_t resident = guest_resident_bytes(vm);
	uint64_t rss_anon = proc_status_bytes("RssAnon");
	uint64_t rss_file = proc_status_bytes("RssFile");
	uint64_t hwm = proc_status_bytes("VmHWM");
	uint64_t exits = 0, hcalls = 0;
	char a[32], b[32], c[32];

	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		exits += __atomic_load_n(&vm->vcpus[i].exits, __ATOMIC_RELAXED);
		hcalls += __atomic_load_n(&vm->vcpus[i].hypercalls, __ATOMIC_RELAXED);
	}

	if (mode == RUN_STATS_JSON) {
		json_object *o = json_object_new_object();
		json_object *g = json_object_new_object();
		json_object *p = json_object_new_object();

		json_object_object_add(g, "mem_bytes", json_object_new_uint64(vm->mem_size));
		json_object_object_add(g, "resident_bytes", json_object_new_uint64(resident));
		json_object_object_add(g, "vcpus", json_object_new_int((int)vm->nr_vcpus));
		json_object_object_add(g, "exits", json_object_new_uint64(exits));
		json_object_object_add(g, "hypercalls", json_object_new_uint64(hcalls));
		if (vm->first_exit_ns)
			json_object_object_add(g, "create_to_exit_ns",
					       json_object_new_uint64(vm->first_exit_ns -
								      vm->boot_ns));
		json_object_object_add(o, "guest", g);
		json_object_object_add(p, "rss_anon_bytes", json_object_new_uint64(rss_anon));
		json_object_object_add(p, "rss_file_bytes", json_object_new_uint64(rss_file));
		json_object_object_add(p, "peak_rss_bytes", json_object_new_uint64(hwm));
		json_object_object_add(o, "vmm", p);
		fprintf(f, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
		fflush(f);
		return;
	}
	fprintf(f, "s2vm stats:\n");
	fprintf(f, "  guest RAM          %s (%s resident)\n",
		s2_size_format(vm->mem_size, a, sizeof(a)), s2_size_format(resident, b, sizeof(b)));
	fprintf(f, "  vCPUs              %u, %" PRIu64 " exits, %" PRIu64 " hypercalls\n",
		vm->nr_vcpus, exits, hcalls);
	fprintf(f, "  VMM RSS            %s anon + %s file (peak total %s incl. guest RAM)\n",
		s2_size_format(rss_anon, a, sizeof(a)), s2_size_format(rss_file, b, sizeof(b)),
		s2_size_format(hwm, c, sizeof(c)));
	fflush(f);
}
