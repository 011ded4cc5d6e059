/* tests/test_kernels_dense.c — the kernels that work on each position (row or element) alone:
 * matmul (forward, both backward products, NULL skipping one), rmsnorm (rstd and out, with
 * a row small enough that eps shows), swiglu (random, saturated and NaN/Inf gates),
 * add_inplace (exact) and sum_squares (against a double sum, around its block lengths). Each
 * forward is compared with a double reference, each backward with finite differences and
 * with itself called twice, under the tolerances of tests/test_kernels.c. */
#include "test_kernels.h"
#include "model/kernels.h"
#include "mpi/fatal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- matmul */

typedef struct {
    int N, C, OC;
    double *inp, *w, *R;
} matmul_ctx;

static double matmul_loss(void *p)
{
    matmul_ctx *c = p;
    double L = 0.0;
    for (int n = 0; n < c->N; n++)
        for (int o = 0; o < c->OC; o++) {
            double s = 0.0;
            for (int k = 0; k < c->C; k++)
                s += c->inp[(size_t)n * c->C + k] * c->w[(size_t)o * c->C + k];
            L += s * c->R[(size_t)n * c->OC + o];
        }
    return L;
}

void test_matmul(int N, int C, int OC, size_t fd_entries)
{
    snprintf(current_case, sizeof current_case, "matmul N=%d C=%d OC=%d", N, C, OC);
    size_t ni = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
    float *inp = falloc(ni), *w = falloc(nw), *out = falloc(no), *R = falloc(no);
    fill(inp, ni, -1, 1);
    fill(w, nw, -1, 1);
    fill(R, no, -1, 1);
    fill_const(out, no, SENTINEL);
    matmul_forward(out, inp, w, N, C, OC);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = 0.0, mag = 0.0;
            for (int k = 0; k < C; k++) {
                double t = (double)inp[(size_t)n * C + k] * w[(size_t)o * C + k];
                s += t;
                mag += fabs(t);
            }
            check("matmul_forward", "out", (size_t)n * OC + o, out[(size_t)n * OC + o], s, mag,
                  TOL_FWD);
        }

    float *dinp = falloc(ni), *dw = falloc(nw), *dinp2 = falloc(ni), *dw2 = falloc(nw);
    matmul_backward(dinp, dw, R, inp, w, N, C, OC);
    matmul_ctx ctx = {N, C, OC, to_double(inp, ni), to_double(w, nw), to_double(R, no)};
    check_grad("matmul_backward", "dinp", dinp, ctx.inp, ni, matmul_loss, &ctx, fd_entries);
    check_grad("matmul_backward", "dweight", dw, ctx.w, nw, matmul_loss, &ctx, fd_entries);
    memcpy(dinp2, dinp, ni * sizeof *dinp);
    memcpy(dw2, dw, nw * sizeof *dw);
    matmul_backward(dinp2, dw2, R, inp, w, N, C, OC);
    check_twice("matmul_backward", "dinp", dinp, dinp2, ni);
    check_twice("matmul_backward", "dweight", dw, dw2, nw);

    /* NULL skips one product; the other must be the same as with both requested. */
    float *d1 = falloc(ni), *d2 = falloc(nw);
    matmul_backward(d1, NULL, R, inp, w, N, C, OC);
    matmul_backward(NULL, d2, R, inp, w, N, C, OC);
    for (size_t i = 0; i < ni; i++)
        check("matmul_backward", "dinp(dweight=NULL)", i, d1[i], dinp[i], 0.0, TOL_TWICE);
    for (size_t i = 0; i < nw; i++)
        check("matmul_backward", "dweight(dinp=NULL)", i, d2[i], dw[i], 0.0, TOL_TWICE);

    free(inp), free(w), free(out), free(R), free(dinp), free(dw), free(dinp2), free(dw2);
    free(d1), free(d2), free(ctx.inp), free(ctx.w), free(ctx.R);
}

