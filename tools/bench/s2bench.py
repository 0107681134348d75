# SPDX-License-Identifier: MIT
"""Helpers shared by tools/bench/*.py: which accelerators this machine has, running s2vm
and the host baselines, reading guest reports and --stats=json, and summary statistics.

Every time here is CLOCK_MONOTONIC; every value carries its unit in its name.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(TOP, "build")
ACCELS = ("kvm", "proc")  # every accelerator s2vm has, in report order


def now_ns():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def accel_absent_reason(accel):
    """None when @accel can run on this machine, else why not (one line)."""
    if accel == "proc":
        return None
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC))
        return None
    except OSError as e:
        return f"/dev/kvm does not open O_RDWR: {e.strerror}"


def pick_accels(spec):
    """Arms to run for --accel @spec ("all", or a comma list of kvm/proc).

    Returns (present, absent): the arms to run, in report order, and {accel: reason} for
    each arm absent from this machine. "all" leaves out what the machine lacks; an unknown
    name, or an arm named explicitly but absent, is exit 2 with the reason on stderr."""
    want = ACCELS if spec in (None, "", "all") else tuple(s.strip() for s in spec.split(","))
    bad = [a for a in want if a not in ACCELS]
    if bad:
        print(f"--accel: unknown accelerator {','.join(bad)} "
              f"(choose from {', '.join(ACCELS)} or all)", file=sys.stderr)
        raise SystemExit(2)
    present, absent = [], {}
    for a in ACCELS:
        why = accel_absent_reason(a)
        if why is None and a in want:
            present.append(a)
        elif why is not None:
            absent[a] = why
    if spec not in (None, "", "all"):
        missing = [a for a in want if a in absent]
        if missing:
            print(f"--accel {missing[0]}: not on this machine: {absent[missing[0]]}",
                  file=sys.stderr)
            raise SystemExit(2)
    if not present:
        raise SystemExit("no accelerator to run")
    return present, absent


_errf = None


def spawn(cmd, timeout=600):
    """Run @cmd to completion. Returns (wall_ns, stdout text): wall time from just before
    the fork to the reaped exit, CLOCK_MONOTONIC. stderr goes to a scratch file (cheaper
    than a second pipe) and is quoted if @cmd fails; a non-zero exit is SystemExit."""
    global _errf
    if _errf is None:
        _errf = tempfile.TemporaryFile()
    _errf.seek(0)
    _errf.truncate()
    t0 = now_ns()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=_errf)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise SystemExit(f"{' '.join(cmd)}: no exit after {timeout} s")
    wall = now_ns() - t0
    if p.returncode != 0:
        _errf.seek(0)
        err = _errf.read().decode(errors="replace").strip()
        raise SystemExit(f"{' '.join(cmd)} failed with exit {p.returncode}: {err}")
    return wall, out.decode(errors="replace")


def reports(out):
    """{name: value} from the guest's `report: NAME=VALUE UNIT` lines."""
    rep = {}
    for line in out.splitlines():
        if line.startswith("report: "):
            k, v = line[8:].split("=", 1)
            rep[k] = float(v.split()[0])
    return rep


def stats_json(out, accel=None):
    """The last --stats=json object in @out; checks it ran under @accel when given."""
    st = json.loads([l for l in out.splitlines() if l.startswith("{")][-1])
    if accel is not None and st["guest"].get("accel") != accel:
        raise SystemExit(f"asked for --accel {accel}, s2vm ran {st['guest'].get('accel')}")
    return st


def s2vm_run(s2vm, image, accel, mem, guest_args=(), extra=()):
    """One `s2vm run` under @accel with --stats=json. Returns (wall_ns, reports, stats)."""
    cmd = [s2vm, "run", image, "--accel", accel, "--mem", mem, "--stats=json", *extra]
    if guest_args:
        cmd += ["--", *guest_args]
    wall, out = spawn(cmd)
    return wall, reports(out), stats_json(out, accel)


def summary(v):
    """median, min, max, q1, q3 and count of @v (q1 == q3 == median below 2 values)."""
    v = sorted(v)
    med = statistics.median(v)
    if len(v) >= 2:
        q1, _, q3 = statistics.quantiles(v, n=4, method="inclusive")
    else:
        q1 = q3 = med
    return {"median": med, "min": v[0], "max": v[-1], "q1": q1, "q3": q3, "n": len(v)}


def p90(v):
    """The 90th percentile as the existing boot figure defines it (nearest rank below)."""
    return sorted(v)[int(0.9 * (len(v) - 1))]
