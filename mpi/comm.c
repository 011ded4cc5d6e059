/* mpi/comm.c — checked, accounted MPI calls. */
#include "comm.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "fatal.h"

comm_stats lethe_comm_stats;

void comm_stats_reset(void) { memset(&lethe_comm_stats, 0, sizeof lethe_comm_stats); }

static const char *io_component = "";

void comm_init(int *argc, char ***argv)
{
#if defined(OMPI_MAJOR_VERSION) && OMPI_MAJOR_VERSION == 4
    const char *romio = "romio321";
#elif defined(OMPI_MAJOR_VERSION) && OMPI_MAJOR_VERSION == 5
    const char *romio = "romio341";
#else
    const char *romio = NULL;
#endif
    if (romio && !getenv("OMPI_MCA_io") && setenv("OMPI_MCA_io", romio, 0) == 0)
        io_component = romio;
    MPI_Init(argc, argv);
}

const char *comm_io_component(void) { return io_component; }

int comm_size(MPI_Comm c)
{
    int s = 1;
    if (c != MPI_COMM_NULL) MPI_Comm_size(c, &s);
    return s;
}

double comm_now(void) { return MPI_Wtime(); }

#define CHUNK ((size_t)1 << 28)

static void allreduce(void *buf, size_t n, MPI_Datatype dt, size_t esize, MPI_Op op, MPI_Comm c)
{
    int p = comm_size(c);
    if (p == 1 || n == 0) return;
    double t0 = MPI_Wtime();
    for (size_t off = 0; off < n; off += CHUNK) {
        size_t k = n - off < CHUNK ? n - off : CHUNK;
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * esize, (int)k, dt, op, c));
    }
    lethe_comm_stats.seconds += MPI_Wtime() - t0;
    lethe_comm_stats.bytes += 2.0 * (p - 1) / p * (double)n * (double)esize;
}

void comm_allreduce_sum(float *buf, size_t n, MPI_Comm c)
{
    allreduce(buf, n, MPI_FLOAT, sizeof(float), MPI_SUM, c);
}

void comm_allreduce_max(float *buf, size_t n, MPI_Comm c)
{
    allreduce(buf, n, MPI_FLOAT, sizeof(float), MPI_MAX, c);
}

void comm_allreduce_sum_d(double *buf, size_t n, MPI_Comm c)
{
    allreduce(buf, n, MPI_DOUBLE, sizeof(double), MPI_SUM, c);
}

void comm_bcast_d(double *buf, size_t n, int root, MPI_Comm c)
{
    int p = comm_size(c);
    if (p == 1 || n == 0) return;
    double t0 = MPI_Wtime();
    MPI_CHECK(MPI_Bcast(buf, (int)n, MPI_DOUBLE, root, c));
    lethe_comm_stats.seconds += MPI_Wtime() - t0;
}

void comm_isend(const float *buf, size_t n, int dest, int tag, MPI_Comm c, MPI_Request *req)
{
    if (n > INT_MAX) lethe_fatal("point-to-point message of %zu floats exceeds INT_MAX", n);
    MPI_CHECK(MPI_Isend(buf, (int)n, MPI_FLOAT, dest, tag, c, req));
    lethe_comm_stats.bytes += (double)n * sizeof(float);
}

void comm_recv(float *buf, size_t n, int src, int tag, MPI_Comm c)
{
    if (n > INT_MAX) lethe_fatal("point-to-point message of %zu floats exceeds INT_MAX", n);
    double t0 = MPI_Wtime();
    MPI_CHECK(MPI_Recv(buf, (int)n, MPI_FLOAT, src, tag, c, MPI_STATUS_IGNORE));
    lethe_comm_stats.p2p_seconds += MPI_Wtime() - t0;
}

void comm_wait(MPI_Request *req)
{
    if (*req == MPI_REQUEST_NULL) return;
    double t0 = MPI_Wtime();
    MPI_CHECK(MPI_Wait(req, MPI_STATUS_IGNORE));
    lethe_comm_stats.p2p_seconds += MPI_Wtime() - t0;
}
