#!/usr/bin/env bash
# tests/muse_eval.sh — MUSE's metrics in `lethe eval` (jobs/eval_muse.c) on the MUSE-shaped
# fixture (tests/data/muse through prepare --muse, byte tokenizer, T=256).
#
# Two small models are trained by lethe train so that the figures are not trivially 0:
# "origin" on the verbmem prompts and continuations, the knowmem few-shot prompts with
# their answers (and the next question, so that KnowMem's stop strings matter) and the
# privleak forget and retain texts; "retrain" without the forget material. retrain is
# evaluated at 1 rank (no reference: privleak must be null), origin at 1 rank with
# eval.reference = retrain's evaluation, then at 2 ranks under dp 2, tp 2 and pp 2. Each
# evaluation is checked by tests/muse_check.py eval, which recomputes every per-sample
# ROUGE-L F1 from eval.h5's generations and the fixture's original strings, the means x 100,
# the forget-vs-holdout AUC from the Min-K% columns, the retrained AUC and PrivLeak, to
# 1e-6; for origin (exported by lethe convert) also every privleak text's Min-K% through
# an independent PyTorch Llama (tests/torch_hf.py) and the AUC from those scores; the
# 2-rank figures must equal the 1-rank figures to 1e-6.
# A script of counted cases: PASS lines against the number of cases.
# env: MPIRUN, LETHE_BIN, LETHE_SOURCE_DIR, LETHE_PYTHON (h5py, numpy).
set -uo pipefail
: "${MPIRUN:?MPIRUN is not set}"
: "${LETHE_BIN:?LETHE_BIN is not set}"
: "${LETHE_SOURCE_DIR:?LETHE_SOURCE_DIR is not set}"
PY="${LETHE_PYTHON:-/usr/bin/python3}"
[ -n "$PY" ] || PY=/usr/bin/python3
# shellcheck source=jobs/mpienv.sh
source "$LETHE_SOURCE_DIR/jobs/mpienv.sh"
S="$LETHE_SOURCE_DIR/tests"
D="$S/data/muse"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
T=256
pass=0 cases=0
verdict() { # NAME BAD
    cases=$((cases + 1))
    if [ "$2" = 0 ]; then
        pass=$((pass + 1))
        echo "PASS $1"
    else
        echo "FAIL $1"
    fi
}
run() { # TAG NP lethe-args...: one job, its output in $work/TAG.log
    local tag="$1" np="$2"
    shift 2
    lethe_mpirun "$MPIRUN" --oversubscribe -n "$np" "$LETHE_BIN" "$@" >"$work/$tag.log" 2>&1 ||
        { echo "$tag: lethe $1 failed: $(tail -n 5 "$work/$tag.log")"; return 1; }
}
MODEL='"vocab_size": 258, "dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2,
  "mlp_dim": 128, "max_seq_len": 256'

run prep 1 prepare --muse "$D" --output "$work/muse.h5" --seq-len "$T"
verdict "prepare --muse" $?

# the two training sets (text), from the fixture's strings
"$PY" - "$D" "$work" <<'PYEOF'
import json, sys
d, w = sys.argv[1], sys.argv[2]
def recs(p):
    s = open(f"{d}/{p}", encoding="utf-8").read()
    return json.loads(s) if s.lstrip().startswith("[") else [json.loads(l) for l in s.splitlines() if l.strip()]
def qa(f):
    pre = "".join(f"Question: {r['question']}\nAnswer: {r['answer']}\n\n"
                  for r in recs(f.replace(".json", "_icl.json")))
    R = recs(f)
    return [pre + f"Question: {r['question']}\nAnswer: {r['answer']}\n\nQuestion: "
            f"{R[(i + 1) % len(R)]['question']}" for i, r in enumerate(R)]
sets = {"origin": [r["prompt"] + r["gt"] for r in recs("verbmem/forget.json")] +
        qa("knowmem/forget_qa.json") + qa("knowmem/retain_qa.json") +
        recs("privleak/forget.json") + recs("privleak/retain.json"),
        "retrain": qa("knowmem/retain_qa.json") + recs("privleak/retain.json") +
        [r["text"] for r in recs("raw/retain1.json")]}
