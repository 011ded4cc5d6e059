#!/bin/bash
# tests/mpi_errors.sh N EXE — an MPI error reaches MPI_CHECK (tests/test_mpi_errors.c).
# For MPI_COMM_WORLD, each communicator of the grid and an MPI-IO file, `mpirun -n N EXE
# WHICH` must print rank 0's lethe line exactly (rank, grid coordinates, the failing call
# with its file and line, MPI_Error_string), no other lethe line but the other ranks' own
# for the collective file open, exit non-zero and end within the time limit (the ranks
# waiting in a barrier end only through MPI_Abort). Counts PASS lines against the cases.
# Needs MPIRUN and LETHE_SOURCE_DIR (set by ctest).
set -u
n=$1 exe=$2
src="$LETHE_SOURCE_DIR/tests/test_mpi_errors.c"
export OMPI_MCA_orte_execute_quiet=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

line_of() { grep -n -F "$1" "$src" | cut -d: -f1; }
send_call='MPI_Send(&x, 1, MPI_INT, n, 0, comm)'
file_call='MPI_File_open(g.world, missing, MPI_MODE_RDONLY, MPI_INFO_NULL, &fh)'
# the build maps __FILE__ to the path under the source tree (-fmacro-prefix-map)
send_at="tests/test_mpi_errors.c:$(line_of "MPI_CHECK($send_call)")"
file_at="tests/test_mpi_errors.c:$(line_of "MPI_CHECK($file_call)")"
# Open MPI's MPI_Error_string of the error classes raised here
rank_err='MPI_ERR_RANK: invalid rank'
file_err='MPI_ERR_NO_SUCH_FILE: no such file or directory'

cases=(world grid dp pp tp mp file)
[ "$n" -gt 1 ] && cases+=(ends) # the ends of the pipeline exist from pp = 2 on
pass=0
for which in "${cases[@]}"; do
    timeout 120 "$MPIRUN" --oversubscribe -n "$n" "$exe" "$which" >"$work/out" 2>"$work/err"
    rc=$?
    coords=" (dp0 pp0 tp0)"
    [ "$which" = world ] && coords="" # before any grid the line names the world rank alone
    if [ "$which" = file ]; then
        want="lethe: rank 0$coords: MPI call failed: $file_call ($file_at): $file_err"
        # every rank fails the collective open; the others may print before the abort
        others=$(grep '^lethe: ' "$work/err" | grep -v -x -F "$want" |
            grep -v -x "lethe: rank [1-9][0-9]* (dp[0-9]* pp0 tp0): MPI call failed: .*")
    else
        want="lethe: rank 0$coords: MPI call failed: $send_call ($send_at): $rank_err"
        others=$(grep '^lethe: ' "$work/err" | grep -v -x -F "$want")
    fi
    why=""
    [ "$rc" -eq 124 ] && why="mpirun did not end within 120 s"
    [ "$rc" -eq 0 ] && why="mpirun exited 0"
    [ "$(grep -c -x -F "$want" "$work/err")" -eq 1 ] || why="${why:+$why; }no line: $want"
    [ -z "$others" ] || why="${why:+$why; }other lethe lines: $others"
    grep -q 'went unnoticed' "$work/out" && why="${why:+$why; }the error went unnoticed"
    if [ -z "$why" ]; then
        echo "PASS $which (np$n, exit $rc)"
        pass=$((pass + 1))
    else
        echo "FAIL $which (np$n, exit $rc): $why"
        sed 's/^/    /' "$work/err" "$work/out"
    fi
done
echo "mpi errors np$n: $pass/${#cases[@]}"
[ "$pass" -eq "${#cases[@]}" ]
