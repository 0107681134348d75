# SPDX-License-Identifier: MIT
"""Plots and report.md of a lab run directory, made only from its raw.json.

    python3 tools/lab/report.py DIR      (re)write DIR's plots and report.md

Plots (matplotlib, Agg): throughput.png (guest operations per 10 ms window over time, one
panel per arm, migration batches shaded and write-fault stalls marked, from the VMM
timeline in the same clock), latency_cdf.png (per-access and per-chunk latency CDFs and
their tails, every arm merged over its runs), phases.png (migration time per page by
phase), ratio.png (each arm's ratio to the baseline: median, IQR and min-max).
"""
import json
import os
import sys

sys.dont_write_bytecode = True
try:
    import matplotlib  # noqa: E402

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: E402
except ImportError:  # Debian's python3-matplotlib is /usr/bin/python3's
    if __name__ == "__main__" and os.access("/usr/bin/python3", os.X_OK) and \
            os.path.realpath(sys.executable) != "/usr/bin/python3.11":
        os.execv("/usr/bin/python3", ["/usr/bin/python3", *sys.argv])
    raise

PHASES = ("protect", "copy", "remap", "wait", "free")
COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _measured(res, arm, ok=True):
    return [r for r in res["runs"] if r["arm"] == arm and not r["warmup"] and (r["ok"] or not ok)]


