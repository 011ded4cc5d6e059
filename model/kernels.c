/* model/kernels.c — forward and backward kernels, fp32, every matrix product
 * through cblas_sgemm. Read each against model/kernels.h. */
#include "kernels.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* exp(x) for the softmax, cross-entropy and SiLU loops: Cody-Waite range
 * reduction x = k ln2 + r, |r| <= ln2/2, and a degree-6 Taylor polynomial
 * (truncation error < 2e-8 relative), then 2^k through the exponent bits.
 * Unlike libm's expf it is inlined, so the loops that call it vectorize
 * (AVX-512: 16 lanes). Inputs below -87 give ~1e-38 instead of 0 and inputs
 * above 88 saturate; neither occurs in a max-subtracted softmax. NaN in gives NaN
 * out (the polynomial carries it) with no undefined behaviour: the NaN never
 * reaches the float-to-int conversion (finite inputs take the same path as before,
 * bit for bit). */
static inline float fast_expf(float x)
{
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    /* round to nearest by the 1.5 * 2^23 shift: vectorizes, unlike roundf */
    float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float kc = k == k ? k : 0.0f; /* converting NaN to int32 is undefined */
    float r = x - k * 0.693145751953125f - k * 1.428606765330187e-06f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.16666667f + r * (0.041666668f +
                                                  r * (0.0083333338f + r * 0.0013888889f)))));
    union {
        float f;
        int32_t i;
    } u = {p};
    u.i += (int32_t)kc * (1 << 23); /* not k << 23: shifting a negative value is undefined */
    return u.f;
}

/* Row reductions in LANES independent partial results, combined in a fixed order at the
 * end: an in-order float reduction does not vectorize without -ffast-math, these do
 * (one AVX-512 register, two AVX2 ones). The order depends only on n, so the result is
 * the same on every run and every rank of a given core type. */
enum { LANES = 16, SKINNY_ROWS = 8 };

static float lanes_sum(const float *acc)
{
    float s = 0.0f;
    for (int j = 0; j < LANES; j++) s += acc[j];
    return s;
}

/* max of x[0..n) (-INF for n = 0; NaN entries are skipped, as by `a > b ? a : b`) */
static float row_max(const float *x, int n)
{
    float acc[LANES];
    for (int j = 0; j < LANES; j++) acc[j] = -INFINITY;
    int k = 0;
    for (; k + LANES <= n; k += LANES)
        for (int j = 0; j < LANES; j++) acc[j] = x[k + j] > acc[j] ? x[k + j] : acc[j];
    float mx = -INFINITY;
    for (int j = 0; j < LANES; j++) mx = acc[j] > mx ? acc[j] : mx;
    for (; k < n; k++) mx = x[k] > mx ? x[k] : mx;
    return mx;
}

/* sum_k exp(x[k] - mx); with out != NULL the terms are also stored in out (may be x) */
static float row_sumexp(float *out, const float *x, int n, float mx)
{
    float acc[LANES] = {0};
    int k = 0;
    if (out)
        for (; k + LANES <= n; k += LANES)
            for (int j = 0; j < LANES; j++) acc[j] += out[k + j] = fast_expf(x[k + j] - mx);
    else
        for (; k + LANES <= n; k += LANES)
            for (int j = 0; j < LANES; j++) acc[j] += fast_expf(x[k + j] - mx);
    float s = lanes_sum(acc);
    for (; k < n; k++) {
        float e = fast_expf(x[k] - mx);
        if (out) out[k] = e;
        s += e;
    }
    return s;
}

float row_dot(const float *a, const float *b, int n)
{
    float acc[LANES] = {0};
    int k = 0;
    for (; k + LANES <= n; k += LANES)
        for (int j = 0; j < LANES; j++) acc[j] += a[k + j] * b[k + j];
    float s = lanes_sum(acc);
    for (; k < n; k++) s += a[k] * b[k];
    return s;
}

