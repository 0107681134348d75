#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""tools/dev bench migrate [--quick] [--json]: what migrating guest memory costs.

In one run: the engine cases from bench-migrate (memcpy limit; 2 MiB runs, 4 KiB
contiguous and scattered pages; a naive per-page baseline; alias calls per page), then a
ring-3 guest workload (churnload.elf: random read-modify-write over its memory) with and
without --churn moving 10% of guest memory per second. Runs alternate between the two
configurations and medians are compared.
Targets: 2 MiB runs >= 0.7 of memcpy, 4 KiB contiguous >= 0.4, >= 20x the per-page
baseline on contiguous 4 KiB, guest throughput >= 0.8 of baseline under churn.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(TOP, "build")


def guest_run(mem_mib, seconds, churn):
    cmd = [os.path.join(BUILD, "vmm", "s2vm"), "run",
           os.path.join(BUILD, "guestos", "churnload.elf"), "--mem", f"{mem_mib}M",
           "--stats=json"]
    if churn:
        cmd += ["--churn", churn]
    cmd += ["--", f"seconds={seconds}"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr}")
    rep = {}
    for line in p.stdout.splitlines():
        if line.startswith("report: "):
            k, v = line[8:].split("=", 1)
            rep[k] = float(v.split()[0])
    stats = json.loads([l for l in p.stdout.splitlines() if l.startswith("{")][-1])
    return rep, stats


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, fewer runs")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args()

    mib, reps, mem, secs = (64, 1, 128, 2) if a.quick else (256, 3, 256, 3)
    guest_reps = 1 if a.quick else 5
    eng = subprocess.run([os.path.join(BUILD, "tools", "bench", "bench-migrate"), "--mib",
                          str(mib), "--repeat", str(reps), "--json"],
                         capture_output=True, text=True, check=True)
    res = json.loads(eng.stdout)

    # 10% of guest memory per second, in 2 MiB chunks
    period_ms = max(1, int(2 * 1000 / (0.10 * mem)))
    churn = f"{period_ms},2M"
    base, churned, moved = [], [], []
    for _ in range(guest_reps):
        b, _ = guest_run(mem, secs, None)
        c, st = guest_run(mem, secs, churn)
        base.append(b)
        churned.append(c)
        moved.append(st["migration"]["bytes"])
    med = lambda runs, k: statistics.median(r[k] for r in runs)
    g = {
        "mem_mib": mem,
        "seconds": secs,
        "churn": churn,
        "churn_mib_per_s": 0.10 * mem,
        "migrated_mib_median": statistics.median(moved) / 2**20,
        "baseline_ops_per_s": med(base, "churnload_ops_per_s"),
        "churn_ops_per_s": med(churned, "churnload_ops_per_s"),
        "baseline_p99_ns": med(base, "churnload_p99_ns"),
        "churn_p99_ns": med(churned, "churnload_p99_ns"),
    }
    g["runs"] = guest_reps
    g["baseline_ops_per_s_range"] = [min(r["churnload_ops_per_s"] for r in base),
                                     max(r["churnload_ops_per_s"] for r in base)]
    g["churn_ops_per_s_range"] = [min(r["churnload_ops_per_s"] for r in churned),
                                  max(r["churnload_ops_per_s"] for r in churned)]
    g["throughput_ratio"] = g["churn_ops_per_s"] / g["baseline_ops_per_s"]
    g["p99_latency_ratio"] = g["churn_p99_ns"] / g["baseline_p99_ns"]
    res["guest"] = g
    if a.json:
        print(json.dumps(res, indent=1))
        return
    print(f"migration benchmark: engine over {mib} MiB (memcpy {res['memcpy_gibps']:.2f} GiB/s)")
    print(f"{'case':14} {'GiB/s':>8} {'/memcpy':>8} {'x per-page':>11} {'alias calls/page':>17}")
    for c in res["cases"]:
        print(f"{c['name']:14} {c['gibps']:8.3f} {c['ratio_to_memcpy']:8.3f} "
              f"{c['speedup_vs_per_page']:11.1f} {c['alias_calls_per_page']:17.5f}")
    print(f"guest: churnload.elf, {mem} MiB, {secs} s, --churn {churn} "
          f"(10% of memory per second; median {g['migrated_mib_median']:.0f} MiB moved per run)")
    print(f"  throughput  {g['baseline_ops_per_s']/1e6:8.2f} -> {g['churn_ops_per_s']/1e6:8.2f} Mop/s"
          f"   ratio {g['throughput_ratio']:.2f}   (target >= 0.8; medians of {guest_reps} runs each)")
    print(f"  run-to-run range: baseline {g['baseline_ops_per_s_range'][0]/1e6:.2f}.."
          f"{g['baseline_ops_per_s_range'][1]/1e6:.2f}, churn {g['churn_ops_per_s_range'][0]/1e6:.2f}.."
          f"{g['churn_ops_per_s_range'][1]/1e6:.2f} Mop/s")
    print(f"  p99 latency {g['baseline_p99_ns']:8.0f} -> {g['churn_p99_ns']:8.0f} ns"
          f"      ratio {g['p99_latency_ratio']:.2f}")


if __name__ == "__main__":
    main()
