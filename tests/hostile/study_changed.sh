#!/usr/bin/env bash
# tests/hostile/study_changed.sh — an edited study must not relabel finished results
# (`lethe study` and `lethe slurm`, io/study.c study_write_configs), at N ranks.
#
# usage: study_changed.sh N      env: MPIRUN, LETHE_BIN, LETHE_SOURCE_DIR
#
# The mini study is expanded (--dry-run: folders and job.json, no job runs) and five jobs
# are marked finished (.done): the GA unlearning with its eval and relearn attack, the
# origin's eval and the report. The study is then edited (tests/hostile/studies/
# changed_lr.json: GA's optim.lr 0.001 -> 0.002) and run again (after a run under another
# layout, --set layout.tp=1, which keeps the finished jobs: layouts give the same results):
#   - study and slurm --dry-run refuse it: non-zero exit, one "lethe: " line naming the
#     job and the key with both values, and not one job.json or labels.json changed;
#   - study --rerun-changed moves the GA unlearning and the finished jobs depending on it
#     (eval, relearn, report) aside to <job>.old-1 with their files as they were, writes
#     the new configs (lr 0.002) in fresh folders, and leaves eval-origin-10 (unchanged)
#     finished where it was; a further run has nothing finished that changed (exit 0).
# One PASS/FAIL line per check; the closing line "study_changed npN: K passed, 0 failed".
set -u
n="${1:?usage: study_changed.sh N}"
: "${MPIRUN:?}" "${LETHE_BIN:?}"
src="${LETHE_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
export OMPI_MCA_orte_execute_quiet=1
work="$(mktemp -d "${TMPDIR:-/tmp}/lethe-study-changed.XXXXXX")"
trap 'rm -rf "$work"' EXIT
D="$work/mini" pass=0 fail=0
check() { # NAME CONDITION-STATUS [detail]
    if [ "$2" = 0 ]; then
        echo "PASS $1"
        pass=$((pass + 1))
    else
        echo "FAIL $1 ${3:-}"
        fail=$((fail + 1))
        return 1
    fi
}
lethe() { timeout 120 "$MPIRUN" --oversubscribe -n "$n" "$LETHE_BIN" "$@" >"$work/out" 2>"$work/err"; }
sums() { (cd "$D" && md5sum -- */job.json */labels.json); }

lethe study "$src/tests/data/mini-study.json" --dir "$D" --dry-run
check "expand the mini study" $? "$(cat "$work/err")" || exit 1
for j in unlearn-10-ga-g0-s1 eval-10-ga-g0-s1 relearn-10-ga-g0-s1 eval-origin-10 report; do
    echo done >"$D/$j/.done"
done
# another layout does not change results: the finished jobs stay finished, as they were
u="$(md5sum <"$D/unlearn-10-ga-g0-s1/job.json")"
lethe study "$src/tests/data/mini-study.json" --dir "$D" --dry-run --set layout.tp=1
rc=$?
[ $rc = 0 ] && [ "$(md5sum <"$D/unlearn-10-ga-g0-s1/job.json")" = "$u" ] && grep -q "(10 to run)" "$work/out"
check "a run under another layout keeps the finished jobs (exit $rc)" $? "$(cat "$work/err")"
before="$(sums)"
[ "$(echo "$before" | wc -l)" -ge 14 ] || { echo "FAIL the study folder lacks its job files"; exit 1; }
want="job 'unlearn-10-ga-g0-s1' is finished but job.json key 'optim.lr' was 0.001, now 0.002"
for cmd in study slurm; do
    lethe "$cmd" "$src/tests/hostile/studies/changed_lr.json" --dir "$D" --dry-run
    rc=$?
    [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $rc -lt 128 ]
    check "$cmd: the edited study is refused (exit $rc)" $?
    lines="$(grep -c . "$work/err")"
    [ "$lines" = 1 ] && grep -q "^lethe: .*$want" "$work/err"
    check "$cmd: one 'lethe: ' line naming the job and the key" $? "$(head -c 600 "$work/err")"
    [ "$(sums)" = "$before" ] && ! ls "$D"/*.old-* >/dev/null 2>&1
    check "$cmd: no job.json or labels.json changed, nothing moved" $?
done

lethe study "$src/tests/hostile/studies/changed_lr.json" --dir "$D" --dry-run --rerun-changed
check "--rerun-changed exits 0" $? "$(cat "$work/err")"
ok=0
for j in unlearn-10-ga-g0-s1 eval-10-ga-g0-s1 relearn-10-ga-g0-s1 report; do
    [ -f "$D/$j.old-1/.done" ] && [ ! -e "$D/$j/.done" ] || ok=1
done
check "--rerun-changed: the changed job and its finished dependants moved to <job>.old-1" $ok
grep -q '"lr":[[:space:]]*0.001' "$D/unlearn-10-ga-g0-s1.old-1/job.json" &&
    grep -q '"lr":[[:space:]]*0.002' "$D/unlearn-10-ga-g0-s1/job.json" &&
    grep -q '"lr":[[:space:]]*0.001' "$D/eval-10-ga-g0-s1.old-1/labels.json" &&
    grep -q '"lr":[[:space:]]*0.002' "$D/eval-10-ga-g0-s1/labels.json"
check "--rerun-changed: the old files kept as they were, the new configs in fresh folders" $?
[ -f "$D/eval-origin-10/.done" ] && [ ! -e "$D/eval-origin-10.old-1" ] &&
    [ ! -e "$D/unlearn-10-npo-g0-s1.old-1" ]
check "--rerun-changed: unchanged jobs stay where they were" $?
lethe study "$src/tests/hostile/studies/changed_lr.json" --dir "$D" --dry-run
check "a further run has nothing finished that changed" $? "$(cat "$work/err")"

echo "study_changed np$n: $pass passed, $fail failed of $((pass + fail)) checks"
[ $fail -eq 0 ] && [ $pass -eq 13 ]
