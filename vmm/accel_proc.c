// SPDX-License-Identifier: MIT
/*
 * The proc accelerator: guestos's ring-3 code runs on the vCPU threads of s2vm itself.
 *
 * Guest RAM is the memory manager's alias placed at host address == GPA (only the pages
 * below vm.mmap_min_addr are left out; guestos never touches them from ring 3), mapped
 * executable, followed by the device window reserved PROT_NONE. Each vCPU thread enters
 * the guest through proc_enter() (accel_proc_entry.S). Every exit is a signal on that
 * thread — #GP for `out` (SIGSEGV, trap 13), a write to a write-protected alias page or
 * an access to the device window (SIGSEGV, trap 14, exact address), #UD (SIGILL), a
 * system call (SIGSYS from this thread's seccomp filter) or a kick (SIGSYS from another
 * thread). The handler only copies the guest's registers out of the signal frame and
 * rewrites the frame to return from proc_enter(); decoding and serving the exit happen in
 * ordinary thread context in the run loop, so hypercalls may lock, print and wait, and
 * run under ASan and TSan like any other code. (Doing the work inside the handler would
 * save nothing measurable — the signal and sigreturn dominate — and would make every
 * hypercall a signal-unsafe call.)
 *
 * Why SIGSYS for the kick: ThreadSanitizer delays asynchronous signals until the thread
 * next runs instrumented code, which a vCPU spinning in guest code never does; it
 * delivers the synchronous kinds (SIGSEGV, SIGSYS, ...) at once, whoever sent them.
 */
#include <errno.h>
#include <inttypes.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "s2vm/bootinfo.h"
#include "s2vm/hypercall.h"
#include "vmm/accel_proc.h"
#include "vmm/options.h"
#include "vmm/vm.h"
#include "vmm/x86_decode.h"

#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1 /* si_code of a SIGSYS from a seccomp filter */
#endif

#define PROC_KICK SIGSYS
#define PROC_ALTSTACK (256u << 10) /* the sanitizers' signal wrappers need room */
#define PF_WRITE 0x2ull
#define PF_FETCH 0x10ull
#define INSN_MAX 15

/* x86 trap numbers as the kernel reports them in REG_TRAPNO */
#define TRAP_UD 6
#define TRAP_GP 13
#define TRAP_PF 14

struct proc_regs {
	uint64_t rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp;
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t rip, rflags;
};

struct proc_host {
	uint64_t rbx, rbp, r12, r13, r14, r15, rsp;
	uint32_t mxcsr;
	uint16_t fcw, pad;
};

/* What the signal handler recorded about the exit. */
struct proc_trap {
	int sig, code;
	uint64_t addr; /* si_addr; for SIGSYS the address after the syscall */
	uint64_t trapno, err;
	uint64_t syscall_nr;
};

enum proc_pending { PROC_PENDING_NONE, PROC_PENDING_IN, PROC_PENDING_MMIO_READ };

struct proc_vcpu {
	struct proc_regs g; /* the guest's registers while it is not running */
	struct proc_host h; /* written by proc_enter() */
	int in_guest; /* only this thread (proc_enter, the handler) touches it */
	int kick; /* atomic */
	unsigned char *xsave; /* guest XSAVE image, proc_xsave_size bytes; NULL: use fx */
	unsigned char fx[512] __attribute__((aligned(64))); /* guest x87/SSE (FXSAVE) */
	/* C-only from here */
	struct proc_trap trap;
	enum proc_pending pending; /* input owed to the guest on the next entry */
	uint8_t pending_size;
	stack_t altstack, old_altstack;
	struct vcpu *v;
};