/* A decoding step's rows (N <= 8, matmul_forward's skinny path): every row is the
 * same, bit for bit, whether computed alone or with up to 7 others, as generation's
 * batching promises; and N = 8 and N = 9 (sgemm) agree to the forward tolerance. */
void test_matmul_rows(int C, int OC)
{
    snprintf(current_case, sizeof current_case, "matmul rows C=%d OC=%d", C, OC);
    const int N = 9;
    float *inp = falloc((size_t)N * C), *w = falloc((size_t)OC * C);
    float *all = falloc((size_t)N * OC), *part = falloc((size_t)N * OC);
    fill(inp, (size_t)N * C, -1, 1);
    fill(w, (size_t)OC * C, -1, 1);
    matmul_forward(all, inp, w, 8, C, OC);
    for (int n = 1; n <= 8; n++) { /* rows 8-n..7 as a batch of n */
        const float *x = inp + (size_t)(8 - n) * C;
        fill_const(part, (size_t)n * OC, SENTINEL);
        matmul_forward(part, x, w, n, C, OC);
        for (size_t i = 0; i < (size_t)n * OC; i++)
            check_exact("matmul_forward", "row alone or batched", i, part[i],
                        all[(size_t)(8 - n) * OC + i]);
    }
    matmul_forward(part, inp, w, N, C, OC); /* sgemm */
    for (size_t i = 0; i < (size_t)8 * OC; i++) {
        double mag = 0.0;
        for (int k = 0; k < C; k++)
            mag += fabs((double)inp[i / OC * C + k] * w[(i % OC) * C + k]);
        check("matmul_forward", "skinny vs sgemm", i, all[i], part[i], mag, TOL_FWD);
    }
    free(inp), free(w), free(all), free(part);
}

/* ---------------------------------------------------------------- rmsnorm */

typedef struct {
    int N, C;
    double eps, *inp, *w, *R;
} rms_ctx;

static double ref_rstd(const double *x, int C, double eps)
{
    double ss = 0.0;
    for (int c = 0; c < C; c++) ss += x[c] * x[c];
    return 1.0 / sqrt(ss / C + eps);
}

static double rms_loss(void *p)
{
    rms_ctx *c = p;
    double L = 0.0;
    for (int n = 0; n < c->N; n++) {
        const double *x = c->inp + (size_t)n * c->C;
        double r = ref_rstd(x, c->C, c->eps);
        for (int k = 0; k < c->C; k++) L += x[k] * r * c->w[k] * c->R[(size_t)n * c->C + k];
    }
    return L;
}

void test_rmsnorm(int N, int C)
{
    snprintf(current_case, sizeof current_case, "rmsnorm N=%d C=%d", N, C);
    const float eps = 1e-5f;
    size_t n = (size_t)N * C;
    float *inp = falloc(n), *w = falloc(C), *out = falloc(n), *rstd = falloc(N), *R = falloc(n);
    fill(inp, n, -2, 2);
    /* a row of size 1e-2: mean x^2 ~ 3 eps, so where eps enters the formula shows */
    for (int c = 0; c < C; c++) inp[c] *= 0.005f;
    fill(w, C, 0.5f, 1.5f);
    fill(R, n, -1, 1);
    fill_const(out, n, SENTINEL);
    fill_const(rstd, N, SENTINEL);
    rmsnorm_forward(out, rstd, inp, w, N, C, eps);
    rms_ctx ctx = {N, C, eps, to_double(inp, n), to_double(w, C), to_double(R, n)};
    for (int i = 0; i < N; i++) {
        double r = ref_rstd(ctx.inp + (size_t)i * C, C, eps);
        check("rmsnorm_forward", "rstd", i, rstd[i], r, 0.0, TOL_FWD);
        for (int k = 0; k < C; k++) {
            size_t j = (size_t)i * C + k;
            check("rmsnorm_forward", "out", j, out[j], ctx.inp[j] * r * ctx.w[k], 0.0, TOL_FWD);
        }
    }
    float *dinp = falloc(n), *dw = falloc(C), *dinp2 = falloc(n), *dw2 = falloc(C);
    rmsnorm_backward(dinp, dw, R, inp, w, rstd, N, C);
    check_grad("rmsnorm_backward", "dinp", dinp, ctx.inp, n, rms_loss, &ctx, 4096);
    check_grad("rmsnorm_backward", "dweight", dw, ctx.w, C, rms_loss, &ctx, 4096);
    memcpy(dinp2, dinp, n * sizeof *dinp);
    memcpy(dw2, dw, C * sizeof *dw);
    rmsnorm_backward(dinp2, dw2, R, inp, w, rstd, N, C);
    check_twice("rmsnorm_backward", "dinp", dinp, dinp2, n);
    check_twice("rmsnorm_backward", "dweight", dw, dw2, C);
    free(inp), free(w), free(out), free(rstd), free(R), free(dinp), free(dw), free(dinp2);
    free(dw2), free(ctx.inp), free(ctx.w), free(ctx.R);
}

