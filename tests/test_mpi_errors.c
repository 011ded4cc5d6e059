/* tests/test_mpi_errors.c — an MPI error comes back to MPI_CHECK, which prints the one
 * lethe line (rank, grid coordinates, the call, MPI_Error_string) and ends the whole job.
 *
 * test_mpi_errors WHICH, run under mpirun by tests/mpi_errors.sh. For a communicator
 * (world: MPI_COMM_WORLD before any grid exists; grid, dp, pp, tp, mp, ends: the grid's,
 * built with that axis spanning all ranks), rank 0 sends to a rank the communicator does
 * not have while the other ranks wait in a barrier on it that only MPI_Abort can end. For
 * file, every rank opens a missing file through MPI-IO. Without MPI_ERRORS_RETURN the job
 * dies inside MPI with no lethe line; if the error went unnoticed the program would
 * reach the end of main and say so. The script asserts the exact line, a non-zero exit
 * of mpirun and no hang. */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "mpi/comm.h"
#include "mpi/fatal.h"
#include "mpi/grid.h"

int main(int argc, char **argv)
{
    comm_init(&argc, &argv);
    const char *which = argc > 1 ? argv[1] : "";
    int size;
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    lethe_grid g;
    char err[256];
    int dp = 1, pp = 1, tp = 1;
    if (!strcmp(which, "pp") || !strcmp(which, "ends"))
        pp = size;
    else if (!strcmp(which, "tp") || !strcmp(which, "mp"))
        tp = size;
    else
        dp = size;
    if (strcmp(which, "world")) {
        if (grid_create(&g, MPI_COMM_WORLD, dp, pp, tp, err, sizeof err)) lethe_fatal("%s", err);
        fatal_set_grid(&g);
    }
    MPI_Comm comm = !strcmp(which, "world")  ? MPI_COMM_WORLD
                    : !strcmp(which, "grid") ? g.world
                    : !strcmp(which, "dp")   ? g.dp_comm
                    : !strcmp(which, "pp")   ? g.pp_comm
                    : !strcmp(which, "tp")   ? g.tp_comm
                    : !strcmp(which, "mp")   ? g.mp_comm
                    : !strcmp(which, "ends") ? g.ends_comm
                                             : MPI_COMM_NULL;
    if (!strcmp(which, "file")) {
        MPI_File fh;
        const char *missing = "/nonexistent/lethe.h5";
        MPI_CHECK(MPI_File_open(g.world, missing, MPI_MODE_RDONLY, MPI_INFO_NULL, &fh));
    } else {
        if (comm == MPI_COMM_NULL) lethe_fatal("test_mpi_errors: no communicator '%s'", which);
        int rank, n, x = 42;
        MPI_CHECK(MPI_Comm_rank(comm, &rank));
        MPI_CHECK(MPI_Comm_size(comm, &n));
        if (rank == 0)
            MPI_CHECK(MPI_Send(&x, 1, MPI_INT, n, 0, comm));
        else
            MPI_CHECK(MPI_Barrier(comm));
    }
    printf("test_mpi_errors: the MPI error on '%s' went unnoticed\n", which);
    if (strcmp(which, "world")) grid_free(&g);
    MPI_Finalize();
    return 0;
}