_Static_assert(offsetof(struct proc_vcpu, g.rax) == PV_RAX, "layout");
_Static_assert(offsetof(struct proc_vcpu, g.rdi) == PV_RDI, "layout");
_Static_assert(offsetof(struct proc_vcpu, g.rsp) == PV_RSP, "layout");
_Static_assert(offsetof(struct proc_vcpu, g.r15) == PV_R15, "layout");
_Static_assert(offsetof(struct proc_vcpu, g.rip) == PV_RIP, "layout");
_Static_assert(offsetof(struct proc_vcpu, g.rflags) == PV_RFLAGS, "layout");
_Static_assert(offsetof(struct proc_vcpu, h.rbx) == PV_H_RBX, "layout");
_Static_assert(offsetof(struct proc_vcpu, h.r15) == PV_H_R15, "layout");
_Static_assert(offsetof(struct proc_vcpu, h.rsp) == PV_H_RSP, "layout");
_Static_assert(offsetof(struct proc_vcpu, h.mxcsr) == PV_H_MXCSR, "layout");
_Static_assert(offsetof(struct proc_vcpu, h.fcw) == PV_H_FCW, "layout");
_Static_assert(offsetof(struct proc_vcpu, in_guest) == PV_IN_GUEST, "layout");
_Static_assert(offsetof(struct proc_vcpu, kick) == PV_KICK, "layout");
_Static_assert(offsetof(struct proc_vcpu, xsave) == PV_XSAVE, "layout");
_Static_assert(offsetof(struct proc_vcpu, fx) == PV_FX, "layout");

#define X86_TF 0x100ull
#define XSAVE_HDR 512 /* the XSAVE header follows the 512-byte legacy region */
#define FP_XSTATE_MAGIC 0x46505853u /* signal frame's fpstate is an XSAVE image */

/* Size of an XSAVE image for the state components the OS enabled; 0 without XSAVE. */
static uint32_t proc_xsave_size;

struct proc_vm {
	uint64_t floor; /* lowest GPA mapped at host address == GPA */
	uint64_t end; /* end of the device window */
};

int proc_enter(struct proc_vcpu *pv);
extern const char proc_enter_end[];
void proc_signal_entry(int sig, siginfo_t *si, void *uc);
void proc_signal(int sig, siginfo_t *si, void *uc);

/* The guest rip proc_enter() jumps through; the vCPU this thread runs. */
__thread uint64_t proc_guest_rip __attribute__((tls_model("local-exec")));
static __thread struct proc_vcpu *proc_cur __attribute__((tls_model("local-exec")));

/*
 * Signal dispositions are per process, so the handler is installed once for all proc
 * VMs of the process; the previous dispositions are kept to pass on faults of host code.
 */
static const int proc_signals[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS };
static struct sigaction proc_old_action[NSIG];
static pthread_once_t proc_once = PTHREAD_ONCE_INIT;
static int proc_install_err;

static struct proc_vm *pvm_of(const struct vm *vm)
{
	return vm->accel_data;
}

static struct proc_vcpu *pv_of(const struct vcpu *v)
{
	return v->accel_data;
}

/* Rewrite the signal frame @uc to return from proc_enter() with @ret. */
__attribute__((no_sanitize_thread)) static void proc_to_host(struct proc_vcpu *pv, ucontext_t *uc,
							      int ret)
{
	greg_t *gr = uc->uc_mcontext.gregs;
	struct _libc_fpstate *fp = uc->uc_mcontext.fpregs;

	gr[REG_RBX] = (greg_t)pv->h.rbx;
	gr[REG_RBP] = (greg_t)pv->h.rbp;
	gr[REG_R12] = (greg_t)pv->h.r12;
	gr[REG_R13] = (greg_t)pv->h.r13;
	gr[REG_R14] = (greg_t)pv->h.r14;
	gr[REG_R15] = (greg_t)pv->h.r15;
	gr[REG_RIP] = *(const greg_t *)(uintptr_t)pv->h.rsp; /* the return address */
	gr[REG_RSP] = (greg_t)(pv->h.rsp + 8);
	gr[REG_RAX] = ret;
	gr[REG_EFL] = 0x202; /* DF clear, as the ABI wants at a return */
	if (fp) {
		/* the host's control words and an empty x87 stack; SSE registers are
		 * caller-saved, whatever the guest left in them is harmless */
		fp->mxcsr = pv->h.mxcsr;
		fp->cwd = pv->h.fcw;
		fp->swd = 0;
		fp->ftw = 0;
	}
	pv->in_guest = 0;
}

