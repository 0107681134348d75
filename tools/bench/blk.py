#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""tools/dev bench blk [--build DIR] [--repeat N] [--seconds N] [--accel A] [--quick] [--json FILE]: virtio-blk against host io_uring on the same file.

In one run, on one test file (--size, default 256 MiB, prefilled with random bytes, in
BUILD/bench-blk/ unless --dir says where; removed at the end), each row measured on the
host (bench-hostio: one io_uring, QD requests in flight, the same block size) and in a
guest (`s2vm run blkbench.elf --accel A --mem 256M --disk path=FILE[,direct=on] --
mode=M bs=B qd=Q seconds=S`), host and guest interleaved (host, guest, host, guest, ...)
over --repeat rounds, so drift hits both alike:

  seq read   64 KiB QD 16   MB/s (10^6 bytes/s)   target guest/host >= 0.8
  seq write  64 KiB QD 16   MB/s                  target >= 0.8
  rand read   4 KiB QD 32   IOPS                  target >= 0.5

each buffered (the page cache: the host opens the file plainly, the guest's disk has no
direct=on) and with O_DIRECT (the host's --direct, the guest's direct=on), the O_DIRECT
rows left out with a note where the file's filesystem refuses O_DIRECT. Then churn: the
guest's buffered seq read with --churn moving 10% of guest memory per second (2 MiB every
MS ms) against the same run without, interleaved in pairs (base, churn): target >= 0.85.
Last, pinned bytes: blkbench seq read 1 MiB QD 64 in a 1 GiB guest with registered=on
(64 MiB of buffers: more 2 MiB chunks than the default pinned_max of 64 MiB holds); the
disk's pinned_peak_bytes from --stats=json, largest over the rounds, must stay within its
pinned_max_bytes (PASS), and is NOT EXERCISED when no chunk was registered at all.

