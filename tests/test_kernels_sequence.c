/* tests/test_kernels_sequence.c — the kernels whose work depends on a token's position or id:
 * rope (tables, forward, backward as the transpose and inverse, row padding untouched, two
 * thetas), causal attention (out, probs with their diagonal and row sums, dq/dk/dv; GQA,
 * MQA and NH = NKV at T = 1 and 7, and scores large enough that exp needs the row max),
 * the vocabulary-sharded embedding (shards summing to the full lookup, tokens outside the
 * vocabulary) and the three-pass sharded cross-entropy (padding columns, an empty shard,
 * target -1, shards against one shard). References are in double, written here. */
#include "test_kernels.h"
#include "model/kernels.h"
#include "mpi/fatal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double dot_rd(const double *out, const double *R, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += out[i] * R[i];
    return s;
}

/* ---------------------------------------------------------------- rope */

typedef struct {
    int B, T, nh, hd, stride;
    double theta, *x, *R, *y; /* y: scratch for the rotated x */
} rope_ctx;

/* Hugging Face rotate_half: pairs (i, i + hd/2), angle t * theta^(-2i/hd). */
static void ref_rope(double *y, const double *x, int B, int T, int nh, int hd, int stride,
                     double theta, double sign)
{
    int half = hd / 2;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < nh; h++) {
                size_t o = ((size_t)b * T + t) * stride + (size_t)h * hd;
                for (int i = 0; i < half; i++) {
                    double a = t * pow(theta, -2.0 * i / hd), c = cos(a), s = sign * sin(a);
                    double x1 = x[o + i], x2 = x[o + i + half];
                    y[o + i] = x1 * c - x2 * s;
                    y[o + i + half] = x2 * c + x1 * s;
                }
            }
}

static double rope_loss(void *p)
{
    rope_ctx *c = p;
    size_t n = (size_t)c->B * c->T * c->stride;
    memset(c->y, 0, n * sizeof *c->y);
    ref_rope(c->y, c->x, c->B, c->T, c->nh, c->hd, c->stride, c->theta, 1.0);
    return dot_rd(c->y, c->R, n);
}

/* True for a float of the (B, T, stride) buffer that is a head entry, not row padding. */
static int rope_owned(size_t j, int nh, int hd, int stride)
{
    return (int)(j % (size_t)stride) < nh * hd;
}