/* Hand a fault of host code to the disposition s2vm replaced (ASan's, or the default). */
static void proc_pass_on(int sig, siginfo_t *si)
{
	sigaction(sig, &proc_old_action[sig], NULL);
	if (si->si_code <= 0) /* sent, not raised by an instruction: it would not recur */
		raise(sig);
}

/* Save the guest's extended state from the signal frame's @fp. */
__attribute__((no_sanitize_thread)) static void proc_save_fp(struct proc_vcpu *pv,
							      const struct _libc_fpstate *fp)
{
	uint32_t magic, size;

	if (!fp)
		return;
	if (!pv->xsave) {
		__builtin_memcpy(pv->fx, fp, sizeof(pv->fx));
		return;
	}
	/* the software-reserved bytes at 464: magic, extended size, features, xstate size */
	__builtin_memcpy(&magic, (const char *)fp + 464, 4);
	__builtin_memcpy(&size, (const char *)fp + 464 + 16, 4);
	if (magic == FP_XSTATE_MAGIC && size >= XSAVE_HDR + 64 && size <= proc_xsave_size) {
		__builtin_memcpy(pv->xsave, fp, size);
	} else { /* a legacy frame: x87 and SSE only */
		uint64_t bv = 3;

		__builtin_memcpy(pv->xsave, fp, 512);
		__builtin_memset(pv->xsave + XSAVE_HDR, 0, 64);
		__builtin_memcpy(pv->xsave + XSAVE_HDR, &bv, 8);
	}
}

__attribute__((no_sanitize_thread)) void proc_signal(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	greg_t *gr = uc->uc_mcontext.gregs;
	struct proc_vcpu *pv = proc_cur;
	uintptr_t rip = (uintptr_t)gr[REG_RIP];
	bool kick = sig == PROC_KICK && si->si_code != SYS_SECCOMP;
	int saved_errno = errno;

	if (!pv || !pv->in_guest) {
		if (!kick) /* a kick outside the guest has nothing to interrupt */
			proc_pass_on(sig, si);
		goto out;
	}
	if (rip >= (uintptr_t)proc_enter && rip < (uintptr_t)proc_enter_end) {
		if (kick) /* not yet in the guest: its registers in pv are intact */
			proc_to_host(pv, uc, 1);
		else
			proc_pass_on(sig, si);
		goto out;
	}
	pv->g = (struct proc_regs){
		.rax = (uint64_t)gr[REG_RAX], .rbx = (uint64_t)gr[REG_RBX],
		.rcx = (uint64_t)gr[REG_RCX], .rdx = (uint64_t)gr[REG_RDX],
		.rsi = (uint64_t)gr[REG_RSI], .rdi = (uint64_t)gr[REG_RDI],
		.rbp = (uint64_t)gr[REG_RBP], .rsp = (uint64_t)gr[REG_RSP],
		.r8 = (uint64_t)gr[REG_R8], .r9 = (uint64_t)gr[REG_R9],
		.r10 = (uint64_t)gr[REG_R10], .r11 = (uint64_t)gr[REG_R11],
		.r12 = (uint64_t)gr[REG_R12], .r13 = (uint64_t)gr[REG_R13],
		.r14 = (uint64_t)gr[REG_R14], .r15 = (uint64_t)gr[REG_R15],
		.rip = (uint64_t)gr[REG_RIP], .rflags = (uint64_t)gr[REG_EFL],
	};
	proc_save_fp(pv, uc->uc_mcontext.fpregs);
	pv->trap = (struct proc_trap){
		.sig = sig,
		.code = si->si_code,
		.addr = (uint64_t)(uintptr_t)si->si_addr,
		.trapno = (uint64_t)gr[REG_TRAPNO],
		.err = (uint64_t)gr[REG_ERR],
	};
	if (sig == SIGSYS && si->si_code == SYS_SECCOMP) {
		pv->trap.syscall_nr = (uint64_t)si->si_syscall;
		/* after the instruction; syscall, sysenter and int $0x80 are all 2 bytes */
		pv->trap.addr = (uint64_t)(uintptr_t)si->si_call_addr - 2;
	}
	proc_to_host(pv, uc, 0);
out:
	errno = saved_errno;
}

