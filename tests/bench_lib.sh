# tests/bench_lib.sh — what the benchmark scripts share (sourced, not run).
#
#   bench_counts NAME VALUE...   exit 2 unless every VALUE is a positive count
#   bench_setup NAME CONFIG CORETYPE
#                                checks CONFIG and the lethe binary, sets `lethe`
#                                (LETHE_BIN, else build/lethe), `mpirun` (MPIRUN) and
#                                `py` (LETHE_PYTHON, else python3), applies the
#                                OpenBLAS core type (inherit | auto: unset | a name),
#                                one BLAS thread per rank, and Open MPI's root switches
#                                when run as root
#   bench_mpi_args N             sets `mpi_args` to -n N, oversubscribed past the cores
#   bench_work NAME              sets `work` to a new scratch folder, removed at exit; a
#                                non-zero exit prints "NAME: FAILED (exit N)" last (the
#                                smoke tests of tests/perf.cmake fail on it: ctest's
#                                PASS_REGULAR_EXPRESSION alone ignores the exit status)
bench_counts() {
    local name="$1" v
    shift
    for v in "$@"; do
        case "$v" in '' | *[!0-9]* | 0) echo "$name: '$v' is not a positive count" >&2; exit 2 ;; esac
    done
}

bench_setup() {
    local name="$1" config="$2" core="$3" root
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    [ -f "$config" ] || { echo "$name: config '$config' not found" >&2; exit 2; }
    lethe="${LETHE_BIN:-$root/build/lethe}"
    [ -x "$lethe" ] || { echo "$name: no lethe at '$lethe' (build it or set LETHE_BIN)" >&2; exit 2; }
    mpirun="${MPIRUN:-mpirun}"
    py="${LETHE_PYTHON:-python3}"
    case "$core" in
    inherit) ;;
    auto) unset OPENBLAS_CORETYPE ;;
    *) export OPENBLAS_CORETYPE="$core" ;;
    esac
    export OPENBLAS_NUM_THREADS=1
    if [ "$(id -u)" = 0 ]; then
        export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    fi
}

bench_mpi_args() {
    mpi_args=(-n "$1")
    [ "$1" -le "$(nproc 2>/dev/null || echo 1)" ] || mpi_args+=(--oversubscribe)
}

bench_work() {
    bench_name="$1"
    work="$(mktemp -d "${TMPDIR:-/tmp}/lethe-${1%.sh}.XXXXXX")"
    # shellcheck disable=SC2154 # rc is set by the trap itself
    trap 'rc=$?; rm -rf "$work"
        [ $rc = 0 ] || echo "$bench_name: FAILED (exit $rc)" >&2
        exit $rc' EXIT
}
