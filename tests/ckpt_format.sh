#!/usr/bin/env bash
# tests/ckpt_format.sh — checkpoint formats 1 and 2 through the real `lethe` binary, with
# tests/ckpt_digest_ref.py (h5py + numpy, from the definitions in io/checkpoint.h) as the
# independent reader.
#
# usage: ckpt_format.sh N   (N ranks, tensor parallel over N, so tensors are split)
# env: MPIRUN, LETHE_BIN, LETHE_PYTHON (with h5py and numpy; tests/CMakeLists.txt sets them)
#
# A tiny model is trained 4 steps with a checkpoint every 2 and aborted after step 3. Then:
#   ref_v2     every digest of the step-2 checkpoint (format 2) equals the reference's;
#   ref_v1     the same file rewritten by the reference as format 1 checks as format 1;
#   resume_v1  resuming from the format-1 file ends with the same weights, bit for bit, as
#              resuming from the format-2 one;
#   resume_h5read  the same with LETHE_CKPT_MAP=0: every dataset read with H5Dread, none
#              copied out of a map of the file (io/checkpoint_direct.c);
#   resume_mixed_env  the same with LETHE_CKPT_MAP=0 on rank 0 only (np1: =1): the ranks
#              agree on one way to read, no hang;
#   resume_relayout  the same from the file rewritten by the reference with two thirds of
#              its tensors chunked and compressed or big-endian (read with H5Dread) among
#              contiguous ones (mapped);
#   resume_userblock  the same from the file rewritten with a 512-byte user block in
#              front (every address moves: the mapped copies must follow);
#   corrupt_v2, corrupt_v1  one flipped bit (digest kept) is refused in one "lethe: " line
#              naming the dataset, on every rank, with the checkpoint left as it was;
#   version_3  a format_version this lethe does not know is refused, naming it;
#   past_end   a dataset whose storage address points 8 bytes before the end of the file
#              is refused in one line naming it, before anything is mapped.
# KEEP=1 keeps the scratch folder. Closing line: "ckpt_format npN: K passed of K".
set -uo pipefail
n="${1:?usage: ckpt_format.sh N}"
: "${MPIRUN:?MPIRUN is not set}"
: "${LETHE_BIN:?LETHE_BIN is not set}"
export OMPI_MCA_orte_execute_quiet=1
py="${LETHE_PYTHON:-python3}"
here="$(cd "$(dirname "$0")" && pwd)"
ref="$here/ckpt_digest_ref.py"
# shellcheck source=tests/check_lib.sh
. "$here/check_lib.sh" # check NAME STATUS ..., refused RC ERR WANT N
w="$(mktemp -d "${TMPDIR:-/tmp}/lethe-ckfmt.XXXXXX")"
trap '[ -n "${KEEP:-}" ] || rm -rf "$w"' EXIT
cd "$w" || exit 1
cat >tiny.json <<JSON
{"model": {"vocab_size": 64, "dim": 16, "n_layers": 2, "n_heads": 2, "n_kv_heads": 2,
           "mlp_dim": 40, "max_seq_len": 16},
 "layout": {"dp": 1, "pp": 1, "tp": $n},
 "data": {"source": "synthetic-markov", "seed": 7, "branching": 4, "min_len": 12},
 "train": {"steps": 4, "batch_size": 4, "seq_len": 16, "log_every": 1},
 "optim": {"warmup_steps": 0}, "checkpoint": {"every": 2}}
JSON
run() { timeout 120 "$MPIRUN" --oversubscribe -n "$n" "$LETHE_BIN" "$@"; }
LETHE_FAULT=abort-after-step:3 run train tiny.json --set output.dir=a >a.out 2>a.err
if [ ! -s a/checkpoint.h5 ]; then
    echo "FAIL: no step-2 checkpoint"
    head -n 20 a.err
    exit 1
fi
for d in b c d e f g h u p; do cp -r a "$d"; done

