/* tests/test_kernels_nll.c — the token-mean NLL's cross-entropy on vocabulary shards
 * (ce_nll_terms, then the caller's reduction, then ce_nll_grad), against the passes it
 * replaces (ce_local_stats and ce_backward), against ce_fused_nll on one shard, and
 * against a double reference of w (onehot - softmax). */
#include "test_kernels.h"
#include "model/kernels.h"
#include "mpi/fatal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One shard of nv columns of a full (N, V) matrix: columns [v0, v0 + nv), padding 1e4
 * (counted anywhere, it would show in the max and the sums). Returns nvalid. */
static int shard_of(float *lg, const float *full, int N, int V, int v0, int nv)
{
    int nvalid = V - v0 < 0 ? 0 : (V - v0 < nv ? V - v0 : nv);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < nv; c++)
            lg[(size_t)n * nv + c] = c < nvalid ? full[(size_t)n * V + v0 + c] : 1e4f;
    return nvalid;
}

/* The rows' softmax in double, for the reference gradient. */
static double ref_p(const float *row, int V, int c)
{
    double m = -INFINITY, s = 0.0;
    for (int j = 0; j < V; j++) m = fmax(m, row[j]);
    for (int j = 0; j < V; j++) s += exp((double)row[j] - m);
    return exp((double)row[c] - m) / s;
}

/* N rows of V logits over nshards shards of nv columns (nshards * nv >= V); targets
 * include -1 (no target), the first and the last column. */
void test_ce_nll_sharded(int N, int V, int nshards, int nv, float w)
{
    snprintf(current_case, sizeof current_case, "sharded NLL N=%d V=%d shards=%d nv=%d w=%g", N,
             V, nshards, nv, w);
    size_t ns = (size_t)N * nv;
    float *full = falloc((size_t)N * V), *lg = falloc(ns), *e = falloc(ns), *d = falloc(ns);
    float *lm = falloc((size_t)N * nshards), *se = falloc((size_t)N * nshards);
    float *tl = falloc((size_t)N * nshards), *gmax = falloc(N), *gse = falloc(N);
    float *rm = falloc(N), *rs = falloc(N), *rt = falloc(N), *g = falloc(N);
    int *tgt = lethe_malloc((size_t)N * sizeof *tgt, "targets");
    fill(full, (size_t)N * V, -4, 4);
    for (int c = 0; c < V; c++) full[(size_t)(N - 1) * V + c] += 100.0f;
    for (int n = 0; n < N; n++) tgt[n] = (int)(rng_u64() % (uint64_t)V);
    tgt[0] = V - 1;
    if (N > 1) tgt[1] = 0;
    if (N > 2) tgt[2] = -1;
    for (int n = 0; n < N; n++) g[n] = tgt[n] >= 0 ? w : 0.0f;
    /* the terms half on every shard, against ce_local_stats of the same shard */
    for (int s = 0; s < nshards; s++) {
        int nvalid = shard_of(lg, full, N, V, s * nv, nv);
        fill_const(e, ns, SENTINEL);
        ce_nll_terms(lm + (size_t)s * N, se + (size_t)s * N, tl + (size_t)s * N, e, lg, tgt, N,
                     nv, nvalid, s * nv);
        ce_local_stats(rm, rs, rt, lg, tgt, N, nv, nvalid, s * nv);
        check_exact("ce_nll_terms", "lmax, sumexp, tlogit differing from ce_local_stats", s,
                    bits_differing(lm + (size_t)s * N, rm, N) +
                        bits_differing(se + (size_t)s * N, rs, N) +
                        bits_differing(tl + (size_t)s * N, rt, N),
                    0.0);
    }
    /* the caller's reduction, as vocab_parallel_nll_fused does it */
    for (int n = 0; n < N; n++) {
        gmax[n] = -INFINITY;
        for (int s = 0; s < nshards; s++) gmax[n] = fmaxf(gmax[n], lm[(size_t)s * N + n]);
        gse[n] = 0.0f;
        for (int s = 0; s < nshards; s++) {
            float x = se[(size_t)s * N + n], m = lm[(size_t)s * N + n];
            gse[n] += m != gmax[n] ? x * expf(m - gmax[n]) : x;
        }
    }
    for (int s = 0; s < nshards; s++) {
        int v0 = s * nv, nvalid = shard_of(lg, full, N, V, v0, nv);
        /* out of place, then in place over the logits: the same bits */
        ce_nll_terms(rm, rs, rt, e, lg, tgt, N, nv, nvalid, v0);
        ce_nll_grad(e, lm + (size_t)s * N, gmax, gse, tgt, w, N, nv, nvalid, v0);
        ce_backward(d, lg, gmax, gse, tgt, g, N, nv, nvalid, v0);
        ce_nll_terms(rm, rs, rt, lg, lg, tgt, N, nv, nvalid, v0);
        ce_nll_grad(lg, lm + (size_t)s * N, gmax, gse, tgt, w, N, nv, nvalid, v0);
        check_exact("ce_nll_grad", "in place: values differing in bits", s,
                    bits_differing(lg, e, ns), 0.0);
        for (int n = 0; n < N; n++)
            for (int c = 0; c < nv; c++) {
                size_t i = (size_t)n * nv + c;
                if (c >= nvalid || tgt[n] < 0) {
                    check_exact("ce_nll_grad", "dlogits(padding, no target)", i, e[i], 0.0);
                    continue;
                }
                int col = v0 + c;
                double p = ref_p(full + (size_t)n * V, V, col), scale = fabs((double)w) * (1 + p);
                check("ce_nll_grad", "dlogits(reference)", i, e[i], w * ((col == tgt[n]) - p),
                      scale, TOL_FWD);
                check("ce_nll_grad", "dlogits(against ce_backward)", i, e[i], d[i], scale, 1e-6);
            }
    }
    /* one shard holding the whole vocabulary: ce_fused_nll's floats, bit for bit */
    if (nshards == 1) {
        float *st = falloc(4 * (size_t)N), *lp = falloc(N);
        shard_of(lg, full, N, V, 0, nv);
        ce_fused_nll(lp, st, d, lg, tgt, w, N, nv, V);
        check_exact("ce_nll_grad", "one shard: dlogits differing from ce_fused_nll", 0,
                    bits_differing(e, d, ns), 0.0);
        free(st), free(lp);
    }
    free(full), free(lg), free(e), free(d), free(lm), free(se), free(tl), free(gmax), free(gse);
    free(rm), free(rs), free(rt), free(g), free(tgt);
}
