#!/usr/bin/env python3
"""tests/study_expand.py DIR STUDY.json LOG — a protocol study's dry run (`lethe study
STUDY.json --dir DIR --dry-run`, its output in LOG) against the study file read here:

- job counts per kind, each forget split f and method m with G_m grid settings, S
  selection and R report seeds: unlearn and eval G_m*S + R, relearn R, select 1, plus the
  origin and retrain evals per split; the total in LOG's "N jobs" line adds synth,
  origin, one retrain per split and the report;
- every method has the same number of settings (the equal budget of the fair protocol);
- each selection-phase unlearn job (unlearn-<f>-<m>-p<k>-s<s>/job.json) carries its
  method's fixed values, the k-th point of its own grid, the seed s, and the method
  (the entry's unlearn.method, or its name); its eval's labels.json the phase, setting
  and values;
- each select job's spec: candidates and evals, tau, rule, the origin eval, and the
  report-phase jobs, which have no files before it runs;
- a study of more than four methods (tofu-methods, tofu-full-sweep) runs every method
  lethe has except dpo (on TOFU its preferred answer is the IdK one: that is idkdpo),
  and one WAGLE-masked entry.
Prints each discrepancy; exit 1 if any.
"""
import itertools
import json
import os
import re
import sys

METHODS = {"ga", "graddiff", "npo", "simnpo", "wga", "satimp", "ceu", "undial", "rmu",
           "idknll", "dpo", "idkdpo", "pdu"}


def main(d, sf, log):
    st = json.load(open(sf))
    P = st["protocol"]
    sel, rep = P["selection_seeds"], P["report_seeds"]
    splits = [re.sub(r"^forget", "", f) for f in st["forget"]]
    bad = []
    settings = {}
    for m, spec in st["methods"].items():
        g = spec.get("grid", {})
        settings[m] = [dict(zip(g, v)) for v in itertools.product(*g.values())]
    n_set = {m: len(v) for m, v in settings.items()}
    if len(set(n_set.values())) != 1:
        bad.append(f"unequal budget {n_set}")
    M, S, F = len(settings), sum(n_set.values()), len(splits)
    names = [n for n in os.listdir(d) if os.path.isdir(os.path.join(d, n))]
    kinds = {}
    for n in names:
        kinds.setdefault(n.split("-")[0], []).append(n)
    want = {"unlearn": F * (S * len(sel) + M * len(rep)),
            "eval": F * (2 + S * len(sel) + M * len(rep)),
            "relearn": F * M * len(rep), "select": F * M, "retrain": F}
    for k, v in want.items():
        if len(kinds.get(k, [])) != v:
            bad.append(f"{k}: {len(kinds.get(k, []))} jobs, expected {v}")
    total = sum(want.values()) + 3  # synth, origin, report
    said = re.search(r": (\d+) jobs", open(log).read())
    if not said or int(said.group(1)) != total:
        bad.append(f"the dry run's job count {said.group(1) if said else None}, expected {total}")
    run = set()
    for f in splits:
        for m, pts in settings.items():
            fixed = st["methods"][m].get("fixed", {})
            method = fixed.get("unlearn.method", m)
            run.add(method)
            for k, pt in enumerate(pts):
                for s in sel:
                    lab = json.load(open(os.path.join(d, f"eval-{f}-{m}-p{k}-s{s}", "labels.json")))
                    cfg = json.load(open(os.path.join(d, f"unlearn-{f}-{m}-p{k}-s{s}", "job.json")))
                    if (lab.get("phase") != "selection" or lab.get("setting") != f"{m}-p{k}"
                            or lab.get("seed") != s):
                        bad.append(f"{f} {m} p{k} s{s} labels {lab}")
                    for key, v in list(fixed.items()) + list(pt.items()):
                        node = cfg
                        for part in key.split("."):
                            node = node.get(part) if isinstance(node, dict) else None
                        if node != v:
                            bad.append(f"{f} {m} p{k} s{s}: {key} {node}, expected {v}")
                    for key, v in pt.items():
                        got = lab.get(key.split(".")[-1])
                        if got != v:
                            bad.append(f"{f} {m} p{k} s{s}: label {key} {got}, expected {v}")
                    if cfg["unlearn"].get("method") != method:
                        bad.append(f"{f} {m} p{k}: method {cfg['unlearn'].get('method')}")
                    if cfg["train"]["seed"] != s:
                        bad.append(f"{f} {m} p{k} s{s}: train.seed {cfg['train']['seed']}")
                    if cfg["data"]["forget_split"] != f"forget{f}":
                        bad.append(f"{f} {m} p{k}: forget_split {cfg['data']['forget_split']}")
            spec = json.load(open(os.path.join(d, f"select-{f}-{m}", "job.json")))["select"]
            if (len(spec["candidates"]) != len(pts)
                    or any(len(c["evals"]) != len(sel) for c in spec["candidates"])):
                bad.append(f"select-{f}-{m}: candidates/evals")
            if (spec["tau"] != P["tau"] or spec["rule"] != P["rule"]
                    or not spec["origin_eval"].endswith(f"/eval-origin-{f}")):
                bad.append(f"select-{f}-{m}: tau/rule/origin {spec['tau']} {spec['rule']} "
                           f"{spec['origin_eval']}")
            jobs = sorted(os.path.basename(j["dir"]) for j in spec["jobs"])
            if jobs != sorted(f"{k}-{f}-{m}-report-s{s}" for k in ("unlearn", "eval", "relearn")
                              for s in rep):
                bad.append(f"select-{f}-{m}: report-phase jobs {jobs}")
            for s in rep:  # not materialised before the select job runs
                for k in ("unlearn", "eval", "relearn"):
                    if os.listdir(os.path.join(d, f"{k}-{f}-{m}-report-s{s}")):
                        bad.append(f"{k}-{f}-{m}-report-s{s} has files before its select job ran")
        for r in ("origin", "retrain"):
            lab = json.load(open(os.path.join(d, f"eval-{r}-{f}", "labels.json")))
            if lab.get("phase") != "report" or lab.get("setting") != f"{r}-p0":
                bad.append(f"eval-{r}-{f} labels {lab}")
    if M > 4:
        if run != METHODS - {"dpo"}:
            bad.append(f"methods run {sorted(run)}, expected every method but dpo")
        if not any("unlearn.wagle.p" in s.get("fixed", {}) for s in st["methods"].values()):
            bad.append("no WAGLE-masked entry")
    print(f"study_expand: {os.path.basename(sf)}: {total} jobs, {M} entries x {S // M} settings, "
          f"{len(splits)} split(s), methods {sorted(run)}: {len(bad)} discrepancies")
    for b in bad[:20]:
        print("  ", b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
