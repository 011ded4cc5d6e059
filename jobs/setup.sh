#!/usr/bin/env bash
# jobs/setup.sh — make sure lethe's build (and test) dependencies exist, then build it.
#
# Sourced by jobs/demo.sh and tests/run.sh; `bash jobs/setup.sh [--tests]` only checks
# (and, as root on Debian, installs). It provides:
#   lethe_setup [--tests|--demo] find every dependency; install what is missing or stop.
#                                --tests adds PyTorch, NumPy, h5py, gnuplot and clang with
#                                libFuzzer (the fuzz tests), and for
#                                root also Slurm and munge (the Slurm test needs root);
#                                --demo adds gnuplot (the report's plots), which is
#                                installed as root and otherwise only wished for: without
#                                it the demo ends with tables only
#   lethe_build DIR [cmake args] cmake -S <repo> -B DIR -DCMAKE_BUILD_TYPE=Release [args],
#                                then cmake --build DIR -j$(nproc); a relative DIR is
#                                taken under the repository
#   LETHE_ROOT                   the repository (found from this file, not from $PWD)
#
# Detection comes first, and checks what CMake will check. On Debian every package that
# dpkg reports installed counts as found. Where this process can install (root on
# Debian), dpkg alone decides: a package it does not report is installed, whatever
# look-alike files exist (Debian's reference BLAS ships a cblas.h too). Elsewhere (no
# root, or not Debian: what `module load` provides) the library itself is looked for in
# PATH, CPATH, C_INCLUDE_PATH, LIBRARY_PATH, LD_LIBRARY_PATH, <PKG>_ROOT/_DIR/_HOME,
# pkg-config and the system folders: OpenBLAS by its openblas_config.h beside cblas.h and
# a libopenblas that links openblas_get_config; HDF5 by H5_HAVE_PARALLEL in H5pubconf.h
# and a libhdf5 that links H5Pset_fapl_mpio; cJSON by its header and a linking libcjson.
# When everything is found nothing is installed and no root is needed. When something
# is missing:
#   - root on Debian: `apt-get update` once, then `apt-get install -y
#     --no-install-recommends` of exactly the missing packages, then detection again;
#   - otherwise: one line naming what is missing and the Debian package or module that
#     provides it, and exit 1 before CMake runs.
#
# Environment:
#   LETHE_SETUP_FORCE_MISSING="pkg ..."  treat these Debian packages as missing even if
#                                        installed (tests the install/report branches)
#   LETHE_SETUP_NO_INSTALL=1             never install, even as root: report and exit 1
#   LETHE_SETUP_SYSROOT=DIR              look in DIR/usr/include, DIR/usr/lib, ... instead
#                                        of the system's folders, and not at dpkg (tests)
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
# The demo's report draws its plots with gnuplot: installed as root; without root a
# missing gnuplot is named and the demo ends with tables only.
LETHE_DEMO_PKGS="gnuplot-nox"
# libblas-dev: the reference BLAS, which the set-up test plants as a look-alike of OpenBLAS.
LETHE_TEST_PKGS="python3-torch python3-numpy python3-h5py gnuplot-nox clang libclang-rt-14-dev
libblas-dev python3-sentencepiece"
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

# LETHE_SETUP_SYSROOT: a folder standing in for / when detection looks in the system's
# own folders (/usr/include, /usr/lib, ...). The tests point it at a fake tree; dpkg, which
# knows only the real /, is not asked then.
_lethe_sys() { echo "${LETHE_SETUP_SYSROOT:-}$1"; }

# Prefixes a module system or the user set: <NAME>_ROOT/_DIR/_HOME, EBROOT<NAME>.
_lethe_prefixes() {
    local v d
    for v in OPENBLAS CJSON HDF5 MPI OPENMPI; do
        for d in "${v}_ROOT" "${v}_DIR" "${v}_HOME" "EBROOT${v}"; do
            [ -n "${!d:-}" ] && echo "${!d}"
        done
    done
    return 0
}

