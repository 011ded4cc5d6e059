/* analysis/metrics.c — the small metrics of metrics.h: ROC AUC and PrivLeak, the means
 * (compensated summation), truth ratios and normalised probabilities, Min-K%, and the
 * status strings. ROUGE-L is in metrics_text.c, the KS test in metrics_ks.c. */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "metrics_impl.h"

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

int metrics_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---- ROC AUC ---------------------------------------------------------------------------- */

typedef struct {
    double s;
    int pos;
} scored;

static int cmp_scored(const void *a, const void *b)
{
    return metrics_cmp_double(&((const scored *)a)->s, &((const scored *)b)->s);
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

int metrics_min_m(double *score, const double *logp, int64_t n, int64_t m)
{
    for (int64_t i = 0; i < n; i++)
        if (isnan(logp[i]) || logp[i] == INFINITY) return METRICS_EDOMAIN;
    double *v = malloc((size_t)n * sizeof *v);
    if (!v) return METRICS_ENOMEM;
    memcpy(v, logp, (size_t)n * sizeof *v);
    qsort(v, (size_t)n, sizeof *v, metrics_cmp_double);
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

int metrics_min_k(double *score, const double *logp, int64_t n, double k_percent)
{
    if (!score || !logp || n < 1 || !(k_percent > 0.0) || !(k_percent <= 100.0))
        return METRICS_EINVAL;
    double mf = ceil(k_percent * (double)n / 100.0);
    int64_t m = mf < 1.0 ? 1 : (mf > (double)n ? n : (int64_t)mf);
    return metrics_min_m(score, logp, n, m);
}
