#!/usr/bin/env bash
# tests/markov_e2e.sh — a shortened `markov` study (jobs/studies/markov.json) end to end.
#
# The mixture of Markov chains (retain chain on states {0,1,2}, forget chain 1 on
# {3,4,5} with long rows, forget chain 2 on {6,7,8} with short rows, leakage 0.2):
# `lethe study` on 2 ranks runs synth -> origin (all chains) and retrain (retain chain
# only) -> NPO and SimNPO unlearning of both forget chains (the same budget) -> eval
# (per-chain KL to the true transition matrices) -> report. Asserts:
#   - the origin learned the forget chains: its per-token KL on each forget chain is
#     below half the retrained model's (which never saw them);
#   - every method moves the model away from the forget chains: KL on the pooled forget
#     chains above the origin's, and forget probability below it;
#   - the report's tables name every method and markov_kl.png is a PNG;
#   - the origin's eval summary is the same under tp 2 and pp 2 (KL to 1e-6 relative);
#   - the KL values equal an independent PyTorch computation from the exported weights
#     and the chains in the file (tests/markov_kl_ref.py, 1e-4 relative).
# Env: MPIRUN, LETHE_BIN, LETHE_PYTHON, LETHE_SOURCE_DIR (set by ctest).
set -uo pipefail
: "${MPIRUN:?MPIRUN is not set}"
: "${LETHE_BIN:?LETHE_BIN is not set}"
src="${LETHE_SOURCE_DIR:-$(dirname "$0")/..}"
py="${LETHE_PYTHON:-/usr/bin/python3}"
export OMPI_MCA_orte_execute_quiet=1
work="$(mktemp -d "${TMPDIR:-/tmp}/lethe-markov.XXXXXX")"
trap 'rm -rf "$work"' EXIT
fail=0
say_fail() {
    echo "FAIL: $*"
    fail=1
}

# the shipped study, made small: fewer rows and steps, one lr, one seed
"$py" - "$src/jobs/studies/markov.json" "$work/study.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
s["study"] = "markov-short"
s["synth"]["synth.markov_retain"] = 240
s["base"]["train"] = {"steps": 160, "batch_size": 32, "log_every": 80}
s["base"]["optim"]["warmup_steps"] = 10
s["base"]["unlearn"] = {"epochs": 1, "warmup_epochs": 0, "batch_size": 16, "retain_batch_size": 16}
s["grid"] = {"optim.lr": [0.002]}
s["seeds"] = [1]
json.dump(s, open(sys.argv[2], "w"), indent=1)
EOF
if ! timeout 900 "$MPIRUN" --oversubscribe -n 2 "$LETHE_BIN" study "$work/study.json" \
    --dir "$work/s" >"$work/study.log" 2>&1; then
    tail -n 30 "$work/study.log"
    say_fail "lethe study failed"
    exit 1
fi
grep -c "^==>" "$work/study.log" | sed 's/^/jobs run: /'

# summary values: kl KEY of a run folder, prob of the pooled forget chains. A value that
# is not there, or not a number, fails the test (an empty or "None" value would pass some
# of awk's comparisons as a string)
val() {
    "$py" -c "import json,sys; s=json.load(open(sys.argv[1])); print(float(eval(sys.argv[2])))" "$@" ||
        { echo "FAIL: no number $2 in $1" >&2 && return 1; }
}
S="$work/s"
o1="$(val "$S/eval-origin-forget/summary.json" "s['markov']['kl_forget1']")" || fail=1
o2="$(val "$S/eval-origin-forget/summary.json" "s['markov']['kl_forget2']")" || fail=1
of="$(val "$S/eval-origin-forget/summary.json" "s['markov']['kl_forget']")" || fail=1
op="$(val "$S/eval-origin-forget/summary.json" "s['splits']['forget_chains']['prob']")" || fail=1
r1="$(val "$S/eval-retrain-forget/summary.json" "s['markov']['kl_forget1']")" || fail=1
r2="$(val "$S/eval-retrain-forget/summary.json" "s['markov']['kl_forget2']")" || fail=1
echo "origin:  KL forget1 $o1  forget2 $o2  (pooled $of, forget prob $op)"
echo "retrain: KL forget1 $r1  forget2 $r2"
awk -v o="$o1" -v r="$r1" -v p="$o2" -v q="$r2" 'BEGIN { exit !(o < 0.5 * r && p < 0.5 * q) }' ||
    say_fail "the origin did not learn the forget chains (KL $o1, $o2 vs retrain $r1, $r2)"
for m in npo simnpo; do
    d="$(ls -d "$S"/eval-forget-$m-* | head -n 1)"
    kf="$(val "$d/summary.json" "s['markov']['kl_forget']")" || fail=1
    kr="$(val "$d/summary.json" "s['markov']['kl_retain']")" || fail=1
    pf="$(val "$d/summary.json" "s['splits']['forget_chains']['prob']")" || fail=1
    echo "$m: KL forget (pooled) $kf  retain $kr  forget prob $pf"
    awk -v a="$kf" -v b="$of" -v p="$pf" -v q="$op" 'BEGIN { exit !(a > b && p < q) }' ||
        say_fail "$m did not move away from the forget chains (KL $kf vs origin $of, prob $pf vs $op)"
    grep -q "$m" "$S/report/results.md" || say_fail "the report does not name $m"
done
head -c 8 "$S/report/markov_kl.png" | od -An -tx1 | grep -q "89 50 4e 47" ||
    say_fail "report/markov_kl.png is not a PNG"

# the same checkpoint under other layouts
job="$S/eval-origin-forget/job.json"
for lay in "tp 2" "pp 2"; do
    read -r k v <<<"$lay"
    timeout 300 "$MPIRUN" --oversubscribe -n 2 "$LETHE_BIN" eval "$job" --set layout.dp=1 \
        --set "layout.$k=$v" --set output.dir="\"$work/ev-$k\"" >"$work/ev-$k.log" 2>&1 ||
        { cat "$work/ev-$k.log"; say_fail "eval under $k=$v"; continue; }
    "$py" - "$S/eval-origin-forget/summary.json" "$work/ev-$k/summary.json" "$k=$v" <<'EOF' || fail=1
import json, sys
a, b = (json.load(open(p))["markov"] for p in sys.argv[1:3])
worst = max(abs(a[k] - b[k]) / abs(a[k]) for k in a)
print(f"eval under {sys.argv[3]}: KL worst relative difference to dp 2: {worst:.2e}")
if worst > 1e-6:
    print("FAIL: layouts disagree"); sys.exit(1)
EOF
done

# an independent computation of the KL values
timeout 300 "$MPIRUN" --oversubscribe -n 1 "$LETHE_BIN" convert "$job" --set layout.dp=1 \
    --from "$S/origin/model.h5" --to "$work/origin.safetensors" >"$work/convert.log" 2>&1 ||
    { cat "$work/convert.log"; say_fail "lethe convert"; }
"$py" "$src/tests/markov_kl_ref.py" "$work/origin.safetensors" "$S/data/markov.h5" "$job" \
    "$S/eval-origin-forget/summary.json" || say_fail "KL differs from the PyTorch computation"
[ $fail -eq 0 ] && echo "markov_e2e: PASS"
exit $fail