void test_rope(int B, int T, int nh, int hd, int stride, float theta)
{
    snprintf(current_case, sizeof current_case, "rope B=%d T=%d nh=%d hd=%d stride=%d theta=%g", B,
             T, nh, hd, stride, theta);
    int half = hd / 2;
    size_t nt = (size_t)T * half, n = (size_t)B * T * stride;
    float *ct = falloc(nt), *st = falloc(nt);
    fill_const(ct, nt, SENTINEL);
    fill_const(st, nt, SENTINEL);
    rope_tables(ct, st, T, hd, theta);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            /* cos and sin lie in [-1, 1]: relative to 1, an fp32 angle t*inv_freq is
             * good to a few ulp of t, well inside 1e-5 for the T used here */
            double a = t * pow((double)theta, -2.0 * i / hd);
            size_t j = (size_t)t * half + i;
            check("rope_tables", "cos", j, ct[j], cos(a), 1.0, TOL_FWD);
            check("rope_tables", "sin", j, st[j], sin(a), 1.0, TOL_FWD);
        }

    float *x = falloc(n), *xr = falloc(n), *R = falloc(n), *dx = falloc(n);
    fill(x, n, -1, 1);
    fill(R, n, -1, 1);
    for (size_t j = 0; j < n; j++)
        if (!rope_owned(j, nh, hd, stride)) x[j] = R[j] = SENTINEL;
    memcpy(xr, x, n * sizeof *x);
    rope_forward(xr, ct, st, B, T, nh, hd, stride);
    rope_ctx ctx = {B, T, nh, hd, stride, theta, to_double(x, n), to_double(R, n), dalloc(n)};
    double *ref = dalloc(n);
    ref_rope(ref, ctx.x, B, T, nh, hd, stride, theta, 1.0);
    for (size_t j = 0; j < n; j++) {
        if (!rope_owned(j, nh, hd, stride)) {
            check_exact("rope_forward", "row padding untouched", j, xr[j], SENTINEL);
            continue;
        }
        /* the magnitude of the two products that were summed */
        size_t o = j - (j % (size_t)stride) % hd;
        int i = (int)((j % (size_t)stride) % hd), p = i < half ? i + half : i - half;
        int t = (int)((j / (size_t)stride) % (size_t)T), f = i < half ? i : i - half;
        double a = t * pow((double)theta, -2.0 * f / hd);
        double mag = fabs(ctx.x[j] * cos(a)) + fabs(ctx.x[o + p] * sin(a));
        check("rope_forward", "x", j, xr[j], ref[j], mag, TOL_FWD);
    }

    /* rope_backward is in place on the gradient: R in, dL/dx out. */
    memcpy(dx, R, n * sizeof *R);
    rope_backward(dx, ct, st, B, T, nh, hd, stride);
    for (size_t j = 0; j < n; j++)
        if (!rope_owned(j, nh, hd, stride))
            check_exact("rope_backward", "row padding untouched", j, dx[j], SENTINEL);
    /* FD over the owned entries only: compact the owned indices into a gradient array */
    float *gx = falloc(n);
    for (size_t j = 0; j < n; j++) gx[j] = rope_owned(j, nh, hd, stride) ? dx[j] : 0.0f;
    for (size_t j = 0; j < n; j++)
        if (!rope_owned(j, nh, hd, stride)) ctx.R[j] = 0.0; /* padding is not an output */
    check_grad("rope_backward", "dx", gx, ctx.x, n, rope_loss, &ctx, 4096);

    /* transpose: <rope(x), y> == <x, rope_backward(y)>, both sums in double */
    double lhs = 0.0, rhs = 0.0, mag = 0.0;
    for (size_t j = 0; j < n; j++)
        if (rope_owned(j, nh, hd, stride)) {
            lhs += (double)xr[j] * R[j];
            rhs += (double)x[j] * dx[j];
            mag += fabs((double)x[j] * dx[j]);
        }
    check("rope_backward", "<rope(x),y>-<x,rope_bwd(y)>", 0, rhs, lhs, mag, TOL_FWD);

    /* rotation by -angle undoes rotation by +angle */
    float *back = falloc(n);
    memcpy(back, xr, n * sizeof *xr);
    rope_backward(back, ct, st, B, T, nh, hd, stride);
    for (size_t j = 0; j < n; j++)
        if (rope_owned(j, nh, hd, stride))
            check("rope_backward", "rope_bwd(rope(x))-x", j, back[j], x[j], 1.0, TOL_FWD);

    free(ct), free(st), free(x), free(xr), free(R), free(dx), free(gx), free(back), free(ref);
    free(ctx.x), free(ctx.R), free(ctx.y);
}

/* ---------------------------------------------------------------- attention */

typedef struct {
    int B, T, NH, NKV, hd;
    double *q, *k, *v, *R, *out;
} attn_ctx;

static size_t qidx(int b, int t, int h, int i, int T, int nh, int hd)
{
    return (((size_t)b * T + t) * nh + h) * hd + i;
}

/* probs (B, NH, T, T) may be NULL; mag (like out) receives sum_s p |v| when not NULL. */
static void ref_attention(double *out, double *probs, double *mag, const double *q, const double *k,
                          const double *v, int B, int T, int NH, int NKV, int hd)
{
    int rep = NH / NKV;
    double scale = 1.0 / sqrt((double)hd);
    double *p = dalloc(T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                int kh = h / rep;
                double m = -INFINITY, sum = 0.0;
                for (int s = 0; s <= t; s++) {
                    double d = 0.0;
                    for (int i = 0; i < hd; i++)
                        d += q[qidx(b, t, h, i, T, NH, hd)] * k[qidx(b, s, kh, i, T, NKV, hd)];
                    p[s] = d * scale;
                    m = fmax(m, p[s]);
                }
                for (int s = 0; s <= t; s++) {
                    p[s] = exp(p[s] - m);
                    sum += p[s];
                }
                for (int s = 0; s < T; s++) {
                    if (s <= t) p[s] /= sum;
                    if (probs) probs[(((size_t)b * NH + h) * T + t) * T + s] = s <= t ? p[s] : 0;
                }
                for (int i = 0; i < hd; i++) {
                    double o = 0.0, a = 0.0;
                    for (int s = 0; s <= t; s++) {
                        double vv = v[qidx(b, s, kh, i, T, NKV, hd)];
                        o += p[s] * vv;
                        a += p[s] * fabs(vv);
                    }
                    out[qidx(b, t, h, i, T, NH, hd)] = o;
                    if (mag) mag[qidx(b, t, h, i, T, NH, hd)] = a;
                }
            }
    free(p);
}

