// SPDX-License-Identifier: MIT
/* guestos runtime: start-up in ring 3, hypercalls, arguments. */
#include "guest.h"

#define MAX_ARGS 32
#define ARGS_MAX 1024

struct idt_entry {
	uint16_t off_lo;
	uint16_t sel;
	uint8_t ist;
	uint8_t attr;
	uint16_t off_mid;
	uint32_t off_hi;
	uint32_t zero;
} __attribute__((packed));

extern const uint64_t isr_table[32];
extern struct idt_entry idt[256];

const struct s2_bootinfo *g_boot;

static char args_buf[ARGS_MAX];
static char *argv_buf[MAX_ARGS + 1];

int64_t g_hypercall(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4)
{
	volatile struct s2_hc_block b __attribute__((aligned(8))) = {
		.nr = nr, .args = { a0, a1, a2, a3, a4 }, .ret = -38 /* ENOSYS */
	};

	__asm__ volatile("outl %0, %w1"
			 :
			 : "a"((uint32_t)(uintptr_t)&b), "Nd"((uint16_t)S2_HC_PORT)
			 : "memory");
	return b.ret;
}

void g_exit(int code)
{
	for (;;)
		g_hypercall(S2_HC_EXIT, (uint64_t)code, 0, 0, 0, 0);
}

void g_park(void)
{
	for (;;)
		g_hypercall(S2_HC_PARK, 0, 0, 0, 0, 0);
}

uint64_t g_clock_ns(void)
{
	return (uint64_t)g_hypercall(S2_HC_CLOCK_NS, 0, 0, 0, 0, 0);
}

int g_report(const char *name, double value, const char *unit)
{
	uint64_t bits;

	memcpy(&bits, &value, sizeof(bits));
	return (int)g_hypercall(S2_HC_REPORT, (uintptr_t)name, strlen(name), bits,
				(uintptr_t)unit, strlen(unit));
}

int64_t g_gpa_node(uint64_t gpa)
{
	return g_hypercall(S2_HC_GPA_NODE, gpa, 0, 0, 0, 0);
}

/* Fill the IDT's exception gates (interrupt gates to ring 0). Runs in ring 3: guest
 * memory is user-writable, and only LIDT itself, done at entry, is privileged. */
static void idt_fill(void)
{
	for (unsigned v = 0; v < 32; v++) {
		uint64_t a = isr_table[v];

		idt[v].off_lo = (uint16_t)a;
		idt[v].sel = S2_SEL_KCODE;
		idt[v].ist = 0;
		idt[v].attr = 0x8e;
		idt[v].off_mid = (uint16_t)(a >> 16);
		idt[v].off_hi = (uint32_t)(a >> 32);
		idt[v].zero = 0;
	}
}

static int split_args(void)
{
	int argc = 0;
	char *p = args_buf;

	argv_buf[argc++] = "guest";
	g_hypercall(S2_HC_GET_ARGS, (uintptr_t)args_buf, sizeof(args_buf), 0, 0, 0);
	while (*p && argc < MAX_ARGS) {
		while (*p == ' ')
			*p++ = '\0';
		if (!*p)
			break;
		argv_buf[argc++] = p;
		while (*p && *p != ' ')
			p++;
	}
	argv_buf[argc] = NULL;
	return argc;
}

void rt_start(const struct s2_bootinfo *bi, unsigned cpu);

void rt_start(const struct s2_bootinfo *bi, unsigned cpu)
{
	idt_fill();
	if (cpu == 0) {
		int argc;

		g_boot = bi;
		argc = split_args();
		g_exit(main(argc, argv_buf));
	}
	while (!__atomic_load_n(&g_boot, __ATOMIC_ACQUIRE))
		g_pause();
	if (secondary_main)
		secondary_main(cpu);
	g_park();
}

const char *g_arg(int argc, char **argv, const char *key)
{
	size_t n = strlen(key);

	for (int i = 1; i < argc; i++)
		if (!strncmp(argv[i], key, n) && argv[i][n] == '=')
			return argv[i] + n + 1;
	return NULL;
}

int g_parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!s || *s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (*s)
		return -1;
	*out = v;
	return 0;
}

int g_parse_size(const char *s, uint64_t *out)
{
	char num[24];
	size_t n = 0;
	unsigned shift = 0;
	uint64_t v;

	if (!s)
		return -1;
	while (s[n] >= '0' && s[n] <= '9' && n < sizeof(num) - 1) {
		num[n] = s[n];
		n++;
	}
	num[n] = '\0';
	switch (s[n]) {
	case '\0':
		break;
	case 'k': case 'K':
		shift = 10;
		break;
	case 'm': case 'M':
		shift = 20;
		break;
	case 'g': case 'G':
		shift = 30;
		break;
	default:
		return -1;
	}
	if (shift && s[n + 1] != '\0')
		return -1;
	if (g_parse_u64(num, &v) || (shift && v > (UINT64_MAX >> shift)))
		return -1;
	*out = v << shift;
	return 0;
}
