/* model/vocab_parallel.c — vocabulary-parallel embedding and cross-entropy; see
 * vocab_parallel.h. */
#include "vocab_parallel.h"

#include <math.h>
#include <string.h>

#include "../mpi/comm.h"
#include "../mpi/fatal.h"
#include "kernels.h"

void vocab_parallel_embedding_forward(float *out, const int *tokens, const float *table, int N,
                                      int C, const vocab_shard *v)
{
    embedding_forward(out, tokens, table, N, C, v->v0, v->nv);
    comm_allreduce_sum(out, (size_t)N * C, v->tp, v->st);
}

void vocab_parallel_embedding_backward(float *dtable, const float *dout, const int *tokens, int N,
                                       int C, const vocab_shard *v)
{
    embedding_backward(dtable, dout, tokens, N, C, v->v0, v->nv);
}

static int is_soft(const unsigned char *soft_seq, int b)
{
    return soft_seq && soft_seq[b];
}

/* gmax (N) = the max of the shards' lmax over tp; each shard's sums rescaled to it */
static void to_global_max(float *gmax, const float *lmax, float *sums, int N, const vocab_shard *v)
{
    memcpy(gmax, lmax, sizeof(float) * (size_t)N);
    comm_allreduce_max(gmax, (size_t)N, v->tp, v->st);
    for (int n = 0; n < N; n++) /* a NaN sum stays NaN */
        if (lmax[n] != gmax[n]) sums[n] *= expf(lmax[n] - gmax[n]);
}

void vocab_parallel_ce_forward(float *logp, float *stats, const float *logits, const int *targets,
                               const float *soft_lp, const unsigned char *soft_seq, int B, int T,
                               const vocab_shard *v)
{
    int N = B * T, nv = v->nv;
    /* stats: gmax (N), sumexp (N), target logit or soft cross term (N), soft mass (N) */
    float *gmax = stats, *sums = stats + N, *qsum = stats + 3 * N;
    /* the shard's own max waits in the qsum slot (unused until ce_local_cross) */
    float *lmax = qsum;
    ce_local_stats(lmax, sums, sums + N, logits, targets, N, nv, v->nvalid, v->v0);
    to_global_max(gmax, lmax, sums, N, v);
    memset(qsum, 0, sizeof(float) * (size_t)N);
    int any_soft = 0;
    for (int b = 0; b < B; b++) {
        if (!is_soft(soft_seq, b)) continue;
        any_soft = 1;
        size_t r0 = (size_t)b * T;
        ce_local_cross(sums + N + r0, qsum + r0, logits + r0 * nv, soft_lp + r0 * nv, T, nv,
                       v->nvalid);
    }
    comm_allreduce_sum(sums, (any_soft ? 3 : 2) * (size_t)N, v->tp, v->st);
    for (int b = 0; b < B; b++) {
        int soft = is_soft(soft_seq, b);
        for (int t = 0; t < T; t++) {
            int n = b * T + t;
            float lz = gmax[n] + logf(sums[n]);
            logp[n] = targets[n] < 0 ? 0.0f : soft ? sums[N + n] - lz * qsum[n] : sums[N + n] - lz;
        }
    }
}

void vocab_parallel_nll_fused(float *logp, float *stats, float *logits, const int *targets, float w,
                              int N, const vocab_shard *v)
{
    float *gmax = stats, *sums = stats + N, *tl = stats + 2 * N, *lmax = stats + 3 * N;
    ce_nll_terms(lmax, sums, tl, logits, logits, targets, N, v->nv, v->nvalid, v->v0);
    to_global_max(gmax, lmax, sums, N, v);
    comm_allreduce_sum(sums, 2 * (size_t)N, v->tp, v->st);
    for (int n = 0; n < N; n++) logp[n] = targets[n] < 0 ? 0.0f : tl[n] - (gmax[n] + logf(sums[n]));
    ce_nll_grad(logits, lmax, gmax, sums, targets, w, N, v->nv, v->nvalid, v->v0);
    memset(lmax, 0, sizeof(float) * (size_t)N); /* the soft mass slot */
}