static double attn_loss(void *p)
{
    attn_ctx *c = p;
    ref_attention(c->out, NULL, NULL, c->q, c->k, c->v, c->B, c->T, c->NH, c->NKV, c->hd);
    return dot_rd(c->out, c->R, (size_t)c->B * c->T * c->NH * c->hd);
}

void test_attention(int B, int T, int NH, int NKV, int hd, float amp)
{
    snprintf(current_case, sizeof current_case,
             "attention B=%d T=%d NH=%d NKV=%d hd=%d |q|,|k|<=%g", B, T, NH, NKV, hd, amp);
    size_t nq = (size_t)B * T * NH * hd, nk = (size_t)B * T * NKV * hd;
    size_t np = (size_t)B * NH * T * T;
    float *q = falloc(nq), *k = falloc(nk), *v = falloc(nk), *out = falloc(nq);
    float *probs = falloc(np), *R = falloc(nq);
    /* amp 1.5 makes some softmax rows peaked, others flat; amp 12 spreads scores over
     * about +-100, where exp without the row max overflows */
    fill(q, nq, -amp, amp);
    fill(k, nk, -amp, amp);
    fill(v, nk, -1, 1);
    fill(R, nq, -1, 1);
    fill_const(out, nq, SENTINEL);
    fill_const(probs, np, SENTINEL);
    attention_forward(out, probs, q, k, v, B, T, NH, NKV, hd);

    attn_ctx ctx = {B,
                    T,
                    NH,
                    NKV,
                    hd,
                    to_double(q, nq),
                    to_double(k, nk),
                    to_double(v, nk),
                    to_double(R, nq),
                    dalloc(nq)};
    double *ref = dalloc(nq), *mag = dalloc(nq), *rp = dalloc(np);
    ref_attention(ref, rp, mag, ctx.q, ctx.k, ctx.v, B, T, NH, NKV, hd);
    for (size_t j = 0; j < nq; j++)
        check("attention_forward", "out", j, out[j], ref[j], mag[j], TOL_FWD);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                size_t row = (((size_t)b * NH + h) * T + t) * T;
                /* exp(s - m) turns the absolute fp32 error of a score into a relative error
                 * of the probability: the tolerance grows with the scores' term size A */
                double sum = 0.0, A = 0.0;
                for (int s = 0; s <= t; s++) {
                    double a = 0.0;
                    for (int i = 0; i < hd; i++)
                        a += fabs(ctx.q[qidx(b, t, h, i, T, NH, hd)] *
                                  ctx.k[qidx(b, s, h / (NH / NKV), i, T, NKV, hd)]);
                    A = fmax(A, a / sqrt((double)hd));
                }
                for (int s = 0; s < T; s++) {
                    if (s > t) {
                        check_exact("attention_forward", "probs above diagonal", row + s,
                                    probs[row + s], 0.0);
                    } else {
                        /* and probabilities under 1e-30 (fp32 denormal territory) are
                         * judged with that absolute floor */
                        check("attention_forward", "probs", row + s, probs[row + s], rp[row + s],
                              fmax(fabs(rp[row + s]) * (1.0 + 2.0 * A), 1e-30), TOL_FWD);
                        sum += probs[row + s];
                    }
                }
                check("attention_forward", "probs row sum", row / T, sum, 1.0, 0.0, TOL_FWD);
            }

    float *dq = falloc(nq), *dk = falloc(nk), *dv = falloc(nk), *scratch = falloc((size_t)T * T);
    attention_backward(dq, dk, dv, scratch, R, probs, q, k, v, B, T, NH, NKV, hd);
    check_grad("attention_backward", "dq", dq, ctx.q, nq, attn_loss, &ctx, 4096);
    check_grad("attention_backward", "dk", dk, ctx.k, nk, attn_loss, &ctx, 4096);
    check_grad("attention_backward", "dv", dv, ctx.v, nk, attn_loss, &ctx, 4096);
    float *dq2 = falloc(nq), *dk2 = falloc(nk), *dv2 = falloc(nk);
    memcpy(dq2, dq, nq * sizeof *dq);
    memcpy(dk2, dk, nk * sizeof *dk);
    memcpy(dv2, dv, nk * sizeof *dv);
    fill(scratch, (size_t)T * T, -9, 9); /* scratch is scratch: its contents must not matter */
    attention_backward(dq2, dk2, dv2, scratch, R, probs, q, k, v, B, T, NH, NKV, hd);
    check_twice("attention_backward", "dq", dq, dq2, nq);
    check_twice("attention_backward", "dk", dk, dk2, nk);
    check_twice("attention_backward", "dv", dv, dv2, nk);

    free(q), free(k), free(v), free(out), free(probs), free(R), free(dq), free(dk), free(dv);
    free(scratch), free(dq2), free(dk2), free(dv2), free(ref), free(mag), free(rp);
    free(ctx.q), free(ctx.k), free(ctx.v), free(ctx.R), free(ctx.out);
}

