/* tests/test_comm.c — the ring reduce-scatter (mpi/comm.c) and the Inf/NaN check it makes
 * in its own passes, against references written here:
 *   - comm_first_nonfinite against a scalar isfinite loop: lengths across its 1024-float
 *     blocks, +-Inf, quiet, negative and signalling NaN at every position (a stride for
 *     long buffers), a second one after the first, finite extremes never flagged;
 *   - comm_reduce_scatter_sum with and without first_bad, over lengths from 0 to more
 *     than one 4 MiB piece per share: the owned share holds the exact sum (values are
 *     multiples of 1/8, so every order gives the same float), the same bits both ways;
 *     *first_bad is the lowest planted index of this rank's buffer, planted by every
 *     rank, by some ranks, only in the share a rank sends first (which only the next
 *     rank reads) or only in its own, and n when nothing is planted. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../mpi/comm.h"
#include "check.h"

CHECK_COUNTERS;

static float bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static size_t ref_first(const float *x, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (isnan(x[k]) || isinf(x[k])) return k;
    return n;
}

static void check_first_nonfinite(void)
{
    const size_t lens[] = {0, 1, 5, 16, 1023, 1024, 1025, 2049, 3000};
    const float bad[] = {INFINITY, -INFINITY, NAN, -NAN, bits(0x7f800001u), bits(0xffc00123u)};
    const float fine[] = {FLT_MAX, -FLT_MAX, FLT_MIN, 0x1p-149f, -0.0f, 1.0f};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        size_t n = lens[li];
        float *x = malloc(sizeof(float) * (n ? n : 1));
        for (size_t k = 0; k < n; k++) x[k] = fine[k % 6];
        CHECK(comm_first_nonfinite(x, n) == n, "n %zu: finite extremes flagged at %zu", n,
              comm_first_nonfinite(x, n));
        size_t step = n <= 64 ? 1 : 37;
        for (size_t at = 0; at < n; at += step)
            for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
                float keep = x[at];
                x[at] = bad[b];
                size_t later = at + 1 + (at * 7 + b) % 1500;
                float keep2 = later < n ? x[later] : 0.0f;
                if (later < n) x[later] = bad[(b + 1) % 6];
                size_t got = comm_first_nonfinite(x, n), want = ref_first(x, n);
                CHECK(got == want && want == at, "n %zu: special %zu at %zu found at %zu", n, b, at,
                      got);
                x[at] = keep;
                if (later < n) x[later] = keep2;
            }
        free(x);
    }
}

/* The value of element k on rank q: a multiple of 1/8 in [-6, 6], so sums are exact. */
static float value(int q, size_t k)
{
    return (float)((int)((q * 7919u + k * 13u) % 97u) - 48) / 8;
}

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

/* Planting modes: which indices of rank q's buffer get an Inf or NaN. */
enum { NONE, EVERY, SOME, SENT_SHARE, OWN_SHARE, MODES };

/* Up to 4 planted indices of rank q in case (n, mode); returns how many. */
static int plants(int q, int p, size_t n, int mode, size_t out[4])
{
    if (n == 0 || mode == NONE || (mode == SOME && q % 2)) return 0;
    uint64_t s = 12345 + (uint64_t)q * 977 + (uint64_t)mode * 31 + n;
    size_t lo, hi;
    int cnt = 0;
    if (mode == SENT_SHARE || mode == OWN_SHARE) {
        /* the share rank q sends first (q-1) or its own (q) */
        comm_share(n, p, mode == SENT_SHARE ? (q + p - 1) % p : q, &lo, &hi);
        if (lo == hi) return 0;
        for (int i = 0; i < 2; i++) out[cnt++] = lo + lcg(&s) % (hi - lo);
        if (mode == SENT_SHARE) { /* and a later one elsewhere */
            size_t k = lcg(&s) % n;
            if (k > out[0]) out[cnt++] = k;
        }
        return cnt;
    }
    int want = 1 + (int)(lcg(&s) % 4);
    for (int i = 0; i < want; i++) out[cnt++] = lcg(&s) % n;
    return cnt;
}

static void fill(float *x, int q, int p, size_t n, int mode)
{
    static const uint32_t special[] = {0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f800001u};
    for (size_t k = 0; k < n; k++) x[k] = value(q, k);
    size_t at[4];
    int c = plants(q, p, n, mode, at);
    for (int i = 0; i < c; i++) x[at[i]] = bits(special[(at[i] + (size_t)i) % 4]);
}

static void check_ring(int rank, int p, float *staging)
{
    const size_t lens[] = {0, 1, 17, 4099, 100003, (size_t)p * COMM_PIECE + 1234};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
        for (int mode = 0; mode < MODES; mode++) {
            size_t n = lens[li];
            float *a = malloc(sizeof(float) * (n ? n : 1)),
                  *b = malloc(sizeof(float) * (n ? n : 1));
            fill(a, rank, p, n, mode);
            size_t want = ref_first(a, n);
            memcpy(b, a, sizeof(float) * n);
            size_t got = 12345678;
            comm_reduce_scatter_sum(a, n, MPI_COMM_WORLD, staging, &got, NULL);
            comm_reduce_scatter_sum(b, n, MPI_COMM_WORLD, staging, NULL, NULL);
            CHECK(got == want, "n %zu mode %d rank %d: first non-finite %zu, reference %zu", n,
                  mode, rank, got, want);
            size_t lo, hi, wrong = 0, differ = 0, planted = 0;
            comm_share(n, p, rank, &lo, &hi);
            /* every rank's plants, to know which sums must be non-finite */
            unsigned char *hit = calloc(n ? n : 1, 1);
            for (int q = 0; q < p; q++) {
                size_t at[4];
                int c = plants(q, p, n, mode, at);
                for (int i = 0; i < c; i++) hit[at[i]] = 1;
            }
            for (size_t k = lo; k < hi; k++) {
                float sum = 0;
                for (int q = 0; q < p; q++) sum += value(q, k);
                planted += hit[k];
                wrong += hit[k] ? isfinite(a[k]) != 0 : a[k] != sum;
                differ += memcmp(&a[k], &b[k], sizeof(float)) != 0;
            }
            CHECK(wrong == 0, "n %zu mode %d rank %d: %zu of the share's %zu sums wrong", n, mode,
                  rank, wrong, hi - lo);
            CHECK(differ == 0, "n %zu mode %d rank %d: %zu sums differ with the check", n, mode,
                  rank, differ);
            if (rank == 0 && mode == SENT_SHARE && li == 4)
                printf("test_comm: %d ranks, n %zu: rank 0 planted in the share it sends first, "
                       "found at %zu (reference %zu); %zu planted sums in its share\n",
                       p, n, got, want, planted);
            free(hit);
            free(a);
            free(b);
        }
}

int main(int argc, char **argv)
{
    comm_init(&argc, &argv);
    int rank, p;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &p);
    check_first_nonfinite();
    float *staging = malloc(sizeof(float) * COMM_PIECE);
    check_ring(rank, p, staging);
    free(staging);
    int f = failures;
    MPI_Allreduce(MPI_IN_PLACE, &f, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0) printf("test_comm: %d ranks, %d checks on rank 0, %d failures\n", p, checks, f);
    MPI_Finalize();
    return f != 0;
}
