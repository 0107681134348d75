/* SPDX-License-Identifier: MIT */
/* A caller-owned buffer for one human-readable error message. */
#ifndef S2VM_ERR_H
#define S2VM_ERR_H

#include <stddef.h>

struct s2_err {
	char msg[512];
};

/* Format a message into @e (if non-NULL) and return @code (a negative errno). */
int s2_err_set(struct s2_err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
