#!/usr/bin/env bash
# jobs/demo.sh — lethe's first command: check the dependencies, build, and run the
# built-in unlearning study on local MPI ranks.
#
#   bash jobs/demo.sh [--dir DIR]
#
# The study is jobs/studies/tofu-tiny.json under `mpirun -n 2`, every job sharded with
# tensor parallelism (tp 2; 2 ranks on 2 cores keep its 130 jobs within about 5 minutes,
# where 4 oversubscribed ranks spend a third of their CPU in the kernel): it generates the
# fictitious-authors benchmark, trains the origin and retrained models, and compares
# GA, GradDiff, NPO and SimNPO on unlearning 5 % of the authors by a fair protocol:
# each method's own grid of 6 settings runs on 2 selection seeds, a select job per
# method picks its setting (best forget quality at model utility >= 0.95 x the origin's;
# runs/tofu-tiny/select-05-<method>/selected.json), and only that setting runs on 2
# fresh report seeds, evaluated and attacked with a short relearning run. The report
# (tables and plots) is in runs/tofu-tiny/report/. Finished jobs are skipped, so a
# second run resumes.
# The job runs from the repository's top folder, so relative output paths land there.
# The Open MPI root variables are set for this script's process only, and only as root.
set -euo pipefail

# shellcheck source=jobs/setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
# shellcheck source=jobs/mpienv.sh
source "$(dirname "${BASH_SOURCE[0]}")/mpienv.sh"
lethe_setup --demo
lethe_build build

cd "$LETHE_ROOT"
study=jobs/studies/tofu-tiny.json
if [ ! -f "$study" ]; then
    echo "lethe demo: $LETHE_ROOT/$study not found" >&2
    exit 1
fi

# the layout of every job: tp 2 (the study file's own is dp 2)
layout=(--set layout.dp=1 --set layout.tp=2 --set layout.pp=1 --set layout.micro_batches=1)
ranks=2
mpi_args=(-n "$ranks")
# More ranks than cores: Open MPI refuses unless told to share cores.
if [ "$(lethe_nproc)" -lt "$ranks" ]; then
    mpi_args+=(--oversubscribe)
fi
if [ "$(id -u)" = 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

# A forced core type (e.g. Haswell on an AVX-512 machine) can halve sgemm speed. It is
# the user's setting, so it is reported, not changed.
if [ -n "${OPENBLAS_CORETYPE:-}" ]; then
    echo "lethe demo: OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE is set: OpenBLAS uses that core" \
        "type's kernels, not the best for this CPU (unset it to let OpenBLAS choose)"
else
    echo "lethe demo: OPENBLAS_CORETYPE is not set: OpenBLAS picks its kernels for this CPU"
fi

echo "+ mpirun ${mpi_args[*]} build/lethe study $study ${layout[*]} $*"
t0=$SECONDS
lethe_mpirun mpirun "${mpi_args[@]}" build/lethe study "$study" "${layout[@]}" "$@"

# The study's folder (--dir DIR, else runs/tofu-tiny), its table and plots.
dir=runs/tofu-tiny
while [ $# -gt 0 ]; do
    [ "$1" = --dir ] && [ $# -gt 1 ] && dir="$2"
    shift
done
csv="$dir/report/results.csv"
[ -f "$csv" ] || { echo "lethe demo: no $csv" >&2; exit 1; }
echo
echo "lethe demo: done in $((SECONDS - t0)) s. The report phase ($csv: each method's"
echo "selected setting, mean over the report seeds; the selection phase is in the same file):"
# columns by name: method, setting, forget quality, model utility, forget/retain
# probability, forget ROUGE-L, truth ratio, PrivLeak, relearn recovery; the rows of the
# report phase only (every row when the file has no phase column)
awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i
                   printf "%-9s %-12s %10s %7s %8s %8s %8s %7s %8s %9s\n", "method", "setting",
                          "FQ", "MU", "forget p", "retain p", "f ROUGE", "f TR", "PrivLeak",
                          "relearn+"
                   next }
         function v(k,  x) { x = (k in col) ? $(col[k]) : ""; return x == "" ? "-" : sprintf("%.4g", x) }
         function s(k) { return (k in col) ? $(col[k]) : "-" }
         ("phase" in col) && $(col["phase"]) != "report" { next }
         { printf "%-9s %-12s %10s %7s %8s %8s %8s %7s %8s %9s\n", $(col["method"]), s("setting"),
                  v("forget_quality"), v("model_utility"), v("forget_prob"), v("retain_prob"),
                  v("forget_rouge_recall"), v("forget_truth_ratio"), v("privleak"),
                  v("relearn_recovery") }' "$csv"
echo
echo "Verdicts (every two methods, paired by seed on the report seeds; $dir/report/results.md):"
grep -E '^- .+ vs .+ seeds — ' "$dir/report/results.md" | sed 's/^- /  /' ||
    echo "  none (see $dir/report/results.md)"
echo "Selections: $dir/select-05-*/selected.json (every candidate's means, the chosen one)"
echo "Tables: $dir/report/results.md (all columns, seeds, both phases)"
plots="$(ls "$dir"/report/*.png 2>/dev/null | tr '\n' ' ')"
echo "Plots:  ${plots:-none (no gnuplot: install gnuplot-nox or module load gnuplot, then build/lethe report $dir)}"
