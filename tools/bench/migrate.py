#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""tools/dev bench migrate [--quick] [--json] [--accel LIST] [--runs N] [--seconds N]: what migrating guest memory costs.

In one run: the engine cases from bench-migrate (memcpy baseline; 2 MiB runs on one copy
thread and on the copy threads; 4 KiB contiguous; one 4 KiB page in 8 with the cost model
and in exact mode; a naive per-page baseline; alias calls per page; per-phase times), then a
ring-3 guest workload (churnload.elf: random read-modify-write over its memory) with and
without --churn moving 10% of guest memory per second, under every accelerator this
machine has (kvm only when /dev/kvm opens O_RDWR; proc always) or those named by --accel.
Guest runs go through the lab (tools/lab/lab.py, the same machinery as `tools/dev lab`):
interleaved in pairs, base then churn, for each accelerator in turn (base, churn, base,
churn, ...), so drift hits both configurations alike; each accelerator's lab run
directory (raw JSON, CSVs, plots, report.md) is printed at the end. For each
accelerator: median, min-max and interquartile range (IQR) of ops/s with and without
churn, the ratio of the medians, the p99 latency ratio, and the spread of the per-pair
ratios (churn_i / base_i); a ratio whose pairs stray more than +-5% from it is flagged
NOISY (with a single pair it cannot be judged and says so).
Engine targets (issue 13), as ratios to single-thread warm memcpy measured in the same
run: 2m_runs >= 0.95, 2m_runs_threads >= 1.6, 4k_contig >= 0.8, 4k_scattered_1in8 >= 0.25
(requested bytes per second; exact mode reported beside it); guest throughput >= 0.8 of
baseline under churn.
Times are CLOCK_MONOTONIC (the guest's clock hypercall reads the VMM's).
"""
import argparse
import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import subprocess
import time

import s2bench
from s2bench import BUILD, now_ns, summary

TARGET_RATIO = 0.8
ENGINE_TARGETS = {"2m_runs": 0.95, "2m_runs_threads": 1.6, "2m_huge_pools": 0.95,
                  "4k_contig": 0.8, "4k_scattered_1in8": 0.25}  # ratio to memcpy, issue 13
NOISE = 0.05  # flag a ratio whose per-pair ratios stray further than this from it


LAB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lab",
                   "lab.py")
EXPERIMENT = """# written by tools/bench/migrate.py (tools/dev bench migrate)
name = "bench-migrate"
title = "tools/dev bench migrate: churnload with and without 10%/s churn"
description = "The benchmark's guest part, run by the lab: baseline and 10%/s churn interleaved."
workload = "churnload"
args = ["seconds={secs}"]
metric = "churnload_ops_per_s"
also = ["churnload_p99_ns", "vmm.mig_ns_per_page"]
[vm]
mem = "{mem}M"
nodes = 2
[run]
repeats = {reps}
warmup = 0
[baseline]
label = "no churn"
[fixed]
churn_size = "2M"
[sweep]
churn_pct = [10]
"""


def guest_lab(accel, mem_mib, seconds, reps):
    """The guest part through the lab (tools/lab/lab.py): churnload without and with 10%/s
    churn, interleaved by round, under @accel. Returns {"base": [...], "churn": [...],
    "moved": [...]} (guest scalars per run, migrated bytes per churn run) and the lab's
    run directory (raw.json, CSVs, plots, report.md)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = os.path.join(BUILD, "lab", f"bench-migrate-{accel}-{stamp}")
    os.makedirs(out, exist_ok=True)
    exp = os.path.join(out, "experiment.toml")
    with open(exp, "w") as f:
        f.write(EXPERIMENT.format(secs=seconds, mem=mem_mib, reps=reps))
    p = subprocess.run([sys.executable, LAB, exp, "--out", out, "--accel", accel, "--build",
                        BUILD], capture_output=True, text=True)
    with open(os.path.join(out, "raw.json")) as f:
        raw = json.load(f)
    runs = {"base": [], "churn": [], "moved": []}
    failed = [r for r in raw["runs"] if not r["ok"]]
    if failed or p.returncode:
        raise SystemExit(f"bench migrate: {len(failed)} lab run(s) failed under {accel} "
                         f"(see {out}): {failed[0].get('error') if failed else p.stderr[-300:]}")
    for r in sorted(raw["runs"], key=lambda r: r["index"]):
        if r["warmup"]:
            continue
        sc = r["guest"]["scalars"]
        if r["arm"] == "no churn":
            runs["base"].append(sc)
        else:
            runs["churn"].append(sc)
            runs["moved"].append(r["vmm_stats"]["migration"]["bytes"])
    return runs, out