cases=0 passed=0
"$py" "$ref" check a/checkpoint.h5
check "ref_v2 np$n" $?
"$py" "$ref" to-v1 b/checkpoint.h5 && "$py" "$ref" to-v1 c/checkpoint.h5
"$py" "$ref" check b/checkpoint.h5
check "ref_v1 np$n" $?
run train tiny.json --set output.dir=a >ra.out 2>&1
run train tiny.json --set output.dir=b >rb.out 2>&1
same_model() {
    "$py" - "$@" <<'PY'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
names = sorted(a["params"])
same = names == sorted(b["params"]) and len(names) > 0 and all(
    np.array_equal(a["params"][k][()].view(np.uint32), b["params"][k][()].view(np.uint32))
    for k in names)
print(f"  {len(names)} tensors, step {int(a.attrs['step'])} and {int(b.attrs['step'])}, "
      f"{'bit for bit the same' if same else 'DIFFERENT'}")
sys.exit(0 if same and int(a.attrs["step"]) == int(b.attrs["step"]) == 4 else 1)
PY
}
resumed() { grep -q "resuming from $1/checkpoint.h5 at step 2" "r$1.out"; }
resumed a && resumed b && same_model a/model.h5 b/model.h5
check "resume_v1 np$n" $?
LETHE_CKPT_MAP=0 run train tiny.json --set output.dir=f >rf.out 2>&1
resumed f && same_model a/model.h5 f/model.h5
check "resume_h5read np$n" $?
if [ "$n" -gt 1 ]; then
    timeout 120 "$MPIRUN" --oversubscribe -n 1 env LETHE_CKPT_MAP=0 "$LETHE_BIN" train tiny.json \
        --set output.dir=h : -n $((n - 1)) "$LETHE_BIN" train tiny.json --set output.dir=h >rh.out 2>&1
else
    LETHE_CKPT_MAP=1 run train tiny.json --set output.dir=h >rh.out 2>&1
fi
resumed h && same_model a/model.h5 h/model.h5
check "resume_mixed_env np$n" $?
"$py" "$ref" relayout g/checkpoint.h5 && "$py" "$ref" check g/checkpoint.h5 &&
    run train tiny.json --set output.dir=g >rg.out 2>&1
resumed g && same_model a/model.h5 g/model.h5
check "resume_relayout np$n" $?
"$py" "$ref" userblock u/checkpoint.h5 && "$py" "$ref" check u/checkpoint.h5 &&
    run train tiny.json --set output.dir=u >ru.out 2>&1
resumed u && same_model a/model.h5 u/model.h5
check "resume_userblock np$n" $?

expect() { # NAME WANT DIR: refused, the checkpoint unchanged, no model written
    local name=$1 want=$2 dir=$3 rc before st=0
    before=$(sha256sum "$dir/checkpoint.h5")
    run train tiny.json --set output.dir="$dir" >"$name.out" 2>"$name.err"
    rc=$?
    refused "$rc" "$name.err" "$want" "$n" || st=1
    [ "$before" = "$(sha256sum "$dir/checkpoint.h5")" ] ||
        { echo "    the checkpoint changed"; st=1; }
    [ ! -e "$dir/model.h5" ] || { echo "    '$dir/model.h5' was written"; st=1; }
    check "$name np$n" $st
}
t=/params/model.layers.1.mlp.down_proj.weight
"$py" "$ref" flip c/checkpoint.h5 "$t" && "$py" "$ref" flip d/checkpoint.h5 "$t" &&
    "$py" "$ref" set-version e/checkpoint.h5 3 || echo "FAIL: cannot make the bad files"
expect corrupt_v1 "dataset '$t': digest mismatch" c
expect corrupt_v2 "dataset '$t': digest mismatch" d
expect version_3 "format_version 3, this lethe reads 1 to 2" e
"$py" "$ref" past-end p/checkpoint.h5 "$t" || echo "FAIL: cannot make the bad file"
expect past_end "dataset '$t': its 2560 bytes at byte" p
echo "ckpt_format np$n: $passed passed of $cases"
[ "$passed" -eq "$cases" ] && [ "$cases" -eq 11 ]