static void proc_install(void)
{
	unsigned a, b, c, d;
	struct sigaction sa;

	/* XSAVE enabled by the OS (CPUID.1:ECX.OSXSAVE): the image size for XCR0 */
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
	if (c & (1u << 27)) {
		__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0xd), "c"(0));
		proc_xsave_size = b;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = proc_signal_entry;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(proc_signals) / sizeof(proc_signals[0]); i++) {
		if (sigaction(proc_signals[i], &sa, &proc_old_action[proc_signals[i]])) {
			proc_install_err = -errno;
			return;
		}
	}
}

static uint64_t proc_mmap_min_addr(void)
{
	unsigned long v = 65536; /* Debian's default, if the file cannot be read */
	FILE *f = fopen("/proc/sys/vm/mmap_min_addr", "r");

	if (f) {
		if (fscanf(f, "%lu", &v) != 1)
			v = 65536;
		fclose(f);
	}
	return v;
}

static int proc_vm_init(struct vm *vm, int fd, struct s2_err *e)
{
	struct proc_vm *p = calloc(1, sizeof(*p));
	uint64_t min = proc_mmap_min_addr();
	char a[32];

	if (fd >= 0)
		close(fd);
	if (!p)
		return s2_err_set(e, -ENOMEM, "out of memory");
	vm->accel_data = p;
	vm->max_vcpus = S2_MAX_VCPUS;
	p->floor = (min + 4095) & ~4095ull;
	if (p->floor < 4096)
		p->floor = 4096; /* keep host NULL dereferences faulting */
	p->end = vm->mem_size + S2_MMIO_SIZE;
	if (p->floor > S2_BOOTINFO_GPA)
		return s2_err_set(e, -EINVAL,
				  "--accel proc maps guest RAM at host address == GPA from GPA %#llx, "
				  "but vm.mmap_min_addr is %" PRIu64 " here; lower it "
				  "(sysctl vm.mmap_min_addr=65536) or use --accel kvm",
				  S2_BOOTINFO_GPA, min);
#if defined(__SANITIZE_ADDRESS__)
	/* ASan's shadow starts at 0x7fff8000: guest RAM at address == GPA must end below */
	if (p->end > 0x7fe00000ull)
		return s2_err_set(e, -EINVAL,
				  "--mem %s: under AddressSanitizer --accel proc holds at most "
				  "2044 MiB of guest RAM (its shadow memory starts at 0x7fff8000)",
				  s2_size_format(vm->mem_size, a, sizeof(a)));
#else
	(void)a;
#endif
	pthread_once(&proc_once, proc_install);
	if (proc_install_err)
		return s2_err_set(e, proc_install_err, "cannot install the proc signal handlers: %s",
				  strerror(-proc_install_err));
	return 0;
}

static int proc_mm_config(struct vm *vm, struct mm_config *mc, struct s2_err *e)
{
	mc->alias_at_gpa = true;
	mc->alias_floor = pvm_of(vm)->floor;
	mc->alias_extra = S2_MMIO_SIZE;
	return 0;
}

static int proc_ram_ready(struct vm *vm, struct s2_err *e)
{
	return 0; /* the alias is at host address == GPA: nothing to register */
}

