#!/usr/bin/python3
"""tests/metrics_ref.py — an independent implementation of analysis/metrics.h (ctest
metrics.python). Standard library and numpy only.

Usage: metrics_ref.py TEST_METRICS_EXE WORKDIR
Runs `TEST_METRICS_EXE --dump WORKDIR/metrics_cases.txt`, recomputes every case from the
definitions, and exits 1 on any disagreement. Criteria:
  ROUGE-L     rouge_score's default tokenizer (lower(), [^a-z0-9]+ -> space, split) and a
              full LCS table; lcs equal, precision/recall/F1 bit-identical.
  KS          D by numpy searchsorted(side='right') at every pooled value, as an exact
              fraction: d_num equal, D bit-identical; the exact/asymptotic choice as SciPy's
              method='auto' (exact iff max(n1, n2) <= 10000).
              Exact p: enumeration of all C(n1+n2, n1) label assignments when
              n1 + n2 <= 16, otherwise big-integer counting of the lattice paths that
              stay strictly inside |i n2 - j n1| < h (p = 1 - inside / all, exact), or for
              n1 = n2 the reflection-principle sum 2 sum_k (-1)^(k-1) C(2n, n-kc) / C(2n, n)
              in exact integers. (The C code sums first-passage terms in floating point: a
              different algorithm.)
              Asymptotic p: Kolmogorov's alternating series summed in 60-digit decimal.
              p to 1e-9 relative where p > 1e-12; log p to 1e-9 absolute always.
  Kolmogorov  the 60-digit series; p 1e-12 relative (p > 1e-300), log p 1e-12 absolute.
  AUC         all pairs counted, (2 #greater + #equal) / (2 n_pos n_neg) correctly rounded;
              bit-identical.
  means       math.fsum based; 1e-14 relative.
  truth ratio R = exp(fsum(pert)/k - para) per sample to 1e-12 relative; aggregates
              mean min(R, 1/R) and mean max(0, 1 - 1/R) to 1e-12 absolute; normalised
              probability p(a) / (p(a) + sum_j p(pert_j)) with p = exp(-l), 1e-12 relative.
  Min-K%      m = ceil(k n / 100) with k n / 100 as an exact fraction, clamped to [1, n];
              fsum of the m lowest / m; 1e-13 relative.
"""

import itertools
import math
import os
import re
import subprocess
import sys
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np

FAILS = []
STATS = {}


def fail(msg):
    FAILS.append(msg)
    if len(FAILS) <= 30:
        print("FAIL " + msg, file=sys.stderr)


def note(group, err):
    STATS.setdefault(group, [0, 0.0])
    STATS[group][0] += 1
    STATS[group][1] = max(STATS[group][1], err)


def rel_err(got, want):
    if got == want:
        return 0.0
    if want == 0 or math.isinf(want) or math.isnan(got):
        return math.inf
    return abs(got - want) / abs(want)


# ---------------------------------------------------------------- ROUGE-L

NON_ALNUM = re.compile(r"[^a-z0-9]+")
SPACES = re.compile(r"\s+")
VALID = re.compile(r"^[a-z0-9]+$")


def rouge_tokenize(text):
    text = NON_ALNUM.sub(" ", text.lower())
    return [w for w in SPACES.split(text) if VALID.match(w)]


def lcs_table(a, b):
    rows, cols = len(a), len(b)
    t = [[0] * (cols + 1) for _ in range(rows + 1)]
    for i in range(1, rows + 1):
        for j in range(1, cols + 1):
            if a[i - 1] == b[j - 1]:
                t[i][j] = t[i - 1][j - 1] + 1
            else:
                t[i][j] = max(t[i - 1][j], t[i][j - 1])
    return t[-1][-1]


def rouge_l(cand, ref):
    if not cand or not ref:
        return 0, 0.0, 0.0, 0.0
    lcs = lcs_table(ref, cand)
    precision = lcs / len(cand)
    recall = lcs / len(ref)
    f = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return lcs, precision, recall, f


