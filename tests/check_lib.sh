# tests/check_lib.sh — sourced by the test scripts that run their cases one after another
# in the script itself (setup_fresh.sh, build_march.sh). The caller sets cases=0 passed=0;
#   check NAME STATUS [details...]   one case: STATUS 0 prints "PASS NAME", anything else
#                                    "FAIL NAME: details"; counts cases and passes
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
