/* mpi/comm.c — checked, accounted MPI calls. */
#include "comm.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fatal.h"

/* Process-wide: written once, by comm_init (main's set-up, before MPI_Init), read by
 * the provenance of every job of the process. */
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
    MPI_CHECK(MPI_Init(argc, argv));
    /* errors come back to MPI_CHECK (a lethe line naming the rank and the call) instead
     * of aborting inside MPI; communicators made from these inherit it. MPI-IO files
     * (HDF5's MPI-IO driver) return errors by default, which HDF5 reports to lethe: the
     * default is made explicit here. */
    lethe_errors_return(MPI_COMM_WORLD);
    lethe_errors_return(MPI_COMM_SELF);
    MPI_CHECK(MPI_File_set_errhandler(MPI_FILE_NULL, MPI_ERRORS_RETURN));
    fatal_init();
}

const char *comm_io_component(void) { return io_component; }

int comm_size(MPI_Comm c)
{
    int s = 1;
    if (c != MPI_COMM_NULL) MPI_CHECK(MPI_Comm_size(c, &s));
    return s;
}

double comm_now(void) { return MPI_Wtime(); }

#define CHUNK ((size_t)1 << 28)

static void allreduce(void *buf, size_t n, MPI_Datatype dt, size_t esize, MPI_Op op, MPI_Comm c,
                      comm_stats *st)
{
    int p = comm_size(c);
    if (p == 1 || n == 0) return;
    double t0 = MPI_Wtime();
    for (size_t off = 0; off < n; off += CHUNK) {
        size_t k = n - off < CHUNK ? n - off : CHUNK;
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * esize, (int)k, dt, op, c));
    }
    if (st) {
        st->seconds += MPI_Wtime() - t0;
        st->bytes += 2.0 * (p - 1) / p * (double)n * (double)esize;
    }
}

void comm_allreduce_sum(float *buf, size_t n, MPI_Comm c, comm_stats *st)
{
    allreduce(buf, n, MPI_FLOAT, sizeof(float), MPI_SUM, c, st);
}

void comm_allreduce_max(float *buf, size_t n, MPI_Comm c, comm_stats *st)
{
    allreduce(buf, n, MPI_FLOAT, sizeof(float), MPI_MAX, c, st);
}

void comm_allreduce_sum_d(double *buf, size_t n, MPI_Comm c, comm_stats *st)
{
    allreduce(buf, n, MPI_DOUBLE, sizeof(double), MPI_SUM, c, st);
}

void comm_bcast_d(double *buf, size_t n, int root, MPI_Comm c, comm_stats *st)
{
    int p = comm_size(c);
    if (p == 1 || n == 0) return;
    double t0 = MPI_Wtime();
    MPI_CHECK(MPI_Bcast(buf, (int)n, MPI_DOUBLE, root, c));
    if (st) st->seconds += MPI_Wtime() - t0;
}

void comm_share(size_t n, int p, int r, size_t *lo, size_t *hi)
{
    size_t per = (n + (size_t)p - 1) / (size_t)p;
    per = (per + 15) & ~(size_t)15;
    size_t a = per * (size_t)r, b = a + per;
    *lo = a < n ? a : n;
    *hi = b < n ? b : n;
}

/* Ring steps move pieces of at most COMM_PIECE floats: the staging buffer of the
 * reduce-scatter stays at 4 MiB whatever the model. */
#define PIECE COMM_PIECE

/* x's exponent plus one: the sign bit is set exactly when x is Inf or NaN (exponent bits
 * all set). An OR of these vectorises without compares. */
static inline uint32_t exponent_carry(const float *x)
{
    uint32_t u;
    memcpy(&u, x, sizeof u);
    return (u & 0x7f800000u) + 0x00800000u;
}

size_t comm_first_nonfinite(const float *x, size_t n)
{
    /* blocks of 1024 keep the locating pass short */
    for (size_t b = 0; b < n; b += 1024) {
        size_t e = n - b < 1024 ? n - b : 1024;
        uint32_t bad = 0;
        for (size_t k = b; k < b + e; k++) bad |= exponent_carry(&x[k]);
        if (bad & 0x80000000u)
            for (size_t k = b; k < b + e; k++)
                if (!isfinite(x[k])) return k;
    }
    return n;
}

/* dst += src over n floats, checked for Inf and NaN when the index pointers are given:
 * *dst_bad and *src_bad become the lowest index, counted from base, of a non-finite
 * value each held before. One pass in blocks of 1024: the sums go to a block on the
 * stack while both operands' exponent_carry are ORed, and back
 * into dst after the rare block with a hit has been searched. */
static void add_checked(float *restrict dst, const float *restrict src, size_t n, size_t base,
                        size_t *dst_bad, size_t *src_bad)
{
    if (!dst_bad && !src_bad) {
        for (size_t k = 0; k < n; k++) dst[k] += src[k];
        return;
    }
    float sum[1024];
    for (size_t b = 0; b < n; b += 1024) {
        size_t e = n - b < 1024 ? n - b : 1024;
        const float *x = dst + b, *y = src + b;
        uint32_t bx = 0, by = 0;
        for (size_t k = 0; k < e; k++) {
            bx |= exponent_carry(&x[k]);
            by |= exponent_carry(&y[k]);
            sum[k] = x[k] + y[k];
        }
        if (dst_bad && (bx & 0x80000000u)) {
            size_t k = base + b + comm_first_nonfinite(x, e);
            if (k < *dst_bad) *dst_bad = k;
        }
        if (src_bad && (by & 0x80000000u)) {
            size_t k = base + b + comm_first_nonfinite(y, e);
            if (k < *src_bad) *src_bad = k;
        }
        memcpy(dst + b, sum, sizeof(float) * e);
    }
}

