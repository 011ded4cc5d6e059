#!/usr/bin/env bash
# jobs/setup.sh — make sure lethe's build (and test) dependencies exist, then build it.
#
# Sourced by jobs/demo.sh and tests/run.sh; `bash jobs/setup.sh [--tests]` only checks
# (and, as root on Debian, installs). It provides:
#   lethe_setup [--tests]        find every dependency; install what is missing or stop.
#                                --tests adds PyTorch, NumPy, h5py, gnuplot and clang with
#                                libFuzzer (the fuzz tests), and for
#                                root also Slurm and munge (the Slurm test needs root)
#   lethe_build DIR [cmake args] cmake -S <repo> -B DIR -DCMAKE_BUILD_TYPE=Release [args],
#                                then cmake --build DIR -j$(nproc); a relative DIR is
#                                taken under the repository
#   LETHE_ROOT                   the repository (found from this file, not from $PWD)
#
# Detection comes first. On Debian every package that dpkg reports installed counts as
# found; anything else is looked for as a command or a header (PATH, CPATH,
# C_INCLUDE_PATH, <PKG>_ROOT/_DIR/_HOME, pkg-config, /usr/include), which is how
# `module load` on a cluster provides it. When everything is found nothing is installed
# and no root is needed. When something is missing:
#   - root on Debian: `apt-get update` once, then `apt-get install -y
#     --no-install-recommends` of exactly the missing packages, then detection again;
#   - otherwise: one line naming what is missing and the Debian package or module that
#     provides it, and exit 1.
#
# Environment:
#   LETHE_SETUP_FORCE_MISSING="pkg ..."  treat these Debian packages as missing even if
#                                        installed (tests the install/report branches)
#   LETHE_SETUP_NO_INSTALL=1             never install, even as root: report and exit 1
#   LETHE_PYTHON=/path/python3           interpreter with torch + numpy for the parity
#                                        tests (default /usr/bin/python3)
#
# Nothing here changes the caller's environment beyond defining these functions and
# LETHE_ROOT; the Open MPI root variables are set by the scripts that run mpirun, in
# their own process only.

LETHE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Debian packages, in install order.
LETHE_BUILD_PKGS="libopenmpi-dev openmpi-bin libopenblas-dev libhdf5-openmpi-dev hdf5-tools
libcjson-dev cmake gcc make pkg-config"
LETHE_TEST_PKGS="python3-torch python3-numpy python3-h5py gnuplot-nox clang libclang-rt-14-dev"
# The Slurm end-to-end test brings up a private Slurm, which needs root: these are
# required (and installed) only when running as root.
LETHE_TEST_ROOT_PKGS="slurm-wlm munge"

_lethe_say() { echo "lethe setup: $*"; }

_lethe_has_cmd() { command -v "$1" >/dev/null 2>&1; }

# Daemons live in sbin, which a user's PATH may lack.
_lethe_has_cmds() {
    local c
    for c in "$@"; do
        PATH="$PATH:/usr/sbin:/sbin" _lethe_has_cmd "$c" || return 1
    done
}

