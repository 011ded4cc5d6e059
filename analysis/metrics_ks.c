/* analysis/metrics_ks.c — the two-sample Kolmogorov–Smirnov test of metrics.h: the
 * statistic in integer arithmetic, the exact null distribution by a first-passage sum of
 * positive terms, and Kolmogorov's limiting survival function. */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "metrics_impl.h"

#define LN2 0.693147180559945309417232121458176568
#define PI 3.14159265358979323846264338327950288
#define SQRT_2PI 2.50662827463100050241576528481104525

/* SciPy's ks_2samp(method='auto') uses the exact distribution up to this size. */
#define KS_EXACT_MAX_N 10000

/* ---- Kolmogorov–Smirnov ---------------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b) /* b > 0 */
{
    int64_t q = a / b;
    if (a % b != 0 && a < 0) q--;
    return q;
}

/* A positive number m * 2^e with m in [0.5, 1): the hypergeometric weights of lattice
 * cells reach 1/C(20000, 10000) ~ 1e-6020, far below a double's range. */
typedef struct {
    double m;
    long e;
} xfloat;

static void xf_norm(xfloat *x)
{
    int k;
    x->m = frexp(x->m, &k);
    x->e += k;
}

/* H(i, j) = C(i+j, i) C(N-i-j, n1-i) / C(N, n1): the probability that a uniformly random
 * path passes through cell (i, j). Walked from cell to cell by its exact step ratios
 * (each an exact integer quotient, so two roundings per step). */
typedef struct {
    int64_t n1, n2, i, j;
    xfloat h;
} hwalk;

static void hwalk_to(hwalk *w, int64_t ti, int64_t tj)
{
    const int64_t N = w->n1 + w->n2;
    while (w->i < ti) { /* (i, j) -> (i+1, j) */
        int64_t i = w->i, j = w->j;
        double num = (double)(i + j + 1) * (double)(w->n1 - i);
        double den = (double)(i + 1) * (double)(N - i - j);
        w->h.m *= num / den;
        xf_norm(&w->h);
        w->i++;
    }
    while (w->j < tj) { /* (i, j) -> (i, j+1) */
        int64_t i = w->i, j = w->j;
        double num = (double)(i + j + 1) * (double)(w->n2 - j);
        double den = (double)(j + 1) * (double)(N - i - j);
        w->h.m *= num / den;
        xf_norm(&w->h);
        w->j++;
    }
}

/* Sum of positive terms v * 2^e kept as S * 2^xs. */
typedef struct {
    double s;
    long xs;
} xsum;

static void xsum_add(xsum *a, double v, long e)
{
    if (!(v > 0.0)) return;
    int k;
    v = frexp(v, &k);
    e += k;
    if (a->s == 0.0) {
        a->s = v;
        a->xs = e;
    } else if (e > a->xs) {
        long d = a->xs - e; /* < 0; beyond -1100 the old sum is below an ulp */
        a->s = (d < -1100 ? 0.0 : ldexp(a->s, (int)d)) + v;
        a->xs = e;
    } else {
        long d = e - a->xs;
        if (d >= -1100) a->s += ldexp(v, (int)d);
    }
}

/* p and ln p from the exit-probability sum. */
static void xsum_result(const xsum *sum, double *p, double *log_p)
{
    if (sum->s == 0.0) { /* every path stays inside: only possible if h > n1 n2 */
        *p = 0.0;
        *log_p = -INFINITY;
        return;
    }
    double lp = log(sum->s) + (double)sum->xs * LN2;
    if (lp > 0.0) lp = 0.0; /* rounding above 1 */
    *log_p = lp;
    double pv = (sum->xs < -1100) ? 0.0 : ldexp(sum->s, (int)sum->xs);
    *p = pv > 1.0 ? 1.0 : pv;
}

