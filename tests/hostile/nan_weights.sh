#!/usr/bin/env bash
# tests/hostile/nan_weights.sh — NaN weights are refused wherever weights come in, in one
# line naming the tensor and the element, on every rank, with no sanitizer report (this
# test has no nosan label: under the LETHE_SANITIZE build it runs under ASan/UBSan).
#
# usage: nan_weights.sh N MAKE_CKPT   (N ranks; MAKE_CKPT tests/hostile/make_hostile_ckpt)
# env: MPIRUN, LETHE_BIN (tests/CMakeLists.txt sets them)
#
# A tiny model on synthetic data is trained 4 steps with a checkpoint every 2 and aborted
# after step 3; MAKE_CKPT makes element [0,0] of one weight NaN and redoes its digest, so
# the file is intact and only its contents are bad. Then: resuming from it, starting from
# it (init.checkpoint) and exporting it (convert) are refused; a finished model exported
# to safetensors with element [0,5] of the same weight made NaN is refused by convert's
# import and no checkpoint is written. Each case must exit non-zero (no timeout, no
# signal), print one "lethe: " line (or one per rank) with the expected text and nothing
# from a sanitizer. Closing line: "nan_weights npN: K passed of K".
set -uo pipefail
n="${1:?usage: nan_weights.sh N MAKE_CKPT}"
make_ckpt="${2:?usage: nan_weights.sh N MAKE_CKPT}"
: "${MPIRUN:?MPIRUN is not set}"
: "${LETHE_BIN:?LETHE_BIN is not set}"
export OMPI_MCA_orte_execute_quiet=1
here="$(cd "$(dirname "$0")" && pwd)"
w="$(mktemp -d "${TMPDIR:-/tmp}/lethe-nan.XXXXXX")"
trap 'rm -rf "$w"' EXIT
cd "$w" || exit 1
cat >tiny.json <<EOF
{"model": {"vocab_size": 64, "dim": 16, "n_layers": 1, "n_heads": 2, "n_kv_heads": 2,
           "mlp_dim": 32, "max_seq_len": 16},
 "layout": {"dp": $n, "pp": 1, "tp": 1},
 "data": {"source": "synthetic-markov", "seed": 7, "branching": 4, "min_len": 12},
 "train": {"steps": 4, "batch_size": 4, "seq_len": 16, "log_every": 1},
 "optim": {"warmup_steps": 0}, "checkpoint": {"every": 2}}
EOF
run() { timeout 120 "$MPIRUN" --oversubscribe -n "$n" "$LETHE_BIN" "$@"; }
LETHE_FAULT=abort-after-step:3 run train tiny.json --set output.dir=a >a.out 2>a.err
run train tiny.json --set output.dir=d >d.out 2>&1 &&
    run convert tiny.json --from d/model.h5 --to d.safetensors >>d.out 2>&1
if [ ! -s a/checkpoint.h5 ] || [ ! -s d.safetensors ] ||
    ! "$make_ckpt" a/checkpoint.h5 nan model.layers.0.mlp.up_proj.weight; then
    echo "FAIL: cannot make the inputs"
    cat a.err d.out | head -n 20
    exit 1
fi
python3 - <<'PY' || exit 1
import json, struct
b = bytearray(open("d.safetensors", "rb").read())
n = struct.unpack("<Q", b[:8])[0]
at = json.loads(b[8:8 + n])["model.layers.0.mlp.up_proj.weight"]["data_offsets"][0] + 8 + n + 4 * 5
b[at:at + 4] = struct.pack("<f", float("nan"))
open("nan.safetensors", "wb").write(b)
PY

# shellcheck source=tests/check_lib.sh
. "$here/../check_lib.sh" # check NAME STATUS ..., refused RC ERR WANT N
cases=0 passed=0
expect() { # NAME WANT ARGS...
    local name=$1 want=$2 rc
    shift 2
    run "$@" >"$name.out" 2>"$name.err"
    rc=$?
    refused "$rc" "$name.err" "$want" "$n"
    check "$name np$n" $?
}
want="dataset '/params/model.layers.0.mlp.up_proj.weight': element [0,0] is nan"
expect resume "$want" train tiny.json --set output.dir=a
expect init "$want" train tiny.json --set output.dir=b --set init.checkpoint=a/checkpoint.h5
expect export "$want" convert tiny.json --from a/checkpoint.h5 --to c.safetensors
expect import "tensor 'model.layers.0.mlp.up_proj.weight' element [0,5] is nan" \
    convert tiny.json --from nan.safetensors --to e.h5
for f in c.safetensors e.h5 b/model.h5; do
    [ ! -e "$f" ] || { echo "FAIL: '$f' was written"; passed=$((passed - 1)); }
done
echo "nan_weights np$n: $passed passed of $cases"
[ "$passed" -eq "$cases" ]
