#!/usr/bin/env bash
# tests/bench_peer.sh — `lethe bench` against its PyTorch peer, interleaved A B A B ...
#
#   bash tests/bench_peer.sh [CONFIG.json] [--ranks N] [--rounds R] [--torch-threads N]
#        [--coretype NAME|auto] [--torch-best] [--set key=value ...]
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
# --torch-best adds PyTorch at its best thread and allocator settings as a third side
# (C) of every round: first a scan, one run of each of {glibc malloc, jemalloc,
# tcmalloc (LD_PRELOAD)} x OMP_WAIT_POLICY {PASSIVE, ACTIVE} on the same cores as lethe
# (the PyTorch thread count above), then the fastest of the scan runs in every round;
# the summary names it. Allocators that are not
# installed (Debian: libjemalloc2, libtcmalloc-minimal4) are left out and named.
# Needs a built lethe (LETHE_BIN, else build/lethe), mpirun (MPIRUN) and
# /usr/bin/python3 with PyTorch (LETHE_PYTHON). A benchmark: it asserts nothing on time.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
cfg="$root/jobs/configs/bench-tiny.json"
ranks=1 rounds=5 tthreads="" coretype="inherit" best=0
sets=()
while [ $# -gt 0 ]; do
    case "$1" in
    --ranks) ranks="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --torch-threads) tthreads="$2"; shift 2 ;;
    --coretype) coretype="$2"; shift 2 ;;
    --torch-best) best=1; shift ;;
    --set) sets+=(--set "$2"); shift 2 ;;
    -h | --help) sed -n '2,31p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
# --torch-best: the scan that picks PyTorch's fastest settings (C)
best_env=() best_threads="" best_name=""
if [ $best = 1 ]; then
    lib=/usr/lib/x86_64-linux-gnu
    allocs=("glibc:")
    for a in "jemalloc:$lib/libjemalloc.so.2" "tcmalloc:$lib/libtcmalloc_minimal.so.4"; do
        if [ -e "${a#*:}" ]; then allocs+=("$a"); else echo "bench_peer: ${a%%:*} not installed (${a#*:}): left out of the scan"; fi
    done
    "$mpirun" "${mpi_args[@]}" "$lethe" bench "$cfg" "${sets[@]}" \
        --set output.dir="$work/lethe" >"$work/lethe.out"
    best_tps=0
    for t in $tthreads; do
        for a in "${allocs[@]}"; do
            for w in PASSIVE ACTIVE; do
                name="threads=$t malloc=${a%%:*} OMP_WAIT_POLICY=$w"
                pre="${a#*:}"
                line="$(env ${pre:+LD_PRELOAD="$pre"} OMP_NUM_THREADS="$t" OMP_WAIT_POLICY="$w" \
                    "$py" "$here/bench_peer.py" peer "$work/lethe/config.json" --threads "$t")"
                tps="$("$py" -c 'import json,sys; print(json.loads(sys.argv[1])["tokens_per_s"])' "$line")"
                echo "  scan: $name: $tps tokens/s"
                if "$py" -c 'import sys; sys.exit(0 if float(sys.argv[1]) > float(sys.argv[2]) else 1)' "$tps" "$best_tps"; then
                    best_tps=$tps best_threads=$t best_name="$name"
                    best_env=(OMP_NUM_THREADS="$t" OMP_WAIT_POLICY="$w")
                    [ -n "${a#*:}" ] && best_env+=(LD_PRELOAD="${a#*:}")
                fi
            done
        done
    done
    echo "bench_peer: PyTorch's best settings in the scan: $best_name"
fi
for r in $(seq 1 "$rounds"); do
    "$mpirun" "${mpi_args[@]}" "$lethe" bench "$cfg" "${sets[@]}" \
        --set output.dir="$work/lethe" >"$work/lethe.out"
    grep '^{"job":"bench"' "$work/lethe.out" >>"$results" ||
        { echo "bench_peer.sh: lethe bench printed no result:" >&2; cat "$work/lethe.out" >&2; exit 1; }
    OMP_NUM_THREADS="$tthreads" "$py" "$here/bench_peer.py" peer "$work/lethe/config.json" \
        --threads "$tthreads" >>"$results"
    [ $best = 1 ] && env "${best_env[@]}" "$py" "$here/bench_peer.py" peer "$work/lethe/config.json" \
        --threads "$best_threads" --setting "best: $best_name" >>"$results"
    echo "  round $r done, load average $(cut -d' ' -f1 /proc/loadavg)"
done
"$py" "$here/bench_peer.py" summary "$results"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