def guest_arm(accel, base, churned, moved, mem, secs, churn):
    """The per-accelerator summary of paired runs @base[i], @churned[i]."""
    ops = lambda runs: [r["churnload_ops_per_s"] for r in runs]
    p99 = lambda runs: [r["churnload_p99_ns"] for r in runs]
    b, c = summary(ops(base)), summary(ops(churned))
    bp, cp = summary(p99(base)), summary(p99(churned))
    ratio = c["median"] / b["median"]
    pairs = [x / y for x, y in zip(ops(churned), ops(base))]
    dev = max(abs(r / ratio - 1) for r in pairs)
    g = {
        "accel": accel,
        "mem_mib": mem,
        "seconds": secs,
        "churn": churn,
        "churn_mib_per_s": 0.10 * mem,
        "migrated_mib_median": summary(moved)["median"] / 2**20,
        "runs": len(base),
        "baseline_ops_per_s": b["median"],
        "churn_ops_per_s": c["median"],
        "baseline_ops_per_s_range": [b["min"], b["max"]],
        "churn_ops_per_s_range": [c["min"], c["max"]],
        "baseline_ops_per_s_iqr": [b["q1"], b["q3"]],
        "churn_ops_per_s_iqr": [c["q1"], c["q3"]],
        "baseline_p99_ns": bp["median"],
        "churn_p99_ns": cp["median"],
        "throughput_ratio": ratio,
        "throughput_ratio_pairs": pairs,
        "throughput_ratio_spread": dev,
        "throughput_ratio_noisy": None if len(pairs) < 2 else dev > NOISE,
        "target_throughput_ratio": TARGET_RATIO,
        "p99_latency_ratio": cp["median"] / bp["median"],
    }
    return g


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, fewer and shorter runs")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--accel", default="all",
                    help="comma list of kvm,proc, or all (default: every one present)")
    ap.add_argument("--runs", type=int, help="guest run pairs per accelerator (default 5; quick 3)")
    ap.add_argument("--seconds", type=int, help="seconds per guest run (default 3; quick 1)")
    a = ap.parse_args()

    mib, reps, mem = (64, 1, 128) if a.quick else (256, 3, 256)
    guest_reps = a.runs if a.runs is not None else (3 if a.quick else 5)
    secs = a.seconds if a.seconds is not None else (1 if a.quick else 3)
    if guest_reps < 1 or secs < 1:
        raise SystemExit("--runs and --seconds must be >= 1")
    arms, absent = s2bench.pick_accels(a.accel)
    t0 = now_ns()
    eng = subprocess.run([os.path.join(BUILD, "tools", "bench", "bench-migrate"), "--mib",
                          str(mib), "--repeat", str(reps), "--json"],
                         capture_output=True, text=True, check=True)
    res = json.loads(eng.stdout)

    # 10% of guest memory per second, in 2 MiB chunks (the lab's churn_pct = 10)
    period_ms = max(1, int(2 * 1000 / (0.10 * mem)))
    churn = f"{period_ms},2M"
    runs, lab_dirs = {}, {}
    for x in arms:  # each accelerator's pairs interleaved by the lab
        runs[x], lab_dirs[x] = guest_lab(x, mem, secs, guest_reps)
    res["lab_dirs"] = lab_dirs
    res["accels"], res["accels_absent"] = arms, absent
    res["guest"] = [guest_arm(x, runs[x]["base"], runs[x]["churn"], runs[x]["moved"], mem,
                              secs, churn) for x in arms]
    res["bench_wall_s"] = (now_ns() - t0) / 1e9
    if a.json:
        print(json.dumps(res, indent=1))
        return
    print(f"migration benchmark: engine over {mib} MiB (memcpy {res['memcpy_gibps']:.2f} GiB/s)")
    print(f"{'case':24} {'thr':>3} {'GiB/s':>8} {'/memcpy':>8} {'target':>7} {'x per-page':>11}"
          f" {'alias calls/page':>17}  phases ms (protect copy remap wait free)")
    for c in res["cases"]:
        t = ENGINE_TARGETS.get(c["name"])
        tgt = f"{t:.2f}{'' if c['ratio_to_memcpy'] >= t else '!'}" if t else "-"
        ph = c.get("phases_ns", {})
        phs = " ".join(f"{ph.get(k, 0) / 1e6:6.2f}"
                       for k in ("protect", "copy", "remap", "wait", "free"))
        print(f"{c['name']:24} {c.get('copy_threads', 1):3} {c['gibps']:8.3f} "
              f"{c['ratio_to_memcpy']:8.3f} {tgt:>7} {c['speedup_vs_per_page']:11.1f} "
              f"{c['alias_calls_per_page']:17.5f}  {phs}")
    print("  (target column: ! = missed; 4k_scattered GiB/s counts requested pages only)")
    print(f"guest: churnload.elf, {mem} MiB, {secs} s per run, --churn {churn} (10% of memory "
          f"per second), {guest_reps} interleaved pairs (base, churn) per accelerator")
    print(f"  accelerators run: {', '.join(arms)}"
          + "".join(f"; {x} absent ({why})" for x, why in absent.items()))
    M = 1e6
    print(f"{'accel':5} {'config':6} {'median':>12} {'min-max':>17} {'IQR':>17} {'p99':>10}"
          f" {'moved per run':>14}")
    for g in res["guest"]:
        x = g["accel"]
        br, cr = g["baseline_ops_per_s_range"], g["churn_ops_per_s_range"]
        bi, ci = g["baseline_ops_per_s_iqr"], g["churn_ops_per_s_iqr"]
        print(f"{x:5} {'base':6} {g['baseline_ops_per_s']/M:6.2f} Mop/s "
              f"{br[0]/M:6.2f}-{br[1]/M:6.2f} Mop/s {bi[0]/M:6.2f}-{bi[1]/M:6.2f} Mop/s"
              f" {g['baseline_p99_ns']:7.0f} ns {'-':>14}")
        print(f"{x:5} {'churn':6} {g['churn_ops_per_s']/M:6.2f} Mop/s "
              f"{cr[0]/M:6.2f}-{cr[1]/M:6.2f} Mop/s {ci[0]/M:6.2f}-{ci[1]/M:6.2f} Mop/s"
              f" {g['churn_p99_ns']:7.0f} ns {g['migrated_mib_median']:10.1f} MiB")
    print(f"{'accel':5} {'throughput ratio':>16} {'target':>8} {'':6}  {'per-pair ratios':>24}"
          f" {'p99 ratio':>9}")
    for g in res["guest"]:
        pr = g["throughput_ratio_pairs"]
        met = "met" if g["throughput_ratio"] >= TARGET_RATIO else "MISSED"
        if g["throughput_ratio_noisy"] is None:
            noise = "spread n/a (1 pair)"
        else:
            noise = (f"{min(pr):.2f}-{max(pr):.2f} (+-{g['throughput_ratio_spread']*100:.1f}%"
                     f"{' > 5%: NOISY' if g['throughput_ratio_noisy'] else ''})")
        print(f"{g['accel']:5} {g['throughput_ratio']:16.2f} {'>= 0.8':>8} {met:6}  {noise:>24}"
              f" {g['p99_latency_ratio']:9.2f}")
    for x, d in res["lab_dirs"].items():
        print(f"  {x}: the lab's run directory (raw JSON, plots, report.md): {d}")
    print(f"(whole benchmark: {res['bench_wall_s']:.1f} s)")


if __name__ == "__main__":
    main()