# Include directories where a module system, pkg-config or Debian puts headers.
_lethe_include_dirs() {
    local IFS=:
    local d v
    for d in ${CPATH:-} ${C_INCLUDE_PATH:-}; do
        [ -n "$d" ] && echo "$d"
    done
    for v in OPENBLAS CJSON HDF5 MPI OPENMPI; do
        for d in "${v}_ROOT" "${v}_DIR" "${v}_HOME" "EBROOT${v}"; do
            [ -n "${!d:-}" ] && echo "${!d}/include"
        done
    done
    if _lethe_has_cmd pkg-config; then
        local f
        for f in $(pkg-config --cflags-only-I openblas libcjson hdf5-openmpi hdf5 2>/dev/null |
            tr ' ' ':'); do
            [ -n "$f" ] && echo "${f#-I}"
        done
    fi
    echo /usr/local/include
    echo /usr/include
    for d in /usr/include/*-linux-gnu /usr/include/*-linux-gnu/openblas* /usr/include/hdf5/openmpi; do
        [ -d "$d" ] && echo "$d"
    done
    return 0
}

# _lethe_find_header REL: prints the first include directory holding REL.
_lethe_find_header() {
    local d
    while read -r d; do
        if [ -f "$d/$1" ]; then
            echo "$d"
            return 0
        fi
    done < <(_lethe_include_dirs)
    return 1
}

_lethe_python() { echo "${LETHE_PYTHON:-/usr/bin/python3}"; }

# Can clang link a libFuzzer harness? (the runtime is a package of its own on Debian)
_lethe_clang_fuzzer() {
    _lethe_has_cmd clang || return 1
    local t
    t="$(mktemp -d)" || return 1
    echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return d && n > 1; }' >"$t/f.c"
    clang -fsanitize=fuzzer "$t/f.c" -o "$t/f" >/dev/null 2>&1
    local rc=$?
    rm -rf "$t"
    return $rc
}

# _lethe_found PKG: is what the Debian package PKG provides available some other way?
_lethe_found() {
    case "$1" in
    libopenmpi-dev) _lethe_has_cmd mpicc ;;
    openmpi-bin) _lethe_has_cmd mpirun || _lethe_has_cmd mpiexec ;;
    libopenblas-dev) _lethe_find_header cblas.h >/dev/null ;;
    libhdf5-openmpi-dev)
        # Parallel HDF5: its configuration header says so (a serial hdf5.h does not do).
        local d
        d="$(_lethe_find_header H5pubconf.h)" &&
            grep -q '^#define H5_HAVE_PARALLEL 1' "$d/H5pubconf.h"
        ;;
    hdf5-tools) _lethe_has_cmd h5dump ;;
    libcjson-dev) _lethe_find_header cjson/cJSON.h >/dev/null ;;
    cmake)
        # CMakeLists.txt needs 3.18.
        _lethe_has_cmd cmake || return 1
        local v
        v="$(cmake --version | sed -n 's/^cmake version \([0-9]*\.[0-9]*\).*/\1/p')"
        [ -n "$v" ] && [ "$(printf '%s\n' 3.18 "$v" | sort -V | head -n1)" = 3.18 ]
        ;;
    gcc) _lethe_has_cmd "${CC:-cc}" || _lethe_has_cmd gcc ;;
    make) _lethe_has_cmd make ;;
    pkg-config) _lethe_has_cmd pkg-config || _lethe_has_cmd pkgconf ;;
    python3-torch) "$(_lethe_python)" -c 'import torch' >/dev/null 2>&1 ;;
    python3-numpy) "$(_lethe_python)" -c 'import numpy' >/dev/null 2>&1 ;;
    gnuplot-nox) _lethe_has_cmd gnuplot ;;
    python3-h5py) "$(_lethe_python)" -c 'import h5py' >/dev/null 2>&1 ;;
    clang) _lethe_has_cmd clang ;;
    libclang-rt-14-dev) _lethe_clang_fuzzer ;;
    slurm-wlm) _lethe_has_cmds sbatch srun scontrol sinfo squeue slurmctld slurmd ;;
    munge) _lethe_has_cmds munged mungekey ;;
    *) return 1 ;;
    esac
}

