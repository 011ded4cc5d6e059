#!/usr/bin/env bash
# tests/bench_stream.sh — what streaming batches from HDF5 costs a training step
#
#   bash tests/bench_stream.sh [CONFIG.json] [--ranks N] [--steps S] [--rows R]
#        [--coretype NAME|auto] [--set key=value ...]
#
# Writes a markov data set of R rows per split (default 20000; `train_full` holds
# 3R) of T = train.seq_len tokens with `lethe synth`, then runs on N ranks (default
# 2, as dp = N):
#   lethe train   CONFIG, data from the train_full split, read ahead in a thread
#   lethe train   the same with data.prefetch = false
#   lethe unlearn SimNPO, one epoch of a forget split of 8S rows and its retain split
#                 (two streams, 8 + 8 rows a step), read ahead
# each for S steps (default 30), with the page cache dropped first when run as root
# (a cold read), and prints each job's own report — the seconds its busiest rank
# waited for batches and their share of its step time — and the median and worst
# per-step wait from the job's log. CONFIG defaults to jobs/configs/bench-tiny.json.
# A benchmark: it asserts nothing on time.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
cfg="$root/jobs/configs/bench-tiny.json"
ranks=2 steps=30 rows=20000 coretype="inherit"
sets=()
while [ $# -gt 0 ]; do
    case "$1" in
    --ranks) ranks="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --rows) rows="$2"; shift 2 ;;
    --coretype) coretype="$2"; shift 2 ;;
    --set) sets+=(--set "$2"); shift 2 ;;
    -h | --help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "bench_stream.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) cfg="$1"; shift ;;
    esac
done
. "$here/bench_lib.sh"
bench_counts bench_stream.sh "$ranks" "$steps" "$rows"
bench_setup bench_stream.sh "$cfg" "$coretype"
bench_mpi_args "$ranks"

bench_work bench_stream.sh
T="$("$py" -c 'import json,sys; c=json.load(open(sys.argv[1])); print(c.get("train",{}).get("seq_len",64))' "$cfg")"
for s in "${sets[@]}"; do case "$s" in train.seq_len=*) T="${s#*=}" ;; esac; done
echo '{"synth": {"kind": "markov"}}' >"$work/synth.json"
synth() { # rows, file
    "$lethe" synth "$work/synth.json" --set synth.seq_len="$T" --set synth.markov_len_long=$((T - 1)) \
        --set synth.markov_retain="$1" --set synth.output="$2" --set output.dir="$work/synth" |
        tail -1
}
synth "$rows" "$work/data.h5"
# unlearning runs one epoch over a forget split of 8 x steps rows (forget = 2 x retain)
synth $((4 * steps)) "$work/small.h5"
echo "bench_stream: $cfg ${sets[*]:-}, $ranks rank(s) as dp=$ranks, $steps steps," \
    "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-(unset)}, load average $(cut -d' ' -f1-3 /proc/loadavg)"
cold() { if [ "$(id -u)" = 0 ]; then sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; fi; }
common=(--set data.source=hdf5 --set data.path="$work/data.h5" --set layout.dp="$ranks"
        --set layout.tp=1 --set layout.pp=1 --set layout.micro_batches=1)
job() { # label, log name, lethe arguments...
    local label="$1" log="$2"; shift 2
    rm -rf "$work/out"
    cold
    "$mpirun" "${mpi_args[@]}" "$lethe" "$@" --set output.dir="$work/out" >"$work/out.txt" 2>&1 ||
        { echo "bench_stream.sh: '$label' failed:" >&2; cat "$work/out.txt" >&2; exit 1; }
    echo "== $label"
    grep 'data stream:' "$work/out.txt" || { cat "$work/out.txt" >&2; exit 1; }
    "$py" - "$work/out/$log" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
d = [r["data_s"] for r in rows]
print("   per step: data wait median %.3f ms, worst %.3f ms" % (1e3 * statistics.median(d), 1e3 * max(d)))
EOF
}
job "train, read-ahead" train_log.jsonl train "$cfg" "${sets[@]}" "${common[@]}" \
    --set data.split=train_full --set train.steps="$steps"
job "train, no read-ahead" train_log.jsonl train "$cfg" "${sets[@]}" "${common[@]}" \
    --set data.split=train_full --set train.steps="$steps" --set data.prefetch=false
job "unlearn SimNPO, forget + retain streams (8 + 8 rows a step), read-ahead" \
    unlearn_log.jsonl unlearn "$cfg" "${sets[@]}" "${common[@]}" --set data.path="$work/small.h5" \
    --set unlearn.method=simnpo --set data.forget_split=forget --set data.retain_split=retain \
    --set unlearn.epochs=1 --set unlearn.batch_size=8 --set unlearn.retain_batch_size=8