for name, texts in sets.items():
    with open(f"{w}/{name}.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts)
PYEOF
for m in origin retrain; do
    bad=0
    run "prep_$m" 1 prepare --input "train=$work/$m.jsonl:text" --output "$work/$m.h5" \
        --seq-len "$T" || bad=1
    printf '{"model": {%s}, "data": {"source": "hdf5", "path": "%s", "split": "train"},
      "train": {"steps": 100, "batch_size": 8, "seq_len": %s, "log_every": 50},
      "optim": {"lr": 0.01, "min_lr": 0.001, "warmup_steps": 10},
      "output": {"dir": "%s"}, "threads": 1}\n' "$MODEL" "$work/$m.h5" "$T" "$work/$m" \
        >"$work/train_$m.json"
    [ $bad = 0 ] && { run "train_$m" 1 train "$work/train_$m.json" || bad=1; }
    verdict "train $m" $bad
done

evalrun() { # TAG NP CKPT REF LAYOUT [WEIGHTS CONFIG]: lethe eval, then muse_check.py
    local tag="$1" np="$2" ref="" bad=0 w=()
    [ $# -ge 7 ] && w=(--weights "$6" "$7")
    [ -n "$4" ] && ref=", \"reference\": \"$4\""
    printf '{"model": {%s}, "data": {"source": "hdf5", "path": "%s"},
      "init": {"checkpoint": "%s"}, "eval": {"batch_size": 2%s},
      "layout": {%s}, "output": {"dir": "%s"}, "threads": 1}\n' "$MODEL" "$work/muse.h5" "$3" \
        "$ref" "$5" "$work/$tag" >"$work/$tag.json"
    run "$tag" "$np" eval "$work/$tag.json" || bad=1
    if [ $bad = 0 ]; then
        "$PY" "$S/muse_check.py" eval "$D" "$work/muse.h5" "$work/$tag" "$4" "${w[@]}" \
            >"$work/$tag.check" 2>&1 ||
            { grep -v '^muse_check: eval_' "$work/$tag.check" | sed 's/^/    /'; bad=1; }
        tail -n 1 "$work/$tag.check"
    fi
    return $bad
}
same_figures() { # TAG: summary.json's muse figures equal ev1's to 1e-6
    "$PY" -c 'import json, sys
a, b = (json.load(open(p))["muse"] for p in sys.argv[1:3])
bad = [k for k in a if (a[k] is None) != (b[k] is None) or
       (a[k] is not None and abs(a[k] - b[k]) > 1e-6)]
print("figures:", {k: b[k] for k in b}, "differ:" if bad else "equal", bad or "")
sys.exit(1 if bad else 0)' "$work/ev1/summary.json" "$work/$1/summary.json"
}

evalrun evr 1 "$work/retrain/model.h5" "" '"dp": 1'
rc=$?
grep -q '"auc_retrain, privleak: no retrained model' "$work/evr/summary.json" 2>/dev/null || rc=1
verdict "eval retrain, 1 rank, no reference (privleak null)" $rc
# the origin model's weights for PyTorch's Min-K% (muse_check.py --weights)
run export 1 convert "$work/train_origin.json" --from "$work/origin/model.h5" \
    --to "$work/origin.safetensors"
verdict "export origin for PyTorch" $?
W=("$work/origin.safetensors" "$work/train_origin.json")
evalrun ev1 1 "$work/origin/model.h5" "$work/evr" '"dp": 1' "${W[@]}"
rc=$?
grep -q 'privleak_holdout: mink of 5 texts as PyTorch' "$work/ev1.check" 2>/dev/null || rc=1
verdict "eval origin, 1 rank, reference retrain, Min-K% as PyTorch's" $rc
for lay in dp tp pp; do
    evalrun "ev_$lay" 2 "$work/origin/model.h5" "$work/evr" "\"$lay\": 2" "${W[@]}" &&
        same_figures "ev_$lay"
    verdict "eval origin, 2 ranks, $lay 2: as 1 rank" $?
done
# a check of the check: the fixture's figures are not all trivial
"$PY" -c 'import json, sys
m = json.load(open(sys.argv[1]))["muse"]; r = json.load(open(sys.argv[2]))["muse"]
assert 0 < m["verbmem_f"] < 100 and 0 < m["knowmem_r"] and 0 < m["auc_retrain"] < 1, m
assert r["knowmem_r"] > 50, r' "$work/ev1/summary.json" "$work/evr/summary.json"
verdict "the figures are informative (0 < verbmem_f < 100, 0 < auc_retrain < 1)" $?

echo "muse_eval: $pass passed, $((cases - pass)) failed of $cases cases"
[ "$pass" -eq "$cases" ] && [ "$cases" -eq 10 ]
