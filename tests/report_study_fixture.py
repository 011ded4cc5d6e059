#!/usr/bin/env python3
"""tests/report_study_fixture.py — writes a hand-made study tree with selection and report
phases for `lethe report` (standard library only, deterministic).

Usage: report_study_fixture.py DIR

Two forget splits (forget05, forget10), each with eval-origin-<lv> and eval-retrain-<lv>,
and four methods:
  npo       the reference;
  twin      on forget05 every number identical to npo's (the same method twice: no
            difference); on forget10 npo's + 0.5 in log10 FQ and + 0.05 in forget prob
            on every seed (runs that did not vary with the seed: one observation);
  simnpo    log10 FQ = npo's + d with d = +0.3, −0.2, +0.1, −0.25, +0.05 over the report
            seeds (a mean difference of 0 with seed noise: no difference);
  crippled  log10 FQ = npo's − 3 − u (u in [0, 0.2)) on every seed, a larger gap to the
            retrained model and a larger relearn recovery: the planted difference.
Each method: three settings (p0, p1, p2) on selection seeds 1 and 2, then the setting
named in select-<lv>-<method>/selected.json (p1) on report seeds 11..15; on forget10,
crippled's selected.json says eligible = false. Every eval names its checkpoint in an
unlearn-* folder holding budget.json; every report run has a relearn curve (steps 0, 5,
10) in relearn-*/attack/; npo's report runs carry forget-split buckets (short, long).
Every job folder (origin and retrain as train jobs, the reference evals, every unlearn,
eval and relearn) holds a provenance.json with its cost (cpu_seconds, wall_seconds,
phases), except the first crippled relearn on forget05, a "running" record without one.
"""
import json
import os
import random
import sys

SPLITS = {"forget05": 0.60, "forget10": 0.62}  # MU of the origin
METHODS = ["npo", "twin", "simnpo", "crippled"]
REPORT_SEEDS = [11, 12, 13, 14, 15]
SIM_D = [0.3, -0.2, 0.1, -0.25, 0.05]


def write(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)


PHASES = {"train": ("start-up", "run"), "unlearn": ("start-up", "load", "run"),
          "eval": ("start-up", "load", "run"), "relearn": ("start-up", "run", "load", "eval")}


COST_RNG = random.Random(11)  # its own stream: the metrics above stay as they were


def provenance(d, job, cost=True):
    rng = COST_RNG
    p = {"job": job, "ranks": 2, "status": "completed" if cost else "running"}
    if cost:
        ph = {k: {"cpu_seconds": round(rng.uniform(0.2, 9), 3), "wall_seconds": 1.0}
              for k in PHASES[job]}
        p["cpu_seconds"] = round(sum(v["cpu_seconds"] for v in ph.values()), 3)
        p["wall_seconds"] = round(rng.uniform(1, 5), 3)
        p["phases"] = ph
    write(os.path.join(d, "provenance.json"), p)


def summary(split, mu, log10_fq, fprob, ckpt, buckets=None):
    fs = {"n": 40, "prob": fprob, "rouge_recall": 0.3, "truth_ratio": 0.6}
    if buckets:
        fs["buckets"] = buckets
    return {
        "splits": {split: fs, "retain": {"n": 80, "prob": 0.5, "rouge_recall": 0.5, "truth_ratio": 0.4}},
        "roles": {"forget": split, "retain": "retain"},
        "checkpoint": ckpt,
        "model_utility": mu,
        "forget_quality": 10 ** log10_fq,
        "log10_forget_quality": log10_fq,
        "forget_prob_gap": fprob - 0.10,
        "errors": [],
    }


