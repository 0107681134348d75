/* SPDX-License-Identifier: MIT */
/*
 * Layout of struct proc_vcpu shared by accel_proc.c and the entry trampoline
 * (accel_proc_entry.S). The C side checks every offset with _Static_assert.
 */
#ifndef S2VM_ACCEL_PROC_H
#define S2VM_ACCEL_PROC_H

/* guest registers, struct proc_regs at offset 0 */
#define PV_RAX 0
#define PV_RBX 8
#define PV_RCX 16
#define PV_RDX 24
#define PV_RSI 32
#define PV_RDI 40
#define PV_RBP 48
#define PV_RSP 56
#define PV_R8 64
#define PV_R9 72
#define PV_R10 80
#define PV_R11 88
#define PV_R12 96
#define PV_R13 104
#define PV_R14 112
#define PV_R15 120
#define PV_RIP 128
#define PV_RFLAGS 136
/* host state saved by proc_enter(), struct proc_host */
#define PV_H_RBX 144
#define PV_H_RBP 152
#define PV_H_R12 160
#define PV_H_R13 168
#define PV_H_R14 176
#define PV_H_R15 184
#define PV_H_RSP 192 /* points at proc_enter()'s return address */
#define PV_H_MXCSR 200
#define PV_H_FCW 204
#define PV_IN_GUEST 208 /* int: set by proc_enter(), cleared by the signal handler */
#define PV_KICK 212 /* int: a kick is pending; proc_enter() does not enter */
#define PV_XSAVE 216 /* pointer: the guest's XSAVE image (64-aligned), NULL: use PV_FX */
#define PV_FX 256 /* 512-byte FXSAVE image of the guest's x87/SSE state, 64-aligned */

#endif