double sum_squares(const float *x, size_t n)
{
    enum { BLOCK = 4096 };
    double total = 0.0;
    for (size_t b = 0; b < n; b += BLOCK) {
        size_t m = n - b < BLOCK ? n - b : BLOCK, k = 0;
        const float *p = x + b;
        float acc[LANES] = {0};
        for (; k + LANES <= m; k += LANES)
            for (int j = 0; j < LANES; j++) acc[j] += p[k + j] * p[k + j];
        double part = 0.0;
        for (; k < m; k++) part += (double)p[k] * p[k];
        for (int j = 0; j < LANES; j++) part += acc[j];
        total += part;
    }
    return total;
}

/* One weight row against N input rows (N a constant after inlining): the dot products
 * run in LANES partial sums held in registers (a GNU C vector of LANES floats: one
 * AVX-512 register, two AVX2 ones), combined in a fixed order, then C's tail. The
 * weight row is read once for all N rows. */
typedef float lanes_vec __attribute__((vector_size(LANES * sizeof(float))));

static inline __attribute__((always_inline)) void
skinny_rows(float *out, const float *inp, const float *weight, int N, int C, int OC)
{
    int c_main = C - C % LANES;
    for (int o = 0; o < OC; o++) {
        const float *w = weight + (size_t)o * C;
        lanes_vec acc[SKINNY_ROWS];
        for (int n = 0; n < N; n++) acc[n] = (lanes_vec){0};
        for (int c = 0; c < c_main; c += LANES) {
            lanes_vec wv, xv;
            memcpy(&wv, w + c, sizeof wv);
            for (int n = 0; n < N; n++) {
                memcpy(&xv, inp + (size_t)n * C + c, sizeof xv);
                acc[n] += xv * wv;
            }
        }
        for (int n = 0; n < N; n++) {
            float p[LANES]; /* halves added pairwise: 4 vector adds, not 15 serial ones */
            memcpy(p, &acc[n], sizeof p);
            for (int w = LANES / 2; w >= 1; w /= 2)
                for (int j = 0; j < w; j++) p[j] += p[j + w];
            float s = p[0];
            for (int c = c_main; c < C; c++) s += inp[(size_t)n * C + c] * w[c];
            out[(size_t)n * OC + o] = s;
        }
    }
}

void matmul_forward(float *out, const float *inp, const float *weight, int N, int C, int OC)
{
    /* out (N,OC) = inp (N,C) . weight (OC,C)^T */
    if (N <= SKINNY_ROWS) { /* a decoding step: sgemm would pack all of weight for N rows */
        switch (N) {
        case 1: skinny_rows(out, inp, weight, 1, C, OC); return;
        case 2: skinny_rows(out, inp, weight, 2, C, OC); return;
        case 3: skinny_rows(out, inp, weight, 3, C, OC); return;
        case 4: skinny_rows(out, inp, weight, 4, C, OC); return;
        case 5: skinny_rows(out, inp, weight, 5, C, OC); return;
        case 6: skinny_rows(out, inp, weight, 6, C, OC); return;
        case 7: skinny_rows(out, inp, weight, 7, C, OC); return;
        case 8: skinny_rows(out, inp, weight, 8, C, OC); return;
        default: return; /* N <= 0: nothing */
        }
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, weight, C, 0.0f,
                out, OC);
}

void matmul_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC)
{
    if (dinp) /* dinp (N,C) += dout (N,OC) . weight (OC,C) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, weight,
                    C, 1.0f, dinp, C);
    if (dweight) /* dweight (OC,C) += dout^T (OC,N) . inp (N,C) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C,
                    1.0f, dweight, C);
}

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N, int C,
                     float eps)
{
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        float r = 1.0f / sqrtf(row_dot(x, x, C) / C + eps);
        for (int c = 0; c < C; c++) o[c] = x[c] * r * weight[c];
        rstd[n] = r;
    }
}

/* dweight[c] += sum_n dy[n,c] x[n,c] rstd[n]: column sums over the N rows in double, a
 * block of columns at a time (a float running sum over thousands of rows strays from
 * float64 by more than PyTorch's float32 tree reduction) */
enum { NORM_COLS = 256 };
static void rmsnorm_weight_grad(float *dweight, const float *dout, const float *inp,
                                const float *rstd, int N, int C)
{
    for (int c0 = 0; c0 < C; c0 += NORM_COLS) {
        int w = C - c0 < NORM_COLS ? C - c0 : NORM_COLS;
        double acc[NORM_COLS] = {0};
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C + c0, *dy = dout + (size_t)n * C + c0;
            double r = rstd[n];
            for (int c = 0; c < w; c++) acc[c] += (double)(dy[c] * x[c]) * r;
        }
        for (int c = 0; c < w; c++) dweight[c0 + c] += (float)acc[c];
    }
}

