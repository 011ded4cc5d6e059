#!/bin/bash
# tests/build_march.sh — a Release build's -march (CMake's LETHE_MARCH), for clusters
# whose login node is not the kind of node the jobs run on:
#   - LETHE_MARCH unknown to the compiler: configuring stops with one 'lethe:' line that
#     names the value and the flag, and writes no build files;
#   - the default is -march=native; on x86-64, LETHE_MARCH=x86-64-v3 (AVX2 and FMA) is
#     the -march of every compiled file (compile_commands.json) instead.
# Configures only (no compiler runs beyond CMake's checks). Every case prints PASS or
# FAIL; the script fails unless PASS lines = cases.
set -u
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cases=0 passed=0
# shellcheck source=tests/check_lib.sh
. "$root/tests/check_lib.sh" # check NAME STATUS [details...]
configure() { # DIR [cmake args...]: exit status, output in DIR.log
    local dir=$1
    shift
    cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=Release -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
        "$@" >"$dir.log" 2>&1
}
# every compile command's -march, one per line, sorted and unique
marches() { grep -o -- '-march=[^ "]*' "$1/compile_commands.json" | sort -u; }

configure "$work/bad" -DLETHE_MARCH=no-such-cpu
st=$?
lines=$(grep -c 'lethe: LETHE_MARCH=no-such-cpu: .* does not accept -march=no-such-cpu' "$work/bad.log")
check bad_march_refused "$([ "$st" != 0 ] && [ "$lines" = 1 ] && echo 0 || echo 1)" \
    "exit $st, $lines matching line(s): $(grep -m3 'lethe' "$work/bad.log" | tr '\n' ' ')"
check bad_march_no_build_files "$([ ! -e "$work/bad/Makefile" ] && [ ! -e "$work/bad/build.ninja" ] && echo 0 || echo 1)"

configure "$work/native"
st=$?
got=$(marches "$work/native" 2>/dev/null | tr '\n' ' ')
check default_native "$([ "$st" = 0 ] && [ "$got" = "-march=native " ] && echo 0 || echo 1)" \
    "exit $st, marches: '$got'"

if [ "$(uname -m)" = x86_64 ]; then
    configure "$work/v3" -DLETHE_MARCH=x86-64-v3
    st=$?
    got=$(marches "$work/v3" 2>/dev/null | tr '\n' ' ')
    check x86_64_v3 "$([ "$st" = 0 ] && [ "$got" = "-march=x86-64-v3 " ] && echo 0 || echo 1)" \
        "exit $st, marches: '$got'"
else
    check x86_64_v3_not_here 0 # another architecture: only native and the refusal apply
fi

echo "build_march: $passed of $cases cases passed"
[ "$cases" = 4 ] && [ "$passed" = "$cases" ]
