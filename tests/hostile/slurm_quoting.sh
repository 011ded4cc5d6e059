#!/usr/bin/env bash
# tests/hostile/slurm_quoting.sh — `lethe slurm` cannot be made to run a command by a
# value it writes into a batch script.
#
# usage: slurm_quoting.sh      (env: LETHE_BIN, LETHE_SOURCE_DIR; no Slurm needed)
#
# Renders, with --dry-run, one-job scripts (--job train) for hostile job names and
# --set overrides, under a study folder whose own name is hostile, with both launchers
# (srun, mpirun), and a whole study (tests/data/mini-study.json: single jobs and job
# arrays) into that folder. Hostile values: $(touch pwned), backticks, ';', '&&', a
# newline, single and double quotes, a trailing backslash, a leading '-'. For every
# script: `bash -n` accepts it; then it runs under bash with fake srun, mpirun and
# scontrol first on PATH that record their argv (NUL-separated) and exit 0, as Slurm
# would run it (array scripts with SLURM_ARRAY_TASK_ID=0), in a folder of its own.
# Asserts: no file named pwned appears anywhere under the scratch folder; the launcher
# received the lethe binary, the job kind and the job's config path byte for byte, and
# each --set override as one argument "key=value" byte for byte; a name holding a
# newline is refused with one "lethe: " line. Prints "slurm quoting: K scripts, ...".
set -uo pipefail
: "${LETHE_BIN:?LETHE_BIN is not set}"
src="${LETHE_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
scratch="$(mktemp -d "${TMPDIR:-/tmp}/lethe-slurmq.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
fail=0
FAIL() {
    echo "FAIL: $*"
    fail=1
}

# fake launchers: argv to $LAUNCH_LOG, one NUL after each argument, one file per call
mkdir "$scratch/bin"
for l in srun mpirun scontrol; do
    cat >"$scratch/bin/$l" <<'SH'
#!/bin/sh
n=$(ls "$LAUNCH_LOG".* 2>/dev/null | wc -l)
{ printf '%s\0' "$(basename "$0")"; for a in "$@"; do printf '%s\0' "$a"; done; } >"$LAUNCH_LOG.$n"
exit 0
SH
    chmod +x "$scratch/bin/$l"
done

cfg="$scratch/tiny.json"
printf '%s\n' '{"model": {"vocab_size": 258, "dim": 16, "n_layers": 1, "n_heads": 2, "n_kv_heads": 2,
  "mlp_dim": 32, "max_seq_len": 16}, "layout": {"dp": 1, "pp": 1, "tp": 1},
  "train": {"steps": 2, "batch_size": 4, "seq_len": 16}, "optim": {"warmup_steps": 0},
  "output": {"dir": "out"}}' >"$cfg"
dir="$scratch/st \$(touch pwned) 'q\" \`touch pwned\`;x && touch pwned"
mkdir -p "$dir"
names=("n\$(touch pwned)" "n\`touch pwned\`" "n;touch pwned" "n&&touch pwned" "n'\"q" "n\\" "-n")
sets=("data.split=\$(touch pwned)" "optim.schedule=cosine;touch pwned" "data.path=a'b\"c\`touch pwned\` \\")

# run SCRIPT LOG: the script as Slurm would run it, in a folder of its own
run() {
    mkdir -p "$scratch/run"
    (cd "$scratch/run" && PATH="$scratch/bin:$PATH" LAUNCH_LOG="$2" SLURM_JOB_ID=1 \
        SLURM_ARRAY_TASK_ID=0 bash "$1" >/dev/null 2>&1)
}
# argv LOG.N: the recorded arguments, one per line (arguments hold no newline here)
argv() { tr '\0' '\n' <"$1"; }

