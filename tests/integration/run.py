#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Run one guest-booting integration test from cases.cfg.

Usage: run.py CASE --s2vm PATH --images DIR [--cfg FILE]
Exits 0 on pass, 1 on failure, 77 (skip) when the case needs /dev/kvm and it is missing.
"""
import argparse
import configparser
import os
import re
import shlex
import signal
import struct
import subprocess
import sys
import tempfile
import time


def kvm_usable():
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
        os.close(fd)
        return True, ""
    except OSError as e:
        return False, f"/dev/kvm: {e.strerror}"


def make_image(kind, images, tmp):
    hello = os.path.join(images, "hello.elf")
    path = os.path.join(tmp, kind[1:] + ".elf")
    if kind == "@missing":
        return os.path.join(tmp, "does-not-exist.elf")
    if kind == "@dir":
        return tmp
    if kind == "@empty":
        data = b""
    elif kind == "@text":
        data = b"#!/bin/sh\necho this is not a kernel\n"
    elif kind == "@truncated":
        data = open(hello, "rb").read()[:4200]
    elif kind == "@high":
        # Move every PT_LOAD segment and the entry point up by 1 GiB.
        data = bytearray(open(hello, "rb").read())
        shift = 1 << 30
        entry, phoff = struct.unpack_from("<QQ", data, 24)
        struct.pack_into("<Q", data, 24, entry + shift)
        phentsize, phnum = struct.unpack_from("<HH", data, 54)
        for i in range(phnum):
            off = phoff + i * phentsize
            if struct.unpack_from("<I", data, off)[0] == 1:
                for field in (16, 24):  # p_vaddr, p_paddr
                    v = struct.unpack_from("<Q", data, off + field)[0]
                    struct.pack_into("<Q", data, off + field, v + shift)
        data = bytes(data)
    else:
        raise SystemExit(f"unknown image kind {kind}")
    with open(path, "wb") as f:
        f.write(data)
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case")
    ap.add_argument("--s2vm", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--cfg", default=os.path.join(os.path.dirname(__file__), "cases.cfg"))
    a = ap.parse_args()

    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(a.cfg)
    if a.case not in cfg:
        print(f"no case [{a.case}] in {a.cfg}")
        return 1
    c = cfg[a.case]

    if c.get("kvm", "yes") != "no":
        ok, why = kvm_usable()
        if not ok:
            print(f"SKIP: {a.case} needs KVM and {why}")
            return 77

    with tempfile.TemporaryDirectory() as tmp:
        image = c["image"]
        kernel = make_image(image, a.images, tmp) if image.startswith("@") \
            else os.path.join(a.images, image)
        cmd = [a.s2vm, "run", kernel] + shlex.split(c.get("opts", "").replace("\n", " "))
        if "args" in c:
            cmd += ["--"] + shlex.split(c["args"])
        env = dict(os.environ)
        for kv in c.get("env", "").split():
            k, v = kv.split("=", 1)
            env[k] = v
        timeout = float(c.get("timeout", "60"))
        print("$ " + " ".join(shlex.quote(x) for x in cmd))
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                             text=True, errors="replace")
        for sig in filter(None, c.get("signal", "").split(",")):
            name, delay = sig.split(":")
            time.sleep(float(delay))
            p.send_signal(getattr(signal, name))
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            print(f"FAIL: timed out after {timeout:.0f} s\n--- stdout\n{out}--- stderr\n{err}")
            return 1
        dt = time.monotonic() - t0

    print(f"--- exit {p.returncode} after {dt:.3f} s\n--- stdout\n{out}--- stderr\n{err}---")
    failures = []
    want = int(c.get("exit", "0"))
    if p.returncode != want:
        failures.append(f"exit code {p.returncode}, expected {want}")
    for stream, text in (("stdout", out), ("stderr", err)):
        for rx in filter(None, (x.strip() for x in c.get(stream, "").splitlines())):
            if not re.search(rx, text, re.M):
                failures.append(f"{stream} does not match /{rx}/")
    for rx in filter(None, (x.strip() for x in c.get("absent", "").splitlines())):
        if re.search(rx, out + err, re.M):
            failures.append(f"output matches forbidden /{rx}/")
    # Sanitizer reports must never appear.
    if any(x in err for x in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                              "WARNING: ThreadSanitizer", "runtime error:")):
        failures.append("sanitizer report in stderr")
    for f in failures:
        print("FAIL: " + f)
    if not failures:
        print(f"PASS: {a.case}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
