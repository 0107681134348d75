#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Run one guest-booting integration test from cases.cfg.

Usage: run.py CASE --s2vm PATH --images DIR [--cfg FILE] [--accel proc|kvm]
       run.py --list [--cfg FILE]     one line per meson test: NAME CASE ACCEL|- TIMEOUT
                                      (.kvm variants only where /dev/kvm is usable)
       run.py --self-test             check the `reports` checker on made-up output

A guest case (the default) runs once per accelerator: the meson test NAME.proc passes
--accel proc, NAME.kvm passes --accel kvm. NAME.kvm is registered only when /dev/kvm is
usable at configure time (run `meson setup --reconfigure` after that changes): on a
machine without KVM every guest case runs under proc and nothing skips for want of KVM. A case with `guest = no` fails before any
accelerator is used and a case with `accel = auto` lets s2vm choose: both are one meson
test NAME, run without --accel.
Exits 0 on pass, 1 on failure, 77 (skip) when the .kvm variant finds no usable /dev/kvm
or the case says skip.ACCEL.
"""
import argparse
import configparser
import operator
import os
import re
import shlex
import signal
import struct
import subprocess
import sys
import tempfile
import time

ACCELS = ("proc", "kvm")
# Keys a case may give once; those in PER_ACCEL may also be given as KEY.proc / KEY.kvm.
KEYS = {"image", "opts", "args", "exit", "stdout", "stderr", "absent", "reports", "guest",
        "accel", "env", "signal", "timeout", "disk", "hugepages"}
PER_ACCEL = {"exit", "timeout", "opts", "env", "stdout", "stderr", "absent", "reports",
             "skip"}
DEFAULT_TIMEOUT = 60
# Added to a case's own timeout for the meson test: python start-up, image making.
MESON_MARGIN = 30

OPS = {">=": operator.ge, "<=": operator.le, "==": operator.eq, ">": operator.gt,
       "<": operator.lt}
REPORT_LINE = re.compile(r"^report: (\S+)=(\S+)(?: .*)?$", re.M)


class CaseError(Exception):
    """cases.cfg says something the runner cannot use."""


SIZE = re.compile(r"^(\d+)([KMG]?)$")


def parse_disks(value):
    """`disk = SIZE [SIZE...]`: bytes of each scratch disk (K, M, G binary)."""
    out = []
    for word in value.split():
        m = SIZE.match(word)
        if not m:
            raise CaseError(f"disk = {value}: '{word}' is not a size such as 64M")
        out.append(int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2)])
    return out


def probe_rofile(tmp):
    """A regular file this process can read but not open for writing, or None."""
    if os.geteuid() != 0:
        path = os.path.join(tmp, "readonly.img")
        with open(path, "wb") as f:
            f.truncate(1 << 20)
        os.chmod(path, 0o444)
        return path
    # root writes through file modes; sysfs refuses writes to read-only attributes
    for path in ("/sys/devices/system/cpu/online", "/sys/kernel/mm/transparent_hugepage/hpage_pmd_size"):
        try:
            os.close(os.open(path, os.O_RDONLY))
        except OSError:
            continue
        try:
            os.close(os.open(path, os.O_RDWR))
        except OSError:
            return path
    return None


def probe_unreadable(tmp):
    """A regular file this process cannot open for reading, or None."""
    if os.geteuid() != 0:
        path = os.path.join(tmp, "unreadable.img")
        with open(path, "wb") as f:
            f.truncate(1 << 20)
        os.chmod(path, 0)
        return path
    # procfs sysctls are permission-checked for root too: 0200 is write-only
    for path in ("/proc/sys/vm/compact_memory", "/proc/sys/vm/drop_caches"):
        try:
            os.close(os.open(path, os.O_RDONLY))
        except PermissionError:
            return path
        except OSError:
            continue
    return None


def substitute(text, subst):
    for k, v in subst.items():
        text = text.replace("{" + k + "}", v)
    return text


def scratch(c, tmp):
    """Make what the case's opts and args name: {disk}/{diskN} (`disk = SIZE...`: sparse
    files of that size), {tmp} (a directory), {rofile} (readable, not writable),
    {unreadable}. Returns the substitutions, or a reason to skip."""
    subst = {"tmp": tmp}
    for i, size in enumerate(parse_disks(c.get("disk", ""))):
        path = os.path.join(tmp, f"disk{i}.img")
        with open(path, "wb") as f:
            f.truncate(size)
        subst[f"disk{i}"] = path
        if i == 0:
            subst["disk"] = path
    text = c.get("opts", "") + c.get("args", "") + "".join(
        c.get(f"opts.{a}", "") for a in ACCELS)
    for name, probe in (("rofile", probe_rofile), ("unreadable", probe_unreadable)):
        if "{" + name + "}" in text:
            path = probe(tmp)
            if path is None:
                return None, f"no file here can serve as {{{name}}}"
            subst[name] = path
    return subst, None


def huge_free():
    """Free 2 MiB huge pages on node 0 (the whole host's without NUMA), and the file that
    sets how many there are."""
    d = "/sys/devices/system/node/node0/hugepages/hugepages-2048kB"
    if not os.path.isdir(d):
        d = "/sys/kernel/mm/hugepages/hugepages-2048kB"
    try:
        with open(os.path.join(d, "free_hugepages")) as f:
            return int(f.read()), os.path.join(d, "nr_hugepages")
    except (OSError, ValueError):
        return 0, os.path.join(d, "nr_hugepages")


def kvm_usable():
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
        os.close(fd)
        return True, ""
    except OSError as e:
        return False, f"/dev/kvm: {e.strerror}"


def lines(value):
    return [x.strip() for x in value.splitlines() if x.strip()]


def variants(name, c):
    """The accelerators CASE is registered under: [None] for one run without --accel."""
    guest = c.get("guest", "yes")
    accel = c.get("accel", "")
    if guest not in ("yes", "no"):
        raise CaseError(f"[{name}] guest = {guest}: expected no (or yes, the default)")
    if accel not in ("", "auto"):
        raise CaseError(f"[{name}] accel = {accel}: only auto may be given; a guest case "
                        f"runs under each of {', '.join(ACCELS)}")
    if guest == "no" and accel:
        raise CaseError(f"[{name}] guest = no and accel = auto contradict each other")
    return [None] if guest == "no" or accel else list(ACCELS)


def check_case(name, c):
    """Validate CASE's keys so that a typo fails loudly rather than asserting nothing."""
    accels = variants(name, c)
    for key in c:
        base, _, accel = key.partition(".")
        if not accel:
            ok = key in KEYS
        else:
            ok = base in PER_ACCEL and accel in ACCELS
            if ok and accels == [None]:
                raise CaseError(f"[{name}] {key}: this case runs without --accel")
        if not ok:
            raise CaseError(f"[{name}] unknown key '{key}'")
    if "image" not in c:
        raise CaseError(f"[{name}] needs an image")
    parse_disks(c.get("disk", ""))
    for accel in accels:
        for key in ("exit", "timeout"):
            value = get(c, key, accel, "0")
            try:
                float(value)
            except ValueError:
                raise CaseError(f"[{name}] {key} = {value}: not a number") from None
        parse_reports(get_list(c, "reports", accel))
    return accels


def load(cfg_path):
    cfg = configparser.ConfigParser(interpolation=None)
    if not cfg.read(cfg_path):
        raise CaseError(f"cannot read {cfg_path}")
    for name in cfg.sections():
        check_case(name, cfg[name])
    return cfg


def get(c, key, accel, default=None):
    """A scalar key: KEY.ACCEL when given, else KEY."""
    if accel and f"{key}.{accel}" in c:
        return c[f"{key}.{accel}"]
    return c.get(key, default)


def get_list(c, key, accel):
    """A list key: the lines of KEY followed by those of KEY.ACCEL."""
    out = lines(c.get(key, ""))
    if accel:
        out += lines(c.get(f"{key}.{accel}", ""))
    return out


def parse_reports(specs):
    """Parse `NAME_REGEX OP NUMBER [xCOUNT]` lines into (regex, op, number, count|None)."""
    out = []
    for spec in specs:
        f = spec.split()
        if len(f) not in (3, 4) or f[1] not in OPS:
            raise CaseError(f"reports line '{spec}': expected NAME_REGEX OP NUMBER [xCOUNT] "
                            f"with OP one of {' '.join(OPS)}")
        try:
            rx = re.compile(f[0])
            number = float(f[2])
            count = None
            if len(f) == 4:
                if not re.fullmatch(r"x[1-9]\d*", f[3]):
                    raise ValueError(f[3])
                count = int(f[3][1:])
        except (re.error, ValueError) as e:
            raise CaseError(f"reports line '{spec}': {e}") from None
        out.append((spec, rx, f[1], number, count))
    return out


def check_reports(specs, stdout):
    """Check `report: NAME=VALUE [UNIT]` lines of STDOUT against parsed SPECS.

    Every report whose name fully matches a spec's regex must satisfy OP NUMBER; with
    xCOUNT exactly COUNT distinct names must match, without it at least one.
    Returns a list of failure messages (empty when all hold).
    """
    reports = REPORT_LINE.findall(stdout)
    failures = []
    for spec, rx, op, number, count in specs:
        names = set()
        for name, value in reports:
            if not rx.fullmatch(name):
                continue
            names.add(name)
            try:
                v = float(value)
            except ValueError:
                failures.append(f"report {name}={value} is not a number ({spec})")
                continue
            if not OPS[op](v, number):
                failures.append(f"report {name}={value} does not satisfy {op} {number:g} "
                                f"({spec})")
        if count is None and not names:
            failures.append(f"no report line matches /{rx.pattern}/ ({spec})")
        elif count is not None and len(names) != count:
            failures.append(f"{len(names)} report name(s) match /{rx.pattern}/, expected "
                            f"{count}: {', '.join(sorted(names)) or 'none'} ({spec})")
    return failures


def self_test():
    """The `reports` checker must reject what it is there to catch."""
    out = ("migstress: 2 vCPUs\n"
           "report: migstress_cpu0_words=250000 words\n"
           "report: migstress_cpu1_words=0 words\n"
           "report: migstress_mismatches=0 words\n"
           "report: hypercall_ns_median=1.5e+03 ns\n"
           "not a report: migstress_cpu2_words=9\n")
    cases = [  # (spec, expected number of failures)
        ("migstress_cpu\\d+_words >= 100000 x2", 1),   # cpu1 checked nothing
        ("migstress_cpu\\d+_words >= 0 x2", 0),
        ("migstress_cpu\\d+_words >= 0 x3", 1),        # "each of 3 vCPUs": only 2 reported
        ("migstress_cpu\\d+_words >= 0 x1", 1),
        ("migstress_cpu\\d+_words >= 0", 0),
        ("migstress_cpu0_word >= 0", 1),               # full match, not prefix
        ("migstress_mismatches == 0", 0),
        ("migstress_mismatches > 0", 1),
        ("migstress_mismatches < 0", 1),
        ("migstress_mismatches <= 0", 0),
        ("hypercall_ns_median > 0", 0),
        ("hypercall_ns_median < 1000", 1),
        ("no_such_report >= 0", 1),
    ]
    bad = 0
    for spec, want in cases:
        got = check_reports(parse_reports([spec]), out)
        if len(got) != want:
            print(f"FAIL: reports '{spec}': {len(got)} failure(s), expected {want}: {got}")
            bad += 1
    for spec in ("x >= 1 2", "x => 1", "x >= one", "x >= 1 x0", "( >= 1", "x >="):
        try:
            parse_reports([spec])
            print(f"FAIL: malformed reports line '{spec}' was accepted")
            bad += 1
        except CaseError:
            pass
    print("FAIL: runner self-test" if bad else "PASS: runner self-test")
    return 1 if bad else 0


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
        # Move every PT_LOAD segment, the entry point and the s2vm ring-3 entry note
        # (include/s2vm/bootinfo.h) up by 1 GiB.
        data = bytearray(open(hello, "rb").read())
        shift = 1 << 30
        entry, phoff = struct.unpack_from("<QQ", data, 24)
        struct.pack_into("<Q", data, 24, entry + shift)
        phentsize, phnum = struct.unpack_from("<HH", data, 54)
        for i in range(phnum):
            off = phoff + i * phentsize
            ptype = struct.unpack_from("<I", data, off)[0]
            if ptype == 1:  # PT_LOAD
                for field in (16, 24):  # p_vaddr, p_paddr
                    v = struct.unpack_from("<Q", data, off + field)[0]
                    struct.pack_into("<Q", data, off + field, v + shift)
            elif ptype == 4:  # PT_NOTE: namesz, descsz, type, name, desc (4-aligned)
                n = struct.unpack_from("<Q", data, off + 8)[0]  # p_offset
                end = n + struct.unpack_from("<Q", data, off + 32)[0]
                while n + 12 <= end:
                    namesz, descsz, ntype = struct.unpack_from("<III", data, n)
                    desc = n + 12 + (namesz + 3) // 4 * 4
                    if data[n + 12:n + 12 + namesz] == b"s2vm\0" and ntype == 1:
                        v = struct.unpack_from("<Q", data, desc)[0]
                        struct.pack_into("<Q", data, desc, v + shift)
                    n = desc + (descsz + 3) // 4 * 4
        data = bytes(data)
    else:
        raise SystemExit(f"unknown image kind {kind}")
    with open(path, "wb") as f:
        f.write(data)
    return path


def list_tests(cfg):
    have_kvm, why = kvm_usable()
    if not have_kvm:
        print(f"run.py: {why}: registering no .kvm variants", file=sys.stderr)
    for name in cfg.sections():
        c = cfg[name]
        for accel in variants(name, c):
            if accel == "kvm" and not have_kvm:
                continue
            timeout = float(get(c, "timeout", accel, DEFAULT_TIMEOUT))
            test = f"{name}.{accel}" if accel else name
            print(f"{test} {name} {accel or '-'} {int(timeout) + MESON_MARGIN}")


def run_case(a, name, c):
    accel = a.accel
    accels = variants(name, c)
    if accel not in accels:
        want = "without --accel" if accels == [None] else "with --accel proc or --accel kvm"
        print(f"case [{name}] runs {want}")
        return 1
    if accel and f"skip.{accel}" in c:
        print(f"SKIP: {name} under {accel}: {' '.join(lines(c[f'skip.{accel}']))}")
        return 77
    if accel == "kvm":
        ok, why = kvm_usable()
        if not ok:
            print(f"SKIP: {name} needs KVM and {why}")
            return 77
    need = int(c.get("hugepages", "0").strip() or 0)
    if need:
        free, nr_file = huge_free()
        if free < need:
            print(f"SKIP: {name} needs {need} free 2 MiB huge pages, {free} free (tools/dev "
                  f"test reserves them as root: echo {need + 16} > {nr_file})")
            return 77
    reports = parse_reports(get_list(c, "reports", accel))

    with tempfile.TemporaryDirectory() as tmp:
        image = c["image"]
        kernel = make_image(image, a.images, tmp) if image.startswith("@") \
            else os.path.join(a.images, image)
        subst, why = scratch(c, tmp)
        if subst is None:
            print(f"SKIP: {name}: {why}")
            return 77
        opts = substitute(" ".join(get_list(c, "opts", accel)), subst)
        cmd = [a.s2vm, "run", kernel] + shlex.split(opts)
        if accel:
            cmd += ["--accel", accel]
        if "args" in c:
            cmd += ["--"] + shlex.split(substitute(c["args"], subst))
        env = dict(os.environ)
        for kv in " ".join(get_list(c, "env", accel)).split():
            k, v = kv.split("=", 1)
            env[k] = v
        timeout = float(get(c, "timeout", accel, DEFAULT_TIMEOUT))
        print("$ " + " ".join(shlex.quote(x) for x in cmd))
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                             text=True, errors="replace")
        for sig in filter(None, c.get("signal", "").split(",")):
            sname, delay = sig.split(":")
            time.sleep(float(delay))
            p.send_signal(getattr(signal, sname))
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
    want = int(get(c, "exit", accel, "0"))
    if p.returncode != want:
        failures.append(f"exit code {p.returncode}, expected {want}")
    for stream, text in (("stdout", out), ("stderr", err)):
        for rx in get_list(c, stream, accel):
            if not re.search(rx, text, re.M):
                failures.append(f"{stream} does not match /{rx}/")
    for rx in get_list(c, "absent", accel):
        if re.search(rx, out + err, re.M):
            failures.append(f"output matches forbidden /{rx}/")
    failures += check_reports(reports, out)
    # Sanitizer reports must never appear.
    if any(x in err for x in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                              "WARNING: ThreadSanitizer", "runtime error:")):
        failures.append("sanitizer report in stderr")
    for f in failures:
        print("FAIL: " + f)
    test = f"{name}.{accel}" if accel else name
    if not failures:
        print(f"PASS: {test}")
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case", nargs="?")
    ap.add_argument("--s2vm")
    ap.add_argument("--images")
    ap.add_argument("--accel", choices=ACCELS)
    ap.add_argument("--cfg", default=os.path.join(os.path.dirname(__file__), "cases.cfg"))
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()

    if a.self_test:
        return self_test()
    try:
        cfg = load(a.cfg)
    except (CaseError, configparser.Error) as e:
        print(f"{a.cfg}: {e}", file=sys.stderr)
        return 1
    if a.list:
        list_tests(cfg)
        return 0
    if not (a.case and a.s2vm and a.images):
        ap.error("CASE, --s2vm and --images are required")
    if a.case not in cfg:
        print(f"no case [{a.case}] in {a.cfg}")
        return 1
    return run_case(a, a.case, cfg[a.case])


if __name__ == "__main__":
    sys.exit(main())