void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                      const float *weight, const float *rstd, int N, int C)
{
    /* y_c = w_c x_c r, r = (mean x^2 + eps)^-1/2:
     * dx_c = r (w_c dy_c) - x_c r^3 / C * sum_j (w_j dy_j x_j) */
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        float r = rstd[n], acc[LANES] = {0};
        int c = 0;
        for (; c + LANES <= C; c += LANES)
            for (int j = 0; j < LANES; j++) acc[j] += weight[c + j] * (dy[c + j] * x[c + j]);
        float dot = lanes_sum(acc);
        for (; c < C; c++) dot += weight[c] * dy[c] * x[c];
        float k = dot * r * r * r / C;
        for (int c = 0; c < C; c++) dx[c] += r * weight[c] * dy[c] - k * x[c];
    }
    rmsnorm_weight_grad(dweight, dout, inp, rstd, N, C);
}

/* Llama 3.1's rescaling of one inverse frequency (the wavelength 2 pi / inv decides). */
static double rope_llama3(double inv, const lethe_rope_scaling *rs)
{
    double orig = rs->original_max_seq_len, lo = rs->low_freq_factor, hi = rs->high_freq_factor;
    double wavelen = 6.283185307179586 / inv; /* 2 pi / inv */
    if (wavelen < orig / hi) return inv;                /* high frequencies: unchanged */
    if (wavelen > orig / lo) return inv / rs->factor;   /* low frequencies: interpolated */
    double smooth = (orig / wavelen - lo) / (hi - lo); /* the band between: blended */
    return (1.0 - smooth) * inv / rs->factor + smooth * inv;
}

void rope_tables_scaled(float *cos_t, float *sin_t, int T, int hd, float theta,
                        const lethe_rope_scaling *rs)
{
    int half = hd / 2;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            /* computed in double, like the reference implementations' fp32 tables
             * to within one ulp */
            double inv = 1.0 / pow((double)theta, (2.0 * i) / hd);
            if (rs && rs->type == ROPE_LLAMA3) inv = rope_llama3(inv, rs);
            float ang = (float)t * (float)inv;
            cos_t[t * half + i] = cosf(ang);
            sin_t[t * half + i] = sinf(ang);
        }
}

void rope_tables(float *cos_t, float *sin_t, int T, int hd, float theta)
{
    rope_tables_scaled(cos_t, sin_t, T, hd, theta, NULL);
}

static void rope_apply(float *x, const float *cos_t, const float *sin_t, int B, int T, int nh,
                       int hd, int stride, float sign)
{
    int half = hd / 2;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float *row = x + ((size_t)b * T + t) * stride;
            const float *c = cos_t + (size_t)t * half, *s = sin_t + (size_t)t * half;
            for (int h = 0; h < nh; h++) {
                float *v = row + (size_t)h * hd;
                for (int i = 0; i < half; i++) {
                    float x1 = v[i], x2 = v[i + half], sn = sign * s[i];
                    v[i] = x1 * c[i] - x2 * sn;
                    v[i + half] = x2 * c[i] + x1 * sn;
                }
            }
        }
}

void rope_forward(float *x, const float *cos_t, const float *sin_t, int B, int T, int nh, int hd,
                  int stride)
{
    rope_apply(x, cos_t, sin_t, B, T, nh, hd, stride, 1.0f);
}

void rope_backward(float *dx, const float *cos_t, const float *sin_t, int B, int T, int nh, int hd,
                   int stride)
{
    rope_apply(dx, cos_t, sin_t, B, T, nh, hd, stride, -1.0f);
}

/* Causal attention in row blocks of ATT_QB queries: block [i0, i1) sees keys [0, i1)
 * only, so the products skip the masked blocks above the diagonal (T = 128: 3/4 of the
 * square; T = 512: 5/8). */
