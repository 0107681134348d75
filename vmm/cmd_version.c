// SPDX-License-Identifier: MIT
#include <stdio.h>

#include "vmm/cmd.h"
#include "vmm/version.h"

int cmd_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("s2vm %s\n", S2VM_VERSION);
	return 0;
}