/* ---------------------------------------------------------------- embedding */

typedef struct {
    int N, C, v0, nv;
    const int *tok;
    double *table, *R;
} emb_ctx;

static double emb_loss(void *p)
{
    emb_ctx *c = p;
    double L = 0.0;
    for (int n = 0; n < c->N; n++) {
        int r = c->tok[n] - c->v0;
        if (r < 0 || r >= c->nv) continue;
        for (int k = 0; k < c->C; k++)
            L += c->table[(size_t)r * c->C + k] * c->R[(size_t)n * c->C + k];
    }
    return L;
}

/* The full table (V, C) split into shards of nv rows (the last one may reach past V). */
void test_embedding(int V, int C, int N, int nshards)
{
    int nv = (V + nshards - 1) / nshards;
    snprintf(current_case, sizeof current_case, "embedding V=%d C=%d N=%d shards=%d nv=%d", V, C, N,
             nshards, nv);
    int *tok = lethe_malloc((size_t)N * sizeof *tok, "tokens");
    for (int n = 0; n < N; n++) tok[n] = (int)(rng_u64() % (uint64_t)V);
    tok[N - 1] = tok[0]; /* a repeated token: its gradient rows must add up */
    if (N > 3) tok[N - 2] = tok[1];
    size_t nrow = (size_t)nshards * nv * C, no = (size_t)N * C;
    float *table = falloc(nrow), *R = falloc(no), *sum = falloc(no), *out = falloc(no);
    fill(table, nrow, -1, 1);
    fill(R, no, -1, 1);
    for (int s = 0; s < nshards; s++) {
        int v0 = s * nv;
        const float *tab = table + (size_t)v0 * C;
        fill_const(out, no, SENTINEL);
        embedding_forward(out, tok, tab, N, C, v0, nv);
        for (int n = 0; n < N; n++)
            for (int k = 0; k < C; k++) {
                size_t j = (size_t)n * C + k;
                int in = tok[n] >= v0 && tok[n] < v0 + nv;
                check_exact("embedding_forward", in ? "out" : "out(token outside shard)", j, out[j],
                            in ? tab[(size_t)(tok[n] - v0) * C + k] : 0.0f);
                sum[j] += out[j];
            }
        float *dt = falloc((size_t)nv * C), *dt2 = falloc((size_t)nv * C);
        embedding_backward(dt, R, tok, N, C, v0, nv);
        emb_ctx ctx = {N, C, v0, nv, tok, to_double(tab, (size_t)nv * C), to_double(R, no)};
        check_grad("embedding_backward", "dtable", dt, ctx.table, (size_t)nv * C, emb_loss, &ctx,
                   4096);
        memcpy(dt2, dt, (size_t)nv * C * sizeof *dt);
        embedding_backward(dt2, R, tok, N, C, v0, nv);
        check_twice("embedding_backward", "dtable", dt, dt2, (size_t)nv * C);
        free(dt), free(dt2), free(ctx.table), free(ctx.R);
    }
    /* the shards' outputs sum to the full lookup (one shard holds each token) */
    for (int n = 0; n < N; n++)
        for (int k = 0; k < C; k++)
            check_exact("embedding_forward", "sum over shards", (size_t)n * C + k,
                        sum[(size_t)n * C + k], table[(size_t)tok[n] * C + k]);

    /* a token id outside the whole vocabulary (-1) gives zeros and no gradient */
    int bad[2] = {-1, V + nshards * nv};
    float o2[2 * 64], d2[64 * 64];
    if (C <= 64 && nv <= 64) {
        fill_const(o2, (size_t)2 * C, SENTINEL);
        memset(d2, 0, sizeof d2);
        embedding_forward(o2, bad, table, 2, C, 0, nv);
        embedding_backward(d2, R, bad, 2, C, 0, nv);
        for (int j = 0; j < 2 * C; j++)
            check_exact("embedding_forward", "out(token -1 or >= V)", j, o2[j], 0.0);
        for (int j = 0; j < nv * C; j++)
            check_exact("embedding_backward", "dtable(token -1 or >= V)", j, d2[j], 0.0);
    }
    free(tok), free(table), free(R), free(sum), free(out);
}

