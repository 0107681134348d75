#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""tools/dev lab EXPERIMENT [--out DIR] [--quick] [--build DIR] [--repeats N] [--seconds N]

Run one declared migration-overhead experiment (tools/lab/experiments/EXPERIMENT.toml)
and write its run directory: raw.json (every run: the decoded guest blob and the VMM's
--stats=json with its migration timeline), runs.csv and arms.csv, PNG plots and
report.md. Arms run interleaved (baseline, arm 1, arm 2, ..., baseline, arm 1, ...) so
drift hits every arm alike; each ratio is an arm's run over the baseline run of the same
round. A run that fails is kept and reported, never dropped.

Experiment file (TOML):
  name, title, description      text for the report
  workload = "churnload"         guestos image (WORKLOAD.elf)
  args = ["seconds=2"]           guest arguments of every run
  metric = "churnload_ops_per_s" the guest scalar the ratios are taken of
  higher_is_better = true
  [vm]  mem = "256M", nodes = 2, vcpus = 1
  [run] repeats = 5, warmup = 1, timeline = 65536
        phases = "churn" | "lab", phase_ms = 500: phased runs (below)
  [fixed]    knob settings of every arm
  [baseline] label = "...", and knob settings of the baseline arm
  [sweep]    knob = [values...]: one arm per combination (cartesian product)
  [quick]    overrides with --quick (repeats, warmup, args, ...)
Knobs: churn_pct (percent of guest memory moved per second), churn_size (chunk per
period, default 2M), batch (--migrate-batch), writable (eager|lazy), defer (on|off),
keep_warm (true|false), lab (1|0: guest instruments), guest_args (list, appended).

