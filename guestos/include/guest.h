/* SPDX-License-Identifier: MIT */
/*
 * The guestos runtime: what a ring-3 workload may call. Every call that needs the VMM
 * is one port-I/O hypercall (include/s2vm/hypercall.h); nothing enters guest ring 0.
 *
 * A workload defines main(), run on vCPU 0 with the guest arguments split on spaces;
 * its return value is the VM's exit code. It may define secondary_main(), run on every
 * other vCPU; without it, or when it returns, the other vCPUs park.
 */
#ifndef GUESTOS_GUEST_H
#define GUESTOS_GUEST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "s2vm/bootinfo.h"
#include "s2vm/hypercall.h"

int main(int argc, char **argv);
void secondary_main(unsigned cpu) __attribute__((weak));

extern const struct s2_bootinfo *g_boot;

int64_t g_hypercall(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3,
		    uint64_t a4);
__attribute__((noreturn)) void g_exit(int code);
__attribute__((noreturn)) void g_park(void);
uint64_t g_clock_ns(void);
/* Print "report: NAME=VALUE UNIT" through the VMM (machine-readable). */
int g_report(const char *name, double value, const char *unit);
/* Host node whose pool backs @gpa, or -errno. */
int64_t g_gpa_node(uint64_t gpa);

/*
 * Device (MMIO) register accessors for the window [g_boot->mmio_base, + mmio_size).
 * Device registers must only be touched through these: their instruction encodings are
 * fixed (lib/mmio.S) because --accel proc traps each access and decodes exactly these
 * bytes; any other instruction touching the window stops the VM. One access per call, of
 * the width in the name, at guest address @addr.
 */
uint8_t mmio_read8(uint64_t addr); /* 0f b6 07    movzbl (%rdi), %eax */
uint16_t mmio_read16(uint64_t addr); /* 0f b7 07    movzwl (%rdi), %eax */
uint32_t mmio_read32(uint64_t addr); /* 8b 07       movl (%rdi), %eax */
uint64_t mmio_read64(uint64_t addr); /* 48 8b 07    movq (%rdi), %rax */
void mmio_write8(uint64_t addr, uint8_t v); /* 40 88 37    movb %sil, (%rdi) */
void mmio_write16(uint64_t addr, uint16_t v); /* 66 89 37    movw %si, (%rdi) */
void mmio_write32(uint64_t addr, uint32_t v); /* 89 37       movl %esi, (%rdi) */
void mmio_write64(uint64_t addr, uint64_t v); /* 48 89 37    movq %rsi, (%rdi) */

int g_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int g_vsnprintf(char *buf, size_t n, const char *fmt, va_list ap);
int g_snprintf(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void g_puts(const char *s);

/* Value of "KEY=VALUE" among argv[1..], or NULL. */
const char *g_arg(int argc, char **argv, const char *key);
/* Parse "64M", "1G", "4096" (bytes) ... Returns 0 or -1. */
int g_parse_size(const char *s, uint64_t *out);
int g_parse_u64(const char *s, uint64_t *out);

static inline uint64_t g_rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static inline void g_pause(void)
{
	__asm__ volatile("pause" ::: "memory");
}

void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);

#endif