static int proc_vcpu_init(struct vcpu *v, struct s2_err *e)
{
	struct proc_vcpu *pv = aligned_alloc(64, sizeof(*pv));

	if (!pv)
		return s2_err_set(e, -ENOMEM, "out of memory");
	memset(pv, 0, sizeof(*pv));
	pv->v = v;
	v->accel_data = pv;
	if (proc_xsave_size) {
		pv->xsave = aligned_alloc(64, (proc_xsave_size + 63) & ~63u);
		if (!pv->xsave)
			return s2_err_set(e, -ENOMEM, "out of memory");
	}
	return 0;
}

static int proc_vcpu_set_boot(struct vcpu *v, const struct accel_boot *b, struct s2_err *e)
{
	struct proc_vcpu *pv = pv_of(v);
	uint16_t fcw = 0x37f;
	uint32_t mxcsr = 0x1f80;

	if (!b->user_entry)
		return s2_err_set(e, -ENOEXEC,
				  "this kernel has no ring-3 entry note (\"s2vm\", type %d): --accel "
				  "proc starts guests in ring 3 and needs it (guestos images carry it)",
				  S2_NOTE_USER_ENTRY);
	/* what guestos's ring-0 entry hands to ring 3 under KVM */
	memset(&pv->g, 0, sizeof(pv->g));
	pv->g.rip = b->user_entry;
	pv->g.rsp = b->ustack_top;
	pv->g.rdx = b->ustack_top;
	pv->g.rdi = b->bootinfo;
	pv->g.rsi = b->cpu;
	pv->g.rflags = 0x202;
	memset(pv->fx, 0, sizeof(pv->fx));
	memcpy(pv->fx, &fcw, sizeof(fcw));
	memcpy(pv->fx + 24, &mxcsr, sizeof(mxcsr));
	if (pv->xsave) { /* every component in its initial state, MXCSR from the legacy part */
		memset(pv->xsave, 0, proc_xsave_size);
		memcpy(pv->xsave, pv->fx, sizeof(pv->fx));
	}
	return 0;
}

/*
 * This thread's seccomp filter: a system call made from an instruction inside guest RAM
 * or the device window, [floor, end], traps (SIGSYS) instead of running; every other is
 * allowed. The filter sees the instruction pointer, which libseccomp cannot filter on,
 * hence the hand-written program.
 */
static int proc_seccomp(const struct proc_vm *p)
{
	const uint32_t ip_lo = offsetof(struct seccomp_data, instruction_pointer);
	const uint32_t ip_hi = ip_lo + 4;
	const uint32_t f_hi = (uint32_t)(p->floor >> 32), f_lo = (uint32_t)p->floor;
	const uint32_t e_hi = (uint32_t)(p->end >> 32), e_lo = (uint32_t)p->end;
	struct sock_filter f[] = {
		/* 0: ip >= floor ? */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ip_hi),
		BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, f_hi, 3, 0), /* -> 5 */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, f_hi, 0, 8), /* -> 11 allow */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ip_lo),
		BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, f_lo, 0, 6), /* -> 11 allow */
		/* 5: ip <= end ? */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ip_hi),
		BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, e_hi, 4, 0), /* -> 11 allow */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, e_hi, 0, 2), /* -> 10 trap */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ip_lo),
		BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, e_lo, 1, 0), /* -> 11 allow */
		/* 10 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
		/* 11 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -errno;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog))
		return -errno;
	return 0;
}

static int proc_vcpu_thread_enter(struct vcpu *v, struct s2_err *e)
{
	struct proc_vcpu *pv = pv_of(v);
	sigset_t set;
	void *stk;
	int r;

	stk = mmap(NULL, PROC_ALTSTACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		   0);
	if (stk == MAP_FAILED)
		return s2_err_set(e, -errno, "cannot allocate a signal stack: %s", strerror(errno));
	pv->altstack = (stack_t){ .ss_sp = stk, .ss_size = PROC_ALTSTACK };
	if (sigaltstack(&pv->altstack, &pv->old_altstack)) {
		r = -errno;
		munmap(stk, PROC_ALTSTACK);
		pv->altstack.ss_sp = NULL;
		return s2_err_set(e, r, "sigaltstack: %s", strerror(-r));
	}
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(proc_signals) / sizeof(proc_signals[0]); i++)
		sigaddset(&set, proc_signals[i]);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	r = proc_seccomp(pvm_of(v->vm));
	if (r)
		return s2_err_set(e, r,
				  "cannot install the seccomp filter that refuses host system calls "
				  "from guest code: %s",
				  strerror(-r));
	proc_cur = pv;
	return 0;
}

static void proc_vcpu_thread_leave(struct vcpu *v)
{
	struct proc_vcpu *pv = pv_of(v);

	proc_cur = NULL;
	if (pv->altstack.ss_sp) {
		/* put back the stack that was there (ASan unmaps its own at thread exit) */
		sigaltstack(&pv->old_altstack, NULL);
		munmap(pv->altstack.ss_sp, PROC_ALTSTACK);
		pv->altstack.ss_sp = NULL;
	}
}

