#!/usr/bin/env bash
# jobs/demo.sh — lethe's first command: check the dependencies, build, and run the
# built-in unlearning study on local MPI ranks.
#
#   bash jobs/demo.sh [--dir DIR]
#
# The study is jobs/studies/tofu-tiny.json under `mpirun -n 2`: it generates the
# fictitious-authors benchmark, trains the origin and retrained models, unlearns 5 % of
# the authors with GA, GradDiff, NPO and SimNPO, evaluates every model, attacks each
# unlearned one with a short relearning run, and writes the report (tables and plots)
# to runs/tofu-tiny/report/. Finished jobs are skipped, so a second run resumes.
# The job runs from the repository's top folder, so relative output paths land there.
# The Open MPI root variables are set for this script's process only, and only as root.
set -euo pipefail

# shellcheck source=jobs/setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
lethe_setup
lethe_build build

cd "$LETHE_ROOT"
study=jobs/studies/tofu-tiny.json
if [ ! -f "$study" ]; then
    echo "lethe demo: $LETHE_ROOT/$study not found" >&2
    exit 1
fi

ranks=2 # the study's layout: dp=2
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

echo "+ mpirun ${mpi_args[*]} build/lethe study $study $*"
exec mpirun "${mpi_args[@]}" build/lethe study "$study" "$@"
