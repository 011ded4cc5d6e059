/* mpi/grid.c — world -> (dp, pp, tp) communicators, tp adjacent. */
#include "grid.h"

#include "fatal.h"

#include <stdio.h>
#include <string.h>

int grid_create(lethe_grid *g, MPI_Comm world, int dp, int pp, int tp, char *err, size_t errlen)
{
    memset(g, 0, sizeof(*g));
    int size, rank;
    MPI_CHECK(MPI_Comm_size(world, &size));
    MPI_CHECK(MPI_Comm_rank(world, &rank));
    if (dp < 1 || pp < 1 || tp < 1) {
        snprintf(err, errlen, "layout dp=%d pp=%d tp=%d: every axis must be >= 1", dp, pp, tp);
        return -1;
    }
    if ((long)dp * pp * tp != size) {
        snprintf(err, errlen,
                 "layout dp=%d x pp=%d x tp=%d = %ld ranks, but the job has %d rank%s", dp, pp,
                 tp, (long)dp * pp * tp, size, size == 1 ? "" : "s");
        return -1;
    }
    MPI_CHECK(MPI_Comm_dup(world, &g->world));
    /* the split communicators inherit it; each is set anyway, whatever `world` had */
    lethe_errors_return(g->world);
    g->rank = rank;
    g->size = size;
    g->dp = dp;
    g->pp = pp;
    g->tp = tp;
    g->tp_rank = rank % tp;
    g->pp_rank = (rank / tp) % pp;
    g->dp_rank = rank / (tp * pp);
    /* Keys order the new communicators by the varying coordinate. */
    MPI_CHECK(MPI_Comm_split(g->world, g->dp_rank * pp + g->pp_rank, g->tp_rank, &g->tp_comm));
    MPI_CHECK(MPI_Comm_split(g->world, g->dp_rank * tp + g->tp_rank, g->pp_rank, &g->pp_comm));
    MPI_CHECK(MPI_Comm_split(g->world, g->pp_rank * tp + g->tp_rank, g->dp_rank, &g->dp_comm));
    MPI_CHECK(MPI_Comm_split(g->world, g->dp_rank, g->pp_rank * tp + g->tp_rank, &g->mp_comm));
    int is_end = pp > 1 && (g->pp_rank == 0 || g->pp_rank == pp - 1);
    MPI_Comm ends;
    MPI_CHECK(MPI_Comm_split(g->world, is_end ? g->dp_rank * tp + g->tp_rank : MPI_UNDEFINED,
                             g->pp_rank, &ends));
    g->ends_comm = is_end ? ends : MPI_COMM_NULL;
    lethe_errors_return(g->tp_comm);
    lethe_errors_return(g->pp_comm);
    lethe_errors_return(g->dp_comm);
    lethe_errors_return(g->mp_comm);
    lethe_errors_return(g->ends_comm);
    return 0;
}

void grid_free(lethe_grid *g)
{
    if (g->world == MPI_COMM_NULL || g->world == 0) return;
    MPI_CHECK(MPI_Comm_free(&g->tp_comm));
    MPI_CHECK(MPI_Comm_free(&g->pp_comm));
    MPI_CHECK(MPI_Comm_free(&g->dp_comm));
    MPI_CHECK(MPI_Comm_free(&g->mp_comm));
    if (g->ends_comm != MPI_COMM_NULL) MPI_CHECK(MPI_Comm_free(&g->ends_comm));
    MPI_CHECK(MPI_Comm_free(&g->world));
    g->world = MPI_COMM_NULL;
}
