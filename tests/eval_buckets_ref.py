#!/usr/bin/python3
"""tests/eval_buckets_ref.py — an independent check of `lethe eval`'s per-bucket figures
(summary.json splits.<split>.buckets, jobs/eval_buckets.c). h5py and numpy only.

usage: eval_buckets_ref.py DATASET.h5 EVAL_DIR SPLIT:ROLE...   (ROLE forget|retain|other)
For each split: the dataset's /<split>/bucket and bucket_names; eval.h5's per-row bucket
column must equal it, and from eval.h5's per-row prob, rouge_recall, rouge_f1 and
truth_ratio (R, from the paraphrase) every group -- each bucket name and each
'_'-separated part of one -- is recomputed: n; the means of the values that are not NaN
(math.fsum; null when none); the truth ratio mean min(R, 1/R) (forget) or mean
max(0, 1 - 1/R) (retain, other), null when any R is NaN. Tolerance 1e-12 relative (the
C code sums in another order). Prints one line per mismatch; exit 1 on any.
"""
import json
import math
import sys

import h5py
import numpy as np


def mean(v):
    v = [x for x in v if not math.isnan(x)]
    return math.fsum(v) / len(v) if v else None


def truth(r, role):
    if len(r) == 0 or any(math.isnan(x) for x in r):
        return None
    if role == "forget":
        return math.fsum(min(x, 1 / x) if x > 0 else 0.0 for x in r) / len(r)
    return math.fsum(max(0.0, 1 - 1 / x) if x > 0 else 0.0 for x in r) / len(r)


def close(a, b):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= 1e-12 * max(1.0, abs(a), abs(b))


def main():
    data, evdir, specs = sys.argv[1], sys.argv[2], sys.argv[3:]
    summary = json.load(open(f"{evdir}/summary.json"))
    bad, checked = [], 0
    with h5py.File(data, "r") as d, h5py.File(f"{evdir}/eval.h5", "r") as e:
        for spec in specs:
            split, role = spec.split(":")
            b = np.asarray(d[f"/{split}/bucket"])
            names = d[f"/{split}"].attrs["bucket_names"]
            names = (names.decode() if isinstance(names, bytes) else str(names)).split(",")
            g = e["/" + split.replace("/", "_")]
            n = len(g["prob"])
            if list(np.asarray(g["bucket"])) != list(b[:n]):
                bad.append(f"{split}: eval.h5 bucket column differs from the dataset's")
            groups = list(names)
            for nm in names:
                groups += [p for p in nm.split("_") if p not in groups]
            got = summary["splits"][split].get("buckets", {})
            if sorted(got) != sorted(groups):
                bad.append(f"{split}: buckets {sorted(got)}, expected {sorted(groups)}")
            cols = {c: np.asarray(g[c], dtype=float) for c in
                    ("prob", "rouge_recall", "rouge_f1", "truth_ratio")}
            for grp in groups:
                rows = [i for i in range(n) if grp == names[b[i]] or grp in names[b[i]].split("_")]
                want = {"n": len(rows), "truth_ratio": truth([cols["truth_ratio"][i] for i in rows], role)}
                for c in ("prob", "rouge_recall", "rouge_f1"):
                    want[c] = mean([cols[c][i] for i in rows])
                for k, v in want.items():
                    checked += 1
                    have = got.get(grp, {}).get(k, "missing")
                    if have == "missing" or not close(have, v):
                        bad.append(f"{split}.buckets.{grp}.{k}: {have}, expected {v}")
    for x in bad:
        print("FAIL:", x)
    print(f"eval_buckets_ref: {checked} values checked, {len(bad)} mismatches")
    return 1 if bad or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
