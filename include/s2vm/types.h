/* SPDX-License-Identifier: MIT */
#ifndef S2VM_TYPES_H
#define S2VM_TYPES_H

#include <stdint.h>

typedef uint64_t gpa_t; /* guest-physical (stage-2 input) address */
typedef uint64_t hpa_t; /* stage-2 output address: a pool frame, or a table page */

#endif
