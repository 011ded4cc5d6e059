#!/bin/bash
# tests/setup_fresh.sh — the set-up's detection, as a brand-new machine or a cluster
# login meets it, run against fake system trees (LETHE_SETUP_SYSROOT) with the
# environment pointed at them, so what happens to be installed here does not decide:
#   - a tree holding only the reference BLAS (netlib's cblas.h and libblas.so, as Debian's
#     libblas-dev provides them) is not OpenBLAS: libopenblas-dev is reported missing;
#   - a tree holding the real OpenBLAS, parallel HDF5 and cJSON (links to this machine's)
#     finds all three; a serial H5pubconf.h (no H5_HAVE_PARALLEL) is not parallel HDF5;
#   - where nothing can be installed, a missing build dependency is one 'lethe setup:'
#     line naming it with its Debian package and module, exit 1; a missing gnuplot for the
#     demo is named and the set-up goes on (exit 0);
#   - the demo's package list includes gnuplot and demo.sh asks for it;
#   - LETHE_SETUP_FORCE_MISSING reaches the report branch (no install) and, as root, the
#     install branch (apt-get installs the package again);
#   - `lethe report` with no gnuplot on PATH writes the tables, says in one line that the
#     plots were skipped, and exits 0.
# Every case prints PASS or FAIL; the script fails unless PASS lines = cases.
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
setup="$root/jobs/setup.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cases=0 passed=0

# shellcheck source=tests/check_lib.sh
. "$here/check_lib.sh" # check NAME STATUS [details...]

# A PATH with every command of this machine but gnuplot (a symbolic-link farm).
nognu="$work/bin-nognuplot"
mkdir -p "$nognu"
for d in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
    for f in "$d"/*; do
        b=${f##*/}
        [ "$b" = gnuplot ] && continue
        [ -x "$f" ] && [ ! -e "$nognu/$b" ] && ln -s "$f" "$nognu/$b"
    done
done

# The environment of a fake tree: no module variables, pkg-config looking only inside it.
in_tree() { # TREE CMD...
    local tree=$1
    shift
    env -u CPATH -u C_INCLUDE_PATH -u LIBRARY_PATH -u LD_LIBRARY_PATH \
        -u OPENBLAS_ROOT -u OPENBLAS_DIR -u HDF5_ROOT -u HDF5_DIR -u CJSON_ROOT -u CJSON_DIR \
        -u LETHE_SETUP_FORCE_MISSING \
        LETHE_SETUP_SYSROOT="$tree" PKG_CONFIG_LIBDIR="$tree/usr/lib/pkgconfig" PKG_CONFIG_PATH= \
        "$@"
}

arch=x86_64-linux-gnu
# ---- a tree with only the reference BLAS ---------------------------------------------------
netlib="$work/netlib"
mkdir -p "$netlib/usr/include/$arch" "$netlib/usr/lib/$arch/blas" "$netlib/usr/lib/pkgconfig"
cp "/usr/include/$arch/cblas-netlib.h" "$netlib/usr/include/$arch/cblas.h"
cp -L "/usr/lib/$arch/blas/libblas.so" "$netlib/usr/lib/$arch/blas/libblas.so"
ln -s blas/libblas.so "$netlib/usr/lib/$arch/libblas.so"
out="$(in_tree "$netlib" bash "$setup" --check libopenblas-dev 2>&1)"
[ "$out" = libopenblas-dev ]
check "reference BLAS only: OpenBLAS reported missing" $? "got '$out'"

# the same tree plus an openblas_config.h but no libopenblas: still missing
touch "$netlib/usr/include/$arch/openblas_config.h"
out="$(in_tree "$netlib" bash "$setup" --check libopenblas-dev 2>&1)"
[ "$out" = libopenblas-dev ]
check "a header without libopenblas: OpenBLAS reported missing" $? "got '$out'"

# ---- a tree with the real libraries (links to this machine's) ------------------------------
good="$work/good"
mkdir -p "$good/usr/include/$arch" "$good/usr/include/hdf5" "$good/usr/lib/$arch/hdf5" \
    "$good/usr/lib/pkgconfig"
ob_inc=$(dirname "$(readlink -f "/usr/include/$arch/openblas-pthread/openblas_config.h")")
ob_lib=$(dirname "$(readlink -f "/usr/lib/$arch/openblas-pthread/libopenblas.so")")
ln -s "$ob_inc" "$good/usr/include/$arch/openblas-pthread"
ln -s "$ob_lib" "$good/usr/lib/$arch/openblas-pthread"
ln -s /usr/include/hdf5/openmpi "$good/usr/include/hdf5/openmpi"
ln -s "/usr/lib/$arch/hdf5/openmpi" "$good/usr/lib/$arch/hdf5/openmpi"
ln -s /usr/include/cjson "$good/usr/include/cjson"
ln -s "$(readlink -f "/usr/lib/$arch/libcjson.so")" "$good/usr/lib/$arch/libcjson.so"
out="$(in_tree "$good" bash "$setup" --check libopenblas-dev libhdf5-openmpi-dev libcjson-dev 2>&1)"
[ -z "$out" ]
check "real OpenBLAS, parallel HDF5 and cJSON are found" $? "reported missing: '$out'"

