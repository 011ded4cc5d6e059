/* mpi/grid.h — the process grid.
 *
 * World ranks are arranged as (dp, pp, tp) with tp fastest-varying, so the
 * ranks of one tensor-parallel group are adjacent (same node under a block
 * placement) and tp traffic stays on-node:
 *     world_rank = (dp_rank * pp + pp_rank) * tp + tp_rank
 * The grid is built once per job; everything else receives communicators from
 * it. Only the grid and the fatal-error path touch MPI_COMM_WORLD. */
#ifndef LETHE_GRID_H
#define LETHE_GRID_H

#include <mpi.h>
#include <stddef.h>

typedef struct {
    MPI_Comm world; /* the job's world (a dup of what it was built from) */
    int rank, size;
    int dp, pp, tp;                /* axis sizes */
    int dp_rank, pp_rank, tp_rank; /* this rank's coordinates */
    MPI_Comm dp_comm;   /* same (pp, tp), varying dp: gradient all-reduce */
    MPI_Comm pp_comm;   /* same (dp, tp), varying pp: activations */
    MPI_Comm tp_comm;   /* same (dp, pp), varying tp: tensor-parallel reductions */
    MPI_Comm mp_comm;   /* same dp: one model replica (pp x tp) */
    MPI_Comm ends_comm; /* first and last pp stage of one (dp, tp): tied embeddings;
                           MPI_COMM_NULL on middle stages or when pp == 1 */
} lethe_grid;

/* Builds the grid over `world`. Returns 0, or -1 with a message in err when
 * dp*pp*tp != size or an axis is < 1. Collective over world; every rank reaches
 * the same verdict. Every communicator of the grid returns MPI errors to MPI_CHECK
 * (MPI_ERRORS_RETURN). */
int grid_create(lethe_grid *g, MPI_Comm world, int dp, int pp, int tp, char *err, size_t errlen);
void grid_free(lethe_grid *g);

#endif
