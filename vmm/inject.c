// SPDX-License-Identifier: MIT
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/inject.h"

int inject_parse(const char *s, struct mm_inject *out, struct s2_err *e)
{
	char buf[256], *save = NULL, *kv;
	bool seen[MM_CALL_NR + 1] = { false };

	memset(out, 0, sizeof(*out));
	if (strlen(s) >= sizeof(buf))
		return s2_err_set(e, -EINVAL, "S2VM_INJECT is too long");
	strcpy(buf, s);
	for (kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *val = strchr(kv, '='), *end;
		unsigned c;

		if (!val || !isdigit((unsigned char)val[1]))
			return s2_err_set(e, -EINVAL, "S2VM_INJECT: '%s' is not CALL=RATE or seed=N",
					  kv);
		*val++ = '\0';
		if (!strcmp(kv, "seed")) {
			errno = 0;
			out->seed = strtoull(val, &end, 10);
			if (errno || *end || seen[MM_CALL_NR])
				return s2_err_set(e, -EINVAL, "S2VM_INJECT: bad or repeated seed=%s",
						  val);
			seen[MM_CALL_NR] = true;
			continue;
		}
		for (c = 0; c < MM_CALL_NR; c++)
			if (!strcmp(kv, mm_host_call_names[c]))
				break;
		if (c == MM_CALL_NR)
			return s2_err_set(e, -EINVAL,
					  "S2VM_INJECT: unknown call '%s' (mmap, mprotect, fallocate, "
					  "memfd_create, mbind, table, frame)",
					  kv);
		{
			double rate = strtod(val, &end);

			if (*end || !(rate >= 0 && rate <= 1) || seen[c])
				return s2_err_set(e, -EINVAL,
						  "S2VM_INJECT: %s=%s: expected one rate in [0, 1]", kv,
						  val);
			out->per_million[c] = (uint32_t)(rate * 1e6 + 0.5);
			seen[c] = true;
		}
	}
	return 0;
}