# a serial HDF5: the same headers but H5pubconf.h without H5_HAVE_PARALLEL
serial="$work/serial"
mkdir -p "$serial/usr/include/hdf5/openmpi" "$serial/usr/lib/$arch/hdf5" "$serial/usr/lib/pkgconfig"
for f in /usr/include/hdf5/openmpi/*; do
    ln -s "$f" "$serial/usr/include/hdf5/openmpi/${f##*/}"
done
rm "$serial/usr/include/hdf5/openmpi/H5pubconf.h"
grep -v 'H5_HAVE_PARALLEL' /usr/include/hdf5/openmpi/H5pubconf.h \
    >"$serial/usr/include/hdf5/openmpi/H5pubconf.h"
ln -s "/usr/lib/$arch/hdf5/openmpi" "$serial/usr/lib/$arch/hdf5/openmpi"
out="$(in_tree "$serial" bash "$setup" --check libhdf5-openmpi-dev 2>&1)"
[ "$out" = libhdf5-openmpi-dev ]
check "serial HDF5 headers: parallel HDF5 reported missing" $? "got '$out'"

# ---- where nothing can be installed: one line, before CMake ---------------------------------
in_tree "$netlib" bash "$setup" >"$work/o" 2>"$work/e"
rc=$?
[ "$rc" = 1 ] && [ "$(wc -l <"$work/e")" = 1 ] &&
    grep -q '^lethe setup: missing .*OpenBLAS.*Debian libopenblas-dev, or module load openblas' "$work/e"
check "missing OpenBLAS: one 'lethe setup: missing' line naming package and module, exit 1" $? \
    "exit $rc, stderr: $(cat "$work/e")"

PATH="$nognu" in_tree "$good" bash "$setup" --demo >"$work/o" 2>"$work/e"
rc=$?
[ "$rc" = 0 ] && grep -q '^lethe setup: not found, going on without it: gnuplot (Debian gnuplot-nox' "$work/o"
check "demo set-up without gnuplot and without root: named, goes on, exit 0" $? \
    "exit $rc, out: $(cat "$work/o" "$work/e")"

out="$(PATH="$nognu" in_tree "$good" bash "$setup" --check gnuplot-nox 2>&1)"
[ "$out" = gnuplot-nox ] && bash -c "source '$setup'; [[ \" \$LETHE_TEST_PKGS \" == *' gnuplot-nox '* ]]"
check "no gnuplot on PATH: reported missing, and the tests require it" $? "got '$out'"

# ---- the demo installs what it uses ----------------------------------------------------------
# shellcheck disable=SC1090
demo_pkgs="$(bash -c "source '$setup'; echo \"\$LETHE_BUILD_PKGS \$LETHE_DEMO_PKGS\"")"
[[ " $(echo $demo_pkgs) " == *" gnuplot-nox "* ]] &&
    grep -qE '^lethe_setup --demo$' "$root/jobs/demo.sh"
check "the demo's package list includes gnuplot-nox and demo.sh asks for it" $? "'$demo_pkgs'"

# ---- LETHE_SETUP_FORCE_MISSING: the report branch and the install branch ---------------------
LETHE_SETUP_FORCE_MISSING=libcjson-dev LETHE_SETUP_NO_INSTALL=1 bash "$setup" >"$work/o" 2>"$work/e"
rc=$?
[ "$rc" = 1 ] && [ "$(cat "$work/e")" = \
    "lethe setup: missing cJSON (cjson/cJSON.h, libcjson) (Debian libcjson-dev, or module load cjson)" ]
check "FORCE_MISSING, no install: one line, exit 1" $? "exit $rc, stderr: $(cat "$work/e")"

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    LETHE_SETUP_FORCE_MISSING=make bash "$setup" >"$work/o" 2>"$work/e"
    rc=$?
    [ "$rc" = 0 ] && grep -q '^lethe setup: installing make ' "$work/o" &&
        grep -q '^lethe setup: all build dependencies found' "$work/o"
    check "FORCE_MISSING as root: apt-get installs it, then all found" $? \
        "exit $rc: $(tail -3 "$work/o") $(cat "$work/e")"
else
    echo "(not root: the install branch is not tried)"
fi

# ---- lethe report with no gnuplot on PATH ----------------------------------------------------
if [ -n "${LETHE_BIN:-}" ]; then
    cp -r "$here/data/report_fixture" "$work/study"
    env -u LETHE_GNUPLOT PATH="$nognu" "$LETHE_BIN" report "$work/study" >"$work/o" 2>"$work/e"
    rc=$?
    [ "$rc" = 0 ] && [ ! -s "$work/e" ] &&
        [ "$(grep -c '^lethe report: plots skipped: no gnuplot on PATH' "$work/o")" = 1 ] &&
        [ -s "$work/study/report/results.csv" ] && [ -s "$work/study/report/results.md" ] &&
        ! ls "$work/study/report/"*.png >/dev/null 2>&1
    check "report without gnuplot: tables, one 'plots skipped' line, no PNG, exit 0" $? \
        "exit $rc, stdout: $(grep -v 'wrote' "$work/o"), stderr: $(cat "$work/e")"
else
    echo "FAIL LETHE_BIN is not set: the report case cannot run"
    cases=$((cases + 1))
fi

echo "setup_fresh: $passed passed, $((cases - passed)) failed"
[ "$cases" -gt 0 ] && [ "$passed" = "$cases" ]
