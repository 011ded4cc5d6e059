#!/usr/bin/env bash
# tests/run.sh — lethe's whole test suite, the same command for a user and for CI.
#
#   bash tests/run.sh            (from any folder)
#
# 1. jobs/setup.sh with the test dependencies (PyTorch and NumPy for /usr/bin/python3,
#    gnuplot): finds them, installs them as root on Debian, or says what is missing.
# 2. Release build in build/ with -Werror, then ctest on it (every label).
# 3. AddressSanitizer + UBSan Debug build in build-asan/ with -Werror, then ctest on it,
#    leaving out tests labelled `slow` or `nosan`.
# A failing build or test does not stop the later stages; the exit status is non-zero if
# anything failed, and the last line reads `tests: N passed, M failed`.
#
# Environment: LETHE_TEST_JOBS (ctest parallelism, default 2: the MPI tests already run
# up to 8 ranks each), LETHE_PYTHON (the python3 with torch, default /usr/bin/python3),
# LETHE_TEST_REGEX (only tests matching it, e.g. while working on one group).
set -uo pipefail

# shellcheck source=jobs/setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/../jobs/setup.sh"
lethe_setup --tests

jobs="${LETHE_TEST_JOBS:-2}"
cmake_extra=(-DLETHE_WERROR=ON)
if [ -n "${LETHE_PYTHON:-}" ]; then
    cmake_extra+=(-DLETHE_TORCH_PYTHON="$LETHE_PYTHON")
fi
ctest_extra=()
if [ -n "${LETHE_TEST_REGEX:-}" ]; then
    ctest_extra+=(-R "$LETHE_TEST_REGEX")
fi

t_start=$SECONDS
total_pass=0
total_fail=0
summary=()

fmt_time() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# stage NAME DIR "CTEST ARGS" CMAKE ARGS...: build in DIR, run ctest there, tally.
stage() {
    local name="$1" dir="$2" ctest_args="$3"
    shift 3
    local t0=$SECONDS
    echo "==== $name: build in $dir/"
    if ! lethe_build "$dir" "$@"; then
        echo "==== $name: build FAILED"
        summary+=("$name $dir/: build FAILED")
        total_fail=$((total_fail + 1))
        return
    fi
    echo "==== $name: ctest in $dir/"
    local log="$LETHE_ROOT/$dir/ctest.log"
    # shellcheck disable=SC2086 # ctest_args holds several options
    (cd "$LETHE_ROOT/$dir" && ctest --output-on-failure --no-tests=error -j"$jobs" \
        $ctest_args "${ctest_extra[@]}") 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    # "92% tests passed, 1 tests failed out of 12"
    local line failed=0 total=0
    line="$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n1)"
    if [ -n "$line" ]; then
        failed="$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")"
        total="$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$line")"
    fi
    if [ "$rc" != 0 ] && [ "$failed" = 0 ]; then
        failed=1 # ctest itself failed (no tests, bad arguments): count it
    fi
    local passed=$((total - failed))
    [ "$passed" -lt 0 ] && passed=0
    total_pass=$((total_pass + passed))
    total_fail=$((total_fail + failed))
    summary+=("$name $dir/: $passed passed, $failed failed ($(fmt_time $((SECONDS - t0))))")
}

stage release build "" "${cmake_extra[@]}"
stage asan build-asan "-LE slow|nosan" -DCMAKE_BUILD_TYPE=Debug -DLETHE_SANITIZE=ON \
    "${cmake_extra[@]}"

echo "==== summary ($(fmt_time $((SECONDS - t_start))) in all)"
for s in "${summary[@]}"; do
    echo "  $s"
done
echo "tests: $total_pass passed, $total_fail failed"
[ "$total_fail" = 0 ]
