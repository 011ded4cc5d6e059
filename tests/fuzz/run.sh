#!/usr/bin/env bash
# tests/fuzz/run.sh — builds and runs lethe's libFuzzer harnesses.
#
#   run.sh build OUT                 compiles the library (mpi model io analysis slurm jobs)
#                                    and the harnesses with clang
#                                    -fsanitize=fuzzer,address,undefined into OUT
#   run.sh run OUT NAME SECONDS [libFuzzer args...]
#                                    runs OUT/fuzz_NAME for SECONDS over its seed corpus
#                                    (the repository's real files) plus OUT/corpus/NAME,
#                                    where new inputs are kept between runs
#   NAME: config safetensors jsonl tokenizer study
#
# Exits 77 (ctest SKIP_RETURN_CODE) when clang cannot link -fsanitize=fuzzer (Debian:
# clang and libclang-rt-14-dev). Any crash, sanitizer report, leak, timeout (10 s per
# input) or broken harness invariant is a non-zero exit; the reproducer is saved as
# OUT/crash-NAME-* and the log is OUT/NAME.log.
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
CC_FUZZ="${LETHE_FUZZ_CC:-clang}"

usage() {
    echo "usage: run.sh build OUT | run.sh run OUT NAME SECONDS [libFuzzer args]" >&2
    exit 2
}

seeds() {
    case "$1" in
    config) echo "$root/jobs/configs $root/tests/configs_bad $root/tests/hostile/configs" ;;
    safetensors) echo "$here/seeds/safetensors $root/tests/hostile/safetensors" ;;
    jsonl) echo "$root/tests/data $root/tests/hostile/jsonl" ;;
    tokenizer) echo "$here/seeds/tokenizer" ;;
    study) echo "$root/jobs/studies $root/tests/hostile/studies" ;;
    *) return 1 ;;
    esac
}

can_fuzz() {
    command -v "$CC_FUZZ" >/dev/null 2>&1 || {
        echo "skipped: $CC_FUZZ not found (Debian: clang, libclang-rt-14-dev)"
        return 1
    }
    local t
    t="$(mktemp -d)" || return 1
    echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return d && n > 9; }' \
        >"$t/t.c"
    if ! "$CC_FUZZ" -fsanitize=fuzzer,address,undefined "$t/t.c" -o "$t/t" >/dev/null 2>&1; then
        rm -rf "$t"
        echo "skipped: $CC_FUZZ cannot link -fsanitize=fuzzer (Debian: libclang-rt-14-dev)"
        return 1
    fi
    rm -rf "$t"
}

