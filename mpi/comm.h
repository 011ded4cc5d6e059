/* mpi/comm.h — the collectives and point-to-point calls the model makes, with
 * their time and bytes accounted, large counts chunked, and every return code
 * checked. A communicator of size 1 costs nothing. Bytes are counted as this
 * rank sends them: exact for point-to-point, the ring-algorithm volume
 * 2 (p-1)/p * bytes for an all-reduce, (p-1)/p * bytes for a reduce-scatter or an
 * all-gather. Every call names the account it adds to (comm_stats *st; NULL counts
 * nothing): the model's is in its workspace (lethe_workspace.comm), so the traffic is
 * the model's, not the process's, and two models in one process count apart. */
#ifndef LETHE_COMM_H
#define LETHE_COMM_H

#include <mpi.h>
#include <stddef.h>

typedef struct {
    double seconds;      /* in collectives */
    double p2p_seconds;  /* waiting in point-to-point receives and send completion */
    double bytes;        /* sent by this rank */
} comm_stats;

void comm_allreduce_sum(float *buf, size_t n, MPI_Comm c, comm_stats *st);
void comm_allreduce_max(float *buf, size_t n, MPI_Comm c, comm_stats *st);
void comm_allreduce_sum_d(double *buf, size_t n, MPI_Comm c, comm_stats *st);
void comm_bcast_d(double *buf, size_t n, int root, MPI_Comm c, comm_stats *st);

/* Shares of a flat buffer of n floats over the p ranks of a communicator: rank r owns
 * [*lo, *hi), equal parts rounded up to 16 floats (one cache line); the last ones may be
 * shorter or empty. */
void comm_share(size_t n, int p, int r, size_t *lo, size_t *hi);
/* Floats in one ring step: the size of the reduce-scatter's staging buffer (4 MiB). */
#define COMM_PIECE ((size_t)1 << 20)
/* Ring reduce-scatter in place: on return this rank's share of buf (comm_share) holds
 * the sum over the ranks of c; the rest of buf holds partial sums. The share of rank r
 * is summed in ring order from rank r+1 on, the same order at every call. staging
 * (COMM_PIECE floats, the caller's: the model owns it) receives each ring step.
 * With first_bad, *first_bad becomes the lowest index of an Inf or NaN in this rank's
 * buf as it was on entry (n when there is none), found in the ring's own add passes:
 * each value is checked where the sum first reads it, on this rank or on the next, and
 * one more message (8 bytes) brings the next rank's finding back. */
void comm_reduce_scatter_sum(float *buf, size_t n, MPI_Comm c, float *staging, size_t *first_bad,
                             comm_stats *st);
/* The lowest index of an Inf or NaN in x[0, n), or n. */
size_t comm_first_nonfinite(const float *x, size_t n);
/* Ring all-gather in place: every rank's share of buf is copied to all the others. */
void comm_allgather_shares(float *buf, size_t n, MPI_Comm c, comm_stats *st);

void comm_isend(const float *buf, size_t n, int dest, int tag, MPI_Comm c, MPI_Request *req,
                comm_stats *st);
void comm_recv(float *buf, size_t n, int src, int tag, MPI_Comm c, comm_stats *st);
void comm_wait(MPI_Request *req, comm_stats *st);

/* MPI_Init for lethe and its test programs. With Open MPI 4 or 5 it first selects
 * ROMIO for MPI-IO when the environment names no I/O component (OMPI_MCA_io unset):
 * collective checkpoint writes through ROMIO ran at 72-82 % of the raw write on the
 * reference machine against 33-51 % through OMPIO (tests/bench_checkpoint). An
 * OMPI_MCA_io set by the user or the site is kept. MPI_COMM_WORLD, MPI_COMM_SELF and
 * MPI-IO files return errors (MPI_ERRORS_RETURN) to MPI_CHECK (mpi/fatal.h), which
 * prints the lethe line and aborts the job. */
void comm_init(int *argc, char ***argv);
/* The MPI-IO component comm_init chose ("romio321"), or "" when it left the choice to
 * MPI. */
const char *comm_io_component(void);

int comm_size(MPI_Comm c);
double comm_now(void);

#endif