/* ---------------------------------------------------------------- cross-entropy */

typedef struct {
    int N, V;
    const int *tgt;
    const float *g;
    double *logits; /* (N, V), the valid vocabulary only */
} ce_ctx;

static double ref_logp(const double *l, int V, int t, double *mx, double *se)
{
    double m = -INFINITY, s = 0.0;
    for (int c = 0; c < V; c++) m = fmax(m, l[c]);
    for (int c = 0; c < V; c++) s += exp(l[c] - m);
    if (mx) *mx = m;
    if (se) *se = s;
    return l[t] - m - log(s);
}

static double ce_loss(void *p)
{
    ce_ctx *c = p;
    double L = 0.0;
    for (int n = 0; n < c->N; n++)
        if (c->tgt[n] >= 0)
            L += c->g[n] * ref_logp(c->logits + (size_t)n * c->V, c->V, c->tgt[n], NULL, NULL);
    return L;
}

/* Runs the local sweep, the caller's combine and the backward over `nshards` shards of
 * nv columns each (the vocabulary V padded to nshards * nv), checks every pass against
 * the reference and returns the combined dlogits as (N, V) in dfull. full: (N, V) logits. */
static void ce_sharded(float *dfull, const float *full, const int *tgt, const float *g, int N,
                       int V, int nshards, int nv)
{
    snprintf(current_case, sizeof current_case, "cross-entropy N=%d V=%d shards=%d nv=%d", N, V,
             nshards, nv);
    size_t ns = (size_t)N * nv;
    float *lg = falloc(ns * nshards), *lmax = falloc((size_t)N * nshards);
    float *se = falloc((size_t)N * nshards), *tl = falloc((size_t)N * nshards);
    float *gmax = falloc(N), *gse = falloc(N), *gtl = falloc(N), *dl = falloc(ns);
    int *nvalid = lethe_malloc((size_t)nshards * sizeof *nvalid, "nvalid");
    /* padding columns hold a huge logit: if one were counted, max and sumexp would show it */
    for (int s = 0; s < nshards; s++) {
        int v0 = s * nv;
        nvalid[s] = V - v0 < 0 ? 0 : (V - v0 < nv ? V - v0 : nv);
        for (int n = 0; n < N; n++)
            for (int c = 0; c < nv; c++)
                lg[s * ns + (size_t)n * nv + c] =
                    c < nvalid[s] ? full[(size_t)n * V + v0 + c] : 1e4f;
    }
    for (int s = 0; s < nshards; s++) {
        int v0 = s * nv;
        fill_const(se + (size_t)s * N, N, SENTINEL);
        fill_const(tl + (size_t)s * N, N, SENTINEL);
        ce_local_stats(lmax + (size_t)s * N, se + (size_t)s * N, tl + (size_t)s * N, lg + s * ns,
                       tgt, N, nv, nvalid[s], v0);
        for (int n = 0; n < N; n++) {
            float m = -INFINITY;
            for (int c = 0; c < nvalid[s]; c++) m = fmaxf(m, lg[s * ns + (size_t)n * nv + c]);
            check_exact("ce_local_stats", nvalid[s] ? "lmax" : "lmax(empty shard = -INF)", n,
                        lmax[(size_t)s * N + n], m);
            double ref = 0.0;
            for (int c = 0; c < nvalid[s]; c++)
                ref += exp((double)lg[s * ns + (size_t)n * nv + c] - m);
            check("ce_local_stats", "sumexp", n, se[(size_t)s * N + n], ref, 0.0, TOL_FWD);
            int in = tgt[n] >= v0 && tgt[n] < v0 + nvalid[s];
            check_exact("ce_local_stats",
                        in ? "tlogit" : (tgt[n] < 0 ? "tlogit(target -1)" : "tlogit(elsewhere)"), n,
                        tl[(size_t)s * N + n], in ? lg[s * ns + (size_t)n * nv + tgt[n] - v0] : 0);
        }
    }
    for (int n = 0; n < N; n++) { /* the caller's all-reduce(max) and rescale to it */
        gmax[n] = -INFINITY;
        for (int s = 0; s < nshards; s++) gmax[n] = fmaxf(gmax[n], lmax[(size_t)s * N + n]);
        for (int s = 0; s < nshards; s++)
            if (lmax[(size_t)s * N + n] != gmax[n])
                se[(size_t)s * N + n] *= expf(lmax[(size_t)s * N + n] - gmax[n]);
    }
    for (int n = 0; n < N; n++) { /* the caller's all-reduce(sum) and pass 3 */
        gse[n] = 0.0f;
        gtl[n] = 0.0f;
        for (int s = 0; s < nshards; s++) {
            gse[n] += se[(size_t)s * N + n];
            gtl[n] += tl[(size_t)s * N + n];
        }
        if (tgt[n] < 0) continue;
        double m, sum, *l = to_double(full + (size_t)n * V, V);
        double ref = ref_logp(l, V, tgt[n], &m, &sum);
        float logp = gtl[n] - gmax[n] - logf(gse[n]);
        check("ce combined", "logp", n, logp, ref, fabs(l[tgt[n]]) + fabs(m) + fabs(log(sum)),
              TOL_FWD);
        free(l);
    }
    for (int s = 0; s < nshards; s++) {
        int v0 = s * nv;
        fill_const(dl, ns, SENTINEL);
        ce_backward(dl, lg + s * ns, gmax, gse, tgt, g, N, nv, nvalid[s], v0);
        for (int n = 0; n < N; n++)
            for (int c = 0; c < nv; c++) {
                float d = dl[(size_t)n * nv + c];
                if (c >= nvalid[s])
                    check_exact("ce_backward", "dlogits(padding)", (size_t)n * nv + c, d, 0.0);
                else
                    dfull[(size_t)n * V + v0 + c] = d;
            }
    }
    free(lg), free(lmax), free(se), free(tl), free(gmax), free(gse), free(gtl), free(dl);
    free(nvalid);
}

