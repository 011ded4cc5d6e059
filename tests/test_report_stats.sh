#!/bin/bash
# tests/test_report_stats.sh — `lethe report`'s honest comparisons on a study with
# selection and report phases (tests/report_study_fixture.py writes it: four methods on
# two forget splits, one crippled, one a twin of another).
#
# Cases (each prints one PASS or FAIL line; the script fails unless PASS lines = CASES):
#   - lethe report exits 0 and draws fq_vs_mu.png (a PNG over 4 KiB);
#   - tests/report_stats_ref.py recomputes the comparisons, verdicts, Pareto fronts,
#     budgets, the CPU-seconds table and tables from the tree's files (8 checks, each a
#     PASS line of its own);
#   - a second run, and a run under mpirun on 2 ranks, write the same comparisons.csv
#     (the bootstrap is deterministic);
#   - the study moved to another folder (checkpoint paths now stale) finds every
#     budget.json under the study folder: the same budget.csv;
#   - the same tree without phase labels and selected.json (an old study): the report
#     picks by the best rule on the same seeds and says so, and still compares;
#   - bad inputs exit 2 with one 'lethe: ' line naming the file and key, nothing written:
#     a phase that is neither, selected.json without eligible, a negative token count,
#     two selected.json for one method and split, candidates not an array.
# Needs LETHE_BIN, MPIRUN, LETHE_PYTHON (set by the ctest harness) and gnuplot.
set -u
: "${LETHE_BIN:?LETHE_BIN must name the lethe binary}"
MPIRUN="${MPIRUN:-mpirun}"
py="${LETHE_PYTHON:-python3}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
CASES=20
pass=0

ok() { echo "PASS $*"; pass=$((pass + 1)); }
bad() { echo "FAIL $*"; }

report() { # dir [options]: output in $work/{stdout,stderr}
    "$LETHE_BIN" report "$@" >"$work/stdout" 2>"$work/stderr"
}

"$py" "$here/report_study_fixture.py" "$work/study" || { echo "FAIL the fixture"; exit 1; }
out="$work/study/report"
if report "$work/study"; then ok "lethe report exits 0 on the phased study"; else
    bad "lethe report exits $?:"; cat "$work/stderr"; fi
sig=$(head -c 8 "$out/fq_vs_mu.png" 2>/dev/null | od -An -tx1 | tr -d ' \n')
size=$(stat -c %s "$out/fq_vs_mu.png" 2>/dev/null || echo 0)
if [ "$sig" = 89504e470d0a1a0a ] && [ "$size" -gt 4096 ]; then ok "fq_vs_mu.png: $size bytes"
else bad "fq_vs_mu.png: signature '$sig', $size bytes"; fi

# the independent recomputation: its PASS lines count as cases
"$py" "$here/report_stats_ref.py" "$work/study" "$out" >"$work/ref.log" 2>&1
ref_rc=$?
cat "$work/ref.log"
pass=$((pass + $(grep -c '^PASS ' "$work/ref.log")))
[ $ref_rc -eq 0 ] || echo "report_stats_ref.py exits $ref_rc"

cp "$out/comparisons.csv" "$work/first.csv"
if report "$work/study" --no-plots && cmp -s "$work/first.csv" "$out/comparisons.csv"; then
    ok "a second run writes the same comparisons.csv"
else bad "a second run differs or fails"; cat "$work/stderr"; fi
if "$MPIRUN" --oversubscribe -n 2 "$LETHE_BIN" report "$work/study" --no-plots --out "$work/np2" \
    >"$work/stdout" 2>"$work/stderr" && cmp -s "$work/first.csv" "$work/np2/comparisons.csv"; then
    ok "2 ranks write the same comparisons.csv"
else bad "2 ranks differ or fail"; cat "$work/stderr"; fi