def check_rouge(kind, got, want, where):
    ok = got[0] == want[0] and all(g == w for g, w in zip(got[1:], want[1:]))
    note(kind, 0.0 if ok else math.inf)
    if not ok:
        fail(f"{kind} {where}: C (lcs, p, r, f1) = {got}, reference {want}")


# ---------------------------------------------------------------- KS

def ks_dnum(x1, x2):
    a, b = np.sort(x1), np.sort(x2)
    pooled = np.concatenate([a, b])
    c1 = np.searchsorted(a, pooled, side="right").astype(np.int64)
    c2 = np.searchsorted(b, pooled, side="right").astype(np.int64)
    return int(np.max(np.abs(c1 * len(b) - c2 * len(a))))


def ks_enumerate(n1, n2, h):
    """(paths with max |i n2 - j n1| >= h, all paths), over every label assignment."""
    n = n1 + n2
    ones = np.array(list(itertools.combinations(range(n), n1)), dtype=np.int64)
    labels = np.zeros((len(ones), n), dtype=np.int64)
    np.put_along_axis(labels, ones, 1, axis=1)  # 1: the pooled value is from sample 1
    i = np.cumsum(labels, axis=1)
    j = np.arange(1, n + 1)[None, :] - i
    best = np.max(np.abs(i * n2 - j * n1), axis=1)
    return int(np.sum(best >= h)), len(ones)


def ks_count_inside(n1, n2, h):
    """(paths leaving the band, all paths) by exact counting of the paths inside."""
    prev = None
    for i in range(n1 + 1):
        cur = [0] * (n2 + 1)
        for j in range(n2 + 1):
            if abs(i * n2 - j * n1) >= h:
                continue
            if i == 0 and j == 0:
                cur[0] = 1
                continue
            cur[j] = (prev[j] if i > 0 else 0) + (cur[j - 1] if j > 0 else 0)
        prev = cur
    total = math.comb(n1 + n2, n1)
    return total - prev[n2], total


def ks_square(n, h):
    """n1 = n2 = n, h = c n: 2 sum_k (-1)^(k-1) C(2n, n - k c) over C(2n, n)."""
    if h % n:
        raise ValueError("square closed form needs h a multiple of n")
    c = h // n
    num = 0
    k = 1
    while n - k * c >= 0:
        num += (1 if k % 2 else -1) * 2 * math.comb(2 * n, n - k * c)
        k += 1
    return num, math.comb(2 * n, n)


def ks_exact_ref(n1, n2, h):
    """(p as float, ln p) exactly: p = hit / total in integers."""
    if h <= 0:
        return 1.0, 0.0
    if h > n1 * n2:
        return 0.0, -math.inf
    if n1 == n2 and h % n1 == 0:
        hit, total = ks_square(n1, h)
    elif n1 + n2 <= 16:
        hit, total = ks_enumerate(n1, n2, h)
    else:
        hit, total = ks_count_inside(n1, n2, h)
    if hit == 0:
        return 0.0, -math.inf
    return float(Fraction(hit, total)), math.log(hit) - math.log(total)


def kolmogorov_ref(x):
    """Q(x) = 2 sum_{k>=1} (-1)^(k-1) exp(-2 k^2 x^2) in 60-digit decimal: (p, ln p)."""
    if x <= 0:
        return 1.0, 0.0
    with localcontext() as ctx:
        ctx.prec = 60
        X = Decimal(x)
        s = Decimal(0)
        first = None
        k = 1
        while True:
            t = (-2 * k * k * X * X).exp()
            if first is None:
                first = t
            s += t if k % 2 else -t
            if t < first * Decimal("1e-45") and t < Decimal("1e-45"):
                break
            k += 1
        q = 2 * s
        return float(q), float(q.ln())


def check_p(group, where, p, lp, pref, lpref, ptol, ltol):
    err = 0.0
    if pref > 1e-12 or (group == "kolmogorov" and pref > 1e-300):
        err = max(err, rel_err(p, pref) / ptol)
    if math.isinf(lpref):
        if lp != lpref:
            err = math.inf
    else:
        err = max(err, abs(lp - lpref) / ltol)
    note(group, err)
    if not err <= 1.0:
        fail(f"{group} {where}: C p {p!r} ln p {lp!r}; reference p {pref!r} ln p {lpref!r}")


