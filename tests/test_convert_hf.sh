#!/usr/bin/env bash
# tests/test_convert_hf.sh — `lethe convert` with Hugging Face Llama folders.
#
#   test_convert_hf.sh HF_LOGITS        (HF_LOGITS: the tests/hf_logits.c program)
#
# 1. tests/torch_hf.py writes three folders (config.json, 3 shards, index; Llama-3-shaped:
#    GQA, head_dim given, rope_scaling llama3 over all three frequency bands, odd vocabulary)
#    -- gqa (untied, F32), tied (no lm_head), bf16 (every tensor BF16), mixed (BF16 weights,
#    F32 norms: parity at one rank and the export only) -- with a token batch
#    and its float64 reference log-softmax from its own PyTorch Llama.
# 2. Parity: each folder is imported at 1 rank, tp 2, pp 2 and tp 2 x pp 2, and hf_logits
#    runs the checkpoint at that layout: logp within 1e-4 (max|a-b| / max|b|) of the
#    reference, 12 cases.
# 3. The model from the checkpoint: a train job whose config has no model keys runs from
#    init.checkpoint (2 ranks) and its resolved config holds the folder's model (llama3
#    RoPE, tie, special ids); the same job with model.rope_theta=20000 is refused naming the
#    key and both values, exit 2 on every rank.
# 4. Export: each checkpoint -> folder (2 ranks, tp 2) holds the source folder's tensors bit
#    for bit in their dtype (BF16 stays BF16) and the same config.json keys, with the
#    tokenizer files copied; folder -> checkpoint -> folder at --shard-size 1 (several
#    shards) and again at 4 ranks gives byte-identical shards and index (cmp).
# 5. Refused, exit 2, one 'lethe: ' line, nothing at --to: no config.json, a missing shard,
#    an index naming a tensor its shard lacks, rope_scaling yarn, an I32 tensor, an unknown
#    config key, hidden_act gelu, an export onto an existing folder.
#
# env: MPIRUN, LETHE_BIN, LETHE_SOURCE_DIR, LETHE_PYTHON (default /usr/bin/python3); KEEP=1
# keeps the scratch folder. Exit 77 (skipped) when that python lacks numpy or torch.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/cases_lib.sh"
: "${MPIRUN:?MPIRUN is not set}"
: "${LETHE_BIN:?LETHE_BIN is not set}"
: "${LETHE_SOURCE_DIR:?LETHE_SOURCE_DIR is not set}"
HF_LOGITS="${1:?usage: test_convert_hf.sh HF_LOGITS}"
PY="${LETHE_PYTHON:-/usr/bin/python3}"
REF="$LETHE_SOURCE_DIR/tests/torch_hf.py"
if ! "$PY" -c 'import numpy, torch' 2>/dev/null; then
    echo "test_convert_hf: $PY has no numpy/torch; skipped"
    exit 77
fi
work="$(mktemp -d)"
[ -n "${KEEP:-}" ] && echo "test_convert_hf: scratch folder $work"
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
# shellcheck source=jobs/mpienv.sh
source "$(dirname "${BASH_SOURCE[0]}")/../jobs/mpienv.sh"
fail=0 passed=0 checks=0
FAIL() {
    echo "FAIL: $*"
    fail=1
}
# ok NAME CMD...: one counted check
ok() {
    local name="$1"
    shift
    checks=$((checks + 1))
    if "$@"; then
        passed=$((passed + 1))
        echo "PASS $name"
    else
        FAIL "$name"
    fi
}
mpi() { # mpi TAG N PROG args...: output in $work/TAG.{out,err}
    local tag="$1" n="$2"
    shift 2
    lethe_mpirun "$MPIRUN" --oversubscribe -n "$n" "$@" >"$work/$tag.out" 2>"$work/$tag.err" || {
        echo "  $* exited with an error:"
        sed 's/^/  | /' "$work/$tag.out" "$work/$tag.err"
        return 1
    }
}
lethe() { mpi "$1" "$2" "$LETHE_BIN" "${@:3}"; }

# 1. the folders
for v in gqa tied bf16 mixed; do
    mkdir -p "$work/$v"
    "$PY" "$REF" write "$work/$v" "$v" || exit 1
done

# 2. parity at four layouts: import there, run there
layouts=("1" "2 layout.tp=2" "2 layout.pp=2" "4 layout.tp=2 layout.pp=2")
parity() { # parity V N SETS...: import and logits at that layout
    local v="$1" n="$2" sets=() s
    shift 2
    for s in "$@"; do sets+=(--set "$s"); done
    local tag="$v-$n-${#sets[@]}"
    lethe "$tag" "$n" convert --from "$work/$v/hf" --to "$work/$v/$tag.h5" "${sets[@]}" &&
        mpi "$tag-logits" "$n" "$HF_LOGITS" "$work/$v/$tag.h5" "$work/$v/tokens.safetensors" \
            "$work/$v/$tag.logp.safetensors" "${sets[@]}" &&
        "$PY" "$REF" check "$work/$v/ref.safetensors" "$work/$v/$tag.logp.safetensors"
}
for v in gqa tied bf16; do
    for L in "${layouts[@]}"; do
        # shellcheck disable=SC2086 # L is "N key=value ..."
        ok "parity $v n=$L" parity "$v" $L
    done