Phased runs ([run] phases): the baseline is not a run of its own but the off phases of
every run. The guest alternates off and on phases of phase_ms (off first and last: an
odd count), telling the VMM at each switch; phases = "churn": the VMM's --churn moves
memory only in on phases (phase_ms is rounded to whole churn periods, so every on phase
holds the same number of rounds); phases = "lab": the off phases run the workload's
uninstrumented loop. Each on phase is compared with the mean of the off phases on either
side of it, on the same memory a few hundred ms apart, and a run's ratio is the median of
those comparisons: drift that a separate baseline run would see differently cancels.
The metric of a phased run is the rate of its phases (operations per second).
"""
import argparse
import csv
import datetime
import itertools
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
import tomllib

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import labblob  # noqa: E402

TOP = os.path.dirname(os.path.dirname(HERE))
NOISE = 0.05  # flag a ratio whose pairs stray more than this from its median
KNOBS = ("churn_pct", "churn_size", "batch", "writable", "defer", "keep_warm", "lab",
         "guest_args")


def size_bytes(s):
    s = str(s).strip().upper().removesuffix("IB").removesuffix("B")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if s and s[-1] in mult:
        return int(float(s[:-1]) * mult[s[-1]])
    return int(s)


def now_ns():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def churn_period_ms(k, mem_bytes):
    """The --churn period of knob settings @k, or None without churn."""
    if not k.get("churn_pct"):
        return None
    per_s = k["churn_pct"] / 100 * mem_bytes
    return max(1, round(size_bytes(k.get("churn_size", "2M")) / per_s * 1000))


def phase_args(ex, k, mem_bytes):
    """Guest arguments of a phased run of an arm with knobs @k ([] when not phased)."""
    mode = ex["run"].get("phases")
    if not mode:
        return []
    if mode not in ("churn", "lab"):
        raise SystemExit(f"[run] phases = {mode!r}: expected \"churn\" or \"lab\"")
    ms = int(ex["run"].get("phase_ms", 500))
    period = churn_period_ms(k, mem_bytes)
    if mode == "churn":
        if not period:
            raise SystemExit("[run] phases = \"churn\" needs churn_pct in every arm")
        ms = period * max(1, round(ms / period))  # whole rounds per on phase
    return [f"phases={mode}", f"phase_ms={ms}"]


def knob_opts(k, mem_bytes):
    """s2vm options and extra guest arguments for knob settings @k."""
    opts, gargs = [], []
    for name in k:
        if name not in KNOBS:
            raise SystemExit(f"unknown knob {name!r} (known: {', '.join(KNOBS)})")
    period_ms = churn_period_ms(k, mem_bytes)
    if period_ms:
        chunk = size_bytes(k.get("churn_size", "2M"))
        opts += ["--churn", f"{period_ms},{chunk >> 10}K"]
    if "batch" in k:
        opts += ["--migrate-batch", str(k["batch"])]
    if "writable" in k:
        opts += [f"--migrate-writable={k['writable']}"]
    if "defer" in k:
        opts += [f"--defer-invalidation={k['defer']}"]
    if k.get("keep_warm"):
        opts += ["--keep-warm"]
    if "lab" in k:
        gargs += [f"lab={int(k['lab'])}"]
    gargs += list(k.get("guest_args", []))
    return opts, gargs


def arm_label(k, sweep_keys):
    if not sweep_keys:
        return "arm"
    return ", ".join(f"{n}={k[n]}" for n in sweep_keys)


def load_experiment(name, quick):
    path = name if name.endswith(".toml") else os.path.join(HERE, "experiments", name + ".toml")
    if not os.path.exists(path):
        have = sorted(f[:-5] for f in os.listdir(os.path.join(HERE, "experiments"))
                      if f.endswith(".toml"))
        raise SystemExit(f"no experiment {name!r} (have: {', '.join(have)})")
    with open(path, "rb") as f:
        ex = tomllib.load(f)
    ex["path"] = os.path.relpath(path, TOP)
    if quick:
        q = ex.get("quick", {})
        for key in ("args", "metric"):
            if key in q:
                ex[key] = q[key]
        for sect in ("run", "vm", "fixed", "sweep"):
            if sect in q:
                ex.setdefault(sect, {}).update(q[sect])
    ex.setdefault("run", {})
    ex.setdefault("vm", {})
    return ex


def make_arms(ex):
    """[(label, knob settings, is_baseline)]: the baseline first, then the sweep."""
    fixed = dict(ex.get("fixed", {}))
    base = dict(ex.get("baseline", {}))
    base_label = base.pop("label", "baseline")
    base_k = {**fixed, **base}
    for key in list(base_k):
        if base_k[key] == "none":  # a fixed knob the baseline turns off
            del base_k[key]
    sweep = ex.get("sweep", {})
    keys = list(sweep)
    arms = [(base_label, base_k, True)]
    for combo in itertools.product(*(sweep[k] for k in keys)):
        k = {**fixed, **dict(zip(keys, combo))}
        arms.append((arm_label(k, keys), k, False))
    return arms, keys


def summarise(v):
    """median, min, max, q1, q3 and n of @v (empty: n = 0 only)."""
    if not v:
        return {"n": 0}
    s = sorted(v)
    if len(s) >= 2:
        q1, _, q3 = statistics.quantiles(s, n=4, method="inclusive")
    else:
        q1 = q3 = s[0]
    return {"n": len(s), "median": statistics.median(s), "min": s[0], "max": s[-1],
            "q1": q1, "q3": q3}


def vmm_metrics(st):
    """The VMM-side numbers of one run from its --stats=json object."""
    m = st.get("migration", {})
    ph = m.get("phases_ns", {})
    pages = m.get("pages", 0)
    tl = st.get("timeline", {})
    batches = [e for e in tl.get("events", []) if e.get("kind") == "batch"]
    return {
        "accel": st.get("guest", {}).get("accel"),
        "mig_pages": pages,
        "mig_batches": m.get("batches", 0),
        "mig_phase_ns": ph,
        "mig_ns_per_page": (sum(ph.values()) / pages) if pages else None,
        "mig_batch_ns_per_page": (sum(e["end_ns"] - e["start_ns"] for e in batches) /
                                  sum(e["pages"] for e in batches))
        if batches and sum(e["pages"] for e in batches) else None,
        "alias_calls": m.get("alias_mprotect_calls", 0) + m.get("alias_mmap_calls", 0),
        "write_fault_waits": m.get("write_fault_waits", 0),
        "write_fault_stall_ns": m.get("write_fault_stall_ns", 0),
        "timeline_events": len(tl.get("events", [])),
        "timeline_lost": tl.get("lost", 0),
    }


def one_run(ctx, idx, label, k, rep, warmup):
    """Run s2vm once; returns the run record (ok or not)."""
    ex = ctx["ex"]
    mem = size_bytes(ex["vm"].get("mem", "256M"))
    opts, gargs = knob_opts(k, mem)
    gargs += phase_args(ex, k, mem)
    nodes = int(ex["vm"].get("nodes", 1))
    vm_opts = ["--mem", f"{mem >> 20}M", "--vcpus", str(ex["vm"].get("vcpus", 1))]
    if nodes > 1:
        per = mem // nodes
        vm_opts += sum((["--numa", f"guest={i},size={per >> 20}M,host={i}"]
                        for i in range(nodes)), [])
    stem = f"{idx:03d}-{'w' if warmup else 'r'}{rep}-{slug(label)}"
    blob = os.path.join(ctx["out"], "runs", stem + ".blob")
    cmd = [ctx["s2vm"], "run", os.path.join(ctx["images"], ex["workload"] + ".elf"),
           "--accel", ctx["accel"], *vm_opts, "--stats=json",
           f"--timeline={ex['run'].get('timeline', 65536)}", "--lab-out", blob, *opts,
           "--", *ex.get("args", []), *gargs]
    rec = {"index": idx, "arm": label, "knobs": k, "rep": rep, "warmup": warmup,
           "cmd": shlex.join(os.path.relpath(c, ctx["out"]) if c.startswith(ctx["out"]) else c
                             for c in cmd), "ok": False}
    t0 = now_ns()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=ctx["timeout"])
        out, err, rc = p.stdout, p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:
        out, err, rc = (e.stdout or b"").decode(errors="replace"), "timeout", None
    rec["wall_s"] = (now_ns() - t0) / 1e9
    rec["exit"] = rc
    with open(os.path.join(ctx["out"], "runs", stem + ".out"), "w") as f:
        f.write(out + "\n--- stderr ---\n" + err)
    rec["stdout_file"] = f"runs/{stem}.out"
    try:
        if rc != 0:
            raise RuntimeError(f"exit {rc}: {err.strip().splitlines()[-1] if err.strip() else ''}")
        st = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])
        with open(blob, "rb") as f:
            rec["guest"] = labblob.decode(f.read())
        rec["blob_file"] = f"runs/{stem}.blob"
        rec["vmm_stats"] = st
        rec["vmm"] = vmm_metrics(st)
        if rec["vmm"]["accel"] != ctx["accel"]:
            raise RuntimeError(f"ran under {rec['vmm']['accel']}, not {ctx['accel']}")
        if ex["run"].get("phases"):
            rec["phased"] = phased_metrics(rec["guest"])
            rec["metric"] = rec["phased"]["on_rate"]
        else:
            rec["metric"] = metric_value(rec, ex.get("metric", "churnload_ops_per_s"))
        rec["ok"] = True
    except Exception as e:  # reported, not dropped
        rec["error"] = f"{type(e).__name__}: {e}"
    return rec


def phased_metrics(g):
    """Both arms of a phased run from its guest phases: rates (per second) of the off and
    on phases, and each on phase over the mean of the off phases beside it."""
    ph = g.get("phases") or []
    if len(ph) < 3 or not all(p["on"] == bool(i % 2) for i, p in enumerate(ph)) or \
            len(ph) % 2 == 0:
        raise RuntimeError(f"expected an odd number (>= 3) of alternating phases, off "
                           f"first; the guest sent {len(ph)}")

    def rate(sel):  # operations per second over phases @sel
        return sum(p["ops"] for p in sel) / (sum(p["end_ns"] - p["start_ns"] for p in sel) / 1e9)

    rates = [rate([p]) for p in ph]
    pairs = [rates[i] / ((rates[i - 1] + rates[i + 1]) / 2) for i in range(1, len(ph), 2)]
    return {"off_rate": rate(ph[0::2]), "on_rate": rate(ph[1::2]), "phase_rates": rates,
            "pair_ratios": pairs,
            "ratio": statistics.median(pairs), "phase_ms": (ph[0]["end_ns"] -
                                                           ph[0]["start_ns"]) / 1e6}


def metric_value(rec, name, off=False):
    """A metric of a run: a guest scalar, or vmm.<field>, or hist.<name>.<field> (@off:
    only a histogram's, of the off phases of a phased run)."""
    if off and not name.startswith("hist."):
        raise KeyError(name)
    if name.startswith("vmm."):
        v = rec["vmm"][name[4:]]
    elif name.startswith("hist."):
        _, h, f = name.split(".")
        v = rec["guest"]["hists"][h + ".off" if off else h][f]
    else:
        v = rec["guest"]["scalars"][name]
    if v is None:
        raise RuntimeError(f"metric {name} has no value in this run")
    return v


def slug(s):
    return "".join(c if c.isalnum() else "-" for c in s).strip("-")[:40] or "arm"


def analyse(ex, arms, runs):
    """Per-arm statistics and ratios against the baseline of the same round."""
    meas = [r for r in runs if not r["warmup"]]
    base_label = arms[0][0]
    higher = ex.get("higher_is_better", True)
    extra = ex.get("also", [])
    out = []
    phased = bool(ex["run"].get("phases"))
    for label, k, is_base in arms:
        off = phased and is_base  # the baseline is the off phases of every run
        mine = [r for r in meas if (r["arm"] != label if off else r["arm"] == label)]
        ok = [r for r in mine if r["ok"]]
        a = {"arm": label, "knobs": k, "baseline": is_base, "runs": len(mine),
             "failed": len(mine) - len(ok),
             "metric": summarise([r["phased"]["off_rate"] if off else r["metric"]
                                  for r in ok])}
        if off:
            a["phased"] = True
        for name in extra:  # off phases: the histograms' twins, NAME.off
            vals = []
            for r in ok:
                try:
                    vals.append(metric_value(r, name, off=off))
                except (KeyError, RuntimeError):
                    pass
            a[name] = summarise(vals)
        if off:
            out.append(a)
            continue
        if phased:
            pairs = [r["phased"]["ratio"] for r in ok]
            a["phase_pairs"] = summarise([x for r in ok for x in r["phased"]["pair_ratios"]])
        elif not is_base:
            pairs = []
            for r in ok:
                b = [x for x in meas if x["arm"] == base_label and x["rep"] == r["rep"] and x["ok"]]
                if b and b[0]["metric"]:
                    pairs.append(r["metric"] / b[0]["metric"])
        if not is_base:
            s = summarise(pairs)
            a["ratio"] = s
            a["ratio_pairs"] = pairs
            if s["n"] >= 2:
                dev = max(abs(p / s["median"] - 1) for p in pairs)
                a["ratio_spread"] = dev
                a["noisy"] = dev > NOISE
            else:
                a["ratio_spread"] = None
                a["noisy"] = None
        out.append(a)
    return {"metric": ex.get("metric", "churnload_ops_per_s"), "higher_is_better": higher,
            "noise_limit": NOISE, "phased": phased, "arms": out}


def write_csv(path, rows, fields):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)


