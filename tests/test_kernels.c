/* tests/test_kernels.c — an independent check of every kernel in model/kernels.h.
 *
 * Each fp32 kernel is compared with a double-precision reference written here straight
 * from the math (no code shared with model/kernels.c):
 *   forward   |got - ref| <= 1e-5 * max(|ref|, mag), where mag is the sum of the absolute
 *             values of the terms the reference added (so an output that cancels to
 *             nearly zero is judged against the size of what was summed, the accuracy
 *             fp32 can promise); exact (tol 0) where the kernel only copies or selects.
 *             Attention probabilities exp(s - m) are relative to |p| (1 + 2 A), A the
 *             largest sum_i |q_i k_i| / sqrt(hd) of the row: exp turns the score's absolute
 *             error into p's relative error.
 *   backward  L = sum(out * R) for a fixed random R; every analytic gradient entry is
 *             compared with a central difference (h = 1e-5) of the double reference:
 *             |got - fd| <= 1e-4 * max(|fd|, 0.1 * max_j |fd_j|), i.e. 1e-4 relative
 *             with an absolute floor of 1e-5 times the largest entry of that gradient.
 *             The FD error in double is about 1e-10, far below the tolerance.
 *   twice     a backward called twice gives 2x the once-result:
 *             |g2 - 2 g1| <= 1e-6 * max_j |2 g1_j| (accumulation, not overwrite).
 * Sizes are small, non-square, often not multiples of 8; attention runs GQA (NH=4,
 * NKV=2), MQA and NH=NKV at T=1 and T=7. The RNG has a fixed seed. Every failure
 * prints the kernel, the array, the index and both values; the program exits 1 if any
 * check failed and prints the largest error of every check. */
#include "model/kernels.h"
#include "mpi/fatal.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL_FWD 1e-5
#define TOL_FD 1e-4
#define TOL_TWICE 1e-6
#define FD_H 1e-5
/* A value no kernel produces: forward outputs are pre-filled with it to prove that the
 * kernel overwrites every entry it owns, and padding is filled with it to prove that
 * nothing outside the contract is written. */
#define SENTINEL 12345.678f

/* ---------------------------------------------------------------- rng and checks */

static uint64_t rng_state = 0x243f6a8885a308d3ull;

static uint64_t rng_u64(void)
{
    /* splitmix64: fixed seed, same numbers on every machine */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float frand(float lo, float hi)
{
    return lo + (hi - lo) * (float)((rng_u64() >> 40) * (1.0 / 16777216.0));
}

static void fill(float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) x[i] = frand(lo, hi);
}

static void fill_const(float *x, size_t n, float v)
{
    for (size_t i = 0; i < n; i++) x[i] = v;
}