/* Read up to INSN_MAX bytes of guest code at @rip. Returns how many (0 outside RAM). */
static size_t proc_fetch(struct vcpu *v, uint64_t rip, uint8_t *b)
{
	uint64_t mem = v->vm->mem_size;
	size_t n;

	if (rip >= mem)
		return 0;
	n = mem - rip < INSN_MAX ? (size_t)(mem - rip) : INSN_MAX;
	return mm_guest_read(&v->vm->mm, rip, b, n) ? 0 : n;
}

static void proc_exception(struct proc_vcpu *pv, struct accel_exit *x, unsigned vector,
			   uint64_t cr2)
{
	x->kind = ACCEL_EXIT_EXCEPTION;
	x->exc.vector = vector;
	x->exc.error = pv->trap.err;
	x->exc.rip = pv->g.rip;
	x->exc.cr2 = cr2;
	x->exc.rsp = pv->g.rsp;
}

/* #GP: port I/O, the hypercall among it; anything else is the guest's #GP. */
static void proc_decode_gp(struct vcpu *v, struct proc_vcpu *pv, struct accel_exit *x)
{
	uint8_t b[INSN_MAX];
	size_t n = proc_fetch(v, pv->g.rip, b);
	struct x86_io io;
	uint32_t mask;

	if (x86_decode_io(b, n, pv->g.rdx, &io)) {
		proc_exception(pv, x, TRAP_GP, 0);
		snprintf(x->why, sizeof(x->why), "a privileged instruction in ring 3");
		return;
	}
	/* as the TSS I/O bitmap under kvm: only the hypercall ports reach the VMM */
	if (io.port < S2_HC_PORT || io.port + io.size > S2_HC_PORT + 4) {
		proc_exception(pv, x, TRAP_GP, 0);
		return;
	}
	mask = io.size == 4 ? 0xffffffffu : (1u << (8 * io.size)) - 1;
	x->kind = ACCEL_EXIT_IO;
	x->io.port = io.port;
	x->io.size = io.size;
	x->io.out = io.out;
	x->io.data = io.out ? (uint32_t)pv->g.rax & mask : 0;
	pv->g.rip += io.insn_len;
	if (!io.out) {
		pv->pending = PROC_PENDING_IN;
		pv->pending_size = io.size;
	}
}

