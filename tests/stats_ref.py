#!/usr/bin/env python3
"""tests/stats_ref.py — an independent check of analysis/stats.c (standard library only).

Usage: stats_ref.py TEST_STATS_BIN WORKDIR
Runs `test_stats --dump WORKDIR/stats_cases.jsonl` and recomputes every case:

  paired  - n, mean of a − b, wins and ties: exact (mean to 1e-12 relative; the pairs with
            a null on either side left out). The interval, two ways:
            (1) the same resamples: splitmix64 and the rejection rule of stats.h written
                again here, B resample means sorted, [m(k), m(B−1−k)], k = floor(0.025 B):
                equal to lethe's bit for bit (the sums run in the same order);
            (2) a property that does not share the generator: for n <= 5 the exact
                bootstrap distribution of the mean (all n^n resamples enumerated) must put
                lethe's lo between its 1.5 % and 3.5 % quantiles and hi between its 96.5 %
                and 98.5 % (a Monte Carlo quantile with B = 10000 has a standard error of
                0.16 %: the band is six of them); for n = 200 the interval must be within
                10 % of mean ± 1.96 · sd_pop / sqrt(n) (the normal approximation).
            "shown" is lo > 0 or hi < 0 over n >= 3 seeds whose differences are not
            all the same (max - min <= 1e-6 x the largest |a| or |b|), and never with
            n < 2.
  pareto  - brute force over all pairs: a point is on the front when it has no NaN and no
            other point is >= in both coordinates and > in one.
Prints one PASS or FAIL line per case and exits non-zero unless PASS lines == cases.
"""
import itertools
import json
import math
import os
import subprocess
import sys

M64 = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def below(state, n):
    limit = M64 - (M64 % n)
    while True:
        state, r = splitmix64(state)
        if r < limit:
            return state, r % n


def boot_interval(d, B, seed):
    n, s, means = len(d), seed, []
    for _ in range(B):
        acc = 0.0
        for _ in range(n):
            s, i = below(s, n)
            acc += d[i]
        means.append(acc / n)
    means.sort()
    k = math.floor(0.05 / 2 * B)
    return means[k], means[B - 1 - k]


def exact_quantile(d, q):
    """The q-quantile (lowest value whose CDF reaches q) of the exact bootstrap mean."""
    n = len(d)
    means = sorted(sum(d[i] for i in idx) / n for idx in itertools.product(range(n), repeat=n))
    return means[max(0, math.ceil(q * len(means)) - 1)]


def check_paired(c):
    errs = []
    pairs = [(a, b) for a, b in zip(c["a"], c["b"]) if a is not None and b is not None]
    d = [a - b for a, b in pairs]
    n = len(d)
    if c["n"] != n:
        errs.append("n %d, expected %d" % (c["n"], n))
    wins = sum(1 for x in d if (x > 0 if c["higher"] else x < 0))
    ties = sum(1 for x in d if x == 0)
    if (c["wins"], c["ties"]) != (wins, ties):
        errs.append("wins/ties %d/%d, expected %d/%d" % (c["wins"], c["ties"], wins, ties))
    mean = math.fsum(d) / n if n else None
    if (mean is None) != (c["mean"] is None) or (
            mean is not None and abs(c["mean"] - mean) > 1e-12 * max(1, abs(mean))):
        errs.append("mean %r, expected %r" % (c["mean"], mean))
    if n < 2:
        if c["lo"] is not None or c["hi"] is not None or c["shown"]:
            errs.append("n < 2 has an interval or a verdict")
        return errs
    lo, hi = boot_interval(d, c["B"], c["seed"])
    if (lo, hi) != (c["lo"], c["hi"]):
        errs.append("interval [%r, %r], the same resamples give [%r, %r]" % (c["lo"], c["hi"], lo, hi))
    if n <= 5:
        band_lo = exact_quantile(d, 0.015), exact_quantile(d, 0.035)
        band_hi = exact_quantile(d, 0.965), exact_quantile(d, 0.985)
        if not (band_lo[0] <= c["lo"] <= band_lo[1]):
            errs.append("lo %r outside the exact 1.5-3.5 %% band %r" % (c["lo"], band_lo))
        if not (band_hi[0] <= c["hi"] <= band_hi[1]):
            errs.append("hi %r outside the exact 96.5-98.5 %% band %r" % (c["hi"], band_hi))
    if n >= 100:
        sd = math.sqrt(sum((x - mean) ** 2 for x in d) / n)
        half = 1.96 * sd / math.sqrt(n)
        for got, want in ((c["lo"], mean - half), (c["hi"], mean + half)):
            if abs(got - want) > 0.1 * half:
                errs.append("bound %r, normal approximation %r (tolerance %r)" % (got, want, 0.1 * half))
    # the seeds' differences all the same (max - min <= 1e-6 x the largest |d|): one
    # observation, never shown (STATS_SAME_REL)
    same = max(d) - min(d) <= 1e-6 * max(max(abs(x), abs(y)) for x, y in pairs)
    shown = int(c["n"] >= 3 and not same and (c["lo"] > 0 or c["hi"] < 0))
    if c["shown"] != shown:
        errs.append("shown %d, expected %d" % (c["shown"], shown))
    return errs


def check_pareto(c):
    x, y = c["x"], c["y"]
    want = []
    for i in range(len(x)):
        ok = x[i] is not None and y[i] is not None
        for j in range(len(x)):
            if not ok:
                break
            if j == i or x[j] is None or y[j] is None:
                continue
            if x[j] >= x[i] and y[j] >= y[i] and (x[j] > x[i] or y[j] > y[i]):
                ok = False
        want.append(int(ok))
    errs = []
    if c["front"] != want:
        errs.append("front %s, brute force %s" % (c["front"], want))
    if c["count"] != sum(want):
        errs.append("count %d, expected %d" % (c["count"], sum(want)))
    return errs


def main():
    exe, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    path = os.path.join(work, "stats_cases.jsonl")
    subprocess.run([exe, "--dump", path], check=True)
    lines = [json.loads(l) for l in open(path)]
    ncases, cases = lines[0]["cases"], lines[1:]
    passed = 0
    for c in cases:
        errs = check_paired(c) if c["kind"] == "paired" else check_pareto(c)
        if errs:
            print("FAIL %s: %s" % (c["name"], "; ".join(errs)))
        else:
            passed += 1
            print("PASS %s" % c["name"])
    print("stats_ref: %d PASS of %d cases (%d in the file)" % (passed, ncases, len(cases)))
    sys.exit(0 if passed == ncases == len(cases) else 1)


if __name__ == "__main__":
    main()
