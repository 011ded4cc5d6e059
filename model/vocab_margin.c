/* model/vocab_margin.c — PDU's logit-margin flattening term over the vocabulary split
 * across tp: d = max_j z_j - mean_j z_j per position (open-unlearning's PDU forget
 * loss is the mean of d^2), and its backward. The row maximum comes from the
 * cross-entropy's stats; the arg-max and the row sum take one all-reduce each (MIN
 * over the ids holding the maximum, SUM of the shards' sums), so no logit is ever
 * gathered. See vocab_parallel.h. */
#include "vocab_parallel.h"

#include <limits.h>

#include "../mpi/comm.h"
#include "../mpi/fatal.h"

void vocab_parallel_margin_forward(float *d, int *arg, const float *logits, const float *gmax,
                                   const int *targets, const unsigned char *rows, int B, int T,
                                   int V, const vocab_shard *v)
{
    int N = B * T, nv = v->nv;
    for (int n = 0; n < N; n++) {
        d[n] = 0.0f;
        arg[n] = INT_MAX;
        if (!rows[n / T] || targets[n] < 0) continue;
        const float *z = logits + (size_t)n * nv;
        double sum = 0.0;
        for (int j = 0; j < v->nvalid; j++) {
            sum += z[j];
            if (z[j] == gmax[n] && arg[n] == INT_MAX) arg[n] = v->v0 + j;
        }
        d[n] = (float)sum;
    }
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, arg, N, MPI_INT, MPI_MIN, v->tp));
    comm_allreduce_sum(d, (size_t)N, v->tp, v->st);
    for (int n = 0; n < N; n++) {
        int on = rows[n / T] && targets[n] >= 0;
        d[n] = on ? gmax[n] - d[n] / (float)V : 0.0f;
        if (!on) arg[n] = -1;
    }
}

void vocab_parallel_margin_backward(float *dlogits, const int *arg, const float *gd,
                                    const unsigned char *rows, int B, int T, int V,
                                    const vocab_shard *v)
{
    int N = B * T, nv = v->nv;
    for (int n = 0; n < N; n++) {
        if (!rows[n / T] || arg[n] < 0 || gd[n] == 0.0f) continue;
        float *dz = dlogits + (size_t)n * nv, g = gd[n], mean = g / (float)V;
        for (int j = 0; j < v->nvalid; j++) dz[j] -= mean;
        if (arg[n] >= v->v0 && arg[n] < v->v0 + v->nvalid) dz[arg[n] - v->v0] += g;
    }
}