/* #PF: a write to a write-protected RAM page, an MMIO accessor, or the guest's #PF. */
static void proc_decode_pf(struct vcpu *v, struct proc_vcpu *pv, struct accel_exit *x)
{
	struct vm *vm = v->vm;
	uint64_t a = pv->trap.addr, err = pv->trap.err;
	uint8_t b[INSN_MAX];
	struct x86_mmio m;
	size_t n;

	if (!(err & PF_FETCH) && a >= vm->mmio_base && a < vm->mmio_base + S2_MMIO_SIZE) {
		n = proc_fetch(v, pv->g.rip, b);
		if (x86_decode_mmio(b, n, &m) || pv->g.rdi != a ||
		    a + m.len > vm->mmio_base + S2_MMIO_SIZE) {
			size_t len = 0;

			x->kind = ACCEL_EXIT_CRASH;
			len += (size_t)snprintf(x->why, sizeof(x->why),
						"unsupported instruction touching the device window at "
						"GPA %#" PRIx64 ": bytes",
						a);
			for (size_t i = 0; i < n && i < 8 && len < sizeof(x->why); i++)
				len += (size_t)snprintf(x->why + len, sizeof(x->why) - len, " %02x",
							b[i]);
			return;
		}
		x->kind = ACCEL_EXIT_MMIO;
		x->mmio.gpa = a;
		x->mmio.len = m.len;
		x->mmio.write = m.write;
		x->mmio.data = m.write ? (m.len == 8 ? pv->g.rsi
					 : pv->g.rsi & ((1ull << (8 * m.len)) - 1))
				       : 0;
		pv->g.rip += m.insn_len;
		if (!m.write) {
			pv->pending = PROC_PENDING_MMIO_READ;
			pv->pending_size = m.len;
		}
		return;
	}
	if ((err & PF_WRITE) && !(err & PF_FETCH) && a >= pvm_of(vm)->floor && a < vm->mem_size) {
		x->kind = ACCEL_EXIT_WRITE_FAULT;
		x->wfault.gpa = a; /* exact: host address == GPA */
		return;
	}
	proc_exception(pv, x, TRAP_PF, a);
	if (a < pvm_of(vm)->floor)
		snprintf(x->why, sizeof(x->why),
			 "GPAs below %#" PRIx64 " (vm.mmap_min_addr) are not mapped under --accel proc",
			 pvm_of(vm)->floor);
	else if (a >= pvm_of(vm)->end)
		snprintf(x->why, sizeof(x->why), "%s outside guest RAM",
			 (err & PF_FETCH) ? "instruction fetch" : "access");
}

static const char *proc_signame(int sig)
{
	switch (sig) {
	case SIGSEGV:
		return "SIGSEGV";
	case SIGBUS:
		return "SIGBUS";
	case SIGILL:
		return "SIGILL";
	case SIGFPE:
		return "SIGFPE";
	case SIGTRAP:
		return "SIGTRAP";
	case SIGSYS:
		return "SIGSYS";
	default:
		return "signal";
	}
}

/* Give the guest what the last exit owed it: an IN's or an MMIO read's value. */
static void proc_complete(struct proc_vcpu *pv, const struct accel_exit *x)
{
	uint64_t mask;

	switch (pv->pending) {
	case PROC_PENDING_IN:
		if (pv->pending_size == 4)
			pv->g.rax = x->io.data; /* a 32-bit write zero-extends */
		else {
			mask = (1ull << (8 * pv->pending_size)) - 1;
			pv->g.rax = (pv->g.rax & ~mask) | (x->io.data & mask);
		}
		break;
	case PROC_PENDING_MMIO_READ:
		mask = pv->pending_size == 8 ? ~0ull : (1ull << (8 * pv->pending_size)) - 1;
		pv->g.rax = x->mmio.data & mask; /* movz / 32-bit moves zero-extend */
		break;
	case PROC_PENDING_NONE:
		break;
	}
	pv->pending = PROC_PENDING_NONE;
}

