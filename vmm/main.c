// SPDX-License-Identifier: MIT
/* s2vm: command dispatch. Each command is one file (cmd_*.c) listed in the table below. */
#include <stdio.h>
#include <string.h>

#include "vmm/api.h"
#include "vmm/cmd.h"
#include "vmm/version.h"

static const struct s2_cmd cmds[] = {
	{ "run", "launch a guest kernel (KVM, or s2vm's own threads without it)", cmd_run },
	{ "ctl", "drive a running s2vm through its control API (--api-socket)", cmd_ctl },
	{ "version", "print the version", cmd_version },
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: s2vm COMMAND [ARGS...]\n\n"
		   "s2vm is a KVM virtual machine monitor built around its guest memory manager.\n\n"
		   "Commands:\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(f, "  %-10s %s\n", cmds[i].name, cmds[i].help);
	fprintf(f, "\nRun 's2vm COMMAND --help' for a command's options.\n");
}

/* Invoked as `cloud-hypervisor` (a symlink), s2vm is the VMM libvirt's ch driver runs:
 * `--version` in the form it checks, anything else as `s2vm run` (it passes only
 * `--api-socket fd=N` and then sends vm.create and vm.boot). */
static int as_cloud_hypervisor(int argc, char **argv)
{
	if (argc == 2 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V"))) {
		printf("cloud-hypervisor %s (s2vm %s)\n", API_CH_VERSION, S2VM_VERSION);
		return 0;
	}
	return cmd_run(argc, argv);
}

int main(int argc, char **argv)
{
	const char *base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];

	if (!strcmp(base, "cloud-hypervisor"))
		return as_cloud_hypervisor(argc, argv);
	if (argc >= 2 && !strncmp(argv[1], "--api-socket", 12)) /* s2vm --api-socket ...: a VMM
								   * waiting for vm.create */
		return cmd_run(argc, argv);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V"))
		return cmd_version(argc - 1, argv + 1);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "s2vm: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return 2;
}