/* ---------------------------------------------------------------- swiglu */

typedef struct {
    size_t N;
    double *g, *u, *R;
} swiglu_ctx;

static double silu(double g)
{
    return g / (1.0 + exp(-g));
}

static double swiglu_loss(void *p)
{
    swiglu_ctx *c = p;
    double L = 0.0;
    for (size_t i = 0; i < c->N; i++) L += silu(c->g[i]) * c->u[i] * c->R[i];
    return L;
}

void test_swiglu(size_t N)
{
    snprintf(current_case, sizeof current_case, "swiglu N=%zu", N);
    float *g = falloc(N), *u = falloc(N), *out = falloc(N), *R = falloc(N);
    fill(g, N, -6, 6);
    fill(u, N, -2, 2);
    fill(R, N, -1, 1);
    fill_const(out, N, SENTINEL);
    swiglu_forward(out, g, u, N);
    swiglu_ctx ctx = {N, to_double(g, N), to_double(u, N), to_double(R, N)};
    for (size_t i = 0; i < N; i++)
        check("swiglu_forward", "out", i, out[i], silu(ctx.g[i]) * ctx.u[i], 0.0, TOL_FWD);
    float *dg = falloc(N), *du = falloc(N), *dg2 = falloc(N), *du2 = falloc(N);
    fill_const(dg, N, SENTINEL);
    fill_const(du, N, SENTINEL);
    swiglu_backward(dg, du, R, g, u, N);
    check_grad("swiglu_backward", "dgate", dg, ctx.g, N, swiglu_loss, &ctx, 4096);
    check_grad("swiglu_backward", "dup", du, ctx.u, N, swiglu_loss, &ctx, 4096);
    /* it overwrites: a second call onto the first's results gives the same bits */
    memcpy(dg2, dg, N * sizeof *dg);
    memcpy(du2, du, N * sizeof *du);
    swiglu_backward(dg2, du2, R, g, u, N);
    for (size_t i = 0; i < N; i++) {
        check("swiglu_backward", "dgate(again)", i, dg2[i], dg[i], 0.0, 0.0);
        check("swiglu_backward", "dup(again)", i, du2[i], du[i], 0.0, 0.0);
    }
    free(g), free(u), free(out), free(R), free(dg), free(du), free(dg2), free(du2);
    free(ctx.g), free(ctx.u), free(ctx.R);
}

/* Saturated gates (a pre-activation of +-100 happens in a diverging run) must give finite,
 * correct values: silu(-100) ~ -4e-42, silu(100) = 100; sigmoid must not form inf/inf. */
