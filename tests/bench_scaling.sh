#!/usr/bin/env bash
# tests/bench_scaling.sh — one rank against every two-rank layout, interleaved
#
#   bash tests/bench_scaling.sh [CONFIG.json] [--rounds R] [--micro-batches M]
#        [--coretype NAME|auto] [--baseline LETHE] [--set key=value ...]
#
# CONFIG defaults to jobs/configs/bench-tiny.json. Each round runs, in fresh
# processes and in this order,
#   lethe bench CONFIG                          (1 rank, layout 1x1x1)
#   mpirun -n 2 lethe bench CONFIG tp=2
#   mpirun -n 2 lethe bench CONFIG dp=2
#   mpirun -n 2 lethe bench CONFIG dp=2, optim.shard_update=false (each replica
#                                          updates every weight)
#   mpirun -n 2 lethe bench CONFIG pp=2, micro-batches M (default 8)
# on the same global batch, one BLAS thread per rank, so that load from other
# processes on a shared machine falls on every layout alike. At the end: the
# median tokens/s of each layout, its speed-up over the one-rank median and the
# median of its per-round ratios to one rank (paired), and the
# median split of a step into compute, communication, pipeline bubble and
# imbalance as `lethe bench` measures them. OPENBLAS_CORETYPE is inherited, or set
# (--coretype NAME) or unset (--coretype auto). --baseline LETHE runs every layout
# a second time, right after, with that other build of lethe (e.g. main's), and adds
# the median over rounds of the ratio this build / baseline per layout (paired: both
# runs of a pair see the same load). A benchmark: it asserts nothing on time.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
cfg="$root/jobs/configs/bench-tiny.json"
rounds=5 mb=8 coretype="inherit" baseline=""
sets=()
while [ $# -gt 0 ]; do
    case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --micro-batches) mb="$2"; shift 2 ;;
    --coretype) coretype="$2"; shift 2 ;;
    --baseline) baseline="$2"; shift 2 ;;
    --set) sets+=(--set "$2"); shift 2 ;;
    -h | --help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "bench_scaling.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) cfg="$1"; shift ;;
    esac
done
. "$here/bench_lib.sh"
bench_counts bench_scaling.sh "$rounds" "$mb"
bench_setup bench_scaling.sh "$cfg" "$coretype"
bench_mpi_args 2

bench_work bench_scaling.sh
results="$work/results.jsonl"
echo "bench_scaling: $cfg ${sets[*]:-}, $rounds round(s), pp micro-batches $mb," \
    "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-(unset)}, load average $(cut -d' ' -f1-3 /proc/loadavg)"
[ -z "$baseline" ] || [ -x "$baseline" ] ||
    { echo "bench_scaling.sh: no lethe at '$baseline' (--baseline)" >&2; exit 2; }
run() { # label, ranks, extra --set pairs; then the same with the baseline build
    one "$lethe" "$@"
    [ -z "$baseline" ] || one "$baseline" "$@"
}
one() { # lethe binary, label, ranks, extra --set pairs
    local bin="$1" label="$2" n="$3"; shift 3
    local launch=("$bin")
    [ "$n" = 1 ] || launch=("$mpirun" "${mpi_args[@]}" "$bin")
    [ "$bin" = "$lethe" ] || label="$label (base)"
    "${launch[@]}" bench "$cfg" "${sets[@]}" "$@" --set output.dir="$work/out" >"$work/out.txt" 2>&1 ||
        { echo "bench_scaling.sh: '$label' failed:" >&2; cat "$work/out.txt" >&2; exit 1; }
    local line
    line="$(grep '^{"job":"bench"' "$work/out.txt")" ||
        { echo "bench_scaling.sh: '$label' printed no result:" >&2; cat "$work/out.txt" >&2; exit 1; }
    printf '{"label":"%s",%s\n' "$label" "${line#\{}" >>"$results"
}
for r in $(seq 1 "$rounds"); do
    run "1 rank" 1
    run "tp=2" 2 --set layout.tp=2
    run "dp=2" 2 --set layout.dp=2
    run "dp=2 unsplit" 2 --set layout.dp=2 --set optim.shard_update=false
    run "pp=2 m=$mb" 2 --set layout.pp=2 --set layout.micro_batches="$mb"
    echo "  round $r done, load average $(cut -d' ' -f1 /proc/loadavg)"
done
"$py" - "$results" <<'EOF'
import json, statistics, sys
allrows = [json.loads(l) for l in open(sys.argv[1])]
rows = [r for r in allrows if not r["label"].endswith(" (base)")]
labels = list(dict.fromkeys(r["label"] for r in rows))
of = lambda lab: [r for r in rows if r["label"] == lab]
med = lambda lab, k: statistics.median(r[k] for r in of(lab))
base = med(labels[0], "tokens_per_s")
print("%-13s %10s %8s %8s %10s %8s %9s %9s  %s" % ("layout", "tokens/s", "speedup", "paired",
      "compute_ms", "comm_ms", "bubble_ms", "imbal_ms", "every round (tokens/s)"))
for lab in labels:
    # paired: the median over rounds of this layout's tokens/s over one rank's in the
    # same round (load that drifts between rounds cancels)
    paired = statistics.median(a["tokens_per_s"] / b["tokens_per_s"]
                               for a, b in zip(of(lab), of(labels[0])))
    every = " ".join("%.0f" % r["tokens_per_s"] for r in of(lab))
    print("%-13s %10.1f %8.2f %8.2f %10.1f %8.1f %9.1f %9.1f  %s" % (lab,
          med(lab, "tokens_per_s"), med(lab, "tokens_per_s") / base, paired,
          med(lab, "compute_ms"), med(lab, "comm_ms"), med(lab, "bubble_ms"),
          med(lab, "imbalance_ms"), every))
base_rows = [r for r in allrows if r["label"].endswith(" (base)")]
if base_rows:
    rows = base_rows
    print("baseline build (the same rounds; 'this/base': median over rounds of this build's"
          " tokens/s over the baseline's run right after it)")
    print("%-13s %10s %8s %8s %10s %8s %9s %9s  %s" % ("layout", "tokens/s", "speedup", "paired",
          "compute_ms", "comm_ms", "bubble_ms", "imbal_ms", "this/base every round"))
    mine = {lab: [r for r in allrows if r["label"] == lab] for lab in labels}
    for lab in labels:
        b = lab + " (base)"
        paired = statistics.median(a["tokens_per_s"] / c["tokens_per_s"]
                                   for a, c in zip(of(b), of(labels[0] + " (base)")))
        ratios = [a["tokens_per_s"] / c["tokens_per_s"] for a, c in zip(mine[lab], of(b))]
        print("%-13s %10.1f %8.2f %8.2f %10.1f %8.1f %9.1f %9.1f  this/base %.3f (%s)" % (lab,
              med(b, "tokens_per_s"), med(b, "tokens_per_s") / med(labels[0] + " (base)",
              "tokens_per_s"), paired, med(b, "compute_ms"), med(b, "comm_ms"),
              med(b, "bubble_ms"), med(b, "imbalance_ms"), statistics.median(ratios),
              " ".join("%.3f" % x for x in ratios)))
EOF
