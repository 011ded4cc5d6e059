#!/bin/bash
# `lethe --version` against sources that do not go through lethe: it runs without
# mpirun, exits 0, and its lines name
#   lethe <PROJECT_VERSION> (commit <git describe of the source, at build time>)
#   MPI: Open MPI vX.Y.Z...           = `mpirun --version`, `ompi_info --parsable`
#   OpenBLAS: OpenBLAS X.Y.Z ...; core C (auto)
#                                     = pkg-config openblas / the Debian package; with
#                                       OPENBLAS_CORETYPE=Haswell: core Haswell (forced ...)
#   HDF5: X.Y.Z (parallel)            = CMake's FindHDF5, `h5dump --version`, pkg-config
#   cJSON: X.Y.Z                      = pkg-config libcjson / the Debian package
# Every line is compared value for value; a library with no independent source found
# here is a failure, not a skip. -V and `version` print the same; --help lists it.
# Usage: version.sh PROJECT_VERSION HDF5_VERSION HDF5_IS_PARALLEL
# (given by tests/version.cmake). Needs LETHE_BIN, LETHE_SOURCE_DIR, MPIRUN.
set -u
want_version=$1 cmake_h5=$2 cmake_h5par=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cases=0 pass=0
check() { # description got want
    cases=$((cases + 1))
    if [ "$2" = "$3" ] && [ -n "$3" ]; then
        echo "PASS $1: $2"; pass=$((pass + 1))
    else
        echo "FAIL $1: lethe says '$2', expected '$3'"
    fi
}
# the version of a package from pkg-config, else from dpkg (Debian "0.3.21+ds-4" -> 0.3.21)
pkgver() { # pkg-config-name debian-package...
    local v
    v=$(pkg-config --modversion "$1" 2>/dev/null) && [ -n "$v" ] && { echo "$v"; return; }
    shift
    for p in "$@"; do
        v=$(dpkg-query -W -f '${Version}' "$p" 2>/dev/null) && [ -n "$v" ] &&
            { echo "$v" | sed -E 's/^[0-9]+://; s/[+~-].*//'; return; }
    done
}

# runs without mpirun (a singleton), exit 0, within 30 s
env -u OPENBLAS_CORETYPE timeout 30 "$LETHE_BIN" --version >"$work/out" 2>"$work/err"
rc=$?
check "exit status without mpirun" "$rc" 0
cat "$work/out"
[ -s "$work/err" ] && { echo "stderr:"; cat "$work/err"; }
line() { grep -m1 "^$1" "$work/out"; }

# lethe and its commit
l=$(line "lethe ")
check "lethe version" "$(sed -nE 's/^lethe ([^ ]+) \(commit .*\)$/\1/p' <<<"$l")" "$want_version"
want_git=$(git -C "$LETHE_SOURCE_DIR" describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)
check "commit (git describe of the source it was built from)" "$(sed -nE 's/^lethe [^ ]+ \(commit (.*)\)$/\1/p' <<<"$l")" "$want_git"

# Open MPI: the first line only, its version that of mpirun and ompi_info
l=$(line "MPI: ")
got=$(sed -nE 's/^MPI: Open MPI v([0-9][0-9.]*).*/\1/p' <<<"$l")
w=$("$MPIRUN" --version 2>/dev/null | sed -nE 's/.*\(Open MPI\) ([0-9][0-9.]*).*/\1/p' | head -1)
check "Open MPI version (mpirun --version)" "$got" "$w"
w=$(ompi_info --parsable 2>/dev/null | sed -nE 's/^ompi:version:full:([0-9][0-9.]*).*/\1/p' | head -1)
[ -n "$w" ] && check "Open MPI version (ompi_info --parsable)" "$got" "$w"
check "MPI: one line" "$(grep -c '^MPI: ' "$work/out")" 1

# OpenBLAS: version, and the core OpenBLAS picks or is forced to
l=$(line "OpenBLAS: ")
got=$(sed -nE 's/^OpenBLAS: OpenBLAS ([0-9][0-9.]*) .*/\1/p' <<<"$l")
check "OpenBLAS version (pkg-config openblas / dpkg)" "$got" \
    "$(pkgver openblas libopenblas0-pthread libopenblas0-openmp libopenblas0-serial libopenblas0)"
check "OpenBLAS core, OPENBLAS_CORETYPE unset" "$(sed -nE 's/.*; core [A-Za-z0-9_]+ \((auto)\)$/\1/p' <<<"$l")" auto
if grep -qw avx2 /proc/cpuinfo; then
    l=$(OPENBLAS_CORETYPE=Haswell timeout 30 "$LETHE_BIN" --version | grep -m1 '^OpenBLAS: ')
    check "OpenBLAS core, OPENBLAS_CORETYPE=Haswell" "$(sed -nE 's/.*; core (.*)$/\1/p' <<<"$l")" \
        "Haswell (forced by OPENBLAS_CORETYPE=Haswell)"
fi

# HDF5: version and parallel
l=$(line "HDF5: ")
got=$(sed -nE 's/^HDF5: ([0-9][0-9.]*) \((parallel|serial)\)$/\1/p' <<<"$l")
check "HDF5 version (CMake FindHDF5)" "$got" "$cmake_h5"
w=$(h5dump --version 2>/dev/null | sed -nE 's/.*Version ([0-9][0-9.]*).*/\1/p' | head -1)
[ -n "$w" ] && check "HDF5 version (h5dump --version)" "$got" "$w"
w=$(pkg-config --modversion hdf5-openmpi 2>/dev/null)
[ -n "$w" ] && check "HDF5 version (pkg-config hdf5-openmpi)" "$got" "$w"
case "$cmake_h5par" in [Tt][Rr][Uu][Ee] | 1 | ON | on) par=parallel ;; *) par=serial ;; esac
check "HDF5 parallel (CMake HDF5_IS_PARALLEL)" "$(sed -nE 's/^HDF5: .* \((parallel|serial)\)$/\1/p' <<<"$l")" "$par"

# cJSON
check "cJSON version (pkg-config libcjson / dpkg)" "$(sed -nE 's/^cJSON: (.*)$/\1/p' <"$work/out")" \
    "$(pkgver libcjson libcjson1 libcjson-dev)"

# the other spellings print the same; --help lists it
for a in -V version; do
    timeout 30 env -u OPENBLAS_CORETYPE "$LETHE_BIN" "$a" >"$work/alt" 2>/dev/null
    rc=$?
    check "lethe $a: exit status and output as --version" "$rc $(cmp -s "$work/out" "$work/alt" && echo same)" "0 same"
done
"$LETHE_BIN" --help >"$work/help" 2>&1
check "lethe --help lists --version" "$(grep -c -- 'lethe --version' "$work/help")" 1

echo "version: $pass of $cases checks pass"
[ "$pass" -eq "$cases" ] && [ "$cases" -ge 13 ]