# ---------------------------------------------------------------- the cases

def fl(tok):
    return float.fromhex(tok)


def run(path):
    with open(path) as f:
        lines = f.read().splitlines()
    for lineno, line in enumerate(lines, 1):
        tok = line.split()
        kind = tok[0]
        where = f"(line {lineno})"
        if kind == "rouge_ids":
            nc = int(tok[1])
            cand = [int(t) for t in tok[2:2 + nc]]
            nr = int(tok[2 + nc])
            ref = [int(t) for t in tok[3 + nc:3 + nc + nr]]
            rest = tok[3 + nc + nr:]
            got = (int(rest[0]), fl(rest[1]), fl(rest[2]), fl(rest[3]))
            check_rouge("rouge_ids", got, rouge_l(cand, ref), where)
        elif kind == "rouge_text":
            texts = [bytes.fromhex(t).decode("utf-8") if t != "-" else "" for t in tok[1:3]]
            got = (int(tok[3]), fl(tok[4]), fl(tok[5]), fl(tok[6]))
            want = rouge_l(rouge_tokenize(texts[0]), rouge_tokenize(texts[1]))
            check_rouge("rouge_text", got, want, f"{where} {texts[0]!r} vs {texts[1]!r}")
        elif kind == "ks":
            n1, n2 = int(tok[1]), int(tok[2])
            x1 = np.array([fl(t) for t in tok[3:3 + n1]])
            x2 = np.array([fl(t) for t in tok[3 + n1:3 + n1 + n2]])
            rest = tok[3 + n1 + n2:]
            dnum, d, p, lp, exact = int(rest[0]), fl(rest[1]), fl(rest[2]), fl(rest[3]), int(rest[4])
            where = f"{where} n1 {n1} n2 {n2}"
            want_dnum = ks_dnum(x1, x2)
            want_d = float(Fraction(want_dnum, n1 * n2))
            want_exact = int(max(n1, n2) <= 10000)
            ok = dnum == want_dnum and d == want_d and exact == want_exact
            note("ks_statistic", 0.0 if ok else math.inf)
            if not ok:
                fail(f"ks {where}: C d_num {dnum} D {d!r} exact {exact}; reference "
                     f"{want_dnum} {want_d!r} {want_exact}")
                continue
            if want_exact:
                pref, lpref = ks_exact_ref(n1, n2, want_dnum)
                check_p("ks_exact", where, p, lp, pref, lpref, 1e-9, 1e-9)
            else:
                en = float(n1) * float(n2) / (float(n1) + float(n2))
                pref, lpref = kolmogorov_ref(math.sqrt(en) * want_d)
                check_p("ks_asymptotic", where, p, lp, pref, lpref, 1e-9, 1e-9)
        elif kind == "ks_sf":
            n1, n2, h = int(tok[1]), int(tok[2]), int(tok[3])
            pref, lpref = ks_exact_ref(n1, n2, h)
            check_p("ks_exact_sf", f"{where} n1 {n1} n2 {n2} h {h}", fl(tok[4]), fl(tok[5]),
                    pref, lpref, 1e-9, 1e-9)
        elif kind == "kolm":
            x = fl(tok[1])
            pref, lpref = kolmogorov_ref(x)
            check_p("kolmogorov", f"{where} x {x}", fl(tok[2]), fl(tok[3]), pref, lpref,
                    1e-12, 1e-12)
        elif kind == "auc":
            npos, nneg = int(tok[1]), int(tok[2])
            pos = np.array([fl(t) for t in tok[3:3 + npos]])
            neg = np.array([fl(t) for t in tok[3 + npos:3 + npos + nneg]])
            got = fl(tok[3 + npos + nneg])
            gt = int(np.sum(pos[:, None] > neg[None, :]))
            eq = int(np.sum(pos[:, None] == neg[None, :]))
            want = (2 * gt + eq) / (2 * npos * nneg)  # int / int: correctly rounded
            note("auc", 0.0 if got == want else math.inf)
            if got != want:
                fail(f"auc {where}: C {got!r}, reference {want!r}")
        elif kind == "means":
            n = int(tok[1])
            x = [fl(t) for t in tok[2:2 + n]]
            m, h = fl(tok[2 + n]), fl(tok[3 + n])
            wm = math.fsum(x) / n
            wh = n / math.fsum(1.0 / v for v in x)
            err = max(rel_err(m, wm), rel_err(h, wh)) / 1e-14
            note("means", err)
            if not err <= 1:
                fail(f"means {where}: C mean {m!r} hmean {h!r}; reference {wm!r} {wh!r}")
        elif kind == "tr":
            n, k = int(tok[1]), int(tok[2])
            vals = [fl(t) for t in tok[3:]]
            para = vals[:n]
            pert = vals[n:n + n * k]
            R = vals[n + n * k:2 * n + n * k]
            fa, oa = vals[2 * n + n * k], vals[2 * n + n * k + 1]
            q = vals[2 * n + n * k + 2:3 * n + n * k + 2]
            qm = vals[3 * n + n * k + 2]
            wR = [math.exp(math.fsum(pert[i * k:(i + 1) * k]) / k - para[i]) for i in range(n)]
            wf = math.fsum(min(r, 1 / r) for r in wR) / n
            wo = math.fsum(max(0.0, 1 - 1 / r) for r in wR) / n
            wq = []
            for i in range(n):
                pa = math.exp(-para[i])
                wq.append(pa / (pa + math.fsum(math.exp(-l) for l in pert[i * k:(i + 1) * k])))
            wqm = math.fsum(wq) / n
            err_r = max(rel_err(a, b) for a, b in zip(R, wR)) / 1e-12
            err_a = max(abs(fa - wf), abs(oa - wo)) / 1e-12
            err_q = max([rel_err(a, b) for a, b in zip(q, wq)] + [rel_err(qm, wqm)]) / 1e-12
            note("truth_ratio", max(err_r, err_a))
            note("prob_normalized", err_q)
            if not max(err_r, err_a) <= 1:
                fail(f"truth ratio {where}: C forget {fa!r} other {oa!r}; reference {wf!r} "
                     f"{wo!r}; worst R error {err_r * 1e-12:.3g}")
            if not err_q <= 1:
                fail(f"normalised probability {where}: worst error {err_q * 1e-12:.3g}")
        elif kind == "mink":
            n, k = int(tok[1]), fl(tok[2])
            x = [fl(t) for t in tok[3:3 + n]]
            got = fl(tok[3 + n])
            m = min(max(math.ceil(Fraction(k) * n / 100), 1), n)
            want = math.fsum(sorted(x)[:m]) / m
            err = rel_err(got, want) / 1e-13
            note("min_k", err)
            if not err <= 1:
                fail(f"min-k {where}: n {n} k {k}: C {got!r}, reference {want!r} (m = {m})")
        else:
            fail(f"unknown case '{kind}' {where}")


def main():
    if len(sys.argv) != 3:
        print("usage: metrics_ref.py TEST_METRICS_EXE WORKDIR", file=sys.stderr)
        return 2
    exe, workdir = sys.argv[1], sys.argv[2]
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "metrics_cases.txt")
    rc = subprocess.run([exe, "--dump", path]).returncode
    if rc != 0:
        print(f"metrics_ref.py: '{exe} --dump {path}' failed ({rc})", file=sys.stderr)
        return 1
    run(path)
    expected = {"rouge_ids", "rouge_text", "ks_statistic", "ks_exact", "ks_asymptotic",
                "ks_exact_sf", "kolmogorov", "auc", "means", "truth_ratio", "prob_normalized",
                "min_k"}
    for g in sorted(expected - STATS.keys()):
        fail(f"no '{g}' cases were checked")
    for g, (count, worst) in sorted(STATS.items()):
        print(f"{g:16s} {count:4d} cases, worst error / tolerance {worst:.3g}")
    if FAILS:
        print(f"metrics_ref.py: {len(FAILS)} mismatches", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
