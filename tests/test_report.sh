#!/bin/bash
# tests/test_report.sh — `lethe report` on the fake study tree tests/data/report_fixture/:
# origin, retrain, 3 methods x 2 learning rates x 2 seeds (TOFU-shaped summaries, a few
# nulls and evaluation errors), two relearn curves of one setting, two Markov-chain runs,
# and a dp node-count sweep of 4 bench lines (one layout measured twice).
#
# Asserts:
#   - results.csv: the header, the row order, and every cell, against means, sample stds
#     and counts that tests/test_report.sh's own Python computes from the fixture files
#     (statistics.mean / statistics.stdev, formatted %.6g); best.csv: the selection rule
#     recomputed, and the fixture's designed answer (ga: a forget-quality tie broken by
#     utility; npo: the better forget quality despite lower utility; simnpo: both best);
#   - results.md: the rule above the best table, '–' for no value, the row count;
#   - scaling.md: efficiency and comm share of every point recomputed from bench.jsonl;
#   - the PNGs (fq_vs_mu, relearn_simnpo, markov_kl, scaling) exist, start with the PNG
#     signature and are over 4 KiB, each beside its .dat and .gp;
#   - a second run over the same tree (its report/ folder inside) writes the same tables,
#     and so does a run under mpirun on 2 ranks (the others run without mpirun);
#   - bad inputs exit 2 with exactly one 'lethe: ' line naming the file (and the key), and
#     write nothing: malformed JSON, a wrong type, a missing labels.json, a duplicate run,
#     a bad relearn line, a number that overflows to inf, a missing folder, an unknown
#     option; a missing gnuplot is an error with plots and not with --no-plots;
#   - control characters of labels are escaped in results.md (\xNN), and a link to / in
#     the study folder is not followed.
# Needs LETHE_BIN and MPIRUN (set by the ctest harness) and python3 (standard library).
set -u
: "${LETHE_BIN:?LETHE_BIN must name the lethe binary}"
MPIRUN="${MPIRUN:-mpirun}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
fixture="$here/data/report_fixture"
py="${LETHE_REPORT_PYTHON:-python3}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0 n=0
CASES=22 # ok/FAIL lines this script prints when every case runs

# lethe report is a serial tool: users run it without mpirun (MPI starts as a singleton), so
# that is how most cases run; one case runs it under mpirun on 2 ranks.
report() { # ranks args... : stdout/stderr to $work/{stdout,stderr}
    local np=$1
    shift
    if [ "$np" = 0 ]; then
        "$LETHE_BIN" report "$@" >"$work/stdout" 2>"$work/stderr"
    else
        "$MPIRUN" --oversubscribe -n "$np" "$LETHE_BIN" report "$@" >"$work/stdout" 2>"$work/stderr"
    fi
}
ok() {
    n=$((n + 1))
    echo "ok   $*"
}
bad() {
    n=$((n + 1))
    fail=$((fail + 1))
    echo "FAIL $*"
}

# ---- the fixture, as a user would point lethe report at it ------------------------------
cp -r "$fixture" "$work/study"
if report 0 "$work/study"; then
    ok "lethe report exits 0 on the fixture"
else
    bad "lethe report exits $? on the fixture:"
    cat "$work/stderr"
fi
out="$work/study/report"

# ---- the tables, recomputed independently ------------------------------------------------
cat >"$work/check.py" <<'PY'
import csv, json, math, os, statistics, sys

fixture, out = sys.argv[1], sys.argv[2]
errors = []
def check(cond, msg):
    if not cond:
        errors.append(msg)

def g(v, digits=6):
    if v is None:
        return ""
    s = "%.*g" % (digits, v)
    return "0" if s == "-0" else s

def labval(v):
    if v is None: return ""
    if isinstance(v, bool): return "true" if v else "false"
    if isinstance(v, (int, float)): return "%.10g" % v
    return str(v)

runs, curves, bench = [], [], []
for d, subdirs, files in os.walk(fixture):
    if "summary.json" in files:
        lab = json.load(open(os.path.join(d, "labels.json")))
        s = json.load(open(os.path.join(d, "summary.json")))
        f = s["splits"][s["roles"]["forget"]] if "forget" in s["roles"] else {}
        r = s["splits"][s["roles"]["retain"]] if "retain" in s["roles"] else {}
        m = {
            "forget_quality": s.get("forget_quality"),
            "log10_forget_quality": s.get("log10_forget_quality"),
            "forget_quality_trained_wording": s.get("forget_quality_trained_wording"),
            "model_utility": s.get("model_utility"),
            "forget_prob": f.get("prob"),
            "forget_prob_gap": s.get("forget_prob_gap"),
            "retain_prob": r.get("prob"),
            "forget_rouge_recall": f.get("rouge_recall"),
            "retain_rouge_recall": r.get("rouge_recall"),
            "forget_truth_ratio": f.get("truth_ratio"),
            "privleak": (s.get("muse") or {}).get("privleak"),
        }
        runs.append((lab, m, s.get("markov")))
    if "relearn.jsonl" in files:
        lab = json.load(open(os.path.join(d, "labels.json")))
        pts = sorted((o["step"], o["forget_prob"]) for o in
                     map(json.loads, open(os.path.join(d, "relearn.jsonl"))))
        curves.append((lab, pts[-1][1] - pts[0][1]))
    if "bench.jsonl" in files:
        lab = json.load(open(os.path.join(d, "labels.json")))
        for line in open(os.path.join(d, "bench.jsonl")):
            bench.append((lab, json.loads(line)))