void test_ce(int N, int V)
{
    size_t n = (size_t)N * V;
    float *full = falloc(n), *g = falloc(N), *d1 = falloc(n), *ds = falloc(n);
    int *tgt = lethe_malloc((size_t)N * sizeof *tgt, "targets");
    fill(full, n, -4, 4);
    for (int c = 0; c < V; c++) /* a row far from 0: exp without the max would overflow */
        full[(size_t)(N - 1) * V + c] += 100.0f;
    fill(g, N, -1, 1);
    for (int i = 0; i < N; i++) tgt[i] = (int)(rng_u64() % (uint64_t)V);
    tgt[0] = V - 1; /* the last valid column, next to the padding */
    if (N > 2) {
        tgt[1] = -1; /* no target: the caller gives it weight 0 */
        g[1] = 0.0f;
    }

    /* single shard, no padding: the result every split is compared with */
    ce_sharded(d1, full, tgt, g, N, V, 1, V);
    ce_ctx ctx = {N, V, tgt, g, to_double(full, n)};
    snprintf(current_case, sizeof current_case, "cross-entropy N=%d V=%d single shard", N, V);
    check_grad("ce_backward", "dlogits", d1, ctx.logits, n, ce_loss, &ctx, 4096);

    /* nv, nshards: padded single shard, 2 and 3 shards, and 4 shards whose last one holds
     * only padding (nvalid = 0) */
    int splits[][2] = {{1, V + 1}, {2, (V + 1) / 2}, {3, (V + 2) / 3}, {4, (V + 2) / 3}};
    for (size_t k = 0; k < sizeof splits / sizeof splits[0]; k++) {
        int S = splits[k][0], nv = splits[k][1];
        if ((long)S * nv < V) continue;
        ce_sharded(ds, full, tgt, g, N, V, S, nv);
        for (int i = 0; i < N; i++) {
            double m, sum;
            ref_logp(ctx.logits + (size_t)i * V, V, 0, &m, &sum);
            for (int c = 0; c < V; c++) {
                size_t j = (size_t)i * V + c;
                /* the scale is the size of the two terms g*onehot and g*softmax */
                double p = exp(ctx.logits[j] - m) / sum;
                double mag = fabs((double)g[i]) * ((c == tgt[i]) + p);
                check("ce_backward", "dlogits(shards vs single)", j, ds[j], d1[j], mag, TOL_FWD);
            }
        }
    }
    free(full), free(g), free(d1), free(ds), free(tgt), free(ctx.logits);
}

