/* analysis/metrics.c — see metrics.h for every definition. */
#include "metrics.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LN2 0.693147180559945309417232121458176568
#define PI 3.14159265358979323846264338327950288
#define SQRT_2PI 2.50662827463100050241576528481104525

/* SciPy's ks_2samp(method='auto') uses the exact distribution up to this size. */
#define KS_EXACT_MAX_N 10000

const char *metrics_strerror(int status)
{
    switch (status) {
    case METRICS_OK: return "ok";
    case METRICS_EINVAL: return "invalid argument";
    case METRICS_EDOMAIN: return "value outside the domain";
    case METRICS_ENOMEM: return "out of memory";
    default: return "unknown metrics status";
    }
}

/* ---- compensated summation ---------------------------------------------------------- */

/* Neumaier's variant of Kahan summation: the error of each addition is recovered
 * exactly (for finite values) and added back at the end. */
typedef struct {
    double s, c;
} nsum;

static void nsum_add(nsum *k, double x)
{
    double t = k->s + x;
    if (fabs(k->s) >= fabs(x))
        k->c += (k->s - t) + x;
    else
        k->c += (x - t) + k->s;
    k->s = t;
}

static double nsum_get(const nsum *k)
{
    return k->s + k->c;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---- ROUGE-L ------------------------------------------------------------------------ */

/* LCS with one row over the shorter sequence b (nb <= na). row: (nb + 1) scratch. */
static int64_t lcs_row(const int32_t *a, int64_t na, const int32_t *b, int64_t nb, int64_t *row)
{
    for (int64_t j = 0; j <= nb; j++) row[j] = 0;
    for (int64_t i = 0; i < na; i++) {
        int64_t diag = 0; /* L[i-1][j-1] */
        int32_t ai = a[i];
        for (int64_t j = 1; j <= nb; j++) {
            int64_t up = row[j]; /* L[i-1][j] */
            if (ai == b[j - 1])
                row[j] = diag + 1;
            else if (row[j - 1] > up)
                row[j] = row[j - 1];
            diag = up;
        }
    }
    return row[nb];
}

int metrics_lcs(int64_t *lcs, const int32_t *a, int64_t na, const int32_t *b, int64_t nb)
{
    if (!lcs || na < 0 || nb < 0 || (na > 0 && !a) || (nb > 0 && !b)) return METRICS_EINVAL;
    if (na == 0 || nb == 0) {
        *lcs = 0;
        return METRICS_OK;
    }
    if (nb > na) { /* the row runs over the shorter sequence: O(min) memory */
        const int32_t *t = a;
        a = b;
        b = t;
        int64_t tn = na;
        na = nb;
        nb = tn;
    }
    int64_t *row = malloc((size_t)(nb + 1) * sizeof *row);
    if (!row) return METRICS_ENOMEM;
    *lcs = lcs_row(a, na, b, nb, row);
    free(row);
    return METRICS_OK;
}

static void rouge_from_lcs(metrics_rouge *out, int64_t lcs, int64_t ncand, int64_t nref)
{
    out->lcs = lcs;
    out->precision = out->recall = out->f1 = 0.0;
    if (ncand == 0 || nref == 0) return;
    double p = (double)lcs / (double)ncand, r = (double)lcs / (double)nref;
    out->precision = p;
    out->recall = r;
    /* rouge_score's scoring.fmeasure, operation for operation. */
    out->f1 = (p + r > 0.0) ? 2.0 * p * r / (p + r) : 0.0;
}

int metrics_rouge_l_ids(metrics_rouge *out, const int32_t *cand, int64_t ncand, const int32_t *ref,
                        int64_t nref)
{
    if (!out) return METRICS_EINVAL;
    int64_t lcs;
    int rc = metrics_lcs(&lcs, cand, ncand, ref, nref);
    if (rc != METRICS_OK) return rc;
    rouge_from_lcs(out, lcs, ncand, nref);
    return METRICS_OK;
}

/* rouge_score's normalisation, byte by byte: ASCII letters folded to lower case and
 * digits kept; the two characters whose Python lower() yields ASCII alphanumerics
 * mapped (U+212A -> "k", U+0130 -> "i" + break); everything else becomes a space.
 * out has room for len bytes: no mapping lengthens the text. Returns the length. */
static size_t rouge_normalize(char *out, const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = s[i];
        if (c >= 'A' && c <= 'Z') {
            out[o++] = (char)(c - 'A' + 'a');
            i++;
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            out[o++] = (char)c;
            i++;
        } else if (c == 0xE2 && i + 2 < len && s[i + 1] == 0x84 && s[i + 2] == 0xAA) {
            out[o++] = 'k'; /* U+212A KELVIN SIGN: lower() is ASCII 'k' */
            i += 3;
        } else if (c == 0xC4 && i + 1 < len && s[i + 1] == 0xB0) {
            out[o++] = 'i'; /* U+0130: lower() is 'i' + U+0307, a non-alphanumeric */
            out[o++] = ' ';
            i += 2;
        } else {
            out[o++] = ' ';
            i++;
        }
    }
    return o;
}