static double *to_double(const float *x, size_t n)
{
    double *d = lethe_malloc(n * sizeof *d, "test double copy");
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

static float *falloc(size_t n)
{
    return lethe_calloc(n, sizeof(float), "test float array");
}

static double *dalloc(size_t n)
{
    return lethe_calloc(n, sizeof(double), "test double array");
}

typedef struct {
    char name[128];
    double tol, max_err;
    long checks, fails;
} record;

static record records[128];
static int nrecords;
static long total_fails;
static char current_case[160]; /* the sizes of the case under test, printed with failures */

static record *find_record(const char *kernel, const char *what, double tol)
{
    char name[128];
    snprintf(name, sizeof name, "%s %s", kernel, what);
    for (int i = 0; i < nrecords; i++)
        if (strcmp(records[i].name, name) == 0) return &records[i];
    if (nrecords == (int)(sizeof records / sizeof records[0]))
        lethe_fatal("test_kernels: more than %d checks", nrecords);
    record *r = &records[nrecords++];
    snprintf(r->name, sizeof r->name, "%s", name);
    r->tol = tol;
    return r;
}

/* err = |got - ref| / max(|ref|, scale); a zero denominator demands equality. */
static void check(const char *kernel, const char *what, size_t idx, double got, double ref,
                  double scale, double tol)
{
    record *r = find_record(kernel, what, tol);
    double denom = fmax(fabs(ref), scale), err;
    if (got == ref) /* also equal infinities, e.g. the -INF max of an empty shard */
        err = 0.0;
    else if (!isfinite(got) || !isfinite(ref))
        err = INFINITY;
    else if (denom == 0.0)
        err = got == ref ? 0.0 : INFINITY;
    else
        err = fabs(got - ref) / denom;
    r->checks++;
    if (!(err <= r->max_err)) r->max_err = err;
    if (!(err <= tol)) { /* a NaN error fails too */
        r->fails++;
        total_fails++;
        if (r->fails <= 5)
            printf("FAIL %s %s[%zu]: got %.9g expected %.9g (err %.3g > tol %.0e) [%s]\n", kernel,
                   what, idx, got, ref, err, tol, current_case);
    }
}

/* A plain true/false property (a row sum, an untouched pad) reported like a value. */
static void check_exact(const char *kernel, const char *what, size_t idx, double got, double ref)
{
    check(kernel, what, idx, got, ref, 0.0, 0.0);
}

typedef double (*loss_fn)(void *ctx);

/* Compares the analytic gradient g (n entries, the derivative of the context's loss with
 * respect to param) with central differences of the double reference. At most max_entries
 * entries are checked (a random sample when n is larger). */
static void check_grad(const char *kernel, const char *what, const float *g, double *param,
                       size_t n, loss_fn loss, void *ctx, size_t max_entries)
{
    size_t m = n < max_entries ? n : max_entries;
    size_t *idx = lethe_malloc(m * sizeof *idx, "fd index");
    double *fd = dalloc(m), gmax = 0.0;
    for (size_t j = 0; j < m; j++) {
        size_t i = m == n ? j : (size_t)(rng_u64() % n);
        double save = param[i];
        param[i] = save + FD_H;
        double lp = loss(ctx);
        param[i] = save - FD_H;
        double lm = loss(ctx);
        param[i] = save;
        idx[j] = i;
        fd[j] = (lp - lm) / (2.0 * FD_H);
        gmax = fmax(gmax, fabs(fd[j]));
    }
    char w[48];
    snprintf(w, sizeof w, "%s(FD)", what);
    for (size_t j = 0; j < m; j++) check(kernel, w, idx[j], g[idx[j]], fd[j], 0.1 * gmax, TOL_FD);
    free(idx);
    free(fd);
}

/* g2 (after two backward calls from zero) must be 2 * g1 (after one). */
static void check_twice(const char *kernel, const char *what, const float *g1, const float *g2,
                        size_t n)
{
    double gmax = 0.0;
    for (size_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(2.0 * g1[i]));
    char w[48];
    snprintf(w, sizeof w, "%s(2x)", what);
    for (size_t i = 0; i < n; i++) check(kernel, w, i, g2[i], 2.0 * g1[i], gmax, TOL_TWICE);
}

static double dot_rd(const double *out, const double *R, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += out[i] * R[i];
    return s;
}

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

static void test_matmul(int N, int C, int OC, size_t fd_entries)
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

static void test_rmsnorm(int N, int C)
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

static void test_rope(int B, int T, int nh, int hd, int stride, float theta)
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

static void test_attention(int B, int T, int NH, int NKV, int hd, float amp)
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

static void test_swiglu(size_t N)
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
    swiglu_backward(dg, du, R, g, u, N);
    check_grad("swiglu_backward", "dgate", dg, ctx.g, N, swiglu_loss, &ctx, 4096);
    check_grad("swiglu_backward", "dup", du, ctx.u, N, swiglu_loss, &ctx, 4096);
    memcpy(dg2, dg, N * sizeof *dg);
    memcpy(du2, du, N * sizeof *du);
    swiglu_backward(dg2, du2, R, g, u, N);
    check_twice("swiglu_backward", "dgate", dg, dg2, N);
    check_twice("swiglu_backward", "dup", du, du2, N);
    free(g), free(u), free(out), free(R), free(dg), free(du), free(dg2), free(du2);
    free(ctx.g), free(ctx.u), free(ctx.R);
}

/* Saturated gates (a pre-activation of +-100 happens in a diverging run) must give finite,
 * correct values: silu(-100) ~ -4e-42, silu(100) = 100; sigmoid must not form inf/inf. */
static void test_swiglu_extreme(void)
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
static void test_swiglu_nonfinite(void)
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
static void test_embedding(int V, int C, int N, int nshards)
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

