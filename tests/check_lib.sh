# tests/check_lib.sh — sourced by the test scripts that run their cases one after another
# in the script itself (setup_fresh.sh, build_march.sh, ckpt_format.sh,
# hostile/nan_weights.sh). The caller sets cases=0 passed=0;
#   check NAME STATUS [details...]   one case: STATUS 0 prints "PASS NAME", anything else
#                                    "FAIL NAME: details"; counts cases and passes
#   refused RC ERR WANT N            0 when a run that had to be refused was, cleanly: exit
#                                    status RC not 0, not a time-out (124), not a signal
#                                    (>= 128); no sanitizer report in the file ERR; ERR
#                                    without its "lethe: warning: " lines (left in ERR.e)
#                                    is 1 or N lines (N ranks), each "lethe: ...", with
#                                    WANT among them. Otherwise 1, and ERR's first lines
#                                    are shown indented.
# The caller ends by comparing passed with cases (and with the number it expects).
# shellcheck shell=bash

check() {
    local name=$1 st=$2
    shift 2
    cases=$((cases + 1))
    if [ "$st" = 0 ]; then
        passed=$((passed + 1))
        echo "PASS $name"
    else
        echo "FAIL $name${*:+: $*}"
    fi
}

refused() {
    local rc=$1 err=$2 want=$3 n=$4 lines
    grep -av '^lethe: warning: ' "$err" >"$err.e"
    lines=$(wc -l <"$err.e")
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$rc" -lt 128 ] &&
        ! grep -aq 'runtime error\|Sanitizer' "$err" &&
        { [ "$lines" -eq 1 ] || [ "$lines" -eq "$n" ]; } && ! grep -aqv '^lethe: ' "$err.e" &&
        grep -aqF -- "$want" "$err.e"; then
        return 0
    fi
    echo "    exit $rc, $lines lines, want '$want':"
    head -n 8 "$err" | cut -c1-300 | sed 's/^/    | /'
    return 1
}