enum { ATT_QB = 64 };

void attention_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                       int B, int T, int NH, int NKV, int hd)
{
    const int group = NH / NKV, qs = NH * hd, ks = NKV * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *qb = q + (size_t)b * T * qs + (size_t)h * hd;
            const float *kb = k + (size_t)b * T * ks + (size_t)(h / group) * hd;
            const float *vb = v + (size_t)b * T * ks + (size_t)(h / group) * hd;
            float *P = probs + ((size_t)b * NH + h) * T * T; // (T, T)
            float *ob = out + (size_t)b * T * qs + (size_t)h * hd;
            for (int i0 = 0; i0 < T; i0 += ATT_QB) {
                int i1 = i0 + ATT_QB < T ? i0 + ATT_QB : T, M = i1 - i0;
                float *Pi = P + (size_t)i0 * T;
                /* P[i0:i1, 0:i1] = scale * Q K^T; the masked part is overwritten below */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, i1, hd, scale,
                            qb + (size_t)i0 * qs, qs, kb, ks, 0.0f, Pi, T);
                for (int t = i0; t < i1; t++) {
                    float *row = P + (size_t)t * T;
                    float inv = 1.0f / row_sumexp(row, row, t + 1, row_max(row, t + 1));
                    for (int u = 0; u <= t; u++) row[u] *= inv;
                    for (int u = t + 1; u < T; u++) row[u] = 0.0f;
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, hd, i1, 1.0f, Pi, T, vb,
                            ks, 0.0f, ob + (size_t)i0 * qs, qs);
            }
        }
}

void attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                        const float *probs, const float *q, const float *k, const float *v, int B,
                        int T, int NH, int NKV, int hd)
{
    const int group = NH / NKV, qs = NH * hd, ks = NKV * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    float *dP = scratch; // (T, T)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            size_t qo = (size_t)b * T * qs + (size_t)h * hd;
            size_t ko = (size_t)b * T * ks + (size_t)(h / group) * hd;
            const float *P = probs + ((size_t)b * NH + h) * T * T;
            for (int i0 = 0; i0 < T; i0 += ATT_QB) {
                int i1 = i0 + ATT_QB < T ? i0 + ATT_QB : T, M = i1 - i0;
                const float *Pi = P + (size_t)i0 * T, *dOi = dout + qo + (size_t)i0 * qs;
                float *dPi = dP + (size_t)i0 * T;
                /* dV[0:i1] += P[i0:i1, 0:i1]^T dO[i0:i1] ; dP[i0:i1, 0:i1] = dO V^T */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, i1, hd, M, 1.0f, Pi, T, dOi,
                            qs, 1.0f, dv + ko, ks);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, i1, hd, 1.0f, dOi, qs,
                            v + ko, ks, 0.0f, dPi, T);
                /* dS = P * (dP - rowsum(P * dP)) * scale, zero above the diagonal */
                for (int t = i0; t < i1; t++) {
                    const float *p = P + (size_t)t * T;
                    float *d = dP + (size_t)t * T, dot = row_dot(p, d, t + 1);
                    for (int u = 0; u <= t; u++) d[u] = p[u] * (d[u] - dot) * scale;
                    for (int u = t + 1; u < i1; u++) d[u] = 0.0f;
                }
                /* dQ[i0:i1] += dS K[0:i1] ; dK[0:i1] += dS^T Q[i0:i1] */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, hd, i1, 1.0f, dPi, T,
                            k + ko, ks, 1.0f, dq + qo + (size_t)i0 * qs, qs);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, i1, hd, M, 1.0f, dPi, T,
                            q + qo + (size_t)i0 * qs, qs, 1.0f, dk + ko, ks);
            }
        }
}

void swiglu_forward(float *out, const float *gate, const float *up, size_t N)
{
    for (size_t i = 0; i < N; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + fast_expf(-g)) * up[i];
    }
}

void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                     const float *up, size_t N)
{
    /* silu(g) = g s, s = sigmoid(g); silu'(g) = s (1 + g (1 - s)) */
    for (size_t i = 0; i < N; i++) {
        float g = gate[i], s = 1.0f / (1.0f + fast_expf(-g));
        dgate[i] = dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
        dup[i] = dout[i] * g * s;
    }
}