scripts=0
k=0
for launcher in srun mpirun; do
    for name in "${names[@]}"; do
        # mpirun: two names are enough to show its line is quoted the same way
        [ $launcher = mpirun ] && [ $k -ge $((${#names[@]} + 2)) ] && break
        k=$((k + 1))
        set_args=()
        for s in "${sets[@]}"; do set_args+=(--set "$s"); done
        if ! "$LETHE_BIN" slurm --job train "$cfg" --name "$name" --dir "$dir" \
            --launcher "$launcher" --dry-run "${set_args[@]}" >"$scratch/o.txt" 2>"$scratch/e.txt"; then
            FAIL "--name '$name' --launcher $launcher: $(head -c 300 "$scratch/e.txt")"
            continue
        fi
        script="$dir/$name/job.sbatch"
        [ -f "$script" ] || {
            FAIL "no script at $script"
            continue
        }
        bash -n "$script" || FAIL "bash -n rejects $script"
        scripts=$((scripts + 1))
        log="$scratch/launch$k"
        run "$script" "$log"
        [ -f "$log.0" ] || {
            FAIL "--name '$name': the script never called $launcher"
            continue
        }
        got="$(argv "$log.0")"
        want_cfg="$dir/$name/job.json"
        grep -qxF -- "$LETHE_BIN" <<<"$got" || FAIL "--name '$name': $launcher did not get the lethe binary"
        grep -qxF -- "train" <<<"$got" || FAIL "--name '$name': $launcher did not get 'train'"
        grep -qxF -- "$want_cfg" <<<"$got" ||
            FAIL "--name '$name': $launcher did not get the config path '$want_cfg' as one argument"
        for s in "${sets[@]}"; do
            grep -qxF -- "$s" <<<"$got" || FAIL "--name '$name': $launcher did not get '$s' as one argument"
        done
        [ "$(head -n 1 <<<"$got")" = "$launcher" ] || FAIL "--name '$name': launched $(head -n 1 <<<"$got")"
        rm -f "$dir/$name/.done"
    done
done

# a whole study (single jobs and job arrays) into the hostile folder
sdir="$dir/study"
if "$LETHE_BIN" slurm "$src/tests/data/mini-study.json" --dir "$sdir" --dry-run >"$scratch/o.txt" 2>"$scratch/e.txt"; then
    for script in "$sdir"/*.sbatch "$sdir"/*/job.sbatch; do
        [ -f "$script" ] || continue
        bash -n "$script" || FAIL "bash -n rejects $script"
        scripts=$((scripts + 1))
        k=$((k + 1))
        run "$script" "$scratch/launch$k"
        [ -f "$scratch/launch$k.0" ] || FAIL "$script never called srun"
        if [ -f "$scratch/launch$k.0" ]; then
            got="$(argv "$scratch/launch$k.0")"
            # the job's folder is the study folder, byte for byte, then the job's name
            grep -q -F -- "$sdir/" <<<"$got" || grep -qxF -- "$sdir" <<<"$got" ||
                FAIL "$script: no argument holds the study folder '$sdir'"
        fi
    done
else
    FAIL "lethe slurm mini-study.json --dir <hostile> --dry-run: $(head -c 300 "$scratch/e.txt")"
fi

# a newline in a name would end an #SBATCH directive: refused, in one line
if "$LETHE_BIN" slurm --job train "$cfg" --name $'n\ntouch pwned' --dir "$dir" --dry-run \
    >"$scratch/o.txt" 2>"$scratch/e.txt"; then
    FAIL "a job name with a newline was accepted"
elif [ "$(wc -l <"$scratch/e.txt")" -ne 1 ] || ! grep -q '^lethe: ' "$scratch/e.txt"; then
    FAIL "a job name with a newline: the error is not one 'lethe: ' line:"
    sed 's/^/    | /' "$scratch/e.txt"
fi

pwned="$(find "$scratch" -name pwned)"
[ -z "$pwned" ] || FAIL "a value ran a command: $pwned"
[ "$scripts" -ge 15 ] || FAIL "only $scripts scripts rendered and run (expected >= 15)"
if [ $fail -ne 0 ]; then
    exit 1
fi
echo "slurm quoting: $scripts scripts rendered, bash -n clean, run with fake launchers: every" \
    "hostile value reached the launcher as one argument, byte for byte; nothing injected"
