/* tests/test_wagle.c — WAGLE's score and its GLOBAL top-p selection (model/wagle.c).
 *
 *   mpirun -n {1,2,4,8} test_wagle
 *
 * 1. wagle_scores against |(w - gr/mu) gf| written out in double, to 1e-5 relative (fp32:
 *    three roundings, and w - gr/mu cancels).
 * 2. The selection: every rank holds a shard whose scores follow a DIFFERENT
 *    distribution (rank r: log-uniform over [10^(r-3), 10^r], a different length, about
 *    10% of the elements not counted, and 20 exact ties planted at one value). For p in
 *    {0.8, 0.9, 0.95, 0.5} the threshold of topp_threshold over the world is checked
 *    against a reference that gathers every counted score to every rank and sorts them
 *    (the ceil(p N)-th largest): the same threshold on every rank, the mask equal to
 *    x >= that value on every element, kept and total equal to the reference counts.
 *    Then with 30% of every shard's scores exactly 0 and p 0.9: the mask is every
 *    positive score (a zero score is never kept).
 *    With more than one rank, the selection of each rank on its own (MPI_COMM_SELF)
 *    must give a different mask somewhere in the world: a per-rank implementation
 *    would fail (1). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/wagle.h"
#include "../mpi/comm.h"
#include "check.h"

CHECK_COUNTERS;

static uint64_t rng(uint64_t *s)
{
    *s += 0x9e3779b97f4a7c15ULL;
    uint64_t z = *s;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static double unif(uint64_t *s)
{
    return (double)(rng(s) >> 11) * 0x1.0p-53;
}

static int cmp_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

static void check_scores(void)
{
    enum { N = 257 };
    float w[N], gf[N], gr[N], s[N];
    uint64_t st = 5;
    for (int k = 0; k < N; k++) {
        w[k] = (float)(unif(&st) - 0.5);
        gf[k] = (float)((unif(&st) - 0.5) * 1e-2);
        gr[k] = (float)((unif(&st) - 0.5) * 1e-5);
    }
    double mu = 1e-6;
    wagle_scores(s, w, gf, gr, mu, N);
    double worst = 0;
    for (int k = 0; k < N; k++) {
        double want = fabs(((double)w[k] - (double)gr[k] / mu) * (double)gf[k]);
        double e = fabs(s[k] - want) / fmax(want, 1e-30);
        if (e > worst) worst = e;
    }
    CHECK(worst <= 1e-5, "wagle_scores: relative error %.3g against the double formula", worst);
}

int main(int argc, char **argv)
{
    comm_init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    check_scores();

    /* this rank's shard: its own distribution and length */
    size_t n = 3000 + 411 * (size_t)rank;
    float *x = malloc(sizeof(float) * n);
    unsigned char *counted = malloc(n), *mask = malloc(n), *self = malloc(n);
    uint64_t st = 1000 + (uint64_t)rank;
    for (size_t k = 0; k < n; k++) {
        x[k] = (float)pow(10.0, (double)rank - 3.0 + 3.0 * unif(&st));
        counted[k] = unif(&st) < 0.9;
    }
    for (size_t k = 0; k < 20; k++) x[7 * k] = (float)pow(10.0, (double)rank - 1.5);
    /* the reference: every counted score of the world, sorted */
    int mine = 0;
    for (size_t k = 0; k < n; k++) mine += counted[k];
    int *cnt = malloc(sizeof(int) * size), *at = malloc(sizeof(int) * size);
    MPI_Allgather(&mine, 1, MPI_INT, cnt, 1, MPI_INT, MPI_COMM_WORLD);
    int N = 0;
    for (int r = 0; r < size; r++) at[r] = N, N += cnt[r];
    float *loc = malloc(sizeof(float) * (size_t)mine), *all = malloc(sizeof(float) * (size_t)N);
    for (size_t k = 0, j = 0; k < n; k++)
        if (counted[k]) loc[j++] = x[k];
    MPI_Allgatherv(loc, mine, MPI_FLOAT, all, cnt, at, MPI_FLOAT, MPI_COMM_WORLD);
    qsort(all, (size_t)N, sizeof(float), cmp_desc);

    static const double ps[] = {0.8, 0.9, 0.95, 0.5, 0.9};
    for (size_t q = 0; q < sizeof ps / sizeof ps[0]; q++) {
        double p = ps[q];
        if (q == 4) { /* 30% zeros in every shard: ceil(0.9 N) reaches into them */
            for (size_t k = 0; k < n; k++)
                if (k % 10 < 3) x[k] = 0.0f;
            for (size_t k = 0, j = 0; k < n; k++)
                if (counted[k]) loc[j++] = x[k];
            MPI_Allgatherv(loc, mine, MPI_FLOAT, all, cnt, at, MPI_FLOAT, MPI_COMM_WORLD);
            qsort(all, (size_t)N, sizeof(float), cmp_desc);
        }
        int64_t total, kept;
        uint32_t tau = topp_threshold(x, counted, n, p, MPI_COMM_WORLD, &total, &kept);
        float thr;
        memcpy(&thr, &tau, sizeof thr);
        int64_t want = (int64_t)ceil(p * (double)N);
        float ref = all[want - 1];
        if (ref == 0.0f) ref = 0x1p-149f; /* zeros are never kept */
        int64_t ref_kept = 0;
        for (int k = 0; k < N; k++) ref_kept += all[k] >= ref;
        CHECK(thr == ref, "p %g rank %d: threshold %.9g, the %lld-th largest of %d is %.9g", p,
              rank, (double)thr, (long long)want, N, (double)ref);
        CHECK(total == N && kept == ref_kept, "p %g: total %lld kept %lld, reference %d %lld", p,
              (long long)total, (long long)kept, N, (long long)ref_kept);
        uint32_t t0 = tau;
        MPI_Bcast(&t0, 1, MPI_UINT32_T, 0, MPI_COMM_WORLD);
        CHECK(t0 == tau, "p %g: rank %d's threshold differs from rank 0's", p, rank);
        topp_mask(mask, x, n, tau);
        size_t wrong = 0;
        for (size_t k = 0; k < n; k++) wrong += mask[k] != (x[k] >= ref);
        CHECK(wrong == 0, "p %g rank %d: %zu mask entries differ from x >= %.9g", p, rank, wrong,
              (double)ref);
        /* what a per-rank selection would give: it must differ somewhere */
        int64_t st_, sk;
        topp_mask(self, x, n, topp_threshold(x, counted, n, p, MPI_COMM_SELF, &st_, &sk));
        int differs = memcmp(self, mask, n) != 0;
        MPI_Allreduce(MPI_IN_PLACE, &differs, 1, MPI_INT, MPI_LOR, MPI_COMM_WORLD);
        if (size > 1 && q < 4)
            CHECK(differs,
                  "p %g: a per-rank selection gives the global mask: the shards' "
                  "distributions do not test the global selection",
                  p);
        if (rank == 0)
            printf("test_wagle: %d ranks, p %.2f: threshold %.6g keeps %lld of %lld counted "
                   "scores (per-rank selection %s)\n",
                   size, p, (double)thr, (long long)kept, (long long)total,
                   size > 1 ? (differs ? "differs, as it must" : "AGREES") : "n/a");
    }
    int f = failures;
    MPI_Allreduce(MPI_IN_PLACE, &f, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0)
        printf("test_wagle: %d ranks, %d checks on rank 0, %d failures\n", size, checks, f);
    free(x);
    free(counted);
    free(mask);
    free(self);
    free(cnt);
    free(at);
    free(loc);
    free(all);
    MPI_Finalize();
    return f != 0;
}
