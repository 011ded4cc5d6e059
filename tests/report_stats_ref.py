#!/usr/bin/env python3
"""tests/report_stats_ref.py — `lethe report`'s comparisons recomputed from a study tree.

Usage: report_stats_ref.py STUDY OUT
STUDY is a tree written by tests/report_study_fixture.py, OUT the report folder lethe
wrote for it. Everything is recomputed from the tree's files (summary.json, labels.json,
relearn.jsonl, selected.json, budget.json) with the standard library and
tests/stats_ref.py's bootstrap (splitmix64 written in Python), and compared:

  comparisons  every row of comparisons.csv: the reported setting of each method
               (selected.json), runs paired by seed, mean difference (1e-9), wins, ties,
               n, the interval (1e-9: the CSV's 10 digits) and "shown"; the set of pairs
               is every two methods per split;
  planted      crippled against each other method on each split: a difference in log10
               FQ shown, the other method ahead on every seed; and in relearn recovery;
  identical    npo vs twin on forget05: 0 [0, 0], not shown; npo vs simnpo (noise, mean
               0): not shown;
  fixed        npo vs twin on forget10 (twin = npo + a constant on every seed, in every
               quantity): −0.5 [−0.5, −0.5], npo ahead on 0/5 seeds, not shown, its
               verdict "the same difference on every seed ...", and results.md counts
               its 2 nonzero verdicts (log10 FQ and the gap);
  verdicts     results.md has one verdict line per pair, saying "shown" exactly where the
               CSV does, and names the threshold (MU ≥ 0.95 × origin);
  pareto       pareto.csv: each method's selection settings per split, their means and
               front membership against a brute force over all pairs;
  budget       budget.csv: tokens and CPU seconds per method and phase summed over the
               budget.json files;
  cpu          results.md's "CPU-seconds per job kind": per kind the jobs, the sums and
               means of cpu_seconds over the provenance.json files that record them, the
               share of the total, wall seconds and each phase's share of the kind's CPU
               seconds (to the printed digits); the job without a cost is counted and said;
  tables       results.csv holds the report-phase rows only (12); results.md has the
               sections, the bucket table, the ineligible-method and few-seeds sentences
               and no same-seeds sentence; fq_vs_mu.gp has a panel per split and both
               thresholds.
Prints one PASS/FAIL line per check; exits 1 on any FAIL.
"""
import csv
import itertools
import json
import math
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stats_ref import boot_interval  # noqa: E402

B, SEED = 10000, 0x1E7E5EED


def load_tree(root):
    runs, curves, sel, budgets = [], [], {}, {}
    for d, _, files in os.walk(root):
        if d.startswith(os.path.join(root, "report")):
            continue
        if "summary.json" in files:
            lab = json.load(open(os.path.join(d, "labels.json")))
            s = json.load(open(os.path.join(d, "summary.json")))
            runs.append((d, lab, s))
        if "relearn.jsonl" in files:
            lab = json.load(open(os.path.join(d, "labels.json")))
            pts = dict((o["step"], o["forget_prob"]) for o in
                       map(json.loads, open(os.path.join(d, "relearn.jsonl"))))
            curves.append((lab, pts))
        if "selected.json" in files:
            j = json.load(open(os.path.join(d, "selected.json")))
            sel[(j["method"], j["forget"])] = j
        if "budget.json" in files:
            budgets[d] = json.load(open(os.path.join(d, "budget.json")))
    return runs, curves, sel, budgets


def paired(a, b, higher):
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    d = [x - y for x, y in pairs]
    n = len(d)
    out = {"n": n, "wins": sum(1 for v in d if (v > 0 if higher else v < 0)),
           "ties": sum(1 for v in d if v == 0), "mean": sum(d) / n if n else None,
           "lo": None, "hi": None}
    if n >= 2:
        out["lo"], out["hi"] = boot_interval(d, B, SEED)
    # STATS_SAME_REL: the differences the same on every seed (shown is decided per pair)
    out["same"] = n >= 2 and max(d) - min(d) <= 1e-6 * max(max(abs(x), abs(y)) for x, y in pairs)
    return out


def decide_shown(ps):
    """STATS_MIN_SHOWN, and a pair whose every quantity (with 2 seeds or more) has the
    same difference on every seed: its runs did not vary with the seed, nothing shown."""
    fixed = any(p["n"] >= 2 for p in ps) and all(p["same"] for p in ps if p["n"] >= 2)
    for p in ps:
        p["shown"] = int(p["n"] >= 3 and not fixed and (p["lo"] > 0 or p["hi"] < 0))


SAME_VERDICT = ("the same difference on every seed (the seeds did not vary these runs): one "
                "observation, not shown")


def close(got, want, tol=1e-9):
    if want is None:
        return got == ""
    return got != "" and abs(float(got) - want) <= tol * max(1.0, abs(want))


