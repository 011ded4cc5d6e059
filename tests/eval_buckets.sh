#!/usr/bin/env bash
# tests/eval_buckets.sh — synth.difficulty through `lethe eval` (jobs/eval_buckets.c).
#
# `lethe synth` writes a small fictitious-author set with synth.difficulty on (and once
# off); `lethe eval` of a randomly initialised model (no checkpoint: the per-row values
# are what they are, the aggregation is what is tested) runs at 1 rank (every row) and at
# 2 ranks (dp 2, eval.max_rows 24: a prefix of each split). tests/eval_buckets_ref.py then
# recomputes every splits.<split>.buckets.<group> value of summary.json from eval.h5's
# per-row columns (forget10 as forget, retain90 as retain, holdout as other) and checks
# eval.h5's bucket column against the dataset. Without the setting, summary.json has no
# buckets and eval.h5 no bucket column.
# env: MPIRUN, LETHE_BIN, LETHE_SOURCE_DIR, LETHE_PYTHON (h5py, numpy).
set -uo pipefail
: "${MPIRUN:?MPIRUN is not set}"
: "${LETHE_BIN:?LETHE_BIN is not set}"
: "${LETHE_SOURCE_DIR:?LETHE_SOURCE_DIR is not set}"
PY="${LETHE_PYTHON:-/usr/bin/python3}"
[ -n "$PY" ] || PY=/usr/bin/python3
# shellcheck source=jobs/mpienv.sh
source "$LETHE_SOURCE_DIR/jobs/mpienv.sh"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail=0
pass=0
FAIL() {
    echo "FAIL: $*"
    fail=1
}
run() { # TAG NP lethe-args...: one job, its output in $work/TAG.log
    local tag="$1" np="$2"
    shift 2
    lethe_mpirun "$MPIRUN" --oversubscribe -n "$np" "$LETHE_BIN" "$@" >"$work/$tag.log" 2>&1 ||
        { FAIL "$tag: lethe $1 failed: $(tail -n 5 "$work/$tag.log")"; return 1; }
}
synth() { # TAG DIFFICULTY
    printf '{"synth": {"kind": "authors", "seed": 3, "output": "%s/%s.h5", "n_authors": 20,
      "questions": 8, "perturbed": 3, "holdout_authors": 3, "utility_facts": 8, "seq_len": 64,
      "difficulty": %s}, "output": {"dir": "%s/%s_synth"}}\n' "$work" "$1" "$2" "$work" "$1" \
        >"$work/$1_synth.json"
    run "$1_synth" 1 synth "$work/$1_synth.json"
}
evalcfg() { # TAG DATA MAX_ROWS DP
    local v
    v="$(h5dump -a /vocab_size "$2" | sed -n 's/^ *(0): //p')"
    printf '{"model": {"vocab_size": %s, "dim": 32, "n_layers": 1, "n_heads": 2,
      "n_kv_heads": 1, "mlp_dim": 64, "max_seq_len": 64},
      "data": {"source": "hdf5", "path": "%s"},
      "eval": {"forget_split": "forget10", "retain_split": "retain90", "batch_size": 8,
               "max_new_tokens": 8, "max_rows": %s},
      "layout": {"dp": %s}, "output": {"dir": "%s/%s"}, "threads": 1}\n' "$v" "$2" "$3" "$4" \
        "$work" "$1" >"$work/$1.json"
}

if synth on true; then
    for np in 1 2; do
        rows=0
        [ "$np" = 2 ] && rows=24
        evalcfg "ev$np" "$work/on.h5" "$rows" "$np"
        run "ev$np" "$np" eval "$work/ev$np.json" || continue
        if "$PY" "$LETHE_SOURCE_DIR/tests/eval_buckets_ref.py" "$work/on.h5" "$work/ev$np" \
            forget10:forget retain90:retain holdout:other >"$work/ref$np.log" 2>&1; then
            pass=$((pass + 1))
            tail -n 1 "$work/ref$np.log"
        else
            FAIL "np$np: $(cat "$work/ref$np.log")"
        fi
    done
fi
if synth off false; then
    evalcfg evoff "$work/off.h5" 0 1
    if run evoff 1 eval "$work/evoff.json"; then
        if grep -q '"buckets"' "$work/evoff/summary.json" ||
            h5ls "$work/evoff/eval.h5/forget10" | grep -q bucket; then
            FAIL "difficulty off: summary.json or eval.h5 has buckets"
        else
            pass=$((pass + 1))
        fi
    fi
fi
echo "eval_buckets: $pass of 3 checks passed"
[ "$fail" -eq 0 ] && [ "$pass" -eq 3 ]