/* Runs the three passes over `nshards` shards of nv columns each (the vocabulary V padded
 * to nshards * nv), checks every pass against the reference and returns the combined
 * dlogits as (N, V) in dfull. full: (N, V) logits. */
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
        ce_local_max(lmax + (size_t)s * N, lg + s * ns, N, nv, nvalid[s]);
        for (int n = 0; n < N; n++) {
            float m = -INFINITY;
            for (int c = 0; c < nvalid[s]; c++) m = fmaxf(m, lg[s * ns + (size_t)n * nv + c]);
            check_exact("ce_local_max", nvalid[s] ? "lmax" : "lmax(empty shard = -INF)", n,
                        lmax[(size_t)s * N + n], m);
        }
    }
    for (int n = 0; n < N; n++) { /* the caller's all-reduce(max) */
        gmax[n] = -INFINITY;
        for (int s = 0; s < nshards; s++) gmax[n] = fmaxf(gmax[n], lmax[(size_t)s * N + n]);
    }
    for (int s = 0; s < nshards; s++) {
        int v0 = s * nv;
        fill_const(se + (size_t)s * N, N, SENTINEL);
        fill_const(tl + (size_t)s * N, N, SENTINEL);
        ce_local_sumexp(se + (size_t)s * N, tl + (size_t)s * N, lg + s * ns, gmax, tgt, N, nv,
                        nvalid[s], v0);
        for (int n = 0; n < N; n++) {
            double ref = 0.0;
            for (int c = 0; c < nvalid[s]; c++)
                ref += exp((double)lg[s * ns + (size_t)n * nv + c] - gmax[n]);
            check("ce_local_sumexp", "sumexp", n, se[(size_t)s * N + n], ref, 0.0, TOL_FWD);
            int in = tgt[n] >= v0 && tgt[n] < v0 + nvalid[s];
            check_exact("ce_local_sumexp",
                        in ? "tlogit" : (tgt[n] < 0 ? "tlogit(target -1)" : "tlogit(elsewhere)"), n,
                        tl[(size_t)s * N + n], in ? lg[s * ns + (size_t)n * nv + tgt[n] - v0] : 0);
        }
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

static void test_ce(int N, int V)
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

/* ---------------------------------------------------------------- add_inplace */

static void test_add_inplace(size_t N)
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
static void test_sum_squares(size_t N)
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

/* ---------------------------------------------------------------- main */

int main(void)
{
    /* (N, C, OC): square, non-square, 1, not multiples of 8, and one large enough for a
     * blocked or BLAS path, whose gradients are checked on a random sample of entries */
    int mm[][3] = {{1, 1, 1}, {5, 7, 3}, {8, 16, 8}, {13, 37, 11}, {3, 64, 40}, {48, 130, 72}};
    for (size_t i = 0; i < sizeof mm / sizeof mm[0]; i++)
        test_matmul(mm[i][0], mm[i][1], mm[i][2], i + 1 < sizeof mm / sizeof mm[0] ? 4096 : 300);

    /* C = 1 is left out: there dinp = w R rstd (1 - x^2 rstd^2) ~ eps / x^2 is all
     * cancellation, which fp32 cannot give to 1e-4 */
    int rn[][2] = {{1, 2}, {3, 8}, {5, 37}, {4, 64}};
    for (size_t i = 0; i < sizeof rn / sizeof rn[0]; i++) test_rmsnorm(rn[i][0], rn[i][1]);

    /* (B, T, nh, hd, stride): stride > nh*hd is a row of a fused or padded buffer */
    int rp[][5] = {{1, 1, 1, 2, 2},  {2, 7, 3, 8, 24},   {2, 5, 3, 8, 29},
                   {1, 4, 2, 6, 12}, {1, 9, 2, 64, 131}, {2, 7, 1, 8, 3 * 8 + 16}};
    for (size_t i = 0; i < sizeof rp / sizeof rp[0]; i++) {
        test_rope(rp[i][0], rp[i][1], rp[i][2], rp[i][3], rp[i][4], 10000.0f);
        test_rope(rp[i][0], rp[i][1], rp[i][2], rp[i][3], rp[i][4], 500000.0f);
    }

    /* (B, T, NH, NKV, hd): GQA, NH == NKV, MQA; T = 1 and T = 7 */
    int at[][5] = {{1, 1, 4, 2, 8}, {2, 7, 4, 2, 8},  {2, 7, 4, 4, 8}, {1, 1, 4, 4, 8},
                   {1, 7, 4, 1, 8}, {2, 5, 2, 1, 16}, {1, 12, 6, 2, 8}};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++)
        test_attention(at[i][0], at[i][1], at[i][2], at[i][3], at[i][4], 1.5f);
    test_attention(2, 7, 4, 2, 8, 12.0f);

    size_t sw[] = {1, 8, 37, 100};
    for (size_t i = 0; i < sizeof sw / sizeof sw[0]; i++) test_swiglu(sw[i]);
    test_swiglu_extreme();
    test_swiglu_nonfinite();

    test_embedding(19, 5, 11, 1);
    test_embedding(19, 5, 11, 2);
    test_embedding(19, 5, 11, 3);
    test_embedding(8, 16, 4, 3);

    test_ce(5, 23);
    test_ce(1, 7);
    test_ce(9, 40);

    test_add_inplace(1);
    test_add_inplace(37);

    size_t sq[] = {0, 1, 15, 16, 17, 4095, 4096, 4097, 100003};
    for (size_t i = 0; i < sizeof sq / sizeof sq[0]; i++) test_sum_squares(sq[i]);

    printf("%-52s %8s %10s %10s\n", "check", "entries", "max err", "tol");
    for (int i = 0; i < nrecords; i++)
        printf("%-52s %8ld %10.3e %10.0e%s\n", records[i].name, records[i].checks,
               records[i].max_err, records[i].tol, records[i].fails ? "  FAILED" : "");
    if (total_fails) {
        printf("test_kernels: %ld checks failed\n", total_fails);
        return 1;
    }
    printf("test_kernels: all %d checks passed\n", nrecords);
    return 0;
}
