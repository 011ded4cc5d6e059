#!/bin/bash
# The whole pipeline through `lethe study` on 2 ranks (tp=2): synth -> origin and
# retrain -> evals -> GA / NPO / SimNPO unlearning -> evals -> relearn -> report;
# then checks numbers in the outputs, the skip of finished jobs on a re-run, the
# refusal of the study edited after it finished (labels.json unchanged), and
# that an unlearning job aborted mid-run resumes to a bitwise-equal model.
# Needs MPIRUN, LETHE_BIN, LETHE_SOURCE_DIR.
set -u
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_MCA_orte_execute_quiet=1
S="$LETHE_SOURCE_DIR/tests/data/mini-study.json"
D="$work/mini"
fail=0
"$MPIRUN" --oversubscribe -n 2 "$LETHE_BIN" study "$S" --dir "$D" >"$work/study.log" 2>&1 ||
    { echo "FAIL: study run"; tail -30 "$work/study.log"; exit 1; }
/usr/bin/python3 - "$D" <<'PY' || fail=1
import json, os, sys
d = sys.argv[1]
def load(n): return json.load(open(os.path.join(d, n, "summary.json")))
bad = 0
def check(cond, msg):
    global bad
    if not cond:
        print("FAIL:", msg); bad += 1
o, r = load("eval-origin-10"), load("eval-retrain-10")
for name in ["eval-origin-10", "eval-retrain-10", "eval-10-ga-g0-s1", "eval-10-npo-g0-s1", "eval-10-simnpo-g0-s1"]:
    s = load(name)
    for sp, v in s["splits"].items():
        for k in ["prob", "rouge_recall", "truth_ratio"]:
            x = v.get(k)
            check(x is None or 0 <= x <= 1, f"{name} {sp} {k} = {x} outside [0, 1]")
    check(s["model_utility"] is not None and 0 < s["model_utility"] <= 1, f"{name} model utility {s['model_utility']}")
    if name != "eval-retrain-10":
        check(s["forget_quality"] is not None and 0 <= s["forget_quality"] <= 1, f"{name} forget quality {s['forget_quality']}")
check(r["forget_quality"] is None and any("reference" in e for e in r["errors"]), "retrain eval: missing reference not reported")
fo = o["splits"]["forget10"]["prob"]
check(fo > r["splits"]["forget10"]["prob"], f"origin forget prob {fo} not above retrain's")
ga = load("eval-10-ga-g0-s1")["splits"]["forget10"]["prob"]
check(ga < fo, f"GA did not lower the forget probability ({ga} vs origin {fo})")
curves = [l for l in open(os.path.join(d, "relearn-10-ga-g0-s1", "n4_lr0.001_seed42", "relearn.jsonl"))]
check(len(curves) == 3, f"relearn curve has {len(curves)} points, expected 3")
for n in ["origin", "eval-origin-10", "unlearn-10-npo-g0-s1"]:
    p = json.load(open(os.path.join(d, n, "provenance.json")))
    check(p["status"] == "completed" and p["ranks"] == 2 and p["layout"]["tp"] == 2, f"{n} provenance {p['status']}")
check(os.path.exists(os.path.join(d, "unlearn-10-npo-g0-s1", "npo_reference.jsonl")), "NPO reference not cached")
md = open(os.path.join(d, "report", "results.md")).read()
for m in ["origin", "retrain", "ga", "npo", "simnpo"]:
    check(f"| {m} |" in md, f"report lacks {m}")
print(f"study outputs: origin forget prob {fo:.3f}, GA {ga:.3f}, retrain {r['splits']['forget10']['prob']:.3f}; {bad} failures")
sys.exit(1 if bad else 0)
PY
"$MPIRUN" --oversubscribe -n 2 "$LETHE_BIN" study "$S" --dir "$D" >"$work/again.log" 2>&1 || { echo "FAIL: re-run"; fail=1; }
grep -q "(0 to run)" "$work/again.log" || { echo "FAIL: a finished study re-ran jobs"; head -3 "$work/again.log"; fail=1; }
# the study edited (GA's optim.lr) is refused, naming the job and the key; the finished
# eval's labels.json still holds the lr its results were computed with
L="$D/eval-10-ga-g0-s1/labels.json"
cp "$L" "$work/labels-before.json"
"$MPIRUN" --oversubscribe -n 2 "$LETHE_BIN" study "$LETHE_SOURCE_DIR/tests/hostile/studies/changed_lr.json" \
    --dir "$D" >"$work/edited.log" 2>&1 && { echo "FAIL: an edited study ran"; fail=1; }