void embedding_forward(float *out, const int *tokens, const float *table, int N, int C, int v0,
                       int nv)
{
    for (int n = 0; n < N; n++) {
        int r = tokens[n] - v0;
        float *o = out + (size_t)n * C;
        if (r >= 0 && r < nv)
            memcpy(o, table + (size_t)r * C, (size_t)C * sizeof(float));
        else
            memset(o, 0, (size_t)C * sizeof(float));
    }
}

void embedding_backward(float *dtable, const float *dout, const int *tokens, int N, int C, int v0,
                        int nv)
{
    for (int n = 0; n < N; n++) {
        int r = tokens[n] - v0;
        if (r < 0 || r >= nv) continue;
        float *d = dtable + (size_t)r * C;
        const float *g = dout + (size_t)n * C;
        for (int c = 0; c < C; c++) d[c] += g[c];
    }
}

void ce_local_stats(float *lmax, float *sumexp, float *tlogit, const float *logits,
                    const int *targets, int N, int nv, int nvalid, int v0)
{
    for (int n = 0; n < N; n++) {
        /* the row (nv floats) stays in cache between the two sweeps: the logits are read
         * from memory once */
        const float *l = logits + (size_t)n * nv;
        float mx = row_max(l, nvalid);
        lmax[n] = mx;
        sumexp[n] = nvalid ? row_sumexp(NULL, l, nvalid, mx) : 0.0f;
        int r = targets[n] - v0;
        tlogit[n] = (targets[n] >= 0 && r >= 0 && r < nvalid) ? l[r] : 0.0f;
    }
}

void ce_backward(float *dlogits, const float *logits, const float *gmax, const float *gsumexp,
                 const int *targets, const float *g, int N, int nv, int nvalid, int v0)
{
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * nv;
        float *d = dlogits + (size_t)n * nv;
        float gn = g[n];
        if (gn == 0.0f) {
            memset(d, 0, (size_t)nv * sizeof(float));
            continue;
        }
        float mx = gmax[n], inv = 1.0f / gsumexp[n];
        for (int j = 0; j < nvalid; j++) d[j] = -gn * fast_expf(l[j] - mx) * inv;
        for (int j = nvalid; j < nv; j++) d[j] = 0.0f;
        int r = targets[n] - v0;
        if (targets[n] >= 0 && r >= 0 && r < nvalid) d[r] += gn;
    }
}

/* One row's max (*mx), target logit (*tl; column r, 0 when not in [0, nvalid)) and sum of
 * exp(l - max), returned; the terms are stored in d (may be l) unless d is NULL. */
static float nll_row_terms(float *d, const float *l, int r, int nvalid, float *mx, float *tl)
{
    *mx = row_max(l, nvalid);
    *tl = (r >= 0 && r < nvalid) ? l[r] : 0.0f; /* read before d (may be l) is written */
    return nvalid ? row_sumexp(d, l, nvalid, *mx) : 0.0f;
}

/* One row's gradient from its stored terms e: gn (onehot(r) - c e), padding 0; 0 if gn = 0 */
static void nll_row_grad(float *d, float gn, float c, int r, int nv, int nvalid)
{
    if (gn == 0.0f) {
        memset(d, 0, (size_t)nv * sizeof(float));
        return;
    }
    for (int j = 0; j < nvalid; j++) d[j] = -gn * d[j] * c;
    for (int j = nvalid; j < nv; j++) d[j] = 0.0f;
    if (r >= 0 && r < nvalid) d[r] += gn;
}

void ce_fused_nll(float *logp, float *stats, float *dlogits, const float *logits,
                  const int *targets, float w, int N, int nv, int nvalid)
{
    float *gmax = stats, *sums = stats + N, *tl = stats + 2 * N, *qsum = stats + 3 * N;
    for (int n = 0; n < N; n++) {
        float *d = dlogits + (size_t)n * nv, gn = targets[n] >= 0 ? w : 0.0f;
        int r = targets[n];
        /* the terms exp(l - max) wait in d for the gradient */
        float s = nll_row_terms(gn != 0.0f ? d : NULL, logits + (size_t)n * nv, r, nvalid, &gmax[n],
                                &tl[n]);
        sums[n] = s;
        qsum[n] = 0.0f;
        logp[n] = r < 0 ? 0.0f : tl[n] - (gmax[n] + logf(s));
        nll_row_grad(d, gn, 1.0f / s, r, nv, nvalid);
    }
}

