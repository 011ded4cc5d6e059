# tests/cases_lib.sh — sourced by the test scripts that run many small cases in parallel
# (hostile.sh, cli_bad_config.sh, prepare_cli.sh, test_convert.sh).
#
# A case has a name and a log of its own; it ends the log with its verdict line, "PASS
# NAME" or "FAIL NAME" (case_done), and exits 0 only when it passed. The script then reads
# every case back and prints one verdict line of its own per case: PASS only with exit
# status 0 and exactly one verdict line in the log, "PASS NAME". A case that hangs (ended
# by its time limit), crashes, exits non-zero, prints nothing or exits 0 without its PASS
# line is a FAIL, its log shown indented. The closing line reads "LABEL: P passed, F
# failed of N cases", and the script passes only when P equals N.
#
#   cases_init DIR             a folder for the case files (created)
#   case_add NAME CMD...       a case running CMD (a program, not a shell function), for:
#   cases_xargs JOBS SECS      runs the added cases JOBS at a time (xargs -P), each under
#                              `timeout SECS`; then their verdicts
#   case_bg NAME CMD...        a case running CMD (a shell function too) now, in the
#                              background, for:
#   cases_wait SECS            waits for the background cases, each at most SECS from its
#                              start (one still running then is killed and fails); then
#                              their verdicts
#   case_done NAME BAD         the case's own verdict line (BAD 0: PASS); returns BAD
#   case_refusal NAME WHAT WANT OUT RC ERR
#                              the checks of a run that must be refused -- exit status RC
#                              2, its stderr (file ERR) one line "lethe: ...WANT...",
#                              nothing at OUT* (OUT "": not checked) -- what failed, each
#                              line starting with WHAT, then the verdict line
#   cases_end LABEL [MIN]      the closing line; false unless every case passed, every
#                              runner (xargs) succeeded and there were at least MIN cases
# shellcheck shell=bash

cases_init() {
    cases_dir="$1" cases_n=0 cases_read=0 cases_pass=0 cases_fail=0 cases_runner=0
    cases_pid=() cases_t0=()
    mkdir -p "$cases_dir"
}

case_done() {
    if [ "$2" = 0 ]; then echo "PASS $1"; else echo "FAIL $1"; fi
    return "$2"
}

case_refusal() {
    local name="$1" what="$2" want="$3" out="$4" rc="$5" err="$6" bad=0 lines first
    lines="$(wc -l <"$err")"
    first="$(head -n 1 "$err")"
    cases_no() {
        echo "$what: $*"
        bad=1
    }
    [ "$rc" -eq 2 ] || cases_no "exit $rc, expected 2"
    [ "$lines" -eq 1 ] || cases_no "stderr has $lines lines, expected one: $(cat "$err")"
    [[ "$first" == "lethe: "* ]] || cases_no "stderr does not start with 'lethe: ': $first"
    [[ "$first" == *"$want"* ]] || cases_no "stderr lacks \"$want\": $first"
    if [ -n "$out" ] && ls "$out"* >/dev/null 2>&1; then cases_no "left $(ls "$out"*)"; fi
    case_done "$name" $bad
}

# the files of case I: I.name, I.sh (its command, for xargs), I.log, I.rc (exit status)
cases_file() { printf '%s/%04d' "$cases_dir" "$1"; }

cases_new() { # NAME: a new case's file prefix in $cases_f
    cases_n=$((cases_n + 1))
    cases_f="$(cases_file $cases_n)"
    printf '%s\n' "$1" >"$cases_f.name"
}

case_add() {
    cases_new "$1"
    shift
    printf '%q ' "$@" >"$cases_f.sh"
}

case_bg() {
    cases_new "$1"
    shift
    "$@" >"$cases_f.log" 2>&1 </dev/null &
    cases_pid[cases_n]=$! cases_t0[cases_n]=$SECONDS
}