/* The exact two-sided null distribution.
 *
 * Lattice: (i, j) = numbers of sample-1 and sample-2 values among the smallest i + j of
 * the pooled sample; under H0 the path from (0,0) to (n1,n2) is uniform over its
 * C(N, n1) possibilities (N = n1 + n2), and D' n1 n2 = max over the path of
 * |i n2 - j n1|. A cell is "inside" when |i n2 - j n1| < h; p = P(the path leaves the
 * inside). In row i the inside cells are j in [lo(i), hi(i)], both nondecreasing in i.
 *
 * Let g(i,j) be the fraction of the C(i+j, i) paths from (0,0) to an inside cell (i,j)
 * that stay inside throughout. Counting paths by their last step,
 *     g(i,j) = (i g(i-1,j) + j g(i,j-1)) / (i + j),   g(0,0) = 1,  g = 0 outside,
 * a convex combination, so g stays in [0, 1] and never overflows. A path leaves the
 * inside for the first time at exactly one outside cell (i,j); the fraction of paths to
 * (i,j) that do so is e(i,j) = (i g(i-1,j) + j g(i,j-1)) / (i + j) with that cell's
 * inside neighbours only, and
 *     p = sum over first-exit cells of e(i,j) H(i,j)
 * with H the hypergeometric probability of passing through (i,j). By monotonicity of
 * lo and hi the first-exit cells are (i, j) with lo(i-1) <= j <= min(hi(i-1), lo(i)-1)
 * (entered from the left, below the band) and (i, hi(i)+1) (entered from below, above
 * the band). Each walk of them is monotone, so H is carried along it by step ratios.
 * Every term is positive: p is accurate to rounding even when it is 1e-1000, which
 * 1 - (fraction of paths inside) could not give. */
int metrics_ks_exact_sf(double *p, double *log_p, int64_t n1, int64_t n2, int64_t h)
{
    if (!p || !log_p || n1 < 1 || n2 < 1 || n1 > INT32_MAX || n2 > INT32_MAX) return METRICS_EINVAL;
    if (h <= 0) {
        *p = 1.0;
        *log_p = 0.0;
        return METRICS_OK;
    }
    if (h > n1 * n2) {
        *p = 0.0;
        *log_p = -INFINITY;
        return METRICS_OK;
    }
    const int64_t N = n1 + n2;
    double *ga = calloc((size_t)(n2 + 1), sizeof *ga);
    double *gb = calloc((size_t)(n2 + 1), sizeof *gb);
    double *inv = malloc((size_t)(N + 1) * sizeof *inv);
    if (!ga || !gb || !inv) {
        free(ga);
        free(gb);
        free(inv);
        return METRICS_ENOMEM;
    }
    inv[0] = 0.0;
    for (int64_t t = 1; t <= N; t++) inv[t] = 1.0 / (double)t;

    hwalk lower = {n1, n2, 0, 0, {0.5, 1}}, upper = {n1, n2, 0, 0, {0.5, 1}}; /* H(0,0) = 1 */
    xsum sum = {0.0, 0};
    double *gprev = ga, *gcur = gb;
    int64_t plo = 0, phi = -1; /* the previous row's inside range (none before row 0) */

    for (int64_t i = 0; i <= n1; i++) {
        int64_t lo = floor_div(i * n2 - h, n1) + 1;
        if (lo < 0) lo = 0;
        int64_t hi_u = floor_div(i * n2 + h - 1, n1);
        int64_t hi = hi_u < n2 ? hi_u : n2;
        double di = (double)i;

        /* first exits entered from the left, below the band; g(i, j-1) is outside */
        for (int64_t j = plo; j <= phi && j < lo; j++) {
            double e = di * gprev[j] * inv[i + j];
            hwalk_to(&lower, i, j);
            xsum_add(&sum, e * lower.h.m, lower.h.e);
        }
        if (lo <= hi) {
            /* cells above the previous band were outside: g = 0 there */
            for (int64_t j = (phi + 1 > lo ? phi + 1 : lo); j <= hi; j++) gprev[j] = 0.0;
            if (i == 0 && lo == 0)
                gcur[0] = 1.0;
            else
                gcur[lo] = di * gprev[lo] * inv[i + lo]; /* (i, lo-1) is outside */
            double dj = (double)lo;
            for (int64_t j = lo + 1; j <= hi; j++) {
                dj += 1.0;
                gcur[j] = (di * gprev[j] + dj * gcur[j - 1]) * inv[i + j];
            }
            /* the first exit entered from below, above the band ((i-1, hi+1) is outside
             * because hi(i-1) <= hi(i)) */
            if (hi_u < n2) {
                int64_t j = hi + 1;
                double e = (double)j * gcur[hi] * inv[i + j];
                hwalk_to(&upper, i, j);
                xsum_add(&sum, e * upper.h.m, upper.h.e);
            }
            plo = lo;
            phi = hi;
        } else {
            plo = 0; /* an empty row: nothing is inside from here on */
            phi = -1;
        }
        double *t = gprev;
        gprev = gcur;
        gcur = t;
    }
    free(ga);
    free(gb);
    free(inv);

    xsum_result(&sum, p, log_p);
    return METRICS_OK;
}