typedef struct {
    const char *s;
    int32_t len;
    int32_t side; /* 0 candidate, 1 reference */
    int64_t pos;  /* index in its side's word sequence */
} word_ref;

static int cmp_word(const void *a, const void *b)
{
    const word_ref *x = a, *y = b;
    int32_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, (size_t)n);
    if (c != 0) return c;
    return (x->len > y->len) - (x->len < y->len);
}

/* Appends the words of normalised text t[0..n) to w; returns how many. */
static int64_t split_words(word_ref *w, int64_t nw, const char *t, size_t n, int32_t side)
{
    int64_t count = 0;
    size_t i = 0;
    while (i < n) {
        while (i < n && t[i] == ' ') i++;
        size_t start = i;
        while (i < n && t[i] != ' ') i++;
        if (i > start) {
            w[nw + count] = (word_ref){t + start, (int32_t)(i - start), side, count};
            count++;
        }
    }
    return count;
}

int metrics_rouge_l_text(metrics_rouge *out, const char *cand, size_t cand_len, const char *ref,
                         size_t ref_len)
{
    if (!out || (cand_len > 0 && !cand) || (ref_len > 0 && !ref)) return METRICS_EINVAL;
    if (cand_len > INT32_MAX || ref_len > INT32_MAX) return METRICS_EINVAL;
    size_t total = cand_len + ref_len;
    /* a word takes at least one byte plus a separator: at most (len + 1) / 2 words */
    size_t max_words = (cand_len + 1) / 2 + (ref_len + 1) / 2;
    char *norm = malloc(total + 1);
    word_ref *w = malloc((max_words + 1) * sizeof *w);
    int32_t *ids = calloc(max_words + 1, sizeof *ids);
    if (!norm || !w || !ids) {
        free(norm);
        free(w);
        free(ids);
        return METRICS_ENOMEM;
    }
    size_t nc = rouge_normalize(norm, cand, cand_len);
    size_t nr = rouge_normalize(norm + nc, ref, ref_len);
    int64_t wc = split_words(w, 0, norm, nc, 0);
    int64_t wr = split_words(w, wc, norm + nc, nr, 1);

    /* Intern the words: equal strings get equal ids, then ROUGE-L on ids. */
    int32_t *cid = ids, *rid = ids + wc;
    qsort(w, (size_t)(wc + wr), sizeof *w, cmp_word);
    int32_t id = -1;
    for (int64_t i = 0; i < wc + wr; i++) {
        if (i == 0 || cmp_word(&w[i - 1], &w[i]) != 0) id++;
        (w[i].side == 0 ? cid : rid)[w[i].pos] = id;
    }
    int rc = metrics_rouge_l_ids(out, cid, wc, rid, wr);
    free(norm);
    free(w);
    free(ids);
    return rc;
}

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

    if (sum.s == 0.0) { /* every path stays inside: only possible if h > n1 n2 */
        *p = 0.0;
        *log_p = -INFINITY;
        return METRICS_OK;
    }
    double lp = log(sum.s) + (double)sum.xs * LN2;
    if (lp > 0.0) lp = 0.0; /* rounding above 1 */
    *log_p = lp;
    double pv = (sum.xs < -1100) ? 0.0 : ldexp(sum.s, (int)sum.xs);
    *p = pv > 1.0 ? 1.0 : pv;
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
    qsort(a, (size_t)n1, sizeof *a, cmp_double);
    qsort(b, (size_t)n2, sizeof *b, cmp_double);

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