void test_swiglu_extreme(void)
{
    snprintf(current_case, sizeof current_case, "swiglu saturated gates");
    enum { N = 8 };
    float g[N] = {-1000, -200, -100, -89, 89, 100, 200, 1000}, u[N], out[N], R[N];
    float dg[N] = {0}, du[N] = {0};
    fill_const(u, N, 1.0f);
    fill_const(R, N, 1.0f);
    swiglu_forward(out, g, u, N);
    swiglu_backward(dg, du, R, g, u, N);
    for (int i = 0; i < N; i++) {
        double s = 1.0 / (1.0 + exp(-(double)g[i]));
        /* values of order 1e-42 are fp32 denormals: judged with an absolute floor of 1 */
        check("swiglu_forward", "out(saturated)", i, out[i], g[i] * s, 1.0, TOL_FWD);
        check("swiglu_backward", "dgate(saturated)", i, dg[i], s * (1.0 + g[i] * (1.0 - s)), 1.0,
              TOL_FWD);
        check("swiglu_backward", "dup(saturated)", i, du[i], g[i] * s, 1.0, TOL_FWD);
    }
}

/* NaN and Inf gates (a model whose weights went bad): NaN propagates, the finite lanes of
 * the same vector are unchanged, and nothing undefined happens on the way (fast_expf once
 * turned NaN into INT_MIN and overflowed; the sanitizer build runs this test). */
void test_swiglu_nonfinite(void)
{
    snprintf(current_case, sizeof current_case, "swiglu NaN/Inf gates");
    enum { N = 16 };
    float g[N], u[N], out[N], R[N], dg[N] = {0}, du[N] = {0};
    for (int i = 0; i < N; i++) g[i] = 0.25f * (float)(i - 8);
    g[1] = NAN, g[5] = INFINITY, g[9] = -INFINITY, g[13] = -NAN;
    fill_const(u, N, 1.0f);
    fill_const(R, N, 1.0f);
    swiglu_forward(out, g, u, N);
    swiglu_backward(dg, du, R, g, u, N);
    for (int i = 0; i < N; i++) {
        if (i == 1 || i == 13) {
            if (!isnan(out[i]) || !isnan(dg[i]) || !isnan(du[i])) {
                fprintf(stderr, "FAIL swiglu NaN gate %d: out %g dgate %g dup %g, want NaN\n", i,
                        out[i], dg[i], du[i]);
                total_fails++;
            }
        } else if (i == 5) {
            check_exact("swiglu_forward", "out(+inf)", i, out[i], INFINITY);
        } else if (i != 9) { /* -inf * sigmoid(-inf) = -inf * 0: NaN is as right as 0 */
            double s = 1.0 / (1.0 + exp(-(double)g[i]));
            check("swiglu_forward", "out(beside NaN)", i, out[i], g[i] * s, 1.0, TOL_FWD);
        }
    }
}

/* ---------------------------------------------------------------- add_inplace */

void test_add_inplace(size_t N)
{
    snprintf(current_case, sizeof current_case, "add_inplace N=%zu", N);
    float *o = falloc(N), *a = falloc(N), *ref = falloc(N);
    fill(o, N, -1, 1);
    fill(a, N, -1, 1);
    for (size_t i = 0; i < N; i++) ref[i] = o[i] + a[i];
    add_inplace(o, a, N);
    for (size_t i = 0; i < N; i++) check_exact("add_inplace", "out", i, o[i], ref[i]);
    free(o), free(a), free(ref);
}

/* ---------------------------------------------------------------- sum_squares */

/* Against a double-precision sum: lengths around the 16-lane and 4096-element blocks,
 * values of mixed magnitude; relative error within a few fp32 roundings. */
void test_sum_squares(size_t N)
{
    snprintf(current_case, sizeof current_case, "sum_squares N=%zu", N);
    float *x = falloc(N ? N : 1);
    fill(x, N, -3, 3);
    for (size_t i = 0; i < N; i += 7) x[i] *= 1e-3f;
    double ref = 0.0;
    for (size_t i = 0; i < N; i++) ref += (double)x[i] * x[i];
    check("sum_squares", "sum", N, sum_squares(x, N), ref, 0.0, 1e-6);
    free(x);
}
