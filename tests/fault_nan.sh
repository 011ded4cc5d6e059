#!/bin/bash
# A gradient becomes NaN (LETHE_FAULT=nan-at-step:K:R:TENSOR writes NaN into TENSOR's
# gradient on world rank R after the backward of step K):
#  1. optim.on_nonfinite "stop" (the default), tp=2, dp=2 and one rank: the job exits non-zero
#     with exactly one line naming the step, the tensor and the rank (under dp=2 too,
#     where the gradient sum would spread the NaN to the other replica), leaves the
#     last checkpoint (step 4) and no model.h5; a run started again resumes from it and
#     ends bitwise equal to an uninterrupted run.
#  2. "skip": the job completes (exit 0) with one warning naming step, tensor and rank;
#     the log marks that step skipped (gradient norm null: JSON has no NaN); skipping
#     the LAST step leaves weights and AdamW moments bitwise equal to the checkpoint of
#     the step before.
#  3. A malformed LETHE_FAULT is refused (exit 2, one line).
# Needs MPIRUN, LETHE_BIN, LETHE_SOURCE_DIR.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/fault_lib.sh"
run() { train_n 2 "$@"; }
tensor=model.layers.1.mlp.down_proj.weight

run --set train.steps=10 --set checkpoint.every=4 --set output.dir="$work/ref" >"$work/ref.log" 2>&1 ||
    { echo "FAIL: uninterrupted run"; cat "$work/ref.log"; exit 1; }

# 1. stop, under tp=2 (the demo layout) and dp=2
for layout in tp dp; do
    d="$work/stop-$layout"
    lay=()
    [ $layout = dp ] && lay=(--set layout.tp=1 --set layout.dp=2)
    LETHE_FAULT=nan-at-step:7:1:$tensor run --set train.steps=10 --set checkpoint.every=4 \
        "${lay[@]}" --set output.dir="$d" >"$d.out" 2>"$d.err"
    rc=$?
    [ $rc -ne 0 ] || bad "stop ($layout): exit 0 after a NaN gradient"
    n=$(grep -c "^lethe: rank " "$d.err")
    line=$(grep "^lethe: rank " "$d.err" | head -1)
    [ "$n" -eq 1 ] || bad "stop ($layout): $n error lines on stderr, expected 1: $(cat "$d.err")"
    case "$line" in
    "lethe: rank 1 ("*"): step 7: non-finite gradient of tensor '$tensor' "*) ;;
    *) bad "stop ($layout): the message does not name rank 1, step 7 and the tensor: $line" ;;
    esac
    [ -f "$d/checkpoint.h5" ] || bad "stop ($layout): the last checkpoint is gone"
    [ -f "$d/model.h5" ] && bad "stop ($layout): model.h5 written by a stopped job"
    [ -f "$d/train_log.jsonl" ] && bad "stop ($layout): the log was completed by a stopped job"
    echo "stop ($layout): exit $rc: $line"
done
# named N R TENSOR [--set ...]: a NaN in TENSOR's gradient on rank R of N at step 3 stops
# the job with one line naming rank R, step 3 and TENSOR; counts the cases that did.
named=0
named() {
    local n=$1 r=$2 tn=$3
    shift 3
    local d="$work/named-$n-$r-$tn-$named"
    LETHE_FAULT=nan-at-step:3:$r:$tn train_n "$n" --set train.steps=4 --set output.dir="$d" \
        "$@" >"$d.out" 2>"$d.err"
    local rc=$? line
    line=$(grep "^lethe: rank " "$d.err")
    case "$rc:$line" in
    [1-9]*":lethe: rank $r ("*"): step 3: non-finite gradient of tensor '$tn' "*) named=$((named + 1)) ;;
    *) bad "$n rank(s) $*, NaN in $tn on rank $r: exit $rc, expected one line naming rank $r and the tensor: $(cat "$d.err")" ;;
    esac
}

# 1b. dp=2 splits the update: the reduce-scatter finds the NaN in its own passes, each
# value where the sum first reads it. Rank R's own share (R) is read on rank R; the share
# it sends first (R-1) is read on the next rank, which sends what it found back. The
# small model's 2 layers put the embedding in share 0 and layer 1's down_proj in share 1.
for c in 0:model.layers.1.mlp.down_proj.weight 1:model.embed_tokens.weight \
    0:model.embed_tokens.weight 1:model.layers.1.mlp.down_proj.weight; do
    named 2 "${c%%:*}" "${c#*:}" --set layout.tp=1 --set layout.dp=2
