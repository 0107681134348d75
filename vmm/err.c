// SPDX-License-Identifier: MIT
#include <stdarg.h>
#include <stdio.h>

#include "vmm/err.h"

int s2_err_set(struct s2_err *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (e) {
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
	}
	return code;
}