grep -q "^lethe: .*job 'unlearn-10-ga-g0-s1' is finished but job.json key 'optim.lr' was 0.001, now 0.002" \
    "$work/edited.log" || { echo "FAIL: the edited study's refusal"; head -5 "$work/edited.log"; fail=1; }
cmp -s "$L" "$work/labels-before.json" || { echo "FAIL: a finished eval was relabelled"; cat "$L"; fail=1; }
# an unlearning job aborted after step 3 resumes from its step-2 checkpoint
J="$D/unlearn-10-npo-g0-s1/job.json"
LETHE_FAULT=abort-after-step:3 timeout 120 "$MPIRUN" --oversubscribe -n 2 "$LETHE_BIN" unlearn "$J" \
    --set output.dir="$work/u" --set checkpoint.every=2 >"$work/u1.log" 2>&1
rc=$?
{ [ $rc -ne 0 ] && [ $rc -ne 124 ]; } || { echo "FAIL: aborted unlearn exit $rc"; fail=1; }
"$MPIRUN" --oversubscribe -n 2 "$LETHE_BIN" unlearn "$J" --set output.dir="$work/u" \
    --set checkpoint.every=2 >"$work/u2.log" 2>&1 || { echo "FAIL: resumed unlearn"; tail "$work/u2.log"; fail=1; }
grep -q "resuming from .* at step 2" "$work/u2.log" || { echo "FAIL: unlearn did not resume at step 2"; fail=1; }
for g in /params /adam_m /adam_v; do
    h5diff -q "$D/unlearn-10-npo-g0-s1/model.h5" "$work/u/model.h5" "$g" "$g" ||
        { echo "FAIL: resumed unlearn $g differs"; fail=1; }
done
# eval of one checkpoint under other layouts: the same summary (probabilities to
# 1e-6) and identical generations
E="$D/eval-origin-10/job.json"
for lay in "1 1 1 1" "2 2 1 1" "2 1 2 1" "4 2 1 2" "4 1 2 2"; do
    set -- $lay
    "$MPIRUN" --oversubscribe -n "$1" "$LETHE_BIN" eval "$E" --set layout.dp="$2" --set layout.pp="$3" \
        --set layout.tp="$4" --set output.dir="$work/ev-$2$3$4" >"$work/ev.log" 2>&1 ||
        { echo "FAIL: eval under dp=$2 pp=$3 tp=$4"; tail -3 "$work/ev.log"; fail=1; continue; }
    /usr/bin/python3 - "$D/eval-origin-10/summary.json" "$work/ev-$2$3$4/summary.json" <<'PY' || fail=1
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
bad = []
for sp in a["splits"]:
    for k in ["prob", "rouge_recall", "rouge_f1", "truth_ratio"]:
        x, y = a["splits"][sp][k], b["splits"][sp][k]
        if (x is None) != (y is None) or (x is not None and abs(x - y) > 1e-6 * max(1.0, abs(x))):
            bad.append(f"{sp}.{k}: {x} vs {y}")
for k in ["model_utility", "forget_quality"]:
    x, y = a[k], b[k]
    if x is not None and abs(x - y) > 1e-6 * max(1.0, abs(x)): bad.append(f"{k}: {x} vs {y}")
if bad: print("FAIL: eval layout", sys.argv[2], "; ".join(bad))
sys.exit(1 if bad else 0)
PY
    h5diff -q "$D/eval-origin-10/eval.h5" "$work/ev-$2$3$4/eval.h5" /forget10/gen_ids /forget10/gen_ids ||
        { echo "FAIL: generations differ under dp=$2 pp=$3 tp=$4"; fail=1; }
done
# relearning a model that was not unlearned raises its forget probability; a sweep
# skips finished points and redoes only a removed one
R="$D/relearn-10-ga-g0-s1/job.json"
"$MPIRUN" --oversubscribe -n 2 "$LETHE_BIN" relearn "$R" --set init.checkpoint="$D/origin/model.h5" \
    --set relearn.sweep_lr=1e-3,3e-3 --set output.dir="$work/rl" >"$work/rl1.log" 2>&1 ||
    { echo "FAIL: relearn sweep"; tail -3 "$work/rl1.log"; fail=1; }
/usr/bin/python3 - "$work/rl/n4_lr0.003_seed42/relearn.jsonl" <<'PY' || fail=1
import json, sys
c = [json.loads(l) for l in open(sys.argv[1])]
ok = c[-1]["forget_prob"] > c[0]["forget_prob"]
print(("" if ok else "FAIL: ") + f"relearn of the origin model: forget prob {c[0]['forget_prob']} -> {c[-1]['forget_prob']}")
sys.exit(0 if ok else 1)
PY
# an interrupted point (its last step and curve missing) redoes only that step
P="$work/rl/n4_lr0.001_seed42"
cp "$P/relearn.jsonl" "$work/rl-curve.jsonl"
rm "$P/relearn.jsonl" "$P/k2.json"
"$MPIRUN" --oversubscribe -n 2 "$LETHE_BIN" relearn "$R" --set init.checkpoint="$D/origin/model.h5" \
    --set relearn.sweep_lr=1e-3,3e-3 --set output.dir="$work/rl" >"$work/rl2.log" 2>&1