def main():
    root = os.path.abspath(sys.argv[1])
    rng = random.Random(7)
    for split, mu0 in SPLITS.items():
        lv = split[-2:]
        for ref, mu, l10, fp in (("origin", mu0, -9.0, 0.9), ("retrain", mu0 - 0.02, 0.0, 0.10)):
            d = os.path.join(root, "eval-%s-%s" % (ref, lv))
            write(os.path.join(d, "labels.json"), {"study": "fx", "method": ref, "split": split})
            provenance(d, "eval")
            provenance(os.path.join(root, ref), "train")
            write(os.path.join(d, "summary.json"),
                  summary(split, mu, l10, fp, os.path.join(root, ref, "model.h5")))
        for m in METHODS:
            eligible = not (m == "crippled" and split == "forget10")
            cands = []
            for k in range(3):
                setting = "%s-p%d" % (m, k)
                for seed in [1, 2]:
                    run(root, rng, split, lv, m, setting, "selection", seed, k, None)
                cands.append({"setting": setting, "overrides": {"lr": 10 ** -(k + 4)},
                              "mean_mu": 0, "mean_log10_fq": 0, "forget_prob_gap": 0,
                              "n_seeds": 2, "eligible": eligible})
            write(os.path.join(root, "select-%s-%s" % (lv, m), "selected.json"), {
                "method": m, "forget": split, "setting": "%s-p1" % m,
                "overrides": {"lr": 1e-5}, "rule": "max FQ at MU >= tau * MU(origin)",
                "tau": 0.95, "mu_origin": mu0, "eligible": eligible, "candidates": cands})
            base = [(rng.uniform(-1.2, -0.8), rng.uniform(0.57, 0.6), rng.uniform(0.12, 0.2))
                    for _ in REPORT_SEEDS]
            for i, seed in enumerate(REPORT_SEEDS):
                run(root, rng, split, lv, m, "%s-p1" % m, "report", seed, 1, (i, base))


# npo's report numbers per (split, seed), so twin, simnpo and crippled can be built on them
NPO = {}


def run(root, rng, split, lv, m, setting, phase, seed, k, rep):
    tag = "%s-%s-%s-s%d" % (lv, m, setting.split("-")[-1], seed)
    unlearn = os.path.join(root, "unlearn-" + tag)
    steps = 20 * (k + 1)
    write(os.path.join(unlearn, "budget.json"), {
        "tokens": steps * 512 * (3 if m == "crippled" else 1), "steps": steps,
        "cpu_seconds": round(rng.uniform(5, 9) * steps / 20, 3), "wall_seconds": 3.5, "ranks": 2})
    labels = {"study": "fx", "method": m, "split": split, "seed": seed, "lr": 10 ** -(k + 4),
              "phase": phase, "setting": setting}
    buckets = None
    if rep is None:  # selection: a spread of settings, so that fronts have several points
        l10, mu, fp = rng.uniform(-3, -0.5), rng.uniform(0.5, 0.62), rng.uniform(0.1, 0.4)
    else:
        i, base = rep
        if m == "npo":
            NPO[(split, seed)] = base[i]
        l10, mu, fp = NPO[(split, seed)]
        if m == "simnpo":
            l10 += SIM_D[i]
        elif m == "twin" and split == "forget10":
            l10, fp = l10 + 0.5, fp + 0.05
        elif m == "crippled":
            l10 -= 3 + rng.uniform(0, 0.2)
            fp += 0.3
        if m == "npo":
            buckets = {"short": {"n": 20, "prob": fp - 0.02, "rouge_recall": 0.25, "truth_ratio": 0.55},
                       "long": {"n": 20, "prob": fp + 0.02, "rouge_recall": 0.35, "truth_ratio": 0.65}}
    d = os.path.join(root, "eval-" + tag)
    write(os.path.join(d, "labels.json"), labels)
    provenance(unlearn, "unlearn")
    provenance(d, "eval")
    write(os.path.join(d, "summary.json"),
          summary(split, mu, l10, fp, os.path.join(unlearn, "model.h5"), buckets))
    if rep is not None:
        rec = 0.4 if m == "crippled" else 0.1 + 0.01 * rep[0]
        cl = dict(labels, relearn_lr=0.001, relearn_steps=10)
        a = os.path.join(root, "relearn-" + tag, "attack")
        provenance(os.path.dirname(a), "relearn", tag != "05-crippled-p1-s11")
        write(os.path.join(a, "labels.json"), cl)
        with open(os.path.join(a, "relearn.jsonl"), "w") as f:
            for step, p in ((0, fp), (5, fp + rec / 2), (10, fp + rec)):
                f.write(json.dumps({"step": step, "forget_prob": p}) + "\n")


if __name__ == "__main__":
    main()