build() {
    local out=$1
    can_fuzz || exit 77
    mkdir -p "$out/obj" || exit 1
    local inc mpi_c mpi_l h5_l
    mpi_c="$(mpicc -showme:compile 2>/dev/null)" || {
        echo "run.sh: mpicc -showme:compile failed" >&2
        exit 1
    }
    mpi_l="$(mpicc -showme:link)"
    inc="-I$root"
    local d
    for d in /usr/include/hdf5/openmpi /usr/include/x86_64-linux-gnu/openblas-pthread \
        /usr/include/openblas; do
        [ -d "$d" ] && inc="$inc -I$d"
    done
    h5_l="$(pkg-config --libs hdf5-openmpi 2>/dev/null || echo -lhdf5)"
    local flags="-std=c11 -g -O1 -D_POSIX_C_SOURCE=200809L -DLETHE_VERSION=\"fuzz\"
        -DLETHE_GIT=\"fuzz\" -DLETHE_SOURCE_DIR=\"$root\" -fno-omit-frame-pointer
        -fsanitize=address,undefined -fno-sanitize-recover=undefined $inc $mpi_c"
    local newest_h srcs=() s o
    newest_h="$(find "$root"/{mpi,model,io,analysis,slurm,jobs} -name '*.h' -printf '%T@\n' |
        sort -n | tail -1)"
    for s in "$root"/{mpi,model,io,io/text,io/synth,analysis,slurm,jobs}/*.c; do
        [ "$(basename "$s")" = main.c ] && continue
        o="$out/obj/$(basename "$(dirname "$s")")_$(basename "$s" .c).o"
        if [ ! -f "$o" ] || [ "$s" -nt "$o" ] ||
            [ "$(stat -c %Y "$o")" -lt "${newest_h%.*}" ]; then
            srcs+=("$s")
        fi
    done
    if [ ${#srcs[@]} -gt 0 ]; then
        echo "run.sh: compiling ${#srcs[@]} library sources with $CC_FUZZ"
        local n=0 fail=0
        for s in "${srcs[@]}"; do
            o="$out/obj/$(basename "$(dirname "$s")")_$(basename "$s" .c).o"
            # shellcheck disable=SC2086 # flags are words on purpose
            $CC_FUZZ $flags -fsanitize=fuzzer-no-link -c "$s" -o "$o" &
            n=$((n + 1))
            if [ $n -ge 2 ]; then
                wait -n || fail=1
                n=$((n - 1))
            fi
        done
        while [ $n -gt 0 ]; do
            wait -n || fail=1
            n=$((n - 1))
        done
        [ $fail = 0 ] || exit 1
        rm -f "$out/libfuzzcore.a"
    fi
    if [ ! -f "$out/libfuzzcore.a" ]; then
        ar rcs "$out/libfuzzcore.a" "$out"/obj/*.o || exit 1
    fi
    local h
    for h in config safetensors jsonl tokenizer study; do
        # shellcheck disable=SC2086
        $CC_FUZZ $flags -fsanitize=fuzzer "$here/fuzz_$h.c" "$out/libfuzzcore.a" -o "$out/fuzz_$h" \
            $h5_l $mpi_l -lcjson -lopenblas -lm -lpthread || exit 1
    done
    echo "run.sh: built $out/fuzz_{config,safetensors,jsonl,tokenizer,study}"
}

run() {
    local out=$1 name=$2 secs=$3
    shift 3
    local dirs
    dirs="$(seeds "$name")" || usage
    [ -x "$out/fuzz_$name" ] || {
        can_fuzz || exit 77
        echo "run.sh: $out/fuzz_$name is not built (run.sh build $out)" >&2
        exit 1
    }
    mkdir -p "$out/corpus/$name" || exit 1
    local existing="" d
    for d in $dirs; do
        [ -d "$d" ] && existing="$existing $d"
    done
    # the harnesses write each input to a file: a memory file system keeps that cheap
    if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
        export TMPDIR=/dev/shm
    fi
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:allocator_may_return_null=1"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
    # shellcheck disable=SC2086
    "$out/fuzz_$name" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$out/crash-$name-" "$@" \
        "$out/corpus/$name" $existing >"$out/$name.log" 2>&1
    local rc=$?
    # an interrupted run (SIGINT: a time budget kept by the caller) is a clean end
    if [ $rc -eq 72 ] && grep -aq 'libFuzzer: run interrupted' "$out/$name.log" &&
        ! grep -aq 'ERROR: \|runtime error\|^fuzz: ' "$out/$name.log"; then
        rc=0
    fi
    local done execs
    done="$(grep -a '^#[0-9]*[[:space:]]*DONE' "$out/$name.log" | tail -1)"
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$name.log" | tail -1)"
    if [ $rc -ne 0 ]; then
        grep -a -m1 -B2 -A30 'ERROR\|fuzz: \|runtime error\|SUMMARY' "$out/$name.log" >&2
        echo "fuzz $name: FAILED (exit $rc) after ${execs:-?} executions; log $out/$name.log" >&2
        exit 1
    fi
    echo "fuzz $name: ${execs:-?} executions in ${secs} s, no crash, sanitizer report or leak"
    echo "  $done"
    [ -n "$execs" ] && [ "$execs" -gt 0 ] || exit 1
}

case "${1:-}" in
build) [ $# -eq 2 ] || usage; build "$2" ;;
run) [ $# -ge 4 ] || usage; run "$2" "$3" "$4" "${@:5}" ;;
*) usage ;;
esac