/* ---- ROC AUC ---------------------------------------------------------------------------- */

typedef struct {
    double s;
    int pos;
} scored;

static int cmp_scored(const void *a, const void *b)
{
    return cmp_double(&((const scored *)a)->s, &((const scored *)b)->s);
}

int metrics_roc_auc(double *auc, const double *pos, int64_t npos, const double *neg, int64_t nneg)
{
    if (!auc || !pos || !neg || npos < 1 || nneg < 1) return METRICS_EINVAL;
    if (npos > INT64_MAX / 2 / nneg) return METRICS_EINVAL;
    int64_t n = npos + nneg;
    scored *v = malloc((size_t)n * sizeof *v);
    if (!v) return METRICS_ENOMEM;
    for (int64_t i = 0; i < npos; i++) v[i] = (scored){pos[i], 1};
    for (int64_t i = 0; i < nneg; i++) v[npos + i] = (scored){neg[i], 0};
    for (int64_t i = 0; i < n; i++) {
        if (isnan(v[i].s)) {
            free(v);
            return METRICS_EDOMAIN;
        }
    }
    qsort(v, (size_t)n, sizeof *v, cmp_scored);
    /* Per group of equal scores: each positive beats every negative of lower score
     * and ties with the group's negatives. 2U = 2 #greater + #equal, exactly. */
    int64_t neg_below = 0, twice_u = 0;
    for (int64_t g = 0; g < n;) {
        int64_t e = g, gp = 0, gn = 0;
        while (e < n && v[e].s == v[g].s) {
            if (v[e].pos)
                gp++;
            else
                gn++;
            e++;
        }
        twice_u += 2 * gp * neg_below + gp * gn;
        neg_below += gn;
        g = e;
    }
    free(v);
    *auc = (double)twice_u / (double)(2 * npos * nneg);
    return METRICS_OK;
}

int metrics_privleak(double *out, double auc, double auc_retrain)
{
    if (!out) return METRICS_EINVAL;
    if (isnan(auc) || !(auc_retrain > 0.0) || isinf(auc_retrain)) return METRICS_EDOMAIN;
    *out = (auc - auc_retrain) / auc_retrain * 100.0;
    return METRICS_OK;
}

/* ---- means --------------------------------------------------------------------------------- */

int metrics_mean(double *out, const double *x, int64_t n)
{
    if (!out || !x || n < 1) return METRICS_EINVAL;
    nsum s = {0.0, 0.0};
    int pinf = 0, ninf = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(x[i])) return METRICS_EDOMAIN;
        if (x[i] == INFINITY)
            pinf = 1;
        else if (x[i] == -INFINITY)
            ninf = 1;
        else
            nsum_add(&s, x[i]);
    }
    if (pinf && ninf) return METRICS_EDOMAIN;
    if (pinf || ninf) {
        *out = pinf ? INFINITY : -INFINITY;
        return METRICS_OK;
    }
    *out = nsum_get(&s) / (double)n;
    return METRICS_OK;
}

int metrics_harmonic_mean(double *out, const double *x, int64_t n)
{
    if (!out || !x || n < 1) return METRICS_EINVAL;
    int zero = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(x[i]) || x[i] < 0.0) return METRICS_EDOMAIN;
        if (x[i] == 0.0) zero = 1;
    }
    if (zero) {
        *out = 0.0;
        return METRICS_OK;
    }
    nsum s = {0.0, 0.0};
    for (int64_t i = 0; i < n; i++) nsum_add(&s, 1.0 / x[i]);
    *out = (double)n / nsum_get(&s);
    return METRICS_OK;
}