void metrics_kolmogorov_sf(double *p, double *log_p, double x)
{
    if (!(x > 0.0)) {
        *p = 1.0;
        *log_p = 0.0;
        return;
    }
    if (x < 0.8) {
        /* Q = 1 - K, K(x) = sqrt(2 pi)/x sum_k exp(-(2k-1)^2 pi^2 / (8 x^2)); Q > 0.54 here,
         * so the subtraction loses nothing. */
        double w = PI * PI / (8.0 * x * x), s = 0.0;
        for (int k = 1; k < 100; k++) {
            double t = exp(-(double)((2 * k - 1) * (2 * k - 1)) * w);
            s += t;
            if (t <= 1e-20 * s || t == 0.0) break;
        }
        double K = SQRT_2PI / x * s;
        *p = 1.0 - K;
        *log_p = log1p(-K);
        return;
    }
    /* Q = 2 exp(-2x^2) sum_k (-1)^(k-1) exp(-2 (k^2 - 1) x^2): the sum is in
     * [1 - exp(-6 x^2), 1], so ln Q is exact even where Q underflows. */
    double x2 = x * x, s = 1.0;
    for (int k = 2; k < 100; k++) {
        double t = exp(-2.0 * (double)(k * k - 1) * x2);
        if (t < 1e-20) break;
        s += (k % 2 == 0) ? -t : t;
    }
    double lq = log(2.0) - 2.0 * x2 + log(s);
    if (lq > 0.0) lq = 0.0;
    *log_p = lq;
    *p = exp(lq);
}

int metrics_ks_2samp(metrics_ks *out, const double *x1, int64_t n1, const double *x2, int64_t n2)
{
    if (!out || !x1 || !x2 || n1 < 1 || n2 < 1) return METRICS_EINVAL;
    if (n1 > INT64_MAX / 4 / n2) return METRICS_EINVAL; /* d_num arithmetic must fit */
    for (int64_t i = 0; i < n1; i++)
        if (isnan(x1[i])) return METRICS_EDOMAIN;
    for (int64_t i = 0; i < n2; i++)
        if (isnan(x2[i])) return METRICS_EDOMAIN;
    double *a = malloc((size_t)n1 * sizeof *a), *b = malloc((size_t)n2 * sizeof *b);
    if (!a || !b) {
        free(a);
        free(b);
        return METRICS_ENOMEM;
    }
    memcpy(a, x1, (size_t)n1 * sizeof *a);
    memcpy(b, x2, (size_t)n2 * sizeof *b);
    qsort(a, (size_t)n1, sizeof *a, metrics_cmp_double);
    qsort(b, (size_t)n2, sizeof *b, metrics_cmp_double);

    /* Walk the distinct pooled values; after each, i = #{x1 <= v}, j = #{x2 <= v}. */
    int64_t i = 0, j = 0, dnum = 0;
    while (i < n1 || j < n2) {
        double v = (j >= n2 || (i < n1 && a[i] <= b[j])) ? a[i] : b[j];
        while (i < n1 && a[i] == v) i++;
        while (j < n2 && b[j] == v) j++;
        int64_t diff = i * n2 - j * n1;
        if (diff < 0) diff = -diff;
        if (diff > dnum) dnum = diff;
    }
    free(a);
    free(b);

    metrics_ks r;
    r.d_num = dnum;
    r.d = (double)dnum / (double)(n1 * n2);
    if (n1 <= KS_EXACT_MAX_N && n2 <= KS_EXACT_MAX_N) {
        r.exact = 1;
        int rc = metrics_ks_exact_sf(&r.p, &r.log_p, n1, n2, dnum);
        if (rc != METRICS_OK) return rc;
    } else {
        r.exact = 0;
        double en = (double)n1 * (double)n2 / ((double)n1 + (double)n2);
        metrics_kolmogorov_sf(&r.p, &r.log_p, sqrt(en) * r.d);
    }
    *out = r;
    return METRICS_OK;
}