Reported per row: medians over the rounds, the ratio of the medians, the spread of the
per-round ratios (flagged NOISY beyond +-5%), p99 latency of both sides (us), and PASS or
BELOW TARGET. Untimed setup before every run: sync(), and before a buffered read row one
read of the whole file, so both sides start with a clean, warm page cache. Times are
CLOCK_MONOTONIC (bench-hostio's, and the guest's clock hypercall reads the VMM's). The
guest's accelerator is what s2vm ran (--stats=json), printed with the table. A guest run
counts only if its disk's --stats show requests of the kind asked for (and direct=on
where asked); guest requests that fell back from O_DIRECT to buffered are noted.
Exit 0; 1 when a run failed (its row says FAILED and why) or the guest half cannot run;
2 on bad options.
--json FILE also writes every raw run and the summaries as one JSON object (FILE "-":
to stdout, instead of the table). --host-only runs the host rows alone (no ratios).
"""
import argparse
import json
import os
import signal
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import s2bench
from s2bench import now_ns, reports, stats_json, summary

NOISE = 0.05  # flag a ratio whose per-round ratios stray further than this from it
GUEST_MEM = "256M"
# The figures of issue 11: (name, mode, block size, queue depth, metric, target ratio)
ROWS = (("seq read", "seqread", "64K", 16, "mbps", 0.8),
        ("seq write", "seqwrite", "64K", 16, "mbps", 0.8),
        ("rand read", "randread", "4K", 32, "iops", 0.5))
CHURN_ROW = ("seq read", "seqread", "64K", 16, "mbps", 0.85)
# registered=on in a 1 GiB guest: 64 buffers of 1 MiB span more 2 MiB chunks than the
# default pinned_max (64 MiB) holds, so the cap and its LRU replacement are exercised
PINNED_MEM, PINNED_MODE, PINNED_BS, PINNED_QD = "1G", "seqread", "1M", 64
UNIT = {"mbps": "MB/s", "iops": "IOPS"}
# blkbench's report: lines, by the metric they carry
GUEST_KEYS = {"mbps": "blk_mbps", "iops": "blk_iops", "p99_us": "blk_p99_us"}


class RunError(Exception):
    """One run failed: the command, its exit code and the tail of its stderr."""


def run(cmd, timeout):
    """Run @cmd. Returns (rc, stdout, stderr, wall_ns); a timeout is RunError."""
    t0 = now_ns()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RunError(f"{' '.join(cmd)}: no exit after {timeout} s")
    return p.returncode, p.stdout, p.stderr, now_ns() - t0


def failed(cmd, rc, err):
    tail = " / ".join(err.strip().splitlines()[-3:])
    return RunError(f"{' '.join(cmd)}: exit {rc}: {tail}")


def size_bytes(s):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    try:
        return int(s[:-1]) * mult[s[-1].upper()] if s[-1].upper() in mult else int(s)
    except (ValueError, IndexError):
        raise SystemExit(f"bad size '{s}' (a number of bytes, or with K, M or G)")


def fs_type(path):
    """The type of the filesystem holding @path (longest mount point in mountinfo)."""
    path, best, typ = os.path.realpath(path), "", "unknown"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            mnt = left.split()[4].replace("\\040", " ")
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, typ = mnt, right.split()[0]
    return typ


def direct_refusal(path):
    """None when @path opens O_DIRECT, else why not (one line)."""
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_DIRECT))
        return None
    except OSError as e:
        return f"open(O_DIRECT): {e.strerror}"


def make_disk(path, size):
    """Create @path with @size random bytes, synced. Returns the seconds it took."""
    t0 = now_ns()
    chunk = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for off in range(0, size, len(chunk)):
            f.write(chunk[:min(len(chunk), size - off)])
        f.flush()
        os.fsync(f.fileno())
    return (now_ns() - t0) / 1e9


def warm(path):
    """Read all of @path once (untimed setup: the page cache holds it after)."""
    buf = bytearray(1 << 20)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass


def prepare(a, mode, direct):
    os.sync()
    if not direct and mode.endswith("read"):
        warm(a.file)


def host_run(a, mode, bs, qd, direct):
    """One bench-hostio run. Returns its JSON object; exit 77 (no O_DIRECT) is RunError."""
    cmd = [a.hostio, "--file", a.file, "--mode", mode, "--bs", bs, "--qd", str(qd),
           "--seconds", str(a.seconds), "--json"] + (["--direct"] if direct else [])
    prepare(a, mode, direct)
    rc, out, err, wall = run(cmd, a.seconds + 60)
    if rc != 0:
        raise failed(cmd, rc, err)
    r = json.loads(out)
    r["wall_s"] = wall / 1e9
    return r


def guest_run(a, mode, bs, qd, direct, churn=None, mem=GUEST_MEM, disk_opts=""):
    """One blkbench.elf run. Returns {mbps, iops, p99_us, [p50_us], accel, wall_s,
    migrated_bytes, disk, stats}: disk is the --stats=json record of its one disk, which
    must show I/O of the kind asked for (and direct when @direct)."""
    disk = f"path={a.file}" + (",direct=on" if direct else "") + disk_opts
    cmd = [a.s2vm, "run", a.image, "--accel", a.accel, "--mem", mem, "--disk", disk,
           "--stats=json"] + (["--churn", churn] if churn else []) + \
          ["--", f"mode={mode}", f"bs={bs}", f"qd={qd}", f"seconds={a.seconds}"]
    prepare(a, mode, direct)
    rc, out, err, wall = run(cmd, a.seconds + 120)
    if rc != 0:
        raise failed(cmd, rc, err)
    rep = reports(out)
    missing = [k for k in GUEST_KEYS.values() if k not in rep]
    if missing:
        raise RunError(f"{' '.join(cmd)}: no report: {', '.join(missing)} in its output")
    try:
        st = stats_json(out)
    except (ValueError, IndexError, KeyError):
        raise RunError(f"{' '.join(cmd)}: no --stats=json object in its output")
    r = {k: rep[v] for k, v in GUEST_KEYS.items()}
    if "blk_p50_us" in rep:
        r["p50_us"] = rep["blk_p50_us"]
    disks = st.get("disks") or [{}]
    d = disks[0]
    ops = d.get("read_ops" if mode.endswith("read") else "write_ops", 0)
    if not ops:
        raise RunError(f"{' '.join(cmd)}: the disk's --stats show no "
                       f"{'read' if mode.endswith('read') else 'write'} requests")
    if direct and not d.get("direct"):
        raise RunError(f"{' '.join(cmd)}: the disk's --stats say it is not direct")
    r.update(accel=st["guest"].get("accel"), wall_s=wall / 1e9,
             migrated_bytes=st.get("migration", {}).get("bytes", 0), disk=d, stats=st)
    return r


def compare(name, cache, mode, bs, qd, metric, target, base, other, base_label, other_label):
    """The row summary of paired runs @base[i], @other[i]: medians, ratio, spread."""
    b, o = summary([r[metric] for r in base]), summary([r[metric] for r in other])
    bp, op = summary([r["p99_us"] for r in base]), summary([r["p99_us"] for r in other])
    ratio = o["median"] / b["median"] if b["median"] else 0.0
    pairs = [x[metric] / y[metric] if y[metric] else 0.0 for x, y in zip(other, base)]
    dev = max(abs(p / ratio - 1) for p in pairs) if ratio else 0.0
    return {
        "name": name, "cache": cache, "mode": mode, "bs": bs, "qd": qd, "metric": metric,
        "unit": UNIT[metric], "baseline": base_label, "measured": other_label,
        "runs": len(pairs),
        "baseline_median": b["median"], "baseline_range": [b["min"], b["max"]],
        "measured_median": o["median"], "measured_range": [o["min"], o["max"]],
        "baseline_p99_us": bp["median"], "measured_p99_us": op["median"],
        "ratio": ratio, "ratio_pairs": pairs, "ratio_spread": dev,
        "ratio_noisy": None if len(pairs) < 2 else dev > NOISE,
        "target_ratio": target, "pass": ratio >= target,
        "guest_direct_fallbacks": sum(r.get("disk", {}).get("direct_fallbacks", 0)
                                      for r in base + other),
    }


def pinned_summary(runs, error):
    """The pinned-bytes figure from the registered=on runs: the largest pinned_peak_bytes
    over them against pinned_max_bytes. PASS needs chunks registered and the peak within
    the cap; no registration at all is NOT EXERCISED (the cap was never tested)."""
    p = {"mem": PINNED_MEM, "mode": PINNED_MODE, "bs": PINNED_BS, "qd": PINNED_QD,
         "runs": runs}
    if error:
        p.update(error=error, verdict="FAILED")
        return p
    disk = [r["disk"] for r in runs]
    get = lambda k: [d.get(k, 0) for d in disk]
    p.update(pinned_peak_bytes=max(get("pinned_peak_bytes")),
             pinned_max_bytes=max(get("pinned_max_bytes")),
             chunk_registrations=sum(get("chunk_registrations")),
             chunk_evictions=sum(get("chunk_evictions")), fixed_ops=sum(get("fixed_ops")),
             pin_failures=sum(get("pin_failures")),
             mbps=summary([r["mbps"] for r in runs])["median"])
    if not p["chunk_registrations"]:
        p["verdict"] = "NOT EXERCISED"
    elif p["pinned_peak_bytes"] <= p["pinned_max_bytes"]:
        p["verdict"] = "PASS"
    else:
        p["verdict"] = "ABOVE pinned_max"
    return p


def host_only(name, cache, mode, bs, qd, metric, target, base):
    b, bp = summary([r[metric] for r in base]), summary([r["p99_us"] for r in base])
    return {"name": name, "cache": cache, "mode": mode, "bs": bs, "qd": qd, "metric": metric,
            "unit": UNIT[metric], "baseline": "host io_uring", "measured": None,
            "runs": len(base), "baseline_median": b["median"],
            "baseline_range": [b["min"], b["max"]], "baseline_p99_us": bp["median"],
            "target_ratio": target}


def guest_absent(a):
    """None when the guest half can run, else why not."""
    if not os.access(a.s2vm, os.X_OK):
        return f"{a.s2vm} is not built"
    if not os.path.isfile(a.image):
        return f"{a.image} is not built"
    rc, out, err, _ = run([a.s2vm, "run", "--help"], 30)
    if "--disk" not in out + err:
        return f"{a.s2vm} has no --disk option"
    return None


def fmt(v, unit):
    return f"{v:8.0f} {unit}" if unit == "IOPS" or v >= 100 else f"{v:8.1f} {unit}"


def print_table(res):
    f = res["file"]
    print(f"virtio-blk benchmark: {f['size_mib']} MiB test file on {f['fs_type']} "
          f"({f['path']}), {res['seconds']} s per run, {res['repeat']} interleaved "
          f"round(s) per row (medians)")
    if res["host_only"]:
        print("  guest: not run (--host-only)")
    else:
        accels = ", ".join(res["accels_ran"]) or "none (no guest run completed)"
        print(f"  guest: blkbench.elf --mem {GUEST_MEM} --accel {res['accel_requested']}: "
              f"accelerator run: {accels}"
              + "".join(f"; {x} absent ({why})" for x, why in res["accels_absent"].items()))
    for n in res["notes"]:
        print(f"  note: {n}")
    print(f"{'row':26} {'cache':8} {'baseline':>14} {'measured':>14} {'ratio':>6} "
          f"{'target':>7}  {'verdict':12} {'per-round ratios':>26} {'p99 base':>11} "
          f"{'p99 meas':>11}")
    for r in res["rows"]:
        label = f"{r['name']} {r['bs']}iB QD{r['qd']}"
        if r.get("churn"):
            label = f"{label} churn"
        u = r["unit"]
        if r.get("error"):
            print(f"{label:26} {r['cache']:8} FAILED: {r['error']}")
            continue
        base = fmt(r["baseline_median"], u)
        if r.get("measured") is None:
            print(f"{label:26} {r['cache']:8} {base:>14} {'-':>14} {'-':>6} "
                  f">= {r['target_ratio']:<4} {'not judged':12} {'':>26} "
                  f"{r['baseline_p99_us']:8.1f} us {'-':>11}")
            continue
        pr = r["ratio_pairs"]
        if r["ratio_noisy"] is None:
            noise = "n/a (1 round)"
        else:
            noise = (f"{min(pr):.2f}-{max(pr):.2f} (+-{r['ratio_spread'] * 100:.1f}%"
                     f"{' NOISY' if r['ratio_noisy'] else ''})")
        print(f"{label:26} {r['cache']:8} {base:>14} {fmt(r['measured_median'], u):>14} "
              f"{r['ratio']:6.3f} >= {r['target_ratio']:<4} "
              f"{'PASS' if r['pass'] else 'BELOW TARGET':12} {noise:>26} "
              f"{r['baseline_p99_us']:8.1f} us {r['measured_p99_us']:8.1f} us")
    p = res.get("pinned")
    if p:
        print(f"{'pinned bytes, registered=on':26} {p['mem']} guest, {p['mode']} "
              f"{p['bs']}iB QD{p['qd']}, {len(p['runs'])} run(s): ", end="")
        if p.get("error"):
            print(f"FAILED: {p['error']}")
        else:
            M = 2**20
            print(f"peak {p['pinned_peak_bytes'] / M:.1f} MiB, pinned_max "
                  f"{p['pinned_max_bytes'] / M:.1f} MiB: {p['verdict']}; "
                  f"{p['chunk_registrations']} chunk registrations, {p['chunk_evictions']} "
                  f"evictions, {p['fixed_ops']} fixed-buffer requests, {p['pin_failures']} "
                  f"pin failures; {p['mbps']:.0f} MB/s")
    print("  baseline: host io_uring (bench-hostio) on the same file, same block size and "
          "QD; churn rows: the same guest run without --churn")
    if res.get("churn"):
        c = res["churn"]
        how = (f" (2 MiB every {c['period_ms']} ms: {c['mib_per_s']:.1f} MiB/s, 10% of "
               f"{GUEST_MEM} per second)" if c["ten_percent_per_s"] else " (from --churn)")
        print(f"  churn: --churn {c['spec']}{how}; migrated per churn run (median): "
              f"{c['migrated_mib_median']:.1f} MiB")
    fb = [r for r in res["rows"] if r.get("guest_direct_fallbacks")]
    for r in fb:
        print(f"  note: {r['name']} {r['bs']}iB QD{r['qd']} {r['cache']}: "
              f"{r['guest_direct_fallbacks']} guest requests fell back to buffered I/O "
              f"(not O_DIRECT-aligned)")
    print(f"  setup (untimed): test file written in {res['setup_s']:.2f} s; "
          f"whole benchmark {res['bench_wall_s']:.1f} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[2:]))
    ap.add_argument("--build", default=s2bench.BUILD,
                    help="build directory with vmm/s2vm, guestos/blkbench.elf and "
                    "tools/bench/bench-hostio (default: build/)")
    ap.add_argument("--repeat", type=int, help="interleaved rounds per row (default 3; quick 1)")
    ap.add_argument("--seconds", type=int, help="seconds per run (default 3; quick 1)")
    ap.add_argument("--accel", default="auto", choices=("auto", "kvm", "proc"),
                    help="the guest's --accel (default auto: kvm where usable, else proc)")
    ap.add_argument("--size", default="256M", help="test file size (default 256M)")
    ap.add_argument("--dir", help="where the test file goes (default BUILD/bench-blk/); "
                    "use a disk-backed filesystem for the O_DIRECT rows to mean anything")
    ap.add_argument("--churn", help="the churn row's --churn MS[,SIZE] (default: 10%% of "
                    "guest memory per second in 2 MiB steps)")
    ap.add_argument("--no-direct", action="store_true", help="leave out the O_DIRECT rows")
    ap.add_argument("--no-churn", action="store_true", help="leave out the churn row")
    ap.add_argument("--no-pinned", action="store_true",
                    help="leave out the registered=on pinned-bytes row")
    ap.add_argument("--host-only", action="store_true",
                    help="host baselines alone (no guest runs, no ratios)")
    ap.add_argument("--quick", action="store_true", help="1 round of 1 s runs (smoke test)")
    ap.add_argument("--json", metavar="FILE",
                    help="also write raw runs and summaries as JSON to FILE ('-': stdout, "
                    "instead of the table)")
    a = ap.parse_args()
    if a.repeat is None:
        a.repeat = 1 if a.quick else 3
    if a.seconds is None:
        a.seconds = 1 if a.quick else 3
    if a.repeat < 1 or a.seconds < 1:
        print("blk.py: --repeat and --seconds must be >= 1", file=sys.stderr)
        raise SystemExit(2)
    size = size_bytes(a.size)
    if size < (1 << 20) or size % (64 << 10):
        print("blk.py: --size must be at least 1M and a multiple of 64K", file=sys.stderr)
        raise SystemExit(2)
    a.build = os.path.abspath(a.build)
    a.s2vm = os.path.join(a.build, "vmm", "s2vm")
    a.image = os.path.join(a.build, "guestos", "blkbench.elf")
    a.hostio = os.path.join(a.build, "tools", "bench", "bench-hostio")
    if not os.access(a.hostio, os.X_OK):
        print(f"blk.py: {a.hostio} is not built (ninja -C {a.build})", file=sys.stderr)
        raise SystemExit(2)
    notes, absent = [], {}
    why = None if a.host_only else guest_absent(a)
    if why:
        print(f"blk.py: the guest half cannot run: {why} (--host-only runs the host "
              f"baselines alone)", file=sys.stderr)
        raise SystemExit(1)
    if not a.host_only:
        for x in ("kvm",):
            r = s2bench.accel_absent_reason(x)
            if r:
                absent[x] = r
        if a.accel == "kvm" and absent:
            print(f"blk.py: --accel kvm: not on this machine: {absent['kvm']}", file=sys.stderr)
            raise SystemExit(2)
    mem_mib = size_bytes(GUEST_MEM) >> 20
    period_ms = max(1, int(2 * 1000 / (0.10 * mem_mib)))
    churn = a.churn or f"{period_ms},2M"

    # SIGTERM unwinds like Ctrl-C: the running child is killed, the test file removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    own_dir = a.dir is None
    d = os.path.join(a.build, "bench-blk") if own_dir else os.path.abspath(a.dir)
    os.makedirs(d, exist_ok=True)
    a.file = os.path.join(d, f"disk-{os.getpid()}.img")
    t0 = now_ns()
    try:
        setup_s = make_disk(a.file, size)
        fst = fs_type(a.file)
        caches = [("buffered", False)]
        refused = direct_refusal(a.file)
        if a.no_direct:
            notes.append("O_DIRECT rows left out (--no-direct)")
        elif refused:
            notes.append(f"O_DIRECT rows skipped: {fst} refuses O_DIRECT ({refused})")
        else:
            caches.append(("direct", True))
            if fst in ("tmpfs", "ramfs"):
                notes.append(f"the test file is on {fst}: its O_DIRECT rows measure "
                             f"memory, not a disk")
        raw = {(c, m): {"host": [], "guest": []} for c, _ in caches for _, m, *_ in ROWS}
        churn_raw = {"base": [], "churn": []}
        do_churn = not a.host_only and not a.no_churn
        do_pinned = not a.host_only and not a.no_pinned
        pinned_raw = []
        errors = {}
        for _ in range(a.repeat):
            for cache, direct in caches:
                for name, mode, bs, qd, metric, target in ROWS:
                    k = (cache, mode)
                    if k in errors:
                        continue
                    try:
                        h = host_run(a, mode, bs, qd, direct)
                        g = None if a.host_only else guest_run(a, mode, bs, qd, direct)
                    except RunError as e:
                        errors[k] = str(e)
                        continue
                    raw[k]["host"].append(h)
                    if g:
                        raw[k]["guest"].append(g)
            if do_churn and "churn" not in errors:
                _, mode, bs, qd, *_ = CHURN_ROW
                try:
                    b = guest_run(a, mode, bs, qd, False)
                    c = guest_run(a, mode, bs, qd, False, churn)
                except RunError as e:
                    errors["churn"] = str(e)
                else:
                    churn_raw["base"].append(b)
                    churn_raw["churn"].append(c)
            if do_pinned and "pinned" not in errors:
                try:
                    pinned_raw.append(guest_run(a, PINNED_MODE, PINNED_BS, PINNED_QD, False,
                                                mem=PINNED_MEM, disk_opts=",registered=on"))
                except RunError as e:
                    errors["pinned"] = str(e)
    finally:
        try:
            os.unlink(a.file)
        except FileNotFoundError:
            pass
        if own_dir and not os.listdir(d):
            os.rmdir(d)

    rows, ran = [], set()
    for cache, _ in caches:
        for name, mode, bs, qd, metric, target in ROWS:
            k = (cache, mode)
            h, g = raw[k]["host"], raw[k]["guest"]
            ran.update(r["accel"] for r in g)
            if k in errors:
                r = {"name": name, "cache": cache, "mode": mode, "bs": bs, "qd": qd,
                     "metric": metric, "unit": UNIT[metric], "target_ratio": target,
                     "error": errors[k]}
            elif a.host_only:
                r = host_only(name, cache, mode, bs, qd, metric, target, h)
            else:
                r = compare(name, cache, mode, bs, qd, metric, target, h, g,
                            "host io_uring", "guest virtio-blk")
            r["host_runs"], r["guest_runs"] = h, g
            rows.append(r)
    churn_info = None
    if do_churn:
        name, mode, bs, qd, metric, target = CHURN_ROW
        b, c = churn_raw["base"], churn_raw["churn"]
        ran.update(r["accel"] for r in b + c)
        if "churn" in errors:
            r = {"name": name, "cache": "buffered", "mode": mode, "bs": bs, "qd": qd,
                 "metric": metric, "unit": UNIT[metric], "target_ratio": target,
                 "error": errors["churn"]}
        else:
            r = compare(name, "buffered", mode, bs, qd, metric, target, b, c,
                        "guest without --churn", f"guest with --churn {churn}")
            churn_info = {"spec": churn, "ten_percent_per_s": not a.churn,
                          "migrated_mib_median":
                              summary([x["migrated_bytes"] for x in c])["median"] / 2**20}
            if not a.churn:
                churn_info.update(period_ms=period_ms, mib_per_s=2 * 1000 / period_ms)
        r["churn"] = True
        r["base_runs"], r["churn_runs"] = b, c
        rows.append(r)
    pinned = None
    if do_pinned:
        ran.update(r["accel"] for r in pinned_raw)
        pinned = pinned_summary(pinned_raw, errors.get("pinned"))
    res = {
        "file": {"path": a.file, "size_mib": size >> 20, "fs_type": fst},
        "seconds": a.seconds, "repeat": a.repeat, "guest_mem": GUEST_MEM,
        "host_only": a.host_only, "accel_requested": a.accel, "accels_ran": sorted(ran),
        "accels_absent": absent,
        "notes": notes, "rows": rows, "churn": churn_info, "pinned": pinned,
        "setup_s": setup_s,
        "bench_wall_s": (now_ns() - t0) / 1e9,
    }
    if a.json and a.json != "-":
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    if a.json == "-":
        print(json.dumps(res, indent=1))
    else:
        print_table(res)
    if errors:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
