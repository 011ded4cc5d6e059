# tests/unlearn_lib.sh — sourced by the `lethe unlearn` end-to-end scripts
# (unlearn_cli.sh, unlearn_pdu.sh, unlearn_wagle.sh, wagle_resume.sh): the environment's checks, $work (a
# temporary folder removed on exit), say_fail and $fail, `lethe NP JOB CONFIG [--set ...]`
# under mpirun with a timeout, the small $model, and the origin the scripts unlearn from:
# `lethe synth` (20 fictitious authors x 11 questions, forget05 = 11 rows) into
# $work/data.h5 and `lethe train` on train_full (120 steps at dp 2) into $work/origin.
# Set before sourcing: WORK_PREFIX (the folder's name), LETHE_TIMEOUT (seconds per job).
set -uo pipefail
: "${MPIRUN:?MPIRUN is not set}"
: "${LETHE_BIN:?LETHE_BIN is not set}"
export OMPI_MCA_orte_execute_quiet=1
work="$(mktemp -d "${TMPDIR:-/tmp}/${WORK_PREFIX}.XXXXXX")"
trap 'rm -rf "$work"' EXIT
fail=0
say_fail() {
    echo "FAIL: $*"
    fail=1
}
lethe() { # lethe NP JOB CONFIG [--set ...]
    local np="$1"
    shift
    timeout "$LETHE_TIMEOUT" "$MPIRUN" --oversubscribe -n "$np" "$LETHE_BIN" "$@"
}

model='"model": {"vocab_size": 600, "dim": 48, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2,
  "mlp_dim": 96, "max_seq_len": 40, "init_seed": 5}, "threads": 1'
cat >"$work/synth.json" <<EOF
{"synth": {"kind": "authors", "seed": 21, "output": "$work/data.h5", "n_authors": 20,
  "questions": 11, "perturbed": 2, "holdout_authors": 2, "utility_facts": 8, "seq_len": 40,
  "idk": true},
 "output": {"dir": "$work/synth"}}
EOF
cat >"$work/train.json" <<EOF
{$model,
 "layout": {"dp": 2, "pp": 1, "tp": 1, "micro_batches": 1},
 "optim": {"schedule": "constant", "lr": 0.004, "warmup_steps": 2},
 "data": {"source": "hdf5", "path": "$work/data.h5", "split": "train_full"},
 "train": {"steps": 120, "batch_size": 16, "log_every": 40},
 "output": {"dir": "$work/origin"}}
EOF
lethe 1 synth "$work/synth.json" >"$work/synth.log" 2>&1 || { cat "$work/synth.log"; say_fail "lethe synth"; exit 1; }
lethe 2 train "$work/train.json" >"$work/train.log" 2>&1 || { cat "$work/train.log"; say_fail "lethe train"; exit 1; }

# same_state A B LABEL: 0 when A/model.h5 and B/model.h5 hold bitwise the same weights and
# AdamW moments (an uninterrupted run and its killed-and-resumed twin); each group that
# differs is a FAIL naming LABEL.
same_state() {
    local ok=0 g
    for g in /params /adam_m /adam_v; do
        h5diff -q "$1/model.h5" "$2/model.h5" "$g" "$g" ||
            { say_fail "$3: $g differs between the uninterrupted and the resumed run"; ok=1; }
    done
    return $ok
}

# wagle_json FILE: the WAGLE scripts' unlearn config (unlearn_wagle.sh, wagle_resume.sh):
# graddiff + WAGLE (p 0.9, mu 1e-6, 2 batch pairs) from the origin, 1 rank, 5 epochs of
# 2 steps; output.dir is set by each run.
wagle_json() {
    cat >"$1" <<EOF
{$model,
 "layout": {"dp": 1, "pp": 1, "tp": 1, "micro_batches": 1},
 "optim": {"schedule": "constant", "lr": 0.002, "warmup_steps": 0},
 "data": {"source": "hdf5", "path": "$work/data.h5", "forget_split": "forget05",
          "retain_split": "retain95"},
 "unlearn": {"method": "graddiff", "c_f": 1, "c_r": 1, "epochs": 5, "warmup_epochs": 0,
             "batch_size": 4, "retain_batch_size": 4,
             "wagle": {"p": 0.9, "mu": 1e-6, "batches": 2}},
 "init": {"checkpoint": "$work/origin/model.h5"},
 "output": {"dir": "$work/w1"}}
EOF
}
