#!/usr/bin/env bash
# tests/hostile.sh — bad and hostile inputs through the real `lethe` binary under mpirun.
#
# usage: hostile.sh N MAKE_H5     (N ranks; MAKE_H5 the tests/hostile/make_hostile_h5 program)
# env: MPIRUN, LETHE_BIN, LETHE_SOURCE_DIR (tests/CMakeLists.txt sets them)
#
# Inputs: the configs of tests/hostile/configs/ (each with its .expect) and the cases of
# tests/hostile/cases.txt, whose files are tests/hostile/studies/ or are generated here
# (gen_inputs.py: safetensors, JSON lines with a single 100 MiB line, tokenizer files,
# the tiny model config; MAKE_H5: HDF5 token datasets; truncated.h5, the first 3000
# bytes of good.h5). A positive control first: good.h5 trains, so the dataset cases
# fail for their own reasons.
#
# Every case runs in a fresh folder whose out/ holds the sentinel files model.h5,
# data.h5 and SENTINEL, and asserts: a non-zero exit that is neither the 60 s timeout
# (124, a hang) nor a signal; stderr of one line, or one line per rank, each starting
# "lethe: ", containing the expected text ("lethe: warning: " lines aside); the
# sentinels unchanged, byte for byte, and no new *.h5, *.safetensors, .done or results*
# file beside them (a job refused only when it meets a bad token id mid-run may have
# begun its folder: config.json, provenance.json, a .partial log). Configs go through
# tests/cli_bad_config.sh --one, which asserts exit 2, one "lethe: " line with the
# .expect text and nothing created at all.
# Each run is a case of tests/cases_lib.sh, under a 120 s limit: one verdict line per
# input, PASS only with exit status 0 and the case's own PASS line (a hang, a crash or a
# silent exit fails); the closing line "hostile npN: K passed, 0 failed of K cases".
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/cases_lib.sh"

# One case: hostile.sh --one NAME N WORK EXPECT ARGS... (its verdict line last; exit 0
# when it passed).
if [ "${1:-}" = "--one" ]; then
    name=$2 n=$3 work=$4 want=$5
    shift 5
    mkdir -p "$work/out" || exit 1
    for f in model.h5 data.h5 SENTINEL; do
        printf 'sentinel %s %s\n' "$name" "$f" >"$work/out/$f"
    done
    before="$(cd "$work/out" && md5sum -- model.h5 data.h5 SENTINEL 2>&1)"
    source "$(dirname "${BASH_SOURCE[0]}")/../jobs/mpienv.sh" # runs go four at a time
    (cd "$work" && lethe_mpirun timeout 60 "$MPIRUN" --oversubscribe -n "$n" "$LETHE_BIN" "$@" \
        >"$work.out" 2>"$work.err")
    rc=$?
    bad=0
    fail() {
        echo "$name np$n: $*"
        bad=1
    }
    # warnings (an environment variable that slows OpenBLAS, ...) are not error lines
    grep -av '^lethe: warning: ' "$work.err" >"$work.errl"
    mv "$work.errl" "$work.err"
    lines="$(wc -l <"$work.err")"
    [ "$rc" -ne 0 ] || fail "exit status 0 (the input was accepted)"
    [ "$rc" -ne 124 ] || fail "no exit within 60 s (a hang)"
    [ "$rc" -lt 128 ] || fail "killed by signal $((rc - 128))"
    if { [ "$lines" -ne 1 ] && [ "$lines" -ne "$n" ]; } || [ -n "$(tail -c 1 "$work.err")" ] ||
        grep -aqv '^lethe: ' "$work.err"; then
        fail "stderr is not one 'lethe: ' line (or one per rank), $lines lines:"
        head -n 5 "$work.err" | cut -c1-300 | sed 's/^/    | /'
    fi
    grep -aqF -- "$want" "$work.err" || fail "stderr lacks '$want': $(head -c 300 "$work.err")"
    after="$(cd "$work/out" && md5sum -- model.h5 data.h5 SENTINEL 2>&1)"
    [ "$before" = "$after" ] || fail "a sentinel in out/ changed: $after"
    # a refused job may have begun its folder (config.json, a .partial log) but must not
    # leave an output that looks complete
    made="$(cd "$work/out" && ls -A | grep -v '^\(model.h5\|data.h5\|SENTINEL\)$' |
        grep '\.h5$\|\.safetensors$\|\.done$\|^results')"
    [ -z "$made" ] || fail "left outputs that look complete: $made"
    rm -rf "$work" "$work.out" "$work.err"
    case_done "$name np$n" $bad
    exit
fi

n="${1:?usage: hostile.sh N MAKE_H5}"
make_h5="${2:?usage: hostile.sh N MAKE_H5}"
: "${MPIRUN:?MPIRUN is not set}"
: "${LETHE_BIN:?LETHE_BIN is not set}"
src="${LETHE_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
H="$src/tests/hostile"
export MPIRUN LETHE_BIN OMPI_MCA_orte_execute_quiet=1
scratch="$(mktemp -d "${TMPDIR:-/tmp}/lethe-hostile.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
G="$scratch/gen"

python3 "$H/gen_inputs.py" "$G" && "$make_h5" "$G" || {
    echo "hostile: cannot generate the inputs" >&2
    exit 1
}
head -c 3000 "$G/good.h5" >"$G/truncated.h5"

# positive control: the tiny config trains on good.h5 at this rank count
mkdir "$scratch/control"
if ! (cd "$scratch/control" && timeout 120 "$MPIRUN" --oversubscribe -n "$n" "$LETHE_BIN" train \
    "$G/tiny.json" --set data.path="$G/good.h5" --set layout.dp="$n" >out.txt 2>err.txt) ||
    [ ! -s "$scratch/control/out/model.h5" ]; then
    echo "FAIL control: training the tiny model on good.h5 failed:"
    cat "$scratch/control/err.txt"
    exit 1
fi

# every run is a case; four run at a time (they spend their time waiting on MPI start-up
# and tear-down)
cases_init "$scratch/runs"
for cfg in "$H"/configs/*.json; do
    case_add "$(basename "$cfg" .json) np$n" \
        bash "$src/tests/cli_bad_config.sh" --one "$cfg" "$n" "$scratch"
done
while IFS=$'\t' read -r name want args; do
    case "$name" in "" | "#"*) continue ;; esac
    want="${want//@N/$n}"
    args="${args//@G/$G}"
    args="${args//@H/$H}"
    args="${args//@D/$src/tests/data}"
    args="${args//@N/$n}"
    args="${args//@M/$((2 * n))}"
    args="${args//@L/$LETHE_BIN}"
    # shellcheck disable=SC2086 # the arguments are split at spaces on purpose
    case_add "$name np$n" bash "$0" --one "$name" "$n" "$scratch/$name.np$n" "$want" $args
done <"$H/cases.txt"
cases_xargs 4 120
cases_end "hostile np$n" 60
