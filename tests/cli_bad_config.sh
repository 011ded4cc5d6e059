#!/usr/bin/env bash
# tests/cli_bad_config.sh — every bad config, through the real command line.
#
# For each tests/configs_bad/X.json and N in 1 2, runs
#     $MPIRUN --oversubscribe -n N $LETHE_BIN train X.json
# in an empty scratch folder and asserts: exit status 2; stderr is exactly one
# line, starting with "lethe: " and containing X.expect; nothing was created
# in the scratch folder (output.dir is relative, so a job that got as far as
# creating its output would leave it there).
#
# mpirun's own banner about a non-zero exit is switched off with
# OMPI_MCA_orte_execute_quiet (Open MPI's `mpirun -q`): it is mpirun's text, not
# lethe's, and would otherwise add ten lines to every failing run. The runs
# spend their time waiting on MPI start-up and tear-down, not computing, so
# they go four at a time. Each run is a case of tests/cases_lib.sh, under a 120 s
# limit: one verdict line per run, PASS only with exit status 0 and the run's own PASS
# line (a hang, a crash or a silent exit fails); the closing line counts them.
#
# usage: cli_bad_config.sh [CONFIGS_BAD_DIR]   (env: MPIRUN, LETHE_BIN)
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/cases_lib.sh"

# One run: cli_bad_config.sh --one CONFIG N SCRATCH. Prints what failed, then its verdict
# line ("PASS NAME npN" or "FAIL NAME npN"); exits 1 on failure.
if [ "${1:-}" = "--one" ]; then
    cfg="$2" n="$3" scratch="$4"
    name="$(basename "$cfg" .json)"
    want="$(head -n 1 "${cfg%.json}.expect")"
    work="$scratch/$name.np$n"
    mkdir "$work" || exit 1
    source "$(dirname "${BASH_SOURCE[0]}")/../jobs/mpienv.sh" # lethe_mpirun: see below
    (cd "$work" && lethe_mpirun "$MPIRUN" --oversubscribe -n "$n" \
        "$LETHE_BIN" train "$cfg" >"$work.out" 2>"$work.err")
    rc=$?
    bad=0
    fail() {
        echo "$name np$n: $*"
        bad=1
    }
    lines="$(wc -l <"$work.err")"
    first="$(head -n 1 "$work.err")"
    [ "$rc" -eq 2 ] || fail "exit status $rc, expected 2"
    if [ "$lines" -ne 1 ] || [ -n "$(tail -c 1 "$work.err")" ]; then
        fail "stderr has $lines lines, expected exactly one:"
        sed 's/^/    | /' "$work.err"
    fi
    case "$first" in
    "lethe: "*) ;;
    *) fail "stderr does not start with 'lethe: ': $first" ;;
    esac
    [[ "$first" == *"$want"* ]] || fail "stderr lacks '$want': $first"
    [ -z "$(ls -A "$work")" ] || fail "created $(ls -A "$work" | tr '\n' ' ')"
    rm -rf "$work" "$work.out" "$work.err"
    case_done "$name np$n" $bad
    exit
fi

dir="${1:-${LETHE_SOURCE_DIR:-$(dirname "$0")/..}/tests/configs_bad}"
: "${MPIRUN:?MPIRUN is not set}"
: "${LETHE_BIN:?LETHE_BIN is not set}"
if [ ! -x "$LETHE_BIN" ]; then
    echo "cli_bad_config: LETHE_BIN '$LETHE_BIN' is not an executable" >&2
    exit 1
fi
export MPIRUN LETHE_BIN
dir="$(cd "$dir" && pwd)"
scratch="$(mktemp -d "${TMPDIR:-/tmp}/lethe-cli-bad.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT

missing=0 files=0
cases_init "$scratch/runs"
for cfg in "$dir"/*.json; do
    if [ ! -f "${cfg%.json}.expect" ]; then
        echo "cli_bad_config: $(basename "$cfg") has no .expect sidecar"
        missing=$((missing + 1))
        continue
    fi
    # every file at 1 rank; every 4th also at 2 ranks (the agreement path of
    # lethe_check): the messages themselves are checked in-process by config.unit
    ranks="1"
    [ $((files % 4)) -eq 0 ] && ranks="1 2"
    files=$((files + 1))
    for n in $ranks; do
        case_add "$(basename "$cfg" .json) np$n" bash "$0" --one "$cfg" "$n" "$scratch"
    done
done

cases_xargs 4 120
ok=0
cases_end cli_bad_config || ok=1
if [ "$files" -lt 15 ]; then
    echo "cli_bad_config: only $files bad configs (expected at least 15)"
    ok=1
fi
[ "$missing" -eq 0 ] || ok=1
[ $ok -eq 0 ] && echo "cli_bad_config: each run exit 2 with one 'lethe: ' line and no output"
exit $ok
