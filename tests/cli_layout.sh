#!/bin/bash
# Layout refusals through the lethe command: each bad layout ends every rank
# with exit 2 and exactly one "lethe: " line naming the numbers, before any
# output folder is created. Needs MPIRUN and LETHE_BIN (set by the ctest harness).
set -u
cfg="$LETHE_SOURCE_DIR/jobs/configs/demo.json"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0 n=0
expect() { # ranks expected-substring args...
    local np=$1 want=$2
    shift 2
    n=$((n + 1))
    local out="$work/out$n"
    "$MPIRUN" --oversubscribe -n "$np" "$LETHE_BIN" "$@" --set output.dir="$out" \
        >"$work/stdout" 2>"$work/stderr"
    local rc=$?
    local lines
    lines=$(grep -c '^lethe: ' "$work/stderr")
    if [ $rc -ne 2 ]; then
        echo "FAIL [$*] at $np ranks: exit $rc, expected 2"; fail=$((fail + 1))
    elif [ "$lines" -ne 1 ]; then
        echo "FAIL [$*] at $np ranks: $lines 'lethe:' lines, expected 1:"; cat "$work/stderr"
        fail=$((fail + 1))
    elif ! grep -q -- "$want" "$work/stderr"; then
        echo "FAIL [$*] at $np ranks: message lacks '$want':"; grep '^lethe: ' "$work/stderr"
        fail=$((fail + 1))
    elif [ -e "$out" ]; then
        echo "FAIL [$*] at $np ranks: output folder created before the check"; fail=$((fail + 1))
    else
        echo "ok   [$*] at $np ranks: $(grep '^lethe: ' "$work/stderr")"
    fi
}
for np in 1 2 4; do
    expect $np "= 8 ranks, but the job has $np rank" train "$cfg" --set layout.tp=1 --set layout.dp=8
done
expect 2 "layout tp=2 does not divide model.n_kv_heads=1" train "$cfg" --set model.n_kv_heads=1
expect 4 "layout tp=4 does not divide model.n_heads=6" train "$cfg" --set layout.tp=4 \
    --set model.dim=96 --set model.n_heads=6 --set model.n_kv_heads=6
expect 2 "layout tp=2 does not divide model.mlp_dim=345" train "$cfg" --set model.mlp_dim=345
expect 2 "layout pp=2 exceeds model.n_layers=1" train "$cfg" --set layout.tp=1 --set layout.pp=2 \
    --set model.n_layers=1
expect 2 "train.batch_size = 16 must be a multiple of layout.dp \* layout.micro_batches" train "$cfg" --set layout.tp=1 \
    --set layout.dp=2 --set layout.micro_batches=3 --set train.batch_size=16
expect 1 "unknown job 'trian'" trian "$cfg"
expect 2 "no config file given" train
expect 2 "unknown option '--sett'" train "$cfg" --sett layout.tp=1
expect 2 "missing.json" train "$work/missing.json"
echo "$n cases, $fail failed"
[ $fail -eq 0 ]
