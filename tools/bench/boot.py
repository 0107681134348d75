#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""tools/dev bench boot: how fast s2vm boots a guest to exit, and what it costs in RSS.

Runs `s2vm run hello.elf --mem 128M --stats=json` N times and, in the same run, the
baseline of spawning /bin/true. Reports medians: wall time from spawn to exit, s2vm's own
VM-create-to-guest-exit time, peak RSS (s2vm's VmHWM, read by itself at exit: wait4's
ru_maxrss would include the forking Python parent), guest RAM actually touched, and the
VMM overhead (peak RSS minus touched guest RAM). Targets: < 20 ms to guest exit,
< 4 MiB overhead.
"""
import argparse
import json
import os
import statistics
import subprocess
import time


def run(cmd):
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    p.stdout.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with status {status}")
    return wall, ru, out.decode()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--s2vm", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--mem", default="128M")
    ap.add_argument("--runs", type=int, default=30, help="repetitions (default 30)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args()

    base_wall = []
    walls, rss, resident, create = [], [], [], []
    run([a.s2vm, "run", a.image, "--mem", a.mem])  # warm the page cache
    for _ in range(a.runs):
        w, _, _ = run(["/bin/true"])
        base_wall.append(w)
        w, _, out = run([a.s2vm, "run", a.image, "--mem", a.mem, "--stats=json"])
        stats = json.loads([l for l in out.splitlines() if l.startswith("{")][-1])
        walls.append(w)
        rss.append(stats["vmm"]["peak_rss_bytes"])
        resident.append(stats["guest"]["resident_bytes"])
        create.append(stats["guest"].get("create_to_exit_ns", 0) / 1e9)

    med = statistics.median
    overhead = [r - g for r, g in zip(rss, resident)]
    res = {
        "runs": a.runs,
        "mem": a.mem,
        "wall_ms": med(walls) * 1e3,
        "wall_p90_ms": sorted(walls)[int(0.9 * (len(walls) - 1))] * 1e3,
        "create_to_exit_ms": med(create) * 1e3,
        "peak_rss_mib": med(rss) / 2**20,
        "guest_touched_mib": med(resident) / 2**20,
        "vmm_overhead_mib": med(overhead) / 2**20,
        "baseline_true_wall_ms": med(base_wall) * 1e3,
        "target_wall_ms": 20.0,
        "target_overhead_mib": 4.0,
    }
    res["wall_ratio_to_target"] = res["wall_ms"] / res["target_wall_ms"]
    res["overhead_ratio_to_target"] = res["vmm_overhead_mib"] / res["target_overhead_mib"]
    if a.json:
        print(json.dumps(res, indent=1))
        return
    print(f"s2vm boot benchmark: {a.runs} runs of `s2vm run {os.path.basename(a.image)} --mem {a.mem}`")
    print(f"{'metric':34} {'median':>10}  {'target':>8}  ratio")
    print(f"{'spawn to exit (wall)':34} {res['wall_ms']:8.2f} ms  {20:6.0f} ms  {res['wall_ratio_to_target']:.2f}")
    print(f"{'  p90':34} {res['wall_p90_ms']:8.2f} ms")
    print(f"{'VM create to guest exit':34} {res['create_to_exit_ms']:8.2f} ms")
    print(f"{'peak RSS':34} {res['peak_rss_mib']:8.2f} MiB")
    print(f"{'guest RAM touched':34} {res['guest_touched_mib']:8.2f} MiB")
    print(f"{'VMM overhead (peak - touched)':34} {res['vmm_overhead_mib']:8.2f} MiB {4:6.0f} MiB  {res['overhead_ratio_to_target']:.2f}")
    print(f"{'baseline: spawn /bin/true':34} {res['baseline_true_wall_ms']:8.2f} ms")


if __name__ == "__main__":
    main()