void ce_nll_terms(float *lmax, float *sumexp, float *tlogit, float *dlogits, const float *logits,
                  const int *targets, int N, int nv, int nvalid, int v0)
{
    for (int n = 0; n < N; n++)
        sumexp[n] =
            nll_row_terms(targets[n] >= 0 ? dlogits + (size_t)n * nv : NULL,
                          logits + (size_t)n * nv, targets[n] - v0, nvalid, &lmax[n], &tlogit[n]);
}

void ce_nll_grad(float *dlogits, const float *lmax, const float *gmax, const float *gsumexp,
                 const int *targets, float w, int N, int nv, int nvalid, int v0)
{
    for (int n = 0; n < N; n++) {
        float c = 1.0f / gsumexp[n]; /* exactly ce_fused_nll's on one shard */
        if (lmax[n] != gmax[n]) c *= expf(lmax[n] - gmax[n]);
        nll_row_grad(dlogits + (size_t)n * nv, targets[n] >= 0 ? w : 0.0f, c, targets[n] - v0, nv,
                     nvalid);
    }
}

void ce_local_cross(float *cross, float *qsum, const float *logits, const float *soft_lp, int N,
                    int nv, int nvalid)
{
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * nv, *lq = soft_lp + (size_t)n * nv;
        float ca[LANES] = {0}, za[LANES] = {0};
        int j = 0;
        for (; j + LANES <= nvalid; j += LANES)
            for (int i = 0; i < LANES; i++) {
                float q = fast_expf(lq[j + i]);
                ca[i] += q * l[j + i];
                za[i] += q;
            }
        float c = lanes_sum(ca), z = lanes_sum(za);
        for (; j < nvalid; j++) {
            float q = fast_expf(lq[j]);
            c += q * l[j];
            z += q;
        }
        cross[n] = c;
        qsum[n] = z;
    }
}

void ce_soft_backward(float *dlogits, const float *logits, const float *gmax,
                      const float *gsumexp, const float *soft_lp, const float *gqsum,
                      const float *g, int N, int nv, int nvalid)
{
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * nv, *lq = soft_lp + (size_t)n * nv;
        float *d = dlogits + (size_t)n * nv;
        float gn = g[n];
        if (gn == 0.0f) {
            memset(d, 0, (size_t)nv * sizeof(float));
            continue;
        }
        float mx = gmax[n], a = gqsum[n] / gsumexp[n];
        for (int j = 0; j < nvalid; j++) d[j] = gn * (fast_expf(lq[j]) - a * fast_expf(l[j] - mx));
        for (int j = nvalid; j < nv; j++) d[j] = 0.0f;
    }
}

void log_softmax_rows(float *out, double *negent, const float *logits, const float *gmax,
                      const float *gsumexp, int N, int nv, int nvalid)
{
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * nv;
        float *o = out + (size_t)n * nv;
        float sh = gmax[n] + logf(gsumexp[n]);
        double h = 0.0;
        for (int j = 0; j < nvalid; j++) {
            o[j] = l[j] - sh;
            h += (double)fast_expf(o[j]) * o[j];
        }
        for (int j = nvalid; j < nv; j++) o[j] = -INFINITY;
        negent[n] = h;
    }
}

double sumexp_rows_d(const float *x, int n)
{
    double acc[LANES] = {0};
    int k = 0;
    for (; k + LANES <= n; k += LANES)
        for (int j = 0; j < LANES; j++) acc[j] += fast_expf(x[k + j]);
    double s = 0.0;
    for (int j = 0; j < LANES; j++) s += acc[j];
    for (; k < n; k++) s += fast_expf(x[k]);
    return s;
}

void add_inplace(float *out, const float *a, size_t N)
{
    for (size_t i = 0; i < N; i++) out[i] += a[i];
}