# verdict of case I, whose exit status was RC ("" if it never ran)
cases_verdict() { # I RC
    local f name why="" n
    f="$(cases_file "$1")"
    name="$(cat "$f.name")"
    n="$(grep -c '^\(PASS\|FAIL\) ' "$f.log" 2>/dev/null)"
    if [ -z "$2" ]; then
        why="it never ran (no exit status)"
    elif [ "$2" = timeout ] || [ "$2" = 124 ]; then
        why="no end within its time limit (a hang)"
    elif [ "$2" -gt 128 ] && [ "$2" -lt 160 ]; then
        why="exit status $2 (signal $(($2 - 128)))"
    elif [ "$2" != 0 ]; then
        why="exit status $2"
    elif [ "${n:-0}" -ne 1 ]; then
        why="exit status 0 with ${n:-0} verdict lines, expected 1"
    elif ! grep -qxF "PASS $name" "$f.log"; then
        why="exit status 0 without its line 'PASS $name'"
    fi
    cases_read=$((cases_read + 1))
    if [ -z "$why" ]; then
        cases_pass=$((cases_pass + 1))
        echo "PASS $name"
        return
    fi
    cases_fail=$((cases_fail + 1))
    echo "FAIL $name: $why"
    head -n 40 "$f.log" 2>/dev/null | cut -c1-400 | sed 's/^/    | /'
}

cases_xargs() { # JOBS SECS
    local i rc
    # each case under its time limit, its output to its log, its status to its .rc; any
    # failure is exit 1 to xargs (a 255 would make xargs stop starting cases)
    # shellcheck disable=SC2016 # expanded by the bash that xargs runs
    for ((i = cases_read + 1; i <= cases_n; i++)); do cases_file $i && echo; done |
        xargs -d '\n' -n 1 -P "$1" bash -c 'timeout -k 10 "$0" bash "$1.sh" >"$1.log" 2>&1 </dev/null
            rc=$?; echo $rc >"$1.rc"; [ $rc = 0 ]' "$2"
    rc=$?
    # 123: some case failed (its verdict says which); anything else is xargs' own failure
    if [ $rc != 0 ]; then
        echo "cases: xargs exited $rc"
        cases_runner=$rc
    fi
    for ((i = cases_read + 1; i <= cases_n; i++)); do
        cases_verdict $i "$(cat "$(cases_file $i).rc" 2>/dev/null)"
    done
}

cases_kill() { # PID: TERM to the process and its descendants, KILL 5 s later
    local all="$1" more="$1"
    while [ -n "$more" ]; do
        more="$(pgrep -d ' ' -P "${more// /,}")"
        all="$all $more"
    done
    # shellcheck disable=SC2086 # one pid per word
    kill -TERM $all 2>/dev/null
    sleep 5
    # shellcheck disable=SC2086
    kill -KILL $all 2>/dev/null
}

cases_wait() { # SECS
    local i rc
    for i in "${!cases_pid[@]}"; do
        while kill -0 "${cases_pid[i]}" 2>/dev/null && [ $((SECONDS - cases_t0[i])) -lt "$1" ]
        do sleep 0.2; done
        if kill -0 "${cases_pid[i]}" 2>/dev/null; then
            cases_kill "${cases_pid[i]}"
            wait "${cases_pid[i]}"
            rc=timeout
        else
            wait "${cases_pid[i]}"
            rc=$?
        fi
        cases_verdict "$i" "$rc"
    done
    cases_pid=() cases_t0=()
}

cases_end() { # LABEL [MIN]
    echo "$1: $cases_pass passed, $cases_fail failed of $cases_n cases"
    if [ "$cases_n" -lt "${2:-1}" ]; then
        echo "$1: only $cases_n cases, expected at least ${2:-1}"
        return 1
    fi
    [ "$cases_pass" -eq "$cases_n" ] && [ "$cases_fail" -eq 0 ] && [ "$cases_runner" = 0 ]
}
