/* analysis/stats.c — paired differences with a deterministic percentile bootstrap, and
 * the Pareto front of points in two maximised coordinates (contract in stats.h). */
#include "stats.h"

#include <math.h>
#include <stdlib.h>

uint64_t stats_rng_next(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

uint64_t stats_rng_below(uint64_t *s, uint64_t n)
{
    /* the largest multiple of n that fits: values at or above it would favour small
     * indices, so they are drawn again */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t r;
    do r = stats_rng_next(s);
    while (r >= limit);
    return r % n;
}

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void stats_boot_interval(double *lo, double *hi, const double *d, int n, int B, uint64_t seed,
                         double *work)
{
    uint64_t s = seed;
    for (int b = 0; b < B; b++) {
        double sum = 0;
        for (int i = 0; i < n; i++) sum += d[stats_rng_below(&s, (uint64_t)n)];
        work[b] = sum / n;
    }
    qsort(work, (size_t)B, sizeof *work, dbl_cmp);
    int k = (int)floor(STATS_ALPHA / 2 * B);
    *lo = work[k];
    *hi = work[B - 1 - k];
}

void stats_paired_compare(stats_paired *out, const double *a, const double *b, int n,
                          int higher_better, double *d, double *work)
{
    int k = 0;
    out->wins = out->ties = 0;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i])) continue;
        d[k] = a[i] - b[i];
        sum += d[k];
        if (d[k] == 0)
            out->ties++;
        else if ((d[k] > 0) == (higher_better != 0))
            out->wins++;
        k++;
    }
    out->n = k;
    out->mean = k ? sum / k : NAN;
    double dmin = INFINITY, dmax = -INFINITY, big = 0;
    for (int i = 0; i < k; i++) dmin = fmin(dmin, d[i]), dmax = fmax(dmax, d[i]);
    for (int i = 0; i < n; i++)
        if (!isnan(a[i]) && !isnan(b[i])) big = fmax(big, fmax(fabs(a[i]), fabs(b[i])));
    out->same = k >= 2 && dmax - dmin <= STATS_SAME_REL * big;
    out->lo = out->hi = NAN;
    if (k >= 2) stats_boot_interval(&out->lo, &out->hi, d, k, STATS_BOOT_N, STATS_BOOT_SEED, work);
}

int stats_shown(const stats_paired *p)
{
    return p->n >= STATS_MIN_SHOWN && !p->same && (p->lo > 0 || p->hi < 0);
}

int stats_pareto(int *on_front, const double *x, const double *y, int n)
{
    int cnt = 0;
    for (int i = 0; i < n; i++) {
        on_front[i] = !isnan(x[i]) && !isnan(y[i]);
        for (int j = 0; j < n && on_front[i]; j++) {
            if (j == i || isnan(x[j]) || isnan(y[j])) continue;
            if (x[j] >= x[i] && y[j] >= y[i] && (x[j] > x[i] || y[j] > y[i])) on_front[i] = 0;
        }
        cnt += on_front[i];
    }
    return cnt;
}