void vocab_parallel_ce_backward(float *dlogits, const float *logits, const float *stats,
                                const int *targets, const float *soft_lp,
                                const unsigned char *soft_seq, const float *g, int B, int T,
                                const vocab_shard *v)
{
    int N = B * T, nv = v->nv;
    const float *gmax = stats, *sums = stats + N, *qsum = stats + 3 * N;
    for (int b = 0; b < B; b++) {
        size_t r0 = (size_t)b * T;
        if (is_soft(soft_seq, b))
            ce_soft_backward(dlogits + r0 * nv, logits + r0 * nv, gmax + r0, sums + r0,
                             soft_lp + r0 * nv, qsum + r0, g + r0, T, nv, v->nvalid);
        else
            ce_backward(dlogits + r0 * nv, logits + r0 * nv, gmax + r0, sums + r0, targets + r0,
                        g + r0, T, nv, v->nvalid, v->v0);
    }
}

void vocab_parallel_log_softmax(float *out, double *negent, double *h, const float *logits,
                                const float *stats, const int *targets, int B, int T,
                                const vocab_shard *v)
{
    int N = B * T;
    log_softmax_rows(out, h, logits, stats, stats + N, N, v->nv, v->nvalid);
    for (int b = 0; b < B; b++) {
        negent[b] = 0.0;
        for (int t = 0; t < T; t++)
            if (targets[b * T + t] >= 0) negent[b] += h[b * T + t];
    }
    comm_allreduce_sum_d(negent, (size_t)B, v->tp, v->st);
}

/* this shard's part of the lowered row's mass: sum_{j != y} p_j + p_y e^-drop */
static double lowered_mass(const float *o, int yl, double drop, int nvalid)
{
    if (yl < 0 || yl >= nvalid) return sumexp_rows_d(o, nvalid);
    double m = sumexp_rows_d(o, yl) + sumexp_rows_d(o + yl + 1, nvalid - yl - 1);
    return isinf(drop) ? m : m + exp((double)o[yl] - drop);
}

void vocab_parallel_lower_targets(float *out, double *norm, const int *targets,
                                  const unsigned char *rows, double drop, int B, int T,
                                  const vocab_shard *v)
{
    int N = B * T, exclude = isinf(drop);
    for (int n = 0; n < N; n++) {
        int y = targets[n];
        norm[n] = rows[n / T] && y >= 0 ? lowered_mass(out + (size_t)n * v->nv, y - v->v0, drop,
                                                       v->nvalid)
                                        : 0.0;
    }
    comm_allreduce_sum_d(norm, (size_t)N, v->tp, v->st);
    for (int n = 0; n < N; n++) {
        int y = targets[n];
        if (!rows[n / T] || y < 0) continue;
        /* p_y = 1 excluded leaves a floor, not log 0 */
        float c = (float)log(norm[n] > 1e-300 ? norm[n] : 1e-300);
        float *o = out + (size_t)n * v->nv;
        int yl = y - v->v0;
        float oy = yl >= 0 && yl < v->nvalid ? o[yl] : 0.0f;
        for (int j = 0; j < v->nvalid; j++) o[j] -= c;
        if (yl >= 0 && yl < v->nvalid) o[yl] = exclude ? -INFINITY : (float)((double)oy - drop - c);
    }
}

void vocab_parallel_argmax_rows(int *ids, vocab_best *best, const float *logits, int k,
                                const vocab_shard *v)
{
    for (int r = 0; r < k; r++) {
        const float *z = logits + (size_t)r * v->nv;
        best[r] = (vocab_best){-INFINITY, 0x7fffffff};
        for (int j = 0; j < v->nvalid; j++)
            if (z[j] > best[r].v) best[r] = (vocab_best){z[j], v->v0 + j};
    }
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, best, k, MPI_FLOAT_INT, MPI_MAXLOC, v->tp));
    for (int r = 0; r < k; r++) ids[r] = best[r].i;
}