grep -q "1 point run, 1 already done" "$work/rl2.log" || { echo "FAIL: sweep resume"; tail -2 "$work/rl2.log"; fail=1; }
[ "$(grep -c 'relearn n4_lr0.001_seed42 step' "$work/rl2.log")" = 1 ] && grep -q 'seed42 step   2:' "$work/rl2.log" ||
    { echo "FAIL: the resumed point did not evaluate step 2 alone"; grep 'step ' "$work/rl2.log"; fail=1; }
cmp -s "$P/relearn.jsonl" "$work/rl-curve.jsonl" || { echo "FAIL: the resumed point's curve differs"; fail=1; }
# relearn.k: one run to the largest k, recorded at each; SIGUSR1 mid-point checkpoints the
# point and exits 0, and the resumed point's curve equals an uninterrupted run's
rk() { "$MPIRUN" --oversubscribe -n 2 "$LETHE_BIN" relearn "$R" --set init.checkpoint="$D/origin/model.h5" \
    --set relearn.k=1,4,40 "$@"; }
rk --set output.dir="$work/rk-a" >"$work/rk-a.log" 2>&1 || { echo "FAIL: relearn.k run"; tail -3 "$work/rk-a.log"; fail=1; }
K="n4_lr0.001_seed42"
[ "$(cut -d, -f1 "$work/rk-a/$K/relearn.jsonl" | tr '\n' ' ')" = '{"step":0 {"step":1 {"step":4 {"step":40 ' ] ||
    { echo "FAIL: relearn.k=1,4,40 curve steps"; cat "$work/rk-a/$K/relearn.jsonl"; fail=1; }
# mpirun itself in the background (it forwards the signal to the ranks), not a subshell
"$MPIRUN" --oversubscribe -n 2 "$LETHE_BIN" relearn "$R" --set init.checkpoint="$D/origin/model.h5" \
    --set relearn.k=1,4,40 --set output.dir="$work/rk-b" >"$work/rk-b1.log" 2>&1 &
pid=$!
for _ in $(seq 2400); do [ -f "$work/rk-b/$K/k1.json" ] && break; sleep 0.05; done
kill -USR1 $pid
wait $pid
rc=$?
[ $rc -eq 0 ] || { echo "FAIL: preempted relearn exit $rc"; tail -3 "$work/rk-b1.log"; fail=1; }
grep -q "preempted after step" "$work/rk-b1.log" && [ -f "$work/rk-b/checkpoint.h5" ] &&
    [ ! -f "$work/rk-b/$K/relearn.jsonl" ] || { echo "FAIL: relearn preemption"; tail -3 "$work/rk-b1.log"; fail=1; }
rk --set output.dir="$work/rk-b" >"$work/rk-b2.log" 2>&1 || { echo "FAIL: resumed relearn"; tail -3 "$work/rk-b2.log"; fail=1; }
grep -q "relearn $K: resuming from .*/rk-b/checkpoint.h5 at step" "$work/rk-b2.log" || { echo "FAIL: relearn did not resume its point"; fail=1; }
cmp -s "$work/rk-a/$K/relearn.jsonl" "$work/rk-b/$K/relearn.jsonl" ||
    { echo "FAIL: preempted and resumed relearn curve differs"; diff "$work/rk-a/$K/relearn.jsonl" "$work/rk-b/$K/relearn.jsonl"; fail=1; }
[ -f "$work/rk-b/checkpoint.h5" ] && { echo "FAIL: relearn checkpoint left after the point finished"; fail=1; }
[ $fail -eq 0 ] && echo "relearn: $(grep -o 'preempted after step [0-9]*' "$work/rk-b1.log"), resumed, curve equal"
out=$(rk --set relearn.k=4,2 --set output.dir="$work/rk-bad" 2>&1)
[ $? -eq 2 ] && [[ "$out" == *"relearn.k='4,2' must be increasing whole numbers"* ]] && [ ! -e "$work/rk-bad" ] ||
    { echo "FAIL: relearn.k=4,2 not refused: $out"; fail=1; }
[ $fail -eq 0 ] && echo "study_e2e: pipeline, re-run skip, unlearn resume, eval under 5 layouts, relearn, sweep resume and relearn preemption all pass"
exit $fail