done
[ $named -eq 4 ] || bad "dp 2: $named of 4 cases named the rank and tensor"
echo "dp 2: $named of 4 NaNs (own share and the share sent first, on each rank) named by rank and tensor"
# 1c. With nothing to sum over replicas (dp 1), the gradient norm's pass finds the NaN:
# on one rank, and under tp 2 in a split tensor (counted in the norm on every rank) and
# in a replicated one (counted on tp rank 0 only, scanned on rank 1).
ln=model.layers.1.post_attention_layernorm.weight
for c in 1:0:$tensor 1:0:$ln 2:0:$ln 2:1:$ln 2:0:model.embed_tokens.weight; do
    n=${c%%:*} rt=${c#*:}
    named "$n" "${rt%%:*}" "${rt#*:}" --set layout.tp="$n" --set layout.dp=1
done
[ $named -eq 9 ] || bad "dp 1: $((named - 4)) of 5 cases named the rank and tensor"
echo "dp 1: $((named - 4)) of 5 NaNs (1 rank; tp 2, split and replicated tensors on each rank) named by rank and tensor"

d="$work/stop-tp"
run --set train.steps=10 --set checkpoint.every=4 --set output.dir="$d" >"$d.resume" 2>&1 ||
    bad "the run after the stop failed: $(cat "$d.resume")"
grep -q "resuming from .* at step 4" "$d.resume" || bad "the run after the stop did not resume at step 4"
for g in /params /adam_m /adam_v; do
    h5diff -q "$work/ref/model.h5" "$d/model.h5" $g $g >/dev/null ||
        bad "$g after stop and resume differs from the uninterrupted run"
done

# 2. skip the last step (8): the result is the checkpoint of step 7
LETHE_FAULT=abort-after-step:7 run --set train.steps=8 --set checkpoint.every=7 \
    --set output.dir="$work/s7" >"$work/s7.log" 2>&1
[ -f "$work/s7/checkpoint.h5" ] || bad "no checkpoint at step 7: $(cat "$work/s7.log")"
d="$work/skip"
LETHE_FAULT=nan-at-step:8:0:$tensor run --set train.steps=8 --set optim.on_nonfinite=skip \
    --set output.dir="$d" >"$d.out" 2>"$d.err"
rc=$?
[ $rc -eq 0 ] || bad "skip: exit $rc: $(cat "$d.err")"
line=$(grep "^lethe: rank " "$d.err")
case "$line" in
"lethe: rank 0 ("*"): warning: step 8: non-finite gradient of tensor '$tensor' "*"step skipped"*) ;;
*) bad "skip: expected one warning naming rank 0, step 8 and the tensor, got: $line" ;;
esac
last=$(tail -1 "$d/train_log.jsonl")
case "$last" in
'{"step":8,'*'"grad_norm":null,'*'"skipped":true}') ;;
*) bad "skip: the log's last line does not mark step 8 skipped: $last" ;;
esac
[ "$(grep -c skipped "$d/train_log.jsonl")" -eq 1 ] || bad "skip: more than one step marked skipped"
for g in /params /adam_m /adam_v; do
    h5diff -q "$work/s7/checkpoint.h5" "$d/model.h5" $g $g >/dev/null ||
        bad "skip: $g after the skipped step 8 differs from the checkpoint of step 7"
done
echo "skip: exit $rc: $line"

# 3. a malformed switch is an error, not silence
for f in nan-at-step:x kill-after-step:3:9 abort-after-step:3:1 explode:3; do
    LETHE_FAULT=$f run --set train.steps=2 --set output.dir="$work/m" >"$work/m.out" 2>"$work/m.err"
    rc=$?
    [ $rc -eq 2 ] && [ "$(grep -c "LETHE_FAULT='$f'" "$work/m.err")" -eq 1 ] ||
        bad "LETHE_FAULT=$f: exit $rc, expected 2 and one line: $(cat "$work/m.err")"
done
[ -e "$work/m" ] && bad "a refused LETHE_FAULT left an output folder"
[ $fail -eq 0 ] && echo "fault_nan: stop names step, tensor and rank (tp and dp), keeps the checkpoint, resume bitwise equal; skip leaves the step-7 weights bitwise"
exit $fail
