/* mpi/comm.h — the collectives and point-to-point calls the model makes, with
 * their time and bytes accounted, large counts chunked, and every return code
 * checked. A communicator of size 1 costs nothing. Bytes are counted as this
 * rank sends them: exact for point-to-point, the ring-algorithm volume
 * 2 (p-1)/p * bytes for an all-reduce. */
#ifndef LETHE_COMM_H
#define LETHE_COMM_H

#include <mpi.h>
#include <stddef.h>

typedef struct {
    double seconds;      /* in collectives */
    double p2p_seconds;  /* waiting in point-to-point receives and send completion */
    double bytes;        /* sent by this rank */
} comm_stats;

extern comm_stats lethe_comm_stats;
void comm_stats_reset(void);

void comm_allreduce_sum(float *buf, size_t n, MPI_Comm c);
void comm_allreduce_max(float *buf, size_t n, MPI_Comm c);
void comm_allreduce_sum_d(double *buf, size_t n, MPI_Comm c);
void comm_bcast_d(double *buf, size_t n, int root, MPI_Comm c);

void comm_isend(const float *buf, size_t n, int dest, int tag, MPI_Comm c, MPI_Request *req);
void comm_recv(float *buf, size_t n, int src, int tag, MPI_Comm c);
void comm_wait(MPI_Request *req);

/* MPI_Init for lethe and its test programs. With Open MPI 4 or 5 it first selects
 * ROMIO for MPI-IO when the environment names no I/O component (OMPI_MCA_io unset):
 * collective checkpoint writes through ROMIO ran at 72-82 % of the raw write on the
 * reference machine against 33-51 % through OMPIO (tests/bench_checkpoint). An
 * OMPI_MCA_io set by the user or the site is kept. */
void comm_init(int *argc, char ***argv);
/* The MPI-IO component comm_init chose ("romio321"), or "" when it left the choice to
 * MPI. */
const char *comm_io_component(void);

int comm_size(MPI_Comm c);
double comm_now(void);

#endif