def main():
    root, out = sys.argv[1], sys.argv[2]
    runs, curves, sel, budgets = load_tree(root)
    results = []

    def report(name, errs):
        results.append(not errs)
        print(("PASS %s" % name) if not errs else ("FAIL %s: %s" % (name, "; ".join(errs[:5]))))

    # ---- the reported runs per (method, split) and the expected pairs -------------------
    rep = {}
    for d, lab, s in runs:
        if lab.get("phase") == "report" and (lab["method"], lab["split"]) in sel:
            if lab["setting"] == sel[(lab["method"], lab["split"])]["setting"]:
                rep.setdefault((lab["method"], lab["split"]), {})[lab["seed"]] = (lab, s)

    def recovery(lab, k):
        vals = [p[k] - p[0] for cl, p in curves
                if all(cl.get(key) == v for key, v in lab.items()) and k in p and 0 in p]
        return sum(vals) / len(vals) if vals else None

    def values(m, split, seeds, k):
        v = {"fq": [], "gap": [], "rec": []}
        for seed in seeds:
            lab, s = rep[(m, split)][seed]
            v["fq"].append(s["log10_forget_quality"])
            v["gap"].append(abs(s["forget_prob_gap"]))
            v["rec"].append(recovery(lab, k))
        return v

    rows = list(csv.DictReader(open(os.path.join(out, "comparisons.csv"))))
    got = {(r["split"], r["a"], r["b"]): r for r in rows}
    methods = sorted({m for m, _ in rep})
    splits = sorted({s for _, s in rep})
    want_keys = {(s, a, b) for s in splits for a, b in itertools.combinations(methods, 2)}
    errs = []
    if set(got) != want_keys or len(rows) != len(want_keys):
        errs.append("pairs %s, expected %s" % (sorted(got), sorted(want_keys)))
    computed = {}
    for key in sorted(want_keys & set(got)):
        split, a, b = key
        r = got[key]
        seeds = sorted(set(rep[(a, split)]) & set(rep[(b, split)]))
        k = 10  # every curve of the fixture has steps 0, 5, 10
        va, vb = values(a, split, seeds, k), values(b, split, seeds, k)
        if int(r["seeds"]) != len(seeds):
            errs.append("%s: seeds %s, expected %d" % (key, r["seeds"], len(seeds)))
        qs = (("fq", "log10_fq", True), ("gap", "abs_gap", False), ("rec", "recovery", False))
        ps = [paired(va[q], vb[q], h) for q, _, h in qs]
        decide_shown(ps)
        for (q, col, higher), p in zip(qs, ps):
            computed[(key, q)] = p
            for f, w in (("diff", p["mean"]), ("lo", p["lo"]), ("hi", p["hi"])):
                if not close(r["%s_%s" % (col, f)], w):
                    errs.append("%s %s_%s = %s, expected %r" % (key, col, f, r["%s_%s" % (col, f)], w))
            for f in ("a_wins", "ties", "n", "shown"):
                w = p["wins" if f == "a_wins" else f]
                if int(r["%s_%s" % (col, f)]) != w:
                    errs.append("%s %s_%s = %s, expected %d" % (key, col, f, r["%s_%s" % (col, f)], w))
        if not close(r["recovery_k"], 10.0):
            errs.append("%s recovery_k %s, expected 10" % (key, r["recovery_k"]))
    report("comparisons.csv: %d pairs recomputed (means, intervals, wins, shown)" % len(want_keys), errs)

    # ---- the planted difference and the identical methods ---------------------------------
    errs = []
    for split in splits:
        for m in methods:
            if m == "crippled":
                continue
            r = got.get((split, "crippled", m))
            if not r or r["log10_fq_shown"] != "1" or float(r["log10_fq_hi"]) >= 0 or \
                    r["log10_fq_a_wins"] != "0" or r["recovery_shown"] != "1":
                errs.append("crippled vs %s on %s: %s" % (m, split, r and {k: r[k] for k in (
                    "log10_fq_diff", "log10_fq_lo", "log10_fq_hi", "log10_fq_shown", "recovery_shown")}))
    report("planted: crippled's lower FQ and larger recovery shown against every method", errs)
    errs = []
    for split in splits:
        r = got.get((split, "npo", "twin"))
        want = ["0", "0", "0", "0"] if split == "forget05" else [-0.5, -0.5, -0.5, "0"]
        have = r and [r["log10_fq_diff"], r["log10_fq_lo"], r["log10_fq_hi"], r["log10_fq_shown"]]
        if have and split != "forget05":
            have = [float(v) if i < 3 else v for i, v in enumerate(have)]
            have = [round(v, 9) if i < 3 else v for i, v in enumerate(have)]
        if not r or have != want:
            errs.append("npo vs twin on %s: %s" % (split, r))
        r = got.get((split, "npo", "simnpo"))
        if not r or r["log10_fq_shown"] != "0" or not float(r["log10_fq_lo"]) < 0 < float(r["log10_fq_hi"]):
            errs.append("npo vs simnpo on %s: %s" % (split, r))
    report("identical methods: 0 [0, 0] and no difference shown; seed noise: not shown", errs)

    md = open(os.path.join(out, "results.md"), encoding="utf-8").read()
    errs = []
    line = [l for l in md.splitlines() if l.startswith("- npo vs twin on forget10 ")]
    if len(line) != 1 or not line[0].endswith("0/5 seeds — " + SAME_VERDICT):
        errs.append("verdict line: %s" % line)
    # log10 FQ and the gap; the recovery difference is 0 on every seed (not counted)
    if "2 verdicts had the same nonzero difference on every seed" not in md:
        errs.append("results.md does not count the 2 nonzero verdicts of npo vs twin on forget10")
    report("fixed: runs that did not vary with the seed, the same difference on 5 seeds, not shown", errs)

    md = open(os.path.join(out, "results.md"), encoding="utf-8").read()
    errs = []
    for (split, a, b), r in got.items():
        pat = r"^- %s vs %s on %s at MU ≥ 0\.95 × origin.*: log10 FQ .*, %s/%s seeds — (.*)$" % (
            re.escape(a), re.escape(b), re.escape(split), r["log10_fq_a_wins"], r["log10_fq_n"])
        m = re.findall(pat, md, re.M)
        if len(m) != 1:
            errs.append("%d verdict lines for %s vs %s on %s" % (len(m), a, b, split))
        elif (m[0].endswith(": shown")) != (r["log10_fq_shown"] == "1") or \
                (r["log10_fq_shown"] == "0" and m[0] != "no difference shown" and
                 m[0] != SAME_VERDICT):
            errs.append("%s vs %s on %s: verdict '%s', CSV shown %s" % (a, b, split, m[0], r["log10_fq_shown"]))
    report("results.md: one verdict line per pair, agreeing with comparisons.csv", errs)

    # ---- Pareto fronts over the selection settings ---------------------------------------
    settings = {}
    for d, lab, s in runs:
        if lab.get("phase") == "selection":
            settings.setdefault((lab["method"], lab["split"], lab["setting"]), []).append(s)
    mean = {k: (sum(s["model_utility"] for s in v) / len(v),
                sum(s["log10_forget_quality"] for s in v) / len(v)) for k, v in settings.items()}
    prow = {(r["method"], r["split"], r["setting"]): r
            for r in csv.DictReader(open(os.path.join(out, "pareto.csv")))}
    errs = []
    if set(prow) != set(mean):
        errs.append("pareto.csv rows %d, expected %d" % (len(prow), len(mean)))
    nfront = 0
    for k, (x, y) in mean.items():
        others = [v for o, v in mean.items() if o != k and o[:2] == k[:2]]
        on = int(not any(ox >= x and oy >= y and (ox > x or oy > y) for ox, oy in others))
        nfront += on
        r = prow.get(k)
        if not r or int(r["on_front"]) != on or not close(r["mean_mu"], x) or not close(r["mean_log10_fq"], y):
            errs.append("%s: %s, expected on_front %d mu %r log10 %r" % (k, r, on, x, y))
    report("pareto.csv: %d selection settings, %d on fronts, against a brute force" % (len(mean), nfront), errs)

    # ---- budgets ----------------------------------------------------------------------------
    want = {}
    for d, lab, s in runs:
        if lab["method"] in ("origin", "retrain"):
            continue
        b = budgets[os.path.dirname(s["checkpoint"])]
        w = want.setdefault(lab["method"], [0, 0, 0.0, 0.0, 0.0, 0.0])
        ph = 0 if lab["phase"] == "selection" else 1
        w[ph] += 1
        w[2 + ph] += b["tokens"]
        w[4 + ph] += b["cpu_seconds"]
    errs = []
    brows = {r["method"]: r for r in csv.DictReader(open(os.path.join(out, "budget.csv")))}
    if set(brows) != set(want):
        errs.append("budget.csv methods %s, expected %s" % (sorted(brows), sorted(want)))
    for m, w in want.items():
        r = brows.get(m, {})
        cols = ["jobs_selection", "jobs_report", "tokens_selection", "tokens_report",
                "cpu_seconds_selection", "cpu_seconds_report"]
        for c, v in zip(cols, w):
            if not close(r.get(c, ""), float(v)):
                errs.append("%s %s = %s, expected %r" % (m, c, r.get(c), v))
    report("budget.csv: jobs, tokens and CPU seconds per method and phase", errs)

    report(*cpu_table(root, md))

    # ---- the tables and the plot script ---------------------------------------------------
    errs = []
    res = list(csv.DictReader(open(os.path.join(out, "results.csv"))))
    if len(res) != 12 or any(r["phase"] not in ("report", "") for r in res):
        errs.append("results.csv: %d rows, phases %s" % (len(res), sorted({r["phase"] for r in res})))
    for s in ("## Reported results (report seeds)", "## Comparisons between methods",
              "## Unlearning budget per method", "## What this shows / what it does not show",
              "## Forget split by answer length", "## Selection phase and Pareto fronts",
              "With only 5 report seeds the intervals are wide",
              "crippled on forget10: no setting reached τ · MU(origin)",
              "Unlearning compute was not equal: crippled used 3× the tokens"):
        if s not in md:
            errs.append("results.md lacks '%s'" % s)
    if "picked on the same seeds" in md or "## Best setting per method" in md:
        errs.append("results.md speaks of a same-seed pick in a study with a selection phase")
    gp = open(os.path.join(out, "fq_vs_mu.gp")).read()
    for s in ("set multiplot layout 1,2", "tau x MU(origin) = 0.57'", "tau x MU(origin) = 0.589'",
              "forget split forget05", "forget split forget10"):
        if s not in gp:
            errs.append("fq_vs_mu.gp lacks \"%s\"" % s)
    report("results.csv report rows only; results.md sections and sentences; fq_vs_mu.gp panels", errs)
    sys.exit(0 if all(results) else 1)