check(len(runs) == 16 and len(curves) == 2 and len(bench) == 4,
      "fixture: %d runs, %d curves, %d bench lines" % (len(runs), len(curves), len(bench)))

def key(lab, drop):
    return tuple(sorted((k, v) for k, v in lab.items() if not drop(k)))
settings = {}
for lab, m, mk in runs:
    settings.setdefault(key(lab, lambda k: k == "seed"), []).append((lab, m, mk))
hp = sorted({k for lab, _, _ in runs for k in lab} - {"method", "split", "seed"})
metrics = ["forget_quality", "log10_forget_quality", "forget_quality_trained_wording",
           "model_utility", "forget_prob", "forget_prob_gap", "retain_prob",
           "forget_rouge_recall", "retain_rouge_recall", "forget_truth_ratio", "privleak",
           "relearn_recovery"]

def agg(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None, None, 0
    return (statistics.mean(vals), statistics.stdev(vals) if len(vals) > 1 else None,
            len(vals))

_absent = object()
rows = []
for k, members in settings.items():
    lab = dict(k)
    row = {"lab": lab, "seeds": len(members)}
    for name in metrics[:-1]:
        row[name] = agg([m[name] for _, m, _ in members])
    # a curve carries its run's labels plus the attack's (relearn_*, checkpoint)
    rec = [r for cl, r in curves if all(cl.get(a, _absent) == b for a, b in k)]
    row["relearn_recovery"] = agg(rec)
    rows.append(row)

def order(v):  # absent < null < bool < number < string
    if v is _absent: return (0,)
    if v is None: return (1,)
    if isinstance(v, bool): return (2, v)
    if isinstance(v, (int, float)): return (3, v)
    return (4, v)
rank = {"origin": 0, "retrain": 1}
rows.sort(key=lambda r: (rank.get(r["lab"]["method"], 2), r["lab"]["method"], r["lab"]["split"],
                         *[order(r["lab"].get(h, _absent)) for h in hp]))

header = ["method", "split"] + hp + ["seeds"]
for name in metrics:
    header += [name, name + "_std", name + "_n"]

def expect_line(r):
    cells = [r["lab"]["method"], r["lab"]["split"]] + [labval(r["lab"].get(h)) for h in hp]
    cells.append(str(r["seeds"]))
    for name in metrics:
        mean, sd, cnt = r[name]
        cells += [g(mean), g(sd), str(cnt)]
    return cells

def compare(path, expected_rows):
    got = list(csv.reader(open(path)))
    check(got and got[0] == header, "%s: header %s, expected %s" % (path, got[:1], header))
    body = got[1:]
    check(len(body) == len(expected_rows),
          "%s: %d rows, expected %d" % (path, len(body), len(expected_rows)))
    for i, (g_row, r) in enumerate(zip(body, expected_rows)):
        want = expect_line(r)
        for col, (a, b) in enumerate(zip(g_row, want)):
            check(a == b, "%s row %d (%s %s) column %s: '%s', expected '%s'" %
                  (path, i + 1, r["lab"]["method"], labval(r["lab"].get("lr")), header[col], a, b))
        check(len(g_row) == len(want), "%s row %d: %d cells, expected %d" %
              (path, i + 1, len(g_row), len(want)))
    return body

body = compare(os.path.join(out, "results.csv"), rows)
got_order = [(r[0], r[1], r[header.index("lr")]) for r in body]
check(got_order[:2] == [("origin", "forget05", ""), ("retrain", "forget05", "")],
      "row order starts %s, expected origin then retrain" % got_order[:2])
check([m for m, _, _ in got_order[2:]] == sorted(m for m, _, _ in got_order[2:]),
      "methods after origin and retrain not alphabetical: %s" % got_order)

# best per method, the rule of results.md recomputed
best = []
groups = {}
for r in rows:
    groups.setdefault((r["lab"]["method"], r["lab"]["split"]), []).append(r)
for gk, rs in groups.items():
    cand = [r for r in rs if r["forget_quality"][0] is not None]
    if not cand:
        continue
    fq = lambda r: (r["forget_quality"][0], r["log10_forget_quality"][0] or -math.inf)
    cand.sort(key=fq, reverse=True)
    cut = fq(cand[math.ceil(len(cand) / 3) - 1])
    top = [r for r in rs if r["forget_quality"][0] is not None and fq(r) >= cut
           and r["model_utility"][0] is not None]
    if top:
        best.append(max(top, key=lambda r: (r["model_utility"][0], -rs.index(r))))
best.sort(key=rows.index)
bbody = compare(os.path.join(out, "best.csv"), best)
designed = [("origin", ""), ("retrain", ""), ("ga", "2e-05"), ("npo", "2e-05"), ("simnpo", "1e-05")]
got_best = [(r[0], r[header.index("lr")]) for r in bbody]
check(got_best == designed, "best.csv picks %s, expected %s" % (got_best, designed))

md = open(os.path.join(out, "results.md"), encoding="utf-8").read()
check("top third" in md and "highest mean model utility" in md,
      "results.md lacks the selection rule")
check(md.index("Selection rule") < md.rindex("| simnpo | forget05 | 2.5 | 1e-05"),
      "the rule is not above the best table")
check("| – |" in md, "results.md shows no '–' for missing values")
check("55.5 (1)" in md, "results.md: the ga privleak with one of two seeds is not '55.5 (1)'")

# scaling: points averaged over repeats, efficiency against the smallest rank count
pts = {}
for lab, b in bench:
    pts.setdefault((lab["nodes"], b["ranks"]), []).append(b)
ranks0 = min(r for _, r in pts)
tps0 = statistics.mean(b["tokens_per_s"] for b in pts[min(pts, key=lambda p: p[1])])
sc = open(os.path.join(out, "scaling.md"), encoding="utf-8").read()
for (nodes, ranks), bs in sorted(pts.items()):
    tps = statistics.mean(b["tokens_per_s"] for b in bs)
    ms = statistics.mean(b["ms_per_step"] for b in bs)
    comm = statistics.mean(b["comm_ms"] for b in bs)
    eff = (tps / ranks) / (tps0 / ranks0)
    line = "| %d | %d | %d | 1 | 1 | 1 | %d | %s | %s | %s |" % (
        nodes, ranks, ranks, len(bs), g(tps, 4), g(eff, 4), g(comm / ms, 4))
    check(line in sc, "scaling.md lacks the line '%s'" % line)

for e in errors:
    print("FAIL", e)
print("check.py: %d rows, %d best, %d failures" % (len(rows), len(best), len(errors)))
sys.exit(1 if errors else 0)
PY
if "$py" "$work/check.py" "$fixture" "$out"; then
    ok "results.csv, best.csv, results.md and scaling.md match the recomputation"
else
    bad "the tables differ from the recomputation (above)"
fi

# ---- the plots ---------------------------------------------------------------------------
for p in fq_vs_mu relearn_simnpo markov_kl scaling; do
    f="$out/$p.png"
    sig=$(head -c 8 "$f" 2>/dev/null | od -An -tx1 | tr -d ' \n')
    size=$(stat -c %s "$f" 2>/dev/null || echo 0)
    if [ "$sig" != "89504e470d0a1a0a" ]; then
        bad "$p.png: signature '$sig', expected a PNG"
    elif [ "$size" -lt 4096 ]; then
        bad "$p.png: $size bytes, expected a drawn plot (> 4096)"
    elif [ ! -s "$out/$p.dat" ] || [ ! -s "$out/$p.gp" ]; then
        bad "$p.png: its $p.dat or $p.gp is missing"
    else
        ok "$p.png: a PNG of $size bytes beside $p.dat and $p.gp"
    fi
done
if ls "$out"/*.tmp >/dev/null 2>&1; then bad "temporary files left in $out"; else ok "no temporary files left"; fi

# ---- re-runs: the report folder inside the study is not read back; 2 ranks agree --------
cp "$out/results.csv" "$work/first.csv"
if report 0 "$work/study" --no-plots && cmp -s "$work/first.csv" "$out/results.csv"; then
    ok "a second run over the tree (report/ inside) writes the same results.csv"
else
    bad "a second run over the tree differs or fails:"
    cat "$work/stderr"
fi
if report 2 "$work/study" --out "$work/np2" && cmp -s "$work/first.csv" "$work/np2/results.csv" &&
    [ -s "$work/np2/scaling.png" ]; then
    ok "2 ranks write the same results.csv and the plots"
else
    bad "2 ranks: exit or results differ:"
    cat "$work/stderr"
fi

# ---- bad inputs: exit 2, one line naming the file, nothing written ----------------------
expect_error() { # description want-substring dir [options...]
    local what=$1 want=$2 dir=$3
    shift 3
    report 0 "$dir" "$@"
    local rc=$? lines
    lines=$(grep -c '^lethe: ' "$work/stderr")
    if [ $rc -ne 2 ]; then
        bad "$what: exit $rc, expected 2"
        cat "$work/stderr"
    elif [ "$lines" -ne 1 ]; then
        bad "$what: $lines 'lethe: ' lines, expected 1:"
        cat "$work/stderr"
    elif ! grep -q -F -- "$want" "$work/stderr"; then
        bad "$what: the message lacks '$want':"
        grep '^lethe: ' "$work/stderr"
    elif [ -e "$dir/report" ]; then
        bad "$what: an output folder was created before the error"
    else
        ok "$what: $(grep '^lethe: ' "$work/stderr")"
    fi
}
fresh() { # a clean copy of the fixture in $work/$1
    rm -rf "${work:?}/$1"
    cp -r "$fixture" "$work/$1"
    echo "$work/$1"
}
run_dir=study/unlearn/npo/lr2e-05/seed1

d=$(fresh malformed)
head -c 200 "$fixture/$run_dir/summary.json" >"$d/$run_dir/summary.json"
expect_error "truncated summary.json" "'$d/$run_dir/summary.json': not valid JSON" "$d"

d=$(fresh wrongtype)
sed -i 's/"model_utility": [0-9.]*/"model_utility": "high"/' "$d/$run_dir/summary.json"
expect_error "model_utility as a string" \
    "'$d/$run_dir/summary.json': key 'model_utility' is a string, expected a number or null" "$d"

d=$(fresh roles)
sed -i 's/"forget": "forget05"/"forget": "forget01"/' "$d/$run_dir/summary.json"
expect_error "roles.forget naming no split" "roles.forget = \"forget01\" is not a key of splits" "$d"

d=$(fresh nolabels)
rm "$d/$run_dir/labels.json"
expect_error "summary.json without labels.json" "'$d/$run_dir/labels.json': missing" "$d"

d=$(fresh duplicate)
cp -r "$d/$run_dir" "$d/study/copy-of-seed1"
expect_error "two runs with the same labels" "hold runs with the same labels" "$d"

d=$(fresh badcurve)
echo '{"step": "ten", "forget_prob": 0.5}' >>"$d/study/relearn/simnpo-lr1e-05-seed1/relearn.jsonl"
expect_error "a relearn line with a string step" \
    "relearn.jsonl' line 6: key 'step' is a string, expected a number or null" "$d"

d=$(fresh badbench)
sed -i 's/"dp": 4,/"dp": 3,/' "$d/bench/n2/bench.jsonl"
expect_error "a bench line whose layout is not its ranks" "dp*pp*tp = 3*1*1 is not ranks = 4" "$d"

expect_error "a missing study folder" "study folder '$work/nowhere'" "$work/nowhere"
d=$(fresh options)
expect_error "an unknown option" "unknown option '--plots'" "$d" --plots

d=$(fresh nonfinite)
sed -i '0,/"prob": [0-9.]*/s//"prob": -1e999/' "$d/$run_dir/summary.json"
expect_error "a number that overflows to -inf (1e999)" "summary.json': key 'splits." "$d"
grep -q "is not a finite number (-inf)" "$work/stderr" || bad "1e999: the message lacks '(-inf)'"

# labels reach results.md with control characters escaped (an ESC would drive the
# reader's terminal), and a link to / inside the study folder is not followed
d=$(fresh labels_ctl)
sed -i 's/"method": "npo"/"method": "npo\\u001b[31m\\u0007"/' "$d"/study/unlearn/npo/*/*/labels.json
ln -s / "$d/study/escape"
if report 0 "$d" --no-plots && grep -qF 'npo\x1b[31m\x07' "$d/report/results.md" &&
    ! grep -q $'[\x01-\x08\x0b-\x1f\x7f]' "$d/report/results.md"; then
    ok "control characters of labels escaped in results.md; the link to / not followed"
else
    bad "labels with control characters, or the link to /:"
    cat "$work/stderr"
    grep -a 'npo' "$d/report/results.md" | head -3 | cat -v
fi

d=$(fresh nognuplot)
LETHE_GNUPLOT="$work/no-such-gnuplot" expect_error "plots without gnuplot" \
    "gnuplot '$work/no-such-gnuplot' cannot be run" "$d"
if LETHE_GNUPLOT="$work/no-such-gnuplot" report 0 "$d" --no-plots &&
    [ -s "$d/report/results.csv" ] && ! ls "$d/report"/*.png >/dev/null 2>&1; then
    ok "--no-plots needs no gnuplot and draws nothing"
else
    bad "--no-plots without gnuplot:"
    cat "$work/stderr"
fi

echo "$n checks, $fail failed ($CASES cases expected)"
[ $fail -eq 0 ] && [ $n -eq $CASES ]