RUN_FIELDS = ["index", "arm", "rep", "warmup", "ok", "metric", "off_metric", "phase_ratio",
              "ops_per_s", "p50_ns",
              "p99_ns", "chunk_p99_ns", "mig_pages", "mig_ns_per_page", "write_fault_waits",
              "write_fault_stall_ns", "wall_s", "error"]


def run_rows(runs):
    rows = []
    for r in runs:
        row = {k: r.get(k) for k in ("index", "arm", "rep", "warmup", "ok", "metric",
                                     "wall_s", "error")}
        if r["ok"] and r.get("phased"):
            row["off_metric"], row["phase_ratio"] = r["phased"]["off_rate"], r["phased"]["ratio"]
        if r["ok"]:
            g, v = r["guest"], r["vmm"]
            sc = g["scalars"]
            row["ops_per_s"] = next((x for n, x in sc.items() if n.endswith("_ops_per_s")), None)
            op = g["hists"].get("op", {})
            ch = next((h for n, h in g["hists"].items() if n.startswith("chunk")), {})
            row["p50_ns"], row["p99_ns"] = op.get("p50_ns"), op.get("p99_ns")
            row["chunk_p99_ns"] = ch.get("p99_ns")
            for f in ("mig_pages", "mig_ns_per_page", "write_fault_waits", "write_fault_stall_ns"):
                row[f] = v[f]
        rows.append(row)
    return rows


