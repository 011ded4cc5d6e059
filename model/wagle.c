/* model/wagle.c — WAGLE's scores, the global top-p threshold and the gradient mask (see
 * wagle.h). */
#include "wagle.h"

#include <math.h>
#include <string.h>

#include "../mpi/fatal.h"

void wagle_scores(float *score, const float *w, const float *gf, const float *gr, double mu,
                  size_t n)
{
    float inv = (float)(1.0 / mu);
    for (size_t k = 0; k < n; k++) score[k] = fabsf((w[k] - gr[k] * inv) * gf[k]);
}

void wagle_counted(unsigned char *counted, const lethe_params *t, int dp_rank, int tp_rank)
{
    memset(counted, 0, t->total);
    for (int i = 0; i < t->n; i++) {
        const lethe_param *p = &t->p[i];
        if (dp_rank != 0 || !p->owner || (p->split < 0 && tp_rank != 0)) continue;
        for (int64_t r = 0; r < p->vshape[0]; r++)
            memset(counted + p->off + (size_t)(r * p->lshape[1]), 1, (size_t)p->vshape[1]);
    }
}

static uint32_t bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

/* Counted elements of all ranks with bits(x) >= tau. */
static int64_t count_at_least(const float *x, const unsigned char *counted, size_t n, uint32_t tau,
                              MPI_Comm comm)
{
    int64_t c = 0;
    for (size_t k = 0; k < n; k++) c += counted[k] && bits(x[k]) >= tau;
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &c, 1, MPI_INT64_T, MPI_SUM, comm));
    return c;
}

uint32_t topp_threshold(const float *x, const unsigned char *counted, size_t n, double p,
                        MPI_Comm comm, int64_t *total, int64_t *kept)
{
    /* non-negative floats order as their bit patterns: bisect on [0, +inf] */
    *total = count_at_least(x, counted, n, 0, comm);
    int64_t want = (int64_t)ceil(p * (double)*total);
    if (want < 1) want = 1;
    uint32_t lo = 0, hi = 0x7f800001u; /* count(lo) >= want > count(hi) */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (count_at_least(x, counted, n, mid, comm) >= want)
            lo = mid;
        else
            hi = mid;
    }
    if (lo == 0) lo = 1; /* the smallest positive float: zeros are never kept */
    *kept = count_at_least(x, counted, n, lo, comm);
    return lo;
}

void topp_mask(unsigned char *mask, const float *x, size_t n, uint32_t tau)
{
    for (size_t k = 0; k < n; k++) mask[k] = bits(x[k]) >= tau;
}

void params_mask_grads(lethe_params *t, size_t lo, size_t hi)
{
    if (!t->mask) return;
    for (size_t k = lo; k < hi; k++)
        if (!t->mask[k]) t->grad[k] = 0.0f;
}