def _representative(res, arm):
    """The measured run of @arm whose metric is closest to the arm's median."""
    runs = _measured(res, arm)
    if not runs:
        return None
    vals = sorted(r["metric"] for r in runs)
    med = vals[len(vals) // 2]
    return min(runs, key=lambda r: abs(r["metric"] - med))


def _phased(res):
    return bool(res["analysis"].get("phased"))


def plot_throughput(res, path):
    arms = [a["label"] for a in res["arms"] if not (_phased(res) and a["baseline"])]
    fig, axes = plt.subplots(len(arms), 1, figsize=(11, 2.2 * len(arms) + 0.8), sharex=True,
                             squeeze=False)
    drew = False
    for ax, arm, col in zip(axes[:, 0], arms, COLORS * 4):
        r = _representative(res, arm)
        w = (r or {}).get("guest", {}).get("windows", {}).get("throughput")
        if not w or not w["counts"]:
            ax.text(0.5, 0.5, f"{arm}: no windows (instruments off or run failed)",
                    ha="center", va="center", transform=ax.transAxes)
            ax.set_yticks([])
            continue
        t0, wn = w["start_ns"], w["window_ns"]
        scale = 1e6 if w["unit"] == "ops" else 2**20
        xs = [(i * wn) / 1e9 for i in range(len(w["counts"]))]
        ys = [c / (wn / 1e9) / scale for c in w["counts"]]
        # the last window is partial: leave it out
        ax.step(xs[:-1], ys[:-1], where="post", color=col, lw=0.9,
                label=f"guest, 10 ms windows (run {r['index']})")
        for j, p in enumerate(q for q in r["guest"].get("phases", []) if not q["on"]):
            ax.axvspan((p["start_ns"] - t0) / 1e9, (p["end_ns"] - t0) / 1e9, color="grey",
                       alpha=0.15, lw=0, label="off phase (baseline)" if j == 0 else None)
        ev = r["vmm_stats"].get("timeline", {}).get("events", [])
        nb = 0
        for e in ev:
            s, f = (e["start_ns"] - t0) / 1e9, (e["end_ns"] - t0) / 1e9
            if f < 0 or s > xs[-1] + wn / 1e9:
                continue
            if e.get("kind") == "batch":
                ax.axvspan(s, max(f, s + 1e-4), color="tab:red", alpha=0.25, lw=0,
                           label="migration batch" if nb == 0 else None)
                nb += 1
        faults = [(e["start_ns"] - t0) / 1e9 for e in ev if e.get("kind") != "batch"
                  and 0 <= e["start_ns"] - t0 <= xs[-1] * 1e9 + wn]
        if faults:
            ax.plot(faults, [0] * len(faults), "|", color="black", ms=8,
                    label=f"write-fault stall ({len(faults)})")
        ax.set_ylim(bottom=0)
        ax.set_ylabel("Mop/s" if w["unit"] == "ops" else "MiB/s")
        ax.set_title(f"{arm}: {r['metric']:.4g} {res['analysis']['metric']} "
                     f"({nb} batches)", fontsize=9, loc="left")
        ax.legend(fontsize=7, loc="lower right")
        drew = True
    axes[-1, 0].set_xlabel("seconds since the measured loop started "
                           "(guest TSC mapped to the VMM's CLOCK_MONOTONIC)")
    fig.suptitle(f"{res['experiment']['name']}: guest throughput over time, "
                 f"migration batches shaded (--accel {res['accel']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return drew


def _merged_cdf(res, arm, hist):
    """[(value ns, cumulative fraction)] of histogram @hist merged over @arm's runs (a
    phased run's baseline: HIST.off of every run)."""
    acc, total = {}, 0
    base = _phased(res) and arm == res["arms"][0]["label"]
    runs = [r for r in res["runs"] if r["ok"] and not r["warmup"]] if base else \
        _measured(res, arm)
    for r in runs:
        h = r["guest"]["hists"].get(hist + ".off" if base else hist)
        if not h:
            continue
        npc = r["guest"]["calibration"]["ns_per_cycle"]
        for b, lo, hi, c in h["buckets"]:
            key = (hi + 1) * npc  # upper edge of the bucket, ns
            acc[key] = acc.get(key, 0) + c
            total += c
    pts, seen = [], 0
    for v in sorted(acc):
        seen += acc[v]
        pts.append((v, seen / total))
    return pts


def plot_latency(res, path):
    hists = []
    for r in res["runs"]:
        if r["ok"]:
            hists += [h for h in r["guest"]["hists"]
                      if h not in hists and not h.endswith(".off")]
    if not hists:
        return False
    fig, axes = plt.subplots(2, len(hists), figsize=(5.5 * len(hists), 7), squeeze=False)
    for j, h in enumerate(hists):
        for arm, col in zip([a["label"] for a in res["arms"]], COLORS * 4):
            pts = _merged_cdf(res, arm, h)
            if not pts:
                continue
            xs = [p[0] for p in pts]
            axes[0, j].step(xs, [p[1] for p in pts], where="post", color=col, label=arm)
            tail = [(x, 1 - f) for x, f in pts if 1 - f > 0]
            if tail:
                axes[1, j].step([t[0] for t in tail], [t[1] for t in tail], where="post",
                                color=col, label=arm)
        what = ("one access, every N-th timed" if h == "op" else
                "every one timed: no stall escapes")
        axes[0, j].set_title(f"'{h}' ({what})", fontsize=9)
        axes[0, j].set_xscale("log")
        axes[0, j].set_ylabel("fraction <= x (CDF)")
        axes[1, j].set_xscale("log")
        axes[1, j].set_yscale("log")
        axes[1, j].set_ylabel("fraction > x (tail)")
        axes[1, j].set_xlabel("latency, ns (bucket upper edges)")
        for y in (1e-2, 1e-3):
            axes[1, j].axhline(y, color="grey", lw=0.5, ls=":")
        axes[0, j].legend(fontsize=7)
        axes[0, j].grid(alpha=0.3)
        axes[1, j].grid(alpha=0.3)
    fig.suptitle(f"{res['experiment']['name']}: guest latency, every measured run of each arm "
                 f"merged (p99 at 1e-2, p99.9 at 1e-3 in the tail)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def plot_phases(res, path):
    labels, per = [], {p: [] for p in PHASES}
    for a in res["arms"]:
        runs = [r for r in _measured(res, a["label"]) if r["vmm"]["mig_pages"]]
        if not runs:
            continue
        labels.append(a["label"])
        for p in PHASES:
            v = sorted(r["vmm"]["mig_phase_ns"].get(p, 0) / r["vmm"]["mig_pages"] for r in runs)
            per[p].append(v[len(v) // 2])
    if not labels:
        return False
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(labels) + 3), 4.5))
    bottom = [0.0] * len(labels)
    for p, col in zip(PHASES, COLORS):
        ax.bar(labels, per[p], bottom=bottom, color=col, label=p)
        bottom = [b + v for b, v in zip(bottom, per[p])]
    for i, b in enumerate(bottom):
        ax.text(i, b, f"{b:.0f} ns", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("ns per migrated 4 KiB page (median run)")
    if max(bottom) / max(min(bottom), 1e-9) > 30:
        ax.set_yscale("log")
        ax.set_ylabel("ns per migrated 4 KiB page (median run, log)")
    ax.set_title(f"{res['experiment']['name']}: migration time per page by phase "
                 f"(VMM, --accel {res['accel']})", fontsize=10)
    ax.legend(fontsize=8)
    plt.setp(ax.get_xticklabels(), rotation=15, ha="right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def plot_ratio(res, path):
    an = res["analysis"]
    arms = [a for a in an["arms"] if not a["baseline"] and a.get("ratio", {}).get("n")]
    if not arms:
        return False
    keys = res.get("sweep_keys", [])
    numeric = len(keys) == 1 and all(isinstance(a["knobs"].get(keys[0]), (int, float))
                                     for a in arms)
    xs = [a["knobs"][keys[0]] for a in arms] if numeric else list(range(len(arms)))
    med = [a["ratio"]["median"] for a in arms]
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(arms) + 3), 4.5))
    ax.errorbar(xs, med, yerr=[[m - a["ratio"]["min"] for m, a in zip(med, arms)],
                               [a["ratio"]["max"] - m for m, a in zip(med, arms)]],
                fmt="o-", capsize=4, color="tab:blue", label="median, whiskers min-max")
    ax.errorbar(xs, med, yerr=[[m - a["ratio"]["q1"] for m, a in zip(med, arms)],
                               [a["ratio"]["q3"] - m for m, a in zip(med, arms)]],
                fmt="none", elinewidth=6, alpha=0.35, color="tab:blue", label="IQR")
    for x, m, a in zip(xs, med, arms):
        flag = " NOISY" if a.get("noisy") else ""
        ax.annotate(f"{m:.3f} (n={a['ratio']['n']}){flag}", (x, m), textcoords="offset points",
                    xytext=(6, 6), fontsize=8, color="tab:red" if flag else "black")
    ax.axhline(1.0, color="grey", lw=0.8, ls="--", label="baseline")
    tgt = res["experiment"].get("target")
    if tgt is not None:
        ax.axhline(tgt, color="tab:green", lw=0.8, ls=":", label=f"target {tgt}")
    if numeric:
        ax.set_xlabel(keys[0])
    else:
        ax.set_xticks(xs, [a["arm"] for a in arms], rotation=15, ha="right", fontsize=8)
    if _phased(res):
        ax.set_ylabel(f"{an['metric']}: on phases / off phases (per run)")
        ax.set_title(f"{res['experiment']['name']}: ratio to '{res['arms'][0]['label']}' per "
                     f"phased run (median of its on/off phase pairs, --accel "
                     f"{res['accel']})", fontsize=10)
    else:
        ax.set_ylabel(f"{an['metric']}: arm / baseline (same round)")
        ax.set_title(f"{res['experiment']['name']}: ratio to '{res['arms'][0]['label']}' "
                     f"per interleaved pair (--accel {res['accel']})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def _fmt(v, digits=4):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def _stat(s, digits=4):
    if not s or not s.get("n"):
        return "-", "-", "-"
    return (_fmt(s["median"], digits), f"{_fmt(s['min'], digits)}-{_fmt(s['max'], digits)}",
            f"{_fmt(s['q1'], digits)}-{_fmt(s['q3'], digits)}")


def write_md(out, res, plots):
    ex, an = res["experiment"], res["analysis"]
    m = res["machine"]
    L = [f"# {ex.get('title', ex['name'])}", ""]
    L += [ex.get("description", "").strip(), ""]
    kvm = ("/dev/kvm is usable on this machine" if res["kvm_present"] else
           "**there is no usable /dev/kvm on this machine**: every run here is `--accel proc` "
           "(guest ring 3 on s2vm's threads, no KVM VM behind the alias, so no MMU-notifier "
           "work on remaps)")
    L += ["## Setup", "",
          f"- experiment `{ex['name']}` ({ex['path']}){' with --quick' if res['quick'] else ''}; "
          f"accelerator of every run: `{res['accel']}` ({kvm}).",
          f"- guest `{ex['workload']}.elf {' '.join(ex.get('args', []))}`, "
          f"{ex['vm'].get('mem', '256M')} RAM, {ex['vm'].get('nodes', 1)} guest node(s) on "
          f"as many host nodes (emulated where the host lacks them), "
          f"{ex['vm'].get('vcpus', 1)} vCPU.",
          f"- {len(res['arms'])} arms run interleaved (round-robin: baseline, arm 1, ...); "
          f"{ex['run'].get('warmup', 1)} warm-up round(s) not counted, "
          f"{ex['run'].get('repeats', 5)} measured rounds. Each ratio is an arm's run over "
          f"the baseline run of the same round.",
          f"- machine: {m['host']}, {m['cpus']} CPUs, Linux {m['kernel']}; load average "
          f"{m['loadavg_start'][0]:.2f} at start, {m['loadavg_end'][0]:.2f} at end "
          f"(other builds may share the machine: absolute numbers are indicative, ratios "
          f"are what the interleaving protects). Whole run: {res['wall_s']:.0f} s.",
          f"- metric: `{an['metric']}` ({'higher' if an['higher_is_better'] else 'lower'} "
          f"is better); a ratio whose pairs stray more than ±{an['noise_limit'] * 100:.0f}% "
          f"from its median is flagged **NOISY**.", ""]
    L += ["| arm | s2vm options | guest args |", "|---|---|---|"]
    for a in res["arms"]:
        L.append(f"| {a['label']} | `{' '.join(a['s2vm_opts']) or '-'}` | "
                 f"`{' '.join(a['guest_args']) or '-'}` |")
    L += ["", "## Results", ""]
    L += [f"| arm | n | failed | {an['metric']} median | min-max | IQR | ratio median | "
          f"ratio min-max | ratio IQR | spread | |", "|---|" + "---|" * 10]
    for a in an["arms"]:
        med, rng, iqr = _stat(a["metric"])
        if a["baseline"]:
            r = ("1 (baseline: off phases)" if a.get("phased") else "1 (baseline)", "-", "-")
            sp, flag = "-", ""
        else:
            r = _stat(a.get("ratio"), 3)
            sp = "-" if a.get("ratio_spread") is None else f"±{a['ratio_spread'] * 100:.1f}%"
            flag = ("**NOISY**" if a.get("noisy") else
                    "n/a (< 2 pairs)" if a.get("noisy") is None else "ok")
        L.append(f"| {a['arm']} | {a['metric']['n']} | {a['failed']} | {med} | {rng} | {iqr} | "
                 f"{r[0]} | {r[1]} | {r[2]} | {sp} | {flag} |")
    tgt = ex.get("target")
    if tgt is not None:
        L += ["", f"Target (declared in the experiment): ratio >= {tgt}, with pairs within "
              f"±{an['noise_limit'] * 100:.0f}% of the median.", ""]
        for a in an["arms"]:
            r = a.get("ratio", {})
            if a["baseline"] or not r.get("n"):
                continue
            lvl = "met" if r["median"] >= tgt else "**missed**"
            spr = ("spread n/a" if a.get("noisy") is None else
                   "spread **NOISY**" if a["noisy"] else "spread ok")
            L.append(f"- {a['arm']}: median ratio {r['median']:.3f} -> level {lvl}, {spr} "
                     f"(±{(a.get('ratio_spread') or 0) * 100:.1f}%, n={r['n']})")
    if _phased(res):
        L += ["", "Every on/off phase comparison of every measured run (on phase over the "
              "mean of the off phases beside it), pooled per arm:", ""]
        for a in an["arms"]:
            pp = a.get("phase_pairs")
            if pp and pp.get("n"):
                L.append(f"- {a['arm']}: {pp['n']} comparisons, median {pp['median']:.3f}, "
                         f"IQR {pp['q1']:.3f}-{pp['q3']:.3f}, min-max {pp['min']:.3f}-"
                         f"{pp['max']:.3f}")
    extra = ex.get("also", [])
    if extra:
        L += ["", "Other metrics (median, min-max over the arm's measured runs):", "",
              "| arm | " + " | ".join(extra) + " |", "|---|" + "---|" * len(extra)]
        for a in an["arms"]:
            cells = []
            for e in extra:
                med, rng, _ = _stat(a.get(e))
                cells.append(f"{med} ({rng})" if med != "-" else "-")
            L.append(f"| {a['arm']} | " + " | ".join(cells) + " |")
    bad = [r for r in res["runs"] if not r["ok"]]
    L += ["", "## Failed runs", ""]
    if bad:
        L += [f"- run {r['index']} ({r['arm']}, {'warm-up' if r['warmup'] else 'round'} "
              f"{r['rep']}): {r['error']} — output in `{r['stdout_file']}`" for r in bad]
    else:
        L += ["None: every run exited 0 with a valid results blob and stats."]
    L += ["", "## Plots", ""]
    notes = {
        "throughput.png": "Guest throughput per 10 ms window of one representative run per "
                          "arm (the run closest to the arm's median); red spans are "
                          "migration batches from the VMM timeline, black ticks write-fault "
                          "stalls, grey spans the off phases of a phased run (its "
                          "baseline). Both clocks are the host's CLOCK_MONOTONIC.",
        "latency_cdf.png": "Latency CDFs (top) and tails (bottom, log-log), each arm merged "
                           "over its measured runs. 'op': single accesses, every N-th timed; "
                           "'chunk' (churnload, its chunk= accesses, default 1024) or "
                           "'chunk256' (chaseload): every chunk of operations timed, so a "
                           "stall always shows there.",
        "phases.png": "Migration time per migrated page by engine phase (median run per "
                      "arm; arms without migration are left out).",
        "ratio.png": "Ratio to the baseline per interleaved pair (phased: per run, each "
                     "the median of its on/off phase comparisons): median (dot), IQR "
                     "(thick bar), min-max (whiskers).",
    }
    for p, ok in plots.items():
        if ok:
            L += [f"### {p}", "", notes[p], "", f"![{p}]({p})", ""]
    L += ["## Files", "",
          "- `raw.json`: the experiment, every run (command, exit, decoded guest blob, the "
          "VMM's --stats=json with its timeline) and the analysis; every number and plot "
          "here is computed from it (`python3 tools/lab/report.py DIR` redraws them).",
          "- `runs.csv`: one row per run; `arms.csv`: one row per arm.",
          "- `runs/`: each run's results blob (`--lab-out`) and its stdout/stderr.", ""]
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(L))


def write(out, res):
    plots = {}
    plots["throughput.png"] = plot_throughput(res, os.path.join(out, "throughput.png"))
    plots["latency_cdf.png"] = plot_latency(res, os.path.join(out, "latency_cdf.png"))
    plots["phases.png"] = plot_phases(res, os.path.join(out, "phases.png"))
    plots["ratio.png"] = plot_ratio(res, os.path.join(out, "ratio.png"))
    for p, ok in plots.items():
        if not ok and os.path.exists(os.path.join(out, p)):
            os.unlink(os.path.join(out, p))
    write_md(out, res, plots)
    return plots


if __name__ == "__main__":
    d = sys.argv[1]
    with open(os.path.join(d, "raw.json")) as f:
        write(d, json.load(f))
    print(f"wrote {d}/report.md")
