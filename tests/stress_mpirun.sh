#!/usr/bin/env bash
# tests/stress_mpirun.sh — many short mpiruns at once on one node, none of them failing in
# Open MPI's session folder.
#
# usage: stress_mpirun.sh [--shared] [LAUNCHES [AT_ONCE]]    (defaults 200 and 8)
# env: MPIRUN, LETHE_BIN (set by ctest); LETHE_SOURCE_DIR optional
#
# LAUNCHES runs of `mpirun -n 2 lethe train BAD.json`, AT_ONCE at a time (xargs -P),
# each through lethe_mpirun (jobs/mpienv.sh): a session folder of its own. BAD.json
# cycles through tests/configs_bad: MPI start-up, rank 0 reads the config, both ranks
# agree on its verdict and exit 2. A launch is a second or two of MPI start-up and
# tear-down around little work, so launches start and end all the time, which is when
# Open MPI 4.1's shared <tmp>/ompi.<host>.<uid>/ is lost (one job removes it, empty, as
# another creates its folder inside). Each launch must exit 2 within 60 s with stderr
# exactly one line ("lethe: warning: " lines aside), starting "lethe: " and holding the
# config's .expect text: an ORTE_ERROR_LOG / session_dir.c line, an mpirun banner or a
# hang fails it. One PASS line per launch; the test passes when the PASS lines number
# LAUNCHES and the sessions folder is empty at the end (every private folder removed,
# and Open MPI's inside them).
#
# --shared: the environment before the fix, as evidence that the race is real: every
# launch uses one session base (a fresh folder, standing for /tmp, so that nothing else
# on the machine is disturbed), mpirun quiet as before. The same checks; the summary
# says how many launches failed, and how many of them with a session_dir.c line.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# One launch: stress_mpirun.sh --one MODE I CONFIG SCRATCH. Prints PASS or FAIL lines.
if [ "${1:-}" = "--one" ]; then
    mode="$2" i="$3" cfg="$4" scratch="$5"
    want="$(head -n 1 "${cfg%.json}.expect")"
    log="$scratch/logs/$i"
    launch=(timeout 60 "$MPIRUN" --oversubscribe -n 2 "$LETHE_BIN" train "$cfg")
    cd "$scratch/cwd" || exit 1
    if [ "$mode" = shared ]; then
        OMPI_MCA_orte_tmpdir_base="$scratch/sessions" OMPI_MCA_orte_execute_quiet=1 \
            "${launch[@]}" >"$log.out" 2>"$log.err"
    else
        # shellcheck source=jobs/mpienv.sh
        source "$here/../jobs/mpienv.sh"
        lethe_mpirun "${launch[@]}" >"$log.out" 2>"$log.err"
    fi
    rc=$?
    bad=""
    [ "$rc" -eq 2 ] || bad="$bad; exit $rc, expected 2"
    errs="$(grep -av '^lethe: warning: ' "$log.err")"
    lines="$(printf '%s' "$errs" | grep -c '')"
    [ "$lines" -eq 1 ] || bad="$bad; stderr has $lines lines, expected one"
    case "$errs" in "lethe: "*) ;; *) bad="$bad; stderr does not start with 'lethe: '" ;; esac
    [[ "$errs" == *"$want"* ]] || bad="$bad; stderr lacks '$want'"
    if [ -z "$bad" ]; then
        echo "PASS $i $(basename "$cfg")"
    else
        echo "FAIL $i $(basename "$cfg")${bad}:"
        head -n 4 "$log.err" | cut -c1-200 | sed 's/^/    | /'
        grep -aq 'session_dir' "$log.err" && echo "SESSION_DIR $i"
    fi
    exit 0
fi

mode=private
if [ "${1:-}" = "--shared" ]; then
    mode=shared
    shift
fi
launches="${1:-200}"
at_once="${2:-8}"
: "${MPIRUN:?MPIRUN is not set}"
: "${LETHE_BIN:?LETHE_BIN is not set}"
bad_dir="${LETHE_SOURCE_DIR:-$here/..}/tests/configs_bad"
export MPIRUN LETHE_BIN OPENBLAS_NUM_THREADS=1
scratch="$(mktemp -d "${TMPDIR:-/tmp}/lethe-stress.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/logs" "$scratch/cwd" "$scratch/sessions"
# the private folders go into $scratch/sessions, which must be empty at the end
[ "$mode" = private ] && export OMPI_MCA_orte_tmpdir_base="$scratch/sessions"

configs=("$bad_dir"/*.json)
if [ "${#configs[@]}" -lt 2 ] || [ ! -f "${configs[0]%.json}.expect" ]; then
    echo "FAIL: no bad configs with .expect files in $bad_dir"
    exit 1
fi
for ((i = 0; i < launches; i++)); do
    printf '%s\0%s\0%s\0%s\0' "$mode" "$i" "${configs[i % ${#configs[@]}]}" "$scratch"
done >"$scratch/list"

t0=$SECONDS
xargs -0 -n 4 -P "$at_once" bash "$0" --one <"$scratch/list" >"$scratch/log" 2>&1
xrc=$?
secs=$((SECONDS - t0))
grep -v '^PASS \|^SESSION_DIR ' "$scratch/log" | head -n 60
pass="$(grep -c '^PASS ' "$scratch/log")"
failed=$((launches - pass)) # a launch that hung or printed nothing counts too
session="$(grep -c '^SESSION_DIR ' "$scratch/log")"
left="$(find "$scratch/sessions" -mindepth 1 -maxdepth 1 | wc -l)"
echo "stress_mpirun ($mode session folders): $pass/$launches launches passed, $failed failed" \
    "($session with a session_dir.c error), $at_once at once, ${secs} s"
if [ "$mode" = private ] && [ "$left" -ne 0 ]; then
    echo "FAIL: $left entries left in the sessions folder:" \
        "$(find "$scratch/sessions" -mindepth 1 | head -n 5 | tr '\n' ' ')"
    exit 1
fi
[ "$xrc" = 0 ] || echo "FAIL: xargs exited $xrc"
[ "$pass" -eq "$launches" ] && [ "$xrc" = 0 ]