def python_with_matplotlib():
    """Debian's python3-matplotlib serves /usr/bin/python3: when this interpreter (say a
    pyenv one first in PATH) lacks matplotlib, run again under /usr/bin/python3."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        sysp = "/usr/bin/python3"
        if os.path.realpath(sys.executable) != os.path.realpath(sysp) and os.access(sysp, os.X_OK):
            os.execv(sysp, [sysp, *sys.argv])
        raise SystemExit("matplotlib is missing: apt-get install python3-matplotlib "
                         "(tools/dev deps), or pass --no-plots")


def main():
    if "--no-plots" not in sys.argv:
        python_with_matplotlib()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    ap.add_argument("experiment", help="name under tools/lab/experiments, or a .toml path")
    ap.add_argument("--out", help="run directory (default BUILD/lab/EXPERIMENT-TIME)")
    ap.add_argument("--quick", action="store_true", help="the experiment's [quick] settings")
    ap.add_argument("--build", default=os.environ.get("S2VM_BUILD", os.path.join(TOP, "build")),
                    help="meson build directory with vmm/s2vm and guestos/ (default "
                         "$S2VM_BUILD or build/)")
    ap.add_argument("--accel", default="proc", choices=("proc", "kvm"))
    ap.add_argument("--repeats", type=int, help="measured rounds (overrides the file)")
    ap.add_argument("--seconds", type=int, help="guest seconds= per run (overrides the file)")
    ap.add_argument("--no-plots", action="store_true", help="skip plots and report.md")
    a = ap.parse_args()

    ex = load_experiment(a.experiment, a.quick)
    if a.seconds:
        ex["args"] = [x for x in ex.get("args", []) if not x.startswith("seconds=")] + \
                     [f"seconds={a.seconds}"]
    if a.repeats:
        ex["run"]["repeats"] = a.repeats
    build = os.path.abspath(a.build)
    s2vm = os.path.join(build, "vmm", "s2vm")
    if not os.access(s2vm, os.X_OK):
        raise SystemExit(f"{s2vm}: not built (meson compile -C {a.build})")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = os.path.abspath(a.out or os.path.join(build, "lab", f"{ex['name']}-{stamp}"))
    os.makedirs(os.path.join(out, "runs"), exist_ok=True)
    arms, sweep_keys = make_arms(ex)
    repeats, warmup = int(ex["run"].get("repeats", 5)), int(ex["run"].get("warmup", 1))
    secs = next((int(x[8:]) for x in ex.get("args", []) if x.startswith("seconds=")), 3)
    ctx = {"ex": ex, "out": out, "s2vm": s2vm, "images": os.path.join(build, "guestos"),
           "accel": a.accel, "timeout": max(60, secs * 10 + 30)}
    print(f"lab: {ex['name']}: {len(arms)} arms x ({warmup} warm-up + {repeats} measured), "
          f"interleaved, --accel {a.accel}, into {out}", file=sys.stderr)
    runs, idx, t0 = [], 0, now_ns()
    rounds = [(w, True) for w in range(warmup)] + [(r, False) for r in range(repeats)]
    for rep, is_warm in rounds:
        for label, k, is_base in arms:
            if is_base and ex["run"].get("phases"):
                continue  # measured in the off phases of every run
            rec = one_run(ctx, idx, label, k, rep, is_warm)
            idx += 1
            runs.append(rec)
            state = (f"{rec['metric']:.4g}" if rec["ok"] else f"FAILED ({rec['error']})")
            print(f"  {'warm-up' if is_warm else 'round'} {rep} {label}: {state}",
                  file=sys.stderr)
    mem = size_bytes(ex["vm"].get("mem", "256M"))
    res = {
        "experiment": {k: v for k, v in ex.items() if k != "quick"},
        "quick": a.quick,
        "accel": a.accel,
        "kvm_present": os.access("/dev/kvm", os.R_OK | os.W_OK),
        "machine": {"host": platform.node(), "cpus": os.cpu_count(),
                    "loadavg_start": os.getloadavg(), "kernel": platform.release()},
        "started": stamp,
        "wall_s": (now_ns() - t0) / 1e9,
        "arms": [{"label": l, "knobs": k, "baseline": b,
                  "s2vm_opts": knob_opts(k, mem)[0],
                  "guest_args": knob_opts(k, mem)[1] + ([] if b else phase_args(ex, k, mem))}
                 for l, k, b in arms],
        "sweep_keys": sweep_keys,
        "runs": runs,
    }
    res["machine"]["loadavg_end"] = os.getloadavg()
    res["analysis"] = analyse(ex, arms, runs)
    with open(os.path.join(out, "raw.json"), "w") as f:
        json.dump(res, f, indent=1)
    write_csv(os.path.join(out, "runs.csv"), run_rows(runs), RUN_FIELDS)
    arm_rows = []
    for s in res["analysis"]["arms"]:
        m, r = s["metric"], s.get("ratio", {})
        arm_rows.append({"arm": s["arm"], "baseline": s["baseline"], "runs": s["runs"],
                         "failed": s["failed"], "n": m["n"], "median": m.get("median"),
                         "min": m.get("min"), "max": m.get("max"), "q1": m.get("q1"),
                         "q3": m.get("q3"), "ratio_median": r.get("median"),
                         "ratio_min": r.get("min"), "ratio_max": r.get("max"),
                         "ratio_q1": r.get("q1"), "ratio_q3": r.get("q3"),
                         "ratio_spread": s.get("ratio_spread"), "noisy": s.get("noisy")})
    write_csv(os.path.join(out, "arms.csv"), arm_rows, list(arm_rows[0]))
    if not a.no_plots:
        import report
        report.write(out, res)
    print_summary(res)
    print(f"lab: wrote {out}", file=sys.stderr)
    failed = sum(1 for r in runs if not r["ok"])
    return 1 if failed else 0


def print_summary(res):
    an = res["analysis"]
    print(f"{res['experiment']['name']} ({an['metric']}, --accel {res['accel']}):")
    for s in an["arms"]:
        m = s["metric"]
        line = f"  {s['arm']:32} n={m['n']}"
        if m["n"]:
            line += f" median {m['median']:.4g} [{m['min']:.4g}-{m['max']:.4g}]"
        if s.get("ratio", {}).get("n"):
            r = s["ratio"]
            line += f"  ratio {r['median']:.3f} [{r['min']:.3f}-{r['max']:.3f}]"
            if s["noisy"] is not None:
                line += f" +-{s['ratio_spread'] * 100:.1f}%{' NOISY' if s['noisy'] else ''}"
        if s["failed"]:
            line += f"  FAILED runs: {s['failed']}"
        print(line)


if __name__ == "__main__":
    sys.exit(main())