mv "$work/study" "$work/moved"
if report "$work/moved" --no-plots --out "$work/moved_out" &&
    cmp -s "$work/moved/report/budget.csv" "$work/moved_out/budget.csv"; then
    ok "a moved study finds its budget.json files under the study folder"
else bad "a moved study: budget.csv differs or the report fails"; cat "$work/stderr"; fi
mv "$work/moved" "$work/study"

# an old study: no phase, no setting, no selected.json
cp -r "$work/study" "$work/old"
rm -rf "$work/old/report" "$work"/old/select-*
"$py" - "$work/old" <<'PY'
import json, os, sys
for d, _, files in os.walk(sys.argv[1]):
    if "labels.json" in files:
        p = os.path.join(d, "labels.json")
        lab = json.load(open(p))
        lab.pop("phase", None), lab.pop("setting", None)
        json.dump(lab, open(p, "w"))
PY
if report "$work/old" --no-plots && grep -q "## Best setting per method" "$work/old/report/results.md" &&
    grep -q "the best-setting rule above, \*\*on these same seeds\*\*" "$work/old/report/results.md" &&
    grep -q "picked on the same seeds it is reported on" "$work/old/report/results.md" &&
    grep -q "(settings picked on these same seeds): log10 FQ" "$work/old/report/results.md" &&
    [ "$(wc -l <"$work/old/report/comparisons.csv")" -eq 13 ] &&
    ! grep -q "Selection phase" "$work/old/report/results.md"; then
    ok "an old study: the same-seed pick is named as such, and the methods still compared"
else bad "an old study:"; cat "$work/stderr"; grep -n "same seeds\|Best setting" "$work/old/report/results.md"; fi

expect_error() { # what want dir
    local what=$1 want=$2 dir=$3
    report "$dir" --no-plots
    local rc=$? lines
    lines=$(grep -c '^lethe: ' "$work/stderr")
    if [ $rc -eq 2 ] && [ "$lines" -eq 1 ] && grep -qF -- "$want" "$work/stderr" && [ ! -e "$dir/report" ]; then
        ok "$what: $(grep '^lethe: ' "$work/stderr")"
    else
        bad "$what: exit $rc, $lines 'lethe: ' lines, want '$want':"
        cat "$work/stderr"
    fi
}
json_set() { # file python-statement-on-j: edits one JSON file of a copy
    "$py" -c "import json,sys; p=sys.argv[1]; j=json.load(open(p)); $2; json.dump(j, open(p,'w'))" "$1"
}
fresh() {
    rm -rf "${work:?}/$1"
    cp -r "$work/study" "$work/$1"
    rm -rf "$work/$1/report"
    echo "$work/$1"
}
d=$(fresh phase)
sed -i 's/"phase": "report"/"phase": "final"/' "$d/eval-05-npo-p1-s11/labels.json"
expect_error "an unknown phase" "eval-05-npo-p1-s11/labels.json': key 'phase' = final, expected \"selection\" or \"report\"" "$d"
d=$(fresh eligible)
json_set "$d/select-05-npo/selected.json" "j.pop('eligible')"
expect_error "selected.json without eligible" "select-05-npo/selected.json': key 'eligible' is missing, expected true or false" "$d"
d=$(fresh tokens)
json_set "$d/unlearn-05-npo-p1-s11/budget.json" "j['tokens'] = -1"
expect_error "a negative token count" "unlearn-05-npo-p1-s11/budget.json': key 'tokens' = -1, expected a number >= 0" "$d"
d=$(fresh twice)
cp -r "$d/select-05-npo" "$d/select-05-npo-again"
expect_error "two selected.json for one method and split" "both hold the selection of npo on forget05" "$d"
d=$(fresh cand)
json_set "$d/select-10-twin/selected.json" "j['candidates'] = {}"
expect_error "candidates not an array" "select-10-twin/selected.json': key 'candidates' is an object, expected an array" "$d"

echo "test_report_stats: $pass PASS of $CASES cases"
[ "$pass" -eq "$CASES" ]
