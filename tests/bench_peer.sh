#!/usr/bin/env bash
# tests/bench_peer.sh — `lethe bench` against its PyTorch peer, interleaved A B A B ...
#
#   bash tests/bench_peer.sh [CONFIG.json] [--ranks N] [--rounds R] [--torch-threads N]
#        [--coretype NAME|auto] [--set key=value ...]
#
# CONFIG defaults to jobs/configs/bench-tiny.json. Each round runs
#   mpirun -n N lethe bench CONFIG --set ...      (A: one JSON line)
#   python3 tests/bench_peer.py peer config.json  (B: the same model in PyTorch)
# in fresh processes, so that load from other processes on a shared machine falls on
# both sides alike; the peer reads the config.json that lethe resolved (every --set
# included), so both run the same model, batch, sequence length, optimizer and
# warm-up/timed steps. At the end: every round, the medians and the ratio
# lethe / PyTorch of the median tokens/s, beside lethe's share of the sgemm peak it
# measured in its own process. --set passes layout and other keys to lethe, e.g.
#   bash tests/bench_peer.sh --ranks 2 --set layout.tp=2
#
# Threads: every lethe rank runs one BLAS thread (OPENBLAS_NUM_THREADS=1); PyTorch
# gets as many threads as lethe has ranks (--torch-threads to change it), with
# OMP_NUM_THREADS set to that, OMP_WAIT_POLICY=PASSIVE and one inter-op thread.
# OPENBLAS_CORETYPE is the same for both: inherited, or set (--coretype NAME) or
# unset (--coretype auto) for both; PyTorch's BLAS is OpenBLAS too on Debian.
# Needs a built lethe (LETHE_BIN, else build/lethe), mpirun (MPIRUN) and
# /usr/bin/python3 with PyTorch (LETHE_PYTHON). A benchmark: it asserts nothing on time.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
cfg="$root/jobs/configs/bench-tiny.json"
ranks=1 rounds=5 tthreads="" coretype="inherit"
sets=()
while [ $# -gt 0 ]; do
    case "$1" in
    --ranks) ranks="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --torch-threads) tthreads="$2"; shift 2 ;;
    --coretype) coretype="$2"; shift 2 ;;
    --set) sets+=(--set "$2"); shift 2 ;;
    -h | --help) sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "bench_peer.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) cfg="$1"; shift ;;
    esac
done
. "$here/bench_lib.sh"
bench_counts bench_peer.sh "$ranks" "$rounds" ${tthreads:+"$tthreads"}
bench_setup bench_peer.sh "$cfg" "$coretype"
py="${LETHE_PYTHON:-/usr/bin/python3}"
tthreads="${tthreads:-$ranks}"
export OMP_WAIT_POLICY=PASSIVE
bench_mpi_args "$ranks"

bench_work bench_peer.sh
results="$work/results.jsonl"
echo "bench_peer: $cfg ${sets[*]:-}, lethe on $ranks rank(s) x 1 BLAS thread, PyTorch on" \
    "$tthreads thread(s), $rounds round(s), OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-(unset)}," \
    "load average $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$rounds"); do
    "$mpirun" "${mpi_args[@]}" "$lethe" bench "$cfg" "${sets[@]}" \
        --set output.dir="$work/lethe" >"$work/lethe.out"
    grep '^{"job":"bench"' "$work/lethe.out" >>"$results" ||
        { echo "bench_peer.sh: lethe bench printed no result:" >&2; cat "$work/lethe.out" >&2; exit 1; }
    OMP_NUM_THREADS="$tthreads" "$py" "$here/bench_peer.py" peer "$work/lethe/config.json" \
        --threads "$tthreads" >>"$results"
    echo "  round $r done, load average $(cut -d' ' -f1 /proc/loadavg)"
done
"$py" "$here/bench_peer.py" summary "$results"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
