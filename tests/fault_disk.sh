#!/bin/bash
# Out of disk space: `lethe train` (2 ranks) writes into a small tmpfs that a filler file
# has left F bytes free (8 steps, a checkpoint at step 4 of size S, the final model).
# F runs over the writes of the job (lock and config, provenance, log, the checkpoint,
# a complete run), then TRIALS random values in (S, 2S): the checkpoint is on disk and
# the final model's temporary file fills the disk part-way. For every F:
#   - the job ends (no hang, 60 s) with exit 0 and a complete output, or non-zero with
#     one error line on stderr naming the file (the same line from each rank at most:
#     a collective HDF5 write that fails everywhere is reported by each rank);
#   - nothing incomplete carries a final name: a model.h5 left is bitwise the reference
#     model, a train_log.jsonl has all 8 lines of JSON, provenance says "completed" only
#     if the job succeeded; config.json and provenance.json, when there, parse;
#   - when a checkpoint.h5 was left, a new run in the same folder (filler removed)
#     resumes from it and ends with weights and moments bitwise equal to an
#     uninterrupted run's: it is the complete last one (ckpt_load checks digests).
# Root only (mount); exit 77 (skipped) when not root or when tmpfs cannot be mounted.
#
# usage: fault_disk.sh [TRIALS]   (default 3; the note quotes 20)
set -u
trials=${1:-3}
[ "$(id -u)" = 0 ] || { echo "SKIP: mounting a tmpfs needs root"; exit 77; }
source "$(dirname "${BASH_SOURCE[0]}")/fault_lib.sh"
mnt="$work/mnt"
mkdir -p "$mnt"
mount -t tmpfs -o size=8m tmpfs "$mnt" 2>/dev/null || { rm -rf "$work"; echo "SKIP: cannot mount a tmpfs"; exit 77; }
trap 'umount "$mnt" 2>/dev/null; rm -rf "$work"' EXIT
run() { timeout 60 "$MPIRUN" --oversubscribe -n 2 "$LETHE_BIN" train "$cfg" "${small[@]}" \
    --set train.steps=8 --set checkpoint.every=4 "$@"; }
run --set output.dir="$work/ref" >"$work/ref.log" 2>&1 || { echo "FAIL: reference run"; cat "$work/ref.log"; exit 1; }
S=$(stat -c %s "$work/ref/model.h5")
# free space for each write: nothing, the config, + provenance, + a few log lines, a
# part of the first checkpoint, past it, and around the final model
frees="0 4096 12288 $((S / 2)) $((S + 65536)) $((3 * S))"
for t in $(seq "$trials"); do frees="$frees $((S + 16384 + RANDOM * (S - 32768) / 32768))"; done

jsonok() { /usr/bin/python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$1" 2>/dev/null; }
n=0 failed_runs=0 midckpt=0 recovered=0
for F in $frees; do
    n=$((n + 1))
    rm -rf "${mnt:?}"/*
    total=$(df -B1 --output=avail "$mnt" | tail -1)
    fill=$((total - F))
    [ $fill -gt 0 ] && head -c $fill /dev/zero >"$mnt/filler" 2>/dev/null
    d="$mnt/run"
    run --set output.dir="$d" >"$work/out" 2>"$work/err"
    rc=$?
    msg="free $F bytes"
    bad() { echo "FAIL: $msg: $*"; fail=1; } # naming the fill level
    [ $rc -eq 124 ] && bad "timed out (hang)"
    if [ $rc -eq 0 ]; then
        [ -f "$d/model.h5" ] && [ -f "$d/train_log.jsonl" ] || bad "exit 0 without model.h5 and the log"
        grep -Eq '"status":[[:space:]]*"completed"' "$d/provenance.json" || bad "exit 0, provenance not completed"
    else
        failed_runs=$((failed_runs + 1))
        # one error; a collective write that fails on several ranks may print it from
        # each (the same line but for the rank prefix)
        lines=$(grep "^lethe: rank " "$work/err" | sed 's/^lethe: rank [0-9]* ([^)]*): //' | sort -u | wc -l)
        [ "$lines" -eq 1 ] || bad "exit $rc with $lines distinct error lines: $(cat "$work/err")"
        grep "^lethe: rank " "$work/err" | grep -qi "no space left\|cannot write\|cannot create\|failed" ||
            bad "the error line does not say what failed: $(grep "^lethe: " "$work/err")"
        # a final name only on a complete file (the failure may come after it)
        if [ -e "$d/model.h5" ]; then
            for g in /params /adam_m /adam_v; do
                h5diff -q "$work/ref/model.h5" "$d/model.h5" $g $g >/dev/null || bad "an incomplete model.h5 ($g)"
            done
        fi
        if [ -e "$d/train_log.jsonl" ]; then
            [ "$(wc -l <"$d/train_log.jsonl")" -eq 8 ] || bad "an incomplete train_log.jsonl"
            /usr/bin/python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$d/train_log.jsonl" ||
                bad "train_log.jsonl has a line that is not JSON"
        fi
        [ -f "$d/provenance.json" ] && grep -Eq '"status":[[:space:]]*"completed"' "$d/provenance.json" &&
            bad "provenance says completed"
        [ -e "$d/checkpoint.h5" ] && ls "$d"/*.h5.tmp >/dev/null 2>&1 && midckpt=$((midckpt + 1))
    fi
    for j in config.json provenance.json; do
        [ -e "$d/$j" ] && ! jsonok "$d/$j" && bad "$j is there but is not valid JSON"
    done
    echo "$msg: exit $rc, left: $(cd "$d" 2>/dev/null && ls -A | tr '\n' ' '); $(grep "^lethe: rank " "$work/err" | head -1 | cut -c1-200)"
    # room again: a checkpoint left behind must be complete -- the same folder finishes
    # from it, bitwise equal to the reference
    rm -f "$mnt/filler"
    [ $rc -ne 0 ] && [ -e "$d/checkpoint.h5" ] || continue
    recovered=$((recovered + 1))
    run --set output.dir="$d" >"$work/out2" 2>&1 || { bad "the run after freeing space failed: $(tail -3 "$work/out2")"; continue; }
    for g in /params /adam_m /adam_v; do
        h5diff -q "$work/ref/model.h5" "$d/model.h5" $g $g >/dev/null || bad "$g differs after the disk-full run and a resume"
    done
done
echo "fault_disk: $n fill levels, $failed_runs ended by the full disk ($midckpt in the middle of a checkpoint write with the previous one intact), $recovered resumed from the checkpoint left, bitwise equal; $([ $fail -eq 0 ] && echo pass || echo FAIL)"
exit $fail
