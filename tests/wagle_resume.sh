#!/usr/bin/env bash
# tests/wagle_resume.sh — WAGLE's mask as part of the checkpoint (io/checkpoint_mask.c,
# jobs/unlearn_wagle.c), through the real command line at 1 and 2 ranks. graddiff + WAGLE
# (p 0.9), 10 steps, checkpoint every 4; a cut run aborts after step 7 (LETHE_FAULT) and
# is resumed from its step-4 checkpoint.h5. u1 is the uninterrupted 1-rank run.
# 1. Saved at pp 2 (2 ranks), resumed on 1 rank; and saved on 1 rank, resumed at pp 2:
#    the resumed run reads the mask from checkpoint.h5 (no scoring line) and its final
#    weights, moments and mask equal u1's bitwise (pp 2 with one micro-batch computes
#    what 1 rank computes, bit for bit, so any difference is the resume's).
# 2. Saved at tp 2, resumed at pp 2: the mask read back is the saved one (h5diff, exact)
#    and u1's, and from the resume on no weight outside it moves (tp 2 rounds its sums
#    otherwise than 1 rank, so the weights are not compared bitwise with u1's).
# 3. A checkpoint without a mask (a plain graddiff run, pp 2) resumed with WAGLE on 1 rank:
#    the mask is scored from the starting weights as a fresh run does (u1's mask,
#    exactly), and no weight outside it moves after the resume.
# 4. A checkpoint with a mask, on 1 and 2 ranks: resumed without WAGLE (p 0) or with
#    another p: exit 2; a byte of /wagle_mask flipped: the digest catches it, exit 1;
#    /wagle_mask removed: exit 1 (its /job values remain, covered by the meta digest).
#    Each ends with one "lethe: " line on stderr and leaves the checkpoint as it was.
#
# Env: MPIRUN, LETHE_BIN (set by ctest).
WORK_PREFIX=lethe-wagle-resume LETHE_TIMEOUT=400
# shellcheck source=tests/unlearn_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/unlearn_lib.sh"
# stderr is counted line by line: no warning about a forced OpenBLAS core on top
unset OPENBLAS_CORETYPE
nfail=0 # FAIL lines so far: a case passes when it adds none
say_fail() {
    echo "FAIL: $*"
    fail=1 nfail=$((nfail + 1))
}
wagle_json "$work/wagle.json"
pp2=(--set layout.pp=2)
tp2=(--set layout.tp=2)
run() { # LOGNAME NP OUT [--set ...]: exit status of lethe unlearn
    local log="$1" np="$2" out="$3"
    shift 3
    lethe "$np" unlearn "$work/wagle.json" --set output.dir="\"$work/$out\"" --set checkpoint.every=4 \
        "$@" >"$work/$log.log" 2>&1
}
cut() { # NP OUT [--set ...]: aborted after step 7, checkpoint.h5 of step 4 left
    local np="$1" out="$2"
    shift 2
    LETHE_FAULT=abort-after-step:7 run "$out-cut" "$np" "$out" "$@" &&
        { say_fail "$out: the injected abort exited 0"; return 1; }
    [ -f "$work/$out/checkpoint.h5" ] || { say_fail "$out: no checkpoint.h5 after the abort"; return 1; }
    cp "$work/$out/checkpoint.h5" "$work/$out-ck.h5"
}
resume() { # NP OUT [--set ...]: resumed at step 4
    local np="$1" out="$2"
    shift 2
    run "$out" "$np" "$out" "$@" || { cat "$work/$out.log"; say_fail "$out: the resumed run failed"; return 1; }
    grep -q "resuming from .* at step 4" "$work/$out.log" || { say_fail "$out: did not resume at step 4"; return 1; }
}
read_back() { # OUT: the mask came from checkpoint.h5, not from scoring
    grep -q "WAGLE mask read from .*checkpoint.h5" "$work/$1.log" && ! grep -q "WAGLE mask keeps" "$work/$1.log" ||
        { say_fail "$1: the mask was not read back from checkpoint.h5"; return 1; }
}
same_mask() { # A B LABEL: /wagle_mask of two files, exact
    h5diff -q "$1" "$2" /wagle_mask /wagle_mask || { say_fail "$3: /wagle_mask differs"; return 1; }
}
frozen() { # OUT CK: weights outside OUT/model.h5's mask equal CK's; some inside moved
    /usr/bin/python3 - "$work/$1/model.h5" "$2" <<'EOF'
import sys
import h5py, numpy as np
with h5py.File(sys.argv[1], "r") as m, h5py.File(sys.argv[2], "r") as c:
    out = inside = 0
    for k in m["/wagle_mask"]:
        mk = m["/wagle_mask"][k][()] != 0
        d = m["/params"][k][()] != c["/params"][k][()]
        out += int(np.count_nonzero(d & ~mk))
        inside += int(np.count_nonzero(d & mk))
print(f"{sys.argv[1].split('/')[-2]}: after the resume {inside} masked weights moved, {out} outside")
sys.exit(1 if out or inside == 0 else 0)
EOF
}
passed=0 cases=0

run u1 1 u1 || { cat "$work/u1.log"; say_fail "u1: the uninterrupted run failed"; exit 1; }
grep -q "WAGLE mask keeps" "$work/u1.log" || say_fail "u1: no mask line"
[ -e "$work/u1/wagle_mask.h5" ] && say_fail "u1: wagle_mask.h5 is still written"

