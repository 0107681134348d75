/* SPDX-License-Identifier: MIT */
/* s2vm commands: one file each, dispatched from vmm/main.c. They print and return an exit code. */
#ifndef S2VM_CMD_H
#define S2VM_CMD_H

struct s2_cmd {
	const char *name;
	const char *help;
	int (*fn)(int argc, char **argv); /* argv[0] is the command name */
};

int cmd_run(int argc, char **argv);
int cmd_ctl(int argc, char **argv);
int cmd_version(int argc, char **argv);

#endif