/* One ring pass over the p shares of buf. Step s (0 .. p-2) sends a share to rank r+1
 * and receives one from rank r-1: the reduce-scatter sends share r-s-1 (its own data at
 * s = 0, then the partial sum it received last) and adds what it receives into share
 * r-s-2, which is its own share r at the last step; the all-gather sends share r-s
 * (its own at s = 0, then the one it received last) and receives share r-s-1 in place.
 * The reduce-scatter adds into each share but r-1 once, while it still holds this
 * rank's own data; share r-1 is the one rank r+1 receives at s = 0. With first_bad,
 * the add checks both: this rank's own values, and at s = 0 those of rank r-1, whose
 * lowest non-finite index goes back to it at the end. */
static void ring(float *buf, size_t n, MPI_Comm c, float *staging, size_t *first_bad,
                 comm_stats *st)
{
    int p = comm_size(c), r;
    if (first_bad) *first_bad = n;
    if (p == 1 || n == 0) {
        if (first_bad) *first_bad = comm_first_nonfinite(buf, n);
        return;
    }
    MPI_CHECK(MPI_Comm_rank(c, &r));
    int reduce = staging != NULL;
    double t0 = MPI_Wtime();
    int next = (r + 1) % p, prev = (r + p - 1) % p;
    size_t lo0, hi0;
    comm_share(n, p, 0, &lo0, &hi0);
    size_t per = hi0 - lo0; /* the longest share */
    uint64_t own = n, of_prev = n, of_mine = n;
    for (size_t at = 0; at < per; at += PIECE) {
        for (int s = 0; s < p - 1; s++) {
            int cs = reduce ? (r - s - 1 + 2 * p) % p : (r - s + p) % p;
            int cr = reduce ? (r - s - 2 + 2 * p) % p : (r - s - 1 + 2 * p) % p;
            size_t slo, shi, rlo, rhi;
            comm_share(n, p, cs, &slo, &shi);
            comm_share(n, p, cr, &rlo, &rhi);
            size_t sa = slo + at < shi ? slo + at : shi, ra = rlo + at < rhi ? rlo + at : rhi;
            size_t ns = shi - sa < PIECE ? shi - sa : PIECE,
                   nr = rhi - ra < PIECE ? rhi - ra : PIECE;
            float *into = reduce ? staging : buf + ra;
            MPI_CHECK(MPI_Sendrecv(buf + sa, (int)ns, MPI_FLOAT, next, 0x4c52, into, (int)nr,
                                   MPI_FLOAT, prev, 0x4c52, c, MPI_STATUS_IGNORE));
            if (reduce) {
                size_t a = n, b = n;
                add_checked(buf + ra, staging, nr, ra, first_bad ? &a : NULL,
                            first_bad && s == 0 ? &b : NULL);
                own = a < own ? a : own;
                of_prev = b < of_prev ? b : of_prev;
            }
        }
    }
    if (first_bad) {
        MPI_CHECK(MPI_Sendrecv(&of_prev, 1, MPI_UINT64_T, prev, 0x4c53, &of_mine, 1,
                               MPI_UINT64_T, next, 0x4c53, c, MPI_STATUS_IGNORE));
        *first_bad = (size_t)(of_mine < own ? of_mine : own);
        if (st) st->bytes += sizeof of_prev;
    }
    if (st) {
        st->seconds += MPI_Wtime() - t0;
        st->bytes += (double)(p - 1) / p * (double)n * sizeof(float);
    }
}

void comm_reduce_scatter_sum(float *buf, size_t n, MPI_Comm c, float *staging, size_t *first_bad,
                             comm_stats *st)
{
    if (!staging) lethe_fatal("reduce-scatter of %zu floats without a staging buffer", n);
    ring(buf, n, c, staging, first_bad, st);
}

void comm_allgather_shares(float *buf, size_t n, MPI_Comm c, comm_stats *st)
{
    ring(buf, n, c, NULL, NULL, st);
}

void comm_isend(const float *buf, size_t n, int dest, int tag, MPI_Comm c, MPI_Request *req,
                comm_stats *st)
{
    if (n > INT_MAX) lethe_fatal("point-to-point message of %zu floats exceeds INT_MAX", n);
    MPI_CHECK(MPI_Isend(buf, (int)n, MPI_FLOAT, dest, tag, c, req));
    if (st) st->bytes += (double)n * sizeof(float);
}

void comm_recv(float *buf, size_t n, int src, int tag, MPI_Comm c, comm_stats *st)
{
    if (n > INT_MAX) lethe_fatal("point-to-point message of %zu floats exceeds INT_MAX", n);
    double t0 = MPI_Wtime();
    MPI_CHECK(MPI_Recv(buf, (int)n, MPI_FLOAT, src, tag, c, MPI_STATUS_IGNORE));
    if (st) st->p2p_seconds += MPI_Wtime() - t0;
}

void comm_wait(MPI_Request *req, comm_stats *st)
{
    if (*req == MPI_REQUEST_NULL) return;
    double t0 = MPI_Wtime();
    MPI_CHECK(MPI_Wait(req, MPI_STATUS_IGNORE));
    if (st) st->p2p_seconds += MPI_Wtime() - t0;
}