# ---- 1. across layouts, bitwise ----
for c in "a 2 1 pp2 1" "b 1 2 1 pp2"; do
    read -r out np1 np2 l1 l2 <<<"$c"
    f0=$nfail
    s1=() s2=()
    [ "$l1" = pp2 ] && s1=("${pp2[@]}")
    [ "$l2" = pp2 ] && s2=("${pp2[@]}")
    cut "$np1" "$out" "${s1[@]}" && resume "$np2" "$out" "${s2[@]}" && read_back "$out" &&
        same_mask "$work/$out-ck.h5" "$work/$out/model.h5" "$out: checkpoint against model.h5" &&
        same_state "$work/u1" "$work/$out" "$out" &&
        same_mask "$work/u1/model.h5" "$work/$out/model.h5" "$out: against u1"
    [ "$nfail" -eq "$f0" ] && { passed=$((passed + 1)); echo "PASS saved on $np1 rank(s) ($l1), resumed on $np2 ($l2): mask read back, weights, moments and mask bitwise equal to u1's"; }
    cases=$((cases + 1))
done

# ---- 2. tp 2 -> pp 2 ----
f0=$nfail
cut 2 c "${tp2[@]}" && resume 2 c "${pp2[@]}" && read_back c &&
    same_mask "$work/c-ck.h5" "$work/c/model.h5" "c: checkpoint against model.h5" &&
    same_mask "$work/u1/model.h5" "$work/c/model.h5" "c: against u1" &&
    { frozen c "$work/c-ck.h5" || say_fail "c: weights outside the mask moved after the resume"; }
[ "$nfail" -eq "$f0" ] && { passed=$((passed + 1)); echo "PASS saved at tp 2, resumed at pp 2: the saved mask read back, u1's, only masked weights move"; }
cases=$((cases + 1))

# ---- 3. a checkpoint without a mask ----
f0=$nfail
cut 2 d "${pp2[@]}" --set unlearn.wagle.p=0 && resume 1 d &&
    { grep -q "holds no WAGLE mask: scoring the starting weights" "$work/d.log" && grep -q "WAGLE mask keeps" "$work/d.log" ||
        say_fail "d: the mask was not scored"; } &&
    same_mask "$work/u1/model.h5" "$work/d/model.h5" "d: against u1" &&
    { frozen d "$work/d-ck.h5" || say_fail "d: weights outside the mask moved after the resume"; }
[ "$nfail" -eq "$f0" ] && { passed=$((passed + 1)); echo "PASS a checkpoint without a mask resumed with WAGLE: scored as a fresh run, u1's mask"; }
cases=$((cases + 1))

# ---- 4. refused ----
refuse() { # LABEL CODE EXPECTED TAMPER(python, argv[1] = the file, or "") [--set ...]
    local label="$1" code="$2" want="$3" tamper="$4" np
    shift 4
    local bad=0
    for np in 1 2; do
        rm -rf "$work/e"
        mkdir -p "$work/e"
        cp "$work/c-ck.h5" "$work/e/checkpoint.h5"
        [ -n "$tamper" ] && /usr/bin/python3 -c "$tamper" "$work/e/checkpoint.h5"
        cp "$work/e/checkpoint.h5" "$work/e-before.h5"
        lethe "$np" unlearn "$work/wagle.json" --set output.dir="\"$work/e\"" --set layout.dp="$np" \
            "$@" >"$work/e.out" 2>"$work/e.err"
        local rc=$? lines
        lines="$(wc -l <"$work/e.err")"
        if [ "$rc" -ne "$code" ] || [ "$lines" -ne 1 ] || ! grep -q "^lethe: .*$want" "$work/e.err"; then
            say_fail "$label np$np: exit $rc (expected $code), $lines stderr lines:"
            sed 's/^/    | /' "$work/e.err"
            bad=1
        fi
        cmp -s "$work/e/checkpoint.h5" "$work/e-before.h5" || { say_fail "$label np$np: the checkpoint changed"; bad=1; }
    done
    cases=$((cases + 1))
    [ "$bad" -eq 0 ] && { passed=$((passed + 1)); echo "PASS refused ($label): $(cat "$work/e.err")"; }
}
if [ -f "$work/c-ck.h5" ]; then
    flip='import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    d = f["/wagle_mask/model.layers.1.mlp.down_proj.weight"]
    d[3, 5] = 1 - d[3, 5]'
    drop='import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    del f["/wagle_mask"]'
    refuse "without WAGLE" 2 "holds a WAGLE mask selected with unlearn.wagle.p=0.9, this run has unlearn.wagle.p=0:" "" \
        --set unlearn.wagle.p=0
    refuse "another p" 2 "holds a WAGLE mask selected with unlearn.wagle.p=0.9, this run has unlearn.wagle.p=0.8" "" \
        --set unlearn.wagle.p=0.8
    refuse "a flipped mask byte" 1 "dataset '/wagle_mask/model.layers.1.mlp.down_proj.weight': digest mismatch" "$flip"
    refuse "the mask removed" 1 "group '/wagle_mask' is missing: the file is corrupt" "$drop"
else
    say_fail "no checkpoint with a mask to tamper with"
fi

echo "wagle_resume: $passed/$cases cases passed"
[ "$passed" -eq "$cases" ] && [ "$cases" -eq 8 ] || say_fail "$passed of $cases cases passed (8 expected)"
[ $fail -eq 0 ] && echo "wagle_resume: PASS"
exit $fail