/* ce_fused_nll against the three passes it fuses (ce_local_stats, the caller's logp on one
 * shard, ce_backward with g[n] = w for each target), bit for bit, and against the double
 * reference; nv > V puts padding columns (a huge logit) after the vocabulary. */
void test_ce_fused(int N, int V, int nv)
{
    snprintf(current_case, sizeof current_case, "fused cross-entropy N=%d V=%d nv=%d", N, V, nv);
    size_t n = (size_t)N * nv;
    float *lg = falloc(n), *st = falloc(4 * (size_t)N), *lp = falloc(N), *g = falloc(N);
    float *d1 = falloc(n), *d2 = falloc(n), *lmax = falloc(N), *se = falloc(N), *tl = falloc(N);
    int *tgt = lethe_malloc((size_t)N * sizeof *tgt, "targets");
    fill(lg, n, -4, 4);
    for (int i = 0; i < N; i++)
        for (int c = V; c < nv; c++) lg[(size_t)i * nv + c] = 1e4f;
    for (int c = 0; c < V; c++) lg[(size_t)(N - 1) * nv + c] += 100.0f;
    for (int i = 0; i < N; i++) tgt[i] = (int)(rng_u64() % (uint64_t)V);
    tgt[0] = V - 1;
    if (N > 2) tgt[1] = -1;
    const float ws[] = {-0.37f, 0.0f, 1.5f};
    for (size_t k = 0; k < sizeof ws / sizeof ws[0]; k++) {
        float w = ws[k];
        for (int i = 0; i < N; i++) g[i] = tgt[i] >= 0 ? w : 0.0f;
        ce_local_stats(lmax, se, tl, lg, tgt, N, nv, V, 0);
        fill_const(d1, n, SENTINEL);
        ce_backward(d1, lg, lmax, se, tgt, g, N, nv, V, 0);
        fill_const(st, 4 * (size_t)N, SENTINEL);
        fill_const(d2, n, SENTINEL);
        ce_fused_nll(lp, st, d2, lg, tgt, w, N, nv, V);
        for (int i = 0; i < N; i++) {
            check_exact("ce_fused_nll", "gmax", i, st[i], lmax[i]);
            check_exact("ce_fused_nll", "sumexp", i, st[N + i], se[i]);
            check_exact("ce_fused_nll", "tlogit", i, st[2 * N + i], tl[i]);
            check_exact("ce_fused_nll", "soft mass", i, st[3 * N + i], 0.0);
            float want = tgt[i] < 0 ? 0.0f : tl[i] - (lmax[i] + logf(se[i]));
            check_exact("ce_fused_nll", "logp", i, lp[i], want);
            if (tgt[i] >= 0) {
                double m, sum, *l = to_double(lg + (size_t)i * nv, V);
                double ref = ref_logp(l, V, tgt[i], &m, &sum);
                check("ce_fused_nll", "logp(reference)", i, lp[i], ref,
                      fabs(l[tgt[i]]) + fabs(m) + fabs(log(sum)), TOL_FWD);
                for (int c = 0; c < V; c++) {
                    double p = exp(l[c] - m) / sum;
                    check("ce_fused_nll", "dlogits(reference)", (size_t)i * nv + c,
                          d2[(size_t)i * nv + c], w * ((c == tgt[i]) - p),
                          fabs((double)w) * ((c == tgt[i]) + p), TOL_FWD);
                }
                free(l);
            }
        }
        check_exact("ce_fused_nll", "dlogits differing in bits from ce_backward", k,
                    bits_differing(d1, d2, n), 0.0);
        /* in place (the gradient over the logits): the same bits */
        memcpy(d1, lg, n * sizeof *d1);
        ce_fused_nll(g, st, d1, d1, tgt, w, N, nv, V);
        check_exact("ce_fused_nll", "in place: values differing in bits", k,
                    bits_differing(d1, d2, n) + bits_differing(g, lp, N), 0.0);
    }
    free(lg), free(st), free(lp), free(g), free(d1), free(d2), free(lmax), free(se), free(tl);
    free(tgt);
}
