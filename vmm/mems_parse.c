// SPDX-License-Identifier: MIT
/* The cpuset list parser of vmm/mems.h, pure (in vmm_core for the unit tests). */
#include <errno.h>
#include <stdlib.h>

#include "vmm/mems.h"

int mems_list_parse(const char *s, uint64_t *mask)
{
	uint64_t m = 0;

	while (*s && *s != '\n') {
		char *end;
		unsigned long a, b;

		if (*s < '0' || *s > '9')
			return -EINVAL;
		a = strtoul(s, &end, 10);
		b = a;
		if (*end == '-') {
			if (end[1] < '0' || end[1] > '9')
				return -EINVAL;
			b = strtoul(end + 1, &end, 10);
		}
		if (a > b || b > 63)
			return -EINVAL;
		for (unsigned long n = a; n <= b; n++)
			m |= 1ull << n;
		s = end;
		if (*s == ',')
			s++;
		else if (*s && *s != '\n')
			return -EINVAL;
	}
	if (!m)
		return -EINVAL;
	*mask = m;
	return 0;
}
