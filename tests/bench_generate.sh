#!/usr/bin/env bash
# tests/bench_generate.sh — batched greedy generation with the KV cache: lethe at 1 rank
# and at tp 2 against a PyTorch peer with a KV cache on 1 and 2 threads, interleaved.
#
#   bash tests/bench_generate.sh [--rounds R] [--batch B] [--prompts N] [--new K]
#        [--vocab V] [--dim C] [--layers L] [--heads H] [--kv-heads H] [--mlp F]
#        [--coretype NAME|auto] [--spin]
#
# The model defaults to bench-tiny's (jobs/configs/bench-tiny.json: V 8192, C 256, 4
# layers, 4 heads, MLP 688), B 8, N 8 prompts of 8..16 tokens, K 64 new tokens each
# (random weights, no eos: every sequence generates K tokens on both sides), a cache
# of 16 + K positions. Each round runs, in fresh processes,
#   mpirun -n 1 bench_generate ...         lethe, 1 rank (tests/bench_generate.c)
#   python3 tests/bench_generate.py 1 ...  PyTorch, torch.set_num_threads(1)
#   mpirun -n 2 bench_generate ...         lethe, tp 2
#   python3 tests/bench_generate.py 2 ...  PyTorch, torch.set_num_threads(2)
# so that load from other processes falls on both sides alike; each prints the
# generated tokens/s of its timed run (after an untimed one). At the end: every round,
# the medians and the ratios lethe / PyTorch of the median tokens/s, with the CPU
# model and the load average before and after. Every lethe rank runs one BLAS thread.
# Waiting: PyTorch's threads sleep when idle (OMP_WAIT_POLICY=PASSIVE, as in
# bench_peer.sh) and lethe's ranks yield when idle (Open MPI's mpi_yield_when_idle 1,
# which it sets itself only when oversubscribed): on a shared, loaded machine a rank
# spinning in an all-reduce takes the core its peer needs. --spin: Open MPI's default.
# Needs bench_generate (LETHE_GEN_BENCH, else build/tests/bench_generate), a built
# lethe for bench_lib's checks (LETHE_BIN), mpirun (MPIRUN) and /usr/bin/python3 with
# PyTorch (LETHE_PYTHON). A benchmark: it asserts nothing on time.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
rounds=5 batch=8 prompts=8 new=64 V=8192 C=256 L=4 NH=4 NKV=4 F=688 coretype=inherit spin=0
while [ $# -gt 0 ]; do
    case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    --prompts) prompts="$2"; shift 2 ;;
    --new) new="$2"; shift 2 ;;
    --vocab) V="$2"; shift 2 ;;
    --dim) C="$2"; shift 2 ;;
    --layers) L="$2"; shift 2 ;;
    --heads) NH="$2"; shift 2 ;;
    --kv-heads) NKV="$2"; shift 2 ;;
    --mlp) F="$2"; shift 2 ;;
    --coretype) coretype="$2"; shift 2 ;;
    --spin) spin=1; shift ;;
    -h | --help) sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_generate.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
. "$here/bench_lib.sh"
bench_counts bench_generate.sh "$rounds" "$batch" "$prompts" "$new" "$V" "$C" "$L" "$NH" "$NKV" "$F"
bench_setup bench_generate.sh "$root/jobs/configs/bench-tiny.json" "$coretype"
py="${LETHE_PYTHON:-/usr/bin/python3}"
gen="${LETHE_GEN_BENCH:-$root/build/tests/bench_generate}"
[ -x "$gen" ] || { echo "bench_generate.sh: no bench_generate at '$gen' (set LETHE_GEN_BENCH)" >&2; exit 2; }
export OMP_WAIT_POLICY=PASSIVE
shape=("$V" "$C" "$L" "$NH" "$NKV" "$F" "$((16 + new))" "$batch" "$prompts" "$new")
bench_work bench_generate.sh
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "bench_generate: V $V C $C L $L heads $NH/$NKV mlp $F, batch $batch, $prompts prompts of" \
    "8..16 tokens, $new new tokens each; $rounds round(s); CPU: $cpu ($(nproc) of $(grep -c ^processor /proc/cpuinfo) cores usable);" \
    "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-(unset)}; MPI ranks $([ "$spin" = 1 ] && echo spin || echo yield) when idle; load average $(cut -d' ' -f1-3 /proc/loadavg)"
tps() { sed -n 's/.*"tokens_per_s": *\([0-9.]*\).*/\1/p' "$1" | tail -1; }
for r in $(seq 1 "$rounds"); do
    line="round $r:"
    for n in 1 2; do
        bench_mpi_args "$n"
        [ "$spin" = 1 ] || mpi_args+=(--mca mpi_yield_when_idle 1)
        "$mpirun" "${mpi_args[@]}" "$gen" "${shape[@]}" >"$work/l$n.out"
        OMP_NUM_THREADS=$n "$py" "$here/bench_generate.py" "$n" "${shape[@]}" >"$work/t$n.out"
        a="$(tps "$work/l$n.out")" b="$(tps "$work/t$n.out")"
        [ -n "$a" ] && [ -n "$b" ] || { echo "bench_generate.sh: no tokens/s line" >&2; exit 1; }
        echo "$a" >>"$work/l$n" && echo "$b" >>"$work/t$n"
        line="$line  lethe np$n $a, PyTorch $n thread(s) $b tokens/s"
    done
    echo "$line"
done
median() { sort -g "$1" | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
for n in 1 2; do
    ml="$(median "$work/l$n")" mt="$(median "$work/t$n")"
    [ "$n" = 1 ] && what="1 rank vs 1 thread" || what="tp 2 vs 2 threads"
    echo "median lethe ($what): $ml tokens/s, PyTorch: $mt tokens/s"
    echo "ratio lethe/PyTorch, $what: $(awk -v a="$ml" -v b="$mt" 'BEGIN {printf "%.3f", a / b}')"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