static int proc_vcpu_run(struct vcpu *v, struct accel_exit *x)
{
	struct proc_vcpu *pv = pv_of(v);
	struct proc_trap *t = &pv->trap;

	proc_complete(pv, x);
	x->why[0] = '\0';
	if (pv->g.rflags & X86_TF) {
		/* the guest set TF and its next instruction trapped for another reason:
		 * the trace trap is owed, and proc cannot single-step (no guest ring 0) */
		proc_exception(pv, x, 1, 0);
		snprintf(x->why, sizeof(x->why), "single-step (EFLAGS.TF) under --accel proc");
		return 0;
	}
	if (proc_enter(pv)) {
		__atomic_store_n(&pv->kick, 0, __ATOMIC_SEQ_CST);
		x->kind = ACCEL_EXIT_NONE;
		return 0;
	}
	__atomic_store_n(&pv->kick, 0, __ATOMIC_SEQ_CST);
	switch (t->sig) {
	case SIGSYS:
		if (t->code == SYS_SECCOMP) {
			x->kind = ACCEL_EXIT_SYSCALL;
			x->sys.nr = t->syscall_nr;
			x->sys.rip = t->addr;
		} else {
			x->kind = ACCEL_EXIT_NONE; /* a kick */
		}
		break;
	case SIGSEGV:
		if (t->trapno == TRAP_GP)
			proc_decode_gp(v, pv, x);
		else if (t->trapno == TRAP_PF)
			proc_decode_pf(v, pv, x);
		else
			proc_exception(pv, x, (unsigned)t->trapno, t->addr);
		break;
	case SIGILL:
		proc_exception(pv, x, TRAP_UD, 0);
		break;
	default:
		proc_exception(pv, x, (unsigned)t->trapno, t->addr);
		snprintf(x->why, sizeof(x->why), "%s (si_code %d)", proc_signame(t->sig), t->code);
		break;
	}
	return 0;
}

static void proc_vcpu_kick(struct vcpu *v)
{
	__atomic_store_n(&pv_of(v)->kick, 1, __ATOMIC_SEQ_CST);
	pthread_kill(v->thread, PROC_KICK);
}

static void proc_vcpu_dump(struct vcpu *v, FILE *f)
{
	const struct proc_vcpu *pv = pv_of(v);
	const struct proc_regs *r = &pv->g;

	fprintf(f,
		" rip %016" PRIx64 "  rsp %016" PRIx64 "  rflags %016" PRIx64 "\n"
		" rax %016" PRIx64 "  rbx %016" PRIx64 "  rcx %016" PRIx64 "  rdx %016" PRIx64 "\n"
		" rsi %016" PRIx64 "  rdi %016" PRIx64 "  rbp %016" PRIx64 "\n"
		" r8  %016" PRIx64 "  r9  %016" PRIx64 "  r10 %016" PRIx64 "  r11 %016" PRIx64 "\n"
		" r12 %016" PRIx64 "  r13 %016" PRIx64 "  r14 %016" PRIx64 "  r15 %016" PRIx64 "\n"
		" accel proc: guest ring 3 on a host thread; last trap: %s, si_code %d, trap %" PRIu64
		", error %#" PRIx64 ", address %#" PRIx64 "\n",
		r->rip, r->rsp, r->rflags, r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi, r->rbp,
		r->r8, r->r9, r->r10, r->r11, r->r12, r->r13, r->r14, r->r15,
		proc_signame(pv->trap.sig), pv->trap.code, pv->trap.trapno, pv->trap.err,
		pv->trap.addr);
}

static void proc_vcpu_destroy(struct vcpu *v)
{
	free(pv_of(v)->xsave);
	free(v->accel_data);
	v->accel_data = NULL;
}

static void proc_vm_destroy(struct vm *vm)
{
	free(vm->accel_data);
	vm->accel_data = NULL;
}

const struct accel_ops accel_proc_ops = {
	.name = "proc",
	.vm_init = proc_vm_init,
	.mm_config = proc_mm_config,
	.ram_ready = proc_ram_ready,
	.vcpu_init = proc_vcpu_init,
	.vcpu_set_boot = proc_vcpu_set_boot,
	.vcpu_thread_enter = proc_vcpu_thread_enter,
	.vcpu_thread_leave = proc_vcpu_thread_leave,
	.vcpu_run = proc_vcpu_run,
	.vcpu_kick = proc_vcpu_kick,
	.vcpu_dump = proc_vcpu_dump,
	.vcpu_destroy = proc_vcpu_destroy,
	.vm_destroy = proc_vm_destroy,
};