def cpu_table(root, md):
    """results.md's CPU-seconds table against the provenance.json files under root."""
    kinds = {}
    for d, _, files in os.walk(root):
        if d.startswith(os.path.join(root, "report")) or "provenance.json" not in files:
            continue
        p = json.load(open(os.path.join(d, "provenance.json")))
        k = kinds.setdefault(p["job"], {"jobs": 0, "rec": 0, "cpu": 0.0, "wall": 0.0, "ph": {}})
        k["jobs"] += 1
        if "cpu_seconds" in p:
            k["rec"] += 1
            k["cpu"] += p["cpu_seconds"]
            k["wall"] += p["wall_seconds"]
            for n, v in p["phases"].items():
                k["ph"][n] = k["ph"].get(n, 0.0) + v["cpu_seconds"]
    total = sum(k["cpu"] for k in kinds.values())
    errs = []
    sec = md.split("## CPU-seconds per job kind", 1)
    if len(sec) != 2:
        return "results.md: CPU-seconds per job kind", ["no such section"]
    rows = [ln for ln in sec[1].split("\n\n")[2].splitlines() if ln.startswith("|")]
    head = [h.strip() for h in rows[0].strip("|").split("|")]
    got = {}
    for ln in rows[2:]:
        cells = [x.strip() for x in ln.strip("|").split("|")]
        got[cells[0]] = dict(zip(head, cells))

    def num(cell):
        return float(cell.replace("%", "").strip())

    for name, k in kinds.items():
        g = got.get(name)
        if not g:
            errs.append("no row for %s" % name)
            continue
        want = [("jobs", k["jobs"], 0), ("CPU-s total", k["cpu"], 0.05),
                ("CPU-s mean", k["cpu"] / k["rec"], 0.005),
                ("share", 100 * k["cpu"] / total, 0.05), ("wall-s total", k["wall"], 0.05)]
        want += [(n, 100 * v / k["cpu"], 0.5) for n, v in k["ph"].items()]
        for col, v, tol in want:
            if col not in g or abs(num(g[col]) - v) > tol + 1e-9:
                errs.append("%s %s = %s, expected %.4f" % (name, col, g.get(col), v))
        for n in head[6:]:
            if n not in k["ph"] and g.get(n) != "–":
                errs.append("%s has no phase %s, the table says %s" % (name, n, g.get(n)))
    if set(got) != set(kinds) | {"all"}:
        errs.append("rows %s, expected %s and all" % (sorted(got), sorted(kinds)))
    a = got.get("all", {})
    jobs = sum(k["jobs"] for k in kinds.values())
    if a.get("jobs") != str(jobs) or abs(num(a.get("CPU-s total", "0")) - total) > 0.05:
        errs.append("all: %s, expected %d jobs, %.3f CPU-s" % (a, jobs, total))
    unrec = jobs - sum(k["rec"] for k in kinds.values())
    if unrec != 1 or ("%d of the %d jobs record no cost" % (unrec, jobs)) not in sec[1]:
        errs.append("%d jobs without a cost; results.md does not say so" % unrec)
    return ("results.md CPU-seconds per job kind: %d kinds, %d jobs, %.1f CPU-s from the "
            "provenance.json files" % (len(kinds), jobs, total)), errs


if __name__ == "__main__":
    main()