# What a missing package stands for, and where it comes from on Debian and on a cluster.
_lethe_describe() {
    local what mod=""
    case "$1" in
    libopenmpi-dev) what="mpicc" mod="openmpi" ;;
    openmpi-bin) what="mpirun" mod="openmpi" ;;
    libopenblas-dev) what="cblas.h of OpenBLAS" mod="openblas" ;;
    libhdf5-openmpi-dev) what="parallel HDF5 headers" mod="an MPI-enabled hdf5" ;;
    hdf5-tools) what="h5dump" mod="hdf5" ;;
    libcjson-dev) what="cjson/cJSON.h" mod="cjson" ;;
    cmake) what="cmake >= 3.18" mod="cmake" ;;
    gcc) what="a C compiler" mod="gcc" ;;
    make) what="make" ;;
    pkg-config) what="pkg-config" ;;
    python3-torch) what="torch for $(_lethe_python)" mod="-" ;;
    python3-numpy) what="numpy for $(_lethe_python)" mod="-" ;;
    gnuplot-nox) what="gnuplot" mod="gnuplot" ;;
    python3-h5py) what="h5py for $(_lethe_python)" mod="-" ;;
    clang) what="clang (the fuzz tests)" mod="llvm" ;;
    libclang-rt-14-dev) what="libFuzzer for clang (-fsanitize=fuzzer)" mod="llvm" ;;
    slurm-wlm) what="slurmctld, slurmd and the Slurm clients for the local-cluster test" ;;
    munge) what="munged and mungekey" ;;
    *) what="$1" ;;
    esac
    case "$mod" in
    "") echo "$what (Debian $1)" ;;
    -) echo "$what (Debian $1, or LETHE_PYTHON=a python3 that has it)" ;;
    *) echo "$what (Debian $1, or module load $mod)" ;;
    esac
}

# _lethe_missing FORCE PKG...: prints the packages whose contents are not found.
# FORCE=1 applies LETHE_SETUP_FORCE_MISSING.
_lethe_missing() {
    local force=$1
    shift
    local installed=" "
    if _lethe_has_cmd dpkg-query; then
        installed=" $(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "$@" 2>/dev/null |
            awk '$2 == "ii" { printf "%s ", $1 }')"
    fi
    local p
    for p in "$@"; do
        if [ "$force" = 1 ] && [[ " ${LETHE_SETUP_FORCE_MISSING:-} " == *" $p "* ]]; then
            echo "$p"
        elif [[ "$installed" == *" $p "* ]]; then
            continue
        elif ! _lethe_found "$p"; then
            echo "$p"
        fi
    done
    return 0
}

_lethe_apt_updated=0

lethe_setup() {
    local pkgs="$LETHE_BUILD_PKGS" what="build"
    if [ "${1:-}" = "--tests" ]; then
        pkgs="$pkgs $LETHE_TEST_PKGS"
        if [ "$(id -u)" = 0 ]; then
            pkgs="$pkgs $LETHE_TEST_ROOT_PKGS"
        fi
        what="build and test"
    fi
    local missing
    # shellcheck disable=SC2086 # the package list is split into words on purpose
    missing="$(_lethe_missing 1 $pkgs | tr '\n' ' ')"
    missing="${missing% }"
    if [ -z "$missing" ]; then
        _lethe_say "all $what dependencies found"
        return 0
    fi
    local p desc=""
    for p in $missing; do
        desc="${desc:+$desc; }$(_lethe_describe "$p")"
    done
    if [ "$(id -u)" != 0 ] || ! _lethe_has_cmd apt-get || [ "${LETHE_SETUP_NO_INSTALL:-0}" = 1 ]; then
        echo "lethe setup: missing $desc" >&2
        exit 1
    fi
    _lethe_say "installing $missing (missing: $desc)"
    if [ "$_lethe_apt_updated" = 0 ]; then
        apt-get update -q || {
            echo "lethe setup: apt-get update failed" >&2
            exit 1
        }
        _lethe_apt_updated=1
    fi
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing || {
        echo "lethe setup: apt-get install $missing failed" >&2
        exit 1
    }
    # shellcheck disable=SC2086
    missing="$(_lethe_missing 0 $missing | tr '\n' ' ')"
    missing="${missing% }"
    if [ -n "$missing" ]; then
        echo "lethe setup: still missing after apt-get install: $missing" >&2
        exit 1
    fi
    _lethe_say "all $what dependencies found"
}

lethe_nproc() { nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2; }

lethe_build() {
    local dir="$1"
    shift
    case "$dir" in
    /*) ;;
    *) dir="$LETHE_ROOT/$dir" ;;
    esac
    # A later -DCMAKE_BUILD_TYPE in "$@" overrides the Release default.
    cmake -S "$LETHE_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" &&
        cmake --build "$dir" -j"$(lethe_nproc)"
}

# Run directly: check (and, as root on Debian, install) only.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    lethe_setup "$@"
fi