/* ---- truth ratio, normalised probability ----------------------------------------------- */

int metrics_truth_ratio(double *r, const double *l_para, const double *l_pert, int64_t n, int64_t k)
{
    if (!r || !l_para || !l_pert || n < 1 || k < 1) return METRICS_EINVAL;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(l_para[i])) return METRICS_EDOMAIN;
        for (int64_t j = 0; j < k; j++)
            if (!isfinite(l_pert[i * k + j])) return METRICS_EDOMAIN;
    }
    for (int64_t i = 0; i < n; i++) {
        nsum s = {0.0, 0.0};
        for (int64_t j = 0; j < k; j++) nsum_add(&s, l_pert[i * k + j]);
        r[i] = exp(nsum_get(&s) / (double)k - l_para[i]);
    }
    return METRICS_OK;
}

static int truth_ratio_agg(double *out, const double *r, int64_t n, int forget)
{
    if (!out || !r || n < 1) return METRICS_EINVAL;
    for (int64_t i = 0; i < n; i++)
        if (isnan(r[i]) || r[i] < 0.0) return METRICS_EDOMAIN;
    nsum s = {0.0, 0.0};
    for (int64_t i = 0; i < n; i++) {
        double R = r[i], v;
        if (forget)
            v = R <= 1.0 ? R : 1.0 / R; /* R = 0 -> 0, R = inf -> 0 */
        else
            v = R <= 1.0 ? 0.0 : 1.0 - 1.0 / R; /* max(0, 1 - 1/R); R = inf -> 1 */
        nsum_add(&s, v);
    }
    *out = nsum_get(&s) / (double)n;
    return METRICS_OK;
}

int metrics_truth_ratio_forget(double *out, const double *r, int64_t n)
{
    return truth_ratio_agg(out, r, n, 1);
}

int metrics_truth_ratio_other(double *out, const double *r, int64_t n)
{
    return truth_ratio_agg(out, r, n, 0);
}

int metrics_prob_normalized(double *q, const double *l_ans, const double *l_pert, int64_t n,
                            int64_t k)
{
    if (!q || !l_ans || !l_pert || n < 1 || k < 1) return METRICS_EINVAL;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(l_ans[i])) return METRICS_EDOMAIN;
        for (int64_t j = 0; j < k; j++)
            if (!isfinite(l_pert[i * k + j])) return METRICS_EDOMAIN;
    }
    for (int64_t i = 0; i < n; i++) {
        nsum s = {1.0, 0.0};
        for (int64_t j = 0; j < k; j++) nsum_add(&s, exp(l_ans[i] - l_pert[i * k + j]));
        q[i] = 1.0 / nsum_get(&s); /* an overflow to inf gives the limit 0 */
    }
    return METRICS_OK;
}

/* ---- Min-K% ------------------------------------------------------------------------------ */

int metrics_min_k(double *score, const double *logp, int64_t n, double k_percent)
{
    if (!score || !logp || n < 1 || !(k_percent > 0.0) || !(k_percent <= 100.0))
        return METRICS_EINVAL;
    for (int64_t i = 0; i < n; i++)
        if (isnan(logp[i]) || logp[i] == INFINITY) return METRICS_EDOMAIN;
    double mf = ceil(k_percent * (double)n / 100.0);
    int64_t m = mf < 1.0 ? 1 : (mf > (double)n ? n : (int64_t)mf);
    double *v = malloc((size_t)n * sizeof *v);
    if (!v) return METRICS_ENOMEM;
    memcpy(v, logp, (size_t)n * sizeof *v);
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    double out;
    if (v[0] == -INFINITY) {
        out = -INFINITY;
    } else {
        nsum s = {0.0, 0.0};
        for (int64_t i = 0; i < m; i++) nsum_add(&s, v[i]);
        out = nsum_get(&s) / (double)m;
    }
    free(v);
    *score = out;
    return METRICS_OK;
}
