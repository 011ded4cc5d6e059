#!/bin/bash
# A job killed mid-run and started again resumes from its last checkpoint and
# ends with weights and AdamW moments bitwise equal to an uninterrupted run.
# Also: the abort ends every rank (non-zero exit, no hang) and leaves the last
# complete checkpoint loadable. Needs MPIRUN, LETHE_BIN, LETHE_SOURCE_DIR.
set -u
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cfg="$LETHE_SOURCE_DIR/jobs/configs/demo.json"
run() { OMPI_MCA_orte_execute_quiet=1 "$MPIRUN" --oversubscribe -n 2 "$LETHE_BIN" train "$cfg" \
    --set train.steps=30 --set checkpoint.every=10 --set train.log_every=100 "$@"; }
fail=0
run --set output.dir="$work/a" >"$work/a.log" 2>&1 || { echo "FAIL: uninterrupted run"; cat "$work/a.log"; exit 1; }
LETHE_FAULT=abort-after-step:25 timeout 120 bash -c "$(declare -f run); cfg='$cfg'; run --set output.dir='$work/b'" \
    >"$work/b1.log" 2>&1
rc=$?
if [ $rc -eq 0 ] || [ $rc -eq 124 ]; then
    echo "FAIL: the injected abort gave exit $rc (expected non-zero, no timeout)"; fail=1
fi
[ -f "$work/b/checkpoint.h5" ] || { echo "FAIL: no checkpoint.h5 after the abort"; fail=1; }
[ -f "$work/b/model.h5" ] && { echo "FAIL: model.h5 exists after an aborted run"; fail=1; }
run --set output.dir="$work/b" >"$work/b2.log" 2>&1 || { echo "FAIL: resumed run"; cat "$work/b2.log"; exit 1; }
grep -q "resuming from .* at step 20" "$work/b2.log" || { echo "FAIL: did not resume at step 20"; cat "$work/b2.log"; fail=1; }
[ -f "$work/b/checkpoint.h5" ] && { echo "FAIL: checkpoint.h5 left after completion"; fail=1; }
for g in /params /adam_m /adam_v; do
    if ! h5diff -q "$work/a/model.h5" "$work/b/model.h5" "$g" "$g"; then
        echo "FAIL: $g differs between the uninterrupted and the resumed run"; fail=1
    fi
done
# steps 21..25 ran twice (before the abort and after the resume); the resume cut the log
# back to its checkpoint's step 20, so each step 1..30 is logged once, in order
want="$(seq 1 30)"
got="$(grep -o '^{"step":[0-9]*' "$work/b/train_log.jsonl" | cut -d: -f2)"
[ "$got" = "$want" ] && [ "$(wc -l <"$work/b/train_log.jsonl")" -eq 30 ] ||
    { echo "FAIL: train_log.jsonl does not log steps 1..30 once each:" $got; fail=1; }
# preemption: SIGUSR1 to mpirun (forwarded to the ranks, as Slurm's warning
# signal is) -> checkpoint at the next step boundary, exit 0, then resume
OMPI_MCA_orte_execute_quiet=1 "$MPIRUN" --oversubscribe -n 2 "$LETHE_BIN" train "$cfg" \
    --set train.steps=30 --set checkpoint.every=10 --set train.log_every=100 \
    --set output.dir="$work/c" >"$work/c1.log" 2>&1 &
pid=$!
for _ in $(seq 600); do
    [ -f "$work/c/train_log.jsonl.partial" ] && [ "$(wc -l <"$work/c/train_log.jsonl.partial")" -ge 2 ] && break
    sleep 0.05
done
kill -USR1 $pid
wait $pid
rc=$?
[ $rc -eq 0 ] || { echo "FAIL: preempted run exit $rc"; cat "$work/c1.log"; fail=1; }
grep -q "preempted after step" "$work/c1.log" || { echo "FAIL: no preemption message"; cat "$work/c1.log"; fail=1; }
[ -f "$work/c/checkpoint.h5" ] || { echo "FAIL: no checkpoint.h5 after preemption"; fail=1; }
run --set output.dir="$work/c" >"$work/c2.log" 2>&1 || { echo "FAIL: run after preemption"; cat "$work/c2.log"; fail=1; }
for g in /params /adam_m /adam_v; do
    h5diff -q "$work/a/model.h5" "$work/c/model.h5" "$g" "$g" ||
        { echo "FAIL: $g differs after preemption and resume"; fail=1; }
done
[ $fail -eq 0 ] && echo "preemption: $(grep -o 'preempted after step [0-9]*' "$work/c1.log"), resumed, bitwise equal"
[ $fail -eq 0 ] && echo "resume: aborted at step 25, resumed at 20, final weights and moments bitwise equal, each step logged once"
exit $fail
