#!/usr/bin/env bash
# jobs/mpienv.sh — each mpirun in an Open MPI session folder of its own.
#
# Sourced by jobs/demo.sh and by the test scripts that start several mpiruns at once.
# It defines one function and changes nothing else in the caller's shell:
#
#   lethe_mpirun CMD [ARG...]
#       runs CMD (mpirun, "$MPIRUN", or `timeout S mpirun`, with its arguments) with
#       OMPI_MCA_orte_tmpdir_base set to a new folder of its own (mktemp -d), removed
#       when CMD ends, and OMPI_MCA_orte_execute_quiet=1. Returns CMD's exit status
#       (under `set -e` too: the folder is removed first); one `lethe: ` line names the
#       signal when that status says a process was killed (128 + N).
#
# Why a folder of its own: Open MPI 4.1 keeps every job's session files under
# <tmpdir_base>/ompi.<host>.<uid>/, one folder for all of a user's jobs on a node. An
# mpirun creates it if it is missing and removes it when it finds it empty at exit, so
# one job ending while another starts can remove it between the other's two mkdirs: that
# job dies with "ORTE_ERROR_LOG: Error in file ../../../orte/util/session_dir.c at line
# 107". With a base of its own per launch nothing is shared. The base is made inside
# $OMPI_MCA_orte_tmpdir_base when that is set (a site's node-local scratch, a ctest
# test's folder), else inside $TMPDIR, else /tmp, where Open MPI would have put it.
#
# Why quiet: with it mpirun does not add its banners ("Primary job terminated normally,
# but 1 process returned a non-zero exit code", "mpirun detected that one or more
# processes exited with non-zero status ...") to a lethe error, which is one `lethe: `
# line already. It also drops mpirun's notice of a rank killed by a signal, hence the
# line above. Open MPI's own error lines (ORTE_ERROR_LOG, a failed start) still print.

lethe_mpirun() {
    local parent="${OMPI_MCA_orte_tmpdir_base:-${TMPDIR:-/tmp}}" base rc=0
    mkdir -p "$parent" 2>/dev/null || true # mktemp below says what is wrong
    if ! base="$(mktemp -d "$parent/lethe-ompi.XXXXXX" 2>&1)"; then
        echo "lethe: cannot create a folder for Open MPI's session files in '$parent':" \
            "${base##*: }" >&2
        return 1
    fi
    OMPI_MCA_orte_tmpdir_base="$base" OMPI_MCA_orte_execute_quiet=1 "$@" || rc=$?
    rm -rf "$base"
    # a quiet mpirun does not say that a rank was killed (exit 128 + the signal)
    if [ "$rc" -gt 128 ] && [ "$rc" -lt 160 ]; then
        echo "lethe: a process of the MPI job was killed by signal $((rc - 128))" \
            "($(kill -l $((rc - 128)) 2>/dev/null))" >&2
    fi
    return "$rc"
}