done
# mixed dtypes (BF16 weights, F32 norms): one layout for the logits, then the export below
ok "parity mixed n=1" parity mixed 1
grep -h "peak resident" "$work"/gqa-4-4.out

# 3. the model from the checkpoint
ck="$work/gqa/gqa-1-0.h5"
cat >"$work/nomodel.json" <<EOF
{"train": {"steps": 2, "batch_size": 2, "seq_len": 32, "log_every": 1},
 "optim": {"warmup_steps": 0}, "data": {"min_len": 16},
 "init": {"checkpoint": "$ck"}, "output": {"dir": "$work/run"}}
EOF
taken() {
    lethe train 2 train "$work/nomodel.json" --set layout.tp=2 &&
        "$PY" - "$work/run/config.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
m, h = c["model"], c["hf"]
want = {"dim": 64, "n_layers": 4, "n_heads": 4, "n_kv_heads": 2, "mlp_dim": 96, "vocab_size": 101,
        "max_seq_len": 128, "rope_theta": 10000, "rope_type": "llama3", "rope_factor": 8,
        "rope_original_max_seq_len": 32, "tie_embeddings": False}
bad = [f"model.{k} = {m.get(k)!r}, expected {v!r}" for k, v in want.items() if m.get(k) != v]
if (h["bos_token_id"], h["eos_token_id"], h["pad_token_id"]) != (1, "[2,3]", -1):
    bad.append(f"hf ids {h}")
print("\n".join(bad))
sys.exit(1 if bad else 0)
EOF
}
ok "model taken from init.checkpoint" taken

# 4. export: the source folder's tensors bit for bit; re-exports byte-identical
exported() { # exported V: checkpoint (imported at 1 rank) -> folder at tp 2, compared
    lethe "$1-exp" 2 convert --from "$work/$1/$1-1-0.h5" --to "$work/$1/out" --set layout.tp=2 &&
        "$PY" "$REF" same "$work/$1/hf" "$work/$1/out" &&
        cmp "$work/$1/hf/tokenizer.json" "$work/$1/out/tokenizer.json"
}
for v in gqa tied bf16 mixed; do ok "export $v" exported "$v"; done
resharded() { # bf16: folder -> checkpoint -> 3+ shards at 1 rank and at 4 ranks, cmp
    local d="$work/bf16" f
    lethe rs1 1 convert --from "$d/out" --to "$d/rt.h5" &&
        lethe rs2 1 convert --from "$d/rt.h5" --to "$d/sh1" --shard-size 0.1 &&
        lethe rs3 4 convert --from "$d/rt.h5" --to "$d/sh4" --shard-size 0.1 \
            --set layout.tp=2 --set layout.pp=2 &&
        [ -f "$d/sh1/model-00003-of-00003.safetensors" ] &&
        "$PY" "$REF" same "$d/hf" "$d/sh1" || return 1
    for f in "$d"/sh1/*; do cmp "$f" "$d/sh4/${f##*/}" || return 1; done
    ! ls -d "$d"/*.tmp* 2>/dev/null
}
ok "export in shards, byte-identical at two layouts" resharded

cases_init "$work/cases"
# refuse TAG N WANT TO args...: exit 2, one 'lethe: ...WANT...' line, nothing at TO
# shellcheck disable=SC2317 # run by case_bg
refuse_one() {
    local tag="$1" n="$2" want="$3" to="$4"
    shift 4
    lethe_mpirun "$MPIRUN" --oversubscribe -n "$n" "$LETHE_BIN" "$@" \
        >"$work/$tag.out" 2>"$work/$tag.err"
    case_refusal "$tag" "lethe $*" "$want" "$to" $? "$work/$tag.err"
}
refuse() { case_bg "$1" refuse_one "$@"; }
refuse theta 2 "model.rope_theta is 10000 in checkpoint '$ck' but 20000 in this job's config; the weights there need 10000" \
    "$work/run2" train "$work/nomodel.json" --set model.rope_theta=20000 \
    --set output.dir="$work/run2"

# 5. refused folders (2 ranks)
for spec in "nocfg|config.json': cannot open" \
    "noshard|model-00002-of-00003.safetensors': cannot open" \
    "badmap|tensor 'model.layers.9.mlp.up_proj.weight' is mapped to" \
    'yarn|rope_scaling type "yarn" is not supported' \
    "i32|tensor 'model.norm.weight' has dtype I32" \
    "unknown|key 'sliding_window' is not understood" \
    'act|key '"'"'hidden_act'"'"' is "gelu": lethe computes only "silu"'; do
    name="${spec%%|*}"
    refuse "$name" 2 "${spec#*|}" "$work/x-$name.h5" \
        convert --set layout.tp=2 --from "$work/gqa/bad_$name" --to "$work/x-$name.h5"
done
refuse exists 2 "convert: --to '$work/gqa/out' exists" "" \
    convert --from "$ck" --to "$work/gqa/out" --set layout.tp=2
cases_wait 120

cases_end "test_convert_hf refusals" 9 || fail=1
echo "test_convert_hf: $passed of $checks checks passed"
[ "$passed" -eq "$checks" ] && [ "$checks" -ge 19 ] || fail=1
[ "$fail" -eq 0 ] && echo "test_convert_hf: all checks passed"
exit "$fail"