# _lethe_dirs include|lib: the directories where a module system, pkg-config or Debian
# puts headers (include) or libraries (lib), in search order.
_lethe_dirs() {
    local kind=$1
    local IFS=:
    local d f base envs subs flag sysdirs
    if [ "$kind" = include ]; then
        envs="${CPATH:-}:${C_INCLUDE_PATH:-}" subs=include flag=--cflags-only-I
        sysdirs="/usr/local/include:/usr/include"
    else
        envs="${LIBRARY_PATH:-}:${LD_LIBRARY_PATH:-}" subs=lib:lib64 flag=--libs-only-L
        sysdirs="/usr/local/lib:/usr/lib:/usr/lib64"
    fi
    for d in $envs; do
        [ -n "$d" ] && echo "$d"
    done
    for d in $(_lethe_prefixes | tr '\n' ':'); do
        for f in $subs; do echo "$d/$f"; done
    done
    if _lethe_has_cmd pkg-config; then
        for f in $(pkg-config "$flag" openblas libcjson hdf5-openmpi hdf5 2>/dev/null |
            tr ' ' ':'); do
            [ -n "$f" ] && echo "${f#-?}"
        done
    fi
    # Debian's multiarch folders and the openblas/hdf5 subfolders of each system folder.
    local sys=()
    for base in $sysdirs; do sys+=("$(_lethe_sys "$base")"); done
    for base in "${sys[@]}" "$(_lethe_sys /usr/"$kind")"/*-linux-gnu; do
        for d in "$base" "$base"/openblas* "$base"/hdf5/openmpi; do
            [ -d "$d" ] && echo "$d"
        done
    done
    return 0
}
_lethe_include_dirs() { _lethe_dirs include; }
_lethe_lib_dirs() { _lethe_dirs lib; }

# _lethe_find_in DIRS_FN TEST...: prints the first directory (from DIRS_FN) holding every
# listed file (each TEST a relative path; "a|b" means either).
_lethe_find_in() {
    local fn=$1 d t alt ok one
    shift
    while read -r d; do
        ok=1
        for t in "$@"; do
            one=0
            for alt in ${t//|/ }; do
                [ -e "$d/$alt" ] && one=1
            done
            [ "$one" = 1 ] || { ok=0; break; }
        done
        if [ "$ok" = 1 ]; then
            echo "$d"
            return 0
        fi
    done < <("$fn")
    return 1
}

# _lethe_find_header REL...: the first include directory holding every REL.
_lethe_find_header() { _lethe_find_in _lethe_include_dirs "$@"; }
# _lethe_find_lib NAME: the first library directory with libNAME.so or libNAME.a.
_lethe_find_lib() { _lethe_find_in _lethe_lib_dirs "lib$1.so|lib$1.a"; }

# _lethe_links INC LIBDIR LIB HEADER CALL: does a program that includes HEADER and calls
# CALL compile and link against -lLIB? Checked only when a C compiler is there (without
# one, the compiler is what is reported missing). The same check CMake makes.
_lethe_links() {
    local cc="${CC:-cc}"
    _lethe_has_cmd "$cc" || cc=gcc
    _lethe_has_cmd "$cc" || return 0
    local t rc
    t="$(mktemp -d)" || return 1
    printf '#include <%s>\nint main(void) { return %s; }\n' "$4" "$5" >"$t/c.c"
    "$cc" -I"$1" "$t/c.c" -o "$t/c" -L"$2" -l"$3" >/dev/null 2>&1
    rc=$?
    rm -rf "$t"
    return $rc
}

# OpenBLAS, not any cblas.h: its own openblas_config.h beside cblas.h, libopenblas, and
# openblas_get_config() linking (Debian's reference BLAS also ships a cblas.h).
_lethe_found_openblas() {
    local inc lib
    inc="$(_lethe_find_header cblas.h openblas_config.h)" || return 1
    lib="$(_lethe_find_lib openblas)" || return 1
    _lethe_links "$inc" "$lib" openblas cblas.h 'openblas_get_config() == 0'
}

# Parallel HDF5: hdf5.h beside an H5pubconf.h that defines H5_HAVE_PARALLEL, and a
# libhdf5 (Debian: hdf5/openmpi/libhdf5.so) that links H5Pset_fapl_mpio.
_lethe_found_phdf5() {
    local inc lib
    inc="$(_lethe_find_header hdf5.h H5pubconf.h)" || return 1
    grep -q '^#define H5_HAVE_PARALLEL 1' "$inc/H5pubconf.h" || return 1
    lib="$(_lethe_find_lib hdf5)" || return 1
    _lethe_has_cmd mpicc || return 1
    CC=mpicc _lethe_links "$inc" "$lib" hdf5 hdf5.h '(int)H5Pset_fapl_mpio(0, MPI_COMM_WORLD, MPI_INFO_NULL)'
}

_lethe_found_cjson() {
    local inc lib
    inc="$(_lethe_find_header cjson/cJSON.h)" || return 1
    lib="$(_lethe_find_lib cjson)" || return 1
    _lethe_links "$inc" "$lib" cjson cjson/cJSON.h 'cJSON_Version() == 0'
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
    libopenblas-dev) _lethe_found_openblas ;;
    libhdf5-openmpi-dev) _lethe_found_phdf5 ;;
    hdf5-tools) _lethe_has_cmd h5dump ;;
    libcjson-dev) _lethe_found_cjson ;;
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
    python3-sentencepiece) "$(_lethe_python)" -c 'import sentencepiece' >/dev/null 2>&1 ;;
    clang) _lethe_has_cmd clang ;;
    libclang-rt-14-dev) _lethe_clang_fuzzer ;;
    libblas-dev) [ -e "$(_lethe_sys /usr/include)/x86_64-linux-gnu/cblas-netlib.h" ] ;;
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
    libopenblas-dev) what="OpenBLAS (cblas.h with openblas_config.h, libopenblas)" mod="openblas" ;;
    libhdf5-openmpi-dev) what="parallel HDF5 (H5_HAVE_PARALLEL, libhdf5)" mod="an MPI-enabled hdf5" ;;
    hdf5-tools) what="h5dump" mod="hdf5" ;;
    libcjson-dev) what="cJSON (cjson/cJSON.h, libcjson)" mod="cjson" ;;
    cmake) what="cmake >= 3.18" mod="cmake" ;;
    gcc) what="a C compiler" mod="gcc" ;;
    make) what="make" ;;
    pkg-config) what="pkg-config" ;;
    python3-torch) what="torch for $(_lethe_python)" mod="-" ;;
    python3-numpy) what="numpy for $(_lethe_python)" mod="-" ;;
    gnuplot-nox) what="gnuplot" mod="gnuplot" ;;
    python3-h5py) what="h5py for $(_lethe_python)" mod="-" ;;
    python3-sentencepiece) what="sentencepiece for $(_lethe_python) (the spm tokenizer test)" mod="-" ;;
    clang) what="clang (the fuzz tests)" mod="llvm" ;;
    libclang-rt-14-dev) what="libFuzzer for clang (-fsanitize=fuzzer)" mod="llvm" ;;
    libblas-dev) what="the reference BLAS (the set-up test's look-alike of OpenBLAS)" ;;
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

# Can this process install Debian packages? (root, apt-get, installing not turned off,
# and the real / being the one looked at)
_lethe_can_install() {
    [ "$(id -u)" = 0 ] && _lethe_has_cmd apt-get && [ "${LETHE_SETUP_NO_INSTALL:-0}" != 1 ] &&
        [ -z "${LETHE_SETUP_SYSROOT:-}" ]
}

# _lethe_missing FORCE PKG...: prints the packages whose contents are not found.
# FORCE=1 applies LETHE_SETUP_FORCE_MISSING. A package dpkg reports installed is found.
# Where this process can install packages, dpkg decides alone: a package it does not
# report is missing and gets installed (a look-alike file, such as the reference BLAS's
# cblas.h, does not stand in for it). Elsewhere (no root, not Debian: `module load`)
# the library itself is looked for (_lethe_found).
_lethe_missing() {
    local force=$1
    shift
    local installed=" " dpkg=0
    if _lethe_has_cmd dpkg-query && [ -z "${LETHE_SETUP_SYSROOT:-}" ]; then
        dpkg=1
        installed=" $(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "$@" 2>/dev/null |
            awk '$2 == "ii" { printf "%s ", $1 }' || true)"
    fi
    local p
    for p in "$@"; do
        if [ "$force" = 1 ] && [[ " ${LETHE_SETUP_FORCE_MISSING:-} " == *" $p "* ]]; then
            echo "$p"
        elif [[ "$installed" == *" $p "* ]]; then
            continue
        elif [ "$dpkg" = 1 ] && _lethe_can_install &&
            ! { [[ "$p" == python3-* ]] && [ -n "${LETHE_PYTHON:-}" ]; }; then
            echo "$p"
        elif ! _lethe_found "$p"; then
            echo "$p"
        fi
    done
    return 0
}

_lethe_apt_updated=0

# _lethe_describe_all PKG...: "what (Debian pkg, or module load m); ..."
_lethe_describe_all() {
    local p desc=""
    for p in "$@"; do
        desc="${desc:+$desc; }$(_lethe_describe "$p")"
    done
    echo "$desc"
}

lethe_setup() {
    local pkgs="$LETHE_BUILD_PKGS" want="" what="build"
    case "${1:-}" in
    "") ;;
    --tests)
        pkgs="$pkgs $LETHE_TEST_PKGS"
        if [ "$(id -u)" = 0 ]; then
            pkgs="$pkgs $LETHE_TEST_ROOT_PKGS"
        fi
        what="build and test"
        ;;
    --demo)
        want="$LETHE_DEMO_PKGS"
        what="build and demo"
        ;;
    *)
        echo "lethe setup: unknown option '$1' (expected --tests or --demo)" >&2
        exit 2
        ;;
    esac
    local missing lacking
    # shellcheck disable=SC2086 # the package lists are split into words on purpose
    missing="$(_lethe_missing 1 $pkgs | tr '\n' ' ')"
    # shellcheck disable=SC2086
    lacking="$(_lethe_missing 1 $want | tr '\n' ' ')"
    missing="${missing% }" lacking="${lacking% }"
    if [ -z "$missing$lacking" ]; then
        _lethe_say "all $what dependencies found"
        return 0
    fi
    if ! _lethe_can_install; then
        if [ -n "$lacking" ]; then
            # shellcheck disable=SC2086
            _lethe_say "not found, going on without it: $(_lethe_describe_all $lacking)"
        fi
        if [ -n "$missing" ]; then
            # shellcheck disable=SC2086
            echo "lethe setup: missing $(_lethe_describe_all $missing)" >&2
            exit 1
        fi
        return 0
    fi
    local all="${missing:+$missing }$lacking"
    all="${all% }"
    # shellcheck disable=SC2086
    _lethe_say "installing $all (missing: $(_lethe_describe_all $all))"
    if [ "$_lethe_apt_updated" = 0 ]; then
        apt-get update -q || {
            echo "lethe setup: apt-get update failed" >&2
            exit 1
        }
        _lethe_apt_updated=1
    fi
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $all || {
        echo "lethe setup: apt-get install $all failed" >&2
        exit 1
    }
    # shellcheck disable=SC2086
    all="$(_lethe_missing 0 $all | tr '\n' ' ')"
    all="${all% }"
    if [ -n "$all" ]; then
        echo "lethe setup: still missing after apt-get install: $all" >&2
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
# `bash jobs/setup.sh --check PKG...` prints the packages not found, one a line, without
# installing (the set-up tests ask it about fake roots).
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    if [ "${1:-}" = --check ]; then
        shift
        _lethe_missing 1 "$@"
    else
        lethe_setup "$@"
    fi
fi
