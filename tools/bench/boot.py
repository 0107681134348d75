#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""tools/dev bench boot: boot time, RSS, hypercall cost and memory bandwidth, per accelerator.

Runs every accelerator this machine has (kvm only when /dev/kvm opens O_RDWR; proc
always), or those named by --accel, each arm interleaved with the others and with the
host baselines in the same run, so drift hits all of them alike. Times are
CLOCK_MONOTONIC; medians unless said otherwise.

  boot       `s2vm run hello.elf --mem 128M --accel A --stats=json`, --runs times per arm,
             each iteration also spawning the baseline /bin/true. Wall time from spawn to
             reaped exit (median, p90), s2vm's own VM-create-to-guest-exit time, peak RSS
             (s2vm's VmHWM read by itself at exit: wait4's ru_maxrss would include the
             forking Python parent), guest RAM touched, and the VMM overhead (peak RSS
             minus touched guest RAM). Targets: spawn to exit < 5 ms under proc, < 20 ms
             under kvm; overhead < 4 MiB.
  hypercall  hcbench.elf n=N, --hc-runs times per arm: the median over runs of the guest's
             per-batch median round trip of a NOP hypercall, its min-max over runs and the
             smallest batch minimum. Target <= 10 us under proc (no target for kvm; it is
             printed beside proc's).
  memtouch   memtouch.elf size=256M passes=3 in a 512M guest, --memtouch-runs times per
             arm, against bench-memset in the same iterations: memset() of the same
             number of bytes, the same number of passes, over a fresh memfd mapped
             MAP_SHARED like s2vm's guest RAM, so its first pass pays the same first-touch
             faults as the guest's first pass (an untimed read-back between passes stands
             for memtouch's verify). Reported: memtouch_write_mibps, and its ratio to the
             memset baseline (target >= 0.9). A second host row runs memtouch's own
             pattern loop on the host ("bench-memset --fill pattern"), to tell what the
             code costs apart from what running it as a guest costs.

The guest images are taken from the directory of --image. --quick: fewer and smaller runs
for smoke tests. --json prints one JSON object instead of the table.
"""
import argparse
import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import s2bench
from s2bench import BUILD, now_ns, p90, s2vm_run, spawn, summary

TARGET_WALL_MS = {"proc": 5.0, "kvm": 20.0}  # spawn to guest exit, hello.elf
TARGET_OVERHEAD_MIB = 4.0
TARGET_HC_US = {"proc": 10.0}  # kvm: reported beside proc's, no target of its own
TARGET_MEMTOUCH_RATIO = 0.9


def size_bytes(s):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(s[:-1]) * mult[s[-1].upper()] if s[-1].upper() in mult else int(s) << 20


def bench_boot(a, arms):
    """hello.elf under each arm, with /bin/true, --runs interleaved iterations."""
    per = {x: {"wall": [], "create": [], "rss": [], "resident": []} for x in arms}
    true_wall = []
    for x in arms:  # setup, untimed: warm the page cache and the dynamic loader
        s2vm_run(a.s2vm, a.image, x, a.mem)
    spawn(["/bin/true"])
    for _ in range(a.runs):
        true_wall.append(spawn(["/bin/true"])[0])
        for x in arms:
            w, _, st = s2vm_run(a.s2vm, a.image, x, a.mem)
            per[x]["wall"].append(w)
            per[x]["create"].append(st["guest"].get("create_to_exit_ns", 0))
            per[x]["rss"].append(st["vmm"]["peak_rss_bytes"])
            per[x]["resident"].append(st["guest"]["resident_bytes"])
    out = {}
    for x in arms:
        d = per[x]
        overhead = [r - g for r, g in zip(d["rss"], d["resident"])]
        r = {
            "wall_ms": summary(d["wall"])["median"] / 1e6,
            "wall_p90_ms": p90(d["wall"]) / 1e6,
            "create_to_exit_ms": summary(d["create"])["median"] / 1e6,
            "peak_rss_mib": summary(d["rss"])["median"] / 2**20,
            "guest_touched_mib": summary(d["resident"])["median"] / 2**20,
            "vmm_overhead_mib": summary(overhead)["median"] / 2**20,
            "target_wall_ms": TARGET_WALL_MS[x],
            "target_overhead_mib": TARGET_OVERHEAD_MIB,
        }
        r["wall_above_true_ms"] = r["wall_ms"] - summary(true_wall)["median"] / 1e6
        r["wall_ratio_to_target"] = r["wall_ms"] / r["target_wall_ms"]
        r["overhead_ratio_to_target"] = r["vmm_overhead_mib"] / r["target_overhead_mib"]
        out[x] = r
    return out, summary(true_wall)["median"] / 1e6


def bench_hypercall(a, arms):
    """hcbench.elf under each arm, --hc-runs interleaved iterations."""
    img = os.path.join(os.path.dirname(a.image), "hcbench.elf")
    med = {x: [] for x in arms}
    mins = {x: [] for x in arms}
    for _ in range(a.hc_runs):
        for x in arms:
            _, rep, _ = s2vm_run(a.s2vm, img, x, a.mem, [f"n={a.hc_n}"])
            med[x].append(rep["hypercall_ns_median"])
            mins[x].append(rep["hypercall_ns_min"])
    out = {}
    for x in arms:
        s = summary(med[x])
        r = {"hypercall_us_median": s["median"] / 1e3,
             "hypercall_us_range": [s["min"] / 1e3, s["max"] / 1e3],
             "hypercall_us_min": min(mins[x]) / 1e3}
        if x in TARGET_HC_US:
            r["target_hypercall_us"] = TARGET_HC_US[x]
            r["hypercall_ratio_to_target"] = r["hypercall_us_median"] / TARGET_HC_US[x]
        out[x] = r
    return out


def bench_memtouch(a, arms):
    """memtouch.elf under each arm against bench-memset (memset and pattern fills), in
    --memtouch-runs interleaved iterations."""
    img = os.path.join(os.path.dirname(a.image), "memtouch.elf")
    helper = a.bench_memset
    guest = {x: [] for x in arms}
    host = {"memset": [], "pattern": []}
    host_setup_ns = []
    for _ in range(a.memtouch_runs):
        for fill in ("memset", "pattern"):
            _, out = spawn([helper, "--fill", fill, "--size", a.memtouch_size, "--passes",
                            str(a.memtouch_passes), "--repeat", "1", "--json"])
            j = json.loads(out)
            host[fill].append(j["write_mibps"])
            host_setup_ns.append(j["setup_ns"])
        for x in arms:
            _, rep, _ = s2vm_run(a.s2vm, img, x, a.memtouch_mem,
                                 [f"size={a.memtouch_size}", f"passes={a.memtouch_passes}"])
            guest[x].append(rep["memtouch_write_mibps"])
    hs, hp = summary(host["memset"]), summary(host["pattern"])
    res = {
        "size": a.memtouch_size, "passes": a.memtouch_passes, "mem": a.memtouch_mem,
        "runs": a.memtouch_runs,
        "host_memset_mibps": hs["median"], "host_memset_mibps_range": [hs["min"], hs["max"]],
        "host_pattern_mibps": hp["median"], "host_pattern_mibps_range": [hp["min"], hp["max"]],
        "host_setup_ms": summary(host_setup_ns)["median"] / 1e6,
        "target_ratio_to_memset": TARGET_MEMTOUCH_RATIO,
    }
    out = {}
    for x in arms:
        g = summary(guest[x])
        out[x] = {"memtouch_write_mibps": g["median"],
                  "memtouch_write_mibps_range": [g["min"], g["max"]],
                  "memtouch_ratio_to_memset": g["median"] / hs["median"],
                  "memtouch_ratio_to_pattern": g["median"] / hp["median"]}
    return res, out


def verdict(ratio, ok):
    return f"{ratio:5.2f} {'met' if ok else 'MISSED'}"


def print_table(a, res):
    arms = res["accels"]
    print(f"s2vm boot benchmark: accelerators run: {', '.join(arms)}"
          + "".join(f"; {x} absent ({why})" for x, why in res["accels_absent"].items()))
    print(f"{'metric':36} {'accel':5} {'median':>12} {'p90 / range':>19}  {'target':>10}  ratio")
    row = lambda m, x, v, extra="", tgt="", rat="": print(
        f"{m:36} {x:5} {v:>12} {extra:>19}  {tgt:>10}  {rat}")
    print(f"-- boot: {a.runs} runs of `s2vm run {os.path.basename(a.image)} --mem {a.mem}` "
          f"per accelerator, interleaved with the baseline")
    for x in arms:
        r = res["arms"][x]
        row("spawn to guest exit (wall)", x, f"{r['wall_ms']:.2f} ms", f"p90 {r['wall_p90_ms']:.2f} ms",
            f"< {r['target_wall_ms']:.0f} ms",
            verdict(r["wall_ratio_to_target"], r["wall_ms"] < r["target_wall_ms"]))
        row("  above spawning /bin/true", x, f"{r['wall_above_true_ms']:.2f} ms")
        row("VM create to guest exit", x, f"{r['create_to_exit_ms']:.2f} ms")
        row("peak RSS", x, f"{r['peak_rss_mib']:.2f} MiB")
        row("guest RAM touched", x, f"{r['guest_touched_mib']:.2f} MiB")
        row("VMM overhead (peak - touched)", x, f"{r['vmm_overhead_mib']:.2f} MiB", "",
            f"< {r['target_overhead_mib']:.0f} MiB",
            verdict(r["overhead_ratio_to_target"],
                    r["vmm_overhead_mib"] < r["target_overhead_mib"]))
    row("baseline: spawn /bin/true", "host", f"{res['baseline_true_wall_ms']:.2f} ms")
    if a.hc_runs:
        print(f"-- hypercall: {a.hc_runs} runs of hcbench.elf n={a.hc_n} per accelerator "
              f"(median of per-run medians; range over runs)")
        for x in arms:
            r = res["arms"][x]
            lo, hi = r["hypercall_us_range"]
            tgt = rat = ""
            if "target_hypercall_us" in r:
                tgt = f"<= {r['target_hypercall_us']:.0f} us"
                rat = verdict(r["hypercall_ratio_to_target"],
                              r["hypercall_us_median"] <= r["target_hypercall_us"])
            row("hypercall round trip", x, f"{r['hypercall_us_median']:.2f} us",
                f"{lo:.2f}-{hi:.2f} us", tgt, rat)
            row("  smallest batch minimum", x, f"{r['hypercall_us_min']:.2f} us")
    if a.memtouch_runs:
        m = res["memtouch"]
        print(f"-- memtouch: {m['runs']} runs of memtouch.elf size={m['size']} "
              f"passes={m['passes']} in a {m['mem']} guest per accelerator, interleaved "
              f"with the host baselines (first-touch included in both)")
        for x in arms:
            r = res["arms"][x]
            lo, hi = r["memtouch_write_mibps_range"]
            row("memtouch write", x, f"{r['memtouch_write_mibps']:.0f} MiB/s",
                f"{lo:.0f}-{hi:.0f} MiB/s", f">= {TARGET_MEMTOUCH_RATIO} x",
                verdict(r["memtouch_ratio_to_memset"],
                        r["memtouch_ratio_to_memset"] >= TARGET_MEMTOUCH_RATIO))
            row("  vs the same loop on the host", x, "", "", "",
                f"{r['memtouch_ratio_to_pattern']:5.2f}")
        lo, hi = m["host_memset_mibps_range"]
        row("baseline: host memset, memfd", "host", f"{m['host_memset_mibps']:.0f} MiB/s",
            f"{lo:.0f}-{hi:.0f} MiB/s")
        lo, hi = m["host_pattern_mibps_range"]
        row("host: memtouch's loop, memfd", "host", f"{m['host_pattern_mibps']:.0f} MiB/s",
            f"{lo:.0f}-{hi:.0f} MiB/s")
        row("host setup (memfd + mmap), untimed", "host", f"{m['host_setup_ms']:.3f} ms")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[2:]))
    ap.add_argument("--s2vm", default=os.path.join(BUILD, "vmm", "s2vm"))
    ap.add_argument("--image", default=os.path.join(BUILD, "guestos", "hello.elf"),
                    help="boot image; hcbench.elf and memtouch.elf are taken from its directory")
    ap.add_argument("--bench-memset", default=os.path.join(BUILD, "tools", "bench", "bench-memset"))
    ap.add_argument("--accel", default="all",
                    help="comma list of kvm,proc, or all (default: every one present)")
    ap.add_argument("--mem", default="128M", help="boot guest RAM (default 128M)")
    ap.add_argument("--runs", type=int, help="boot repetitions per accelerator (default 30; quick 5)")
    ap.add_argument("--hc-runs", type=int, help="hcbench runs per accelerator (default 5; quick 3; 0 skips)")
    ap.add_argument("--hc-n", type=int, help="hypercalls per hcbench run (default 20000; quick 5000)")
    ap.add_argument("--memtouch-runs", type=int,
                    help="memtouch runs per accelerator (default 5; quick 2; 0 skips)")
    ap.add_argument("--memtouch-size", help="bytes memtouch writes per pass (default 256M; quick 64M)")
    ap.add_argument("--memtouch-passes", type=int, default=3, help="passes (default 3)")
    ap.add_argument("--memtouch-mem", help="memtouch guest RAM (default 512M; quick 128M)")
    ap.add_argument("--quick", action="store_true", help="fewer and smaller runs (smoke test)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args()
    q = a.quick
    defaults = {"runs": (30, 5), "hc_runs": (5, 3), "hc_n": (20000, 5000),
                "memtouch_runs": (5, 2), "memtouch_size": ("256M", "64M"),
                "memtouch_mem": ("512M", "128M")}
    for k, v in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, v[1] if q else v[0])
    if a.runs < 1 or a.hc_runs < 0 or a.hc_n < 1 or a.memtouch_runs < 0 or a.memtouch_passes < 1:
        raise SystemExit("--runs, --hc-n and --memtouch-passes must be >= 1, the other counts >= 0")
    if size_bytes(a.memtouch_size) + (16 << 20) > size_bytes(a.memtouch_mem):
        raise SystemExit(f"--memtouch-size {a.memtouch_size} does not fit a {a.memtouch_mem} guest")

    arms, absent = s2bench.pick_accels(a.accel)
    t0 = now_ns()
    boot, true_ms = bench_boot(a, arms)
    res = {"accels": arms, "accels_absent": absent, "runs": a.runs, "mem": a.mem,
           "baseline_true_wall_ms": true_ms, "arms": boot}
    if a.hc_runs:
        res["hc_runs"], res["hc_n"] = a.hc_runs, a.hc_n
        for x, r in bench_hypercall(a, arms).items():
            res["arms"][x].update(r)
    if a.memtouch_runs:
        res["memtouch"], per = bench_memtouch(a, arms)
        for x, r in per.items():
            res["arms"][x].update(r)
    res["bench_wall_s"] = (now_ns() - t0) / 1e9
    if a.json:
        print(json.dumps(res, indent=1))
        return
    print_table(a, res)
    print(f"(whole benchmark: {res['bench_wall_s']:.1f} s)")


if __name__ == "__main__":
    main()
