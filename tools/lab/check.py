#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""check.py --build DIR [--experiment NAME]...: run short lab experiments (default smoke
and smoke-phased) into scratch directories and check what they wrote (the integration
test lab-smoke.proc):

- raw.json, runs.csv, arms.csv, report.md and the four plots exist; raw.json parses;
- every run succeeded, under the accelerator asked for, with a results blob that decodes;
- every number of runs.csv and arms.csv equals the one in raw.json (or is recomputed
  from it: ratios from the runs' metrics, per round);
- each blob file decodes to the guest object stored in raw.json;
- every plot is a PNG (signature, IHDR) of non-trivial size, linked from report.md;
- a phased run: odd, alternating phases, off first; its rates and ratio recomputed from
  the phases; no migration batch starts inside an off phase, every on phase has one.
Exit 0 when all hold, 1 with the reasons otherwise.
"""
import argparse
import csv
import json
import math
import os
import statistics
import struct
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import labblob  # noqa: E402

PLOTS = ("throughput.png", "latency_cdf.png", "phases.png", "ratio.png")
errors = []


def expect(cond, what):
    if not cond:
        errors.append(what)
    return cond


def close(a, b):
    if a in ("", None) or b is None:
        return a in ("", None) and b is None
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)


def phased_check(r):
    """Recompute a phased run's two rates and its ratio from the guest's phases."""
    ph = r["guest"]["phases"]
    expect(len(ph) >= 3 and len(ph) % 2 == 1, f"run {r['index']}: {len(ph)} phases")
    expect([p["on"] for p in ph] == [i % 2 == 1 for i in range(len(ph))],
           f"run {r['index']}: phases do not alternate off, on, ..., off")
    rates, tot = [], {True: [0, 0], False: [0, 0]}
    for p in ph:
        secs = (p["end_ns"] - p["start_ns"]) / 1e9
        rates.append(p["ops"] / secs)
        tot[p["on"]][0] += p["ops"]
        tot[p["on"]][1] += secs
    pairs = [rates[i] / ((rates[i - 1] + rates[i + 1]) / 2) for i in range(1, len(ph), 2)]
    win = r["guest"]["windows"]["throughput"]["counts"]
    expect(sum(win) == sum(p["ops"] for p in ph),
           f"run {r['index']}: the windows count {sum(win)} operations, the phases "
           f"{sum(p['ops'] for p in ph)}")
    ph_r = r["phased"]
    expect(close(ph_r["off_rate"], tot[False][0] / tot[False][1]), f"run {r['index']}: off rate")
    expect(close(ph_r["on_rate"], tot[True][0] / tot[True][1]), f"run {r['index']}: on rate")
    expect(close(r["metric"], ph_r["on_rate"]), f"run {r['index']}: metric is not the on rate")
    expect(close(ph_r["ratio"], statistics.median(pairs)), f"run {r['index']}: phase ratio")
    # the guest's own per-arm rates agree with its phases
    sc = r["guest"]["scalars"]
    expect(math.isclose(sc["churnload_off_ops_per_s"], tot[False][0] / tot[False][1],
                        rel_tol=1e-3), f"run {r['index']}: guest off rate")
    # churn only in on phases: no migration batch starts inside an off phase (but the
    # first, which precedes the first S2_HC_LAB_PHASE, and a batch running on across a
    # switch, which starts before it)
    if r["arm"] != "no churn" and r["knobs"].get("churn_pct"):
        ev = [e for e in r["vmm_stats"]["timeline"]["events"] if e["kind"] == "batch"]
        for p in ph:
            inside = [e for e in ev if p["start_ns"] + 1e6 < e["start_ns"] < p["end_ns"]]
            if p["on"]:
                expect(inside, f"run {r['index']}: an on phase without migration")
            else:
                expect(not inside, f"run {r['index']}: {len(inside)} batches in an off phase")
    return ph_r["ratio"]


def check_dir(out, accel):
    for f in ("raw.json", "runs.csv", "arms.csv", "report.md") + PLOTS:
        expect(os.path.isfile(os.path.join(out, f)), f"{f} is missing")
    if errors:
        return
    with open(os.path.join(out, "raw.json")) as f:
        res = json.load(f)
    runs = res["runs"]
    expect(runs, "raw.json has no runs")
    for r in runs:
        if not expect(r["ok"], f"run {r['index']} failed: {r.get('error')}"):
            continue
        expect(r["vmm"]["accel"] == accel == res["accel"],
               f"run {r['index']}: accel {r['vmm']['accel']}, asked {accel}")
        with open(os.path.join(out, r["blob_file"]), "rb") as f:
            g = labblob.decode(f.read())
        expect(json.loads(json.dumps(g)) == r["guest"],
               f"run {r['index']}: blob does not decode to raw.json's guest object")
        expect(r["guest"]["windows"]["throughput"]["counts"], f"run {r['index']}: no windows")
        if res["analysis"].get("phased"):
            phased_check(r)
    with open(os.path.join(out, "runs.csv")) as f:
        rows = list(csv.DictReader(f))
    expect(len(rows) == len(runs), f"runs.csv: {len(rows)} rows for {len(runs)} runs")
    for row, r in zip(rows, runs):
        expect(int(row["index"]) == r["index"] and row["arm"] == r["arm"],
               f"runs.csv row {row['index']}: wrong run")
        if not r["ok"]:
            continue
        sc = r["guest"]["scalars"]
        expect(close(row["metric"], r["metric"]), f"runs.csv {r['index']}: metric")
        expect(close(row["ops_per_s"], sc["churnload_ops_per_s"]), f"runs.csv {r['index']}: ops")
        expect(close(row["p99_ns"], r["guest"]["hists"]["op"]["p99_ns"]),
               f"runs.csv {r['index']}: p99")
        expect(close(row["mig_pages"], r["vmm_stats"]["migration"]["pages"]),
               f"runs.csv {r['index']}: migrated pages")
        if r.get("phased"):
            expect(close(row["off_metric"], r["phased"]["off_rate"]) and
                   close(row["phase_ratio"], r["phased"]["ratio"]),
                   f"runs.csv {r['index']}: phased columns")
    with open(os.path.join(out, "arms.csv")) as f:
        arows = {a["arm"]: a for a in csv.DictReader(f)}
    base = res["arms"][0]["label"]
    meas = [r for r in runs if not r["warmup"] and r["ok"]]
    for a in res["arms"]:
        row = arows.get(a["label"])
        if not expect(row, f"arms.csv: no row for {a['label']}"):
            continue
        phased = res["analysis"].get("phased")
        if phased and a["baseline"]:
            vals = [r["phased"]["off_rate"] for r in meas]
        else:
            vals = [r["metric"] for r in meas if r["arm"] == a["label"]]
        expect(int(row["n"]) == len(vals), f"arms.csv {a['label']}: n")
        expect(close(row["median"], statistics.median(vals)), f"arms.csv {a['label']}: median")
        expect(close(row["min"], min(vals)) and close(row["max"], max(vals)),
               f"arms.csv {a['label']}: min/max")
        if a["baseline"]:
            continue
        pairs = []
        for r in meas:
            if r["arm"] == a["label"] and phased:
                pairs.append(r["phased"]["ratio"])
            elif r["arm"] == a["label"]:
                b = [x for x in meas if x["arm"] == base and x["rep"] == r["rep"]]
                pairs.append(r["metric"] / b[0]["metric"])
        expect(close(row["ratio_median"], statistics.median(pairs)),
               f"arms.csv {a['label']}: ratio median {row['ratio_median']} vs {pairs}")
    with open(os.path.join(out, "report.md")) as f:
        md = f.read()
    for p in PLOTS:
        with open(os.path.join(out, p), "rb") as f:
            head = f.read(24)
        size = os.path.getsize(os.path.join(out, p))
        expect(head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{p}: not a PNG")
        if len(head) == 24:
            w, h = struct.unpack(">II", head[16:24])
            expect(w >= 300 and h >= 200, f"{p}: {w}x{h} pixels")
        expect(size > 10000, f"{p}: only {size} bytes")
        expect(f"]({p})" in md, f"report.md does not show {p}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--experiment", action="append",
                    help="experiment to run and check (repeatable; default smoke and "
                         "smoke-phased)")
    ap.add_argument("--accel", default="proc")
    ap.add_argument("--keep", help="keep the run directories under this one (default: "
                                   "scratch ones)")
    a = ap.parse_args()
    for ex in a.experiment or ["smoke", "smoke-phased"]:
        with tempfile.TemporaryDirectory(prefix="s2vm-lab-") as tmp:
            out = os.path.join(a.keep, ex) if a.keep else os.path.join(tmp, "run")
            p = subprocess.run([sys.executable, os.path.join(HERE, "lab.py"), ex,
                                "--build", a.build, "--out", out, "--accel", a.accel],
                               capture_output=True, text=True, timeout=300)
            sys.stdout.write(p.stdout)
            if p.returncode != 0:
                print(p.stderr[-4000:])
                errors.append(f"{ex}: lab.py exited {p.returncode}")
            n = len(errors)
            check_dir(out, a.accel)
            errors[n:] = [f"{ex}: {e}" for e in errors[n:]]
    for e in errors:
        print(f"FAIL: {e}")
    print("lab outputs: " + ("ok" if not errors else f"{len(errors)} problem(s)"))
    return 1 if errors else 0


if __name__ == "__main__":
    try:
        import matplotlib  # noqa: F401
    except ImportError:  # Debian's python3-matplotlib is /usr/bin/python3's
        if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3"):
            os.execv("/usr/bin/python3", ["/usr/bin/python3", *sys.argv])
        print("SKIP: matplotlib is missing (apt-get install python3-matplotlib)")
        sys.exit(77)
    sys.exit(main())
